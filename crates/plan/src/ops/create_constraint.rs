//! `create_constraint`: check, unique, foreign key or primary key over one or more columns.
//! Columns whose `up` or `down` rewrites values get a second column each (shadow.rs) and the
//! constraint is built over those, so the old version is not held to it; when every `up` and
//! `down` is the column itself the constraint goes on the columns directly, the cheap way
//! (constraint.rs).

use crate::constraint::{self, NewConstraint};
use crate::sqltext::{is_identity, rename_columns};
use crate::{Cx, PlanError};
use tandem_model::operation::{CreateConstraint, CreateConstraintType};
use tandem_model::{qualified, quote_ident};

pub(crate) fn plan(cx: &mut Cx<'_>, op: &CreateConstraint) -> Result<(), PlanError> {
    let physical_table = cx.physical_table(&op.table);
    let created = cx.created.contains(&physical_table);
    let mut renames = Vec::new();
    let mut physical = Vec::new();
    for column in &op.columns {
        let up = op.up.get(column).map(String::as_str).unwrap_or("");
        let down = op.down.get(column).map(String::as_str).unwrap_or("");
        let current = cx.physical_column(&op.table, column);
        let shadowed = !created
            && (!is_identity(up, column)
                || !is_identity(down, column)
                || cx.shadowed(&physical_table, &current));
        let target = if shadowed {
            let index = cx.ensure_shadow(&op.table, column, None)?;
            cx.shadow_change(index, vec![column.clone()], up, down);
            cx.shadows[index].name.clone()
        } else {
            if !created {
                cx.touched_in_place(&physical_table, &current);
            }
            current
        };
        renames.push((column.clone(), target.clone()));
        physical.push(target);
    }
    let tail = index_tail(op);
    let c = match op.kind {
        CreateConstraintType::Check => NewConstraint::Check {
            name: op.name.clone(),
            body: format!(
                "CHECK ({}){}",
                rename_columns(op.check.as_deref().unwrap_or("true"), &renames),
                if op.no_inherit { " NO INHERIT" } else { "" }
            ),
        },
        CreateConstraintType::Unique => NewConstraint::Unique {
            name: op.name.clone(),
            columns: physical,
            tail,
        },
        CreateConstraintType::PrimaryKey => NewConstraint::PrimaryKey {
            name: op.name.clone(),
            columns: physical,
            tail,
        },
        CreateConstraintType::ForeignKey => {
            let r = op.references.as_ref().expect("validated: references");
            let target_table = cx.physical_table(&r.table);
            let target_columns: Vec<String> = r
                .columns
                .iter()
                .map(|c| cx.physical_column(&r.table, c))
                .collect();
            let on_delete = crate::ddl::on_delete_clause(r);
            NewConstraint::ForeignKey {
                name: op.name.clone(),
                body: format!(
                    "FOREIGN KEY ({}) REFERENCES {} ({}) MATCH {} ON DELETE {on_delete} ON UPDATE {}",
                    crate::ddl::ident_list(&physical),
                    qualified(cx.schema(), &target_table),
                    crate::ddl::ident_list(&target_columns),
                    r.match_type.sql(),
                    r.on_update.sql()
                ),
                target: qualified(cx.schema(), &target_table),
            }
        }
    };
    constraint::add(cx, &physical_table, c)
}

/// INCLUDE, WITH and tablespace of the constraint's index.
fn index_tail(op: &CreateConstraint) -> String {
    let Some(p) = &op.index_parameters else {
        return String::new();
    };
    let mut sql = String::new();
    if !p.include_columns.is_empty() {
        sql.push_str(&format!(
            " INCLUDE ({})",
            crate::ddl::ident_list(&p.include_columns)
        ));
    }
    if !p.storage_parameters.trim().is_empty() {
        sql.push_str(&format!(" WITH ({})", p.storage_parameters));
    }
    if !p.tablespace.trim().is_empty() {
        sql.push_str(&format!(" TABLESPACE {}", quote_ident(&p.tablespace)));
    }
    sql
}
