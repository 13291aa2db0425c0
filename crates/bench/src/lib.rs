//! `tandem bench`: what a migration costs the application, measured on a real PostgreSQL (a
//! throwaway cluster, or a scratch database), so anyone can reproduce the figures. Each scenario
//! builds its table afresh, measures, and returns figures; nothing here asserts a timing or
//! prints: progress goes through a callback, and [`render`] turns a [`Report`] into text.

#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod backfill;
pub mod chart;
pub mod error;
mod fixture;
pub mod indexed;
pub mod render;
pub mod traffic;
pub mod triggers;

pub use error::{Error, Result};
pub use fixture::{SCHEMA, STATE_SCHEMA, TABLE};

use serde::Serialize;
use std::path::PathBuf;
use tandem_cluster::{Cluster, ClusterOptions};
use tandem_pg::backfill::BackfillOptions;
use tandem_pg::ConnectOptions;

use fixture::Fixture;
use triggers::{OltpDriver, OltpOptions};

/// Where progress messages go.
pub type Progress<'a> = &'a (dyn Fn(&str) + Sync);

/// The scenarios, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// 1: the backfill's rows/s against one plain UPDATE of the same expression.
    Backfill,
    /// 2: bulk UPDATE and a single-row OLTP mix with and without the dual-write triggers.
    Triggers,
    /// 3: clients at a fixed rate during a type change and a NOT NULL addition, by tandem and
    /// by hand, quietly and behind a long transaction.
    Traffic,
    /// 4: backfill rows/s across table sizes.
    Scaling,
    /// 5: int → bigint of an indexed column by tandem, against one plain UPDATE and the
    /// blocking ALTER, with clients running (`indexed`).
    Indexed,
}

impl Scenario {
    pub const ALL: [Scenario; 5] = [
        Scenario::Backfill,
        Scenario::Triggers,
        Scenario::Traffic,
        Scenario::Scaling,
        Scenario::Indexed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Backfill => "backfill",
            Scenario::Triggers => "triggers",
            Scenario::Traffic => "traffic",
            Scenario::Scaling => "scaling",
            Scenario::Indexed => "indexed",
        }
    }

    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Where the benchmark runs.
#[derive(Debug, Clone)]
pub enum Target {
    /// A cluster started for the run and removed after it, from these server binaries (or
    /// those `tandem_cluster::discover_bin_dir` finds).
    Throwaway { bin_dir: Option<PathBuf> },
    /// A scratch database. The benchmark drops and recreates the schemas `tandem_bench` and
    /// `tandem_bench_*` in it, and removes them at the end.
    Database(ConnectOptions),
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub target: Target,
    /// Table sizes, in rows.
    pub rows: Vec<u64>,
    pub scenarios: Vec<Scenario>,
    /// Runs of each measurement; medians are reported.
    pub repeat: usize,
    pub backfill: BackfillOptions,
    /// Concurrent sessions and seconds per run of scenario 2's OLTP mix.
    pub oltp_clients: u32,
    pub oltp_duration: std::time::Duration,
    /// Use the built-in generator for the OLTP mix even when pgbench is there.
    pub built_in_oltp: bool,
    /// The clients of scenario 3.
    pub traffic: traffic::TrafficOptions,
    /// Scenario 3 draws its chart at each size to `<chart>-<rows>.svg` and `.png`.
    pub chart: Option<PathBuf>,
}

/// Everything measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub server_version: String,
    /// `throwaway cluster` or `database`.
    pub target: String,
    pub machine: Machine,
    pub backfill: Vec<backfill::BackfillSpeed>,
    pub triggers: Vec<triggers::TriggerCost>,
    pub traffic: Vec<traffic::TrafficRun>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling: Option<backfill::Scaling>,
    pub indexed: Vec<indexed::IndexedChange>,
    pub charts: Vec<chart::ChartFiles>,
}

/// The conditions the figures were measured in.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    /// The 1-minute load average before and after the run (Linux), which tells whether other
    /// work shared the machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_before: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_after: Option<f64>,
}

