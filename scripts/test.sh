#!/usr/bin/env bash
# Runs every test: formatting and lints, unit tests, and the root
# integration tests against the static release binary. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
install_packages
rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== format and lints"
cargo fmt --check
cargo clippy --quiet --locked --all-targets -- -D warnings
cargo clippy --quiet --locked --all-targets --features test-hooks -- -D warnings

echo "== static builds (x86_64, aarch64, armv7)"
build_static
build_static aarch64-unknown-linux-musl
build_armv7
ARM_BIN=target/aarch64-unknown-linux-musl/release/mycelium-cni
for binary in "$BIN" "$ARM_BIN" "$ARMV7_BIN"; do echo "$binary: $(stat -c %s "$binary") bytes"; done

echo "== the tests' build with test hooks ($HOOKS_DIR, never released)"
build_static "$TARGET" "$HOOKS_DIR" test-hooks

echo "== release archives (target/dist)"
bash scripts/release.sh >/dev/null

echo "== Kubernetes schema validator and the CRI test's gRPC client (target/venv)"
[ -x target/venv/bin/python ] || python3 -m venv target/venv
[ -x target/venv/bin/kubernetes-validate ] || target/venv/bin/pip install --quiet kubernetes-validate
target/venv/bin/python -c 'import grpc, grpc_tools' 2>/dev/null ||
  target/venv/bin/pip install --quiet grpcio==1.85.3 grpcio-tools==1.85.1

echo "== unit and integration tests"
MYCELIUM_CNI_BIN="$PWD/$BIN" MYCELIUM_CNI_HOOKS_BIN="$PWD/$HOOKS_BIN" MYCELIUM_CNI_AARCH64_BIN="$PWD/$ARM_BIN" MYCELIUM_CNI_ARMV7_BIN="$PWD/$ARMV7_BIN" \
  MYCELIUM_CNI_K8S_VALIDATE="$PWD/target/venv/bin/kubernetes-validate" MYCELIUM_CNI_PYTHON="$PWD/target/venv/bin/python" \
  MYCELIUM_CNI_DIST="$PWD/target/dist" cargo test --locked
