//! A backfill that yields: it pauses while a real streaming standby (started by the test kit)
//! lags because its replay is paused, while a replication slot retains more WAL than allowed,
//! and while its own batch cannot get a row lock; it slows down after batches far slower than
//! the target. Each test records what the state said while the backfill was paused, lifts the
//! condition from the event callback, and checks that the backfill then finished with every row
//! filled. A role without pg_monitor is told that lag cannot be seen.

mod common;

use common::{count, exec, migration};
use std::sync::{mpsc, Mutex};
use std::time::Duration;
use tandem_model::Migration;
use tandem_pg::backfill::BackfillOptions;
use tandem_pg::throttle::{Hold, YieldAction};
use tandem_pg::{ConnectOptions, Engine, EngineOptions, Event};
use tandem_testkit::{Replicated, TestDb};

const TABLE: &str = "CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL);
     INSERT INTO items SELECT g, g FROM generate_series(1, 3000) g;";

fn add(name: &str, column: &str, up: &str) -> Migration {
    migration(
        name,
        &format!(
            "operations:
  - add_column:
      table: items
      up: {up:?}
      column: {{name: {column}, type: int, nullable: true}}
"
        ),
    )
}

fn options(backfill: BackfillOptions) -> EngineOptions {
    EngineOptions {
        backfill: BackfillOptions {
            recheck: Duration::from_millis(100),
            ..backfill
        },
        ..EngineOptions::default()
    }
}

/// The yields the events report, in order: what happened and to which cause. Slowing down
/// after a slow batch depends on how busy the machine is, so it is left out.
fn yields(events: &[Event]) -> Vec<(YieldAction, &'static str)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::BackfillYield { action, hold, .. } if hold.cause() != "slow_batch" => {
                Some((*action, hold.cause()))
            }
            _ => None,
        })
        .collect()
}

/// Whether the events report the backfill slowing down after a slow batch.
fn throttled(events: &[Event]) -> bool {
    events.iter().any(|e| {
        matches!(
            e,
            Event::BackfillYield {
                action: YieldAction::Throttled,
                hold: Hold::SlowBatch { .. },
                ..
            }
        )
    })
}

/// The yield columns of the first backfill's checkpoint, read from another session.
fn recorded(c: &mut postgres::Client) -> (Option<String>, Option<String>, Option<String>, i64) {
    let r = c
        .query_one(
            "SELECT yield_state, yield_cause, yield_reason, rows_done FROM tandem.backfills
              WHERE migration = (SELECT name FROM tandem.migrations WHERE status <> 'complete')
              ORDER BY position LIMIT 1",
            &[],
        )
        .expect("reading the checkpoint");
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

/// Runs `start` on another thread and fails the test, rather than hanging it, should the
/// backfill never finish.
fn start_watched(
    mut client: postgres::Client,
    m: Migration,
    opts: EngineOptions,
    on_event: impl Fn(&Event) + Sync + Send + 'static,
) -> (postgres::Client, Vec<Event>) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let events = Mutex::new(Vec::new());
        let record = |e: &Event| {
            events.lock().unwrap().push(e.clone());
            on_event(e);
        };
        let result = Engine::new(&mut client, opts).start(&m, &record);
        let _ = tx.send((result.map(|_| ()), client, events.into_inner().unwrap()));
    });
    let (result, client, events) = rx
        .recv_timeout(Duration::from_secs(300))
        .expect("the backfill finished within five minutes");
    if let Err(e) = result {
        panic!("start: {e}\nevents: {events:#?}");
    }
    (client, events)
}

