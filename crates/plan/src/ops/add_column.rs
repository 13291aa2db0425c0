//! `add_column`: the column is added at once under its final name, without anything that would
//! rewrite the table or hold a long lock. A non-volatile default takes PostgreSQL's no-rewrite
//! path. A column with `up` (or a volatile default) is added nullable, filled for the old
//! version's writes by the table's trigger and for existing rows by a batched backfill; NOT NULL
//! then goes through a CHECK added NOT VALID and validated once the backfill is done, still in
//! start. CHECK and FOREIGN KEY are added NOT VALID and validated after the backfill too; UNIQUE
//! is built concurrently as an index and attached at complete.

use crate::constraint::{self, NewConstraint};
use crate::ddl;
use crate::step::{LockMode, Step};
use crate::{Cx, PlanError};
use tandem_model::operation::AddColumn;
use tandem_model::{qualified, quote_ident, quote_literal, shorten_name};

pub(crate) fn plan(cx: &mut Cx<'_>, op: &AddColumn) -> Result<(), PlanError> {
    let schema = cx.schema().to_string();
    let physical_table = cx.physical_table(&op.table);
    let table = qualified(&schema, &physical_table);
    let col = &op.column;
    let name = &col.name;
    let qcol = quote_ident(name);
    if cx
        .columns
        .get(&physical_table)
        .is_some_and(|c| c.values().any(|p| p == name))
    {
        return Err(cx.unsupported(format!(
            "column {name:?} still exists physically until this migration completes; add it in a later migration"
        )));
    }
    cx.columns
        .entry(physical_table.clone())
        .or_default()
        .insert(name.clone(), name.clone());

    // A table this migration creates is empty and invisible to the old version: add the column
    // with everything at once.
    if cx.created.contains(&physical_table) {
        let mut def = ddl::column_definition(col, !col.nullable);
        if col.unique {
            def.push_str(" UNIQUE");
        }
        if let Some(c) = &col.check {
            def.push(' ');
            def.push_str(&ddl::check_clause(c));
        }
        let mut sql = format!("ALTER TABLE {table} ADD COLUMN {def}");
        if let Some(r) = &col.references {
            sql.push_str(&format!(
                ", ADD {}",
                ddl::foreign_key_clause(&schema, name, r)
            ));
        }
        cx.start
            .push(Step::tx(format!("add column {}.{name}", op.table), sql));
        push_comment(cx, &table, op);
        return Ok(());
    }

    let volatile = cx
        .input
        .facts
        .volatile_defaults
        .contains(&format!("{physical_table}.{name}"));
    let up = if !op.up.trim().is_empty() {
        Some(op.up.clone())
    } else if volatile {
        col.default.clone()
    } else {
        None
    };
    let mut plain = col.clone();
    if volatile {
        plain.default = None;
    }
    // NOT NULL straight away only when every existing row gets a value from the default
    // without a rewrite (or the table was found empty).
    let not_null_now = !col.nullable && up.is_none();
    let mut sql = format!(
        "ALTER TABLE {table} ADD COLUMN {}",
        ddl::column_definition(&plain, not_null_now)
    );
    if volatile {
        // Only rows inserted from now on evaluate a default set after the column exists.
        sql.push_str(&format!(
            ";\nALTER TABLE {table} ALTER COLUMN {qcol} SET DEFAULT {}",
            col.default.as_deref().unwrap_or("NULL")
        ));
    }
    cx.start.push(
        Step::tx(format!("add column {}.{name}", op.table), sql)
            .lock(LockMode::AccessExclusive, table.clone()),
    );
    cx.rollback(
        Step::tx(
            format!("drop column {}.{name}", op.table),
            format!("ALTER TABLE {table} DROP COLUMN IF EXISTS {qcol}"),
        )
        .lock(LockMode::AccessExclusive, table.clone()),
    );
    push_comment(cx, &table, op);

    if let Some(up) = up {
        let not_null = !col.nullable;
        let binds = crate::name_binds(cx, &physical_table);
        cx.triggers
            .entry(physical_table.clone())
            .or_default()
            .old(name, binds, &up);
        if not_null {
            constraint::not_null(cx, &physical_table, name);
        }
        let binds: Vec<(String, String)> = crate::name_binds(cx, &physical_table)
            .into_iter()
            .map(|(name, physical)| (name, quote_ident(&physical)))
            .collect();
        let expr = crate::bind_expression(&binds, &up);
        cx.backfill(&physical_table, name, &col.data_type, expr);
    }

    if let Some(c) = &col.check {
        let body = ddl::check_clause(c);
        let body = body
            .split_once(" CHECK ")
            .map_or(body.clone(), |(_, rest)| format!("CHECK {rest}"));
        constraint::add(
            cx,
            &physical_table,
            NewConstraint::Check {
                name: c.name.clone(),
                body,
            },
        )?;
    }
    if let Some(r) = &col.references {
        let target = cx.qualified_table(&r.table);
        let mut r = r.clone();
        r.table = cx.physical_table(&r.table);
        r.column = cx.physical_column(&r.table, &r.column);
        let body = constraint::foreign_key_body(&schema, name, &r);
        constraint::add(
            cx,
            &physical_table,
            NewConstraint::ForeignKey {
                name: r.name.clone(),
                body,
                target,
            },
        )?;
    }
    if col.unique {
        constraint::add(
            cx,
            &physical_table,
            NewConstraint::Unique {
                name: shorten_name(&format!("{physical_table}_{name}_key")),
                columns: vec![name.clone()],
                tail: String::new(),
            },
        )?;
    }
    Ok(())
}

fn push_comment(cx: &mut Cx<'_>, table: &str, op: &AddColumn) {
    if let Some(comment) = &op.column.comment {
        cx.start.push(Step::tx(
            format!("comment on column {}.{}", op.table, op.column.name),
            format!(
                "COMMENT ON COLUMN {table}.{} IS {}",
                quote_ident(&op.column.name),
                quote_literal(comment)
            ),
        ));
    }
}
