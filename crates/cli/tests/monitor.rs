//! `tandem monitor --once --json` against known situations: a blocked session shows as a lock
//! wait naming both pids, and a role without pg_monitor gets the snapshot with its limitation
//! stated instead of an error, and a standby whose replay is paused shows its lag.

use std::process::{Command, Output};
use std::time::{Duration, Instant};
use tandem_testkit::{Access, TestDb};

fn tandem(args: &[&str], url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .env("DATABASE_URL", url)
        .output()
        .expect("run tandem")
}

fn snapshot(url: &str) -> serde_json::Value {
    let o = tandem(&["--json", "monitor", "--once"], url);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("one JSON document")
}

/// A session holding `ACCESS EXCLUSIVE` on `t` in an open transaction, and another whose read of
/// `t` waits for it, with their pids. The waiter's thread ends when the holder lets go.
fn blocked(db: &TestDb) -> (postgres::Client, i32, i32, std::thread::JoinHandle<()>) {
    db.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1);");
    let mut holder = db.connect();
    holder
        .batch_execute(
            "SET application_name = 'holder'; BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE",
        )
        .unwrap();
    let holder_pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let mut waiter = db.connect();
    waiter
        .batch_execute("SET application_name = 'waiter'")
        .unwrap();
    let waiter_pid: i32 = waiter
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let handle = std::thread::spawn(move || {
        waiter.query("SELECT count(*) FROM t", &[]).unwrap();
    });
    let mut probe = db.connect();
    let began = Instant::now();
    while !probe
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted)",
            &[&waiter_pid],
        )
        .unwrap()
        .get::<_, bool>(0)
    {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the waiter never queued"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (holder, holder_pid, waiter_pid, handle)
}

#[test]
fn a_blocked_session_shows_as_a_lock_wait_with_both_pids() {
    let db = TestDb::new();
    let (mut holder, holder_pid, waiter_pid, waiter) = blocked(&db);
    let snap = snapshot(&db.url());
    let waits = snap["lock_waits"].as_array().unwrap();
    let wait = waits
        .iter()
        .find(|w| w["waiting"]["pid"] == waiter_pid)
        .unwrap_or_else(|| panic!("no wait for {waiter_pid}: {snap:#}"));
    assert_eq!(wait["waiting"]["application_name"], "waiter");
    assert_eq!(wait["relation"], "public.t");
    assert_eq!(wait["mode"], "AccessShareLock");
    assert!(wait["waiting"]["query"]
        .as_str()
        .unwrap()
        .contains("FROM t"));
    let blocking = wait["blocking"].as_array().unwrap();
    assert!(
        blocking
            .iter()
            .any(|b| b["pid"] == holder_pid && b["application_name"] == "holder"),
        "{wait:#}"
    );
    // The superuser sees every session's query; the test kit's least-privileged role
    // (TANDEM_TEST_ROLE=least) has no pg_read_all_stats, and the snapshot says so.
    assert_eq!(snap["sees_all_sessions"], db.access() == Access::Superuser);
    // tandem is not initialised here: the snapshot says so rather than failing.
    assert!(snap["migration"].is_null());

    // The human rendering names both sessions too.
    let o = tandem(&["monitor", "--once"], &db.url());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(&format!("pid {waiter_pid}"))
            && text.contains(&format!("blocked by pid {holder_pid}")),
        "{text}"
    );
    holder.batch_execute("COMMIT").unwrap();
    waiter.join().unwrap();
}

