//! `rename_table`: the new version sees the new name through its views; complete renames the
//! table itself.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameTable {
    pub from: String,
    pub to: String,
}

impl RenameTable {
    pub(crate) fn apply(&self, cx: &mut crate::validate::Cx<'_>) -> crate::validate::Check {
        cx.table("from", &self.from)?;
        cx.relation_free("to", &self.to)?;
        if let Some(mut t) = cx.schema.tables.remove(&self.from) {
            t.name = self.to.clone();
            cx.schema.tables.insert(self.to.clone(), t);
        }
        Ok(())
    }
}
