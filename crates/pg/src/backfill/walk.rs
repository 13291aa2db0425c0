//! The walk: how a backfill moves through its table (in keyset order of its key, or by ranges of
//! blocks), how big each batch is, and what each batch's UPDATE assigns, all worked out once when
//! a run begins ([`Walker::begin`]).
//!
//! # Why the UPDATE also assigns some columns to themselves
//!
//! A batch's UPDATE leaves every existing column as it is, so PostgreSQL tells each index that
//! the update did not change it logically, and on a page split a B-tree then first tries to make
//! room by removing the entries of row versions nobody can see any more (bottom-up deletion,
//! PostgreSQL 14 and later). For one big UPDATE those passes find nothing (its own old versions
//! are still in use) and the page splits. For a batched backfill they succeed: every batch
//! leaves the old versions of the rows it updated dead for good once it commits, and they are
//! spread over every page of an index whose order is not the key's. So each later batch, on each
//! leaf page it fills, visits the heap pages of earlier batches to remove a few entries, fills
//! the page again a few rows later, and visits them again. On 1M rows with one secondary index
//! that made a batched backfill take about twice as long as one plain UPDATE.
//!
//! PostgreSQL decides "logically unchanged" from the UPDATE's `SET` list, not from the values:
//! an index with one of its key columns (or a column its expressions read) assigned gets no
//! hint, and its full pages are deduplicated and split as under one big UPDATE. So the batches
//! also assign, for each index, one column it reads to itself (`account_id = account_id`). The
//! values do not change, so nothing else does: HOT updates, foreign-key checks (queued only
//! when a key's value changes), generated columns (recomputed to the same value) and logical
//! replication see the same row as before. Columns are chosen only where the assignment is
//! allowed and fires nothing: not generated, not `GENERATED ALWAYS AS IDENTITY`, updatable by
//! the session's role, and named by no trigger's `UPDATE OF` list on the table or under it
//! (such a trigger would fire for it, whatever its replication role). An index with no such
//! column keeps the hint. The indexes end up as one big UPDATE leaves them, about twice their
//! size until VACUUM and later inserts reuse the space; the index over a column being changed
//! in type is dropped by `complete` anyway.

use super::sql::{upper_key, BatchSql, KeyValue};
use super::{BackfillOptions, TriggerMode};
use crate::error::{Error, Result};
use crate::state::BackfillCheckpoint;
use postgres::{Client, GenericClient, Statement};
use std::collections::HashMap;
use std::time::Duration;
use tandem_model::{qualified, quote_ident, Schema};
use tandem_plan::Backfill;

/// The adaptive size starts here and moves towards the target within bounds: it grows at most
/// eightfold per batch, so a small first batch reaches the target's size in two or three
/// batches, and shrinks at most fourfold, so one slow batch does not collapse it.
const FIRST_BATCH: u64 = 1_000;
const MAX_GROWTH: f64 = 8.0;
const MAX_SHRINK: f64 = 0.25;
const MIN_BATCH: u64 = 100;
const MAX_BATCH: u64 = 1_000_000;

/// The batch size: fixed, or adapted after each full batch towards the target duration.
pub(super) struct BatchSize {
    pub rows: u64,
    target: Option<Duration>,
}

impl BatchSize {
    /// The size `opts` ask for. Under a `statement_timeout` (the role's or the database's), the
    /// adaptive target is at most a fifth of it, so a batch slower than usual still ends well
    /// before the server cancels it.
    pub fn new(opts: &BackfillOptions, statement_timeout: Option<Duration>) -> BatchSize {
        match opts.batch_size {
            Some(n) => BatchSize {
                rows: n.max(1),
                target: None,
            },
            None => BatchSize {
                rows: FIRST_BATCH,
                target: Some(statement_timeout.map_or(opts.target, |t| opts.target.min(t / 5))),
            },
        }
    }

    /// A batch ran into `statement_timeout`: a quarter of the size (a fixed one too, which
    /// cannot run as asked), not below `MIN_BATCH`. `None` when it cannot get smaller.
    pub fn timed_out(&mut self) -> Option<u64> {
        let smaller = (self.rows / 4).max(MIN_BATCH.min(self.rows));
        (smaller < self.rows).then(|| {
            self.rows = smaller;
            smaller
        })
    }

    pub fn adapt(&mut self, took: Duration) {
        if let Some(target) = self.target {
            let factor =
                (target.as_secs_f64() / took.as_secs_f64().max(1e-4)).clamp(MAX_SHRINK, MAX_GROWTH);
            self.rows = ((self.rows as f64 * factor) as u64).clamp(MIN_BATCH, MAX_BATCH);
        }
    }
}

/// How the table is walked.
pub(super) enum Walk {
    Keyset {
        /// Quoted key columns, joined: `a, b`.
        keys: String,
        width: usize,
    },
    Blocks {
        end: i64,
        rows_per_block: f64,
    },
}

