"""Connects with the URL in argv[2] through the driver named in argv[1] (psycopg or asyncpg),
passing nothing else, and prints `first schema of search_path|application_name`."""

import asyncio
import sys

QUERY = "SELECT (current_schemas(false))[1], current_setting('application_name')"


async def with_asyncpg(url):
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(QUERY)
        return f"{row[0]}|{row[1]}"
    finally:
        await conn.close()


def with_psycopg(url):
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(QUERY).fetchone()
        return f"{row[0]}|{row[1]}"


driver, url = sys.argv[1], sys.argv[2]
print(with_psycopg(url) if driver == "psycopg" else asyncio.run(with_asyncpg(url)))
