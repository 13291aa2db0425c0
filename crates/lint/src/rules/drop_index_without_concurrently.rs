//! T006: `DROP INDEX` without `CONCURRENTLY` locks the table against reads and writes.

use super::{Check, Hit, Level, Rule};
use crate::model::StmtKind;
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T006",
    name: "drop-index-without-concurrently",
    level: Level::Error,
    summary: "Dropping an index without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on its table.",
    explanation: "DROP INDEX takes an ACCESS EXCLUSIVE lock on the index's table: it blocks every read and write. The drop itself is quick, but the statement waits behind any long-running query on the table, and every query queues behind it while it waits. DROP INDEX CONCURRENTLY waits for those queries without blocking new ones.",
    safe_alternative: "DROP INDEX CONCURRENTLY IF EXISTS users_email_idx;",
    tandem: Some("operations:\n  - drop_index:\n      name: users_email_idx"),
    setup: "CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text);\nCREATE INDEX users_email_idx ON users (email);",
    bad: "SET lock_timeout = '2s';\nDROP INDEX users_email_idx;",
    good: "DROP INDEX CONCURRENTLY IF EXISTS users_email_idx;",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    match &cx.stmt.kind {
        StmtKind::DropIndex {
            names,
            concurrently: false,
        } => {
            let old: Vec<&str> = names
                .iter()
                .filter(|n| !cx.state.is_new_relation(n))
                .map(String::as_str)
                .collect();
            if old.is_empty() {
                return Vec::new();
            }
            // DROP INDEX CONCURRENTLY takes one index at a time.
            let instead = old
                .iter()
                .map(|n| format!("DROP INDEX CONCURRENTLY IF EXISTS {n};"))
                .collect::<Vec<_>>()
                .join("\n");
            vec![Hit::new(format!(
                "dropping index {} without CONCURRENTLY blocks reads and writes on its table",
                old.join(", ")
            ))
            .instead(instead)]
        }
        _ => Vec::new(),
    }
}
