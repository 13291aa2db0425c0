//! Progress events: the library never prints; it reports what it does through a callback and
//! the binary draws it.

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
    Backfill {
        table: String,
        column: String,
        rows_done: u64,
        rows_total_estimate: u64,
    },
    Info {
        message: String,
    },
}

/// Where events go.
pub type OnEvent<'a> = &'a (dyn Fn(&Event) + Sync);

/// Discards events.
pub fn ignore(_: &Event) {}
