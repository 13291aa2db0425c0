//! T004: a column whose default must be computed per row rewrites the whole table.

use super::{each_action, ident, Check, Hit, Level, Rule};
use crate::model::{AlterAction, DefaultKind};
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T004",
    name: "add-column-volatile-default",
    level: Level::Error,
    summary: "Adding a column with a volatile default (or any default before PostgreSQL 11) rewrites the table.",
    explanation: "ADD COLUMN takes an ACCESS EXCLUSIVE lock on the table: it blocks every read and write until the statement ends. A constant or stable default (from PostgreSQL 11) is stored once in the catalog and the statement is instant; a volatile default (random(), gen_random_uuid(), clock_timestamp(), nextval(), a serial or identity column, a stored generated column) is computed for every row, so the table is rewritten while the lock is held.",
    safe_alternative: "ALTER TABLE users ADD COLUMN token uuid;\nALTER TABLE users ALTER COLUMN token SET DEFAULT gen_random_uuid();\n-- then fill existing rows in batches:\nUPDATE users SET token = gen_random_uuid() WHERE id BETWEEN 1 AND 10000 AND token IS NULL;",
    tandem: Some("operations:\n  - add_column:\n      table: users\n      column: {name: token, type: uuid, default: gen_random_uuid(), nullable: false}\n      up: gen_random_uuid()"),
    setup: crate::rules::USERS,
    bad: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();",
    good: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN created_at timestamptz DEFAULT now();",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    each_action(cx, |table, a, _| {
        let AlterAction::AddColumn(c) = a else {
            return None;
        };
        let why = match &c.default {
            Some(DefaultKind::Volatile(f)) => {
                format!("its default calls the volatile function {f}()")
            }
            Some(DefaultKind::NonVolatile) if cx.options.pg_version < 11 => {
                format!(
                    "PostgreSQL {} writes every default into each row",
                    cx.options.pg_version
                )
            }
            _ if c.generated => "it is a stored generated column".to_string(),
            _ if c.identity => "it is an identity column".to_string(),
            _ if c.ty.name.ends_with("serial") => format!("{} fills it from a sequence", c.ty.name),
            _ => return None,
        };
        let hit = Hit::new(format!(
            "adding column {} to {} rewrites the table under an ACCESS EXCLUSIVE lock: {why}",
            c.name, table.display
        ));
        // The split is the same for every default: add the column bare, set the default for
        // new rows, fill the old ones in batches.
        let t = &table.display;
        let col = ident(&c.name);
        Some(match (&c.default_sql, c.generated || c.identity || c.ty.name.ends_with("serial")) {
            (Some(default), false) => hit.instead(format!(
                "ALTER TABLE {t} ADD COLUMN {col} {};\nALTER TABLE {t} ALTER COLUMN {col} SET DEFAULT {default};\n-- then fill existing rows in batches, each its own transaction:\nUPDATE {t} SET {col} = {default}\nWHERE id IN (SELECT id FROM {t} WHERE {col} IS NULL LIMIT 1000);  -- id: the table's key",
                c.ty.display()
            )),
            _ => hit,
        })
    })
}