/// Writes some WAL on the primary and waits until a standby shows replay lag above `secs`
/// with WAL left to replay: replay is paused there, so the lag only grows.
fn wait_for_lag(primary: &mut postgres::Client, secs: f64) {
    exec(
        primary,
        "CREATE TABLE IF NOT EXISTS wal_filler (g int); INSERT INTO wal_filler SELECT generate_series(1, 10000)",
    );
    for _ in 0..600 {
        let lagging: i64 = primary
            .query_one(
                "SELECT count(*) FROM pg_stat_replication
                  WHERE replay_lag > $1::float8 * interval '1 second'
                    AND pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) > 0",
                &[&secs],
            )
            .unwrap()
            .get(0);
        if lagging > 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the standby whose replay is paused never showed lag above {secs} s");
}

#[test]
fn backfill_pauses_while_a_standby_lags_and_finishes_once_replay_resumes() {
    let pair = Replicated::start();
    let mut admin = pair.primary_session("postgres");
    exec(&mut admin, "CREATE ROLE app LOGIN");
    exec(&mut admin, "CREATE DATABASE app OWNER app");
    let app_url = format!(
        "postgres://app@localhost:{}/app?host={}",
        pair.primary.port(),
        pair.primary.socket_dir().display()
    );
    let connect = || {
        tandem_pg::connect(&ConnectOptions {
            url: Some(app_url.clone()),
            ..ConnectOptions::default()
        })
        .expect("connect as app")
    };
    let mut client = connect();
    exec(&mut client, TABLE);
    Engine::new(&mut client, EngineOptions::default())
        .init()
        .expect("init");
    pair.wait_for_replay();
    let mut standby = pair.standby_session("postgres");
    exec(&mut standby, "SELECT pg_wal_replay_pause()");
    wait_for_lag(&mut admin, 1.0);

    let lag = |backfill: BackfillOptions| BackfillOptions {
        max_replication_lag: Duration::from_secs(1),
        batch_size: Some(500),
        ..backfill
    };

    // Without pg_monitor the role cannot see the lag: the backfill says so and goes on.
    let (mut client, events) = start_watched(
        client,
        add("01_double", "doubled", "n * 2"),
        options(lag(BackfillOptions::default())),
        |_| {},
    );
    assert!(
        events.iter().any(|e| matches!(e, Event::Info { message }
            if message.contains("replication lag cannot be seen") && message.contains("GRANT pg_monitor TO app"))),
        "{events:#?}"
    );
    assert!(yields(&events).is_empty(), "{events:#?}");
    Engine::new(&mut client, EngineOptions::default())
        .complete(&tandem_pg::events::ignore)
        .expect("complete 01");

    // With pg_monitor it sees the standby lagging and pauses before its first batch; the
    // callback records what the state says, then resumes replay.
    exec(&mut admin, "GRANT pg_monitor TO app");
    wait_for_lag(&mut admin, 1.0);
    let observer = Mutex::new((pair.primary_session("app"), standby));
    let seen = std::sync::Arc::new(Mutex::new(None));
    let seen_in = seen.clone();
    let (client, events) = start_watched(
        client,
        add("02_triple", "tripled", "n * 3"),
        options(lag(BackfillOptions::default())),
        move |e| {
            if let Event::BackfillYield {
                action: YieldAction::Paused,
                hold: Hold::ReplicationLag { .. },
                ..
            } = e
            {
                let mut o = observer.lock().unwrap();
                let (primary, standby) = &mut *o;
                seen_in.lock().unwrap().get_or_insert(recorded(primary));
                exec(standby, "SELECT pg_wal_replay_resume()");
            }
        },
    );
    let (state, cause, reason, _) = seen.lock().unwrap().clone().expect("the backfill paused");
    assert_eq!(state.as_deref(), Some("paused"));
    assert_eq!(cause.as_deref(), Some("replication_lag"));
    let reason = reason.unwrap();
    assert!(
        reason.contains("--max-replication-lag") && reason.contains("behind"),
        "{reason}"
    );
    let y = yields(&events);
    assert_eq!(
        y.first(),
        Some(&(YieldAction::Paused, "replication_lag")),
        "{y:?}"
    );
    assert!(
        y.contains(&(YieldAction::Resumed, "replication_lag")),
        "{y:?}"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Backfill { done: true, .. })));
    let mut c = pair.primary_session("app");
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM items WHERE tripled IS DISTINCT FROM n * 3"
        ),
        0
    );
    assert_eq!(
        recorded(&mut c),
        (None, None, None, 3000),
        "a finished backfill records no pause"
    );
    drop(client);
}

