//! `tandem lint`: reads plain SQL migrations with PostgreSQL's own grammar, and tandem/pgroll
//! migration files, and reports every statement that would lock or break a live application,
//! with the safe alternative; `convert` turns plain SQL into a tandem migration of safe
//! operations. Pure: no database, no file system beyond what the caller passes in (config
//! loading reads the file it is given).

#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod body;
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
pub mod runner;
mod tree;

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
    /// 1-based line and column (in characters) of the offending clause (or the statement's
    /// start) in the file.
    pub line: usize,
    pub column: usize,
    /// The file's line at `line`, for the snippet.
    #[serde(skip)]
    pub source_line: String,
    /// Where in a migration file the SQL came from, e.g. `operations[2].sql.up`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The safe SQL written for this statement, when the rule can write it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instead: Option<String>,
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
    /// The whole source the statement's spans point into.
    pub source: &'a str,
    pub index: usize,
    pub statements: &'a [Statement],
    /// The state before the statement.
    pub state: &'a State,
    pub options: &'a Options,
}

/// One SQL file of a run, as the caller read it.
#[derive(Debug, Clone, Copy)]
pub struct SqlFile<'a> {
    /// The path as given (used in messages, and to recognise the runner from the layout).
    pub name: &'a str,
    pub text: &'a str,
    /// Flyway's script configuration for this file (`<file>.conf`), when there is one.
    pub script_config: Option<&'a str>,
}

impl Cx<'_> {
    /// The statement's text as written (without the `;`).
    pub fn text(&self) -> &str {
        &self.source[self.stmt.span.start..self.stmt.span.end]
    }
}

/// Lints the files of a run in migration order, carrying what each one did to the schema
/// (column types, NOT NULL columns, validated checks, and with `new_tables = "run"` the tables
/// it created) into the next, from an empty schema or a known one.
pub struct Run<'c> {
    config: &'c Config,
    state: State,
}

impl<'c> Run<'c> {
    pub fn new(config: &'c Config) -> Run<'c> {
        Run {
            config,
            state: State::new(&config.options()),
        }
    }

    /// A run whose database starts with `schema` (read from a `pg_dump --schema-only` file or
    /// a database): its tables exist, with their types and NOT NULL columns.
    pub fn from_schema(config: &'c Config, schema: &tandem_model::Schema) -> Run<'c> {
        Run {
            config,
            state: State::from_schema(schema, &config.options()),
        }
    }

    /// Row estimates of the starting schema's tables (`pg_class.reltuples`, by table name):
    /// findings whose cost grows with a small table's size become warnings that say so.
    pub fn with_row_estimates(mut self, rows: impl IntoIterator<Item = (String, i64)>) -> Self {
        self.state.row_estimates.extend(rows);
        self
    }

    /// The runner that runs `file`: `runner` from the flag or `tandem.toml`, else the one the
    /// file's annotations or name show, else psql (with `--single-transaction`, `psql -1`).
    pub fn runner_for(&self, file: &SqlFile) -> runner::Runner {
        self.config
            .runner
            .or_else(|| runner::detect(file.name, file.text))
            .unwrap_or(if self.config.single_transaction {
                runner::Runner::PsqlSingleTransaction
            } else {
                runner::Runner::Psql
            })
    }

    /// Lints the next file of the run.
    pub fn lint_sql(&mut self, file: SqlFile) -> Result<Vec<Finding>, LintError> {
        let prepared = runner::prepare(self.runner_for(&file), file.text, file.script_config);
        let options = self.config.options();
        let mut state = self.state.next_file(&options, self.config.new_tables);
        let mut findings = lint_sql_at(
            file.name,
            &prepared.source,
            self.config,
            Placement::default(),
            None,
            &mut state,
            Some(prepared.transaction),
        )?;
        self.state = state;
        findings.sort_by_key(|f| (f.line, f.column));
        Ok(findings)
    }
}

/// Lints one SQL source on its own. `file` is used in messages and to recognise its runner.
pub fn lint_sql(file: &str, source: &str, config: &Config) -> Result<Vec<Finding>, LintError> {
    Run::new(config).lint_sql(SqlFile {
        name: file,
        text: source,
        script_config: None,
    })
}

/// The ignore comments that apply to one statement, and which of them were used.
struct Ignores<'a> {
    names: &'a [String],
    used: &'a mut [bool],
}

/// Where findings go: the source they point into, where it sits, and where it came from.
#[derive(Clone, Copy)]
struct Site<'a> {
    source: &'a str,
    at: Placement,
    origin: Option<&'a str>,
}

/// Runs every rule on the statement of `cx`; a finding an ignore names marks it used instead.
fn check_statement(
    cx: &Cx,
    config: &Config,
    site: Site,
    report_at: Option<usize>,
    ignores: &mut [Ignores],
    findings: &mut Vec<Finding>,
) {
    let Site { source, at, origin } = site;
    for rule in RULES {
        let Some(level) = config.level(rule) else {
            continue;
        };
        let hits = rule.check_statement(cx);
        if hits.is_empty() {
            continue;
        }
        let named = ignores.iter_mut().find_map(|i| {
            let k = i.names.iter().position(|n| rule.is_named(n))?;
            Some((i, k))
        });
        if let Some((i, k)) = named {
            i.used[k] = true;
            continue;
        }
        let note = small_table(cx, config, rule);
        for hit in hits {
            // A statement an EXECUTE runs is not in the file: its findings point at the EXECUTE.
            let span = match report_at {
                Some(start) => Span { start, end: start },
                None => Span {
                    start: hit.at.unwrap_or(cx.stmt.span.start),
                    end: cx.stmt.span.end,
                },
            };
            let (level, message) = match &note {
                Some(note) => (Level::Warning, format!("{} ({note})", hit.message)),
                None => (level, hit.message),
            };
            let mut f = finding(rule, level, message, source, span, at, origin);
            f.instead = hit.instead;
            findings.push(f);
        }
    }
}

