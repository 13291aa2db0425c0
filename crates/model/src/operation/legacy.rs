//! The older spellings of pgroll's format, read as they are and turned into today's operations,
//! so that files written by older pgroll releases (and histories stored from them) still load.
//! Only reading knows about them: tandem writes, stores and checksums the current form.
//!
//! What pgroll's own history shows, and what each becomes:
//!
//! - `create_index.columns` as a list of names (`[name, email]`, before pgroll 0.10) or as a map
//!   of name to settings (`{name: {}, email: {sort: DESC}}`, until the list of `{column: ...}`
//!   maps): the list of index elements, in the order written.
//! - The column operations of the first releases, before `alter_column` took them in (pgroll
//!   PRs #91–#93): `change_type`, `set_not_null`, `set_check_constraint` and `set_foreign_key`,
//!   each `{table, column, ..., up, down}`: `alter_column` with `type`, `nullable: false`,
//!   `check` or `references`.
//! - `set_unique: {name, table, columns}` (the first releases): `create_constraint` of type
//!   `unique`.
//! - `alter_column.not_null: true` (between PRs #93 and #181): `nullable: false`.
//! - A check as a bare expression (`check: length(title) > 3`, before it took
//!   `{name, constraint}`): a check named as PostgreSQL names one, `<table>_<column>_check`.
//! - A foreign key without `name` (the first releases): named as PostgreSQL names one,
//!   `<table>_<column>_fkey`.
//! - `drop_constraint.column` (until pgroll inferred it from the constraint): accepted and
//!   ignored, since the constraint's name says which column it covers.
//! - `on_delete`/`on_update` in lower case (`cascade`, `set null`), as releases that pasted the
//!   value into SQL took it.
//! - A top-level `$schema` (the JSON Schema URL pgroll writes into its files): ignored.

use super::common::{
    CheckConstraint, ColumnDef, FkAction, ForeignKeyReference, IndexField, MatchType, Nullable,
    NullsOrder, OpClass, SortOrder, UniqueConstraint,
};
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
    ChangeType(ChangeType),
    SetCheckConstraint(SetCheckConstraint),
    SetForeignKey(SetForeignKey),
}

/// `change_type`, the first releases' way to change a column's type.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangeType {
    table: String,
    column: String,
    #[serde(rename = "type")]
    data_type: String,
    #[serde(default)]
    up: String,
    #[serde(default)]
    down: String,
}

/// `set_check_constraint`, the first releases' way to add a check, as a bare expression.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetCheckConstraint {
    table: String,
    column: String,
    check: String,
    #[serde(default)]
    up: String,
    #[serde(default)]
    down: String,
}

/// `set_foreign_key`, the first releases' way to add a foreign key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetForeignKey {
    table: String,
    column: String,
    references: ForeignKeyOnDisk,
    #[serde(default)]
    up: String,
    #[serde(default)]
    down: String,
}

/// An `alter_column` that changes nothing yet, for the older operations to fill in.
fn alter(table: String, column: String, up: String, down: String) -> AlterColumn {
    AlterColumn {
        table,
        column,
        name: None,
        data_type: None,
        nullable: None,
        check: None,
        unique: None,
        references: None,
        default: Nullable::Absent,
        comment: Nullable::Absent,
        up,
        down,
    }
}

/// PostgreSQL's own name for a check or foreign key of one column: `<table>_<column>_<suffix>`.
fn default_name(table: &str, column: &str, suffix: &str) -> String {
    format!("{table}_{column}_{suffix}")
}

