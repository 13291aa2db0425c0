//! `sql`: raw SQL run at start (or at complete with `onComplete`), undone by `down` on rollback.
//! Unlike pgroll, it may stand beside other operations in one migration.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSql {
    pub up: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub down: String,
    #[serde(rename = "onComplete", default)]
    pub on_complete: bool,
}

impl RawSql {
    pub(crate) fn apply(&self, cx: &mut crate::validate::Cx<'_>) -> crate::validate::Check {
        crate::validate::not_empty("up", &self.up)?;
        // What the SQL does is unknown here; later checks give the benefit of the doubt.
        cx.schema.opaque = true;
        Ok(())
    }
}
