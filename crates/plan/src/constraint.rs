//! Adding a constraint to a table both versions write to, without a long lock: CHECK and
//! FOREIGN KEY go in `NOT VALID` and are validated once the backfill is done (SHARE UPDATE
//! EXCLUSIVE: reads and writes go on); UNIQUE and PRIMARY KEY are built as an index
//! concurrently and attached at complete; NOT NULL goes through a validated
//! `CHECK (col IS NOT NULL)`, which lets `SET NOT NULL` at complete skip its scan. On a table
//! the migration creates, the constraint is simply added.

use crate::step::{LockMode, Step};
use crate::{Cx, PlanError};
use tandem_model::{qualified, quote_ident, quote_literal, shorten_name};

/// A constraint over physical columns, its SQL already written against them.
pub(crate) enum NewConstraint {
    /// `CHECK (...)` body (without NOT VALID).
    Check { name: String, body: String },
    /// `FOREIGN KEY (...) REFERENCES ...` body; `target` is the referenced table, qualified.
    ForeignKey {
        name: String,
        body: String,
        target: String,
    },
    Unique {
        name: String,
        columns: Vec<String>,
        /// Anything after the column list: INCLUDE, WITH, tablespace.
        tail: String,
    },
    PrimaryKey {
        name: String,
        columns: Vec<String>,
        tail: String,
    },
}

/// The body of a column-level foreign key (`FOREIGN KEY (col) REFERENCES ...`), its name given
/// separately.
pub(crate) fn foreign_key_body(
    schema: &str,
    column: &str,
    r: &tandem_model::operation::ForeignKeyReference,
) -> String {
    let clause = crate::ddl::foreign_key_clause(schema, column, r);
    clause
        .split_once(" FOREIGN KEY ")
        .map_or(clause.clone(), |(_, rest)| format!("FOREIGN KEY {rest}"))
}

pub(crate) fn validate(table: &str, constraint: &str) -> Step {
    Step::tx(
        format!("validate constraint {constraint}"),
        format!(
            "ALTER TABLE {table} VALIDATE CONSTRAINT {}",
            quote_ident(constraint)
        ),
    )
    .lock(LockMode::ShareUpdateExclusive, table.to_string())
}

pub(crate) fn drop_constraint(table: &str, constraint: &str) -> Step {
    Step::tx(
        format!("drop constraint {constraint}"),
        format!(
            "ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {}",
            quote_ident(constraint)
        ),
    )
    .lock(LockMode::AccessExclusive, table.to_string())
}

/// The name of the temporary `CHECK (col IS NOT NULL)` that stands for NOT NULL while active.
pub(crate) fn not_null_check_name(table: &str, column: &str) -> String {
    shorten_name(&format!("_tandem_{table}_{column}_not_null"))
}

/// Makes a physical column NOT NULL without a long lock: a NOT VALID check at start,
/// validated after the backfill, turned into SET NOT NULL at complete.
pub(crate) fn not_null(cx: &mut Cx<'_>, physical_table: &str, column: &str) {
    let table = qualified(cx.schema(), physical_table);
    let check = not_null_check_name(physical_table, column);
    let qcheck = quote_ident(&check);
    let qcol = quote_ident(column);
    cx.start_checks.push(
        Step::tx(
            format!("add NOT NULL check on {physical_table}.{column} (NOT VALID)"),
            format!(
                "ALTER TABLE {table} ADD CONSTRAINT {qcheck} CHECK ({qcol} IS NOT NULL) NOT VALID"
            ),
        )
        .lock(LockMode::AccessExclusive, table.clone()),
    );
    let (create, drop) = not_null_trigger(cx, physical_table, column);
    cx.start_checks.push(create);
    cx.after_backfill.push(validate(&table, &check));
    cx.contract.push(
        Step::tx(
            format!("set {physical_table}.{column} NOT NULL"),
            format!("ALTER TABLE {table} ALTER COLUMN {qcol} SET NOT NULL;\nALTER TABLE {table} DROP CONSTRAINT {qcheck}"),
        )
        .lock(LockMode::AccessExclusive, table.clone()),
    );
    cx.contract.push(drop.clone());
    cx.rollback(drop_constraint(&table, &check));
    // The trigger's WHEN reads the column, so it would hold up the column's own drop.
    cx.rollback_first(drop);
}

