//! T012: a UNIQUE or PRIMARY KEY constraint builds its index under an ACCESS EXCLUSIVE lock.

use super::{first_action, Check, Level, Rule};
use crate::model::{AlterAction, ConstraintKind};
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T012",
    name: "unique-without-index",
    level: Level::Error,
    summary: "ADD UNIQUE or PRIMARY KEY builds its index while holding an ACCESS EXCLUSIVE lock.",
    explanation: "ADD CONSTRAINT ... UNIQUE / PRIMARY KEY takes an ACCESS EXCLUSIVE lock on the table (blocks every read and write) and builds the index under it. Build the index first with CREATE UNIQUE INDEX CONCURRENTLY (which lets reads and writes go on), then attach it with ADD CONSTRAINT ... USING INDEX, which only needs the lock for an instant.",
    safe_alternative: "CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email);\nALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key;",
    tandem: Some("operations:\n  - alter_column:\n      table: users\n      column: email\n      unique: {name: users_email_key}\n      up: email\n      down: email"),
    setup: crate::rules::USERS,
    bad: "SET lock_timeout = '2s';\nALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);",
    good: "SET lock_timeout = '2s';\nCREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email);\nALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key;",
    bad_fails_with: None,
    check: Check::Statement(check),
};

fn check(cx: &Cx) -> Option<String> {
    first_action(cx, |table, a| match a {
        AlterAction::AddConstraint(c)
            if c.using_index.is_none()
                && matches!(c.kind, ConstraintKind::Unique | ConstraintKind::PrimaryKey) =>
        {
            let kind = if c.kind == ConstraintKind::Unique {
                "UNIQUE"
            } else {
                "PRIMARY KEY"
            };
            Some(format!(
                "{kind} constraint on {} builds its index under an ACCESS EXCLUSIVE lock: build it CONCURRENTLY and add the constraint USING INDEX",
                table.display
            ))
        }
        AlterAction::AddColumn(col)
            if col.primary_key
                || col
                    .constraints
                    .iter()
                    .any(|k| k.kind == ConstraintKind::Unique) =>
        {
            Some(format!(
                "column {} of {} is added with a unique index built under an ACCESS EXCLUSIVE lock",
                col.name, table.display
            ))
        }
        _ => None,
    })
}
