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
# podman (CNI backend) with runc and busybox-static for the runtime test.
PACKAGES=(iproute2 iputils-ping curl iptables containernetworking-plugins
  podman runc busybox-static strace qemu-user-static)

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

# Static, and not position-independent: a static-pie binary relocates itself
# at every start (measured: 148 us vs 132 us for VERSION, and 8.7 KB more).
# Linked by rust-lld with identical code folding (--icf=all: 8 KB less) and
# without .eh_frame_hdr (14-16 KB): with panic=abort nothing unwinds, and the
# only user, RUST_BACKTRACE on a stripped binary, printed bare addresses.
# Paths are remapped so that the bytes do not depend on where the tree or the
# cargo home lies (reproducible releases).
RUSTFLAGS_STATIC="-C relocation-model=static -C link-arg=--icf=all -C link-arg=--no-eh-frame-hdr --remap-path-prefix=$PWD=/src --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="$RUSTFLAGS_STATIC"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="$RUSTFLAGS_STATIC"
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld

build_static() { # [TARGET [TARGET_DIR]]
  local target=${1:-$TARGET} dir=${2:-target}
  rustup target add "$target" >/dev/null 2>&1 || rustup target add "$target"
  cargo build --quiet --release --locked --target "$target" --target-dir "$dir"
}
