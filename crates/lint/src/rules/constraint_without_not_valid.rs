//! T009: a foreign key or CHECK added without `NOT VALID` scans the table under a lock.

use super::{first_action, Check, Level, Rule};
use crate::model::{AlterAction, ConstraintKind};
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T009",
    name: "constraint-without-not-valid",
    level: Level::Error,
    summary: "A FOREIGN KEY or CHECK added without NOT VALID checks every row while holding a lock.",
    explanation: "ADD CONSTRAINT ... CHECK takes an ACCESS EXCLUSIVE lock on the table (blocks every read and write); ADD CONSTRAINT ... FOREIGN KEY takes a SHARE ROW EXCLUSIVE lock on the table and on the referenced table (blocks every INSERT, UPDATE and DELETE on both). Either lock is held while every existing row is checked, which on a large table takes a long time. Added NOT VALID, the constraint is only recorded (a brief lock), and VALIDATE CONSTRAINT checks the rows later under a SHARE UPDATE EXCLUSIVE lock that lets reads and writes go on.",
    safe_alternative: "ALTER TABLE users ADD CONSTRAINT users_org_fk FOREIGN KEY (org_id) REFERENCES orgs (id) NOT VALID;\n-- in a later transaction:\nALTER TABLE users VALIDATE CONSTRAINT users_org_fk;",
    tandem: Some("operations:\n  - create_constraint:\n      table: users\n      name: users_org_fk\n      type: foreign_key\n      columns: [org_id]\n      references: {table: orgs, columns: [id]}\n      up: {org_id: org_id}\n      down: {org_id: org_id}"),
    setup: crate::rules::USERS,
    bad: "SET lock_timeout = '2s';\nALTER TABLE users ADD CONSTRAINT users_org_fk FOREIGN KEY (org_id) REFERENCES orgs (id);",
    good: "SET lock_timeout = '2s';\nALTER TABLE users ADD CONSTRAINT users_org_fk FOREIGN KEY (org_id) REFERENCES orgs (id) NOT VALID;\nALTER TABLE users VALIDATE CONSTRAINT users_org_fk;",
    bad_fails_with: None,
    check: Check::Statement(check),
};

fn check(cx: &Cx) -> Option<String> {
    first_action(cx, |table, a| {
        match a {
        AlterAction::AddConstraint(c)
            if !c.not_valid
                && matches!(c.kind, ConstraintKind::Check | ConstraintKind::ForeignKey) =>
        {
            let kind = if c.kind == ConstraintKind::Check {
                "CHECK"
            } else {
                "FOREIGN KEY"
            };
            Some(format!(
                "{kind} constraint {}on {} is added without NOT VALID: every row is checked while the lock is held",
                c.name.as_ref().map(|n| format!("{n} ")).unwrap_or_default(),
                table.display
            ))
        }
        // A new column's inline REFERENCES or CHECK is validated against every row at once.
        AlterAction::AddColumn(col) => col
            .constraints
            .iter()
            .find(|c| matches!(c.kind, ConstraintKind::Check | ConstraintKind::ForeignKey))
            .map(|c| {
                format!(
                    "column {} is added to {} with an inline {} constraint, which is checked against every row while the lock is held; add the column, then the constraint NOT VALID",
                    col.name,
                    table.display,
                    if c.kind == ConstraintKind::Check { "CHECK" } else { "REFERENCES" }
                )
            }),
        _ => None,
    }
    })
}
