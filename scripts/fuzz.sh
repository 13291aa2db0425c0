#!/usr/bin/env bash
# Fuzzes the migration-file reader and validator (fuzz/fuzz_targets/migration.rs) with cargo-fuzz
# on the nightly toolchain, starting from the checked-in corpus in fuzz/corpus/migration (seeded
# from pgroll's examples and examples/). New inputs that reach new code are added to the corpus;
# a crash is saved under fuzz/artifacts/migration/ and stops the run.
#
#   scripts/fuzz.sh              # runs for 10 minutes
#   scripts/fuzz.sh 3600         # runs for an hour
#   scripts/fuzz.sh 600 -jobs=2  # extra arguments go to libFuzzer
#
# Needs `rustup toolchain install nightly` and `cargo install cargo-fuzz`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-600}"
[ $# -gt 0 ] && shift
case "$seconds" in
'' | *[!0-9]*)
    echo "usage: scripts/fuzz.sh [SECONDS] [LIBFUZZER-ARGS...]" >&2
    exit 2
    ;;
esac
if ! command -v cargo >/dev/null && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
    PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
command -v cargo-fuzz >/dev/null || {
    echo "fuzz.sh: cargo-fuzz not found; install it with \`cargo install cargo-fuzz\`" >&2
    exit 1
}
rustup run nightly rustc --version >/dev/null 2>&1 || {
    echo "fuzz.sh: no nightly toolchain; install it with \`rustup toolchain install nightly\`" >&2
    exit 1
}

cd fuzz
exec cargo +nightly fuzz run migration corpus/migration -- \
    -max_total_time="$seconds" -max_len=16384 -timeout=10 -print_final_stats=1 "$@"
