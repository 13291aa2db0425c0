//! T022: serial columns and integer primary keys.

use super::{column_types, Check, Hit, Level, Rule};
use crate::model::{ConstraintKind, StmtKind};
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T022",
    name: "prefer-bigint-identity",
    level: Level::Warning,
    summary: "Use bigint GENERATED ... AS IDENTITY for keys, not serial or an integer primary key.",
    explanation: "An integer (int4) key runs out at 2,147,483,647 rows, and widening it later to bigint rewrites the table and every index under an ACCESS EXCLUSIVE lock that blocks every read and write, on what is by then a large table. serial also leaves the sequence owned loosely (its permissions and ownership are separate from the table's); an identity column is the standard form.",
    safe_alternative: "CREATE TABLE events (\n  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n  payload jsonb\n);",
    tandem: Some("operations:\n  - create_table:\n      name: events\n      columns:\n        - {name: id, type: bigint, pk: true, generated: {identity: {user_specified_values: ALWAYS}}}\n        - {name: payload, type: jsonb, nullable: true}"),
    setup: "",
    bad: "CREATE TABLE events (\n  id serial PRIMARY KEY,\n  payload jsonb\n);",
    good: "CREATE TABLE events (\n  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n  payload jsonb\n);",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    let table_pk: Vec<&str> = match &cx.stmt.kind {
        StmtKind::CreateTable { constraints, .. } => constraints
            .iter()
            .filter(|c| c.kind == ConstraintKind::PrimaryKey)
            .flat_map(|c| c.columns.iter().map(String::as_str))
            .collect(),
        _ => Vec::new(),
    };
    column_types(cx.stmt).into_iter().filter_map(|(name, ty, col)| {
        if matches!(ty.name.as_str(), "serial" | "serial4" | "smallserial" | "serial2") {
            return Some(format!(
                "column {name} is {}: use bigint GENERATED ALWAYS AS IDENTITY",
                ty.name
            ));
        }
        let is_pk = col.is_some_and(|c| c.primary_key) || table_pk.contains(&name);
        (is_pk && matches!(ty.name.as_str(), "int4" | "int2")).then(|| {
            format!(
                "primary key column {name} is {}: it runs out at {} rows, and widening it later rewrites the table",
                ty.display(),
                if ty.name == "int2" { "32,767" } else { "2,147,483,647" }
            )
        })
    })
    .map(Hit::new)
    .collect()
}
