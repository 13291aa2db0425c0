//! tandem's planner: turns a migration and a snapshot of the physical schema into ordered steps
//! for start, complete and rollback, each with its SQL, its locks and whether it may share a
//! transaction; and generates the version schema's views and the write-translating triggers.
//! Invariant: this crate does no IO; everything it knows comes in through `PlanInput`.

#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod constraint;
pub mod ddl;
pub mod error;
mod ops;
pub mod overlay;
pub mod render;
mod shadow;
pub mod sqltext;
pub mod step;
pub mod trigger;
pub mod views;

pub use error::PlanError;
pub use overlay::Overlay;
pub use step::{Lock, LockMode, Part, Phase, Step};

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use tandem_model::{qualified, Migration, Schema};

/// Facts about the live database the planner needs but cannot find out itself.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub pg_major: u32,
    /// `table.column` of added columns whose default PostgreSQL would evaluate once per row
    /// (a volatile default): adding them with the default would rewrite the table.
    pub volatile_defaults: BTreeSet<String>,
    /// Indexes of the `alter_column` operations whose type change PostgreSQL makes without
    /// rewriting the table or rebuilding its indexes (it was asked, on a scratch copy).
    pub in_place_types: BTreeSet<usize>,
    /// What a second column cannot take over from the column it stands in for, because it does
    /// not hold for the new type (PostgreSQL was asked): left off, with a note.
    pub unfit: BTreeSet<Unfit>,
}

/// Something attached to a column that does not fit a new type of it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Unfit {
    /// The column's default (physical table, column) cannot be cast to the new type.
    Default(String, String),
    /// The check constraint (physical table, constraint) fails to apply to the new type.
    Constraint(String, String),
}

impl Unfit {
    pub fn default_of(table: &str, column: &str) -> Unfit {
        Unfit::Default(table.to_string(), column.to_string())
    }

    pub fn constraint(table: &str, name: &str) -> Unfit {
        Unfit::Constraint(table.to_string(), name.to_string())
    }
}

/// What the planner plans from. It is made from a [`tandem_model::Validated`], which only
/// `tandem_model::validate` produces, so the planner never sees a migration that did not pass
/// validation against the schema it plans on.
pub struct PlanInput<'a> {
    /// The schema the application's tables live in, e.g. `public`.
    pub schema: &'a str,
    pub version_schema: &'a str,
    pub(crate) migration: &'a Migration,
    /// The physical schema before start.
    pub(crate) physical: &'a Schema,
    pub facts: &'a Facts,
}

impl<'a> PlanInput<'a> {
    pub fn new(
        schema: &'a str,
        version_schema: &'a str,
        validated: &'a tandem_model::Validated,
        facts: &'a Facts,
    ) -> PlanInput<'a> {
        PlanInput {
            schema,
            version_schema,
            migration: validated.migration(),
            physical: validated.base(),
            facts,
        }
    }
}

/// The name of the session setting a backfill batch sets (`SET LOCAL tandem.backfill = 'on'`)
/// so that the write-translating triggers skip the rows the batch itself computes.
pub const BACKFILL_SETTING: &str = "tandem.backfill";

/// A batched fill, for rows that existed before start, of the columns the new version needs.
/// Each batch runs `UPDATE <table> SET <column> = <expression>, ...` over a range of rows with
/// [`BACKFILL_SETTING`] on, so the triggers stay out of its way. Rows written after the
/// triggers were in place already hold their values and are skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backfill {
    /// Physical table, in the migration's schema.
    pub table: String,
    /// Columns of the key the batches walk in keyset order (the primary key, else a unique
    /// index over NOT NULL columns); empty when the table has neither and the batches walk
    /// ctid ranges.
    pub key: Vec<String>,
    /// Physical column → SQL expression that computes it from the row's current values. The
    /// expression names the table's physical columns unqualified and is valid as the right-hand
    /// side of `SET` in an `UPDATE` of the table (not aliased).
    pub assignments: Vec<(String, String)>,
    /// Physical column → its type, for each assigned column: what `validate` and `start` cast
    /// the expression to when they try it on existing rows before anything changes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub types: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub version_schema: String,
    pub start: Vec<Step>,
    pub backfills: Vec<Backfill>,
    /// Run once the backfill is done, before the version schema is created: validation of what
    /// was added NOT VALID, and indexes built concurrently over filled columns.
    #[serde(default)]
    pub after_backfill: Vec<Step>,
    pub complete: Vec<Step>,
    pub rollback: Vec<Step>,
    pub overlay: Overlay,
    /// What complete drops, `(physical table, physical column)`, the column empty for a whole
    /// table: complete first checks that nothing outside tandem's version schemas (a view of
    /// the user's) still depends on them.
    #[serde(default)]
    pub dropped: Vec<(String, String)>,
    /// Columns whose type complete changes in place, `(physical table, physical column)`.
    #[serde(default)]
    pub altered: Vec<(String, String)>,
    /// What the plan leaves out and why, for the user (`start` reports each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What complete drops or replaces, as the views that read it see it: start and `validate`
    /// refuse, naming them, the views that could not survive complete, and complete checks again
    /// for views made since. A plan stored without it (by an older tandem) recreates no view of
    /// the user's, so complete then refuses every one over `dropped` and `altered`.
    #[serde(default)]
    pub view_columns: Vec<ViewColumn>,
}