/// Rules whose harm is how long a scan, rewrite or index build holds a lock, which a small
/// table makes short. The rest (renames, drops, locks taken without lock_timeout, CONCURRENTLY
/// in a transaction) are as harmful on a table of ten rows.
const SIZE_BOUND_RULES: &[&str] = &[
    "T004", "T005", "T008", "T009", "T011", "T012", "T013", "T016", "T019", "T020", "T035",
];

/// A note for a finding of a size-bound rule on a table the starting schema's row estimate
/// says is small.
fn small_table(cx: &Cx, config: &Config, rule: &Rule) -> Option<String> {
    if !SIZE_BOUND_RULES.contains(&rule.id) {
        return None;
    }
    let (_, table) = locks::strongest_lock(&cx.stmt.kind)?;
    let bare = table.rsplit('.').next().unwrap_or(&table);
    let rows = *cx.state.row_estimates.get(bare)?;
    (u64::try_from(rows).ok()? <= config.small_table_rows).then(|| {
        format!(
            "{bare} has about {rows} rows by the planner's estimate, at most small_table_rows = {}: short under the lock, so a warning",
            config.small_table_rows
        )
    })
}

/// Reports the ignores that suppressed nothing.
fn unused_ignores(
    config: &Config,
    parsed: &parse::Parsed,
    ignores: &[Vec<String>],
    used: &[Vec<bool>],
    site: Site,
    findings: &mut Vec<Finding>,
) {
    let Site { source, at, origin } = site;
    let Some(level) = config.level(&rules::unused_ignore::RULE) else {
        return;
    };
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

/// Lints `source` from `state`, leaving in it what the file did. `transaction` is how the
/// file's runner runs it (`None`: as `state` already says).
pub(crate) fn lint_sql_at(
    file: &str,
    source: &str,
    config: &Config,
    at: Placement,
    origin: Option<&str>,
    state: &mut State,
    transaction: Option<runner::Transaction>,
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
    let mut options = config.options();
    if let Some(t) = transaction {
        options.single_transaction = t.wraps(&parsed.statements);
        state.in_transaction = options.single_transaction;
    }
    let site = Site { source, at, origin };
    let mut findings = Vec::new();
    for (index, stmt) in parsed.statements.iter().enumerate() {
        if let Some(body) = body::body(source, stmt) {
            // The statements of the body, with the ignores written inside it and those above
            // the DO or CREATE FUNCTION.
            let inner_ignores = ignores_for(source, &body.parsed);
            let mut inner_used: Vec<Vec<bool>> =
                inner_ignores.iter().map(|n| vec![false; n.len()]).collect();
            let (line, _) = line_col(source, stmt.span.start, at);
            let place = match body.kind {
                model::RoutineKind::Do => format!("the DO block on line {line}"),
                model::RoutineKind::Function => format!("the function body on line {line}"),
            };
            let body_origin = match origin {
                Some(o) => format!("{o}, {place}"),
                None => place,
            };
            let body_site = Site {
                origin: Some(body_origin.as_str()),
                ..site
            };
            let mut function_state;
            let body_state = match body.kind {
                model::RoutineKind::Do => {
                    state.enter_body();
                    &mut *state
                }
                model::RoutineKind::Function => {
                    function_state = state.for_function_body();
                    &mut function_state
                }
            };
            for (k, inner) in body.parsed.statements.iter().enumerate() {
                let executed = body.executed[k].as_ref();
                let cx = Cx {
                    stmt: inner,
                    source: executed.map_or(source, |(text, _)| text.as_str()),
                    index: k,
                    statements: &body.parsed.statements,
                    state: body_state,
                    options: &options,
                };
                let mut slots = [
                    Ignores {
                        names: &inner_ignores[k],
                        used: &mut inner_used[k],
                    },
                    Ignores {
                        names: &ignores[index],
                        used: &mut used[index],
                    },
                ];
                check_statement(
                    &cx,
                    config,
                    body_site,
                    executed.map(|(_, at)| *at),
                    &mut slots,
                    &mut findings,
                );
                body_state.apply(inner, &options);
            }
            if body.kind == model::RoutineKind::Do {
                state.leave_body(&options);
            }
            unused_ignores(
                config,
                &body.parsed,
                &inner_ignores,
                &inner_used,
                body_site,
                &mut findings,
            );
            continue;
        }
        let cx = Cx {
            stmt,
            source,
            index,
            statements: &parsed.statements,
            state,
            options: &options,
        };
        let mut slots = [Ignores {
            names: &ignores[index],
            used: &mut used[index],
        }];
        check_statement(&cx, config, site, None, &mut slots, &mut findings);
        state.apply(stmt, &options);
    }
    unused_ignores(config, &parsed, &ignores, &used, site, &mut findings);
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
        instead: None,
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
