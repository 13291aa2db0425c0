//! Evidence before complete: an old-version client running a query loop through its version
//! schema makes `complete` refuse and name it, until the client stops; `--force` proceeds and is
//! recorded; `--min-age` refuses a young migration; with pg_stat_statements loaded, a query run
//! after start that uses a dropped column is named, and one run before start is not.

mod common;

use common::{exec, migration};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;
use tandem_pg::evidence::EvidenceOptions;
use tandem_pg::{ConnectOptions, Engine, EngineOptions, Error};
use tandem_testkit::TestDb;

fn client(db: &TestDb) -> postgres::Client {
    let mut c = tandem_pg::connect(&ConnectOptions {
        url: Some(db.url()),
        ..ConnectOptions::default()
    })
    .expect("connect");
    Engine::new(&mut c, EngineOptions::default())
        .init()
        .expect("init");
    c
}

fn engine(c: &mut postgres::Client, evidence: EvidenceOptions) -> Engine<'_> {
    Engine::new(
        c,
        EngineOptions {
            evidence,
            ..EngineOptions::default()
        },
    )
}

fn sampling(ms: u64) -> EvidenceOptions {
    EvidenceOptions {
        sample: Duration::from_millis(ms),
        ..EvidenceOptions::default()
    }
}

/// A database with `users`, migration 01 completed (so its version schema is the old version)
/// and 02, which drops `legacy`, active.
fn two_versions() -> (TestDb, postgres::Client) {
    let db = TestDb::new();
    db.execute(
        "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, legacy text);
         INSERT INTO users (name, legacy) SELECT 'u' || g, 'l' || g FROM generate_series(1, 50) g;",
    );
    let mut c = client(&db);
    let on_event = |_: &tandem_pg::Event| {};
    let mut e = engine(&mut c, EvidenceOptions::default());
    e.start(
        &migration(
            "01_nick",
            "operations:\n  - add_column: {table: users, column: {name: nick, type: text, nullable: true}}\n",
        ),
        &on_event,
    )
    .expect("start 01");
    e.complete(&on_event).expect("complete 01");
    e.start(
        &migration(
            "02_drop_legacy",
            "operations:\n  - drop_column: {table: users, column: legacy, down: \"'x'\"}\n",
        ),
        &on_event,
    )
    .expect("start 02");
    (db, c)
}

/// An old-version client reading through `public_01_nick` in a loop until told to stop; its
/// pid comes back on the channel before the loop starts.
fn old_client(db: &TestDb, stop: Arc<AtomicBool>) -> (i32, JoinHandle<()>) {
    let mut old = db.connect_with_search_path("public_01_nick, public");
    exec(&mut old, "SET application_name = 'old-app'");
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let pid: i32 = old
            .query_one("SELECT pg_backend_pid()", &[])
            .unwrap()
            .get(0);
        tx.send(pid).unwrap();
        while !stop.load(Ordering::Relaxed) {
            old.query("SELECT count(legacy), pg_sleep(0.02) FROM users", &[])
                .expect("the old version reads through its view");
        }
    });
    (rx.recv().expect("old client's pid"), handle)
}

#[test]
fn complete_refuses_while_an_old_version_client_runs_and_names_it() {
    let (db, mut c) = two_versions();
    let stop = Arc::new(AtomicBool::new(false));
    let (pid, old) = old_client(&db, stop.clone());
    let on_event = |_: &tandem_pg::Event| {};
    let err = engine(&mut c, sampling(2000))
        .complete(&on_event)
        .expect_err("complete must refuse while the old version runs");
    let text = err.to_string();
    assert!(matches!(err, Error::OldVersionInUse { .. }), "{text}");
    assert!(
        text.contains(&format!("pid {pid}"))
            && text.contains("old-app")
            && text.contains("public_01_nick"),
        "{text}"
    );
    // `status` shows the same evidence, and nothing was changed.
    let status = engine(&mut c, sampling(2000))
        .status_sampled(Duration::from_millis(2000))
        .unwrap();
    assert_eq!(
        status.active.as_ref().unwrap().status,
        tandem_pg::MigrationStatus::Active
    );
    let evidence = status.evidence.expect("evidence for an active migration");
    assert!(
        evidence.sessions.iter().any(|s| s.pid == pid),
        "{evidence:?}"
    );

    stop.store(true, Ordering::Relaxed);
    old.join().unwrap();
    engine(&mut c, sampling(1000))
        .complete(&on_event)
        .expect("complete proceeds once the old version is gone");
    let history = engine(&mut c, EvidenceOptions::default())
        .status()
        .unwrap()
        .history;
    assert!(history
        .iter()
        .all(|h| h.status == tandem_pg::MigrationStatus::Complete && h.forced_complete.is_none()));
}

