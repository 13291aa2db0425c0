//! T010: validating a constraint in the transaction that added it NOT VALID keeps the strong lock.

use super::{each_action, ident, Check, Hit, Level, Rule};
use crate::model::AlterAction;
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T010",
    name: "validate-in-same-transaction",
    level: Level::Error,
    summary: "VALIDATE CONSTRAINT in the same transaction as its ADD ... NOT VALID gains nothing.",
    explanation: "ADD CONSTRAINT ... NOT VALID takes an ACCESS EXCLUSIVE lock (CHECK) or a SHARE ROW EXCLUSIVE lock (FOREIGN KEY) on the table; both are held until the transaction ends. Validating in the same transaction therefore scans every row while that lock still blocks reads or writes: exactly what NOT VALID was meant to avoid. Commit between the two.",
    safe_alternative: "BEGIN;\nALTER TABLE users ADD CONSTRAINT users_email_present CHECK (email <> '') NOT VALID;\nCOMMIT;\nALTER TABLE users VALIDATE CONSTRAINT users_email_present;",
    tandem: Some("operations:\n  - create_constraint:\n      table: users\n      name: users_email_present\n      type: check\n      columns: [email]\n      check: email <> ''\n      up: {email: \"coalesce(nullif(email, ''), 'unknown')\"}\n      down: {email: email}"),
    setup: crate::rules::USERS,
    bad: "SET lock_timeout = '2s';\nBEGIN;\nALTER TABLE users ADD CONSTRAINT users_email_present CHECK (email <> '') NOT VALID;\nALTER TABLE users VALIDATE CONSTRAINT users_email_present;\nCOMMIT;",
    good: "SET lock_timeout = '2s';\nBEGIN;\nALTER TABLE users ADD CONSTRAINT users_email_present CHECK (email <> '') NOT VALID;\nCOMMIT;\nALTER TABLE users VALIDATE CONSTRAINT users_email_present;",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    each_action(cx, |table, a, _| match a {
        AlterAction::ValidateConstraint { name }
            if cx.state.not_valid_in_transaction.contains(name) =>
        {
            let t = &table.display;
            Some(
                Hit::new(format!(
                    "constraint {name} on {t} is validated in the transaction that added it NOT VALID: the scan runs under the lock the ADD took"
                ))
                .instead(format!(
                    "COMMIT;  -- release the ADD's lock first\nALTER TABLE {t} VALIDATE CONSTRAINT {};  -- reads and writes go on",
                    ident(name)
                )),
            )
        }
        _ => None,
    })
}