impl Walk {
    /// The quoted key columns of a keyset walk; empty for a walk by blocks.
    pub fn keys(&self) -> &str {
        match self {
            Walk::Keyset { keys, .. } => keys,
            Walk::Blocks { .. } => "",
        }
    }
}

/// Where the walk is: the next batch starts after this key (from the start, without one), or
/// at this block.
#[derive(Clone)]
pub(super) enum Cursor {
    Key(Option<Vec<KeyValue>>),
    Block(i64),
}

/// A batch cut from the walk, and where the checkpoint stands once it has committed.
pub(super) struct Cut {
    /// Rows it walks when it is not the last (the batch size it was cut with).
    pub rows: u64,
    /// The checkpoint's position after it: its upper key as text (a keyset batch that found
    /// one), or the block it ends before.
    pub key: Option<Vec<String>>,
    pub block: Option<i64>,
    pub last: bool,
}

impl Cut {
    /// Rows the batch walked, given the rows it updated: for a keyset batch that found its
    /// upper key, the batch size; otherwise the rows it updated.
    pub fn walked(&self, updated: u64) -> u64 {
        if self.key.is_some() {
            self.rows
        } else {
            updated
        }
    }

    /// Moves `checkpoint` past the batch, which updated `updated` rows.
    pub fn apply(&self, checkpoint: &mut BackfillCheckpoint, updated: u64) {
        if let Some(key) = &self.key {
            checkpoint.last_key = Some(key.clone());
        }
        if let Some(block) = self.block {
            checkpoint.next_block = Some(block);
        }
        checkpoint.rows_done += self.walked(updated) as i64;
        checkpoint.done = self.last;
    }
}

/// What one committed batch did.
pub(super) struct Batch {
    /// Rows the batch walked (`Cut::walked`).
    pub rows: u64,
    pub last: bool,
}

/// One backfill being run: its SQL, its walk and its position.
pub(super) struct Walker<'a> {
    /// Statements prepared once per run, so a batch costs one round trip per statement.
    pub statements: HashMap<String, Statement>,
    pub sql: BatchSql,
    pub walk: Walk,
    pub cursor: Cursor,
    pub checkpoint: &'a mut BackfillCheckpoint,
    /// How the batches treat the user's triggers.
    pub mode: TriggerMode,
    /// The session's `statement_timeout` (from the role, the database or the connection), when
    /// it has one.
    pub statement_timeout: Option<Duration>,
}

/// The rows of a partitioned table that has no count of its own (ANALYZE never ran on it): the
/// sum of its partitions' counts, when every one has been analyzed, the same figure a plain
/// table's `reltuples` is. The planner would scale them by the pages added since, which the dead
/// versions of an earlier run inflate. `None` for a table without partitions.
fn analyzed_partitions(
    client: &mut Client,
    table: &str,
) -> std::result::Result<Option<i64>, postgres::Error> {
    Ok(client
        .query_one(
            "SELECT CASE WHEN bool_and(c.reltuples >= 0) THEN sum(c.reltuples)::bigint END
               FROM pg_partition_tree($1::text::regclass) p
               JOIN pg_class c ON c.oid = p.relid
              WHERE p.isleaf AND p.relid <> $1::text::regclass",
            &[&table],
        )?
        .get(0))
}

impl<'a> Walker<'a> {
    /// Cuts the next batch of about `rows` rows at `cursor` (the upper key `rows` rows on,
    /// looked up through `client`, or the next blocks), and moves `cursor` past it.
    pub fn cut(
        &mut self,
        client: &mut impl GenericClient,
        cursor: &mut Cursor,
        rows: u64,
    ) -> std::result::Result<(Range, Cut), postgres::Error> {
        match (&self.walk, cursor) {
            (Walk::Keyset { keys, width }, Cursor::Key(last)) => {
                let upper = upper_key(
                    &mut self.statements,
                    client,
                    &self.sql.table,
                    keys,
                    *width,
                    last.as_deref(),
                    rows,
                )?;
                let (values, key) = match upper {
                    Some((values, text)) => (Some(values), Some(text)),
                    None => (None, None),
                };
                let range = Range::Keys {
                    lower: last.take(),
                    upper: values.clone(),
                };
                *last = values;
                let cut = Cut {
                    rows,
                    last: key.is_none(),
                    key,
                    block: None,
                };
                Ok((range, cut))
            }
            (
                Walk::Blocks {
                    end,
                    rows_per_block,
                },
                Cursor::Block(next),
            ) => {
                let blocks = ((rows as f64 / *rows_per_block).ceil() as i64).max(1);
                let to = (*next + blocks).min(*end);
                let range = Range::Blocks { from: *next, to };
                *next = to;
                let cut = Cut {
                    rows,
                    key: None,
                    block: Some(to),
                    last: to >= *end,
                };
                Ok((range, cut))
            }
            _ => unreachable!("the cursor is made with the walk"),
        }
    }
}

