//! `drop_index`: the index stays while the old version may rely on it; complete drops it
//! concurrently. An index on a partitioned table cannot be dropped concurrently: complete drops
//! it, with its partitions' indexes, in a short transaction that holds ACCESS EXCLUSIVE on the
//! table and its partitions for no longer than the catalog change (no scan), under the lock
//! timeout like every step.

use crate::step::{LockMode, Step};
use crate::{Cx, PlanError};
use tandem_model::operation::DropIndex;
use tandem_model::qualified;

pub(crate) fn plan(cx: &mut Cx<'_>, op: &DropIndex) -> Result<(), PlanError> {
    let index = qualified(cx.schema(), &op.name);
    let partitioned_table = cx
        .input
        .physical
        .tables
        .values()
        .find(|t| t.partitioning.is_some() && t.indexes.iter().any(|i| i.name == op.name));
    if let Some(table) = partitioned_table {
        let table = qualified(cx.schema(), &table.name);
        cx.contract.push(
            Step::tx(
                format!("drop index {} of a partitioned table", op.name),
                format!("DROP INDEX IF EXISTS {index}"),
            )
            .lock(LockMode::AccessExclusive, table),
        );
        return Ok(());
    }
    cx.contract.push(
        Step::non_tx(
            format!("drop index {}", op.name),
            format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"),
        )
        .lock(LockMode::ShareUpdateExclusive, index),
    );
    Ok(())
}
