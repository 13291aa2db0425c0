//! T029: an ignore comment that suppresses nothing. The linter produces these findings itself.

use super::{Check, Level, Rule};

pub const RULE: Rule = Rule {
    id: "T029",
    name: "unused-ignore",
    level: Level::Warning,
    summary: "A `tandem-lint: ignore` comment suppresses nothing.",
    explanation: "An ignore comment that no longer matches a finding (the statement changed, or the rule name is misspelt) hides nothing today, but it will silently hide a real problem if the statement changes again. No lock is involved. Remove the comment or correct the rule name.",
    safe_alternative: "-- only ignore what fires, with the reason\nALTER TABLE users DROP COLUMN legacy; -- tandem-lint: ignore drop-column (release 42 stopped reading it)",
    tandem: None,
    setup: crate::rules::USERS,
    bad: "-- tandem-lint: ignore create-index-without-concurrently\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);",
    good: "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);",
    bad_fails_with: None,
    check: Check::Linter,
};
