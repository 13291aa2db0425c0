//! The backfill run by the engine's own session: one batch after the other, each its own
//! transaction that also saves the checkpoint, so a batch and the record of it commit together.

use super::sql::{begin_batch, update_range};
use super::walk::{Batch, BatchSize, Range, Walker};
use super::yielding::{
    is_statement_timeout, resumable, slow_batch, statement_timeout_said, yield_to, Yielding,
};
use super::{Run, Save};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::locks::is_lock_timeout;
use postgres::Client;
use std::time::Instant;

/// Runs the batches from the walker's position to the end of the walk.
pub(super) fn drive(
    client: &mut Client,
    walker: &mut Walker<'_>,
    yielding: &mut Yielding<'_>,
    run: &mut Run<'_>,
) -> Result<u64> {
    let opts = run.opts;
    let mut size = BatchSize::new(opts, walker.statement_timeout);
    let mut attempt = 0;
    loop {
        if opts.stop_requested() {
            return Err(run.interrupted(walker.checkpoint.rows_done, Error::StopRequested));
        }
        yielding
            .wait(client, walker.checkpoint, run)
            .map_err(|e| run.resumable_or(e, walker.checkpoint.rows_done))?;
        // The batch's checkpoint records that it runs freely again.
        walker.checkpoint.rows_per_second = (run.walked > 0).then(|| run.rate());
        walker.checkpoint.yield_state = None;
        walker.checkpoint.yield_cause = None;
        walker.checkpoint.yield_reason = None;
        let t = Instant::now();
        let batch = match walker.batch(client, size.rows, run.save) {
            Ok(b) => b,
            Err(Error::Db { source, .. })
                if is_statement_timeout(&source, t.elapsed(), walker.statement_timeout) =>
            {
                match statement_timeout_said(run, &mut size, walker.statement_timeout) {
                    Ok(message) => (run.on_event)(&Event::Info { message }),
                    Err(e) => return Err(run.interrupted(walker.checkpoint.rows_done, e)),
                }
                continue;
            }
            Err(Error::Db { source, .. }) if is_lock_timeout(&source) => {
                attempt += 1;
                if attempt == 1 {
                    yielding
                        .lock_wait(client, walker.checkpoint, run)
                        .map_err(|e| run.resumable_or(e, walker.checkpoint.rows_done))?;
                }
                run.wait_before_retry(client, attempt)
                    .map_err(|e| run.interrupted(walker.checkpoint.rows_done, e))?;
                continue;
            }
            Err(e) if resumable(&e) => return Err(run.interrupted(walker.checkpoint.rows_done, e)),
            Err(e) => return Err(e),
        };
        let took = t.elapsed();
        attempt = 0;
        yielding.resume(run);
        run.batches += 1;
        run.walked += batch.rows;
        if !batch.last {
            size.adapt(took);
        }
        let done = walker.checkpoint.rows_done.max(0) as u64;
        run.progress(walker.checkpoint, done, size.rows, 1);
        // Test-only: a crash between batches (see `locks::kill_point`).
        crate::locks::kill_point(tandem_plan::Phase::Start);
        if batch.last {
            return Ok(run.walked);
        }
        if opts.stop_after_batches == Some(run.batches) {
            return Err(run.interrupted(
                walker.checkpoint.rows_done,
                Error::Other(format!(
                    "stopped by the test hook after {} batches",
                    run.batches
                )),
            ));
        }
        if !opts.delay.is_zero() {
            opts.pause(opts.delay);
        }
        if let Some(hold) = slow_batch(opts, took) {
            // The server became slow to serve a batch sized for the target: rest as long as
            // the batch took, which at least halves what the backfill asks of it while the
            // size shrinks, and say so.
            yield_to(client, walker.checkpoint, &hold, run)
                .map_err(|e| run.resumable_or(e, walker.checkpoint.rows_done))?;
            std::thread::sleep(took);
        }
    }
}

impl Walker<'_> {
    /// Runs and commits one batch of about `rows` rows, with its checkpoint.
    pub fn batch(&mut self, client: &mut Client, rows: u64, save: Save<'_>) -> Result<Batch> {
        let table = self.sql.table.clone();
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
            &self.sql,
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
}
