//! The engine's guarantees beyond single operations: validation before any DDL, the runner
//! lock, lock timeouts retried while the application keeps its place in the queue, migrate's
//! version-schema keeping, state upgrades, and the compatibility corpora.

mod common;

use common::{count, exec, migration, Env};
use std::time::Duration;
use tandem_model::Migration;
use tandem_pg::{ConnectOptions, Engine, EngineOptions, Error, Event, LockTimeout};

const USERS: &str = "operations:\n  - create_table: {name: users, columns: [{name: id, type: serial, pk: true}, {name: name, type: text}]}\n";

fn with_users() -> Env {
    let mut env = Env::new();
    env.apply("01_users", USERS);
    exec(
        &mut env.db.connect(),
        "INSERT INTO users (name) SELECT 'u' || g FROM generate_series(1, 100) g",
    );
    env
}

fn start_err(env: &mut Env, name: &str, yaml: &str) -> String {
    let before = env.db.dump_schema();
    let err = env
        .start(&migration(name, yaml))
        .expect_err("start must fail")
        .to_string();
    assert_eq!(
        before,
        env.db.dump_schema(),
        "a refused start changes nothing"
    );
    assert!(env.status().active.is_none());
    err
}

#[test]
fn validation_happens_before_any_ddl() {
    let mut env = with_users();
    let e = start_err(&mut env, "02_bad_type", "operations:\n  - add_column: {table: users, column: {name: x, type: no_such_type, nullable: true}}\n");
    assert_eq!(e, "02_bad_type.yaml: operations[0].add_column.column.type: type \"no_such_type\" does not exist in the database");
    let e = start_err(
        &mut env,
        "02_not_null",
        "operations:\n  - add_column: {table: users, column: {name: x, type: int}}\n",
    );
    assert!(
        e.starts_with(
            "02_not_null.yaml: operations[0].add_column.column.nullable: table \"users\" has rows"
        ),
        "{e}"
    );
    let e = start_err(
        &mut env,
        "02_missing",
        "operations:\n  - rename_column: {table: users, from: nope, to: x}\n",
    );
    assert!(
        e.contains("operations[0].rename_column.from: column \"nope\" does not exist"),
        "{e}"
    );
    let e = start_err(&mut env, "02_default", "operations:\n  - add_column: {table: users, column: {name: x, type: int, default: 'not a number'}}\n");
    assert!(
        e.contains("operations[0].add_column.column.default: PostgreSQL rejects this default"),
        "{e}"
    );
    // The second operation is refused, so the first must not have run either.
    let e = start_err(
        &mut env,
        "02_later",
        "operations:\n  - add_column: {table: users, column: {name: a, type: int, nullable: true}}\n  - alter_column: {table: users, column: name, type: varchar(10), up: name, down: name}\n",
    );
    assert!(
        e.contains("operations[1].alter_column: this operation changes a column"),
        "{e}"
    );
    // On an empty table a NOT NULL column without a value is fine.
    exec(&mut env.db.connect(), "DELETE FROM users");
    env.apply(
        "02_ok",
        "operations:\n  - add_column: {table: users, column: {name: x, type: int}}\n",
    );
}

#[test]
fn one_active_migration_and_no_reapplying() {
    let mut env = with_users();
    let m = migration("02_a", "operations:\n  - add_column: {table: users, column: {name: a, type: int, nullable: true}}\n");
    env.start(&m).unwrap();
    let e = env
        .start(&migration(
            "03_b",
            USERS.replace("users", "others").as_str(),
        ))
        .unwrap_err();
    assert!(
        matches!(e, Error::ActiveMigration { ref name, .. } if name == "02_a"),
        "{e}"
    );
    env.complete();
    assert!(matches!(
        env.start(&m).unwrap_err(),
        Error::AlreadyApplied { .. }
    ));
    assert!(matches!(
        env.engine()
            .complete(&tandem_pg::events::ignore)
            .unwrap_err(),
        Error::NoActiveMigration { .. }
    ));
}

#[test]
fn a_second_runner_is_refused_at_once() {
    let mut env = with_users();
    let mut other = tandem_pg::connect(&ConnectOptions {
        url: Some(env.db.url()),
        ..ConnectOptions::default()
    })
    .unwrap();
    tandem_pg::locks::RunnerLock::acquire(&mut other, "tandem", "public").unwrap();
    let t = std::time::Instant::now();
    let e = env.start(&migration("02_a", "operations:\n  - add_column: {table: users, column: {name: a, type: int, nullable: true}}\n")).unwrap_err();
    assert!(matches!(e, Error::Locked { .. }), "{e}");
    assert!(e
        .to_string()
        .contains("another tandem run holds the migration lock"));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "refused without waiting"
    );
    // Releasing explicitly: a closed connection's backend releases its locks asynchronously.
    other
        .execute("SELECT pg_advisory_unlock_all()", &[])
        .unwrap();
    env.start(&migration("02_a", "operations:\n  - add_column: {table: users, column: {name: a, type: int, nullable: true}}\n")).unwrap();
}

