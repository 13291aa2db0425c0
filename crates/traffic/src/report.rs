//! What the clients lived through: every statement's latency and outcome, the errors with the
//! server's message, the writes with their parameters, and a summary per phase.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use crate::workload::{OpKind, Protocol, Value};

/// A phase began: [`crate::Traffic::mark`] was called with `name` at `at` since the start.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseMark {
    pub name: Arc<str>,
    pub at: Duration,
}

/// One statement a client sent.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was sent, since [`crate::Traffic::start`].
    pub at: Duration,
    /// From sending it until its result was in.
    pub latency: Duration,
    /// The phase current when it was sent.
    pub phase: Arc<str>,
    pub client: Arc<str>,
    /// The [`crate::Op::label`].
    pub op: Arc<str>,
    pub ok: bool,
    /// Rows returned (reads) or affected (writes); 0 on error.
    pub rows: u64,
}

/// A statement that failed, or a connection that could not be made (`op` is `connect`).
#[derive(Debug, Clone)]
pub struct ClientError {
    pub at: Duration,
    pub phase: Arc<str>,
    pub client: Arc<str>,
    pub op: Arc<str>,
    /// The SQL as sent (literals written in for the simple protocol).
    pub sql: String,
    /// The server's message with its SQLSTATE, detail and hint.
    pub message: String,
}

/// A write a client made, in the order the client made it. Each client's writes are in its own
/// order; clients that write disjoint rows make the expected final table a matter of replaying
/// each client's successful writes.
#[derive(Debug, Clone)]
pub struct Write {
    pub at: Duration,
    pub phase: Arc<str>,
    pub client: Arc<str>,
    pub op: Arc<str>,
    pub kind: OpKind,
    pub params: Vec<Value>,
    /// Whether the statement succeeded (and, in autocommit, committed).
    pub ok: bool,
    /// Rows affected.
    pub rows: u64,
}

/// One client's totals.
#[derive(Debug, Clone)]
pub struct ClientReport {
    pub name: Arc<str>,
    pub search_path: Option<String>,
    pub protocol: Protocol,
    /// Statements sent, successful or not.
    pub ops: u64,
    pub errors: u64,
}

/// What the clients felt during one phase.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseSummary {
    pub phase: Arc<str>,
    /// From the phase's mark to the next mark (or the end of the traffic).
    pub duration: Duration,
    pub ops: u64,
    pub errors: u64,
    /// Statements per second over `duration`.
    pub throughput: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// Everything [`crate::Traffic::stop`] hands back.
#[derive(Debug, Clone)]
pub struct Report {
    /// From start to stop.
    pub elapsed: Duration,
    /// The phases in the order they were marked; the first is `baseline` at zero.
    pub phases: Vec<PhaseMark>,
    pub clients: Vec<ClientReport>,
    /// Every statement, ordered by `at`.
    pub samples: Vec<Sample>,
    /// Every failure, ordered by `at`.
    pub errors: Vec<ClientError>,
    /// Every write, ordered by `at`.
    pub writes: Vec<Write>,
}

impl Report {
    pub fn ops(&self) -> u64 {
        self.clients.iter().map(|c| c.ops).sum()
    }

    pub fn error_count(&self) -> u64 {
        self.errors.len() as u64
    }

    /// One summary per marked phase, over every client.
    pub fn phase_summaries(&self) -> Vec<PhaseSummary> {
        self.phase_summaries_where(|_| true)
    }

    /// One summary per marked phase, over the samples `keep` accepts (one client, one op...).
    pub fn phase_summaries_where(&self, keep: impl Fn(&Sample) -> bool) -> Vec<PhaseSummary> {
        self.phases
            .iter()
            .enumerate()
            .map(|(i, mark)| {
                let end = self.phases.get(i + 1).map_or(self.elapsed, |next| next.at);
                let duration = end.saturating_sub(mark.at);
                // Phases may be marked twice under one name; a sample belongs to the mark whose
                // time span holds its start.
                let samples: Vec<&Sample> = self
                    .samples
                    .iter()
                    .filter(|s| s.at >= mark.at && s.at < end && keep(s))
                    .collect();
                summarize(mark.name.clone(), duration, &samples)
            })
            .collect()
    }

