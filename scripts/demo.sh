#!/usr/bin/env bash
# Quick start, part one: install what is missing, then run `tandem demo` on a throwaway cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"
exec cargo run --release --locked -p tandem-cli -- demo "$@"
