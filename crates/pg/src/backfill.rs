//! The batched backfill: walks a table in keyset order of its key, touching each existing row
//! once in short transactions so the table's trigger computes the new column's value. Each
//! batch runs under the session's lock_timeout and is retried when it times out on a lock.

use crate::error::{Context, Error, Result};
use crate::events::{Event, OnEvent};
use crate::locks::{is_lock_timeout, RetryPolicy};
use postgres::types::ToSql;
use postgres::Client;
use tandem_model::{qualified, quote_ident, Schema};
use tandem_plan::Backfill;

#[derive(Debug, Clone, Copy)]
pub struct BackfillOptions {
    pub batch_size: i64,
}

impl Default for BackfillOptions {
    fn default() -> Self {
        BackfillOptions { batch_size: 1000 }
    }
}

/// Runs one backfill to the end; returns the number of rows touched.
pub fn run(
    client: &mut Client,
    physical: &Schema,
    backfill: &Backfill,
    opts: &BackfillOptions,
    policy: &RetryPolicy,
    on_event: OnEvent<'_>,
) -> Result<u64> {
    let schema = &physical.name;
    let table = qualified(schema, &backfill.table);
    let t = physical
        .table(&backfill.table)
        .ok_or_else(|| Error::Other(format!("backfill: table {:?} vanished", backfill.table)))?;
    let types: Vec<String> = backfill
        .key
        .iter()
        .map(|k| {
            t.column(k)
                .map(|c| c.data_type.clone())
                .unwrap_or_else(|| "text".into())
        })
        .collect();
    let keys: Vec<String> = backfill.key.iter().map(|k| quote_ident(k)).collect();
    let key_list = keys.join(", ");
    let params: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, ty)| format!("${}::text::{ty}", i + 1))
        .collect();
    let join: Vec<String> = keys.iter().map(|k| format!("t.{k} = b.{k}")).collect();
    let as_text: Vec<String> = keys.iter().map(|k| format!("{k}::text")).collect();
    // Qualified, so the order is the key's own and not that of the text column of the same name.
    let descending: Vec<String> = keys.iter().map(|k| format!("u.{k} DESC")).collect();
    let column = quote_ident(&backfill.assignments[0].0);
    // One statement per batch: pick the next keys, touch those rows, and return how many were
    // touched and the greatest key, where the next batch starts.
    let batch_sql = |after: bool| {
        format!(
            "WITH b AS (SELECT {key_list} FROM {table} {where_} ORDER BY {key_list} LIMIT {limit}),
                  u AS (UPDATE {table} t SET {column} = t.{column} FROM b WHERE {join} RETURNING {returning})
             SELECT count(*) OVER (), {as_text} FROM u ORDER BY {descending} LIMIT 1",
            where_ = if after { format!("WHERE ({key_list}) > ({})", params.join(", ")) } else { String::new() },
            limit = opts.batch_size,
            join = join.join(" AND "),
            returning = keys.iter().map(|k| format!("t.{k}")).collect::<Vec<_>>().join(", "),
            as_text = as_text.join(", "),
            descending = descending.join(", "),
        )
    };
    let first = batch_sql(false);
    let next = batch_sql(true);
    let total: i64 = client
        .query_one(
            "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = to_regclass($1)",
            &[&table],
        )
        .context(|| format!("estimating the size of {table}"))?
        .get(0);
    let mut last: Option<Vec<String>> = None;
    let mut done: u64 = 0;
    let mut attempt = 0;
    loop {
        let result = match &last {
            None => client.query(&first, &[]),
            Some(k) => {
                let p: Vec<&(dyn ToSql + Sync)> =
                    k.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                client.query(&next, &p)
            }
        };
        let rows = match result {
            Ok(rows) => rows,
            Err(e) if is_lock_timeout(&e) && attempt < policy.max_attempts => {
                attempt += 1;
                std::thread::sleep(policy.delay(attempt));
                continue;
            }
            Err(e) => {
                return Err(Error::Db {
                    context: format!("backfilling {}", backfill.table),
                    source: e,
                })
            }
        };
        attempt = 0;
        if rows.is_empty() {
            break;
        }
        done += rows[0].get::<_, i64>(0) as u64;
        last = Some(
            (1..=keys.len())
                .map(|i| rows[0].get::<_, String>(i))
                .collect(),
        );
        on_event(&Event::Backfill {
            table: backfill.table.clone(),
            column: backfill.assignments[0].0.clone(),
            rows_done: done,
            rows_total_estimate: (total.max(0) as u64).max(done),
        });
    }
    Ok(done)
}
