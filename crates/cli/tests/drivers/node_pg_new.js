// A client of the new version through node-postgres, with named (server-side prepared)
// queries, choosing its version with the `options` setting as the README shows. Connection
// settings come from PGHOST, PGPORT, PGUSER and PGDATABASE; the version schema from
// TANDEM_SCHEMA. It inserts, updates and reads until its stdin closes, prints `ops N` after
// each statement that succeeded, and ends with one JSON line: ops, errors, prepared statements.
const { Client } = require('pg');

const schema = process.env.TANDEM_SCHEMA;
const first = Number(process.env.FIRST_ID);
const rows = Number(process.env.ROWS);
let stop = false;
process.stdin.on('data', () => {});
process.stdin.on('end', () => { stop = true; });

async function connect() {
  const client = new Client({
    options: `-c search_path=${schema},public`,
    application_name: 'node-pg-new',
  });
  client.on('error', () => {});
  await client.connect();
  return client;
}

async function main() {
  let ops = 0, n = 0, client = null, prepared = 0;
  const errors = [];
  while (!stop) {
    try {
      if (client === null) client = await connect();
      if (n % 3 === 0) {
        await client.query({ name: 'insert', text: 'INSERT INTO items (id, name, qty) VALUES ($1, $2, $3)',
          values: [first + n, `node ${n}`, n % 1000] });
      } else if (n % 3 === 1) {
        await client.query({ name: 'update', text: 'UPDATE items SET qty = qty + 1 WHERE id = $1',
          values: [1 + (Math.floor(first / 1000) + n) % rows] });
      } else {
        await client.query({ name: 'read', text: 'SELECT id, name, qty FROM items WHERE id = $1',
          values: [1 + n % rows] });
      }
      ops += 1;
      process.stdout.write(`ops ${ops}\n`);
    } catch (e) {
      errors.push(String(e && e.message ? e.message : e));
      if (client !== null && client._ending) client = null;
    }
    n += 1;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  if (client !== null) {
    const r = await client.query('SELECT count(*)::int AS n FROM pg_prepared_statements WHERE NOT from_sql');
    prepared = r.rows[0].n;
    await client.end();
  }
  process.stdout.write(JSON.stringify({ ops, errors, prepared }) + '\n');
}

main();
