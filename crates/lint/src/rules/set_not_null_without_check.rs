//! T011: `SET NOT NULL` scans the table under ACCESS EXCLUSIVE unless a validated CHECK proves it.

use super::{derived_name, each_action, ident, Check, Hit, Level, Rule};
use crate::model::AlterAction;
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T011",
    name: "set-not-null-without-check",
    level: Level::Error,
    summary: "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock unless a validated CHECK (col IS NOT NULL) exists.",
    explanation: "ALTER COLUMN ... SET NOT NULL takes an ACCESS EXCLUSIVE lock on the table: it blocks every read and write while every row is checked for NULLs. From PostgreSQL 12 the scan is skipped when a validated CHECK (col IS NOT NULL) constraint already proves it; that check can be added NOT VALID and validated under a SHARE UPDATE EXCLUSIVE lock, which lets reads and writes go on.",
    safe_alternative: "ALTER TABLE users ADD CONSTRAINT users_email_not_null CHECK (email IS NOT NULL) NOT VALID;\nALTER TABLE users VALIDATE CONSTRAINT users_email_not_null;\nALTER TABLE users ALTER COLUMN email SET NOT NULL;  -- no scan: the check proves it\nALTER TABLE users DROP CONSTRAINT users_email_not_null;",
    tandem: Some("operations:\n  - alter_column:\n      table: users\n      column: email\n      nullable: false\n      up: coalesce(email, 'unknown@example.com')\n      down: email"),
    setup: crate::rules::USERS,
    bad: "SET lock_timeout = '2s';\nALTER TABLE users ALTER COLUMN email SET NOT NULL;",
    good: "SET lock_timeout = '2s';\nALTER TABLE users ADD CONSTRAINT users_email_not_null CHECK (email IS NOT NULL) NOT VALID;\nALTER TABLE users VALIDATE CONSTRAINT users_email_not_null;\nALTER TABLE users ALTER COLUMN email SET NOT NULL;\nALTER TABLE users DROP CONSTRAINT users_email_not_null;",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    each_action(cx, |table, a, _| match a {
        // Already NOT NULL (earlier in the run, or in the starting schema): nothing to scan.
        AlterAction::SetNotNull { column } if cx.state.is_not_null(table, column) => None,
        AlterAction::SetNotNull { column }
            if cx.options.pg_version < 12
                || !cx
                    .state
                    .validated_not_null
                    .contains(&(table.name.clone(), column.clone())) =>
        {
            let t = &table.display;
            let c = ident(column);
            if cx.options.pg_version < 12 {
                return Some(Hit::new(format!(
                    "SET NOT NULL on {t}.{column} scans every row under an ACCESS EXCLUSIVE lock (PostgreSQL {} cannot use a CHECK to skip the scan)",
                    cx.options.pg_version
                )));
            }
            let name = ident(&derived_name(table, column, "not_null"));
            Some(
                Hit::new(format!(
                    "SET NOT NULL on {t}.{column} scans every row under an ACCESS EXCLUSIVE lock: add and validate CHECK ({c} IS NOT NULL) first"
                ))
                .instead(format!(
                    "ALTER TABLE {t} ADD CONSTRAINT {name} CHECK ({c} IS NOT NULL) NOT VALID;\nALTER TABLE {t} VALIDATE CONSTRAINT {name};  -- reads and writes go on\nALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL;  -- no scan: the check proves it\nALTER TABLE {t} DROP CONSTRAINT {name};"
                )),
            )
        }
        _ => None,
    })
}
