#!/usr/bin/env bash
# Egress and kernel-layer numbers, side by side in one run on this machine:
#   - ADD (and DEL) with "egress": "nat" against "overlay", interleaved;
#   - ADD and VERSION of this tree against a baseline commit (default
#     373adeb, the last commit before the netlink layer and egress), built
#     the same way into target/bench/base;
#   - TCP from a pod through the NAT to a server behind the node's uplink,
#     IPv4 and IPv6, against the node's own TCP to it, alternating rounds.
# Prints a table and writes it to target/bench/egress.md. Not a test.
#
#   scripts/bench/egress.sh [RUNS] [BASE_REV]   (defaults: 40, 373adeb)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
need_root
install_packages
for tool in hyperfine iperf3; do
  command -v $tool >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $tool >/dev/null
done
RUNS=${1:-40}
BASE_REV=${2:-373adeb}
OUT=target/bench
mkdir -p "$OUT"
build_static
cc -static -Os -o "$OUT/spawn" scripts/bench/spawn.c
SPAWN="$PWD/$OUT/spawn"
OURS="$PWD/$BIN"

# The baseline, built from its own checkout with the same plain cargo build.
BASE="$PWD/$OUT/base-$BASE_REV"
if [ ! -x "$BASE" ]; then
  BASE_SRC=$(mktemp -d) BASE_TARGET=$(mktemp -d)
  git worktree add --quiet --detach "$BASE_SRC" "$BASE_REV"
  (cd "$BASE_SRC" && cargo build --quiet --release --locked --target "$TARGET" --target-dir "$BASE_TARGET")
  cp "$BASE_TARGET/$TARGET/release/mycelium-cni" "$BASE"
  git worktree remove --force "$BASE_SRC"
  rm -rf "$BASE_TARGET"
fi

TAG="mce$$"
NODE="$TAG-node"
NET="$TAG-net"
NODE_ADDR="5fd:a395:1a8d:501d:f650:6887:2bd4:ee49"
DATA=$(mktemp -d)
SERVERS=()
cleanup() {
  set +e
  for pid in "${SERVERS[@]}"; do kill "$pid"; done
  for pid in "${SERVERS[@]}"; do wait "$pid" 2>/dev/null; done
  for ns in $(ip netns list | awk '{print $1}' | grep "^$TAG-"); do ip netns del "$ns"; done
  rm -rf "$DATA"
}
trap cleanup EXIT

ip netns add "$NODE"
ip -n "$NODE" link set lo up
ip -n "$NODE" tuntap add dev mycelium mode tun
ip -n "$NODE" link set mycelium mtu 1400 up
ip -n "$NODE" -6 addr add "$NODE_ADDR/7" dev mycelium
# The uplink: an "internet" namespace only the node routes to.
ip netns add "$NET"
ip -n "$NET" link set lo up
ip -n "$NODE" link add up0 type veth peer name eth0 netns "$NET"
ip -n "$NODE" addr add 203.0.113.1/24 dev up0
ip -n "$NODE" -6 addr add 2001:db8:e::1/64 dev up0 nodad
ip -n "$NET" addr add 203.0.113.2/24 dev eth0
ip -n "$NET" -6 addr add 2001:db8:e::2/64 dev eth0 nodad
ip -n "$NODE" link set up0 up
ip -n "$NET" link set eth0 up
ip -n "$NODE" route add default via 203.0.113.2
ip -n "$NODE" -6 route add default via 2001:db8:e::2

for egress in nat overlay; do
  cat >"$DATA/$egress.json" <<EOF
{"cniVersion":"1.0.0","name":"bench","type":"mycelium-cni","myceliumInterface":"mycelium","egress":"$egress"}
EOF
done
# The baseline knows no egress key and ignores it: its behaviour is overlay.
cp "$DATA/overlay.json" "$DATA/base.json"

