//! One client thread: it connects with its `search_path`, prepares its statements when it uses
//! the prepared protocol, then runs its workload until told to stop, recording everything.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use postgres::types::ToSql;
use postgres::{Client, Config, NoTls, SimpleQueryMessage, Statement};

use crate::report::{ClientError, Sample, Write};
use crate::workload::{Call, OpKind, Pace, Protocol, Value, Workload};

/// The phase clients stamp on what they record; shared with the test through the marker.
#[derive(Debug)]
pub(crate) struct Phases {
    pub(crate) started: Instant,
    pub(crate) marks: Mutex<Vec<(Arc<str>, Duration)>>,
}

impl Phases {
    pub(crate) fn current(&self) -> Arc<str> {
        let marks = self.marks.lock().unwrap_or_else(PoisonError::into_inner);
        marks
            .last()
            .map(|(name, _)| name.clone())
            .expect("a first phase is marked at start")
    }
}

/// Counters a running client updates after every statement, read by `Traffic::progress`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) ops: AtomicU64,
    pub(crate) errors: AtomicU64,
    /// Set when the client's thread ends, however it ends.
    pub(crate) finished: AtomicBool,
}

/// Sets `finished` when dropped, so a client that panics still counts as stopped.
struct Finished(Arc<Counters>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.finished.store(true, Ordering::Relaxed);
    }
}

/// What a client hands back when it stops.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) samples: Vec<Sample>,
    pub(crate) errors: Vec<ClientError>,
    pub(crate) writes: Vec<Write>,
}

pub(crate) struct Setup {
    pub(crate) index: usize,
    pub(crate) config: Config,
    pub(crate) workload: Workload,
    pub(crate) phases: Arc<Phases>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) counters: Arc<Counters>,
    /// Told once the first connection attempt (and preparation) is over, either way.
    pub(crate) ready: Sender<()>,
}

struct Session {
    client: Client,
    /// One per op, for the prepared protocol; `None` until preparing it succeeded.
    statements: Vec<Option<Statement>>,
}

pub(crate) fn run(setup: Setup) -> Outcome {
    let Setup {
        index,
        mut config,
        workload,
        phases,
        stop,
        counters,
        ready,
    } = setup;
    let _finished = Finished(counters.clone());
    let name: Arc<str> = workload.name.as_str().into();
    let labels: Vec<Arc<str>> = workload
        .ops
        .iter()
        .map(|o| o.label.as_str().into())
        .collect();
    let connect_label: Arc<str> = "connect".into();
    if let Some(path) = &workload.search_path {
        config.options(&tandem_pg::connect::search_path_option(path));
    }
    config.application_name(&format!("tandem-traffic {}", workload.name));
    let mut out = Outcome::default();
    let mut session: Option<Session> = None;
    let mut ready = Some(ready);
    let mut per_op = vec![0u64; workload.ops.len()];
    let mut seq = 0u64;
    let begun = Instant::now();

    while !stop.load(Ordering::Relaxed) {
        if !matches!(&session, Some(s) if !s.client.is_closed()) {
            match config.connect(NoTls) {
                Ok(client) => {
                    session = Some(Session {
                        client,
                        statements: vec![None; workload.ops.len()],
                    })
                }
                Err(e) => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    out.errors.push(ClientError {
                        at: phases.started.elapsed(),
                        phase: phases.current(),
                        client: name.clone(),
                        op: connect_label.clone(),
                        sql: String::new(),
                        message: tandem_pg::error::describe(&e),
                    });
                }
            }
            if let Some(s) = session.as_mut() {
                if workload.protocol == Protocol::Prepared {
                    for (i, op) in workload.ops.iter().enumerate() {
                        match s.client.prepare(&op.sql) {
                            Ok(statement) => s.statements[i] = Some(statement),
                            Err(e) => {
                                counters.errors.fetch_add(1, Ordering::Relaxed);
                                out.errors.push(ClientError {
                                    at: phases.started.elapsed(),
                                    phase: phases.current(),
                                    client: name.clone(),
                                    op: labels[i].clone(),
                                    sql: op.sql.clone(),
                                    message: format!("prepare: {}", tandem_pg::error::describe(&e)),
                                });
                            }
                        }
                    }
                }
            }
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
            if session.is_none() {
                pause(&stop, Duration::from_millis(100));
                continue;
            }
        }
        let Some(s) = session.as_mut() else { continue };
        if workload.ops.is_empty() {
            pause(&stop, Duration::from_millis(20));
            continue;
        }
        let i = (seq % workload.ops.len() as u64) as usize;
        let op = &workload.ops[i];
        let params = (op.params)(Call {
            client: index,
            seq,
            n: per_op[i],
        });
        per_op[i] += 1;
        seq += 1;
        let phase = phases.current();
        let at = phases.started.elapsed();
        let sent = Instant::now();
        let (result, sql) = execute(s, i, op.kind, &op.sql, workload.protocol, &params);
        let latency = sent.elapsed();
        counters.ops.fetch_add(1, Ordering::Relaxed);
        let (ok, rows) = match result {
            Ok(rows) => (true, rows),
            Err(message) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                out.errors.push(ClientError {
                    at,
                    phase: phase.clone(),
                    client: name.clone(),
                    op: labels[i].clone(),
                    sql: sql.unwrap_or_else(|| op.sql.clone()),
                    message,
                });
                (false, 0)
            }
        };
        if op.kind.is_write() {
            out.writes.push(Write {
                at,
                phase: phase.clone(),
                client: name.clone(),
                op: labels[i].clone(),
                kind: op.kind,
                params,
                ok,
                rows,
            });
        }
        out.samples.push(Sample {
            at,
            latency,
            phase,
            client: name.clone(),
            op: labels[i].clone(),
            ok,
            rows,
        });
        match workload.pace {
            Pace::Pause(d) => pause(&stop, d),
            Pace::Rate(per_second) if per_second > 0.0 => {
                let due = begun + Duration::from_secs_f64(seq as f64 / per_second);
                pause(&stop, due.saturating_duration_since(Instant::now()));
            }
            Pace::Rate(_) => {}
        }
    }
    if let Some(ready) = ready.take() {
        let _ = ready.send(());
    }
    out
}

