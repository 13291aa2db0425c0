"""A client of the new version through asyncpg with its statement cache on (the default),
choosing its version with `server_settings` as the README shows. Connection settings come
from PGHOST, PGPORT, PGUSER and PGDATABASE; the version schema from TANDEM_SCHEMA. It inserts,
updates and reads until its stdin closes, prints `ops N` after each statement that succeeded,
and ends with one JSON line: ops, errors, prepared statements."""

import asyncio
import json
import os
import sys
import threading

import asyncpg

schema = os.environ["TANDEM_SCHEMA"]
first = int(os.environ["FIRST_ID"])
rows = int(os.environ["ROWS"])
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()


async def main():
    ops, errors, n, conn, prepared = 0, [], 0, None, 0
    while not stop.is_set():
        try:
            if conn is None or conn.is_closed():
                conn = await asyncpg.connect(
                    server_settings={
                        "search_path": f"{schema},public",
                        "application_name": "asyncpg-new",
                    }
                )
            if n % 3 == 0:
                await conn.execute(
                    "INSERT INTO items (id, name, qty) VALUES ($1, $2, $3)",
                    first + n,
                    f"asyncpg {n}",
                    n % 1000,
                )
            elif n % 3 == 1:
                await conn.execute(
                    "UPDATE items SET qty = qty + 1 WHERE id = $1", 1 + (first // 1000 + n) % rows
                )
            else:
                await conn.fetch("SELECT id, name, qty FROM items WHERE id = $1", 1 + n % rows)
            ops += 1
            print(f"ops {ops}", flush=True)
        except Exception as e:  # every failure is the test's business: record it and go on
            errors.append(f"{type(e).__name__}: {e}")
        n += 1
        await asyncio.sleep(0.005)
    if conn is not None and not conn.is_closed():
        prepared = await conn.fetchval("SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql")
    print(json.dumps({"ops": ops, "errors": errors, "prepared": prepared}), flush=True)


asyncio.run(main())
