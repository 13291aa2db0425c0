//! Reads a schema snapshot from the catalogs: tables, columns, constraints and indexes; and finds
//! the views of the user's that what complete drops or replaces would leave broken.

use crate::error::{Context, Result};
use postgres::GenericClient;
use std::collections::BTreeMap;
use tandem_model::{
    Column, Constraint, ConstraintKind, Index, Partition, Partitioning, ReplicaIdentity, Schema,
    Table,
};
use tandem_plan::{Plan, ViewColumn};

pub fn read_schema(client: &mut impl GenericClient, schema: &str) -> Result<Schema> {
    let ctx = || format!("reading the catalog of schema {schema:?}");
    let mut out = Schema::new(schema);
    let mut by_oid: BTreeMap<u32, String> = BTreeMap::new();
    for row in client
        .query(
            "SELECT c.oid, c.relname::text, obj_description(c.oid, 'pg_class'), c.relreplident::text,
                    (SELECT ic.relname::text FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                      WHERE i.indrelid = c.oid AND i.indisreplident),
                    c.relrowsecurity,
                    EXISTS (SELECT 1 FROM pg_attribute a
                             WHERE a.attrelid = c.oid AND a.attnum > 0 AND a.attacl IS NOT NULL)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition",
            &[&schema],
        )
        .context(ctx)?
    {
        let oid: u32 = row.get(0);
        let name: String = row.get(1);
        let replica_identity = match (row.get::<_, String>(3).as_str(), row.get(4)) {
            ("f", _) => ReplicaIdentity::Full,
            ("n", _) => ReplicaIdentity::Nothing,
            ("i", Some(index)) => ReplicaIdentity::Index(index),
            _ => ReplicaIdentity::Default,
        };
        by_oid.insert(oid, name.clone());
        out.tables.insert(
            name.clone(),
            Table {
                name,
                comment: row.get(2),
                replica_identity,
                row_security: row.get(5),
                column_grants: row.get(6),
                ..Table::default()
            },
        );
    }
    let oids: Vec<u32> = by_oid.keys().copied().collect();
    for row in client
        .query(
            "SELECT a.attrelid, a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
                    pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text,
                    col_description(a.attrelid, a.attnum)
               FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attrelid, a.attnum",
            &[&oids],
        )
        .context(ctx)?
    {
        let table = &by_oid[&row.get::<_, u32>(0)];
        let expr: Option<String> = row.get(4);
        let identity: String = row.get(5);
        let generated: String = row.get(6);
        let is_generated = generated == "s";
        out.tables.get_mut(table).expect("table read above").columns.push(Column {
            name: row.get(1),
            data_type: row.get(2),
            nullable: row.get(3),
            default: if is_generated { None } else { expr.clone() },
            identity: match identity.as_str() {
                "a" => Some("ALWAYS".into()),
                "d" => Some("BY DEFAULT".into()),
                _ => None,
            },
            generated: if is_generated { expr } else { None },
            comment: row.get(7),
        });
    }
    for row in client
        .query(
            "SELECT c.conrelid, c.conname::text, c.contype::text, c.convalidated, pg_get_constraintdef(c.oid),
                    ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i)
               FROM pg_constraint c
              -- PostgreSQL 18 also records NOT NULL as constraints; the column's `nullable`
              -- says it already, and the planner reasons about NOT NULL through it.
              WHERE c.conrelid = ANY($1) AND c.contype <> 'n' ORDER BY c.conname",
            &[&oids],
        )
        .context(ctx)?
    {
        let table = out.tables.get_mut(&by_oid[&row.get::<_, u32>(0)]).expect("table read above");
        let kind = match row.get::<_, String>(2).as_str() {
            "c" => ConstraintKind::Check,
            "u" => ConstraintKind::Unique,
            "p" => ConstraintKind::PrimaryKey,
            "f" => ConstraintKind::ForeignKey,
            "x" => ConstraintKind::Exclude,
            _ => ConstraintKind::Other,
        };
        let columns: Vec<String> = row.get(5);
        if kind == ConstraintKind::PrimaryKey {
            table.primary_key = columns.clone();
        }
        table.constraints.push(Constraint {
            name: row.get(1),
            kind,
            columns,
            definition: row.get(4),
            validated: row.get(3),
        });
    }
    for row in client
        .query(
            "SELECT i.indrelid, c.relname::text, i.indisunique, i.indisprimary, i.indisvalid, pg_get_indexdef(i.indexrelid),
                    ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
                          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o)
               FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
              WHERE i.indrelid = ANY($1) ORDER BY c.relname",
            &[&oids],
        )
        .context(ctx)?
    {
        let table = out.tables.get_mut(&by_oid[&row.get::<_, u32>(0)]).expect("table read above");
        table.indexes.push(Index {
            name: row.get(1),
            unique: row.get(2),
            primary: row.get(3),
            valid: row.get(4),
            definition: row.get(5),
            columns: row.get(6),
        });
    }
    for row in client
        .query(
            "SELECT p.partrelid,
                    ARRAY(SELECT a.attname::text FROM unnest(p.partattrs::int2[]) WITH ORDINALITY k(n, o)
                          LEFT JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = k.n
                          ORDER BY k.o),
                    ARRAY(SELECT cn.nspname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                          JOIN pg_namespace cn ON cn.oid = c.relnamespace
                          WHERE i.inhparent = p.partrelid ORDER BY cn.nspname, c.relname),
                    ARRAY(SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                          JOIN pg_namespace cn ON cn.oid = c.relnamespace
                          WHERE i.inhparent = p.partrelid ORDER BY cn.nspname, c.relname),
                    ARRAY(SELECT c.relkind = 'p' FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                          JOIN pg_namespace cn ON cn.oid = c.relnamespace
                          WHERE i.inhparent = p.partrelid ORDER BY cn.nspname, c.relname)
               FROM pg_partitioned_table p WHERE p.partrelid = ANY($1)",
            &[&oids],
        )
        .context(ctx)?
    {
        let table = out.tables.get_mut(&by_oid[&row.get::<_, u32>(0)]).expect("table read above");
        let key: Vec<Option<String>> = row.get(1);
        let schemas: Vec<String> = row.get(2);
        let names: Vec<String> = row.get(3);
        let partitioned: Vec<bool> = row.get(4);
        table.partitioning = Some(Partitioning {
            key,
            partitions: schemas
                .into_iter()
                .zip(names)
                .zip(partitioned)
                .map(|((schema, name), partitioned)| Partition {
                    schema,
                    name,
                    partitioned,
                    own: Vec::new(),
                })
                .collect(),
        });
    }
    // Indexes and constraints that partitions have of their own (not attached to the parent's).
    for row in client
        .query(
            "SELECT p.inhparent, cn.nspname::text, c.relname::text, a.attname::text, 'index ' || ic.relname
               FROM pg_inherits p
               JOIN pg_class c ON c.oid = p.inhrelid
               JOIN pg_namespace cn ON cn.oid = c.relnamespace
               JOIN pg_index i ON i.indrelid = c.oid
               JOIN pg_class ic ON ic.oid = i.indexrelid
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)
              WHERE p.inhparent = ANY($1)
                AND NOT EXISTS (SELECT 1 FROM pg_inherits ii WHERE ii.inhrelid = i.indexrelid)
             UNION ALL
             SELECT p.inhparent, cn.nspname::text, c.relname::text, a.attname::text, 'constraint ' || k.conname
               FROM pg_inherits p
               JOIN pg_class c ON c.oid = p.inhrelid
               JOIN pg_namespace cn ON cn.oid = c.relnamespace
               JOIN pg_constraint k ON k.conrelid = c.oid AND k.conparentid = 0 AND k.contype <> 'n'
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(k.conkey)
              WHERE p.inhparent = ANY($1)
              ORDER BY 1, 2, 3, 4, 5",
            &[&oids],
        )
        .context(ctx)?
    {
        let Some(table) = by_oid.get(&row.get::<_, u32>(0)) else {
            continue;
        };
        let (schema_name, name): (String, String) = (row.get(1), row.get(2));
        let partition = out
            .tables
            .get_mut(table)
            .and_then(|t| t.partitioning.as_mut())
            .and_then(|p| {
                p.partitions
                    .iter_mut()
                    .find(|p| p.schema == schema_name && p.name == name)
            });
        if let Some(partition) = partition {
            partition.own.push((row.get(3), row.get(4)));
        }
    }
    out.other_relations = client
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relkind NOT IN ('r', 'p', 'i', 'I') ORDER BY 1",
            &[&schema],
        )
        .context(ctx)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(out)
}

