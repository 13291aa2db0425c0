//! Reads a schema snapshot from the catalogs: tables, columns, constraints and indexes.

use crate::error::{Context, Result};
use postgres::GenericClient;
use std::collections::BTreeMap;
use tandem_model::{
    Column, Constraint, ConstraintKind, Index, Partition, Partitioning, ReplicaIdentity, Schema,
    Table,
};

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

/// Refuses, naming them, when views other than those in `ours` (tandem's version schemas)
/// depend on a table or column in `dropped` (`(table, column)`, the column empty for the whole
/// table): dropping it would fail half-way through complete, or take the view with it.
pub fn refuse_dependent_views(
    client: &mut impl GenericClient,
    schema: &str,
    dropped: &[(String, String)],
    ours: &[String],
) -> Result<()> {
    let mut found = Vec::new();
    for (table, column) in dropped {
        let rows = client
            .query(
                "SELECT DISTINCT format('%I.%I', vn.nspname, v.relname)
                   FROM pg_depend d
                   JOIN pg_rewrite r ON r.oid = d.objid
                   JOIN pg_class v ON v.oid = r.ev_class
                   JOIN pg_namespace vn ON vn.oid = v.relnamespace
                   JOIN pg_class t ON t.oid = d.refobjid
                   JOIN pg_namespace tn ON tn.oid = t.relnamespace
                  WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
                    AND tn.nspname = $1 AND t.relname = $2 AND v.oid <> t.oid
                    AND ($3 = '' OR d.refobjsubid = (SELECT attnum FROM pg_attribute WHERE attrelid = t.oid AND attname = $3))
                    AND vn.nspname <> ALL($4)
                  ORDER BY 1",
                &[&schema, table, column, &ours],
            )
            .context(|| format!("looking for views that use {table}"))?;
        for r in rows {
            let view: String = r.get(0);
            let what = if column.is_empty() {
                format!("table {table}")
            } else {
                format!("column {table}.{column}")
            };
            found.push(format!("view {view} uses {what}"));
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    Err(crate::error::Error::Other(format!(
        "complete would drop, or change the type of, what other views still use: {}. tandem does not rewrite views it did not make; drop or change them (for instance to read from the new version's schema), then run `tandem complete` again. Nothing was changed",
        found.join("; ")
    )))
}
