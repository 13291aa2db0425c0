//! Scenario 3: what the application feels. Clients of the live-traffic harness
//! (`tandem-traffic`) read, update and insert at a fixed rate while a column's type changes and
//! while a column becomes NOT NULL: once through tandem (start, backfill, complete), once by hand
//! as most people write it (`ALTER TABLE … ALTER COLUMN … TYPE`, `SET NOT NULL`, each its own
//! transaction, no lock_timeout), and both again while another session holds a transaction open
//! on the table. Throughput, latency percentiles and errors are reported per phase.

use crate::chart::{self, ChartFiles, ChartRow, PhaseSpan, Sample, Timeline};
use crate::error::{self, Error, Result};
use crate::fixture::{self, Fixture, SCHEMA};
use crate::Progress;
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tandem_model::{qualified, quote_ident};
use tandem_pg::{ConnectOptions, Engine, Event, LockTimeout};
use tandem_traffic::{Op, Pace, PhaseSummary, Protocol, Traffic, Value, Workload};

/// How the clients behave.
#[derive(Debug, Clone)]
pub struct TrafficOptions {
    /// Concurrent clients; half send prepared statements (as drivers with a statement cache
    /// do), half the extended protocol without a cache.
    pub clients: usize,
    /// Statements per second, per client.
    pub rate: f64,
    /// How long the other session keeps its transaction open in the runs that have one.
    pub hold: Duration,
    /// Quiet time before the change begins and after it ends.
    pub settle: Duration,
}

/// The two changes measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// `a` from int to bigint.
    TypeChange,
    /// `e` (filled, nullable) becomes NOT NULL.
    NotNull,
}

impl Change {
    pub const ALL: [Change; 2] = [Change::TypeChange, Change::NotNull];

    pub fn title(self) -> &'static str {
        match self {
            Change::TypeChange => "int → bigint",
            Change::NotNull => "SET NOT NULL",
        }
    }

    pub(crate) fn migration(self) -> (&'static str, &'static str) {
        match self {
            Change::TypeChange => (
                "bench_type_change",
                "operations:
  - alter_column:
      table: {table}
      column: a
      type: bigint
      up: a
      down: a::int
",
            ),
            Change::NotNull => (
                "bench_not_null",
                "operations:
  - alter_column:
      table: {table}
      column: e
      nullable: false
      up: COALESCE(e, 0)
      down: e
",
            ),
        }
    }

    /// The statement most people would write.
    pub fn by_hand(self) -> String {
        let table = Fixture::table();
        match self {
            Change::TypeChange => format!("ALTER TABLE {table} ALTER COLUMN a TYPE bigint"),
            Change::NotNull => format!("ALTER TABLE {table} ALTER COLUMN e SET NOT NULL"),
        }
    }
}

/// Who makes the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Tandem,
    ByHand,
}

/// One run of scenario 3.
#[derive(Debug, Clone, Serialize)]
pub struct TrafficRun {
    pub rows: u64,
    pub change: Change,
    pub method: Method,
    /// Whether another session held a transaction open on the table before each step that
    /// needs a lock on it.
    pub long_transaction: bool,
    /// Seconds from the first statement of the change to the last.
    pub change_seconds: f64,
    pub phases: Vec<PhaseStats>,
    /// Over the whole run.
    pub total: PhaseStats,
    /// The first few distinct error messages the clients saw.
    pub error_messages: Vec<String>,
    /// Times tandem gave up waiting for a lock and tried again.
    pub lock_retries: u64,
    #[serde(skip)]
    pub timeline: Timeline,
}

/// What the clients saw in one phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseStats {
    pub phase: String,
    pub seconds: f64,
    pub statements: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
}

