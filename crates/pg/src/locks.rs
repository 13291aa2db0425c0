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

/// The statement timeout of the steps that must run long by design and block neither reads
/// nor writes (`Step::runs_long`: `CREATE INDEX CONCURRENTLY`, `VALIDATE CONSTRAINT`, `DROP
/// INDEX CONCURRENTLY`). They run under it instead of the session's own `statement_timeout`
/// (the role's or the database's, often 30 s in production, which would cancel them on a big
/// table); the session's value is put back after each. Zero, the default, is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LongStatementTimeout(pub Duration);

impl LongStatementTimeout {
    /// The value for `SET statement_timeout`, in milliseconds (`0` is no limit).
    fn setting(self) -> String {
        format!("{}ms", self.0.as_millis())
    }
}

/// How one run's steps are run: the phase they belong to, how their lock timeouts are retried,
/// and the statement timeout of those that run long.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepRules {
    pub phase: Phase,
    pub retry: RetryPolicy,
    pub long_statement_timeout: LongStatementTimeout,
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

/// Runs `steps` in one transaction, retried as a whole after a lock timeout. `before` and
/// `after` run in the same transaction, before and after the steps, on every attempt: they are
/// the state bookkeeping that must commit with the steps or not at all. A step that runs long
/// runs under the rules' long statement timeout, set for it alone (`SET LOCAL`, then the
/// transaction's value put back).
pub(crate) fn run_in_transaction(
    client: &mut Client,
    rules: &StepRules,
    steps: &[Step],
    on_event: OnEvent<'_>,
    mut before: impl FnMut(&mut postgres::Transaction<'_>) -> Result<()>,
    mut after: impl FnMut(&mut postgres::Transaction<'_>) -> Result<()>,
) -> Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut tx = client
            .transaction()
            .context(|| "beginning a transaction".into())?;
        before(&mut tx)?;
        let mut failed: Option<(&Step, postgres::Error)> = None;
        for step in steps {
            announce(rules.phase, step, on_event);
            if let Err(e) = execute(&mut tx, rules, step, true) {
                failed = Some((step, e));
                break;
            }
        }
        match failed {
            None => {
                after(&mut tx)?;
                tx.commit().context(|| "committing".into())?;
                return Ok(());
            }
            Some((step, e)) if is_lock_timeout(&e) => {
                drop(tx);
                backoff(client, step, attempt, &rules.retry, on_event)?;
            }
            Some((step, e)) => return Err(step_error(rules, step, e)),
        }
    }
}

/// Runs one step outside a transaction, retried after a lock timeout (first running its
/// `cleanup_before_retry`, since a failed statement of this kind may leave something behind).
/// A step that runs long runs under the rules' long statement timeout, set on the session for
/// it and the session's own value put back after it, whether it succeeded or not.
pub(crate) fn run_alone(
    client: &mut Client,
    rules: &StepRules,
    step: &Step,
    on_event: OnEvent<'_>,
) -> Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        announce(rules.phase, step, on_event);
        match execute(client, rules, step, false) {
            Ok(()) => return Ok(()),
            Err(e) if is_lock_timeout(&e) => {
                if let Some(cleanup) = &step.cleanup_before_retry {
                    // Cleanup takes locks too; it is retried by the next round if it times out.
                    let _ = client.batch_execute(cleanup);
                }
                backoff(client, step, attempt, &rules.retry, on_event)?;
            }
            Err(e) => return Err(step_error(rules, step, e)),
        }
    }
}

/// Runs `step`'s SQL. A step that runs long runs with `statement_timeout` set to the rules'
/// long statement timeout, then the value it had put back: for the transaction (`local`) or
/// for the session. In a transaction that failed, nothing can be put back, nor needs to be:
/// its rollback undoes the `SET LOCAL`.
fn execute<C: postgres::GenericClient>(
    client: &mut C,
    rules: &StepRules,
    step: &Step,
    local: bool,
) -> std::result::Result<(), postgres::Error> {
    if !step.runs_long() {
        return client.batch_execute(&step.sql);
    }
    let before: String = client
        .query_one(
            "SELECT current_setting('statement_timeout'), set_config('statement_timeout', $1, $2)",
            &[&rules.long_statement_timeout.setting(), &local],
        )?
        .get(0);
    let ran = client.batch_execute(&step.sql);
    let put_back = client.execute(
        "SELECT set_config('statement_timeout', $1, $2)",
        &[&before, &local],
    );
    ran?;
    put_back.map(|_| ())
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
fn step_error(rules: &StepRules, step: &Step, source: postgres::Error) -> Error {
    let cancelled_by_our_timeout = step.runs_long()
        && !rules.long_statement_timeout.0.is_zero()
        && source.code() == Some(&postgres::error::SqlState::QUERY_CANCELED);
    let advice = cancelled_by_our_timeout.then(|| {
        format!(
            "it runs long by design and blocks neither reads nor writes, so it ran under \
             --long-statement-timeout ({}) instead of the session's statement_timeout: raise it \
             (0 is no limit) and run the command again",
            humantime(rules.long_statement_timeout.0)
        )
    });
    Error::Step(Box::new(crate::error::StepFailed {
        advice,
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

/// `1500ms`, `30s`, `2h`: a duration as the flags take it.
fn humantime(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        _ if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) => format!("{}min", ms / 60_000),
        _ if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
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
