//! Scenario 2: what the dual-write triggers cost the application's writes. The same table, in
//! the middle of a migration (started, backfilled, active), is written with the triggers
//! enabled and with them disabled (`ALTER TABLE … DISABLE TRIGGER USER`), alternately, so drift
//! in the machine's load hits both alike: a bulk `UPDATE` of every row, and a single-row OLTP
//! mix run by pgbench or by a built-in generator.

use crate::error::{self, Error, Result};
use crate::fixture::{Fixture, SCHEMA};
use crate::{median, Progress};
use rand::Rng;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tandem_model::{qualified, quote_literal};

/// Which program drives the OLTP mix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OltpDriver {
    /// PostgreSQL's pgbench with custom scripts, from the server's binaries.
    Pgbench(PathBuf),
    /// Threads in this process, one session each, with prepared statements.
    BuiltIn,
}

/// How the OLTP mix runs.
#[derive(Debug, Clone)]
pub struct OltpOptions {
    /// Concurrent sessions.
    pub clients: u32,
    /// How long each measured run lasts.
    pub duration: Duration,
    pub driver: OltpDriver,
}

/// Scenario 2 at one table size.
#[derive(Debug, Clone, Serialize)]
pub struct TriggerCost {
    pub rows: u64,
    pub bulk: Vec<BulkUpdate>,
    pub oltp: Oltp,
}

/// `UPDATE bench SET <column> = <column> + 1` over every row.
#[derive(Debug, Clone, Serialize)]
pub struct BulkUpdate {
    pub column: String,
    /// Whether `up` reads the column: only then does the (narrowed) UPDATE trigger run.
    pub read_by_up: bool,
    /// Medians of the runs, in seconds.
    pub with_triggers_s: f64,
    pub without_triggers_s: f64,
    /// with ÷ without; 1 means the triggers cost nothing.
    pub ratio: f64,
    pub with_runs_s: Vec<f64>,
    pub without_runs_s: Vec<f64>,
}

/// The single-row mix: 40% `UPDATE … SET a = a + 1` (a column `up` reads), 40% `UPDATE … SET
/// d = d + 1` (one it does not), 20% `INSERT`, by random key, each statement its own
/// transaction.
#[derive(Debug, Clone, Serialize)]
pub struct Oltp {
    /// `pgbench` or `built-in`.
    pub driver: String,
    pub clients: u32,
    pub seconds_per_run: f64,
    /// Medians of the runs, transactions per second.
    pub with_triggers_tps: f64,
    pub without_triggers_tps: f64,
    /// Mean latency of the median run, in milliseconds.
    pub with_triggers_latency_ms: f64,
    pub without_triggers_latency_ms: f64,
    /// without ÷ with tps: the cost per transaction with the triggers, 1 meaning none.
    pub ratio: f64,
    /// Failed transactions over all runs (there should be none).
    pub failed: u64,
}

/// One measured OLTP run.
#[derive(Debug, Clone, Copy)]
struct OltpRun {
    tps: f64,
    latency_ms: f64,
    failed: u64,
}

const MIGRATION_NOTE: &str = "the add-column migration of scenario 1, started and backfilled";

pub(crate) fn measure(
    fx: &mut Fixture,
    rows: u64,
    repeat: usize,
    oltp: &OltpOptions,
    progress: Progress<'_>,
) -> Result<TriggerCost> {
    fx.build(rows)?;
    crate::backfill::start(fx)?;
    progress(&format!("trigger cost, {rows} rows: {MIGRATION_NOTE}"));
    let mix = oltp_mix(fx, rows, repeat, oltp, progress)?;
    let mut bulk = Vec::new();
    for (column, read_by_up) in [("a", true), ("d", false)] {
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for _ in 0..repeat.max(1) {
            for enabled in [false, true] {
                set_triggers(fx, enabled)?;
                fx.vacuum()?;
                let took = fx
                    .timed(&format!(
                        "UPDATE {} SET {column} = {column} + 1",
                        Fixture::table()
                    ))?
                    .as_secs_f64();
                if enabled { &mut with } else { &mut without }.push(took);
            }
        }
        let (w, wo) = (median(&with), median(&without));
        progress(&format!(
            "trigger cost, {rows} rows: bulk UPDATE of {column}: {w:.2} s with triggers, {wo:.2} s without"
        ));
        bulk.push(BulkUpdate {
            column: column.into(),
            read_by_up,
            with_triggers_s: w,
            without_triggers_s: wo,
            ratio: w / wo,
            with_runs_s: with,
            without_runs_s: without,
        });
    }
    set_triggers(fx, true)?;
    fx.engine().rollback(&tandem_pg::events::ignore)?;
    Ok(TriggerCost {
        rows,
        bulk,
        oltp: mix,
    })
}

