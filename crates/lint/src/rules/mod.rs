//! The rules, one per file. Each carries its id, name, default level, explanation (the lock it
//! takes and what that blocks), the safe alternative as SQL, the tandem operation that does the
//! change safely where there is one, and bad and good examples that the tests run through the
//! linter and through a real PostgreSQL.

use crate::model::*;
use crate::Cx;
use serde::{Deserialize, Serialize};
use tandem_model::Operation;

pub mod add_column_not_null_without_default;
pub mod add_column_volatile_default;
pub mod cluster;
pub mod column_type_rewrite;
pub mod concurrently_in_transaction;
pub mod constraint_without_not_valid;
pub mod create_index_without_concurrently;
pub mod detach_partition_without_concurrently;
pub mod drop_column;
pub mod drop_column_without_down;
pub mod drop_default_of_not_null;
pub mod drop_index_without_concurrently;
pub mod drop_table;
pub mod exclusion_constraint;
pub mod identifier_too_long;
pub mod missing_lock_timeout;
pub mod prefer_bigint_identity;
pub mod prefer_jsonb;
pub mod prefer_text_over_char;
pub mod prefer_timestamptz;
pub mod reindex_without_concurrently;
pub mod rename_column;
pub mod rename_table;
pub mod rename_type;
pub mod set_not_null_without_check;
pub mod sql_operation_does_ddl;
pub mod statements_after_access_exclusive;
pub mod truncate_cascade;
pub mod type_change_without_down;
pub mod unbatched_update_delete;
pub mod uncommitted_begin;
pub mod unique_without_index;
pub mod unused_ignore;
pub mod vacuum_full;
pub mod validate_in_same_transaction;

/// Every rule, in id order.
pub static RULES: &[&Rule] = &[
    &rename_column::RULE,
    &rename_table::RULE,
    &add_column_not_null_without_default::RULE,
    &add_column_volatile_default::RULE,
    &create_index_without_concurrently::RULE,
    &drop_index_without_concurrently::RULE,
    &concurrently_in_transaction::RULE,
    &reindex_without_concurrently::RULE,
    &constraint_without_not_valid::RULE,
    &validate_in_same_transaction::RULE,
    &set_not_null_without_check::RULE,
    &unique_without_index::RULE,
    &column_type_rewrite::RULE,
    &drop_column::RULE,
    &drop_table::RULE,
    &unbatched_update_delete::RULE,
    &missing_lock_timeout::RULE,
    &statements_after_access_exclusive::RULE,
    &vacuum_full::RULE,
    &cluster::RULE,
    &truncate_cascade::RULE,
    &prefer_bigint_identity::RULE,
    &prefer_text_over_char::RULE,
    &prefer_timestamptz::RULE,
    &prefer_jsonb::RULE,
    &detach_partition_without_concurrently::RULE,
    &identifier_too_long::RULE,
    &uncommitted_begin::RULE,
    &unused_ignore::RULE,
    &drop_column_without_down::RULE,
    &type_change_without_down::RULE,
    &sql_operation_does_ddl::RULE,
    &drop_default_of_not_null::RULE,
    &rename_type::RULE,
    &exclusion_constraint::RULE,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Warning,
    Error,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// One finding of a statement rule: its message, the clause it is about, and the safe SQL
/// written for this statement.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hit {
    pub message: String,
    /// Byte offset of the offending clause in the source; the statement's start when `None`.
    pub at: Option<usize>,
    /// What to run instead, written with the statement's own table, columns and types; the
    /// rule's generic alternative is shown when `None`.
    pub instead: Option<String>,
}

impl Hit {
    pub fn new(message: String) -> Hit {
        Hit {
            message,
            ..Hit::default()
        }
    }

    pub fn at(mut self, at: Option<usize>) -> Hit {
        self.at = at;
        self
    }

    pub fn instead(mut self, sql: impl Into<String>) -> Hit {
        self.instead = Some(sql.into());
        self
    }
}

/// What a rule looks at.
#[derive(Clone, Copy)]
pub enum Check {
    /// One SQL statement in its context: at most one finding, at the statement's start.
    Statement(fn(&Cx) -> Option<String>),
    /// One SQL statement in its context: every violation it has, each at its clause.
    Clauses(fn(&Cx) -> Vec<Hit>),
    /// One operation of a tandem/pgroll migration file.
    Operation(fn(&Operation) -> Option<String>),
    /// Findings the linter itself produces (unused ignores).
    Linter,
}

