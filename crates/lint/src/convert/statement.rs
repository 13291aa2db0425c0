//! One statement at a time: each becomes the tandem operation that expresses it, or a draft
//! that `fold` joins with its neighbours (a backfill `UPDATE`, `VALIDATE CONSTRAINT`, a
//! constraint `USING INDEX`), or a `sql` operation with a note saying why.

use super::names::{columns_part, Taken};
use super::sql;
use super::{Converted, Note, NoteKind};
use crate::model::Span;
use pg_query::protobuf::{
    self, AlterTableType, ConstrType, DropBehavior, ObjectType, SortByDir, SortByNulls,
    TransactionStmtKind,
};
use pg_query::{Node, NodeEnum};
use std::collections::BTreeMap;
use tandem_model::operation::*;
use tandem_model::{qualified, quote_ident, Operation};

/// What a statement turned into, before folding. A file has tens of these, so the size of
/// the `Operation` variant does not matter.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Draft {
    Op(Operation),
    /// `UPDATE t SET column = value [WHERE column IS NULL]`.
    Backfill {
        table: String,
        column: String,
        value: String,
        only_nulls: bool,
        sql: String,
    },
    /// `ALTER TABLE t VALIDATE CONSTRAINT name`.
    Validate {
        table: String,
        name: String,
        sql: String,
    },
    /// `ALTER TABLE t ADD CONSTRAINT name UNIQUE|PRIMARY KEY USING INDEX index`.
    UsingIndex {
        table: String,
        name: String,
        index: String,
        primary: bool,
        sql: String,
    },
    /// `DROP INDEX [CONCURRENTLY] IF EXISTS name`.
    DropIndexIfExists {
        name: String,
    },
    /// `COMMENT ON TABLE`.
    TableComment {
        table: String,
        comment: Option<String>,
        sql: String,
    },
}

#[derive(Debug, Clone)]
pub struct Item {
    pub span: Span,
    pub draft: Draft,
    pub notes: Vec<(NoteKind, String)>,
    /// The constraint this item adds `NOT VALID`, until a `VALIDATE` is folded in.
    pub not_valid: Option<String>,
}

impl Item {
    fn op(span: Span, op: Operation) -> Item {
        Item {
            span,
            draft: Draft::Op(op),
            notes: Vec::new(),
            not_valid: None,
        }
    }

    fn note(mut self, kind: NoteKind, message: impl Into<String>) -> Item {
        self.notes.push((kind, message.into()));
        self
    }

    /// The item as an operation: drafts that found no partner become `sql`.
    pub fn into_converted(mut self, at: &dyn Fn(Span) -> (usize, usize)) -> Converted {
        let kept = |sql: String, why: &str, notes: &mut Vec<(NoteKind, String)>| {
            notes.push((
                NoteKind::Warning,
                format!("kept as a `sql` operation: {why}"),
            ));
            Operation::Sql(RawSql {
                up: sql,
                down: String::new(),
                on_complete: false,
            })
        };
        let operation = match self.draft {
            Draft::Op(op) => op,
            Draft::DropIndexIfExists { name } => {
                self.notes.push((
                    NoteKind::Info,
                    "IF EXISTS dropped: tandem refuses to drop what does not exist".into(),
                ));
                Operation::DropIndex(DropIndex { name })
            }
            Draft::Backfill { sql, .. } => kept(
                sql,
                "an UPDATE that is not the backfill of a column added or made NOT NULL in this file; it updates every matching row in one transaction, holding their row locks until it ends (give the column's `up` instead, which tandem backfills in batches)",
                &mut self.notes,
            ),
            Draft::Validate { sql, .. } => kept(
                sql,
                "no tandem operation validates a constraint added earlier; VALIDATE CONSTRAINT takes SHARE UPDATE EXCLUSIVE, which blocks no reads or writes",
                &mut self.notes,
            ),
            Draft::UsingIndex { sql, .. } => kept(
                sql,
                "the index is not created in this file; attaching it takes a brief ACCESS EXCLUSIVE lock",
                &mut self.notes,
            ),
            Draft::TableComment { sql, table, .. } => {
                let mut op = kept(
                    sql,
                    "no tandem operation comments an existing table; COMMENT ON is a catalog change that blocks no reads or writes for long",
                    &mut self.notes,
                );
                if let Operation::Sql(raw) = &mut op {
                    raw.down = format!("COMMENT ON TABLE {} IS NULL", quote_ident(&table));
                }
                self.notes.push((
                    NoteKind::Info,
                    "`down` assumes the table had no comment before; write the old one if it had".into(),
                ));
                op
            }
        };
        if let Some(name) = &self.not_valid {
            self.notes.push((
                NoteKind::Warning,
                format!("the SQL leaves {name:?} NOT VALID; tandem adds it NOT VALID and validates it at start, after the backfill, so existing rows must satisfy it"),
            ));
        }
        let (line, column) = at(self.span);
        Converted {
            operation,
            line,
            notes: self
                .notes
                .into_iter()
                .map(|(kind, message)| Note {
                    kind,
                    line,
                    column,
                    message,
                })
                .collect(),
        }
    }
}

/// The conversion's state while statements go by.
pub struct Cx<'a> {
    source: &'a str,
    items: Vec<Item>,
    dropped: Vec<(Span, NoteKind, String)>,
    names: Taken,
    /// Tables created in the file, with their primary-key columns.
    created: BTreeMap<String, Vec<String>>,
    /// A `BEGIN` no `COMMIT` has ended yet.
    open_transaction: Option<Span>,
}

const TODO_DOWN: &str = "the old value computed from the new one, the inverse of `up`";