/// While the migration is active, the new version's writes that leave a column NULL which it
/// sees as NOT NULL fail as a NOT NULL column would: SQLSTATE 23502 (not_null_violation), with
/// PostgreSQL's own wording and the column and table as the new version names them, rather than
/// with the CHECK's internal name. A trigger does it, called only for such a write (its `WHEN`
/// tests the column and the session's version before the function runs). It leaves the old
/// version's writes, whose value `up` computes in the table's trigger, to the CHECK: which
/// trigger fires first is a matter of names, and this one must not judge a row before `up`
/// has filled it. No trigger the user wrote before the migration can fill the column either, as
/// it is new to this migration (or, for a second column, tandem's own). Returns the step that
/// creates it and the one that drops it.
fn not_null_trigger(cx: &Cx<'_>, physical_table: &str, column: &str) -> (Step, Step) {
    let table = qualified(cx.schema(), physical_table);
    let shown_table = cx
        .tables
        .iter()
        .find(|(_, physical)| physical.as_str() == physical_table)
        .map_or(physical_table, |(name, _)| name.as_str());
    let shown_column = cx
        .columns
        .get(physical_table)
        .and_then(|cols| {
            cols.iter()
                .find(|(_, physical)| physical.as_str() == column)
        })
        .map_or(column, |(name, _)| name.as_str());
    let name = shorten_name(&format!("_tandem_{physical_table}_{column}_nn"));
    let function = qualified(cx.schema(), &name);
    let message = format!(
        "null value in column \"{shown_column}\" of relation \"{shown_table}\" violates not-null constraint"
    );
    let body = format!(
        "BEGIN\n  RAISE EXCEPTION USING ERRCODE = 'not_null_violation', MESSAGE = {}, COLUMN = {}, TABLE = {}, SCHEMA = {};\nEND;\n",
        quote_literal(&message),
        quote_literal(shown_column),
        quote_literal(shown_table),
        quote_literal(cx.input.version_schema),
    );
    let tag = crate::trigger::dollar_tag(&body);
    let create = Step::tx(
        format!("create NOT NULL trigger {name} on {physical_table}.{column} for the new version"),
        format!(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS {tag}\n{body}{tag};\n\
             CREATE TRIGGER {qname} BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW WHEN (NEW.{qcol} IS NULL AND (current_schemas(false))[1] IS NOT DISTINCT FROM {vs}) EXECUTE FUNCTION {function}()",
            qname = quote_ident(&name),
            qcol = quote_ident(column),
            vs = quote_literal(cx.input.version_schema),
        ),
    )
    .lock(LockMode::ShareRowExclusive, table.clone());
    let drop = Step::tx(
        format!("drop NOT NULL trigger {name} on {physical_table}"),
        format!(
            "DROP TRIGGER IF EXISTS {} ON {table};\nDROP FUNCTION IF EXISTS {function}()",
            quote_ident(&name)
        ),
    )
    .lock(LockMode::AccessExclusive, table);
    (create, drop)
}

/// A unique index built concurrently once the backfill is done; `attach` is the contract step
/// that makes it a constraint (or renames it), if any.
pub(crate) fn concurrent_index(
    cx: &mut Cx<'_>,
    physical_table: &str,
    index: &str,
    create_tail: String,
    unique: bool,
) {
    let table = qualified(cx.schema(), physical_table);
    let qindex = qualified(cx.schema(), index);
    let drop = format!("DROP INDEX CONCURRENTLY IF EXISTS {qindex}");
    // A start continued after an interruption may find the index, valid or not, from before.
    cx.after_backfill.push(
        Step::non_tx(
            format!("drop index {index} left by an interrupted start"),
            drop.clone(),
        )
        .lock(LockMode::ShareUpdateExclusive, table.clone()),
    );
    cx.after_backfill.push(
        Step::non_tx(
            format!("build index {index} concurrently"),
            format!(
                "CREATE {}INDEX CONCURRENTLY {} ON {table} {create_tail}",
                if unique { "UNIQUE " } else { "" },
                quote_ident(index)
            ),
        )
        .lock(LockMode::ShareUpdateExclusive, table.clone())
        .cleanup(drop.clone()),
    );
    cx.rollback(
        Step::non_tx(format!("drop index {index}"), drop)
            .lock(LockMode::ShareUpdateExclusive, table),
    );
}

