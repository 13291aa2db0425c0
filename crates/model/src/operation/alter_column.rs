//! `alter_column`: change a column's name, type, nullability, constraints, default or comment.
//! The planner decides per change whether it needs a second column (plan/src/ops/alter_column.rs).

use super::common::{CheckConstraint, ForeignKeyReference, Nullable, UniqueConstraint};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// Read through `legacy::AlterColumnOnDisk`, which also takes the older `not_null`, a bare check
// expression and an unnamed foreign key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "super::legacy::AlterColumnOnDisk")]
#[schemars(deny_unknown_fields)]
pub struct AlterColumn {
    pub table: String,
    pub column: String,
    /// New name of the column (a rename done by views alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nullable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckConstraint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique: Option<UniqueConstraint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<ForeignKeyReference>,
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    #[schemars(with = "Option<String>")]
    pub default: Nullable<String>,
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    #[schemars(with = "Option<String>")]
    pub comment: Nullable<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub up: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub down: String,
}

impl AlterColumn {
    /// True when the operation changes the column's type, nullability, constraints, default
    /// or comment.
    pub fn changes_more_than_name(&self) -> bool {
        self.data_type.is_some()
            || self.nullable.is_some()
            || self.check.is_some()
            || self.unique.is_some()
            || self.references.is_some()
            || !self.default.is_absent()
            || !self.comment.is_absent()
    }
}

impl AlterColumn {
    pub(crate) fn apply(&self, cx: &mut crate::validate::Cx<'_>) -> crate::validate::Check {
        use super::common::Nullable;
        use crate::error::FieldError;
        cx.column_exists("table", &self.table, "column", &self.column)?;
        if self.name.is_none() && !self.changes_more_than_name() {
            return Err(FieldError::new(
                "",
                "nothing to change: give at least one of name, type, nullable, check, unique, references, default, comment",
            ));
        }
        if let Some(t) = &self.data_type {
            crate::validate::not_empty("type", t)?;
            cx.require_type("type", t);
        }
        if let Some(r) = &self.references {
            crate::validate::new_name("references.name", &r.name)?;
            cx.column_exists("references.table", &r.table, "references.column", &r.column)?;
        }
        if let Some(c) = &self.check {
            crate::validate::new_name("check.name", &c.name)?;
        }
        if let Some(u) = &self.unique {
            cx.relation_free("unique.name", &u.name)?;
        }
        if let Some(table) = cx.table_mut("table", &self.table)? {
            if let Some(col) = table.column_mut(&self.column) {
                if let Some(t) = &self.data_type {
                    col.data_type = t.clone();
                }
                if let Some(n) = self.nullable {
                    col.nullable = n;
                }
                match &self.default {
                    Nullable::Absent => {}
                    Nullable::Null => col.default = None,
                    Nullable::Value(v) => col.default = Some(v.clone()),
                }
                match &self.comment {
                    Nullable::Absent => {}
                    Nullable::Null => col.comment = None,
                    Nullable::Value(v) => col.comment = Some(v.clone()),
                }
            }
        }
        if let Some(new) = &self.name {
            super::rename_column::rename(
                cx,
                &self.table,
                "table",
                &self.column,
                "column",
                new,
                "name",
            )?;
        }
        Ok(())
    }
}
