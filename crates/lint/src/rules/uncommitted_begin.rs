//! T028: a BEGIN that the file never commits or rolls back.

use super::{Check, Level, Rule};
use crate::model::StmtKind;
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T028",
    name: "uncommitted-begin",
    level: Level::Error,
    summary: "A transaction is opened with BEGIN and never committed or rolled back in the file.",
    explanation: "Every lock taken after BEGIN is held until COMMIT or ROLLBACK. A file that opens a transaction and does not close it leaves that to whoever runs it next: a migration tool may commit it, roll it back at disconnect (losing the change), or keep the session and its locks (an ACCESS EXCLUSIVE lock blocks every read and write) open until something times out.",
    safe_alternative: "BEGIN;\nALTER TABLE users ADD COLUMN nickname text;\nCOMMIT;",
    tandem: None,
    setup: crate::rules::USERS,
    bad: "SET lock_timeout = '2s';\nBEGIN;\nALTER TABLE users ADD COLUMN nickname text;",
    good: "SET lock_timeout = '2s';\nBEGIN;\nALTER TABLE users ADD COLUMN nickname text;\nCOMMIT;",
    bad_fails_with: None,
    check: Check::Statement(check),
};

fn check(cx: &Cx) -> Option<String> {
    if cx.stmt.kind != StmtKind::Begin {
        return None;
    }
    let closed = cx.statements[cx.index + 1..]
        .iter()
        .find(|s| {
            matches!(
                s.kind,
                StmtKind::Begin | StmtKind::Commit | StmtKind::Rollback
            )
        })
        .is_some_and(|s| s.kind != StmtKind::Begin);
    (!closed).then(|| "this transaction is never committed or rolled back in the file".to_string())
}