#[test]
fn force_completes_despite_the_evidence_and_records_it() {
    let (db, mut c) = two_versions();
    let stop = Arc::new(AtomicBool::new(false));
    let (pid, old) = old_client(&db, stop.clone());
    let events = std::sync::Mutex::new(Vec::new());
    let on_event = |e: &tandem_pg::Event| events.lock().unwrap().push(e.clone());
    engine(
        &mut c,
        EvidenceOptions {
            force: true,
            ..sampling(2000)
        },
    )
    .complete(&on_event)
    .expect("--force completes");
    stop.store(true, Ordering::Relaxed);
    // The old version's views are gone, so its loop stops with an error; that is the point.
    let _ = old.join();
    let history = engine(&mut c, EvidenceOptions::default())
        .status()
        .unwrap()
        .history;
    let forced = history
        .iter()
        .find(|h| h.name == "02_drop_legacy")
        .and_then(|h| h.forced_complete.clone())
        .expect("the forced complete is recorded");
    let text = forced.to_string();
    assert!(
        text.contains(&format!("pid {pid}")) && text.contains("old-app"),
        "{text}"
    );
    assert!(
        events.lock().unwrap().iter().any(
            |e| matches!(e, tandem_pg::Event::Info { message } if message.contains("--force"))
        ),
        "the override is reported"
    );
}

#[test]
fn min_age_refuses_a_young_migration() {
    let db = TestDb::new();
    db.execute("CREATE TABLE t (id int PRIMARY KEY, a text)");
    let mut c = client(&db);
    let on_event = |_: &tandem_pg::Event| {};
    let young = EvidenceOptions {
        min_age: Duration::from_secs(24 * 3600),
        ..EvidenceOptions::default()
    };
    engine(&mut c, young.clone())
        .start(
            &migration(
                "01_drop_a",
                "operations:\n  - drop_column: {table: t, column: a}\n",
            ),
            &on_event,
        )
        .unwrap();
    let err = engine(&mut c, young.clone())
        .complete(&on_event)
        .unwrap_err();
    assert!(err.to_string().contains("--min-age"), "{err}");
    let status = engine(&mut c, young).status().unwrap();
    let findings = status.evidence.unwrap().findings();
    assert!(
        findings.iter().any(|f| f.contains("--min-age")),
        "{findings:?}"
    );
    // The first migration has no older version schema; the evidence says so.
    engine(&mut c, EvidenceOptions::default())
        .complete(&on_event)
        .expect("without --min-age it completes");
}

#[test]
fn pg_stat_statements_names_a_query_on_a_dropped_column_run_after_start() {
    let db = TestDb::on(tandem_testkit::stats_cluster());
    // The extension is not trusted: an administrator creates it, as on managed services.
    db.execute_as_superuser("CREATE EXTENSION pg_stat_statements");
    db.execute(
        "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, legacy text);
         INSERT INTO users (name, legacy) VALUES ('a', 'x'), ('b', 'y');",
    );
    let mut app = db.connect();
    // Run before start: in the baseline, so not evidence.
    exec(
        &mut app,
        "SELECT id FROM users WHERE legacy IS NOT NULL AND id > 0",
    );
    let mut c = client(&db);
    let on_event = |_: &tandem_pg::Event| {};
    engine(&mut c, EvidenceOptions::default())
        .start(
            &migration(
                "01_drop_legacy",
                "operations:\n  - drop_column: {table: users, column: legacy, down: \"'x'\"}\n",
            ),
            &on_event,
        )
        .unwrap();
    // The old version keeps reading the column through the base schema, and something else
    // reads a string that merely spells it.
    for _ in 0..3 {
        exec(&mut app, "SELECT legacy FROM public.users WHERE id = 1");
        exec(&mut app, "SELECT name FROM users WHERE name <> 'legacy'");
    }
    let err = engine(&mut c, EvidenceOptions::default())
        .complete(&on_event)
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("SELECT legacy FROM public.users WHERE id = $1")
            && text.contains("column users.legacy (dropped at complete)"),
        "{text}"
    );
    assert!(
        !text.contains("id > $"),
        "a query from before start is named: {text}"
    );
    assert!(
        !text.contains("name <>"),
        "a literal counts as a use: {text}"
    );
    let evidence = engine(&mut c, EvidenceOptions::default())
        .status()
        .unwrap()
        .evidence
        .unwrap();
    let statements = evidence.statements.expect("pg_stat_statements is readable");
    assert_eq!(statements.len(), 1, "{statements:?}");
    assert_eq!(statements[0].calls_since_start, 3);
}

/// The directory `two_versions` applied, with a third migration after it.
fn directory() -> Vec<tandem_model::Migration> {
    vec![
        migration(
            "01_nick",
            "operations:\n  - add_column: {table: users, column: {name: nick, type: text, nullable: true}}\n",
        ),
        migration(
            "02_drop_legacy",
            "operations:\n  - drop_column: {table: users, column: legacy, down: \"'x'\"}\n",
        ),
        migration(
            "03_age",
            "operations:\n  - add_column: {table: users, column: {name: age, type: int, nullable: true}}\n",
        ),
    ]
}

