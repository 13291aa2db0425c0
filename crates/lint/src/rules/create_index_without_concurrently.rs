//! T005: `CREATE INDEX` without `CONCURRENTLY` blocks writes for the whole build.

use super::{insert_after_word, Check, Hit, Level, Rule};
use crate::model::StmtKind;
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T005",
    name: "create-index-without-concurrently",
    level: Level::Error,
    summary: "Building an index without CONCURRENTLY blocks writes to the table for the whole build.",
    explanation: "CREATE INDEX takes a SHARE lock on the table: it blocks every INSERT, UPDATE and DELETE until the index is built, which on a large table takes minutes or hours. CREATE INDEX CONCURRENTLY takes a SHARE UPDATE EXCLUSIVE lock instead, which lets reads and writes go on. An index on a table created earlier in the same file is fine.",
    safe_alternative: "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);\n-- outside any transaction block; if it fails, drop the INVALID index and try again",
    tandem: Some("operations:\n  - create_index:\n      name: users_email_idx\n      table: users\n      columns: [{column: email}]"),
    setup: crate::rules::USERS,
    bad: "CREATE INDEX users_email_idx ON users (email);",
    good: "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    match &cx.stmt.kind {
        StmtKind::CreateIndex {
            table,
            concurrently: false,
            name,
            ..
        } if !cx.state.is_new(table) => {
            let hit = Hit::new(format!(
                "index {}on {} is built without CONCURRENTLY: writes to the table wait until the build ends",
                name.as_ref().map(|n| format!("{n} ")).unwrap_or_default(),
                table.display
            ));
            let hit = match insert_after_word(cx.text(), "INDEX", " CONCURRENTLY") {
                Some(sql) => hit.instead(format!(
                    "{sql};\n-- outside any transaction block; if it fails, drop the INVALID index and run it again"
                )),
                None => hit,
            };
            vec![hit]
        }
        _ => Vec::new(),
    }
}
