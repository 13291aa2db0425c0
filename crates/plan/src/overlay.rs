//! How the new version sees the physical tables while a migration is active: renamed tables and
//! columns, and hidden (dropped) ones. The version schema's views are generated from the physical
//! schema read after the expand, seen through this overlay, so tables made by `sql` operations
//! get views too.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overlay {
    /// Physical table name → the name the new version sees, or `None` when it is hidden.
    #[serde(default)]
    pub tables: BTreeMap<String, Option<String>>,
    /// Physical table → physical column → the name the new version sees, or `None` when hidden.
    #[serde(default)]
    pub columns: BTreeMap<String, BTreeMap<String, Option<String>>>,
    /// Physical table → physical column → the default the new version's view gives it, where it
    /// differs from the table's until complete (`None`: no default).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub defaults: BTreeMap<String, BTreeMap<String, Option<String>>>,
    /// Physical table → second column → the column it stands in for: the view shows the second
    /// column where the original stands, so `SELECT *` through the version schema keeps its
    /// column order although the second column was added at the end of the table.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stand_ins: BTreeMap<String, BTreeMap<String, String>>,
}

impl Overlay {
    /// The name the new version sees for a physical table, or `None` when hidden.
    pub fn table_name<'a>(&'a self, physical: &'a str) -> Option<&'a str> {
        match self.tables.get(physical) {
            Some(v) => v.as_deref(),
            None => Some(physical),
        }
    }

    /// The name the new version sees for a physical column, or `None` when hidden.
    pub fn column_name<'a>(&'a self, table: &str, physical: &'a str) -> Option<&'a str> {
        match self.columns.get(table).and_then(|c| c.get(physical)) {
            Some(v) => v.as_deref(),
            None => Some(physical),
        }
    }
}
