//! The lock queue. A session keeps a transaction open that has read the table, so it holds an
//! ACCESS SHARE lock for seconds. A statement that needs a stronger lock queues behind it, and
//! every later statement on the table, even a plain SELECT, queues behind that one. tandem must
//! never sit in that queue longer than its lock_timeout: it gives up, says who holds the lock,
//! waits and retries, and succeeds once the transaction ends; meanwhile the application's
//! statements never wait much longer than the timeout. The last test shows what the same
//! situation does to the application with a plain `ALTER TABLE`.

mod common;

use common::{count, exec, migration, Env};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tandem_pg::{ConnectOptions, Engine, EngineOptions, Event, LockTimeout, RetryPolicy};

const LOCK_TIMEOUT: Duration = Duration::from_millis(200);
/// How many times tandem steps back from the reader's lock before the reader ends.
const RETRIES_BEFORE_RELEASE: usize = 2;
/// Generous, for a busy 2-core machine: what is asserted is the bound on queueing, not speed.
const MARGIN: Duration = Duration::from_secs(1);

const ITEMS: &str = "operations:
  - create_table:
      name: items
      columns:
        - {name: id, type: serial, pk: true}
        - {name: name, type: text, nullable: true}
        - {name: rating, type: text, nullable: true}
        - {name: qty, type: integer, nullable: true}
";

fn setup() -> Env {
    let mut env = Env::new();
    env.apply("01_items", ITEMS);
    exec(
        &mut env.db.connect(),
        "INSERT INTO items (name, rating, qty) SELECT 'i' || g, (g % 5)::text, g FROM generate_series(1, 1000) g",
    );
    env
}

/// A session that reads the table inside a transaction and keeps it open until told to end it
/// (or, so that a broken test ends, `GIVE_UP`). Returns once the lock is held; the handle
/// yields the instant the transaction ended.
struct Holder {
    release: mpsc::Sender<()>,
    handle: JoinHandle<Instant>,
}

impl Holder {
    fn end(self) -> Instant {
        let _ = self.release.send(());
        self.handle.join().unwrap()
    }
}

const GIVE_UP: Duration = Duration::from_secs(60);

fn hold_access_share(env: &Env) -> Holder {
    let mut holder = env.db.connect();
    let (ready, held) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let handle = std::thread::spawn(move || {
        holder
            .batch_execute(
                "SET application_name = 'long_reader'; BEGIN; SELECT count(*) FROM public.items",
            )
            .unwrap();
        ready.send(()).unwrap();
        let _ = released.recv_timeout(GIVE_UP);
        holder.batch_execute("COMMIT").unwrap();
        Instant::now()
    });
    held.recv().unwrap();
    Holder { release, handle }
}

