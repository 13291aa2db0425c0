//! `start`: expands. It checks the state, plans through the preflight, runs the start steps
//! with the state row, backfills, and publishes the version schema. A start that fails part-way
//! undoes what it did; one interrupted in its backfill continues from the checkpoints.

use super::rollback::rollback_todo;
use super::step_run::Bookkeeping;
use super::{operation_kinds, Engine, Locked, StartReport};
use crate::backfill::triggers::Firing;
use crate::backfill::{self, TriggerMode};
use crate::error::{Context, Error, Result};
use crate::events::{Event, OnEvent};
use crate::introspect::{read_schema, schema_exists, server_major};
use crate::locks::kill_point;
use crate::preflight::{preflight, PreflightOptions, Preflighted};
use crate::state::{BackfillCheckpoint, MigrationRecord};
use crate::status::MigrationStatus;
use tandem_model::Migration;
use tandem_plan::views::create_version_schema;
use tandem_plan::{Phase, Plan};

impl Engine<'_> {
    /// Expands: validates, plans, runs the start steps, backfills, and creates the version
    /// schema.
    pub fn start(&mut self, migration: &Migration, on_event: OnEvent<'_>) -> Result<StartReport> {
        self.locked(|e, l| e.start_locked(&l, migration, on_event))
            .map_err(|err| err.naming_step(&migration.file, &operation_kinds(migration)))
    }

    pub(super) fn start_locked(
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
        // `starting` with none of its steps done. Each start step is recorded before it can
        // take effect (with its transaction, or just before it runs outside one), and
        // `rollback` of a `starting` migration runs the rollback steps of the start steps
        // recorded, so the author's `down` never runs before its `up`.
        let mut start = self
            .step_run(Phase::Start, &migration.name, on_event)
            .opening_with(Bookkeeping::Starting(&starting))
            .plan_steps(&plan.start);
        let expanded = start
            .run(self.client)
            .and_then(|()| self.record_backfills(&plan, &migration.name))
            .and_then(|()| {
                self.backfill_and_publish(&plan, facts.pg_major, mode, &migration.name, on_event)
            });
        // The start steps that ran: a failed start undoes only what they did.
        self.report_or_undo(expanded, &migration.name, &plan, &start.ran(), on_event)
    }

    /// Continues a start whose backfill was interrupted: the rest of each backfill from its
    /// checkpoint, then the version schema. The file must be the one that was started.
    fn resume_locked(
        &mut self,
        active: MigrationRecord,
        migration: &Migration,
        on_event: OnEvent<'_>,
    ) -> Result<StartReport> {
        let plan = self.interrupted_plan(
            &active,
            migration,
            "was interrupted while backfilling; continuing from its checkpoint",
            on_event,
        )?;
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
        let plan = self.interrupted_plan(
            &active,
            migration,
            "was interrupted while starting; undoing what it left, then starting again",
            on_event,
        )?;
        let todo = rollback_todo(&active, &plan);
        self.undo(&active.name, &plan, &todo, on_event)
    }

    /// The stored plan of an interrupted start that `migration` goes on with, once it is sure to
    /// be the file that was started; says what happens next (`next`, after the name).
    fn interrupted_plan(
        &mut self,
        active: &MigrationRecord,
        migration: &Migration,
        next: &str,
        on_event: OnEvent<'_>,
    ) -> Result<Plan> {
        let file_json = serde_json::to_value(migration.to_file()).expect("migration serializes");
        if file_json != active.migration {
            return Err(Error::FileChanged {
                name: active.name.clone(),
                status: active.status,
            });
        }
        let (_, plan) = self.active_plan()?;
        on_event(&Event::Info {
            message: format!("{} {next}", active.name),
        });
        Ok(plan)
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

    /// Records the plan's backfills, if any, with their cutoff xid, and the migration as
    /// `backfilling`, once the start steps (and so the triggers) have committed.
    fn record_backfills(&mut self, plan: &Plan, name: &str) -> Result<()> {
        if plan.backfills.is_empty() {
            return Ok(());
        }
        let tables: Vec<&str> = plan.backfills.iter().map(|b| b.table.as_str()).collect();
        let mut tx = self
            .client
            .transaction()
            .context(|| "beginning a transaction".into())?;
        self.state
            .begin_backfills(&mut tx, &self.opts.schema, name, &tables)?;
        tx.commit().context(|| "recording the backfills".into())?;
        kill_point(Phase::Start);
        Ok(())
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
        // Not recorded: they can run again (validations, and indexes built concurrently that
        // first drop what an interrupted start left).
        self.step_run(Phase::Start, name, on_event)
            .unrecorded(plan.after_backfill.iter().cloned())
            .run(self.client)?;
        let views = create_version_schema(
            &schema,
            &plan.version_schema,
            &physical,
            &plan.overlay,
            pg_major,
        );
        self.step_run(Phase::Start, name, on_event)
            .unrecorded(views)
            .closing_with(Bookkeeping::Active)
            .run(self.client)?;
        Ok(rows)
    }
}

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
