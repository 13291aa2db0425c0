// Connects with the URL in argv[2] through node-postgres, passing nothing else, and prints
// `first schema of search_path|application_name`.
const { Client } = require('pg');

(async () => {
  const client = new Client({ connectionString: process.argv[2] });
  await client.connect();
  try {
    const r = await client.query(
      "SELECT (current_schemas(false))[1] AS s, current_setting('application_name') AS a");
    console.log(`${r.rows[0].s}|${r.rows[0].a}`);
  } finally {
    await client.end();
  }
})().catch((e) => { console.error(e.message); process.exit(1); });
