//! T035: an exclusion constraint added to an existing table builds its index and checks every
//! row under an ACCESS EXCLUSIVE lock, with no NOT VALID or USING INDEX way around it.

use super::{each_action, Check, Hit, Level, Rule};
use crate::model::{AlterAction, ConstraintKind};
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T035",
    name: "exclusion-constraint",
    level: Level::Error,
    summary: "Adding an EXCLUDE constraint to an existing table blocks every read and write while its index is built.",
    explanation: "ALTER TABLE ... ADD CONSTRAINT ... EXCLUDE takes an ACCESS EXCLUSIVE lock on the table (blocks every read and write) and holds it while it builds the constraint's index and checks every pair of conflicting rows. Unlike a CHECK or a foreign key it cannot be added NOT VALID, and unlike UNIQUE it cannot adopt an index built CONCURRENTLY (USING INDEX takes only unique b-tree indexes). On a table in use, create the constraint with the table (CREATE TABLE, then move the rows), or schedule it for a window where the table may be blocked for as long as the build takes on a copy of the data.",
    safe_alternative: "-- a new table carries the constraint from the start; move the rows in batches, then swap names\nCREATE TABLE bookings_new (LIKE bookings INCLUDING ALL,\n  EXCLUDE USING gist (during WITH &&));",
    tandem: None,
    setup: "CREATE TABLE bookings (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, room int NOT NULL, during tstzrange NOT NULL);\nINSERT INTO bookings (room, during) VALUES (1, tstzrange(now(), now() + interval '1 hour'));",
    bad: "SET lock_timeout = '2s';\nALTER TABLE bookings ADD CONSTRAINT bookings_no_overlap EXCLUDE USING gist (during WITH &&);",
    good: "CREATE TABLE bookings_new (LIKE bookings INCLUDING ALL,\n  EXCLUDE USING gist (during WITH &&));",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    each_action(cx, |table, a, clause| match a {
        AlterAction::AddConstraint(c) if c.kind == ConstraintKind::Exclusion => {
            let t = &table.display;
            let hit = Hit::new(format!(
                "EXCLUDE constraint {}on {t} builds its index and checks every row under an ACCESS EXCLUSIVE lock: no NOT VALID or CONCURRENTLY form exists",
                c.name.as_ref().map(|n| format!("{n} ")).unwrap_or_default()
            ));
            Some(match clause.text() {
                Some(text) => {
                    let def = text
                        .get(..3)
                        .filter(|p| p.eq_ignore_ascii_case("add"))
                        .map_or(text, |_| text[3..].trim_start());
                    hit.instead(format!(
                        "-- a new table carries the constraint from the start; move the rows in batches, then swap names\nCREATE TABLE {}_new (LIKE {t} INCLUDING ALL,\n  {def});",
                        table.name
                    ))
                }
                None => hit,
            })
        }
        _ => None,
    })
}
