//! Validation against the live database, before any DDL: the model's in-memory checks, then the
//! questions only PostgreSQL can answer (does a type exist, is a table empty, is a default
//! volatile), each failure named by file, operation and field.

use crate::error::{Context, Error, Result};
use postgres::Client;
use tandem_model::operation::Operation;
use tandem_model::{qualified, LiveCheck, Migration, Schema, ValidationError};
use tandem_plan::{Facts, Plan, PlanInput};

/// Pseudo-types that CREATE TABLE accepts but `to_regtype` does not know.
const SERIAL_TYPES: &[&str] = &[
    "serial",
    "serial2",
    "serial4",
    "serial8",
    "smallserial",
    "bigserial",
];

/// Validates `migration` against the live `physical` schema; returns the facts the planner needs.
pub fn validate_live(
    client: &mut Client,
    migration: &Migration,
    physical: &Schema,
) -> Result<Facts> {
    let validated = tandem_model::validate(migration, physical)?;
    run_checks(client, migration, physical, &validated.live_checks)?;
    let mut facts = Facts {
        pg_major: crate::introspect::server_major(client)?,
        ..Facts::default()
    };
    for (index, op) in migration.operations.iter().enumerate() {
        if let Operation::AlterColumn(op) = op {
            let known = physical
                .table(&op.table)
                .is_some_and(|t| t.column(&op.column).is_some());
            if let (Some(t), true, false) = (&op.data_type, known, sql_before(migration, index)) {
                let table = qualified(&physical.name, &op.table);
                if type_change_in_place(client, &table, &op.column, t) {
                    facts.in_place_types.insert(index);
                }
            }
            continue;
        }
        let Operation::AddColumn(op) = op else {
            continue;
        };
        let (Some(default), Some(_)) = (&op.column.default, physical.table(&op.table)) else {
            continue;
        };
        if sql_before(migration, index) {
            continue;
        }
        match default_is_volatile(client, &op.column.data_type, default) {
            Ok(true) => {
                facts
                    .volatile_defaults
                    .insert(format!("{}.{}", op.table, op.column.name));
            }
            Ok(false) => {}
            Err(message) => {
                return Err(Error::Validation(ValidationError {
                    file: migration.file.clone(),
                    op_index: index,
                    op_kind: "add_column",
                    field: "column.default".into(),
                    message,
                }))
            }
        }
    }
    Ok(facts)
}

/// Whether a `sql` operation comes before operation `index`: what it creates is unknown, so
/// checks that depend on the live catalog give it the benefit of the doubt.
fn sql_before(migration: &Migration, index: usize) -> bool {
    migration.operations[..index]
        .iter()
        .any(|o| matches!(o, Operation::Sql(_)))
}

/// Runs the model's live checks.
pub fn run_checks(
    client: &mut Client,
    migration: &Migration,
    physical: &Schema,
    checks: &[LiveCheck],
) -> Result<()> {
    for check in checks {
        let ok = match check {
            LiveCheck::TypeExists {
                op_index,
                type_name,
                ..
            } => {
                sql_before(migration, *op_index)
                    || SERIAL_TYPES.contains(&type_name.trim().to_ascii_lowercase().as_str())
                    || type_exists(client, type_name)?
            }
            LiveCheck::TableEmpty {
                op_index, table, ..
            } => {
                if sql_before(migration, *op_index) || physical.table(table).is_none() {
                    true
                } else {
                    !client
                        .query_one(
                            &format!(
                                "SELECT EXISTS (SELECT 1 FROM {})",
                                qualified(&physical.name, table)
                            ),
                            &[],
                        )
                        .context(|| format!("checking whether {table:?} has rows"))?
                        .get::<_, bool>(0)
                }
            }
            LiveCheck::ServerVersion { min_major, .. } => {
                crate::introspect::server_major(client)? >= *min_major
            }
        };
        if !ok {
            return Err(Error::Validation(check.failure(&migration.file)));
        }
    }
    Ok(())
}

fn type_exists(client: &mut Client, name: &str) -> Result<bool> {
    // to_regtype raises on a malformed name; a savepoint keeps that from spoiling anything.
    let mut tx = client.transaction().context(|| "checking a type".into())?;
    let found = match tx.query_one("SELECT to_regtype($1) IS NOT NULL", &[&name]) {
        Ok(row) => row.get(0),
        Err(_) => false,
    };
    let _ = tx.rollback();
    Ok(found)
}