/// The rows one batch updates: keys after `lower` (all, without it) up to and including `upper`
/// (all, without it), or the blocks from `from` up to, not including, `to`.
#[derive(Debug, Clone)]
pub(super) enum Range {
    Keys {
        lower: Option<Vec<KeyValue>>,
        upper: Option<Vec<KeyValue>>,
    },
    Blocks {
        from: i64,
        to: i64,
    },
}

impl<'a> Walker<'a> {
    /// Works out the walk of `backfill` from where `checkpoint` stands: the table's size (and the
    /// checkpoint's estimate of its rows, on the first run), the walk by key or by blocks, and
    /// the `SET` list of its batches.
    pub fn begin(
        client: &mut Client,
        physical: &Schema,
        backfill: &Backfill,
        checkpoint: &'a mut BackfillCheckpoint,
        mode: TriggerMode,
    ) -> Result<Walker<'a>> {
        let table = qualified(&physical.name, &backfill.table);
        let db = |what: String| {
            move |source| Error::Db {
                context: what,
                source,
            }
        };
        let (reltuples, relpages, blocks): (i64, i64, i64) = {
            let r = client
                .query_one(
                    "SELECT reltuples::bigint, relpages::bigint,
                            pg_relation_size(oid) / current_setting('block_size')::bigint
                       FROM pg_class WHERE oid = $1::text::regclass",
                    &[&table],
                )
                .map_err(db(format!("estimating the size of {table}")))?;
            (r.get(0), r.get(1), r.get(2))
        };
        if checkpoint.rows_estimate == 0 {
            checkpoint.rows_estimate = if reltuples >= 0 {
                reltuples
            } else if let Some(rows) = analyzed_partitions(client, &table)
                .map_err(db(format!("estimating the size of {table}")))?
            {
                rows
            } else {
                // Never analyzed: the planner's guess from the table's size.
                let plan: serde_json::Value = client
                    .query_one(&format!("EXPLAIN (FORMAT JSON) SELECT FROM {table}"), &[])
                    .map_err(db(format!("estimating the size of {table}")))?
                    .get(0);
                plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0) as i64
            };
        }
        let (walk, cursor) = if backfill.key.is_empty() {
            let walk = Walk::Blocks {
                end: *checkpoint.end_block.get_or_insert(blocks),
                rows_per_block: if relpages > 0 && reltuples > 0 {
                    reltuples as f64 / relpages as f64
                } else {
                    // Unknown: a guess for narrow rows; the adaptive size corrects it.
                    100.0
                },
            };
            (walk, Cursor::Block(checkpoint.next_block.unwrap_or(0)))
        } else {
            let last = match &checkpoint.last_key {
                Some(text) => Some(super::sql::key_from_text(client, physical, backfill, text)?),
                None => None,
            };
            let walk = Walk::Keyset {
                keys: backfill
                    .key
                    .iter()
                    .map(|k| quote_ident(k))
                    .collect::<Vec<_>>()
                    .join(", "),
                width: backfill.key.len(),
            };
            (walk, Cursor::Key(last))
        };
        let assigned: Vec<String> = backfill
            .assignments
            .iter()
            .map(|(c, _)| c.clone())
            .collect();
        let unhinted = self_assigned_columns(client, &table, &assigned)?;
        let set = backfill
            .assignments
            .iter()
            .map(|(col, expr)| format!("{} = ({expr})", quote_ident(col)))
            .chain(
                unhinted
                    .iter()
                    .map(|c| format!("{0} = {0}", quote_ident(c))),
            )
            .collect::<Vec<_>>()
            .join(", ");
        let keys = walk.keys().to_string();
        let timeout_ms: i64 = client
            .query_one(
                "SELECT setting::bigint FROM pg_settings WHERE name = 'statement_timeout'",
                &[],
            )
            .map_err(db("reading statement_timeout".into()))?
            .get(0);
        Ok(Walker {
            statement_timeout: (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms as u64)),
            statements: HashMap::new(),
            sql: BatchSql { table, set, keys },
            walk,
            cursor,
            checkpoint,
            mode,
        })
    }
}

