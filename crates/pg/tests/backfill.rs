//! The backfill as users live through it: keys of every kind (composite, unique NOT NULL without
//! a primary key, identity, none), empty tables, many batches, old-version writes while it runs,
//! interruption followed by resume or rollback, and lock waits. Every test checks every row.

mod common;

use common::{count, exec, migration, Env};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tandem_model::Migration;
use tandem_pg::backfill::BackfillOptions;
use tandem_pg::engine::StartReport;
use tandem_pg::{Engine, EngineOptions, Event};

/// Batches of `n` rows, stopping after `stop` batches when given.
fn fixed(n: u64, stop: Option<u64>) -> BackfillOptions {
    BackfillOptions {
        batch_size: Some(n),
        stop_after_batches: stop,
        ..BackfillOptions::default()
    }
}

/// Starts `m` with these backfill options; returns the result and the events.
fn start(
    env: &mut Env,
    m: &Migration,
    backfill: BackfillOptions,
) -> (Result<StartReport, tandem_pg::Error>, Vec<Event>) {
    let events = Mutex::new(Vec::new());
    let on_event = |e: &Event| events.lock().unwrap().push(e.clone());
    let opts = EngineOptions {
        backfill,
        ..env.options.clone()
    };
    let result = Engine::new(&mut env.client, opts).start(m, &on_event);
    (result, events.into_inner().unwrap())
}

/// The `rows_done` of each backfill batch event, in order.
fn progress(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Backfill { rows_done, .. } => Some(*rows_done),
            _ => None,
        })
        .collect()
}

fn add_column(table: &str, column: &str, up: &str) -> Migration {
    migration(
        "02_add",
        &format!(
            "operations:
  - add_column:
      table: {table}
      up: {up:?}
      column: {{name: {column}, type: text, nullable: true}}
"
        ),
    )
}

/// An env whose `public` schema has `sql` run in it (the base schema is the old version).
fn env_with(sql: &str) -> Env {
    let env = Env::new();
    exec(&mut env.db.connect(), sql);
    env
}

#[test]
fn composite_primary_key_walks_in_key_order() {
    // Text keys whose text order differs from the key's own order would be walked wrongly if
    // the bounds went through text comparisons; the integer part of the key checks that.
    let mut env = env_with(
        "CREATE TABLE public.items (shop int, sku text, qty int NOT NULL, PRIMARY KEY (shop, sku));
         INSERT INTO public.items SELECT s, 'sku' || k, s * k FROM generate_series(1, 12) s, generate_series(1, 250) k;",
    );
    let m = add_column("items", "label", "shop || '/' || sku || '/' || qty");
    let (result, events) = start(&mut env, &m, fixed(97, None));
    result.unwrap_or_else(|e| panic!("start: {e}"));
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM public.items WHERE label IS DISTINCT FROM shop || '/' || sku || '/' || qty"
        ),
        0
    );
    let p = progress(&events);
    assert_eq!(p.len(), 3000 / 97 + 1, "one event per batch: {p:?}");
    assert_eq!(*p.last().unwrap(), 3000);
}

#[test]
fn unique_not_null_key_without_primary_key() {
    let mut env = env_with(
        "CREATE TABLE public.codes (code text NOT NULL, region int NOT NULL, n int);
         CREATE UNIQUE INDEX codes_key ON public.codes (region, code);
         INSERT INTO public.codes SELECT 'c' || g, g % 7, g FROM generate_series(1, 2000) g;",
    );
    let m = add_column("codes", "twice", "(n * 2)::text");
    let (result, _) = start(&mut env, &m, fixed(150, None));
    result.unwrap_or_else(|e| panic!("start: {e}"));
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM public.codes WHERE twice IS DISTINCT FROM (n * 2)::text"
        ),
        0
    );
}

#[test]
fn identity_primary_key_and_adaptive_size() {
    let mut env = env_with(
        "CREATE TABLE public.events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text NOT NULL);
         INSERT INTO public.events (body) SELECT 'e' || g FROM generate_series(1, 5000) g;",
    );
    let m = add_column("events", "shout", "upper(body)");
    let (result, events) = start(&mut env, &m, BackfillOptions::default());
    let report = result.unwrap_or_else(|e| panic!("start: {e}"));
    assert_eq!(report.backfilled_rows, 5000);
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM public.events WHERE shout IS DISTINCT FROM upper(body)"
        ),
        0
    );
    // The old version keeps inserting through the identity column.
    exec(&mut c, "INSERT INTO public.events (body) VALUES ('late')");
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM public.events WHERE shout = 'LATE'"
        ),
        1
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Backfill { done: true, .. })),
        "the last event says the backfill is done"
    );
}