/// Runs one statement; gives the rows returned or affected, or the error's text, and the SQL
/// sent when it differs from the op's (the simple protocol's inlined literals).
fn execute(
    s: &mut Session,
    i: usize,
    kind: OpKind,
    sql: &str,
    protocol: Protocol,
    params: &[Value],
) -> (Result<u64, String>, Option<String>) {
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
    let describe = |e: postgres::Error| tandem_pg::error::describe(&e);
    match protocol {
        Protocol::Prepared => {
            let statement = match &s.statements[i] {
                Some(statement) => statement.clone(),
                // Preparing failed at connection time; try again, as a driver would.
                None => match s.client.prepare(sql) {
                    Ok(statement) => {
                        s.statements[i] = Some(statement.clone());
                        statement
                    }
                    Err(e) => return (Err(format!("prepare: {}", describe(e))), None),
                },
            };
            let result = if kind == OpKind::Read {
                s.client
                    .query(&statement, &refs)
                    .map(|rows| rows.len() as u64)
            } else {
                s.client.execute(&statement, &refs)
            };
            (result.map_err(describe), None)
        }
        Protocol::Extended => {
            let result = if kind == OpKind::Read {
                s.client.query(sql, &refs).map(|rows| rows.len() as u64)
            } else {
                s.client.execute(sql, &refs)
            };
            (result.map_err(describe), None)
        }
        Protocol::Simple => {
            let text = crate::workload::inline_params(sql, params);
            let result = s.client.simple_query(&text).map(|messages| {
                let mut rows = 0;
                let mut affected = 0;
                for m in messages {
                    match m {
                        SimpleQueryMessage::Row(_) => rows += 1,
                        SimpleQueryMessage::CommandComplete(n) => affected = n,
                        _ => {}
                    }
                }
                if kind == OpKind::Read {
                    rows
                } else {
                    affected
                }
            });
            (result.map_err(describe), Some(text))
        }
    }
}

/// Sleeps up to `d`, waking early when the client is told to stop.
fn pause(stop: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || stop.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}
