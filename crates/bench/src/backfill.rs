//! Scenarios 1 and 4: the backfill's rows/s against one plain `UPDATE` of the same expression
//! on the same table, and how rows/s holds up as the table grows.

use crate::error::{Error, Result};
use crate::fixture::{self, Fixture};
use crate::{median, Progress};
use serde::Serialize;
use std::sync::Mutex;
use tandem_pg::backfill::BackfillOptions;
use tandem_pg::throttle::YieldAction;
use tandem_pg::Event;
use tandem_plan::BACKFILL_SETTING;

/// What `up` and the plain UPDATE both compute.
pub const EXPRESSION: &str = "upper(b) || '-' || a";

const ADD_COLUMN: &str = "operations:
  - add_column:
      table: {table}
      up: \"upper(b) || '-' || a\"
      column: {name: c, type: text, nullable: true}
";

/// Scenario 1 at one table size.
#[derive(Debug, Clone, Serialize)]
pub struct BackfillSpeed {
    pub rows: u64,
    /// Median of the runs: the backfill's own figure, first batch to last.
    pub backfill_rows_per_s: f64,
    /// Median of the runs of `UPDATE bench SET c = <expression>`.
    pub plain_update_rows_per_s: f64,
    /// backfill ÷ plain UPDATE; 1 means as fast.
    pub ratio: f64,
    /// Median of the runs of the same UPDATE on the table as it is during the migration: with
    /// the migration's trigger in place (not firing, as in a backfill batch). PostgreSQL locks
    /// every row before it updates it when a table has any BEFORE UPDATE row trigger, whether
    /// or not the trigger then fires, so this is the single statement the backfill's batches
    /// can be compared with on equal terms.
    pub plain_update_under_trigger_rows_per_s: f64,
    /// backfill ÷ that UPDATE.
    pub ratio_under_trigger: f64,
    /// Sessions the parallel backfill used at most (`--backfill-workers`, at least 2): all of
    /// them from the first batch with `--fixed-backfill-workers`, else as many as paid
    /// (`parallel_fixed` false).
    pub parallel_workers: usize,
    pub parallel_fixed: bool,
    /// Median of the runs of the same backfill with `parallel_workers` sessions updating
    /// disjoint ranges at once.
    pub parallel_backfill_rows_per_s: f64,
    /// That backfill ÷ one plain UPDATE on the bare table.
    pub parallel_ratio: f64,
    /// Batches the (median) backfill took.
    pub batches: u64,
    pub backfill_runs: Vec<f64>,
    pub plain_update_runs: Vec<f64>,
    pub plain_update_under_trigger_runs: Vec<f64>,
    pub parallel_backfill_runs: Vec<f64>,
}

/// Scenario 4: backfill rows/s at each size.
#[derive(Debug, Clone, Serialize)]
pub struct Scaling {
    pub points: Vec<ScalingPoint>,
    /// rows/s at the largest size ÷ at the smallest; 1 means the cost per row is flat.
    pub largest_over_smallest: f64,
    /// The same for one plain UPDATE, when scenario 1 measured it: how PostgreSQL's own cost
    /// per row moves with the table's size on this machine.
    pub plain_update_largest_over_smallest: Option<f64>,
    /// The same for the parallel backfill, when scenario 1 measured it.
    pub parallel_largest_over_smallest: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScalingPoint {
    pub rows: u64,
    pub backfill_rows_per_s: f64,
    /// Microseconds of backfill per row.
    pub us_per_row: f64,
    /// Scenario 1's plain UPDATE at this size, when it ran.
    pub plain_update_rows_per_s: Option<f64>,
    /// Scenario 1's parallel backfill at this size, when it ran.
    pub parallel_backfill_rows_per_s: Option<f64>,
}

impl ScalingPoint {
    /// A size measured by scenario 1.
    pub(crate) fn of(speed: &BackfillSpeed) -> ScalingPoint {
        ScalingPoint {
            plain_update_rows_per_s: Some(speed.plain_update_rows_per_s),
            parallel_backfill_rows_per_s: Some(speed.parallel_backfill_rows_per_s),
            ..ScalingPoint::alone(speed.rows, speed.backfill_rows_per_s)
        }
    }