#[test]
fn without_pg_monitor_the_limitation_is_reported() {
    let db = TestDb::new();
    let role = format!("{}_watcher", db.name);
    db.execute_as_superuser(&format!("CREATE ROLE {role} LOGIN NOSUPERUSER"));
    let (mut holder, holder_pid, waiter_pid, waiter) = blocked(&db);
    let url = db.url_as(&role);
    let snap = snapshot(&url);
    assert_eq!(snap["sees_all_sessions"], false);
    let limitations = snap["limitations"].to_string();
    assert!(
        limitations.contains("pg_read_all_stats")
            && limitations.contains("<insufficient privilege>"),
        "{limitations}"
    );
    // The lock wait itself is still visible (pg_locks is public); its query text is not.
    let wait = snap["lock_waits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["waiting"]["pid"] == waiter_pid)
        .unwrap_or_else(|| panic!("{snap:#}"));
    assert_eq!(wait["waiting"]["query"], "<insufficient privilege>");
    assert!(wait["blocking"]
        .to_string()
        .contains(&holder_pid.to_string()));
    holder.batch_execute("COMMIT").unwrap();
    waiter.join().unwrap();
    // Roles are cluster-wide.
    drop(holder);
    db.execute_as_superuser(&format!("DROP OWNED BY {role}; DROP ROLE {role}"));
}

/// A backfill paused by a row lock, as `tandem monitor` shows it while `tandem start` runs it in
/// another process: rows done of the total, rows/s, ETA, and the pause with its reason; and as
/// the running start reports it on stderr. It finishes once the lock goes.
#[test]
fn a_paused_backfill_shows_its_reason_rate_and_eta() {
    let db = TestDb::new();
    db.execute(
        "CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL);
         INSERT INTO items SELECT g, g FROM generate_series(1, 3000) g;
         ANALYZE items;",
    );
    let url = db.url();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("01_double.yaml");
    std::fs::write(
        &file,
        "operations:\n  - add_column: {table: items, up: \"n * 2\", column: {name: doubled, type: int, nullable: true}}\n",
    )
    .unwrap();
    let file = file.to_string_lossy().into_owned();
    assert!(tandem(&["init"], &url).status.success());
    // Leave the migration backfilling after one batch of 100 rows: the row lock taken next
    // would otherwise block the start's ALTER TABLE.
    let mut client = tandem_pg::connect(&tandem_pg::ConnectOptions {
        url: Some(url.clone()),
        ..Default::default()
    })
    .unwrap();
    let stopped = tandem_pg::Engine::new(
        &mut client,
        tandem_pg::EngineOptions {
            backfill: tandem_pg::backfill::BackfillOptions {
                batch_size: Some(100),
                stop_after_batches: Some(1),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .start(
        &tandem_model::Migration::load(std::path::Path::new(&file)).unwrap(),
        &tandem_pg::events::ignore,
    );
    assert!(stopped.is_err(), "the test hook stops the backfill");
    drop(client);
    let mut holder = db.connect();
    holder
        .batch_execute(
            "SET application_name = 'row-holder'; BEGIN; SELECT * FROM items WHERE id = 1450 FOR UPDATE",
        )
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["start", &file, "--backfill-batch-size", "100"])
        .env("DATABASE_URL", &url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run tandem start");
    let mut probe = db.connect();
    let began = Instant::now();
    while probe
        .query_opt(
            "SELECT 1 FROM tandem.backfills WHERE yield_state = 'paused'",
            &[],
        )
        .unwrap()
        .is_none()
    {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the backfill never recorded a pause"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let snap = snapshot(&url);
    let m = &snap["migration"];
    assert_eq!(m["status"], "backfilling", "{snap:#}");
    let b = &m["backfills"][0];
    assert_eq!(b["table"], "items");
    assert_eq!(b["yield_state"], "paused", "{b:#}");
    assert_eq!(b["yield_cause"], "lock_wait", "{b:#}");
    assert!(
        b["yield_reason"].as_str().unwrap().contains("row-holder"),
        "{b:#}"
    );
    assert_eq!(b["rows_done"], 1400, "{b:#}");
    assert_eq!(b["rows_estimate"], 3000, "{b:#}");
    assert!(b["rows_per_second"].as_f64().unwrap() > 0.0, "{b:#}");
    assert!(b["eta_seconds"].as_i64().unwrap() > 0, "{b:#}");
    assert_eq!(b["running"], true, "{b:#}");
    let o = tandem(&["monitor", "--once"], &url);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("backfill items: 46% (1400 of ~3000 rows, ")
            && text.contains(" rows/s, ETA ")
            && text.contains("paused since ")
            && text.contains(": a batch could not get its row locks"),
        "{text}"
    );

    holder.batch_execute("COMMIT").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("backfill items paused: a batch could not get its row locks")
            && stderr.contains("backfill items resumed: lock wait has cleared"),
        "{stderr}"
    );
    assert_eq!(
        probe
            .query_one(
                "SELECT count(*) FROM items WHERE doubled IS DISTINCT FROM n * 2",
                &[]
            )
            .unwrap()
            .get::<_, i64>(0),
        0
    );
}

/// A lagging standby: with replay paused on it and writes on the primary, the snapshot lists the
/// standby, streaming, with its replay lag in bytes; once replay resumes the lag goes.
#[test]
fn a_lagging_standby_shows_its_replay_lag() {
    let pair = tandem_testkit::Replicated::start();
    let url = pair.primary.url("postgres");
    let mut standby = pair.standby_session("postgres");
    standby
        .batch_execute("SELECT pg_wal_replay_pause()")
        .unwrap();
    let mut primary = pair.primary_session("postgres");
    primary
        .batch_execute("CREATE TABLE lag (x int); INSERT INTO lag SELECT generate_series(1, 20000)")
        .unwrap();
    let replay_lag = |snap: &serde_json::Value| {
        snap["standbys"]
            .as_array()
            .and_then(|s| s.first())
            .and_then(|s| s["replay_lag_bytes"].as_i64())
            .unwrap_or(0)
    };
    // The primary learns the standby's replay position from its status messages.
    let deadline = Instant::now() + Duration::from_secs(60);
    let snap = loop {
        let snap = snapshot(&url);
        if replay_lag(&snap) > 0 {
            break snap;
        }
        assert!(Instant::now() < deadline, "no replay lag seen: {snap:#}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(snap["standbys"].as_array().unwrap().len(), 1, "{snap:#}");
    assert_eq!(snap["standbys"][0]["state"], "streaming", "{snap:#}");
    standby
        .batch_execute("SELECT pg_wal_replay_resume()")
        .unwrap();
    pair.wait_for_replay();
    let deadline = Instant::now() + Duration::from_secs(60);
    while replay_lag(&snapshot(&url)) > 0 {
        assert!(
            Instant::now() < deadline,
            "the replay lag stayed after replay resumed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A long-running query and a session idle in a transaction past their thresholds are listed
/// with their pids, and with the time they have run.
#[test]
fn long_queries_and_idle_transactions_are_listed() {
    let db = TestDb::new();
    let mut idle = db.connect();
    idle.batch_execute("SET application_name = 'idler'; BEGIN; SELECT 1")
        .unwrap();
    let idle_pid: i32 = idle
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let mut sleeper = db.connect();
    let sleeper_pid: i32 = sleeper
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    // The query runs until the test cancels it, however long the checks below take.
    let sleeping = std::thread::spawn(move || sleeper.batch_execute("SELECT pg_sleep(600)"));
    // Until the server says the query has run for longer than --long-query and the idle
    // transaction has been idle longer than --idle-in-transaction.
    let mut watcher = db.connect();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ready: bool = watcher
            .query_one(
                "SELECT count(*) = 2 FROM pg_stat_activity
                  WHERE (pid = $1 AND state = 'active' AND now() - query_start > interval '1.2 s')
                     OR (pid = $2 AND state = 'idle in transaction' AND now() - state_change > interval '1.2 s')",
                &[&sleeper_pid, &idle_pid],
            )
            .unwrap()
            .get(0);
        if ready {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sessions never aged"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = tandem(
        &[
            "--json",
            "monitor",
            "--once",
            "--long-query",
            "1s",
            "--idle-in-transaction",
            "1s",
        ],
        &db.url(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let snap: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let pids = |key: &str| -> Vec<i64> {
        snap[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["pid"].as_i64().unwrap())
            .collect()
    };
    assert!(
        pids("long_queries").contains(&i64::from(sleeper_pid)),
        "{snap:#}"
    );
    assert!(
        pids("idle_in_transaction").contains(&i64::from(idle_pid)),
        "{snap:#}"
    );
    assert!(
        !pids("long_queries").contains(&i64::from(idle_pid)),
        "{snap:#}"
    );
    watcher
        .execute("SELECT pg_cancel_backend($1)", &[&sleeper_pid])
        .unwrap();
    let cancelled = sleeping.join().unwrap().unwrap_err();
    assert_eq!(
        cancelled.code(),
        Some(&postgres::error::SqlState::QUERY_CANCELED),
        "{cancelled}"
    );
    idle.batch_execute("ROLLBACK").unwrap();
}
