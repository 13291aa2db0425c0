//! The older spellings of pgroll's format, read as they are and turned into today's operations,
//! so that files written by older pgroll releases (and histories stored from them) still load.
//! Only reading knows about them: tandem writes, stores and checksums the current form.
//!
//! What pgroll's own history shows, and what each becomes:
//!
//! - `create_index.columns` as a list of names (`[name, email]`, before pgroll 0.10) or as a map
//!   of name to settings (`{name: {}, email: {sort: DESC}}`, until the list of `{column: ...}`
//!   maps): the list of index elements, in the order written.
//! - `set_not_null: {table, column, up, down}` (the first releases): `alter_column` with
//!   `nullable: false`.
//! - `set_unique: {name, table, columns}` (the first releases): `create_constraint` of type
//!   `unique`.
//! - `alter_column.check` as a bare expression (`check: length(title) > 3`, before it took
//!   `{name, constraint}`): a check named as PostgreSQL names one, `<table>_<column>_check`.
//! - `drop_constraint.column` (until pgroll inferred it from the constraint): accepted and
//!   ignored, since the constraint's name says which column it covers.
//! - `on_delete`/`on_update` in lower case (`cascade`, `set null`), as releases that pasted the
//!   value into SQL took it.
//! - A top-level `$schema` (the JSON Schema URL pgroll writes into its files): ignored.

use super::common::{CheckConstraint, IndexField, NullsOrder, OpClass, SortOrder};
use super::{
    AddColumn, AlterColumn, CreateConstraint, CreateConstraintType, CreateIndex, CreateTable,
    DropColumn, DropConstraint, DropIndex, DropMultiColumnConstraint, DropTable, Operation, RawSql,
    RenameColumn, RenameConstraint, RenameTable, SetReplicaIdentity,
};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// Every operation kind as read from a file: today's, plus the older kinds that pgroll has
/// since folded into them. Keep it in step with [`Operation`]: a kind missing here cannot be
/// read (the model's tests parse one of each).
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", rename = "Operation")]
pub(crate) enum OperationOnDisk {
    CreateTable(CreateTable),
    DropTable(DropTable),
    RenameTable(RenameTable),
    AddColumn(AddColumn),
    DropColumn(DropColumn),
    RenameColumn(RenameColumn),
    AlterColumn(AlterColumn),
    CreateIndex(CreateIndex),
    DropIndex(DropIndex),
    CreateConstraint(CreateConstraint),
    DropConstraint(DropConstraint),
    DropMulticolumnConstraint(DropMultiColumnConstraint),
    RenameConstraint(RenameConstraint),
    SetReplicaIdentity(SetReplicaIdentity),
    Sql(RawSql),
    SetNotNull(SetNotNull),
    SetUnique(SetUnique),
}

/// `set_not_null`, the first releases' way to make a column NOT NULL.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetNotNull {
    table: String,
    column: String,
    #[serde(default)]
    up: String,
    #[serde(default)]
    down: String,
}

/// `set_unique`, the first releases' way to add a unique constraint.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetUnique {
    name: String,
    table: String,
    columns: Vec<String>,
}

