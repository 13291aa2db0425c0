//! `drop_table`: hidden from the new version at start, dropped at complete.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropTable {
    pub name: String,
}

impl DropTable {
    pub(crate) fn apply(&self, cx: &mut crate::validate::Cx<'_>) -> crate::validate::Check {
        cx.table("name", &self.name)?;
        cx.schema.tables.remove(&self.name);
        Ok(())
    }
}
