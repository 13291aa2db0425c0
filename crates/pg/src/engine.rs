//! The expand/contract engine. Each command reads as its algorithm: take the runner lock, read
//! the state, do the work under the lock discipline, and commit the bookkeeping with the last
//! change. A start that fails part-way undoes itself and leaves no trace.

use crate::backfill::triggers::Firing;
use crate::backfill::{self, BackfillOptions, TriggerMode};
use crate::error::{Context, Error, Result};
use crate::events::{Event, OnEvent};
use crate::evidence::{Evidence, EvidenceOptions};
use crate::introspect::{read_schema, schema_exists, server_major};
use crate::locks::{kill_point, run_steps, Progress, RetryPolicy, RunnerLock};
use crate::preflight::{preflight, PreflightOptions, Preflighted};
use crate::state::{BackfillCheckpoint, MigrationRecord, State};
use crate::status::MigrationStatus;
use postgres::Client;
use serde::Serialize;
use tandem_model::{quote_literal, shorten_name, Migration};
use tandem_plan::views::{create_version_schema, drop_version_schema, KEPT_SCHEMAS_SETTING};
use tandem_plan::{Phase, Plan};

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The schema the application's tables live in.
    pub schema: String,
    pub state_schema: String,
    pub retry: RetryPolicy,
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

    /// Expands: validates, plans, runs the start steps, backfills, and creates the version
    /// schema.
    pub fn start(&mut self, migration: &Migration, on_event: OnEvent<'_>) -> Result<StartReport> {
        self.locked(|e, l| e.start_locked(&l, migration, on_event))
            .map_err(|err| err.naming_step(&migration.file, &operation_kinds(migration)))
    }

    fn start_locked(
        &mut self,
        _: &Locked,
        migration: &Migration,
        on_event: OnEvent<'_>,
    ) -> Result<StartReport> {
        let schema = self.opts.schema.clone();
        if let Some(active) = self.state.active(self.client, &schema)? {
            if active.name == migration.name && active.status == MigrationStatus::Backfilling {
                return self.resume_locked(active, migration, on_event);
            }
            if active.name == migration.name && active.status == MigrationStatus::Starting {
                // Undo what its start steps did (those recorded as run), then start afresh
                // below.
                self.start_over_locked(active, migration, on_event)?;
            } else {
                return Err(Error::ActiveMigration {
                    schema,
                    name: active.name,
                    status: active.status,
                });
            }
        }
        let history = self.state.history(self.client, &schema)?;
        if history.iter().any(|h| h.name == migration.name) {
            return Err(Error::AlreadyApplied {
                schema,
                name: migration.name.clone(),
            });
        }
        let physical = read_schema(self.client, &schema)?;
        let version_schema = Self::version_schema_name(&schema, migration);
        if schema_exists(self.client, &version_schema)? {
            return Err(Error::VersionSchemaExists(version_schema));
        }
        let ours: Vec<String> = history.iter().map(|h| h.version_schema.clone()).collect();
        // Every refusal that can be known before the first change comes now: the same
        // sequence `validate` and `plan` run with a database.
        let Preflighted {
            plan,
            facts,
            trigger_mode: mode,
            firing,
        } = preflight(
            self.client,
            &schema,
            &version_schema,
            migration,
            &physical,
            &ours,
            PreflightOptions {
                type_changes_in_place: self.opts.type_changes_in_place,
                backfill_fires_triggers: self.opts.backfill_fires_triggers,
                try_rows: true,
            },
        )?;
        announce_firing(&firing, on_event);
        for note in &plan.notes {
            on_event(&Event::Info {
                message: format!("{}: {note}", migration.file),
            });
        }
        let plan_json = serde_json::to_value(&plan).expect("plan serializes");
        let file_json = serde_json::to_value(migration.to_file()).expect("migration serializes");
        let checksum = migration.checksum();
        let starting = crate::state::Starting {
            schema: &schema,
            name: &migration.name,
            version_schema: &version_schema,
            parent: history.last().map(|h| h.name.as_str()),
            migration: &file_json,
            plan: &plan_json,
            checksum: &checksum,
        };
        // The state row commits with the first group of start steps (or alone, with the record
        // of a first step that runs outside a transaction), so that a crash never leaves
        // `starting` with none of its steps done. `rollback` of a `starting` migration runs the
        // rollback steps of the start steps recorded, so the author's `down` never runs before
        // its `up`.
        let state = State::new(&self.opts.state_schema);
        let mut record = |tx: &mut postgres::Transaction<'_>| state.insert_starting(tx, &starting);
        // The start steps that ran: a failed start undoes only what they did.
        let mut ran = Vec::new();
        let expanded = self.expand(
            &plan,
            facts.pg_major,
            mode,
            &migration.name,
            &mut record,
            &mut ran,
            on_event,
        );
        self.report_or_undo(expanded, &migration.name, &plan, &ran, on_event)
    }

    /// Continues a start whose backfill was interrupted: the rest of each backfill from its
    /// checkpoint, then the version schema. The file must be the one that was started.
    fn resume_locked(
        &mut self,
        active: MigrationRecord,
        migration: &Migration,
        on_event: OnEvent<'_>,
    ) -> Result<StartReport> {
        let file_json = serde_json::to_value(migration.to_file()).expect("migration serializes");
        if file_json != active.migration {
            return Err(Error::FileChanged {
                name: active.name,
                status: active.status,
            });
        }
        let (_, plan) = self.active_plan()?;
        on_event(&Event::Info {
            message: format!(
                "{} was interrupted while backfilling; continuing from its checkpoint",
                active.name
            ),
        });
        let pg_major = server_major(self.client)?;
        // Asked again: the role, or the triggers, may not be those of the first run.
        let mode = self.trigger_mode(&plan, on_event)?;
        let published = self.backfill_and_publish(&plan, pg_major, mode, &active.name, on_event);
        let ran: Vec<usize> = (0..plan.start.len()).collect();
        self.report_or_undo(published, &active.name, &plan, &ran, on_event)
    }

    /// Removes what a start interrupted before its backfill (status `starting`) left behind, as
    /// `rollback` would, so that the same file can start again. The file must be the one that
    /// was started.
    fn start_over_locked(
        &mut self,
        active: MigrationRecord,
        migration: &Migration,
        on_event: OnEvent<'_>,
    ) -> Result<()> {
        let file_json = serde_json::to_value(migration.to_file()).expect("migration serializes");
        if file_json != active.migration {
            return Err(Error::FileChanged {
                name: active.name,
                status: active.status,
            });
        }
        let (_, plan) = self.active_plan()?;
        on_event(&Event::Info {
            message: format!(
                "{} was interrupted while starting; undoing what it left, then starting again",
                active.name
            ),
        });
        let todo = rollback_todo(&active, &plan);
        self.undo(&active.name, &plan, &todo, on_event)
    }

    /// The report of a start, or, when it failed, the undoing of what it did. An interrupted
    /// backfill is left in place with its checkpoint, to be continued.
    fn report_or_undo(
        &mut self,
        expanded: Result<u64>,
        name: &str,
        plan: &Plan,
        ran: &[usize],
        on_event: OnEvent<'_>,
    ) -> Result<StartReport> {
        match expanded {
            Ok(backfilled_rows) => Ok(StartReport {
                name: name.to_string(),
                version_schema: plan.version_schema.clone(),
                steps: plan.start.len(),
                backfilled_rows,
            }),
            Err(err @ Error::BackfillInterrupted { .. }) => Err(err),
            Err(err) => {
                on_event(&Event::Info {
                    message: format!("start of {name} failed; undoing what it did"),
                });
                let undo = plan.rollback_indexes_of(ran);
                match self.undo(name, plan, &undo, on_event) {
                    Ok(()) => Err(err),
                    Err(undo) => Err(Error::Other(format!(
                        "{err}\nundoing the failed start also failed: {undo}\n`tandem status` shows the migration as not finished; `tandem rollback` removes what is left"
                    ))),
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn expand(
        &mut self,
        plan: &Plan,
        pg_major: u32,
        mode: TriggerMode,
        name: &str,
        record: crate::locks::Finish<'_>,
        ran: &mut Vec<usize>,
        on_event: OnEvent<'_>,
    ) -> Result<u64> {
        let schema = self.opts.schema.clone();
        let state = &self.state;
        // Each start step is recorded before it can take effect (with its transaction, or just
        // before it runs outside one), so that a rerun or rollback undoes only what may have
        // happened: an author's `down` never runs before its `up`.
        let mut save = |tx: &mut postgres::Transaction<'_>, steps: &[usize]| {
            state.add_steps(tx, &schema, name, Phase::Start, steps)
        };
        run_steps(
            self.client,
            Phase::Start,
            &plan.start,
            &self.opts.retry,
            on_event,
            Some(record),
            None,
            Progress {
                ran: Some(ran),
                save: Some(&mut save),
                save_lone_before: true,
            },
        )?;
        if !plan.backfills.is_empty() {
            let tables: Vec<&str> = plan.backfills.iter().map(|b| b.table.as_str()).collect();
            let mut tx = self
                .client
                .transaction()
                .context(|| "beginning a transaction".into())?;
            self.state
                .begin_backfills(&mut tx, &schema, name, &tables)?;
            tx.commit().context(|| "recording the backfills".into())?;
            kill_point(Phase::Start);
        }
        self.backfill_and_publish(plan, pg_major, mode, name, on_event)
    }

    /// How the plan's backfills treat the user's triggers (`backfill::triggers::decide`); says
    /// which ones fire when the user accepted them.
    fn trigger_mode(&mut self, plan: &Plan, on_event: OnEvent<'_>) -> Result<TriggerMode> {
        let (mode, firing) = backfill::triggers::decide(
            self.client,
            &self.opts.schema,
            &plan.backfills,
            self.opts.backfill_fires_triggers,
        )?;
        announce_firing(&firing, on_event);
        Ok(mode)
    }

    /// Runs the backfills from their checkpoints, then creates the version schema and marks
    /// the migration active.
    fn backfill_and_publish(
        &mut self,
        plan: &Plan,
        pg_major: u32,
        mode: TriggerMode,
        name: &str,
        on_event: OnEvent<'_>,
    ) -> Result<u64> {
        let schema = self.opts.schema.clone();
        let physical = read_schema(self.client, &schema)?;
        let mut rows = 0;
        let checkpoints = self.state.backfills(self.client, &schema, name)?;
        for (b, mut checkpoint) in plan.backfills.iter().zip(checkpoints) {
            let state = &self.state;
            let mut save = |tx: &mut postgres::Transaction<'_>, c: &BackfillCheckpoint| {
                state.save_backfill(tx, &schema, name, c)
            };
            rows += backfill::run(
                self.client,
                &physical,
                b,
                &mut checkpoint,
                &self.opts.backfill,
                mode,
                &self.opts.retry,
                on_event,
                &mut save,
                self.opts.connect.as_ref(),
            )?;
        }
        run_steps(
            self.client,
            Phase::Start,
            &plan.after_backfill,
            &self.opts.retry,
            on_event,
            None,
            None,
            Progress::default(),
        )?;
        let views = create_version_schema(
            &schema,
            &plan.version_schema,
            &physical,
            &plan.overlay,
            pg_major,
        );
        let state = &self.state;
        let state_schema = &self.opts.state_schema;
        let mut finish = |tx: &mut postgres::Transaction<'_>| {
            state.set_status(tx, &schema, name, MigrationStatus::Active)?;
            crate::evidence::record_baseline(tx, state_schema, &schema, name)
        };
        run_steps(
            self.client,
            Phase::Start,
            &views,
            &self.opts.retry,
            on_event,
            None,
            Some(&mut finish),
            Progress::default(),
        )?;
        Ok(rows)
    }

    /// Drops the version schema, runs the rollback steps at the indexes `todo` of the plan, and
    /// deletes the state row with the last of them. Each rollback step is recorded in the state
    /// row as it commits, so that a rerun after a crash skips it ([`rollback_todo`]).
    fn undo(
        &mut self,
        name: &str,
        plan: &Plan,
        todo: &[usize],
        on_event: OnEvent<'_>,
    ) -> Result<()> {
        let schema = self.opts.schema.clone();
        let mut steps = vec![drop_version_schema(&plan.version_schema)];
        steps.extend(todo.iter().map(|&i| plan.rollback[i].clone()));
        let state = &self.state;
        let mut save = |tx: &mut postgres::Transaction<'_>, local: &[usize]| {
            // Step 0 is the version schema's drop, which can always run again.
            let ids: Vec<usize> = local
                .iter()
                .filter_map(|&k| Some(todo[k.checked_sub(1)?]))
                .collect();
            state.add_steps(tx, &schema, name, Phase::Rollback, &ids)
        };
        let mut finish = |tx: &mut postgres::Transaction<'_>| state.delete(tx, &schema, name);
        run_steps(
            self.client,
            Phase::Rollback,
            &steps,
            &self.opts.retry,
            on_event,
            None,
            Some(&mut finish),
            Progress {
                ran: None,
                save: Some(&mut save),
                save_lone_before: false,
            },
        )
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

    /// Contracts: drops the previous versions' schemas and what only the old version needed.
    pub fn complete(&mut self, on_event: OnEvent<'_>) -> Result<CompleteReport> {
        self.locked(|e, l| {
            e.require_evidence(on_event, &[])?;
            e.complete_locked(&l, &[], on_event).map_err(|err| {
                let schema = e.opts.schema.clone();
                let active = e.state.active(e.client, &schema);
                let err = match &active {
                    Ok(Some(a)) => err.naming_step(&a.name, &stored_operation_kinds(a)),
                    _ => err,
                };
                match active {
                    Ok(Some(a))
                        if a.status == MigrationStatus::Active
                            && matches!(err, Error::Db { .. } | Error::Step(_)) =>
                    {
                        Error::Other(format!(
                            "{err}\nnothing was changed: {:?} is still active; run `tandem complete` again once the cause is fixed, or `tandem rollback`",
                            a.name
                        ))
                    }
                    _ => err,
                }
            })
        })
    }

    /// The evidence that the old version of the active migration still runs, when it is
    /// `active` (a `completing` one has already dropped things and can only go forward).
    fn evidence(&mut self, sample: std::time::Duration) -> Result<Option<Evidence>> {
        self.evidence_excluding(sample, &[])
    }

    /// The same, leaving out of the old version schemas those in `kept`, which this complete
    /// does not drop and whose users `migrate` keeps working on purpose.
    fn evidence_excluding(
        &mut self,
        sample: std::time::Duration,
        kept: &[String],
    ) -> Result<Option<Evidence>> {
        let schema = self.opts.schema.clone();
        let Some(active) = self.state.active(self.client, &schema)? else {
            return Ok(None);
        };
        if active.status != MigrationStatus::Active {
            return Ok(None);
        }
        let (_, plan) = self.active_plan()?;
        let mut old = Vec::new();
        for h in self.state.history(self.client, &schema)? {
            if h.name != active.name
                && !kept.contains(&h.version_schema)
                && schema_exists(self.client, &h.version_schema)?
            {
                old.push(h.version_schema);
            }
        }
        let opts = EvidenceOptions {
            sample,
            ..self.opts.evidence.clone()
        };
        crate::evidence::gather(
            self.client,
            &self.opts.state_schema,
            &active,
            &plan,
            old,
            &opts,
        )
        .map(Some)
    }

    /// Refuses to complete while there is evidence the old version still runs, unless forced;
    /// a forced complete records the evidence it overrode in the migration's row.
    fn require_evidence(&mut self, on_event: OnEvent<'_>, kept: &[String]) -> Result<()> {
        let Some(evidence) = self.evidence_excluding(self.opts.evidence.sample, kept)? else {
            return Ok(());
        };
        // (`kept` leaves out on purpose the version schema migrate keeps: that is not this.)
        if evidence.old_version_schemas.is_empty() && kept.is_empty() {
            // Said before anything is decided, so it comes ahead of a refusal too.
            on_event(&Event::Info {
                message: first_complete_note(&evidence),
            });
        }
        let findings = evidence.findings();
        if findings.is_empty() {
            return Ok(());
        }
        if !self.opts.evidence.force {
            return Err(Error::OldVersionInUse {
                name: evidence.migration,
                findings: findings.join("\n  "),
            });
        }
        on_event(&Event::Info {
            message: format!(
                "completing {} despite evidence that its old version still runs (--force):\n  {}",
                evidence.migration,
                findings.join("\n  ")
            ),
        });
        let schema = self.opts.schema.clone();
        let doc = serde_json::json!({ "findings": findings, "evidence": evidence });
        self.state
            .record_forced(self.client, &schema, &evidence.migration, &doc)
    }

    fn complete_locked(
        &mut self,
        _: &Locked,
        keep: &[String],
        on_event: OnEvent<'_>,
    ) -> Result<CompleteReport> {
        let schema = self.opts.schema.clone();
        let (active, plan) = self.active_plan()?;
        match active.status {
            MigrationStatus::Active | MigrationStatus::Completing => {}
            MigrationStatus::Backfilling => {
                return Err(Error::StillBackfilling { name: active.name })
            }
            status => {
                return Err(Error::WrongStatus {
                    name: active.name,
                    status,
                    wanted: "completed",
                })
            }
        }
        let ours: Vec<String> = self
            .state
            .history(self.client, &schema)?
            .into_iter()
            .map(|h| h.version_schema)
            .collect();
        // Start refused the views complete could not keep working; this finds those made
        // since, before anything changes.
        let problems = crate::introspect::view_problems(self.client, &schema, &plan, &ours)?;
        if !problems.is_empty() {
            let found: Vec<String> = problems.into_iter().map(|p| p.message).collect();
            return Err(Error::Other(format!(
                "complete cannot keep working what other views read: {}. Nothing was changed; run `tandem complete` again once they are dropped or changed",
                found.join("; ")
            )));
        }
        // The version schemas `migrate` keeps must not see a column change under them: the
        // step that carries views across the change stops when one of their views reads it.
        self.client
            .execute(
                "SELECT set_config($1, $2::text[]::text, false)",
                &[&KEPT_SCHEMAS_SETTING, &keep],
            )
            .context(|| "naming the kept version schemas".into())?;
        self.state.set_status(
            self.client,
            &schema,
            &active.name,
            MigrationStatus::Completing,
        )?;
        kill_point(Phase::Complete);
        let mut dropped = Vec::new();
        let mut steps = Vec::new();
        // The complete steps an interrupted complete did not commit.
        let todo: Vec<usize> = (0..plan.complete.len())
            .filter(|i| !active.complete_steps.contains(i))
            .collect();
        for h in self.state.history(self.client, &schema)? {
            if h.name != active.name
                && !keep.contains(&h.version_schema)
                && schema_exists(self.client, &h.version_schema)?
            {
                steps.push(drop_version_schema(&h.version_schema));
                dropped.push(h.version_schema);
            }
        }
        // Dropping the older version schemas can run again; it is not recorded.
        let first = steps.len();
        steps.extend(todo.iter().map(|&i| plan.complete[i].clone()));
        let state = &self.state;
        let name = active.name.clone();
        let mut save = |tx: &mut postgres::Transaction<'_>, local: &[usize]| {
            let ids: Vec<usize> = local
                .iter()
                .filter_map(|&k| Some(todo[k.checked_sub(first)?]))
                .collect();
            state.add_steps(tx, &schema, &name, Phase::Complete, &ids)
        };
        let mut finish = |tx: &mut postgres::Transaction<'_>| {
            let snapshot = read_schema(tx, &schema)?;
            state.mark_complete(
                tx,
                &schema,
                &name,
                &serde_json::to_value(snapshot).expect("snapshot serializes"),
            )
        };
        let mut ran = Vec::new();
        let result = run_steps(
            self.client,
            Phase::Complete,
            &steps,
            &self.opts.retry,
            on_event,
            None,
            Some(&mut finish),
            Progress {
                ran: Some(&mut ran),
                save: Some(&mut save),
                save_lone_before: false,
            },
        );
        // A session setting outlives the command; this one means nothing outside it.
        let _ = self
            .client
            .execute("SELECT set_config($1, '', false)", &[&KEPT_SCHEMAS_SETTING]);
        if let Err(err) = result {
            // When no step committed, nothing was dropped: the migration is still active and
            // can be rolled back, so say so instead of leaving it `completing`.
            if ran.is_empty() && active.status == MigrationStatus::Active {
                self.state.set_status(
                    self.client,
                    &schema,
                    &active.name,
                    MigrationStatus::Active,
                )?;
            }
            return Err(err);
        }
        Ok(CompleteReport {
            name: active.name,
            version_schema: active.version_schema,
            dropped_version_schemas: dropped,
        })
    }

    /// Undoes the active migration: drops its version schema and everything its start added.
    pub fn rollback(&mut self, on_event: OnEvent<'_>) -> Result<RollbackReport> {
        self.locked(|e, _| {
            let (active, plan) = e.active_plan()?;
            if active.status == MigrationStatus::Completing {
                return Err(Error::WrongStatus {
                    name: active.name,
                    status: active.status,
                    wanted: "rolled back",
                });
            }
            let schema = e.opts.schema.clone();
            e.state.set_status(
                e.client,
                &schema,
                &active.name,
                MigrationStatus::RollingBack,
            )?;
            kill_point(Phase::Rollback);
            let todo = rollback_todo(&active, &plan);
            e.undo(&active.name, &plan, &todo, on_event)
                .map_err(|err| err.naming_step(&active.name, &stored_operation_kinds(&active)))?;
            Ok(RollbackReport {
                name: active.name,
                version_schema: active.version_schema,
            })
        })
    }

    /// The state, the history and, for an active migration, the evidence `complete` would
    /// weigh. `sample` is the window for sessions on the old version schemas (zero: one sample).
    pub fn status(&mut self) -> Result<Status> {
        self.status_sampled(std::time::Duration::ZERO)
    }

    pub fn status_sampled(&mut self, sample: std::time::Duration) -> Result<Status> {
        let schema = self.opts.schema.clone();
        let mut status = Status {
            schema: schema.clone(),
            state_schema: self.opts.state_schema.clone(),
            initialized: false,
            active: None,
            latest: None,
            history: Vec::new(),
            version_schemas: Vec::new(),
            backfills: Vec::new(),
            advice: None,
            evidence: None,
            grant_drift: Vec::new(),
        };
        match self.state.check(self.client) {
            Ok(()) => {}
            Err(Error::NotInitialized { .. }) => {
                status.advice = Some("run `tandem init`".into());
                return Ok(status);
            }
            Err(e) => return Err(e),
        }
        status.initialized = true;
        status.history = self.state.history(self.client, &schema)?;
        status.active = self.state.active(self.client, &schema)?;
        status.latest = status.history.last().cloned();
        for h in &status.history {
            if schema_exists(self.client, &h.version_schema)? {
                status.version_schemas.push(h.version_schema.clone());
            }
        }
        status.grant_drift = crate::grants::drift(self.client, &schema, &status.version_schemas)?;
        let backfilling = status
            .active
            .as_ref()
            .filter(|a| a.status == MigrationStatus::Backfilling);
        if let Some(a) = backfilling {
            status.backfills = self.state.backfills(self.client, &schema, &a.name)?;
            let running = crate::locks::RunnerLock::held_elsewhere(
                self.client,
                &self.opts.state_schema,
                &schema,
            )?;
            status.advice = Some(backfill_advice(&a.name, &status.backfills, running));
            return Ok(status);
        }
        status.evidence = self.evidence(sample)?;
        status.advice = status
            .active
            .as_ref()
            .and_then(|a| a.status.next_step(&a.name));
        Ok(status)
    }

    /// Applies the pending migrations of `files` (sorted by name) in order. Every one but the
    /// last is completed; the last too with `complete_last`. The version schema the application
    /// was using when this began is kept until the last migration completes, so the running
    /// version keeps working.
    pub fn migrate(
        &mut self,
        files: &[Migration],
        complete_last: bool,
        on_event: OnEvent<'_>,
    ) -> Result<MigrateReport> {
        self.locked(|e, l| {
            let schema = e.opts.schema.clone();
            let history = e.state.history(e.client, &schema)?;
            // The history after its latest baseline must be the directory's first files, each
            // unchanged since it was applied.
            let compared = crate::history::compare(&history, files);
            if let Some(refusal) = compared.refusal() {
                return Err(refusal);
            }
            let active = e.state.active(e.client, &schema)?;
            let keep: Vec<String> = history
                .iter()
                .rev()
                .find(|h| h.status == MigrationStatus::Complete)
                .map(|h| h.version_schema.clone())
                .into_iter()
                .collect();
            let mut report = MigrateReport {
                started: Vec::new(),
                completed: Vec::new(),
                active: None,
            };
            let pending: Vec<&Migration> = compared
                .pending()
                .filter_map(|p| files.iter().find(|f| f.name == p.name))
                .collect();
            let mut todo: Vec<(&Migration, bool)> = Vec::new();
            if let Some(a) = &active {
                // The active migration is the newest of the history: finish it first, unless it
                // is the last and was not asked to complete.
                let m = files
                    .iter()
                    .find(|f| f.name == a.name)
                    .expect("history matched the files");
                // An interrupted backfill continues through start, and an interrupted start
                // before it starts over.
                todo.push((
                    m,
                    matches!(
                        a.status,
                        MigrationStatus::Backfilling | MigrationStatus::Starting
                    ),
                ));
            }
            todo.extend(pending.into_iter().map(|m| (m, true)));
            let n = todo.len();
            for (i, (m, needs_start)) in todo.into_iter().enumerate() {
                let last = i + 1 == n;
                // A stop asked for during a step without a backfill (or during a complete) takes
                // effect here, at the next migration's edge.
                let backfill = e.opts.backfill;
                let stop_before = |what: &str| -> Result<()> {
                    if backfill.stop_requested() {
                        return Err(Error::StoppedBefore {
                            what: format!("{what} {}", m.name),
                        });
                    }
                    Ok(())
                };
                if needs_start {
                    stop_before("starting")?;
                    on_event(&Event::Info {
                        message: format!("starting {}", m.name),
                    });
                    e.start_locked(&l, m, on_event)
                        .map_err(|err| err.naming_step(&m.file, &operation_kinds(m)))?;
                    report.started.push(m.name.clone());
                }
                if !last || complete_last {
                    stop_before("completing")?;
                    on_event(&Event::Info {
                        message: format!("completing {}", m.name),
                    });
                    let keep_now: &[String] = if last { &[] } else { &keep };
                    // The same evidence as `complete`, and the same refusal. The version
                    // schema kept for the application that ran when migrate began is left out
                    // only for the migrations this run started and does not complete last:
                    // those completes leave it in place, on purpose. The migration that was
                    // already active, and the last complete, which drops it, weigh it too.
                    let started_here = active.as_ref().is_none_or(|a| a.name != m.name);
                    let unweighed: &[String] = if started_here { keep_now } else { &[] };
                    e.require_evidence(on_event, unweighed)?;
                    if let Err(err) = e.complete_locked(&l, keep_now, on_event) {
                        let err = err.naming_step(&m.file, &operation_kinds(m));
                        return Err(e.migrate_stopped(&m.name, err, keep_now));
                    }
                    report.completed.push(m.name.clone());
                } else {
                    report.active = Some(m.name.clone());
                }
            }
            Ok(report)
        })
    }

    /// A complete that failed inside `migrate`, with advice that fits the state it left:
    /// `completing` can only go forward, `active` can be retried or rolled back.
    fn migrate_stopped(&mut self, name: &str, err: Error, kept: &[String]) -> Error {
        let schema = self.opts.schema.clone();
        let status = match self.state.active(self.client, &schema) {
            Ok(Some(active)) if active.name == name => Some(active.status),
            _ => None,
        };
        let blocked_by_kept = err.postgres().and_then(|e| e.code())
            == Some(&postgres::error::SqlState::DEPENDENT_OBJECTS_STILL_EXIST);
        let mut advice = match kept.first() {
            Some(kept) if blocked_by_kept => format!(
                "The version schema {kept:?} is kept for the application version that was running when migrate began, and it still uses what {name} removes. "
            ),
            _ => String::new(),
        };
        advice.push_str(&match status {
            Some(MigrationStatus::Completing) => format!(
                "{name} is left completing; what it has dropped cannot be brought back, so it can only go forward: run `tandem complete` to finish it{}, then `tandem migrate` again for the rest",
                if blocked_by_kept { " once that version is retired" } else { " once the cause is fixed" }
            ),
            Some(MigrationStatus::Active) => format!(
                "{name} is still active and nothing was dropped: fix the cause and run `tandem migrate` again, or `tandem rollback`"
            ),
            _ => "run `tandem status` to see where it stands".to_string(),
        });
        Error::MigrateStopped {
            name: name.to_string(),
            source: Box::new(err),
            advice,
        }
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

    /// Runs SQL as the engine's session does; for `validate` and tests.
    pub fn literal(value: &str) -> String {
        quote_literal(value)
    }

    pub fn execute(&mut self, sql: &str) -> Result<()> {
        self.client
            .batch_execute(sql)
            .context(|| "running SQL".into())
    }
}