/// A column (or, with `column` empty, a whole table) that complete takes away or replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewColumn {
    /// The physical table and column, as they are before complete.
    pub table: String,
    pub column: String,
    /// The operation that drops or replaces it, and its field that says so.
    pub op_index: usize,
    pub field: String,
    /// `None`: complete drops it, and no view that reads it can survive. `Some(name)`: complete
    /// puts a column called `name` in its place (the second column, or the column itself with
    /// its new type) and creates the views that read it again from their definitions, which
    /// works only when `name` is the column's own.
    pub replaced_by: Option<String>,
}

/// One UPDATE computes every assignment of a batch from the row as it was, so an expression that
/// reads a column the same backfill fills (an `add_column` whose `up` reads a column an earlier
/// operation gives a second column) gets that column's expression in its place.
fn inline_assignments(mut b: Backfill) -> Backfill {
    for _ in 0..b.assignments.len() {
        let current = b.assignments.clone();
        let mut changed = false;
        for (column, expr) in b.assignments.iter_mut() {
            let inlined = sqltext::replace_columns(expr, |name| {
                current
                    .iter()
                    .find(|(other, _)| other == name && other != column)
                    .map(|(_, e)| format!("({e})"))
            });
            changed |= inlined != *expr;
            *expr = inlined;
        }
        if !changed {
            break;
        }
    }
    b
}

/// The names an expression may use for a table at this point of the migration: each column's
/// current name, and its physical name, bound to the physical column.
pub(crate) fn name_binds(cx: &Cx<'_>, physical_table: &str) -> Vec<(String, String)> {
    let mut binds = Vec::new();
    for (logical, physical) in cx.columns.get(physical_table).into_iter().flatten() {
        binds.push((logical.clone(), physical.clone()));
        binds.push((physical.clone(), physical.clone()));
    }
    binds
}

/// Plans a migration that has already passed validation.
pub fn plan(input: &PlanInput<'_>) -> Result<Plan, PlanError> {
    let mut force = BTreeSet::new();
    loop {
        let mut cx = Cx::new(input);
        cx.force_shadow = force.clone();
        for (index, op) in input.migration.operations.iter().enumerate() {
            cx.op_index = index;
            cx.op_kind = op.kind();
            cx.rollback_groups.push(Vec::new());
            let first_start = cx.start.len();
            let first_check = cx.start_checks.len();
            ops::plan_operation(&mut cx, op)?;
            let group = cx.rollback_groups.last_mut().expect("pushed above");
            for step in cx.start[first_start..]
                .iter_mut()
                .chain(&mut cx.start_checks[first_check..])
                .chain(group)
            {
                step.part = Some(Part::Operation(index));
            }
        }
        // An operation found that a column changed in place by an earlier one needs a second
        // column after all: plan again with that column shadowed from the first operation on.
        if cx.replan.is_subset(&force) {
            let plan = cx.finish();
            let pg_major = input.facts.pg_major;
            if let Some(message) =
                views::row_security_refusal(input.physical, &plan.overlay, pg_major)
            {
                return Err(PlanError::Refused {
                    file: input.migration.file.clone(),
                    message,
                });
            }
            return Ok(plan);
        }
        force.extend(cx.replan);
    }
}

