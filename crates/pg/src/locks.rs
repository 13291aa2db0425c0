//! The lock discipline, in one place: every lock-taking statement runs under `lock_timeout`
//! (set on every session tandem opens) so it never sits in the lock queue in front of the
//! application for longer than that; a statement that times out on a lock (SQLSTATE 55P03) is
//! retried after a capped exponential backoff with jitter, with an event saying who holds the
//! lock. Mutating commands also hold a session advisory lock so two runners never interleave.

use crate::error::{Context, Error, Result};
use crate::events::{Event, OnEvent};
use postgres::error::SqlState;
use postgres::Client;
use rand::Rng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;
use tandem_plan::{Lock, Phase, Step};

/// How long a statement may wait for a lock before it gives up and is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockTimeout(pub Duration);

impl Default for LockTimeout {
    fn default() -> Self {
        LockTimeout(Duration::from_millis(500))
    }
}

/// How often and how patiently lock timeouts are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 60,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry `attempt` (1-based): exponential, capped, with "full jitter" so that
    /// several waiting runners do not retry in step.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self.initial_delay.saturating_mul(1u32 << attempt.min(16));
        let cap = exp.min(self.max_delay);
        let ms = cap.as_millis() as u64;
        Duration::from_millis(rand::thread_rng().gen_range(ms / 2..=ms.max(1)))
    }
}

pub fn is_lock_timeout(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)
}