/// Asks PostgreSQL itself whether adding a column with this default rewrites the table: on a
/// scratch temporary table, a default it can store once shows up as `atthasmissing`; a volatile
/// one is written into every row instead. Nothing of this survives the rolled-back transaction.
fn default_is_volatile(
    client: &mut Client,
    data_type: &str,
    default: &str,
) -> std::result::Result<bool, String> {
    let mut tx = client
        .transaction()
        .map_err(|e| crate::error::describe(&e))?;
    let probe = (|| {
        tx.batch_execute(&format!(
            "CREATE TEMPORARY TABLE _tandem_probe (x int) ON COMMIT DROP;
             INSERT INTO _tandem_probe VALUES (1);
             ALTER TABLE _tandem_probe ADD COLUMN probe {data_type} DEFAULT {default};"
        ))?;
        let row = tx.query_one(
            "SELECT atthasmissing FROM pg_attribute WHERE attrelid = '_tandem_probe'::regclass AND attname = 'probe'",
            &[],
        )?;
        Ok::<bool, postgres::Error>(!row.get::<_, bool>(0))
    })();
    let _ = tx.rollback();
    probe.map_err(|e| {
        format!(
            "PostgreSQL rejects this default: {}",
            crate::error::describe(&e)
        )
    })
}

/// Asks PostgreSQL whether changing a column's type rewrites the table or rebuilds one of its
/// indexes: on a scratch temporary table with the same columns and indexes (`LIKE ... INCLUDING
/// INDEXES`), the type is changed and the files of the table and its indexes compared. A change
/// PostgreSQL refuses without a `USING` counts as a rewrite. Nothing of this survives the
/// rolled-back transaction.
fn type_change_in_place(client: &mut Client, table: &str, column: &str, data_type: &str) -> bool {
    let Ok(mut tx) = client.transaction() else {
        return false;
    };
    let files = "SELECT string_agg(c.relname || '=' || pg_relation_filenode(c.oid), ',' ORDER BY c.relname)
                   FROM pg_class c
                  WHERE c.oid = '_tandem_probe'::regclass
                     OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = '_tandem_probe'::regclass)";
    let probe = (|| {
        tx.batch_execute(&format!(
            "CREATE TEMPORARY TABLE _tandem_probe (LIKE {table} INCLUDING INDEXES) ON COMMIT DROP"
        ))?;
        let before: String = tx.query_one(files, &[])?.get(0);
        tx.batch_execute(&format!(
            "ALTER TABLE _tandem_probe ALTER COLUMN {} TYPE {data_type}",
            tandem_model::quote_ident(column)
        ))?;
        let after: String = tx.query_one(files, &[])?.get(0);
        Ok::<bool, postgres::Error>(before == after)
    })();
    let _ = tx.rollback();
    probe.unwrap_or(false)
}

/// Refuses, naming the operation and the view, when complete could not keep one of the user's
/// views working (`introspect::view_problems`): a view that reads what the plan drops, or one
/// over a replaced column that cannot be created again. `ours` are tandem's version schemas.
pub fn refuse_views(
    client: &mut Client,
    migration: &Migration,
    schema: &str,
    plan: &Plan,
    ours: &[String],
) -> Result<()> {
    let problems = crate::introspect::view_problems(client, schema, plan, ours)?;
    let Some(first) = problems.first() else {
        return Ok(());
    };
    let message = problems
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Err(Error::Validation(ValidationError {
        file: migration.file.clone(),
        op_index: first.op_index,
        op_kind: migration
            .operations
            .get(first.op_index)
            .map_or("", Operation::kind),
        field: first.field.clone(),
        message,
    }))
}

/// [`refuse_views`] for `validate`: plans `migration` over `physical` (the live schema, or what
/// the earlier pending migrations make of it) as start would, and asks about the live views.
pub fn validate_views(
    client: &mut Client,
    migration: &Migration,
    physical: &Schema,
    ours: &[String],
) -> Result<()> {
    let facts = Facts {
        pg_major: crate::introspect::server_major(client)?,
        ..Facts::default()
    };
    let plan = tandem_plan::plan(&PlanInput {
        schema: &physical.name,
        // Only what complete drops and replaces matters here, not the name.
        version_schema: "tandem_validate",
        migration,
        physical,
        facts: &facts,
    })?;
    refuse_views(client, migration, &physical.name, &plan, ours)
}
