# Shared by the scripts: root check, installs, and the static build.
# shellcheck shell=bash

TARGET=x86_64-unknown-linux-musl
BIN="target/$TARGET/release/mycelium-cni"

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "$0: needs root (it creates network namespaces)" >&2
    exit 1
  fi
}

# Debian packages the tests and the demo use, installed when missing:
# iproute2 and ping for the namespaces, the reference plugins for chaining,
# podman (CNI backend) with runc and busybox-static for the runtime test,
# nft to inspect and break the source filter in its tests.
PACKAGES=(iproute2 iputils-ping curl iptables containernetworking-plugins
  podman runc busybox-static strace qemu-user-static nftables)

install_packages() {
  local missing=()
  command -v python3 >/dev/null || missing+=(python3)
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# The linker and code-generation flags live in .cargo/config.toml, so this
# is a plain cargo build: what anyone cross-compiling the usual way gets.
build_static() { # [TARGET [TARGET_DIR]]
  local target=${1:-$TARGET} dir=${2:-target}
  rustup target add "$target" >/dev/null 2>&1 || rustup target add "$target"
  cargo build --quiet --release --locked --target "$target" --target-dir "$dir"
}