/// `migrate` completes the migration that was active when it began on its way; it weighs the
/// same evidence as `complete` first, refuses while an old-version client runs and names it,
/// and goes on once the client is gone.
#[test]
fn migrate_refuses_to_complete_the_active_migration_while_an_old_version_client_runs() {
    let (db, mut c) = two_versions();
    let stop = Arc::new(AtomicBool::new(false));
    let (pid, old) = old_client(&db, stop.clone());
    let on_event = |_: &tandem_pg::Event| {};
    let err = engine(&mut c, sampling(2000))
        .migrate(&directory(), true, &on_event)
        .expect_err("migrate must refuse while the old version runs");
    let text = err.to_string();
    assert!(matches!(err, Error::OldVersionInUse { .. }), "{text}");
    assert!(
        text.contains(&format!("pid {pid}"))
            && text.contains("old-app")
            && text.contains("public_01_nick"),
        "{text}"
    );
    // Nothing moved: 02 is still active and 03 was not started.
    let status = engine(&mut c, EvidenceOptions::default()).status().unwrap();
    assert_eq!(status.active.as_ref().unwrap().name, "02_drop_legacy");
    assert_eq!(
        status.active.as_ref().unwrap().status,
        tandem_pg::MigrationStatus::Active
    );
    assert_eq!(status.history.len(), 2);

    stop.store(true, Ordering::Relaxed);
    old.join().unwrap();
    // (With 03 after it, migrate would keep public_01_nick for the running application until
    // 03 completes, and that view still reads the column 02 drops; so 02 goes last here.)
    let report = engine(&mut c, sampling(500))
        .migrate(&directory()[..2], true, &on_event)
        .expect("migrate proceeds once the old version is gone");
    assert!(report.started.is_empty());
    assert_eq!(report.completed, vec!["02_drop_legacy"]);
    let history = engine(&mut c, EvidenceOptions::default())
        .status()
        .unwrap()
        .history;
    assert!(history
        .iter()
        .all(|h| h.status == tandem_pg::MigrationStatus::Complete && h.forced_complete.is_none()));
}

/// `migrate --force` completes despite the evidence and records it on the migration it
/// overrode; `--min-age` refuses a young active migration as `complete` does.
#[test]
fn migrate_takes_force_and_min_age_as_complete_does() {
    let (db, mut c) = two_versions();
    let on_event = |_: &tandem_pg::Event| {};
    let young = EvidenceOptions {
        min_age: Duration::from_secs(24 * 3600),
        ..EvidenceOptions::default()
    };
    let err = engine(&mut c, young)
        .migrate(&directory(), true, &on_event)
        .unwrap_err();
    assert!(matches!(err, Error::OldVersionInUse { .. }), "{err}");
    assert!(err.to_string().contains("--min-age"), "{err}");

    let stop = Arc::new(AtomicBool::new(false));
    let (pid, old) = old_client(&db, stop.clone());
    let report = engine(
        &mut c,
        EvidenceOptions {
            force: true,
            ..sampling(2000)
        },
    )
    .migrate(&directory()[..2], true, &on_event)
    .expect("--force completes");
    assert_eq!(report.completed, vec!["02_drop_legacy"]);
    stop.store(true, Ordering::Relaxed);
    // The old version's views are gone, so its loop stops with an error; that is the point.
    let _ = old.join();
    let history = engine(&mut c, EvidenceOptions::default())
        .status()
        .unwrap()
        .history;
    let forced = history
        .iter()
        .find(|h| h.name == "02_drop_legacy")
        .and_then(|h| h.forced_complete.clone())
        .expect("the forced complete is recorded");
    assert!(
        forced.to_string().contains(&format!("pid {pid}")),
        "{forced}"
    );
}

/// The version schema migrate keeps for the application that ran when it began is not held
/// against the migrations migrate starts and completes on its way (those completes leave it in
/// place); the complete that drops it weighs it like `complete` does.
#[test]
fn migrate_weighs_the_kept_version_schema_only_when_it_would_drop_it() {
    let db = TestDb::new();
    db.execute(
        "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, legacy text);
         INSERT INTO users (name, legacy) SELECT 'u' || g, 'l' || g FROM generate_series(1, 50) g;",
    );
    let mut c = client(&db);
    let on_event = |_: &tandem_pg::Event| {};
    let files = vec![
        directory().remove(0),
        migration(
            "02_a",
            "operations:\n  - add_column: {table: users, column: {name: a, type: int, nullable: true}}\n",
        ),
        migration(
            "03_b",
            "operations:\n  - add_column: {table: users, column: {name: b, type: int, nullable: true}}\n",
        ),
    ];
    engine(&mut c, EvidenceOptions::default())
        .migrate(&files[..1], true, &on_event)
        .expect("01");
    let stop = Arc::new(AtomicBool::new(false));
    let (pid, old) = old_client(&db, stop.clone());
    let report = engine(&mut c, sampling(1000))
        .migrate(&files, false, &on_event)
        .expect("02_a completes on the way: public_01_nick is kept");
    assert_eq!(report.completed, vec!["02_a"]);
    assert_eq!(report.active.as_deref(), Some("03_b"));
    let err = engine(&mut c, sampling(1000))
        .migrate(&files, true, &on_event)
        .expect_err("completing 03_b drops public_01_nick, which the old client uses");
    assert!(err.to_string().contains(&format!("pid {pid}")), "{err}");
    stop.store(true, Ordering::Relaxed);
    old.join().unwrap();
}
