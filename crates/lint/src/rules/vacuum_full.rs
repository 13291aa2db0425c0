//! T019: `VACUUM FULL` rewrites the table under an ACCESS EXCLUSIVE lock.

use super::{Check, Hit, Level, Rule};
use crate::model::StmtKind;
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T019",
    name: "vacuum-full",
    level: Level::Error,
    summary: "VACUUM FULL rewrites the whole table while blocking every read and write.",
    explanation: "VACUUM FULL takes an ACCESS EXCLUSIVE lock on the table: it blocks every read and write while it copies the table and rebuilds its indexes, which takes as long as writing the table out again. Plain VACUUM takes a SHARE UPDATE EXCLUSIVE lock that lets reads and writes go on; to give space back to the operating system online, use an extension such as pg_repack or pg_squeeze.",
    safe_alternative: "VACUUM (ANALYZE) users;",
    tandem: None,
    setup: crate::rules::USERS,
    bad: "SET lock_timeout = '2s';\nVACUUM FULL users;",
    good: "VACUUM (ANALYZE) users;",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    match &cx.stmt.kind {
        StmtKind::Vacuum { full: true, tables }
            if (tables.is_empty() || !tables.iter().all(|t| cx.state.is_new(t))) =>
        {
            let names: Vec<&str> = tables.iter().map(|t| t.display.as_str()).collect();
            let list = if names.is_empty() {
                String::new()
            } else {
                format!(" {}", names.join(", "))
            };
            vec![Hit::new(format!(
                "VACUUM FULL {}rewrites the table under an ACCESS EXCLUSIVE lock: every read and write waits",
                if names.is_empty() { "of every table ".to_string() } else { format!("of {} ", names.join(", ")) }
            ))
            .instead(format!(
                "-- reclaims dead rows for reuse without a lock that blocks the application\nVACUUM (ANALYZE){list};"
            ))]
        }
        _ => Vec::new(),
    }
}