fn db_with_table() -> (TestDb, postgres::Client) {
    let db = TestDb::new();
    db.execute(TABLE);
    let mut client = tandem_pg::connect(&ConnectOptions {
        url: Some(db.url()),
        ..ConnectOptions::default()
    })
    .expect("connect");
    Engine::new(&mut client, EngineOptions::default())
        .init()
        .expect("init");
    (db, client)
}

#[test]
fn backfill_pauses_while_a_slot_retains_too_much_wal() {
    let (db, client) = db_with_table();
    let slot = format!("{}_slot", db.name);
    let mut admin = db.connect_as_superuser();
    admin
        .execute(
            "SELECT pg_create_physical_replication_slot($1, true)",
            &[&slot],
        )
        .unwrap();
    exec(
        &mut admin,
        "CREATE TABLE filler AS SELECT generate_series(1, 1000) g",
    );
    let observer = Mutex::new(admin);
    let seen = std::sync::Arc::new(Mutex::new(None));
    let seen_in = seen.clone();
    let slot_in = slot.clone();
    let (_client, events) = start_watched(
        client,
        add("01_double", "doubled", "n * 2"),
        options(BackfillOptions {
            max_slot_wal_bytes: Some(1),
            batch_size: Some(500),
            ..BackfillOptions::default()
        }),
        move |e| {
            if let Event::BackfillYield {
                action: YieldAction::Paused,
                hold: Hold::SlotRetainsWal { slot, .. },
                ..
            } = e
            {
                if *slot == slot_in {
                    let mut o = observer.lock().unwrap();
                    seen_in.lock().unwrap().get_or_insert(recorded(&mut o));
                    o.execute("SELECT pg_drop_replication_slot($1)", &[&slot_in])
                        .unwrap();
                }
            }
        },
    );
    let (state, cause, reason, _) = seen.lock().unwrap().clone().expect("the backfill paused");
    assert_eq!(state.as_deref(), Some("paused"));
    assert_eq!(cause.as_deref(), Some("slot_retains_wal"));
    assert!(reason.unwrap().contains(&slot));
    let y = yields(&events);
    assert_eq!(
        y,
        vec![
            (YieldAction::Paused, "slot_retains_wal"),
            (YieldAction::Resumed, "slot_retains_wal")
        ]
    );
    let mut c = db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM items WHERE doubled IS DISTINCT FROM n * 2"
        ),
        0
    );
}

