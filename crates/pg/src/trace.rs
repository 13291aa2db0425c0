//! `tandem trace`: runs SQL statement by statement and records, for each, the locks its backend
//! took (read from `pg_locks` by a second session while the statement's transaction is still
//! open), whether a table or index was rewritten (its `relfilenode` changed), how long the locks
//! were held, and which ordinary application statements each lock blocks.

use crate::error::{Context, Result};
use postgres::Client;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// One statement to run, as the caller split the file.
#[derive(Debug, Clone)]
pub struct TraceInput {
    pub line: usize,
    pub sql: String,
    pub role: StatementRole,
}

/// How a statement relates to transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementRole {
    Begin,
    Commit,
    Rollback,
    /// PostgreSQL refuses it inside a transaction block (CONCURRENTLY, VACUUM).
    OutsideTransaction,
    Ordinary,
}

/// Where the statements run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceMode {
    /// A throwaway database: the file's own transactions are kept, other statements run each in
    /// a transaction of their own, and everything is committed.
    Commit,
    /// A real database: everything runs in one transaction that is always rolled back. The file's
    /// BEGIN/COMMIT and statements that cannot run in a transaction are skipped; a failing
    /// statement is rolled back to a savepoint so the rest still runs.
    RollbackAll,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatementTrace {
    pub line: usize,
    pub sql: String,
    /// Locks the statement took that its transaction did not hold before.
    pub locks: Vec<ObservedLock>,
    /// Locks that block the application which the transaction already held when the statement
    /// started (taken by earlier statements of the same transaction).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub already_held: Vec<ObservedLock>,
    pub rewrites: Vec<Rewrite>,
    pub duration_ms: f64,
    /// From the statement's start until its transaction ended and released the locks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ObservedLock {
    /// As `pg_locks` names it, e.g. `AccessExclusiveLock`.
    pub mode: String,
    /// `pg_locks.locktype`: `relation`, `object`, ...
    pub locktype: String,
    /// The relation, schema-qualified, for relation locks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
    /// `table`, `index`, `sequence`, `view`, ... for relation locks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relkind: Option<String>,
    /// The application statements this lock blocks while held.
    pub blocks: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rewrite {
    pub relation: String,
    pub relkind: String,
    pub relfilenode_before: u32,
    pub relfilenode_after: u32,
}

/// Which of SELECT, INSERT, UPDATE, DELETE a relation lock of `mode` blocks, from PostgreSQL's
/// lock conflict table: SELECT takes ACCESS SHARE, INSERT/UPDATE/DELETE take ROW EXCLUSIVE.
pub fn blocked_statements(mode: &str) -> Vec<&'static str> {
    match mode {
        "AccessExclusiveLock" => vec!["SELECT", "INSERT", "UPDATE", "DELETE"],
        "ExclusiveLock" | "ShareRowExclusiveLock" | "ShareLock" => {
            vec!["INSERT", "UPDATE", "DELETE"]
        }
        _ => Vec::new(),
    }
}

/// One granted lock: locktype, relation oid, mode, and whether other sessions can still reach
/// the relation. An index PostgreSQL has marked dead (`indislive` false, the last phase of
/// REINDEX and DROP INDEX CONCURRENTLY) is skipped by every query, so a lock on it blocks nobody.
type SeenLock = (String, Option<u32>, String, bool);

/// The lock rows of `pid`, without the virtual transaction and transaction id locks every
/// transaction holds.
fn locks_of(observer: &mut Client, pid: i32) -> Result<BTreeSet<SeenLock>> {
    let rows = observer
        .query(
            "SELECT l.locktype, l.relation, l.mode, coalesce(i.indislive, true) \
             FROM pg_locks l LEFT JOIN pg_index i ON i.indexrelid = l.relation \
             WHERE l.pid = $1 AND l.granted AND l.locktype NOT IN ('virtualxid', 'transactionid')",
            &[&pid],
        )
        .context(|| "reading pg_locks".into())?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get::<_, Option<u32>>(1), r.get(2), r.get(3)))
        .collect())
}

