//! `drop_table`: the new version's schema has no view for the table; complete drops it.

use crate::step::{LockMode, Step};
use crate::{Cx, PlanError};
use tandem_model::operation::DropTable;

pub(crate) fn plan(cx: &mut Cx<'_>, op: &DropTable) -> Result<(), PlanError> {
    let physical = cx.physical_table(&op.name);
    let table = cx.qualified_table(&op.name);
    cx.tables.remove(&op.name);
    cx.hidden_tables.insert(physical.clone());
    if cx.created.remove(&physical) {
        // Created and dropped in one migration: nothing for either version to see, and no
        // view may depend on it when complete drops it.
        cx.contract.push(Step::tx(
            format!("drop table {}", op.name),
            format!("DROP TABLE IF EXISTS {table}"),
        ));
        return Ok(());
    }
    cx.drops_for_views(&physical, "", "name");
    cx.dropped.push((physical, String::new()));
    cx.contract.push(
        Step::tx(
            format!("drop table {}", op.name),
            format!("DROP TABLE {table}"),
        )
        .lock(LockMode::AccessExclusive, table),
    );
    Ok(())
}