/// Sessions holding granted locks on a relation, described for a person.
pub fn lock_holders(client: &mut Client, relation: &str) -> String {
    let rows = client.query(
        "SELECT a.pid, coalesce(nullif(a.application_name, ''), '?'), a.state, l.mode,
                coalesce(extract(epoch FROM now() - a.xact_start)::int, 0), left(a.query, 80)
           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.granted AND l.relation = to_regclass($1) AND a.pid <> pg_backend_pid()",
        &[&relation],
    );
    match rows {
        Ok(rows) if !rows.is_empty() => rows
            .iter()
            .map(|r| {
                format!(
                    "pid {} ({}, {}, {} for {}s: {})",
                    r.get::<_, i32>(0),
                    r.get::<_, String>(1),
                    r.get::<_, Option<String>>(2).unwrap_or_default(),
                    r.get::<_, String>(3),
                    r.get::<_, i32>(4),
                    r.get::<_, Option<String>>(5).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => "sessions that have since released it".into(),
    }
}

/// State bookkeeping that runs inside a transaction of [`run_steps`].
pub type Finish<'f> = &'f mut dyn FnMut(&mut postgres::Transaction<'_>) -> Result<()>;

/// Saves, in the state row, the indexes of steps that have run (see [`Progress::save`]).
pub type Save<'f> = &'f mut dyn FnMut(&mut postgres::Transaction<'_>, &[usize]) -> Result<()>;

/// What [`run_steps`] reports about the steps it runs, as they run.
#[derive(Default)]
pub struct Progress<'a> {
    /// Receives the index of every step whose effect may have stayed, even when a later step
    /// fails: those of committed transactions, and each step run outside a transaction once
    /// attempted (a failed `CREATE INDEX CONCURRENTLY` leaves an invalid index behind).
    pub ran: Option<&'a mut Vec<usize>>,
    /// Records step indexes in the state row, so that a run interrupted by a crash can be
    /// told what already happened: inside the transaction of each group, with that group's
    /// steps, so the record commits with them; for a step that runs outside a transaction, in
    /// a transaction of its own, before the step when `save_lone_before` is set (start: the
    /// step's effect may stay even if it fails half-way), after it otherwise (complete and
    /// rollback: a rerun skips only what surely finished, and those steps can run twice).
    pub save: Option<Save<'a>>,
    pub save_lone_before: bool,
}

/// Runs steps in order: consecutive transactional steps share one transaction (retried as a
/// whole on a lock timeout); the others run on their own. `begin`, when given, runs inside the
/// first transaction, before its steps (in a transaction of its own when the first step runs
/// outside one), so that the state row recording a change commits with the first part of it;
/// `finish`, when given, runs inside the last transaction so the state bookkeeping commits with
/// the change. `progress` says which steps ran (see [`Progress`]).
#[allow(clippy::too_many_arguments)]
pub fn run_steps(
    client: &mut Client,
    phase: Phase,
    steps: &[Step],
    policy: &RetryPolicy,
    on_event: OnEvent<'_>,
    mut begin: Option<Finish<'_>>,
    mut finish: Option<Finish<'_>>,
    mut progress: Progress<'_>,
) -> Result<()> {
    let mut i = 0;
    while i < steps.len() {
        if !steps[i].transactional {
            let before = progress.save_lone_before;
            if begin.is_some() || (before && progress.save.is_some()) {
                let save = progress.save.as_mut().filter(|_| before);
                run_group(
                    client,
                    phase,
                    &[],
                    &[i],
                    policy,
                    on_event,
                    begin.take(),
                    save,
                    None,
                )?;
                kill_point(phase);
            }
            if let Some(ran) = progress.ran.as_mut() {
                ran.push(i);
            }
            run_alone(client, phase, &steps[i], policy, on_event)?;
            kill_point(phase);
            if let Some(save) = progress.save.as_mut().filter(|_| !before) {
                run_group(
                    client,
                    phase,
                    &[],
                    &[i],
                    policy,
                    on_event,
                    None,
                    Some(save),
                    None,
                )?;
            }
            i += 1;
            continue;
        }
        let end = steps[i..]
            .iter()
            .position(|s| !s.transactional)
            .map_or(steps.len(), |p| i + p);
        let last_group = end == steps.len();
        let group = &steps[i..end];
        let indexes: Vec<usize> = (i..end).collect();
        let f = if last_group { finish.take() } else { None };
        let save = progress.save.as_mut();
        run_group(
            client,
            phase,
            group,
            &indexes,
            policy,
            on_event,
            begin.take(),
            save,
            f,
        )?;
        if let Some(ran) = progress.ran.as_mut() {
            ran.extend(i..end);
        }
        kill_point(phase);
        i = end;
    }
    if begin.is_some() || finish.is_some() {
        run_group(
            client,
            phase,
            &[],
            &[],
            policy,
            on_event,
            begin,
            None,
            finish,
        )?;
        kill_point(phase);
    }
    Ok(())
}

/// **Test-only.** The environment variable that makes the process kill itself with SIGKILL at
/// a step boundary, so that tests can interrupt a command at every point where its work is
/// partly committed, deterministically. `TANDEM_TEST_KILL_AT=start:3` kills at the third
/// boundary of the start phase. Never set it outside tests.
pub const KILL_AT_VAR: &str = "TANDEM_TEST_KILL_AT";

/// **Test-only** crash hook: a step boundary of `phase` has just been passed (a transaction
/// committed, or a statement outside a transaction ran). When `TANDEM_TEST_KILL_AT` is
/// `<phase>:<n>` (`start`, `complete` or `rollback`) and this is that phase's `n`-th boundary
/// in this process, the process sends itself SIGKILL, as a crash or an operator's `kill -9`
/// would. The boundaries of start are: each group of start steps (the first one with the
/// state row), or each step run outside a transaction (preceded by the state row alone), the
/// backfill checkpoints recorded, each backfill batch, each `after_backfill` step or group,
/// and the version schema published; complete and rollback count their status change, then
/// each group or lone step. Without the variable this is one load of an initialised
/// `OnceLock`.
pub fn kill_point(phase: Phase) {
    static AT: OnceLock<Option<(Phase, u64)>> = OnceLock::new();
    static PASSED: AtomicU64 = AtomicU64::new(0);
    let at = AT.get_or_init(|| {
        let value = std::env::var(KILL_AT_VAR).ok()?;
        let (name, n) = value.split_once(':')?;
        let phase = match name {
            "start" => Phase::Start,
            "complete" => Phase::Complete,
            "rollback" => Phase::Rollback,
            _ => return None,
        };
        Some((phase, n.parse().ok()?))
    });
    if let Some((at_phase, n)) = *at {
        if at_phase == phase && PASSED.fetch_add(1, Ordering::SeqCst) + 1 == n {
            die();
        }
    }
}

/// Runs `steps` in one transaction, with `begin` before them, and `save` (given `indexes`, the
/// steps it records) and `finish` after them.
#[allow(clippy::too_many_arguments)]
fn run_group(
    client: &mut Client,
    phase: Phase,
    steps: &[Step],
    indexes: &[usize],
    policy: &RetryPolicy,
    on_event: OnEvent<'_>,
    mut begin: Option<Finish<'_>>,
    mut save: Option<&mut Save<'_>>,
    mut finish: Option<Finish<'_>>,
) -> Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut tx = client
            .transaction()
            .context(|| "beginning a transaction".into())?;
        if let Some(b) = begin.as_mut() {
            b(&mut tx)?;
        }
        let mut failed: Option<(&Step, postgres::Error)> = None;
        for step in steps {
            announce(phase, step, on_event);
            if let Err(e) = tx.batch_execute(&step.sql) {
                failed = Some((step, e));
                break;
            }
        }
        match failed {
            None => {
                if let Some(s) = save.as_mut() {
                    s(&mut tx, indexes)?;
                }
                if let Some(f) = finish.as_mut() {
                    f(&mut tx)?;
                }
                tx.commit().context(|| "committing".into())?;
                return Ok(());
            }
            Some((step, e)) if is_lock_timeout(&e) => {
                drop(tx);
                backoff(client, step, attempt, policy, on_event)?;
            }
            Some((step, e)) => return Err(step_error(step, e)),
        }
    }
}

fn run_alone(
    client: &mut Client,
    phase: Phase,
    step: &Step,
    policy: &RetryPolicy,
    on_event: OnEvent<'_>,
) -> Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        announce(phase, step, on_event);
        match client.batch_execute(&step.sql) {
            Ok(()) => return Ok(()),
            Err(e) if is_lock_timeout(&e) => {
                if let Some(cleanup) = &step.cleanup_before_retry {
                    // Cleanup takes locks too; it is retried by the next round if it times out.
                    let _ = client.batch_execute(cleanup);
                }
                backoff(client, step, attempt, policy, on_event)?;
            }
            Err(e) => return Err(step_error(step, e)),
        }
    }
}

