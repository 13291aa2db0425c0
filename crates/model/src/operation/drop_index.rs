//! `drop_index`: drop an index (concurrently) when the migration completes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropIndex {
    pub name: String,
}

impl DropIndex {
    pub(crate) fn apply(&self, cx: &mut crate::validate::Cx<'_>) -> crate::validate::Check {
        use crate::error::FieldError;
        let owner = cx
            .schema
            .find_index(&self.name)
            .map(|(t, _)| t.name.clone());
        match owner {
            Some(table) => {
                if let Some(t) = cx.schema.table_mut(&table) {
                    t.indexes.retain(|i| i.name != self.name);
                }
                Ok(())
            }
            None if cx.schema.opaque => Ok(()),
            None => Err(FieldError::new(
                "name",
                format!("index {:?} does not exist", self.name),
            )),
        }
    }
}
