//! `set_replica_identity`: a catalog-only change, made at start.

use crate::step::{LockMode, Step};
use crate::{Cx, PlanError};
use tandem_model::operation::SetReplicaIdentity;
use tandem_model::quote_ident;

pub(crate) fn plan(cx: &mut Cx<'_>, op: &SetReplicaIdentity) -> Result<(), PlanError> {
    let table = cx.qualified_table(&op.table);
    let identity = match op.identity.kind.to_ascii_lowercase().as_str() {
        "full" => "FULL".to_string(),
        "nothing" => "NOTHING".to_string(),
        "index" => format!("USING INDEX {}", quote_ident(&op.identity.index)),
        _ => "DEFAULT".to_string(),
    };
    cx.start.push(
        Step::tx(
            format!("set replica identity of {}", op.table),
            format!("ALTER TABLE {table} REPLICA IDENTITY {identity}"),
        )
        .lock(LockMode::AccessExclusive, table),
    );
    Ok(())
}
