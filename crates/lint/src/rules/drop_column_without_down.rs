//! T030: a `drop_column` operation without `down`.

use super::{Check, Level, Rule};
use tandem_model::Operation;

pub const RULE: Rule = Rule {
    id: "T030",
    name: "drop-column-without-down",
    level: Level::Error,
    summary: "A drop_column operation without `down` leaves the old version's column unfilled by the new version's writes.",
    explanation: "Between start and complete, the old application version still reads and writes the column that drop_column hides from the new version. Rows the new version inserts get no value for it unless `down` says how to compute one; the old version then reads NULLs (or its INSERTs fail on a NOT NULL column), and a rollback keeps those NULLs. No lock is involved: this breaks the old version's data, not its availability.",
    safe_alternative: "operations:\n  - drop_column:\n      table: users\n      column: legacy\n      down: \"''\"",
    tandem: Some("operations:\n  - drop_column:\n      table: users\n      column: legacy\n      down: \"''\""),
    setup: crate::rules::USERS,
    bad: "operations:\n  - drop_column:\n      table: users\n      column: legacy\n",
    good: "operations:\n  - drop_column:\n      table: users\n      column: legacy\n      down: \"''\"\n",
    bad_fails_with: None,
    check: Check::Operation(check),
};

fn check(op: &Operation) -> Option<String> {
    match op {
        Operation::DropColumn(d) if d.down.trim().is_empty() => Some(format!(
            "drop_column of {}.{} has no `down`: rows the new version writes leave it empty for the old version",
            d.table, d.column
        )),
        _ => None,
    }
}
