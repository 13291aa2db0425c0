//! `alter_column`: every form, alone or several at once. What the old version must not see — a
//! new type, or values rewritten by `up`/`down` — goes to a second column (see shadow.rs). What
//! it may see takes the cheap path on the column itself: a default or comment changes at
//! complete (the new version's view has the new default meanwhile); NOT NULL, CHECK and FOREIGN
//! KEY go in NOT VALID and are validated; UNIQUE is an index built concurrently; dropping NOT
//! NULL happens at complete. The rename form is rename_column's.

use crate::constraint::{self, NewConstraint};
use crate::sqltext::{is_identity, mentions, rename_columns};
use crate::step::{LockMode, Step};
use crate::{Cx, PlanError};
use tandem_model::operation::{AlterColumn, Nullable};
use tandem_model::{qualified, quote_ident, quote_literal, ConstraintKind};

pub(crate) fn plan(cx: &mut Cx<'_>, op: &AlterColumn) -> Result<(), PlanError> {
    let physical_table = cx.physical_table(&op.table);
    let table = qualified(cx.schema(), &physical_table);
    let current = cx.physical_column(&op.table, &op.column);
    let new_name = op.name.clone().unwrap_or_else(|| op.column.clone());
    let current_type = cx
        .input
        .physical
        .table(&physical_table)
        .and_then(|t| t.column(&current))
        .map(|c| c.data_type.clone());

    if cx.created.contains(&physical_table) {
        return in_new_table(cx, op, &physical_table, &table, &current, &new_name);
    }

    let type_changes = op.data_type.as_deref().is_some_and(|t| {
        current_type
            .as_deref()
            .is_none_or(|c| !crate::shadow::same_type(t, c))
    });
    let values_change = !is_identity(&op.up, &op.column)
        || !(is_identity(&op.down, &op.column) || is_identity(&op.down, &new_name));
    let in_place_type = type_changes
        && !values_change
        && !cx.shadowed(&physical_table, &current)
        && type_in_place(cx, op, &physical_table, &current);
    let needs_shadow =
        (type_changes && !in_place_type) || values_change || cx.shadowed(&physical_table, &current);

    if needs_shadow {
        let data_type = if type_changes {
            op.data_type.as_deref()
        } else {
            None
        };
        let index = cx.ensure_shadow(&op.table, &op.column, data_type)?;
        if op.name.is_some() {
            super::rename_column::plan(cx, &op.table, &op.column, &new_name)?;
        }
        let shadow = cx.shadows[index].name.clone();
        let mut names = vec![op.column.clone()];
        if new_name != op.column {
            names.push(new_name.clone());
        }
        cx.shadow_change(index, names, &op.up, &op.down);
        let s = &mut cx.shadows[index];
        if let Some(n) = op.nullable {
            s.nullable = n;
        }
        match &op.default {
            Nullable::Absent => {}
            Nullable::Null => s.default = None,
            Nullable::Value(v) => s.default = Some(v.clone()),
        }
        s.default_changed |= !op.default.is_absent();
        match &op.comment {
            Nullable::Absent => {}
            Nullable::Null => s.comment = None,
            Nullable::Value(v) => s.comment = Some(v.clone()),
        }
        add_constraints(cx, op, &physical_table, &shadow)?;
        return Ok(());
    }

    // The cheap path: the column itself, which both versions keep using.
    cx.touched_in_place(&physical_table, &current);
    if op.name.is_some() {
        super::rename_column::plan(cx, &op.table, &op.column, &new_name)?;
    }
    let qcol = quote_ident(&current);
    if in_place_type {
        // The type changes at complete, once the old version is gone: until then both versions
        // see the old type (see docs/design/type-changes-in-place.md).
        let t = op.data_type.as_deref().expect("a type change has a type");
        let alter = format!("ALTER TABLE {table} ALTER COLUMN {qcol} TYPE {t}");
        cx.contract.push(
            Step::tx(
                format!(
                    "change the type of {}.{} to {t} in place (no rewrite)",
                    op.table, op.column
                ),
                alter,
            )
            .lock(LockMode::AccessExclusive, table.clone()),
        );
        cx.altered.push((physical_table.clone(), current.clone()));
        // The views that read it, the new version's too, are created again around the change
        // (`views::saving_dependent_views`).
        cx.in_place_types
            .push((physical_table.clone(), current.clone(), cx.op_index));
    }
    match op.nullable {
        Some(false) => {
            let nullable = cx
                .input
                .physical
                .table(&physical_table)
                .and_then(|t| t.column(&current))
                .is_none_or(|c| c.nullable);
            if nullable {
                constraint::not_null(cx, &physical_table, &current);
            }
        }
        Some(true) => cx.contract.push(
            Step::tx(
                format!("drop NOT NULL of {}.{}", op.table, op.column),
                format!("ALTER TABLE {table} ALTER COLUMN {qcol} DROP NOT NULL"),
            )
            .lock(LockMode::AccessExclusive, table.clone()),
        ),
        None => {}
    }
    let default = match &op.default {
        Nullable::Absent => None,
        Nullable::Null => Some(None),
        Nullable::Value(v) => Some(Some(v.clone())),
    };
    if let Some(default) = default {
        let sql = match &default {
            Some(d) => format!("ALTER TABLE {table} ALTER COLUMN {qcol} SET DEFAULT {d}"),
            None => format!("ALTER TABLE {table} ALTER COLUMN {qcol} DROP DEFAULT"),
        };
        cx.view_defaults
            .entry(physical_table.clone())
            .or_default()
            .insert(current.clone(), default);
        cx.contract.push(
            Step::tx(format!("change default of {}.{}", op.table, op.column), sql)
                .lock(LockMode::AccessExclusive, table.clone()),
        );
    }
    let comment = match &op.comment {
        Nullable::Absent => None,
        Nullable::Null => Some("NULL".to_string()),
        Nullable::Value(v) => Some(quote_literal(v)),
    };
    if let Some(comment) = comment {
        cx.contract.push(Step::tx(
            format!("comment on {}.{}", op.table, op.column),
            format!("COMMENT ON COLUMN {table}.{qcol} IS {comment}"),
        ));
    }
    add_constraints(cx, op, &physical_table, &current)?;
    Ok(())
}

