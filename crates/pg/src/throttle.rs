//! What the backfill yields to. Before each batch it looks at the standbys' replay lag, the WAL
//! that replication slots retain, and autovacuum vacuuming its table to prevent wraparound; any
//! of these pauses it until the condition clears. Its own batches waiting for locks pause it
//! too, and a batch that took far longer than the target slows it down. What the role cannot
//! see (other roles' replication and vacuum details need pg_monitor) is said once, not guessed.

use crate::error::{Context, Result};
use postgres::Client;
use serde::Serialize;
use std::time::Duration;

/// A batch that takes this many times the target slows the backfill down.
pub const SLOW_FACTOR: u32 = 4;

/// Why the backfill paused or slowed down.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum Hold {
    /// A standby's replay is further behind than `--max-replication-lag`.
    ReplicationLag {
        standby: String,
        lag_seconds: f64,
        lag_bytes: i64,
        limit_seconds: f64,
    },
    /// A replication slot keeps more WAL than `--max-slot-wal`.
    SlotRetainsWal {
        slot: String,
        retained_bytes: i64,
        limit_bytes: i64,
    },
    /// Autovacuum is vacuuming the table to prevent transaction id wraparound.
    WraparoundVacuum { pid: i32 },
    /// The backfill's own batch could not get its row locks within lock_timeout.
    LockWait { holders: String },
    /// A batch took much longer than the target.
    SlowBatch { took_ms: u64, target_ms: u64 },
}

