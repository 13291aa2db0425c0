//! `create_index`: CREATE INDEX CONCURRENTLY at start, outside any transaction. A build that
//! fails leaves an INVALID index behind; it is dropped before the build runs again. PostgreSQL
//! cannot build an index on a partitioned table concurrently: there the index is made on the
//! parent alone (`ON ONLY`, no rows to read), each partition's is built concurrently, and each
//! is attached, after which the parent's index is valid.

use crate::ddl;
use crate::step::{LockMode, Step};
use crate::{Cx, PlanError};
use tandem_model::operation::CreateIndex;
use tandem_model::{qualified, quote_ident, shorten_name, Partitioning};

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
    // What follows the table in CREATE INDEX: the method, the elements, the options.
    let mut shape = format!("USING {} ({})", op.method.sql(), columns.join(", "));
    if !op.storage_parameters.trim().is_empty() {
        shape.push_str(&format!(" WITH ({})", op.storage_parameters));
    }
    if !op.predicate.trim().is_empty() {
        shape.push_str(&format!(" WHERE ({})", op.predicate));
    }
    let unique = if op.unique { "UNIQUE " } else { "" };
    if let Some(partitioning) = cx
        .input
        .physical
        .table(&physical_table)
        .and_then(|t| t.partitioning.as_ref())
    {
        return partitioned(cx, op, &table, partitioning, unique, &shape);
    }
    let sql = format!(
        "CREATE {unique}INDEX CONCURRENTLY {} ON {table} {shape}",
        quote_ident(&op.name),
    );
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

/// The steps for an index on a partitioned table (see the module doc). Partitions made after
/// start get the index from PostgreSQL itself, which gives a new partition every index of its
/// parent.
fn partitioned(
    cx: &mut Cx<'_>,
    op: &CreateIndex,
    table: &str,
    partitioning: &Partitioning,
    unique: &str,
    shape: &str,
) -> Result<(), PlanError> {
    if let Some(p) = partitioning.partitions.iter().find(|p| p.partitioned) {
        return Err(cx.unsupported(format!(
            "table {:?} is partitioned, and its partition {}.{} is partitioned too; tandem builds indexes on one level of partitions only. Create the index on each sub-partition first, or with a `sql` operation",
            op.table, p.schema, p.name
        )));
    }
    if op.unique {
        let plain: Vec<String> = op
            .columns
            .iter()
            .map(|f| cx.physical_column(&op.table, &f.column))
            .collect();
        let missing: Vec<String> = partitioning
            .key
            .iter()
            .map(|k| k.clone().unwrap_or_else(|| "(an expression)".into()))
            .filter(|k| !plain.contains(k))
            .collect();
        if !missing.is_empty() {
            return Err(cx.unsupported(format!(
                "a unique index on the partitioned table {:?} must include every column of its partition key; it lacks {}",
                op.table,
                missing.join(", ")
            )));
        }
    }
    let schema = cx.schema().to_string();
    let parent = qualified(&schema, &op.name);
    // (partition, its index qualified, its index's name, the partition as the user names it)
    let children: Vec<(String, String, String, String)> = partitioning
        .partitions
        .iter()
        .map(|p| {
            let index = shorten_name(&format!("{}_{}", p.name, op.name));
            (
                qualified(&p.schema, &p.name),
                qualified(&p.schema, &index),
                index,
                format!("{}.{}", p.schema, p.name),
            )
        })
        .collect();
    // Undoing drops the parent's index, which takes the attached partitions' with it, then
    // whatever a partition's build left unattached: brief ACCESS EXCLUSIVE locks, no scan.
    let mut undo = format!("DROP INDEX IF EXISTS {parent}");
    for (_, index, _, _) in &children {
        undo.push_str(&format!(";\nDROP INDEX IF EXISTS {index}"));
    }
    let mut undo_step = Step::tx(format!("drop index {} and its partitions'", op.name), undo);
    undo_step = undo_step.lock(LockMode::AccessExclusive, table.to_string());
    cx.start.push(
        Step::tx(
            format!(
                "create index {} on {} alone (partitioned)",
                op.name, op.table
            ),
            format!(
                "CREATE {unique}INDEX {} ON ONLY {table} {shape}",
                quote_ident(&op.name)
            ),
        )
        .lock(LockMode::Share, table.to_string()),
    );
    for (partition, index, name, shown) in &children {
        let drop = format!("DROP INDEX CONCURRENTLY IF EXISTS {index}");
        cx.start.push(
            Step::non_tx(
                format!("create index {name} on partition {shown}"),
                format!(
                    "CREATE {unique}INDEX CONCURRENTLY {} ON {partition} {shape}",
                    quote_ident(name)
                ),
            )
            .lock(LockMode::ShareUpdateExclusive, partition.clone())
            .cleanup(drop),
        );
    }
    if !children.is_empty() {
        let attach: Vec<String> = children
            .iter()
            .map(|(_, index, _, _)| format!("ALTER INDEX {parent} ATTACH PARTITION {index}"))
            .collect();
        cx.start.push(
            Step::tx(
                format!("attach the partitions' indexes to {}", op.name),
                attach.join(";\n"),
            )
            .lock(LockMode::ShareUpdateExclusive, parent.clone()),
        );
    }
    cx.rollback(undo_step);
    Ok(())
}
