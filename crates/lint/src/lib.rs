//! `tandem lint`: reads plain SQL migrations with PostgreSQL's own grammar, and tandem/pgroll
//! migration files, and reports every statement that would lock or break a live application,
//! with the safe alternative; `convert` turns plain SQL into a tandem migration of safe
//! operations. Pure: no database, no file system beyond what the caller passes in (config
//! loading reads the file it is given).

pub mod config;
pub mod context;
pub mod convert;
pub mod docs;
pub mod fragments;
pub mod locks;
pub mod migration;
pub mod model;
pub mod parse;
pub mod render;
pub mod rules;

pub use config::Config;
pub use context::Options;
pub use rules::{Level, Rule, RULES};

use context::State;
use model::{Span, Statement};
use serde::Serialize;

/// One thing the linter found.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    #[serde(serialize_with = "rules::serialize_rule_id")]
    pub rule: &'static Rule,
    pub level: Level,
    pub message: String,
    /// 1-based line and column (in characters) of the statement's start in the file.
    pub line: usize,
    pub column: usize,
    /// The file's line at `line`, for the snippet.
    #[serde(skip)]
    pub source_line: String,
    /// Where in a migration file the SQL came from, e.g. `operations[2].sql.up`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// Why a file could not be linted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LintError {
    #[error("{file}:{line}:{column}: {}", syntax_message(.message))]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(transparent)]
    Migration(#[from] tandem_model::LoadError),
    #[error("{file}: {message}")]
    Config { file: String, message: String },
    #[error("{file}: nothing to convert: the file has no statement that changes the schema")]
    NothingToConvert { file: String },
    /// SQL fragments of a migration file that PostgreSQL's grammar does not accept.
    #[error("{file}: {} SQL fragment(s) do not parse:\n  {}", .errors.len(), .errors.join("\n  "))]
    Fragments { file: String, errors: Vec<String> },
}

/// PostgreSQL's own message usually begins "syntax error at or near": it is not said twice.
fn syntax_message(message: &str) -> String {
    if message.starts_with("syntax error") {
        message.to_string()
    } else {
        format!("syntax error: {message}")
    }
}

/// Where statements of a source sit in the file: SQL embedded in a migration file is offset by
/// the line (1-based; 0 means the source is the file) and the characters before the string on
/// that line.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Placement {
    pub line: usize,
    pub column: usize,
}

/// The context a rule sees for one statement.
pub struct Cx<'a> {
    pub stmt: &'a Statement,
    pub index: usize,
    pub statements: &'a [Statement],
    /// The state before the statement.
    pub state: &'a State,
    pub options: &'a Options,
}

/// Lints one SQL source. `file` is used in messages only.
pub fn lint_sql(file: &str, source: &str, config: &Config) -> Result<Vec<Finding>, LintError> {
    let state = State::new(&config.options());
    let mut findings = lint_sql_at(file, source, config, Placement::default(), None, state)?;
    findings.sort_by_key(|f| (f.line, f.column));
    Ok(findings)
}