#[test]
fn empty_table() {
    let mut env = env_with("CREATE TABLE public.nothing (id int PRIMARY KEY, v text)");
    let m = add_column("nothing", "w", "upper(v)");
    let (result, events) = start(&mut env, &m, BackfillOptions::default());
    assert_eq!(
        result
            .unwrap_or_else(|e| panic!("start: {e}"))
            .backfilled_rows,
        0
    );
    assert_eq!(progress(&events), vec![0]);
    assert_eq!(
        env.status().active.unwrap().status,
        tandem_pg::MigrationStatus::Active
    );
    env.complete();
}

#[test]
fn many_small_batches_then_complete() {
    let mut env = env_with(
        "CREATE TABLE public.t (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO public.t SELECT g, g FROM generate_series(1, 2500) g;",
    );
    let m = add_column("t", "w", "(v + 1)::text");
    let (result, events) = start(&mut env, &m, fixed(10, None));
    result.unwrap_or_else(|e| panic!("start: {e}"));
    let p = progress(&events);
    assert_eq!(
        p.len(),
        251,
        "2500 rows in batches of 10, then an empty last batch"
    );
    assert!(p.windows(2).all(|w| w[0] <= w[1]), "progress only grows");
    env.complete();
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM public.t WHERE w IS DISTINCT FROM (v + 1)::text"
        ),
        0
    );
}

/// A table with no key is walked by ranges of blocks, up to its size when the walk began. The
/// planner does not yet emit such backfills, so this drives the executor directly, with a
/// trigger standing in for the planner's: it writes a value the batches never would, so rows
/// it wrote show whether a batch redid them. Rows appended beyond the walk's end, and rows
/// updated after the cutoff, keep the trigger's values.
#[test]
fn table_without_key_walks_block_ranges_and_skips_rows_written_after_the_cutoff() {
    let env = env_with(
        "CREATE TABLE public.logs (n int, msg text, c text) WITH (fillfactor = 50);
         INSERT INTO public.logs (n, msg) SELECT g, 'm' || g FROM generate_series(1, 3000) g;
         ANALYZE public.logs;
         CREATE FUNCTION public.logs_up() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN NEW.c := 'trigger ' || NEW.n; RETURN NEW; END $$;
         CREATE TRIGGER logs_up BEFORE INSERT OR UPDATE ON public.logs FOR EACH ROW
           WHEN (current_setting('tandem.backfill', true) IS DISTINCT FROM 'on')
           EXECUTE FUNCTION public.logs_up();",
    );
    let mut client = tandem_pg::connect(&tandem_pg::ConnectOptions {
        url: Some(env.db.url()),
        ..tandem_pg::ConnectOptions::default()
    })
    .unwrap();
    let cutoff: i64 = client
        .query_one(
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint",
            &[],
        )
        .unwrap()
        .get(0);
    let mut app = env.db.connect();
    // After the cutoff, before the walk: rows moved by an update, within the walk's range.
    exec(
        &mut app,
        "UPDATE public.logs SET msg = 'touched' WHERE n % 10 = 0;",
    );
    let physical = tandem_pg::introspect::read_schema(&mut client, "public").unwrap();
    let backfill = tandem_plan::Backfill {
        table: "logs".into(),
        key: vec![],
        assignments: vec![("c".into(), "'batch ' || n".into())],
        types: Default::default(),
    };
    let mut checkpoint = tandem_pg::state::BackfillCheckpoint {
        position: 0,
        table: "logs".into(),
        cutoff_xid: cutoff,
        last_key: None,
        next_block: None,
        end_block: None,
        rows_done: 0,
        rows_estimate: 0,
        done: false,
        ..Default::default()
    };
    let saved = Mutex::new(Vec::new());
    let mut save = |_: &mut postgres::Transaction<'_>, c: &tandem_pg::state::BackfillCheckpoint| {
        saved.lock().unwrap().push(c.next_block);
        Ok(())
    };
    let mut run = |stop: Option<u64>| {
        tandem_pg::backfill::run(
            &mut client,
            &physical,
            &backfill,
            &mut checkpoint,
            &fixed(200, stop),
            tandem_pg::backfill::TriggerMode::Origin,
            &tandem_pg::RetryPolicy::default(),
            &tandem_pg::events::ignore,
            &mut save,
            None,
        )
    };
    assert!(matches!(
        run(Some(1)),
        Err(tandem_pg::Error::BackfillInterrupted { .. })
    ));
    // During the walk: rows appended beyond its end, and updates on both sides of it.
    exec(
        &mut app,
        "INSERT INTO public.logs (n, msg) SELECT g, 'late' FROM generate_series(3001, 3500) g;
         UPDATE public.logs SET msg = 'touched' WHERE n % 10 = 5 AND n <= 3000;",
    );
    run(None).unwrap_or_else(|e| panic!("backfill: {e}"));
    assert!(checkpoint.done);
    let end = checkpoint.end_block.unwrap();
    assert!(saved.lock().unwrap().len() > 3, "several block ranges");
    let mut c = env.db.connect();
    assert!(
        count(
            &mut c,
            &format!("SELECT count(*) FROM public.logs WHERE n > 3000 AND (ctid::text::point)[0] >= {end}")
        ) > 0,
        "some rows were appended beyond the walk's end"
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM public.logs WHERE c IS DISTINCT FROM
               CASE WHEN n > 3000 OR n % 10 IN (0, 5) THEN 'trigger ' ELSE 'batch ' END || n"
        ),
        0,
        "rows written after the cutoff keep the trigger's value; every other row has the batch's"
    );
    let plan: String = c
        .query("EXPLAIN UPDATE public.logs SET c = 'x' WHERE ctid >= '(0,0)'::tid AND ctid < '(5,0)'::tid", &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(plan.contains("Tid Range Scan"), "{plan}");
}

