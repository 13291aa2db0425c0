//! The SQL of a batch, and the values it travels with: the key values in PostgreSQL's own binary
//! form ([`KeyValue`]), the statements that begin a batch, find its upper key and update its
//! range, and the cache of prepared statements that makes each of them one round trip.

use super::walk::Range;
use super::TriggerMode;
use crate::error::{Error, Result};
use postgres::types::private::BytesMut;
use postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use postgres::{Client, GenericClient, Statement};
use std::collections::HashMap;
use tandem_model::Schema;
use tandem_plan::{Backfill, BACKFILL_SETTING};

/// What every batch's UPDATE is made of, the same for the single session and each worker: the
/// table, the `SET` list and the quoted key columns (empty for a walk by blocks).
#[derive(Debug, Clone)]
pub(super) struct BatchSql {
    pub table: String,
    pub set: String,
    pub keys: String,
}

/// A key value as PostgreSQL sent it (binary), bound back unchanged. The value is only ever
/// compared with the column it was read from, so the type PostgreSQL infers for the parameter
/// is that column's type (or, for a domain, its binary-identical base type).
#[derive(Debug, Clone)]
pub(super) struct KeyValue(Option<Vec<u8>>);

impl<'a> FromSql<'a> for KeyValue {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(KeyValue(Some(raw.to_vec())))
    }

    fn from_sql_null(
        _: &Type,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(KeyValue(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

impl ToSql for KeyValue {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0 {
            Some(bytes) => {
                out.extend_from_slice(bytes);
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Starts a batch's transaction: turns tandem's trigger off for it (and, in replica mode, the
/// user's), and returns how many transaction ids were assigned since the cutoff, for
/// `age(xmin)`. The xid is assigned here, before age() is first called in the transaction, so
/// that age(xmin) is measured from this batch's own xid. Both settings are local to the
/// transaction, so a batch that never commits leaves nothing set behind it.
pub(super) fn begin_batch(
    statements: &mut HashMap<String, Statement>,
    tx: &mut impl GenericClient,
    cutoff_xid: i64,
    mode: TriggerMode,
) -> std::result::Result<i32, postgres::Error> {
    let sql = match mode {
        TriggerMode::Origin => {
            "SELECT set_config($1, 'on', true), pg_current_xact_id()::text::bigint - $2"
        }
        TriggerMode::Replica => {
            "SELECT set_config($1, 'on', true), pg_current_xact_id()::text::bigint - $2,
                    set_config('session_replication_role', 'replica', true)"
        }
    };
    let begin = prepared(statements, tx, sql)?;
    let since_cutoff: i64 = tx
        .query_one(&begin, &[&BACKFILL_SETTING, &cutoff_xid])?
        .get(1);
    // Ages are 32-bit; a backfill that outlives 2^31 transactions is not a concern.
    Ok(since_cutoff.clamp(0, i32::MAX as i64 - 1) as i32)
}

/// `$from, $from+1, …` for `n` parameters.
pub(super) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A key in PostgreSQL's binary form, and as text for the checkpoint.
pub(super) type UpperKey = (Vec<KeyValue>, Vec<String>);

/// The key `rows` rows after `last` (from the start, without it) in the key's order, in
/// PostgreSQL's binary form and as text; `None` when fewer rows are left.
pub(super) fn upper_key(
    statements: &mut HashMap<String, Statement>,
    client: &mut impl GenericClient,
    table: &str,
    keys: &str,
    width: usize,
    last: Option<&[KeyValue]>,
    rows: u64,
) -> std::result::Result<Option<UpperKey>, postgres::Error> {
    let n = width;
    let after = if last.is_some() {
        format!("WHERE ({keys}) > ({})", placeholders(1, n))
    } else {
        String::new()
    };
    let as_text = (0..n)
        .map(|i| format!("k.k{i}::text"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT k.*, {as_text} FROM (SELECT {keys} FROM {table} {after} ORDER BY {keys} LIMIT 1 OFFSET ${}) AS k({})",
        if last.is_some() { n + 1 } else { 1 },
        (0..n).map(|i| format!("k{i}")).collect::<Vec<_>>().join(", "),
    );
    let offset = rows as i64 - 1;
    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
    if let Some(l) = last {
        params.extend(l.iter().map(|v| v as &(dyn ToSql + Sync)));
    }
    params.push(&offset);
    let statement = prepared(statements, client, &sql)?;
    Ok(client.query_opt(&statement, &params)?.map(|r| {
        (
            (0..n).map(|i| r.get::<_, KeyValue>(i)).collect(),
            (n..2 * n).map(|i| r.get::<_, String>(i)).collect(),
        )
    }))
}

/// Updates the rows of `range` that existed before the cutoff; returns how many it updated.
pub(super) fn update_range(
    statements: &mut HashMap<String, Statement>,
    tx: &mut impl GenericClient,
    sql: &BatchSql,
    range: &Range,
    since_cutoff: i32,
) -> std::result::Result<u64, postgres::Error> {
    let BatchSql { table, set, keys } = sql;
    match range {
        Range::Keys { lower, upper } => {
            let mut conds = Vec::new();
            let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
            if let Some(l) = lower {
                conds.push(format!("({keys}) > ({})", placeholders(1, l.len())));
                params.extend(l.iter().map(|v| v as &(dyn ToSql + Sync)));
            }
            if let Some(u) = upper {
                conds.push(format!(
                    "({keys}) <= ({})",
                    placeholders(params.len() + 1, u.len())
                ));
                params.extend(u.iter().map(|v| v as &(dyn ToSql + Sync)));
            }
            conds.push(format!("age(xmin) > ${}", params.len() + 1));
            params.push(&since_cutoff);
            let text = format!("UPDATE {table} SET {set} WHERE {}", conds.join(" AND "));
            let statement = prepared(statements, tx, &text)?;
            tx.execute(&statement, &params)
        }
        Range::Blocks { from, to } => tx.execute(
            &format!(
                "UPDATE {table} SET {set} WHERE ctid >= '({from},0)'::tid AND ctid < '({to},0)'::tid AND age(xmin) > $1"
            ),
            &[&since_cutoff],
        ),
    }
}

/// The statement for `sql`, prepared on first use.
pub(super) fn prepared(
    cache: &mut HashMap<String, Statement>,
    tx: &mut impl GenericClient,
    sql: &str,
) -> std::result::Result<Statement, postgres::Error> {
    if let Some(s) = cache.get(sql) {
        return Ok(s.clone());
    }
    let s = tx.prepare(sql)?;
    cache.insert(sql.to_string(), s.clone());
    Ok(s)
}

/// The checkpoint's key, read back in the key columns' own types.
pub(super) fn key_from_text(
    client: &mut Client,
    physical: &Schema,
    backfill: &Backfill,
    text: &[String],
) -> Result<Vec<KeyValue>> {
    let t = physical
        .table(&backfill.table)
        .ok_or_else(|| Error::Other(format!("backfill: table {:?} is gone", backfill.table)))?;
    let casts = backfill
        .key
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let ty = t.column(k).map(|c| c.data_type.as_str()).ok_or_else(|| {
                Error::Other(format!(
                    "backfill: key column {k:?} of {:?} is gone",
                    backfill.table
                ))
            })?;
            Ok(format!("($1::text[])[{}]::{ty}", i + 1))
        })
        .collect::<Result<Vec<_>>>()?;
    let row = client
        .query_one(&format!("SELECT {}", casts.join(", ")), &[&text])
        .map_err(|source| Error::Db {
            context: format!(
                "backfill of {}: reading the checkpoint's key",
                backfill.table
            ),
            source,
        })?;
    Ok((0..text.len()).map(|i| row.get::<_, KeyValue>(i)).collect())
}
