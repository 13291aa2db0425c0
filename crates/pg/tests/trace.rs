//! `trace` on a real database: the locks each statement took, rewrites seen through
//! relfilenode, what each lock blocks, the file's own transactions, statements that run outside
//! a transaction, and the rolled-back mode used against real databases.

use tandem_pg::trace::{trace, StatementRole, TraceInput, TraceMode};
use tandem_testkit::TestDb;

fn input(sql: &str) -> TraceInput {
    let upper = sql.to_ascii_uppercase();
    let role = match upper.as_str() {
        "BEGIN" => StatementRole::Begin,
        "COMMIT" => StatementRole::Commit,
        "ROLLBACK" => StatementRole::Rollback,
        _ if upper.contains("CONCURRENTLY") => StatementRole::OutsideTransaction,
        _ => StatementRole::Ordinary,
    };
    TraceInput {
        line: 1,
        sql: sql.to_string(),
        role,
    }
}

fn setup() -> TestDb {
    let db = TestDb::new();
    db.execute(
        "CREATE TABLE t (id int PRIMARY KEY, a text);\
         INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 200000) g;",
    );
    db
}

#[test]
fn locks_rewrites_and_what_they_block() {
    let db = setup();
    let (mut target, mut observer) = (db.connect(), db.connect());
    let statements: Vec<_> = [
        "ALTER TABLE t ADD COLUMN b int",
        "ALTER TABLE t ALTER COLUMN id TYPE bigint",
        "CREATE INDEX t_a ON t (a)",
        "SELECT count(*) FROM t",
        "ALTER TABLE t ADD COLUMN broken nosuchtype",
    ]
    .into_iter()
    .map(input)
    .collect();
    let out = trace(&mut target, &mut observer, &statements, TraceMode::Commit).unwrap();

    let add = &out[0];
    let on_t = add
        .locks
        .iter()
        .find(|l| l.relation.as_deref() == Some("public.t"))
        .unwrap();
    assert_eq!(on_t.mode, "AccessExclusiveLock");
    assert_eq!(on_t.blocks, ["SELECT", "INSERT", "UPDATE", "DELETE"]);
    assert!(
        add.rewrites.is_empty(),
        "ADD COLUMN without default rewrites nothing: {add:?}"
    );
    assert!(add.held_ms.is_some());

    let retype = &out[1];
    assert!(
        retype.rewrites.iter().any(|r| r.relation == "public.t")
            && retype
                .rewrites
                .iter()
                .any(|r| r.relation == "public.t_pkey"),
        "{retype:?}"
    );

    let index = &out[2];
    let share = index
        .locks
        .iter()
        .find(|l| l.relation.as_deref() == Some("public.t"))
        .unwrap();
    assert_eq!(share.mode, "ShareLock");
    assert_eq!(share.blocks, ["INSERT", "UPDATE", "DELETE"]);

    let select = &out[3];
    assert!(
        select.locks.iter().all(|l| l.blocks.is_empty()),
        "{select:?}"
    );
    assert!(out[4].error.as_deref().unwrap().contains("nosuchtype"));
}

#[test]
fn the_files_transactions_hold_locks_until_commit() {
    let db = setup();
    let (mut target, mut observer) = (db.connect(), db.connect());
    let statements: Vec<_> = [
        "BEGIN",
        "ALTER TABLE t ADD COLUMN b int",
        "SELECT pg_sleep(0.05)",
        "COMMIT",
    ]
    .into_iter()
    .map(input)
    .collect();
    let out = trace(&mut target, &mut observer, &statements, TraceMode::Commit).unwrap();
    let alter = &out[1];
    assert!(alter.held_ms.unwrap() >= 50.0, "{alter:?}");
    // The lock taken by the ALTER is not reported again for the statement after it.
    assert!(out[2]
        .locks
        .iter()
        .all(|l| l.relation.as_deref() != Some("public.t")));
    // Committed: the column exists afterwards.
    db.execute("SELECT b FROM t LIMIT 1");
}

fn backend_pid(c: &mut postgres::Client) -> i32 {
    c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0)
}

#[test]
fn concurrent_statements_are_sampled_while_they_run() {
    let db = setup();
    let (mut target, mut observer) = (db.connect(), db.connect());
    let (target_pid, observer_pid) = (backend_pid(&mut target), backend_pid(&mut observer));
    // A transaction holding a snapshot: the index build waits for it at its end, its lock held,
    // and the transaction ends only once the sampler has run a whole sample during that wait,
    // so the test never depends on how fast the build or the sampler is.
    let mut holder = db.connect();
    holder
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
        .unwrap();
    let mut watcher = db.connect();
    let releaser = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut poll = |what: &str, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]| loop {
            if let Some(row) = watcher.query_opt(sql, params).unwrap() {
                return row.get::<_, String>(0);
            }
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let waiting = poll(
            "the build never waited with its lock held",
            "SELECT clock_timestamp()::text FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.pid = $1 AND l.relation = 't'::regclass AND l.granted
                AND l.mode = 'ShareUpdateExclusiveLock' AND a.wait_event_type = 'Lock'",
            &[&target_pid],
        );
        // The sampler's first query to start after that, then the next: the first has ended.
        let mut since = waiting;
        for _ in 0..2 {
            since = poll(
                "the sampler took no sample",
                "SELECT query_start::text FROM pg_stat_activity
                  WHERE pid = $1 AND query_start > $2::text::timestamptz",
                &[&observer_pid, &since],
            );
        }
        holder.batch_execute("COMMIT").unwrap();
    });
    let out = trace(
        &mut target,
        &mut observer,
        &[input("CREATE INDEX CONCURRENTLY t_a ON t (a)")],
        TraceMode::Commit,
    )
    .unwrap();
    releaser.join().unwrap();
    assert_eq!(out[0].error, None);
    let modes: Vec<_> = out[0].locks.iter().map(|l| l.mode.as_str()).collect();
    assert!(modes.contains(&"ShareUpdateExclusiveLock"), "{modes:?}");
    assert!(out[0].locks.iter().all(|l| !l.blocks.contains(&"SELECT")));
}

#[test]
fn rollback_mode_changes_nothing_and_goes_on_after_errors() {
    let db = setup();
    let before = db.dump_schema();
    let (mut target, mut observer) = (db.connect(), db.connect());
    let statements: Vec<_> = [
        "BEGIN",
        "ALTER TABLE t ADD COLUMN broken nosuchtype",
        "ALTER TABLE t RENAME COLUMN a TO c",
        "CREATE INDEX CONCURRENTLY t_c ON t (c)",
        "COMMIT",
    ]
    .into_iter()
    .map(input)
    .collect();
    let out = trace(
        &mut target,
        &mut observer,
        &statements,
        TraceMode::RollbackAll,
    )
    .unwrap();
    assert!(out[0].skipped.is_some() && out[4].skipped.is_some());
    assert!(out[1].error.is_some());
    assert!(
        out[2].error.is_none() && !out[2].locks.is_empty(),
        "{:?}",
        out[2]
    );
    assert!(out[3].skipped.is_some());
    drop(target);
    assert_eq!(db.dump_schema(), before);
}
