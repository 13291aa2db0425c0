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
pub mod drop_index_without_concurrently;
pub mod drop_table;
pub mod identifier_too_long;
pub mod missing_lock_timeout;
pub mod prefer_bigint_identity;
pub mod prefer_jsonb;
pub mod prefer_text_over_char;
pub mod prefer_timestamptz;
pub mod reindex_without_concurrently;
pub mod rename_column;
pub mod rename_table;
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

/// What a rule looks at.
#[derive(Clone, Copy)]
pub enum Check {
    /// One SQL statement in its context.
    Statement(fn(&Cx) -> Option<String>),
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

    pub(crate) fn check_statement(&self, cx: &Cx) -> Option<String> {
        match self.check {
            Check::Statement(f) => f(cx),
            _ => None,
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

/// The first message `check` gives for an action of the statement's ALTER TABLE, when the
/// table existed before this file (a table the file created is not in use yet).
pub(crate) fn first_action(
    cx: &Cx,
    mut check: impl FnMut(&TableName, &AlterAction) -> Option<String>,
) -> Option<String> {
    match &cx.stmt.kind {
        StmtKind::AlterTable { table, actions } if !cx.state.is_new(table) => {
            actions.iter().find_map(|a| check(table, a))
        }
        _ => None,
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

/// The first column whose type is named `type_name`, for the type-choice rules.
pub(crate) fn first_column_of_type<'a>(stmt: &'a Statement, type_name: &str) -> Option<&'a str> {
    column_types(stmt)
        .into_iter()
        .find(|(_, ty, _)| ty.name == type_name)
        .map(|(name, _, _)| name)
}

/// The table most examples start from.
pub const USERS: &str = "CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text, email text, legacy text, org_id bigint);\nCREATE TABLE orgs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);\nINSERT INTO orgs DEFAULT VALUES;\nINSERT INTO users (name, email, org_id) VALUES ('ada', 'ada@example.com', 1);";