/// Runs the chosen scenarios at each size.
pub fn run(opts: &BenchOptions, progress: Progress<'_>) -> Result<Report> {
    if opts.rows.is_empty() || opts.rows.contains(&0) {
        return Err(Error::Options(
            "--rows: give at least one table size, each at least 1 row".into(),
        ));
    }
    if opts.scenarios.is_empty() {
        return Err(Error::Options(
            "--scenario: choose at least one scenario".into(),
        ));
    }
    let load_before = load_average();
    let (cluster, connect, target) = match &opts.target {
        Target::Throwaway { bin_dir } => {
            progress("starting a throwaway PostgreSQL cluster");
            let cluster = Cluster::start(ClusterOptions {
                bin_dir: bin_dir.clone(),
                ..ClusterOptions::default()
            })?;
            cluster.create_database("tandem_bench")?;
            let connect = ConnectOptions {
                url: Some(cluster.url("tandem_bench")),
                ..ConnectOptions::default()
            };
            (Some(cluster), connect, "throwaway cluster")
        }
        Target::Database(connect) => (None, connect.clone(), "database"),
    };
    let pgbench = tandem_cluster::client_program("pgbench", cluster.as_ref().map(|c| c.bin_dir()));
    let oltp = OltpOptions {
        clients: opts.oltp_clients.max(1),
        duration: opts.oltp_duration,
        driver: match pgbench {
            Some(p) if !opts.built_in_oltp => OltpDriver::Pgbench(p),
            _ => OltpDriver::BuiltIn,
        },
    };
    let mut fx = Fixture::new(connect, opts.backfill)?;
    let server_version = fx.server_version()?;
    progress(&format!("PostgreSQL {server_version} ({target})"));
    let mut sizes = opts.rows.clone();
    sizes.sort_unstable();
    sizes.dedup();
    let wants = |s: Scenario| opts.scenarios.contains(&s);
    let mut report = Report {
        server_version,
        target: target.into(),
        machine: Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            load_before,
            load_after: None,
        },
        backfill: Vec::new(),
        triggers: Vec::new(),
        traffic: Vec::new(),
        scaling: None,
        indexed: Vec::new(),
        charts: Vec::new(),
    };
    let mut points = Vec::new();
    for &rows in &sizes {
        if wants(Scenario::Backfill) {
            let speed = backfill::speed(&mut fx, rows, opts.repeat, progress)?;
            points.push(backfill::ScalingPoint::of(&speed));
            report.backfill.push(speed);
        } else if wants(Scenario::Scaling) {
            let rate = backfill::backfill_only(&mut fx, rows, opts.repeat)?;
            progress(&format!("scaling, {rows} rows: backfill {rate:.0} rows/s"));
            points.push(backfill::ScalingPoint::alone(rows, rate));
        }
        if wants(Scenario::Triggers) {
            report.triggers.push(triggers::measure(
                &mut fx,
                rows,
                opts.repeat,
                &oltp,
                progress,
            )?);
        }
        if wants(Scenario::Traffic) {
            let runs = traffic::measure(&mut fx, rows, &opts.traffic, progress)?;
            if let Some(stem) = &opts.chart {
                let files = traffic::draw_chart(&runs, rows, stem)?;
                progress(&format!(
                    "chart written to {} and {}",
                    files.svg.display(),
                    files.png.display()
                ));
                report.charts.push(files);
            }
            report.traffic.extend(runs);
        }
        if wants(Scenario::Indexed) {
            report.indexed.push(indexed::measure(
                &mut fx,
                rows,
                opts.repeat,
                &opts.traffic,
                progress,
            )?);
        }
    }
    if wants(Scenario::Scaling) {
        report.scaling = backfill::scaling(points);
    }
    fx.clean_up()?;
    drop(fx);
    drop(cluster);
    report.machine.load_after = load_average();
    Ok(report)
}

/// The 1-minute load average, where `/proc/loadavg` tells it.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The median (the upper one of an even count).
pub(crate) fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}
