//! T024: `timestamp without time zone` loses the instant a value means.

use super::{each_column_of_type, Check, Hit, Level, Rule};
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T024",
    name: "prefer-timestamptz",
    level: Level::Warning,
    summary: "Use timestamptz instead of timestamp without time zone.",
    explanation: "timestamp without time zone stores a wall-clock reading with no zone, so the same instant reads differently depending on each session's TimeZone, and arithmetic across daylight-saving changes goes wrong. Converting the column later rewrites the table and its indexes under an ACCESS EXCLUSIVE lock that blocks every read and write (unless the session TimeZone is UTC on PostgreSQL 12 or later).",
    safe_alternative: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN last_seen timestamptz;",
    tandem: Some("operations:\n  - add_column:\n      table: users\n      column: {name: last_seen, type: timestamptz, nullable: true}"),
    setup: crate::rules::USERS,
    bad: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN last_seen timestamp;",
    good: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN last_seen timestamptz;",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    each_column_of_type(cx, "timestamp", "timestamptz", |name| {
        format!("column {name} is timestamp without time zone: use timestamptz")
    })
}
