"""A client of the old version through psycopg 3, every statement prepared server-side
(prepare_threshold=0), choosing its version with libpq's `options` as the README shows.
Connection settings come from PGHOST, PGPORT, PGUSER and PGDATABASE; the version schema from
TANDEM_SCHEMA. It inserts, updates and reads until its stdin closes, prints `ops N` after each
statement that succeeded, and ends with one JSON line: ops, errors, prepared statements."""

import json
import os
import sys
import threading
import time

import psycopg

schema = os.environ["TANDEM_SCHEMA"]
first = int(os.environ["FIRST_ID"])
rows = int(os.environ["ROWS"])
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()


def connect():
    return psycopg.connect(
        options=f"-c search_path={schema},public",
        prepare_threshold=0,
        autocommit=True,
        application_name="psycopg-old",
    )


ops, errors, n, conn, prepared = 0, [], 0, None, 0
while not stop.is_set():
    try:
        if conn is None or conn.closed:
            conn = connect()
        if n % 3 == 0:
            conn.execute(
                "INSERT INTO items (id, name, qty) VALUES (%s, %s, %s)",
                (first + n, f"psycopg {n}", n % 1000),
            )
        elif n % 3 == 1:
            conn.execute(
                "UPDATE items SET qty = qty + 1 WHERE id = %s", (1 + (first // 1000 + n) % rows,)
            )
        else:
            conn.execute("SELECT id, name, qty FROM items WHERE id = %s", (1 + n % rows,)).fetchall()
        ops += 1
        print(f"ops {ops}", flush=True)
    except Exception as e:  # every failure is the test's business: record it and go on
        errors.append(f"{type(e).__name__}: {e}")
    n += 1
    time.sleep(0.005)
if conn is not None and not conn.closed:
    prepared = conn.execute(
        "SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql", prepare=False
    ).fetchone()[0]
print(json.dumps({"ops": ops, "errors": errors, "prepared": prepared}), flush=True)
