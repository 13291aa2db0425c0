//! Operations of a migration, as a closed enum: adding an operation makes the compiler list
//! every place that must learn about it. Each operation's fields live in a file of its own.

pub mod add_column;
pub mod alter_column;
pub mod common;
pub mod create_constraint;
pub mod create_index;
pub mod create_table;
pub mod drop_column;
pub mod drop_constraint;
pub mod drop_index;
pub mod drop_multicolumn_constraint;
pub mod drop_table;
mod legacy;
pub mod rename_column;
pub mod rename_constraint;
pub mod rename_table;
pub mod set_replica_identity;
pub mod sql;

pub use add_column::AddColumn;
pub use alter_column::AlterColumn;
pub use common::*;
pub use create_constraint::{CreateConstraint, CreateConstraintType};
pub use create_index::CreateIndex;
pub use create_table::CreateTable;
pub use drop_column::DropColumn;
pub use drop_constraint::DropConstraint;
pub use drop_index::DropIndex;
pub use drop_multicolumn_constraint::DropMultiColumnConstraint;
pub use drop_table::DropTable;
pub use rename_column::RenameColumn;
pub use rename_constraint::RenameConstraint;
pub use rename_table::RenameTable;
pub use set_replica_identity::{ReplicaIdentity, SetReplicaIdentity};
pub use sql::RawSql;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One operation of a migration file, written `{ "<kind>": { ... } }` as in pgroll.
// Read through `legacy::OperationOnDisk`, which also takes the older kinds pgroll has folded
// into these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", from = "legacy::OperationOnDisk")]
pub enum Operation {
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
}

impl Operation {
    /// The operation's key in the file, e.g. `add_column`.
    pub fn kind(&self) -> &'static str {
        match self {
            Operation::CreateTable(_) => "create_table",
            Operation::DropTable(_) => "drop_table",
            Operation::RenameTable(_) => "rename_table",
            Operation::AddColumn(_) => "add_column",
            Operation::DropColumn(_) => "drop_column",
            Operation::RenameColumn(_) => "rename_column",
            Operation::AlterColumn(_) => "alter_column",
            Operation::CreateIndex(_) => "create_index",
            Operation::DropIndex(_) => "drop_index",
            Operation::CreateConstraint(_) => "create_constraint",
            Operation::DropConstraint(_) => "drop_constraint",
            Operation::DropMulticolumnConstraint(_) => "drop_multicolumn_constraint",
            Operation::RenameConstraint(_) => "rename_constraint",
            Operation::SetReplicaIdentity(_) => "set_replica_identity",
            Operation::Sql(_) => "sql",
        }
    }
}
