//! `sql`: the author's SQL, at start or (with `onComplete`) at complete; `down` on rollback.
//! SQL that builds or drops something CONCURRENTLY cannot run in a transaction block.

use crate::step::Step;
use crate::{Cx, PlanError};
use tandem_model::operation::RawSql;

pub(crate) fn plan(cx: &mut Cx<'_>, op: &RawSql) -> Result<(), PlanError> {
    let step = |description: &str, sql: &str| {
        if sql.to_ascii_uppercase().contains("CONCURRENTLY") {
            Step::non_tx(description, sql)
        } else {
            Step::tx(description, sql)
        }
    };
    if op.on_complete {
        cx.on_complete.push(step("run sql (on complete)", &op.up));
    } else {
        cx.start.push(step("run sql", &op.up));
        if !op.down.trim().is_empty() {
            let down = step("run sql down", &op.down);
            cx.rollback(down);
        }
    }
    Ok(())
}
