//! T009: a foreign key or CHECK added without `NOT VALID` scans the table under a lock.

use super::{derived_name, each_action, ident, named_add, Check, Hit, Level, Rule};
use crate::model::{AlterAction, ConstraintKind, ConstraintSpec, TableName};
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T009",
    name: "constraint-without-not-valid",
    level: Level::Error,
    summary: "A FOREIGN KEY or CHECK added without NOT VALID checks every row while holding a lock.",
    explanation: "ADD CONSTRAINT ... CHECK takes an ACCESS EXCLUSIVE lock on the table (blocks every read and write); ADD CONSTRAINT ... FOREIGN KEY takes a SHARE ROW EXCLUSIVE lock on the table and on the referenced table (blocks every INSERT, UPDATE and DELETE on both). Either lock is held while every existing row is checked, which on a large table takes a long time. Added NOT VALID, the constraint is only recorded (a brief lock), and VALIDATE CONSTRAINT checks the rows later under a SHARE UPDATE EXCLUSIVE lock that lets reads and writes go on. Each constraint of the statement is reported.",
    safe_alternative: "ALTER TABLE users ADD CONSTRAINT users_org_fk FOREIGN KEY (org_id) REFERENCES orgs (id) NOT VALID;\n-- in a later transaction:\nALTER TABLE users VALIDATE CONSTRAINT users_org_fk;",
    tandem: Some("operations:\n  - create_constraint:\n      table: users\n      name: users_org_fk\n      type: foreign_key\n      columns: [org_id]\n      references: {table: orgs, columns: [id]}\n      up: {org_id: org_id}\n      down: {org_id: org_id}"),
    setup: crate::rules::USERS,
    bad: "SET lock_timeout = '2s';\nALTER TABLE users\n  ADD CONSTRAINT users_org_fk FOREIGN KEY (org_id) REFERENCES orgs (id),\n  ADD CONSTRAINT users_email_at CHECK (email LIKE '%@%');",
    good: "SET lock_timeout = '2s';\nALTER TABLE users\n  ADD CONSTRAINT users_org_fk FOREIGN KEY (org_id) REFERENCES orgs (id) NOT VALID,\n  ADD CONSTRAINT users_email_at CHECK (email LIKE '%@%') NOT VALID;\nALTER TABLE users VALIDATE CONSTRAINT users_org_fk;\nALTER TABLE users VALIDATE CONSTRAINT users_email_at;",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

/// The name PostgreSQL would give an unnamed constraint of `table` (for a CHECK, the name
/// of the first column it uses, which only an inline check tells for sure).
fn name_of(table: &TableName, c: &ConstraintSpec, column: Option<&str>) -> String {
    if let Some(n) = &c.name {
        return n.clone();
    }
    let label = if c.kind == ConstraintKind::ForeignKey {
        "fkey"
    } else {
        "check"
    };
    let fk_columns = (c.kind == ConstraintKind::ForeignKey)
        .then(|| c.expr.as_deref().map(|e| e.replace(", ", "_")))
        .flatten();
    match column.map(str::to_string).or(fk_columns) {
        Some(col) => derived_name(table, &col, label),
        None => crate::convert::names::object_name(&table.name, None, label),
    }
}

/// The lock the constraint holds while it checks the rows, and what that blocks.
fn lock_held(table: &TableName, c: &ConstraintSpec) -> String {
    match (&c.kind, &c.references) {
        (ConstraintKind::ForeignKey, Some((other, _))) if other.name != table.name => format!(
            "SHARE ROW EXCLUSIVE locks on {} and {} are held (no INSERT, UPDATE or DELETE on either)",
            table.display, other.display
        ),
        (ConstraintKind::ForeignKey, _) => format!(
            "a SHARE ROW EXCLUSIVE lock on {} is held (no INSERT, UPDATE or DELETE)",
            table.display
        ),
        _ => format!(
            "an ACCESS EXCLUSIVE lock on {} is held (no reads or writes)",
            table.display
        ),
    }
}

fn check(cx: &Cx) -> Vec<Hit> {
    each_action(cx, |table, a, clause| match a {
        AlterAction::AddConstraint(c)
            if !c.not_valid
                && matches!(c.kind, ConstraintKind::Check | ConstraintKind::ForeignKey) =>
        {
            let kind = if c.kind == ConstraintKind::Check {
                "CHECK"
            } else {
                "FOREIGN KEY"
            };
            let name = name_of(table, c, None);
            let message = format!(
                "{kind} constraint {}on {} is added without NOT VALID: every row is checked while {}",
                c.name.as_ref().map(|n| format!("{n} ")).unwrap_or_default(),
                table.display,
                lock_held(table, c)
            );
            let hit = Hit::new(message);
            Some(match clause.text() {
                Some(text) => hit.instead(format!(
                    "ALTER TABLE {t} {} NOT VALID;\n-- then, in a later transaction (reads and writes go on):\nALTER TABLE {t} VALIDATE CONSTRAINT {};",
                    named_add(text, &name),
                    ident(&name),
                    t = table.display
                )),
                None => hit,
            })
        }
        // A new column's inline REFERENCES or CHECK is validated against every row at once.
        AlterAction::AddColumn(col) => {
            let inline: Vec<&ConstraintSpec> = col
                .constraints
                .iter()
                .filter(|c| matches!(c.kind, ConstraintKind::Check | ConstraintKind::ForeignKey))
                .collect();
            let first = inline.first()?;
            let mut sql = format!(
                "ALTER TABLE {t} ADD COLUMN {} {};",
                ident(&col.name),
                col.ty.display(),
                t = table.display
            );
            let mut validate = String::new();
            for c in &inline {
                let name = name_of(table, c, Some(&col.name));
                let Some(def) = &c.as_table_constraint else {
                    continue;
                };
                sql.push_str(&format!(
                    "\nALTER TABLE {t} ADD CONSTRAINT {} {def} NOT VALID;",
                    ident(&name),
                    t = table.display
                ));
                validate.push_str(&format!(
                    "\nALTER TABLE {t} VALIDATE CONSTRAINT {};",
                    ident(&name),
                    t = table.display
                ));
            }
            sql.push_str("\n-- then, in a later transaction:");
            sql.push_str(&validate);
            Some(
                Hit::new(format!(
                    "column {} is added to {} with an inline {} constraint, which is checked against every row while {}; add the column, then the constraint NOT VALID",
                    col.name,
                    table.display,
                    if first.kind == ConstraintKind::Check { "CHECK" } else { "REFERENCES" },
                    lock_held(table, first)
                ))
                .instead(sql),
            )
        }
        _ => None,
    })
}