impl<'a> Cx<'a> {
    pub fn new(source: &'a str) -> Cx<'a> {
        Cx {
            source,
            items: Vec::new(),
            dropped: Vec::new(),
            names: Taken::default(),
            created: BTreeMap::new(),
            open_transaction: None,
        }
    }

    #[allow(clippy::type_complexity)]
    pub fn finish(mut self) -> (Vec<Item>, Vec<(Span, NoteKind, String)>) {
        if let Some(span) = self.open_transaction {
            self.dropped.push((
                span,
                NoteKind::Warning,
                "BEGIN without COMMIT: run as it is, the file commits nothing after it; the migration carries out every statement".into(),
            ));
        }
        (self.items, self.dropped)
    }

    fn text(&self, span: Span) -> String {
        self.source[span.start..span.end].to_string()
    }

    /// Keeps the statement as written, as a `sql` operation.
    fn keep(&mut self, span: Span, why: &str, down: String) {
        let sql = self.text(span);
        self.keep_sql(span, sql, why, down);
    }

    fn keep_sql(&mut self, span: Span, up: String, why: &str, down: String) {
        let mut item = Item::op(
            span,
            Operation::Sql(RawSql {
                up,
                down: down.clone(),
                on_complete: false,
            }),
        )
        .note(
            NoteKind::Warning,
            format!("kept as a `sql` operation: {why}"),
        );
        if down.is_empty() {
            item = item.note(
                NoteKind::Info,
                "no `down`: rollback cannot undo this statement; add one if it must be undone",
            );
        }
        self.items.push(item);
    }

    fn push(&mut self, span: Span, op: Operation) -> &mut Item {
        self.items.push(Item::op(span, op));
        self.items.last_mut().expect("just pushed")
    }

    pub fn statement(&mut self, span: Span, node: &NodeEnum) {
        let relation = match node {
            NodeEnum::CreateStmt(c) => c.relation.as_ref(),
            NodeEnum::AlterTableStmt(a) => a.relation.as_ref(),
            NodeEnum::IndexStmt(i) => i.relation.as_ref(),
            NodeEnum::RenameStmt(r) => r.relation.as_ref(),
            NodeEnum::UpdateStmt(u) => u.relation.as_ref(),
            _ => None,
        };
        if let Some(schema) = relation.map(|r| &r.schemaname).filter(|s| !s.is_empty()) {
            self.dropped.push((
                span,
                NoteKind::Info,
                format!("schema {schema:?} dropped from the table's name: tandem works in the schema `--schema` names (default public)"),
            ));
        }
        match node {
            NodeEnum::VacuumStmt(v) => {
                let full = v.options.iter().any(|o| {
                    matches!(o.node.as_ref(), Some(NodeEnum::DefElem(d)) if d.defname.eq_ignore_ascii_case("full"))
                });
                let message = if !v.is_vacuumcmd {
                    return self.keep(span, "no tandem operation does this; it runs as written at start", String::new());
                } else if full {
                    "VACUUM FULL dropped: it rewrites the table under an ACCESS EXCLUSIVE lock, blocking every read and write until it ends, and cannot run in a migration's transaction; use pg_repack or pg_squeeze instead"
                } else {
                    "VACUUM dropped: it is maintenance, not a schema change, and cannot run in a migration's transaction; autovacuum or a scheduled job does it"
                };
                self.dropped.push((span, NoteKind::Warning, message.into()));
            }
            NodeEnum::TransactionStmt(t) => {
                if t.kind == TransactionStmtKind::TransStmtBegin as i32
                    || t.kind == TransactionStmtKind::TransStmtStart as i32
                {
                    self.open_transaction = Some(span);
                } else if matches!(
                    TransactionStmtKind::try_from(t.kind),
                    Ok(TransactionStmtKind::TransStmtCommit | TransactionStmtKind::TransStmtRollback)
                ) {
                    self.open_transaction = None;
                }
                if t.kind == TransactionStmtKind::TransStmtRollback as i32 {
                    self.dropped.push((
                        span,
                        NoteKind::Warning,
                        "ROLLBACK dropped: tandem runs each operation in its own transactions; remove what the file rolls back".into(),
                    ));
                }
            }
            NodeEnum::VariableSetStmt(v) => {
                let name = v.name.to_ascii_lowercase();
                if !matches!(
                    name.as_str(),
                    "lock_timeout" | "statement_timeout" | "idle_in_transaction_session_timeout"
                ) {
                    self.dropped.push((
                        span,
                        NoteKind::Warning,
                        format!("SET {name} dropped: tandem runs operations on sessions of its own, which this setting would not reach"),
                    ));
                }
            }
            NodeEnum::ConstraintsSetStmt(_) => self.dropped.push((
                span,
                NoteKind::Info,
                "SET CONSTRAINTS dropped: it only changes when the constraints of its own transaction are checked".into(),
            )),
            NodeEnum::CreateStmt(c) => self.create_table(span, c),
            NodeEnum::AlterTableStmt(a) if a.objtype == ObjectType::ObjectTable as i32 => {
                self.alter_table(span, a)
            }
            NodeEnum::IndexStmt(i) => self.create_index(span, i),
            NodeEnum::DropStmt(d) => self.drop(span, d),
            NodeEnum::RenameStmt(r) => self.rename(span, r),
            NodeEnum::CommentStmt(c) => self.comment(span, c),
            NodeEnum::UpdateStmt(u) => self.update(span, u),
            other => {
                let down = inferred_down(other);
                self.keep(
                    span,
                    "no tandem operation does this; it runs as written at start",
                    down,
                );
            }
        }
    }

    fn create_table(&mut self, span: Span, c: &protobuf::CreateStmt) {
        let rv = c.relation.as_ref();
        let table = rv.map(|r| r.relname.clone()).unwrap_or_default();
        let unsupported = if !c.inh_relations.is_empty() {
            Some("a table with INHERITS or PARTITION OF has no tandem operation")
        } else if c.partspec.is_some() || c.partbound.is_some() {
            Some("a partitioned table or partition has no tandem operation")
        } else if rv.is_some_and(|r| r.relpersistence != "p") {
            Some("a TEMPORARY or UNLOGGED table has no tandem operation")
        } else if c.of_typename.is_some()
            || !c.options.is_empty()
            || !c.tablespacename.is_empty()
            || !c.access_method.is_empty()
        {
            Some("create_table has no field for OF type, WITH options, TABLESPACE or USING")
        } else {
            None
        };
        if let Some(why) = unsupported {
            return self.keep(
                span,
                why,
                format!("DROP TABLE IF EXISTS {}", quote_ident(&table)),
            );
        }
        match self.table_definition(&table, c) {
            Ok(op) => {
                let pk = op
                    .columns
                    .iter()
                    .filter(|c| c.pk)
                    .map(|c| c.name.clone())
                    .chain(
                        op.constraints
                            .iter()
                            .filter(|c| c.kind == ConstraintType::PrimaryKey)
                            .flat_map(|c| c.columns.clone()),
                    )
                    .collect();
                self.created.insert(table.clone(), pk);
                let item = self.push(span, Operation::CreateTable(op));
                if c.if_not_exists {
                    item.notes.push((
                        NoteKind::Info,
                        "IF NOT EXISTS dropped: tandem refuses a table that already exists".into(),
                    ));
                }
            }
            Err(why) => self.keep(
                span,
                &why,
                format!("DROP TABLE IF EXISTS {}", quote_ident(&table)),
            ),
        }
    }

    fn table_definition(
        &mut self,
        table: &str,
        c: &protobuf::CreateStmt,
    ) -> Result<CreateTable, String> {
        let mut columns = Vec::new();
        let mut constraints = Vec::new();
        for elt in &c.table_elts {
            match elt.node.as_ref() {
                Some(NodeEnum::ColumnDef(col)) => {
                    let (def, extra) = self.column(table, col, true)?;
                    columns.push(def);
                    constraints.extend(extra);
                }
                Some(NodeEnum::Constraint(con)) => {
                    constraints.push(self.table_constraint(table, con)?);
                }
                _ => return Err("LIKE has no field in create_table".into()),
            }
        }
        // A table-level primary key over one column is the column's `pk`, as the SQL's
        // inline form would be; named ones stay constraints to keep their names.
        let pk_count = columns.iter().filter(|c| c.pk).count();
        if pk_count > 1 {
            return Err("more than one PRIMARY KEY".into());
        }
        if columns.is_empty() {
            return Err("create_table needs at least one column".into());
        }
        Ok(CreateTable {
            name: table.to_string(),
            columns,
            constraints,
            comment: None,
        })
    }

    /// A column of CREATE TABLE (`in_create`) or ADD COLUMN, with the table constraints its
    /// inline clauses become when they cannot stay on the column.
    fn column(
        &mut self,
        table: &str,
        col: &protobuf::ColumnDef,
        in_create: bool,
    ) -> Result<(ColumnDef, Vec<TableConstraint>), String> {
        if col.coll_clause.is_some() || !col.compression.is_empty() || !col.storage.is_empty() {
            return Err(
                "a column's COLLATE, COMPRESSION or STORAGE has no field in tandem's column".into(),
            );
        }
        let data_type = col
            .type_name
            .as_ref()
            .and_then(sql::type_name)
            .ok_or("the column's type could not be read")?;
        let mut def = ColumnDef {
            name: col.colname.clone(),
            data_type,
            nullable: !col.is_not_null,
            pk: false,
            unique: false,
            default: col.raw_default.as_deref().and_then(sql::expr),
            check: None,
            references: None,
            comment: None,
            generated: None,
        };
        let mut extra = Vec::new();
        for con in &col.constraints {
            let Some(NodeEnum::Constraint(con)) = con.node.as_ref() else {
                continue;
            };
            let kind = ConstrType::try_from(con.contype).map_err(|_| "unknown constraint")?;
            if !con.conname.is_empty()
                && !matches!(
                    kind,
                    ConstrType::ConstrCheck
                        | ConstrType::ConstrForeign
                        | ConstrType::ConstrNotnull
                        | ConstrType::ConstrUnique
                        | ConstrType::ConstrPrimary
                )
            {
                return Err("a named column constraint of this kind has no field".into());
            }
            match kind {
                ConstrType::ConstrNull => def.nullable = true,
                ConstrType::ConstrNotnull => def.nullable = false,
                ConstrType::ConstrDefault => {
                    def.default = con.raw_expr.as_deref().and_then(sql::expr);
                }
                ConstrType::ConstrIdentity => {
                    if !con.options.is_empty() {
                        return Err("identity sequence options have no field here".into());
                    }
                    def.generated = Some(Generated {
                        expression: String::new(),
                        identity: Some(Identity {
                            sequence_options: String::new(),
                            user_specified_values: if con.generated_when == "d" {
                                IdentityKind::ByDefault
                            } else {
                                IdentityKind::Always
                            },
                        }),
                    });
                    def.nullable = false;
                }
                ConstrType::ConstrGenerated => {
                    let expression = con
                        .raw_expr
                        .as_deref()
                        .and_then(sql::expr)
                        .ok_or("the generation expression could not be read")?;
                    def.generated = Some(Generated {
                        expression,
                        identity: None,
                    });
                }
                ConstrType::ConstrPrimary => {
                    if !in_create {
                        return Err("add_column cannot add a primary key column".into());
                    }
                    if con.conname.is_empty() || con.conname == format!("{table}_pkey") {
                        def.pk = true;
                        self.names.take(&format!("{table}_pkey"));
                    } else {
                        extra.push(TableConstraint {
                            name: con.conname.clone(),
                            kind: ConstraintType::PrimaryKey,
                            columns: vec![def.name.clone()],
                            ..empty_constraint()
                        });
                    }
                    def.nullable = false;
                }
                ConstrType::ConstrUnique => {
                    let default_name = super::names::object_name(table, Some(&def.name), "key");
                    if con.nulls_not_distinct || !con.options.is_empty() || con.deferrable {
                        return Err("UNIQUE with NULLS NOT DISTINCT, WITH or DEFERRABLE".into());
                    }
                    if con.conname.is_empty() || con.conname == default_name {
                        def.unique = true;
                        self.names.take(&default_name);
                    } else if in_create {
                        extra.push(TableConstraint {
                            name: con.conname.clone(),
                            kind: ConstraintType::Unique,
                            columns: vec![def.name.clone()],
                            ..empty_constraint()
                        });
                    } else {
                        return Err("a named UNIQUE on ADD COLUMN has no field; add the column, then the constraint".into());
                    }
                }
                ConstrType::ConstrCheck => {
                    let constraint = con
                        .raw_expr
                        .as_deref()
                        .and_then(sql::expr)
                        .ok_or("the check expression could not be read")?;
                    let name = if con.conname.is_empty() {
                        self.names.choose(table, Some(&def.name), "check")
                    } else {
                        con.conname.clone()
                    };
                    if def.check.is_some() {
                        return Err("two CHECKs on one column".into());
                    }
                    def.check = Some(CheckConstraint {
                        name,
                        constraint,
                        no_inherit: con.is_no_inherit,
                    });
                }
                ConstrType::ConstrForeign => {
                    let target = con.pktable.as_ref().map(|r| r.relname.clone());
                    let target = target.ok_or("REFERENCES without a table")?;
                    let column = match sql::strings(&con.pk_attrs).as_slice() {
                        [one] => one.clone(),
                        [] => match self.created.get(&target).map(Vec::as_slice) {
                            Some([pk]) => pk.clone(),
                            _ => {
                                return Err(format!(
                                    "REFERENCES {target} names no column, and {target}'s primary key is not created in this file; write the column"
                                ))
                            }
                        },
                        _ => return Err("a column REFERENCES several columns".into()),
                    };
                    let name = if con.conname.is_empty() {
                        self.names.choose(table, Some(&def.name), "fkey")
                    } else {
                        con.conname.clone()
                    };
                    def.references = Some(ForeignKeyReference {
                        name,
                        table: target,
                        column,
                        match_type: match_type(&con.fk_matchtype),
                        on_delete: fk_action(&con.fk_del_action),
                        on_update: fk_action(&con.fk_upd_action),
                        deferrable: con.deferrable,
                        initially_deferred: con.initdeferred,
                    });
                }
                // DEFERRABLE and INITIALLY DEFERRED follow the REFERENCES they qualify.
                ConstrType::ConstrAttrDeferrable
                | ConstrType::ConstrAttrDeferred
                | ConstrType::ConstrAttrNotDeferrable
                | ConstrType::ConstrAttrImmediate => {
                    let Some(r) = def.references.as_mut() else {
                        return Err(
                            "DEFERRABLE on a column constraint other than REFERENCES".into()
                        );
                    };
                    match kind {
                        ConstrType::ConstrAttrDeferrable => r.deferrable = true,
                        ConstrType::ConstrAttrDeferred => {
                            r.deferrable = true;
                            r.initially_deferred = true;
                        }
                        ConstrType::ConstrAttrNotDeferrable => r.deferrable = false,
                        _ => r.initially_deferred = false,
                    }
                }
                _ => return Err("this column constraint has no field in tandem's column".into()),
            }
        }
        if def.pk {
            def.nullable = false;
        }
        Ok((def, extra))
    }

    fn table_constraint(
        &mut self,
        table: &str,
        con: &protobuf::Constraint,
    ) -> Result<TableConstraint, String> {
        let kind = ConstrType::try_from(con.contype).map_err(|_| "unknown constraint")?;
        let keys = sql::strings(&con.keys);
        let parameters = |con: &protobuf::Constraint| -> Result<Option<IndexParameters>, String> {
            let storage_parameters =
                sql::storage_parameters(&con.options).ok_or("WITH options could not be read")?;
            let include_columns = sql::strings(&con.including);
            if !con.indexspace.is_empty() {
                return Err("USING INDEX TABLESPACE has no field".into());
            }
            Ok(
                (!storage_parameters.is_empty() || !include_columns.is_empty()).then(|| {
                    IndexParameters {
                        tablespace: String::new(),
                        storage_parameters,
                        include_columns,
                    }
                }),
            )
        };
        let named = |names: &mut Taken, columns: Option<&[String]>, label: &str| {
            if con.conname.is_empty() {
                names.choose(table, columns.map(columns_part).as_deref(), label)
            } else {
                names.take(&con.conname);
                con.conname.clone()
            }
        };
        Ok(match kind {
            ConstrType::ConstrPrimary => TableConstraint {
                name: named(&mut self.names, None, "pkey"),
                kind: ConstraintType::PrimaryKey,
                columns: keys,
                deferrable: con.deferrable,
                initially_deferred: con.initdeferred,
                index_parameters: parameters(con)?,
                ..empty_constraint()
            },
            ConstrType::ConstrUnique => TableConstraint {
                name: named(&mut self.names, Some(&keys), "key"),
                kind: ConstraintType::Unique,
                columns: keys,
                deferrable: con.deferrable,
                initially_deferred: con.initdeferred,
                nulls_not_distinct: con.nulls_not_distinct,
                index_parameters: parameters(con)?,
                ..empty_constraint()
            },
            ConstrType::ConstrCheck => {
                let expr = con.raw_expr.as_deref().ok_or("CHECK without expression")?;
                let refs = sql::column_refs(expr);
                let name = if con.conname.is_empty() {
                    let one = (refs.len() == 1).then(|| refs[0].clone());
                    self.names.choose(table, one.as_deref(), "check")
                } else {
                    con.conname.clone()
                };
                TableConstraint {
                    name,
                    kind: ConstraintType::Check,
                    columns: refs,
                    no_inherit: con.is_no_inherit,
                    check: sql::expr(expr).ok_or("the check expression could not be read")?,
                    ..empty_constraint()
                }
            }
            ConstrType::ConstrForeign => {
                let columns = sql::strings(&con.fk_attrs);
                let target = con
                    .pktable
                    .as_ref()
                    .map(|r| r.relname.clone())
                    .ok_or("FOREIGN KEY without a table")?;
                let mut target_columns = sql::strings(&con.pk_attrs);
                if target_columns.is_empty() {
                    target_columns = self
                        .created
                        .get(&target)
                        .cloned()
                        .filter(|pk| pk.len() == columns.len())
                        .ok_or_else(|| format!("REFERENCES {target} names no columns, and {target}'s primary key is not created in this file; write them"))?;
                }
                TableConstraint {
                    name: named(&mut self.names, Some(&columns), "fkey"),
                    kind: ConstraintType::ForeignKey,
                    columns,
                    deferrable: con.deferrable,
                    initially_deferred: con.initdeferred,
                    references: Some(TableForeignKeyReference {
                        table: target,
                        columns: target_columns,
                        match_type: match_type(&con.fk_matchtype),
                        on_delete: fk_action(&con.fk_del_action),
                        on_update: fk_action(&con.fk_upd_action),
                        on_delete_set_columns: sql::strings(&con.fk_del_set_cols),
                    }),
                    ..empty_constraint()
                }
            }
            _ => return Err("this table constraint has no field in create_table".into()),
        })
    }

    fn alter_table(&mut self, span: Span, a: &protobuf::AlterTableStmt) {
        let table = a
            .relation
            .as_ref()
            .map(|r| r.relname.clone())
            .unwrap_or_default();
        let several = a.cmds.len() > 1;
        for cmd in &a.cmds {
            let Some(NodeEnum::AlterTableCmd(cmd)) = cmd.node.as_ref() else {
                continue;
            };
            // The action alone, for notes and for what stays `sql`.
            let alone = || {
                let mut one = a.clone();
                one.cmds = vec![Node {
                    node: Some(NodeEnum::AlterTableCmd(cmd.clone())),
                }];
                sql::statement(&NodeEnum::AlterTableStmt(one)).unwrap_or_default()
            };
            let text = if several { alone() } else { self.text(span) };
            if let Err(why) = self.alter_action(span, &table, cmd, &text, a.missing_ok) {
                // A column added as written is dropped again on rollback.
                let added = match cmd.def.as_deref().and_then(|d| d.node.as_ref()) {
                    Some(NodeEnum::ColumnDef(c))
                        if cmd.subtype == AlterTableType::AtAddColumn as i32 =>
                    {
                        format!(
                            "ALTER TABLE {} DROP COLUMN IF EXISTS {}",
                            quote_ident(&table),
                            quote_ident(&c.colname)
                        )
                    }
                    _ => String::new(),
                };
                self.keep_sql(span, text, &why, added);
            }
        }
    }

    fn alter_action(
        &mut self,
        span: Span,
        table: &str,
        cmd: &protobuf::AlterTableCmd,
        text: &str,
        if_exists: bool,
    ) -> Result<(), String> {
        let def = cmd.def.as_deref().and_then(|d| d.node.as_ref());
        let column = cmd.name.clone();
        let alter = |column: &str| AlterColumn {
            table: table.to_string(),
            column: column.to_string(),
            name: None,
            data_type: None,
            nullable: None,
            check: None,
            unique: None,
            references: None,
            default: Nullable::Absent,
            comment: Nullable::Absent,
            up: String::new(),
            down: String::new(),
        };
        let subtype = AlterTableType::try_from(cmd.subtype).unwrap_or(AlterTableType::Undefined);
        let item = match subtype {
            AlterTableType::AtAddColumn => {
                let Some(NodeEnum::ColumnDef(col)) = def else {
                    return Err("unreadable ADD COLUMN".into());
                };
                let created = self.created.contains_key(table);
                let (column, extra) = self.column(table, col, false)?;
                if !extra.is_empty() {
                    return Err("constraints add_column has no field for".into());
                }
                if column.generated.is_some() && !created {
                    return Err("adding an identity or stored generated column fills every existing row, rewriting the table under an ACCESS EXCLUSIVE lock; add a plain column with `up` instead".into());
                }
                let needs_up = !column.nullable && column.default.is_none() && !created;
                let item = self.push(
                    span,
                    Operation::AddColumn(AddColumn {
                        table: table.to_string(),
                        column,
                        up: String::new(),
                    }),
                );
                if needs_up {
                    item.notes.push((NoteKind::Info, "NOT NULL without a default: on a table with rows, give `up` (the value for existing rows); `tandem validate` with a database checks".into()));
                }
                if cmd.missing_ok {
                    item.notes.push((
                        NoteKind::Info,
                        "IF NOT EXISTS dropped: tandem refuses a column that already exists".into(),
                    ));
                }
                item
            }
            AlterTableType::AtDropColumn => {
                let item = self.push(
                    span,
                    Operation::DropColumn(DropColumn {
                        table: table.to_string(),
                        column,
                        down: String::new(),
                    }),
                );
                item.notes.push((NoteKind::Info, "no `down`: if the column is NOT NULL without a default, give `down` (the value stored for the new version's inserts while the old version still reads it); `tandem validate` tells".into()));
                if cmd.behavior == DropBehavior::DropCascade as i32 {
                    item.notes.push((NoteKind::Warning, "CASCADE dropped: tandem drops only the column; drop what depends on it first".into()));
                }
                item
            }
            AlterTableType::AtAlterColumnType => {
                let Some(NodeEnum::ColumnDef(col)) = def else {
                    return Err("unreadable ALTER COLUMN TYPE".into());
                };
                if col.coll_clause.is_some() {
                    return Err("COLLATE in a type change has no field".into());
                }
                let ty = col
                    .type_name
                    .as_ref()
                    .and_then(sql::type_name)
                    .ok_or("the new type could not be read")?;
                let mut op = alter(&column);
                op.data_type = Some(ty);
                let using = col.raw_default.as_deref();
                let mut notes = Vec::new();
                match using {
                    Some(u) if !is_plain_cast_of(u, &column) => {
                        op.up = sql::expr(u).ok_or("the USING expression could not be read")?;
                        op.down = format!("{} {TODO_DOWN}", super::PLACEHOLDER);
                        notes.push((NoteKind::Todo, format!("write `down`: the old value of {column:?} computed from the new one (the inverse of `up`), which the old version reads for rows the new version writes")));
                    }
                    _ => notes.push((NoteKind::Info, "`up`/`down` left out: tandem casts the value to the new type and back; give `down` if new values do not cast back to the old type".into())),
                }
                let item = self.push(span, Operation::AlterColumn(op));
                item.notes.extend(notes);
                item
            }
            AlterTableType::AtSetNotNull | AlterTableType::AtDropNotNull => {
                let mut op = alter(&column);
                op.nullable = Some(subtype == AlterTableType::AtDropNotNull);
                self.push(span, Operation::AlterColumn(op))
            }
            AlterTableType::AtColumnDefault => {
                let mut op = alter(&column);
                op.default = match def {
                    None => Nullable::Null,
                    Some(_) => Nullable::Value(
                        cmd.def
                            .as_deref()
                            .and_then(sql::expr)
                            .ok_or("the default could not be read")?,
                    ),
                };
                self.push(span, Operation::AlterColumn(op))
            }
            AlterTableType::AtAddConstraint => {
                let Some(NodeEnum::Constraint(con)) = def else {
                    return Err("unreadable ADD CONSTRAINT".into());
                };
                return self.add_constraint(span, table, con, text);
            }
            AlterTableType::AtValidateConstraint => {
                self.items.push(Item {
                    span,
                    draft: Draft::Validate {
                        table: table.to_string(),
                        name: column,
                        sql: text.to_string(),
                    },
                    notes: Vec::new(),
                    not_valid: None,
                });
                return Ok(());
            }
            AlterTableType::AtDropConstraint => {
                let item = self.push(
                    span,
                    Operation::DropConstraint(DropConstraint {
                        table: table.to_string(),
                        name: column,
                        up: String::new(),
                        down: String::new(),
                    }),
                );
                if cmd.behavior == DropBehavior::DropCascade as i32 {
                    item.notes.push((NoteKind::Warning, "CASCADE dropped: tandem drops only the constraint; drop the foreign keys that depend on it first".into()));
                }
                item
            }
            AlterTableType::AtReplicaIdentity => {
                let Some(NodeEnum::ReplicaIdentityStmt(r)) = def else {
                    return Err("unreadable REPLICA IDENTITY".into());
                };
                let kind = match r.identity_type.as_str() {
                    "d" => "default",
                    "f" => "full",
                    "n" => "nothing",
                    "i" => "index",
                    _ => return Err("unknown REPLICA IDENTITY".into()),
                };
                self.push(
                    span,
                    Operation::SetReplicaIdentity(SetReplicaIdentity {
                        table: table.to_string(),
                        identity: ReplicaIdentity {
                            kind: kind.to_string(),
                            index: r.name.clone(),
                        },
                    }),
                )
            }
            _ => {
                return Err(
                    "no tandem operation does this ALTER TABLE action; it runs as written at start"
                        .into(),
                )
            }
        };
        if if_exists {
            item.notes.push((
                NoteKind::Info,
                "IF EXISTS dropped: tandem refuses a table that does not exist".into(),
            ));
        }
        Ok(())
    }

    fn add_constraint(
        &mut self,
        span: Span,
        table: &str,
        con: &protobuf::Constraint,
        text: &str,
    ) -> Result<(), String> {
        let kind = ConstrType::try_from(con.contype).map_err(|_| "unknown constraint")?;
        let primary = kind == ConstrType::ConstrPrimary;
        if matches!(kind, ConstrType::ConstrUnique | ConstrType::ConstrPrimary)
            && !con.indexname.is_empty()
        {
            let name = if con.conname.is_empty() {
                con.indexname.clone()
            } else {
                con.conname.clone()
            };
            self.items.push(Item {
                span,
                draft: Draft::UsingIndex {
                    table: table.to_string(),
                    name,
                    index: con.indexname.clone(),
                    primary,
                    sql: text.to_string(),
                },
                notes: Vec::new(),
                not_valid: None,
            });
            return Ok(());
        }
        let tc = self.table_constraint(table, con)?;
        if tc.deferrable && tc.kind != ConstraintType::ForeignKey {
            return Err(
                "a DEFERRABLE unique or primary key has no field in create_constraint".into(),
            );
        }
        if tc.nulls_not_distinct {
            return Err("NULLS NOT DISTINCT has no field in create_constraint".into());
        }
        if tc.columns.is_empty() {
            return Err("a constraint that reads no column has no tandem operation".into());
        }
        let op = match (tc.kind, tc.references) {
            // A deferrable foreign key over one column has a form: alter_column's `references`.
            (ConstraintType::ForeignKey, Some(r)) if tc.deferrable => {
                let ([column], [target]) = (tc.columns.as_slice(), r.columns.as_slice()) else {
                    return Err("a DEFERRABLE foreign key over several columns has no field".into());
                };
                if !r.on_delete_set_columns.is_empty() {
                    return Err("ON DELETE SET NULL (columns) has no field here".into());
                }
                Operation::AlterColumn(AlterColumn {
                    table: table.to_string(),
                    column: column.clone(),
                    name: None,
                    data_type: None,
                    nullable: None,
                    check: None,
                    unique: None,
                    references: Some(ForeignKeyReference {
                        name: tc.name.clone(),
                        table: r.table,
                        column: target.clone(),
                        match_type: r.match_type,
                        on_delete: r.on_delete,
                        on_update: r.on_update,
                        deferrable: true,
                        initially_deferred: tc.initially_deferred,
                    }),
                    default: Nullable::Absent,
                    comment: Nullable::Absent,
                    up: String::new(),
                    down: String::new(),
                })
            }
            (kind, references) => Operation::CreateConstraint(CreateConstraint {
                table: table.to_string(),
                name: tc.name.clone(),
                kind: match kind {
                    ConstraintType::Unique => CreateConstraintType::Unique,
                    ConstraintType::Check => CreateConstraintType::Check,
                    ConstraintType::PrimaryKey => CreateConstraintType::PrimaryKey,
                    ConstraintType::ForeignKey => CreateConstraintType::ForeignKey,
                    ConstraintType::Exclude => {
                        return Err("an exclusion constraint has no tandem operation".into())
                    }
                },
                columns: tc.columns,
                check: (kind == ConstraintType::Check).then_some(tc.check),
                no_inherit: tc.no_inherit,
                index_parameters: tc.index_parameters,
                references,
                up: ColumnExprs::new(),
                down: ColumnExprs::new(),
            }),
        };
        let item = self.push(span, op);
        if con.skip_validation {
            item.not_valid = Some(tc.name);
        }
        Ok(())
    }

    fn create_index(&mut self, span: Span, i: &protobuf::IndexStmt) {
        let table = i
            .relation
            .as_ref()
            .map(|r| r.relname.clone())
            .unwrap_or_default();
        let mut columns = Vec::new();
        let mut names = Vec::new();
        let mut plain = true;
        for p in &i.index_params {
            let Some(NodeEnum::IndexElem(e)) = p.node.as_ref() else {
                plain = false;
                continue;
            };
            if e.name.is_empty() || !e.opclassopts.is_empty() {
                names.push(
                    e.expr
                        .as_deref()
                        .map_or_else(|| "expr".into(), index_column_name),
                );
                plain = false;
                continue;
            }
            names.push(e.name.clone());
            let opclass = sql::strings(&e.opclass);
            columns.push(IndexField {
                column: e.name.clone(),
                collate: sql::strings(&e.collation).join("."),
                sort: match SortByDir::try_from(e.ordering) {
                    Ok(SortByDir::SortbyAsc) => Some(SortOrder::Asc),
                    Ok(SortByDir::SortbyDesc) => Some(SortOrder::Desc),
                    _ => None,
                },
                opclass: (!opclass.is_empty()).then(|| OpClass {
                    name: opclass.join("."),
                    params: Vec::new(),
                }),
                nulls: match SortByNulls::try_from(e.nulls_ordering) {
                    Ok(SortByNulls::SortbyNullsFirst) => Some(NullsOrder::First),
                    Ok(SortByNulls::SortbyNullsLast) => Some(NullsOrder::Last),
                    _ => None,
                },
            });
        }
        let name = if i.idxname.is_empty() {
            self.names
                .choose(&table, Some(&columns_part(&names)), "idx")
        } else {
            self.names.take(&i.idxname);
            i.idxname.clone()
        };
        let method = match i.access_method.as_str() {
            "" | "btree" => Some(IndexMethod::Btree),
            "hash" => Some(IndexMethod::Hash),
            "gist" => Some(IndexMethod::Gist),
            "spgist" => Some(IndexMethod::Spgist),
            "gin" => Some(IndexMethod::Gin),
            "brin" => Some(IndexMethod::Brin),
            _ => None,
        };
        let storage = sql::storage_parameters(&i.options);
        let why = if !plain {
            Some("an index on expressions has no tandem operation (create_index takes columns)")
        } else if !i.index_including_params.is_empty() {
            Some("INCLUDE has no field in create_index")
        } else if i.nulls_not_distinct || !i.table_space.is_empty() {
            Some("NULLS NOT DISTINCT and TABLESPACE have no field in create_index")
        } else if method.is_none() || storage.is_none() {
            Some("the access method or WITH options have no field in create_index")
        } else {
            None
        };
        let down = format!("DROP INDEX CONCURRENTLY IF EXISTS {}", quote_ident(&name));
        if let Some(why) = why {
            // Built concurrently even so, unless the table is new in this file.
            let mut concurrent = i.clone();
            concurrent.idxname = name.clone();
            concurrent.concurrent = !self.created.contains_key(&table);
            let up = sql::statement(&NodeEnum::IndexStmt(Box::new(concurrent)))
                .unwrap_or_else(|| self.text(span));
            let down = if self.created.contains_key(&table) {
                String::new()
            } else {
                down
            };
            return self.keep_sql(span, up, why, down);
        }
        let item = self.push(
            span,
            Operation::CreateIndex(CreateIndex {
                name,
                table,
                columns,
                method: method.unwrap_or_default(),
                unique: i.unique,
                predicate: i
                    .where_clause
                    .as_deref()
                    .and_then(sql::expr)
                    .unwrap_or_default(),
                storage_parameters: storage.unwrap_or_default(),
            }),
        );
        if i.if_not_exists {
            item.notes.push((
                NoteKind::Info,
                "IF NOT EXISTS dropped: tandem refuses an index that exists (an INVALID one left by a failed build is rebuilt)".into(),
            ));
        }
    }

    fn drop(&mut self, span: Span, d: &protobuf::DropStmt) {
        let kind = ObjectType::try_from(d.remove_type).unwrap_or(ObjectType::Undefined);
        if !matches!(kind, ObjectType::ObjectIndex | ObjectType::ObjectTable) {
            return self.keep(
                span,
                "no tandem operation drops this kind of object; it runs as written at start",
                String::new(),
            );
        }
        for o in &d.objects {
            let Some(NodeEnum::List(l)) = o.node.as_ref() else {
                continue;
            };
            let name = sql::strings(&l.items).pop().unwrap_or_default();
            let op = if kind == ObjectType::ObjectIndex {
                Operation::DropIndex(DropIndex { name })
            } else {
                Operation::DropTable(DropTable { name })
            };
            // `DROP INDEX IF EXISTS` before building the same index again is the retry idiom
            // for a build that failed and left an INVALID index: `fold` hands it to tandem.
            if d.missing_ok {
                if let Operation::DropIndex(DropIndex { name }) = op {
                    self.items.push(Item {
                        span,
                        draft: Draft::DropIndexIfExists { name },
                        notes: Vec::new(),
                        not_valid: None,
                    });
                    continue;
                }
            }
            let item = self.push(span, op);
            if d.missing_ok {
                item.notes.push((
                    NoteKind::Info,
                    "IF EXISTS dropped: tandem refuses to drop what does not exist".into(),
                ));
            }
            if d.behavior == DropBehavior::DropCascade as i32 {
                item.notes.push((
                    NoteKind::Warning,
                    "CASCADE dropped: tandem drops only this object; drop what depends on it first"
                        .into(),
                ));
            }
        }
    }

    fn rename(&mut self, span: Span, r: &protobuf::RenameStmt) {
        let table = r
            .relation
            .as_ref()
            .map(|r| r.relname.clone())
            .unwrap_or_default();
        let kind = ObjectType::try_from(r.rename_type).unwrap_or(ObjectType::Undefined);
        let op =
            match kind {
                ObjectType::ObjectTable => Operation::RenameTable(RenameTable {
                    from: table,
                    to: r.newname.clone(),
                }),
                ObjectType::ObjectColumn if r.relation_type == ObjectType::ObjectTable as i32 => {
                    Operation::RenameColumn(RenameColumn {
                        table,
                        from: r.subname.clone(),
                        to: r.newname.clone(),
                    })
                }
                ObjectType::ObjectTabconstraint => Operation::RenameConstraint(RenameConstraint {
                    table,
                    from: r.subname.clone(),
                    to: r.newname.clone(),
                }),
                _ => return self.keep(
                    span,
                    "no tandem operation renames this kind of object; it runs as written at start",
                    String::new(),
                ),
            };
        self.push(span, op);
    }

    fn comment(&mut self, span: Span, c: &protobuf::CommentStmt) {
        let kind = ObjectType::try_from(c.objtype).unwrap_or(ObjectType::Undefined);
        let names = match c.object.as_deref().and_then(|o| o.node.as_ref()) {
            Some(NodeEnum::List(l)) => sql::strings(&l.items),
            _ => Vec::new(),
        };
        let comment = (!c.comment.is_empty()).then(|| c.comment.clone());
        match (kind, names.as_slice()) {
            (ObjectType::ObjectColumn, [.., table, column]) => {
                self.push(
                    span,
                    Operation::AlterColumn(AlterColumn {
                        table: table.clone(),
                        column: column.clone(),
                        name: None,
                        data_type: None,
                        nullable: None,
                        check: None,
                        unique: None,
                        references: None,
                        default: Nullable::Absent,
                        comment: comment.map_or(Nullable::Null, Nullable::Value),
                        up: String::new(),
                        down: String::new(),
                    }),
                );
            }
            (ObjectType::ObjectTable, [.., table]) => self.items.push(Item {
                span,
                draft: Draft::TableComment {
                    table: table.clone(),
                    comment,
                    sql: self.text(span),
                },
                notes: Vec::new(),
                not_valid: None,
            }),
            _ => self.keep(
                span,
                "no tandem operation comments this kind of object; COMMENT ON blocks no reads or writes for long",
                String::new(),
            ),
        }
    }

    fn update(&mut self, span: Span, u: &protobuf::UpdateStmt) {
        let table = u
            .relation
            .as_ref()
            .map(|r| r.relname.clone())
            .unwrap_or_default();
        let single = match u.target_list.as_slice() {
            [t] => match t.node.as_ref() {
                Some(NodeEnum::ResTarget(r)) if r.indirection.is_empty() => r
                    .val
                    .as_deref()
                    .and_then(sql::expr)
                    .map(|v| (r.name.clone(), v)),
                _ => None,
            },
            _ => None,
        };
        let only_nulls =
            |column: &str| match u.where_clause.as_deref().and_then(|w| w.node.as_ref()) {
                None => Some(false),
                Some(NodeEnum::NullTest(t))
                    if t.nulltesttype == protobuf::NullTestType::IsNull as i32 =>
                {
                    match t.arg.as_deref().and_then(|a| a.node.as_ref()) {
                        Some(NodeEnum::ColumnRef(r))
                            if sql::strings(&r.fields).last().map(String::as_str)
                                == Some(column) =>
                        {
                            Some(true)
                        }
                        _ => None,
                    }
                }
                _ => None,
            };
        let plain =
            u.from_clause.is_empty() && u.returning_clause.is_none() && u.with_clause.is_none();
        match single {
            Some((column, value)) if plain => match only_nulls(&column) {
                Some(only_nulls) => self.items.push(Item {
                    span,
                    draft: Draft::Backfill {
                        table,
                        column,
                        value,
                        only_nulls,
                        sql: self.text(span),
                    },
                    notes: Vec::new(),
                    not_valid: None,
                }),
                None => self.keep(span, "an UPDATE with a condition other than `column IS NULL` is data, not schema; it runs as written at start, in one transaction", String::new()),
            },
            _ => self.keep(span, "an UPDATE of several columns, or with FROM, RETURNING or WITH, is data, not schema; it runs as written at start, in one transaction", String::new()),
        }
    }
}

fn empty_constraint() -> TableConstraint {
    TableConstraint {
        name: String::new(),
        kind: ConstraintType::Check,
        columns: Vec::new(),
        deferrable: false,
        initially_deferred: false,
        nulls_not_distinct: false,
        no_inherit: false,
        check: String::new(),
        references: None,
        exclude: None,
        index_parameters: None,
    }
}

fn match_type(s: &str) -> MatchType {
    match s {
        "f" => MatchType::Full,
        "p" => MatchType::Partial,
        _ => MatchType::Simple,
    }
}

fn fk_action(s: &str) -> FkAction {
    match s {
        "r" => FkAction::Restrict,
        "c" => FkAction::Cascade,
        "n" => FkAction::SetNull,
        "d" => FkAction::SetDefault,
        _ => FkAction::NoAction,
    }
}

/// The name PostgreSQL's `FigureIndexColname` gives an index expression in a generated index
/// name: a column's or function's name, else `expr`.
fn index_column_name(node: &Node) -> String {
    match node.node.as_ref() {
        Some(NodeEnum::ColumnRef(r)) => sql::strings(&r.fields).pop(),
        Some(NodeEnum::FuncCall(f)) => sql::strings(&f.funcname).pop(),
        Some(NodeEnum::TypeCast(c)) => c.arg.as_deref().map(index_column_name),
        _ => None,
    }
    .unwrap_or_else(|| "expr".to_string())
}

/// `USING column` or `USING column::type`: what tandem does when `up` is left out.
fn is_plain_cast_of(node: &Node, column: &str) -> bool {
    match node.node.as_ref() {
        Some(NodeEnum::ColumnRef(r)) => {
            sql::strings(&r.fields).last().map(String::as_str) == Some(column)
        }
        Some(NodeEnum::TypeCast(c)) => c
            .arg
            .as_deref()
            .is_some_and(|a| is_plain_cast_of(a, column)),
        _ => false,
    }
}

/// The statement that undoes a CREATE of an object tandem has no operation for, where it is
/// plain: rollback runs it.
fn inferred_down(node: &NodeEnum) -> String {
    let qualified_name = |names: &[String]| match names {
        [schema, name] => qualified(schema, name),
        [.., name] => quote_ident(name),
        [] => String::new(),
    };
    let range = |rv: Option<&protobuf::RangeVar>| {
        rv.map(|r| {
            if r.schemaname.is_empty() {
                quote_ident(&r.relname)
            } else {
                qualified(&r.schemaname, &r.relname)
            }
        })
    };
    let made = match node {
        NodeEnum::CreateEnumStmt(e) => Some(("TYPE", qualified_name(&sql::strings(&e.type_name)))),
        NodeEnum::CompositeTypeStmt(c) => range(c.typevar.as_ref()).map(|n| ("TYPE", n)),
        NodeEnum::CreateDomainStmt(d) => {
            Some(("DOMAIN", qualified_name(&sql::strings(&d.domainname))))
        }
        NodeEnum::CreateExtensionStmt(e) => Some(("EXTENSION", quote_ident(&e.extname))),
        NodeEnum::CreateSeqStmt(s) => range(s.sequence.as_ref()).map(|n| ("SEQUENCE", n)),
        NodeEnum::ViewStmt(v) if !v.replace => range(v.view.as_ref()).map(|n| ("VIEW", n)),
        _ => None,
    };
    made.filter(|(_, n)| !n.is_empty())
        .map(|(kind, name)| format!("DROP {kind} IF EXISTS {name}"))
        .unwrap_or_default()
}
