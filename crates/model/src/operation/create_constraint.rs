//! `create_constraint`: a check, unique, foreign-key or primary-key constraint over one or more
//! columns, with `up`/`down` per column.

use super::common::{ColumnExprs, IndexParameters, TableForeignKeyReference};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CreateConstraintType {
    Unique,
    Check,
    ForeignKey,
    PrimaryKey,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConstraint {
    pub table: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: CreateConstraintType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    #[serde(default)]
    pub no_inherit: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_parameters: Option<IndexParameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<TableForeignKeyReference>,
    #[serde(default)]
    pub up: ColumnExprs,
    #[serde(default)]
    pub down: ColumnExprs,
}

impl CreateConstraint {
    pub(crate) fn apply(&self, cx: &mut crate::validate::Cx<'_>) -> crate::validate::Check {
        use crate::error::FieldError;
        use crate::schema::{Constraint, ConstraintKind};
        crate::validate::new_name("name", &self.name)?;
        if self.columns.is_empty() {
            return Err(FieldError::new(
                "columns",
                "a constraint needs at least one column",
            ));
        }
        for (i, c) in self.columns.iter().enumerate() {
            cx.column_exists("table", &self.table, &format!("columns[{i}]"), c)?;
        }
        let kind = match self.kind {
            CreateConstraintType::Check => {
                crate::validate::not_empty("check", self.check.as_deref().unwrap_or(""))?;
                ConstraintKind::Check
            }
            CreateConstraintType::Unique => ConstraintKind::Unique,
            CreateConstraintType::PrimaryKey => ConstraintKind::PrimaryKey,
            CreateConstraintType::ForeignKey => {
                let Some(r) = &self.references else {
                    return Err(FieldError::new("references", "missing field"));
                };
                if r.columns.len() != self.columns.len() {
                    return Err(FieldError::new(
                        "references.columns",
                        "must list as many columns as `columns`",
                    ));
                }
                for (i, c) in r.columns.iter().enumerate() {
                    cx.column_exists(
                        "references.table",
                        &r.table,
                        &format!("references.columns[{i}]"),
                        c,
                    )?;
                }
                ConstraintKind::ForeignKey
            }
        };
        let Some(t) = cx.table_mut("table", &self.table)? else {
            return Ok(());
        };
        if t.constraint(&self.name).is_some() {
            return Err(FieldError::new(
                "name",
                format!(
                    "constraint {:?} already exists on {:?}",
                    self.name, self.table
                ),
            ));
        }
        if kind == ConstraintKind::PrimaryKey {
            if !t.primary_key.is_empty() {
                return Err(FieldError::new(
                    "type",
                    format!("table {:?} already has a primary key", self.table),
                ));
            }
            t.primary_key = self.columns.clone();
        }
        t.constraints.push(Constraint {
            name: self.name.clone(),
            kind,
            columns: self.columns.clone(),
            definition: String::new(),
            validated: true,
        });
        Ok(())
    }
}
