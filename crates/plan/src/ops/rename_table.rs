//! `rename_table`: the new version's view carries the new name; complete renames the table,
//! which is instant.

use crate::{Cx, PlanError};
use tandem_model::operation::RenameTable;

pub(crate) fn plan(cx: &mut Cx<'_>, op: &RenameTable) -> Result<(), PlanError> {
    if cx.physical_table_taken(&op.to) {
        return Err(cx.unsupported(format!(
            "table {:?} still exists physically until this migration completes; rename to it in a later migration",
            op.to
        )));
    }
    let physical = cx.physical_table(&op.from);
    cx.tables.remove(&op.from);
    cx.tables.insert(op.to.clone(), physical);
    Ok(())
}
