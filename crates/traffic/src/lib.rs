//! Live traffic: simulated application clients of the old and the new version that read, insert
//! and update continuously while a migration runs, recording every statement's latency and
//! outcome, every error with the server's message, and every write they make. Tests use it to
//! prove zero downtime; `tandem demo` and `tandem bench` use it to show what the application
//! feels.
//!
//! # Using it
//!
//! ```no_run
//! use std::time::Duration;
//! use tandem_traffic::{Op, Pace, Protocol, Traffic, Value, Workload};
//!
//! # fn main() -> Result<(), tandem_traffic::TrafficError> {
//! let url = "postgres://postgres@localhost:5432/app";
//! // A client of the old version: prepared statements, 5 ms between statements.
//! let old = Workload::new("old", Some("\"public_01_users\", public"))
//!     .protocol(Protocol::Prepared)
//!     .pace(Pace::Pause(Duration::from_millis(5)))
//!     .op(Op::insert("insert", "INSERT INTO users (id, name) VALUES ($1, $2)", |c| {
//!         let id = 1_000_000 + c.n as i64;
//!         vec![Value::Int(id), Value::Text(format!("old {id}"))]
//!     }))
//!     .op(Op::read("read", "SELECT id, name FROM users WHERE id = $1", |c| {
//!         vec![Value::Int(1 + c.n as i64 % 1000)]
//!     }));
//! let mut traffic = Traffic::start(url, vec![old])?;
//! traffic.mark("start");
//! // ... tandem start; then a client of the new version joins:
//! traffic.spawn(Workload::new("new", Some("\"public_02_rename\", public")))?;
//! traffic.mark("active");
//! traffic.retire("old"); // the old version is retired before complete
//! traffic.mark("complete");
//! // ... tandem complete
//! let report = traffic.stop();
//! assert_eq!(report.error_count(), 0, "{}", report.describe_errors(10));
//! println!("{}", report.phase_table());
//! # Ok(())
//! # }
//! ```
//!
//! - A [`Workload`] is one client: its `search_path` (which version it speaks), a list of
//!   [`Op`]s it runs in turn, the [`Protocol`] it sends them with and its [`Pace`]. An op's
//!   parameters come from a closure given the [`Call`] (client index, statement counters), so
//!   each client can write rows of its own and a test can tell what the table must hold.
//! - [`Traffic::start`] connects every client (prepared statements are prepared then) and returns
//!   once each has made its first connection attempt; [`Traffic::spawn`] adds a client later,
//!   [`Traffic::retire`] stops clients by name and keeps what they recorded.
//! - [`Traffic::mark`] (or a [`PhaseMarker`], which an event callback can hold) names the phase
//!   that begins now; every sample is stamped with the phase current when it was sent. The first
//!   phase, from the start, is `baseline`.
//! - [`Traffic::wait_for_ops`] blocks until every running client has sent more statements, so a
//!   test can make sure traffic flowed during a phase without relying on timing.
//! - [`Traffic::stop`] stops every client and returns a [`Report`]: per client totals, every
//!   [`Sample`], every [`ClientError`] (with the message), every [`Write`] with its parameters,
//!   and [`Report::phase_summaries`] (count, throughput, p50/p99/max latency, errors per phase).
//!
//! A failed statement is recorded and the client goes on; a lost connection is made again (each
//! failed attempt is an error). Statements run in autocommit, so a successful write is committed.
//! Latency is measured from sending a statement to having its result.

#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod client;
mod report;
mod workload;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use report::{
    percentile, ClientError, ClientReport, PhaseMark, PhaseSummary, Report, Sample, Write,
};
pub use workload::{Call, Op, OpKind, Pace, Params, Protocol, Value, Workload};

use client::{Counters, Outcome, Phases, Setup};

/// The phase that is current from [`Traffic::start`] until the first mark.
pub const BASELINE: &str = "baseline";

/// How long [`Traffic::start`] and [`Traffic::spawn`] wait for a client's first connection.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrafficError {
    #[error("traffic: the connection string is not valid: {0}")]
    Url(String),
    #[error("traffic: client {0} did not make its first connection attempt within 30 s")]
    NotReady(String),
    #[error("traffic: a client named {0} is already running")]
    DuplicateName(String),
}

