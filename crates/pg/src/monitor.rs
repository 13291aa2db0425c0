//! What `tandem monitor` shows, read in one pass: the active migration and its backfill, lock
//! waits, long queries and long transactions, replication, and which sessions seem to be on
//! which version. It works as an unprivileged role: what that role cannot see is listed in
//! `MonitorSnapshot::limitations` rather than failing.

use crate::error::{Context, Error, Result};
use crate::state::{BackfillCheckpoint, State};
use postgres::Client;
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::Duration;
use tandem_plan::Plan;

#[derive(Debug, Clone)]
pub struct MonitorOptions {
    pub schema: String,
    pub state_schema: String,
    /// A query running longer than this is listed.
    pub long_query: Duration,
    /// A session idle in a transaction longer than this is listed.
    pub idle_in_transaction: Duration,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        MonitorOptions {
            schema: "public".into(),
            state_schema: "tandem".into(),
            long_query: Duration::from_secs(5),
            idle_in_transaction: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MonitorSnapshot {
    pub taken_at: String,
    pub schema: String,
    pub user: String,
    /// Whether this role sees other roles' sessions in full (superuser, pg_read_all_stats).
    pub sees_all_sessions: bool,
    pub migration: Option<ActiveMigration>,
    pub lock_waits: Vec<LockWait>,
    pub long_queries: Vec<Session>,
    pub idle_in_transaction: Vec<Session>,
    pub standbys: Vec<Standby>,
    pub slots: Vec<Slot>,
    pub versions: Vec<VersionUse>,
    /// What this snapshot could not see or can only infer, in words.
    pub limitations: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActiveMigration {
    pub name: String,
    pub status: crate::MigrationStatus,
    pub version_schema: String,
    /// Version schemas of earlier migrations still present: the old versions.
    pub old_version_schemas: Vec<String>,
    pub tables: Vec<String>,
    pub backfills: Vec<BackfillProgress>,
    pub started_at: Option<String>,
}

/// A backfill's checkpoint as the monitor shows it: rows done of the estimate, the rate saved
/// with it, the ETA at that rate, and whether it is paused or throttled and why.
#[derive(Debug, Clone, Serialize)]
pub struct BackfillProgress {
    #[serde(flatten)]
    pub checkpoint: BackfillCheckpoint,
    /// Seconds left at `rows_per_second`.
    pub eta_seconds: Option<i64>,
    /// Whether a tandem run holds the migration's lock, so the backfill is moving (or yielding)
    /// rather than interrupted.
    pub running: bool,
}

/// A session as pg_stat_activity shows it; fields this role may not see are `None`.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    pub pid: i32,
    pub user: Option<String>,
    pub application_name: Option<String>,
    pub client_addr: Option<String>,
    pub state: Option<String>,
    pub query: Option<String>,
    pub query_seconds: Option<f64>,
    pub transaction_seconds: Option<f64>,
    pub state_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LockWait {
    pub waiting: Session,
    pub wait_seconds: Option<f64>,
    /// The lock it waits for: its type, mode and relation when it is one.
    pub locktype: String,
    pub mode: String,
    pub relation: Option<String>,
    /// Whether the relation is a table of the migration or one of the version schemas' views.
    pub touches_migration: bool,
    pub blocking: Vec<Session>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Standby {
    pub application_name: Option<String>,
    pub client_addr: Option<String>,
    pub state: Option<String>,
    pub sync_state: Option<String>,
    pub write_lag_seconds: Option<f64>,
    pub flush_lag_seconds: Option<f64>,
    pub replay_lag_seconds: Option<f64>,
    pub write_lag_bytes: Option<i64>,
    pub flush_lag_bytes: Option<i64>,
    pub replay_lag_bytes: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Slot {
    pub slot_name: String,
    pub slot_type: String,
    pub active: bool,
    pub retained_wal_bytes: Option<i64>,
}

/// The sessions that seem to use one version schema, and why.
#[derive(Debug, Clone, Serialize)]
pub struct VersionUse {
    pub version_schema: String,
    /// `new` for the active migration's version, `old` for earlier ones.
    pub role: &'static str,
    pub sessions: Vec<VersionSession>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionSession {
    pub pid: i32,
    pub application_name: Option<String>,
    /// How it was inferred: `holds a lock on <relation>` or `application_name names it`.
    pub because: String,
}

const SESSION_COLUMNS: &str =
    "a.pid, a.usename::text, a.application_name, a.client_addr::text, a.state, a.query,
    extract(epoch FROM now() - a.query_start)::float8,
    extract(epoch FROM now() - a.xact_start)::float8,
    extract(epoch FROM now() - a.state_change)::float8";

fn session(r: &postgres::Row, at: usize) -> Session {
    Session {
        pid: r.get(at),
        user: r.get(at + 1),
        application_name: r.get(at + 2),
        client_addr: r.get(at + 3),
        state: r.get(at + 4),
        query: r.get(at + 5),
        query_seconds: r.get(at + 6),
        transaction_seconds: r.get(at + 7),
        state_seconds: r.get(at + 8),
    }
}

const HIDDEN: &str = "<insufficient privilege>";

/// Reads one snapshot. Fails only when the database cannot be queried at all.
pub fn snapshot(client: &mut Client, opts: &MonitorOptions) -> Result<MonitorSnapshot> {
    let head = client
        .query_one(
            "SELECT to_json(now()) #>> '{}', current_user::text,
                    current_setting('is_superuser') = 'on'
                      OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE'),
                    pg_is_in_recovery()",
            &[],
        )
        .context(|| "reading the session's privileges".into())?;
    let mut snap = MonitorSnapshot {
        taken_at: head.get(0),
        schema: opts.schema.clone(),
        user: head.get(1),
        sees_all_sessions: head.get(2),
        migration: None,
        lock_waits: Vec::new(),
        long_queries: Vec::new(),
        idle_in_transaction: Vec::new(),
        standbys: Vec::new(),
        slots: Vec::new(),
        versions: Vec::new(),
        limitations: Vec::new(),
    };
    let in_recovery: bool = head.get(3);
    if !snap.sees_all_sessions {
        snap.limitations.push(format!(
            "role {} is neither superuser nor a member of pg_monitor/pg_read_all_stats: other roles' sessions show no query, state or timings ({HIDDEN}), so their long queries, idle transactions and wait times are missing, and standbys' lag is not shown; GRANT pg_monitor TO {} to see them",
            snap.user, snap.user
        ));
    }
    snap.migration = active_migration(client, opts, &mut snap.limitations)?;
    snap.lock_waits = lock_waits(client, snap.migration.as_ref(), &opts.schema)?;
    let (long, idle) = long_sessions(client, opts)?;
    snap.long_queries = long;
    snap.idle_in_transaction = idle;
    if in_recovery {
        snap.limitations
            .push("connected to a standby: replication is shown on the primary only".into());
    } else {
        replication(client, &mut snap)?;
    }
    snap.versions = versions(client, snap.migration.as_ref())?;
    if snap.migration.is_some() {
        snap.limitations.push("versions are inferred: a session counts for a version while it holds a lock on one of its views (inside a query or transaction) or when its application_name names the version schema; another session's search_path cannot be read, and a session on the base schema's tables is not attributed".into());
    }
    Ok(snap)
}

fn active_migration(
    client: &mut Client,
    opts: &MonitorOptions,
    limitations: &mut Vec<String>,
) -> Result<Option<ActiveMigration>> {
    let state = State::new(&opts.state_schema);
    match state.check(client) {
        Ok(()) => {}
        Err(e @ (Error::NotInitialized { .. } | Error::Other(_) | Error::StateTooNew { .. })) => {
            limitations.push(format!("no migration shown: {e}"));
            return Ok(None);
        }
        Err(Error::Db { source, .. })
            if source.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) =>
        {
            limitations.push(format!(
                "no migration shown: this role cannot read tandem's state schema {:?}",
                opts.state_schema
            ));
            return Ok(None);
        }
        Err(e) => return Err(e),
    }
    let read = (|| -> Result<Option<ActiveMigration>> {
        let Some(active) = state.active(client, &opts.schema)? else {
            return Ok(None);
        };
        let plan: Option<Plan> = serde_json::from_value(active.plan.clone()).ok();
        let mut old = Vec::new();
        for h in state.history(client, &opts.schema)? {
            if h.name != active.name && crate::introspect::schema_exists(client, &h.version_schema)?
            {
                old.push(h.version_schema);
            }
        }
        let running = active.status == crate::MigrationStatus::Backfilling
            && crate::locks::RunnerLock::held_elsewhere(client, &opts.state_schema, &opts.schema)?;
        let backfills = state
            .backfills(client, &opts.schema, &active.name)?
            .into_iter()
            // A backfill that is not running has no time left to guess: its rate is the last
            // run's.
            .map(|checkpoint| BackfillProgress {
                eta_seconds: checkpoint.eta_seconds().filter(|_| running),
                running: running && !checkpoint.done,
                checkpoint,
            })
            .collect();
        let mut tables = BTreeSet::new();
        if let Some(plan) = &plan {
            for step in plan.start.iter().chain(&plan.complete) {
                for lock in &step.locks {
                    tables.insert(lock.relation.clone());
                }
            }
        }
        Ok(Some(ActiveMigration {
            name: active.name,
            status: active.status,
            version_schema: active.version_schema,
            old_version_schemas: old,
            tables: tables.into_iter().collect(),
            backfills,
            started_at: active.started_at,
        }))
    })();
    match read {
        Err(Error::Db { source, .. })
            if source.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) =>
        {
            limitations.push(format!(
                "no migration shown: this role cannot read tandem's state tables in {:?}",
                opts.state_schema
            ));
            Ok(None)
        }
        other => other,
    }
}

/// Whether `schema.relation` (as `format('%I.%I')` prints it) is one the migration touches.
fn touches(relation: &str, m: Option<&ActiveMigration>, schema: &str) -> bool {
    let Some(m) = m else { return false };
    let in_version = std::iter::once(&m.version_schema)
        .chain(&m.old_version_schemas)
        .any(|v| relation.starts_with(&format!("{}.", tandem_model::quote_ident(v))));
    in_version
        || m.tables.iter().any(|t| {
            t == relation
                || *t == format!("{}.{}", tandem_model::quote_ident(schema), relation)
                || relation
                    .split_once('.')
                    .is_some_and(|(s, r)| s == tandem_model::quote_ident(schema) && t == r)
        })
}

fn lock_waits(
    client: &mut Client,
    m: Option<&ActiveMigration>,
    schema: &str,
) -> Result<Vec<LockWait>> {
    let rows = client
        .query(
            &format!(
                "SELECT {SESSION_COLUMNS}, extract(epoch FROM now() - l.waitstart)::float8,
                        l.locktype, l.mode,
                        CASE WHEN c.oid IS NOT NULL THEN format('%I.%I', n.nspname, c.relname) END,
                        pg_blocking_pids(a.pid)
                   FROM pg_stat_activity a
                   JOIN LATERAL (SELECT * FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted LIMIT 1) l ON true
                   LEFT JOIN pg_class c ON c.oid = l.relation
                   LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE cardinality(pg_blocking_pids(a.pid)) > 0
                  ORDER BY a.pid"
            ),
            &[],
        )
        .context(|| "reading lock waits".into())?;
    let mut out = Vec::new();
    for r in rows {
        let blockers: Vec<i32> = r.get(13);
        let relation: Option<String> = r.get(12);
        let blocking = client
            .query(
                &format!("SELECT {SESSION_COLUMNS} FROM pg_stat_activity a WHERE a.pid = ANY($1) ORDER BY a.pid"),
                &[&blockers],
            )
            .context(|| "reading blocking sessions".into())?
            .iter()
            .map(|b| session(b, 0))
            .collect();
        out.push(LockWait {
            waiting: session(&r, 0),
            wait_seconds: r.get(9),
            locktype: r.get(10),
            mode: r.get(11),
            touches_migration: relation
                .as_deref()
                .is_some_and(|rel| touches(rel, m, schema)),
            relation,
            blocking,
        });
    }
    Ok(out)
}

fn long_sessions(
    client: &mut Client,
    opts: &MonitorOptions,
) -> Result<(Vec<Session>, Vec<Session>)> {
    let rows = client
        .query(
            &format!(
                "SELECT {SESSION_COLUMNS} FROM pg_stat_activity a
                  WHERE a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
                    AND ((a.state = 'active' AND now() - a.query_start > $1 * interval '1 second')
                      OR (a.state LIKE 'idle in transaction%' AND now() - a.state_change > $2 * interval '1 second'))
                  ORDER BY a.query_start"
            ),
            &[
                &opts.long_query.as_secs_f64(),
                &opts.idle_in_transaction.as_secs_f64(),
            ],
        )
        .context(|| "reading long queries and transactions".into())?;
    let (long, idle) = rows
        .iter()
        .map(|r| session(r, 0))
        .partition(|s| s.state.as_deref() == Some("active"));
    Ok((long, idle))
}

fn replication(client: &mut Client, snap: &mut MonitorSnapshot) -> Result<()> {
    let rows = client
        .query(
            "SELECT application_name, client_addr::text, state, sync_state,
                    extract(epoch FROM write_lag)::float8, extract(epoch FROM flush_lag)::float8,
                    extract(epoch FROM replay_lag)::float8,
                    pg_wal_lsn_diff(pg_current_wal_lsn(), write_lsn)::bigint,
                    pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::bigint,
                    pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint
               FROM pg_stat_replication ORDER BY application_name",
            &[],
        )
        .context(|| "reading pg_stat_replication".into())?;
    snap.standbys = rows
        .iter()
        .map(|r| Standby {
            application_name: r.get(0),
            client_addr: r.get(1),
            state: r.get(2),
            sync_state: r.get(3),
            write_lag_seconds: r.get(4),
            flush_lag_seconds: r.get(5),
            replay_lag_seconds: r.get(6),
            write_lag_bytes: r.get(7),
            flush_lag_bytes: r.get(8),
            replay_lag_bytes: r.get(9),
        })
        .collect();
    if snap.standbys.iter().any(|s| s.state.is_none()) {
        snap.limitations.push("pg_stat_replication hides standbys' state and lag from this role (needs pg_monitor or pg_read_all_stats)".into());
    }
    snap.slots = client
        .query(
            "SELECT slot_name::text, slot_type, active,
                    pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint
               FROM pg_replication_slots ORDER BY slot_name",
            &[],
        )
        .context(|| "reading replication slots".into())?
        .iter()
        .map(|r| Slot {
            slot_name: r.get(0),
            slot_type: r.get(1),
            active: r.get(2),
            retained_wal_bytes: r.get(3),
        })
        .collect();
    Ok(())
}

fn versions(client: &mut Client, m: Option<&ActiveMigration>) -> Result<Vec<VersionUse>> {
    let Some(m) = m else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    let all = std::iter::once((&m.version_schema, "new"))
        .chain(m.old_version_schemas.iter().map(|v| (v, "old")));
    for (schema, role) in all {
        let rows = client
            .query(
                "SELECT DISTINCT ON (a.pid) a.pid, a.application_name,
                        CASE WHEN a.application_name = $1 THEN 'application_name names it'
                             ELSE 'holds a lock on ' || format('%I.%I', n.nspname, c.relname) END
                   FROM pg_stat_activity a
                   LEFT JOIN pg_locks l ON l.pid = a.pid AND l.granted
                   LEFT JOIN pg_class c ON c.oid = l.relation
                   LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE a.pid <> pg_backend_pid()
                    AND (n.nspname = $1 OR a.application_name = $1)
                  ORDER BY a.pid",
                &[schema],
            )
            .context(|| format!("looking for sessions on {schema}"))?;
        out.push(VersionUse {
            version_schema: schema.clone(),
            role,
            sessions: rows
                .iter()
                .map(|r| VersionSession {
                    pid: r.get(0),
                    application_name: r.get(1),
                    because: r.get(2),
                })
                .collect(),
        });
    }
    Ok(out)
}
