//! Typed errors of the model: reading a migration file, and validating it. Both put the file
//! first and then the path to the offending field, e.g.
//! `03_add_column.yaml:7:9: operations[0].add_column.column.type: missing field`.

use std::fmt;

/// A migration file could not be read or parsed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: unsupported extension (expected .json, .yaml or .yml)")]
    Extension { file: String },
    #[error("{file}{}: {}{message}", location(*.line, *.column), field_prefix(.path))]
    Syntax {
        file: String,
        line: Option<usize>,
        column: Option<usize>,
        /// Path to the field, such as `operations[0].add_column.column.type`; empty at the top.
        path: String,
        message: String,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

fn field_prefix(path: &str) -> String {
    if path.is_empty() || path == "." {
        String::new()
    } else {
        format!("{path}: ")
    }
}

/// A migration does not fit the schema it would run against.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ValidationError {
    pub file: String,
    pub op_index: usize,
    pub op_kind: &'static str,
    /// The field inside the operation, such as `column.name`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: operations[{}].{}",
            self.file, self.op_index, self.op_kind
        )?;
        if !self.field.is_empty() {
            write!(f, ".{}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ValidationError {}

/// What an operation's own check returns: the field and the message; the caller adds the file
/// and the operation's position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}
