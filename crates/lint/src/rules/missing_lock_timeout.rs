//! T017: a statement that takes a strong lock with no lock_timeout set before it.

use super::{Check, Hit, Level, Rule};
use crate::locks::{blocks_application, referenced_locks, strongest_lock};
use crate::model::StmtKind;
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T017",
    name: "missing-lock-timeout",
    level: Level::Warning,
    summary: "A statement that takes a lock blocking reads or writes runs without a lock_timeout.",
    explanation: "A statement that needs a SHARE, SHARE ROW EXCLUSIVE or ACCESS EXCLUSIVE lock waits in the lock queue behind any transaction already using the table, however long that runs; while it waits, every new query on the table, even a plain SELECT, queues behind it. The application stalls although the statement itself would take milliseconds. SET lock_timeout makes the statement give up instead (retry it later), and statement_timeout bounds how long it may run once it has the lock. A new foreign key counts too: it takes SHARE ROW EXCLUSIVE on the table it references (no INSERT, UPDATE or DELETE there), also when added NOT VALID and also from a CREATE TABLE. Reported once per file, at the first such statement, and again at a foreign key whose referenced table no earlier finding named.",
    safe_alternative: "SET lock_timeout = '2s';\nSET statement_timeout = '30s';\nALTER TABLE users ADD COLUMN nickname text;\n-- on SQLSTATE 55P03 (lock_not_available) wait a moment and run it again",
    tandem: Some("# tandem runs every statement under lock_timeout and retries on 55P03\noperations:\n  - add_column:\n      table: users\n      column: {name: nickname, type: text, nullable: true}"),
    setup: crate::rules::USERS,
    bad: "ALTER TABLE users ADD COLUMN nickname text;",
    good: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN nickname text;",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    if cx.state.lock_timeout {
        return Vec::new();
    }
    // Once per file, at the first such statement; and again at a foreign key whose referenced
    // table no earlier warning covered, since that is often the busiest table of all.
    let first = !cx.state.strong_lock_without_timeout;
    // The relation as the lock names it: DROP INDEX and REINDEX INDEX lock the index's table.
    let subject = |name: &str| match &cx.stmt.kind {
        StmtKind::DropIndex { .. } | StmtKind::Reindex { index: true, .. } => {
            format!("the table of index {name}")
        }
        _ => name.to_string(),
    };
    let own = strongest_lock(&cx.stmt.kind)
        .filter(|(mode, table)| blocks_application(*mode) && !cx.state.is_new_relation(table))
        .filter(|_| first)
        .map(|(mode, table)| (mode, subject(&table), false));
    let referenced = referenced_locks(&cx.stmt.kind)
        .into_iter()
        .find(|(_, table)| {
            !cx.state.is_new_relation(table)
                && (first || !cx.state.locked_without_timeout.contains(table))
        })
        .map(|(mode, table)| (mode, table, true));
    let also = match (&own, &referenced) {
        (Some(_), Some((_, other, _))) => format!(
            " (and for the SHARE ROW EXCLUSIVE lock on {other}, the table its foreign key references)"
        ),
        _ => String::new(),
    };
    let Some((mode, what, via_fk)) = own.or(referenced) else {
        return Vec::new();
    };
    let message = if via_fk {
        format!(
            "this statement's foreign key waits for the {} lock on the table it references, {what}, with no lock_timeout set: while it waits, every write to {what} queues behind it",
            mode.name()
        )
    } else {
        format!(
            "this statement waits for the {} lock on {what}{also} with no lock_timeout set: while it waits, every query on {what} queues behind it",
            mode.name()
        )
    };
    vec![Hit::new(message).instead(format!(
        "SET lock_timeout = '2s';\n{};\n-- on SQLSTATE 55P03 (lock_not_available) wait a moment and run it again",
        cx.text()
    ))]
}
