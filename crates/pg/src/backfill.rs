//! The batched backfill: fills the new columns of rows that existed before start, in short
//! transactions that walk the table in keyset order of its key (or in ranges of blocks when it
//! has none), with a batch size that adapts to a target duration and a checkpoint saved with
//! each batch so an interrupted backfill continues where it stopped. It yields to the database
//! (`crate::throttle`): it pauses between batches while a standby lags, a slot retains too much
//! WAL, autovacuum fights wraparound on the table or its own batch cannot get its locks, and it
//! slows down after a batch far slower than the target.
//!
//! Each batch is one transaction: `SET LOCAL tandem.backfill = 'on'` (so the table's trigger,
//! whose `WHEN` tests that setting, stays out of the way) and, where the session may set it,
//! `SET LOCAL session_replication_role = replica` (so the user's triggers do not fire for rows
//! nobody wrote; see `triggers`), then one `UPDATE <table> SET col =
//! (expr), ... WHERE <range> AND age(xmin) > $d`, then the checkpoint. The range is
//! `(key) > (last) AND (key) <= (upper)`, where `upper` is the key `n` rows further along the
//! key's index (`LIMIT 1 OFFSET n-1`), unbounded for the last batch; without a key it is
//! `ctid >= '(p,0)' AND ctid < '(q,0)'`, which PostgreSQL 14 and later run as a TID range scan,
//! up to the table's size in blocks when the walk began. Key values travel in PostgreSQL's own
//! binary form and are bound back unchanged, so they compare in their own type; the checkpoint
//! keeps them as text, cast back to the column's type on resume.
//!
//! # Rows the trigger already wrote are skipped, and why that is sound
//!
//! Right after the start steps commit, the engine records `X = pg_snapshot_xmax(
//! pg_current_snapshot())`: every transaction id from `X` on was assigned after the trigger was
//! committed. A batch assigns its own xid `B` first and updates only rows with
//! `age(xmin) > B - X`, that is rows whose creating transaction is older than `X` (frozen rows
//! have age 2^31-1 and are always updated). A row version with `xmin >= X` came from a
//! transaction that wrote the table after the trigger existed: CREATE TRIGGER takes SHARE ROW
//! EXCLUSIVE, which conflicts with the ROW EXCLUSIVE every writer takes, so any writer that held
//! its lock before the trigger was created had finished (with an xid below `X`) before the
//! trigger committed; a writer that takes its lock later processes the catalog invalidations on
//! acquiring it and so fires the trigger, which computed the new columns from the same
//! expressions. Such rows hold their final values and are left alone. Rows written by an
//! earlier batch of this backfill have `xmin >= X` too, which is what lets a walk by blocks
//! ignore the new row versions its own updates leave further along the table. A transaction
//! that got its xid before `X` but wrote the table after the trigger existed is merely redone,
//! which is harmless. A row locked by a concurrent writer makes the batch wait (under
//! `lock_timeout`) and re-check the new version, which that writer's trigger filled. The cutoff
//! is stored with the checkpoint, because the trigger stays in place across an interruption.
//! VACUUM FULL and CLUSTER keep each row's xmin (or freeze it, which only makes a batch redo
//! the row). What the argument does not cover is a rewriting `ALTER TABLE` run by someone else
//! during the backfill, which gives every row the rewriting transaction's xmin; tandem assumes,
//! as it does everywhere, that nobody else changes the table's schema while a migration is
//! active.

use crate::connect::ConnectOptions;
use crate::error::{Error, Result};
use crate::events::{Event, OnEvent};
use crate::locks::{is_lock_timeout, lock_holders, wait_before_retry, RetryPolicy};
use crate::state::BackfillCheckpoint;
use crate::throttle::{Hold, Limits, Watch, YieldAction, SLOW_FACTOR};
use postgres::types::private::BytesMut;
use postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use postgres::{Client, GenericClient, Statement, Transaction};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tandem_model::{qualified, quote_ident, Schema};
use tandem_plan::{Backfill, Lock, LockMode, BACKFILL_SETTING};

mod parallel;
pub mod triggers;

pub use triggers::TriggerMode;

