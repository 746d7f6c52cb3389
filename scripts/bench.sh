#!/usr/bin/env bash
# Side-by-side benchmark on this machine: mycelium-cni against the Go
# reference ptp + host-local (Debian's containernetworking-plugins, IPv6 in
# the same /64, routing 400::/7), on the same simulated node, plus the
# floors: an empty static Rust binary (same profile) and bare veth
# create/delete. Prints a table of medians and writes it to
# target/bench/results.md. Not a test: numbers vary with the machine.
#
#   scripts/bench.sh [RUNS] [filter]   RUNS per latency measurement (default
#   40); with "filter", only the source filter's throughput (no table, fib
#   only, fast path; TP_ROUNDS interleaved rounds of TP_SECONDS, defaults 5
#   and 5) and ADD with and without the fast path element.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
install_packages
for tool in hyperfine iperf3; do
  command -v $tool >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $tool >/dev/null
done
RUNS=${1:-40}
ONLY=${2:-}
OUT=target/bench
mkdir -p "$OUT"

build_static
build_static "$TARGET" "$HOOKS_DIR" test-hooks
HOOKS="$PWD/$HOOKS_BIN"
cc -static -Os -o "$OUT/spawn" scripts/bench/spawn.c
# The floor: an empty main, same profile and flags.
mkdir -p "$OUT/empty/src"
sed -n '/^\[profile.release\]/,$p' Cargo.toml >"$OUT/empty/profile.toml"
{ printf '[package]\nname = "empty"\nversion = "0.0.0"\nedition = "2024"\n[workspace]\n'; cat "$OUT/empty/profile.toml"; } >"$OUT/empty/Cargo.toml"
echo 'fn main() {}' >"$OUT/empty/src/main.rs"
cargo build --quiet --release --manifest-path "$OUT/empty/Cargo.toml" --target "$TARGET" --target-dir "$OUT/empty/target"
EMPTY="$OUT/empty/target/$TARGET/release/empty"
OURS="$PWD/$BIN"
PTP=/usr/lib/cni/ptp
SPAWN="$PWD/$OUT/spawn"

TAG="mcb$$"
NODE="$TAG-node"
NODE_ADDR="5fd:a395:1a8d:501d:f650:6887:2bd4:ee49"
DATA=$(mktemp -d)
DAEMONS=()
cleanup() {
  set +e
  for pid in "${DAEMONS[@]}"; do kill "$pid"; done
  for pid in "${DAEMONS[@]}"; do wait "$pid"; done
  for ns in $(ip netns list | awk '{print $1}' | grep "^$TAG-"); do ip netns del "$ns"; done
  rm -rf "$DATA"
}
trap cleanup EXIT

ip netns add "$NODE"
ip -n "$NODE" link set lo up
ip -n "$NODE" tuntap add dev mycelium mode tun
ip -n "$NODE" link set mycelium mtu 1400 up
ip -n "$NODE" -6 addr add "$NODE_ADDR/7" dev mycelium
ip netns exec "$NODE" sysctl -qw net.ipv6.conf.all.forwarding=1

cat >"$DATA/ours.json" <<EOF
{"cniVersion":"1.0.0","name":"bench","type":"mycelium-cni","myceliumInterface":"mycelium"}
EOF
cat >"$DATA/ours-nofilter.json" <<EOF
{"cniVersion":"1.0.0","name":"bench","type":"mycelium-cni","myceliumInterface":"mycelium","sourceFilter":false}
EOF
# The throughput runs: egress overlay, so that the table holds the source
# filter alone (egress nat's chain brings conntrack, a cost of its own).
cat >"$DATA/ours-filteronly.json" <<EOF
{"cniVersion":"1.0.0","name":"bench","type":"mycelium-cni","myceliumInterface":"mycelium","egress":"overlay"}
EOF
cat >"$DATA/ptp.json" <<EOF
{"cniVersion":"1.0.0","name":"bench","type":"ptp","mtu":1400,
 "ipam":{"type":"host-local","dataDir":"$DATA/ipam",
   "ranges":[[{"subnet":"5fd:a395:1a8d:501d::/64","rangeStart":"5fd:a395:1a8d:501d::100"}]],
   "routes":[{"dst":"400::/7"}]}}
EOF
echo '{}' >"$DATA/empty.json"

