//! A step of a plan: one SQL statement (or a small batch), the phase it belongs to, the locks it
//! takes and whether it may share a transaction. The executor needs nothing else to run it under
//! the lock discipline.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Expand: make the new version possible while the old one keeps working.
    Start,
    /// Contract: remove what only the old version needed.
    Complete,
    /// Undo the expand.
    Rollback,
}

/// Table-level lock modes, weakest first, as PostgreSQL names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LockMode {
    AccessShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    AccessExclusive,
}

impl LockMode {
    pub fn name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "ACCESS SHARE",
            LockMode::RowExclusive => "ROW EXCLUSIVE",
            LockMode::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockMode::Share => "SHARE",
            LockMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// What the application cannot do while this lock is held or queued for.
    pub fn blocks(self) -> &'static str {
        match self {
            LockMode::AccessShare => "only ACCESS EXCLUSIVE (DDL)",
            LockMode::RowExclusive => "SHARE locks (CREATE INDEX without CONCURRENTLY)",
            LockMode::ShareUpdateExclusive => {
                "other schema changes and VACUUM, not reads or writes"
            }
            LockMode::Share => "writes (INSERT, UPDATE, DELETE)",
            LockMode::ShareRowExclusive => "writes (INSERT, UPDATE, DELETE)",
            LockMode::AccessExclusive => "all reads and writes",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub mode: LockMode,
    /// The relation, schema-qualified as written in the SQL.
    pub relation: String,
}

/// The part of a plan a step belongs to. A failed start undoes only the parts whose start steps
/// ran: rollback steps are matched to start steps by it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// The migration's operation at this index.
    Operation(usize),
    /// The write-translating trigger of this physical table.
    Trigger(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub description: String,
    pub sql: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locks: Vec<Lock>,
    /// False for statements PostgreSQL refuses inside a transaction block (CONCURRENTLY).
    pub transactional: bool,
    /// Run before a retry of this step: a failed CREATE INDEX CONCURRENTLY leaves an INVALID
    /// index behind that must go before the build can run again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup_before_retry: Option<String>,
    /// `None` in plans stored by versions of tandem that did not record it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<Part>,
}

impl Step {
    /// Whether the step may run long by design: it takes locks, and none of them blocks reads
    /// or writes (CREATE INDEX CONCURRENTLY, VALIDATE CONSTRAINT, DROP INDEX CONCURRENTLY scan
    /// or wait under SHARE UPDATE EXCLUSIVE at most). The executor runs such steps under
    /// tandem's own statement timeout instead of the session's.
    pub fn runs_long(&self) -> bool {
        !self.locks.is_empty()
            && self
                .locks
                .iter()
                .all(|l| l.mode <= LockMode::ShareUpdateExclusive)
    }

    pub fn tx(description: impl Into<String>, sql: impl Into<String>) -> Step {
        Step {
            description: description.into(),
            sql: sql.into(),
            locks: Vec::new(),
            transactional: true,
            cleanup_before_retry: None,
            part: None,
        }
    }

    pub fn non_tx(description: impl Into<String>, sql: impl Into<String>) -> Step {
        Step {
            transactional: false,
            ..Step::tx(description, sql)
        }
    }

    pub fn lock(mut self, mode: LockMode, relation: impl Into<String>) -> Step {
        self.locks.push(Lock {
            mode,
            relation: relation.into(),
        });
        self
    }

    pub fn cleanup(mut self, sql: impl Into<String>) -> Step {
        self.cleanup_before_retry = Some(sql.into());
        self
    }

    pub fn part(mut self, part: Part) -> Step {
        self.part = Some(part);
        self
    }

    /// The strongest lock the step takes, if any.
    pub fn strongest_lock(&self) -> Option<&Lock> {
        self.locks.iter().max_by_key(|l| l.mode)
    }
}