/// The old version keeps updating and inserting while the backfill runs. `up` is random, so a
/// row the batches wrote again after the trigger did would change: every value the old version
/// read back after the backfill began must be the row's final value, and every row holds `up`
/// of its final `name`.
#[test]
fn old_version_writes_during_the_backfill() {
    old_version_writes_during(1);
}

/// The same with three sessions updating batches at once, which commit out of order.
#[test]
fn old_version_writes_during_a_parallel_backfill() {
    old_version_writes_during(3);
}

fn old_version_writes_during(workers: usize) {
    let mut env = env_with(
        "CREATE TABLE public.users (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO public.users SELECT g, 'u' || g FROM generate_series(1, 3000) g;",
    );
    let stop = Arc::new(AtomicBool::new(false));
    // Set once the first batch has committed, so after the cutoff was taken.
    let armed = Arc::new(AtomicBool::new(false));
    let writes = {
        let (stop, armed) = (stop.clone(), armed.clone());
        let mut app = env.db.connect_with_search_path("public");
        std::thread::spawn(move || {
            let mut seen = std::collections::HashMap::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let after_cutoff = armed.load(Ordering::SeqCst);
                // `shout` does not exist until start has added it; read it through jsonb.
                for sql in [
                    "UPDATE users SET name = 'renamed ' || $1::int WHERE id = ($1::int * 7919) % 3000 + 1 RETURNING id, to_jsonb(users.*)->>'shout'",
                    "INSERT INTO users VALUES (10000 + $1::int, 'new ' || $1::int) RETURNING id, to_jsonb(users.*)->>'shout'",
                ] {
                    let row = app.query_one(sql, &[&i]).unwrap();
                    let shout: Option<String> = row.get(1);
                    if after_cutoff {
                        seen.insert(row.get::<_, i32>(0), shout.expect("the trigger filled it"));
                    }
                }
            }
            (i, seen)
        })
    };
    let m = add_column(
        "users",
        "shout",
        "upper(name) || ':' || md5(random()::text)",
    );
    let on_event = |e: &Event| {
        if matches!(e, Event::Backfill { .. }) {
            armed.store(true, Ordering::SeqCst);
        }
    };
    let opts = EngineOptions {
        backfill: BackfillOptions {
            batch_size: Some(25),
            delay: Duration::from_millis(2),
            workers,
            fixed_workers: true,
            ..BackfillOptions::default()
        },
        ..env.options.clone()
    };
    let result = Engine::new(&mut env.client, opts).start(&m, &on_event);
    stop.store(true, Ordering::Relaxed);
    let (written, seen) = writes.join().unwrap();
    result.unwrap_or_else(|e| panic!("start: {e}"));
    assert!(
        !seen.is_empty(),
        "the old version wrote during the backfill"
    );
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM public.users WHERE shout NOT LIKE upper(name) || ':%' OR shout IS NULL"
        ),
        0
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM public.users"),
        3000 + written as i64
    );
    for (id, shout) in &seen {
        let now: String = c
            .query_one("SELECT shout FROM public.users WHERE id = $1", &[id])
            .unwrap()
            .get(0);
        assert_eq!(
            &now, shout,
            "row {id}, written by the old version after the cutoff"
        );
    }
}

