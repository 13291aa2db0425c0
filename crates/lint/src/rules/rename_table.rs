//! T002: renaming a table breaks every running query that names it.

use super::{ident, Check, Hit, Level, Rule};
use crate::model::StmtKind;
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T002",
    name: "rename-table",
    level: Level::Error,
    summary: "Renaming a table breaks the application version that still uses the old name.",
    explanation: "RENAME takes an ACCESS EXCLUSIVE lock on the table: it blocks every read and write until the transaction ends. Once it commits, every query of the running application that names the old table fails.",
    safe_alternative: "-- Give the new name to a view first, so both names work during the rollout\nCREATE VIEW accounts AS SELECT * FROM users;\n-- Once no running version uses the old name, rename and drop the view\n-- in one short transaction (under a lock_timeout).",
    tandem: Some("operations:\n  - rename_table:\n      from: users\n      to: accounts"),
    setup: crate::rules::USERS,
    bad: "SET lock_timeout = '2s';\nALTER TABLE users RENAME TO accounts;",
    good: "CREATE VIEW accounts AS SELECT * FROM users;",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    match &cx.stmt.kind {
        StmtKind::RenameTable { table, to } if !cx.state.is_new(table) => {
            let old = &table.display;
            let new = ident(to);
            vec![Hit::new(format!(
                "renaming table {old} to {to} breaks every running query that uses {}",
                table.name
            ))
            .instead(format!(
                "SET lock_timeout = '2s';\nBEGIN;\nALTER TABLE {old} RENAME TO {new};\n-- the old name keeps working for the running version (a simple view is updatable)\nCREATE VIEW {old} AS SELECT * FROM {new};\nCOMMIT;\n-- once no running version uses {old}:\nDROP VIEW {old};"
            ))]
        }
        _ => Vec::new(),
    }
}