pub(crate) fn lint_sql_at(
    file: &str,
    source: &str,
    config: &Config,
    at: Placement,
    origin: Option<&str>,
    mut state: State,
) -> Result<Vec<Finding>, LintError> {
    let parsed = parse::parse(source).map_err(|e| {
        let (line, column) = line_col(source, e.offset, at);
        LintError::Syntax {
            file: file.to_string(),
            line,
            column,
            message: e.message,
        }
    })?;
    let ignores = ignores_for(source, &parsed);
    let mut used: Vec<Vec<bool>> = ignores.iter().map(|n| vec![false; n.len()]).collect();
    let options = config.options();
    let mut findings = Vec::new();
    for (index, stmt) in parsed.statements.iter().enumerate() {
        let cx = Cx {
            stmt,
            index,
            statements: &parsed.statements,
            state: &state,
            options: &options,
        };
        for rule in RULES {
            let Some(level) = config.level(rule) else {
                continue;
            };
            let Some(message) = rule.check_statement(&cx) else {
                continue;
            };
            if let Some(k) = ignores[index].iter().position(|n| rule.is_named(n)) {
                used[index][k] = true;
                continue;
            }
            findings.push(finding(rule, level, message, source, stmt.span, at, origin));
        }
        state.apply(stmt, &options);
    }
    if let Some(level) = config.level(&rules::unused_ignore::RULE) {
        for (index, names) in ignores.iter().enumerate() {
            for (k, name) in names.iter().enumerate() {
                if !used[index][k] {
                    let message = match RULES.iter().find(|r| r.is_named(name)) {
                        Some(_) => format!("`tandem-lint: ignore {name}` suppresses nothing here: the rule does not fire on this statement"),
                        None => format!("`tandem-lint: ignore {name}` names no rule"),
                    };
                    let span = parsed.statements[index].span;
                    findings.push(finding(
                        &rules::unused_ignore::RULE,
                        level,
                        message,
                        source,
                        span,
                        at,
                        origin,
                    ));
                }
            }
        }
    }
    Ok(findings)
}

pub(crate) fn finding(
    rule: &'static Rule,
    level: Level,
    message: String,
    source: &str,
    span: Span,
    at: Placement,
    origin: Option<&str>,
) -> Finding {
    let (line, column) = line_col(source, span.start, at);
    let line_start = source[..span.start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = source[span.start..]
        .find('\n')
        .map_or(source.len(), |i| span.start + i);
    Finding {
        rule,
        level,
        message,
        line,
        column,
        source_line: source[line_start..line_end].to_string(),
        origin: origin.map(str::to_string),
    }
}

/// 1-based line and character column of byte `offset`, shifted by where the source sits.
pub(crate) fn line_col(source: &str, offset: usize, at: Placement) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count();
    let col = before[before.rfind('\n').map_or(0, |i| i + 1)..]
        .chars()
        .count();
    if line == 0 {
        (at.line.max(1), at.column + col + 1)
    } else {
        (at.line.max(1) + line, col + 1)
    }
}

const IGNORE_MARKER: &str = "tandem-lint: ignore";

/// The rule names of an ignore comment: `a, b reason...` names `a` and `b`; the list ends at the
/// first name followed by a space instead of a comma, and the rest is the reason.
fn ignored_names(list: &str) -> Vec<String> {
    let mut names = Vec::new();
    for part in list.split(',') {
        let mut words = part.split_whitespace();
        let Some(name) = words.next() else { continue };
        names.push(name.to_string());
        if words.next().is_some() {
            break;
        }
    }
    names
}

/// The rule names each statement's ignore comments list. A comment belongs to the statement
/// that follows it, or, when it sits on the same line after a statement's end, to that one.
fn ignores_for(source: &str, parsed: &parse::Parsed) -> Vec<Vec<String>> {
    let statements = &parsed.statements;
    let mut out = vec![Vec::new(); statements.len()];
    for comment in &parsed.comments {
        let Some(at) = comment.text.find(IGNORE_MARKER) else {
            continue;
        };
        let names = ignored_names(comment.text[at + IGNORE_MARKER.len()..].trim_end_matches("*/"));
        // The first statement that ends after the comment starts...
        let Some(mut target) = statements
            .iter()
            .position(|s| s.span.end > comment.span.start)
        else {
            // A comment after the last statement belongs to it when on the same line.
            if let Some(last) = statements.len().checked_sub(1) {
                if !source[statements[last].span.end..comment.span.start].contains('\n') {
                    out[last].extend(names);
                }
            }
            continue;
        };
        // ...unless the comment trails the previous statement on its last line.
        if target > 0
            && comment.span.start < statements[target].span.start
            && !source[statements[target - 1].span.end..comment.span.start].contains('\n')
        {
            target -= 1;
        }
        out[target].extend(names);
    }
    out
}
