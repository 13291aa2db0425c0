#!/usr/bin/env bash
# Installs missing system packages, then runs every test in the workspace; extra arguments go to
# `cargo test` (`scripts/test.sh -p tandem-pg`, `scripts/test.sh -- --nocapture`). cargo test, not
# nextest: the test kit shares one PostgreSQL cluster per test binary, and nextest's process per
# test would start a cluster for every test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh

if ! command -v cargo >/dev/null && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
    PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
command -v cargo >/dev/null || {
    echo "test.sh: cargo not found; install Rust from https://rustup.rs" >&2
    exit 1
}

exec cargo test --workspace --locked "$@"
