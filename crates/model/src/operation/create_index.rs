//! `create_index`: an index built with CREATE INDEX CONCURRENTLY.

use super::common::{IndexField, IndexMethod};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIndex {
    pub name: String,
    pub table: String,
    // Also read in the older forms: a list of names, or a map of name to settings.
    #[serde(deserialize_with = "super::legacy::index_columns")]
    pub columns: Vec<IndexField>,
    #[serde(default)]
    pub method: IndexMethod,
    #[serde(default)]
    pub unique: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub predicate: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub storage_parameters: String,
}

impl CreateIndex {
    pub(crate) fn apply(&self, cx: &mut crate::validate::Cx<'_>) -> crate::validate::Check {
        use crate::error::FieldError;
        use crate::schema::Index;
        cx.relation_free("name", &self.name)?;
        if self.columns.is_empty() {
            return Err(FieldError::new(
                "columns",
                "an index needs at least one column",
            ));
        }
        for (i, f) in self.columns.iter().enumerate() {
            cx.column_exists(
                "table",
                &self.table,
                &format!("columns[{i}].column"),
                &f.column,
            )?;
        }
        if let Some(t) = cx.table_mut("table", &self.table)? {
            t.indexes.push(Index {
                name: self.name.clone(),
                unique: self.unique,
                primary: false,
                valid: true,
                columns: self.columns.iter().map(|c| c.column.clone()).collect(),
                definition: String::new(),
            });
        }
        Ok(())
    }
}