/// Application clients: each runs short SELECT, INSERT and UPDATE statements on the base table
/// in a loop until `stop`, and returns (statements run, the slowest statement, errors).
fn clients(
    env: &Env,
    n: usize,
    stop: &Arc<AtomicBool>,
    counter: &Arc<AtomicU64>,
) -> Vec<JoinHandle<(u64, Duration, Vec<String>)>> {
    (0..n)
        .map(|k| {
            let mut c = env.db.connect();
            let stop = Arc::clone(stop);
            let counter = Arc::clone(counter);
            std::thread::spawn(move || {
                let statements = [
                    "SELECT count(*) FROM items WHERE id < 100".to_string(),
                    format!("INSERT INTO items (name, rating, qty) VALUES ('client {k}', '4', 1)"),
                    format!(
                        "UPDATE items SET name = 'touched by {k}' WHERE id = {}",
                        10 + k
                    ),
                ];
                let (mut ran, mut worst, mut errors) = (0u64, Duration::ZERO, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    for sql in &statements {
                        let t = Instant::now();
                        if let Err(e) = c.batch_execute(sql) {
                            errors.push(format!("{sql}: {}", tandem_pg::error::describe(&e)));
                        }
                        worst = worst.max(t.elapsed());
                        ran += 1;
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                (ran, worst, errors)
            })
        })
        .collect()
}

fn engine_client(env: &Env) -> postgres::Client {
    tandem_pg::connect(&ConnectOptions {
        url: Some(env.db.url()),
        lock_timeout: LockTimeout(LOCK_TIMEOUT),
        application_name: Some("tandem_under_test".into()),
        ..ConnectOptions::default()
    })
    .unwrap()
}

fn options() -> EngineOptions {
    EngineOptions {
        retry: RetryPolicy {
            max_attempts: 100,
            initial_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(400),
        },
        ..EngineOptions::default()
    }
}

enum Command<'a> {
    Start(&'a tandem_model::Migration),
    Complete,
}

/// Runs `command` while a long reader holds the table and clients keep working; asserts the
/// command retried (naming the reader), succeeded only after the reader ended, and that no
/// client statement waited longer than the lock timeout plus the margin.
fn under_long_reader(env: &Env, what: &str, command: Command<'_>) {
    let holder = hold_access_share(env);
    let stop = Arc::new(AtomicBool::new(false));
    let ran = Arc::new(AtomicU64::new(0));
    let workers = clients(env, 3, &stop, &ran);
    let mut client = engine_client(env);
    let events = Mutex::new(Vec::new());
    // The reader ends once tandem has stepped back from the lock queue twice, naming it: then
    // it has been made to wait, which is what this test is about.
    let release = Mutex::new(Some(holder.release.clone()));
    let on_event = |e: &Event| {
        let mut events = events.lock().unwrap();
        events.push(e.clone());
        let retries = events
            .iter()
            .filter(|e| matches!(e, Event::LockRetry { holders, .. } if holders.contains("long_reader")))
            .count();
        if retries >= RETRIES_BEFORE_RELEASE {
            if let Some(r) = release.lock().unwrap().take() {
                let _ = r.send(());
            }
        }
    };
    let mut engine = Engine::new(&mut client, options());
    match command {
        Command::Start(m) => {
            engine
                .start(m, &on_event)
                .unwrap_or_else(|e| panic!("{what}: start: {e}"));
        }
        Command::Complete => {
            engine
                .complete(&on_event)
                .unwrap_or_else(|e| panic!("{what}: complete: {e}"));
        }
    }
    let done = Instant::now();
    let released = holder.end();
    // Let the clients run after the change too: until each has run a few more statements.
    let after = ran.load(Ordering::Relaxed);
    let deadline = Instant::now() + GIVE_UP;
    while ran.load(Ordering::Relaxed) < after + 9 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for w in workers {
        let (ran, worst, errors) = w.join().unwrap();
        total += ran;
        assert!(errors.is_empty(), "{what}: client errors: {errors:#?}");
        assert!(
            worst < LOCK_TIMEOUT + MARGIN,
            "{what}: a client statement waited {worst:?}, more than lock_timeout {LOCK_TIMEOUT:?} + {MARGIN:?}"
        );
    }
    assert!(
        total > 30,
        "{what}: the clients kept working ({total} statements)"
    );
    assert!(
        done >= released,
        "{what}: tandem needed the lock, so it can only have finished after the reader ended"
    );
    let events = events.into_inner().unwrap();
    let retries: Vec<(&str, &str)> = events
        .iter()
        .filter_map(|e| match e {
            Event::LockRetry {
                description,
                holders,
                ..
            } => Some((description.as_str(), holders.as_str())),
            _ => None,
        })
        .collect();
    assert!(
        !retries.is_empty(),
        "{what}: tandem must have stepped back from the lock queue at least once"
    );
    // The last retry may find the reader already gone; the others name it.
    assert!(
        retries
            .iter()
            .any(|(_, holders)| holders.contains("long_reader")
                && holders.contains("AccessShareLock")),
        "{what}: a retry should name the reader holding ACCESS SHARE: {retries:#?}"
    );
}

fn start_and_complete_behind_a_long_reader(name: &str, yaml: &str) -> Env {
    let mut env = setup();
    let m = migration(name, yaml);
    under_long_reader(&env, &format!("{name} start"), Command::Start(&m));
    assert_eq!(env.status().active.unwrap().name, name);
    under_long_reader(&env, &format!("{name} complete"), Command::Complete);
    assert!(env.status().active.is_none());
    env
}

#[test]
fn add_column_waits_its_turn_without_blocking_the_application() {
    let env = start_and_complete_behind_a_long_reader(
        "02_add",
        "operations:\n  - add_column: {table: items, column: {name: note, type: text, nullable: false, default: \"'none'\"}, up: \"'none'\"}\n",
    );
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM items WHERE note IS DISTINCT FROM 'none'"
        ),
        0
    );
}