pub struct Rule {
    pub id: &'static str,
    /// Kebab-case.
    pub name: &'static str,
    pub level: Level,
    /// One line: what is wrong.
    pub summary: &'static str,
    /// The lock the statement takes and what that lock blocks, or what else goes wrong.
    pub explanation: &'static str,
    /// The safe alternative, as SQL (or as a migration file for operation rules).
    pub safe_alternative: &'static str,
    /// A tandem migration (pgroll format, YAML) that makes the change safely, where one does.
    pub tandem: Option<&'static str>,
    /// SQL that creates what the examples need, run before each of them.
    pub setup: &'static str,
    /// Examples: SQL for statement rules, a YAML migration for operation rules.
    pub bad: &'static str,
    pub good: &'static str,
    /// Part of the error PostgreSQL gives for `bad`, when running it fails.
    pub bad_fails_with: Option<&'static str>,
    pub check: Check,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.id, self.name)
    }
}

impl Rule {
    /// Whether `name` is this rule's id or name.
    pub fn is_named(&self, name: &str) -> bool {
        self.id.eq_ignore_ascii_case(name) || self.name.eq_ignore_ascii_case(name)
    }

    pub fn lookup(name: &str) -> Option<&'static Rule> {
        RULES.iter().copied().find(|r| r.is_named(name))
    }

    pub fn is_migration_rule(&self) -> bool {
        matches!(self.check, Check::Operation(_))
    }

    /// Whether the rule reads SQL statements (rather than migration operations).
    pub fn is_statement_rule(&self) -> bool {
        matches!(self.check, Check::Statement(_) | Check::Clauses(_))
    }

    pub(crate) fn check_statement(&self, cx: &Cx) -> Vec<Hit> {
        match self.check {
            Check::Statement(f) => f(cx).map(Hit::new).into_iter().collect(),
            Check::Clauses(f) => f(cx),
            _ => Vec::new(),
        }
    }
}

pub(crate) fn serialize_rule_id<S: serde::Serializer>(
    rule: &&'static Rule,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("Rule", 2)?;
    st.serialize_field("id", rule.id)?;
    st.serialize_field("name", rule.name)?;
    st.end()
}