/// `expr` with each name bound to SQL (`name → source`): as is when every name it mentions is
/// bound to the column of that name, else through a one-row subquery that binds them.
pub(crate) fn bind_expression(binds: &[(String, String)], expr: &str) -> String {
    let mut seen = BTreeSet::new();
    let needed: Vec<String> = binds
        .iter()
        .filter(|(name, source)| {
            sqltext::mentions(expr, name)
                && *source != tandem_model::quote_ident(name)
                && seen.insert(name.clone())
        })
        .map(|(name, source)| format!("{source} AS {}", tandem_model::quote_ident(name)))
        .collect();
    if needed.is_empty() {
        format!("({expr})")
    } else {
        format!(
            "(SELECT ({expr}) FROM (SELECT {}) AS _tandem_row)",
            needed.join(", ")
        )
    }
}

/// Complete and rollback drop the trigger in their first transaction, and with it whatever
/// fills the columns one version cannot see. A step that must run outside a transaction (an
/// index dropped concurrently) between that drop and the drops of those columns and of their
/// NOT NULL checks would leave a window in which the remaining version's writes fail them. Such
/// steps go first instead, in their order, while the trigger still runs. tandem's own (indexes
/// dropped concurrently) need nothing the phase's transactional steps do; a `sql` `down` that
/// drops something CONCURRENTLY now runs before the `down`s of later operations, not after.
fn outside_transactions_first(steps: Vec<Step>) -> Vec<Step> {
    let (mut first, rest): (Vec<Step>, Vec<Step>) =
        steps.into_iter().partition(|s| !s.transactional);
    first.extend(rest);
    first
}

/// The key a backfill walks: the primary key, else a valid unique index over NOT NULL columns,
/// else none (ctid ranges).
pub(crate) fn backfill_key(schema: &Schema, physical_table: &str) -> Vec<String> {
    let Some(t) = schema.table(physical_table) else {
        return Vec::new();
    };
    if !t.primary_key.is_empty() {
        return t.primary_key.clone();
    }
    t.indexes
        .iter()
        .filter(|i| i.unique && i.valid && !i.columns.is_empty())
        .find(|i| {
            i.columns
                .iter()
                .all(|c| t.column(c).is_some_and(|c| !c.nullable))
        })
        .map(|i| i.columns.clone())
        .unwrap_or_default()
}

impl Plan {
    /// The rollback steps that undo what the start steps at indexes `ran` did: those of the
    /// parts that ran, and those of no recorded part, since nothing says they are not needed.
    /// A `sql` operation's `down` thus runs only when its `up` did.
    pub fn rollback_of(&self, ran: &[usize]) -> Vec<Step> {
        self.rollback_indexes_of(ran)
            .into_iter()
            .map(|i| self.rollback[i].clone())
            .collect()
    }

    /// [`Plan::rollback_of`], as indexes into `rollback`.
    pub fn rollback_indexes_of(&self, ran: &[usize]) -> Vec<usize> {
        let parts: Vec<&Part> = ran
            .iter()
            .filter_map(|&i| self.start.get(i)?.part.as_ref())
            .collect();
        (0..self.rollback.len())
            .filter(|&i| {
                self.rollback[i]
                    .part
                    .as_ref()
                    .is_none_or(|p| parts.contains(&p))
            })
            .collect()
    }
}