/// How big batches are and how fast they follow each other.
#[derive(Debug, Clone, Copy)]
pub struct BackfillOptions {
    /// Rows per batch; `None` adapts the size so a batch takes about `target`.
    pub batch_size: Option<u64>,
    /// How long a batch should take (and so hold its row locks) when the size adapts.
    pub target: Duration,
    /// A pause between batches, to leave the server to the application.
    pub delay: Duration,
    /// Pause while a standby's replay is further behind than this.
    pub max_replication_lag: Duration,
    /// Pause while a replication slot retains more WAL than this many bytes; `None` ignores
    /// slots.
    pub max_slot_wal_bytes: Option<i64>,
    /// How often a paused backfill looks again whether it may go on.
    pub recheck: Duration,
    /// Sessions updating batches at once. With more than one, disjoint key (or block) ranges
    /// are updated in parallel by sessions of their own, and the checkpoint follows the
    /// longest run of committed ranges from the start; see `parallel`.
    pub workers: usize,
    /// For tests: stop with `Error::BackfillInterrupted` after this many batches of one run.
    #[doc(hidden)]
    pub stop_after_batches: Option<u64>,
    /// Once this is set (by the binary's SIGINT or SIGTERM handler), the backfill stops after
    /// the batch in flight has committed, with `Error::BackfillInterrupted` whose source is
    /// `Error::StopRequested`: the migration stays `backfilling` with its checkpoint.
    pub stop: Option<&'static AtomicBool>,
}

impl BackfillOptions {
    /// Whether `stop` has been set.
    pub fn stop_requested(&self) -> bool {
        self.stop.is_some_and(|s| s.load(Ordering::SeqCst))
    }

    /// Sleeps `pause` (the delay between batches), waking early when a stop is requested.
    fn pause(&self, pause: Duration) {
        let until = Instant::now() + pause;
        while !self.stop_requested() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(20)));
        }
    }
}

impl Default for BackfillOptions {
    fn default() -> Self {
        BackfillOptions {
            batch_size: None,
            target: Duration::from_millis(150),
            delay: Duration::ZERO,
            max_replication_lag: Duration::from_secs(10),
            max_slot_wal_bytes: None,
            recheck: Duration::from_millis(500),
            workers: 1,
            stop_after_batches: None,
            stop: None,
        }
    }
}

/// The conditions the backfill yields to are looked at before a batch when this long has
/// passed since they were last looked at.
const CHECK_EVERY: Duration = Duration::from_millis(200);

/// The adaptive size starts here and moves towards the target within bounds: it grows at most
/// eightfold per batch, so a small first batch reaches the target's size in two or three
/// batches, and shrinks at most fourfold, so one slow batch does not collapse it.
const FIRST_BATCH: u64 = 1_000;
const MAX_GROWTH: f64 = 8.0;
const MAX_SHRINK: f64 = 0.25;
const MIN_BATCH: u64 = 100;
const MAX_BATCH: u64 = 1_000_000;

/// The batch size: fixed, or adapted after each full batch towards the target duration.
struct BatchSize {
    rows: u64,
    target: Option<Duration>,
}

impl BatchSize {
    fn new(opts: &BackfillOptions) -> BatchSize {
        match opts.batch_size {
            Some(n) => BatchSize {
                rows: n.max(1),
                target: None,
            },
            None => BatchSize {
                rows: FIRST_BATCH,
                target: Some(opts.target),
            },
        }
    }

    fn adapt(&mut self, took: Duration) {
        if let Some(target) = self.target {
            let factor =
                (target.as_secs_f64() / took.as_secs_f64().max(1e-4)).clamp(MAX_SHRINK, MAX_GROWTH);
            self.rows = ((self.rows as f64 * factor) as u64).clamp(MIN_BATCH, MAX_BATCH);
        }
    }
}

/// A key value as PostgreSQL sent it (binary), bound back unchanged. The value is only ever
/// compared with the column it was read from, so the type PostgreSQL infers for the parameter
/// is that column's type (or, for a domain, its binary-identical base type).
#[derive(Debug, Clone)]
struct KeyValue(Option<Vec<u8>>);