/// Relation oids with their relfilenode, name and kind, as the traced session sees them (it
/// sees what its own open transaction created).
fn relations(target: &mut Client) -> Result<HashMap<u32, (u32, String, String)>> {
    let rows = target
        .query(
            "SELECT c.oid, c.relfilenode, format('%I.%I', n.nspname, c.relname), \
                    CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' \
                    WHEN 'i' THEN 'index' WHEN 'I' THEN 'partitioned index' WHEN 'S' THEN 'sequence' \
                    WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 't' THEN 'toast table' \
                    ELSE c.relkind::text END \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')",
            &[],
        )
        .context(|| "reading pg_class".into())?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect())
}

struct Tracer<'a> {
    target: &'a mut Client,
    observer: &'a mut Client,
    pid: i32,
    mode: TraceMode,
    in_transaction: bool,
    /// Indexes into the output of the statements whose locks the open transaction holds.
    holding: Vec<(usize, Instant)>,
    out: Vec<StatementTrace>,
}

/// Runs `statements` on `target`, watching from `observer`, and reports what each did.
pub fn trace(
    target: &mut Client,
    observer: &mut Client,
    statements: &[TraceInput],
    mode: TraceMode,
) -> Result<Vec<StatementTrace>> {
    let pid: i32 = target
        .query_one("SELECT pg_backend_pid()", &[])
        .context(|| "reading the backend pid".into())?
        .get(0);
    let mut t = Tracer {
        target,
        observer,
        pid,
        mode,
        in_transaction: false,
        holding: Vec::new(),
        out: Vec::new(),
    };
    if mode == TraceMode::RollbackAll {
        t.exec("BEGIN")?;
        t.in_transaction = true;
    }
    for s in statements {
        t.statement(s)?;
    }
    if t.in_transaction {
        t.exec("ROLLBACK")?;
        t.release();
    }
    Ok(t.out)
}

