//! T017: a statement that takes a strong lock with no lock_timeout set before it.

use super::{Check, Level, Rule};
use crate::locks::{blocks_application, strongest_lock};
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T017",
    name: "missing-lock-timeout",
    level: Level::Warning,
    summary: "A statement that takes a lock blocking reads or writes runs without a lock_timeout.",
    explanation: "A statement that needs a SHARE, SHARE ROW EXCLUSIVE or ACCESS EXCLUSIVE lock waits in the lock queue behind any transaction already using the table, however long that runs; while it waits, every new query on the table, even a plain SELECT, queues behind it. The application stalls although the statement itself would take milliseconds. SET lock_timeout makes the statement give up instead (retry it later), and statement_timeout bounds how long it may run once it has the lock. Reported once per file, at the first such statement.",
    safe_alternative: "SET lock_timeout = '2s';\nSET statement_timeout = '30s';\nALTER TABLE users ADD COLUMN nickname text;\n-- on SQLSTATE 55P03 (lock_not_available) wait a moment and run it again",
    tandem: Some("# tandem runs every statement under lock_timeout and retries on 55P03\noperations:\n  - add_column:\n      table: users\n      column: {name: nickname, type: text, nullable: true}"),
    setup: crate::rules::USERS,
    bad: "ALTER TABLE users ADD COLUMN nickname text;",
    good: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN nickname text;",
    bad_fails_with: None,
    check: Check::Statement(check),
};

fn check(cx: &Cx) -> Option<String> {
    if cx.state.lock_timeout || cx.state.strong_lock_without_timeout {
        return None;
    }
    let (mode, table) = strongest_lock(&cx.stmt.kind)?;
    (blocks_application(mode) && !cx.state.is_new_relation(&table)).then(|| {
        format!(
            "this statement waits for the {} lock on {table} with no lock_timeout set: while it waits, every query on {table} queues behind it",
            mode.name()
        )
    })
}