#[test]
fn type_change_waits_its_turn_without_blocking_the_application() {
    let env = start_and_complete_behind_a_long_reader(
        "02_rating_int",
        "operations:
  - alter_column:
      table: items
      column: rating
      type: integer
      up: CAST(rating AS integer)
      down: CAST(rating AS text)
",
    );
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.items'::regclass AND attname = 'rating' AND atttypid = 'integer'::regtype"
        ),
        1
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM items WHERE rating IS NULL"),
        0
    );
}

#[test]
fn check_constraint_waits_its_turn_without_blocking_the_application() {
    let env = start_and_complete_behind_a_long_reader(
        "02_qty_check",
        "operations:
  - create_constraint:
      type: check
      table: items
      name: qty_positive
      columns: [qty]
      check: qty > 0
      up: {qty: 'greatest(qty, 1)'}
      down: {qty: qty}
",
    );
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_constraint WHERE conname = 'qty_positive' AND convalidated"
        ),
        1
    );
}

/// The contrast: the same long reader, a plain `ALTER TABLE ... TYPE` without lock_timeout, and
/// a client that only wants to read. The ALTER queues behind the reader and the client queues
/// behind the ALTER, for as long as the reader keeps its transaction open.
#[test]
fn a_plain_alter_table_blocks_the_application_for_the_whole_transaction() {
    let env = setup();
    // The version schema's view would stop the ALTER; this test is about the queue only.
    exec(&mut env.db.connect(), "DROP SCHEMA public_01_items CASCADE");
    let holder = hold_access_share(&env);
    let mut alter = env.db.connect();
    let alter_thread = std::thread::spawn(move || {
        alter
            .batch_execute(
                "SET application_name = 'plain_alter'; SET lock_timeout = 0;
                 ALTER TABLE items ALTER COLUMN rating TYPE integer USING rating::integer",
            )
            .unwrap();
    });
    // Wait until the ALTER is in the queue, waiting for its lock.
    let mut watcher = env.db.connect();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let waiting = count(
            &mut watcher,
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE a.application_name = 'plain_alter' AND NOT l.granted",
        );
        if waiting > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the ALTER never queued");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A reader asks, and queues behind the ALTER; the long transaction ends only once the
    // reader has been seen waiting for longer than tandem would ever let it.
    let mut reader = env.db.connect();
    let reader_thread = std::thread::spawn(move || {
        let asked = Instant::now();
        reader
            .batch_execute(
                "SET application_name = 'app_reader'; SELECT count(*) FROM items WHERE id < 100",
            )
            .unwrap();
        (asked, Instant::now())
    });
    let deadline = Instant::now() + GIVE_UP;
    let mut waiting_since = None;
    loop {
        let waiting = count(
            &mut watcher,
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE a.application_name = 'app_reader' AND NOT l.granted",
        );
        match (waiting > 0, waiting_since) {
            (true, None) => waiting_since = Some(Instant::now()),
            (true, Some(since)) if since.elapsed() > LOCK_TIMEOUT + MARGIN => break,
            _ => {}
        }
        assert!(Instant::now() < deadline, "the reader never queued");
        std::thread::sleep(Duration::from_millis(20));
    }
    let released = holder.end();
    let (asked, answered) = reader_thread.join().unwrap();
    alter_thread.join().unwrap();
    let waited = answered - asked;
    assert!(
        answered >= released,
        "the reader was answered only after the long transaction ended"
    );
    assert!(waited > LOCK_TIMEOUT + MARGIN, "waited {waited:?}");
}