impl Tracer<'_> {
    fn exec(&mut self, sql: &str) -> Result<()> {
        self.target
            .batch_execute(sql)
            .context(|| format!("trace: {sql}"))
    }

    /// The open transaction ended: its statements' locks are released now.
    fn release(&mut self) {
        for (i, started) in self.holding.drain(..) {
            self.out[i].held_ms = Some(ms(started.elapsed()));
        }
        self.in_transaction = false;
    }

    fn record(&mut self, s: &TraceInput) -> &mut StatementTrace {
        self.out.push(StatementTrace {
            line: s.line,
            sql: s.sql.clone(),
            locks: Vec::new(),
            already_held: Vec::new(),
            rewrites: Vec::new(),
            duration_ms: 0.0,
            held_ms: None,
            error: None,
            skipped: None,
        });
        self.out.last_mut().expect("just pushed")
    }

    fn statement(&mut self, s: &TraceInput) -> Result<()> {
        match (self.mode, s.role) {
            (
                TraceMode::RollbackAll,
                StatementRole::Begin | StatementRole::Commit | StatementRole::Rollback,
            ) => {
                self.record(s).skipped = Some(
                    "tandem trace runs everything in one transaction that it rolls back".into(),
                );
            }
            (TraceMode::RollbackAll, StatementRole::OutsideTransaction) => {
                self.record(s).skipped = Some(
                    "cannot run inside the transaction that tandem trace rolls back; trace it on a throwaway database".into(),
                );
            }
            (TraceMode::Commit, StatementRole::Begin) => {
                self.exec(&s.sql)?;
                self.in_transaction = true;
                self.record(s);
            }
            (TraceMode::Commit, StatementRole::Commit | StatementRole::Rollback) => {
                let result = self.target.batch_execute(&s.sql);
                self.release();
                let error = result.err().map(|e| crate::error::describe(&e));
                self.record(s).error = error;
            }
            (TraceMode::Commit, StatementRole::OutsideTransaction) if !self.in_transaction => {
                self.outside_transaction(s)?;
            }
            _ => self.in_transaction_statement(s)?,
        }
        Ok(())
    }

    /// Runs a statement inside a transaction (its own, the file's, or the rolled-back one) and
    /// compares locks and relfilenodes before and after while the transaction is still open.
    fn in_transaction_statement(&mut self, s: &TraceInput) -> Result<()> {
        let own = !self.in_transaction;
        if own {
            self.exec("BEGIN")?;
            self.in_transaction = true;
        }
        let savepoint = self.mode == TraceMode::RollbackAll;
        if savepoint {
            self.exec("SAVEPOINT tandem_trace")?;
        }
        let before_rel = relations(self.target)?;
        let before_locks = locks_of(self.observer, self.pid)?;
        let started = Instant::now();
        let result = self.target.batch_execute(&s.sql);
        let duration = started.elapsed();
        let index = self.out.len();
        match result {
            Ok(()) => {
                let after_locks = locks_of(self.observer, self.pid)?;
                let after_rel = relations(self.target)?;
                let locks = describe_locks(
                    after_locks.difference(&before_locks),
                    &before_rel,
                    &after_rel,
                );
                let mut held = describe_locks(before_locks.iter(), &before_rel, &before_rel);
                held.retain(|l| !l.blocks.is_empty());
                let rewrites = rewrites(&before_rel, &after_rel);
                let rec = self.record(s);
                rec.duration_ms = ms(duration);
                rec.locks = locks;
                rec.already_held = held;
                rec.rewrites = rewrites;
                self.holding.push((index, started));
                if savepoint {
                    self.exec("RELEASE SAVEPOINT tandem_trace")?;
                }
                if own {
                    self.exec("COMMIT")?;
                    self.release();
                }
            }
            Err(e) => {
                let rec = self.record(s);
                rec.duration_ms = ms(duration);
                rec.error = Some(crate::error::describe(&e));
                if savepoint {
                    self.exec("ROLLBACK TO SAVEPOINT tandem_trace")?;
                } else {
                    // The transaction is aborted; end it as PostgreSQL would at its COMMIT.
                    self.exec("ROLLBACK")?;
                    self.release();
                }
            }
        }
        Ok(())
    }

    /// A statement that runs outside any transaction (CONCURRENTLY, VACUUM): its locks are gone
    /// when it returns, so a second thread samples pg_locks while it runs.
    fn outside_transaction(&mut self, s: &TraceInput) -> Result<()> {
        let before_rel = relations(self.target)?;
        let pid = self.pid;
        let done = std::sync::atomic::AtomicBool::new(false);
        // The statement starts only once the sampler is about to take its first sample.
        let ready = std::sync::Barrier::new(2);
        let observer = &mut *self.observer;
        let target = &mut *self.target;
        let started = Instant::now();
        let (result, seen) = std::thread::scope(|scope| {
            let sampler = scope.spawn(|| {
                let mut seen = BTreeSet::new();
                ready.wait();
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    match locks_of(observer, pid) {
                        Ok(locks) => seen.extend(locks),
                        Err(_) => break,
                    }
                }
                seen
            });
            ready.wait();
            let result = target.batch_execute(&s.sql);
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            (result, sampler.join().unwrap_or_default())
        });
        let duration = started.elapsed();
        let after_rel = relations(self.target)?;
        let locks = describe_locks(seen.iter(), &before_rel, &after_rel);
        let rewrites = rewrites(&before_rel, &after_rel);
        let rec = self.record(s);
        rec.duration_ms = ms(duration);
        rec.held_ms = Some(ms(duration));
        rec.locks = locks;
        rec.rewrites = rewrites;
        rec.error = result.err().map(|e| crate::error::describe(&e));
        Ok(())
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Names the locked relations and says what each lock blocks. A relation the statement itself
/// created (absent from `before`) is invisible to other sessions, so its locks block nothing;
/// neither do locks on an index already marked dead.
fn describe_locks<'a>(
    locks: impl Iterator<Item = &'a SeenLock>,
    before: &HashMap<u32, (u32, String, String)>,
    relations: &HashMap<u32, (u32, String, String)>,
) -> Vec<ObservedLock> {
    let mut out: Vec<ObservedLock> = locks
        .filter_map(|(locktype, oid, mode, live)| {
            // A relation the statement dropped is only in `before`.
            let rel = oid.and_then(|o| relations.get(&o).or_else(|| before.get(&o)));
            // Locks on catalogs and on the trace's own queries are not the statement's business.
            if locktype == "relation" && rel.is_none() {
                return None;
            }
            Some(ObservedLock {
                mode: mode.clone(),
                locktype: locktype.clone(),
                relation: rel.map(|r| r.1.clone()),
                relkind: rel.map(|r| r.2.clone()),
                blocks: if locktype == "relation"
                    && *live
                    && oid.is_some_and(|o| before.contains_key(&o))
                {
                    blocked_statements(mode)
                } else {
                    Vec::new()
                },
            })
        })
        .collect();
    // Keep the strongest mode per object: a statement that took SHARE and then ACCESS
    // EXCLUSIVE on a table blocks what the stronger one blocks.
    out.sort_by(|a, b| {
        (
            &a.locktype,
            &a.relation,
            std::cmp::Reverse(mode_rank(&a.mode)),
        )
            .cmp(&(
                &b.locktype,
                &b.relation,
                std::cmp::Reverse(mode_rank(&b.mode)),
            ))
    });
    out.dedup_by(|later, first| {
        later.relation.is_some()
            && later.locktype == first.locktype
            && later.relation == first.relation
    });
    out
}

