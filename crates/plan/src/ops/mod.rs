//! One planner per operation, dispatched over the closed `Operation` enum. Each pushes its
//! start, contract and rollback steps onto the planning context.

mod add_column;
mod alter_column;
mod create_constraint;
mod create_index;
mod create_table;
mod drop_column;
mod drop_constraint;
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
        Operation::CreateIndex(o) => create_index::plan(cx, o),
        Operation::DropIndex(o) => drop_index::plan(cx, o),
        Operation::RenameConstraint(o) => rename_constraint::plan(cx, o),
        Operation::SetReplicaIdentity(o) => set_replica_identity::plan(cx, o),
        Operation::Sql(o) => raw_sql::plan(cx, o),
        Operation::AlterColumn(o) => alter_column::plan(cx, o),
        Operation::CreateConstraint(o) => create_constraint::plan(cx, o),
        Operation::DropConstraint(o) => {
            let column = cx
                .input
                .physical
                .table(&cx.physical_table(&o.table))
                .and_then(|t| t.constraint(&o.name))
                .and_then(|c| c.columns.first().cloned());
            let exprs = |e: &str| {
                column
                    .iter()
                    .map(|c| (c.clone(), e.to_string()))
                    .collect::<std::collections::BTreeMap<_, _>>()
            };
            drop_constraint::plan(cx, &o.table, &o.name, &exprs(&o.up), &exprs(&o.down))
        }
        Operation::DropMulticolumnConstraint(o) => {
            drop_constraint::plan(cx, &o.table, &o.name, &o.up, &o.down)
        }
    }
}
