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

echo "== static build ($TARGET)"
build_static
echo "$BIN: $(stat -c %s "$BIN") bytes"

echo "== unit and integration tests"
MYCELIUM_CNI_BIN="$PWD/$BIN" cargo test --locked
