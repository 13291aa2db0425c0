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

use super::sessions::Sessions;
use super::sql::{begin_batch, update_range, BatchSql};
use super::walk::{BatchSize, Cut, Range, Walker};
use super::yielding::{
    is_statement_timeout, slow_batch, statement_timeout_said, yield_to, Yielding,
};
use super::{Run, TriggerMode};
use crate::connect::{connect, ConnectOptions};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::locks::is_lock_timeout;
use crate::state::BackfillCheckpoint;
use postgres::{Client, Statement};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// One batch handed to a worker.
struct Job {
    index: u64,
    range: Range,
    /// Run without `statement_timeout`: the batch ran into it once, and its range was cut
    /// before the size shrank.
    untimed: bool,
}

/// What a worker did with a job.
struct Outcome {
    job: Job,
    result: std::result::Result<u64, postgres::Error>,
    took: Duration,
}

/// Runs the backfill with up to `run.opts.workers` sessions opened with `connect_options`, as
/// many at a time as `sessions::Sessions` allows; the engine's own session (`client`)
/// coordinates them.
pub(super) fn drive(
    client: &mut Client,
    walker: &mut Walker<'_>,
    yielding: &mut Yielding<'_>,
    run: &mut Run<'_>,
    connect_options: &ConnectOptions,
) -> Result<u64> {
    let (cutoff, mode, sql) = (
        walker.checkpoint.cutoff_xid,
        walker.mode,
        walker.sql.clone(),
    );
    let (jobs, job_queue) = channel::<Job>();
    let job_queue = Mutex::new(job_queue);
    let (outcomes, finished) = channel::<Outcome>();
    std::thread::scope(|scope| {
        // Opens one more worker session; returns its backend's pid.
        let mut open = || -> Result<i32> {
            let mut session = connect(connect_options)?;
            let pid: i32 = session
                .query_one("SELECT pg_backend_pid()", &[])
                .map_err(|source| Error::Db {
                    context: "backfill: opening a worker session".into(),
                    source,
                })?
                .get(0);
            let (outcomes, job_queue, sql) = (outcomes.clone(), &job_queue, &sql);
            scope.spawn(move || work(&mut session, cutoff, mode, sql, job_queue, &outcomes));
            Ok(pid)
        };
        let result = coordinate(client, walker, yielding, run, &jobs, &finished, &mut open);
        // The queue closes, and the workers end once their batch (if any) is done.
        drop(jobs);
        result
    })
}

