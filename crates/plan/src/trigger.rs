//! The write-translating trigger of a table: while a migration is active it fills what one
//! version cannot see from what it wrote (`up` for the old version's writes, `down` for the new
//! version's). A session belongs to the new version when the first schema of its search_path
//! is the new version schema, whatever follows it.

use crate::sqltext::replace_columns;
use crate::step::{LockMode, Step};
use tandem_model::{qualified, quote_ident, quote_literal, shorten_name};

/// One step of computing a column: `expr`, with each name it may mention bound to the value the
/// row being written has in a physical column. Later steps of the same column may bind a name
/// to the column itself, which then holds the previous step's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Name the expression uses → physical column of the row.
    pub binds: Vec<(String, String)>,
    pub expr: String,
}

/// A physical column the trigger computes, in one or more stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub target: String,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, Default)]
pub struct TableTrigger {
    /// Applied to writes that do not come from the new version.
    pub from_old: Vec<Assignment>,
    /// Applied to writes that come from the new version.
    pub from_new: Vec<Assignment>,
}

/// The name of a table's trigger and its function (one of each per table).
pub fn trigger_name(table: &str) -> String {
    shorten_name(&format!("_tandem_{table}"))
}

/// `NEW.target := (expr);`, each name the expression uses for a column of the row replaced by
/// that column of `NEW`: no variables to declare and fill on every row.
fn stage_sql(target: &str, stage: &Stage) -> String {
    let expr = replace_columns(&stage.expr, |name| {
        stage
            .binds
            .iter()
            .find(|(var, _)| var == name)
            .map(|(_, col)| format!("NEW.{}", quote_ident(col)))
    });
    format!("    NEW.{} := ({expr});\n", quote_ident(target))
}

/// The name of the trigger that takes over UPDATEs once the backfill is done.
pub fn update_trigger_name(table: &str) -> String {
    shorten_name(&format!("_tandem_{table}_update"))
}

/// A dollar-quote tag that does not occur in `body`.
pub(crate) fn dollar_tag(body: &str) -> String {
    let mut tag = String::from("$tandem$");
    let mut n = 0;
    while body.contains(&tag) {
        n += 1;
        tag = format!("$tandem{n}$");
    }
    tag
}

fn push(list: &mut Vec<Assignment>, target: &str, stage: Stage) {
    match list.iter_mut().find(|a| a.target == target) {
        Some(a) => a.stages.push(stage),
        None => list.push(Assignment {
            target: target.to_string(),
            stages: vec![stage],
        }),
    }
}

/// The assignments with each one after those computing a column it reads: an `add_column`
/// whose `up` reads a column an earlier operation gives a second column reads that second
/// column, which the function must have computed first. A cycle keeps the given order.
fn in_dependency_order(list: &[Assignment]) -> Vec<&Assignment> {
    let reads = |a: &Assignment, target: &str| {
        a.stages.iter().any(|stage| {
            stage
                .binds
                .iter()
                .any(|(name, col)| col == target && crate::sqltext::mentions(&stage.expr, name))
        })
    };
    let mut left: Vec<&Assignment> = list.iter().collect();
    let mut ordered = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let ready = left
            .iter()
            .position(|a| {
                !left
                    .iter()
                    .any(|b| b.target != a.target && reads(a, &b.target))
            })
            .unwrap_or(0);
        ordered.push(left.remove(ready));
    }
    ordered
}

/// `binds` as a list, from a map of names to physical columns.
pub fn binds<'a>(
    names: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Vec<(String, String)> {
    names
        .into_iter()
        .map(|(n, p)| (n.clone(), p.clone()))
        .collect()
}

impl TableTrigger {
    /// Adds a stage computing `target` for writes by the old version.
    pub fn old(&mut self, target: &str, binds: Vec<(String, String)>, expr: &str) {
        push(
            &mut self.from_old,
            target,
            Stage {
                binds,
                expr: expr.to_string(),
            },
        );
    }

    /// Adds a stage computing `target` for writes by the new version.
    pub fn new_version(&mut self, target: &str, binds: Vec<(String, String)>, expr: &str) {
        push(
            &mut self.from_new,
            target,
            Stage {
                binds,
                expr: expr.to_string(),
            },
        );
    }

    /// The test, for the trigger's `WHEN` clause, of whether a write comes from the version
    /// whose writes need translating, when only one version's do; `None` when both do and the
    /// function tells them apart. Tested before the function is called, it spares the call,
    /// and a branch per row inside it.
    fn version_test(&self, version_schema: &str) -> Option<String> {
        let first = "(current_schemas(false))[1]";
        let vs = quote_literal(version_schema);
        match (self.from_old.is_empty(), self.from_new.is_empty()) {
            (false, true) => Some(format!("{first} IS DISTINCT FROM {vs}")),
            (true, false) => Some(format!("{first} IS NOT DISTINCT FROM {vs}")),
            _ => None,
        }
    }