impl Hold {
    /// The cause's name, as stored in the state and shown by the monitor.
    pub fn cause(&self) -> &'static str {
        match self {
            Hold::ReplicationLag { .. } => "replication_lag",
            Hold::SlotRetainsWal { .. } => "slot_retains_wal",
            Hold::WraparoundVacuum { .. } => "wraparound_vacuum",
            Hold::LockWait { .. } => "lock_wait",
            Hold::SlowBatch { .. } => "slow_batch",
        }
    }

    /// Whether the backfill stops until the condition clears (`paused`) or only slows down
    /// (`throttled`).
    pub fn action(&self) -> YieldAction {
        match self {
            Hold::SlowBatch { .. } => YieldAction::Throttled,
            _ => YieldAction::Paused,
        }
    }

    /// The condition in plain words, with what clears it.
    pub fn describe(&self) -> String {
        match self {
            Hold::ReplicationLag {
                standby,
                lag_seconds,
                lag_bytes,
                limit_seconds,
            } => format!(
                "standby {standby:?} replays {lag_seconds:.1} s ({lag_bytes} bytes) behind, more than --max-replication-lag {limit_seconds:.1} s; waiting until it catches up"
            ),
            Hold::SlotRetainsWal {
                slot,
                retained_bytes,
                limit_bytes,
            } => format!(
                "replication slot {slot:?} retains {retained_bytes} bytes of WAL, more than --max-slot-wal {limit_bytes}; waiting until its consumer catches up (or the slot is dropped)"
            ),
            Hold::WraparoundVacuum { pid } => format!(
                "autovacuum (pid {pid}) is vacuuming the table to prevent transaction id wraparound; the backfill's new row versions would give it more to do, so it waits until that vacuum ends"
            ),
            Hold::LockWait { holders } => format!(
                "a batch could not get its row locks within lock_timeout, so it stepped back to let the application through; held by {holders}"
            ),
            Hold::SlowBatch { took_ms, target_ms } => format!(
                "a batch took {took_ms} ms, more than {SLOW_FACTOR}x the target of {target_ms} ms; the server is busy, so the backfill rests as long after each slow batch"
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum YieldAction {
    Paused,
    Throttled,
    Resumed,
}

impl YieldAction {
    pub fn name(self) -> &'static str {
        match self {
            YieldAction::Paused => "paused",
            YieldAction::Throttled => "throttled",
            YieldAction::Resumed => "resumed",
        }
    }
}

/// The limits the backfill yields to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_replication_lag: Duration,
    pub max_slot_wal_bytes: Option<i64>,
}

/// Watches the conditions for one table's backfill.
pub struct Watch {
    table_oid: u32,
    limits: Limits,
    /// Whether this role sees other roles' replication and progress details.
    sees_all: bool,
    in_recovery: bool,
}

impl Watch {
    /// Reads what the role may see. `table` is the qualified, quoted name.
    pub fn new(client: &mut Client, table: &str, limits: Limits) -> Result<Watch> {
        let r = client
            .query_one(
                "SELECT $1::text::regclass::oid,
                        current_setting('is_superuser') = 'on'
                          OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE'),
                        pg_is_in_recovery()",
                &[&table],
            )
            .context(|| format!("backfill of {table}: reading what this role can see"))?;
        Ok(Watch {
            table_oid: r.get(0),
            limits,
            sees_all: r.get(1),
            in_recovery: r.get(2),
        })
    }

    /// What the backfill cannot watch for this role, in words (said once per run).
    pub fn blind_spots(&self, client: &mut Client) -> Result<Vec<String>> {
        let mut out = Vec::new();
        if self.sees_all {
            return Ok(out);
        }
        let user: String = client
            .query_one("SELECT current_user::text", &[])
            .context(|| "reading the current role".into())?
            .get(0);
        let standbys: i64 = client
            .query_one("SELECT count(*) FROM pg_stat_replication", &[])
            .context(|| "reading pg_stat_replication".into())?
            .get(0);
        out.push(format!(
            "replication lag cannot be seen: role {user} is not a member of pg_monitor (or pg_read_all_stats), so pg_stat_replication hides the standbys' lag ({standbys} connected now) and pg_stat_progress_vacuum hides autovacuum's wraparound vacuums; the backfill cannot yield to either. GRANT pg_monitor TO {user} to let it"
        ));
        Ok(out)
    }

    /// The conditions that hold now, pausing ones first.
    pub fn check(&self, client: &mut Client) -> Result<Vec<Hold>> {
        let mut holds = Vec::new();
        if self.in_recovery {
            return Ok(holds);
        }
        if self.sees_all {
            // A standby counts as lagging while it has WAL left to replay and the time its
            // replay is behind (which grows while replay is stuck) exceeds the limit; once it
            // has replayed everything, the last measured lag it still shows for a while is old.
            let rows = client
                .query(
                    "SELECT coalesce(application_name, '') || coalesce(' (' || client_addr::text || ')', ''),
                            extract(epoch FROM replay_lag)::float8,
                            pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint
                       FROM pg_stat_replication
                      WHERE replay_lag > $1::float8 * interval '1 second'
                        AND pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) > 0
                      ORDER BY replay_lag DESC",
                    &[&self.limits.max_replication_lag.as_secs_f64()],
                )
                .context(|| "reading the standbys' replay lag".into())?;
            for r in rows {
                holds.push(Hold::ReplicationLag {
                    standby: r.get(0),
                    lag_seconds: r.get(1),
                    lag_bytes: r.get(2),
                    limit_seconds: self.limits.max_replication_lag.as_secs_f64(),
                });
            }
            let vacuums = client
                .query(
                    "SELECT a.pid FROM pg_stat_progress_vacuum p JOIN pg_stat_activity a ON a.pid = p.pid
                      WHERE p.relid = $1 AND a.query LIKE 'autovacuum:%(to prevent wraparound)%'",
                    &[&self.table_oid],
                )
                .context(|| "reading autovacuum's progress".into())?;
            for r in vacuums {
                holds.push(Hold::WraparoundVacuum { pid: r.get(0) });
            }
        }
        if let Some(limit) = self.limits.max_slot_wal_bytes {
            let rows = client
                .query(
                    "SELECT slot_name::text, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint
                       FROM pg_replication_slots
                      WHERE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) > $1::float8
                      ORDER BY 2 DESC",
                    &[&(limit as f64)],
                )
                .context(|| "reading the replication slots' retained WAL".into())?;
            for r in rows {
                holds.push(Hold::SlotRetainsWal {
                    slot: r.get(0),
                    retained_bytes: r.get(1),
                    limit_bytes: limit,
                });
            }
        }
        Ok(holds)
    }
}
