//! Typed errors of the PostgreSQL side. Messages put the context first and, for database errors,
//! carry PostgreSQL's own message, detail and hint.

use tandem_model::{LoadError, ValidationError};
use tandem_plan::PlanError;

use crate::status::MigrationStatus;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(String),
    #[error("{context}: {}", describe(.source))]
    Db {
        context: String,
        #[source]
        source: postgres::Error,
    },
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("another tandem run holds the migration lock for schema {schema:?}; wait for it to finish (or stop it) and try again")]
    Locked { schema: String },
    #[error("tandem's state schema {state_schema:?} does not exist in this database; run `tandem init` first")]
    NotInitialized { state_schema: String },
    #[error("tandem's state schema {state_schema:?} was created by a newer tandem (state version {found}, this tandem knows up to {known}); upgrade tandem")]
    StateTooNew {
        state_schema: String,
        found: i32,
        known: i32,
    },
    #[error("no migration is active in schema {schema:?}")]
    NoActiveMigration { schema: String },
    #[error("migration {name:?} is active in schema {schema:?} ({status}); complete or roll it back first")]
    ActiveMigration {
        schema: String,
        name: String,
        status: MigrationStatus,
    },
    /// The file given is not the one the migration was started with.
    #[error("migration {name:?} is {status}, but its file has changed since it was started; {}", file_changed_advice(*.status))]
    FileChanged {
        name: String,
        status: MigrationStatus,
    },
    /// The migration's start was interrupted during the backfill; start continues it.
    #[error("{}", MigrationStatus::Backfilling.next_step(.name).unwrap_or_default())]
    StillBackfilling { name: String },
    /// The command needs the migration in another status (complete of a migration that did not
    /// finish starting, rollback of one that is completing).
    #[error("migration {name:?} is {status}, so it cannot be {wanted}; {}", .status.next_step(.name).unwrap_or_default())]
    WrongStatus {
        name: String,
        status: MigrationStatus,
        wanted: &'static str,
    },
    /// The database's history and the directory disagree at `position` (from 1).
    #[error("the database's history does not match the directory: migration {position} is {database:?} in the database but {} in the directory", .directory.as_deref().map_or("missing".to_string(), |d| format!("{d:?}")))]
    HistoryMismatch {
        position: usize,
        database: String,
        directory: Option<String>,
    },
    /// The state row was not in a status the move may come from: another run changed it.
    #[error("migration {name:?} is {found}, and tandem cannot record it as {wanted} from there; run `tandem status` to see where it stands")]
    StatusConflict {
        name: String,
        found: String,
        wanted: MigrationStatus,
    },
    /// A file of the directory was changed since its migration was applied: its checksum is
    /// not the history's.
    #[error("{file}: migration {name:?} was already applied, and the file was edited since (its checksum differs from the one recorded when it started); restore the file as it was applied (`tandem pull DIR` writes the applied history), and put the change in a new migration (`tandem create NAME`)")]
    AppliedFileEdited { file: String, name: String },
    #[error("migration {name:?} was already applied to schema {schema:?}")]
    AlreadyApplied { schema: String, name: String },
    #[error("{what}: still blocked by other sessions after {attempts} attempts; the lock it needs ({lock}) is held by: {holders}")]
    LockRetriesExhausted {
        what: String,
        attempts: u32,
        lock: String,
        holders: String,
    },
    #[error("version schema {0:?} already exists; set `version_schema` in the migration file to another name")]
    VersionSchemaExists(String),
    /// The backfill stopped part-way for a reason that resuming can get past (the connection
    /// went, the server was shut down, locks stayed busy, the test hook). The migration is left
    /// `backfilling` with its checkpoint.
    #[error("backfill of {table} stopped after {rows_done} rows: {source}\nthe migration is left backfilling with its checkpoint; run `tandem start` with the same file again to continue, or `tandem rollback` to undo it")]
    BackfillInterrupted {
        table: String,
        rows_done: u64,
        source: Box<Error>,
    },
    /// The backfill was asked to stop (`BackfillOptions::stop`), and did after its batch.
    #[error("stopped as asked, once its batch in flight had committed")]
    StopRequested,
    /// `migrate` was asked to stop (`BackfillOptions::stop`) and did between two steps of its
    /// own: before `what` (`starting 02_x`, `completing 01_x`).
    #[error("migrate stopped as asked, before {what}; what it did so far stands, and `tandem migrate` with the same directory goes on from there")]
    StoppedBefore { what: String },
    /// `migrate` stopped while completing a migration; `advice` fits the state it was left in.
    #[error("completing {name:?} failed: {source}\n{advice}")]
    MigrateStopped {
        name: String,
        #[source]
        source: Box<Error>,
        advice: String,
    },
    /// `complete` found evidence that the migration's old version still runs.
    #[error("migration {name:?} was not completed: its old version still appears to be in use:\n  {findings}\nstop the old version (or wait for it to drain) and run `tandem complete` again; `--force` completes anyway and records that it did")]
    OldVersionInUse { name: String, findings: String },
    /// An `up` that an existing row cannot take, found before anything changed.
    #[error(transparent)]
    UpFailsOnRow(Box<UpFailsOnRow>),
    /// A backfill would fire the user's triggers (`table.trigger (what)` each), found before
    /// anything changed. `replica`: the session may set `session_replication_role`, and these
    /// fire even so; otherwise it may not, and `role` is the role that would need it.
    #[error("{}", fires_triggers(.triggers, *.replica, .role))]
    BackfillFiresTriggers {
        triggers: Vec<String>,
        replica: bool,
        role: String,
    },
    /// A step of the plan failed, with PostgreSQL's error.
    #[error("{0}")]
    Step(Box<StepFailed>),
    #[error("{0}")]
    Other(String),
}

