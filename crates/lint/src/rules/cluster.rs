//! T020: `CLUSTER` rewrites the table under an ACCESS EXCLUSIVE lock.

use super::{Check, Hit, Level, Rule};
use crate::model::StmtKind;
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T020",
    name: "cluster",
    level: Level::Error,
    summary: "CLUSTER rewrites the whole table while blocking every read and write.",
    explanation: "CLUSTER takes an ACCESS EXCLUSIVE lock on the table: it blocks every read and write while it rewrites the table in index order and rebuilds every index. Reorder the table online with an extension such as pg_repack instead, or leave it to the planner.",
    safe_alternative: "-- no online equivalent in core PostgreSQL; keep statistics fresh instead\nANALYZE users;",
    tandem: None,
    setup: "CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text);",
    bad: "SET lock_timeout = '2s';\nCLUSTER users USING users_pkey;",
    good: "ANALYZE users;",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    match &cx.stmt.kind {
        StmtKind::Cluster { table } if !table.as_ref().is_some_and(|t| cx.state.is_new(t)) => {
            let hit = Hit::new(format!(
                "CLUSTER {}rewrites the table under an ACCESS EXCLUSIVE lock: every read and write waits",
                table.as_ref().map(|t| format!("of {} ", t.display)).unwrap_or_default()
            ));
            vec![match table {
                Some(t) => hit.instead(format!(
                    "-- no online equivalent in core PostgreSQL; keep statistics fresh instead\nANALYZE {};",
                    t.display
                )),
                None => hit,
            }]
        }
        _ => Vec::new(),
    }
}
