//! T025: `json` instead of `jsonb`.

use super::{each_column_of_type, Check, Hit, Level, Rule};
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T025",
    name: "prefer-jsonb",
    level: Level::Warning,
    summary: "Use jsonb instead of json.",
    explanation: "json stores the text as given and parses it again on every access; it has no equality operator, so it cannot be indexed, compared, used in DISTINCT or GROUP BY, or be part of a unique constraint. Converting it later rewrites the table under an ACCESS EXCLUSIVE lock that blocks every read and write.",
    safe_alternative: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN settings jsonb;",
    tandem: Some("operations:\n  - add_column:\n      table: users\n      column: {name: settings, type: jsonb, nullable: true}"),
    setup: crate::rules::USERS,
    bad: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN settings json;",
    good: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN settings jsonb;",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    each_column_of_type(cx, "json", "jsonb", |name| {
        format!("column {name} is json: use jsonb")
    })
}
