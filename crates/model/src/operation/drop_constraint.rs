//! `drop_constraint`: remove a single-column constraint.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// Read through `legacy::DropConstraintOnDisk`, which also takes the older `column`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(from = "super::legacy::DropConstraintOnDisk")]
#[schemars(deny_unknown_fields)]
pub struct DropConstraint {
    pub table: String,
    pub name: String,
    #[serde(default)]
    pub up: String,
    #[serde(default)]
    pub down: String,
}

impl DropConstraint {
    pub(crate) fn apply(&self, cx: &mut crate::validate::Cx<'_>) -> crate::validate::Check {
        drop_named_constraint(cx, &self.table, &self.name)
    }
}

/// Shared by `drop_constraint` and `drop_multicolumn_constraint`.
pub(crate) fn drop_named_constraint(
    cx: &mut crate::validate::Cx<'_>,
    table: &str,
    name: &str,
) -> crate::validate::Check {
    use crate::error::FieldError;
    let opaque = cx.schema.opaque;
    let Some(t) = cx.table_mut("table", table)? else {
        return Ok(());
    };
    if t.constraint(name).is_none() && !opaque {
        return Err(FieldError::new(
            "name",
            format!("constraint {name:?} does not exist on table {table:?}"),
        ));
    }
    t.constraints.retain(|c| c.name != name);
    Ok(())
}
