//! The write-translating trigger of a table: while a migration is active it fills what one
//! version cannot see from what it wrote (`up` for the old version's writes, `down` for the new
//! version's). A session belongs to the new version when the first schema of its search_path
//! is the new version schema, whatever follows it.

use crate::step::{LockMode, Step};
use tandem_model::{qualified, quote_ident, quote_literal, shorten_name};

#[derive(Debug, Clone, Default)]
pub struct TableTrigger {
    /// Physical column → expression, applied to writes that do not come from the new version.
    pub from_old: Vec<(String, String)>,
    /// Physical column → expression, applied to writes that come from the new version.
    pub from_new: Vec<(String, String)>,
    /// Variables the expressions may use: name → physical column.
    pub variables: Vec<(String, String)>,
}

/// The name of a table's trigger and its function (one of each per table).
pub fn trigger_name(table: &str) -> String {
    shorten_name(&format!("_tandem_{table}"))
}

/// Whether an expression may mention a name: a case-insensitive substring test, so it errs on
/// the side of yes (a variable declared for nothing costs a little; one missing breaks the
/// expression).
pub fn mentions(expr: &str, name: &str) -> bool {
    expr.to_lowercase().contains(&name.to_lowercase())
}

/// A dollar-quote tag that does not occur in `body`.
fn dollar_tag(body: &str) -> String {
    let mut tag = String::from("$tandem$");
    let mut n = 0;
    while body.contains(&tag) {
        n += 1;
        tag = format!("$tandem{n}$");
    }
    tag
}

impl TableTrigger {
    pub fn add_variable(&mut self, name: &str, physical: &str) {
        if !self.variables.iter().any(|(n, _)| n == name) {
            self.variables
                .push((name.to_string(), physical.to_string()));
        }
    }

    pub fn create_steps(&self, schema: &str, version_schema: &str, table: &str) -> Vec<Step> {
        let name = trigger_name(table);
        let qtable = qualified(schema, table);
        let mut body = String::from("#variable_conflict use_variable\nDECLARE\n");
        for (var, col) in &self.variables {
            body.push_str(&format!(
                "  {} {}.{}%TYPE := NEW.{};\n",
                quote_ident(var),
                qtable,
                quote_ident(col),
                quote_ident(col)
            ));
        }
        body.push_str(&format!(
            "  tandem_from_new boolean := (current_schemas(false))[1] IS NOT DISTINCT FROM {};\nBEGIN\n",
            quote_literal(version_schema)
        ));
        for (cond, list) in [
            ("NOT tandem_from_new", &self.from_old),
            ("tandem_from_new", &self.from_new),
        ] {
            if list.is_empty() {
                continue;
            }
            body.push_str(&format!("  IF {cond} THEN\n"));
            for (col, expr) in list {
                body.push_str(&format!("    NEW.{} := ({});\n", quote_ident(col), expr));
            }
            body.push_str("  END IF;\n");
        }
        body.push_str("  RETURN NEW;\nEND;\n");
        let tag = dollar_tag(&body);
        let function = qualified(schema, &name);
        vec![
            Step::tx(
                format!("create trigger function {name}"),
                format!("CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS {tag}\n{body}{tag}"),
            ),
            Step::tx(
                format!("create trigger {name} on {table}"),
                format!(
                    "CREATE TRIGGER {} BEFORE INSERT OR UPDATE ON {qtable} FOR EACH ROW WHEN (current_setting({}, true) IS DISTINCT FROM 'on') EXECUTE FUNCTION {function}()",
                    quote_ident(&name),
                    quote_literal(crate::BACKFILL_SETTING)
                ),
            )
            .lock(LockMode::ShareRowExclusive, qtable.clone()),
        ]
    }

    pub fn drop_steps(&self, schema: &str, table: &str) -> Vec<Step> {
        let name = trigger_name(table);
        let qtable = qualified(schema, table);
        vec![
            Step::tx(
                format!("drop trigger {name} on {table}"),
                format!("DROP TRIGGER IF EXISTS {} ON {qtable}", quote_ident(&name)),
            )
            .lock(LockMode::AccessExclusive, qtable.clone()),
            Step::tx(
                format!("drop trigger function {name}"),
                format!("DROP FUNCTION IF EXISTS {}()", qualified(schema, &name)),
            ),
        ]
    }
}
