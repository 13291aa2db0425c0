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
        "operations:\n  - add_column: {table: users, column: {name: a, type: int, nullable: true}}\n  - alter_column: {table: users, column: id, type: bigint, up: id, down: id}\n",
    );
    assert!(
        e.contains("operations[1].alter_column: column \"id\" is part of the primary key"),
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
    let (release, released) = std::sync::mpsc::channel::<()>();
    let releaser = std::thread::spawn(move || {
        holder
            .batch_execute("BEGIN; SELECT count(*) FROM users")
            .unwrap();
        ready.send(()).unwrap();
        // Held until start has stepped back from the lock queue three times.
        let _ = released.recv_timeout(Duration::from_secs(60));
        holder.batch_execute("COMMIT").unwrap();
    });
    has_lock.recv().unwrap();
    // Meanwhile another client keeps reading until start is done; it must never wait much
    // longer than the timeout.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reading = std::sync::Arc::clone(&done);
    let reader = std::thread::spawn(move || {
        let mut c: postgres::Client = url
            .parse::<postgres::Config>()
            .unwrap()
            .connect(postgres::NoTls)
            .unwrap();
        let mut worst = Duration::ZERO;
        while !reading.load(std::sync::atomic::Ordering::Relaxed) {
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
    let release = std::sync::Mutex::new(Some(release));
    let on_event = |e: &Event| {
        let mut events = events.lock().unwrap();
        events.push(e.clone());
        if events
            .iter()
            .filter(|e| matches!(e, Event::LockRetry { .. }))
            .count()
            >= 3
        {
            if let Some(r) = release.lock().unwrap().take() {
                let _ = r.send(());
            }
        }
    };
    let mut engine = Engine::new(&mut client, EngineOptions::default());
    engine
        .start(&migration("02_add", "operations:\n  - add_column: {table: users, column: {name: n, type: int, default: '7'}}\n"), &on_event)
        .unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
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

/// A migration started by a tandem whose state layout (version 4) did not record which steps
/// ran: `init` upgrades the layout under it, and rollback then runs every rollback step, as
/// that tandem would have.
#[test]
fn init_upgrades_state_version_4_under_an_active_migration() {
    let mut env = with_users();
    let before = env.db.dump_schema();
    env.start(&migration(
        "02_note",
        "operations:\n  - add_column: {table: users, column: {name: note, type: text, nullable: true}}\n  - create_index: {name: users_name_idx, table: users, columns: [{column: name}]}\n",
    ))
    .unwrap();
    exec(
        &mut env.db.connect(),
        "ALTER TABLE tandem.migrations DROP COLUMN start_steps, DROP COLUMN complete_steps, DROP COLUMN rollback_steps,
             DROP COLUMN checksum, DROP COLUMN baseline;
         UPDATE tandem.meta SET value = '4' WHERE key = 'state_version'",
    );
    assert!(env
        .engine()
        .status()
        .unwrap_err()
        .to_string()
        .contains("tandem init"));
    assert_eq!(
        env.engine().init().unwrap(),
        tandem_pg::state::STATE_VERSION
    );
    let active = env.status().active.unwrap();
    assert_eq!(active.start_steps, None);
    // No checksum was recorded then: the stored content stands for it.
    assert_eq!(active.stored_checksum, None);
    assert_eq!(active.checksum().len(), 64);
    assert!(active.rollback_steps.is_empty());
    env.rollback();
    assert_eq!(env.db.dump_schema(), before);
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

#[test]
fn the_projects_examples_apply_in_order() {
    let files = tandem_model::testing::load_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples"),
    );
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

/// pgroll's example migrations, applied in order on a fresh database: each one starts, rolls
/// back to exactly the schema it started from, starts again and completes.
#[test]
fn pgroll_examples_apply_in_order() {
    let Some(files) = tandem_model::testing::pgroll_examples() else {
        eprintln!("skipping: pgroll's examples are not present beside the workspace");
        return;
    };
    let mut env = Env::new();
    let mut traces = Vec::new();
    let mut cycled = 0;
    for m in &files {
        // A `sql` operation without `down` cannot be undone: those files only start and complete.
        let reversible = !m.operations.iter().any(|op| {
            matches!(op, tandem_model::Operation::Sql(s) if s.down.trim().is_empty() && !s.on_complete)
        });
        if !reversible {
            env.start(m)
                .unwrap_or_else(|e| panic!("{}: start: {e}", m.name));
            env.complete();
            continue;
        }
        cycled += 1;
        let before = env.db.dump_schema();
        env.start(m)
            .unwrap_or_else(|e| panic!("{}: start: {e}", m.name));
        env.engine()
            .rollback(&tandem_pg::events::ignore)
            .unwrap_or_else(|e| panic!("{}: rollback: {e}", m.name));
        if before != env.db.dump_schema() {
            traces.push(m.name.clone());
        }
        env.start(m)
            .unwrap_or_else(|e| panic!("{}: second start: {e}", m.name));
        env.complete();
    }
    assert!(traces.is_empty(), "rollback left a trace after {traces:?}");
    assert_eq!(
        cycled, 55,
        "files that went through start → rollback → start → complete"
    );
}

/// A `sql` operation whose `down` assumes its `up` ran: the kind of `down` a failed start must
/// not run unless the `up` did.
const MOOD: &str = "  - sql: {up: \"CREATE TYPE mood AS ENUM ('happy')\", down: DROP TYPE mood}\n";

#[test]
fn a_failed_start_undoes_only_what_ran() {
    let mut env = with_users();
    // The second operation fails in the transaction the first shares: neither ran, so `DROP
    // TYPE mood` must not run either (it would fail, leaving the start half undone).
    let e = start_err(
        &mut env,
        "02_same_tx",
        &format!("operations:\n{MOOD}  - sql: {{up: SELECT 1/0, down: SELECT 1}}\n"),
    );
    assert!(e.contains("division by zero"), "{e}");
    assert!(!e.contains("undoing"), "{e}");
    // The `sql` operation itself fails after a table was created: the table goes, and the
    // failed operation's `down`, which could only fail, does not run.
    let e = start_err(
        &mut env,
        "02_sql_fails",
        "operations:\n  - create_table: {name: other, columns: [{name: id, type: int, pk: true}]}\n  - sql: {up: SELECT 1/0, down: DROP TABLE never_made}\n",
    );
    assert!(e.contains("division by zero"), "{e}");
    assert!(!e.contains("undoing"), "{e}");
    // Here the first operation commits before the second, built CONCURRENTLY, fails: the
    // first's `down` runs, so the type is gone again, and so is the failed build's index.
    exec(
        &mut env.db.connect(),
        "INSERT INTO users (name) VALUES ('u1')",
    );
    let e = start_err(
        &mut env,
        "02_after_commit",
        &format!("operations:\n{MOOD}  - create_index: {{name: users_name_uq, table: users, unique: true, columns: [{{column: name}}]}}\n"),
    );
    assert!(e.contains("could not create unique index"), "{e}");
    assert!(!e.contains("undoing"), "{e}");
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_type WHERE typname = 'mood'"
        ),
        0
    );
    // Nothing is left that a later start would trip over.
    exec(&mut c, "DELETE FROM users WHERE id = 101");
    env.apply(
        "02_after_commit",
        &format!("operations:\n{MOOD}  - create_index: {{name: users_name_uq, table: users, unique: true, columns: [{{column: name}}]}}\n"),
    );
}

/// Version-specific behaviour: views are `security_invoker` from PostgreSQL 15, where the option
/// exists. CI runs this file against 14 to 18; TANDEM_PG_EXPECT_MAJOR makes sure the server is
/// the one asked for.
#[test]
fn version_schema_views_follow_the_server_version() {
    let major = tandem_testkit::cluster().major_version();
    if let Some(expected) = std::env::var_os("TANDEM_PG_EXPECT_MAJOR") {
        assert_eq!(
            expected.to_string_lossy(),
            major.to_string(),
            "TANDEM_PG_EXPECT_MAJOR"
        );
    }
    let mut env = with_users();
    let server_num: String = env
        .db
        .connect()
        .query_one("SHOW server_version_num", &[])
        .unwrap()
        .get(0);
    assert_eq!(server_num.parse::<u32>().unwrap() / 10_000, major);
    env.start(&migration(
        "02_a",
        "operations:\n  - add_column: {table: users, column: {name: a, type: int, nullable: true}}\n",
    ))
    .unwrap();
    let options: Option<Vec<String>> = env
        .db
        .connect()
        .query_one(
            "SELECT reloptions FROM pg_class WHERE oid = '\"public_02_a\".users'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    let invoker = options
        .unwrap_or_default()
        .contains(&"security_invoker=true".to_string());
    assert_eq!(invoker, major >= 15, "reloptions on PostgreSQL {major}");
    let mut new = env.version("public_02_a");
    exec(&mut new, "INSERT INTO users (name, a) VALUES ('n', 1)");
    assert_eq!(count(&mut new, "SELECT count(*) FROM users WHERE a = 1"), 1);
}

/// Version-specific behaviour: a unique constraint with `nulls_not_distinct` needs PostgreSQL 15.
/// Before it, start refuses before any DDL, naming the field; from it, two NULLs collide.
#[test]
fn nulls_not_distinct_follows_the_server_version() {
    let major = tandem_testkit::cluster().major_version();
    let mut env = with_users();
    let yaml = "operations:
  - create_table:
      name: badges
      columns: [{name: id, type: int, pk: true}, {name: code, type: text, nullable: true}]
      constraints: [{name: badges_code_uq, type: unique, columns: [code], nulls_not_distinct: true}]
";
    if major < 15 {
        let e = start_err(&mut env, "02_badges", yaml);
        assert_eq!(
            e,
            "02_badges.yaml: operations[0].create_table.constraints[0].nulls_not_distinct: NULLS NOT DISTINCT needs PostgreSQL 15 or later, and the server is older; remove it or upgrade the server"
        );
        return;
    }
    env.apply("02_badges", yaml);
    let mut c = env.db.connect();
    exec(&mut c, "INSERT INTO badges VALUES (1, NULL)");
    let e = c
        .batch_execute("INSERT INTO badges VALUES (2, NULL)")
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some(&postgres::error::SqlState::UNIQUE_VIOLATION),
        "{e}"
    );
}

#[test]
fn migrate_stopped_in_a_complete_says_how_to_go_on_from_where_it_stopped() {
    let mut env = with_users();
    // 03's onComplete SQL fails until the `gate` table exists.
    let files: Vec<Migration> = vec![
        migration("01_users", USERS),
        migration("02_a", "operations:\n  - add_column: {table: users, column: {name: a, type: int, nullable: true}}\n"),
        migration("03_gate", "operations:\n  - drop_column: {table: users, column: a}\n  - sql: {up: INSERT INTO gate VALUES (1), onComplete: true}\n"),
        migration("04_b", "operations:\n  - add_column: {table: users, column: {name: b, type: int, nullable: true}}\n"),
    ];
    let e = env
        .engine()
        .migrate(&files, true, &tandem_pg::events::ignore)
        .unwrap_err();
    assert!(
        matches!(&e, Error::MigrateStopped { name, .. } if name == "03_gate"),
        "{e}"
    );
    let e = e.to_string();
    assert!(e.starts_with("completing \"03_gate\" failed: "), "{e}");
    assert!(e.contains("relation \"gate\" does not exist"), "{e}");
    assert!(
        e.contains("03_gate is still active and nothing was dropped: fix the cause and run `tandem migrate` again, or `tandem rollback`"),
        "{e}"
    );
    // The complete failed in its only transaction, so nothing was dropped and the advice
    // matches the state: 03 is still active, and could be rolled back.
    let status = env.status();
    let active = status.active.expect("03_gate is not finished");
    assert_eq!(
        (active.name.as_str(), active.status.as_str()),
        ("03_gate", "active")
    );
    // Once the cause is fixed, complete and migrate finish the work.
    exec(&mut env.db.connect(), "CREATE TABLE gate (v int)");
    env.complete();
    let report = env
        .engine()
        .migrate(&files, true, &tandem_pg::events::ignore)
        .unwrap();
    assert_eq!(report.completed, vec!["04_b"]);
    assert_eq!(count(&mut env.db.connect(), "SELECT count(*) FROM gate"), 1);
    assert!(env.status().active.is_none());
}

#[test]
fn migrate_stopped_by_the_kept_version_schema_says_why_and_what_next() {
    let mut env = with_users();
    // public_01_users, the running version's schema, is kept while migrate runs, and its view
    // reads `name`, which 02 drops at complete.
    let files: Vec<Migration> = vec![
        migration("01_users", USERS),
        migration("02_drop", "operations:\n  - drop_column: {table: users, column: name, down: \"'?'\"}\n"),
        migration("03_b", "operations:\n  - add_column: {table: users, column: {name: b, type: int, nullable: true}}\n"),
    ];
    let e = env
        .engine()
        .migrate(&files, true, &tandem_pg::events::ignore)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("The version schema \"public_01_users\" is kept for the application version that was running when migrate began, and it still uses what 02_drop removes. 02_drop is still active and nothing was dropped"),
        "{e}"
    );
    assert_eq!(
        env.status().active.unwrap().status,
        tandem_pg::MigrationStatus::Active
    );
    env.complete();
    assert_eq!(env.status().version_schemas, vec!["public_02_drop"]);
    let report = env
        .engine()
        .migrate(&files, true, &tandem_pg::events::ignore)
        .unwrap();
    assert_eq!(report.completed, vec!["03_b"]);
}

/// The steps that run long by design and block neither reads nor writes (`CREATE INDEX
/// CONCURRENTLY`, `VALIDATE CONSTRAINT`) run under tandem's own statement timeout, not the
/// database's 200 ms, which would cancel them: here each row costs 100 ms in the index's
/// predicate and in the check. Everything else keeps the session's timeout, which is put back
/// after each; and a long statement timeout that is set does cancel them.
#[test]
fn long_steps_run_under_their_own_statement_timeout_and_put_the_sessions_back() {
    let mut env = Env::new();
    let db = env.database();
    exec(
        &mut env.client,
        "CREATE FUNCTION public.slow_ok(int) RETURNS bool IMMUTABLE LANGUAGE sql
           AS 'SELECT pg_sleep(0.1) IS NOT NULL';
         CREATE TABLE public.t (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO public.t SELECT g, g FROM generate_series(1, 5) g;",
    );
    // The database's setting needs its owner (the test's role may be neither it nor superuser).
    env.db.execute_as_superuser(&format!(
        "ALTER DATABASE \"{db}\" SET statement_timeout = '200ms'"
    ));
    let yaml = |name: &str| {
        format!(
            "operations:
  - create_index: {{name: {name}_idx, table: t, columns: [v], predicate: 'public.slow_ok(v)'}}
  - alter_column: {{table: t, column: v, check: {{name: {name}_ok, constraint: 'public.slow_ok(v)'}}, up: v, down: v}}
"
        )
    };
    let timeout = |c: &mut postgres::Client| -> String {
        c.query_one("SHOW statement_timeout", &[]).unwrap().get(0)
    };

    // With no timeout of the session's own, a long statement timeout shorter than the steps
    // cancels them: it is the one they run under.
    exec(&mut env.client, "SET statement_timeout = 0");
    env.options.long_statement_timeout = tandem_pg::LongStatementTimeout(Duration::from_millis(50));
    let err = env
        .start(&migration("02_short", &yaml("short")))
        .expect_err("the index build runs longer than 50 ms");
    let text = format!("{err:#}");
    assert!(
        text.contains("statement timeout") && text.contains("short_idx"),
        "{text}"
    );
    // It says which timeout cancelled it and what to do.
    assert!(
        text.contains("--long-statement-timeout (50ms)") && text.contains("raise it"),
        "{text}"
    );
    assert_eq!(timeout(&mut env.client), "0", "put back after a failure");
    exec(&mut env.client, "SET statement_timeout = '200ms'");

    // The default, no limit: both steps run to the end although each takes 0.5 s or more.
    env.options.long_statement_timeout = tandem_pg::LongStatementTimeout::default();
    env.start(&migration("02_long", &yaml("long")))
        .unwrap_or_else(|e| panic!("start: {e:#}"));
    assert_eq!(timeout(&mut env.client), "200ms", "put back after success");
    env.complete();
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid
              WHERE x.relname = 'long_idx' AND i.indisvalid"
        ),
        1
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_constraint WHERE conname = 'long_ok' AND convalidated"
        ),
        1
    );
    // The database's timeout applies to the rest: a plain statement of 0.3 s is cancelled.
    let err = c.batch_execute("SELECT pg_sleep(0.3)").unwrap_err();
    assert_eq!(
        err.code(),
        Some(&postgres::error::SqlState::QUERY_CANCELED),
        "{err:?}"
    );
}