fn set_triggers(fx: &mut Fixture, enabled: bool) -> Result<()> {
    fx.execute(&format!(
        "ALTER TABLE {} {} TRIGGER USER",
        Fixture::table(),
        if enabled { "ENABLE" } else { "DISABLE" }
    ))
}

/// The sequence the mix's inserts take their keys from, past the table's last key.
fn sequence() -> String {
    qualified(SCHEMA, "bench_oltp_id")
}

fn oltp_mix(
    fx: &mut Fixture,
    rows: u64,
    repeat: usize,
    opts: &OltpOptions,
    progress: Progress<'_>,
) -> Result<Oltp> {
    fx.execute(&format!(
        "CREATE SEQUENCE {} START {}",
        sequence(),
        rows + 1
    ))?;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..repeat.max(1) {
        for enabled in [false, true] {
            set_triggers(fx, enabled)?;
            let run = match &opts.driver {
                OltpDriver::Pgbench(program) => pgbench(fx, program, rows, opts)?,
                OltpDriver::BuiltIn => built_in(fx, rows, opts)?,
            };
            progress(&format!(
                "trigger cost, {rows} rows: OLTP mix {} triggers: {:.0} tps, {:.2} ms mean latency",
                if enabled { "with" } else { "without" },
                run.tps,
                run.latency_ms
            ));
            if enabled { &mut with } else { &mut without }.push(run);
        }
    }
    set_triggers(fx, true)?;
    let pick = |runs: &[OltpRun]| -> OltpRun {
        let m = median(&runs.iter().map(|r| r.tps).collect::<Vec<_>>());
        *runs
            .iter()
            .find(|r| r.tps == m)
            .expect("the median is one of the runs")
    };
    let (w, wo) = (pick(&with), pick(&without));
    Ok(Oltp {
        driver: match opts.driver {
            OltpDriver::Pgbench(_) => "pgbench".into(),
            OltpDriver::BuiltIn => "built-in".into(),
        },
        clients: opts.clients,
        seconds_per_run: opts.duration.as_secs_f64(),
        with_triggers_tps: w.tps,
        without_triggers_tps: wo.tps,
        with_triggers_latency_ms: w.latency_ms,
        without_triggers_latency_ms: wo.latency_ms,
        ratio: wo.tps / w.tps,
        failed: with.iter().chain(&without).map(|r| r.failed).sum(),
    })
}