impl<'a> FromSql<'a> for KeyValue {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(KeyValue(Some(raw.to_vec())))
    }

    fn from_sql_null(
        _: &Type,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(KeyValue(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

impl ToSql for KeyValue {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0 {
            Some(bytes) => {
                out.extend_from_slice(bytes);
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// How the table is walked.
enum Walk {
    Keyset {
        /// Quoted key columns, joined: `a, b`.
        keys: String,
        width: usize,
    },
    Blocks {
        end: i64,
        rows_per_block: f64,
    },
}

impl Walk {
    /// The quoted key columns of a keyset walk; empty for a walk by blocks.
    fn keys(&self) -> &str {
        match self {
            Walk::Keyset { keys, .. } => keys,
            Walk::Blocks { .. } => "",
        }
    }
}

/// Where the walk is: the next batch starts after this key (from the start, without one), or
/// at this block.
#[derive(Clone)]
enum Cursor {
    Key(Option<Vec<KeyValue>>),
    Block(i64),
}

/// A batch cut from the walk, and where the checkpoint stands once it has committed.
struct Cut {
    /// Rows it walks when it is not the last (the batch size it was cut with).
    rows: u64,
    /// The checkpoint's position after it: its upper key as text (a keyset batch that found
    /// one), or the block it ends before.
    key: Option<Vec<String>>,
    block: Option<i64>,
    last: bool,
}

impl Cut {
    /// Rows the batch walked, given the rows it updated: for a keyset batch that found its
    /// upper key, the batch size; otherwise the rows it updated.
    fn walked(&self, updated: u64) -> u64 {
        if self.key.is_some() {
            self.rows
        } else {
            updated
        }
    }

    /// Moves `checkpoint` past the batch, which updated `updated` rows.
    fn apply(&self, checkpoint: &mut BackfillCheckpoint, updated: u64) {
        if let Some(key) = &self.key {
            checkpoint.last_key = Some(key.clone());
        }
        if let Some(block) = self.block {
            checkpoint.next_block = Some(block);
        }
        checkpoint.rows_done += self.walked(updated) as i64;
        checkpoint.done = self.last;
    }
}

/// What one committed batch did.
struct Batch {
    /// Rows the batch walked (`Cut::walked`).
    rows: u64,
    last: bool,
}

/// One backfill being run: its SQL pieces and its position.
struct Runner<'a> {
    /// Statements prepared once per run, so a batch costs one round trip per statement.
    statements: HashMap<String, Statement>,
    table: String,
    set: String,
    walk: Walk,
    cursor: Cursor,
    checkpoint: &'a mut BackfillCheckpoint,
    /// How the batches treat the user's triggers.
    mode: TriggerMode,
}

/// Runs one backfill from its checkpoint to the end; returns the rows walked in this run.
/// `save` records the checkpoint inside each batch's transaction (with several workers, in a
/// transaction of its own after theirs commit). `connect` opens the workers' sessions. `mode`
/// is what `triggers::decide` chose before start changed anything.
#[allow(clippy::too_many_arguments)]
pub fn run(
    client: &mut Client,
    physical: &Schema,
    backfill: &Backfill,
    checkpoint: &mut BackfillCheckpoint,
    opts: &BackfillOptions,
    mode: TriggerMode,
    policy: &RetryPolicy,
    on_event: OnEvent<'_>,
    save: &mut dyn FnMut(&mut Transaction<'_>, &BackfillCheckpoint) -> Result<()>,
    connect: Option<&ConnectOptions>,
) -> Result<u64> {
    if checkpoint.done {
        return Ok(0);
    }
    let table = qualified(&physical.name, &backfill.table);
    let db = |what: String| {
        move |source| Error::Db {
            context: what,
            source,
        }
    };
    let (reltuples, relpages, blocks): (i64, i64, i64) = {
        let r = client
            .query_one(
                "SELECT reltuples::bigint, relpages::bigint,
                        pg_relation_size(oid) / current_setting('block_size')::bigint
                   FROM pg_class WHERE oid = $1::text::regclass",
                &[&table],
            )
            .map_err(db(format!("estimating the size of {table}")))?;
        (r.get(0), r.get(1), r.get(2))
    };
    if checkpoint.rows_estimate == 0 {
        checkpoint.rows_estimate = if reltuples >= 0 {
            reltuples
        } else {
            // Never analyzed: the planner's guess from the table's size.
            let plan: serde_json::Value = client
                .query_one(&format!("EXPLAIN (FORMAT JSON) SELECT FROM {table}"), &[])
                .map_err(db(format!("estimating the size of {table}")))?
                .get(0);
            plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0) as i64
        };
    }
    // What an earlier run last recorded (a pause, its rate) is not what this run does: until
    // its first batch commits, the checkpoint says only how far the backfill has come, so
    // `status` and `monitor` do not show an old pause reason or an ETA from an old rate.
    if checkpoint.yield_state.is_some() || checkpoint.rows_per_second.is_some() {
        checkpoint.yield_state = None;
        checkpoint.yield_cause = None;
        checkpoint.yield_reason = None;
        checkpoint.yield_since = None;
        checkpoint.rows_per_second = None;
        let mut tx = client.transaction().map_err(db(format!(
            "clearing the last run's state of the backfill of {table}"
        )))?;
        save(&mut tx, checkpoint)?;
        tx.commit().map_err(db(format!(
            "clearing the last run's state of the backfill of {table}"
        )))?;
    }
    let (walk, cursor) = if backfill.key.is_empty() {
        let walk = Walk::Blocks {
            end: *checkpoint.end_block.get_or_insert(blocks),
            rows_per_block: if relpages > 0 && reltuples > 0 {
                reltuples as f64 / relpages as f64
            } else {
                // Unknown: a guess for narrow rows; the adaptive size corrects it.
                100.0
            },
        };
        (walk, Cursor::Block(checkpoint.next_block.unwrap_or(0)))
    } else {
        let last = match &checkpoint.last_key {
            Some(text) => Some(key_from_text(client, physical, backfill, text)?),
            None => None,
        };
        let walk = Walk::Keyset {
            keys: backfill
                .key
                .iter()
                .map(|k| quote_ident(k))
                .collect::<Vec<_>>()
                .join(", "),
            width: backfill.key.len(),
        };
        (walk, Cursor::Key(last))
    };
    let set = backfill
        .assignments
        .iter()
        .map(|(col, expr)| format!("{} = ({expr})", quote_ident(col)))
        .collect::<Vec<_>>()
        .join(", ");
    let columns = backfill
        .assignments
        .iter()
        .map(|(c, _)| c.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut runner = Runner {
        statements: HashMap::new(),
        table: table.clone(),
        set,
        walk,
        cursor,
        checkpoint,
        mode,
    };
    let lock = Lock {
        mode: LockMode::RowExclusive,
        relation: table.clone(),
    };
    let what = format!("backfill of {}", backfill.table);
    let mut size = BatchSize::new(opts);
    let began = Instant::now();
    let mut walked: u64 = 0;
    let mut batches: u64 = 0;
    let interrupted = |rows_done: i64, source: Error| Error::BackfillInterrupted {
        table: backfill.table.clone(),
        rows_done: rows_done.max(0) as u64,
        source: Box::new(source),
    };
    let watch = Watch::new(
        client,
        &table,
        Limits {
            max_replication_lag: opts.max_replication_lag,
            max_slot_wal_bytes: opts.max_slot_wal_bytes,
        },
    )?;
    // The same for every backfill of the run, so it does not name the table: a renderer may
    // say it once per command.
    for note in watch.blind_spots(client)? {
        on_event(&Event::Info { message: note });
    }
    let rate = |walked: u64| walked as f64 / began.elapsed().as_secs_f64().max(1e-3);
    let announce = |action: YieldAction, hold: &Hold| {
        on_event(&Event::BackfillYield {
            table: backfill.table.clone(),
            action,
            reason: hold.describe(),
            hold: hold.clone(),
        })
    };
    let mut yielding = Yielding::new(&watch);
    if opts.workers > 1 {
        let connect = connect.ok_or_else(|| {
            Error::Other(format!(
                "backfill of {}: {} workers need to open sessions of their own, and no connection options were given",
                backfill.table, opts.workers
            ))
        })?;
        return parallel::drive(
            parallel::Coordinator {
                client,
                runner: &mut runner,
                yielding: &mut yielding,
                size: &mut size,
                opts,
                policy,
                on_event,
                save,
                table: &backfill.table,
                columns: &columns,
                what: &what,
                lock: &lock,
                rate: &rate,
                announce: &announce,
                interrupted: &interrupted,
            },
            connect,
        );
    }
    let mut attempt = 0;
    loop {
        if opts.stop_requested() {
            return Err(interrupted(
                runner.checkpoint.rows_done,
                Error::StopRequested,
            ));
        }
        yielding
            .wait(
                client,
                runner.checkpoint,
                rate(walked),
                save,
                &announce,
                opts.recheck,
            )
            .map_err(|e| resumable_or(e, &interrupted, runner.checkpoint.rows_done))?;
        // The batch's checkpoint records that it runs freely again.
        runner.checkpoint.rows_per_second = (walked > 0).then(|| rate(walked));
        runner.checkpoint.yield_state = None;
        runner.checkpoint.yield_cause = None;
        runner.checkpoint.yield_reason = None;
        let t = Instant::now();
        let batch = match runner.batch(client, size.rows, save) {
            Ok(b) => b,
            Err(Error::Db { source, .. }) if is_lock_timeout(&source) => {
                attempt += 1;
                if attempt == 1 {
                    yielding
                        .lock_wait(
                            client,
                            &table,
                            runner.checkpoint,
                            rate(walked),
                            save,
                            &announce,
                        )
                        .map_err(|e| resumable_or(e, &interrupted, runner.checkpoint.rows_done))?;
                }
                wait_before_retry(client, &what, Some(lock.clone()), attempt, policy, on_event)
                    .map_err(|e| interrupted(runner.checkpoint.rows_done, e))?;
                continue;
            }
            Err(e) if resumable(&e) => return Err(interrupted(runner.checkpoint.rows_done, e)),
            Err(e) => return Err(e),
        };
        let took = t.elapsed();
        attempt = 0;
        yielding.resume(&announce);
        batches += 1;
        walked += batch.rows;
        if !batch.last {
            size.adapt(took);
        }
        let done = runner.checkpoint.rows_done.max(0) as u64;
        on_event(&progress_event(
            &backfill.table,
            &columns,
            runner.checkpoint,
            done,
            rate(walked),
            size.rows,
        ));
        // Test-only: a crash between batches (see `locks::kill_point`).
        crate::locks::kill_point(tandem_plan::Phase::Start);
        if batch.last {
            return Ok(walked);
        }
        if opts.stop_after_batches == Some(batches) {
            return Err(interrupted(
                runner.checkpoint.rows_done,
                Error::Other(format!("stopped by the test hook after {batches} batches")),
            ));
        }
        if !opts.delay.is_zero() {
            opts.pause(opts.delay);
        }
        if let Some(hold) = slow_batch(opts, took) {
            // The server became slow to serve a batch sized for the target: rest as long as
            // the batch took, which at least halves what the backfill asks of it while the
            // size shrinks, and say so.
            yield_to(
                client,
                runner.checkpoint,
                &hold,
                rate(walked),
                save,
                &announce,
            )
            .map_err(|e| resumable_or(e, &interrupted, runner.checkpoint.rows_done))?;
            std::thread::sleep(took);
        }
    }
}

/// A batch far slower than the target, when the size adapts (a fixed size is the user's
/// choice, whatever it takes).
fn slow_batch(opts: &BackfillOptions, took: Duration) -> Option<Hold> {
    (opts.batch_size.is_none() && took > opts.target * SLOW_FACTOR).then_some(Hold::SlowBatch {
        took_ms: took.as_millis() as u64,
        target_ms: opts.target.as_millis() as u64,
    })
}

/// The progress event after a batch: `done` rows of the checkpoint's estimate at `rate`.
fn progress_event(
    table: &str,
    columns: &str,
    checkpoint: &BackfillCheckpoint,
    done: u64,
    rate: f64,
    batch_size: u64,
) -> Event {
    let estimate = if checkpoint.done {
        done
    } else {
        (checkpoint.rows_estimate.max(0) as u64).max(done)
    };
    let per_second = rate as u64;
    Event::Backfill {
        table: table.to_string(),
        column: columns.to_string(),
        rows_done: done,
        rows_total_estimate: estimate,
        rows_per_second: per_second,
        eta_seconds: (per_second > 0 && !checkpoint.done).then(|| (estimate - done) / per_second),
        batch_size,
        done: checkpoint.done,
    }
}

/// What the backfill yields to between batches, looked at no more often than `CHECK_EVERY`, so
/// that watching costs short batches little.
struct Yielding<'w> {
    watch: &'w Watch,
    /// What it yields to right now, as last recorded in its checkpoint.
    holding: Option<Hold>,
    last_check: Option<Instant>,
}

impl<'w> Yielding<'w> {
    fn new(watch: &'w Watch) -> Self {
        Yielding {
            watch,
            holding: None,
            last_check: None,
        }
    }

    /// Waits, without losing the place, while something the backfill yields to holds: records
    /// each new cause in the checkpoint and announces it, and announces when it may go on.
    fn wait(
        &mut self,
        client: &mut Client,
        checkpoint: &mut BackfillCheckpoint,
        rate: f64,
        save: &mut dyn FnMut(&mut Transaction<'_>, &BackfillCheckpoint) -> Result<()>,
        announce: &dyn Fn(YieldAction, &Hold),
        recheck: Duration,
    ) -> Result<()> {
        while self.last_check.is_none_or(|t| t.elapsed() >= CHECK_EVERY) {
            self.last_check = Some(Instant::now());
            let Some(hold) = self.watch.check(client)?.into_iter().next() else {
                break;
            };
            if self.holding.as_ref().map(Hold::cause) != Some(hold.cause()) {
                yield_to(client, checkpoint, &hold, rate, save, announce)?;
            }
            self.holding = Some(hold);
            std::thread::sleep(recheck);
            self.last_check = None;
        }
        self.resume(announce);
        Ok(())
    }

    /// A batch could not get its row locks (its first `lock_timeout` in a row): records and
    /// announces a pause for the lock's holders, which lasts until a batch commits.
    fn lock_wait(
        &mut self,
        client: &mut Client,
        table: &str,
        checkpoint: &mut BackfillCheckpoint,
        rate: f64,
        save: &mut dyn FnMut(&mut Transaction<'_>, &BackfillCheckpoint) -> Result<()>,
        announce: &dyn Fn(YieldAction, &Hold),
    ) -> Result<()> {
        let hold = Hold::LockWait {
            holders: lock_holders(client, table),
        };
        yield_to(client, checkpoint, &hold, rate, save, announce)?;
        self.holding = Some(hold);
        Ok(())
    }

    /// Announces that what held the backfill no longer does, if something did.
    fn resume(&mut self, announce: &dyn Fn(YieldAction, &Hold)) {
        if let Some(hold) = self.holding.take() {
            announce(YieldAction::Resumed, &hold);
        }
    }
}

/// Records in the checkpoint's row, in a transaction of its own, that the backfill yields to
/// `hold`, with its rate so far (the position is saved unchanged), then announces it.
fn yield_to(
    client: &mut Client,
    checkpoint: &mut BackfillCheckpoint,
    hold: &Hold,
    rate: f64,
    save: &mut dyn FnMut(&mut Transaction<'_>, &BackfillCheckpoint) -> Result<()>,
    announce: &dyn Fn(YieldAction, &Hold),
) -> Result<()> {
    checkpoint.rows_per_second = Some(rate);
    checkpoint.yield_state = Some(hold.action().name().to_string());
    checkpoint.yield_cause = Some(hold.cause().to_string());
    checkpoint.yield_reason = Some(hold.describe());
    let context = || format!("backfill of {}: recording that it yields", checkpoint.table);
    let mut tx = client.transaction().map_err(|source| Error::Db {
        context: context(),
        source,
    })?;
    save(&mut tx, checkpoint)?;
    tx.commit().map_err(|source| Error::Db {
        context: context(),
        source,
    })?;
    announce(hold.action(), hold);
    Ok(())
}

/// `e` as an interruption a later run can get past when it is one, else as it is.
fn resumable_or(e: Error, interrupted: &dyn Fn(i64, Error) -> Error, rows_done: i64) -> Error {
    if resumable(&e) {
        interrupted(rows_done, e)
    } else {
        e
    }
}

impl Runner<'_> {
    /// Runs and commits one batch of about `rows` rows, with its checkpoint.
    fn batch(
        &mut self,
        client: &mut Client,
        rows: u64,
        save: &mut dyn FnMut(&mut Transaction<'_>, &BackfillCheckpoint) -> Result<()>,
    ) -> Result<Batch> {
        let table = self.table.clone();
        let db = |what: &str| {
            let context = format!("backfill of {table}: {what}");
            move |source| Error::Db { context, source }
        };
        let mut tx = client.transaction().map_err(db("beginning a batch"))?;
        let since_cutoff = begin_batch(
            &mut self.statements,
            &mut tx,
            self.checkpoint.cutoff_xid,
            self.mode,
        )
        .map_err(db("taking a transaction id"))?;
        // The walk moves on only once the batch has committed.
        let mut cursor = self.cursor.clone();
        let (range, cut) = self
            .cut(&mut tx, &mut cursor, rows)
            .map_err(db("finding the batch's upper key"))?;
        let updated = update_range(
            &mut self.statements,
            &mut tx,
            &table,
            &self.set,
            self.walk.keys(),
            &range,
            since_cutoff,
        )
        .map_err(db(match range {
            Range::Keys { .. } => "updating a batch",
            Range::Blocks { .. } => "updating a range of blocks",
        }))?;
        let mut next = self.checkpoint.clone();
        cut.apply(&mut next, updated);
        save(&mut tx, &next)?;
        tx.commit().map_err(db("committing a batch"))?;
        self.cursor = cursor;
        *self.checkpoint = next;
        Ok(Batch {
            rows: cut.walked(updated),
            last: cut.last,
        })
    }

    /// Cuts the next batch of about `rows` rows at `cursor` (the upper key `rows` rows on,
    /// looked up through `client`, or the next blocks), and moves `cursor` past it.
    fn cut(
        &mut self,
        client: &mut impl GenericClient,
        cursor: &mut Cursor,
        rows: u64,
    ) -> std::result::Result<(Range, Cut), postgres::Error> {
        match (&self.walk, cursor) {
            (Walk::Keyset { keys, width }, Cursor::Key(last)) => {
                let upper = upper_key(
                    &mut self.statements,
                    client,
                    &self.table,
                    keys,
                    *width,
                    last.as_deref(),
                    rows,
                )?;
                let (values, key) = match upper {
                    Some((values, text)) => (Some(values), Some(text)),
                    None => (None, None),
                };
                let range = Range::Keys {
                    lower: last.take(),
                    upper: values.clone(),
                };
                *last = values;
                let cut = Cut {
                    rows,
                    last: key.is_none(),
                    key,
                    block: None,
                };
                Ok((range, cut))
            }
            (
                Walk::Blocks {
                    end,
                    rows_per_block,
                },
                Cursor::Block(next),
            ) => {
                let blocks = ((rows as f64 / *rows_per_block).ceil() as i64).max(1);
                let to = (*next + blocks).min(*end);
                let range = Range::Blocks { from: *next, to };
                *next = to;
                let cut = Cut {
                    rows,
                    key: None,
                    block: Some(to),
                    last: to >= *end,
                };
                Ok((range, cut))
            }
            _ => unreachable!("the cursor is made with the walk"),
        }
    }
}

/// The rows one batch updates: keys after `lower` (all, without it) up to and including `upper`
/// (all, without it), or the blocks from `from` up to, not including, `to`.
#[derive(Debug, Clone)]
enum Range {
    Keys {
        lower: Option<Vec<KeyValue>>,
        upper: Option<Vec<KeyValue>>,
    },
    Blocks {
        from: i64,
        to: i64,
    },
}

/// Starts a batch's transaction: turns tandem's trigger off for it (and, in replica mode, the
/// user's), and returns how many transaction ids were assigned since the cutoff, for
/// `age(xmin)`. The xid is assigned here, before age() is first called in the transaction, so
/// that age(xmin) is measured from this batch's own xid. Both settings are local to the
/// transaction, so a batch that never commits leaves nothing set behind it.
fn begin_batch(
    statements: &mut HashMap<String, Statement>,
    tx: &mut impl GenericClient,
    cutoff_xid: i64,
    mode: TriggerMode,
) -> std::result::Result<i32, postgres::Error> {
    let sql = match mode {
        TriggerMode::Origin => {
            "SELECT set_config($1, 'on', true), pg_current_xact_id()::text::bigint - $2"
        }
        TriggerMode::Replica => {
            "SELECT set_config($1, 'on', true), pg_current_xact_id()::text::bigint - $2,
                    set_config('session_replication_role', 'replica', true)"
        }
    };
    let begin = prepared(statements, tx, sql)?;
    let since_cutoff: i64 = tx
        .query_one(&begin, &[&BACKFILL_SETTING, &cutoff_xid])?
        .get(1);
    // Ages are 32-bit; a backfill that outlives 2^31 transactions is not a concern.
    Ok(since_cutoff.clamp(0, i32::MAX as i64 - 1) as i32)
}

/// `$from, $from+1, …` for `n` parameters.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A key in PostgreSQL's binary form, and as text for the checkpoint.
type UpperKey = (Vec<KeyValue>, Vec<String>);

/// The key `rows` rows after `last` (from the start, without it) in the key's order, in
/// PostgreSQL's binary form and as text; `None` when fewer rows are left.
fn upper_key(
    statements: &mut HashMap<String, Statement>,
    client: &mut impl GenericClient,
    table: &str,
    keys: &str,
    width: usize,
    last: Option<&[KeyValue]>,
    rows: u64,
) -> std::result::Result<Option<UpperKey>, postgres::Error> {
    let n = width;
    let after = if last.is_some() {
        format!("WHERE ({keys}) > ({})", placeholders(1, n))
    } else {
        String::new()
    };
    let as_text = (0..n)
        .map(|i| format!("k.k{i}::text"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT k.*, {as_text} FROM (SELECT {keys} FROM {table} {after} ORDER BY {keys} LIMIT 1 OFFSET ${}) AS k({})",
        if last.is_some() { n + 1 } else { 1 },
        (0..n).map(|i| format!("k{i}")).collect::<Vec<_>>().join(", "),
    );
    let offset = rows as i64 - 1;
    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
    if let Some(l) = last {
        params.extend(l.iter().map(|v| v as &(dyn ToSql + Sync)));
    }
    params.push(&offset);
    let statement = prepared(statements, client, &sql)?;
    Ok(client.query_opt(&statement, &params)?.map(|r| {
        (
            (0..n).map(|i| r.get::<_, KeyValue>(i)).collect(),
            (n..2 * n).map(|i| r.get::<_, String>(i)).collect(),
        )
    }))
}

/// Updates the rows of `range` that existed before the cutoff (`keys` are the quoted key
/// columns of a keyset range); returns how many it updated.
fn update_range(
    statements: &mut HashMap<String, Statement>,
    tx: &mut impl GenericClient,
    table: &str,
    set: &str,
    keys: &str,
    range: &Range,
    since_cutoff: i32,
) -> std::result::Result<u64, postgres::Error> {
    match range {
        Range::Keys { lower, upper } => {
            let mut conds = Vec::new();
            let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
            if let Some(l) = lower {
                conds.push(format!("({keys}) > ({})", placeholders(1, l.len())));
                params.extend(l.iter().map(|v| v as &(dyn ToSql + Sync)));
            }
            if let Some(u) = upper {
                conds.push(format!(
                    "({keys}) <= ({})",
                    placeholders(params.len() + 1, u.len())
                ));
                params.extend(u.iter().map(|v| v as &(dyn ToSql + Sync)));
            }
            conds.push(format!("age(xmin) > ${}", params.len() + 1));
            params.push(&since_cutoff);
            let sql = format!("UPDATE {table} SET {set} WHERE {}", conds.join(" AND "));
            let statement = prepared(statements, tx, &sql)?;
            tx.execute(&statement, &params)
        }
        Range::Blocks { from, to } => tx.execute(
            &format!(
                "UPDATE {table} SET {set} WHERE ctid >= '({from},0)'::tid AND ctid < '({to},0)'::tid AND age(xmin) > $1"
            ),
            &[&since_cutoff],
        ),
    }
}

/// The statement for `sql`, prepared on first use.
fn prepared(
    cache: &mut HashMap<String, Statement>,
    tx: &mut impl GenericClient,
    sql: &str,
) -> std::result::Result<Statement, postgres::Error> {
    if let Some(s) = cache.get(sql) {
        return Ok(s.clone());
    }
    let s = tx.prepare(sql)?;
    cache.insert(sql.to_string(), s.clone());
    Ok(s)
}

/// The checkpoint's key, read back in the key columns' own types.
fn key_from_text(
    client: &mut Client,
    physical: &Schema,
    backfill: &Backfill,
    text: &[String],
) -> Result<Vec<KeyValue>> {
    let t = physical
        .table(&backfill.table)
        .ok_or_else(|| Error::Other(format!("backfill: table {:?} is gone", backfill.table)))?;
    let casts = backfill
        .key
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let ty = t.column(k).map(|c| c.data_type.as_str()).ok_or_else(|| {
                Error::Other(format!(
                    "backfill: key column {k:?} of {:?} is gone",
                    backfill.table
                ))
            })?;
            Ok(format!("($1::text[])[{}]::{ty}", i + 1))
        })
        .collect::<Result<Vec<_>>>()?;
    let row = client
        .query_one(&format!("SELECT {}", casts.join(", ")), &[&text])
        .map_err(|source| Error::Db {
            context: format!(
                "backfill of {}: reading the checkpoint's key",
                backfill.table
            ),
            source,
        })?;
    Ok((0..text.len()).map(|i| row.get::<_, KeyValue>(i)).collect())
}

/// Whether continuing later can get past the error: the connection went, the server is shutting
/// down or cancelled the statement (SQLSTATE classes 08 and 57), or locks stayed busy.
fn resumable(e: &Error) -> bool {
    match e {
        Error::LockRetriesExhausted { .. } => true,
        Error::Db { source, .. } => match source.code() {
            None => true,
            Some(code) => ["08", "57"].iter().any(|c| code.code().starts_with(c)),
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adaptive() -> BatchSize {
        BatchSize::new(&BackfillOptions::default())
    }

    #[test]
    fn the_size_reaches_the_target_in_a_few_batches() {
        // 5 µs a row: the target of 150 ms is 30,000 rows.
        let mut size = adaptive();
        let mut batches = 0;
        while size.rows < 25_000 {
            size.adapt(Duration::from_micros(5 * size.rows));
            batches += 1;
        }
        assert_eq!(batches, 2, "1,000 → 8,000 → 30,000");
        size.adapt(Duration::from_micros(5 * size.rows));
        assert_eq!(size.rows, 30_000, "at the target the size stays put");
    }

    #[test]
    fn a_slow_batch_shrinks_the_size_at_most_fourfold() {
        let mut size = adaptive();
        size.rows = 40_000;
        size.adapt(Duration::from_secs(10));
        assert_eq!(size.rows, 10_000);
        size.rows = 200;
        size.adapt(Duration::from_secs(10));
        assert_eq!(size.rows, MIN_BATCH);
    }

    #[test]
    fn a_fixed_size_never_moves() {
        let mut size = BatchSize::new(&BackfillOptions {
            batch_size: Some(500),
            ..BackfillOptions::default()
        });
        size.adapt(Duration::from_secs(10));
        size.adapt(Duration::from_micros(1));
        assert_eq!(size.rows, 500);
    }
}