# call PLUGIN COMMAND CONTAINER [--ping]: one timed call in the node. Our
# plugin reads $DATA/$OURS_CONF.json.
OURS_CONF=ours
call() {
  local plugin=$1 command=$2 container=$3 conf ping=()
  conf="$DATA/$( [ "$plugin" = "$PTP" ] && echo ptp || echo "$OURS_CONF" ).json"
  [ "${4:-}" = --ping ] && ping=(--ping "/var/run/netns/$TAG-$container" "$NODE_ADDR")
  ip netns exec "$NODE" env CNI_COMMAND="$command" CNI_CONTAINERID="$container" \
    CNI_NETNS="/var/run/netns/$TAG-$container" CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni \
    "$SPAWN" "$conf" "${ping[@]}" -- "$plugin"
}

m() { median <"$DATA/$1"; }
ratio() { python3 -c "print(f'{$1/$2:.2f}x')"; }
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4"; }
median() { sort -n | awk '{a[NR]=$1} END {printf "%d\n", (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# add_del PLUGIN LABEL: RUNS x (ADD timed, DEL timed); then RUNS x ADD-until-ping.
add_del() {
  local plugin=$1 label=$2 i line
  : >"$DATA/$label.add"; : >"$DATA/$label.del"; : >"$DATA/$label.rss"; : >"$DATA/$label.ping"
  for i in $(seq "$RUNS"); do
    ip netns add "$TAG-$label$i"
    line=$(call "$plugin" ADD "$label$i")
    [ "${line##* }" = 0 ] || { echo "$label ADD failed: $line" >&2; exit 1; }
    echo "$line" | cut -d' ' -f1 >>"$DATA/$label.add"
    echo "$line" | cut -d' ' -f2 >>"$DATA/$label.rss"
    line=$(call "$plugin" DEL "$label$i")
    [ "${line##* }" = 0 ] || { echo "$label DEL failed: $line" >&2; exit 1; }
    echo "$line" | cut -d' ' -f1 >>"$DATA/$label.del"
    ip netns del "$TAG-$label$i"
  done
  for i in $(seq "$RUNS"); do
    ip netns add "$TAG-$label-p$i"
    line=$(call "$plugin" ADD "$label-p$i" --ping)
    [ "${line##* }" = 0 ] || { echo "$label ADD+ping failed: $line" >&2; exit 1; }
    echo "$line" | cut -d' ' -f1 >>"$DATA/$label.ping"
    call "$plugin" DEL "$label-p$i" >/dev/null
    ip netns del "$TAG-$label-p$i"
  done
}

# scale PLUGIN LABEL: ADD latency with 1, 50 and 250 pods already attached.
scale() {
  local plugin=$1 label=$2 have=0 target i line
  for target in 1 50 250; do
    while [ "$have" -lt "$target" ]; do
      have=$((have + 1))
      ip netns add "$TAG-$label-bg$have"
      call "$plugin" ADD "$label-bg$have" >/dev/null
    done
    # Let the new interfaces finish their start-up chatter (DAD, router
    # solicitations, MLD: several seconds), so that "existing pods" means
    # settled ones rather than a kernel still busy with the last 200.
    sleep 12
    : >"$DATA/$label.scale$target"
    for i in $(seq "$RUNS"); do
      ip netns add "$TAG-$label-s$i"
      line=$(call "$plugin" ADD "$label-s$i")
      echo "$line" | cut -d' ' -f1 >>"$DATA/$label.scale$target"
      call "$plugin" DEL "$label-s$i" >/dev/null
      ip netns del "$TAG-$label-s$i"
    done
  done
  for i in $(seq "$have"); do
    call "$plugin" DEL "$label-bg$i" >/dev/null
    ip netns del "$TAG-$label-bg$i"
  done
}

# Pod-to-pod TCP throughput on one node (iperf3, TP_SECONDS s), interleaved rounds
# (each round starts with the next mode, so no mode always runs first) of:
# no table, the source filter with its fib rules only (the fast path's two
# rules deleted), and the whole filter with the fast path. Each measurement
# attaches the two pods afresh (ADD makes their fast path elements), then
# sets the table as the mode wants it. Egress overlay: see ours-filteronly.
tp_mode() { # MODE
  local OURS_CONF=ours-filteronly
  call "$OURS" DEL tpa >/dev/null; call "$OURS" DEL tpb >/dev/null
  call "$OURS" ADD tpa >/dev/null; call "$OURS" ADD tpb >/dev/null
  case $1 in
    none) ip netns exec "$NODE" nft delete table inet mycelium-cni ;;
    fib)
      for handle in $(ip netns exec "$NODE" nft -a list chain inet mycelium-cni pod-source |
        awk '/@pods/ {print $NF}'); do
        ip netns exec "$NODE" nft delete rule inet mycelium-cni pod-source handle "$handle"
      done ;;
    fast)
      local elements
      elements=$(ip netns exec "$NODE" nft list set inet mycelium-cni pods6 | grep -o ' \. ' | wc -l)
      [ "$elements" -ge 2 ] || { echo "fast path: $elements elements" >&2; exit 1; } ;;
  esac
}
throughput() {
  echo "pod-to-pod throughput: no table, fib-only filter, fast path ($TP_ROUNDS interleaved rounds)..."
  ip netns add "$TAG-tpa"; ip netns add "$TAG-tpb"
  : >"$DATA/tp.none"; : >"$DATA/tp.fib"; : >"$DATA/tp.fast"
  local round mode tpb modes=(none fib fast) k
  for round in $(seq "$TP_ROUNDS"); do
    for k in 0 1 2; do
      mode=${modes[$(((round + k) % 3))]}
      tp_mode "$mode"
      tpb=$(ip -n "$TAG-tpb" -6 -o addr show dev eth0 scope global | awk '{print $4}' | cut -d/ -f1)
      ip netns exec "$TAG-tpb" iperf3 -s -1 -D
      sleep 0.5
      ip netns exec "$TAG-tpa" iperf3 -6 -c "$tpb" -t "$TP_SECONDS" -J |
        python3 -c "import json,sys; print(int(json.load(sys.stdin)['end']['sum_received']['bits_per_second']/1e6))" >>"$DATA/tp.$mode"
      echo "  round $round $mode: $(tail -1 "$DATA/tp.$mode") Mbit/s"
    done
  done
}

