//! `drop_multicolumn_constraint`: remove a constraint over several columns.

use super::common::ColumnExprs;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropMultiColumnConstraint {
    pub table: String,
    pub name: String,
    #[serde(default)]
    pub up: ColumnExprs,
    pub down: ColumnExprs,
}

impl DropMultiColumnConstraint {
    pub(crate) fn apply(&self, cx: &mut crate::validate::Cx<'_>) -> crate::validate::Check {
        super::drop_constraint::drop_named_constraint(cx, &self.table, &self.name)
    }
}
