//! Progress events: the library never prints; it reports what it does through a callback and
//! the binary draws it.

use crate::throttle::{Hold, YieldAction};
use serde::Serialize;
use tandem_plan::{Lock, Phase};

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A step is about to run.
    Step {
        phase: Phase,
        description: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        lock: Option<Lock>,
    },
    /// A statement gave up waiting for a lock (lock_timeout) and will be retried.
    LockRetry {
        description: String,
        attempt: u32,
        delay_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        lock: Option<Lock>,
        /// Sessions holding locks on the relation, as far as pg_locks tells.
        holders: String,
    },
    /// A backfill batch committed (or, with `done`, the backfill of the table finished).
    Backfill {
        table: String,
        /// The columns it fills, comma-separated.
        column: String,
        rows_done: u64,
        /// From the planner's statistics; at least `rows_done`.
        rows_total_estimate: u64,
        /// Rows per second since this run of the backfill began.
        rows_per_second: u64,
        /// Seconds left at that rate, when the estimate allows a guess.
        #[serde(skip_serializing_if = "Option::is_none")]
        eta_seconds: Option<u64>,
        /// Rows (or, on a table without a key, blocks) the next batch will take.
        batch_size: u64,
        /// Sessions updating batches at once right now (`backfill::sessions`).
        sessions: usize,
        done: bool,
    },
    /// The backfill of a table paused or slowed down because of `hold`, or (`resumed`) went on
    /// at full speed again once it cleared.
    BackfillYield {
        table: String,
        action: YieldAction,
        /// What it yields (or yielded) to, in words.
        reason: String,
        hold: Hold,
    },
    Info {
        message: String,
    },
}

/// Where events go.
pub type OnEvent<'a> = &'a (dyn Fn(&Event) + Sync);

/// Discards events.
pub fn ignore(_: &Event) {}