/// A worker: runs each job it takes as one batch transaction, until the queue closes.
fn work(
    client: &mut Client,
    cutoff: i64,
    mode: TriggerMode,
    sql: &BatchSql,
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
            if job.untimed {
                tx.batch_execute("SET LOCAL statement_timeout = 0")?;
            }
            let since_cutoff = begin_batch(&mut statements, &mut tx, cutoff, mode)?;
            let updated = update_range(&mut statements, &mut tx, sql, &job.range, since_cutoff)?;
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

/// Hands out batches to the workers and follows them with the checkpoint, until the walk is done
/// or something stops it.
fn coordinate(
    client: &mut Client,
    walker: &mut Walker<'_>,
    yielding: &mut Yielding<'_>,
    run: &mut Run<'_>,
    jobs: &Sender<Job>,
    finished: &Receiver<Outcome>,
    open: &mut dyn FnMut() -> Result<i32>,
) -> Result<u64> {
    let opts = run.opts;
    let mut size = BatchSize::new(opts, walker.statement_timeout);
    let mut sessions = Sessions::new(opts);
    let mut pids: Vec<i32> = Vec::new();
    let mut cursor = walker.cursor.clone();
    // Batches handed out and not yet part of the checkpoint, with the rows each updated once
    // it has committed.
    let mut ledger: BTreeMap<u64, (Cut, Option<u64>)> = BTreeMap::new();
    let mut retry: VecDeque<Job> = VecDeque::new();
    let mut exhausted = false;
    let (mut next_index, mut in_flight, mut attempt) = (0u64, 0, 0);
    // Progress counts every committed batch, ahead of the checkpoint or not, on top of what
    // earlier runs did.
    let done_before = walker.checkpoint.rows_done.max(0) as u64;
    let mut stop: Option<Error> = None;
    let mut hooked = false;
    let mut rest_until: Option<Instant> = None;
    loop {
        while stop.is_none() && pids.len() < sessions.active {
            match open() {
                Ok(pid) => pids.push(pid),
                Err(e) if pids.is_empty() => stop = Some(e),
                Err(e) => {
                    // The server has no room for another session: stay with those there are.
                    let why = format!("another session could not be opened ({e})");
                    sessions.trouble(&why);
                    sessions.active = pids.len();
                    (run.on_event)(&Event::Info {
                        message: format!(
                            "{}: stays at {} sessions, because {why}",
                            run.what,
                            pids.len()
                        ),
                    });
                }
            }
        }
        while stop.is_none()
            && in_flight < sessions.active.min(pids.len())
            && (!retry.is_empty() || !exhausted)
        {
            if let Some(until) = rest_until.take() {
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
            }
            if let Err(e) = yielding.wait(client, walker.checkpoint, run) {
                stop = Some(e);
                break;
            }
            let job = match retry.pop_front() {
                Some(job) => job,
                None => match walker.cut(client, &mut cursor, size.rows) {
                    Ok((range, cut)) => {
                        exhausted = cut.last;
                        ledger.insert(next_index, (cut, None));
                        next_index += 1;
                        Job {
                            index: next_index - 1,
                            range,
                            untimed: false,
                        }
                    }
                    Err(source) => {
                        stop = Some(Error::Db {
                            context: format!("{}: finding the batch's upper key", run.what),
                            source,
                        });
                        break;
                    }
                },
            };
            if jobs.send(job).is_err() {
                stop = Some(Error::Other(format!("{}: its workers stopped", run.what)));
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
            stop.get_or_insert(Error::Other(format!("{}: its workers stopped", run.what)));
            break;
        };
        in_flight -= 1;
        if opts.stop_requested() && stop.is_none() {
            // Asked to stop: what is in flight finishes; nothing is handed out or retried, so a
            // batch waiting out a lock does not keep the run going.
            stop = Some(Error::StopRequested);
            hooked = true;
        }
        let updated = match result {
            Ok(updated) => updated,
            Err(source)
                if is_statement_timeout(&source, took, walker.statement_timeout)
                    && !job.untimed
                    && stop.is_none() =>
            {
                // Later batches are cut smaller; this one, already cut, runs once more
                // without the timeout.
                match statement_timeout_said(run, &mut size, walker.statement_timeout) {
                    Ok(said) => (run.on_event)(&Event::Info { message: said }),
                    Err(e) => {
                        stop = Some(e);
                        continue;
                    }
                }
                retry.push_front(Job {
                    untimed: true,
                    ..job
                });
                continue;
            }
            Err(source) if is_lock_timeout(&source) && stop.is_none() => {
                attempt += 1;
                if let Some(said) = sessions.trouble("a batch could not get its row locks") {
                    say(run, &said);
                }
                if attempt == 1 {
                    if let Err(e) = yielding.lock_wait(client, walker.checkpoint, run) {
                        stop = Some(e);
                        continue;
                    }
                }
                match run.wait_before_retry(client, attempt) {
                    Ok(()) => retry.push_back(job),
                    Err(e) => stop = Some(e),
                }
                continue;
            }
            Err(source) => {
                stop.get_or_insert(Error::Db {
                    context: format!("{}: updating a batch", run.what),
                    source,
                });
                continue;
            }
        };
        attempt = 0;
        yielding.resume(run);
        run.batches += 1;
        let (cut, done) = ledger
            .get_mut(&job.index)
            .expect("a job handed out has its entry");
        *done = Some(updated);
        run.walked += cut.walked(updated);
        if !cut.last {
            size.adapt(took);
        }
        sessions.committed(cut.walked(updated));
        if let Err(e) = advance(client, walker.checkpoint, &mut ledger, run) {
            stop.get_or_insert(e);
            continue;
        }
        run.progress(
            walker.checkpoint,
            done_before + run.walked,
            size.rows,
            sessions.active,
        );
        // Test-only: a crash between batches (see `locks::kill_point`).
        crate::locks::kill_point(tandem_plan::Phase::Start);
        if opts.stop_requested() && stop.is_none() {
            // Asked to stop: the batches in flight finish, and no new one is handed out.
            stop = Some(Error::StopRequested);
            hooked = true;
        }
        if opts.stop_after_batches == Some(run.batches) && stop.is_none() {
            stop = Some(Error::Other(format!(
                "stopped by the test hook after {} batches",
                run.batches
            )));
            hooked = true;
        }
        if sessions.window_done() && stop.is_none() {
            match waiters(client, &pids) {
                Ok(n) => {
                    if let Some(said) = sessions.review(n) {
                        say(run, &said);
                    }
                }
                Err(e) => stop = Some(e),
            }
        }
        if let Some(hold) = slow_batch(opts, took) {
            if let Some(said) = sessions.trouble("a batch took far longer than its target") {
                say(run, &said);
            }
            if let Err(e) = yield_to(client, walker.checkpoint, &hold, run) {
                stop.get_or_insert(e);
                continue;
            }
            rest_until = Some(Instant::now() + took);
        }
    }
    match stop {
        None if walker.checkpoint.done => Ok(run.walked),
        None => Err(run.interrupted(
            walker.checkpoint.rows_done,
            Error::Other(format!(
                "{}: the walk ended before its last batch committed",
                run.what
            )),
        )),
        // Interrupted with the checkpoint as it stands once the batches in flight finished.
        Some(e) if hooked => Err(run.interrupted(walker.checkpoint.rows_done, e)),
        Some(e) => Err(run.resumable_or(e, walker.checkpoint.rows_done)),
    }
}

/// Moves the checkpoint over the committed batches at the front of the ledger, and saves it in
/// a transaction of its own when it moved.
fn advance(
    client: &mut Client,
    checkpoint: &mut BackfillCheckpoint,
    ledger: &mut BTreeMap<u64, (Cut, Option<u64>)>,
    run: &mut Run<'_>,
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
    next.rows_per_second = Some(run.rate());
    next.yield_state = None;
    next.yield_cause = None;
    next.yield_reason = None;
    run.save_alone(client, &next, "saving its checkpoint")?;
    *checkpoint = next;
    Ok(())
}

/// Says a change in the number of sessions.
fn say(run: &Run<'_>, said: &str) {
    (run.on_event)(&Event::Info {
        message: format!("{}: {said}", run.what),
    });
}

/// How many other sessions wait right now for a lock one of the workers (`pids`) holds.
fn waiters(client: &mut Client, pids: &[i32]) -> Result<usize> {
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
              WHERE wait_event_type = 'Lock' AND pid <> ALL ($1)
                AND pg_blocking_pids(pid) && $1",
            &[&pids],
        )
        .map_err(|source| Error::Db {
            context: "backfill: looking for sessions waiting on its batches".into(),
            source,
        })?
        .get(0);
    Ok(n as usize)
}
