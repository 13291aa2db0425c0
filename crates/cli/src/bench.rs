//! `tandem bench-backfill` (hidden): on a throwaway cluster, measures the backfill against one
//! plain `UPDATE` of the same expression, the cost of the dual-write trigger on a bulk `UPDATE`,
//! and the backfill's rows/s at a small and a large size. It prints figures; it asserts nothing.
//! Every measurement starts from a freshly built table that has been VACUUMed and ANALYZEd;
//! autovacuum is off for it, so it neither competes with a measurement nor holds a lock the
//! benchmark's own ALTER TABLE waits for.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Instant;
use tandem_model::migration::Format;
use tandem_model::Migration;
use tandem_pg::backfill::BackfillOptions;
use tandem_pg::cluster::{Cluster, ClusterOptions};
use tandem_pg::{ConnectOptions, Engine, EngineOptions, Event};

/// The computed column: what `up` and the plain UPDATE both evaluate.
const EXPRESSION: &str = "upper(b) || '-' || a";

const ADD: &str = "operations:
  - add_column:
      table: bench
      up: \"upper(b) || '-' || a\"
      column: {name: c, type: text, nullable: true}
";

pub struct Options {
    pub rows: i64,
    pub small_rows: i64,
    pub overhead_rows: i64,
    pub repeat: usize,
    pub pg_bin: Option<PathBuf>,
    pub backfill: BackfillOptions,
}

fn say(json: bool, s: &str) {
    if !json {
        eprintln!("{s}");
    }
}

