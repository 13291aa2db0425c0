#!/usr/bin/env bash
# Installs what building and testing tandem needs on Debian/Ubuntu: PostgreSQL's server binaries
# (the test kit starts throwaway clusters), clang and libclang (bindgen, for the pg_query crate),
# pkg-config and a C toolchain, PgBouncer (the test kit starts its own; the packaged service
# plays no part), pg_partman for Debian's PostgreSQL 15 (`postgresql-15-partman`, which the
# pg_partman test loads into a cluster of Debian's 15 whatever TANDEM_PG_BIN says), and the drivers the driver tests run: psycopg, psycopg-binary and asyncpg from
# PyPI in .venv-drivers, node-postgres (`pg`) from npm in .node-drivers. Idempotent: installs
# only what is missing, and runs `apt-get update` only when there is something to install. Run
# as root or with sudo available.
set -euo pipefail

log() { echo "install-deps: $*"; }
die() { echo "install-deps: $*" >&2; exit 1; }

has_server_binaries() { [ -f "$1/initdb" ] && [ -f "$1/postgres" ]; }

# Mirrors tandem_cluster::discover_bin_dir, so PostgreSQL is installed exactly when the test
# kit would not find it.
find_pg_bin_dir() {
    local dir real
    if [ -n "${TANDEM_PG_BIN:-}" ]; then
        has_server_binaries "$TANDEM_PG_BIN" && echo "$TANDEM_PG_BIN"
        return
    fi
    if dir=$(pg_config --bindir 2>/dev/null) && has_server_binaries "$dir"; then
        echo "$dir"
        return
    fi
    for dir in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV); do
        if has_server_binaries "$dir"; then
            echo "$dir"
            return
        fi
    done
    if dir=$(command -v initdb); then
        # /usr/bin/initdb is often a link into the versioned directory.
        real=$(dirname "$(readlink -f "$dir")")
        for dir in "$real" "$(dirname "$dir")"; do
            if has_server_binaries "$dir"; then
                echo "$dir"
                return
            fi
        done
    fi
    return 1
}

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

if [ -n "${TANDEM_PG_BIN:-}" ] && ! has_server_binaries "$TANDEM_PG_BIN"; then
    # Installing a package would not change where TANDEM_PG_BIN points.
    die "TANDEM_PG_BIN=$TANDEM_PG_BIN has no initdb and postgres; fix or unset it"
fi

if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
    if pg_bin=$(find_pg_bin_dir); then
        log "PostgreSQL server binaries: $pg_bin"
    else
        log "PostgreSQL server binaries not found; install PostgreSQL or set TANDEM_PG_BIN"
    fi
    die "not Debian/Ubuntu (no apt-get): install PostgreSQL, clang, libclang, pkg-config and a C toolchain yourself"
fi

missing=()
if pg_bin=$(find_pg_bin_dir); then
    log "PostgreSQL server binaries: $pg_bin"
else
    missing+=(postgresql)
fi
# Debian builds pg_partman for its own PostgreSQL 15 only; the package pulls in that server too.
for package in libclang-dev clang pkg-config build-essential pgbouncer postgresql-15-partman; do
    installed "$package" || missing+=("$package")
done
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The drivers go into the repository (git ignores both directories), never system-wide.
install_drivers() {
    local venv="$root/.venv-drivers" node="$root/.node-drivers"
    if ! "$venv/bin/python" -c 'import psycopg, psycopg_binary, asyncpg' 2>/dev/null; then
        log "installing psycopg, psycopg-binary and asyncpg into $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check psycopg psycopg-binary asyncpg
    fi
    if [ ! -f "$node/node_modules/pg/package.json" ]; then
        log "installing pg (node-postgres) into $node"
        mkdir -p "$node"
        npm install --silent --no-audit --no-fund --prefix "$node" pg
    fi
}

if [ ${#missing[@]} -eq 0 ]; then
    install_drivers
    log "nothing else to install"
    exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "need root or sudo to install: ${missing[*]}"
    sudo=(sudo)
fi

log "installing: ${missing[*]}"
log "running apt-get update"
${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update -qq
${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"

if pg_bin=$(find_pg_bin_dir); then
    log "PostgreSQL server binaries: $pg_bin"
else
    die "PostgreSQL server binaries still not found after installing; set TANDEM_PG_BIN"
fi
install_drivers
log "done"
