//! T008: `REINDEX` without `CONCURRENTLY` blocks writes and the queries that use the index.

use super::{insert_after_word, Check, Hit, Level, Rule};
use crate::model::StmtKind;
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T008",
    name: "reindex-without-concurrently",
    level: Level::Error,
    summary: "REINDEX without CONCURRENTLY blocks writes, and reads that use the index, for the whole rebuild.",
    explanation: "REINDEX takes a SHARE lock on the table, which blocks every INSERT, UPDATE and DELETE, and an ACCESS EXCLUSIVE lock on each index it rebuilds, which blocks every query that would use it, until the rebuild ends. From PostgreSQL 12, REINDEX CONCURRENTLY builds a new copy beside the old one under a SHARE UPDATE EXCLUSIVE lock, which lets reads and writes go on.",
    safe_alternative: "REINDEX INDEX CONCURRENTLY users_email_idx;",
    tandem: None,
    setup: "CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text);\nCREATE INDEX users_email_idx ON users (email);",
    bad: "SET lock_timeout = '2s';\nREINDEX INDEX users_email_idx;",
    good: "REINDEX INDEX CONCURRENTLY users_email_idx;",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    match &cx.stmt.kind {
        StmtKind::Reindex {
            target,
            index,
            concurrently: false,
        } if !cx.state.is_new_relation(target) => {
            let hit = Hit::new(format!(
                "REINDEX of {}{target} without CONCURRENTLY blocks writes, and reads that use the index, until it ends{}",
                if *index { "index " } else { "" },
                if cx.options.pg_version < 12 {
                    " (REINDEX CONCURRENTLY needs PostgreSQL 12; on older versions build a new index concurrently and swap)"
                } else {
                    ""
                }
            ));
            let word = if *index { "INDEX" } else { "TABLE" };
            vec![match insert_after_word(cx.text(), word, " CONCURRENTLY") {
                Some(sql) if cx.options.pg_version >= 12 => hit.instead(format!("{sql};")),
                _ => hit,
            }]
        }
        _ => Vec::new(),
    }
}
