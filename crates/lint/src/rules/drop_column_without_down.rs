//! T030: a `drop_column` operation without `down`.

use super::{Check, Level, Rule};
use tandem_model::Operation;

pub const RULE: Rule = Rule {
    id: "T030",
    name: "drop-column-without-down",
    level: Level::Warning,
    summary: "A drop_column operation without `down` leaves the column NULL (or its default) for the old version in the rows the new version writes.",
    explanation: "Between start and complete, the old application version still reads and writes the column that drop_column hides from the new version. Rows the new version inserts get no value for it unless `down` says how to compute one: the old version reads NULL (or the column's default) there, and a rollback keeps it. For a nullable column whose NULL the old version already handles that is fine; when the old version needs a real value (a slug, a denormalised total), `down` computes it. A NOT NULL column without a default cannot be left out at all: `tandem validate` and `start` refuse such a drop without `down`. The linter reads the file alone and cannot tell which case this is, so this is a warning. No lock is involved.",
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
            "drop_column of {t}.{c} has no `down`: in rows the new version writes, the old version reads {c} as NULL (or its default); give `down` if it needs a value",
            t = d.table,
            c = d.column
        )),
        _ => None,
    }
}
