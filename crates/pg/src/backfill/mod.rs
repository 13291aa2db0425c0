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
//! # Rows the trigger already wrote are skipped
//!
//! Right after the start steps commit, the engine records the cutoff xid `X` (the snapshot's
//! xmax) with the checkpoints; a batch updates only rows whose xmin is older than `X`, since
//! every row written since went through the trigger. Why that is sound, and what it does not
//! cover (a rewriting `ALTER TABLE` run by someone else during the backfill), is argued in
//! `docs/design/backfill-cutoff.md`.

//!
//! # The files
//!
//! - `walk`: the walk (by key or by blocks), the batch size and what each UPDATE assigns,
//!   worked out when a run begins;
//! - `sql`: the statements of a batch and the key values they bind;
//! - `session`: the batches run one after the other by the engine's own session;
//! - `parallel`: the batches run by several worker sessions;
//! - `sessions`: how many sessions, grown and shrunk from what the server and the application
//!   leave free;
//! - `yielding`: what the backfill pauses for between batches;
//! - `triggers`: the user's triggers, kept out of the batches' way.

use crate::connect::ConnectOptions;
use crate::error::{Error, Result};
use crate::events::{Event, OnEvent};
use crate::locks::RetryPolicy;
use crate::state::BackfillCheckpoint;
use crate::throttle::{Hold, Limits, Watch, YieldAction};
use postgres::{Client, Transaction};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tandem_model::Schema;
use tandem_plan::{Backfill, Lock, LockMode};

mod parallel;
mod session;
mod sessions;
mod sql;
pub mod triggers;
mod walk;
mod yielding;

pub use triggers::TriggerMode;
pub use walk::self_assigned_columns;
use walk::Walker;
use yielding::{resumable, Yielding};

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
    /// The most sessions updating batches at once. With more than one, disjoint key (or block)
    /// ranges are updated in parallel by sessions of their own, and the checkpoint follows the
    /// longest run of committed ranges from the start; see `parallel`. Unless `fixed_workers`,
    /// the backfill starts with one and adds sessions while they make it faster and nobody
    /// waits on its locks; see `sessions`.
    pub workers: usize,
    /// Run exactly `workers` sessions from the first batch on.
    pub fixed_workers: bool,
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
            workers: 4,
            fixed_workers: false,
            stop_after_batches: None,
            stop: None,
        }
    }
}

/// Records a backfill's checkpoint in the transaction it is given.
pub type Save<'s> = &'s mut dyn FnMut(&mut Transaction<'_>, &BackfillCheckpoint) -> Result<()>;

/// One run of one backfill, as the single session and the workers' coordinator both drive it:
/// what it reports as, how it saves its checkpoint, and how far this run has come.
pub(super) struct Run<'a> {
    /// The table, as the migration names it (for events and errors).
    pub table: String,
    /// The columns it fills, joined, for progress events.
    pub columns: String,
    /// `backfill of <table>`, for messages and lock retries.
    pub what: String,
    /// The lock each batch takes, for lock retries.
    pub lock: Lock,
    pub opts: &'a BackfillOptions,
    pub policy: &'a RetryPolicy,
    pub on_event: OnEvent<'a>,
    pub save: Save<'a>,
    began: Instant,
    /// Rows walked and batches committed by this run.
    pub walked: u64,
    pub batches: u64,
}