# ADD with and without its fast path element (the test-hooks build, with
# MYCELIUM_CNI_TEST_NO_FAST_PATH for "without"), alternating, RUNS each.
fast_path_add() {
  echo "ADD with and without the fast path element ($RUNS runs each)..."
  : >"$DATA/fp.with"; : >"$DATA/fp.without"
  local i mode line
  for i in $(seq "$RUNS"); do
    for mode in with without; do
      ip netns add "$TAG-fp$mode$i"
      if [ $mode = with ]; then
        line=$(call "$HOOKS" ADD "fp$mode$i")
      else
        line=$(MYCELIUM_CNI_TEST_NO_FAST_PATH=1 call "$HOOKS" ADD "fp$mode$i")
      fi
      [ "${line##* }" = 0 ] || { echo "ADD ($mode) failed: $line" >&2; exit 1; }
      echo "$line" | cut -d' ' -f1 >>"$DATA/fp.$mode"
      call "$HOOKS" DEL "fp$mode$i" >/dev/null
      ip netns del "$TAG-fp$mode$i"
    done
  done
}

# paired MODE: the median over rounds of MODE / no table within each round
# (the rounds are seconds apart, so a machine whose load drifts over a run
# still compares like with like).
paired() {
  paste "$DATA/tp.$1" "$DATA/tp.none" |
    python3 -c "import sys,statistics; print(f'{statistics.median(int(a)/int(b) for a,b in (l.split() for l in sys.stdin)):.3f}x')"
}
filter_report() {
  echo "Pod-to-pod TCP on one node (iperf3 over IPv6, $TP_SECONDS s, $TP_ROUNDS interleaved rounds; egress overlay, so the table holds the source filter alone):"
  echo
  row "ruleset" "median Mbit/s" "of no table (medians)" "of no table (median of paired rounds)"
  row "---" "---" "---" "---"
  row "no table" "$(m tp.none)" "1.00x" "1.000x"
  row "source filter, fib rules only" "$(m tp.fib)" "$(ratio "$(m tp.fib)" "$(m tp.none)")" "$(paired fib)"
  row "source filter with the fast path" "$(m tp.fast)" "$(ratio "$(m tp.fast)" "$(m tp.none)")" "$(paired fast)"
  echo
  local pairs
  pairs=$(paste "$DATA/fp.with" "$DATA/fp.without" |
    python3 -c "import sys,statistics; print(f'{statistics.median(int(a)/int(b) for a,b in (l.split() for l in sys.stdin)):.3f}x')")
  echo "ADD with its fast path element $(m fp.with) us, without it $(m fp.without) us"
  echo "(with / without: $(ratio "$(m fp.with)" "$(m fp.without)") of the medians, $pairs the median of"
  echo "paired runs; $RUNS alternating runs each, test-hooks build)."
}

