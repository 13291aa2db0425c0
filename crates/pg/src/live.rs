//! Validation against the live database, before any DDL: the model's in-memory checks, then the
//! questions only PostgreSQL can answer (does a type exist, is a table empty, is a default
//! volatile), each failure named by file, operation and field.

use crate::error::{Context, Error, Result};
use postgres::Client;
use tandem_model::operation::Operation;
use tandem_model::{qualified, LiveCheck, Migration, Schema, ValidationError};
use tandem_plan::{Facts, Plan};

/// Pseudo-types that CREATE TABLE accepts but `to_regtype` does not know.
const SERIAL_TYPES: &[&str] = &[
    "serial",
    "serial2",
    "serial4",
    "serial8",
    "smallserial",
    "bigserial",
];

/// Validates `migration` against the live `physical` schema; returns the validated migration
/// and the facts the planner needs.
pub fn validate_live(
    client: &mut Client,
    migration: &Migration,
    physical: &Schema,
) -> Result<(tandem_model::Validated, Facts)> {
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
                let original = physical.table(&op.table).expect("known above");
                unfit_carry_overs(client, &table, original, &op.column, t, &mut facts);
                if let Some(message) = up_of_default(client, original, &op.column, &op.up, t) {
                    return Err(Error::Validation(ValidationError {
                        file: migration.file.clone(),
                        op_index: index,
                        op_kind: "alter_column",
                        field: "up".into(),
                        message,
                    }));
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
    Ok((validated, facts))
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

/// How many existing rows of each table [`try_backfills`] evaluates `up` on, at most.
pub const TRIED_ROWS: i64 = 100_000;
/// How long [`try_backfills`] may spend on one table; past it the rows not reached are not
/// tried, which is not an error.
pub const TRY_TIMEOUT: &str = "5s";

/// A read-only transaction whose statements stop after [`TRY_TIMEOUT`].
fn bounded_read_only(client: &mut Client) -> Result<postgres::Transaction<'_>> {
    let mut tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .context(|| "beginning a read-only transaction".into())?;
    tx.batch_execute(&format!("SET LOCAL statement_timeout = '{TRY_TIMEOUT}'"))
        .context(|| "setting statement_timeout".into())?;
    Ok(tx)
}

/// Evaluates each backfill's expressions, cast to their columns' types, on up to
/// [`TRIED_ROWS`] existing rows of its table, in a read-only transaction bounded by
/// [`TRY_TIMEOUT`], before start changes anything: an `up` that fails on a row (a cast that one
/// row cannot take) is refused with that row's key and PostgreSQL's error, instead of stopping
/// the backfill after start has changed the schema. Tables that do not exist yet are skipped, and
/// so are expressions that write (the read-only transaction refuses them), which are never run.
pub fn try_backfills(
    client: &mut Client,
    schema: &str,
    migration: &Migration,
    plan: &tandem_plan::Plan,
) -> Result<()> {
    for b in &plan.backfills {
        let table = qualified(schema, &b.table);
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
            .context(|| format!("looking for {table}"))?
            .get(0);
        if !exists {
            continue;
        }
        for (column, expr) in &b.assignments {
            let Some(data_type) = b.types.get(column) else {
                continue;
            };
            let value = format!("CAST(({expr}) AS {data_type})");
            let Some(message) = try_on_rows(client, &table, b, &value)? else {
                continue;
            };
            let (row, message) = find_failing_row(client, &table, b, &value)?
                .unwrap_or_else(|| ("(not found row by row)".to_string(), message));
            let shown = plan
                .overlay
                .column_name(&b.table, column)
                .unwrap_or(column)
                .to_string();
            return Err(Error::UpFailsOnRow(Box::new(crate::error::UpFailsOnRow {
                file: migration.file.clone(),
                origin: up_origin(migration, &b.table, &shown),
                table: b.table.clone(),
                column: shown,
                row,
                message,
            })));
        }
    }
    Ok(())
}

/// Which operation's `up` fills `column` (as the new version names it) of `table`: the last
/// `add_column` or `alter_column` with an `up` that names it; several in a row share one backfill
/// expression, and the last one names the column as the new version sees it.
fn up_origin(migration: &Migration, table: &str, column: &str) -> String {
    let found = migration
        .operations
        .iter()
        .enumerate()
        .rev()
        .find(|(_, op)| match op {
            Operation::AddColumn(a) => a.table == table && a.column.name == column,
            Operation::AlterColumn(a) => {
                a.table == table && a.name.as_deref().unwrap_or(&a.column) == column
            }
            _ => false,
        });
    match found {
        Some((i, op)) => format!("operations[{i}].{}.up", op.kind()),
        None => "up".to_string(),
    }
}

/// Whether `value` is a data error on a row of the sample: PostgreSQL's message when it is.
/// Anything else is not judged here: past the time bound, an expression with side effects
/// (`nextval`), which the read-only transaction refuses, or one that reads what start has yet
/// to create (a second column, a function a `sql` operation makes).
fn try_on_rows(
    client: &mut Client,
    table: &str,
    b: &tandem_plan::Backfill,
    value: &str,
) -> Result<Option<String>> {
    let alias = tandem_model::quote_ident(&b.table);
    let mut tx = bounded_read_only(client)?;
    let tried = tx.batch_execute(&format!(
        "SELECT count({value}) FROM (SELECT * FROM {table} LIMIT {TRIED_ROWS}) AS {alias}"
    ));
    let Err(e) = tried else { return Ok(None) };
    let data_error = e.code().is_some_and(|c| c.code().starts_with("22"));
    Ok(data_error.then(|| crate::error::describe(&e).trim_end_matches('.').to_string()))
}

/// The first row of the sample on which `value` is a data error, with PostgreSQL's message:
/// one row at a time, each in a subtransaction, in a read-only transaction.
fn find_failing_row(
    client: &mut Client,
    table: &str,
    b: &tandem_plan::Backfill,
    value: &str,
) -> Result<Option<(String, String)>> {
    let alias = tandem_model::quote_ident(&b.table);
    let key = if b.key.is_empty() {
        "ctid::text".to_string()
    } else {
        let cols: Vec<String> = b.key.iter().map(|k| tandem_model::quote_ident(k)).collect();
        let label = format!("({})=(%s)", b.key.join(", ").replace('%', "%%"));
        format!(
            "format({}, concat_ws(', ', {}))",
            tandem_model::quote_literal(&label),
            cols.join(", ")
        )
    };
    let body = format!(
        "DECLARE r record;
BEGIN
  FOR r IN SELECT tableoid, ctid, {key} AS key FROM {table} AS {alias} LIMIT {TRIED_ROWS} LOOP
    BEGIN
      PERFORM {value} FROM {table} AS {alias} WHERE tableoid = r.tableoid AND ctid = r.ctid;
    EXCEPTION WHEN data_exception THEN
      RAISE EXCEPTION USING MESSAGE = concat_ws(chr(31), r.key, SQLERRM);
    END;
  END LOOP;
END;
"
    );
    let mut tx = bounded_read_only(client)?;
    let Err(found) = tx.batch_execute(&format!("DO $tandem_try$\n{body}$tandem_try$")) else {
        return Ok(None);
    };
    let detail = found
        .as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_default();
    Ok(detail
        .split_once('\u{1f}')
        .map(|(row, message)| (row.to_string(), message.trim_end_matches('.').to_string())))
}

/// What a second column of type `data_type` for `column` cannot take over from the column, in
/// [`Facts::unfit`]: its default, when PostgreSQL cannot cast it to the new type (every INSERT
/// that left the column out would then fail), and each check of the table that reads the
/// column and does not hold for the new type (`length(age)` once `age` is an integer). The
/// default is cast in a read-only transaction (one that writes, such as `nextval`, counts as
/// fitting: it is not run); the checks are tried on a scratch temporary table with the table's
/// columns and the new type. Nothing of this survives the rolled-back transactions.
fn unfit_carry_overs(
    client: &mut Client,
    table: &str,
    original: &tandem_model::Table,
    column: &str,
    data_type: &str,
    facts: &mut Facts,
) {
    let Some(col) = original.column(column) else {
        return;
    };
    if let Some(default) = &col.default {
        let cast = format!("SELECT CAST(({default}) AS {data_type})");
        if let Ok(mut tx) = client.build_transaction().read_only(true).start() {
            if let Err(e) = tx.batch_execute(&cast) {
                if e.code() != Some(&postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION) {
                    facts
                        .unfit
                        .insert(tandem_plan::Unfit::default_of(&original.name, column));
                }
            }
            let _ = tx.rollback();
        }
    }
    let checks: Vec<&tandem_model::Constraint> = original
        .constraints
        .iter()
        .filter(|c| {
            c.kind == tandem_model::ConstraintKind::Check
                && (c.columns.iter().any(|c| c == column)
                    || tandem_plan::sqltext::mentions(&c.definition, column))
        })
        .collect();
    if checks.is_empty() {
        return;
    }
    let Ok(mut tx) = client.transaction() else {
        return;
    };
    let scratch = tx.batch_execute(&format!(
        "CREATE TEMPORARY TABLE _tandem_fit (LIKE {table}) ON COMMIT DROP;
         ALTER TABLE _tandem_fit ALTER COLUMN {q} TYPE {data_type} USING NULL",
        q = tandem_model::quote_ident(column)
    ));
    if scratch.is_ok() {
        for c in checks {
            let body = c
                .definition
                .trim_end()
                .trim_end_matches("NOT VALID")
                .trim_end();
            let fits = tx
                .batch_execute(&format!(
                    "SAVEPOINT fit; ALTER TABLE _tandem_fit ADD {body} NOT VALID; RELEASE fit"
                ))
                .is_ok();
            if !fits {
                let _ = tx.batch_execute("ROLLBACK TO fit");
                facts
                    .unfit
                    .insert(tandem_plan::Unfit::constraint(&original.name, &c.name));
            }
        }
    }
    let _ = tx.rollback();
}

/// When the old version inserts a row that leaves `column` out, the column gets its default and
/// the trigger computes the second column from it with `up`: an `up` that fails on the default
/// would make every such INSERT fail. Evaluated in a read-only transaction on the default alone;
/// an `up` that reads other columns, or writes, is not judged here (the rows themselves are
/// tried by `try_backfills`).
fn up_of_default(
    client: &mut Client,
    original: &tandem_model::Table,
    column: &str,
    up: &str,
    data_type: &str,
) -> Option<String> {
    let col = original.column(column)?;
    let default = col.default.as_ref()?;
    if up.trim().is_empty() {
        return None;
    }
    let sql = format!(
        "SELECT CAST(({up}) AS {data_type}) FROM (SELECT CAST(({default}) AS {}) AS {}) AS _tandem_row",
        col.data_type,
        tandem_model::quote_ident(column)
    );
    let mut tx = client.build_transaction().read_only(true).start().ok()?;
    let result = tx.batch_execute(&sql);
    let _ = tx.rollback();
    let e = result.err()?;
    // Only a failure of the value itself (class 22, data exception) is the default's.
    let code = e.code()?.code();
    code.starts_with("22").then(|| {
        format!(
            "`up` fails on the column's default ({default}), which every INSERT of the old version that leaves {column:?} out gives it: {}. Make `up` handle that value",
            crate::error::describe(&e).trim_end_matches('.')
        )
    })
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
