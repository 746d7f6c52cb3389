#!/usr/bin/env bash
# The overlay ingress control's cost, side by side with `open`, on two
# simulated nodes linked the way Mycelium traffic arrives (a veth pair named
# like the configured Mycelium interface, each end routing the other node's
# /64): ADD latency (alternating, RUNS each) and TCP throughput from the
# other node's pod into a pod here (iperf3 -R: the pod starts the connection,
# the data crosses the forward chain; 5 s, alternating, 5 runs each).
# Prints a table; run by scripts/bench.sh, or alone:
#
#   scripts/bench/ingress.sh [RUNS]   (default 30)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
need_root
install_packages
command -v iperf3 >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null
RUNS=${1:-30}
OUT=target/bench
mkdir -p "$OUT"
build_static
[ -x "$OUT/spawn" ] || cc -static -Os -o "$OUT/spawn" scripts/bench/spawn.c
OURS="$PWD/$BIN" SPAWN="$PWD/$OUT/spawn"

TAG="mcbi$$" A_ADDR="5fd:a395:1a8d:501d:f650:6887:2bd4:ee49" B_ADDR="4aa:1:2:3:5e1f:27ff:fe11:b"
DATA=$(mktemp -d)
cleanup() {
  set +e
  for ns in $(ip netns list | awk '{print $1}' | grep "^$TAG-"); do ip netns del "$ns"; done
  rm -rf "$DATA"
}
trap cleanup EXIT

ip netns add "$TAG-a"; ip netns add "$TAG-b"
ip -n "$TAG-a" link add mcovl0 type veth peer name mcovl0 netns "$TAG-b"
for side in "a $A_ADDR fe80::a 4aa:1:2:3::/64 fe80::b" "b $B_ADDR fe80::b 5fd:a395:1a8d:501d::/64 fe80::a"; do
  read -r node addr own other gw <<<"$side"
  ip -n "$TAG-$node" link set lo up
  ip -n "$TAG-$node" -6 addr add "$addr/7" dev mcovl0 nodad
  ip -n "$TAG-$node" -6 addr add "$own/64" dev mcovl0 nodad
  ip -n "$TAG-$node" link set mcovl0 up
  ip -n "$TAG-$node" -6 route add "$other" via "$gw" dev mcovl0
done
conf() { # NETWORK SETTING
  echo "{\"cniVersion\":\"1.0.0\",\"name\":\"$1\",\"type\":\"mycelium-cni\",\"myceliumInterface\":\"mcovl0\",\"overlayIngress\":\"$2\"}"
}
conf bench open >"$DATA/open.json"; conf bench replies >"$DATA/replies.json"
conf tp open >"$DATA/tp-open.json"; conf tp replies >"$DATA/tp-replies.json"

call() { # NODE CONF COMMAND CONTAINER
  ip netns exec "$TAG-$1" env CNI_COMMAND="$3" CNI_CONTAINERID="$4" \
    CNI_NETNS="/var/run/netns/$TAG-$4" CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni \
    "$SPAWN" "$DATA/$2.json" -- "$OURS"
}
median() { sort -n | awk '{a[NR]=$1} END {printf "%d\n", (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "ADD with overlayIngress open and replies ($RUNS runs each, alternating)..."
: >"$DATA/open.add"; : >"$DATA/replies.add"
for setting in open replies; do # warm-up: the first ADD of each setting installs or removes the chain
  ip netns add "$TAG-w$setting"; call a "$setting" ADD "w$setting" >/dev/null
  call a "$setting" DEL "w$setting" >/dev/null; ip netns del "$TAG-w$setting"
done
for i in $(seq "$RUNS"); do
  for setting in open replies; do
    # The other setting's ADD left its chain state: one ADD first brings it
    # in line, so that the timed ADD finds the control as configured.
    ip netns add "$TAG-s$i$setting"; call a "$setting" ADD "s$i$setting" >/dev/null
    ip netns add "$TAG-$setting$i"
    line=$(call a "$setting" ADD "$setting$i")
    [ "${line##* }" = 0 ] || { echo "ADD ($setting) failed: $line" >&2; exit 1; }
    echo "$line" | cut -d' ' -f1 >>"$DATA/$setting.add"
    for c in "$setting$i" "s$i$setting"; do call a "$setting" DEL "$c" >/dev/null; ip netns del "$TAG-$c"; done
  done
done

echo "TCP from the other node's pod into a pod here, open and replies (5 s, 5 runs each)..."
ip netns add "$TAG-pa"; ip netns add "$TAG-pb"
call a tp-open ADD pa >/dev/null; call b tp-open ADD pb >/dev/null
PB=$(ip -n "$TAG-pb" -6 -o addr show dev eth0 scope global | awk '{print $4}' | cut -d/ -f1)
: >"$DATA/tp.open"; : >"$DATA/tp.replies"
for i in 1 2 3 4 5; do
  for setting in open replies; do
    ip netns add "$TAG-t$i$setting"; call a "tp-$setting" ADD "t$i$setting" >/dev/null # sets the chain
    ip netns exec "$TAG-pb" iperf3 -s -1 -D
    sleep 0.5
    ip netns exec "$TAG-pa" iperf3 -6 -R -c "$PB" -t 5 -J |
      python3 -c "import json,sys; print(int(json.load(sys.stdin)['end']['sum_received']['bits_per_second']/1e6))" >>"$DATA/tp.$setting"
    call a "tp-$setting" DEL "t$i$setting" >/dev/null; ip netns del "$TAG-t$i$setting"
  done
done
dropped=$(ip netns exec "$TAG-a" nft list chain inet mycelium-cni overlay-in-tp | grep -o 'counter packets [0-9]*' | awk '{print $3}')

m() { median <"$DATA/$1"; }
ratio() { python3 -c "print(f'{$1/$2:.3f}')"; }
{
  echo "Overlay ingress: medians; ADD in microseconds ($RUNS runs), TCP in Mbit/s (5 runs of 5 s)."
  echo
  echo "| measure | open | replies | replies / open |"
  echo "| --- | --- | --- | --- |"
  echo "| ADD | $(m open.add) | $(m replies.add) | $(ratio "$(m replies.add)" "$(m open.add)") |"
  echo "| TCP other node's pod -> pod (iperf3 -R) | $(m tp.open) | $(m tp.replies) | $(ratio "$(m tp.replies)" "$(m tp.open)") |"
  echo
  echo "Packets the replies chain dropped during the runs: ${dropped:-?} (expected 0)."
} >"$OUT/ingress.md"
echo
cat "$OUT/ingress.md"
