//! `set_replica_identity`: a catalog-only change, made at start; rollback restores the setting
//! the table had before, as the snapshot read at start records it.

use crate::step::{LockMode, Step};
use crate::{Cx, PlanError};
use tandem_model::operation::SetReplicaIdentity;
use tandem_model::{quote_ident, ReplicaIdentity};

pub(crate) fn plan(cx: &mut Cx<'_>, op: &SetReplicaIdentity) -> Result<(), PlanError> {
    let table = cx.qualified_table(&op.table);
    // Validation has refused any other `type`.
    let wanted = op.identity.setting().unwrap_or_default();
    let description = format!("set replica identity of {}", op.table);
    cx.start.push(set(description, &table, &wanted));
    // A table this migration creates has nothing to restore: rollback drops it.
    let before = cx
        .input
        .physical
        .table(&cx.physical_table(&op.table))
        .filter(|_| !cx.created.contains(&cx.physical_table(&op.table)))
        .map(|t| t.replica_identity.clone());
    if let Some(before) = before {
        let description = format!("restore replica identity of {}", op.table);
        cx.rollback(set(description, &table, &before));
    }
    Ok(())
}

fn set(description: String, qualified_table: &str, identity: &ReplicaIdentity) -> Step {
    let clause = match identity {
        ReplicaIdentity::Default => "DEFAULT".to_string(),
        ReplicaIdentity::Full => "FULL".to_string(),
        ReplicaIdentity::Nothing => "NOTHING".to_string(),
        ReplicaIdentity::Index(index) => format!("USING INDEX {}", quote_ident(index)),
    };
    Step::tx(
        description,
        format!("ALTER TABLE {qualified_table} REPLICA IDENTITY {clause}"),
    )
    .lock(LockMode::AccessExclusive, qualified_table)
}
