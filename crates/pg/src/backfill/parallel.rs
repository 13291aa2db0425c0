//! The backfill with several workers (`BackfillOptions::workers`). One UPDATE runs on one core
//! of the server; on a table of many millions of rows a server with cores to spare can update
//! disjoint ranges at once.
//!
//! The coordinator (the engine's own session) cuts the walk into the same batches a single
//! session would (the next upper key `n` rows on, or the next blocks), numbers them, and hands
//! them to worker sessions, at most one each, so at most `workers` batches run at a time. A
//! worker runs its batch as a batch always runs: its own short transaction, the trigger turned
//! off for it (and the user's, in the mode the single session would use), only rows from before
//! the cutoff. Batches commit in any order; the checkpoint,
//! saved by the coordinator in a transaction of its own after each commit, moves only over the
//! longest run of committed batches from where the walk started. After an interruption the walk
//! resumes there, and a batch past that point that had already committed is walked again but
//! updates nothing: its rows now carry an xmin after the cutoff.
//!
//! What a single session does between batches the coordinator does between handing them out:
//! it yields to the same conditions (work in flight finishes), retries a batch that could not
//! get its row locks, rests after a slow batch, and adapts the size from each batch's time.

use super::{
    begin_batch, progress_event, resumable_or, slow_batch, update_range, yield_to, BackfillOptions,
    BatchSize, Cut, Range, Runner, TriggerMode, Yielding,
};
use crate::connect::{connect, ConnectOptions};
use crate::error::{Error, Result};
use crate::events::OnEvent;
use crate::locks::{is_lock_timeout, wait_before_retry, RetryPolicy};
use crate::state::BackfillCheckpoint;
use crate::throttle::{Hold, YieldAction};
use postgres::{Client, Statement, Transaction};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tandem_plan::Lock;

/// What the coordinator works with: the run's position, and the options, callbacks and session
/// of `backfill::run`, with its way of reporting (`rate`, `announce`, `interrupted`).
pub(super) struct Coordinator<'c, 'r, 'w> {
    pub client: &'c mut Client,
    pub runner: &'c mut Runner<'r>,
    pub yielding: &'c mut Yielding<'w>,
    pub size: &'c mut BatchSize,
    pub opts: &'c BackfillOptions,
    pub policy: &'c RetryPolicy,
    pub on_event: OnEvent<'c>,
    pub save: &'c mut dyn FnMut(&mut Transaction<'_>, &BackfillCheckpoint) -> Result<()>,
    pub table: &'c str,
    pub columns: &'c str,
    /// `backfill of <table>`, for messages and lock retries.
    pub what: &'c str,
    pub lock: &'c Lock,
    /// Rows/s of this run after walking this many rows.
    pub rate: &'c dyn Fn(u64) -> f64,
    pub announce: &'c dyn Fn(YieldAction, &Hold),
    pub interrupted: &'c dyn Fn(i64, Error) -> Error,
}

/// One batch handed to a worker.
struct Job {
    index: u64,
    range: Range,
}

/// What a worker did with a job.
struct Outcome {
    job: Job,
    result: std::result::Result<u64, postgres::Error>,
    took: Duration,
}

/// Runs the backfill with `opts.workers` sessions opened with `connect`.
pub(super) fn drive(c: Coordinator<'_, '_, '_>, connect_options: &ConnectOptions) -> Result<u64> {
    let sessions = (0..c.opts.workers)
        .map(|_| connect(connect_options))
        .collect::<Result<Vec<Client>>>()?;
    let (cutoff, mode) = (c.runner.checkpoint.cutoff_xid, c.runner.mode);
    let (table, set, keys) = (
        c.runner.table.clone(),
        c.runner.set.clone(),
        c.runner.walk.keys().to_string(),
    );
    let (jobs, job_queue) = channel::<Job>();
    let job_queue = Mutex::new(job_queue);
    let (outcomes, finished) = channel::<Outcome>();
    std::thread::scope(|scope| {
        for mut session in sessions {
            let (outcomes, job_queue) = (outcomes.clone(), &job_queue);
            let (table, set, keys) = (&table, &set, &keys);
            scope.spawn(move || {
                work(
                    &mut session,
                    cutoff,
                    mode,
                    table,
                    set,
                    keys,
                    job_queue,
                    &outcomes,
                )
            });
        }
        drop(outcomes);
        let result = coordinate(c, &jobs, &finished);
        // The queue closes, and the workers end once their batch (if any) is done.
        drop(jobs);
        result
    })
}