    /// The trigger's `WHEN` clause: not inside a backfill batch, and, when only one version's
    /// writes need translating, a write of that version.
    fn when(&self, version_schema: &str) -> String {
        let skip = format!(
            "current_setting({}, true) IS DISTINCT FROM 'on'",
            quote_literal(crate::BACKFILL_SETTING)
        );
        match self.version_test(version_schema) {
            Some(test) => format!("{skip} AND {test}"),
            None => skip,
        }
    }

    pub fn create_steps(&self, schema: &str, version_schema: &str, table: &str) -> Vec<Step> {
        let name = trigger_name(table);
        let qtable = qualified(schema, table);
        let mut body = String::from("BEGIN\n");
        let from_new = format!(
            "(current_schemas(false))[1] IS NOT DISTINCT FROM {}",
            quote_literal(version_schema)
        );
        let branch = |list: &Vec<Assignment>| -> String {
            in_dependency_order(list)
                .into_iter()
                .flat_map(|a| {
                    a.stages
                        .iter()
                        .map(move |stage| stage_sql(&a.target, stage))
                })
                .collect()
        };
        // With one version's writes to translate, the WHEN clause has already chosen them.
        match (self.from_old.is_empty(), self.from_new.is_empty()) {
            (true, true) => {}
            (false, true) => body.push_str(&branch(&self.from_old)),
            (true, false) => body.push_str(&branch(&self.from_new)),
            (false, false) => body.push_str(&format!(
                "  IF {from_new} THEN\n{}  ELSE\n{}  END IF;\n",
                branch(&self.from_new),
                branch(&self.from_old)
            )),
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
                    "CREATE TRIGGER {} BEFORE INSERT OR UPDATE ON {qtable} FOR EACH ROW WHEN ({}) EXECUTE FUNCTION {function}()",
                    quote_ident(&name),
                    self.when(version_schema)
                ),
            )
            .lock(LockMode::ShareRowExclusive, qtable.clone()),
        ]
    }

    /// The physical columns the expressions read: an UPDATE that changes none of them leaves
    /// every computed column as it was.
    fn read_columns(&self) -> Vec<String> {
        let mut cols: Vec<String> = Vec::new();
        for a in self.from_old.iter().chain(&self.from_new) {
            for stage in &a.stages {
                for (name, col) in &stage.binds {
                    if crate::sqltext::mentions(&stage.expr, name) && !cols.contains(col) {
                        cols.push(col.clone());
                    }
                }
            }
        }
        cols
    }

    /// Once every existing row is filled, UPDATEs that change none of the columns the
    /// expressions read no longer need the trigger: the insert trigger keeps firing for every
    /// row, the update trigger only when one of those columns changes (tested before the
    /// function is called, so such an UPDATE costs next to nothing more). Not before: the
    /// backfill skips rows written after the trigger was in place, so until it is done every
    /// write must go through the function. CREATE OR REPLACE TRIGGER needs PostgreSQL 14.
    pub fn narrow_steps(&self, schema: &str, version_schema: &str, table: &str) -> Vec<Step> {
        let name = trigger_name(table);
        let update = update_trigger_name(table);
        let qtable = qualified(schema, table);
        let function = qualified(schema, &name);
        let skip = self.when(version_schema);
        let mut sql = format!(
            "CREATE OR REPLACE TRIGGER {} BEFORE INSERT ON {qtable} FOR EACH ROW WHEN ({skip}) EXECUTE FUNCTION {function}()",
            quote_ident(&name)
        );
        let cols = self.read_columns();
        if !cols.is_empty() {
            let list = |side: &str| {
                cols.iter()
                    .map(|c| format!("{side}.{}", quote_ident(c)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let changed = if cols.len() == 1 {
                format!("{} IS DISTINCT FROM {}", list("OLD"), list("NEW"))
            } else {
                format!("ROW({}) IS DISTINCT FROM ROW({})", list("OLD"), list("NEW"))
            };
            // The change test comes first: PostgreSQL evaluates `AND` left to right and stops at
            // the first false, so an UPDATE of other columns never reads the settings.
            sql.push_str(&format!(
                ";\nCREATE OR REPLACE TRIGGER {} BEFORE UPDATE ON {qtable} FOR EACH ROW WHEN ({changed} AND {skip}) EXECUTE FUNCTION {function}()",
                quote_ident(&update)
            ));
        }
        vec![Step::tx(
            format!("narrow trigger {name} on {table} to the writes that need it"),
            sql,
        )
        .lock(LockMode::ShareRowExclusive, qtable)]
    }

    pub fn drop_steps(&self, schema: &str, table: &str) -> Vec<Step> {
        let name = trigger_name(table);
        let qtable = qualified(schema, table);
        vec![
            Step::tx(
                format!("drop trigger {name} on {table}"),
                format!(
                    "DROP TRIGGER IF EXISTS {} ON {qtable};\nDROP TRIGGER IF EXISTS {} ON {qtable}",
                    quote_ident(&name),
                    quote_ident(&update_trigger_name(table))
                ),
            )
            .lock(LockMode::AccessExclusive, qtable.clone()),
            Step::tx(
                format!("drop trigger function {name}"),
                format!("DROP FUNCTION IF EXISTS {}()", qualified(schema, &name)),
            ),
        ]
    }
}