/// What to do about `Error::FileChanged`, by where the migration stands.
fn file_changed_advice(status: MigrationStatus) -> &'static str {
    match status {
        MigrationStatus::Backfilling => {
            "start it with the file it was started with, or run `tandem rollback` first"
        }
        _ => "run `tandem rollback` first, then start the new file",
    }
}

impl Error {
    /// PostgreSQL's error, when this is one (a statement of tandem's or a failed step).
    pub fn postgres(&self) -> Option<&postgres::Error> {
        match self {
            Error::Db { source, .. } => Some(source),
            Error::Step(s) => Some(&s.source),
            _ => None,
        }
    }

    /// A failed step of `migration`'s plan names the file (or the migration) and the operation
    /// it came from, as validation errors do: `02_x.yaml: operations[1].alter_column: ...`.
    /// `operations` are the kinds of the migration's operations, in order.
    pub fn naming_step(self, migration: &str, operations: &[String]) -> Error {
        match self {
            Error::Step(mut s) if s.migration.is_none() => {
                s.migration = Some(migration.to_string());
                s.operation = s
                    .operation_index
                    .and_then(|i| Some(format!("operations[{i}].{}", operations.get(i)?)));
                Error::Step(s)
            }
            Error::MigrateStopped {
                name,
                source,
                advice,
            } => Error::MigrateStopped {
                name,
                source: Box::new(source.naming_step(migration, operations)),
                advice,
            },
            other => other,
        }
    }
}

/// What [`Error::Step`] reports: the step, and where in the migration file it came from.
#[derive(Debug)]
pub struct StepFailed {
    /// The migration's file (or, for complete and rollback, which read the stored plan, its
    /// name), once the engine has said it.
    pub migration: Option<String>,
    /// The operation the step belongs to, by index; `None` for the write-translating triggers
    /// and the version schema, which serve all of them.
    pub operation_index: Option<usize>,
    /// `operations[1].alter_column`.
    pub operation: Option<String>,
    pub description: String,
    /// The first line of the step's SQL.
    pub sql: String,
    pub source: postgres::Error,
    /// What to do about it, when tandem knows (a step cancelled by `--long-statement-timeout`).
    pub advice: Option<String>,
}

impl std::fmt::Display for StepFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(m) = &self.migration {
            write!(f, "{m}: ")?;
        }
        if let Some(o) = &self.operation {
            write!(f, "{o}: ")?;
        }
        write!(
            f,
            "{} ({}): {}",
            self.description,
            self.sql,
            describe(&self.source)
        )?;
        if let Some(advice) = &self.advice {
            write!(f, "; {advice}")?;
        }
        Ok(())
    }
}

/// The message of `Error::BackfillFiresTriggers`: what would fire, why, and the ways out.
fn fires_triggers(triggers: &[String], replica: bool, role: &str) -> String {
    let list = triggers.join(", ");
    let why = if replica {
        "they are enabled ALWAYS or REPLICA, so they fire even with session_replication_role = replica, which each backfill batch sets: make them fire the default way for the migration (ALTER TABLE ... ENABLE TRIGGER / ENABLE RULE)".to_string()
    } else {
        let grant = tandem_model::quote_ident(role);
        format!(
            "tandem keeps them out of its batches with SET LOCAL session_replication_role = replica, which role {grant} may not set: grant it (as a superuser, on PostgreSQL 15 and later: GRANT SET ON PARAMETER session_replication_role TO {grant}) or run tandem as a superuser"
        )
    };
    format!(
        "the backfill would fire the user's triggers {list} for every row it fills, so they would stamp, recompute or log rows nobody wrote; {why}; or pass --backfill-fires-triggers to accept their effect. Nothing was changed"
    )
}

/// PostgreSQL's message with its SQLSTATE, detail and hint, on one line.
pub fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s.push_str(&format!("; detail: {d}"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("; hint: {h}"));
            }
            if db.code() == &postgres::error::SqlState::INSUFFICIENT_PRIVILEGE {
                s.push_str(
                    "; tandem must act as the owner of the schema and its tables: connect as \
                     that role, or name it with --role (SET ROLE)",
                );
            }
            s
        }
        // Connection and protocol errors keep their cause in the source chain.
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds context to a postgres error.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, postgres::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Db {
            context: what(),
            source,
        })
    }
}

/// What [`Error::UpFailsOnRow`] reports.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {origin}: the value `up` gives column {column:?} of {table:?} cannot be computed for the existing row {row}: {message}. Nothing was changed: fix `up` (or that row) and run it again")]
pub struct UpFailsOnRow {
    pub file: String,
    /// `operations[i].kind.up` of the operation whose `up` it is.
    pub origin: String,
    pub table: String,
    pub column: String,
    pub row: String,
    pub message: String,
}