/// The planner's working state: where each name the migration mentions lives physically.
pub(crate) struct Cx<'a> {
    pub input: &'a PlanInput<'a>,
    pub op_index: usize,
    pub op_kind: &'static str,
    /// Name as the migration sees it at this point → physical table name.
    pub tables: BTreeMap<String, String>,
    /// Physical table → (name as the migration sees it → physical column).
    pub columns: BTreeMap<String, BTreeMap<String, String>>,
    /// Physical names of tables this migration creates.
    pub created: BTreeSet<String>,
    pub start: Vec<Step>,
    pub contract: Vec<Step>,
    pub on_complete: Vec<Step>,
    pub rollback_groups: Vec<Vec<Step>>,
    pub triggers: BTreeMap<String, trigger::TableTrigger>,
    pub backfills: Vec<Backfill>,
    pub hidden_tables: BTreeSet<String>,
    pub hidden_columns: BTreeSet<(String, String)>,
    pub after_backfill: Vec<Step>,
    /// Constraints added `NOT VALID` at start to tables that exist. PostgreSQL holds every new
    /// write to them at once, and some hold columns only the trigger fills (a NOT NULL check on
    /// a second column), so they go after the triggers, in the triggers' transaction: a write
    /// made before the trigger exists (while a concurrent index build runs between two start
    /// transactions) must not be held to them.
    pub start_checks: Vec<Step>,
    pub shadows: Vec<shadow::Shadow>,
    /// (physical table, physical column) that get a shadow from the first operation on.
    pub force_shadow: BTreeSet<(String, String)>,
    /// Columns an operation changed in place.
    pub in_place: BTreeSet<(String, String)>,
    /// Columns changed in place that a later operation wants shadowed.
    pub replan: BTreeSet<(String, String)>,
    pub dropped: Vec<(String, String)>,
    pub altered: Vec<(String, String)>,
    /// Tables and columns complete drops, with the operation that drops them.
    pub view_columns: Vec<ViewColumn>,
    /// Columns whose type changes in place, with the operation: `(table, column, op_index)`.
    pub in_place_types: Vec<(String, String, usize)>,
    /// Defaults the new version's views give columns whose table default changes at complete.
    pub view_defaults: BTreeMap<String, BTreeMap<String, Option<String>>>,
    /// Physical table → second column → the column it stands in for (see
    /// [`Overlay::stand_ins`]).
    pub stand_ins: BTreeMap<String, BTreeMap<String, String>>,
    /// What the plan leaves out and why ([`Plan::notes`]).
    pub notes: Vec<String>,
}

impl<'a> Cx<'a> {
    fn new(input: &'a PlanInput<'a>) -> Self {
        let mut tables = BTreeMap::new();
        let mut columns = BTreeMap::new();
        for (name, t) in &input.physical.tables {
            tables.insert(name.clone(), name.clone());
            columns.insert(
                name.clone(),
                t.columns
                    .iter()
                    .map(|c| (c.name.clone(), c.name.clone()))
                    .collect(),
            );
        }
        Cx {
            input,
            op_index: 0,
            op_kind: "",
            tables,
            columns,
            created: BTreeSet::new(),
            start: Vec::new(),
            contract: Vec::new(),
            on_complete: Vec::new(),
            rollback_groups: Vec::new(),
            triggers: BTreeMap::new(),
            backfills: Vec::new(),
            hidden_tables: BTreeSet::new(),
            hidden_columns: BTreeSet::new(),
            after_backfill: Vec::new(),
            start_checks: Vec::new(),
            shadows: Vec::new(),
            force_shadow: BTreeSet::new(),
            in_place: BTreeSet::new(),
            replan: BTreeSet::new(),
            view_defaults: BTreeMap::new(),
            stand_ins: BTreeMap::new(),
            notes: Vec::new(),
            dropped: Vec::new(),
            altered: Vec::new(),
            view_columns: Vec::new(),
            in_place_types: Vec::new(),
        }
    }

    pub fn schema(&self) -> &str {
        self.input.schema
    }

    pub fn unsupported(&self, message: impl Into<String>) -> PlanError {
        PlanError::Unsupported {
            file: self.input.migration.file.clone(),
            op_index: self.op_index,
            op_kind: self.op_kind,
            message: message.into(),
        }
    }

    /// The physical name of a table the migration names, or the name itself when the table is
    /// unknown (made by a `sql` operation).
    pub fn physical_table(&self, name: &str) -> String {
        self.tables
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }

    /// Schema-qualified, quoted physical table.
    pub fn qualified_table(&self, name: &str) -> String {
        qualified(self.schema(), &self.physical_table(name))
    }

    pub fn physical_column(&self, table: &str, column: &str) -> String {
        let t = self.physical_table(table);
        self.columns
            .get(&t)
            .and_then(|c| c.get(column))
            .cloned()
            .unwrap_or_else(|| column.to_string())
    }

    /// Whether a physical name is still taken (by a table the migration hides or renames).
    pub fn physical_table_taken(&self, name: &str) -> bool {
        self.tables.values().any(|p| p == name) || self.hidden_tables.contains(name)
    }

    /// Adds a rollback step of this operation that runs before those added so far: what
    /// depends on a column must go before the column does.
    pub fn rollback_first(&mut self, step: Step) {
        self.rollback_groups
            .last_mut()
            .expect("one group per operation")
            .insert(0, step);
    }

