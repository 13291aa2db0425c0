//! Scenario 5: the classic zero-downtime change on a table shaped like real ones. `a` of a
//! table with a primary key and an index on `a` (many distinct values, in no relation to the
//! key's order) goes from int to bigint, three ways, each with the clients of scenario 3
//! reading, updating and inserting at a fixed rate on the old shape:
//!
//! - tandem: `start` (the new column, the trigger, the backfill, validation and the new index
//!   built concurrently) then `complete`;
//! - one plain `UPDATE` into a column added beforehand, which is what a backfill is measured
//!   against (it holds every row it updated until it commits, and is not a whole migration:
//!   nothing builds the new index or swaps the columns);
//! - the blocking `ALTER TABLE … ALTER COLUMN a TYPE bigint`, which rewrites the table and its
//!   indexes under ACCESS EXCLUSIVE.
//!
//! Each arm gets a fresh table. Reported per arm: wall time, rows/s of the fill (tandem's
//! backfill by its own figure, first batch to last; the UPDATE's and the ALTER's rows over
//! their time), WAL written (the server's WAL position before and after, so the clients' few
//! writes count too), how many backfill sessions tandem used at most, and what the clients saw
//! while the fill ran. With `repeat`, the arms alternate and medians are reported.

use crate::error::{self, Error, Result};
use crate::fixture::{self, Fixture, SCHEMA};
use crate::traffic::{self as clients, PhaseStats, TrafficOptions};
use crate::{median, Progress};
use serde::Serialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tandem_model::quote_ident;
use tandem_pg::{ConnectOptions, Event, LockTimeout};
use tandem_traffic::{Traffic, Workload};

/// Who makes the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    Tandem,
    PlainUpdate,
    BlockingAlter,
}

impl Arm {
    pub const ALL: [Arm; 3] = [Arm::Tandem, Arm::PlainUpdate, Arm::BlockingAlter];

    pub fn title(self) -> &'static str {
        match self {
            Arm::Tandem => "tandem start + complete",
            Arm::PlainUpdate => "one plain UPDATE into an added column",
            Arm::BlockingAlter => "ALTER COLUMN TYPE (blocking)",
        }
    }
}

/// One arm's figures at one size: medians over the runs, and every run.
#[derive(Debug, Clone, Serialize)]
pub struct ArmFigures {
    pub arm: Arm,
    /// Wall time of the change, in seconds.
    pub seconds: f64,
    /// Rows/s of the fill: the backfill's own figure, or rows over the statement's time.
    pub fill_rows_per_s: f64,
    pub wal_bytes: f64,
    /// The most backfill sessions tandem ran at once (tandem only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<usize>,
    /// What the clients saw while the fill ran, in the run of the median wall time.
    pub clients: PhaseStats,
    pub runs: Vec<ArmRun>,
}

/// One run of one arm.
#[derive(Debug, Clone, Serialize)]
pub struct ArmRun {
    pub seconds: f64,
    pub fill_rows_per_s: f64,
    pub wal_bytes: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<usize>,
    pub clients: PhaseStats,
}

/// Scenario 5 at one size.
#[derive(Debug, Clone, Serialize)]
pub struct IndexedChange {
    pub rows: u64,
    pub arms: Vec<ArmFigures>,
    /// tandem's backfill rows/s ÷ the plain UPDATE's: 1 is as fast as one UPDATE.
    pub backfill_over_plain_update: f64,
    /// The plain UPDATE's wall time ÷ tandem's whole change (start and complete).
    pub plain_update_seconds_over_tandem: f64,
    /// The blocking ALTER's wall time ÷ tandem's whole change.
    pub alter_seconds_over_tandem: f64,
}

impl IndexedChange {
    pub fn arm(&self, arm: Arm) -> Option<&ArmFigures> {
        self.arms.iter().find(|a| a.arm == arm)
    }
}

/// The phase the clients are in while the fill runs.
const FILL: &str = "fill";

