//! `rename_constraint`: renamed at complete; constraint names are not visible through views.

use crate::step::{LockMode, Step};
use crate::{Cx, PlanError};
use tandem_model::operation::RenameConstraint;
use tandem_model::quote_ident;

pub(crate) fn plan(cx: &mut Cx<'_>, op: &RenameConstraint) -> Result<(), PlanError> {
    let table = cx.qualified_table(&op.table);
    cx.contract.push(
        Step::tx(
            format!("rename constraint {} to {}", op.from, op.to),
            format!(
                "ALTER TABLE {table} RENAME CONSTRAINT {} TO {}",
                quote_ident(&op.from),
                quote_ident(&op.to)
            ),
        )
        .lock(LockMode::AccessExclusive, table),
    );
    Ok(())
}
