#!/usr/bin/env bash
# Runs the integration suite on other PostgreSQL major versions, whose server binaries
# scripts/fetch-pg.sh installs (TANDEM_PG_BIN points at each). By default every test of the
# workspace runs (`cargo test --workspace --tests`); with --quick only the engine's lifecycle,
# engine and yielding-backfill tests. Extra arguments after `--` go to `cargo test`. `system` stands for the machine's
# own PostgreSQL (what the test kit finds without TANDEM_PG_BIN). TANDEM_TEST_ROLE=least runs the
# tests as a least-privileged role (see crates/testkit). Each run's duration is printed.
#
#   scripts/test-matrix.sh                      # 14 16 17 18, every test
#   scripts/test-matrix.sh 14 18
#   scripts/test-matrix.sh --quick 16 17
#   TANDEM_TEST_ROLE=least scripts/test-matrix.sh system 18
#   scripts/test-matrix.sh 17 -- --nocapture
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

quick=false
majors=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    case "$1" in
    --quick) quick=true ;;
    *) majors+=("$1") ;;
    esac
    shift
done
[ "${1:-}" = "--" ] && shift
[ ${#majors[@]} -gt 0 ] || majors=(14 16 17 18)

if ! command -v cargo >/dev/null && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
    PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

if $quick; then
    tests=(-p tandem-pg --test lifecycle --test engine --test yielding)
else
    tests=(--workspace --tests)
fi
role="${TANDEM_TEST_ROLE:-superuser}"

for major in "${majors[@]}"; do
    if [ "$major" = system ]; then
        env=(env -u TANDEM_PG_BIN -u TANDEM_PG_EXPECT_MAJOR)
        label="the machine's PostgreSQL"
    else
        bin=$(scripts/fetch-pg.sh "$major")
        env=(env TANDEM_PG_BIN="$bin" TANDEM_PG_EXPECT_MAJOR="$major")
        label="PostgreSQL $major from $bin"
    fi
    echo "test-matrix: $label, as $role" >&2
    started=$SECONDS
    "${env[@]}" cargo test --locked "${tests[@]}" "$@"
    echo "test-matrix: $label, as $role: passed in $((SECONDS - started)) s" >&2
done
