//! `rename_column` (and `alter_column` with only `name`): the new version's view exposes the
//! column under its new name; complete renames the column itself, which rewrites nothing.

use crate::{Cx, PlanError};

pub(crate) fn plan(cx: &mut Cx<'_>, table: &str, from: &str, to: &str) -> Result<(), PlanError> {
    let physical_table = cx.physical_table(table);
    let cols = cx.columns.entry(physical_table).or_default();
    if cols.values().any(|p| p == to) && cols.get(to).is_none_or(|p| p != to) {
        return Err(cx.unsupported(format!(
            "column {to:?} still exists physically until this migration completes; rename to it in a later migration"
        )));
    }
    let physical = cols.remove(from).unwrap_or_else(|| from.to_string());
    cols.insert(to.to_string(), physical);
    Ok(())
}
