//! `tandem monitor`: takes snapshots and draws them, redrawn in place on a terminal (ANSI clear
//! and home) every interval until Ctrl-C, or once. Also draws `complete`'s evidence for `status`.

use anyhow::Result;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::Duration;
use tandem_pg::evidence::Evidence;
use tandem_pg::monitor::{snapshot, MonitorOptions, MonitorSnapshot, Session};

pub fn run(
    client: &mut postgres::Client,
    options: &MonitorOptions,
    once: bool,
    interval: Duration,
    json: bool,
) -> Result<()> {
    let terminal = std::io::stdout().is_terminal();
    loop {
        let snap = snapshot(client, options)?;
        let mut out = std::io::stdout().lock();
        if json {
            writeln!(out, "{}", serde_json::to_string(&snap)?)?;
        } else if terminal && !once {
            // Clear the screen and draw from the top-left corner.
            write!(out, "\x1b[2J\x1b[H{}", draw(&snap))?;
        } else {
            writeln!(out, "{}", draw(&snap))?;
        }
        out.flush()?;
        if once {
            return Ok(());
        }
        drop(out);
        std::thread::sleep(interval);
    }
}

/// `75` as `1m15s`.
fn human_seconds(s: i64) -> String {
    match s {
        ..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn secs(s: Option<f64>) -> String {
    s.map_or("?".into(), |s| format!("{s:.1}s"))
}

fn bytes(b: Option<i64>) -> String {
    match b {
        None => "?".into(),
        Some(b) if b.abs() >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        Some(b) if b.abs() >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        Some(b) => format!("{b} B"),
    }
}

fn who(s: &Session) -> String {
    format!(
        "pid {} {:?} {}@{}",
        s.pid,
        s.application_name.as_deref().unwrap_or(""),
        s.user.as_deref().unwrap_or("?"),
        s.client_addr.as_deref().unwrap_or("local")
    )
}

fn query(s: &Session) -> String {
    let q: String = s
        .query
        .as_deref()
        .unwrap_or("?")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    match q.char_indices().nth(100) {
        Some((i, _)) => format!("{}…", &q[..i]),
        None => q,
    }
}

/// The snapshot as text, one section per concern.
pub fn draw(s: &MonitorSnapshot) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "tandem monitor  {}  schema {}  as {}",
        s.taken_at, s.schema, s.user
    );
    let _ = writeln!(o);
    match &s.migration {
        None => {
            let _ = writeln!(o, "migration: none active");
        }
        Some(m) => {
            let _ = writeln!(
                o,
                "migration: {} ({}), new version {}, old version(s) {}",
                m.name,
                m.status,
                m.version_schema,
                if m.old_version_schemas.is_empty() {
                    "the base schema".to_string()
                } else {
                    m.old_version_schemas.join(", ")
                }
            );
            for p in &m.backfills {
                let b = &p.checkpoint;
                let total = b.rows_estimate.max(b.rows_done);
                let percent = (b.rows_done * 100).checked_div(total).unwrap_or(100);
                let rate = match b.rows_per_second {
                    Some(r) if !b.done => format!(", {r:.0} rows/s"),
                    _ => String::new(),
                };
                let eta = match p.eta_seconds {
                    Some(s) => format!(", ETA {}", human_seconds(s)),
                    None => String::new(),
                };
                let state = match (&b.yield_state, b.done, p.running) {
                    (_, true, _) => String::new(),
                    (Some(y), _, _) => format!(
                        "\n    {}{}: {}",
                        y,
                        if p.running { "" } else { " (when last run; not running now)" },
                        b.yield_reason.as_deref().unwrap_or("?")
                    ),
                    (None, _, false) => "\n    not running: interrupted; `tandem start` with its file continues it".into(),
                    (None, _, true) => String::new(),
                };
                let _ = writeln!(
                    o,
                    "  backfill {}: {} ({} of ~{} rows{rate}{eta}), updated {}{state}",
                    b.table,
                    if b.done {
                        "done".to_string()
                    } else {
                        format!("{percent}%")
                    },
                    b.rows_done,
                    total,
                    b.updated_at
                );
            }
        }
    }
    let _ = writeln!(o, "\nlock waits: {}", s.lock_waits.len());
    for w in &s.lock_waits {
        let _ = writeln!(
            o,
            "  {} waits {} for {} on {}{}: {}",
            who(&w.waiting),
            secs(w.wait_seconds),
            w.mode,
            w.relation.as_deref().unwrap_or(&w.locktype),
            if w.touches_migration {
                " (migration)"
            } else {
                ""
            },
            query(&w.waiting)
        );
        for b in &w.blocking {
            let _ = writeln!(
                o,
                "    blocked by {} ({}): {}",
                who(b),
                b.state.as_deref().unwrap_or("?"),
                query(b)
            );
        }
    }
    let _ = writeln!(o, "\nlong queries: {}", s.long_queries.len());
    for q in &s.long_queries {
        let _ = writeln!(
            o,
            "  {} running {}: {}",
            who(q),
            secs(q.query_seconds),
            query(q)
        );
    }
    let _ = writeln!(o, "idle in transaction: {}", s.idle_in_transaction.len());
    for q in &s.idle_in_transaction {
        let _ = writeln!(
            o,
            "  {} idle {} (transaction {}): {}",
            who(q),
            secs(q.state_seconds),
            secs(q.transaction_seconds),
            query(q)
        );
    }
    let _ = writeln!(
        o,
        "\nreplication: {} standby(s), {} slot(s)",
        s.standbys.len(),
        s.slots.len()
    );
    for r in &s.standbys {
        let _ = writeln!(
            o,
            "  {} {} {}: lag write {} / {}, flush {} / {}, replay {} / {}",
            r.application_name.as_deref().unwrap_or("?"),
            r.client_addr.as_deref().unwrap_or("local"),
            r.state.as_deref().unwrap_or("?"),
            secs(r.write_lag_seconds),
            bytes(r.write_lag_bytes),
            secs(r.flush_lag_seconds),
            bytes(r.flush_lag_bytes),
            secs(r.replay_lag_seconds),
            bytes(r.replay_lag_bytes)
        );
    }
    for slot in &s.slots {
        let _ = writeln!(
            o,
            "  slot {} ({}, {}): retains {}",
            slot.slot_name,
            slot.slot_type,
            if slot.active { "active" } else { "inactive" },
            bytes(slot.retained_wal_bytes)
        );
    }
    if !s.versions.is_empty() {
        let _ = writeln!(o, "\nversions (inferred):");
        for v in &s.versions {
            let _ = writeln!(
                o,
                "  {} ({}): {} session(s)",
                v.version_schema,
                v.role,
                v.sessions.len()
            );
            for x in &v.sessions {
                let _ = writeln!(
                    o,
                    "    pid {} {:?}: {}",
                    x.pid,
                    x.application_name.as_deref().unwrap_or(""),
                    x.because
                );
            }
        }
    }
    if !s.limitations.is_empty() {
        let _ = writeln!(o, "\nlimitations:");
        for l in &s.limitations {
            let _ = writeln!(o, "  - {l}");
        }
    }
    o
}

/// `complete`'s evidence as `status` prints it, starting on a new line.
pub fn evidence(e: &Evidence) -> String {
    let mut o = String::new();
    let findings = e.findings();
    let _ = write!(
        o,
        "\nevidence the old version still runs ({} sample(s) over {} ms{}): {}",
        e.samples,
        e.sample_window_ms,
        if e.old_version_schemas.is_empty() {
            String::new()
        } else {
            format!(" of {}", e.old_version_schemas.join(", "))
        },
        if findings.is_empty() {
            "none found"
        } else {
            "found"
        }
    );
    for f in findings {
        let _ = write!(o, "\n  - {f}");
    }
    for l in &e.limitations {
        let _ = write!(o, "\n  (not covered: {l})");
    }
    o
}
