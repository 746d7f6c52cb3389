#!/usr/bin/env bash
# Fuzzes the two parsers that take outside input, with the seed corpus in
# tests/corpus: the config/env path (stdin JSON, CNI_ARGS, prevResult) and the
# netlink reply walker. A proptest-style loop of seeded mutations (stable Rust
# has no libFuzzer here); every run prints the seed it used.
#
#   scripts/fuzz.sh [ITERATIONS]   default 2,000,000 per target (~1 min)
#   scripts/fuzz.sh capture        re-record tests/corpus/netlink from a real
#                                  ADD/CHECK/GC/DEL in scratch namespaces (root)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

capture() {
  need_root
  build_static
  local tag="mcfuzz$$" out=tests/corpus/netlink conf prev
  trap "ip netns del $tag-n 2>/dev/null; ip netns del $tag-p 2>/dev/null" EXIT
  ip netns add "$tag-n"; ip netns add "$tag-p"
  ip -n "$tag-n" tuntap add dev mctun0 mode tun
  ip -n "$tag-n" link set mctun0 mtu 1400 up
  ip -n "$tag-n" -6 addr add 5fd:a395:1a8d:501d::1/7 dev mctun0
  conf='{"cniVersion":"1.1.0","name":"fuzz","myceliumInterface":"mctun0"'
  run() { # COMMAND STDIN
    echo "$2" | ip netns exec "$tag-n" env CNI_COMMAND="$1" CNI_CONTAINERID=c1 \
      CNI_NETNS="/var/run/netns/$tag-p" CNI_IFNAME=eth0 \
      strace -o "/tmp/$tag.$1" -e trace=recvfrom -e read=all "$PWD/$BIN"
  }
  prev=$(run ADD "$conf}")
  run CHECK "$conf,\"prevResult\":$prev}" >/dev/null
  run GC "$conf,\"cni.dev/valid-attachments\":[{\"containerID\":\"c1\",\"ifname\":\"eth0\"}]}" >/dev/null
  run DEL "$conf}" >/dev/null
  rm -f "$out"/*.hex
  python3 - "$out" /tmp/"$tag".{ADD,CHECK,GC,DEL} <<'PY'
import re, sys
out, n = sys.argv[1], 0
for trace in sys.argv[2:]:
    datagrams, current = [], None
    for line in open(trace):
        if line.startswith("recvfrom("):
            current = []
            datagrams.append(current)
        elif line.startswith(" | ") and current is not None:
            current.extend(re.findall(r"\b[0-9a-f]{2}\b", line[10:59]))
    for datagram in datagrams:
        if datagram:
            open(f"{out}/{n:03d}.hex", "w").write(" ".join(datagram) + "\n")
            n += 1
print(f"recorded {n} datagrams")
PY
  rm -f /tmp/"$tag".*
}

if [ "${1:-}" = capture ]; then
  capture
  exit 0
fi
# Optimised, but with overflow checks and debug assertions kept: an
# arithmetic overflow on hostile input is a bug to find, not to wrap.
export CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true
FUZZ_ITERATIONS=${1:-2000000} FUZZ_SEED=${FUZZ_SEED:-$(date +%s)} \
  cargo test --release --bins fuzz -- --nocapture --test-threads 2