/// Every arm at `rows` rows, `repeat` times, alternating.
pub(crate) fn measure(
    fx: &mut Fixture,
    rows: u64,
    repeat: usize,
    opts: &TrafficOptions,
    progress: Progress<'_>,
) -> Result<IndexedChange> {
    let mut runs: Vec<(Arm, Vec<ArmRun>)> = Arm::ALL.iter().map(|a| (*a, Vec::new())).collect();
    for round in 1..=repeat.max(1) {
        for (arm, done) in runs.iter_mut() {
            let run = one(fx, rows, *arm, opts)?;
            progress(&format!(
                "indexed type change, {rows} rows, run {round}, {}: {:.1} s, fill {:.0} rows/s, WAL {:.0} MB{}, clients p99 {:.1} ms, max {:.1} ms, {} errors",
                arm.title(),
                run.seconds,
                run.fill_rows_per_s,
                run.wal_bytes / 1e6,
                run.sessions.map_or(String::new(), |n| format!(", {n} backfill sessions at most")),
                run.clients.p99_ms,
                run.clients.max_ms,
                run.clients.errors
            ));
            done.push(run);
        }
    }
    let arms: Vec<ArmFigures> = runs
        .into_iter()
        .map(|(arm, runs)| {
            let seconds = median(&runs.iter().map(|r| r.seconds).collect::<Vec<_>>());
            let middle = runs
                .iter()
                .find(|r| r.seconds == seconds)
                .unwrap_or(&runs[0]);
            ArmFigures {
                arm,
                seconds,
                fill_rows_per_s: median(
                    &runs.iter().map(|r| r.fill_rows_per_s).collect::<Vec<_>>(),
                ),
                wal_bytes: median(&runs.iter().map(|r| r.wal_bytes).collect::<Vec<_>>()),
                sessions: runs.iter().filter_map(|r| r.sessions).max(),
                clients: middle.clients.clone(),
                runs,
            }
        })
        .collect();
    let get = |arm: Arm| arms.iter().find(|a| a.arm == arm);
    let (Some(t), Some(p), Some(a)) = (
        get(Arm::Tandem),
        get(Arm::PlainUpdate),
        get(Arm::BlockingAlter),
    ) else {
        return Err(Error::Options(
            "an arm of the indexed scenario did not run".into(),
        ));
    };
    Ok(IndexedChange {
        rows,
        backfill_over_plain_update: t.fill_rows_per_s / p.fill_rows_per_s,
        plain_update_seconds_over_tandem: p.seconds / t.seconds,
        alter_seconds_over_tandem: a.seconds / t.seconds,
        arms: arms.clone(),
    })
}

/// The table of this scenario: `bench` with `a` spread over 100,003 values in no relation to
/// the key's order, and an index on it; autovacuum left on, as in production.
fn build(fx: &mut Fixture, rows: u64) -> Result<()> {
    fx.reset()?;
    let table = Fixture::table();
    fx.execute(&format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, a int NOT NULL, b text NOT NULL, d int NOT NULL, e int);
         INSERT INTO {table} SELECT g, (g::bigint * 7919 % 100003)::int, md5(g::text), 0, g % 7 FROM generate_series(1, {rows}) g;
         CREATE INDEX bench_a_idx ON {table} (a);"
    ))?;
    fx.vacuum()?;
    // So that no arm starts with the others' dirty pages to write; a role without
    // pg_checkpoint (a scratch database's owner on a managed service) goes without.
    if let Err(e) = fx.client.batch_execute("CHECKPOINT") {
        if e.code() != Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) {
            return Err(error::sql("CHECKPOINT")(e));
        }
    }
    Ok(())
}

fn wal_position(fx: &mut Fixture) -> Result<String> {
    Ok(fx
        .client
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .map_err(error::sql("reading the WAL position"))?
        .get(0))
}

fn wal_since(fx: &mut Fixture, from: &str) -> Result<f64> {
    Ok(fx
        .client
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::text::pg_lsn)::float8",
            &[&from],
        )
        .map_err(error::sql("measuring the WAL written"))?
        .get(0))
}

