//! The expand/contract engine. Each command reads as its algorithm: take the runner lock, read
//! the state, do the work under the lock discipline, and commit the bookkeeping with the last
//! change. A start that fails part-way undoes itself and leaves no trace. One file per command
//! (`start`, `complete`, `rollback`, `status`, `migrate`) and `step_run`, which runs a phase's
//! steps; this one holds the `Engine`, its options and reports, and the runner lock.

use crate::backfill::BackfillOptions;
use crate::error::{Context, Error, Result};
use crate::events::OnEvent;
use crate::evidence::{Evidence, EvidenceOptions};
use crate::introspect::server_major;
use crate::locks::{LongStatementTimeout, RetryPolicy, RunnerLock, StepRules};
use crate::state::{BackfillCheckpoint, MigrationRecord, State};
use postgres::Client;
use serde::Serialize;
use step_run::{MigrationRow, StepRun};
use tandem_model::{quote_literal, shorten_name, Migration};
use tandem_plan::{Phase, Plan};

mod complete;
mod migrate;
mod rollback;
mod start;
mod status;
mod step_run;

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The schema the application's tables live in.
    pub schema: String,
    pub state_schema: String,
    pub retry: RetryPolicy,
    /// The statement timeout of the steps that run long by design and block neither reads
    /// nor writes (`CREATE INDEX CONCURRENTLY`, `VALIDATE CONSTRAINT`), instead of the
    /// session's own; zero, the default, is no limit.
    pub long_statement_timeout: LongStatementTimeout,
    pub backfill: BackfillOptions,
    /// What `complete` looks for before it contracts (`crate::evidence`).
    pub evidence: EvidenceOptions,
    /// Change a column's type in place at complete, with no second column and no backfill,
    /// where PostgreSQL would not rewrite the table (varchar(n) to a longer varchar or text).
    /// Off by default: the new version's statements prepared before complete that return the
    /// column then fail once with "cached plan must not change result type".
    pub type_changes_in_place: bool,
    /// How to open more sessions like the engine's own: the backfill's workers need them when
    /// `backfill.workers` is more than one.
    pub connect: Option<crate::connect::ConnectOptions>,
    /// Let the backfill fire the user's triggers that it cannot keep out of its batches (all of
    /// them when the role may not set `session_replication_role`, those enabled ALWAYS or
    /// REPLICA otherwise). Off by default: `start` refuses, naming them, before it changes
    /// anything (`backfill::triggers`).
    pub backfill_fires_triggers: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            schema: "public".into(),
            state_schema: "tandem".into(),
            retry: RetryPolicy::default(),
            long_statement_timeout: LongStatementTimeout::default(),
            backfill: BackfillOptions::default(),
            evidence: EvidenceOptions::default(),
            type_changes_in_place: false,
            connect: None,
            backfill_fires_triggers: false,
        }
    }
}

/// What `start` did.
#[derive(Debug, Clone, Serialize)]
pub struct StartReport {
    pub name: String,
    pub version_schema: String,
    pub steps: usize,
    pub backfilled_rows: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompleteReport {
    pub name: String,
    pub version_schema: String,
    pub dropped_version_schemas: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub name: String,
    pub version_schema: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub schema: String,
    pub state_schema: String,
    pub initialized: bool,
    /// The migration that is not complete, if any, and what state it is in.
    pub active: Option<MigrationRecord>,
    /// The newest migration in the history (active or complete).
    pub latest: Option<MigrationRecord>,
    pub history: Vec<MigrationRecord>,
    /// Version schemas that exist in the database, oldest first.
    pub version_schemas: Vec<String>,
    /// The backfills of a migration that is backfilling, with their progress.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backfills: Vec<BackfillCheckpoint>,
    /// What to do next, in words, when the state needs attention.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
    /// For an active migration, the evidence that its old version still runs, as `complete`
    /// would gather it (with the sampling window of `EngineOptions::evidence`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// The GRANT and REVOKE statements that would give the version schemas' views the
    /// privileges their tables have now ([`crate::grants::drift`]): grants made on a table after
    /// its view was created do not reach the view by themselves.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grant_drift: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    pub started: Vec<String>,
    pub completed: Vec<String>,
    pub active: Option<String>,
}

pub struct Engine<'c> {
    pub client: &'c mut Client,
    pub opts: EngineOptions,
    pub(crate) state: State,
}