/// The server's major version, e.g. 15.
pub fn server_major(client: &mut impl GenericClient) -> Result<u32> {
    let v: String = client
        .query_one("SHOW server_version_num", &[])
        .context(|| "reading the server version".into())?
        .get(0);
    Ok(v.parse::<u32>().unwrap_or(0) / 10000)
}

/// Whether a schema (namespace) exists.
pub fn schema_exists(client: &mut impl GenericClient, name: &str) -> Result<bool> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&name],
        )
        .context(|| format!("looking for schema {name:?}"))?
        .get(0))
}

/// A view of the user's that could not survive complete: the operation and field responsible,
/// and why, naming the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewProblem {
    pub op_index: usize,
    pub field: String,
    pub message: String,
}

/// A view or materialized view that reads, directly or through other views, what complete
/// drops or replaces.
struct Dependent {
    /// Index into the plan's `view_columns`.
    root: usize,
    oid: u32,
    name: String,
    materialized: bool,
    populated: bool,
    direct: bool,
}

/// The views outside `ours` (tandem's version schemas) that complete could not keep working:
/// a view that reads a column or table complete drops; a view over a column complete replaces
/// (complete creates those again from their definitions) when the replacement gets another name,
/// when the definition names a table or column complete renames, or when it is a materialized
/// view that holds data, which could only be built again under the swap's lock. Start and
/// `validate` ask before anything changes; complete asks again for views made since.
pub fn view_problems(
    client: &mut impl GenericClient,
    schema: &str,
    plan: &Plan,
    ours: &[String],
) -> Result<Vec<ViewProblem>> {
    let columns: Vec<ViewColumn> = if plan.view_columns.is_empty() {
        // A plan stored by a tandem that recreated no view of the user's.
        plan.dropped
            .iter()
            .chain(&plan.altered)
            .map(|(table, column)| ViewColumn {
                table: table.clone(),
                column: column.clone(),
                op_index: 0,
                field: String::new(),
                replaced_by: None,
            })
            .collect()
    } else {
        plan.view_columns.clone()
    };
    if columns.is_empty() {
        return Ok(Vec::new());
    }
    let tables: Vec<&str> = columns.iter().map(|c| c.table.as_str()).collect();
    let cols: Vec<&str> = columns.iter().map(|c| c.column.as_str()).collect();
    let ctx = || format!("looking for views that read what complete changes in schema {schema:?}");
    let mut dependents = Vec::new();
    for row in client
        .query(
            "WITH RECURSIVE roots AS (
               SELECT r.i, c.oid AS rel, r.col, a.attnum
                 FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS r(tbl, col, i)
                 JOIN pg_class c ON c.relname = r.tbl
                 JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = $1
                 LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = r.col
                WHERE r.col = '' OR a.attnum IS NOT NULL
             ), dep(i, oid, level) AS (
               SELECT roots.i, r.ev_class, 1
                 FROM roots
                 JOIN pg_depend d ON d.refobjid = roots.rel
                  AND (roots.col = '' OR d.refobjsubid = roots.attnum)
                 JOIN pg_rewrite r ON r.oid = d.objid
                WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
                  AND r.ev_class <> roots.rel
               UNION
               SELECT dep.i, r.ev_class, dep.level + 1
                 FROM dep
                 JOIN pg_depend d ON d.refobjid = dep.oid
                 JOIN pg_rewrite r ON r.oid = d.objid
                WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
                  AND r.ev_class <> dep.oid
             )
             SELECT dep.i, c.oid, n.nspname::text, format('%I.%I', n.nspname, c.relname),
                    c.relkind = 'm', c.relispopulated, min(dep.level) = 1
               FROM dep JOIN pg_class c ON c.oid = dep.oid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              GROUP BY dep.i, c.oid, n.nspname, c.relname, c.relkind, c.relispopulated
              ORDER BY 1, 4",
            &[&schema, &tables, &cols],
        )
        .context(ctx)?
    {
        let nspname: String = row.get(2);
        if ours.contains(&nspname) {
            continue;
        }
        dependents.push(Dependent {
            root: usize::try_from(row.get::<_, i64>(0) - 1).expect("ordinality starts at 1"),
            oid: row.get(1),
            name: row.get(3),
            materialized: row.get(4),
            populated: row.get(5),
            direct: row.get(6),
        });
    }
    // What each view that complete would create again names directly, in the schema.
    let recreated: Vec<u32> = dependents
        .iter()
        .filter(|d| columns[d.root].replaced_by.is_some())
        .map(|d| d.oid)
        .collect();
    let mut reads: Vec<(u32, String, String)> = Vec::new();
    if !recreated.is_empty() {
        for row in client
            .query(
                "SELECT DISTINCT r.ev_class, t.relname::text, coalesce(a.attname::text, '')
                   FROM pg_depend d
                   JOIN pg_rewrite r ON r.oid = d.objid
                   JOIN pg_class t ON t.oid = d.refobjid
                   JOIN pg_namespace n ON n.oid = t.relnamespace
                   LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
                  WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
                    AND r.ev_class = ANY($1) AND n.nspname = $2 AND t.oid <> r.ev_class
                  ORDER BY 1, 2, 3",
                &[&recreated, &schema],
            )
            .context(ctx)?
        {
            reads.push((row.get(0), row.get(1), row.get(2)));
        }
    }
    let mut problems: Vec<ViewProblem> = Vec::new();
    let mut push = |c: &ViewColumn, message: String| {
        let p = ViewProblem {
            op_index: c.op_index,
            field: c.field.clone(),
            message,
        };
        if !problems.contains(&p) {
            problems.push(p);
        }
    };
    for d in &dependents {
        let c = &columns[d.root];
        let what = if c.column.is_empty() {
            format!("table {}", c.table)
        } else {
            format!("column {}.{}", c.table, c.column)
        };
        let kind = if d.materialized {
            "materialized view"
        } else {
            "view"
        };
        let Some(successor) = &c.replaced_by else {
            if d.direct {
                push(c, format!(
                    "{kind} {} reads {what}, which complete drops; PostgreSQL would refuse the drop while the view reads it. Drop or change the view first (in a `sql` operation before this one, or an earlier migration), or keep the column",
                    d.name
                ));
            }
            continue;
        };
        if d.direct && successor != &c.column {
            push(c, format!(
                "view {} reads {what}, which complete replaces by a column named {successor:?}; complete creates the views over it again from their definitions, which name {:?}. Rename the column in another migration than the one that changes it",
                d.name, c.column
            ));
        }
        if d.materialized && d.populated {
            push(c, format!(
                "materialized view {} reads {what}, whose column complete replaces, and holds data; building it again inside complete's transaction would hold an ACCESS EXCLUSIVE lock on {}, which blocks all its reads and writes, while the view's query runs. Drop it before this migration (or `REFRESH MATERIALIZED VIEW ... WITH NO DATA`, which tandem then creates again empty) and create or refresh it after complete",
                d.name, c.table
            ));
        }
        for (_, table, column) in reads.iter().filter(|(oid, _, _)| *oid == d.oid) {
            let renamed_table = plan.overlay.tables.get(table).is_some_and(Option::is_some);
            let renamed_column = plan
                .overlay
                .columns
                .get(table)
                .and_then(|cols| cols.get(column))
                .is_some_and(|n| n.as_deref().is_some_and(|n| n != column));
            if renamed_table || renamed_column {
                let name = if renamed_column {
                    format!("column {table}.{column}")
                } else {
                    format!("table {table}")
                };
                push(c, format!(
                    "view {} reads {what}, so complete creates it again from its definition, which names {name}, renamed by this migration; make the rename and the change of {what} in separate migrations",
                    d.name
                ));
            }
        }
    }
    Ok(problems)
}

/// The planner's row estimate (`pg_class.reltuples`) of each table of `schema` that has one (a
/// table never vacuumed or analyzed has none). `tandem lint` uses it to say a table is small.
pub fn row_estimates(
    client: &mut impl GenericClient,
    schema: &str,
) -> Result<BTreeMap<String, i64>> {
    let rows = client
        .query(
            "SELECT c.relname::text, c.reltuples::bigint
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.reltuples >= 0",
            &[&schema],
        )
        .context(|| format!("reading the row estimates of schema {schema:?}"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
