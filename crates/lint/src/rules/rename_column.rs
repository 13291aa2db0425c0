//! T001: renaming a column breaks every running query that names it.

use super::{ident, Check, Hit, Level, Rule};
use crate::model::StmtKind;
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T001",
    name: "rename-column",
    level: Level::Error,
    summary: "Renaming a column breaks the application version that still uses the old name.",
    explanation: "RENAME COLUMN takes an ACCESS EXCLUSIVE lock on the table: it blocks every read and write until the transaction ends. The lock is short, but the moment it commits, every query of the running application that names the old column fails, and during a rollout the old and the new application version run at the same time, so one of them is always broken.",
    safe_alternative: "-- Expand: add the new column and keep both in step\nALTER TABLE users ADD COLUMN full_name text;\n-- (a trigger copies name -> full_name and back; backfill existing rows in batches)\n-- Contract, once no running version reads the old name:\nALTER TABLE users DROP COLUMN name;",
    tandem: Some("operations:\n  - rename_column:\n      table: users\n      from: name\n      to: full_name"),
    setup: crate::rules::USERS,
    bad: "SET lock_timeout = '2s';\nALTER TABLE users RENAME COLUMN name TO full_name;",
    good: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN full_name text;",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    match &cx.stmt.kind {
        StmtKind::RenameColumn { table, column, to } if !cx.state.is_new(table) => {
            let t = &table.display;
            let (c, n) = (ident(column), ident(to));
            let ty = cx
                .state
                .column_types
                .get(&(table.name.clone(), column.clone()))
                .map(|ty| ty.display());
            let add = match ty {
                Some(ty) => format!("ALTER TABLE {t} ADD COLUMN {n} {ty};"),
                None => format!("-- ALTER TABLE {t} ADD COLUMN {n} with the type of {c};"),
            };
            vec![Hit::new(format!(
                "renaming column {column} of {t} to {to} breaks every running query that uses {column}"
            ))
            .instead(format!(
                "-- Expand: {n} beside {c}, kept in step by a trigger, backfilled in batches\n{add}\n-- Contract, once no running version reads {c}:\nALTER TABLE {t} DROP COLUMN {c};"
            ))]
        }
        _ => Vec::new(),
    }
}
