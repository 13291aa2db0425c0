//! T015: dropping a table that the running application may still use.

use super::{Check, Hit, Level, Rule};
use crate::model::StmtKind;
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T015",
    name: "drop-table",
    level: Level::Warning,
    summary: "Dropping a table breaks every running query that still uses it, and cannot be rolled back.",
    explanation: "DROP TABLE takes an ACCESS EXCLUSIVE lock on the table (and on tables whose foreign keys point at it): it blocks every read and write until the transaction ends. Every query of an application version that still uses the table fails afterwards, and the data is gone.",
    safe_alternative: "-- 1. Release an application version that no longer uses the table.\n-- 2. Optionally rename it first and wait, to find stragglers cheaply.\nSET lock_timeout = '2s';\nDROP TABLE legacy_events;  -- tandem-lint: ignore drop-table",
    tandem: Some("operations:\n  - drop_table:\n      name: legacy_events"),
    setup: "CREATE TABLE legacy_events (id bigint);",
    bad: "SET lock_timeout = '2s';\nDROP TABLE legacy_events;",
    good: "CREATE TABLE scratch (id bigint);\nDROP TABLE scratch;",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    match &cx.stmt.kind {
        StmtKind::DropTable { tables } => {
            let old: Vec<&str> = tables
                .iter()
                .filter(|t| !cx.state.is_new(t))
                .map(|t| t.display.as_str())
                .collect();
            if old.is_empty() {
                return Vec::new();
            }
            let names = old.join(", ");
            vec![Hit::new(format!(
                "dropping {names} breaks every running query that still uses it, and its data cannot be brought back"
            ))
            .instead(format!(
                "-- 1. Release an application version that no longer uses {names}.\n-- 2. Check that nothing reads it (pg_stat_user_tables), then:\nSET lock_timeout = '2s';\n{};",
                cx.text()
            ))]
        }
        _ => Vec::new(),
    }
}