    pub fn rollback(&mut self, step: Step) {
        self.rollback_groups
            .last_mut()
            .expect("one group per operation")
            .push(step);
    }

    /// Adds `column = expr` to the table's backfill (one pass per table, whatever asks for it).
    pub fn backfill(&mut self, physical_table: &str, column: &str, data_type: &str, expr: String) {
        if let Some(b) = self
            .backfills
            .iter_mut()
            .find(|b| b.table == physical_table)
        {
            b.assignments.push((column.to_string(), expr));
            b.types.insert(column.to_string(), data_type.to_string());
            return;
        }
        let key = backfill_key(self.input.physical, physical_table);
        self.backfills.push(Backfill {
            table: physical_table.to_string(),
            key,
            assignments: vec![(column.to_string(), expr)],
            types: BTreeMap::from([(column.to_string(), data_type.to_string())]),
        });
    }

    /// Records that complete drops a physical table's column (or, `column` empty, the table).
    pub fn drops_for_views(&mut self, physical_table: &str, column: &str, field: &str) {
        self.view_columns.push(ViewColumn {
            table: physical_table.to_string(),
            column: column.to_string(),
            op_index: self.op_index,
            field: field.to_string(),
            replaced_by: None,
        });
    }

    /// The name a physical column has once complete has renamed what it renames, if it stays.
    pub(crate) fn final_name(&self, physical_table: &str, physical: &str) -> Option<String> {
        self.columns
            .get(physical_table)?
            .iter()
            .find(|(_, p)| *p == physical)
            .map(|(logical, _)| logical.clone())
    }