/// The mix's three statements, as pgbench scripts with their weights.
fn pgbench_scripts(rows: u64) -> [(&'static str, String, u32); 3] {
    let table = Fixture::table();
    let pick = format!("\\set id random(1, {rows})\n");
    [
        (
            "update_a.sql",
            format!("{pick}UPDATE {table} SET a = a + 1 WHERE id = :id;\n"),
            40,
        ),
        (
            "update_d.sql",
            format!("{pick}UPDATE {table} SET d = d + 1 WHERE id = :id;\n"),
            40,
        ),
        (
            "insert.sql",
            format!(
                "INSERT INTO {table} (id, a, b, d) VALUES (nextval({}), 7, md5(random()::text), 0);\n",
                quote_literal(&sequence())
            ),
            20,
        ),
    ]
}

fn pgbench(fx: &Fixture, program: &Path, rows: u64, opts: &OltpOptions) -> Result<OltpRun> {
    let dir =
        tempfile::tempdir().map_err(error::io("creating a directory for pgbench's scripts"))?;
    let mut cmd = Command::new(program);
    cmd.args(["--no-vacuum", "--protocol=prepared"])
        .arg(format!("--client={}", opts.clients))
        .arg(format!("--jobs={}", opts.clients.clamp(1, 2)))
        .arg(format!("--time={}", opts.duration.as_secs().max(1)));
    for (name, text, weight) in pgbench_scripts(rows) {
        let path = dir.path().join(name);
        std::fs::write(&path, text).map_err(error::io(format!("writing {}", path.display())))?;
        cmd.arg(format!("--file={}@{weight}", path.display()));
    }
    if let Some(url) = &fx.url {
        cmd.arg(url);
    }
    let out = cmd.output().map_err(|e| Error::Pgbench {
        program: program.into(),
        message: e.to_string(),
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(Error::Pgbench {
            program: program.into(),
            message: format!(
                "{}\n{}{}",
                out.status,
                stdout,
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    parse_pgbench(&stdout).ok_or_else(|| Error::Pgbench {
        program: program.into(),
        message: format!("no tps or latency in its output:\n{stdout}"),
    })
}

/// The figures of pgbench's summary: `tps = …`, `latency average = … ms`, and (from
/// PostgreSQL 15) `number of failed transactions: …`.
fn parse_pgbench(out: &str) -> Option<OltpRun> {
    let number_after = |prefix: &str| -> Option<f64> {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    Some(OltpRun {
        tps: number_after("tps = ")?,
        latency_ms: number_after("latency average = ")?,
        failed: number_after("number of failed transactions: ").unwrap_or(0.0) as u64,
    })
}

/// The same mix from threads in this process, one session each, for when pgbench is missing.
fn built_in(fx: &Fixture, rows: u64, opts: &OltpOptions) -> Result<OltpRun> {
    let table = Fixture::table();
    let statements = [
        format!("UPDATE {table} SET a = a + 1 WHERE id = $1"),
        format!("UPDATE {table} SET d = d + 1 WHERE id = $1"),
        format!(
            "INSERT INTO {table} (id, a, b, d) VALUES (nextval({}), 7, md5(random()::text), 0)",
            quote_literal(&sequence())
        ),
    ];
    let mut sessions = Vec::new();
    for _ in 0..opts.clients.max(1) {
        sessions.push(tandem_pg::connect(&fx.connect)?);
    }
    let deadline = Instant::now() + opts.duration;
    let began = Instant::now();
    let results: Vec<Result<(u64, u64, Duration)>> = std::thread::scope(|s| {
        let handles: Vec<_> = sessions
            .into_iter()
            .map(|mut client| {
                let statements = &statements;
                s.spawn(move || -> Result<(u64, u64, Duration)> {
                    let prepared = statements
                        .iter()
                        .map(|sql| client.prepare(sql).map_err(error::sql(sql.clone())))
                        .collect::<Result<Vec<_>>>()?;
                    let mut rng = rand::thread_rng();
                    let (mut done, mut failed, mut busy) = (0u64, 0u64, Duration::ZERO);
                    while Instant::now() < deadline {
                        let roll = rng.gen_range(0..100);
                        let t = Instant::now();
                        let result = if roll < 80 {
                            let id = rng.gen_range(1..=rows as i64);
                            client.execute(&prepared[usize::from(roll >= 40)], &[&id])
                        } else {
                            client.execute(&prepared[2], &[])
                        };
                        busy += t.elapsed();
                        match result {
                            Ok(_) => done += 1,
                            Err(_) => failed += 1,
                        }
                    }
                    Ok((done, failed, busy))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("an OLTP client thread panicked"))
            .collect()
    });
    let elapsed = began.elapsed().as_secs_f64();
    let (mut done, mut failed, mut busy) = (0u64, 0u64, Duration::ZERO);
    for r in results {
        let (d, f, b) = r?;
        done += d;
        failed += f;
        busy += b;
    }
    Ok(OltpRun {
        tps: done as f64 / elapsed,
        latency_ms: busy.as_secs_f64() * 1e3 / (done + failed).max(1) as f64,
        failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pgbench_summary() {
        let out = "transaction type: multiple scripts\nnumber of failed transactions: 3 (0.1%)\nlatency average = 1.250 ms\ninitial connection time = 5.1 ms\ntps = 3187.654321 (without initial connection time)\n";
        let run = parse_pgbench(out).expect("figures");
        assert_eq!(run.tps, 3187.654321);
        assert_eq!(run.latency_ms, 1.25);
        assert_eq!(run.failed, 3);
        assert!(parse_pgbench("pgbench: error: nothing").is_none());
    }
}
