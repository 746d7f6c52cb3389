#!/usr/bin/env bash
# Multi-node proof on one machine: two simulated nodes (network namespaces),
# each with a TUN standing in for its Mycelium interface and its own /64,
# joined by a veth whose /64 routes stand in for the overlay. The real binary
# attaches a pod on each node; the pods ping each other and the other node,
# both directions. Everything is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
install_packages
[ -x "$BIN" ] || build_static
TAG="mcmn$$"
A_ADDR=5fd:a395:1a8d:501d:f650:6887:2bd4:ee49 A_NET=5fd:a395:1a8d:501d::/64
B_ADDR=4aa:1:2:3:5e1f:27ff:fe11:b B_NET=4aa:1:2:3::/64
trap 'for ns in $(ip netns list | awk "{print \$1}" | grep "^$TAG-"); do ip netns del "$ns"; done' EXIT

node() { # NAME ADDRESS
  ip netns add "$TAG-$1"
  ip -n "$TAG-$1" link set lo up
  ip -n "$TAG-$1" tuntap add dev mycelium mode tun
  ip -n "$TAG-$1" link set mycelium mtu 1400 up
  ip -n "$TAG-$1" -6 addr add "$2/7" dev mycelium
}
node a "$A_ADDR"
node b "$B_ADDR"
ip -n "$TAG-a" link add ovl0 type veth peer name ovl0 netns "$TAG-b"
ip -n "$TAG-a" -6 addr add fe80::a/64 dev ovl0 nodad
ip -n "$TAG-b" -6 addr add fe80::b/64 dev ovl0 nodad
ip -n "$TAG-a" link set ovl0 up
ip -n "$TAG-b" link set ovl0 up
ip -n "$TAG-a" -6 route add "$B_NET" via fe80::b dev ovl0
ip -n "$TAG-b" -6 route add "$A_NET" via fe80::a dev ovl0

attach() { # NODE -> prints the pod address
  ip netns add "$TAG-pod-$1"
  echo '{"cniVersion":"1.0.0","name":"mycelium","type":"mycelium-cni"}' |
    ip netns exec "$TAG-$1" env CNI_COMMAND=ADD CNI_CONTAINERID="pod-$1" \
      CNI_NETNS="/var/run/netns/$TAG-pod-$1" CNI_IFNAME=eth0 "$PWD/$BIN" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["ips"][-1]["address"].split("/")[0])'
}
POD_A=$(attach a)
POD_B=$(attach b)
echo "node a $A_ADDR, pod $POD_A"
echo "node b $B_ADDR, pod $POD_B"
check() { # FROM_NS TO_ADDRESS LABEL
  if ip netns exec "$1" ping -6 -c 1 -W 2 "$2" >/dev/null; then echo "ok    $3"; else echo "FAIL  $3"; failed=1; fi
}
failed=0
check "$TAG-pod-a" "$POD_B" "pod a -> pod b"
check "$TAG-pod-b" "$POD_A" "pod b -> pod a"
check "$TAG-pod-a" "$B_ADDR" "pod a -> node b"
check "$TAG-pod-b" "$A_ADDR" "pod b -> node a"
check "$TAG-b" "$POD_A" "node b -> pod a"
check "$TAG-a" "$POD_B" "node a -> pod b"
exit "$failed"
