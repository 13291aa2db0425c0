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
                    Some(r) if !b.done && p.running => format!(", {r:.0} rows/s"),
                    _ => String::new(),
                };
                let eta = match p.eta_seconds {
                    Some(s) => format!(", ETA {}", human_seconds(s)),
                    None => String::new(),
                };
                let state = match (&b.yield_state, b.done, p.running) {
                    (_, true, _) => String::new(),
                    (Some(y), _, _) => format!(
                        "\n    {}{}{}: {}",
                        y,
                        b.yield_since
                            .as_deref()
                            .map(|t| format!(" since {t}"))
                            .unwrap_or_default(),
                        if p.running {
                            ""
                        } else {
                            " (when last run; not running now)"
                        },
                        b.yield_reason.as_deref().unwrap_or("?")
                    ),
                    (None, _, false) => {
                        "\n    not running: interrupted; `tandem start` with its file continues it"
                            .into()
                    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_pg::monitor::{
        ActiveMigration, BackfillProgress, LockWait, Slot, Standby, VersionSession, VersionUse,
    };
    use tandem_pg::state::BackfillCheckpoint;

    fn session(pid: i32, app: &str, state: &str, query: &str) -> Session {
        Session {
            pid,
            user: Some("app".into()),
            application_name: Some(app.into()),
            client_addr: None,
            state: Some(state.into()),
            query: Some(query.into()),
            query_seconds: Some(12.5),
            transaction_seconds: Some(30.0),
            state_seconds: Some(12.5),
        }
    }

    /// A snapshot of a busy moment: a backfill paused for a lagging standby beside one done, a
    /// blocked session, a long query, an idle transaction, a standby, a slot, versions in use.
    fn busy() -> MonitorSnapshot {
        let checkpoint = |table: &str, done: i64, paused: bool| {
            BackfillCheckpoint {
            position: 0,
            table: table.into(),
            rows_done: done,
            rows_estimate: 1_000_000,
            done: done == 1_000_000,
            updated_at: "2026-01-01T12:00:00+00:00".into(),
            rows_per_second: Some(25_000.0),
            yield_state: paused.then(|| "paused".into()),
            yield_cause: paused.then(|| "replication_lag".into()),
            yield_since: paused.then(|| "2026-01-01T11:59:58+00:00".into()),
            yield_reason: paused.then(|| "standby \"replica1\" replays 14.2 s (73400320 bytes) behind, more than --max-replication-lag 10.0 s; waiting until it catches up".into()),
            ..BackfillCheckpoint::default()
        }
        };
        let paused = checkpoint("users", 400_000, true);
        MonitorSnapshot {
            taken_at: "2026-01-01T12:00:01+00:00".into(),
            schema: "public".into(),
            user: "deploy".into(),
            sees_all_sessions: true,
            migration: Some(ActiveMigration {
                name: "02_email".into(),
                status: tandem_pg::MigrationStatus::Backfilling,
                version_schema: "public_02_email".into(),
                old_version_schemas: vec!["public_01_users".into()],
                tables: vec!["\"public\".\"users\"".into()],
                backfills: vec![
                    BackfillProgress {
                        eta_seconds: paused.eta_seconds(),
                        running: true,
                        checkpoint: paused,
                    },
                    BackfillProgress {
                        checkpoint: checkpoint("orders", 1_000_000, false),
                        eta_seconds: None,
                        running: false,
                    },
                ],
                started_at: Some("2026-01-01T11:50:00+00:00".into()),
            }),
            lock_waits: vec![LockWait {
                waiting: session(
                    200,
                    "web",
                    "active",
                    "UPDATE users SET name = $1 WHERE id = $2",
                ),
                wait_seconds: Some(1.5),
                locktype: "relation".into(),
                mode: "RowExclusiveLock".into(),
                relation: Some("public.users".into()),
                touches_migration: true,
                blocking: vec![session(100, "psql", "idle in transaction", "LOCK users")],
            }],
            long_queries: vec![session(
                300,
                "report",
                "active",
                "SELECT count(*) FROM orders",
            )],
            idle_in_transaction: vec![session(100, "psql", "idle in transaction", "LOCK users")],
            standbys: vec![Standby {
                application_name: Some("replica1".into()),
                client_addr: Some("10.0.0.2".into()),
                state: Some("streaming".into()),
                sync_state: Some("async".into()),
                write_lag_seconds: Some(0.1),
                flush_lag_seconds: Some(0.2),
                replay_lag_seconds: Some(14.2),
                write_lag_bytes: Some(2048),
                flush_lag_bytes: Some(4096),
                replay_lag_bytes: Some(73_400_320),
            }],
            slots: vec![Slot {
                slot_name: "replica1".into(),
                slot_type: "physical".into(),
                active: true,
                retained_wal_bytes: Some(73_400_320),
            }],
            versions: vec![VersionUse {
                version_schema: "public_01_users".into(),
                role: "old",
                sessions: vec![VersionSession {
                    pid: 400,
                    application_name: Some("web-v1".into()),
                    because: "holds a lock on public_01_users.users".into(),
                }],
            }],
            limitations: vec!["versions are inferred".into()],
        }
    }

    #[test]
    fn a_busy_moment_renders_every_section() {
        insta::assert_snapshot!(draw(&busy()));
    }

    #[test]
    fn an_interrupted_backfill_says_it_is_not_running() {
        let mut snap = busy();
        let m = snap.migration.as_mut().unwrap();
        m.backfills[0].running = false;
        let text = draw(&snap);
        assert!(
            text.contains("(when last run; not running now): standby \"replica1\""),
            "{text}"
        );
        clear_yield(&mut snap);
        let text = draw(&snap);
        assert!(
            text.contains("not running: interrupted; `tandem start` with its file continues it"),
            "{text}"
        );
    }

    fn clear_yield(snap: &mut MonitorSnapshot) {
        let c = &mut snap.migration.as_mut().unwrap().backfills[0].checkpoint;
        c.yield_state = None;
        c.yield_reason = None;
    }
}