/// The rollback steps (indexes into the plan's `rollback`) that still have to run for a
/// migration: those of the start steps recorded as run (all of them once every start step ran,
/// or when the start was not recorded), less those an interrupted rollback committed. So an
/// author's `down` runs only after its `up`, and never twice.
fn rollback_todo(active: &MigrationRecord, plan: &Plan) -> Vec<usize> {
    let mut todo = match &active.start_steps {
        Some(ran) if ran.len() < plan.start.len() => plan.rollback_indexes_of(ran),
        _ => (0..plan.rollback.len()).collect(),
    };
    todo.retain(|i| !active.rollback_steps.contains(i));
    todo
}

/// What `complete` says when no older version schema is left to watch, as for the first
/// migration: its old version uses the base schema's tables, which the new version shares, so
/// no session can be told apart as the old version's. Only the queries since start
/// (pg_stat_statements, when readable) and `--min-age` are weighed.
fn first_complete_note(evidence: &Evidence) -> String {
    let statements = if evidence.statements.is_some() {
        "the queries run since start (pg_stat_statements)"
    } else {
        "nothing but its age: pg_stat_statements cannot be read"
    };
    let age = if evidence.min_age_seconds > 0.0 {
        format!(
            "--min-age ({:.0} s) applies as always",
            evidence.min_age_seconds
        )
    } else {
        "there is no --min-age: `--min-age 24h` keeps a rollback window".to_string()
    };
    format!(
        "{}: there is no older version schema to watch: the old version uses the base schema's tables, which both versions share, so complete cannot see whether it still runs and weighs {statements}; {age}. Complete only once the old version is stopped",
        evidence.migration
    )
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

/// What `status` says of a migration that is backfilling, e.g. "backfill of t: 40% (400000 of
/// ~1000000 rows), interrupted; ...".
fn backfill_advice(name: &str, backfills: &[BackfillCheckpoint], running: bool) -> String {
    let progress: Vec<String> = backfills
        .iter()
        .map(|b| {
            let estimate = b.rows_estimate.max(b.rows_done);
            if b.done {
                format!("backfill of {}: done ({} rows)", b.table, b.rows_done)
            } else {
                let percent = if estimate > 0 {
                    b.rows_done * 100 / estimate
                } else {
                    0
                };
                // A pause recorded by a run that is gone is not the backfill's state now.
                let yielding = match (&b.yield_state, &b.yield_reason) {
                    (Some(state), Some(reason)) if running => format!(", {state}: {reason}"),
                    (Some(state), Some(reason)) => {
                        format!(", {state} when it was last running: {reason}")
                    }
                    _ => String::new(),
                };
                format!(
                    "backfill of {}: {percent}% ({} of ~{estimate} rows{yielding})",
                    b.table, b.rows_done
                )
            }
        })
        .collect();
    let what = progress.join("; ");
    if running {
        format!("{what}, in progress (another tandem run holds the migration lock)")
    } else {
        format!("{what}, interrupted; run `tandem start` with the file of {name:?} again to continue, or `tandem rollback` to undo it")
    }
}

/// Proof that the runner lock is held.
pub(crate) struct Locked;

/// Says which of the user's triggers the backfill fires, when the user accepted them.
fn announce_firing(firing: &[Firing], on_event: OnEvent<'_>) {
    if firing.is_empty() {
        return;
    }
    let list: Vec<String> = firing.iter().map(ToString::to_string).collect();
    on_event(&Event::Info {
        message: format!(
            "the backfill fires the user's triggers {} for every row it fills, as --backfill-fires-triggers accepts",
            list.join(", ")
        ),
    });
}
