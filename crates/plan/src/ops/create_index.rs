//! `create_index`: CREATE INDEX CONCURRENTLY at start, outside any transaction. A build that
//! fails leaves an INVALID index behind; it is dropped before the build runs again.

use crate::ddl;
use crate::step::{LockMode, Step};
use crate::{Cx, PlanError};
use tandem_model::operation::CreateIndex;
use tandem_model::{qualified, quote_ident};

pub(crate) fn plan(cx: &mut Cx<'_>, op: &CreateIndex) -> Result<(), PlanError> {
    let schema = cx.schema().to_string();
    let table = cx.qualified_table(&op.table);
    let index = qualified(&schema, &op.name);
    let physical_table = cx.physical_table(&op.table);
    // An index on a column that a later operation gives a second column is built on that
    // column, so that it survives the swap at complete.
    if !cx.created.contains(&physical_table) {
        for f in &op.columns {
            let physical = cx.physical_column(&op.table, &f.column);
            if cx.forced_shadow(&physical_table, &physical) {
                cx.ensure_shadow(&op.table, &f.column, None)?;
            } else if cx.shadow_index(&physical_table, &physical).is_none() {
                cx.touched_in_place(&physical_table, &physical);
            }
        }
    }
    let columns: Vec<String> = op
        .columns
        .iter()
        .map(|f| {
            let mut f = f.clone();
            f.column = cx.physical_column(&op.table, &f.column);
            ddl::index_element(&f)
        })
        .collect();
    let mut sql = format!(
        "CREATE {}INDEX CONCURRENTLY {} ON {table} USING {} ({})",
        if op.unique { "UNIQUE " } else { "" },
        quote_ident(&op.name),
        op.method.sql(),
        columns.join(", ")
    );
    if !op.storage_parameters.trim().is_empty() {
        sql.push_str(&format!(" WITH ({})", op.storage_parameters));
    }
    if !op.predicate.trim().is_empty() {
        sql.push_str(&format!(" WHERE ({})", op.predicate));
    }
    let drop = format!("DROP INDEX CONCURRENTLY IF EXISTS {index}");
    // An INVALID index of this name left by an earlier failed build is rebuilt from scratch.
    if cx
        .input
        .physical
        .table(&physical_table)
        .is_some_and(|t| t.indexes.iter().any(|i| i.name == op.name && !i.valid))
    {
        cx.start.push(Step::non_tx(
            format!("drop invalid index {}", op.name),
            drop.clone(),
        ));
    }
    cx.start.push(
        Step::non_tx(format!("create index {} on {}", op.name, op.table), sql)
            .lock(LockMode::ShareUpdateExclusive, table)
            .cleanup(drop.clone()),
    );
    cx.rollback(Step::non_tx(format!("drop index {}", op.name), drop));
    Ok(())
}