/// A worker: runs each job it takes as one batch transaction, until the queue closes.
#[allow(clippy::too_many_arguments)]
fn work(
    client: &mut Client,
    cutoff: i64,
    mode: TriggerMode,
    table: &str,
    set: &str,
    keys: &str,
    queue: &Mutex<Receiver<Job>>,
    outcomes: &Sender<Outcome>,
) {
    let mut statements: HashMap<String, Statement> = HashMap::new();
    loop {
        let job = match queue.lock().unwrap_or_else(PoisonError::into_inner).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let t = Instant::now();
        let result = (|| {
            let mut tx = client.transaction()?;
            let since_cutoff = begin_batch(&mut statements, &mut tx, cutoff, mode)?;
            let updated = update_range(
                &mut statements,
                &mut tx,
                table,
                set,
                keys,
                &job.range,
                since_cutoff,
            )?;
            tx.commit()?;
            Ok(updated)
        })();
        let outcome = Outcome {
            job,
            result,
            took: t.elapsed(),
        };
        if outcomes.send(outcome).is_err() {
            return;
        }
    }
}

fn coordinate(
    c: Coordinator<'_, '_, '_>,
    jobs: &Sender<Job>,
    finished: &Receiver<Outcome>,
) -> Result<u64> {
    let Coordinator {
        client,
        runner,
        yielding,
        size,
        opts,
        policy,
        on_event,
        save,
        table,
        columns,
        what,
        lock,
        rate,
        announce,
        interrupted,
    } = c;
    let mut cursor = runner.cursor.clone();
    // Batches handed out and not yet part of the checkpoint, with the rows each updated once
    // it has committed.
    let mut ledger: BTreeMap<u64, (Cut, Option<u64>)> = BTreeMap::new();
    let mut retry: VecDeque<Job> = VecDeque::new();
    let mut exhausted = false;
    let (mut next_index, mut in_flight, mut batches, mut walked, mut attempt) =
        (0u64, 0, 0u64, 0u64, 0);
    // Progress counts every committed batch, ahead of the checkpoint or not, on top of what
    // earlier runs did.
    let done_before = runner.checkpoint.rows_done.max(0) as u64;
    let mut stop: Option<Error> = None;
    let mut hooked = false;
    let mut rest_until: Option<Instant> = None;
    loop {
        while stop.is_none() && in_flight < opts.workers && (!retry.is_empty() || !exhausted) {
            if let Some(until) = rest_until.take() {
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
            }
            if let Err(e) = yielding.wait(
                client,
                runner.checkpoint,
                rate(walked),
                save,
                announce,
                opts.recheck,
            ) {
                stop = Some(e);
                break;
            }
            let job = match retry.pop_front() {
                Some(job) => job,
                None => match runner.cut(client, &mut cursor, size.rows) {
                    Ok((range, cut)) => {
                        exhausted = cut.last;
                        ledger.insert(next_index, (cut, None));
                        next_index += 1;
                        Job {
                            index: next_index - 1,
                            range,
                        }
                    }
                    Err(source) => {
                        stop = Some(Error::Db {
                            context: format!("{what}: finding the batch's upper key"),
                            source,
                        });
                        break;
                    }
                },
            };
            if jobs.send(job).is_err() {
                stop = Some(Error::Other(format!("{what}: its workers stopped")));
                break;
            }
            in_flight += 1;
            if !opts.delay.is_zero() {
                opts.pause(opts.delay);
            }
        }
        if in_flight == 0 {
            break;
        }
        let Ok(Outcome { job, result, took }) = finished.recv() else {
            stop.get_or_insert(Error::Other(format!("{what}: its workers stopped")));
            break;
        };
        in_flight -= 1;
        let updated = match result {
            Ok(updated) => updated,
            Err(source) if is_lock_timeout(&source) && stop.is_none() => {
                attempt += 1;
                if attempt == 1 {
                    if let Err(e) = yielding.lock_wait(
                        client,
                        &runner.table,
                        runner.checkpoint,
                        rate(walked),
                        save,
                        announce,
                    ) {
                        stop = Some(e);
                        continue;
                    }
                }
                match wait_before_retry(client, what, Some(lock.clone()), attempt, policy, on_event)
                {
                    Ok(()) => retry.push_back(job),
                    Err(e) => stop = Some(e),
                }
                continue;
            }
            Err(source) => {
                stop.get_or_insert(Error::Db {
                    context: format!("{what}: updating a batch"),
                    source,
                });
                continue;
            }
        };
        attempt = 0;
        yielding.resume(announce);
        batches += 1;
        let (cut, done) = ledger
            .get_mut(&job.index)
            .expect("a job handed out has its entry");
        *done = Some(updated);
        walked += cut.walked(updated);
        if !cut.last {
            size.adapt(took);
        }
        if let Err(e) = advance(client, runner.checkpoint, &mut ledger, rate(walked), save) {
            stop.get_or_insert(e);
            continue;
        }
        on_event(&progress_event(
            table,
            columns,
            runner.checkpoint,
            done_before + walked,
            rate(walked),
            size.rows,
        ));
        // Test-only: a crash between batches (see `locks::kill_point`).
        crate::locks::kill_point(tandem_plan::Phase::Start);
        if opts.stop_requested() && stop.is_none() {
            // Asked to stop: the batches in flight finish, and no new one is handed out.
            stop = Some(Error::StopRequested);
            hooked = true;
        }
        if opts.stop_after_batches == Some(batches) && stop.is_none() {
            stop = Some(Error::Other(format!(
                "stopped by the test hook after {batches} batches"
            )));
            hooked = true;
        }
        if let Some(hold) = slow_batch(opts, took) {
            if let Err(e) = yield_to(
                client,
                runner.checkpoint,
                &hold,
                rate(walked),
                save,
                announce,
            ) {
                stop.get_or_insert(e);
                continue;
            }
            rest_until = Some(Instant::now() + took);
        }
    }
    match stop {
        None if runner.checkpoint.done => Ok(walked),
        None => Err(interrupted(
            runner.checkpoint.rows_done,
            Error::Other(format!(
                "{what}: the walk ended before its last batch committed"
            )),
        )),
        // Interrupted with the checkpoint as it stands once the batches in flight finished.
        Some(e) if hooked => Err(interrupted(runner.checkpoint.rows_done, e)),
        Some(e) => Err(resumable_or(e, interrupted, runner.checkpoint.rows_done)),
    }
}

/// Moves the checkpoint over the committed batches at the front of the ledger, and saves it in
/// a transaction of its own when it moved.
fn advance(
    client: &mut Client,
    checkpoint: &mut BackfillCheckpoint,
    ledger: &mut BTreeMap<u64, (Cut, Option<u64>)>,
    rate: f64,
    save: &mut dyn FnMut(&mut Transaction<'_>, &BackfillCheckpoint) -> Result<()>,
) -> Result<()> {
    let mut next = checkpoint.clone();
    let mut moved = false;
    while let Some(entry) = ledger.first_entry() {
        let Some(updated) = entry.get().1 else {
            break;
        };
        entry.remove().0.apply(&mut next, updated);
        moved = true;
    }
    if !moved {
        return Ok(());
    }
    next.rows_per_second = Some(rate);
    next.yield_state = None;
    next.yield_cause = None;
    next.yield_reason = None;
    let context = || format!("backfill of {}: saving its checkpoint", next.table);
    let mut tx = client.transaction().map_err(|source| Error::Db {
        context: context(),
        source,
    })?;
    save(&mut tx, &next)?;
    tx.commit().map_err(|source| Error::Db {
        context: context(),
        source,
    })?;
    *checkpoint = next;
    Ok(())
}