impl<'c> Engine<'c> {
    pub fn new(client: &'c mut Client, opts: EngineOptions) -> Self {
        let state = State::new(&opts.state_schema);
        Engine {
            client,
            opts,
            state,
        }
    }

    pub fn init(&mut self) -> Result<i32> {
        self.state.init(self.client)
    }

    /// The version schema a migration gets: its `version_schema`, or `<schema>_<name>`,
    /// shortened with a hash when that would not fit in 63 bytes.
    pub fn version_schema_name(schema: &str, migration: &Migration) -> String {
        migration
            .version_schema
            .clone()
            .unwrap_or_else(|| shorten_name(&format!("{schema}_{}", migration.name)))
    }

    fn lock(&mut self) -> Result<Locked> {
        self.state.check(self.client)?;
        RunnerLock::acquire(self.client, &self.opts.state_schema, &self.opts.schema)?;
        Ok(Locked)
    }

    fn unlock(&mut self) {
        let key = format!("tandem:{}:{}", self.opts.state_schema, self.opts.schema);
        let _ = self.client.execute(
            "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
            &[&key],
        );
    }

    pub(crate) fn locked<T>(
        &mut self,
        f: impl FnOnce(&mut Self, Locked) -> Result<T>,
    ) -> Result<T> {
        let guard = self.lock()?;
        let result = f(self, guard);
        self.unlock();
        result
    }

    /// A run of steps of `phase` for migration `name`, with the engine's retry policy.
    fn step_run<'r>(&self, phase: Phase, name: &str, on_event: OnEvent<'r>) -> StepRun<'r> {
        let row = MigrationRow::new(&self.state, &self.opts.schema, name);
        let rules = StepRules {
            phase,
            retry: self.opts.retry,
            long_statement_timeout: self.opts.long_statement_timeout,
        };
        StepRun::new(rules, row, on_event)
    }

    fn active_plan(&mut self) -> Result<(MigrationRecord, Plan)> {
        let schema = self.opts.schema.clone();
        let active = self
            .state
            .active(self.client, &schema)?
            .ok_or(Error::NoActiveMigration { schema })?;
        let plan: Plan = serde_json::from_value(active.plan.clone()).map_err(|e| {
            Error::Other(format!(
                "the stored plan of {:?} cannot be read: {e}",
                active.name
            ))
        })?;
        Ok((active, plan))
    }

    /// A connection string selecting the latest version: the base URL with its search_path set
    /// to the version schema, then the base schema.
    pub fn search_path_for(version_schema: &str, schema: &str) -> String {
        format!(
            "{},{}",
            tandem_model::quote_ident(version_schema),
            tandem_model::quote_ident(schema)
        )
    }

    pub fn server_major(&mut self) -> Result<u32> {
        server_major(self.client)
    }

    /// A string literal for SQL (`quote_literal`).
    pub fn literal(value: &str) -> String {
        quote_literal(value)
    }

    /// Runs SQL as the engine's session does; for `validate` and tests.
    pub fn execute(&mut self, sql: &str) -> Result<()> {
        self.client
            .batch_execute(sql)
            .context(|| "running SQL".into())
    }
}

/// The kinds of a migration's operations, in order (`add_column`, ...), for
/// [`Error::naming_step`].
fn operation_kinds(migration: &Migration) -> Vec<String> {
    migration
        .operations
        .iter()
        .map(|o| o.kind().to_string())
        .collect()
}

/// The same, read from the file stored with the state row: complete and rollback have no file.
fn stored_operation_kinds(record: &MigrationRecord) -> Vec<String> {
    record.migration["operations"]
        .as_array()
        .map(|ops| {
            ops.iter()
                .map(|o| {
                    o.as_object()
                        .and_then(|o| o.keys().next().cloned())
                        .unwrap_or_else(|| "?".into())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Proof that the runner lock is held.
pub(crate) struct Locked;