struct Running {
    name: String,
    search_path: Option<String>,
    protocol: Protocol,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    handle: Option<JoinHandle<Outcome>>,
    outcome: Option<Outcome>,
}

impl Running {
    fn join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            // A client thread that panicked has recorded nothing we can trust; say so.
            let outcome = handle.join().unwrap_or_else(|_| Outcome {
                errors: vec![ClientError {
                    at: Duration::ZERO,
                    phase: BASELINE.into(),
                    client: self.name.as_str().into(),
                    op: "thread".into(),
                    sql: String::new(),
                    message: "the client thread panicked".into(),
                }],
                ..Outcome::default()
            });
            self.outcome = Some(outcome);
        }
    }
}

/// Running clients; see the crate documentation.
pub struct Traffic {
    config: postgres::Config,
    phases: Arc<Phases>,
    clients: Vec<Running>,
}

/// Operations and errors so far, over every client, running or retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    pub ops: u64,
    pub errors: u64,
}

/// Marks phases from anywhere (an engine's event callback, another thread).
#[derive(Debug, Clone)]
pub struct PhaseMarker {
    phases: Arc<Phases>,
}

impl PhaseMarker {
    /// Begins the phase `name`, unless it is the current phase already (so a callback called for
    /// every backfill batch can mark `backfill` on each).
    pub fn mark(&self, name: &str) {
        let mut marks = self
            .phases
            .marks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if marks.last().is_some_and(|(last, _)| &**last == name) {
            return;
        }
        marks.push((name.into(), self.phases.started.elapsed()));
    }

    /// The phase current now.
    pub fn current(&self) -> String {
        self.phases.current().to_string()
    }
}

impl Traffic {
    /// Starts one client thread per workload against `url` (a `postgres://` URL or key=value
    /// string, as `postgres::Config` reads it; no TLS) and returns once each has made its first
    /// connection attempt and prepared its statements.
    pub fn start(url: &str, workloads: Vec<Workload>) -> Result<Traffic, TrafficError> {
        let config: postgres::Config = url
            .parse()
            .map_err(|e: postgres::Error| TrafficError::Url(e.to_string()))?;
        Traffic::with_config(config, workloads)
    }

    /// As [`Traffic::start`], from a ready `postgres::Config` (the test kit's `Cluster::config`).
    pub fn with_config(
        config: postgres::Config,
        workloads: Vec<Workload>,
    ) -> Result<Traffic, TrafficError> {
        let mut traffic = Traffic {
            config,
            phases: Arc::new(Phases {
                started: Instant::now(),
                marks: Mutex::new(vec![(BASELINE.into(), Duration::ZERO)]),
            }),
            clients: Vec::new(),
        };
        for workload in workloads {
            traffic.spawn(workload)?;
        }
        Ok(traffic)
    }

