//! `rename_column`: the new version sees the new name through its views; complete renames the
//! column itself, which is instant and rewrites nothing.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameColumn {
    pub table: String,
    pub from: String,
    pub to: String,
}

impl RenameColumn {
    pub(crate) fn apply(&self, cx: &mut crate::validate::Cx<'_>) -> crate::validate::Check {
        rename(cx, &self.table, "table", &self.from, "from", &self.to, "to")
    }
}

/// Shared by `rename_column` and the rename form of `alter_column`.
pub(crate) fn rename(
    cx: &mut crate::validate::Cx<'_>,
    table: &str,
    table_field: &str,
    from: &str,
    from_field: &str,
    to: &str,
    to_field: &str,
) -> crate::validate::Check {
    use crate::error::FieldError;
    crate::validate::new_name(to_field, to)?;
    cx.column_exists(table_field, table, from_field, from)?;
    let Some(t) = cx.table_mut(table_field, table)? else {
        return Ok(());
    };
    if from != to && t.column(to).is_some() {
        return Err(FieldError::new(
            to_field,
            format!("column {to:?} already exists on table {table:?}"),
        ));
    }
    if let Some(c) = t.column_mut(from) {
        c.name = to.to_string();
    }
    for list in t
        .constraints
        .iter_mut()
        .map(|c| &mut c.columns)
        .chain(t.indexes.iter_mut().map(|i| &mut i.columns))
        .chain(std::iter::once(&mut t.primary_key))
    {
        for n in list.iter_mut().filter(|n| n.as_str() == from) {
            *n = to.to_string();
        }
    }
    Ok(())
}
