//! The state machine of a migration, as a type: the statuses its row in the state table goes
//! through, which status each may follow, and what to run next from each. The engine compares
//! and stores statuses only through it, and every message that says what to do next comes from
//! `next_step`.
//!
//! ```text
//! starting ──► backfilling ──► active ──► completing ──► complete
//!    │              │             │            (only forward: it has dropped things)
//!    └──────────────┴─────────────┴──► rolling_back ──► (row removed)
//! ```
//!
//! A `starting` migration whose start failed is undone and its row removed; one that was
//! interrupted is taken over by the next `start` of the same file, or by `rollback`. A complete
//! whose first step did not commit goes back from `completing` to `active`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationStatus {
    /// Start steps are running (or were, when start was interrupted).
    Starting,
    /// The start steps ran; the backfill is filling new columns from its checkpoint.
    Backfilling,
    /// Both versions work: the version schema is published.
    Active,
    /// Complete is contracting (or was, when it was interrupted).
    Completing,
    /// In the history: contracted.
    Complete,
    /// Rollback is undoing start (or was, when it was interrupted).
    RollingBack,
}

impl MigrationStatus {
    pub const ALL: [MigrationStatus; 6] = [
        MigrationStatus::Starting,
        MigrationStatus::Backfilling,
        MigrationStatus::Active,
        MigrationStatus::Completing,
        MigrationStatus::Complete,
        MigrationStatus::RollingBack,
    ];

    /// The name stored in the state table and shown by `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationStatus::Starting => "starting",
            MigrationStatus::Backfilling => "backfilling",
            MigrationStatus::Active => "active",
            MigrationStatus::Completing => "completing",
            MigrationStatus::Complete => "complete",
            MigrationStatus::RollingBack => "rolling_back",
        }
    }

    /// The status stored as `name`, if tandem knows it.
    pub fn parse(name: &str) -> Option<MigrationStatus> {
        MigrationStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
    }

    /// The statuses a migration may be in when it moves to this one.
    pub fn follows(self) -> &'static [MigrationStatus] {
        use MigrationStatus::*;
        match self {
            // A row is inserted as starting; nothing moves back to it.
            Starting => &[],
            Backfilling => &[Starting],
            Active => &[Starting, Backfilling, Completing],
            Completing => &[Active, Completing],
            Complete => &[Completing],
            RollingBack => &[Starting, Backfilling, Active, RollingBack],
        }
    }

    /// Whether a migration in this status may move to `to`.
    pub fn may_become(self, to: MigrationStatus) -> bool {
        to.follows().contains(&self)
    }

    /// Whether it still stands in the way of another migration (every status but complete).
    pub fn is_open(self) -> bool {
        self != MigrationStatus::Complete
    }

    /// Where migration `name` stands in this status, and what to run next; `None` for a
    /// migration that needs nothing (active, waiting for complete or rollback; or complete).
    pub fn next_step(self, name: &str) -> Option<String> {
        match self {
            MigrationStatus::Starting => Some(format!(
                "start of {name:?} did not finish (interrupted or failed); run `tandem rollback` to remove what it left, or `tandem start` with its file again to start over"
            )),
            MigrationStatus::Backfilling => Some(format!(
                "{name:?} is still backfilling (its start was interrupted); run `tandem start` with its file again to continue from its checkpoint, or `tandem rollback` to undo it"
            )),
            MigrationStatus::Completing => Some(format!(
                "complete of {name:?} did not finish; what it dropped cannot be brought back, so it can only go forward: run `tandem complete` again"
            )),
            MigrationStatus::RollingBack => Some(format!(
                "rollback of {name:?} did not finish; run `tandem rollback` again"
            )),
            MigrationStatus::Active | MigrationStatus::Complete => None,
        }
    }
}

impl std::fmt::Display for MigrationStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for s in MigrationStatus::ALL {
            assert_eq!(MigrationStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().into())
            );
        }
        assert_eq!(MigrationStatus::parse("done"), None);
    }

    #[test]
    fn complete_only_goes_forward_and_nothing_leaves_complete() {
        use MigrationStatus::*;
        assert!(!Completing.may_become(RollingBack));
        assert!(Completing.may_become(Complete));
        for to in MigrationStatus::ALL {
            assert!(!Complete.may_become(to), "complete → {to}");
        }
        assert!(Starting.may_become(Backfilling) && Backfilling.may_become(Active));
        assert!(!Active.may_become(Backfilling));
    }

    #[test]
    fn every_unfinished_status_says_what_to_run() {
        for s in MigrationStatus::ALL {
            let advice = s.next_step("m");
            let unfinished = !matches!(s, MigrationStatus::Active | MigrationStatus::Complete);
            assert_eq!(advice.is_some(), unfinished, "{s}");
            if let Some(a) = advice {
                assert!(a.contains("run `tandem "), "{s}: {a}");
            }
        }
    }
}