/// Whether a type change can be made in place, at complete: PostgreSQL said it rewrites
/// neither the table nor its indexes (`Facts::in_place_types`), and nothing would make it scan
/// the table under its ACCESS EXCLUSIVE lock while it changes the type: no CHECK, foreign key or
/// exclusion constraint on the column (each is checked again), none added by this operation,
/// no NOT NULL or unique index added (built over the old type), and no foreign key of another
/// table referencing it. Anything else takes a second column.
fn type_in_place(cx: &Cx<'_>, op: &AlterColumn, physical_table: &str, column: &str) -> bool {
    if !cx.input.facts.in_place_types.contains(&cx.op_index)
        || op.check.is_some()
        || op.unique.is_some()
        || op.references.is_some()
        || op.nullable == Some(false)
    {
        return false;
    }
    let Some(t) = cx.input.physical.table(physical_table) else {
        return false;
    };
    let Some(col) = t.column(column) else {
        return false;
    };
    let constrained = t.constraints.iter().any(|c| match c.kind {
        ConstraintKind::Unique | ConstraintKind::PrimaryKey => false,
        ConstraintKind::Check => mentions(&c.definition, column),
        _ => c.columns.iter().any(|x| x == column) || mentions(&c.definition, column),
    });
    !constrained
        && col.identity.is_none()
        && col.generated.is_none()
        && crate::shadow::incoming_reference(cx, physical_table, column).is_none()
}

/// The constraints the operation adds, on `column` (the shadow or the column itself).
fn add_constraints(
    cx: &mut Cx<'_>,
    op: &AlterColumn,
    physical_table: &str,
    column: &str,
) -> Result<(), PlanError> {
    let renames = vec![(op.column.clone(), column.to_string())];
    let renames = match &op.name {
        Some(n) => [renames, vec![(n.clone(), column.to_string())]].concat(),
        None => renames,
    };
    if let Some(c) = &op.check {
        let body = format!(
            "CHECK ({}){}",
            rename_columns(&c.constraint, &renames),
            if c.no_inherit { " NO INHERIT" } else { "" }
        );
        constraint::add(
            cx,
            physical_table,
            NewConstraint::Check {
                name: c.name.clone(),
                body,
            },
        )?;
    }
    if let Some(u) = &op.unique {
        constraint::add(
            cx,
            physical_table,
            NewConstraint::Unique {
                name: u.name.clone(),
                columns: vec![column.to_string()],
                tail: String::new(),
            },
        )?;
    }
    if let Some(r) = &op.references {
        let mut r = r.clone();
        let target = cx.qualified_table(&r.table);
        r.column = cx.physical_column(&r.table, &r.column);
        r.table = cx.physical_table(&r.table);
        let body = constraint::foreign_key_body(cx.schema(), column, &r);
        constraint::add(
            cx,
            physical_table,
            NewConstraint::ForeignKey {
                name: r.name.clone(),
                body,
                target,
            },
        )?;
    }
    Ok(())
}

/// A table this migration creates is empty and invisible to the old version: change it
/// directly.
fn in_new_table(
    cx: &mut Cx<'_>,
    op: &AlterColumn,
    physical_table: &str,
    table: &str,
    current: &str,
    new_name: &str,
) -> Result<(), PlanError> {
    let qcol = quote_ident(current);
    let mut sql = Vec::new();
    if let Some(t) = &op.data_type {
        sql.push(format!("ALTER TABLE {table} ALTER COLUMN {qcol} TYPE {t}"));
    }
    match op.nullable {
        Some(true) => sql.push(format!(
            "ALTER TABLE {table} ALTER COLUMN {qcol} DROP NOT NULL"
        )),
        Some(false) => sql.push(format!(
            "ALTER TABLE {table} ALTER COLUMN {qcol} SET NOT NULL"
        )),
        None => {}
    }
    match &op.default {
        Nullable::Absent => {}
        Nullable::Null => sql.push(format!(
            "ALTER TABLE {table} ALTER COLUMN {qcol} DROP DEFAULT"
        )),
        Nullable::Value(v) => sql.push(format!(
            "ALTER TABLE {table} ALTER COLUMN {qcol} SET DEFAULT {v}"
        )),
    }
    match &op.comment {
        Nullable::Absent => {}
        Nullable::Null => sql.push(format!("COMMENT ON COLUMN {table}.{qcol} IS NULL")),
        Nullable::Value(v) => sql.push(format!(
            "COMMENT ON COLUMN {table}.{qcol} IS {}",
            quote_literal(v)
        )),
    }
    if !sql.is_empty() {
        cx.start.push(Step::tx(
            format!("alter column {}.{}", op.table, op.column),
            sql.join(";\n"),
        ));
    }
    if op.name.is_some() {
        super::rename_column::plan(cx, &op.table, &op.column, new_name)?;
    }
    add_constraints(cx, op, physical_table, current)?;
    Ok(())
}