/// Every hit `check` gives for the actions of the statement's ALTER TABLE, each pointing at its
/// command, when the table existed before this file (a table the file created is not in use
/// yet).
pub(crate) fn each_action(
    cx: &Cx,
    mut check: impl FnMut(&TableName, &AlterAction, Clause) -> Option<Hit>,
) -> Vec<Hit> {
    match &cx.stmt.kind {
        StmtKind::AlterTable { table, actions } if !cx.state.is_new(table) => actions
            .iter()
            .enumerate()
            .filter_map(|(i, a)| {
                let clause = Clause {
                    span: cx.stmt.clauses.get(i).copied(),
                    source: cx.source,
                };
                let at = clause.span.map(|s| s.start);
                check(table, a, clause).map(|h| if h.at.is_none() { h.at(at) } else { h })
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Where an ALTER TABLE command sits, and its text as the user wrote it.
#[derive(Clone, Copy)]
pub(crate) struct Clause<'a> {
    pub span: Option<Span>,
    source: &'a str,
}

impl Clause<'_> {
    /// The command's text (`ADD CONSTRAINT ... FOREIGN KEY ...`), if it could be located.
    pub fn text(&self) -> Option<&str> {
        self.span.map(|s| &self.source[s.start..s.end])
    }
}

/// A name PostgreSQL would give: `<table>_<column>_<suffix>`, quoted when it needs to be.
pub(crate) fn derived_name(table: &TableName, column: &str, suffix: &str) -> String {
    crate::convert::names::object_name(&table.name, Some(column), suffix)
}

/// An identifier as SQL, as a person writes it: bare when PostgreSQL reads it back unchanged
/// (lower case, not a reserved word), quoted otherwise.
pub(crate) fn ident(name: &str) -> String {
    use pg_query::protobuf::KeywordKind;
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    let not_reserved = || {
        pg_query::scan(name).is_ok_and(|s| {
            s.tokens.len() == 1
                && matches!(
                    KeywordKind::try_from(s.tokens[0].keyword_kind),
                    Ok(KeywordKind::NoKeyword | KeywordKind::UnreservedKeyword)
                )
        })
    };
    if plain && not_reserved() {
        name.to_string()
    } else {
        tandem_model::ident::quote_ident(name)
    }
}

/// `text` with `insert` after the first whole word `word` (ASCII case-insensitive), e.g.
/// `CONCURRENTLY` after `INDEX`.
pub(crate) fn insert_after_word(text: &str, word: &str, insert: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let word = word.to_ascii_lowercase();
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut from = 0;
    while let Some(i) = lower[from..].find(&word).map(|i| from + i) {
        let end = i + word.len();
        if !is_word(lower[..i].chars().next_back()) && !is_word(lower[end..].chars().next()) {
            return Some(format!("{}{insert}{}", &text[..end], &text[end..]));
        }
        from = end;
    }
    None
}

/// An ADD command's text with its constraint named: `ADD FOREIGN KEY ...` becomes
/// `ADD CONSTRAINT name FOREIGN KEY ...`; a command that names it already is kept.
pub(crate) fn named_add(clause: &str, name: &str) -> String {
    let rest = clause
        .get(..3)
        .filter(|p| p.eq_ignore_ascii_case("add"))
        .map(|_| clause[3..].trim_start())
        .unwrap_or(clause);
    if rest
        .get(..10)
        .is_some_and(|p| p.eq_ignore_ascii_case("constraint"))
    {
        format!("ADD {rest}")
    } else {
        format!("ADD CONSTRAINT {} {rest}", ident(name))
    }
}

/// Every column type the statement writes down (new columns and type changes), with its column.
pub(crate) fn column_types(stmt: &Statement) -> Vec<(&str, &TypeSpec, Option<&ColumnSpec>)> {
    match &stmt.kind {
        StmtKind::CreateTable { columns, .. } => columns
            .iter()
            .map(|c| (c.name.as_str(), &c.ty, Some(c)))
            .collect(),
        StmtKind::AlterTable { actions, .. } => actions
            .iter()
            .filter_map(|a| match a {
                AlterAction::AddColumn(c) => Some((c.name.as_str(), &c.ty, Some(c))),
                AlterAction::AlterType { column, ty } => Some((column.as_str(), ty, None)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A hit for every column whose type is named `type_name`, at its ADD COLUMN (or the
/// statement), with the statement's text where the type is replaced by `better`, for the
/// type-choice rules.
pub(crate) fn each_column_of_type(
    cx: &Cx,
    type_name: &str,
    better: &str,
    message: impl Fn(&str) -> String,
) -> Vec<Hit> {
    let at = |i: usize| cx.stmt.clauses.get(i).map(|s| s.start);
    // (column, where, whether it is an ADD COLUMN)
    let found: Vec<(&str, Option<usize>, bool)> = match &cx.stmt.kind {
        StmtKind::CreateTable { columns, .. } => columns
            .iter()
            .filter(|c| c.ty.name == type_name)
            .map(|c| (c.name.as_str(), None, false))
            .collect(),
        StmtKind::AlterTable { actions, .. } => actions
            .iter()
            .enumerate()
            .filter_map(|(i, a)| match a {
                AlterAction::AddColumn(c) if c.ty.name == type_name => {
                    Some((c.name.as_str(), at(i), true))
                }
                AlterAction::AlterType { column, ty } if ty.name == type_name => {
                    Some((column.as_str(), at(i), false))
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    found
        .into_iter()
        .map(|(name, at, added)| {
            let mut hit = Hit::new(message(name)).at(at);
            if let (StmtKind::AlterTable { table, .. }, true) = (&cx.stmt.kind, added) {
                hit = hit.instead(format!(
                    "SET lock_timeout = '2s';\nALTER TABLE {} ADD COLUMN {} {better};",
                    table.display,
                    ident(name)
                ));
            }
            hit
        })
        .collect()
}

/// The table most examples start from.
pub const USERS: &str = "CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text, email text, legacy text, org_id bigint);\nCREATE TABLE orgs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);\nINSERT INTO orgs DEFAULT VALUES;\nINSERT INTO users (name, email, org_id) VALUES ('ada', 'ada@example.com', 1);";
