//! The database the benchmark works in: its own schema (`tandem_bench`), its own state schema,
//! and the `bench` table, rebuilt fresh for every measurement so no run inherits another's bloat,
//! statistics or migration state.

use crate::error::{self, Result};
use std::time::{Duration, Instant};
use tandem_model::{qualified, quote_ident, Migration};
use tandem_pg::backfill::BackfillOptions;
use tandem_pg::{ConnectOptions, Engine, EngineOptions};

/// The schema holding the benchmark's table. Everything named `tandem_bench` or starting with
/// `tandem_bench_` is dropped and recreated by the benchmark.
pub const SCHEMA: &str = "tandem_bench";
/// tandem's state tables for the benchmark's migrations.
pub const STATE_SCHEMA: &str = "tandem_bench_state";
/// The table every scenario measures.
pub const TABLE: &str = "bench";

/// A session on the benchmark's database, and what it needs to open more.
pub(crate) struct Fixture {
    pub client: postgres::Client,
    /// How other sessions (clients, pgbench, a long transaction) reach the same database.
    pub connect: ConnectOptions,
    /// A libpq connection string for programs (pgbench).
    pub url: Option<String>,
    pub backfill: BackfillOptions,
}

impl Fixture {
    pub fn new(connect: ConnectOptions, backfill: BackfillOptions) -> Result<Fixture> {
        let client = tandem_pg::connect(&connect)?;
        Ok(Fixture {
            client,
            url: connect.url.clone(),
            connect,
            backfill,
        })
    }

    pub fn table() -> String {
        qualified(SCHEMA, TABLE)
    }

    pub fn engine_options(&self) -> EngineOptions {
        EngineOptions {
            schema: SCHEMA.into(),
            state_schema: STATE_SCHEMA.into(),
            backfill: self.backfill,
            connect: Some(self.connect.clone()),
            ..EngineOptions::default()
        }
    }

    /// Runs `f` with these backfill options in place of the fixture's, which it then restores.
    pub fn with_backfill<T>(
        &mut self,
        backfill: BackfillOptions,
        f: impl FnOnce(&mut Fixture) -> T,
    ) -> T {
        let saved = std::mem::replace(&mut self.backfill, backfill);
        let result = f(self);
        self.backfill = saved;
        result
    }

    pub fn engine(&mut self) -> Engine<'_> {
        let opts = self.engine_options();
        Engine::new(&mut self.client, opts)
    }

    /// Drops the benchmark's schemas (the table, tandem's state, version schemas) and creates
    /// them empty.
    pub fn reset(&mut self) -> Result<()> {
        let schemas: Vec<String> = self
            .client
            .query(
                "SELECT nspname FROM pg_namespace WHERE nspname = $1 OR starts_with(nspname, $1 || '_')",
                &[&SCHEMA],
            )
            .map_err(error::sql("listing the benchmark's schemas"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for s in schemas {
            self.execute(&format!("DROP SCHEMA {} CASCADE", quote_ident(&s)))?;
        }
        self.execute(&format!("CREATE SCHEMA {}", quote_ident(SCHEMA)))?;
        self.engine().init()?;
        Ok(())
    }

    /// A fresh `bench` table of `rows` rows, VACUUMed and ANALYZEd, with autovacuum off for it so
    /// that it neither competes with a measurement nor holds a lock the benchmark's own DDL waits
    /// for. `e` is nullable but filled, so that NOT NULL can be added to it.
    pub fn build(&mut self, rows: u64) -> Result<()> {
        self.reset()?;
        let table = Self::table();
        self.execute(&format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, a int NOT NULL, b text NOT NULL, d int NOT NULL, e int)
                 WITH (autovacuum_enabled = off);
             INSERT INTO {table} SELECT g, g % 1000, md5(g::text), 0, g % 7 FROM generate_series(1, {rows}) g;"
        ))?;
        self.vacuum()
    }

    /// VACUUM cannot share a query string with other statements (they would make it a
    /// transaction block), so it runs alone.
    pub fn vacuum(&mut self) -> Result<()> {
        self.execute(&format!("VACUUM ANALYZE {}", Self::table()))
    }

    pub fn execute(&mut self, sql: &str) -> Result<()> {
        self.client.batch_execute(sql).map_err(error::sql(sql))
    }

    /// How long `sql` took.
    pub fn timed(&mut self, sql: &str) -> Result<Duration> {
        let t = Instant::now();
        self.execute(sql)?;
        Ok(t.elapsed())
    }

    /// Removes what the benchmark created.
    pub fn clean_up(&mut self) -> Result<()> {
        self.reset()?;
        self.execute(&format!(
            "DROP SCHEMA {} CASCADE; DROP SCHEMA IF EXISTS {} CASCADE",
            quote_ident(SCHEMA),
            quote_ident(STATE_SCHEMA)
        ))
    }

    /// The server's version, e.g. `15.8`.
    pub fn server_version(&mut self) -> Result<String> {
        Ok(self
            .client
            .query_one("SELECT current_setting('server_version')", &[])
            .map_err(error::sql("reading the server version"))?
            .get(0))
    }
}

/// Parses one of the benchmark's migrations, written in YAML with `{table}` for the table.
pub(crate) fn migration(name: &str, yaml: &str) -> Result<Migration> {
    let text = yaml.replace("{table}", TABLE);
    Ok(Migration::parse(
        &text,
        tandem_model::migration::Format::Yaml,
        &format!("{name}.yaml"),
        name,
    )?)
}
