#!/usr/bin/env bash
# Builds the static release binaries for x86_64, aarch64 and armv7 and packs
#   target/dist/mycelium-cni-linux-<arch>-v<version>.tgz (+ .sha256, .sha512)
# (<arch>: amd64, arm64, or arm for 32-bit ARMv7 with hard float), each with
# the binary, README.md, LICENSE and conf/10-mycelium.conflist; then the
# DaemonSet image for linux/amd64, linux/arm64 and linux/arm/v7 as one OCI
# archive holding the image index, target/dist/mycelium-cni-image-v<version>.tar
# (+ .sha256), built offline by podman from conf/Containerfile with storage
# of its own under a temporary directory.
# Reproducible: the same sources, toolchain and cargo home path give the same
# bytes (the binary is a plain `cargo build --release --target T`, whose flags
# are in .cargo/config.toml; our own sources are compiled under relative
# paths; tar entries sorted with fixed owner and mtime, gzip without name or
# time). The cargo home path shows in dependencies' panic locations.
# `scripts/release.sh --verify` builds everything twice in separate target
# directories and compares the archives (not the image: podman's image index
# differs between two builds of the same binaries).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
# The commit time, so that a rebuild of the same commit packs the same mtime.
EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0)
declare -A ARCH=([x86_64-unknown-linux-musl]=amd64 [aarch64-unknown-linux-musl]=arm64 [$ARMV7]=arm)

release() { # TARGET_DIR OUT_DIR
  local dir=$1 out=$2 target arch name stage
  mkdir -p "$out"
  for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl "$ARMV7"; do
    if [ "$target" = "$ARMV7" ]; then build_armv7 "$dir"; else build_static "$target" "$dir"; fi
    arch=${ARCH[$target]}
    name="mycelium-cni-linux-$arch-v$VERSION"
    stage=$(mktemp -d)
    install -m 0755 "$dir/$target/release/mycelium-cni" "$stage/mycelium-cni"
    install -m 0644 README.md LICENSE conf/10-mycelium.conflist "$stage/"
    tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$EPOCH" \
      --format=gnu -cf - mycelium-cni README.md LICENSE 10-mycelium.conflist | gzip -9 -n >"$out/$name.tgz"
    rm -rf "$stage"
    (cd "$out" && sha256sum "$name.tgz" >"$name.tgz.sha256" && sha512sum "$name.tgz" >"$name.tgz.sha512")
    echo "$out/$name.tgz: $(stat -c %s "$dir/$target/release/mycelium-cni") byte binary, sha256 $(cut -c1-16 "$out/$name.tgz.sha256")..."
  done
}

# The image index from the binaries just built (podman, offline: FROM scratch).
image() { # TARGET_DIR OUT_DIR
  local dir=$1 out=$2 work tag="localhost/mycelium-cni:$VERSION"
  local archive="$out/mycelium-cni-image-v$VERSION.tar"
  command -v podman >/dev/null || { echo "$0: the image needs podman (apt-get install podman)" >&2; exit 1; }
  work=$(mktemp -d)
  for pair in "x86_64-unknown-linux-musl linux-amd64" "aarch64-unknown-linux-musl linux-arm64" "$ARMV7 linux-armv7"; do
    read -r target platform <<<"$pair"
    install -D -m 0755 "$dir/$target/release/mycelium-cni" "$work/context/$platform/mycelium-cni"
  done
  local p=(podman --root "$work/root" --runroot "$work/run" --storage-driver vfs)
  # One platform at a time: podman 4.3 building several at once was seen to
  # label the amd64 image with arm's variant. (It warns that amd64 and arm64
  # have no TARGETVARIANT: shown on failure only.)
  for platform in linux/amd64 linux/arm64 linux/arm/v7; do
    "${p[@]}" build -q --timestamp "$EPOCH" --platform "$platform" \
      --manifest "$tag" -f conf/Containerfile "$work/context" >/dev/null 2>"$work/build.log" ||
      { cat "$work/build.log" >&2; exit 1; }
  done
  rm -f "$archive"
  "${p[@]}" manifest push -q --all "$tag" "oci-archive:$archive" >/dev/null
  "${p[@]}" rmi -a -f >/dev/null 2>&1 || true
  rm -rf "$work"
  (cd "$out" && sha256sum "$(basename "$archive")" >"$(basename "$archive").sha256")
  echo "$archive: image index for linux/amd64, linux/arm64, linux/arm/v7"
}

if [ "${1:-}" = --verify ]; then
  a=$(mktemp -d) b=$(mktemp -d)
  trap 'rm -rf "$a" "$b"' EXIT
  release "$a/target" "$a/dist"
  release "$b/target" "$b/dist"
  if diff <(cd "$a/dist" && cat ./*.tgz.sha256) <(cd "$b/dist" && cat ./*.tgz.sha256); then
    echo "reproducible: two clean builds gave identical archives"
  else
    echo "NOT reproducible" >&2
    exit 1
  fi
  exit 0
fi
release target target/dist
image target target/dist
