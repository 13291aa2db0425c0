//! `create_table`: one CREATE TABLE at start (the table is new, so nothing waits on it but the
//! tables its foreign keys point at); rollback drops it.

use crate::ddl;
use crate::step::{LockMode, Step};
use crate::{Cx, PlanError};
use tandem_model::operation::{ConstraintType, CreateTable};
use tandem_model::{qualified, quote_ident, quote_literal};

pub(crate) fn plan(cx: &mut Cx<'_>, op: &CreateTable) -> Result<(), PlanError> {
    if cx.physical_table_taken(&op.name) {
        return Err(cx.unsupported(format!(
            "table {:?} is renamed or dropped earlier in this migration and still exists until complete; create it in a later migration",
            op.name
        )));
    }
    let schema = cx.schema().to_string();
    let table = qualified(&schema, &op.name);
    let mut parts = Vec::new();
    let mut comments = Vec::new();
    let mut locks = Vec::new();
    let pk: Vec<String> = op
        .columns
        .iter()
        .filter(|c| c.pk)
        .map(|c| c.name.clone())
        .collect();
    for col in &op.columns {
        let mut def = ddl::column_definition(col, !col.nullable || col.pk);
        if col.unique {
            def.push_str(" UNIQUE");
        }
        if let Some(c) = &col.check {
            def.push(' ');
            def.push_str(&ddl::check_clause(c));
        }
        parts.push(def);
        if let Some(r) = &col.references {
            parts.push(ddl::foreign_key_clause(&schema, &col.name, r));
            if r.table != op.name {
                locks.push(cx.qualified_table(&r.table));
            }
        }
        if let Some(comment) = &col.comment {
            comments.push(format!(
                "COMMENT ON COLUMN {table}.{} IS {}",
                quote_ident(&col.name),
                quote_literal(comment)
            ));
        }
    }
    if !pk.is_empty() {
        parts.push(format!("PRIMARY KEY ({})", ddl::ident_list(&pk)));
    }
    for c in &op.constraints {
        parts.push(ddl::table_constraint(&schema, c));
        if let (ConstraintType::ForeignKey, Some(r)) = (c.kind, &c.references) {
            if r.table != op.name {
                locks.push(cx.qualified_table(&r.table));
            }
        }
    }
    if let Some(comment) = &op.comment {
        comments.push(format!(
            "COMMENT ON TABLE {table} IS {}",
            quote_literal(comment)
        ));
    }
    let mut sql = format!("CREATE TABLE {table} (\n  {}\n)", parts.join(",\n  "));
    for c in comments {
        sql.push_str(";\n");
        sql.push_str(&c);
    }
    // A foreign key takes SHARE ROW EXCLUSIVE on the table it references.
    let mut step = Step::tx(format!("create table {}", op.name), sql);
    for l in locks {
        step = step.lock(LockMode::ShareRowExclusive, l);
    }
    cx.start.push(step);
    cx.tables.insert(op.name.clone(), op.name.clone());
    cx.columns.insert(
        op.name.clone(),
        op.columns
            .iter()
            .map(|c| (c.name.clone(), c.name.clone()))
            .collect(),
    );
    cx.created.insert(op.name.clone());
    cx.rollback(Step::tx(
        format!("drop table {}", op.name),
        format!("DROP TABLE IF EXISTS {table}"),
    ));
    Ok(())
}
