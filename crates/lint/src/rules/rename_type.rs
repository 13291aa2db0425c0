//! T034: renaming a type, a domain or an enum value that the running version still uses.

use super::{Check, Hit, Level, Rule};
use crate::model::StmtKind;
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T034",
    name: "rename-type",
    level: Level::Error,
    summary: "Renaming a type or an enum value breaks the running version's queries that name it.",
    explanation: "ALTER TYPE ... RENAME TO and ALTER TYPE ... RENAME VALUE are quick catalog changes (an ACCESS EXCLUSIVE lock on the type only), but the application version that is running still writes the old names: a cast such as 'pending'::order_status or $1::order_status fails with \"invalid input value for enum\" (22P02) or \"type does not exist\" (42704), and so does every stored function, default or check that spells the old value. Add the new value next to the old one (ALTER TYPE ... ADD VALUE), move the rows in batches once every running version writes the new value, and stop using the old one; a type keeps its name until no running version names it.",
    safe_alternative: "ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'shipped';\n-- release a version that writes 'shipped' and still reads 'sent', then, in batches:\nUPDATE orders SET status = 'shipped' WHERE id IN (SELECT id FROM orders WHERE status = 'sent' LIMIT 1000);",
    tandem: None,
    setup: "CREATE TYPE order_status AS ENUM ('new', 'sent');\nCREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, status order_status NOT NULL DEFAULT 'new');\nINSERT INTO orders (status) VALUES ('sent');",
    bad: "ALTER TYPE order_status RENAME VALUE 'sent' TO 'shipped';",
    good: "ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'shipped';",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    let bare = |name: &str| name.rsplit('.').next().unwrap_or(name).to_string();
    let hit = match &cx.stmt.kind {
        StmtKind::RenameEnumValue {
            type_name,
            from,
            to,
        } if !cx.state.created_types.contains(&bare(type_name)) => {
            let lit = |v: &str| tandem_model::ident::quote_literal(v);
            Hit::new(format!(
                "renaming value {} of {type_name} to {}: the running version's writes of {} fail",
                lit(from),
                lit(to),
                lit(from)
            ))
            .instead(format!(
                "ALTER TYPE {type_name} ADD VALUE IF NOT EXISTS {};\n-- once every running version writes {} (and still reads {}), move the rows in batches\n-- and stop using {}",
                lit(to),
                lit(to),
                lit(from),
                lit(from)
            ))
        }
        StmtKind::RenameType { name, to } if !cx.state.created_types.contains(&bare(name)) => {
            Hit::new(format!(
                "renaming type {name} to {to}: the running version's casts and functions that name {name} fail"
            ))
            .instead(format!(
                "-- keep the name {name} while a running version uses it; rename it in a later migration,\n-- after a release that no longer names it:\nALTER TYPE {name} RENAME TO {to};"
            ))
        }
        _ => return Vec::new(),
    };
    vec![hit]
}
