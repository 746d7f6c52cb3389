#!/usr/bin/env bash
# Installs (or removes) mycelium-cni on this node: the binary into the CNI bin
# directory, then the conflist into the CNI config directory, each written to
# a temporary name and renamed into place, the conflist last. The work is done
# by the binary itself (`mycelium-cni install`), as in the DaemonSet.
#
#   scripts/install.sh [--k3s] [--root DIR] [--binary PATH] [--interface NAME]
#                      [--service-cidr CIDR]... [--overlay-ingress open|replies]
#                      [--overlay-allow CIDR]... [--egress nat|overlay]
#                      [--ipv4-pool CIDR] [--no-portmap] [--no-bandwidth]
#                      [--uninstall]
#
# The conflist chains loopback, mycelium-cni, then portmap and bandwidth when
# their binaries are in the bin directory (--no-portmap, --no-bandwidth leave
# them out); the binary's report says which it left out and why.
#
#   --k3s       k3s's directories: /var/lib/rancher/k3s/data/cni and
#               /var/lib/rancher/k3s/agent/etc/cni/net.d
#   --root DIR  install under DIR instead of / (for packaging and tests);
#               --uninstall then leaves the node's source filter table alone
#   --binary    the mycelium-cni binary to install (default: build it)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

root="" binary="" uninstall=0 k3s=0 extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --k3s) k3s=1 ;;
    --root) root=${2%/}; shift ;;
    --binary) binary=$2; shift ;;
    --interface|--service-cidr|--overlay-ingress|--overlay-allow|--egress|--ipv4-pool) extra+=("$1" "$2"); shift ;;
    --no-portmap|--no-bandwidth) extra+=("$1") ;;
    --uninstall) uninstall=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' scripts/install.sh | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "$0: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

if [ "$k3s" = 1 ]; then
  bin_dir="$root/var/lib/rancher/k3s/data/cni"
  conf_dir="$root/var/lib/rancher/k3s/agent/etc/cni/net.d"
else
  bin_dir="$root/opt/cni/bin"
  conf_dir="$root/etc/cni/net.d"
fi
if [ -z "$binary" ]; then
  binary=$BIN
  [ -x "$binary" ] || build_static
fi

if [ "$uninstall" = 1 ]; then
  # Under --root the files are not this node's: leave its source filter.
  keep=()
  [ -n "$root" ] && keep=(--keep-filter)
  exec "$binary" uninstall --bin-dir "$bin_dir" --conf-dir "$conf_dir" "${keep[@]}"
fi
exec "$binary" install --bin-dir "$bin_dir" --conf-dir "$conf_dir" "${extra[@]}"