/// The columns a batch assigns to themselves so that no index of `table` is told the batch left
/// it logically unchanged (see the module's doc): for each index of the table and of the tables
/// under it, the first column it reads that may be assigned without effect, unless a column the
/// batch already assigns (`assigned`) is one it reads. In the table's column order.
pub fn self_assigned_columns(
    client: &mut Client,
    table: &str,
    assigned: &[String],
) -> Result<Vec<String>> {
    let rows = client
        .query(
            "WITH RECURSIVE tree (rel) AS (
                 SELECT $1::text::regclass::oid
                 UNION
                 SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.rel
             ),
             -- Every column an index reads, by name: its key columns in order, then the
             -- columns its expressions (or predicate) read.
             reads AS (
                 SELECT x.indexrelid, a.attname::text AS col, k.n AS ord
                   FROM pg_index x
                   JOIN tree t ON x.indrelid = t.rel
                   CROSS JOIN LATERAL generate_series(0, x.indnkeyatts - 1) AS k(n)
                   JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[k.n]
                 UNION ALL
                 SELECT x.indexrelid, a.attname::text, 1000 + a.attnum
                   FROM pg_index x
                   JOIN tree t ON x.indrelid = t.rel
                   JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = x.indexrelid
                                   AND d.refclassid = 'pg_class'::regclass
                                   AND d.refobjid = x.indrelid AND d.refobjsubid > 0
                   JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = d.refobjsubid
                  WHERE x.indexprs IS NOT NULL
             ),
             -- Columns some trigger fires for when they are assigned (UPDATE OF ...).
             named AS (
                 SELECT a.attname::text AS col
                   FROM pg_trigger g
                   JOIN tree t ON g.tgrelid = t.rel
                   JOIN pg_attribute a ON a.attrelid = g.tgrelid AND a.attnum = ANY (g.tgattr::int2[])
             ),
             allowed AS (
                 SELECT a.attname::text AS col, a.attnum
                   FROM pg_attribute a
                  WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped
                    AND a.attgenerated = '' AND a.attidentity <> 'a'
                    AND a.attname::text NOT IN (SELECT col FROM named)
                    AND has_column_privilege(a.attrelid, a.attnum, 'UPDATE')
             ),
             chosen AS (
                 SELECT DISTINCT ON (r.indexrelid) r.indexrelid, w.col, w.attnum
                   FROM reads r JOIN allowed w ON w.col = r.col
                  WHERE NOT EXISTS (SELECT 1 FROM reads o
                                     WHERE o.indexrelid = r.indexrelid AND o.col = ANY ($2::text[]))
                  ORDER BY r.indexrelid, r.ord
             )
             SELECT col FROM chosen GROUP BY col, attnum ORDER BY attnum",
            &[&table, &assigned],
        )
        .map_err(|source| Error::Db {
            context: format!("listing the indexes of {table}"),
            source,
        })?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adaptive() -> BatchSize {
        BatchSize::new(&BackfillOptions::default(), None)
    }

    #[test]
    fn the_size_reaches_the_target_in_a_few_batches() {
        // 5 µs a row: the target of 150 ms is 30,000 rows.
        let mut size = adaptive();
        let mut batches = 0;
        while size.rows < 25_000 {
            size.adapt(Duration::from_micros(5 * size.rows));
            batches += 1;
        }
        assert_eq!(batches, 2, "1,000 → 8,000 → 30,000");
        size.adapt(Duration::from_micros(5 * size.rows));
        assert_eq!(size.rows, 30_000, "at the target the size stays put");
    }

    #[test]
    fn a_slow_batch_shrinks_the_size_at_most_fourfold() {
        let mut size = adaptive();
        size.rows = 40_000;
        size.adapt(Duration::from_secs(10));
        assert_eq!(size.rows, 10_000);
        size.rows = 200;
        size.adapt(Duration::from_secs(10));
        assert_eq!(size.rows, MIN_BATCH);
    }

    #[test]
    fn a_fixed_size_never_moves() {
        let mut size = BatchSize::new(
            &BackfillOptions {
                batch_size: Some(500),
                ..BackfillOptions::default()
            },
            None,
        );
        size.adapt(Duration::from_secs(10));
        size.adapt(Duration::from_micros(1));
        assert_eq!(size.rows, 500);
    }
}

#[cfg(test)]
mod timeout_tests {
    use super::*;

    #[test]
    fn under_a_statement_timeout_the_target_is_a_fifth_of_it_and_timeouts_shrink_the_size() {
        let opts = BackfillOptions::default();
        let mut size = BatchSize::new(&opts, Some(Duration::from_millis(500)));
        assert_eq!(size.target, Some(Duration::from_millis(100)));
        let roomy = BatchSize::new(&opts, Some(Duration::from_secs(30)));
        assert_eq!(roomy.target, Some(opts.target), "150 ms is well under 30 s");
        assert_eq!(size.timed_out(), Some(250));
        assert_eq!(size.timed_out(), Some(MIN_BATCH));
        assert_eq!(size.timed_out(), None);
        let mut fixed = BatchSize::new(
            &BackfillOptions {
                batch_size: Some(10_000),
                ..opts
            },
            Some(Duration::from_millis(500)),
        );
        assert_eq!(
            fixed.timed_out(),
            Some(2_500),
            "a fixed size that cannot run shrinks too"
        );
    }
}
