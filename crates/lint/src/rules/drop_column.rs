//! T014: dropping a column that the running application may still read.

use super::{each_action, ident, Check, Hit, Level, Rule};
use crate::model::AlterAction;
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T014",
    name: "drop-column",
    level: Level::Warning,
    summary: "Dropping a column breaks every running query that still names it, and cannot be rolled back.",
    explanation: "DROP COLUMN takes an ACCESS EXCLUSIVE lock on the table: it blocks every read and write until the transaction ends (the drop itself is quick, it only marks the column dropped). The risk is what follows: every query of an application version that still names the column fails, and the data is gone, so rolling the application back does not help. Drop a column only after no running version reads it, and say so with an ignore comment.",
    safe_alternative: "-- 1. Release an application version that no longer reads or writes users.legacy.\n-- 2. Check that nothing reads it (pg_stat_statements), then:\nSET lock_timeout = '2s';\nALTER TABLE users DROP COLUMN legacy;  -- tandem-lint: ignore drop-column",
    tandem: Some("operations:\n  - drop_column:\n      table: users\n      column: legacy\n      down: \"null\""),
    setup: crate::rules::USERS,
    bad: "SET lock_timeout = '2s';\nALTER TABLE users DROP COLUMN legacy;",
    good: "SET lock_timeout = '2s';\n-- release 42 stopped reading users.legacy\nALTER TABLE users DROP COLUMN legacy; -- tandem-lint: ignore drop-column",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    each_action(cx, |table, a, _| match a {
        AlterAction::DropColumn { column } => {
            let t = &table.display;
            Some(
                Hit::new(format!(
                    "dropping {t}.{column} breaks every running query that still uses it, and its data cannot be brought back"
                ))
                .instead(format!(
                    "-- 1. Release an application version that no longer reads or writes {t}.{column}.\n-- 2. Check that nothing reads it (pg_stat_statements), then:\nSET lock_timeout = '2s';\nALTER TABLE {t} DROP COLUMN {};",
                    ident(column)
                )),
            )
        }
        _ => None,
    })
}
