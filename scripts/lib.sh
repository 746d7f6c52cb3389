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
# nft to inspect and break the source filter in its tests, containerd for
# the CRI test.
PACKAGES=(iproute2 iputils-ping curl iptables containernetworking-plugins
  podman runc busybox-static strace qemu-user-static nftables containerd)

install_packages() {
  local missing=()
  command -v python3 >/dev/null || missing+=(python3)
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    # A mirror's passing hash mismatch must not stop the install: the
    # install below fails by itself if a package really cannot be had.
    apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# The linker and code-generation flags live in .cargo/config.toml, so this
# is a plain cargo build: what anyone cross-compiling the usual way gets.
build_static() { # [TARGET [TARGET_DIR [FEATURES]]]
  local target=${1:-$TARGET} dir=${2:-target} features=${3:-}
  rustup target add "$target" >/dev/null 2>&1 || rustup target add "$target"
  cargo build --quiet --release --locked --target "$target" --target-dir "$dir" ${features:+--features "$features"}
}

# The tests' own build, with the test hooks (MYCELIUM_CNI_TEST_HASH_BITS) a
# release binary does not have, in a target directory of its own so that it
# never replaces the release binary.
HOOKS_DIR=target/hooks
HOOKS_BIN="$HOOKS_DIR/$TARGET/release/mycelium-cni"

ARMV7=armv7-unknown-linux-musleabihf
ARMV7_BIN="target/$ARMV7/release/mycelium-cni"

# The 32-bit ARM (armhf) binary. Where rustup has armv7's prebuilt standard
# library this is the same plain cargo build as the others. Where it has not
# (this project's build machines), std is built from source (rust-src,
# RUSTC_BOOTSTRAP for -Zbuild-std) and linked against Debian's armhf musl C
# runtime and libgcc, whose libgcc_eh stands in for libunwind (nothing
# unwinds with panic=abort; std only names the symbols). Nothing is written
# into the toolchain.
build_armv7() { # [TARGET_DIR]
  local dir=${1:-target}
  if rustup target add "$ARMV7" >/dev/null 2>&1; then
    cargo build --quiet --release --locked --target "$ARMV7" --target-dir "$dir"
    return
  fi
  local musl=/usr/lib/arm-linux-musleabihf gcc=/usr/lib/gcc/arm-linux-gnueabihf/12
  if [ ! -f "$musl/crt1.o" ] || [ ! -f "$gcc/libgcc_eh.a" ]; then
    dpkg --add-architecture armhf
    apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-dev:armhf libgcc-12-dev:armhf >/dev/null
  fi
  rustup component add rust-src >/dev/null 2>&1 || rustup component add rust-src
  local links="$dir/armv7-link"
  mkdir -p "$links"
  ln -sf "$gcc/libgcc_eh.a" "$links/libunwind.a"
  links=$(cd "$links" && pwd)
  RUSTC_BOOTSTRAP=1 cargo build --quiet --release --locked --target "$ARMV7" --target-dir "$dir" \
    -Zbuild-std=std,panic_abort --config "target.$ARMV7.rustflags=[
      '-C', 'link-self-contained=no', '-Zpre-link-args=$musl/crt1.o $musl/crti.o $gcc/crtbeginT.o',
      '-C', 'link-arg=-L$musl', '-C', 'link-arg=-L$gcc', '-C', 'link-arg=-L$links',
      '-C', 'link-arg=$gcc/crtend.o', '-C', 'link-arg=$musl/crtn.o', '-C', 'link-arg=-lgcc']"
}
