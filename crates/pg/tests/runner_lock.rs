//! Two runners at once. Mutating commands hold a session advisory lock per schema for their
//! whole run, backfill included: of two `start`s at once exactly one proceeds and the other is
//! refused at once with `Error::Locked`; `complete` and `rollback` during a running backfill
//! are refused the same way and change nothing, and work once the start has finished.

mod common;

use common::{count, exec, migration, Env};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};
use tandem_pg::backfill::BackfillOptions;
use tandem_pg::{ConnectOptions, Engine, EngineOptions, Error, Event};

/// A backfill of 60 batches with a pause after each: several seconds of running start.
fn slow() -> EngineOptions {
    EngineOptions {
        backfill: BackfillOptions {
            batch_size: Some(100),
            delay: Duration::from_millis(50),
            ..BackfillOptions::default()
        },
        ..EngineOptions::default()
    }
}

fn setup() -> Env {
    let mut env = Env::new();
    env.apply(
        "01_acc",
        "operations:\n  - create_table: {name: acc, columns: [{name: id, type: serial, pk: true}, {name: v, type: int}]}\n",
    );
    exec(
        &mut env.db.connect(),
        "INSERT INTO acc (v) SELECT g FROM generate_series(1, 6000) g",
    );
    env
}

fn add(name: &str, column: &str) -> tandem_model::Migration {
    migration(
        name,
        &format!(
            "operations:\n  - add_column: {{table: acc, column: {{name: {column}, type: int, nullable: true}}, up: v * 2}}\n"
        ),
    )
}

fn session(env: &Env) -> postgres::Client {
    tandem_pg::connect(&ConnectOptions {
        url: Some(env.db.url()),
        ..ConnectOptions::default()
    })
    .unwrap()
}

fn refused(result: Result<impl std::fmt::Debug, Error>, what: &str) {
    match result {
        Err(e @ Error::Locked { .. }) => assert!(
            e.to_string()
                .contains("another tandem run holds the migration lock for schema \"public\""),
            "{what}: {e}"
        ),
        other => panic!("{what} must be refused with the runner-lock error, got {other:?}"),
    }
}

#[test]
fn of_two_starts_at_once_exactly_one_proceeds() {
    let env = setup();
    let barrier = Arc::new(Barrier::new(2));
    let runs: Vec<_> = [("02_a", "a"), ("02_b", "b")]
        .into_iter()
        .map(|(name, column)| {
            let mut client = session(&env);
            let barrier = Arc::clone(&barrier);
            let m = add(name, column);
            std::thread::spawn(move || {
                barrier.wait();
                let t = Instant::now();
                let result = Engine::new(&mut client, slow())
                    .start(&m, &tandem_pg::events::ignore)
                    .map(|r| r.name);
                (result, t.elapsed())
            })
        })
        .collect();
    let results: Vec<_> = runs.into_iter().map(|r| r.join().unwrap()).collect();
    let winners: Vec<&String> = results
        .iter()
        .filter_map(|(r, _)| r.as_ref().ok())
        .collect();
    assert_eq!(winners.len(), 1, "exactly one start proceeds: {results:?}");
    let (loser, waited) = results.iter().find(|(r, _)| r.is_err()).unwrap();
    assert!(
        *waited < Duration::from_secs(2),
        "the other is refused at once, not after waiting ({waited:?})"
    );
    let loser = match loser {
        Err(e) => e,
        Ok(_) => unreachable!(),
    };
    assert!(matches!(loser, Error::Locked { .. }), "{loser}");
    let mut env = env;
    let status = env.status();
    assert_eq!(status.active.as_ref().map(|a| &a.name), Some(winners[0]));
    assert_eq!(
        status.active.unwrap().status,
        tandem_pg::MigrationStatus::Active
    );
    // Only the winner's column exists.
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.acc'::regclass AND attnum > 0 AND NOT attisdropped"
        ),
        3
    );
}

#[test]
fn complete_and_rollback_during_a_running_backfill_are_refused_clearly() {
    let mut env = setup();
    let before = env.db.dump_schema();
    let m = add("02_twice", "twice");
    let (tx, backfilling) = mpsc::channel::<()>();
    let mut client = session(&env);
    let runner = std::thread::spawn(move || {
        let tx = Mutex::new(tx);
        let on_event = |e: &Event| {
            if matches!(e, Event::Backfill { done: false, .. }) {
                let _ = tx.lock().unwrap().send(());
            }
        };
        let t = Instant::now();
        let result = Engine::new(&mut client, slow()).start(&m, &on_event);
        (result.map(|r| r.backfilled_rows), t.elapsed())
    });
    backfilling
        .recv_timeout(Duration::from_secs(60))
        .expect("the backfill reports its first batch");
    let during = Instant::now();
    refused(
        env.engine().complete(&tandem_pg::events::ignore),
        "complete",
    );
    refused(
        env.engine().rollback(&tandem_pg::events::ignore),
        "rollback",
    );
    // A second start of the same file, which would resume an interrupted backfill, too.
    refused(env.start(&add("02_twice", "twice")), "start");
    // status only reads, and says what is going on.
    let status = env.status();
    let active = status.active.expect("an active migration");
    assert_eq!(active.name, "02_twice");
    assert_eq!(active.status, tandem_pg::MigrationStatus::Backfilling);
    assert!(!status.backfills.is_empty());
    let refusals_took = during.elapsed();
    let (result, ran_for) = runner.join().unwrap();
    assert_eq!(result.unwrap(), 6000, "the backfill went on undisturbed");
    assert!(
        refusals_took < ran_for,
        "the refusals came while the start was running ({refusals_took:?} of {ran_for:?})"
    );
    let mut c = env.db.connect();
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM acc WHERE twice = v * 2"),
        6000
    );
    // Once the runner is done, the same commands work.
    env.rollback();
    assert_eq!(before, env.db.dump_schema());
    env.start(&add("02_twice", "twice")).unwrap();
    env.complete();
    assert_eq!(
        count(
            &mut env.db.connect(),
            "SELECT count(*) FROM acc WHERE twice = v * 2"
        ),
        6000
    );
}
