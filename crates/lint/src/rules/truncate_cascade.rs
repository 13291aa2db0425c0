//! T021: `TRUNCATE ... CASCADE` empties every table that references the named one.

use super::{Check, Level, Rule};
use crate::model::StmtKind;
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T021",
    name: "truncate-cascade",
    level: Level::Error,
    summary: "TRUNCATE ... CASCADE silently empties every table with a foreign key to the named ones.",
    explanation: "TRUNCATE takes an ACCESS EXCLUSIVE lock on each table it empties: it blocks every read and write on them. With CASCADE, that includes every table that references the named ones through a foreign key, and the tables that reference those, whose data is lost without being named in the migration.",
    safe_alternative: "-- name every table to empty, so nothing is lost by surprise\nSET lock_timeout = '2s';\nTRUNCATE users, orgs;",
    tandem: None,
    setup: "CREATE TABLE orgs (id bigint PRIMARY KEY);\nCREATE TABLE users (id bigint PRIMARY KEY, org_id bigint REFERENCES orgs (id));",
    bad: "SET lock_timeout = '2s';\nTRUNCATE orgs CASCADE;",
    good: "SET lock_timeout = '2s';\nTRUNCATE users, orgs;",
    bad_fails_with: None,
    check: Check::Statement(check),
};

fn check(cx: &Cx) -> Option<String> {
    match &cx.stmt.kind {
        StmtKind::Truncate {
            tables,
            cascade: true,
        } => Some(format!(
            "TRUNCATE {} CASCADE also empties every table that references it, under an ACCESS EXCLUSIVE lock",
            tables.iter().map(|t| t.display.as_str()).collect::<Vec<_>>().join(", ")
        )),
        _ => None,
    }
}