/// A batch that cannot lock a row within lock_timeout pauses the backfill, which records why
/// and who holds the lock, keeps its place, and finishes once the lock is released.
#[test]
fn a_batch_waiting_on_a_row_lock_pauses_the_backfill_and_keeps_its_place() {
    let (db, mut client) = db_with_table();
    // The row lock would block the start's ALTER TABLE: start, stop after one batch, then lock.
    let m = add("01_double", "doubled", "n * 2");
    let stopped = Engine::new(
        &mut client,
        options(BackfillOptions {
            batch_size: Some(100),
            stop_after_batches: Some(1),
            ..BackfillOptions::default()
        }),
    )
    .start(&m, &tandem_pg::events::ignore);
    assert!(
        matches!(stopped, Err(tandem_pg::Error::BackfillInterrupted { .. })),
        "{stopped:?}"
    );
    let (locked_tx, locked_rx) = mpsc::channel::<i32>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let mut blocker = db.connect();
    let holder = std::thread::spawn(move || {
        let mut t = blocker.transaction().unwrap();
        t.batch_execute("SET LOCAL application_name = 'row-holder'")
            .unwrap();
        t.query("SELECT * FROM items WHERE id = 1450 FOR UPDATE", &[])
            .unwrap();
        let pid: i32 = t.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
        locked_tx.send(pid).unwrap();
        // Held until the backfill has paused (or a minute has passed, and the test fails).
        let _ = release_rx.recv_timeout(Duration::from_secs(60));
        t.commit().unwrap();
    });
    let pid = locked_rx.recv().unwrap();
    let observer = Mutex::new((db.connect(), release_tx));
    let seen = std::sync::Arc::new(Mutex::new(None));
    let seen_in = seen.clone();
    let (_client, events) = start_watched(
        client,
        m,
        options(BackfillOptions {
            batch_size: Some(100),
            ..BackfillOptions::default()
        }),
        move |e| {
            if let Event::BackfillYield {
                action: YieldAction::Paused,
                hold: Hold::LockWait { .. },
                ..
            } = e
            {
                let mut o = observer.lock().unwrap();
                seen_in.lock().unwrap().get_or_insert(recorded(&mut o.0));
                let _ = o.1.send(());
            }
        },
    );
    holder.join().unwrap();
    let (state, cause, reason, rows_done) = seen
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_else(|| panic!("the backfill paused: {events:#?}"));
    assert_eq!(state.as_deref(), Some("paused"));
    assert_eq!(cause.as_deref(), Some("lock_wait"));
    let reason = reason.unwrap();
    assert!(
        reason.contains(&format!("pid {pid}")) && reason.contains("row-holder"),
        "{reason}"
    );
    assert_eq!(
        rows_done, 1400,
        "the batches before the locked row are kept"
    );
    let y = yields(&events);
    assert_eq!(
        y.first(),
        Some(&(YieldAction::Paused, "lock_wait")),
        "{y:?}"
    );
    assert!(y.contains(&(YieldAction::Resumed, "lock_wait")), "{y:?}");
    let mut c = db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM items WHERE doubled IS DISTINCT FROM n * 2"
        ),
        0
    );
}

/// Batches far slower than the target throttle a backfill whose batch size adapts to it, which
/// says so and still finishes.
#[test]
fn batches_much_slower_than_the_target_throttle_the_backfill() {
    let (db, client) = db_with_table();
    // Every row costs at least 1 ms, so the first batch (1000 rows, as the adaptive size
    // starts) takes at least a second: far above 4x a target of 5 ms, whatever the machine.
    db.execute(
        "CREATE FUNCTION slow_double(int) RETURNS int LANGUAGE sql AS 'SELECT $1 * 2 FROM pg_sleep(0.001)';
         DELETE FROM items WHERE id > 1500;",
    );
    let (_client, events) = start_watched(
        client,
        add("01_double", "doubled", "slow_double(n)"),
        options(BackfillOptions {
            target: Duration::from_millis(5),
            ..BackfillOptions::default()
        }),
        |_| {},
    );
    assert!(throttled(&events), "{events:#?}");
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::BackfillYield { reason, .. }
        if reason.contains("more than 4x the target of 5 ms"))));
    let mut c = db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM items WHERE doubled IS DISTINCT FROM n * 2"
        ),
        0
    );
}

