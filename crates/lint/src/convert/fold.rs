//! Joins statements that together make one safe operation: `ADD COLUMN`, its backfill `UPDATE`
//! and `SET NOT NULL` become one `add_column` with `up`; a backfill before `SET NOT NULL` becomes
//! that change's `up`; `NOT VALID` then `VALIDATE` becomes one constraint; a unique index then
//! `ADD CONSTRAINT ... USING INDEX` becomes one unique constraint; consecutive changes of one
//! column become one `alter_column`; comments on a new table go into its `create_table`.

use super::statement::{Draft, Item};
use super::NoteKind;
use tandem_model::operation::*;
use tandem_model::{quote_ident, Operation};

pub fn fold(items: Vec<Item>) -> Vec<Item> {
    let mut items: Vec<Option<Item>> = items.into_iter().map(Some).collect();
    drop_before_rebuild(&mut items);
    validate_into_constraint(&mut items);
    using_index_into_constraint(&mut items);
    into_add_column(&mut items);
    backfill_into_not_null(&mut items);
    merge_alter_columns(&mut items);
    into_create_table(&mut items);
    created_then_dropped(&mut items);
    let mut items: Vec<Item> = items.into_iter().flatten().collect();
    sql_after_renames(&mut items);
    items
}

/// `sql` runs at start on the physical tables, which tandem renames only at complete: SQL
/// after a rename in the same file must use the old names.
fn sql_after_renames(items: &mut [Item]) {
    // (what was renamed, the new name the SQL would use)
    let mut renamed: Vec<(String, String)> = Vec::new();
    for item in items.iter_mut() {
        match &item.draft {
            Draft::Op(Operation::RenameTable(r)) => {
                renamed.push((format!("table {:?} to {:?}", r.from, r.to), r.to.clone()))
            }
            Draft::Op(Operation::RenameColumn(r)) => renamed.push((
                format!("column {:?}.{:?} to {:?}", r.table, r.from, r.to),
                r.to.clone(),
            )),
            Draft::Op(Operation::Sql(sql)) => {
                let words = words(&sql.up);
                let named: Vec<&str> = renamed
                    .iter()
                    .filter(|(_, to)| words.iter().any(|w| w == to))
                    .map(|(what, _)| what.as_str())
                    .collect();
                if !named.is_empty() {
                    item.notes.push((
                        NoteKind::Warning,
                        format!(
                            "this SQL runs at start, but tandem renames ({}) only at complete: write the old names in it",
                            named.join(", ")
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
}

/// The identifiers of a SQL text as PostgreSQL reads them: unquoted ones lower-cased, quoted
/// ones as written.
fn words(sql: &str) -> Vec<String> {
    let Ok(scan) = pg_query::scan(sql) else {
        return Vec::new();
    };
    scan.tokens
        .iter()
        .filter_map(|t| {
            let text = sql.get(t.start as usize..t.end as usize)?;
            if let Some(q) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
                Some(q.replace("\"\"", "\""))
            } else if text
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
            {
                Some(text.to_lowercase())
            } else {
                None
            }
        })
        .collect()
}

fn op(item: &Option<Item>) -> Option<&Operation> {
    match &item.as_ref()?.draft {
        Draft::Op(op) => Some(op),
        _ => None,
    }
}

fn op_mut(item: &mut Option<Item>) -> Option<&mut Operation> {
    match &mut item.as_mut()?.draft {
        Draft::Op(op) => Some(op),
        _ => None,
    }
}

/// Whether a later item could change what `table`.`column` is, so folding must stop there.
fn touches(item: &Item, table: &str, column: &str) -> bool {
    match &item.draft {
        Draft::Op(op) => match op {
            Operation::Sql(_) => true,
            Operation::DropTable(t) => t.name == table,
            Operation::RenameTable(r) => r.from == table || r.to == table,
            Operation::CreateTable(t) => t.name == table,
            Operation::AddColumn(a) => a.table == table && a.column.name == column,
            Operation::DropColumn(d) => d.table == table && d.column == column,
            Operation::RenameColumn(r) => r.table == table && (r.from == column || r.to == column),
            Operation::AlterColumn(a) => a.table == table && a.column == column,
            Operation::CreateConstraint(c) => {
                c.table == table && c.columns.iter().any(|c| c == column)
            }
            Operation::CreateIndex(_)
            | Operation::DropIndex(_)
            | Operation::DropConstraint(_)
            | Operation::DropMulticolumnConstraint(_)
            | Operation::RenameConstraint(_)
            | Operation::SetReplicaIdentity(_) => false,
        },
        Draft::Backfill {
            table: t,
            column: c,
            ..
        } => t == table && c == column,
        Draft::Validate { .. }
        | Draft::UsingIndex { .. }
        | Draft::TableComment { .. }
        | Draft::DropIndexIfExists { .. } => false,
    }
}

/// `DROP INDEX IF EXISTS x` then `CREATE INDEX x`: the drop clears what a failed
/// concurrent build left, which `create_index` does itself. (An index kept as `sql` has no
/// such cleanup, so its drop stays.)
fn drop_before_rebuild(items: &mut [Option<Item>]) {
    for i in 0..items.len() {
        let Some(Item {
            draft: Draft::DropIndexIfExists { name },
            ..
        }) = &items[i]
        else {
            continue;
        };
        let name = name.clone();
        let rebuilt = (i + 1..items.len()).find(|&j| match op(&items[j]) {
            Some(Operation::CreateIndex(c)) => c.name == name,
            _ => false,
        });
        if let Some(j) = rebuilt {
            items[i] = None;
            if let Some(it) = items[j].as_mut() {
                it.notes.push((
                    NoteKind::Info,
                    format!("the DROP INDEX IF EXISTS {name:?} before it is dropped: tandem drops an INVALID index a failed build left, and refuses a valid one"),
                ));
            }
        }
    }
}

fn validate_into_constraint(items: &mut [Option<Item>]) {
    for j in 0..items.len() {
        let Some(Item {
            draft: Draft::Validate { table, name, .. },
            ..
        }) = &items[j]
        else {
            continue;
        };
        // Walking back, the table carries the names earlier renames gave it.
        let (mut current, name) = (table.clone(), name.clone());
        let found = (0..j).rev().find(|&i| {
            if let Some(Operation::RenameTable(r)) = op(&items[i]) {
                if r.to == current {
                    current = r.from.clone();
                }
            }
            items[i]
                .as_ref()
                .is_some_and(|it| it.not_valid.as_deref() == Some(&name))
                && match op(&items[i]) {
                    Some(Operation::CreateConstraint(c)) => c.table == current,
                    Some(Operation::AlterColumn(a)) => a.table == current,
                    _ => false,
                }
        });
        if let Some(i) = found {
            if let Some(it) = items[i].as_mut() {
                it.not_valid = None;
            }
            items[j] = None;
        }
    }
}

fn using_index_into_constraint(items: &mut [Option<Item>]) {
    for j in 0..items.len() {
        let Some(Item {
            draft:
                Draft::UsingIndex {
                    table,
                    name,
                    index,
                    primary,
                    ..
                },
            span,
            ..
        }) = &items[j]
        else {
            continue;
        };
        let (table, name, index, primary, span) =
            (table.clone(), name.clone(), index.clone(), *primary, *span);
        // Walking back, the table carries the names earlier renames gave it.
        let mut current = table.clone();
        let found = (0..j).rev().find_map(|i| match op(&items[i]) {
            Some(Operation::RenameTable(r)) if r.to == current => {
                current = r.from.clone();
                None
            }
            Some(Operation::CreateIndex(ci))
                if ci.name == index
                    && ci.table == current
                    && ci.unique
                    && ci.predicate.is_empty()
                    && ci.method == IndexMethod::Btree
                    && ci.columns.iter().all(|f| {
                        f.collate.is_empty()
                            && f.opclass.is_none()
                            && f.sort.is_none()
                            && f.nulls.is_none()
                    }) =>
            {
                Some((i, ci.clone()))
            }
            _ => None,
        });
        let Some((i, ci)) = found else { continue };
        items[i] = None;
        let storage = (!ci.storage_parameters.is_empty()).then(|| IndexParameters {
            tablespace: String::new(),
            storage_parameters: ci.storage_parameters.clone(),
            include_columns: Vec::new(),
        });
        let mut item = items[j].take().expect("checked above");
        item.span = span;
        item.draft = Draft::Op(Operation::CreateConstraint(CreateConstraint {
            table,
            name,
            kind: if primary {
                CreateConstraintType::PrimaryKey
            } else {
                CreateConstraintType::Unique
            },
            columns: ci.columns.iter().map(|f| f.column.clone()).collect(),
            check: None,
            no_inherit: false,
            index_parameters: storage,
            references: None,
            up: ColumnExprs::new(),
            down: ColumnExprs::new(),
        }));
        items[j] = Some(item);
    }
}

/// An `alter_column` that changes only the fields `f` accepts.
fn only(op: &AlterColumn, f: impl Fn(&AlterColumn) -> bool) -> Option<&AlterColumn> {
    (op.name.is_none()
        && op.up.is_empty()
        && op.down.is_empty()
        && op.data_type.is_none()
        && op.check.is_none()
        && op.unique.is_none()
        && op.references.is_none()
        && f(op))
    .then_some(op)
}

fn into_add_column(items: &mut [Option<Item>]) {
    for i in 0..items.len() {
        let Some(Operation::AddColumn(add)) = op(&items[i]) else {
            continue;
        };
        let (table, column) = (add.table.clone(), add.column.name.clone());
        for j in i + 1..items.len() {
            let Some(later) = items[j].as_ref() else {
                continue;
            };
            if !touches(later, &table, &column) {
                continue;
            }
            let Some(Operation::AddColumn(add)) = op(&items[i]).cloned() else {
                unreachable!()
            };
            let mut add = add;
            let mut folded = true;
            match &later.draft {
                Draft::Backfill { value, .. } if add.up.is_empty() => add.up = value.clone(),
                Draft::Op(Operation::AlterColumn(a)) => {
                    if let Some(a) = only(a, |a| {
                        a.nullable == Some(false) && a.default.is_absent() && a.comment.is_absent()
                    }) {
                        let _ = a;
                        add.column.nullable = false;
                    } else if let Some(a) = only(a, |a| {
                        a.nullable.is_none() && !a.default.is_absent() && a.comment.is_absent()
                    }) {
                        match (&a.default, add.column.default.clone()) {
                            (Nullable::Null, Some(d)) => {
                                if add.up.is_empty() {
                                    add.up = d;
                                }
                                add.column.default = None;
                            }
                            (Nullable::Value(v), Some(d)) => {
                                if add.up.is_empty() {
                                    add.up = d;
                                }
                                add.column.default = Some(v.clone());
                            }
                            (Nullable::Value(v), None) if !add.up.is_empty() => {
                                add.column.default = Some(v.clone());
                            }
                            _ => folded = false,
                        }
                    } else if let Some(a) = only(a, |a| {
                        a.nullable.is_none() && a.default.is_absent() && !a.comment.is_absent()
                    }) {
                        add.column.comment = match &a.comment {
                            Nullable::Value(v) => Some(v.clone()),
                            _ => None,
                        };
                    } else {
                        folded = false;
                    }
                }
                _ => folded = false,
            }
            if !folded {
                break;
            }
            let notes = items[j].take().map(|it| it.notes).unwrap_or_default();
            let target = items[i].as_mut().expect("checked above");
            target.notes.extend(notes);
            // What `up` now gives makes the earlier remark about it moot.
            if !add.up.is_empty() {
                target
                    .notes
                    .retain(|(k, m)| !(*k == NoteKind::Info && m.starts_with("NOT NULL without")));
            }
            target.draft = Draft::Op(Operation::AddColumn(add));
        }
    }
}

fn backfill_into_not_null(items: &mut [Option<Item>]) {
    for j in 0..items.len() {
        let Some(Item {
            draft:
                Draft::Backfill {
                    table,
                    column,
                    value,
                    only_nulls,
                    ..
                },
            ..
        }) = &items[j]
        else {
            continue;
        };
        let (table, column, value, only_nulls) =
            (table.clone(), column.clone(), value.clone(), *only_nulls);
        let Some(k) = (j + 1..items.len()).find(|&k| {
            items[k]
                .as_ref()
                .is_some_and(|it| touches(it, &table, &column))
        }) else {
            continue;
        };
        let Some(Operation::AlterColumn(a)) = op_mut(&mut items[k]) else {
            continue;
        };
        if a.nullable != Some(false) || !a.up.is_empty() || a.name.is_some() {
            continue;
        }
        a.up = if only_nulls {
            format!("COALESCE({}, {value})", quote_ident(&column))
        } else {
            value
        };
        items[j] = None;
    }
}

fn merge_alter_columns(items: &mut [Option<Item>]) {
    let mut prev: Option<usize> = None;
    for j in 0..items.len() {
        if items[j].is_none() {
            continue;
        }
        let merged = prev.and_then(|i| {
            let (Some(Operation::AlterColumn(a)), Some(Operation::AlterColumn(b))) =
                (op(&items[i]), op(&items[j]))
            else {
                return None;
            };
            merge(a, b)
        });
        match merged {
            Some(m) => {
                let i = prev.expect("merged with it");
                let notes = items[j].take().map(|it| it.notes).unwrap_or_default();
                let target = items[i].as_mut().expect("merged with it");
                target.notes.extend(notes);
                target.draft = Draft::Op(Operation::AlterColumn(m));
            }
            None => prev = Some(j),
        }
    }
}

/// Two changes of one column as one `alter_column`, when they change different things.
fn merge(a: &AlterColumn, b: &AlterColumn) -> Option<AlterColumn> {
    fn pick<T: Clone>(x: &Option<T>, y: &Option<T>) -> Option<Option<T>> {
        match (x, y) {
            (Some(_), Some(_)) => None,
            _ => Some(x.clone().or_else(|| y.clone())),
        }
    }
    fn pick_n(x: &Nullable<String>, y: &Nullable<String>) -> Option<Nullable<String>> {
        match (x.is_absent(), y.is_absent()) {
            (false, false) => None,
            (true, _) => Some(y.clone()),
            (false, true) => Some(x.clone()),
        }
    }
    if a.table != b.table || a.column != b.column || a.name.is_some() || b.name.is_some() {
        return None;
    }
    // The second change's `up` would read the first one's result: keep them apart.
    if !b.up.is_empty() || (!a.down.is_empty() && !b.down.is_empty()) {
        return None;
    }
    Some(AlterColumn {
        table: a.table.clone(),
        column: a.column.clone(),
        name: None,
        data_type: pick(&a.data_type, &b.data_type)?,
        nullable: pick(&a.nullable, &b.nullable)?,
        check: pick(&a.check, &b.check)?,
        unique: pick(&a.unique, &b.unique)?,
        references: pick(&a.references, &b.references)?,
        default: pick_n(&a.default, &b.default)?,
        comment: pick_n(&a.comment, &b.comment)?,
        up: a.up.clone(),
        down: if a.down.is_empty() {
            b.down.clone()
        } else {
            a.down.clone()
        },
    })
}

/// The table an operation works on, if it works on one.
fn table_of(op: &Operation) -> Option<&str> {
    Some(match op {
        Operation::CreateTable(o) => &o.name,
        Operation::DropTable(o) => &o.name,
        Operation::RenameTable(o) => &o.from,
        Operation::AddColumn(o) => &o.table,
        Operation::DropColumn(o) => &o.table,
        Operation::RenameColumn(o) => &o.table,
        Operation::AlterColumn(o) => &o.table,
        Operation::CreateIndex(o) => &o.table,
        Operation::CreateConstraint(o) => &o.table,
        Operation::DropConstraint(o) => &o.table,
        Operation::DropMulticolumnConstraint(o) => &o.table,
        Operation::RenameConstraint(o) => &o.table,
        Operation::SetReplicaIdentity(o) => &o.table,
        Operation::DropIndex(_) | Operation::Sql(_) => return None,
    })
}

/// A table created and dropped again in the same file lives only inside the migration: what
/// the file does to it in between is nothing to carry out.
fn created_then_dropped(items: &mut [Option<Item>]) {
    for j in 0..items.len() {
        let Some(Operation::DropTable(d)) = op(&items[j]) else {
            continue;
        };
        let name = d.name.clone();
        let Some(i) = (0..j)
            .rev()
            .find(|&i| matches!(op(&items[i]), Some(Operation::CreateTable(t)) if t.name == name))
        else {
            continue;
        };
        let between_clear = (i + 1..j).all(|k| match items[k].as_ref().map(|it| &it.draft) {
            None => true,
            Some(Draft::Op(Operation::Sql(_))) => false,
            Some(Draft::Op(Operation::RenameTable(r))) => r.from != name && r.to != name,
            Some(Draft::Op(o)) => match o {
                Operation::CreateConstraint(c) => {
                    c.references.as_ref().is_none_or(|r| r.table != name)
                }
                Operation::CreateTable(t) => {
                    !t.columns
                        .iter()
                        .any(|c| c.references.as_ref().is_some_and(|r| r.table == name))
                        && !t
                            .constraints
                            .iter()
                            .any(|c| c.references.as_ref().is_some_and(|r| r.table == name))
                }
                _ => true,
            },
            Some(_) => true,
        });
        if !between_clear {
            continue;
        }
        for slot in &mut items[i..=j] {
            let on_table = match slot.as_ref().map(|it| &it.draft) {
                Some(Draft::Op(o)) => table_of(o) == Some(name.as_str()),
                Some(Draft::Backfill { table, .. })
                | Some(Draft::Validate { table, .. })
                | Some(Draft::UsingIndex { table, .. })
                | Some(Draft::TableComment { table, .. }) => *table == name,
                _ => false,
            };
            if on_table {
                *slot = None;
            }
        }
    }
}

fn into_create_table(items: &mut [Option<Item>]) {
    for i in 0..items.len() {
        let Some(Operation::CreateTable(t)) = op(&items[i]) else {
            continue;
        };
        let name = t.name.clone();
        for j in i + 1..items.len() {
            let Some(Operation::CreateTable(mut t)) = op(&items[i]).cloned() else {
                unreachable!()
            };
            let folded = match items[j].as_ref().map(|it| &it.draft) {
                Some(Draft::TableComment { table, comment, .. }) if *table == name => {
                    t.comment = comment.clone();
                    true
                }
                Some(Draft::Op(Operation::AlterColumn(a))) if a.table == name => {
                    match (
                        only(a, |a| a.nullable.is_none() && a.default.is_absent()),
                        t.columns.iter_mut().find(|c| c.name == a.column),
                    ) {
                        (Some(a), Some(col)) if !a.comment.is_absent() => {
                            col.comment = match &a.comment {
                                Nullable::Value(v) => Some(v.clone()),
                                _ => None,
                            };
                            true
                        }
                        _ => break,
                    }
                }
                Some(other) => {
                    let stop = match other {
                        Draft::Op(Operation::Sql(_)) => true,
                        Draft::Op(Operation::RenameTable(r)) => r.from == name,
                        Draft::Op(Operation::DropTable(d)) => d.name == name,
                        Draft::Op(Operation::RenameColumn(r)) => r.table == name,
                        Draft::Op(Operation::DropColumn(d)) => d.table == name,
                        _ => false,
                    };
                    if stop {
                        break;
                    }
                    false
                }
                None => false,
            };
            if folded {
                let notes = items[j].take().map(|it| it.notes).unwrap_or_default();
                let target = items[i].as_mut().expect("checked above");
                target.notes.extend(notes);
                target.draft = Draft::Op(Operation::CreateTable(t));
            }
        }
    }
}
