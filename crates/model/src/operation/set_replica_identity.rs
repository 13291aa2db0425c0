//! `set_replica_identity`: set a table's replica identity for logical replication.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetReplicaIdentity {
    pub table: String,
    pub identity: ReplicaIdentity,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicaIdentity {
    /// `default`, `full`, `nothing` or `index`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub index: String,
}

impl SetReplicaIdentity {
    pub(crate) fn apply(&self, cx: &mut crate::validate::Cx<'_>) -> crate::validate::Check {
        use crate::error::FieldError;
        let Some(t) = cx.table("table", &self.table)? else {
            return Ok(());
        };
        match self.identity.kind.to_ascii_lowercase().as_str() {
            "default" | "full" | "nothing" => Ok(()),
            "index" => {
                if t.indexes.iter().any(|i| i.name == self.identity.index) || cx.schema.opaque {
                    Ok(())
                } else {
                    Err(FieldError::new(
                        "identity.index",
                        format!(
                            "index {:?} does not exist on table {:?}",
                            self.identity.index, self.table
                        ),
                    ))
                }
            }
            other => Err(FieldError::new(
                "identity.type",
                format!("{other:?} is not one of default, full, nothing, index"),
            )),
        }
    }
}
