//! `drop_table`: the new version's schema has no view for the table; complete drops it.

use crate::step::{LockMode, Step};
use crate::{Cx, PlanError};
use tandem_model::operation::DropTable;

pub(crate) fn plan(cx: &mut Cx<'_>, op: &DropTable) -> Result<(), PlanError> {
    let physical = cx.physical_table(&op.name);
    let table = cx.qualified_table(&op.name);
    cx.tables.remove(&op.name);
    if cx.created.remove(&physical) {
        // Created and dropped in one migration: nothing for either version to see.
        cx.contract.push(Step::tx(
            format!("drop table {}", op.name),
            format!("DROP TABLE IF EXISTS {table}"),
        ));
        return Ok(());
    }
    cx.dropped.push((physical.clone(), String::new()));
    cx.hidden_tables.insert(physical);
    cx.contract.push(
        Step::tx(
            format!("drop table {}", op.name),
            format!("DROP TABLE {table}"),
        )
        .lock(LockMode::AccessExclusive, table),
    );
    Ok(())
}