/// A table whose `up` is random, so a value written twice would differ.
fn random_env() -> (Env, Migration) {
    let env = env_with(
        "CREATE TABLE public.acc (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO public.acc SELECT g, g FROM generate_series(1, 1000) g;
         ANALYZE public.acc;",
    );
    (
        env,
        add_column("acc", "token", "v || ':' || md5(random()::text)"),
    )
}

/// Starts `m` in batches of 100 and interrupts it after `batches` batches.
fn interrupt(env: &mut Env, m: &Migration, batches: u64) {
    let (result, _) = start(env, m, fixed(100, Some(batches)));
    assert!(
        matches!(result, Err(tandem_pg::Error::BackfillInterrupted { .. })),
        "expected an interruption, got {result:?}"
    );
}

/// The tokens of `acc`, in id order.
fn tokens(env: &Env) -> Vec<Option<String>> {
    env.db
        .connect()
        .query("SELECT token FROM public.acc ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Rows of `acc` whose token is missing or not `up` of their `v`.
fn wrong_tokens(env: &Env) -> i64 {
    count(
        &mut env.db.connect(),
        "SELECT count(*) FROM public.acc WHERE token IS NULL OR token NOT LIKE v || ':%'",
    )
}

#[test]
fn interrupted_backfill_resumes_from_its_checkpoint_without_redoing_rows() {
    let (mut env, m) = random_env();
    let (result, events) = start(&mut env, &m, fixed(100, Some(3)));
    match result {
        Err(tandem_pg::Error::BackfillInterrupted { rows_done: 300, .. }) => {}
        other => panic!("expected an interruption after 300 rows, got {other:?}"),
    }
    assert_eq!(progress(&events), vec![100, 200, 300]);
    let status = env.status();
    let active = status.active.as_ref().unwrap();
    assert_eq!(active.status, tandem_pg::MigrationStatus::Backfilling);
    let advice = status.advice.clone().unwrap();
    assert!(
        advice.contains("backfill of acc: 30% (300 of ~1000 rows), interrupted"),
        "{advice}"
    );
    let mut c = env.db.connect();
    let before: Vec<(i32, Option<String>)> = c
        .query("SELECT id, token FROM public.acc ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(before[..300].iter().all(|(_, t)| t.is_some()));
    assert!(before[300..].iter().all(|(_, t)| t.is_none()));
    // While interrupted, the old version writes; the trigger fills those rows.
    exec(
        &mut c,
        "UPDATE public.acc SET v = v + 1 WHERE id IN (50, 500, 900);
         INSERT INTO public.acc VALUES (1001, 1001);",
    );
    let by_trigger: Vec<String> = c
        .query(
            "SELECT token FROM public.acc WHERE id IN (50, 500, 900, 1001) ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // `start` with the same file continues from the checkpoint.
    let (result, events) = start(&mut env, &m, fixed(100, None));
    result.unwrap_or_else(|e| panic!("resume: {e}"));
    let p = progress(&events);
    assert_eq!(
        p.first(),
        Some(&400),
        "the first batch after resuming: {p:?}"
    );
    assert_eq!(p.last(), Some(&1000));
    let after: Vec<(i32, String)> = c
        .query("SELECT id, token FROM public.acc ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(after.len(), 1001);
    for (id, token) in &before[..300] {
        if *id != 50 {
            assert_eq!(
                Some(&after[*id as usize - 1].1),
                token.as_ref(),
                "row {id} was done before the interruption and must not be redone"
            );
        }
    }
    let now: Vec<&String> = [50, 500, 900, 1001]
        .iter()
        .map(|id| &after[*id - 1].1)
        .collect();
    assert_eq!(
        now,
        by_trigger.iter().collect::<Vec<_>>(),
        "rows the trigger wrote keep its values"
    );
    assert!(after.iter().all(|(id, t)| t.starts_with(&format!(
        "{}:",
        if [50, 500, 900].contains(id) {
            id + 1
        } else {
            *id
        }
    ))));
    assert_eq!(
        env.status().active.unwrap().status,
        tandem_pg::MigrationStatus::Active
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM tandem.backfills WHERE done"),
        1
    );
}

#[test]
fn rollback_in_the_middle_of_a_backfill() {
    let (mut env, m) = random_env();
    let before = env.db.dump_schema();
    interrupt(&mut env, &m, 2);
    let mut c = env.db.connect();
    assert_eq!(count(&mut c, "SELECT count(*) FROM tandem.backfills"), 1);
    // complete refuses a migration that has not finished its backfill.
    let err = env
        .engine()
        .complete(&tandem_pg::events::ignore)
        .unwrap_err();
    assert!(err.to_string().contains("still backfilling"), "{err}");
    env.rollback();
    assert_eq!(
        before,
        env.db.dump_schema(),
        "rollback leaves the catalog as it was"
    );
    assert_eq!(count(&mut c, "SELECT count(*) FROM tandem.backfills"), 0);
    assert!(env.status().active.is_none());
    // And the migration can start again, from scratch.
    let (result, _) = start(&mut env, &m, BackfillOptions::default());
    result.unwrap_or_else(|e| panic!("start again: {e}"));
    assert_eq!(wrong_tokens(&env), 0);
}

/// A batch that cannot get its lock within lock_timeout steps back, says so with the same
/// `LockRetry` event as every other step, and is retried.
#[test]
fn lock_waits_are_reported_and_retried() {
    lock_waits_are_reported_and_retried_with(1);
}

#[test]
fn lock_waits_of_parallel_workers_are_reported_and_retried() {
    lock_waits_are_reported_and_retried_with(2);
}

fn lock_waits_are_reported_and_retried_with(workers: usize) {
    let (mut env, m) = random_env();
    interrupt(&mut env, &m, 1);
    let (tx, rx) = mpsc::channel::<()>();
    let (locked_tx, locked_rx) = mpsc::channel::<()>();
    let mut blocker = env.db.connect();
    let holder = std::thread::spawn(move || {
        let mut t = blocker.transaction().unwrap();
        t.batch_execute("LOCK TABLE public.acc IN SHARE MODE")
            .unwrap();
        locked_tx.send(()).unwrap();
        // Held until the backfill has reported that it stepped back (or a minute has passed,
        // in which case the assertion below fails).
        let _ = rx.recv_timeout(Duration::from_secs(60));
        t.commit().unwrap();
    });
    locked_rx.recv().unwrap();
    let events = Mutex::new(Vec::new());
    let tx = Mutex::new(tx);
    let on_event = |e: &Event| {
        if matches!(e, Event::LockRetry { .. }) {
            let _ = tx.lock().unwrap().send(());
        }
        events.lock().unwrap().push(e.clone());
    };
    let options = EngineOptions {
        backfill: BackfillOptions {
            workers,
            fixed_workers: true,
            ..fixed(100, None)
        },
        ..env.options.clone()
    };
    Engine::new(&mut env.client, options)
        .start(&m, &on_event)
        .unwrap_or_else(|e| panic!("resume: {e}"));
    holder.join().unwrap();
    let events = events.into_inner().unwrap();
    let retry = events.iter().find_map(|e| match e {
        Event::LockRetry {
            description,
            holders,
            ..
        } => Some((description.clone(), holders.clone())),
        _ => None,
    });
    let (description, holders) = retry.expect("a LockRetry event");
    assert_eq!(description, "backfill of acc");
    assert!(holders.contains("ShareLock"), "{holders}");
    assert_eq!(wrong_tokens(&env), 0);
}

/// `migrate` finishes an interrupted backfill of the directory's active migration, then goes on.
#[test]
fn migrate_continues_an_interrupted_backfill() {
    let (mut env, m) = random_env();
    interrupt(&mut env, &m, 2);
    let report = env
        .engine()
        .migrate(std::slice::from_ref(&m), true, &tandem_pg::events::ignore)
        .unwrap_or_else(|e| panic!("migrate: {e}"));
    assert_eq!(report.started, vec!["02_add".to_string()]);
    assert_eq!(report.completed, vec!["02_add".to_string()]);
    assert_eq!(wrong_tokens(&env), 0);
    assert!(env.status().active.is_none());
}

/// Several workers interrupted after four batches (the two batches still running then finish
/// first): the checkpoint covers only the batches that committed in an unbroken run from the
/// start, every row it covers is filled, and resuming
/// (with another number of workers) fills the rest without redoing any row filled before,
/// including rows of batches that committed past the checkpoint.
#[test]
fn an_interrupted_parallel_backfill_resumes_without_redoing_rows() {
    let (mut env, m) = random_env();
    let (result, events) = start(
        &mut env,
        &m,
        BackfillOptions {
            workers: 3,
            fixed_workers: true,
            ..fixed(100, Some(4))
        },
    );
    let rows_done = match result {
        Err(tandem_pg::Error::BackfillInterrupted { rows_done, .. }) => rows_done,
        other => panic!("expected an interruption, got {other:?}"),
    };
    let batches = progress(&events).len();
    assert!((4..=6).contains(&batches), "{events:?}");
    assert!(
        rows_done <= 100 * batches as u64 && rows_done % 100 == 0,
        "{rows_done}"
    );
    let mut c = env.db.connect();
    let saved: i64 = c
        .query_one("SELECT rows_done FROM tandem.backfills", &[])
        .unwrap()
        .get(0);
    assert_eq!(saved as u64, rows_done);
    let before = tokens(&env);
    assert!(
        before[..rows_done as usize].iter().all(Option::is_some),
        "the rows the checkpoint covers are filled"
    );
    let filled = before.iter().filter(|t| t.is_some()).count();
    assert!(
        (rows_done as usize..=100 * batches).contains(&filled),
        "{filled} rows filled, {rows_done} in the checkpoint"
    );
    let (result, events) = start(
        &mut env,
        &m,
        BackfillOptions {
            workers: 2,
            fixed_workers: true,
            ..fixed(100, None)
        },
    );
    result.unwrap_or_else(|e| panic!("resume: {e}"));
    // Progress goes on from the checkpoint and never goes back; each committed batch adds its
    // 100 rows, and the last batch (past the last key) adds none. Two workers commit in
    // whatever order they finish, so the empty batch may come before the last full one.
    let shown = progress(&events);
    let mut steps: Vec<u64> = std::iter::once(rows_done)
        .chain(shown.iter().copied())
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| {
            assert!(w[1] >= w[0], "progress went back: {shown:?}");
            w[1] - w[0]
        })
        .collect();
    steps.sort_unstable();
    let mut expected = vec![100; ((1000 - rows_done) / 100) as usize];
    expected.insert(0, 0);
    assert_eq!(steps, expected, "progress {shown:?} from {rows_done}");
    let after = tokens(&env);
    for (i, token) in before.iter().enumerate() {
        if let Some(token) = token {
            assert_eq!(
                after[i].as_ref(),
                Some(token),
                "row {} was filled before and redone",
                i + 1
            );
        }
    }
    assert_eq!(wrong_tokens(&env), 0);
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM tandem.backfills WHERE done AND rows_done = 1000"
        ),
        1
    );
}

/// Workers split a table without a key by block ranges, as a single session walks it.
#[test]
fn parallel_workers_walk_the_block_ranges_of_a_table_without_key() {
    let mut env = env_with(
        "CREATE TABLE public.logs (n int, msg text);
         INSERT INTO public.logs SELECT g, 'm' || g FROM generate_series(1, 5000) g;
         ANALYZE public.logs;",
    );
    let m = add_column("logs", "loud", "upper(msg)");
    let (result, events) = start(
        &mut env,
        &m,
        BackfillOptions {
            workers: 2,
            fixed_workers: true,
            ..fixed(300, None)
        },
    );
    result.unwrap_or_else(|e| panic!("start: {e}"));
    assert!(progress(&events).len() > 5, "{events:?}");
    assert_eq!(progress(&events).last(), Some(&5000));
    assert_eq!(
        count(
            &mut env.db.connect(),
            "SELECT count(*) FROM public.logs WHERE loud IS DISTINCT FROM upper(msg)"
        ),
        0
    );
}

#[test]
fn batches_assign_one_column_of_each_index_to_itself_where_that_fires_and_changes_nothing() {
    // Each index gets the first column it reads assigned to itself, so PostgreSQL does not
    // tell it the batch left it unchanged (see `backfill::walk`): `a` for (a), `b` for
    // (lower(b)), `d` for (d, a). Never chosen: the identity key (GENERATED ALWAYS may not be
    // assigned), the generated column, and `c`, which a trigger fires for when it is assigned
    // (ENABLE ALWAYS, so even replica mode would fire it).
    let mut env = env_with(
        "CREATE TABLE public.things (
             id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             a int NOT NULL, b text NOT NULL, c int, d int,
             g int GENERATED ALWAYS AS (a * 2) STORED);
         CREATE INDEX ON public.things (a);
         CREATE INDEX ON public.things (lower(b));
         CREATE INDEX ON public.things (c);
         CREATE INDEX ON public.things (g);
         CREATE INDEX ON public.things (d, a);
         CREATE TABLE public.audit (n int);
         CREATE FUNCTION public.audit() RETURNS trigger LANGUAGE plpgsql AS
             $$BEGIN INSERT INTO public.audit VALUES (1); RETURN NEW; END$$;
         CREATE TRIGGER audit_c BEFORE UPDATE OF c ON public.things
             FOR EACH ROW EXECUTE FUNCTION public.audit();
         ALTER TABLE public.things ENABLE ALWAYS TRIGGER audit_c;
         INSERT INTO public.things (a, b, c, d)
             SELECT g % 97, 'B' || g, g % 13, g % 7 FROM generate_series(1, 3000) g;",
    );
    let mut c = env.db.connect();
    let chosen = |c: &mut postgres::Client, assigned: &[&str]| {
        let assigned: Vec<String> = assigned.iter().map(|s| s.to_string()).collect();
        tandem_pg::backfill::self_assigned_columns(c, "public.things", &assigned).unwrap()
    };
    assert_eq!(chosen(&mut c, &["label"]), ["a", "b", "d"]);
    // An index the batch already assigns a column of needs nothing more.
    assert_eq!(chosen(&mut c, &["a"]), ["b"]);

    let rows =
        "SELECT md5(string_agg(row(id, a, b, c, d, g)::text, ',' ORDER BY id)) FROM public.things";
    let before: String = c.query_one(rows, &[]).unwrap().get(0);
    let m = add_column("things", "label", "b || '-' || a");
    let (result, _) = start(&mut env, &m, fixed(500, None));
    result.unwrap_or_else(|e| panic!("start: {e}"));
    Engine::new(&mut env.client, env.options.clone())
        .complete(&tandem_pg::events::ignore)
        .unwrap();
    let after: String = c.query_one(rows, &[]).unwrap().get(0);
    assert_eq!(
        before, after,
        "the columns assigned to themselves kept their values"
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM public.things WHERE label IS DISTINCT FROM b || '-' || a"
        ),
        0
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM public.audit"),
        0,
        "the UPDATE OF c trigger never fired"
    );
}

