//! T016: an UPDATE or DELETE of a whole table in one statement.

use super::{ident, Check, Hit, Level, Rule};
use crate::model::{Filter, StmtKind};
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T016",
    name: "unbatched-update-delete",
    level: Level::Warning,
    summary: "UPDATE or DELETE of every row (no WHERE, or one that every row matches) in one long transaction.",
    explanation: "UPDATE and DELETE take a ROW EXCLUSIVE lock on the table (reads and writes go on) but also lock every row they touch until the transaction ends: any application write to one of those rows waits for the whole statement. One statement over a whole table also writes a large burst of WAL (replicas fall behind) and leaves every old row version for VACUUM at once. A WHERE does not make it small when every row matches it: `new_col IS NULL` on a column the file just added without a default, a join condition alone (`FROM orgs WHERE users.org_id = orgs.id`), or `true`. Do it in short batches, each its own transaction.",
    safe_alternative: "-- repeat until it updates no row, with a short pause between batches\nUPDATE users SET email = lower(email)\nWHERE id IN (SELECT id FROM users WHERE email <> lower(email) LIMIT 1000);",
    tandem: Some("operations:\n  - alter_column:\n      table: users\n      column: email\n      up: lower(email)\n      down: email\n      check: {name: users_email_lower, constraint: email = lower(email)}"),
    setup: crate::rules::USERS,
    bad: "ALTER TABLE users ADD COLUMN email_lower text;\nUPDATE users SET email_lower = lower(email) WHERE email_lower IS NULL;",
    good: "ALTER TABLE users ADD COLUMN email_lower text;\nUPDATE users SET email_lower = lower(email)\nWHERE id IN (SELECT id FROM users WHERE email_lower IS NULL LIMIT 1000);",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    let (verb, table, alias, filters, where_span) = match &cx.stmt.kind {
        StmtKind::Update {
            table,
            alias,
            filters,
            where_span,
            ..
        } => ("UPDATE", table, alias, filters, where_span),
        StmtKind::Delete {
            table,
            alias,
            filters,
            where_span,
            ..
        } => ("DELETE", table, alias, filters, where_span),
        _ => return Vec::new(),
    };
    if cx.state.is_new(table) {
        return Vec::new();
    }
    // A "batched" loop in a PL/pgSQL body that never commits is one transaction.
    if cx.stmt.in_body.is_some_and(|b| b.loop_without_commit) {
        return vec![Hit::new(format!(
            "{verb} of {} in a loop that never commits: every batch runs in one transaction, which locks each row it touched until the block ends; COMMIT after each batch (in a DO block or procedure run outside a transaction)",
            table.display
        ))];
    }
    let Some(why) = matches_every_row(cx, &table.name, filters) else {
        return Vec::new();
    };
    let t = &table.display;
    let target = alias.as_deref().unwrap_or(&table.name);
    let text = cx.text();
    // The statement without its WHERE, and the condition, as written.
    let (head, condition) = match where_span {
        Some(w) => (
            text[..w.start - cx.stmt.span.start].trim_end(),
            Some(text[w.start - cx.stmt.span.start + 5..w.end - cx.stmt.span.start].trim()),
        ),
        None => (text, None),
    };
    let only_this_table = filters
        .iter()
        .all(|f| matches!(f, Filter::IsNull { .. } | Filter::AlwaysTrue));
    let instead = match condition {
        // Every term reads the table alone: select the next batch by the same condition.
        Some(cond) if only_this_table => format!(
            "-- repeat until it changes no row, each batch its own transaction (id: the table's key)\n{head}\nWHERE {target}.id IN (SELECT id FROM {t} WHERE {cond} LIMIT 1000);"
        ),
        Some(cond) => format!(
            "-- one range of keys at a time, each its own transaction (id: the table's key)\n{head}\nWHERE ({cond}) AND {target}.id BETWEEN 1 AND 1000;  -- then 1001 to 2000, and so on"
        ),
        None => format!(
            "-- one range of keys at a time, each its own transaction (id: the table's key)\n{head}\nWHERE {}.id BETWEEN 1 AND 1000;  -- then 1001 to 2000, and so on",
            ident(target)
        ),
    };
    vec![Hit::new(format!(
        "{verb} of every row of {t} in one statement{why}: locks each row until it ends; batch it"
    ))
    .at(where_span.map(|w| w.start))
    .instead(instead)]
}

/// Why the WHERE (if any) selects every row, or `None` when it may select fewer.
fn matches_every_row(cx: &Cx, table: &str, filters: &[Filter]) -> Option<String> {
    if filters.is_empty() {
        return Some(String::new());
    }
    let mut reasons = Vec::new();
    for f in filters {
        match f {
            Filter::AlwaysTrue => {}
            Filter::ColumnsEqual => reasons.push("a join condition matches every row".to_string()),
            // A column this file added without a default is NULL in every existing row.
            Filter::IsNull { column } => match cx
                .state
                .added_columns
                .get(&(table.to_string(), column.clone()))
            {
                Some(c) if c.default.is_none() && !c.identity && !c.generated => reasons.push(
                    format!("{column} IS NULL holds for every row: the file just added {column}"),
                ),
                _ => return None,
            },
            Filter::Other => return None,
        }
    }
    reasons.dedup();
    Some(if reasons.is_empty() {
        " (its WHERE is always true)".to_string()
    } else {
        format!(" ({})", reasons.join("; "))
    })
}
