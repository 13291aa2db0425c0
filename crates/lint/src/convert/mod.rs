//! `tandem convert`: plain SQL migrations (hand-written or from an ORM) into a tandem migration
//! made of safe operations. Each statement becomes the operation that expresses it
//! (`statement.rs`), statements on one column are folded into the operation that does them
//! together (`fold.rs`), and what has no operation stays a `sql` operation with a note saying
//! why. No IO: the caller passes the text in and prints what comes back (`render.rs`).

mod fold;
pub(crate) mod names;
mod render;
mod statement;

use crate::LintError;
use serde::Serialize;
use tandem_model::migration::MigrationFile;
use tandem_model::Operation;

/// Marks a value a person must write; `tandem validate` refuses a migration that still has one
/// (`tandem_model::validate`).
pub use tandem_model::validate::PLACEHOLDER;

/// How much a note asks of the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    /// Something to write before the migration can run: a placeholder is in the file.
    Todo,
    /// Converted with a difference, or kept as `sql`.
    Warning,
    /// What the conversion assumed, for review.
    Info,
}

impl NoteKind {
    pub fn label(self) -> &'static str {
        match self {
            NoteKind::Todo => "TODO",
            NoteKind::Warning => "warning",
            NoteKind::Info => "note",
        }
    }
}

/// A remark on one converted statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub kind: NoteKind,
    /// 1-based line and column of the statement the note is about.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// One operation of the result, with the line of the statement it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Converted {
    pub operation: Operation,
    pub line: usize,
    pub notes: Vec<Note>,
}

/// The result of converting one SQL source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conversion {
    pub file: String,
    pub operations: Vec<Converted>,
    /// Notes on statements that produced no operation (a session setting, for instance).
    pub dropped: Vec<Note>,
}

impl Conversion {
    /// Every note, in source order.
    pub fn notes(&self) -> Vec<&Note> {
        let mut all: Vec<&Note> = self
            .operations
            .iter()
            .flat_map(|c| &c.notes)
            .chain(&self.dropped)
            .collect();
        all.sort_by_key(|n| (n.line, n.column, n.kind));
        all
    }

    /// The migration file the conversion describes.
    pub fn migration_file(&self) -> MigrationFile {
        MigrationFile {
            name: None,
            version_schema: None,
            operations: self
                .operations
                .iter()
                .map(|c| c.operation.clone())
                .collect(),
        }
    }

    /// The migration as YAML, each operation preceded by its notes as comments.
    pub fn to_yaml(&self) -> String {
        render::yaml(self)
    }

    /// The migration as JSON (pretty-printed; notes are not part of it).
    pub fn to_json(&self) -> String {
        render::json(self)
    }

    /// Whether a value in the file still has to be written by a person.
    pub fn has_placeholders(&self) -> bool {
        self.operations
            .iter()
            .any(|c| c.notes.iter().any(|n| n.kind == NoteKind::Todo))
    }
}

/// Whether a statement certainly changes no schema: a query or a data change, a setting, a
/// transaction's bounds, maintenance. A SELECT that calls a function may change the schema
/// (`SELECT create_hypertable(...)`), and so may DO and CALL, so they count as changing it.
fn leaves_schema_alone(node: &pg_query::NodeEnum, text: &str) -> bool {
    use pg_query::NodeEnum as N;
    match node {
        N::SelectStmt(_) => pg_query::parse(text, pg_query::ParserOptions::DEFAULT)
            .is_ok_and(|p| p.functions().is_empty()),
        N::InsertStmt(_)
        | N::UpdateStmt(_)
        | N::DeleteStmt(_)
        | N::MergeStmt(_)
        | N::CopyStmt(_)
        | N::VariableSetStmt(_)
        | N::VariableShowStmt(_)
        | N::TransactionStmt(_)
        | N::ExplainStmt(_)
        | N::VacuumStmt(_)
        | N::LockStmt(_)
        | N::NotifyStmt(_)
        | N::ListenStmt(_)
        | N::UnlistenStmt(_)
        | N::DiscardStmt(_)
        | N::CheckPointStmt(_) => true,
        _ => false,
    }
}

/// Converts one SQL source; `file` names it in notes and errors.
pub fn convert(file: &str, source: &str) -> Result<Conversion, LintError> {
    let parsed = pg_query::parse(source, pg_query::ParserOptions::DEFAULT).map_err(|e| {
        let located = crate::parse::parse(source).err();
        let offset = located.as_ref().map_or(0, |l| l.offset);
        let (line, column) = crate::line_col(source, offset, crate::Placement::default());
        LintError::Syntax {
            file: file.to_string(),
            line,
            column,
            message: located.map_or_else(|| e.to_string(), |l| l.message),
        }
    })?;
    let mut cx = statement::Cx::new(source);
    // A file of queries and data changes alone (SELECT, INSERT, UPDATE, ...) changes no schema:
    // it is not a schema migration, and is refused as one that has nothing to convert.
    let mut changes_schema = false;
    for raw in &parsed.protobuf.stmts {
        let start = raw.stmt_location as usize;
        let end = if raw.stmt_len == 0 {
            source.len()
        } else {
            start + raw.stmt_len as usize
        };
        let span = crate::parse::trim_span(source, start, end);
        if let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
            changes_schema |= !leaves_schema_alone(node, &source[span.start..span.end]);
            cx.statement(span, node);
        }
    }
    if !changes_schema {
        return Err(LintError::NothingToConvert {
            file: file.to_string(),
        });
    }
    let (items, dropped) = cx.finish();
    let items = fold::fold(items);
    let at = |span: crate::model::Span| crate::line_col(source, span.start, Default::default());
    let operations: Vec<Converted> = items
        .into_iter()
        .map(|item| item.into_converted(&at))
        .collect();
    if operations.is_empty() {
        return Err(LintError::NothingToConvert {
            file: file.to_string(),
        });
    }
    Ok(Conversion {
        file: file.to_string(),
        operations,
        dropped: dropped
            .into_iter()
            .map(|(span, kind, message)| {
                let (line, column) = at(span);
                Note {
                    kind,
                    line,
                    column,
                    message,
                }
            })
            .collect(),
    })
}