pub fn run(opts: Options, json: bool) -> Result<()> {
    let cluster = Cluster::start(ClusterOptions {
        bin_dir: opts.pg_bin.clone(),
        ..ClusterOptions::default()
    })?;
    cluster.create_database("tandem_bench")?;
    let url = cluster.url("tandem_bench");
    let mut client = tandem_pg::connect(&ConnectOptions {
        url: Some(url),
        ..ConnectOptions::default()
    })?;
    Engine::new(&mut client, EngineOptions::default()).init()?;
    let migration = Migration::parse(ADD, Format::Yaml, "bench_add.yaml", "bench_add")?;
    say(
        json,
        &format!(
            "PostgreSQL {} (fsync and synchronous_commit off, as for tests); each run starts from a freshly built table, VACUUMed and ANALYZEd, with autovacuum off for it",
            cluster.major_version()
        ),
    );
    let mut bench = Bench {
        client: &mut client,
        migration,
        backfill: opts.backfill,
        json,
    };
    let mut sizes = vec![opts.small_rows];
    if opts.rows != opts.small_rows {
        sizes.push(opts.rows);
    }
    let mut results = Vec::new();
    for &n in &sizes {
        // Alternating, so drift in the machine's load hits both alike; medians are compared.
        let (mut plains, mut tandems) = (Vec::new(), Vec::new());
        for _ in 0..opts.repeat.max(1) {
            plains.push(bench.plain_update(n)?);
            tandems.push(bench.tandem_backfill(n)?);
        }
        let (plain, tandem) = (median(&mut plains), median(&mut tandems));
        say(
            json,
            &format!(
                "{n} rows: backfill {tandem:.0} rows/s, plain UPDATE {plain:.0} rows/s (medians of {}; runs: backfill {}, plain {}), ratio {:.2} (target >= 0.8)",
                plains.len(),
                list(&tandems),
                list(&plains),
                tandem / plain
            ),
        );
        results.push(serde_json::json!({
            "rows": n, "backfill_rows_per_s": tandem.round(), "plain_update_rows_per_s": plain.round(),
            "ratio": round2(tandem / plain), "backfill_runs": tandems, "plain_update_runs": plains,
        }));
    }
    let largest = *sizes.last().expect("a size");
    let overhead = bench.trigger_overhead(opts.overhead_rows)?;
    let small_rate = results[0]["backfill_rows_per_s"].as_f64().unwrap_or(0.0);
    let large_rate = results[results.len() - 1]["backfill_rows_per_s"]
        .as_f64()
        .unwrap_or(0.0);
    let scaling = large_rate / small_rate;
    say(
        json,
        &format!(
            "backfill rows/s at {largest} rows ÷ at {} rows: {scaling:.2} (target: within 10%, 0.90..1.10)",
            sizes[0]
        ),
    );
    if json {
        println!(
            "{}",
            serde_json::json!({
                "pg_major": cluster.major_version(),
                "sizes": results,
                "trigger_overhead": overhead,
                "scaling_large_over_small": round2(scaling),
            })
        );
    }
    Ok(())
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn list(xs: &[f64]) -> String {
    xs.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

struct Bench<'c> {
    client: &'c mut postgres::Client,
    migration: Migration,
    backfill: BackfillOptions,
    json: bool,
}

impl Bench<'_> {
    /// A fresh `bench` table of `n` rows, VACUUMed and ANALYZEd.
    fn build(&mut self, n: i64) -> Result<()> {
        self.client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS public.bench;
                 CREATE TABLE public.bench (id bigint PRIMARY KEY, a int NOT NULL, b text NOT NULL, d int NOT NULL)
                     WITH (autovacuum_enabled = off);
                 INSERT INTO public.bench SELECT g, g % 1000, md5(g::text), 0 FROM generate_series(1, {n}) g;"
            ))
            .context("building the bench table")?;
        self.vacuum()
    }

    /// VACUUM cannot share a query string with other statements (they would make it a
    /// transaction block), so it runs alone.
    fn vacuum(&mut self) -> Result<()> {
        self.client
            .batch_execute("VACUUM ANALYZE public.bench")
            .context("vacuuming the bench table")?;
        Ok(())
    }

    fn timed(&mut self, sql: &str) -> Result<f64> {
        let t = Instant::now();
        self.client
            .batch_execute(sql)
            .with_context(|| sql.to_string())?;
        Ok(t.elapsed().as_secs_f64())
    }

    /// Rows/s of one `UPDATE bench SET c = <expression>` over the whole table.
    fn plain_update(&mut self, n: i64) -> Result<f64> {
        self.build(n)?;
        self.client
            .batch_execute("ALTER TABLE public.bench ADD COLUMN c text")?;
        self.vacuum()?;
        let secs = self.timed(&format!("UPDATE public.bench SET c = {EXPRESSION}"))?;
        Ok(n as f64 / secs)
    }

    /// Rows/s of tandem's backfill of the same expression (from the backfill's own figure,
    /// which covers its first batch to its last), then a rollback.
    fn tandem_backfill(&mut self, n: i64) -> Result<f64> {
        self.build(n)?;
        let rate = self.start()?;
        Engine::new(self.client, EngineOptions::default()).rollback(&tandem_pg::events::ignore)?;
        Ok(rate)
    }

    fn start(&mut self) -> Result<f64> {
        let rate = std::sync::Mutex::new(0.0);
        let batches = std::sync::Mutex::new(0u64);
        let on_event = |e: &Event| {
            if let Event::Backfill {
                rows_per_second,
                done,
                ..
            } = e
            {
                *batches.lock().unwrap() += 1;
                if *done {
                    *rate.lock().unwrap() = *rows_per_second as f64;
                }
            }
        };
        let opts = EngineOptions {
            backfill: self.backfill,
            ..EngineOptions::default()
        };
        Engine::new(self.client, opts).start(&self.migration, &on_event)?;
        say(
            self.json,
            &format!("  (backfill took {} batches)", batches.lock().unwrap()),
        );
        let rate = *rate.lock().unwrap();
        Ok(rate)
    }

    /// A bulk UPDATE of every row with the dual-write trigger enabled ÷ with it disabled, on the
    /// same table in the middle of a migration, updating the column `up` reads (`a`) and an
    /// unrelated one (`d`). VACUUM runs before each UPDATE.
    fn trigger_overhead(&mut self, n: i64) -> Result<serde_json::Value> {
        self.build(n)?;
        self.start()?;
        let trigger = tandem_plan::trigger::trigger_name("bench");
        let mut out = serde_json::Map::new();
        for column in ["a", "d"] {
            let mut times = [0.0f64; 2];
            // Two rounds, alternating, so drift in the machine's load hits both alike.
            for _ in 0..2 {
                for (i, enable) in [false, true].into_iter().enumerate() {
                    self.client.batch_execute(&format!(
                        "ALTER TABLE public.bench {} TRIGGER {}",
                        if enable { "ENABLE" } else { "DISABLE" },
                        tandem_model::quote_ident(&trigger)
                    ))?;
                    self.vacuum()?;
                    times[i] +=
                        self.timed(&format!("UPDATE public.bench SET {column} = {column} + 1"))?;
                }
            }
            let ratio = times[1] / times[0];
            say(
                self.json,
                &format!(
                    "{n} rows, UPDATE of {column} ({}): with trigger {:.2} s, without {:.2} s (mean of 2), ratio {ratio:.2} (target <= 1.2)",
                    if column == "a" { "read by up" } else { "unrelated" },
                    times[1] / 2.0,
                    times[0] / 2.0
                ),
            );
            out.insert(
                column.to_string(),
                serde_json::json!({"with_s": round2(times[1] / 2.0), "without_s": round2(times[0] / 2.0), "ratio": round2(ratio)}),
            );
        }
        Engine::new(self.client, EngineOptions::default()).rollback(&tandem_pg::events::ignore)?;
        Ok(serde_json::Value::Object(out))
    }
}
