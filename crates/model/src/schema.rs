//! A snapshot of one PostgreSQL schema as tandem reasons about it: tables, columns, constraints
//! and indexes. The pg crate reads it from the catalogs; validation replays operations on it in
//! memory; the state tables store the snapshot each completed migration left behind.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub name: String,
    pub tables: BTreeMap<String, Table>,
    /// Other relation names in the schema (sequences, views, indexes, types) that a new table or
    /// index may not take.
    #[serde(default)]
    pub other_relations: Vec<String>,
    /// Set once a `sql` operation has run in a replay: its effects are unknown, so a missing
    /// table or column is no longer a certain error.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub opaque: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    #[serde(default)]
    pub primary_key: Vec<String>,
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    #[serde(default)]
    pub indexes: Vec<Index>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Whether the table holds at least one row, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_rows: Option<bool>,
    #[serde(default, skip_serializing_if = "ReplicaIdentity::is_default")]
    pub replica_identity: ReplicaIdentity,
    /// Whether row-level security is enabled on the table (`ALTER TABLE ... ENABLE ROW LEVEL
    /// SECURITY`): a view over it must then read it with the querying role's rights.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub row_security: bool,
    /// Whether some column of the table has privileges of its own (`GRANT SELECT (col) ...`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub column_grants: bool,
    /// For a partitioned table, its partition key and partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitioning: Option<Partitioning>,
}

/// How a partitioned table is split: the columns of its partition key and its partitions (the
/// direct ones, which may live in another schema).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partitioning {
    /// The key's columns in order; `None` for a part of the key that is an expression.
    pub key: Vec<Option<String>>,
    pub partitions: Vec<Partition>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub schema: String,
    pub name: String,
    /// Whether the partition is itself partitioned.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partitioned: bool,
    /// What the partition has of its own rather than from its parent: `(column, what)` for each
    /// column an index or constraint made on the partition itself uses, `what` naming it
    /// ("index x", "constraint y").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub own: Vec<(String, String)>,
}

/// Which old values logical replication sends for an UPDATE or DELETE on a table (PostgreSQL's
/// `ALTER TABLE ... REPLICA IDENTITY`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaIdentity {
    /// The primary key's columns, if there is one.
    #[default]
    Default,
    /// Every column.
    Full,
    /// None.
    Nothing,
    /// The columns of this unique index.
    Index(String),
}

impl ReplicaIdentity {
    pub fn is_default(&self) -> bool {
        *self == ReplicaIdentity::Default
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// As `format_type` prints it, e.g. `character varying(255)`.
    pub data_type: String,
    pub nullable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// `ALWAYS` or `BY DEFAULT` for identity columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Expression of a stored generated column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    Check,
    Unique,
    PrimaryKey,
    ForeignKey,
    Exclude,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    pub name: String,
    pub kind: ConstraintKind,
    pub columns: Vec<String>,
    /// As `pg_get_constraintdef` prints it.
    pub definition: String,
    pub validated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    pub name: String,
    pub unique: bool,
    pub primary: bool,
    /// False for an index a failed CREATE INDEX CONCURRENTLY left behind.
    pub valid: bool,
    pub columns: Vec<String>,
    /// As `pg_get_indexdef` prints it.
    pub definition: String,
}

impl Schema {
    pub fn new(name: impl Into<String>) -> Self {
        Schema {
            name: name.into(),
            ..Schema::default()
        }
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    pub fn table_mut(&mut self, name: &str) -> Option<&mut Table> {
        self.tables.get_mut(name)
    }

    /// The table an index belongs to, and the index.
    pub fn find_index(&self, name: &str) -> Option<(&Table, &Index)> {
        self.tables
            .values()
            .find_map(|t| t.indexes.iter().find(|i| i.name == name).map(|i| (t, i)))
    }

    /// Whether a relation (table, index, sequence, view) of this name exists, so that a new
    /// table or index may not take it.
    pub fn relation_exists(&self, name: &str) -> bool {
        // An INVALID index left by a failed concurrent build does not count: create_index
        // drops and rebuilds it.
        self.tables.contains_key(name)
            || self.find_index(name).is_some_and(|(_, i)| i.valid)
            || self.other_relations.iter().any(|r| r == name)
    }
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn column_mut(&mut self, name: &str) -> Option<&mut Column> {
        self.columns.iter_mut().find(|c| c.name == name)
    }

    pub fn constraint(&self, name: &str) -> Option<&Constraint> {
        self.constraints.iter().find(|c| c.name == name)
    }
}