    fn finish(mut self) -> Plan {
        self.rollback_groups.push(Vec::new());
        self.finish_shadows();
        for (table, column, op_index) in std::mem::take(&mut self.in_place_types) {
            let replaced_by = self.final_name(&table, &column);
            self.view_columns.push(ViewColumn {
                table,
                column,
                op_index,
                field: "type".into(),
                replaced_by,
            });
        }
        let schema = self.input.schema;
        let version_schema = self.input.version_schema.to_string();
        let mut start = self.start;
        let mut complete = Vec::new();
        let mut rollback = Vec::new();
        let mut narrow = Vec::new();
        for (table, trig) in &self.triggers {
            let part = || Part::Trigger(table.clone());
            let tagged = |steps: Vec<Step>| steps.into_iter().map(move |s| s.part(part()));
            start.extend(tagged(trig.create_steps(schema, &version_schema, table)));
            if self.input.facts.pg_major >= 14 {
                narrow.extend(trig.narrow_steps(schema, &version_schema, table));
            }
            complete.extend(trig.drop_steps(schema, table));
            rollback.extend(tagged(trig.drop_steps(schema, table)));
        }
        start.extend(self.start_checks);
        complete.extend(self.contract);
        let mut complete = outside_transactions_first(complete);
        // Every view that reads a column complete replaces is dropped before the first change
        // and created again after the renames that put the new columns in place, in one
        // transaction: the steps between are all transactional (those that are not came first).
        let mut replaced: Vec<(String, String)> = Vec::new();
        for v in &self.view_columns {
            let key = (qualified(schema, &v.table), v.column.clone());
            if v.replaced_by.is_some() && !replaced.contains(&key) {
                replaced.push(key);
            }
        }
        let first_tx = complete.iter().take_while(|s| !s.transactional).count();
        if !replaced.is_empty() {
            // The new version's views read second columns under their shadow names; the
            // renames below give those their final names before the views are created again.
            let mut renames: Vec<(String, String)> = Vec::new();
            for cols in self.columns.values() {
                for (logical, physical) in cols {
                    let pair = (physical.clone(), logical.clone());
                    if physical.starts_with(shadow::SHADOW_PREFIX)
                        && logical != physical
                        && !renames.contains(&pair)
                    {
                        renames.push(pair);
                    }
                }
            }
            complete.insert(
                first_tx,
                views::saving_dependent_views(&replaced, &version_schema, &renames),
            );
        }
        // Renames go last, so every earlier contract step still finds the physical names it was
        // planned with; columns before tables for the same reason.
        let mut overlay = Overlay::default();
        for (table, cols) in &self.columns {
            for (logical, physical) in cols {
                if logical != physical {
                    complete.push(
                        Step::tx(
                            format!("rename column {table}.{physical} to {logical}"),
                            format!(
                                "ALTER TABLE {} RENAME COLUMN {} TO {}",
                                qualified(schema, table),
                                tandem_model::quote_ident(physical),
                                tandem_model::quote_ident(logical)
                            ),
                        )
                        .lock(LockMode::AccessExclusive, qualified(schema, table)),
                    );
                    if let Some(step) = not_null_name(schema, table, physical, logical) {
                        complete.push(step);
                    }
                    overlay
                        .columns
                        .entry(table.clone())
                        .or_default()
                        .insert(physical.clone(), Some(logical.clone()));
                }
            }
        }
        for (table, column) in &self.hidden_columns {
            overlay
                .columns
                .entry(table.clone())
                .or_default()
                .insert(column.clone(), None);
        }
        for (logical, physical) in &self.tables {
            if logical != physical {
                complete.push(
                    Step::tx(
                        format!("rename table {physical} to {logical}"),
                        format!(
                            "ALTER TABLE {} RENAME TO {}",
                            qualified(schema, physical),
                            tandem_model::quote_ident(logical)
                        ),
                    )
                    .lock(LockMode::AccessExclusive, qualified(schema, physical)),
                );
                overlay
                    .tables
                    .insert(physical.clone(), Some(logical.clone()));
            }
        }
        for t in &self.hidden_tables {
            overlay.tables.insert(t.clone(), None);
        }
        overlay.defaults = self.view_defaults;
        overlay.stand_ins = self.stand_ins;
        if !replaced.is_empty() {
            complete.push(views::recreating_saved_views());
        }
        complete.extend(self.on_complete);
        for group in self.rollback_groups.into_iter().rev() {
            rollback.extend(group);
        }
        let rollback = outside_transactions_first(rollback);
        Plan {
            version_schema,
            start,
            backfills: self.backfills.into_iter().map(inline_assignments).collect(),
            // Validation scans the whole table under SHARE UPDATE EXCLUSIVE, which blocks no
            // write; narrowing the trigger takes SHARE ROW EXCLUSIVE, which blocks writes until
            // the transaction ends. So the scans go first and the trigger's lock is held only
            // for the moment before commit.
            after_backfill: self.after_backfill.into_iter().chain(narrow).collect(),
            dropped: self.dropped,
            altered: self.altered,
            notes: self.notes,
            view_columns: self.view_columns,
            complete,
            rollback,
            overlay,
        }
    }
}

#[cfg(test)]
mod tests;

/// PostgreSQL 18 gives NOT NULL a named constraint, and the name stays when the column is
/// renamed: a second column would leave `<table>__tandem_new_<column>_not_null` behind. Once it
/// has the column's name, this gives its NOT NULL constraint the name PostgreSQL gives a column
/// of that name (`<table>_<column>_not_null`), if that fits in an identifier and is free. Before
/// 18 no such constraint exists and the step does nothing.
fn not_null_name(schema: &str, table: &str, physical: &str, logical: &str) -> Option<Step> {
    if !physical.starts_with(shadow::SHADOW_PREFIX) {
        return None;
    }
    let target = format!("{table}_{logical}_not_null");
    if target.len() > 63 {
        return None;
    }
    let tbl = tandem_model::quote_literal(&qualified(schema, table));
    let col = tandem_model::quote_literal(logical);
    let target_lit = tandem_model::quote_literal(&target);
    Some(Step::tx(
        format!("name the NOT NULL constraint of {table}.{logical}"),
        format!(
            "DO $tandem$DECLARE n name; BEGIN
  SELECT c.conname INTO n FROM pg_constraint c
    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
    WHERE c.conrelid = {tbl}::regclass AND c.contype = 'n' AND a.attname = {col};
  IF n IS NOT NULL AND n <> {target_lit} AND NOT EXISTS (
    SELECT 1 FROM pg_constraint WHERE conrelid = {tbl}::regclass AND conname = {target_lit}) THEN
    EXECUTE format('ALTER TABLE %s RENAME CONSTRAINT %I TO %I', {tbl}, n, {target_lit});
  END IF;
END$tandem$"
        ),
    ))
}
