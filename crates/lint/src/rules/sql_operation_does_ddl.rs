//! T032: a `sql` operation doing DDL that a tandem operation does safely.

use super::{Check, Level, Rule};
use crate::model::{AlterAction, StmtKind};
use tandem_model::Operation;

pub const RULE: Rule = Rule {
    id: "T032",
    name: "sql-operation-does-ddl",
    level: Level::Warning,
    summary: "A raw `sql` operation does a schema change that a tandem operation does without breaking either version.",
    explanation: "A `sql` operation runs as written at start: the old application version sees its effect at once, no version schema hides it, no trigger keeps the two versions' writes in step, and rollback only has the `down` you wrote. The dedicated operations (add_column, drop_column, rename_column, alter_column, create_index, create_constraint, ...) do the same change with the expand/contract discipline and the right locks.",
    safe_alternative: "operations:\n  - rename_column:\n      table: users\n      from: name\n      to: full_name",
    tandem: Some("operations:\n  - rename_column:\n      table: users\n      from: name\n      to: full_name"),
    setup: crate::rules::USERS,
    bad: "operations:\n  - sql:\n      up: ALTER TABLE users RENAME COLUMN name TO full_name\n      down: ALTER TABLE users RENAME COLUMN full_name TO name\n",
    good: "operations:\n  - sql:\n      up: CREATE TYPE mood AS ENUM ('happy', 'sad')\n      down: DROP TYPE IF EXISTS mood\n",
    bad_fails_with: None,
    check: Check::Operation(check),
};

fn check(op: &Operation) -> Option<String> {
    let Operation::Sql(sql) = op else {
        return None;
    };
    let parsed = crate::parse::parse(&sql.up).ok()?;
    parsed.statements.iter().find_map(|s| {
        let use_op = match &s.kind {
            StmtKind::RenameColumn { .. } => "rename_column",
            StmtKind::RenameTable { .. } => "rename_table",
            StmtKind::CreateIndex { .. } => "create_index",
            StmtKind::DropIndex { .. } => "drop_index",
            StmtKind::DropTable { .. } => "drop_table",
            StmtKind::CreateTable { .. } => "create_table",
            StmtKind::AlterTable { actions, .. } => actions.iter().find_map(|a| match a {
                AlterAction::AddColumn(_) => Some("add_column"),
                AlterAction::DropColumn { .. } => Some("drop_column"),
                AlterAction::AlterType { .. }
                | AlterAction::SetNotNull { .. }
                | AlterAction::DropNotNull { .. }
                | AlterAction::SetDefault { .. } => Some("alter_column"),
                AlterAction::AddConstraint(_) => Some("create_constraint"),
                _ => None,
            })?,
            _ => return None,
        };
        Some(format!("this `sql` operation does what `{use_op}` does safely for both versions; use `{use_op}`"))
    })
}
