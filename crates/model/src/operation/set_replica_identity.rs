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

impl ReplicaIdentity {
    /// The setting this asks for; `None` for a `type` that is none of the four.
    pub fn setting(&self) -> Option<crate::schema::ReplicaIdentity> {
        use crate::schema::ReplicaIdentity as Setting;
        match self.kind.to_ascii_lowercase().as_str() {
            "default" => Some(Setting::Default),
            "full" => Some(Setting::Full),
            "nothing" => Some(Setting::Nothing),
            "index" => Some(Setting::Index(self.index.clone())),
            _ => None,
        }
    }
}

impl SetReplicaIdentity {
    pub(crate) fn apply(&self, cx: &mut crate::validate::Cx<'_>) -> crate::validate::Check {
        use crate::error::FieldError;
        use crate::schema::ReplicaIdentity as Setting;
        let Some(t) = cx.table("table", &self.table)? else {
            return Ok(());
        };
        let Some(setting) = self.identity.setting() else {
            return Err(FieldError::new(
                "identity.type",
                format!(
                    "{:?} is not one of default, full, nothing, index",
                    self.identity.kind.to_ascii_lowercase()
                ),
            ));
        };
        if let Setting::Index(index) = &setting {
            if !t.indexes.iter().any(|i| &i.name == index) && !cx.schema.opaque {
                return Err(FieldError::new(
                    "identity.index",
                    format!("index {index:?} does not exist on table {:?}", self.table),
                ));
            }
        }
        if let Some(t) = cx.schema.table_mut(&self.table) {
            t.replica_identity = setting;
        }
        Ok(())
    }
}
