//! The column-change engine. A change the old version must not see — a new type, or values
//! rewritten by `up` — goes to a new physical column beside the old one (the shadow). The
//! table's trigger fills the shadow from the old version's writes through `up`, and the old
//! column from the new version's writes through `down`; the backfill fills it for existing rows.
//! The shadow carries over everything attached to the old column that the migration keeps
//! (default, comment, NOT NULL, checks, foreign keys, indexes and unique constraints), under
//! temporary names. Complete drops the old column and gives the shadow and what it carries
//! their final names; rollback drops the shadow.
//!
//! Every operation on the same column in one migration works on the same shadow, and every
//! shadow of a table is filled in the same backfill pass.

use crate::constraint;
use crate::sqltext::{mentions, rename_columns};
use crate::step::{LockMode, Step};
use crate::{Cx, PlanError};
use std::collections::BTreeSet;
use tandem_model::{qualified, quote_ident, quote_literal, shorten_name, ConstraintKind};

/// The name a second column gets: this prefix, then the physical column's name.
pub(crate) const SHADOW_PREFIX: &str = "_tandem_new_";

/// What one operation does to a shadowed column.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    /// The names the operation's expressions use for the column (before and after a rename).
    pub names: Vec<String>,
    /// Old values → new; empty means the old value as it is.
    pub up: String,
    /// New values → old; empty means the new value as it is.
    pub down: String,
    /// Names → physical columns holding the old version's values.
    pub old_binds: Vec<(String, String)>,
    /// Names → physical columns holding the new version's values.
    pub new_binds: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub(crate) struct Shadow {
    pub table: String,
    pub original: String,
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
    pub default: Option<String>,
    pub comment: Option<String>,
    /// The start step that adds the column, and whether an operation chose its type.
    pub add_step: usize,
    pub type_set: bool,
    /// Whether a migration set the default (else it is the old column's).
    pub default_changed: bool,
    pub changes: Vec<Change>,
    /// Constraints on the old column the migration drops: not carried over.
    pub dropped: BTreeSet<String>,
    /// The operation that made the second column, and its field that asked for it.
    pub op_index: usize,
    pub field: &'static str,
}

