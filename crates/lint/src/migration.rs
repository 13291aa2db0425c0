//! Lints tandem/pgroll migration files: the SQL of `sql` operations, the `up`/`down`
//! expressions of the other operations (parsed as `SELECT <expr>`), and the operation rules.
//! Findings point at the line where the operation or its SQL sits in the file.

use crate::context::State;
use crate::rules::{Check, RULES};
use crate::{finding, lint_sql_at, Config, Finding, LintError, Placement};
use tandem_model::migration::Format;
use tandem_model::{Migration, Operation};

/// Lints the text of a migration file. `file` is its path, used in messages and for the
/// migration's name.
pub fn lint_migration(
    file: &str,
    text: &str,
    format: Format,
    config: &Config,
) -> Result<Vec<Finding>, LintError> {
    let name = std::path::Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let migration = Migration::parse(text, format, file, name)?;
    let mut findings = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (i, op) in migration.operations.iter().enumerate() {
        let kind = op.kind();
        let nth = seen.iter().filter(|k| **k == kind).count();
        seen.push(kind);
        let op_at = operation_offset(text, kind, nth);
        let origin = |field: &str| format!("operations[{i}].{kind}{field}");
        for rule in RULES {
            let (Check::Operation(check), Some(level)) = (rule.check, config.level(rule)) else {
                continue;
            };
            if let Some(message) = check(op) {
                let span = crate::model::Span {
                    start: op_at,
                    end: op_at,
                };
                findings.push(finding(
                    rule,
                    level,
                    message,
                    text,
                    span,
                    Placement::default(),
                    Some(&origin("")),
                ));
            }
        }
        if let Operation::Sql(raw) = op {
            findings.extend(lint_raw_sql(file, text, op_at, raw, config, &origin)?);
        }
        for (field, expr) in expressions(op) {
            // pgroll accepts a plain expression or a `SELECT ...`; both are valid in parentheses.
            let wrapped = format!("SELECT (\n{expr}\n)");
            if let Err(e) = crate::parse::parse(&wrapped) {
                let at = placement(text, op_at, &expr);
                return Err(LintError::Syntax {
                    file: file.to_string(),
                    line: at.line,
                    column: at.column + 1,
                    message: format!("{}: {}", origin(&field), e.message),
                });
            }
        }
    }
    findings.sort_by_key(|f| (f.line, f.column));
    Ok(findings)
}

/// The `SET lock_timeout` tandem runs every session with.
fn tandem_lock_timeout() -> crate::model::Statement {
    crate::model::Statement {
        span: crate::model::Span::default(),
        kind: crate::model::StmtKind::Set {
            name: "lock_timeout".into(),
            value: Some("500ms".into()),
            local: false,
        },
        long_identifiers: Vec::new(),
        in_body: None,
        clauses: Vec::new(),
    }
}

/// Lints the `up` and `down` of a `sql` operation. tandem runs them with lock_timeout set, and
/// `down` undoes `up`, so what `up` creates counts as new in `down`.
fn lint_raw_sql(
    file: &str,
    text: &str,
    op_at: usize,
    raw: &tandem_model::operation::RawSql,
    config: &Config,
    origin: &dyn Fn(&str) -> String,
) -> Result<Vec<Finding>, LintError> {
    let options = config.options();
    let mut state = State::new(&options);
    state.apply(&tandem_lock_timeout(), &options);
    let mut findings = Vec::new();
    for (field, sql) in [(".up", &raw.up), (".down", &raw.down)] {
        if sql.trim().is_empty() {
            continue;
        }
        let at = placement(text, op_at, sql);
        findings.extend(lint_sql_at(
            file,
            sql,
            config,
            at,
            Some(&origin(field)),
            &mut state.clone(),
            None,
        )?);
        if field == ".up" {
            // Parsed already by lint_sql_at, so this cannot fail.
            for stmt in crate::parse::parse(sql)
                .map(|p| p.statements)
                .unwrap_or_default()
            {
                state.apply(&stmt, &options);
            }
        }
    }
    Ok(findings)
}

/// The SQL expressions an operation evaluates per row.
fn expressions(op: &Operation) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut push = |field: &str, expr: &str| {
        if !expr.trim().is_empty() {
            out.push((field.to_string(), expr.to_string()));
        }
    };
    match op {
        Operation::AddColumn(a) => push(".up", &a.up),
        Operation::AlterColumn(a) => {
            push(".up", &a.up);
            push(".down", &a.down);
        }
        Operation::DropColumn(d) => push(".down", &d.down),
        Operation::DropConstraint(d) => {
            push(".up", &d.up);
            push(".down", &d.down);
        }
        Operation::CreateConstraint(c) => {
            for (col, e) in &c.up {
                push(&format!(".up.{col}"), e);
            }
            for (col, e) in &c.down {
                push(&format!(".down.{col}"), e);
            }
        }
        Operation::DropMulticolumnConstraint(c) => {
            for (col, e) in &c.up {
                push(&format!(".up.{col}"), e);
            }
            for (col, e) in &c.down {
                push(&format!(".down.{col}"), e);
            }
        }
        _ => {}
    }
    out
}

/// Byte offset of the `nth` operation of this kind: where its key appears in the file.
fn operation_offset(text: &str, kind: &str, nth: usize) -> usize {
    let keys = [format!("\"{kind}\""), format!("{kind}:")];
    let mut hits: Vec<usize> = keys
        .iter()
        .flat_map(|k| text.match_indices(k.as_str()).map(|(i, _)| i))
        .collect();
    hits.sort_unstable();
    hits.dedup_by(|a, b| a.abs_diff(*b) <= 1);
    hits.get(nth).copied().unwrap_or(0)
}

/// Where an embedded string starts in the file: the first occurrence of its first line after
/// the operation's key, or the key itself.
fn placement(text: &str, from: usize, embedded: &str) -> Placement {
    let first_line = embedded.lines().next().unwrap_or_default().trim();
    let at = (!first_line.is_empty())
        .then(|| text[from..].find(first_line).map(|i| from + i))
        .flatten()
        .unwrap_or(from);
    let before = &text[..at];
    Placement {
        line: before.matches('\n').count() + 1,
        column: before[before.rfind('\n').map_or(0, |i| i + 1)..]
            .chars()
            .count(),
    }
}
