//! What a backfill yields to between batches (`crate::throttle`): it pauses while a standby
//! lags, a slot retains too much WAL, autovacuum fights wraparound on the table or its own batch
//! cannot get its locks, and rests after a batch far slower than its target. Each pause is
//! recorded in the checkpoint's row, so `status` and `monitor` can say why it waits.

use super::walk::BatchSize;
use super::{BackfillOptions, Run};
use crate::error::{Error, Result};
use crate::locks::lock_holders;
use crate::state::BackfillCheckpoint;
use crate::throttle::{Hold, Watch, YieldAction, SLOW_FACTOR};
use postgres::Client;
use std::time::{Duration, Instant};

/// The conditions the backfill yields to are looked at before a batch when this long has
/// passed since they were last looked at.
const CHECK_EVERY: Duration = Duration::from_millis(200);

/// A batch far slower than the target, when the size adapts (a fixed size is the user's
/// choice, whatever it takes).
pub(super) fn slow_batch(opts: &BackfillOptions, took: Duration) -> Option<Hold> {
    (opts.batch_size.is_none() && took > opts.target * SLOW_FACTOR).then_some(Hold::SlowBatch {
        took_ms: took.as_millis() as u64,
        target_ms: opts.target.as_millis() as u64,
    })
}

/// What the backfill yields to between batches, looked at no more often than `CHECK_EVERY`, so
/// that watching costs short batches little.
pub(super) struct Yielding<'w> {
    watch: &'w Watch,
    /// What it yields to right now, as last recorded in its checkpoint.
    holding: Option<Hold>,
    last_check: Option<Instant>,
}

impl<'w> Yielding<'w> {
    pub fn new(watch: &'w Watch) -> Self {
        Yielding {
            watch,
            holding: None,
            last_check: None,
        }
    }

    /// Waits, without losing the place, while something the backfill yields to holds: records
    /// each new cause in the checkpoint and announces it, and announces when it may go on.
    pub fn wait(
        &mut self,
        client: &mut Client,
        checkpoint: &mut BackfillCheckpoint,
        run: &mut Run<'_>,
    ) -> Result<()> {
        while self.last_check.is_none_or(|t| t.elapsed() >= CHECK_EVERY) {
            self.last_check = Some(Instant::now());
            let Some(hold) = self.watch.check(client)?.into_iter().next() else {
                break;
            };
            if self.holding.as_ref().map(Hold::cause) != Some(hold.cause()) {
                yield_to(client, checkpoint, &hold, run)?;
            }
            self.holding = Some(hold);
            std::thread::sleep(run.opts.recheck);
            self.last_check = None;
        }
        self.resume(run);
        Ok(())
    }

    /// A batch could not get its row locks (its first `lock_timeout` in a row): records and
    /// announces a pause for the lock's holders, which lasts until a batch commits.
    pub fn lock_wait(
        &mut self,
        client: &mut Client,
        checkpoint: &mut BackfillCheckpoint,
        run: &mut Run<'_>,
    ) -> Result<()> {
        let hold = Hold::LockWait {
            holders: lock_holders(client, &run.lock.relation),
        };
        yield_to(client, checkpoint, &hold, run)?;
        self.holding = Some(hold);
        Ok(())
    }

    /// Announces that what held the backfill no longer does, if something did.
    pub fn resume(&mut self, run: &Run<'_>) {
        if let Some(hold) = self.holding.take() {
            run.announce(YieldAction::Resumed, &hold);
        }
    }
}

/// Records in the checkpoint's row, in a transaction of its own, that the backfill yields to
/// `hold`, with its rate so far (the position is saved unchanged), then announces it.
pub(super) fn yield_to(
    client: &mut Client,
    checkpoint: &mut BackfillCheckpoint,
    hold: &Hold,
    run: &mut Run<'_>,
) -> Result<()> {
    checkpoint.rows_per_second = Some(run.rate());
    checkpoint.yield_state = Some(hold.action().name().to_string());
    checkpoint.yield_cause = Some(hold.cause().to_string());
    checkpoint.yield_reason = Some(hold.describe());
    run.save_alone(client, checkpoint, "recording that it yields")?;
    run.announce(hold.action(), hold);
    Ok(())
}

/// Whether continuing later can get past the error: the connection went, the server is shutting
/// down or cancelled the statement (SQLSTATE classes 08 and 57), or locks stayed busy.
pub(super) fn resumable(e: &Error) -> bool {
    match e {
        Error::LockRetriesExhausted { .. } => true,
        Error::Db { source, .. } => match source.code() {
            None => true,
            Some(code) => ["08", "57"].iter().any(|c| code.code().starts_with(c)),
        },
        _ => false,
    }
}

/// Whether `e` is the server cancelling a statement for `statement_timeout`: SQLSTATE 57014 with
/// PostgreSQL's words for it, or (where messages are translated) after at least nine tenths of
/// the session's timeout.
pub(super) fn is_statement_timeout(
    e: &postgres::Error,
    took: Duration,
    timeout: Option<Duration>,
) -> bool {
    e.code() == Some(&postgres::error::SqlState::QUERY_CANCELED)
        && timeout.is_some_and(|t| {
            e.as_db_error()
                .is_some_and(|d| d.message().contains("statement timeout"))
                || took >= t.mul_f64(0.9)
        })
}

/// A batch ran into `statement_timeout`: cuts `size` to a quarter and says the size it goes
/// on with, or gives the error that stops it because it cannot get smaller.
pub(super) fn statement_timeout_said(
    run: &Run<'_>,
    size: &mut BatchSize,
    timeout: Option<Duration>,
) -> std::result::Result<String, Error> {
    let before = size.rows;
    let now = size.timed_out();
    let limit = timeout.map_or_else(String::new, |t| format!(" ({} ms)", t.as_millis()));
    match now {
        Some(now) => Ok(format!(
            "{}: a batch of {before} rows ran longer than statement_timeout{limit}, which the role, the database or the connection sets; batches are now {now} rows",
            run.what
        )),
        None => Err(Error::Other(format!(
            "{}: a batch of {before} rows, the fewest it takes, ran longer than statement_timeout{limit}, which the role, the database or the connection sets. Raise it for tandem's sessions, for example with PGOPTIONS='-c statement_timeout=5min' (or ALTER ROLE ... SET statement_timeout), then run start again to continue",
            run.what
        ))),
    }
}