fn backoff(
    client: &mut Client,
    step: &Step,
    attempt: u32,
    policy: &RetryPolicy,
    on_event: OnEvent<'_>,
) -> Result<()> {
    let lock = step.strongest_lock().cloned();
    wait_before_retry(client, &step.description, lock, attempt, policy, on_event)
}

/// After a lock timeout of `what` (attempt `attempt`, 1-based): fails with
/// `LockRetriesExhausted` when the attempts are used up, else reports `Event::LockRetry` with
/// who holds the lock and sleeps for the backoff delay. The caller has rolled back and retries.
pub fn wait_before_retry(
    client: &mut Client,
    what: &str,
    lock: Option<Lock>,
    attempt: u32,
    policy: &RetryPolicy,
    on_event: OnEvent<'_>,
) -> Result<()> {
    let holders = lock
        .as_ref()
        .map(|l| lock_holders(client, &l.relation))
        .unwrap_or_else(|| "unknown sessions".into());
    if attempt >= policy.max_attempts {
        return Err(Error::LockRetriesExhausted {
            what: what.to_string(),
            attempts: attempt,
            lock: lock
                .map(|l| {
                    format!(
                        "{} on {}, which blocks {}",
                        l.mode.name(),
                        l.relation,
                        l.mode.blocks()
                    )
                })
                .unwrap_or_else(|| "a lock".into()),
            holders,
        });
    }
    let delay = policy.delay(attempt);
    on_event(&Event::LockRetry {
        description: what.to_string(),
        attempt,
        delay_ms: delay.as_millis() as u64,
        lock,
        holders,
    });
    std::thread::sleep(delay);
    Ok(())
}

fn announce(phase: Phase, step: &Step, on_event: OnEvent<'_>) {
    on_event(&Event::Step {
        phase,
        description: step.description.clone(),
        lock: step.strongest_lock().cloned(),
    });
}

/// A failed step, named by its description and the first line of its SQL; the engine adds the
/// file and the operation (`Error::naming_step`).
fn step_error(step: &Step, source: postgres::Error) -> Error {
    Error::Step(Box::new(crate::error::StepFailed {
        migration: None,
        operation_index: match step.part {
            Some(tandem_plan::Part::Operation(i)) => Some(i),
            _ => None,
        },
        operation: None,
        description: step.description.clone(),
        sql: first_line(&step.sql),
        source,
    }))
}

fn first_line(sql: &str) -> String {
    let line = sql.lines().next().unwrap_or_default();
    if line.len() > 120 {
        let mut cut = 120;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &line[..cut])
    } else {
        line.to_string()
    }
}

/// Dies as a crash would, of SIGKILL: nothing is cleaned up, no transaction is finished.
/// `kill` does it, so this crate needs neither libc nor unsafe code for a path only the crash
/// tests take.
fn die() -> ! {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    std::process::abort()
}

/// The advisory lock mutating commands hold for a schema; released when the session ends.
pub struct RunnerLock;

impl RunnerLock {
    /// Takes the lock or fails at once with `Error::Locked`.
    pub fn acquire(client: &mut Client, state_schema: &str, schema: &str) -> Result<RunnerLock> {
        let key = format!("tandem:{state_schema}:{schema}");
        let got: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                &[&key],
            )
            .context(|| "taking the migration lock".into())?
            .get(0);
        if got {
            Ok(RunnerLock)
        } else {
            Err(Error::Locked {
                schema: schema.to_string(),
            })
        }
    }

    /// Whether another session holds the lock now (a runner is at work), without keeping it.
    pub fn held_elsewhere(client: &mut Client, state_schema: &str, schema: &str) -> Result<bool> {
        match RunnerLock::acquire(client, state_schema, schema) {
            Ok(RunnerLock) => {
                let key = format!("tandem:{state_schema}:{schema}");
                client
                    .execute(
                        "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                        &[&key],
                    )
                    .context(|| "releasing the migration lock".into())?;
                Ok(false)
            }
            Err(Error::Locked { .. }) => Ok(true),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for attempt in 1..40 {
            let d = p.delay(attempt);
            assert!(d <= p.max_delay, "{d:?}");
        }
        assert!(p.delay(1) <= Duration::from_millis(200));
    }
}