# call BINARY CONF COMMAND CONTAINER: one timed call in the node.
call() {
  ip netns exec "$NODE" env CNI_COMMAND="$3" CNI_CONTAINERID="$4" \
    CNI_NETNS="/var/run/netns/$TAG-$4" CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni \
    "$SPAWN" "$DATA/$2.json" -- "$1"
}
median() { sort -n | awk '{a[NR]=$1} END {printf "%d\n", (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# Each round runs the three modes once each, in a rotating order.
echo "ADD/DEL, $RUNS rounds of nat, overlay and $BASE_REV, interleaved..."
for mode in nat overlay base; do
  # Warm-up: the first ADD of a mode makes its nf_tables chains.
  binary=$OURS; [ $mode = base ] && binary=$BASE
  ip netns add "$TAG-w$mode"; call "$binary" $mode ADD "w$mode" >/dev/null
  call "$binary" $mode DEL "w$mode" >/dev/null; ip netns del "$TAG-w$mode"
  : >"$DATA/$mode.add"; : >"$DATA/$mode.del"
done
for i in $(seq "$RUNS"); do
  case $((i % 3)) in 0) order="nat overlay base" ;; 1) order="overlay base nat" ;; *) order="base nat overlay" ;; esac
  for mode in $order; do
    binary=$OURS; [ $mode = base ] && binary=$BASE
    ip netns add "$TAG-$mode$i"
    line=$(call "$binary" $mode ADD "$mode$i")
    [ "${line##* }" = 0 ] || { echo "$mode ADD failed: $line" >&2; exit 1; }
    echo "${line%% *}" >>"$DATA/$mode.add"
    line=$(call "$binary" $mode DEL "$mode$i")
    echo "${line%% *}" >>"$DATA/$mode.del"
    ip netns del "$TAG-$mode$i"
  done
done

echo "start-up (VERSION, 1000 runs each)..."
CNI_COMMAND=VERSION hyperfine -N --runs 1000 --warmup 50 --export-json "$DATA/startup.json" \
  "$OURS" "$BASE" >/dev/null 2>&1
startup() { python3 -c "import json; r=json.load(open('$DATA/startup.json'))['results'][$1]; print(round(r['median']*1e6))"; }

echo "TCP through the NAT against the node's own, 5 rounds of 3 s..."
ip netns exec "$NET" iperf3 -s -p 5201 >/dev/null 2>&1 & SERVERS+=($!)
sleep 0.5
ip netns add "$TAG-pod"
call "$OURS" nat ADD pod >/dev/null
throughput() { # NS TARGET: Mbit/s of a 3 s TCP upload
  ip netns exec "$1" iperf3 -c "$2" -p 5201 -t 3 -J 2>/dev/null |
    python3 -c "import json,sys; print(round(json.load(sys.stdin)['end']['sum_received']['bits_per_second']/1e6))"
}
for target in 203.0.113.2 2001:db8:e::2; do
  : >"$DATA/pod-$target"; : >"$DATA/node-$target"
  for round in 1 2 3 4 5; do
    if [ $((round % 2)) = 1 ]; then
      throughput "$TAG-pod" "$target" >>"$DATA/pod-$target"; throughput "$NODE" "$target" >>"$DATA/node-$target"
    else
      throughput "$NODE" "$target" >>"$DATA/node-$target"; throughput "$TAG-pod" "$target" >>"$DATA/pod-$target"
    fi
  done
done

ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }
m() { median <"$DATA/$1"; }
{
  echo "| measurement (median) | this tree | against | ratio |"
  echo "|---|---|---|---|"
  echo "| ADD, egress nat vs overlay (us) | $(m nat.add) | $(m overlay.add) | $(ratio "$(m nat.add)" "$(m overlay.add)") |"
  echo "| DEL, egress nat vs overlay (us) | $(m nat.del) | $(m overlay.del) | $(ratio "$(m nat.del)" "$(m overlay.del)") |"
  echo "| ADD, overlay vs $BASE_REV (us) | $(m overlay.add) | $(m base.add) | $(ratio "$(m overlay.add)" "$(m base.add)") |"
  echo "| VERSION vs $BASE_REV (us) | $(startup 0) | $(startup 1) | $(ratio "$(startup 0)" "$(startup 1)") |"
  for target in 203.0.113.2 2001:db8:e::2; do
    echo "| TCP to $target: pod through NAT vs node (Mbit/s) | $(m "pod-$target") | $(m "node-$target") | $(ratio "$(m "pod-$target")" "$(m "node-$target")") |"
  done
} | tee "$OUT/egress.md"
