//! Pieces shared by several operations: column definitions, check and foreign-key clauses,
//! table constraints and index elements, as pgroll's file format spells them.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// A column of `create_table` or `add_column`. Columns are NOT NULL unless `nullable: true`,
/// as in pgroll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnDef {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
    #[serde(default)]
    pub nullable: bool,
    #[serde(default)]
    pub pk: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckConstraint>,
    // Also read without a name, as the first pgroll releases wrote it (`legacy`).
    #[serde(
        default,
        deserialize_with = "super::legacy::references_maybe_unnamed",
        skip_serializing_if = "Option::is_none"
    )]
    pub references: Option<ForeignKeyReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<Generated>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Generated {
    /// A stored generated column's expression.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub expression: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sequence_options: String,
    #[serde(default)]
    pub user_specified_values: IdentityKind,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum IdentityKind {
    #[default]
    #[serde(rename = "ALWAYS")]
    Always,
    #[serde(rename = "BY DEFAULT")]
    ByDefault,
}

impl IdentityKind {
    pub fn sql(self) -> &'static str {
        match self {
            IdentityKind::Always => "ALWAYS",
            IdentityKind::ByDefault => "BY DEFAULT",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckConstraint {
    pub name: String,
    pub constraint: String,
    #[serde(default)]
    pub no_inherit: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UniqueConstraint {
    pub name: String,
}

/// A column-level foreign key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForeignKeyReference {
    pub name: String,
    pub table: String,
    pub column: String,
    #[serde(default)]
    pub match_type: MatchType,
    #[serde(default)]
    pub on_delete: FkAction,
    #[serde(default)]
    pub on_update: FkAction,
    #[serde(default)]
    pub deferrable: bool,
    #[serde(default)]
    pub initially_deferred: bool,
}

/// A table-level foreign key's target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableForeignKeyReference {
    pub table: String,
    pub columns: Vec<String>,
    #[serde(default)]
    pub match_type: MatchType,
    #[serde(default)]
    pub on_delete: FkAction,
    #[serde(default)]
    pub on_update: FkAction,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_delete_set_columns: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FkAction {
    #[default]
    #[serde(rename = "NO ACTION", alias = "no action")]
    NoAction,
    #[serde(rename = "RESTRICT", alias = "restrict")]
    Restrict,
    #[serde(rename = "CASCADE", alias = "cascade")]
    Cascade,
    #[serde(rename = "SET NULL", alias = "set null")]
    SetNull,
    #[serde(rename = "SET DEFAULT", alias = "set default")]
    SetDefault,
}

impl FkAction {
    pub fn sql(self) -> &'static str {
        match self {
            FkAction::NoAction => "NO ACTION",
            FkAction::Restrict => "RESTRICT",
            FkAction::Cascade => "CASCADE",
            FkAction::SetNull => "SET NULL",
            FkAction::SetDefault => "SET DEFAULT",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MatchType {
    #[default]
    #[serde(rename = "SIMPLE")]
    Simple,
    #[serde(rename = "FULL")]
    Full,
    #[serde(rename = "PARTIAL")]
    Partial,
}

impl MatchType {
    pub fn sql(self) -> &'static str {
        match self {
            MatchType::Simple => "SIMPLE",
            MatchType::Full => "FULL",
            MatchType::Partial => "PARTIAL",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintType {
    Unique,
    Check,
    PrimaryKey,
    ForeignKey,
    Exclude,
}

/// A table constraint of `create_table`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableConstraint {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ConstraintType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    #[serde(default)]
    pub deferrable: bool,
    #[serde(default)]
    pub initially_deferred: bool,
    #[serde(default)]
    pub nulls_not_distinct: bool,
    #[serde(default)]
    pub no_inherit: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub check: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<TableForeignKeyReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Exclude>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_parameters: Option<IndexParameters>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Exclude {
    #[serde(default)]
    pub index_method: String,
    #[serde(default)]
    pub elements: String,
    #[serde(default)]
    pub predicate: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexParameters {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tablespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub storage_parameters: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_columns: Vec<String>,
}

/// One element of `create_index`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexField {
    pub column: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub collate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<SortOrder>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opclass: Option<OpClass>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nulls: Option<NullsOrder>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SortOrder {
    #[serde(rename = "ASC")]
    Asc,
    #[serde(rename = "DESC")]
    Desc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum NullsOrder {
    #[serde(rename = "FIRST")]
    First,
    #[serde(rename = "LAST")]
    Last,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpClass {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IndexMethod {
    #[default]
    Btree,
    Hash,
    Gist,
    Spgist,
    Gin,
    Brin,
}

impl IndexMethod {
    pub fn sql(self) -> &'static str {
        match self {
            IndexMethod::Btree => "btree",
            IndexMethod::Hash => "hash",
            IndexMethod::Gist => "gist",
            IndexMethod::Spgist => "spgist",
            IndexMethod::Gin => "gin",
            IndexMethod::Brin => "brin",
        }
    }
}

/// Per-column SQL expressions of the multi-column operations.
pub type ColumnExprs = BTreeMap<String, String>;

/// A field that distinguishes "absent" from "null" from a value, as pgroll's nullable fields do
/// (`default: null` drops a default; no `default` leaves it alone).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Nullable<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T> Nullable<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Nullable::Absent)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Nullable<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Only called when the key is present; absence comes from `#[serde(default)]`.
        Ok(match Option::<T>::deserialize(d)? {
            None => Nullable::Null,
            Some(v) => Nullable::Value(v),
        })
    }
}

impl ColumnDef {
    /// The column as a snapshot records it.
    pub fn to_column(&self) -> crate::schema::Column {
        crate::schema::Column {
            name: self.name.clone(),
            data_type: self.data_type.clone(),
            // A primary key column is NOT NULL whatever `nullable` says.
            nullable: self.nullable && !self.pk,
            default: self.default.clone(),
            identity: self
                .generated
                .as_ref()
                .and_then(|g| g.identity.as_ref())
                .map(|i| i.user_specified_values.sql().to_string()),
            generated: self
                .generated
                .as_ref()
                .filter(|g| !g.expression.is_empty())
                .map(|g| g.expression.clone()),
            comment: self.comment.clone(),
        }
    }

    /// Checks a column definition; `field` is its path, such as `column` or `columns[2]`.
    pub(crate) fn check(
        &self,
        cx: &mut crate::validate::Cx<'_>,
        field: &str,
    ) -> crate::validate::Check {
        use crate::error::FieldError;
        crate::validate::new_name(&format!("{field}.name"), &self.name)?;
        crate::validate::not_empty(&format!("{field}.type"), &self.data_type)?;
        cx.require_type(&format!("{field}.type"), &self.data_type);
        if let Some(g) = &self.generated {
            if g.identity.is_some() && !g.expression.is_empty() {
                return Err(FieldError::new(
                    format!("{field}.generated"),
                    "a column is either an identity or generated from an expression, not both",
                ));
            }
            if g.identity.is_none() && g.expression.is_empty() {
                return Err(FieldError::new(
                    format!("{field}.generated"),
                    "needs `expression` or `identity`",
                ));
            }
            if self.default.is_some() {
                return Err(FieldError::new(
                    format!("{field}.default"),
                    "a generated column cannot also have a default",
                ));
            }
        }
        if let Some(c) = &self.check {
            crate::validate::new_name(&format!("{field}.check.name"), &c.name)?;
            crate::validate::not_empty(&format!("{field}.check.constraint"), &c.constraint)?;
        }
        if let Some(r) = &self.references {
            crate::validate::new_name(&format!("{field}.references.name"), &r.name)?;
        }
        Ok(())
    }
}
