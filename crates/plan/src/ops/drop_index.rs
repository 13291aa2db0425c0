//! `drop_index`: the index stays while the old version may rely on it; complete drops it
//! concurrently.

use crate::step::{LockMode, Step};
use crate::{Cx, PlanError};
use tandem_model::operation::DropIndex;
use tandem_model::qualified;

pub(crate) fn plan(cx: &mut Cx<'_>, op: &DropIndex) -> Result<(), PlanError> {
    let index = qualified(cx.schema(), &op.name);
    cx.contract.push(
        Step::non_tx(
            format!("drop index {}", op.name),
            format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"),
        )
        .lock(LockMode::ShareUpdateExclusive, index),
    );
    Ok(())
}
