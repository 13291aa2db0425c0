//! T023: `char(n)` pads with spaces and is no faster than text.

use super::{each_column_of_type, Check, Hit, Level, Rule};
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T023",
    name: "prefer-text-over-char",
    level: Level::Warning,
    summary: "Use text (or varchar) instead of char(n).",
    explanation: "char(n) pads values with spaces, compares ignoring them, and is stored no more compactly than text. When the length limit must change later, changing the type rewrites the table and its indexes under an ACCESS EXCLUSIVE lock that blocks every read and write; text with a CHECK on length() can be changed with a NOT VALID constraint instead.",
    safe_alternative: "ALTER TABLE users ADD COLUMN country text;\nALTER TABLE users ADD CONSTRAINT users_country_len CHECK (length(country) = 2) NOT VALID;\nALTER TABLE users VALIDATE CONSTRAINT users_country_len;",
    tandem: Some("operations:\n  - add_column:\n      table: users\n      column: {name: country, type: text, nullable: true, check: {name: users_country_len, constraint: length(country) = 2}}"),
    setup: crate::rules::USERS,
    bad: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN country char(2);",
    good: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN country text;\nALTER TABLE users ADD CONSTRAINT users_country_len CHECK (length(country) = 2) NOT VALID;\nALTER TABLE users VALIDATE CONSTRAINT users_country_len;",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    each_column_of_type(cx, "bpchar", "text", |name| {
        format!("column {name} is char(n): use text, with a CHECK on its length if it needs one")
    })
}
