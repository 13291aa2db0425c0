//! T012: a UNIQUE or PRIMARY KEY constraint builds its index under an ACCESS EXCLUSIVE lock.

use super::{derived_name, each_action, ident, Check, Hit, Level, Rule};
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
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    each_action(cx, |table, a, _| {
        let t = &table.display;
        let instead = |kind: &str, name: &str, columns: &[String]| {
            let cols = columns
                .iter()
                .map(|c| ident(c))
                .collect::<Vec<_>>()
                .join(", ");
            let name = ident(name);
            format!(
                "CREATE UNIQUE INDEX CONCURRENTLY {name} ON {t} ({cols});\n-- outside any transaction block; then, briefly:\nALTER TABLE {t} ADD CONSTRAINT {name} {kind} USING INDEX {name};"
            )
        };
        match a {
            AlterAction::AddConstraint(c)
                if c.using_index.is_none()
                    && matches!(c.kind, ConstraintKind::Unique | ConstraintKind::PrimaryKey) =>
            {
                let (kind, label) = if c.kind == ConstraintKind::Unique {
                    ("UNIQUE", "key")
                } else {
                    ("PRIMARY KEY", "pkey")
                };
                let name = c.name.clone().unwrap_or_else(|| match c.kind {
                    ConstraintKind::Unique => derived_name(
                        table,
                        &crate::convert::names::columns_part(&c.columns),
                        label,
                    ),
                    _ => crate::convert::names::object_name(&table.name, None, label),
                });
                Some(
                    Hit::new(format!(
                        "{kind} constraint on {t} builds its index under an ACCESS EXCLUSIVE lock: build it CONCURRENTLY and add the constraint USING INDEX"
                    ))
                    .instead(instead(kind, &name, &c.columns)),
                )
            }
            AlterAction::AddColumn(col)
                if col.primary_key
                    || col
                        .constraints
                        .iter()
                        .any(|k| k.kind == ConstraintKind::Unique) =>
            {
                let (kind, label) = if col.primary_key {
                    ("PRIMARY KEY", "pkey")
                } else {
                    ("UNIQUE", "key")
                };
                let name = if col.primary_key {
                    crate::convert::names::object_name(&table.name, None, label)
                } else {
                    derived_name(table, &col.name, label)
                };
                Some(
                    Hit::new(format!(
                        "column {} of {t} is added with a unique index built under an ACCESS EXCLUSIVE lock",
                        col.name
                    ))
                    .instead(format!(
                        "ALTER TABLE {t} ADD COLUMN {} {};\n{}",
                        ident(&col.name),
                        col.ty.display(),
                        instead(kind, &name, std::slice::from_ref(&col.name))
                    )),
                )
            }
            _ => None,
        }
    })
}
