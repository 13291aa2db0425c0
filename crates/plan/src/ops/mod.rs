//! One planner per operation, dispatched over the closed `Operation` enum. Each pushes its
//! start, contract and rollback steps onto the planning context.

mod add_column;
mod create_index;
mod create_table;
mod drop_column;
mod drop_index;
mod drop_table;
mod raw_sql;
mod rename_column;
mod rename_constraint;
mod rename_table;
mod set_replica_identity;

use crate::{Cx, PlanError};
use tandem_model::Operation;

pub(crate) fn plan_operation(cx: &mut Cx<'_>, op: &Operation) -> Result<(), PlanError> {
    match op {
        Operation::CreateTable(o) => create_table::plan(cx, o),
        Operation::DropTable(o) => drop_table::plan(cx, o),
        Operation::RenameTable(o) => rename_table::plan(cx, o),
        Operation::AddColumn(o) => add_column::plan(cx, o),
        Operation::DropColumn(o) => drop_column::plan(cx, o),
        Operation::RenameColumn(o) => rename_column::plan(cx, &o.table, &o.from, &o.to),
        Operation::AlterColumn(o) if o.is_rename_only() => {
            rename_column::plan(cx, &o.table, &o.column, o.name.as_deref().unwrap_or_default())
        }
        Operation::CreateIndex(o) => create_index::plan(cx, o),
        Operation::DropIndex(o) => drop_index::plan(cx, o),
        Operation::RenameConstraint(o) => rename_constraint::plan(cx, o),
        Operation::SetReplicaIdentity(o) => set_replica_identity::plan(cx, o),
        Operation::Sql(o) => raw_sql::plan(cx, o),
        // These change a column's data or constraints while both versions write to it: they
        // need the column-change engine (duplicated columns, two-way triggers, backfill).
        Operation::AlterColumn(_)
        | Operation::CreateConstraint(_)
        | Operation::DropConstraint(_)
        | Operation::DropMulticolumnConstraint(_) => Err(cx.unsupported(
            "this operation changes a column's data or constraints while both versions write to it; this version of tandem does not carry it out yet",
        )),
    }
}