/// By default the backfill starts with one session and, after a window of at least 4 s, tries
/// one more (up to `workers`), says so, and then says whether it kept it. Whichever it decides
/// (that depends on the machine), it never runs more sessions than the ceiling, every progress
/// event says how many ran, and every row is filled once.
#[test]
fn an_adaptive_backfill_says_each_change_of_its_sessions_within_its_ceiling() {
    let mut env = env_with(
        "CREATE TABLE public.t (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO public.t SELECT g, g FROM generate_series(1, 9000) g;",
    );
    let m = add_column("t", "w", "(v * 3)::text");
    let (result, events) = start(
        &mut env,
        &m,
        BackfillOptions {
            batch_size: Some(50),
            // 180 batches at least 30 ms apart: five seconds or more, so a window ends.
            delay: Duration::from_millis(30),
            workers: 2,
            ..BackfillOptions::default()
        },
    );
    result.unwrap_or_else(|e| panic!("start: {e}"));
    let said: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Info { message } if message.starts_with("backfill of t: ") => {
                Some(message.as_str())
            }
            _ => None,
        })
        .collect();
    assert!(
        said.first()
            .is_some_and(|s| s.contains("tries 2 sessions") && s.contains("at most 2")),
        "{said:?}"
    );
    assert!(
        said.get(1)
            .is_none_or(|s| s.contains("keeps 2 sessions") || s.contains("back to 1 session")),
        "{said:?}"
    );
    let sessions: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::Backfill { sessions, .. } => Some(*sessions),
            _ => None,
        })
        .collect();
    assert_eq!(sessions.first(), Some(&1), "it starts with one");
    assert!(sessions.iter().all(|n| (1..=2).contains(n)), "{sessions:?}");
    assert!(
        sessions.contains(&2),
        "it ran two once it tried: {sessions:?}"
    );
    env.complete();
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM public.t WHERE w IS DISTINCT FROM (v * 3)::text"
        ),
        0
    );
}