#[test]
fn lock_timeouts_are_retried_and_never_queue_the_application_for_long() {
    let env = with_users();
    // A long transaction that has read the table holds ACCESS SHARE on it.
    let mut holder = env.db.connect();
    let url = env.db.url();
    let (ready, has_lock) = std::sync::mpsc::channel();
    let releaser = std::thread::spawn(move || {
        holder
            .batch_execute("BEGIN; SELECT count(*) FROM users")
            .unwrap();
        ready.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(2500));
        holder.batch_execute("COMMIT").unwrap();
    });
    has_lock.recv().unwrap();
    // Meanwhile another client keeps reading; it must never wait much longer than the timeout.
    let reader = std::thread::spawn(move || {
        let mut c: postgres::Client = url
            .parse::<postgres::Config>()
            .unwrap()
            .connect(postgres::NoTls)
            .unwrap();
        let mut worst = Duration::ZERO;
        let end = std::time::Instant::now() + Duration::from_millis(3500);
        while std::time::Instant::now() < end {
            let t = std::time::Instant::now();
            c.query("SELECT count(*) FROM users", &[]).unwrap();
            worst = worst.max(t.elapsed());
            std::thread::sleep(Duration::from_millis(20));
        }
        worst
    });
    let mut client = tandem_pg::connect(&ConnectOptions {
        url: Some(env.db.url()),
        lock_timeout: LockTimeout(Duration::from_millis(200)),
        ..ConnectOptions::default()
    })
    .unwrap();
    let events = std::sync::Mutex::new(Vec::new());
    let on_event = |e: &Event| events.lock().unwrap().push(e.clone());
    let mut engine = Engine::new(&mut client, EngineOptions::default());
    engine
        .start(&migration("02_add", "operations:\n  - add_column: {table: users, column: {name: n, type: int, default: '7'}}\n"), &on_event)
        .unwrap();
    releaser.join().unwrap();
    let worst = reader.join().unwrap();
    let retries: Vec<Event> = events
        .into_inner()
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e, Event::LockRetry { .. }))
        .collect();
    assert!(
        !retries.is_empty(),
        "start had to wait for the long transaction"
    );
    match &retries[0] {
        Event::LockRetry { holders, lock, .. } => {
            assert!(holders.contains("AccessShareLock"), "{holders}");
            assert_eq!(
                lock.as_ref().unwrap().mode,
                tandem_plan::LockMode::AccessExclusive
            );
        }
        _ => unreachable!(),
    }
    assert!(
        worst < Duration::from_millis(1500),
        "a reader waited {worst:?} behind tandem"
    );
    assert_eq!(
        count(
            &mut env.db.connect(),
            "SELECT count(*) FROM public.users WHERE n = 7"
        ),
        100
    );
}

#[test]
fn migrate_keeps_the_running_versions_schema_until_the_end() {
    let mut env = with_users();
    let files: Vec<Migration> = vec![
        migration("01_users", USERS),
        migration("02_a", "operations:\n  - add_column: {table: users, column: {name: a, type: int, nullable: true}}\n"),
        migration("03_b", "operations:\n  - rename_column: {table: users, from: name, to: full_name}\n"),
    ];
    let report = env
        .engine()
        .migrate(&files, false, &tandem_pg::events::ignore)
        .unwrap();
    assert_eq!(report.started, vec!["02_a", "03_b"]);
    assert_eq!(report.completed, vec!["02_a"]);
    assert_eq!(report.active.as_deref(), Some("03_b"));
    // The version the application ran when migrate began still works.
    let mut old = env.version("public_01_users");
    assert_eq!(
        count(
            &mut old,
            "SELECT count(*) FROM users WHERE name IS NOT NULL"
        ),
        100
    );
    let mut new = env.version("public_03_b");
    assert_eq!(
        count(
            &mut new,
            "SELECT count(*) FROM users WHERE full_name IS NOT NULL"
        ),
        100
    );
    env.complete();
    assert_eq!(env.status().version_schemas, vec!["public_03_b"]);
    // A directory whose history differs from the database's is refused.
    let other = vec![migration("01_other", USERS)];
    assert!(env
        .engine()
        .migrate(&other, true, &tandem_pg::events::ignore)
        .unwrap_err()
        .to_string()
        .contains("does not match"));
}

