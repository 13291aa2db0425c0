//! T007: `CONCURRENTLY` statements cannot run inside a transaction block.

use super::{Check, Hit, Level, Rule};
use crate::model::{AlterAction, StmtKind};
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T007",
    name: "concurrently-in-transaction",
    level: Level::Error,
    summary: "CREATE/DROP/REINDEX ... CONCURRENTLY, DETACH PARTITION CONCURRENTLY and VACUUM fail inside a transaction block.",
    explanation: "The CONCURRENTLY forms work in several transactions of their own, waiting for other sessions between them, so PostgreSQL refuses them inside a transaction block (ERROR: cannot run inside a transaction block). A migration tool that wraps each file in a transaction makes them fail the same way; run them in a file of their own, outside any transaction.",
    safe_alternative: "-- no BEGIN/COMMIT around it, and its own migration file if the tool wraps files in a transaction\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);",
    tandem: Some("operations:\n  - create_index:\n      name: users_email_idx\n      table: users\n      columns: [{column: email}]"),
    setup: crate::rules::USERS,
    bad: "BEGIN;\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);\nCOMMIT;",
    good: "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);",
    bad_fails_with: Some("cannot run inside a transaction block"),
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    if !cx.state.in_transaction {
        return Vec::new();
    }
    let what = match &cx.stmt.kind {
        StmtKind::CreateIndex {
            concurrently: true, ..
        } => "CREATE INDEX CONCURRENTLY",
        StmtKind::DropIndex {
            concurrently: true, ..
        } => "DROP INDEX CONCURRENTLY",
        StmtKind::Reindex {
            concurrently: true, ..
        } => "REINDEX CONCURRENTLY",
        StmtKind::Vacuum { .. } => "VACUUM",
        StmtKind::AlterTable { actions, .. }
            if actions
                .iter()
                .any(|a| matches!(a, AlterAction::DetachPartition { concurrently: true })) =>
        {
            "DETACH PARTITION CONCURRENTLY"
        }
        _ => return Vec::new(),
    };
    let (why, instead) = if cx.options.single_transaction {
        (
            " (the file runs as one transaction)",
            format!(
                "-- in a migration file of its own that the tool runs without a transaction:\n{};",
                cx.text()
            ),
        )
    } else {
        (
            "",
            format!(
                "COMMIT;  -- end the transaction first: the statement runs on its own\n{};",
                cx.text()
            ),
        )
    };
    vec![Hit::new(format!(
        "{what} runs inside a transaction block{why}, where PostgreSQL refuses it"
    ))
    .instead(instead)]
}