/// A `statement_timeout` shorter than a batch (production roles often have one) does not stop
/// the backfill: the batch that ran into it is cut smaller and run again, and it says so. The
/// engine's session has it from the connection, the workers' sessions from the database.
#[test]
fn batches_shrink_under_a_statement_timeout_instead_of_stopping() {
    for workers in [1, 2] {
        let mut env = env_with(
            "CREATE FUNCTION public.slow(int) RETURNS int LANGUAGE sql AS 'SELECT $1 FROM pg_sleep(0.001)';
             CREATE TABLE public.t (id int PRIMARY KEY, v int NOT NULL);
             INSERT INTO public.t SELECT g, g FROM generate_series(1, 3000) g;",
        );
        // The database's setting needs its owner; the test's role may be neither that nor
        // superuser (TANDEM_TEST_ROLE=least).
        let db = env.database();
        env.db.execute_as_superuser(&format!(
            "ALTER DATABASE \"{db}\" SET statement_timeout = '300ms'"
        ));
        exec(&mut env.client, "SET statement_timeout = '300ms'");
        let m = add_column("t", "w", "public.slow(v)::text");
        let (result, events) = start(
            &mut env,
            &m,
            BackfillOptions {
                // About 2 s a batch: far over the timeout.
                batch_size: Some(2000),
                workers,
                fixed_workers: true,
                ..BackfillOptions::default()
            },
        );
        result.unwrap_or_else(|e| panic!("start with {workers} sessions: {e}"));
        let said: Vec<&String> = events
            .iter()
            .filter_map(|e| match e {
                Event::Info { message }
                    if message.contains("ran longer than statement_timeout (300 ms)") =>
                {
                    Some(message)
                }
                _ => None,
            })
            .collect();
        assert!(
            said.first()
                .is_some_and(|m| m.contains("a batch of 2000 rows")
                    && m.contains("batches are now 500 rows")),
            "{workers} sessions: {said:?}"
        );
        exec(&mut env.client, "RESET statement_timeout");
        env.complete();
        let mut c = env.db.connect();
        assert_eq!(
            count(
                &mut c,
                "SELECT count(*) FROM public.t WHERE w IS DISTINCT FROM v::text"
            ),
            0,
            "{workers} sessions"
        );
    }
}

