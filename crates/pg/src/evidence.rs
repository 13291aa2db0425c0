//! Evidence that the old application version still runs, gathered before `complete` drops what
//! it needs: sessions seen holding locks on the old version schemas during a sampling window,
//! queries that pg_stat_statements counted since the migration became active and that name what
//! complete drops or renames, and the migration's age against a minimum. All of it is inferred
//! from what the database shows; `Evidence::limitations` says what could not be seen.

use crate::error::{Context, Result};
use crate::state::MigrationRecord;
use postgres::GenericClient;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tandem_model::quote_ident;
use tandem_plan::sqltext::{first_keyword, relation_and_column_names};
use tandem_plan::Plan;

/// How `complete` looks for the old version, and whether it may proceed regardless.
#[derive(Debug, Clone, Default)]
pub struct EvidenceOptions {
    /// How long to watch for sessions on the old version schemas. Zero takes one sample. The
    /// library's default is zero; the CLI's `--sample` defaults to 3 s.
    pub sample: Duration,
    /// The youngest a migration may be to complete (its rollback window).
    pub min_age: Duration,
    /// Complete despite the evidence, and record that it did.
    pub force: bool,
}

/// Time between two samples of `pg_locks`.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// A session seen holding a lock on a relation of an old version schema.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OldVersionSession {
    pub pid: i32,
    pub application_name: Option<String>,
    pub client_addr: Option<String>,
    pub user: Option<String>,
    /// The relations it held locks on, `schema.relation`.
    pub relations: Vec<String>,
    /// In how many of the samples it was seen.
    pub seen_in_samples: u32,
}

/// A statement pg_stat_statements counted since the migration became active that names a
/// table or column complete drops or renames.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatementUse {
    pub queryid: i64,
    pub query: String,
    pub calls_since_start: i64,
    /// What it names: `table.column` or `table`, and whether complete drops or renames it.
    pub touches: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub migration: String,
    /// The version schemas complete would drop: the old versions' views.
    pub old_version_schemas: Vec<String>,
    pub samples: u32,
    pub sample_window_ms: u64,
    pub sessions: Vec<OldVersionSession>,
    /// `None` when pg_stat_statements could not be used (see `limitations`).
    pub statements: Option<Vec<StatementUse>>,
    pub age_seconds: f64,
    pub min_age_seconds: f64,
    /// What the evidence could not cover, in words.
    pub limitations: Vec<String>,
}

impl Evidence {
    /// Each reason to believe the old version still runs, in words.
    pub fn findings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.sessions {
            out.push(format!(
                "session pid {} (application_name {:?}, user {}, client {}) held locks on {} in {} of {} samples",
                s.pid,
                s.application_name.as_deref().unwrap_or(""),
                s.user.as_deref().unwrap_or("?"),
                s.client_addr.as_deref().unwrap_or("local"),
                s.relations.join(", "),
                s.seen_in_samples,
                self.samples
            ));
        }
        for q in self.statements.iter().flatten() {
            out.push(format!(
                "query {} ran {} time(s) since the migration started and uses {}: {}",
                q.queryid,
                q.calls_since_start,
                q.touches.join(", "),
                one_line(&q.query, 160)
            ));
        }
        if self.age_seconds < self.min_age_seconds {
            out.push(format!(
                "the migration is {:.0} s old, younger than --min-age ({:.0} s)",
                self.age_seconds, self.min_age_seconds
            ));
        }
        out
    }

    pub fn is_clear(&self) -> bool {
        self.findings().is_empty()
    }
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}

/// Where pg_stat_statements can be read in this database, or why it cannot.
fn statements_view(client: &mut impl GenericClient) -> Result<std::result::Result<String, String>> {
    let ns: Option<String> = client
        .query_opt(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
              WHERE e.extname = 'pg_stat_statements'",
            &[],
        )
        .context(|| "looking for pg_stat_statements".into())?
        .map(|r| r.get(0));
    Ok(match ns {
        Some(ns) => Ok(format!("{}.pg_stat_statements", quote_ident(&ns))),
        None => Err("pg_stat_statements is not installed in this database (CREATE EXTENSION pg_stat_statements, with shared_preload_libraries = 'pg_stat_statements'), so queries that use what complete drops are not looked for".into()),
    })
}

/// A row of pg_stat_statements summed over plans: `(userid, queryid, calls, query)`.
type Calls = (i64, i64, i64, String);

/// `(userid, queryid) → calls` for this database, or why it cannot be read. A failure is run
/// inside a savepoint so the caller's transaction survives it.
fn read_calls(
    tx: &mut postgres::Transaction<'_>,
    view: &str,
) -> Result<std::result::Result<Vec<Calls>, String>> {
    let mut sp = tx
        .transaction()
        .context(|| "beginning a savepoint".into())?;
    let rows = sp.query(
        &format!(
            "SELECT userid::oid::bigint, queryid, sum(calls)::bigint, min(query)
               FROM {view}
              WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND queryid IS NOT NULL
              GROUP BY 1, 2"
        ),
        &[],
    );
    match rows {
        Ok(rows) => {
            sp.commit().context(|| "releasing a savepoint".into())?;
            Ok(Ok(rows
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect()))
        }
        Err(e) => Ok(Err(format!(
            "pg_stat_statements cannot be read: {}",
            crate::error::describe(&e)
        ))),
    }
}