    /// A size where only the backfill was measured.
    pub(crate) fn alone(rows: u64, rate: f64) -> ScalingPoint {
        ScalingPoint {
            rows,
            backfill_rows_per_s: rate,
            us_per_row: 1e6 / rate,
            plain_update_rows_per_s: None,
            parallel_backfill_rows_per_s: None,
        }
    }
}

/// Scenario 1 at `rows` rows: the two measurements alternate `repeat` times, so drift in the
/// machine's load hits both alike, and their medians are compared.
pub(crate) fn speed(
    fx: &mut Fixture,
    rows: u64,
    repeat: usize,
    progress: Progress<'_>,
) -> Result<BackfillSpeed> {
    let (mut plains, mut backfills, mut batches) = (Vec::new(), Vec::new(), Vec::new());
    let (mut under_trigger, mut parallels) = (Vec::new(), Vec::new());
    let workers = fx.backfill.workers.max(2);
    let single = BackfillOptions {
        workers: 1,
        ..fx.backfill
    };
    let parallel = BackfillOptions {
        workers,
        ..fx.backfill
    };
    for run in 1..=repeat.max(1) {
        let plain = plain_update(fx, rows)?;
        let plain_triggered = plain_update_under_trigger(fx, rows)?;
        let run_of = fx.with_backfill(single, |fx| backfill(fx, rows))?;
        let run_parallel = fx
            .with_backfill(parallel, |fx| backfill(fx, rows))?
            .rows_per_second;
        let (backfill, n) = (run_of.rows_per_second, run_of.batches);
        let yielded = match run_of.yields.as_slice() {
            [] => String::new(),
            [first, ..] => format!(
                "; it yielded {} times, first because {first}",
                run_of.yields.len()
            ),
        };
        progress(&format!(
            "backfill speed, {rows} rows, run {run}: backfill {backfill:.0} rows/s ({n} batches{yielded}), plain UPDATE {plain:.0} rows/s, with the migration's trigger in place {plain_triggered:.0} rows/s; backfill with {workers} workers {run_parallel:.0} rows/s"
        ));
        parallels.push(run_parallel);
        plains.push(plain);
        under_trigger.push(plain_triggered);
        backfills.push(backfill);
        batches.push((backfill, n));
    }
    let backfill_rows_per_s = median(&backfills);
    let plain_update_rows_per_s = median(&plains);
    let plain_update_under_trigger_rows_per_s = median(&under_trigger);
    let parallel_backfill_rows_per_s = median(&parallels);
    let batches = batches
        .iter()
        .find(|(r, _)| *r == backfill_rows_per_s)
        .map_or(0, |(_, n)| *n);
    Ok(BackfillSpeed {
        rows,
        backfill_rows_per_s,
        plain_update_rows_per_s,
        ratio: backfill_rows_per_s / plain_update_rows_per_s,
        plain_update_under_trigger_rows_per_s,
        ratio_under_trigger: backfill_rows_per_s / plain_update_under_trigger_rows_per_s,
        parallel_workers: workers,
        parallel_fixed: fx.backfill.fixed_workers,
        parallel_backfill_rows_per_s,
        parallel_ratio: parallel_backfill_rows_per_s / plain_update_rows_per_s,
        batches,
        backfill_runs: backfills,
        plain_update_runs: plains,
        plain_update_under_trigger_runs: under_trigger,
        parallel_backfill_runs: parallels,
    })
}

/// Scenario 4 from the sizes measured.
pub(crate) fn scaling(mut points: Vec<ScalingPoint>) -> Option<Scaling> {
    points.sort_by_key(|p| p.rows);
    let (first, last) = (points.first()?, points.last()?);
    let ratio = |f: fn(&ScalingPoint) -> Option<f64>| Some(f(last)? / f(first)?);
    Some(Scaling {
        largest_over_smallest: last.backfill_rows_per_s / first.backfill_rows_per_s,
        plain_update_largest_over_smallest: ratio(|p| p.plain_update_rows_per_s),
        parallel_largest_over_smallest: ratio(|p| p.parallel_backfill_rows_per_s),
        points,
    })
}

/// Backfill rows/s alone at `rows` rows (scenario 4 without scenario 1): the median of `repeat`
/// runs.
pub(crate) fn backfill_only(fx: &mut Fixture, rows: u64, repeat: usize) -> Result<f64> {
    let mut rates = Vec::new();
    for _ in 0..repeat.max(1) {
        rates.push(backfill(fx, rows)?.rows_per_second);
    }
    Ok(median(&rates))
}

/// Rows/s of one `UPDATE bench SET c = <expression>` over the whole table.
fn plain_update(fx: &mut Fixture, rows: u64) -> Result<f64> {
    fx.build(rows)?;
    let table = Fixture::table();
    fx.execute(&format!("ALTER TABLE {table} ADD COLUMN c text"))?;
    fx.vacuum()?;
    let took = fx.timed(&format!("UPDATE {table} SET c = {EXPRESSION}"))?;
    Ok(rows as f64 / took.as_secs_f64())
}

/// Rows/s of the same UPDATE on the table with the migration started: its trigger in place, and
/// the backfill stopped after its first batch of one row (the test hook), so that the UPDATE,
/// run with the backfill's setting on as a batch is, leaves the trigger's `WHEN` false.
fn plain_update_under_trigger(fx: &mut Fixture, rows: u64) -> Result<f64> {
    fx.build(rows)?;
    let first_batch_only = BackfillOptions {
        batch_size: Some(1),
        stop_after_batches: Some(1),
        ..fx.backfill
    };
    match fx.with_backfill(first_batch_only, start) {
        Err(Error::Engine(tandem_pg::Error::BackfillInterrupted { .. })) => {}
        Err(e) => return Err(e),
        Ok(_) => {
            return Err(Error::Options(
                "the backfill was to stop after its first batch".into(),
            ))
        }
    }
    fx.vacuum()?;
    let table = Fixture::table();
    let triggers: i64 = fx
        .client
        .query_one(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = $1::text::regclass AND NOT tgisinternal",
            &[&table],
        )
        .map_err(crate::error::sql("counting the migration's triggers"))?
        .get(0);
    if triggers == 0 {
        return Err(Error::Options(format!(
            "the migration left no trigger on {table} to measure the UPDATE under"
        )));
    }
    let took = fx.timed(&format!(
        "BEGIN; SET LOCAL {BACKFILL_SETTING} = 'on'; UPDATE {table} SET c = {EXPRESSION}; COMMIT"
    ))?;
    fx.engine().rollback(&tandem_pg::events::ignore)?;
    Ok(rows as f64 / took.as_secs_f64())
}

/// Rows/s of tandem's backfill of the same expression, from the backfill's own figure, which
/// covers its first batch to its last; how many batches it took, and why it yielded.
fn backfill(fx: &mut Fixture, rows: u64) -> Result<Started> {
    fx.build(rows)?;
    let started = start(fx)?;
    fx.engine().rollback(&tandem_pg::events::ignore)?;
    Ok(started)
}

/// Starts the add-column migration (backfill included) on the freshly built table.
pub(crate) fn start(fx: &mut Fixture) -> Result<Started> {
    let migration = fixture::migration("bench_add_column", ADD_COLUMN)?;
    let seen = Mutex::new(Started::default());
    let on_event = |e: &Event| {
        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            Event::Backfill {
                rows_per_second,
                done,
                ..
            } => {
                seen.batches += 1;
                if *done {
                    seen.rows_per_second = *rows_per_second as f64;
                }
            }
            Event::BackfillYield {
                action: YieldAction::Paused | YieldAction::Throttled,
                reason,
                ..
            } => seen.yields.push(reason.clone()),
            _ => {}
        }
    };
    fx.engine().start(&migration, &on_event)?;
    Ok(seen.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// What a backfill did: its own rows/s, its batches, and why it paused or slowed down, if it
/// did (a pause or a rest after a slow batch counts in its rows/s).
#[derive(Debug, Default)]
pub(crate) struct Started {
    pub rows_per_second: f64,
    pub batches: u64,
    pub yields: Vec<String>,
}
