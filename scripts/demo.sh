#!/usr/bin/env bash
# Builds the static binary and attaches a demo network namespace to Mycelium,
# the way a container runtime would: ADD, ping, CHECK, DEL.
#
# With a running Mycelium daemon (interface "mycelium", or $MYCELIUM_IF, with
# an address in 400::/7) the demo pod joins the real overlay in the host
# namespace. Without one, a simulated node is built in a namespace of its own:
# a TUN named "mycelium" with an overlay address, as the daemon would make it.
# Everything the demo creates is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
install_packages
build_static
echo "built $BIN ($(stat -c %s "$BIN") bytes)"

IFACE=${MYCELIUM_IF:-mycelium}
TAG="mcdemo$$"
POD="$TAG-pod"
NODE=""
run_on_node() { if [ -n "$NODE" ]; then ip netns exec "$NODE" "$@"; else "$@"; fi; }

cleanup() {
  set +e
  [ -n "${CONF:-}" ] && cni DEL "" >/dev/null 2>&1
  ip netns del "$POD" 2>/dev/null
  [ -n "$NODE" ] && ip netns del "$NODE" 2>/dev/null
}
trap cleanup EXIT

if ip -6 addr show dev "$IFACE" 2>/dev/null | grep -Eq 'inet6 [45][0-9a-f]{2}:'; then
  echo "using the running Mycelium daemon's interface $IFACE"
  NODE_ADDR=$(ip -6 addr show dev "$IFACE" | grep -Eo 'inet6 [45][0-9a-f]{2}:[^/]*' | head -n1 | cut -d' ' -f2)
else
  NODE="$TAG-node"
  NODE_ADDR="5fd:a395:1a8d:501d:f650:6887:2bd4:ee49"
  echo "no Mycelium daemon here: simulating node $NODE_ADDR in namespace $NODE"
  ip netns add "$NODE"
  ip -n "$NODE" link set lo up
  ip -n "$NODE" tuntap add dev "$IFACE" mode tun
  ip -n "$NODE" link set "$IFACE" mtu 1400 up
  ip -n "$NODE" -6 addr add "$NODE_ADDR/7" dev "$IFACE"
fi
ip netns add "$POD"

CONF="{\"cniVersion\":\"1.1.0\",\"name\":\"mycelium-demo\",\"type\":\"mycelium-cni\",\"myceliumInterface\":\"$IFACE\"}"
cni() { # COMMAND [PREV_RESULT]
  local conf=$CONF
  [ -n "${2:-}" ] && conf="${CONF%\}},\"prevResult\":$2}"
  echo "$conf" | run_on_node env CNI_COMMAND="$1" CNI_CONTAINERID="$TAG" \
    CNI_NETNS="/var/run/netns/$POD" CNI_IFNAME=eth0 CNI_PATH=/opt/cni/bin "$PWD/$BIN"
}

echo "== ADD"
start=$(date +%s%N)
RESULT=$(cni ADD)
end=$(date +%s%N)
echo "$RESULT" | python3 -m json.tool
echo "ADD took $(( (end - start) / 1000 )) us (including the namespace exec)"
POD_ADDR=$(echo "$RESULT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ips"][-1]["address"].split("/")[0])')

echo "== pod view"
ip -n "$POD" -6 addr show dev eth0
ip -n "$POD" -6 route
echo "== pod -> node $NODE_ADDR"
ip netns exec "$POD" ping -6 -c 2 -W 2 "$NODE_ADDR"
echo "== node -> pod $POD_ADDR"
run_on_node ping -6 -c 2 -W 2 "$POD_ADDR"
echo "== CHECK"
cni CHECK "$RESULT" && echo "CHECK passed"
echo "== DEL"
cni DEL && echo "DEL done"
CONF=""
echo "demo finished; cleaning up"