/// Autovacuum vacuuming the table to prevent wraparound pauses the backfill until that vacuum
/// ends. The table is made to need one (`autovacuum_freeze_max_age` at its minimum, then more
/// transaction ids than that burnt) and the vacuum slow (a high cost delay), on a cluster of the
/// test's own whose autovacuum wakes every second. Autovacuum is otherwise off for the table, so
/// no ordinary vacuum freezes its pages first (the wraparound vacuum would then skip them and
/// be over at once), and `vacuum_freeze_min_age = 0` lets the wraparound vacuum freeze every
/// row, so that the table does not need another one as soon as it ends.
#[test]
fn a_wraparound_vacuum_on_the_table_pauses_the_backfill_until_it_ends() {
    let cluster = tandem_testkit::Cluster::start(tandem_testkit::ClusterOptions {
        settings: vec![
            ("autovacuum_naptime".into(), "1s".into()),
            ("vacuum_freeze_min_age".into(), "0".into()),
        ],
        ..Default::default()
    })
    .expect("a cluster with a quick autovacuum");
    cluster.create_database("app").unwrap();
    let mut admin = cluster.connect("app").unwrap();
    exec(
        &mut admin,
        "CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL)
           WITH (autovacuum_freeze_max_age = 100000, autovacuum_vacuum_cost_delay = 50,
                 autovacuum_vacuum_cost_limit = 1, autovacuum_enabled = false);
         INSERT INTO items SELECT g, g FROM generate_series(1, 20000) g;
         CREATE TABLE burn (i int);",
    );
    let mut client = tandem_pg::connect(&ConnectOptions {
        url: Some(cluster.url("app")),
        ..ConnectOptions::default()
    })
    .expect("connect");
    Engine::new(&mut client, EngineOptions::default())
        .init()
        .expect("init");
    // Start and stop after one batch: the start's ALTER TABLE would wait for the vacuum.
    let m = add("01_double", "doubled", "n * 2");
    let stopped = Engine::new(
        &mut client,
        options(BackfillOptions {
            batch_size: Some(1000),
            stop_after_batches: Some(1),
            ..BackfillOptions::default()
        }),
    )
    .start(&m, &tandem_pg::events::ignore);
    assert!(
        matches!(stopped, Err(tandem_pg::Error::BackfillInterrupted { .. })),
        "{stopped:?}"
    );
    // Each subtransaction that writes takes a transaction id of its own.
    exec(
        &mut admin,
        "DO $$ BEGIN FOR i IN 1..110000 LOOP
             BEGIN INSERT INTO burn VALUES (i); EXCEPTION WHEN others THEN NULL; END;
           END LOOP; END $$",
    );
    let mut seen_vacuum = false;
    for _ in 0..1200 {
        seen_vacuum = admin
            .query_opt(
                "SELECT 1 FROM pg_stat_progress_vacuum p JOIN pg_stat_activity a ON a.pid = p.pid
                  WHERE p.relid = 'items'::regclass AND a.query LIKE '%to prevent wraparound%'",
                &[],
            )
            .unwrap()
            .is_some();
        if seen_vacuum {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        seen_vacuum,
        "autovacuum never started a wraparound vacuum on items"
    );
    let seen = std::sync::Arc::new(Mutex::new(None));
    let seen_in = seen.clone();
    let observer = Mutex::new(cluster.connect("app").unwrap());
    let (_client, events) = start_watched(
        client,
        m,
        options(BackfillOptions {
            batch_size: Some(1000),
            ..BackfillOptions::default()
        }),
        move |e| {
            if let Event::BackfillYield {
                action: YieldAction::Paused,
                hold: Hold::WraparoundVacuum { .. },
                ..
            } = e
            {
                let mut o = observer.lock().unwrap();
                seen_in.lock().unwrap().get_or_insert(recorded(&mut o));
            }
        },
    );
    let (state, cause, reason, rows_done) =
        seen.lock().unwrap().clone().expect("the backfill paused");
    assert_eq!(state.as_deref(), Some("paused"));
    assert_eq!(cause.as_deref(), Some("wraparound_vacuum"));
    assert!(reason.unwrap().contains("wraparound"));
    assert_eq!(rows_done, 1000, "the batch before the pause is kept");
    // Autovacuum may come back for another pass; each pause is followed by its resumption.
    let y = yields(&events);
    assert!(!y.is_empty(), "{y:?}");
    for pair in y.chunks(2) {
        assert_eq!(
            pair,
            [
                (YieldAction::Paused, "wraparound_vacuum"),
                (YieldAction::Resumed, "wraparound_vacuum")
            ],
            "{y:?}"
        );
    }
    assert_eq!(
        count(
            &mut admin,
            "SELECT count(*) FROM items WHERE doubled IS DISTINCT FROM n * 2"
        ),
        0
    );
}
