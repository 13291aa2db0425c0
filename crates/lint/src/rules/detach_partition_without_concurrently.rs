//! T026: `DETACH PARTITION` without `CONCURRENTLY` locks the parent table.

use super::{each_action, Check, Hit, Level, Rule};
use crate::model::AlterAction;
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T026",
    name: "detach-partition-without-concurrently",
    level: Level::Error,
    summary: "DETACH PARTITION without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on the partitioned table.",
    explanation: "ALTER TABLE ... DETACH PARTITION takes an ACCESS EXCLUSIVE lock on the parent table: it blocks every read and write on every partition, and waits behind any query running on the table while everything else queues behind it. From PostgreSQL 14, DETACH PARTITION ... CONCURRENTLY takes a SHARE UPDATE EXCLUSIVE lock on the parent, which lets reads and writes go on (it cannot run inside a transaction block). Its last step still takes an ACCESS EXCLUSIVE lock on the partition being detached, briefly, once the queries that were using it have finished: a query on that partition by its own name waits for that moment, while the partitioned table stays open.",
    safe_alternative: "ALTER TABLE events DETACH PARTITION events_2024 CONCURRENTLY;",
    tandem: None,
    setup: "CREATE TABLE events (id bigint, at date) PARTITION BY RANGE (at);\nCREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');",
    bad: "SET lock_timeout = '2s';\nALTER TABLE events DETACH PARTITION events_2024;",
    good: "ALTER TABLE events DETACH PARTITION events_2024 CONCURRENTLY;",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    each_action(cx, |table, a, clause| match a {
        AlterAction::DetachPartition {
            concurrently: false,
        } => {
            let hit = Hit::new(format!(
                "DETACH PARTITION without CONCURRENTLY blocks every read and write on {}{}",
                table.display,
                if cx.options.pg_version < 14 {
                    format!(
                        " (CONCURRENTLY needs PostgreSQL 14; this file targets {})",
                        cx.options.pg_version
                    )
                } else {
                    String::new()
                }
            ));
            Some(match clause.text() {
                Some(text) if cx.options.pg_version >= 14 => hit.instead(format!(
                    "-- outside any transaction block\nALTER TABLE {} {text} CONCURRENTLY;",
                    table.display
                )),
                _ => hit,
            })
        }
        _ => None,
    })
}