    /// Adds a client, such as one of the new version once its version schema exists; returns
    /// once it has made its first connection attempt.
    pub fn spawn(&mut self, workload: Workload) -> Result<(), TrafficError> {
        if self
            .clients
            .iter()
            .any(|c| c.name == workload.name && c.handle.is_some())
        {
            return Err(TrafficError::DuplicateName(workload.name));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let (ready, is_ready) = mpsc::channel();
        let name = workload.name.clone();
        let search_path = workload.search_path.clone();
        let protocol = workload.protocol;
        let setup = Setup {
            index: self.clients.len(),
            config: self.config.clone(),
            workload,
            phases: self.phases.clone(),
            stop: stop.clone(),
            counters: counters.clone(),
            ready,
        };
        let handle = std::thread::Builder::new()
            .name(format!("traffic {name}"))
            .spawn(move || client::run(setup))
            .expect("spawning a client thread");
        self.clients.push(Running {
            name: name.clone(),
            search_path,
            protocol,
            stop,
            counters,
            handle: Some(handle),
            outcome: None,
        });
        is_ready
            .recv_timeout(READY_TIMEOUT)
            .map_err(|_| TrafficError::NotReady(name))
    }

    /// Stops the running clients named `name` and waits for them; what they recorded stays in
    /// the report. Returns how many were stopped.
    pub fn retire(&mut self, name: &str) -> usize {
        let mut stopped = 0;
        for c in self.clients.iter_mut().filter(|c| c.name == name) {
            if c.handle.is_some() {
                c.join();
                stopped += 1;
            }
        }
        stopped
    }

    /// Begins the phase `name` now; see [`PhaseMarker::mark`].
    pub fn mark(&self, name: &str) {
        self.marker().mark(name);
    }

    /// A handle that marks phases from elsewhere.
    pub fn marker(&self) -> PhaseMarker {
        PhaseMarker {
            phases: self.phases.clone(),
        }
    }

    /// Time since the traffic started, the clock of every sample.
    pub fn elapsed(&self) -> Duration {
        self.phases.started.elapsed()
    }

    /// Statements sent and errors so far.
    pub fn progress(&self) -> Progress {
        let mut p = Progress::default();
        for c in &self.clients {
            p.ops += c.counters.ops.load(Ordering::Relaxed);
            p.errors += c.counters.errors.load(Ordering::Relaxed);
        }
        p
    }

    /// The names of the clients still running.
    pub fn running(&self) -> Vec<String> {
        self.clients
            .iter()
            .filter(|c| c.handle.is_some())
            .map(|c| c.name.clone())
            .collect()
    }

    /// Blocks until every running client has sent `n` more statements (successful or not) or
    /// has stopped; returns at once when no client is running. Gives up after
    /// [`WAIT_LIMIT`] and returns false, so a client stuck behind a lock cannot hang the caller.
    pub fn wait_for_ops(&self, n: u64) -> bool {
        waiter(&self.clients)(n)
    }

    /// A `Fn(n) -> bool` that does what [`Traffic::wait_for_ops`] does for the clients running
    /// now, for a callback that cannot borrow the traffic: an engine's event callback, to make
    /// sure clients ran between two backfill batches. Call it only where the caller holds no lock
    /// the clients may wait for: a backfill event comes after its batch committed, but a step
    /// event may come inside an open transaction.
    pub fn ops_waiter(&self) -> impl Fn(u64) -> bool + Send + Sync + 'static {
        waiter(&self.clients)
    }

    /// Stops every client and returns what they recorded.
    pub fn stop(mut self) -> Report {
        for c in &mut self.clients {
            c.join();
        }
        let elapsed = self.phases.started.elapsed();
        let phases = self
            .phases
            .marks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(name, at)| PhaseMark {
                name: name.clone(),
                at: *at,
            })
            .collect();
        let mut report = Report {
            elapsed,
            phases,
            clients: Vec::new(),
            samples: Vec::new(),
            errors: Vec::new(),
            writes: Vec::new(),
        };
        for c in &mut self.clients {
            let outcome = c.outcome.take().unwrap_or_default();
            report.clients.push(ClientReport {
                name: c.name.as_str().into(),
                search_path: c.search_path.clone(),
                protocol: c.protocol,
                ops: c.counters.ops.load(Ordering::Relaxed),
                errors: outcome.errors.len() as u64,
            });
            report.samples.extend(outcome.samples);
            report.errors.extend(outcome.errors);
            report.writes.extend(outcome.writes);
        }
        report.samples.sort_by_key(|s| s.at);
        report.errors.sort_by_key(|e| e.at);
        report.writes.sort_by_key(|w| w.at);
        report
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        for c in &mut self.clients {
            c.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// How long [`Traffic::wait_for_ops`] waits at most.
pub const WAIT_LIMIT: Duration = Duration::from_secs(120);

fn waiter(clients: &[Running]) -> impl Fn(u64) -> bool + Send + Sync + 'static {
    let watched: Vec<Arc<Counters>> = clients
        .iter()
        .filter(|c| c.handle.is_some())
        .map(|c| c.counters.clone())
        .collect();
    move |n| {
        let targets: Vec<u64> = watched
            .iter()
            .map(|counters| counters.ops.load(Ordering::Relaxed) + n)
            .collect();
        let began = Instant::now();
        while !watched.iter().zip(&targets).all(|(counters, target)| {
            counters.finished.load(Ordering::Relaxed)
                || counters.ops.load(Ordering::Relaxed) >= *target
        }) {
            if began.elapsed() > WAIT_LIMIT {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }
}