fn one(fx: &mut Fixture, rows: u64, arm: Arm, opts: &TrafficOptions) -> Result<ArmRun> {
    build(fx, rows)?;
    let url = fx.url.clone().ok_or_else(|| {
        Error::Options(
            "scenario indexed needs a database URL for its clients (--database-url), or a throwaway cluster".into(),
        )
    })?;
    let table = Fixture::table();
    if arm == Arm::PlainUpdate {
        fx.execute(&format!("ALTER TABLE {table} ADD COLUMN a_new bigint"))?;
    }
    let path = quote_ident(SCHEMA);
    let workloads: Vec<Workload> = (0..opts.clients.max(1))
        .map(|i| clients::workload(&format!("client {i}"), &path, i, rows, opts.rate))
        .collect();
    let traffic = Traffic::start(&url, workloads).map_err(|e| Error::Traffic(e.to_string()))?;
    std::thread::sleep(opts.settle);
    let wal = wal_position(fx)?;
    let began = Instant::now();
    let (fill_rows_per_s, sessions) = match arm {
        Arm::Tandem => {
            // Scenario 3's type change, on this scenario's table.
            let (_, yaml) = crate::traffic::Change::TypeChange.migration();
            let migration = fixture::migration("bench_indexed_type_change", yaml)?;
            let marker = traffic.marker();
            let seen = Mutex::new((0.0f64, 0usize));
            let on_event = |e: &Event| {
                if let Event::Backfill {
                    done,
                    rows_per_second,
                    sessions,
                    ..
                } = e
                {
                    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                    seen.1 = seen.1.max(*sessions);
                    if *done {
                        seen.0 = *rows_per_second as f64;
                        marker.mark(clients::phase::AFTER);
                    }
                }
            };
            traffic.mark(FILL);
            fx.engine().start(&migration, &on_event)?;
            traffic.mark(clients::phase::AFTER);
            traffic.wait_for_ops(3);
            let report = traffic.stop();
            fx.engine().complete(&tandem_pg::events::ignore)?;
            let (rate, sessions) = *seen.lock().unwrap_or_else(|p| p.into_inner());
            return finish(fx, began, &wal, rate, Some(sessions), &report);
        }
        Arm::PlainUpdate => {
            traffic.mark(FILL);
            let took = by_hand(fx, &format!("UPDATE {table} SET a_new = a"))?;
            (rows as f64 / took.as_secs_f64(), None)
        }
        Arm::BlockingAlter => {
            traffic.mark(FILL);
            let took = by_hand(
                fx,
                &format!("ALTER TABLE {table} ALTER COLUMN a TYPE bigint"),
            )?;
            (rows as f64 / took.as_secs_f64(), None)
        }
    };
    traffic.mark(clients::phase::AFTER);
    traffic.wait_for_ops(3);
    let report = traffic.stop();
    finish(fx, began, &wal, fill_rows_per_s, sessions, &report)
}

/// Runs `sql` as most people do: one statement in a session of its own, no lock_timeout.
fn by_hand(fx: &mut Fixture, sql: &str) -> Result<Duration> {
    let mut session = tandem_pg::connect(&ConnectOptions {
        lock_timeout: LockTimeout(Duration::ZERO),
        application_name: Some("tandem bench: by hand".into()),
        ..fx.connect.clone()
    })?;
    let t = Instant::now();
    session.batch_execute(sql).map_err(error::sql(sql))?;
    Ok(t.elapsed())
}

fn finish(
    fx: &mut Fixture,
    began: Instant,
    wal: &str,
    fill_rows_per_s: f64,
    sessions: Option<usize>,
    report: &tandem_traffic::Report,
) -> Result<ArmRun> {
    let seconds = began.elapsed().as_secs_f64();
    let wal_bytes = wal_since(fx, wal)?;
    let fill = report
        .phase_summaries()
        .iter()
        .find(|p| &*p.phase == FILL)
        .map(PhaseStats::from_summary)
        .ok_or_else(|| Error::Traffic("the clients saw no fill phase".into()))?;
    Ok(ArmRun {
        seconds,
        fill_rows_per_s,
        wal_bytes,
        sessions,
        clients: fill,
    })
}