#[test]
fn long_names_get_a_deterministic_short_version_schema() {
    let mut env = Env::new();
    let name = format!("01_{}", "a_very_long_migration_name_".repeat(3));
    env.apply(&name, USERS);
    let vs = env.status().latest.unwrap().version_schema;
    assert_eq!(vs.len(), 63);
    assert_eq!(vs, tandem_model::shorten_name(&format!("public_{name}")));
    assert_eq!(
        count(&mut env.version(&vs), "SELECT count(*) FROM users"),
        0
    );
}

#[test]
fn init_is_idempotent_and_refuses_newer_state() {
    let mut env = Env::new();
    assert_eq!(
        env.engine().init().unwrap(),
        tandem_pg::state::STATE_VERSION
    );
    assert_eq!(
        env.engine().init().unwrap(),
        tandem_pg::state::STATE_VERSION
    );
    exec(
        &mut env.db.connect(),
        "UPDATE tandem.meta SET value = '99' WHERE key = 'state_version'",
    );
    assert!(matches!(
        env.engine().init().unwrap_err(),
        Error::StateTooNew { found: 99, .. }
    ));
    assert!(matches!(
        env.engine().status().unwrap_err(),
        Error::StateTooNew { .. }
    ));
}

#[test]
fn status_before_init_says_what_to_do() {
    let db = tandem_testkit::TestDb::new();
    let mut client = tandem_pg::connect(&ConnectOptions {
        url: Some(db.url()),
        ..ConnectOptions::default()
    })
    .unwrap();
    let status = Engine::new(&mut client, EngineOptions::default())
        .status()
        .unwrap();
    assert!(!status.initialized);
    assert!(status.advice.unwrap().contains("tandem init"));
}

fn dir_files(dir: &std::path::Path) -> Vec<Migration> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.retain(|p| tandem_model::migration::Format::from_path(p).is_some());
    paths.sort();
    paths
        .iter()
        .map(|p| Migration::load(p).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

#[test]
fn the_projects_examples_apply_in_order() {
    let files = dir_files(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples"));
    assert!(files.len() >= 4);
    let mut env = Env::new();
    let report = env
        .engine()
        .migrate(&files, true, &tandem_pg::events::ignore)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.completed.len(), files.len());
    let mut c = env.db.connect();
    exec(
        &mut c,
        "INSERT INTO writers (display_name, email, slug) VALUES ('Ada', 'ada@x', 'ada')",
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM writers WHERE active"),
        1
    );
}

/// pgroll's example migrations, applied in order on a fresh database. The operations that
/// belong to the column-change engine are refused (before touching the database) until it
/// lands; this list names them, and the test fails if it is wrong in either direction.
const NOT_YET: &[&str] = &[
    "15_set_column_unique",
    "16_set_nullable",
    "18_change_column_type",
    "21_add_foreign_key_constraint",
    "22_add_check_constraint",
    "23_drop_check_constraint",
    "24_drop_foreign_key_constraint",
    "27_drop_unique_constraint",
    "31_unset_not_null",
    "35_alter_column_multiple",
    "36_set_comment_to_null",
    "44_add_table_unique_constraint",
    "45_add_table_check_constraint",
    "46_alter_column_drop_default",
    "47_add_table_foreign_key_constraint",
    "48_drop_tickets_check",
    "49_unset_not_null_on_indexed_column",
    "55_add_primary_key_constraint_to_table",
];

#[test]
fn pgroll_examples_apply_in_order() {
    let Some(paths) = tandem_testkit::pgroll_examples() else {
        return;
    };
    let files: Vec<Migration> = paths
        .iter()
        .map(|p| Migration::load(p).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(files.len(), 56);
    let mut env = Env::new();
    let mut refused = Vec::new();
    for m in &files {
        match env.start(m) {
            Ok(_) => env.complete(),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("does not carry it out yet") || msg.contains("does not exist"),
                    "{}: unexpected failure: {msg}",
                    m.name
                );
                assert!(
                    env.status().active.is_none(),
                    "{}: a refused start must leave nothing",
                    m.name
                );
                refused.push(m.name.clone());
            }
        }
    }
    assert_eq!(
        refused, NOT_YET,
        "the set of examples tandem cannot apply yet changed"
    );
}