TP_ROUNDS=${TP_ROUNDS:-5}
TP_SECONDS=${TP_SECONDS:-5}
if [ "$ONLY" = filter ]; then
  throughput
  fast_path_add
  filter_report | tee "$OUT/filter.md"
  exit 0
fi
echo "start-up (VERSION, 1000 runs each)..."
CNI_COMMAND=VERSION hyperfine -N --runs 1000 --warmup 50 --export-json "$DATA/startup.json" \
  "$OURS" "$PTP" "$EMPTY" >/dev/null 2>&1
startup() { python3 -c "import json,sys; r=json.load(open('$DATA/startup.json'))['results'][$1]; print(round(r['median']*1e6))"; }

echo "ADD/DEL and time to first ping ($RUNS runs each)..."
add_del "$OURS" ours
OURS_CONF=ours-nofilter add_del "$OURS" nofilter
add_del "$PTP" ptp

throughput
fast_path_add
# TCP across the real overlay: two nodes whose Mycelium daemons (found as
# the tests find them: MYCELIUM_BIN, then PATH) peer over a veth with IPv4
# addresses, a pod on each; iperf3 pod to pod and node to node (the nodes'
# overlay addresses) through the daemons, alternating, 3 runs of 5 s each.
MYCELIUM=${MYCELIUM_BIN:-$(command -v mycelium || true)}
overlay_node() { # NAME IPV4 [PEER]
  local ns="$TAG-ov$1"
  ip -n "$ns" addr add "$2/24" dev ov0
  ip -n "$ns" link set ov0 up
  printf 'peers = []\ndisable_peer_discovery = true\n' >"$DATA/ov$1.toml"
  ip netns exec "$ns" "$MYCELIUM" --config-file "$DATA/ov$1.toml" --key-file "$DATA/ov$1.key" \
    --tun-name mycelium --disable-peer-discovery --api-addr 127.0.0.1:8989 \
    --jsonrpc-addr 127.0.0.1:8990 ${3:+--peers "tcp://$3:9651"} >"$DATA/ov$1.log" 2>&1 &
  DAEMONS+=($!)
}
overlay_ip() { # NAME: the node's overlay address, once its daemon has set it
  local i
  for i in $(seq 100); do
    ip -n "$TAG-ov$1" -6 -o addr show dev mycelium scope global 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | grep . && return
    sleep 0.1
  done
  echo "overlay node $1: no address on its TUN" >&2; exit 1
}
overlay_pod() { # NAME: ADD a pod on the node, print its address
  ip netns add "$TAG-ovp$1"
  ip netns exec "$TAG-ov$1" env CNI_COMMAND=ADD CNI_CONTAINERID="ovp$1" CNI_NETNS="/var/run/netns/$TAG-ovp$1" \
    CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni "$OURS" <"$DATA/ov.json" 2>/dev/null |
    python3 -c "import json,sys; print(json.load(sys.stdin)['ips'][0]['address'].split('/')[0])"
}
iperf() { # SERVER_NS CLIENT_NS SERVER_ADDRESS: Mbit/s, client to server, 5 s
  ip netns exec "$1" iperf3 -s -1 -D
  sleep 0.5
  ip netns exec "$2" iperf3 -6 -c "$3" -t 5 -J |
    python3 -c "import json,sys; print(int(json.load(sys.stdin)['end']['sum_received']['bits_per_second']/1e6))"
}
OVERLAY_LINE="TCP across the real overlay: not measured (no Mycelium daemon: set MYCELIUM_BIN or put mycelium on PATH)."
if [ -n "$MYCELIUM" ]; then
  echo "TCP across the real overlay (Mycelium daemons), pod to pod and node to node..."
  ip netns add "$TAG-ova"; ip netns add "$TAG-ovb"
  ip -n "$TAG-ova" link add ov0 type veth peer name ov0 netns "$TAG-ovb"
  for n in a b; do ip -n "$TAG-ov$n" link set lo up; ip -n "$TAG-ov$n" link set ov0 addrgenmode none; done
  overlay_node b 10.202.0.2
  OVB=$(overlay_ip b)
  overlay_node a 10.202.0.1 10.202.0.2
  overlay_ip a >/dev/null
  for i in $(seq 100); do # traffic asks for the route (see tests/overlay/fixture.rs)
    ip netns exec "$TAG-ova" ping -c1 -W0.2 "$OVB" >/dev/null 2>&1 && break
  done
  echo '{"cniVersion":"1.0.0","name":"bench","type":"mycelium-cni","myceliumInterface":"mycelium"}' >"$DATA/ov.json"
  POD_A=$(overlay_pod a); POD_B=$(overlay_pod b)
  ip netns exec "$TAG-ovpa" ping -c1 -W2 "$POD_B" >/dev/null
  : >"$DATA/ov.pod"; : >"$DATA/ov.node"
  for i in 1 2 3; do
    iperf "$TAG-ovpb" "$TAG-ovpa" "$POD_B" >>"$DATA/ov.pod"
    iperf "$TAG-ovb" "$TAG-ova" "$OVB" >>"$DATA/ov.node"
  done
  OVERLAY_LINE="TCP across the real overlay (two Mycelium daemons, iperf3, 5 s, median of 3): pod to pod