impl From<OperationOnDisk> for Operation {
    fn from(op: OperationOnDisk) -> Operation {
        match op {
            OperationOnDisk::CreateTable(o) => Operation::CreateTable(o),
            OperationOnDisk::DropTable(o) => Operation::DropTable(o),
            OperationOnDisk::RenameTable(o) => Operation::RenameTable(o),
            OperationOnDisk::AddColumn(o) => Operation::AddColumn(o),
            OperationOnDisk::DropColumn(o) => Operation::DropColumn(o),
            OperationOnDisk::RenameColumn(o) => Operation::RenameColumn(o),
            OperationOnDisk::AlterColumn(mut o) => {
                // A check written as a bare expression gets the name PostgreSQL would give it.
                if let Some(check) = o.check.as_mut().filter(|c| c.name.is_empty()) {
                    check.name = format!("{}_{}_check", o.table, o.column);
                }
                Operation::AlterColumn(o)
            }
            OperationOnDisk::CreateIndex(o) => Operation::CreateIndex(o),
            OperationOnDisk::DropIndex(o) => Operation::DropIndex(o),
            OperationOnDisk::CreateConstraint(o) => Operation::CreateConstraint(o),
            OperationOnDisk::DropConstraint(o) => Operation::DropConstraint(o),
            OperationOnDisk::DropMulticolumnConstraint(o) => {
                Operation::DropMulticolumnConstraint(o)
            }
            OperationOnDisk::RenameConstraint(o) => Operation::RenameConstraint(o),
            OperationOnDisk::SetReplicaIdentity(o) => Operation::SetReplicaIdentity(o),
            OperationOnDisk::Sql(o) => Operation::Sql(o),
            OperationOnDisk::SetNotNull(o) => Operation::AlterColumn(AlterColumn {
                table: o.table,
                column: o.column,
                name: None,
                data_type: None,
                nullable: Some(false),
                check: None,
                unique: None,
                references: None,
                default: Default::default(),
                comment: Default::default(),
                up: o.up,
                down: o.down,
            }),
            OperationOnDisk::SetUnique(o) => Operation::CreateConstraint(CreateConstraint {
                table: o.table,
                name: o.name,
                kind: CreateConstraintType::Unique,
                columns: o.columns,
                check: None,
                no_inherit: false,
                index_parameters: None,
                references: None,
                up: Default::default(),
                down: Default::default(),
            }),
        }
    }
}

/// `drop_constraint` as read: today's fields, and the `column` older releases required.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename = "DropConstraint")]
pub(crate) struct DropConstraintOnDisk {
    table: String,
    name: String,
    #[serde(default)]
    up: String,
    #[serde(default)]
    down: String,
    /// Older releases named the constraint's column; the constraint itself says which it is.
    #[serde(default, rename = "column")]
    _column: Option<String>,
}

impl From<DropConstraintOnDisk> for DropConstraint {
    fn from(o: DropConstraintOnDisk) -> DropConstraint {
        DropConstraint {
            table: o.table,
            name: o.name,
            up: o.up,
            down: o.down,
        }
    }
}

/// An index element's settings in the older map form, where the column is the key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexSettings {
    #[serde(default)]
    collate: String,
    #[serde(default)]
    sort: Option<SortOrder>,
    #[serde(default)]
    opclass: Option<OpClass>,
    #[serde(default)]
    nulls: Option<NullsOrder>,
}

/// One element of `create_index.columns` in the list form: a map with `column`, or (older) a
/// bare column name.
struct IndexElement(IndexField);

impl<'de> Deserialize<'de> for IndexElement {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IndexElement;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an index column: a map with `column` (or, as older pgroll wrote it, a column name)")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<IndexElement, E> {
                Ok(IndexElement(IndexField {
                    column: s.to_string(),
                    collate: String::new(),
                    sort: None,
                    opclass: None,
                    nulls: None,
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<IndexElement, A::Error> {
                IndexField::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(IndexElement)
            }
        }
        d.deserialize_any(V)
    }
}

/// `create_index.columns`: a list of elements (maps with `column`, or names), or the older map
/// of column name to settings. The order written is kept.
pub(crate) fn index_columns<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IndexField>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<IndexField>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of index columns (maps with `column`, or column names)")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<IndexField>, A::Error> {
            let mut out = Vec::new();
            while let Some(IndexElement(f)) = seq.next_element()? {
                out.push(f);
            }
            Ok(out)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<IndexField>, A::Error> {
            let mut out = Vec::new();
            while let Some((column, s)) = map.next_entry::<String, Option<IndexSettings>>()? {
                let s = s.unwrap_or(IndexSettings {
                    collate: String::new(),
                    sort: None,
                    opclass: None,
                    nulls: None,
                });
                out.push(IndexField {
                    column,
                    collate: s.collate,
                    sort: s.sort,
                    opclass: s.opclass,
                    nulls: s.nulls,
                });
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// `alter_column.check`: `{name, constraint}`, or (older) the bare expression, whose name
/// [`Operation::from`] fills in once the table and column are known.
pub(crate) fn check_or_expression<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<CheckConstraint>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<CheckConstraint>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a check: a map with `name` and `constraint` (or, as older pgroll wrote it, the expression)")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            Ok(Some(CheckConstraint {
                name: String::new(),
                constraint: s.to_string(),
                no_inherit: false,
            }))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            CheckConstraint::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
    d.deserialize_any(V)
}
