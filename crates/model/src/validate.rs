//! Validation of a migration against a schema snapshot, before anything touches the database:
//! each operation is replayed on a copy of the snapshot and checked against the shape it meets.
//! What only PostgreSQL can answer (does this type exist, is this table empty) comes back as
//! `LiveCheck`s for the pg crate to ask.

use crate::error::{FieldError, ValidationError};
use crate::ident::MAX_IDENT_BYTES;
use crate::migration::Migration;
use crate::operation::Operation;
use crate::schema::{Schema, Table};
use serde::Serialize;

/// A question for the live database, with where in the file it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum LiveCheck {
    /// The type must be known to PostgreSQL (`to_regtype`).
    TypeExists {
        op_index: usize,
        op_kind: &'static str,
        field: String,
        type_name: String,
    },
    /// The table must hold no rows, or the operation cannot succeed.
    TableEmpty {
        op_index: usize,
        op_kind: &'static str,
        field: String,
        table: String,
        reason: String,
    },
    /// The server must be at least this major version for a feature the operation asks for.
    ServerVersion {
        op_index: usize,
        op_kind: &'static str,
        field: String,
        feature: &'static str,
        min_major: u32,
    },
}

impl LiveCheck {
    /// The validation error to report when the check fails.
    pub fn failure(&self, file: &str) -> ValidationError {
        match self {
            LiveCheck::TypeExists {
                op_index,
                op_kind,
                field,
                type_name,
            } => ValidationError {
                file: file.to_string(),
                op_index: *op_index,
                op_kind,
                field: field.clone(),
                message: format!("type {type_name:?} does not exist in the database"),
            },
            LiveCheck::TableEmpty {
                op_index,
                op_kind,
                field,
                table,
                reason,
            } => ValidationError {
                file: file.to_string(),
                op_index: *op_index,
                op_kind,
                field: field.clone(),
                message: format!("table {table:?} has rows: {reason}"),
            },
            LiveCheck::ServerVersion {
                op_index,
                op_kind,
                field,
                feature,
                min_major,
            } => ValidationError {
                file: file.to_string(),
                op_index: *op_index,
                op_kind,
                field: field.clone(),
                message: format!(
                    "{feature} needs PostgreSQL {min_major} or later, and the server is older; remove it or upgrade the server"
                ),
            },
        }
    }
}

/// The result of a successful validation.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The schema as the new version will see it.
    pub schema: Schema,
    pub live_checks: Vec<LiveCheck>,
    /// The migration and the schema it was validated against: only [`validate`] makes a
    /// `Validated`, so whatever takes one (the planner) sees only migrations that passed.
    migration: Migration,
    base: Schema,
}

impl Validated {
    /// The migration that passed validation.
    pub fn migration(&self) -> &Migration {
        &self.migration
    }

    /// The schema it was validated against: the physical schema before it.
    pub fn base(&self) -> &Schema {
        &self.base
    }
}

/// Validates `migration` against `base`, returning the schema the new version will see.
pub fn validate(migration: &Migration, base: &Schema) -> Result<Validated, ValidationError> {
    let mut schema = base.clone();
    let mut live_checks = Vec::new();
    if let Some(vs) = &migration.version_schema {
        if vs.is_empty() || vs.len() > MAX_IDENT_BYTES {
            return Err(ValidationError {
                file: migration.file.clone(),
                op_index: 0,
                op_kind: "version_schema",
                field: String::new(),
                message: format!("must be 1 to {MAX_IDENT_BYTES} bytes long"),
            });
        }
    }
    for (index, op) in migration.operations.iter().enumerate() {
        if let Some(field) = placeholder_field(op) {
            return Err(ValidationError {
                file: migration.file.clone(),
                op_index: index,
                op_kind: op.kind(),
                field,
                message: format!(
                    "still holds the placeholder `tandem convert` left ({PLACEHOLDER} ...): write the SQL expression it asks for"
                ),
            });
        }
        let mut cx = Cx {
            schema: &mut schema,
            checks: &mut live_checks,
            op_index: index,
            op_kind: op.kind(),
        };
        let result = match op {
            Operation::CreateTable(o) => o.apply(&mut cx),
            Operation::DropTable(o) => o.apply(&mut cx),
            Operation::RenameTable(o) => o.apply(&mut cx),
            Operation::AddColumn(o) => o.apply(&mut cx),
            Operation::DropColumn(o) => o.apply(&mut cx),
            Operation::RenameColumn(o) => o.apply(&mut cx),
            Operation::AlterColumn(o) => o.apply(&mut cx),
            Operation::CreateIndex(o) => o.apply(&mut cx),
            Operation::DropIndex(o) => o.apply(&mut cx),
            Operation::CreateConstraint(o) => o.apply(&mut cx),
            Operation::DropConstraint(o) => o.apply(&mut cx),
            Operation::DropMulticolumnConstraint(o) => o.apply(&mut cx),
            Operation::RenameConstraint(o) => o.apply(&mut cx),
            Operation::SetReplicaIdentity(o) => o.apply(&mut cx),
            Operation::Sql(o) => o.apply(&mut cx),
        };
        result.map_err(|e| ValidationError {
            file: migration.file.clone(),
            op_index: index,
            op_kind: op.kind(),
            field: e.field,
            message: e.message,
        })?;
    }
    Ok(Validated {
        schema,
        live_checks,
        migration: migration.clone(),
        base: base.clone(),
    })
}