    /// The samples sent while the phase named `phase` was current.
    pub fn samples_in<'a>(&'a self, phase: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| &*s.phase == phase)
    }

    /// The successful writes of one client, in its order.
    pub fn writes_of<'a>(&'a self, client: &'a str) -> impl Iterator<Item = &'a Write> + 'a {
        self.writes
            .iter()
            .filter(move |w| w.ok && &*w.client == client)
    }

    /// The first `max` errors, one a line, for a test's failure message; empty when none.
    pub fn describe_errors(&self, max: usize) -> String {
        let mut out = String::new();
        for e in self.errors.iter().take(max) {
            let _ = writeln!(
                out,
                "[{:.3}s, {}] {} {}: {}\n    {}",
                e.at.as_secs_f64(),
                e.phase,
                e.client,
                e.op,
                e.message,
                e.sql
            );
        }
        if self.errors.len() > max {
            let _ = writeln!(out, "... and {} more", self.errors.len() - max);
        }
        out
    }

    /// Each distinct error message (without its detail) with how many times it occurred, the most
    /// frequent first.
    pub fn distinct_errors(&self) -> Vec<(String, u64)> {
        let mut counts: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
        for e in &self.errors {
            let message = e.message.split("; detail:").next().unwrap_or(&e.message);
            *counts.entry(message).or_default() += 1;
        }
        let mut out: Vec<(String, u64)> = counts
            .into_iter()
            .map(|(m, n)| (m.to_string(), n))
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }

    /// A plain-text table of the phase summaries, for benchmarks and the demo to print.
    pub fn phase_table(&self) -> String {
        let mut out = String::from(
            "phase                  seconds      ops    ops/s      p50 ms    p99 ms    max ms  errors\n",
        );
        for s in self.phase_summaries() {
            let _ = writeln!(
                out,
                "{:<20} {:>9.2} {:>8} {:>8.0} {:>11.2} {:>9.2} {:>9.2} {:>7}",
                s.phase,
                s.duration.as_secs_f64(),
                s.ops,
                s.throughput,
                ms(s.p50),
                ms(s.p99),
                ms(s.max),
                s.errors
            );
        }
        out
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summarize(phase: Arc<str>, duration: Duration, samples: &[&Sample]) -> PhaseSummary {
    let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    latencies.sort_unstable();
    let errors = samples.iter().filter(|s| !s.ok).count() as u64;
    let ops = samples.len() as u64;
    let seconds = duration.as_secs_f64();
    PhaseSummary {
        phase,
        duration,
        ops,
        errors,
        throughput: if seconds > 0.0 {
            ops as f64 / seconds
        } else {
            0.0
        },
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or_default(),
    }
}

/// The nearest-rank percentile of sorted values; zero when there are none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64, latency_ms: u64, phase: &str, ok: bool) -> Sample {
        Sample {
            at: Duration::from_millis(at_ms),
            latency: Duration::from_millis(latency_ms),
            phase: phase.into(),
            client: "c".into(),
            op: "o".into(),
            ok,
            rows: 1,
        }
    }

    #[test]
    fn summaries_split_samples_at_the_marks() {
        let report = Report {
            elapsed: Duration::from_secs(4),
            phases: vec![
                PhaseMark {
                    name: "baseline".into(),
                    at: Duration::ZERO,
                },
                PhaseMark {
                    name: "start".into(),
                    at: Duration::from_secs(2),
                },
            ],
            clients: Vec::new(),
            samples: (1..=100)
                .map(|i| sample(i * 10, i, "baseline", true))
                .chain([sample(2500, 7, "start", false)])
                .collect(),
            errors: Vec::new(),
            writes: Vec::new(),
        };
        let s = report.phase_summaries();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].ops, s[0].errors), (100, 0));
        assert_eq!(s[0].p50, Duration::from_millis(50));
        assert_eq!(s[0].p99, Duration::from_millis(99));
        assert_eq!(s[0].max, Duration::from_millis(100));
        assert_eq!(s[0].throughput, 50.0);
        assert_eq!((s[1].ops, s[1].errors), (1, 1));
        assert_eq!(s[1].duration, Duration::from_secs(2));
    }
}
