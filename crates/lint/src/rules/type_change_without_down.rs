//! T031: an `alter_column` type change without `up` and `down`.

use super::{Check, Level, Rule};
use tandem_model::Operation;

pub const RULE: Rule = Rule {
    id: "T031",
    name: "type-change-without-down",
    level: Level::Error,
    summary: "An alter_column type change needs `up` and `down` to convert between the two versions' columns.",
    explanation: "While the migration is active, the old version writes the column in the old type and the new version in the new type; tandem keeps the two columns in step with `up` (old to new) and `down` (new to old). Without them the other version's column stays empty for the rows one version writes, and rollback loses those writes. No lock is involved.",
    safe_alternative: "operations:\n  - alter_column:\n      table: users\n      column: org_id\n      type: text\n      up: org_id::text\n      down: org_id::bigint",
    tandem: Some("operations:\n  - alter_column:\n      table: users\n      column: org_id\n      type: text\n      up: org_id::text\n      down: org_id::bigint"),
    setup: crate::rules::USERS,
    bad: "operations:\n  - alter_column:\n      table: users\n      column: org_id\n      type: text\n",
    good: "operations:\n  - alter_column:\n      table: users\n      column: org_id\n      type: text\n      up: org_id::text\n      down: org_id::bigint\n",
    bad_fails_with: None,
    check: Check::Operation(check),
};

fn check(op: &Operation) -> Option<String> {
    match op {
        Operation::AlterColumn(a)
            if a.data_type.is_some() && (a.up.trim().is_empty() || a.down.trim().is_empty()) =>
        {
            Some(format!(
                "alter_column changes the type of {}.{} without {}",
                a.table,
                a.column,
                match (a.up.trim().is_empty(), a.down.trim().is_empty()) {
                    (true, true) => "`up` and `down`",
                    (true, false) => "`up`",
                    _ => "`down`",
                }
            ))
        }
        _ => None,
    }
}
