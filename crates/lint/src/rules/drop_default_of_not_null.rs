//! T033: `DROP DEFAULT` on a NOT NULL column: the running version's INSERTs that leave the
//! column out start failing.

use super::{each_action, ident, Check, Hit, Level, Rule};
use crate::model::AlterAction;
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T033",
    name: "drop-default-of-not-null",
    level: Level::Error,
    summary: "Dropping the default of a NOT NULL column makes the running version's INSERTs fail.",
    explanation: "A common way to add a NOT NULL column is ADD COLUMN ... NOT NULL DEFAULT x, then DROP DEFAULT so that new code must give a value. But the application version that is running does not know the column: its INSERTs leave it out, and once the default is gone each of them fails with a not-null violation (SQLSTATE 23502) until the new version is fully rolled out. Keep the default until no running version inserts without the column, and drop it in a later migration. Reported when the file itself made the column NOT NULL (the linter does not see the live schema).",
    safe_alternative: "ALTER TABLE users ADD COLUMN plan text NOT NULL DEFAULT 'free';\n-- in a later migration, once every running version writes plan:\nALTER TABLE users ALTER COLUMN plan DROP DEFAULT;",
    tandem: Some("operations:\n  - add_column:\n      table: users\n      column: {name: plan, type: text, default: \"'free'\"}"),
    setup: crate::rules::USERS,
    bad: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN plan text NOT NULL DEFAULT 'free';\nALTER TABLE users ALTER COLUMN plan DROP DEFAULT;",
    good: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN plan text NOT NULL DEFAULT 'free';",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    each_action(cx, |table, a, _| match a {
        AlterAction::DropDefault { column }
            if cx
                .state
                .not_null_columns
                .contains(&(table.name.clone(), column.clone())) =>
        {
            let t = &table.display;
            Some(
                Hit::new(format!(
                    "{t}.{column} is NOT NULL and this drops its default: every INSERT of the running version that leaves {column} out fails"
                ))
                .instead(format!(
                    "-- keep the default now; in a later migration, once every running version writes {column}:\nALTER TABLE {t} ALTER COLUMN {} DROP DEFAULT;",
                    ident(column)
                )),
            )
        }
        _ => None,
    })
}
