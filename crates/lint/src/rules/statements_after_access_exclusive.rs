//! T018: more statements after an ACCESS EXCLUSIVE lock in the same transaction.

use super::{Check, Level, Rule};
use crate::context::counts_as_work;
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T018",
    name: "statements-after-access-exclusive",
    level: Level::Warning,
    summary: "Statements run after an ACCESS EXCLUSIVE lock in the same transaction extend how long it blocks everything.",
    explanation: "An ACCESS EXCLUSIVE lock blocks every read and write on its table, and it is held until the transaction ends, not until the statement that took it ends. Every further statement in the transaction (a backfill, an index build, a lock on another table) keeps the application blocked for its whole duration, and a second lock taken while holding the first invites deadlocks. Take the strong lock last, or commit right after it.",
    safe_alternative: "SET lock_timeout = '2s';\nBEGIN;\nALTER TABLE users ADD COLUMN nickname text;\nCOMMIT;\nUPDATE users SET nickname = name WHERE id BETWEEN 1 AND 1000;",
    tandem: Some("operations:\n  - add_column:\n      table: users\n      column: {name: nickname, type: text, nullable: true}\n      up: name"),
    setup: crate::rules::USERS,
    bad: "SET lock_timeout = '2s';\nBEGIN;\nALTER TABLE users ADD COLUMN nickname text;\nUPDATE users SET nickname = name WHERE id BETWEEN 1 AND 1000;\nCOMMIT;",
    good: "SET lock_timeout = '2s';\nBEGIN;\nALTER TABLE users ADD COLUMN nickname text;\nCOMMIT;\nUPDATE users SET nickname = name WHERE id BETWEEN 1 AND 1000;",
    bad_fails_with: None,
    check: Check::Statement(check),
};

fn check(cx: &Cx) -> Option<String> {
    let table = cx.state.access_exclusive.as_ref()?;
    (cx.state.statements_after_access_exclusive == 0 && counts_as_work(&cx.stmt.kind)).then(|| {
        format!(
            "this statement runs while the transaction still holds the ACCESS EXCLUSIVE lock on {table} taken earlier: reads and writes on {table} stay blocked until COMMIT"
        )
    })
}