/// What `tandem convert` writes where a person must supply an expression; no migration that
/// still holds one is valid.
pub const PLACEHOLDER: &str = "TODO(tandem convert):";

/// The first `up`/`down` field of `op` that still holds the placeholder.
fn placeholder_field(op: &Operation) -> Option<String> {
    let held = |v: &str| v.trim_start().starts_with(PLACEHOLDER);
    let map = |name: &str, m: &crate::operation::ColumnExprs| {
        m.iter()
            .find(|(_, v)| held(v))
            .map(|(k, _)| format!("{name}.{k}"))
    };
    let pair = |up: &str, down: &str| {
        if held(up) {
            Some("up".to_string())
        } else if held(down) {
            Some("down".to_string())
        } else {
            None
        }
    };
    match op {
        Operation::AddColumn(o) => pair(&o.up, ""),
        Operation::DropColumn(o) => pair("", &o.down),
        Operation::AlterColumn(o) => pair(&o.up, &o.down),
        Operation::DropConstraint(o) => pair(&o.up, &o.down),
        Operation::CreateConstraint(o) => map("up", &o.up).or_else(|| map("down", &o.down)),
        Operation::DropMulticolumnConstraint(o) => {
            map("up", &o.up).or_else(|| map("down", &o.down))
        }
        Operation::Sql(o) => pair(&o.up, &o.down),
        Operation::CreateTable(_)
        | Operation::DropTable(_)
        | Operation::RenameTable(_)
        | Operation::RenameColumn(_)
        | Operation::CreateIndex(_)
        | Operation::DropIndex(_)
        | Operation::RenameConstraint(_)
        | Operation::SetReplicaIdentity(_) => None,
    }
}

/// What an operation's check sees: the snapshot as earlier operations left it.
pub(crate) struct Cx<'a> {
    pub schema: &'a mut Schema,
    pub checks: &'a mut Vec<LiveCheck>,
    pub op_index: usize,
    pub op_kind: &'static str,
}

pub(crate) type Check = Result<(), FieldError>;

impl Cx<'_> {
    /// The table, or an error naming `field`; `None` when a `sql` operation ran earlier and the
    /// table may come from it.
    pub fn table(&self, field: &str, name: &str) -> Result<Option<&Table>, FieldError> {
        match self.schema.table(name) {
            Some(t) => Ok(Some(t)),
            None if self.schema.opaque => Ok(None),
            None => Err(FieldError::new(
                field,
                format!("table {name:?} does not exist"),
            )),
        }
    }

    pub fn table_mut(&mut self, field: &str, name: &str) -> Result<Option<&mut Table>, FieldError> {
        let opaque = self.schema.opaque;
        match self.schema.table_mut(name) {
            Some(t) => Ok(Some(t)),
            None if opaque => Ok(None),
            None => Err(FieldError::new(
                field,
                format!("table {name:?} does not exist"),
            )),
        }
    }

    /// Errors unless the column exists (or the table is unknown after a `sql` operation).
    pub fn column_exists(
        &self,
        table_field: &str,
        table: &str,
        field: &str,
        column: &str,
    ) -> Check {
        if let Some(t) = self.table(table_field, table)? {
            if t.column(column).is_none() && !self.schema.opaque {
                return Err(FieldError::new(
                    field,
                    format!("column {column:?} does not exist on table {table:?}"),
                ));
            }
        }
        Ok(())
    }

    pub fn require_type(&mut self, field: &str, type_name: &str) {
        self.checks.push(LiveCheck::TypeExists {
            op_index: self.op_index,
            op_kind: self.op_kind,
            field: field.to_string(),
            type_name: type_name.to_string(),
        });
    }

    pub fn require_empty(&mut self, field: &str, table: &str, reason: &str) {
        self.checks.push(LiveCheck::TableEmpty {
            op_index: self.op_index,
            op_kind: self.op_kind,
            field: field.to_string(),
            table: table.to_string(),
            reason: reason.to_string(),
        });
    }

    /// The operation asks for `feature`, which PostgreSQL has from major version `min_major` on.
    pub fn require_server(&mut self, field: &str, feature: &'static str, min_major: u32) {
        self.checks.push(LiveCheck::ServerVersion {
            op_index: self.op_index,
            op_kind: self.op_kind,
            field: field.to_string(),
            feature,
            min_major,
        });
    }

    /// A new relation (table or index) name must be free.
    pub fn relation_free(&self, field: &str, name: &str) -> Check {
        new_name(field, name)?;
        if self.schema.relation_exists(name) {
            return Err(FieldError::new(
                field,
                format!("a relation named {name:?} already exists"),
            ));
        }
        Ok(())
    }
}

/// A name tandem is asked to create must be non-empty and fit PostgreSQL's identifier limit:
/// PostgreSQL would silently truncate it, so we refuse instead.
pub(crate) fn new_name(field: &str, name: &str) -> Check {
    if name.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if name.len() > MAX_IDENT_BYTES {
        return Err(FieldError::new(
            field,
            format!(
                "{name:?} is {} bytes long; PostgreSQL identifiers are at most {MAX_IDENT_BYTES} bytes and would be silently truncated",
                name.len()
            ),
        ));
    }
    Ok(())
}

pub(crate) fn not_empty(field: &str, value: &str) -> Check {
    if value.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
