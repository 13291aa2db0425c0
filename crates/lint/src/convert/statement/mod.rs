//! One statement at a time: each becomes the tandem operation that expresses it, or a draft
//! that `fold` joins with its neighbours (a backfill `UPDATE`, `VALIDATE CONSTRAINT`, a
//! constraint `USING INDEX`), or a `sql` operation with a note saying why.

use super::names::{columns_part, Taken};
use super::{Converted, Note, NoteKind};
use crate::model::Span;
use crate::tree;
use pg_query::protobuf::{
    self, AlterTableType, ConstrType, DropBehavior, ObjectType, SortByDir, SortByNulls,
    TransactionStmtKind,
};
use pg_query::{Node, NodeEnum};
use std::collections::BTreeMap;
use tandem_model::operation::*;
use tandem_model::{qualified, quote_ident, Operation};

mod alter_table;
mod create_index;
mod create_table;
mod other;

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
                let full = tree::has_option(&v.options, "full");
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
        Some(NodeEnum::ColumnRef(r)) => tree::strings(&r.fields).pop(),
        Some(NodeEnum::FuncCall(f)) => tree::strings(&f.funcname).pop(),
        Some(NodeEnum::TypeCast(c)) => c.arg.as_deref().map(index_column_name),
        _ => None,
    }
    .unwrap_or_else(|| "expr".to_string())
}

/// `USING column` or `USING column::type`: what tandem does when `up` is left out.
fn is_plain_cast_of(node: &Node, column: &str) -> bool {
    match node.node.as_ref() {
        Some(NodeEnum::ColumnRef(r)) => {
            tree::strings(&r.fields).last().map(String::as_str) == Some(column)
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
        NodeEnum::CreateEnumStmt(e) => Some(("TYPE", qualified_name(&tree::strings(&e.type_name)))),
        NodeEnum::CompositeTypeStmt(c) => range(c.typevar.as_ref()).map(|n| ("TYPE", n)),
        NodeEnum::CreateDomainStmt(d) => {
            Some(("DOMAIN", qualified_name(&tree::strings(&d.domainname))))
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