/// PostgreSQL's table lock modes, weakest first.
const MODES: [&str; 8] = [
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
];

fn mode_rank(mode: &str) -> usize {
    MODES.iter().position(|m| *m == mode).unwrap_or(0)
}

fn rewrites(
    before: &HashMap<u32, (u32, String, String)>,
    after: &HashMap<u32, (u32, String, String)>,
) -> Vec<Rewrite> {
    let by_name: HashMap<&str, u32> = before
        .values()
        .map(|(node, name, _)| (name.as_str(), *node))
        .collect();
    let mut out: Vec<Rewrite> = after
        .iter()
        .filter_map(|(oid, (node, name, kind))| {
            // An index rebuilt by ALTER COLUMN TYPE is a new object under the old name.
            let old = match before.get(oid) {
                Some((old, _, _)) => old,
                None => by_name.get(name.as_str())?,
            };
            (old != node && *old != 0 && *node != 0).then(|| Rewrite {
                relation: name.clone(),
                relkind: kind.clone(),
                relfilenode_before: *old,
                relfilenode_after: *node,
            })
        })
        .collect();
    out.sort_by(|a, b| a.relation.cmp(&b.relation));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The drop phase of REINDEX CONCURRENTLY takes ACCESS EXCLUSIVE on the old index only once
    /// it is dead; a sampler that catches that moment must not report it as blocking queries.
    #[test]
    fn a_lock_on_a_dead_index_blocks_nothing() {
        let before: HashMap<u32, (u32, String, String)> = [
            (1, (1, "public.t".to_owned(), "table".to_owned())),
            (2, (2, "public.t_idx".to_owned(), "index".to_owned())),
        ]
        .into();
        let after: HashMap<_, _> = [(1, before[&1].clone())].into();
        let lock =
            |oid, mode: &str, live| ("relation".to_owned(), Some(oid), mode.to_owned(), live);
        let seen = [
            lock(1, "ShareUpdateExclusiveLock", true),
            lock(2, "AccessExclusiveLock", false),
        ];
        let locks = describe_locks(seen.iter(), &before, &after);
        assert_eq!(locks.len(), 2);
        assert!(
            locks.iter().all(|l| !l.blocks.contains(&"SELECT")),
            "{locks:#?}"
        );
        let live = [lock(2, "AccessExclusiveLock", true)];
        let locks = describe_locks(live.iter(), &before, &after);
        assert!(locks[0].blocks.contains(&"SELECT"), "{locks:#?}");
    }
}