impl Run<'_> {
    /// After the `attempt`-th lock timeout of a batch: `locks::wait_before_retry` for this
    /// run's lock, which reports the retry and sleeps, or fails once the attempts are used up.
    pub fn wait_before_retry(&self, client: &mut Client, attempt: u32) -> Result<()> {
        crate::locks::wait_before_retry(
            client,
            &self.what,
            Some(self.lock.clone()),
            attempt,
            self.policy,
            self.on_event,
        )
    }

    /// Rows/s of this run so far.
    pub fn rate(&self) -> f64 {
        self.walked as f64 / self.began.elapsed().as_secs_f64().max(1e-3)
    }

    /// Says that the backfill yields to `hold`, or no longer does.
    pub fn announce(&self, action: YieldAction, hold: &Hold) {
        (self.on_event)(&Event::BackfillYield {
            table: self.table.clone(),
            action,
            reason: hold.describe(),
            hold: hold.clone(),
        })
    }

    /// The run stopped at `rows_done` because of `source`; a later run continues there.
    pub fn interrupted(&self, rows_done: i64, source: Error) -> Error {
        Error::BackfillInterrupted {
            table: self.table.clone(),
            rows_done: rows_done.max(0) as u64,
            source: Box::new(source),
        }
    }

    /// `e` as an interruption when a later run can get past it, else as it is.
    pub fn resumable_or(&self, e: Error, rows_done: i64) -> Error {
        if resumable(&e) {
            self.interrupted(rows_done, e)
        } else {
            e
        }
    }

    /// The progress event after a batch: `done` rows of the checkpoint's estimate.
    pub fn progress(
        &self,
        checkpoint: &BackfillCheckpoint,
        done: u64,
        batch_size: u64,
        sessions: usize,
    ) {
        let estimate = if checkpoint.done {
            done
        } else {
            (checkpoint.rows_estimate.max(0) as u64).max(done)
        };
        let per_second = self.rate() as u64;
        (self.on_event)(&Event::Backfill {
            table: self.table.clone(),
            column: self.columns.clone(),
            rows_done: done,
            rows_total_estimate: estimate,
            rows_per_second: per_second,
            eta_seconds: (per_second > 0 && !checkpoint.done)
                .then(|| (estimate - done) / per_second),
            batch_size,
            sessions,
            done: checkpoint.done,
        });
    }

    /// Saves `checkpoint` in a transaction of its own (`doing` says what for, in errors).
    pub fn save_alone(
        &mut self,
        client: &mut Client,
        checkpoint: &BackfillCheckpoint,
        doing: &str,
    ) -> Result<()> {
        let context = || format!("{}: {doing}", self.what);
        let mut tx = client.transaction().map_err(|source| Error::Db {
            context: context(),
            source,
        })?;
        (self.save)(&mut tx, checkpoint)?;
        tx.commit().map_err(|source| Error::Db {
            context: context(),
            source,
        })
    }
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
    save: Save<'_>,
    connect: Option<&ConnectOptions>,
) -> Result<u64> {
    if checkpoint.done {
        return Ok(0);
    }
    let mut walker = Walker::begin(client, physical, backfill, checkpoint, mode)?;
    let mut run = Run {
        table: backfill.table.clone(),
        columns: backfill
            .assignments
            .iter()
            .map(|(c, _)| c.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        what: format!("backfill of {}", backfill.table),
        lock: Lock {
            mode: LockMode::RowExclusive,
            relation: walker.sql.table.clone(),
        },
        opts,
        policy,
        on_event,
        save,
        began: Instant::now(),
        walked: 0,
        batches: 0,
    };
    // What an earlier run last recorded (a pause, its rate) is not what this run does: until
    // its first batch commits, the checkpoint says only how far the backfill has come, so
    // `status` and `monitor` do not show an old pause reason or an ETA from an old rate.
    let checkpoint = &mut *walker.checkpoint;
    if checkpoint.yield_state.is_some() || checkpoint.rows_per_second.is_some() {
        checkpoint.yield_state = None;
        checkpoint.yield_cause = None;
        checkpoint.yield_reason = None;
        checkpoint.yield_since = None;
        checkpoint.rows_per_second = None;
        run.save_alone(client, checkpoint, "clearing the last run's state")?;
    }
    let watch = Watch::new(
        client,
        &walker.sql.table,
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
    let mut yielding = Yielding::new(&watch);
    if opts.workers > 1 {
        match connect {
            Some(connect) => {
                return parallel::drive(client, &mut walker, &mut yielding, &mut run, connect)
            }
            None if opts.fixed_workers => {
                return Err(Error::Other(format!(
                    "backfill of {}: {} workers need to open sessions of their own, and no connection options were given",
                    backfill.table, opts.workers
                )))
            }
            // Without a way to open more sessions, the engine's own is the only one.
            None => {}
        }
    }
    session::drive(client, &mut walker, &mut yielding, &mut run)
}
