//! Every SQL fragment of a migration file parsed with PostgreSQL's own grammar before anything
//! runs: `up`, `down`, checks, defaults, generated expressions, index predicates, types and the
//! statements of `sql` operations. `validate`, `start` and `migrate` refuse a file with a
//! fragment PostgreSQL could not parse, naming the operation and the field, where today the
//! mistake would surface only once start has changed the schema.

use crate::LintError;
use tandem_model::operation::{ColumnDef, Nullable};
use tandem_model::{Migration, Operation};

/// Refuses `migration` when a fragment of it does not parse, naming each one.
pub fn check(migration: &Migration) -> Result<(), LintError> {
    let mut errors = Vec::new();
    for (index, op) in migration.operations.iter().enumerate() {
        for (field, fragment) in fragments(op) {
            // What `tandem convert` leaves for a person to write is refused by validation with
            // its own message.
            if fragment
                .text()
                .contains(tandem_model::validate::PLACEHOLDER)
            {
                continue;
            }
            if let Err(e) = crate::parse::parse(&fragment.wrapped()) {
                errors.push(format!(
                    "operations[{index}].{}{field}: {} in {:?}",
                    op.kind(),
                    e.message,
                    fragment.text()
                ));
            }
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(LintError::Fragments {
        file: migration.file.clone(),
        errors,
    })
}

/// What a fragment is, which decides how it is parsed.
enum Fragment<'a> {
    /// An expression, or pgroll's `SELECT ...` form of one.
    Expression(&'a str),
    /// A data type.
    Type(&'a str),
    /// One or more statements.
    Statements(&'a str),
}

impl Fragment<'_> {
    fn text(&self) -> &str {
        match self {
            Fragment::Expression(t) | Fragment::Type(t) | Fragment::Statements(t) => t,
        }
    }

    /// The fragment inside a statement PostgreSQL parses as it would run it. Newlines keep a
    /// trailing comment in the fragment from swallowing what follows.
    fn wrapped(&self) -> String {
        match self {
            Fragment::Expression(e) => format!("SELECT (\n{e}\n)"),
            Fragment::Type(t) => format!("SELECT CAST(NULL AS\n{t}\n)"),
            Fragment::Statements(s) => s.to_string(),
        }
    }
}

fn fragments<'a>(op: &'a Operation) -> Vec<(String, Fragment<'a>)> {
    let mut out: Vec<(String, Fragment<'a>)> = Vec::new();
    let mut push = |field: String, fragment: Fragment<'a>| {
        if !fragment.text().trim().is_empty() {
            out.push((field, fragment));
        }
    };
    match op {
        Operation::AddColumn(a) => {
            push(".up".into(), Fragment::Expression(&a.up));
            column(".column", &a.column, &mut push);
        }
        Operation::AlterColumn(a) => {
            push(".up".into(), Fragment::Expression(&a.up));
            push(".down".into(), Fragment::Expression(&a.down));
            if let Some(t) = &a.data_type {
                push(".type".into(), Fragment::Type(t));
            }
            if let Nullable::Value(d) = &a.default {
                push(".default".into(), Fragment::Expression(d));
            }
            if let Some(c) = &a.check {
                push(
                    ".check.constraint".into(),
                    Fragment::Expression(&c.constraint),
                );
            }
        }
        Operation::CreateTable(t) => {
            for (i, c) in t.columns.iter().enumerate() {
                column(&format!(".columns[{i}]"), c, &mut push);
            }
            for (i, c) in t.constraints.iter().enumerate() {
                push(
                    format!(".constraints[{i}].check"),
                    Fragment::Expression(&c.check),
                );
                if let Some(x) = &c.exclude {
                    push(
                        format!(".constraints[{i}].exclude.predicate"),
                        Fragment::Expression(&x.predicate),
                    );
                }
            }
        }
        Operation::CreateConstraint(c) => {
            if let Some(check) = &c.check {
                push(".check".into(), Fragment::Expression(check));
            }
            for (col, e) in &c.up {
                push(format!(".up.{col}"), Fragment::Expression(e));
            }
            for (col, e) in &c.down {
                push(format!(".down.{col}"), Fragment::Expression(e));
            }
        }
        Operation::DropMulticolumnConstraint(c) => {
            for (col, e) in &c.up {
                push(format!(".up.{col}"), Fragment::Expression(e));
            }
            for (col, e) in &c.down {
                push(format!(".down.{col}"), Fragment::Expression(e));
            }
        }
        Operation::DropColumn(d) => push(".down".into(), Fragment::Expression(&d.down)),
        Operation::DropConstraint(d) => {
            push(".up".into(), Fragment::Expression(&d.up));
            push(".down".into(), Fragment::Expression(&d.down));
        }
        Operation::CreateIndex(i) => {
            push(".predicate".into(), Fragment::Expression(&i.predicate));
        }
        Operation::Sql(s) => {
            push(".up".into(), Fragment::Statements(&s.up));
            push(".down".into(), Fragment::Statements(&s.down));
        }
        Operation::DropIndex(_)
        | Operation::DropTable(_)
        | Operation::RenameColumn(_)
        | Operation::RenameConstraint(_)
        | Operation::RenameTable(_)
        | Operation::SetReplicaIdentity(_) => {}
    }
    out
}

fn column<'a>(at: &str, c: &'a ColumnDef, push: &mut impl FnMut(String, Fragment<'a>)) {
    push(format!("{at}.type"), Fragment::Type(&c.data_type));
    if let Some(d) = &c.default {
        push(format!("{at}.default"), Fragment::Expression(d));
    }
    if let Some(check) = &c.check {
        push(
            format!("{at}.check.constraint"),
            Fragment::Expression(&check.constraint),
        );
    }
    if let Some(g) = &c.generated {
        push(
            format!("{at}.generated.expression"),
            Fragment::Expression(&g.expression),
        );
    }
}