$(median <"$DATA/ov.pod") Mbit/s, node to node $(median <"$DATA/ov.node") Mbit/s (pod / node: $(python3 -c "print(f'{$(median <"$DATA/ov.pod")/$(median <"$DATA/ov.node"):.2f}x')"))."
fi

echo "ADD with 1, 50, 250 existing pods..."
scale "$OURS" ours
scale "$PTP" ptp

echo "bare veth create/delete (ip -batch, 100 each)..."
ip netns add "$TAG-floor"
for i in $(seq 100); do echo "link add fb$i type veth peer name fp$i netns $TAG-floor"; done >"$DATA/create.batch"
for i in $(seq 100); do echo "link del fb$i"; done >"$DATA/delete.batch"
t0=$(date +%s%N); ip -n "$NODE" -batch "$DATA/create.batch"; t1=$(date +%s%N)
ip -n "$NODE" -batch "$DATA/delete.batch"; t2=$(date +%s%N)
VETH_CREATE=$(((t1 - t0) / 100000)); VETH_DELETE=$(((t2 - t1) / 100000))

ours_size=$(stat -c %s "$OURS"); ptp_size=$(stat -c %s "$PTP"); hl_size=$(stat -c %s /usr/lib/cni/host-local)
{
  echo "Machine: $(nproc) cores, $(uname -r); medians of $RUNS runs (start-up: 1000). Times in microseconds."
  echo
  row "measure" "mycelium-cni" "ptp + host-local" "ptp / ours"
  row "---" "---" "---" "---"
  row "start-up (VERSION)" "$(startup 0)" "$(startup 1)" "$(ratio "$(startup 1)" "$(startup 0)")"
  row "ADD (source filter in place)" "$(m ours.add)" "$(m ptp.add)" "$(ratio "$(m ptp.add)" "$(m ours.add)")"
  row "ADD with sourceFilter false" "$(m nofilter.add)" "" ""
  row "DEL" "$(m ours.del)" "$(m ptp.del)" "$(ratio "$(m ptp.del)" "$(m ours.del)")"
  row "ADD start to first ping reply (pod -> node)" "$(m ours.ping)" "$(m ptp.ping)" "$(ratio "$(m ptp.ping)" "$(m ours.ping)")"
  row "ADD, 1 pod on the node" "$(m ours.scale1)" "$(m ptp.scale1)" "$(ratio "$(m ptp.scale1)" "$(m ours.scale1)")"
  row "ADD, 50 pods on the node" "$(m ours.scale50)" "$(m ptp.scale50)" "$(ratio "$(m ptp.scale50)" "$(m ours.scale50)")"
  row "ADD, 250 pods on the node" "$(m ours.scale250)" "$(m ptp.scale250)" "$(ratio "$(m ptp.scale250)" "$(m ours.scale250)")"
  row "peak RSS of ADD (KiB)" "$(m ours.rss)" "$(m ptp.rss)" "$(ratio "$(m ptp.rss)" "$(m ours.rss)")"
  row "binary size (bytes)" "$ours_size" "$ptp_size + $hl_size" "$(ratio "$((ptp_size + hl_size))" "$ours_size")"
  echo
  echo "Floors: empty static Rust binary start-up $(startup 2) us, $(stat -c %s "$EMPTY") bytes"
  echo "(mycelium-cni start-up / floor: $(ratio "$(startup 0)" "$(startup 2)")); bare veth create $VETH_CREATE us,"
  echo "delete $VETH_DELETE us (ip -batch, 100 each). Peak RSS includes the launcher's own (~0.25 MiB)."
  echo
  filter_report
  echo "$OVERLAY_LINE"
} >"$OUT/results.md"
echo
cat "$OUT/results.md"
echo
bash scripts/bench/ingress.sh "$RUNS"