impl PhaseStats {
    pub fn from_summary(s: &PhaseSummary) -> PhaseStats {
        PhaseStats {
            phase: s.phase.to_string(),
            seconds: s.duration.as_secs_f64(),
            statements: s.ops,
            per_second: s.throughput,
            p50_ms: ms(s.p50),
            p99_ms: ms(s.p99),
            max_ms: ms(s.max),
            errors: s.errors,
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Phase names, as marked on the traffic and drawn on the chart.
pub mod phase {
    pub const BASELINE: &str = tandem_traffic::BASELINE;
    pub const START: &str = "start";
    pub const BACKFILL: &str = "backfill";
    pub const PUBLISH: &str = "validate and publish";
    pub const ACTIVE: &str = "both versions live";
    pub const COMPLETE: &str = "complete";
    pub const ALTER: &str = "ALTER TABLE";
    pub const AFTER: &str = "after";
}

/// Every combination at `rows` rows: each change, quiet and with a long transaction, by tandem
/// and by hand.
pub(crate) fn measure(
    fx: &mut Fixture,
    rows: u64,
    opts: &TrafficOptions,
    progress: Progress<'_>,
) -> Result<Vec<TrafficRun>> {
    let mut runs = Vec::new();
    for change in Change::ALL {
        for long_transaction in [false, true] {
            for method in [Method::Tandem, Method::ByHand] {
                let run = one(fx, rows, change, method, long_transaction, opts)?;
                progress(&format!(
                    "traffic, {rows} rows, {}{}, {}: {:.1} s, p99 {:.1} ms, max {:.1} ms, {} client errors",
                    change.title(),
                    if long_transaction { " behind a long transaction" } else { "" },
                    match method {
                        Method::Tandem => "tandem",
                        Method::ByHand => "by hand",
                    },
                    run.change_seconds,
                    run.total.p99_ms,
                    run.total.max_ms,
                    run.total.errors
                ));
                runs.push(run);
            }
        }
    }
    Ok(runs)
}

/// The clients' statements against the table as their `search_path` shows it: a read by key,
/// an update of the changed column, and an insert of a row of their own.
pub(crate) fn workload(
    name: &str,
    search_path: &str,
    index: usize,
    rows: u64,
    rate: f64,
) -> Workload {
    let key = move |n: u64| Value::Int(1 + ((n * 7919 + index as u64 * 104_729) % rows) as i64);
    let protocol = if index.is_multiple_of(2) {
        Protocol::Prepared
    } else {
        Protocol::Extended
    };
    Workload::new(name, Some(search_path))
        .protocol(protocol)
        .pace(Pace::Rate(rate))
        .op(Op::read(
            "read",
            "SELECT id, a, b, e FROM bench WHERE id = $1",
            move |c| vec![key(c.n)],
        ))
        .op(Op::update(
            "update",
            "UPDATE bench SET a = $2, e = $3 WHERE id = $1",
            move |c| vec![key(c.n), Value::Int((c.n % 1000) as i64), Value::Int(1)],
        ))
        .op(Op::insert(
            "insert",
            "INSERT INTO bench (id, a, b, d, e) VALUES ($1, $2, $3, 0, $4)",
            move |c| {
                // `Call::client` differs between every client of the run, old and new.
                let id = 1_000_000_000_000 + c.client as i64 * 1_000_000_000 + c.n as i64;
                vec![
                    Value::Int(id),
                    Value::Int(7),
                    Value::Text(format!("client {index}")),
                    Value::Int(3),
                ]
            },
        ))
}

fn one(
    fx: &mut Fixture,
    rows: u64,
    change: Change,
    method: Method,
    long_transaction: bool,
    opts: &TrafficOptions,
) -> Result<TrafficRun> {
    fx.build(rows)?;
    let url = fx.url.clone().ok_or_else(|| {
        Error::Options(
            "scenario traffic needs a database URL for its clients (--database-url), or a throwaway cluster".into(),
        )
    })?;
    let base_path = quote_ident(SCHEMA);
    let old: Vec<Workload> = (0..opts.clients.max(1))
        .map(|i| workload(&format!("old {i}"), &base_path, i, rows, opts.rate))
        .collect();
    let mut traffic = Traffic::start(&url, old).map_err(|e| Error::Traffic(e.to_string()))?;
    let origin = Instant::now() - traffic.elapsed();
    std::thread::sleep(opts.settle);
    let mut held = Vec::new();
    let lock_retries = Arc::new(AtomicU64::new(0));
    let began = Instant::now();
    match method {
        Method::ByHand => {
            let hold = long_transaction
                .then(|| hold_transaction(&fx.connect, opts.hold))
                .transpose()?;
            traffic.mark(phase::ALTER);
            let mut session = tandem_pg::connect(&ConnectOptions {
                lock_timeout: LockTimeout(Duration::ZERO),
                application_name: Some("tandem bench: by hand".into()),
                ..fx.connect.clone()
            })?;
            let sql = change.by_hand();
            session.batch_execute(&sql).map_err(error::sql(sql))?;
            traffic.mark(phase::AFTER);
            // Every client runs each of its statements at least once on the changed table.
            traffic.wait_for_ops(3);
            held.extend(hold.map(|h| h.join(origin)).transpose()?);
        }
        Method::Tandem => {
            let (name, yaml) = change.migration();
            let migration = fixture::migration(name, yaml)?;
            let version_schema = Engine::version_schema_name(SCHEMA, &migration);
            let marker = traffic.marker();
            let retries = lock_retries.clone();
            let on_event = move |e: &Event| match e {
                Event::Backfill { done, .. } => marker.mark(if *done {
                    phase::PUBLISH
                } else {
                    phase::BACKFILL
                }),
                Event::LockRetry { .. } => {
                    retries.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            };
            let hold = long_transaction
                .then(|| hold_transaction(&fx.connect, opts.hold))
                .transpose()?;
            traffic.mark(phase::START);
            fx.engine().start(&migration, &on_event)?;
            traffic.mark(phase::ACTIVE);
            held.extend(hold.map(|h| h.join(origin)).transpose()?);
            // The new version rolls out, then the old one is retired, before complete.
            let new_path = format!("{}, {}", quote_ident(&version_schema), base_path);
            for i in 0..opts.clients.max(1) {
                traffic
                    .spawn(workload(&format!("new {i}"), &new_path, i, rows, opts.rate))
                    .map_err(|e| Error::Traffic(e.to_string()))?;
            }
            std::thread::sleep(opts.settle);
            traffic.wait_for_ops(3);
            for i in 0..opts.clients.max(1) {
                traffic.retire(&format!("old {i}"));
            }
            let hold = long_transaction
                .then(|| hold_transaction(&fx.connect, opts.hold))
                .transpose()?;
            traffic.mark(phase::COMPLETE);
            fx.engine().complete(&on_event)?;
            traffic.mark(phase::AFTER);
            traffic.wait_for_ops(3);
            held.extend(hold.map(|h| h.join(origin)).transpose()?);
        }
    }
    let change_seconds = began.elapsed().as_secs_f64();
    std::thread::sleep(opts.settle);
    let report = traffic.stop();
    let phases: Vec<PhaseStats> = report
        .phase_summaries()
        .iter()
        .map(PhaseStats::from_summary)
        .collect();
    let total = total(&report.phase_summaries());
    let mut error_messages: Vec<String> = Vec::new();
    for e in &report.errors {
        if error_messages.len() < 3 && !error_messages.contains(&e.message) {
            error_messages.push(e.message.clone());
        }
    }
    let timeline = timeline(&report, held);
    Ok(TrafficRun {
        rows,
        change,
        method,
        long_transaction,
        change_seconds,
        phases,
        total,
        error_messages,
        lock_retries: lock_retries.load(Ordering::Relaxed),
        timeline,
    })
}

/// The phases added up: statements, errors and the worst latency exactly; p50 and p99 as the
/// largest of the phases' (an upper bound), which is what a reader of the total wants to know.
fn total(phases: &[PhaseSummary]) -> PhaseStats {
    let seconds: f64 = phases.iter().map(|p| p.duration.as_secs_f64()).sum();
    let statements: u64 = phases.iter().map(|p| p.ops).sum();
    let worst = |f: fn(&PhaseSummary) -> Duration| phases.iter().map(f).max().map_or(0.0, ms);
    PhaseStats {
        phase: "all".into(),
        seconds,
        statements,
        per_second: if seconds > 0.0 {
            statements as f64 / seconds
        } else {
            0.0
        },
        p50_ms: worst(|p| p.p50),
        p99_ms: worst(|p| p.p99),
        max_ms: worst(|p| p.max),
        errors: phases.iter().map(|p| p.errors).sum(),
    }
}

/// A session with a transaction open that has read the table, so it holds ACCESS SHARE on it,
/// as a report query or a forgotten `BEGIN` in a console would.
struct Held {
    opened: Instant,
    done: std::thread::JoinHandle<Result<Instant>>,
}

impl Held {
    /// Waits for it to commit; its span on the traffic's clock.
    fn join(self, origin: Instant) -> Result<PhaseSpan> {
        let closed = self
            .done
            .join()
            .map_err(|_| Error::Traffic("the long transaction's thread panicked".into()))??;
        Ok(PhaseSpan {
            name: "long transaction".into(),
            from_s: (self.opened - origin).as_secs_f64(),
            to_s: (closed - origin).as_secs_f64(),
        })
    }
}

fn hold_transaction(connect: &ConnectOptions, hold: Duration) -> Result<Held> {
    let mut session = tandem_pg::connect(&ConnectOptions {
        application_name: Some("tandem bench: long transaction".into()),
        ..connect.clone()
    })?;
    let (opened_tx, opened_rx) = mpsc::channel();
    let done = std::thread::spawn(move || -> Result<Instant> {
        let sql = format!(
            "BEGIN; SELECT count(*) FROM {} WHERE id = 1",
            qualified(SCHEMA, fixture::TABLE)
        );
        session.batch_execute(&sql).map_err(error::sql(sql))?;
        let _ = opened_tx.send(Instant::now());
        std::thread::sleep(hold);
        session
            .batch_execute("COMMIT")
            .map_err(error::sql("COMMIT of the long transaction"))?;
        Ok(Instant::now())
    });
    match opened_rx.recv() {
        Ok(opened) => Ok(Held { opened, done }),
        // The thread failed before opening its transaction: its error says why.
        Err(_) => Err(done
            .join()
            .map_err(|_| Error::Traffic("the long transaction's thread panicked".into()))?
            .err()
            .unwrap_or_else(|| Error::Traffic("the long transaction did not open".into()))),
    }
}

/// What the clients saw, for the chart: every statement, and the phases of the change (the
/// quiet `baseline`, `after` and `both versions live` are left unshaded).
pub fn timeline(report: &tandem_traffic::Report, held: Vec<PhaseSpan>) -> Timeline {
    let quiet = [phase::BASELINE, phase::AFTER, phase::ACTIVE];
    let phases = report
        .phases
        .iter()
        .enumerate()
        .filter(|(_, m)| !quiet.contains(&&*m.name))
        .map(|(i, m)| PhaseSpan {
            name: m.name.to_string(),
            from_s: m.at.as_secs_f64(),
            to_s: report
                .phases
                .get(i + 1)
                .map_or(report.elapsed, |n| n.at)
                .as_secs_f64(),
        })
        .collect();
    Timeline {
        samples: report
            .samples
            .iter()
            .map(|s| Sample {
                at_s: s.at.as_secs_f64(),
                latency_ms: ms(s.latency),
                ok: s.ok,
            })
            .collect(),
        phases,
        held,
    }
}

/// The chart of the runs at one size: a row per change and situation, tandem on the left and
/// by hand on the right, written to `<stem>-<rows>.svg` and `.png`.
pub(crate) fn draw_chart(runs: &[TrafficRun], rows: u64, stem: &Path) -> Result<ChartFiles> {
    let mut chart_rows = Vec::new();
    for change in Change::ALL {
        for long_transaction in [false, true] {
            let find = |method| {
                runs.iter().find(|r| {
                    r.rows == rows
                        && r.change == change
                        && r.method == method
                        && r.long_transaction == long_transaction
                })
            };
            if let (Some(t), Some(h)) = (find(Method::Tandem), find(Method::ByHand)) {
                chart_rows.push(ChartRow {
                    title: format!(
                        "{}{}",
                        change.title(),
                        if long_transaction {
                            ", behind a long transaction"
                        } else {
                            ""
                        }
                    ),
                    tandem: t.timeline.clone(),
                    by_hand: h.timeline.clone(),
                });
            }
        }
    }
    let mut name = stem.file_stem().unwrap_or_default().to_os_string();
    name.push(format!("-{rows}"));
    chart::draw(
        &format!(
            "Client latency during a change of a {} row table: tandem (left), by hand (right)",
            crate::render::thousands(rows as f64)
        ),
        &chart_rows,
        &stem.with_file_name(name),
    )
}
