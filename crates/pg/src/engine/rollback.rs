//! `rollback`: undoes the active migration. It drops the version schema and runs the stored
//! rollback steps of what start did, deleting the state row with the last of them. A failed
//! start undoes itself the same way (`undo`).

use super::step_run::Bookkeeping;
use super::{stored_operation_kinds, Engine, RollbackReport};
use crate::error::{Error, Result};
use crate::events::OnEvent;
use crate::locks::kill_point;
use crate::state::MigrationRecord;
use crate::status::MigrationStatus;
use tandem_plan::views::drop_version_schema;
use tandem_plan::{Phase, Plan};

impl Engine<'_> {
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

    /// Drops the version schema, runs the rollback steps at the indexes `todo` of the plan, and
    /// deletes the state row with the last of them. Each rollback step is recorded in the state
    /// row as it commits, so that a rerun after a crash skips it ([`rollback_todo`]).
    pub(super) fn undo(
        &mut self,
        name: &str,
        plan: &Plan,
        todo: &[usize],
        on_event: OnEvent<'_>,
    ) -> Result<()> {
        self.step_run(Phase::Rollback, name, on_event)
            .unrecorded([drop_version_schema(&plan.version_schema)])
            .plan_steps_at(&plan.rollback, todo)
            .closing_with(Bookkeeping::Deleted)
            .run(self.client)
    }
}

/// The rollback steps (indexes into the plan's `rollback`) that still have to run for a
/// migration: those of the start steps recorded as run (all of them once every start step ran,
/// or when the start was not recorded), less those an interrupted rollback committed. So an
/// author's `down` runs only after its `up`, and never twice.
pub(super) fn rollback_todo(active: &MigrationRecord, plan: &Plan) -> Vec<usize> {
    let mut todo = match &active.start_steps {
        Some(ran) if ran.len() < plan.start.len() => plan.rollback_indexes_of(ran),
        _ => (0..plan.rollback.len()).collect(),
    };
    todo.retain(|i| !active.rollback_steps.contains(i));
    todo
}
