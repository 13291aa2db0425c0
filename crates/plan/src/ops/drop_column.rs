//! `drop_column`: the new version's view hides the column; while the old version still reads
//! it, `down` fills it for the new version's writes; complete drops it (instant: PostgreSQL only
//! marks it dropped).

use crate::step::{LockMode, Step};
use crate::{Cx, PlanError};
use tandem_model::operation::DropColumn;
use tandem_model::quote_ident;

pub(crate) fn plan(cx: &mut Cx<'_>, op: &DropColumn) -> Result<(), PlanError> {
    let physical_table = cx.physical_table(&op.table);
    let table = cx.qualified_table(&op.table);
    let physical = cx.physical_column(&op.table, &op.column);
    if let Some(cols) = cx.columns.get_mut(&physical_table) {
        cols.remove(&op.column);
    }
    if cx.created.contains(&physical_table) {
        cx.start.push(Step::tx(
            format!("drop column {}.{}", op.table, op.column),
            format!("ALTER TABLE {table} DROP COLUMN {}", quote_ident(&physical)),
        ));
        return Ok(());
    }
    cx.hidden_columns
        .insert((physical_table.clone(), physical.clone()));
    cx.dropped.push((physical_table.clone(), physical.clone()));
    cx.drops_for_views(&physical_table, &physical, "column");
    if !op.down.trim().is_empty() {
        let binds = crate::name_binds(cx, &physical_table);
        cx.triggers
            .entry(physical_table.clone())
            .or_default()
            .new_version(&physical, binds, &op.down);
    }
    cx.contract.push(
        Step::tx(
            format!("drop column {}.{}", op.table, op.column),
            format!("ALTER TABLE {table} DROP COLUMN {}", quote_ident(&physical)),
        )
        .lock(LockMode::AccessExclusive, table),
    );
    Ok(())
}
