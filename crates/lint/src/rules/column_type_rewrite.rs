//! T013: a column type change that rewrites the table (and not the ones that don't).

use super::{each_action, ident, Check, Hit, Level, Rule};
use crate::model::{AlterAction, TypeSpec};
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T013",
    name: "column-type-rewrite",
    level: Level::Error,
    summary: "Changing a column's type rewrites the table and its indexes, unless the new type is binary-compatible.",
    explanation: "ALTER COLUMN ... TYPE takes an ACCESS EXCLUSIVE lock on the table: it blocks every read and write until the statement ends. Most type changes rewrite every row and rebuild every index under that lock. A few do not: varchar(n) to varchar(m) with m >= n, to varchar or to text; text to varchar; numeric(p,s) to numeric(p',s) with p' >= p, or to unconstrained numeric; varbit(n) to a wider varbit; cidr to inet. Those only touch the catalog.",
    safe_alternative: "-- Expand: a new column of the new type, kept in step by a trigger, backfilled in batches\nALTER TABLE users ADD COLUMN org_id_new bigint;\n-- Contract, once every version reads the new column:\nALTER TABLE users DROP COLUMN org_id;\nALTER TABLE users RENAME COLUMN org_id_new TO org_id;",
    tandem: Some("operations:\n  - alter_column:\n      table: users\n      column: org_id\n      type: text\n      up: org_id::text\n      down: org_id::bigint"),
    setup: crate::rules::USERS,
    bad: "SET lock_timeout = '2s';\nALTER TABLE users ALTER COLUMN org_id TYPE integer;",
    good: "SET lock_timeout = '2s';\nALTER TABLE users ALTER COLUMN email TYPE varchar;",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    each_action(cx, |table, a, _| {
        let AlterAction::AlterType { column, ty } = a else {
            return None;
        };
        let t = &table.display;
        let new = ident(&format!("{column}_new"));
        let instead = format!(
            "-- Expand: a new column of the new type, kept in step by a trigger, backfilled in batches\nALTER TABLE {t} ADD COLUMN {new} {};\n-- Contract, once every version reads the new column:\nALTER TABLE {t} DROP COLUMN {};\nALTER TABLE {t} RENAME COLUMN {new} TO {};",
            ty.display(),
            ident(column),
            ident(column)
        );
        let old = cx
            .state
            .column_types
            .get(&(table.name.clone(), column.clone()));
        match old {
            Some(old) if !rewrites(old, ty) => None,
            Some(old) => Some(Hit::new(format!(
                "changing {}.{column} from {} to {} rewrites the table and its indexes under an ACCESS EXCLUSIVE lock",
                table.display,
                old.display(),
                ty.display()
            )).instead(instead)),
            // The file does not say what the column is now. A change to text or to varchar or
            // numeric without a limit is the common widening and rewrites nothing from the types
            // it widens; anything else is reported with what was assumed.
            None if matches!(ty.name.as_str(), "text" | "varchar" | "numeric") && ty.mods.is_empty() && !ty.array => None,
            None => Some(Hit::new(format!(
                "changing {}.{column} to {} rewrites the table and its indexes under an ACCESS EXCLUSIVE lock, unless the current type is binary-compatible (this file does not show it)",
                table.display,
                ty.display()
            )).instead(instead)),
        }
    })
}

/// Whether changing a column from `old` to `new` rewrites the table, following PostgreSQL's
/// binary-coercible casts and the typmod changes it accepts without a rewrite.
pub fn rewrites(old: &TypeSpec, new: &TypeSpec) -> bool {
    if old == new {
        return false;
    }
    if old.array != new.array {
        return true;
    }
    let widens = |old: &[i64], new: &[i64]| match (old, new) {
        (_, []) => true,
        ([], _) => false,
        ([o], [n]) => n >= o,
        ([op, os], [np, ns]) => os == ns && np >= op,
        ([op], [np, 0]) => np >= op,
        _ => false,
    };
    match (old.name.as_str(), new.name.as_str()) {
        ("varchar", "varchar") | ("varbit", "varbit") | ("numeric", "numeric") => {
            !widens(&old.mods, &new.mods)
        }
        ("varchar", "text") | ("cidr", "inet") => false,
        ("text", "varchar") => !new.mods.is_empty(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, mods: &[i64]) -> TypeSpec {
        TypeSpec {
            name: name.into(),
            mods: mods.to_vec(),
            array: false,
        }
    }

    #[test]
    fn binary_compatible_changes_do_not_rewrite() {
        assert!(!rewrites(&t("varchar", &[20]), &t("varchar", &[40])));
        assert!(!rewrites(&t("varchar", &[20]), &t("varchar", &[])));
        assert!(!rewrites(&t("varchar", &[20]), &t("text", &[])));
        assert!(!rewrites(&t("text", &[]), &t("varchar", &[])));
        assert!(!rewrites(&t("numeric", &[10, 2]), &t("numeric", &[12, 2])));
        assert!(!rewrites(&t("numeric", &[10, 2]), &t("numeric", &[])));
        assert!(!rewrites(&t("cidr", &[]), &t("inet", &[])));
    }

    #[test]
    fn other_changes_rewrite() {
        assert!(rewrites(&t("varchar", &[40]), &t("varchar", &[20])));
        assert!(rewrites(&t("text", &[]), &t("varchar", &[20])));
        assert!(rewrites(&t("numeric", &[10, 2]), &t("numeric", &[12, 3])));
        assert!(rewrites(&t("int4", &[]), &t("int8", &[])));
        assert!(rewrites(&t("int8", &[]), &t("text", &[])));
        assert!(rewrites(&t("timestamp", &[]), &t("timestamptz", &[])));
    }
}
