#!/usr/bin/env bash
# Runs the integration tests of the engine (lifecycle, engine, and the yielding backfill with its
# streaming standby) against other PostgreSQL major versions, whose server binaries
# scripts/fetch-pg.sh installs; extra arguments after `--` go to `cargo test`. The full suite
# runs on the machine's own PostgreSQL through scripts/test.sh.
#
#   scripts/test-matrix.sh               # 14 16 17 18
#   scripts/test-matrix.sh 14 18
#   scripts/test-matrix.sh 17 -- --nocapture
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

majors=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    majors+=("$1")
    shift
done
[ "${1:-}" = "--" ] && shift
[ ${#majors[@]} -gt 0 ] || majors=(14 16 17 18)

if ! command -v cargo >/dev/null && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
    PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

for major in "${majors[@]}"; do
    bin=$(scripts/fetch-pg.sh "$major")
    echo "test-matrix: PostgreSQL $major from $bin" >&2
    TANDEM_PG_BIN="$bin" TANDEM_PG_EXPECT_MAJOR="$major" \
        cargo test -p tandem-pg --locked --test lifecycle --test engine --test yielding "$@"
done
