//! T016: an UPDATE or DELETE of a whole table in one statement.

use super::{Check, Level, Rule};
use crate::model::StmtKind;
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T016",
    name: "unbatched-update-delete",
    level: Level::Warning,
    summary: "UPDATE or DELETE without WHERE changes every row in one long transaction.",
    explanation: "UPDATE and DELETE take a ROW EXCLUSIVE lock on the table (reads and writes go on) but also lock every row they touch until the transaction ends: any application write to one of those rows waits for the whole statement. One statement over a whole table also writes a large burst of WAL (replicas fall behind) and leaves every old row version for VACUUM at once. Do it in short batches, each its own transaction.",
    safe_alternative: "-- repeat until it updates no row, with a short pause between batches\nUPDATE users SET email = lower(email)\nWHERE id IN (SELECT id FROM users WHERE email <> lower(email) LIMIT 1000);",
    tandem: Some("operations:\n  - alter_column:\n      table: users\n      column: email\n      up: lower(email)\n      down: email\n      check: {name: users_email_lower, constraint: email = lower(email)}"),
    setup: crate::rules::USERS,
    bad: "UPDATE users SET email = lower(email);",
    good: "UPDATE users SET email = lower(email)\nWHERE id IN (SELECT id FROM users WHERE email <> lower(email) LIMIT 1000);",
    bad_fails_with: None,
    check: Check::Statement(check),
};

fn check(cx: &Cx) -> Option<String> {
    let (verb, table) = match &cx.stmt.kind {
        StmtKind::Update {
            table,
            has_where: false,
        } => ("UPDATE", table),
        StmtKind::Delete {
            table,
            has_where: false,
        } => ("DELETE", table),
        // A "batched" loop in a PL/pgSQL body that never commits is one transaction.
        StmtKind::Update { table, .. } | StmtKind::Delete { table, .. }
            if cx.stmt.in_body.is_some_and(|b| b.loop_without_commit)
                && !cx.state.is_new(table) =>
        {
            let verb = if matches!(cx.stmt.kind, StmtKind::Update { .. }) {
                "UPDATE"
            } else {
                "DELETE"
            };
            return Some(format!(
                "{verb} of {} in a loop that never commits: every batch runs in one transaction, which locks each row it touched until the block ends; COMMIT after each batch (in a DO block or procedure run outside a transaction)",
                table.display
            ));
        }
        _ => return None,
    };
    (!cx.state.is_new(table)).then(|| {
        format!(
            "{verb} of every row of {} in one statement: locks each row until it ends; batch it",
            table.display
        )
    })
}