/// Records pg_stat_statements' calls per query for a migration becoming active, in the
/// transaction that makes it active. Does nothing when the extension cannot be read.
pub fn record_baseline(
    tx: &mut postgres::Transaction<'_>,
    state_schema: &str,
    schema: &str,
    name: &str,
) -> Result<()> {
    let Ok(view) = statements_view(tx)? else {
        return Ok(());
    };
    let Ok(calls) = read_calls(tx, &view)? else {
        return Ok(());
    };
    let s = quote_ident(state_schema);
    let (users, ids, counts): (Vec<i64>, Vec<i64>, Vec<i64>) = calls.iter().fold(
        (Vec::new(), Vec::new(), Vec::new()),
        |(mut u, mut q, mut c), (user, id, calls, _)| {
            u.push(*user);
            q.push(*id);
            c.push(*calls);
            (u, q, c)
        },
    );
    tx.execute(
        &format!(
            "INSERT INTO {s}.statement_baselines (schema, migration, userid, queryid, calls)
             SELECT $1, $2, u, q, c FROM unnest($3::bigint[], $4::bigint[], $5::bigint[]) AS b(u, q, c)
             ON CONFLICT DO NOTHING"
        ),
        &[&schema, &name, &users, &ids, &counts],
    )
    .context(|| format!("recording the query baseline of {name:?}"))?;
    tx.execute(
        &format!(
            "UPDATE {s}.migrations SET statements_baseline_taken = true WHERE schema = $1 AND name = $2"
        ),
        &[&schema, &name],
    )
    .context(|| format!("recording the query baseline of {name:?}"))?;
    Ok(())
}