impl Cx<'_> {
    /// The shadow of a physical column (by its shadow or original name), if it has one.
    pub fn shadow_index(&self, physical_table: &str, physical: &str) -> Option<usize> {
        self.shadows.iter().position(|s| {
            s.table == physical_table && (s.name == physical || s.original == physical)
        })
    }

    /// Whether a physical column is a shadow, in which case it is made NOT NULL by the shadow's
    /// own steps.
    pub fn shadow_not_null(&mut self, physical_table: &str, physical: &str) -> bool {
        match self.shadow_index(physical_table, physical) {
            Some(i) => {
                self.shadows[i].nullable = false;
                true
            }
            None => false,
        }
    }

    /// Whether the column must get a shadow because an earlier planning pass found that a later
    /// operation needs one.
    pub fn forced_shadow(&self, physical_table: &str, physical: &str) -> bool {
        self.force_shadow
            .contains(&(physical_table.to_string(), physical.to_string()))
    }

    /// Whether every change to the column goes to a shadow: it has one, or must get one.
    pub fn shadowed(&self, physical_table: &str, physical: &str) -> bool {
        self.shadow_index(physical_table, physical).is_some()
            || self.forced_shadow(physical_table, physical)
    }

    /// Records that an operation changed a column in place (no shadow). A later operation that
    /// needs a shadow for it makes the planner start over with the shadow from the beginning.
    pub fn touched_in_place(&mut self, physical_table: &str, physical: &str) {
        self.in_place
            .insert((physical_table.to_string(), physical.to_string()));
    }

    /// The shadow of the column the migration calls `column` in `table`, created if needed, with
    /// `data_type` as its type (the column's own type when `None`).
    pub fn ensure_shadow(
        &mut self,
        table: &str,
        column: &str,
        data_type: Option<&str>,
    ) -> Result<usize, PlanError> {
        let physical_table = self.physical_table(table);
        let physical = self.physical_column(table, column);
        if let Some(i) = self.shadow_index(&physical_table, &physical) {
            if let Some(t) = data_type {
                let s = &self.shadows[i];
                if s.type_set && !same_type(t, &s.data_type) {
                    return Err(self.unsupported(format!(
                        "column {column:?} already changes type in this migration; change its type once, in one alter_column"
                    )));
                }
                // An earlier operation made the second column with the old type: nothing has
                // been written to it yet, so it is added with the new type instead.
                let (step, old_type) = (s.add_step, s.data_type.clone());
                let sql = &mut self.start[step].sql;
                let end = sql.len() - old_type.len();
                debug_assert!(sql.ends_with(&old_type));
                sql.replace_range(end.., t);
                let s = &mut self.shadows[i];
                s.data_type = t.to_string();
                s.type_set = true;
            }
            return Ok(i);
        }
        let key = (physical_table.clone(), physical.clone());
        if self.in_place.contains(&key) {
            self.replan.insert(key);
        }
        let t = self.input.physical.table(&physical_table);
        let Some(col) = t.and_then(|t| t.column(&physical)) else {
            return Err(self.unsupported(format!(
                "column {column:?} of {table:?} is not known to tandem (made by a `sql` operation?); change it in a later migration"
            )));
        };
        let t = t.expect("column found in it");
        if t.primary_key.contains(&physical) {
            return Err(self.unsupported(format!(
                "column {column:?} is part of the primary key of {table:?}; changing it through a second column would change the table's identity while both versions write to it. Add a new key column instead, or change it with a `sql` operation in a maintenance window"
            )));
        }
        if col.identity.is_some() || col.generated.is_some() {
            return Err(self.unsupported(format!(
                "column {column:?} is an identity or generated column; tandem cannot copy it to a new column"
            )));
        }
        if let Some(fk) = incoming_reference(self, &physical_table, &physical) {
            return Err(self.unsupported(format!(
                "column {column:?} is referenced by foreign key {fk}; a second column cannot take over a referenced column. Drop that foreign key in an earlier migration"
            )));
        }
        if let Some(partitioning) = &t.partitioning {
            let own = partitioning.partitions.iter().find_map(|p| {
                p.own
                    .iter()
                    .find(|(c, _)| *c == physical)
                    .map(|(_, what)| (p, what))
            });
            if let Some((p, what)) = own {
                return Err(self.unsupported(format!(
                    "column {column:?} of the partitioned table {table:?} is used by {what} of its partition {}.{}, which a second column would not carry over: complete would drop it with the old column. Move it to the parent (an index or constraint on the partitioned table) in an earlier migration, or change the column with a `sql` operation",
                    p.schema, p.name
                )));
            }
            if let Some(index) = t.indexes.iter().find(|i| i.columns.contains(&physical)) {
                return Err(self.unsupported(format!(
                    "column {column:?} of the partitioned table {table:?} is in index {:?}; a second column would need that index built again over it, which PostgreSQL cannot do concurrently on a partitioned table. Drop the index in an earlier migration and create it again (partition by partition) in a later one",
                    index.name
                )));
            }
        }
        let name = shorten_name(&format!("{SHADOW_PREFIX}{physical}"));
        let type_set = data_type.is_some();
        let data_type = data_type.unwrap_or(&col.data_type).to_string();
        let qtable = qualified(self.schema(), &physical_table);
        self.start.push(
            Step::tx(
                format!("add column {physical_table}.{name} for the new {column:?}"),
                format!(
                    "ALTER TABLE {qtable} ADD COLUMN {} {data_type}",
                    quote_ident(&name)
                ),
            )
            .lock(LockMode::AccessExclusive, qtable),
        );
        self.shadows.push(Shadow {
            add_step: self.start.len() - 1,
            type_set,
            table: physical_table.clone(),
            original: physical.clone(),
            name: name.clone(),
            data_type,
            nullable: col.nullable,
            default: col.default.clone(),
            comment: col.comment.clone(),
            default_changed: false,
            changes: Vec::new(),
            dropped: BTreeSet::new(),
            op_index: self.op_index,
            field: if type_set { "type" } else { "up" },
        });
        self.columns
            .entry(physical_table)
            .or_default()
            .insert(column.to_string(), name);
        Ok(self.shadows.len() - 1)
    }

    /// Adds an operation's `up`/`down` to a shadow. Call after any rename the operation makes,
    /// with every name the operation uses for the column.
    pub fn shadow_change(&mut self, index: usize, names: Vec<String>, up: &str, down: &str) {
        let table = self.shadows[index].table.clone();
        let new_binds = crate::name_binds(self, &table);
        let old_binds = new_binds
            .iter()
            .map(|(n, p)| {
                let original = self
                    .shadows
                    .iter()
                    .find(|s| s.table == table && &s.name == p)
                    .map_or(p, |s| &s.original);
                (n.clone(), original.clone())
            })
            .collect();
        self.shadows[index].changes.push(Change {
            names,
            up: up.trim().to_string(),
            down: down.trim().to_string(),
            old_binds,
            new_binds,
        });
    }

    /// Turns the shadows into steps, trigger stages and backfill assignments.
    pub(crate) fn finish_shadows(&mut self) {
        let shadows = std::mem::take(&mut self.shadows);
        let tables: BTreeSet<String> = shadows.iter().map(|s| s.table.clone()).collect();
        for table in tables {
            let mine: Vec<&Shadow> = shadows.iter().filter(|s| s.table == table).collect();
            self.finish_table(&table, &mine);
        }
    }

    fn finish_table(&mut self, physical_table: &str, shadows: &[&Shadow]) {
        let schema = self.schema().to_string();
        let table = qualified(&schema, physical_table);
        let renames: Vec<(String, String)> = shadows
            .iter()
            .map(|s| (s.original.clone(), s.name.clone()))
            .collect();
        let dropped: BTreeSet<&String> = shadows.iter().flat_map(|s| &s.dropped).collect();
        let mut contract = Vec::new();
        let mut renamed_after = Vec::new();

        for s in shadows {
            self.stand_ins
                .entry(physical_table.to_string())
                .or_default()
                .insert(s.name.clone(), s.original.clone());
            self.hidden_columns
                .insert((physical_table.to_string(), s.original.clone()));
            self.dropped
                .push((physical_table.to_string(), s.original.clone()));
            // The views that read the old column are created again over the second one once it
            // has the old one's place (`views::saving_dependent_views`).
            let replaced_by = self.final_name(physical_table, &s.name);
            self.view_columns.push(crate::ViewColumn {
                table: physical_table.to_string(),
                column: s.original.clone(),
                op_index: s.op_index,
                field: s.field.to_string(),
                replaced_by,
            });
            let qname = quote_ident(&s.name);
            let unfit_default = crate::Unfit::default_of(physical_table, &s.original);
            if s.default.is_some()
                && !s.default_changed
                && self.input.facts.unfit.contains(&unfit_default)
            {
                // Cast, it would fail on every INSERT that leaves the column out, the old
                // version's included.
                self.notes.push(format!(
                    "the default of {physical_table}.{} cannot be cast to {}, so its second column has none; the new version's inserts that leave the column out get NULL unless the migration sets a default",
                    s.original, s.data_type
                ));
            } else if let Some(d) = &s.default {
                // A default carried over from a column of another type is cast to the new one.
                let d = if s.default_changed || same_type(&s.data_type, &original_type(self, s)) {
                    d.clone()
                } else {
                    format!("CAST(({d}) AS {})", s.data_type)
                };
                self.start.push(Step::tx(
                    format!("set default of {physical_table}.{}", s.name),
                    format!("ALTER TABLE {table} ALTER COLUMN {qname} SET DEFAULT {d}"),
                ));
            }
            if let Some(c) = &s.comment {
                self.start.push(Step::tx(
                    format!("comment on {physical_table}.{}", s.name),
                    format!("COMMENT ON COLUMN {table}.{qname} IS {}", quote_literal(c)),
                ));
            }
            self.start.push(Step::tx(
                format!("column privileges of {physical_table}.{}", s.name),
                crate::views::column_privileges_like(&table, &s.original, &s.name),
            ));
            if !s.nullable {
                constraint::not_null(self, physical_table, &s.name);
            }
            let original_type = original_type(self, s);
            // The trigger: the old version's writes reach the shadow through each `up` in
            // turn; the new version's reach the old column through each `down`, last first.
            let trig = self.triggers.entry(physical_table.to_string()).or_default();
            for (k, change) in s.changes.iter().enumerate() {
                // Every name the operation gives the column (its old name too, after a rename
                // in the same operation) reads the value as it stands before this `up`: the old
                // column for the first change, the second column after that.
                let mut binds = change.old_binds.clone();
                let input = if k == 0 { &s.original } else { &s.name };
                binds.retain(|(n, _)| !change.names.contains(n));
                binds.extend(change.names.iter().map(|n| (n.clone(), input.clone())));
                let expr = if change.up.is_empty() {
                    quote_ident(&change.names[0])
                } else {
                    change.up.clone()
                };
                trig.old(
                    &s.name,
                    binds,
                    &cast(&expr, &s.data_type, k + 1 == s.changes.len()),
                );
            }
            for (k, change) in s.changes.iter().enumerate().rev() {
                let mut binds = change.new_binds.clone();
                let source = if k + 1 == s.changes.len() {
                    &s.name
                } else {
                    &s.original
                };
                binds.retain(|(n, _)| !change.names.contains(n));
                binds.extend(change.names.iter().map(|n| (n.clone(), source.clone())));
                let expr = if change.down.is_empty() {
                    quote_ident(change.names.last().expect("a change names its column"))
                } else {
                    change.down.clone()
                };
                trig.new_version(&s.original, binds, &cast(&expr, &original_type, k == 0));
            }
            // The backfill computes the same chain of `up`s as SQL.
            let mut expr = String::new();
            for (k, change) in s.changes.iter().enumerate() {
                let up = if change.up.is_empty() {
                    quote_ident(&change.names[0])
                } else {
                    change.up.clone()
                };
                let up = cast(&up, &s.data_type, k + 1 == s.changes.len());
                let input = if k == 0 {
                    quote_ident(&s.original)
                } else {
                    expr.clone()
                };
                let mut binds: Vec<(String, String)> = change
                    .old_binds
                    .iter()
                    .filter(|(n, _)| !change.names.contains(n))
                    .map(|(n, p)| (n.clone(), quote_ident(p)))
                    .collect();
                binds.extend(change.names.iter().map(|n| (n.clone(), input.clone())));
                expr = crate::bind_expression(&binds, &up);
            }
            self.backfill(physical_table, &s.name, &s.data_type, expr);

            self.rollback(
                Step::tx(
                    format!("drop column {physical_table}.{}", s.name),
                    format!("ALTER TABLE {table} DROP COLUMN IF EXISTS {qname}"),
                )
                .lock(LockMode::AccessExclusive, table.clone()),
            );
            // A sequence the old column owns (serial) would go with it.
            contract.push(Step::tx(
                format!("move sequences owned by {physical_table}.{} to the new column", s.original),
                format!(
                    "DO $tandem$DECLARE s regclass; BEGIN
  FOR s IN SELECT d.objid::regclass FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
            JOIN pg_class c ON c.oid = d.objid AND c.relkind = 'S'
            WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a'
              AND d.refobjid = {tbl}::regclass AND a.attname = {orig}
  LOOP EXECUTE format('ALTER SEQUENCE %s OWNED BY %s.%I', s, {tbl}, {shadow}); END LOOP;
END$tandem$",
                    tbl = quote_literal(&table),
                    orig = quote_literal(&s.original),
                    shadow = quote_literal(&s.name),
                ),
            ));
            contract.push(
                Step::tx(
                    format!("drop the old column {physical_table}.{}", s.original),
                    format!(
                        "ALTER TABLE {table} DROP COLUMN {}",
                        quote_ident(&s.original)
                    ),
                )
                .lock(LockMode::AccessExclusive, table.clone()),
            );
        }

        // What is attached to the old columns and stays: carried over under temporary names.
        let Some(t) = self.input.physical.table(physical_table) else {
            self.contract.extend(contract);
            return;
        };
        let t = t.clone();
        let touches = |cols: &[String], def: &str| {
            shadows
                .iter()
                .any(|s| cols.contains(&s.original) || mentions(def, &s.original))
        };
        for c in &t.constraints {
            if dropped.contains(&c.name) || !touches(&c.columns, &c.definition) {
                continue;
            }
            let unfit = crate::Unfit::constraint(physical_table, &c.name);
            if self.input.facts.unfit.contains(&unfit) {
                self.notes.push(format!(
                    "check {} of {physical_table} does not hold for the new type, so it is left off the second column; the old column keeps it until complete drops it",
                    c.name
                ));
                continue;
            }
            let temp = shorten_name(&format!("_tandem_{}", c.name));
            let body = match c.kind {
                ConstraintKind::Check => rename_columns(&c.definition, &renames),
                ConstraintKind::ForeignKey => match c.definition.find(" REFERENCES ") {
                    Some(p) => format!(
                        "{}{}",
                        rename_columns(&c.definition[..p], &renames),
                        &c.definition[p..]
                    ),
                    None => continue,
                },
                // Unique constraints come with their index, below.
                _ => continue,
            };
            let body = body
                .trim_end()
                .trim_end_matches("NOT VALID")
                .trim_end()
                .to_string();
            let q = quote_ident(&temp);
            self.start_checks.push(
                Step::tx(
                    format!("copy constraint {} to the new column (NOT VALID)", c.name),
                    format!("ALTER TABLE {table} ADD CONSTRAINT {q} {body} NOT VALID"),
                )
                .lock(LockMode::AccessExclusive, table.clone()),
            );
            if c.validated {
                self.after_backfill
                    .push(constraint::validate(&table, &temp));
            }
            renamed_after.push(Step::tx(
                format!("rename constraint {temp} to {}", c.name),
                format!(
                    "ALTER TABLE {table} RENAME CONSTRAINT {q} TO {}",
                    quote_ident(&c.name)
                ),
            ));
        }
        for index in &t.indexes {
            if index.primary
                || !index.valid
                || dropped.contains(&index.name)
                || !touches(&index.columns, &index.definition)
            {
                continue;
            }
            let Some(p) = index.definition.find(" USING ") else {
                continue;
            };
            let tail = rename_columns(&index.definition[p + 1..], &renames);
            let temp = shorten_name(&format!("_tandem_{}", index.name));
            constraint::concurrent_index(self, physical_table, &temp, tail, index.unique);
            let q = quote_ident(&temp);
            let constraint = t
                .constraints
                .iter()
                .find(|c| c.name == index.name && c.kind == ConstraintKind::Unique);
            renamed_after.push(match constraint {
                Some(c) => {
                    let deferrable = if c.definition.contains("INITIALLY DEFERRED") {
                        " DEFERRABLE INITIALLY DEFERRED"
                    } else if c.definition.contains("DEFERRABLE") {
                        " DEFERRABLE"
                    } else {
                        ""
                    };
                    Step::tx(
                        format!("attach unique constraint {}", c.name),
                        format!(
                            "ALTER TABLE {table} ADD CONSTRAINT {} UNIQUE USING INDEX {q}{deferrable}",
                            quote_ident(&c.name)
                        ),
                    )
                    .lock(LockMode::AccessExclusive, table.clone())
                }
                None => Step::tx(
                    format!("rename index {temp} to {}", index.name),
                    format!(
                        "ALTER INDEX {} RENAME TO {}",
                        qualified(&schema, &temp),
                        quote_ident(&index.name)
                    ),
                ),
            });
        }
        self.contract.extend(contract);
        self.contract.extend(renamed_after);
    }
}