/// Names a column's foreign key written without a name.
fn name_references(table: &str, column: &mut ColumnDef) {
    if let Some(r) = column.references.as_mut().filter(|r| r.name.is_empty()) {
        r.name = default_name(table, &column.name, "fkey");
    }
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
            OperationOnDisk::CreateTable(mut o) => {
                for c in &mut o.columns {
                    name_references(&o.name, c);
                }
                Operation::CreateTable(o)
            }
            OperationOnDisk::DropTable(o) => Operation::DropTable(o),
            OperationOnDisk::RenameTable(o) => Operation::RenameTable(o),
            OperationOnDisk::AddColumn(mut o) => {
                name_references(&o.table, &mut o.column);
                Operation::AddColumn(o)
            }
            OperationOnDisk::DropColumn(o) => Operation::DropColumn(o),
            OperationOnDisk::RenameColumn(o) => Operation::RenameColumn(o),
            OperationOnDisk::AlterColumn(o) => Operation::AlterColumn(o),
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
                nullable: Some(false),
                ..alter(o.table, o.column, o.up, o.down)
            }),
            OperationOnDisk::ChangeType(o) => Operation::AlterColumn(AlterColumn {
                data_type: Some(o.data_type),
                ..alter(o.table, o.column, o.up, o.down)
            }),
            OperationOnDisk::SetCheckConstraint(o) => Operation::AlterColumn(AlterColumn {
                check: Some(CheckConstraint {
                    name: default_name(&o.table, &o.column, "check"),
                    constraint: o.check,
                    no_inherit: false,
                }),
                ..alter(o.table, o.column, o.up, o.down)
            }),
            OperationOnDisk::SetForeignKey(o) => {
                let mut references = ForeignKeyReference::from(o.references);
                if references.name.is_empty() {
                    references.name = default_name(&o.table, &o.column, "fkey");
                }
                Operation::AlterColumn(AlterColumn {
                    references: Some(references),
                    ..alter(o.table, o.column, o.up, o.down)
                })
            }
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

/// `alter_column` as read: today's fields, and the older `not_null`, bare check expression
/// and unnamed foreign key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename = "AlterColumn")]
pub(crate) struct AlterColumnOnDisk {
    table: String,
    column: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "type", default)]
    data_type: Option<String>,
    #[serde(default)]
    nullable: Option<bool>,
    /// The inverse of `nullable`, as pgroll spelled it for a month of 2023.
    #[serde(default)]
    not_null: Option<bool>,
    #[serde(default, deserialize_with = "check_or_expression")]
    check: Option<CheckConstraint>,
    #[serde(default)]
    unique: Option<UniqueConstraint>,
    #[serde(default)]
    references: Option<ForeignKeyOnDisk>,
    #[serde(default)]
    default: Nullable<String>,
    #[serde(default)]
    comment: Nullable<String>,
    #[serde(default)]
    up: String,
    #[serde(default)]
    down: String,
}

impl TryFrom<AlterColumnOnDisk> for AlterColumn {
    type Error = String;
    fn try_from(o: AlterColumnOnDisk) -> Result<AlterColumn, String> {
        let nullable = match (o.nullable, o.not_null) {
            (Some(_), Some(_)) => {
                return Err("give `nullable`, or the older `not_null`, not both".into())
            }
            (nullable, not_null) => nullable.or(not_null.map(|n| !n)),
        };
        let mut check = o.check;
        if let Some(c) = check.as_mut().filter(|c| c.name.is_empty()) {
            c.name = default_name(&o.table, &o.column, "check");
        }
        let references = o.references.map(|r| {
            let mut r = ForeignKeyReference::from(r);
            if r.name.is_empty() {
                r.name = default_name(&o.table, &o.column, "fkey");
            }
            r
        });
        Ok(AlterColumn {
            table: o.table,
            column: o.column,
            name: o.name,
            data_type: o.data_type,
            nullable,
            check,
            unique: o.unique,
            references,
            default: o.default,
            comment: o.comment,
            up: o.up,
            down: o.down,
        })
    }
}

/// A column-level foreign key as read: its `name` may be missing, as the first releases wrote
/// it; whoever knows the table and column names it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename = "ForeignKeyReference")]
pub(crate) struct ForeignKeyOnDisk {
    #[serde(default)]
    name: String,
    table: String,
    column: String,
    #[serde(default)]
    match_type: MatchType,
    #[serde(default)]
    on_delete: FkAction,
    #[serde(default)]
    on_update: FkAction,
    #[serde(default)]
    deferrable: bool,
    #[serde(default)]
    initially_deferred: bool,
}

impl From<ForeignKeyOnDisk> for ForeignKeyReference {
    fn from(o: ForeignKeyOnDisk) -> ForeignKeyReference {
        ForeignKeyReference {
            name: o.name,
            table: o.table,
            column: o.column,
            match_type: o.match_type,
            on_delete: o.on_delete,
            on_update: o.on_update,
            deferrable: o.deferrable,
            initially_deferred: o.initially_deferred,
        }
    }
}

/// `references` of a column definition: the name may be missing (see [`ForeignKeyOnDisk`]);
/// [`Operation::from`] names it once the table is known.
pub(crate) fn references_maybe_unnamed<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<ForeignKeyReference>, D::Error> {
    Ok(Option::<ForeignKeyOnDisk>::deserialize(d)?.map(ForeignKeyReference::from))
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
/// `AlterColumn::try_from` fills in from the table and column.
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
