//! `drop_column`: the new version no longer sees the column; `down` fills it for the new
//! version's writes while the old version still reads it; complete drops it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropColumn {
    pub table: String,
    pub column: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub down: String,
}

impl DropColumn {
    pub(crate) fn apply(&self, cx: &mut crate::validate::Cx<'_>) -> crate::validate::Check {
        use crate::error::FieldError;
        cx.column_exists("table", &self.table, "column", &self.column)?;
        let Some(table) = cx.table_mut("table", &self.table)? else {
            return Ok(());
        };
        if table.primary_key.contains(&self.column) {
            return Err(FieldError::new(
                "column",
                format!(
                    "column {:?} is part of the primary key of {:?}",
                    self.column, self.table
                ),
            ));
        }
        if let Some(col) = table.column(&self.column) {
            let old_version_needs_value = !col.nullable
                && col.default.is_none()
                && col.identity.is_none()
                && col.generated.is_none();
            if old_version_needs_value && self.down.trim().is_empty() {
                return Err(FieldError::new(
                    "down",
                    format!(
                        "column {:?} is NOT NULL without a default: while the old version still has it, the new version's inserts would fail; give `down`, the value to store for them",
                        self.column
                    ),
                ));
            }
        }
        table.columns.retain(|c| c.name != self.column);
        for c in &mut table.constraints {
            c.columns.retain(|n| n != &self.column);
        }
        Ok(())
    }
}
