//! `drop_constraint` and `drop_multicolumn_constraint`. When every `up` and `down` is the
//! column itself the constraint stays until complete drops it (the new version is held to it
//! meanwhile, as `down` would hold it). Otherwise each column with a rewriting `up`/`down` gets
//! a second column without the constraint (shadow.rs), and complete's swap removes it.

use crate::sqltext::is_identity;
use crate::{Cx, PlanError};
use std::collections::BTreeMap;

pub(crate) fn plan(
    cx: &mut Cx<'_>,
    table: &str,
    name: &str,
    up: &BTreeMap<String, String>,
    down: &BTreeMap<String, String>,
) -> Result<(), PlanError> {
    let physical_table = cx.physical_table(table);
    let qtable = cx.qualified_table(table);
    let drop = crate::constraint::drop_constraint(&qtable, name);
    if cx.created.contains(&physical_table) {
        cx.start.push(drop);
        return Ok(());
    }
    let columns: Vec<String> = cx
        .input
        .physical
        .table(&physical_table)
        .and_then(|t| t.constraint(name))
        .map(|c| c.columns.clone())
        .unwrap_or_default();
    // The migration's names for the constraint's physical columns.
    let logical: Vec<String> = columns
        .iter()
        .map(|p| {
            cx.columns
                .get(&physical_table)
                .and_then(|m| m.iter().find(|(_, v)| *v == p).map(|(k, _)| k.clone()))
                .unwrap_or_else(|| p.clone())
        })
        .collect();
    let mut shadowed = false;
    for (physical, column) in columns.iter().zip(&logical) {
        let u = up.get(column).map(String::as_str).unwrap_or("");
        let d = down.get(column).map(String::as_str).unwrap_or("");
        if is_identity(u, column)
            && is_identity(d, column)
            && !cx.shadowed(&physical_table, physical)
        {
            cx.touched_in_place(&physical_table, physical);
            continue;
        }
        let index = cx.ensure_shadow(table, column, None)?;
        cx.shadow_change(index, vec![column.clone()], u, d);
        cx.shadows[index].dropped.insert(name.to_string());
        shadowed = true;
    }
    // Dropping the old columns at complete drops the constraint; when none has a second
    // column, complete drops it by name.
    if !shadowed {
        cx.contract.push(drop);
    }
    Ok(())
}