/// What complete drops or renames, as the old version names it: `(table, column)` pairs, the
/// column empty for a whole table, with the verb.
fn contracted(plan: &Plan) -> Vec<(String, String, &'static str)> {
    let mut out: Vec<(String, String, &'static str)> = plan
        .dropped
        .iter()
        .map(|(t, c)| (t.clone(), c.clone(), "dropped"))
        .collect();
    for (table, seen) in &plan.overlay.tables {
        if seen.as_deref() != Some(table.as_str()) && seen.is_some() {
            out.push((table.clone(), String::new(), "renamed"));
        }
    }
    for (table, columns) in &plan.overlay.columns {
        for (column, seen) in columns {
            if seen.is_some() && seen.as_deref() != Some(column.as_str()) {
                out.push((table.clone(), column.clone(), "renamed"));
            }
        }
    }
    out
}

/// What a normalized statement names of `contracted`, or nothing. Only statements that read or
/// write data count (the DDL of tandem's own steps is counted by pg_stat_statements too).
fn touches(query: &str, contracted: &[(String, String, &'static str)]) -> Vec<String> {
    let dml = [
        "select", "insert", "update", "delete", "with", "merge", "copy", "table", "values",
    ];
    if !first_keyword(query).is_some_and(|k| dml.contains(&k.as_str())) {
        return Vec::new();
    }
    let names = relation_and_column_names(query);
    contracted
        .iter()
        .filter(|(t, c, _)| names.contains(t) && (c.is_empty() || names.contains(c)))
        .map(|(t, c, verb)| match c.is_empty() {
            true => format!("table {t} ({verb} at complete)"),
            false => format!("column {t}.{c} ({verb} at complete)"),
        })
        .collect()
}

/// Sessions holding locks on relations of `schemas`, each sample `SAMPLE_EVERY` apart for
/// `window` (one sample when it is zero).
pub fn sample_sessions(
    client: &mut impl GenericClient,
    schemas: &[String],
    window: Duration,
) -> Result<(u32, Vec<OldVersionSession>)> {
    let mut seen: BTreeMap<i32, OldVersionSession> = BTreeMap::new();
    let began = Instant::now();
    let mut samples = 0;
    loop {
        samples += 1;
        let rows = client
            .query(
                "SELECT l.pid, a.application_name, a.client_addr::text, a.usename::text,
                        format('%I.%I', n.nspname, c.relname)
                   FROM pg_locks l
                   JOIN pg_class c ON c.oid = l.relation
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   LEFT JOIN pg_stat_activity a ON a.pid = l.pid
                  WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                    AND l.granted AND l.pid <> pg_backend_pid() AND n.nspname = ANY($1)",
                &[&schemas],
            )
            .context(|| "sampling the sessions on the old version schemas".into())?;
        let mut this_sample = std::collections::BTreeSet::new();
        for r in rows {
            let pid: i32 = r.get(0);
            let relation: String = r.get(4);
            let s = seen.entry(pid).or_insert_with(|| OldVersionSession {
                pid,
                application_name: r.get(1),
                client_addr: r.get(2),
                user: r.get(3),
                relations: Vec::new(),
                seen_in_samples: 0,
            });
            if !s.relations.contains(&relation) {
                s.relations.push(relation);
            }
            if this_sample.insert(pid) {
                s.seen_in_samples += 1;
            }
        }
        if began.elapsed() + SAMPLE_EVERY > window {
            break;
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    Ok((samples, seen.into_values().collect()))
}

/// Gathers the evidence for the active migration `active` with its stored `plan`. `keep` are
/// version schemas complete will not drop.
pub fn gather(
    client: &mut postgres::Client,
    state_schema: &str,
    active: &MigrationRecord,
    plan: &Plan,
    old_version_schemas: Vec<String>,
    opts: &EvidenceOptions,
) -> Result<Evidence> {
    let mut limitations = Vec::new();
    if old_version_schemas.is_empty() {
        limitations.push("there is no older version schema (the first migration's old version uses the base schema's tables directly), so no sessions are looked for".to_string());
    }
    let (samples, sessions) = if old_version_schemas.is_empty() {
        (0, Vec::new())
    } else {
        sample_sessions(client, &old_version_schemas, opts.sample)?
    };
    limitations.push("a session is seen only while it holds a lock on an old version's view, that is inside a query or a transaction that used one; an idle connection pool is not seen".into());
    let s = quote_ident(state_schema);
    let row = client
        .query_one(
            &format!(
                "SELECT extract(epoch FROM now() - coalesce(started_at, created_at))::float8,
                        statements_baseline_taken
                   FROM {s}.migrations WHERE schema = $1 AND name = $2"
            ),
            &[&active.schema, &active.name],
        )
        .context(|| format!("reading the age of {:?}", active.name))?;
    let age_seconds: f64 = row.get(0);
    let baseline_taken: bool = row.get(1);
    let statements = statements_since_start(client, &s, active, plan, baseline_taken)?;
    let statements = match statements {
        Ok(found) => Some(found),
        Err(why) => {
            limitations.push(why);
            None
        }
    };
    Ok(Evidence {
        migration: active.name.clone(),
        old_version_schemas,
        samples,
        sample_window_ms: opts.sample.as_millis() as u64,
        sessions,
        statements,
        age_seconds,
        min_age_seconds: opts.min_age.as_secs_f64(),
        limitations,
    })
}

fn statements_since_start(
    client: &mut postgres::Client,
    s: &str,
    active: &MigrationRecord,
    plan: &Plan,
    baseline_taken: bool,
) -> Result<std::result::Result<Vec<StatementUse>, String>> {
    let view = match statements_view(client)? {
        Ok(v) => v,
        Err(why) => return Ok(Err(why)),
    };
    if !baseline_taken {
        return Ok(Err(format!(
            "pg_stat_statements could not be read when {:?} became active, so there is no baseline to compare calls with",
            active.name
        )));
    }
    let mut tx = client
        .transaction()
        .context(|| "beginning a transaction".into())?;
    let calls = match read_calls(&mut tx, &view)? {
        Ok(c) => c,
        Err(why) => return Ok(Err(why)),
    };
    let baseline: BTreeMap<(i64, i64), i64> = tx
        .query(
            &format!(
                "SELECT userid, queryid, calls FROM {s}.statement_baselines
                  WHERE schema = $1 AND migration = $2"
            ),
            &[&active.schema, &active.name],
        )
        .context(|| "reading the query baseline".into())?
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect();
    tx.commit().context(|| "ending a transaction".into())?;
    let contracted = contracted(plan);
    let mut found: BTreeMap<i64, StatementUse> = BTreeMap::new();
    let mut hidden = false;
    for (user, queryid, calls, query) in calls {
        let before = baseline.get(&(user, queryid)).copied().unwrap_or(0);
        // pg_stat_statements_reset() makes counts fall; what is left counts as new.
        let since = if calls >= before {
            calls - before
        } else {
            calls
        };
        if since == 0 {
            continue;
        }
        if query == "<insufficient privilege>" {
            hidden = true;
            continue;
        }
        let t = touches(&query, &contracted);
        if t.is_empty() {
            continue;
        }
        let e = found.entry(queryid).or_insert_with(|| StatementUse {
            queryid,
            query,
            calls_since_start: 0,
            touches: t,
        });
        e.calls_since_start += since;
    }
    if hidden {
        return Ok(Err("some queries of other roles show as <insufficient privilege> in pg_stat_statements (grant pg_read_all_stats to see them), so queries that use what complete drops may be missed".into()));
    }
    Ok(Ok(found.into_values().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touches_names_dropped_and_renamed_things_in_dml_only() {
        let c = vec![
            ("users".to_string(), "legacy".to_string(), "dropped"),
            ("orders".to_string(), String::new(), "renamed"),
        ];
        assert_eq!(
            touches("SELECT id, legacy FROM public.users WHERE id = $1", &c),
            vec!["column users.legacy (dropped at complete)"]
        );
        assert!(touches("SELECT id FROM users WHERE note = 'legacy'", &c).is_empty());
        assert!(touches("SELECT legacy FROM accounts", &c).is_empty());
        assert_eq!(
            touches("insert into orders (id) values ($1)", &c),
            vec!["table orders (renamed at complete)"]
        );
        assert!(touches("ALTER TABLE users DROP COLUMN legacy", &c).is_empty());
    }
}