fn original_type(cx: &Cx<'_>, s: &Shadow) -> String {
    cx.input
        .physical
        .table(&s.table)
        .and_then(|t| t.column(&s.original))
        .map(|c| c.data_type.clone())
        .unwrap_or_default()
}

/// `expr`, cast to the column's type when it is the last stage (so `up: rating` works for a
/// type change as `ALTER ... TYPE` would without USING).
fn cast(expr: &str, data_type: &str, last: bool) -> String {
    if last && !data_type.is_empty() {
        format!("CAST(({expr}) AS {data_type})")
    } else {
        expr.to_string()
    }
}

/// Whether two spellings of a type are the same (a cheap, conservative comparison).
pub(crate) fn same_type(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let s = s.trim().to_lowercase();
        let s = s
            .replace("character varying", "varchar")
            .replace("integer", "int4")
            .replace("bigint", "int8")
            .replace("smallint", "int2")
            .replace("boolean", "bool")
            .replace("timestamp with time zone", "timestamptz")
            .replace("timestamp without time zone", "timestamp")
            .replace("double precision", "float8")
            .replace("real", "float4");
        let s = if s == "int" { "int4".to_string() } else { s };
        s.replace(' ', "")
    };
    norm(a) == norm(b)
}

/// A foreign key of another table (or this one) that references the column, by name.
pub(crate) fn incoming_reference(
    cx: &Cx<'_>,
    physical_table: &str,
    column: &str,
) -> Option<String> {
    for t in cx.input.physical.tables.values() {
        for c in &t.constraints {
            if c.kind != ConstraintKind::ForeignKey {
                continue;
            }
            let Some(p) = c.definition.find("REFERENCES ") else {
                continue;
            };
            let rest = &c.definition[p + "REFERENCES ".len()..];
            let Some(open) = rest.find('(') else { continue };
            let target = rest[..open].trim();
            let target = target
                .rsplit('.')
                .next()
                .unwrap_or(target)
                .trim_matches('"');
            let close = rest.find(')').unwrap_or(rest.len());
            let cols = &rest[open + 1..close];
            if target == physical_table && mentions(cols, column) {
                return Some(format!("{:?} on {:?}", c.name, t.name));
            }
        }
    }
    None
}
