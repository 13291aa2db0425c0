//! T003: `ADD COLUMN ... NOT NULL` without a default fails on any table that has rows.

use super::{derived_name, each_action, ident, Check, Hit, Level, Rule};
use crate::model::AlterAction;
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T003",
    name: "add-column-not-null-without-default",
    level: Level::Error,
    summary: "Adding a NOT NULL column without a default fails as soon as the table has rows.",
    explanation: "ADD COLUMN takes an ACCESS EXCLUSIVE lock on the table: it blocks every read and write until the statement ends. With NOT NULL and no default, every existing row would hold NULL, so the statement fails on a table with data; and even on an empty table, the running application's INSERTs that do not name the column start failing.",
    safe_alternative: "ALTER TABLE users ADD COLUMN team_id bigint;\n-- backfill in batches, then:\nALTER TABLE users ADD CONSTRAINT users_team_id_not_null CHECK (team_id IS NOT NULL) NOT VALID;\nALTER TABLE users VALIDATE CONSTRAINT users_team_id_not_null;\nALTER TABLE users ALTER COLUMN team_id SET NOT NULL;\nALTER TABLE users DROP CONSTRAINT users_team_id_not_null;",
    tandem: Some("operations:\n  - add_column:\n      table: users\n      column: {name: team_id, type: bigint, nullable: false}\n      up: \"0\""),
    setup: crate::rules::USERS,
    bad: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN team_id bigint NOT NULL;",
    good: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN team_id bigint NOT NULL DEFAULT 0;",
    bad_fails_with: Some("contains null values"),
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    each_action(cx, |table, a, _| match a {
        AlterAction::AddColumn(c)
            if c.not_null && c.default.is_none() && !c.identity && !c.generated =>
        {
            let t = &table.display;
            let col = ident(&c.name);
            let name = ident(&derived_name(table, &c.name, "not_null"));
            Some(
                Hit::new(format!(
                    "column {} is added to {t} as NOT NULL without a default: this fails if the table has rows, and breaks INSERTs of the running application",
                    c.name
                ))
                .instead(format!(
                    "ALTER TABLE {t} ADD COLUMN {col} {};\n-- the application writes {col}; fill existing rows in batches, then:\nALTER TABLE {t} ADD CONSTRAINT {name} CHECK ({col} IS NOT NULL) NOT VALID;\nALTER TABLE {t} VALIDATE CONSTRAINT {name};\nALTER TABLE {t} ALTER COLUMN {col} SET NOT NULL;\nALTER TABLE {t} DROP CONSTRAINT {name};",
                    c.ty.display()
                )),
            )
        }
        _ => None,
    })
}
