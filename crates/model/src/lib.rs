//! tandem's model: migration files in pgroll's format, operations as a closed enum, schema
//! snapshots, and validation of a migration against a snapshot. Invariant: this crate does no IO
//! beyond reading the migration file handed to it, and never talks to PostgreSQL.

#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod error;
pub mod ident;
pub mod migration;
pub mod operation;
pub mod schema;
#[doc(hidden)]
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod validate;

pub use error::{LoadError, ValidationError};
pub use ident::{qualified, quote_ident, quote_literal, shorten_name, MAX_IDENT_BYTES};
pub use migration::Migration;
pub use operation::Operation;
pub use schema::{
    Column, Constraint, ConstraintKind, Index, Partition, Partitioning, ReplicaIdentity, Schema,
    Table,
};
pub use validate::{validate, LiveCheck, Validated};
