//! `add_column`: a new column, filled for existing rows and for the old version's writes by `up`.

use super::common::ColumnDef;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddColumn {
    pub table: String,
    pub column: ColumnDef,
    /// SQL expression over the row's other columns giving the new column's value for existing
    /// rows and for rows the old version writes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub up: String,
}

impl AddColumn {
    pub(crate) fn apply(&self, cx: &mut crate::validate::Cx<'_>) -> crate::validate::Check {
        use crate::error::FieldError;
        self.column.check(cx, "column")?;
        if self.column.pk {
            return Err(FieldError::new(
                "column.pk",
                "add_column cannot add a primary key column; use create_constraint with type primary_key",
            ));
        }
        if self
            .column
            .generated
            .as_ref()
            .is_some_and(|g| !g.expression.is_empty())
        {
            return Err(FieldError::new(
                "column.generated.expression",
                "adding a stored generated column rewrites the whole table under an ACCESS EXCLUSIVE lock; add a plain column with `up` instead",
            ));
        }
        if let Some(r) = &self.column.references {
            cx.column_exists(
                "column.references.table",
                &r.table,
                "column.references.column",
                &r.column,
            )?;
        }
        let needs_value = !self.column.nullable
            && self.column.default.is_none()
            && self.up.trim().is_empty()
            && self.column.generated.is_none();
        let Some(table) = cx.table_mut("table", &self.table)? else {
            return Ok(());
        };
        if table.column(&self.column.name).is_some() {
            return Err(FieldError::new(
                "column.name",
                format!(
                    "column {:?} already exists on table {:?}",
                    self.column.name, self.table
                ),
            ));
        }
        table.columns.push(self.column.to_column());
        if needs_value {
            cx.require_empty(
                "column.nullable",
                &self.table,
                "a NOT NULL column without `up` or `default` cannot be added to a table with rows; give `up` (the value for existing rows) or a default",
            );
        }
        Ok(())
    }
}
