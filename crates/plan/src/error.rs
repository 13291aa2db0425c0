//! Errors of planning: an operation tandem cannot carry out safely, named with its position.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    #[error("{file}: operations[{op_index}].{op_kind}: {message}")]
    Unsupported {
        file: String,
        op_index: usize,
        op_kind: &'static str,
        message: String,
    },
    /// A refusal that concerns the migration as a whole rather than one operation.
    #[error("{file}: {message}")]
    Refused { file: String, message: String },
}