pub(crate) fn add(
    cx: &mut Cx<'_>,
    physical_table: &str,
    c: NewConstraint,
) -> Result<(), PlanError> {
    let table = qualified(cx.schema(), physical_table);
    let partitioned = !cx.created.contains(physical_table)
        && cx
            .input
            .physical
            .table(physical_table)
            .is_some_and(|t| t.partitioning.is_some());
    if partitioned {
        refuse_on_partitioned(cx, physical_table, &c)?;
    }
    if cx.created.contains(physical_table) {
        let (name, def) = match &c {
            NewConstraint::Check { name, body } => (name, body.clone()),
            NewConstraint::ForeignKey { name, body, .. } => (name, body.clone()),
            NewConstraint::Unique {
                name,
                columns,
                tail,
            } => (
                name,
                format!("UNIQUE ({}){tail}", crate::ddl::ident_list(columns)),
            ),
            NewConstraint::PrimaryKey {
                name,
                columns,
                tail,
            } => (
                name,
                format!("PRIMARY KEY ({}){tail}", crate::ddl::ident_list(columns)),
            ),
        };
        cx.start.push(Step::tx(
            format!("add constraint {name}"),
            format!(
                "ALTER TABLE {table} ADD CONSTRAINT {} {def}",
                quote_ident(name)
            ),
        ));
        return Ok(());
    }
    match c {
        NewConstraint::Check { name, body } => {
            cx.start_checks.push(
                Step::tx(
                    format!("add check {name} (NOT VALID)"),
                    format!(
                        "ALTER TABLE {table} ADD CONSTRAINT {} {body} NOT VALID",
                        quote_ident(&name)
                    ),
                )
                .lock(LockMode::AccessExclusive, table.clone()),
            );
            cx.after_backfill.push(validate(&table, &name));
            cx.rollback(drop_constraint(&table, &name));
        }
        NewConstraint::ForeignKey { name, body, target } => {
            cx.start_checks.push(
                Step::tx(
                    format!("add foreign key {name} (NOT VALID)"),
                    format!(
                        "ALTER TABLE {table} ADD CONSTRAINT {} {body} NOT VALID",
                        quote_ident(&name)
                    ),
                )
                .lock(LockMode::ShareRowExclusive, table.clone())
                .lock(LockMode::ShareRowExclusive, target),
            );
            cx.after_backfill.push(validate(&table, &name));
            cx.rollback(drop_constraint(&table, &name));
        }
        NewConstraint::Unique {
            name,
            columns,
            tail,
        } => {
            let create_tail = format!("({}){tail}", crate::ddl::ident_list(&columns));
            concurrent_index(cx, physical_table, &name, create_tail, true);
            let q = quote_ident(&name);
            cx.contract.push(
                Step::tx(
                    format!("attach unique constraint {name}"),
                    format!("ALTER TABLE {table} ADD CONSTRAINT {q} UNIQUE USING INDEX {q}"),
                )
                .lock(LockMode::AccessExclusive, table.clone()),
            );
        }
        NewConstraint::PrimaryKey {
            name,
            columns,
            tail,
        } => {
            for col in &columns {
                let nullable = cx
                    .input
                    .physical
                    .table(physical_table)
                    .and_then(|t| t.column(col))
                    .is_none_or(|c| c.nullable);
                if nullable && !cx.shadow_not_null(physical_table, col) {
                    not_null(cx, physical_table, col);
                }
            }
            let create_tail = format!("({}){tail}", crate::ddl::ident_list(&columns));
            concurrent_index(cx, physical_table, &name, create_tail, true);
            let q = quote_ident(&name);
            cx.contract.push(
                Step::tx(
                    format!("attach primary key {name}"),
                    format!("ALTER TABLE {table} ADD CONSTRAINT {q} PRIMARY KEY USING INDEX {q}"),
                )
                .lock(LockMode::AccessExclusive, table.clone()),
            );
        }
    }
    Ok(())
}

/// What PostgreSQL cannot do on a partitioned table without a long lock: a foreign key added
/// `NOT VALID` (before 18), and a unique or primary-key constraint, which would need a unique
/// index built concurrently on the parent and attached with `USING INDEX`.
fn refuse_on_partitioned(
    cx: &Cx<'_>,
    physical_table: &str,
    c: &NewConstraint,
) -> Result<(), PlanError> {
    match c {
        NewConstraint::Check { .. } => Ok(()),
        NewConstraint::ForeignKey { name, .. } if cx.input.facts.pg_major < 18 => {
            Err(cx.unsupported(format!(
                "foreign key {name:?} on the partitioned table {physical_table:?}: before PostgreSQL 18 a foreign key cannot be added NOT VALID to a partitioned table, so adding it would hold SHARE ROW EXCLUSIVE on the table, its partitions and the referenced table (blocking their writes) while every row is checked. Add it on PostgreSQL 18, or in a maintenance window with a `sql` operation"
            )))
        }
        NewConstraint::ForeignKey { .. } => Ok(()),
        NewConstraint::Unique { name, .. } | NewConstraint::PrimaryKey { name, .. } => {
            Err(cx.unsupported(format!(
                "constraint {name:?} on the partitioned table {physical_table:?}: PostgreSQL builds no index concurrently on a partitioned table and cannot attach one as a constraint (`USING INDEX`), so the constraint would hold a lock that blocks writes for the whole build. Create a unique index instead (`create_index` with `unique: true`, including the partition key), which tandem builds partition by partition"
            )))
        }
    }
}
