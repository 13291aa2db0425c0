//! The table lock each kind of statement takes, as PostgreSQL's documentation lists them. The
//! rules use it to decide what a statement blocks; `tandem trace` measures the real thing.

use crate::model::*;
pub use tandem_plan::LockMode;

/// The strongest lock `kind` takes on a table, with that table's bare name. Statements that take
/// no table lock worth reporting give `None`.
pub fn strongest_lock(kind: &StmtKind) -> Option<(LockMode, String)> {
    use LockMode::*;
    let (mode, table) = match kind {
        StmtKind::AlterTable { table, actions } => {
            let mode = actions.iter().map(action_lock).max()?;
            (mode, table.name.clone())
        }
        StmtKind::CreateIndex {
            table,
            concurrently,
            ..
        } => (
            unless_concurrently(*concurrently, Share),
            table.name.clone(),
        ),
        StmtKind::DropIndex {
            names,
            concurrently,
        } => (
            unless_concurrently(*concurrently, AccessExclusive),
            names.first()?.clone(),
        ),
        StmtKind::Reindex {
            target,
            concurrently,
            ..
        } => (
            unless_concurrently(*concurrently, AccessExclusive),
            target.clone(),
        ),
        StmtKind::RenameTable { table, .. } | StmtKind::RenameColumn { table, .. } => {
            (AccessExclusive, table.name.clone())
        }
        StmtKind::DropTable { tables } | StmtKind::Truncate { tables, .. } => {
            (AccessExclusive, tables.first()?.name.clone())
        }
        StmtKind::Vacuum { full: true, tables } => (AccessExclusive, tables.first()?.name.clone()),
        StmtKind::Cluster { table } => (AccessExclusive, table.as_ref()?.name.clone()),
        StmtKind::Update { table, .. } | StmtKind::Delete { table, .. } => {
            (RowExclusive, table.name.clone())
        }
        _ => return None,
    };
    Some((mode, table))
}

/// The locks a statement's new foreign keys take on the tables they reference: SHARE ROW
/// EXCLUSIVE, which blocks INSERT, UPDATE and DELETE there, also when the key is added NOT VALID
/// and also from a CREATE TABLE. Each with the referenced table's bare name.
pub fn referenced_locks(kind: &StmtKind) -> Vec<(LockMode, String)> {
    let mut out = Vec::new();
    let mut add = |c: &ConstraintSpec| {
        if let (ConstraintKind::ForeignKey, Some((table, _))) = (c.kind, &c.references) {
            if !out.iter().any(|(_, t)| t == &table.name) {
                out.push((LockMode::ShareRowExclusive, table.name.clone()));
            }
        }
    };
    let column = |c: &ColumnSpec, add: &mut dyn FnMut(&ConstraintSpec)| {
        for k in &c.constraints {
            add(k);
        }
    };
    match kind {
        StmtKind::CreateTable {
            table,
            columns,
            constraints,
        } => {
            for c in columns {
                column(c, &mut add);
            }
            constraints.iter().for_each(&mut add);
            // A table that references itself is new: nothing else waits for it.
            out.retain(|(_, t)| t != &table.name);
        }
        StmtKind::AlterTable { table, actions } => {
            for a in actions {
                match a {
                    AlterAction::AddConstraint(c) => add(c),
                    AlterAction::AddColumn(c) => column(c, &mut add),
                    _ => {}
                }
            }
            out.retain(|(_, t)| t != &table.name);
        }
        _ => {}
    }
    out
}

/// The CONCURRENTLY forms take SHARE UPDATE EXCLUSIVE, which lets reads and writes go on.
fn unless_concurrently(concurrently: bool, otherwise: LockMode) -> LockMode {
    if concurrently {
        LockMode::ShareUpdateExclusive
    } else {
        otherwise
    }
}

fn action_lock(action: &AlterAction) -> LockMode {
    match action {
        AlterAction::AddConstraint(ConstraintSpec {
            kind: ConstraintKind::ForeignKey,
            ..
        }) => LockMode::ShareRowExclusive,
        AlterAction::ValidateConstraint { .. }
        | AlterAction::AttachPartition
        | AlterAction::DetachPartition { concurrently: true } => LockMode::ShareUpdateExclusive,
        _ => LockMode::AccessExclusive,
    }
}

/// Whether a lock of this mode blocks the application's reads or writes.
pub fn blocks_application(mode: LockMode) -> bool {
    mode >= LockMode::Share
}
