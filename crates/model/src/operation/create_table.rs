//! `create_table`: a new table with its columns and table constraints.

use super::common::{ColumnDef, TableConstraint};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTable {
    pub name: String,
    pub columns: Vec<ColumnDef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<TableConstraint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl CreateTable {
    pub(crate) fn apply(&self, cx: &mut crate::validate::Cx<'_>) -> crate::validate::Check {
        use super::common::ConstraintType;
        use crate::error::FieldError;
        use crate::schema::{Constraint, ConstraintKind, Table};
        cx.relation_free("name", &self.name)?;
        if self.columns.is_empty() {
            return Err(FieldError::new(
                "columns",
                "a table needs at least one column",
            ));
        }
        let mut table = Table {
            name: self.name.clone(),
            comment: self.comment.clone(),
            has_rows: Some(false),
            ..Table::default()
        };
        for (i, col) in self.columns.iter().enumerate() {
            let field = format!("columns[{i}]");
            col.check(cx, &field)?;
            if table.column(&col.name).is_some() {
                return Err(FieldError::new(
                    format!("{field}.name"),
                    format!("column {:?} is defined twice", col.name),
                ));
            }
            if let Some(r) = &col.references {
                self.check_reference(
                    cx,
                    &format!("{field}.references"),
                    &r.table,
                    std::slice::from_ref(&r.column),
                    &table,
                )?;
            }
            table.columns.push(col.to_column());
            if col.pk {
                table.primary_key.push(col.name.clone());
            }
        }
        for (i, c) in self.constraints.iter().enumerate() {
            let field = format!("constraints[{i}]");
            crate::validate::new_name(&format!("{field}.name"), &c.name)?;
            for (j, col) in c.columns.iter().enumerate() {
                if table.column(col).is_none() {
                    return Err(FieldError::new(
                        format!("{field}.columns[{j}]"),
                        format!("column {col:?} is not a column of the new table"),
                    ));
                }
            }
            let kind = match c.kind {
                ConstraintType::Check => {
                    crate::validate::not_empty(&format!("{field}.check"), &c.check)?;
                    ConstraintKind::Check
                }
                ConstraintType::Unique => {
                    if c.columns.is_empty() {
                        return Err(FieldError::new(
                            format!("{field}.columns"),
                            "a unique constraint needs columns",
                        ));
                    }
                    if c.nulls_not_distinct {
                        cx.require_server(
                            &format!("{field}.nulls_not_distinct"),
                            "NULLS NOT DISTINCT",
                            15,
                        );
                    }
                    ConstraintKind::Unique
                }
                ConstraintType::PrimaryKey => {
                    if c.columns.is_empty() {
                        return Err(FieldError::new(
                            format!("{field}.columns"),
                            "a primary key needs columns",
                        ));
                    }
                    if !table.primary_key.is_empty() {
                        return Err(FieldError::new(
                            format!("{field}.type"),
                            "the table already has a primary key from its columns' `pk`",
                        ));
                    }
                    table.primary_key = c.columns.clone();
                    ConstraintKind::PrimaryKey
                }
                ConstraintType::ForeignKey => {
                    let Some(r) = &c.references else {
                        return Err(FieldError::new(
                            format!("{field}.references"),
                            "missing field",
                        ));
                    };
                    if r.columns.len() != c.columns.len() {
                        return Err(FieldError::new(
                            format!("{field}.references.columns"),
                            "must list as many columns as the constraint's `columns`",
                        ));
                    }
                    self.check_reference(
                        cx,
                        &format!("{field}.references"),
                        &r.table,
                        &r.columns,
                        &table,
                    )?;
                    ConstraintKind::ForeignKey
                }
                ConstraintType::Exclude => {
                    if c.exclude
                        .as_ref()
                        .is_none_or(|e| e.elements.trim().is_empty())
                    {
                        return Err(FieldError::new(
                            format!("{field}.exclude.elements"),
                            "missing field",
                        ));
                    }
                    ConstraintKind::Exclude
                }
            };
            table.constraints.push(Constraint {
                name: c.name.clone(),
                kind,
                columns: c.columns.clone(),
                definition: String::new(),
                validated: true,
            });
        }
        for pk in &table.primary_key.clone() {
            if let Some(col) = table.column_mut(pk) {
                col.nullable = false;
            }
        }
        cx.schema.tables.insert(self.name.clone(), table);
        Ok(())
    }

    /// A foreign key must point at an existing table (or the new table itself) and columns.
    fn check_reference(
        &self,
        cx: &crate::validate::Cx<'_>,
        field: &str,
        target: &str,
        columns: &[String],
        new_table: &crate::schema::Table,
    ) -> crate::validate::Check {
        use crate::error::FieldError;
        let target_table = if target == self.name {
            Some(new_table)
        } else {
            cx.table(&format!("{field}.table"), target)?
        };
        if let Some(t) = target_table {
            for c in columns {
                // A self-reference may point at a column defined later in the list.
                let later = target == self.name && self.columns.iter().any(|d| &d.name == c);
                if t.column(c).is_none() && !later {
                    return Err(FieldError::new(
                        format!("{field}.column"),
                        format!("column {c:?} does not exist on table {target:?}"),
                    ));
                }
            }
        }
        Ok(())
    }
}
