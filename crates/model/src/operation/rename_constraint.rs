//! `rename_constraint`: rename a constraint of a table.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameConstraint {
    pub table: String,
    pub from: String,
    pub to: String,
}

impl RenameConstraint {
    pub(crate) fn apply(&self, cx: &mut crate::validate::Cx<'_>) -> crate::validate::Check {
        use crate::error::FieldError;
        crate::validate::new_name("to", &self.to)?;
        let opaque = cx.schema.opaque;
        let Some(t) = cx.table_mut("table", &self.table)? else {
            return Ok(());
        };
        if t.constraint(&self.to).is_some() {
            return Err(FieldError::new(
                "to",
                format!(
                    "constraint {:?} already exists on {:?}",
                    self.to, self.table
                ),
            ));
        }
        match t.constraints.iter_mut().find(|c| c.name == self.from) {
            Some(c) => c.name = self.to.clone(),
            None if opaque => {}
            None => {
                return Err(FieldError::new(
                    "from",
                    format!(
                        "constraint {:?} does not exist on table {:?}",
                        self.from, self.table
                    ),
                ))
            }
        }
        Ok(())
    }
}