/// A partitioned table has no row count of its own unless ANALYZE ran on it: its estimate is
/// the sum of its analyzed partitions' counts, not the planner's guess, which scales them by
/// the pages dead row versions added since (as an earlier run leaves them).
#[test]
fn a_partitioned_tables_estimate_is_the_sum_of_its_analyzed_partitions() {
    let mut env = env_with(
        "CREATE TABLE public.m (id int, k int NOT NULL, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
         CREATE TABLE public.m1 PARTITION OF public.m FOR VALUES FROM (0) TO (5) WITH (autovacuum_enabled = false);
         CREATE TABLE public.m2 PARTITION OF public.m FOR VALUES FROM (5) TO (10) WITH (autovacuum_enabled = false);
         INSERT INTO public.m SELECT g, g % 10 FROM generate_series(1, 3000) g;
         ANALYZE public.m1, public.m2;
         UPDATE public.m SET id = id;
         UPDATE public.m SET id = id;",
    );
    let mut c = env.db.connect();
    let planner: serde_json::Value = c
        .query_one("EXPLAIN (FORMAT JSON) SELECT FROM public.m", &[])
        .unwrap()
        .get(0);
    let planner = planner[0]["Plan"]["Plan Rows"].as_f64().unwrap();
    assert!(
        planner > 3000.0,
        "the planner's guess must differ for the test to mean anything: {planner}"
    );
    let (result, events) = start(
        &mut env,
        &add_column("m", "w", "k::text"),
        fixed(1000, None),
    );
    result.unwrap_or_else(|e| panic!("start: {e}"));
    let estimates: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Backfill {
                rows_total_estimate,
                ..
            } => Some(*rows_total_estimate),
            _ => None,
        })
        .collect();
    assert_eq!(estimates.first(), Some(&3000), "{estimates:?}");
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM public.m WHERE w IS DISTINCT FROM k::text"
        ),
        0
    );
}
