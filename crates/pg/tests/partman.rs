//! pg_partman (Debian's `postgresql-15-partman`, 4.x) managing a table partitioned by day while a
//! migration is active: its maintenance creates and drops partitions without waiting behind
//! tandem, new partitions get the trigger, the new column, the index and the checks, and
//! rollback, start and complete work on whatever partitions there are by then. It always runs on the test kit's
//! `partman_cluster` (Debian's PostgreSQL 15), whatever `TANDEM_PG_BIN` says.

mod common;

use common::{count, exec, migration, Env};
use tandem_model::quote_ident;
use tandem_testkit::{partman_cluster, Access, TestDb};

const NEW: &str = "public_02_events_cents";

/// A database on the pg_partman cluster with the extension in schema `partman` (creating it
/// needs the superuser) and `public.events` under pg_partman's management: daily partitions from
/// ten days ago, three made ahead, and a row per hour from ten days ago to a day ahead.
fn partman_env() -> Env {
    let db = TestDb::on(partman_cluster());
    db.execute_as_superuser("CREATE SCHEMA partman; CREATE EXTENSION pg_partman SCHEMA partman;");
    if db.access() == Access::Least {
        // pg_partman's functions run with the caller's rights (EXECUTE is PUBLIC's), and only
        // the parent's owner may attach partitions to it, so the owner calls them. Beyond that
        // it needs to write pg_partman's configuration tables and CREATE on its schema, where
        // create_parent makes a template table; without CREATE, create_parent is refused.
        let role = quote_ident(db.user());
        db.execute_as_superuser(&format!(
            "GRANT USAGE, CREATE ON SCHEMA partman TO {role};
             GRANT ALL ON ALL TABLES IN SCHEMA partman TO {role};"
        ));
    }
    db.execute(
        "CREATE TABLE public.events (
             id bigint GENERATED ALWAYS AS IDENTITY,
             created_at timestamptz NOT NULL,
             amount int NOT NULL,
             PRIMARY KEY (id, created_at)
         ) PARTITION BY RANGE (created_at);
         SELECT partman.create_parent('public.events', 'created_at', 'native', 'daily',
             p_premake => 3,
             p_start_partition => (now() - interval '10 days')::text);
         INSERT INTO public.events (created_at, amount)
             SELECT now() - interval '10 days' + n * interval '1 hour', n
               FROM generate_series(0, 11 * 24) AS n;",
    );
    Env::on(db)
}

/// The names of `events`' partitions, oldest first (pg_partman's names sort by date, and the
/// default partition sorts after them).
fn partitions(c: &mut postgres::Client) -> Vec<String> {
    c.query(
        "SELECT inhrelid::regclass::text FROM pg_inherits
          WHERE inhparent = 'public.events'::regclass ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Runs pg_partman's maintenance for `events` after setting how many partitions it keeps ahead
/// and how old the ones it drops are, under a lock timeout, so that waiting behind anything
/// (tandem included) fails the test instead of passing slowly.
fn maintain(c: &mut postgres::Client, premake: i32, retention: &str, call: &str) {
    exec(
        c,
        &format!(
            "UPDATE partman.part_config
                SET premake = {premake}, retention = '{retention}', retention_keep_table = false
              WHERE parent_table = 'public.events';
             SET lock_timeout = '5s';"
        ),
    );
    // Alone in its query: several statements in one run as one transaction, in which the
    // procedure could not commit between partition sets.
    exec(c, call);
    exec(c, "RESET lock_timeout");
}

/// What the migration left on `events`' partitions: how many lack the column, a clone of the
/// parent's triggers, and a valid index attached to the parent's `events_cents_idx`.
fn partitions_lacking(c: &mut postgres::Client) -> (i64, i64, i64) {
    let row = c
        .query_one(
            "SELECT count(*) FILTER (WHERE NOT EXISTS (
                        SELECT FROM pg_attribute a
                         WHERE a.attrelid = p.inhrelid AND a.attname = 'amount_cents'
                           AND NOT a.attisdropped)),
                    count(*) FILTER (WHERE EXISTS (
                        SELECT FROM pg_trigger pt
                         WHERE pt.tgrelid = 'public.events'::regclass AND NOT pt.tgisinternal
                           AND NOT EXISTS (SELECT FROM pg_trigger ct
                                            WHERE ct.tgparentid = pt.oid
                                              AND ct.tgrelid = p.inhrelid))),
                    count(*) FILTER (WHERE NOT EXISTS (
                        SELECT FROM pg_index i
                          JOIN pg_inherits ii ON ii.inhrelid = i.indexrelid
                         WHERE i.indrelid = p.inhrelid AND i.indisvalid
                           AND ii.inhparent = to_regclass('public.events_cents_idx')))
               FROM pg_inherits p
              WHERE p.inhparent = 'public.events'::regclass",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

fn tandem_triggers(c: &mut postgres::Client) -> i64 {
    count(
        c,
        "SELECT count(*) FROM pg_trigger
          WHERE tgrelid = 'public.events'::regclass AND NOT tgisinternal",
    )
}

#[test]
fn pg_partman_maintenance_runs_while_a_migration_is_active() {
    let mut env = partman_env();
    let mut c = env.db.connect();
    assert_eq!(env.db.cluster().major_version(), 15);
    let m = migration(
        "02_events_cents",
        "operations:
  - add_column:
      table: events
      up: amount * 100
      column: {name: amount_cents, type: bigint, nullable: true}
  - create_index: {name: events_cents_idx, table: events, columns: [{column: amount_cents}]}
",
    );
    env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    assert!(tandem_triggers(&mut c) > 0, "start put a trigger on events");
    assert_eq!(partitions_lacking(&mut c), (0, 0, 0));
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM events WHERE amount_cents IS DISTINCT FROM amount * 100"
        ),
        0,
        "the backfill filled every partition"
    );

    // Both versions' clients are connected and have read through their views when maintenance
    // runs: it makes partitions up to six days ahead and drops those older than five days.
    let mut old = env.version("public");
    let mut new = env.version(NEW);
    let rows = count(&mut old, "SELECT count(*) FROM events");
    assert_eq!(count(&mut new, "SELECT count(*) FROM events"), rows);
    let before = partitions(&mut c);
    maintain(
        &mut c,
        6,
        "5 days",
        "SELECT partman.run_maintenance('public.events')",
    );
    let after = partitions(&mut c);
    let made: Vec<_> = after.iter().filter(|p| !before.contains(p)).collect();
    let dropped: Vec<_> = before.iter().filter(|p| !after.contains(p)).collect();
    assert!(made.len() >= 3, "made {made:?} (before {before:?})");
    assert!(dropped.len() >= 4, "dropped {dropped:?} (after {after:?})");
    assert_eq!(
        partitions_lacking(&mut c),
        (0, 0, 0),
        "the new partitions {made:?} have the column, the trigger and the index"
    );
    assert!(count(&mut old, "SELECT count(*) FROM events") < rows);

    // The old version writes into a partition maintenance just made; the trigger fills the new
    // column, and the new version reads it. The new version's writes reach the old one.
    exec(
        &mut old,
        "INSERT INTO events (created_at, amount) VALUES (now() + interval '5 days', 7)",
    );
    assert_eq!(
        count(
            &mut new,
            "SELECT amount_cents FROM events WHERE created_at > now() + interval '4 days'"
        ),
        700
    );
    exec(
        &mut new,
        "INSERT INTO events (created_at, amount, amount_cents)
         VALUES (now() + interval '4 days', 8, 800)",
    );
    assert_eq!(
        count(
            &mut old,
            "SELECT amount::bigint FROM events
              WHERE created_at BETWEEN now() + interval '3 days' AND now() + interval '4 days 1 hour'"
        ),
        8
    );

    env.rollback();
    assert_eq!(tandem_triggers(&mut c), 0, "rollback dropped the trigger");
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_attribute a JOIN pg_class r ON r.oid = a.attrelid
              WHERE r.relname LIKE 'events%' AND a.attname = 'amount_cents' AND NOT a.attisdropped"
        ),
        0,
        "rollback dropped the column from the parent and every partition"
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'events%cents%' AND relkind IN ('i', 'I')"
        ),
        0,
        "rollback dropped the index"
    );

    // Started again, then maintenance once more (with the procedure the background worker
    // calls): partitions eight days ahead, none older than four days. Complete then works on
    // the partitions there are by now.
    env.start(&m)
        .unwrap_or_else(|e| panic!("second start: {e}"));
    let before = partitions(&mut c);
    maintain(&mut c, 8, "4 days", "CALL partman.run_maintenance_proc()");
    let after = partitions(&mut c);
    let made: Vec<_> = after.iter().filter(|p| !before.contains(p)).collect();
    let dropped: Vec<_> = before.iter().filter(|p| !after.contains(p)).collect();
    assert!(!made.is_empty(), "made none (before {before:?})");
    assert!(!dropped.is_empty(), "dropped none (after {after:?})");
    exec(
        &mut env.version("public"),
        "INSERT INTO events (created_at, amount) VALUES (now() + interval '7 days', 9)",
    );
    env.complete();
    assert_eq!(tandem_triggers(&mut c), 0, "complete dropped the trigger");
    assert_eq!(partitions_lacking(&mut c).0, 0);
    assert_eq!(partitions_lacking(&mut c).2, 0);
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM events WHERE amount_cents IS DISTINCT FROM amount * 100"
        ),
        0
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT amount_cents FROM events WHERE created_at > now() + interval '6 days'"
        ),
        900
    );

    // After complete a partition maintenance makes gets the index from PostgreSQL.
    let before = partitions(&mut c);
    maintain(
        &mut c,
        10,
        "4 days",
        "SELECT partman.run_maintenance('public.events')",
    );
    assert!(partitions(&mut c).len() > before.len());
    assert_eq!(partitions_lacking(&mut c), (0, 0, 0));
}

/// A NOT NULL column with a check: start adds both checks NOT VALID and validates them on the
/// parent and every partition; each partition pg_partman makes while the migration is active is
/// attached with them, valid, so the old version's write into it is checked too.
#[test]
fn a_not_null_column_with_a_check_reaches_the_partitions_pg_partman_makes() {
    let mut env = partman_env();
    let mut c = env.db.connect();
    let m = migration(
        "02_events_cents",
        "operations:
  - add_column:
      table: events
      up: amount * 100
      column:
        name: amount_cents
        type: bigint
        nullable: false
        check: {name: amount_cents_not_negative, constraint: amount_cents >= 0}
",
    );
    env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    let before = partitions(&mut c);
    maintain(
        &mut c,
        6,
        "5 days",
        "SELECT partman.run_maintenance('public.events')",
    );
    let after = partitions(&mut c);
    assert!(
        after.iter().any(|p| !before.contains(p)),
        "made none (before {before:?})"
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_inherits p
              WHERE p.inhparent = 'public.events'::regclass
                AND (SELECT count(*) FROM pg_constraint k
                      WHERE k.conrelid = p.inhrelid AND k.contype = 'c' AND k.convalidated) < 2"
        ),
        0,
        "every partition, those maintenance made included, has both checks, valid"
    );
    exec(
        &mut env.version("public"),
        "INSERT INTO events (created_at, amount) VALUES (now() + interval '5 days', 7)",
    );
    assert_eq!(
        count(
            &mut env.version(NEW),
            "SELECT amount_cents FROM events WHERE created_at > now() + interval '4 days'"
        ),
        700
    );
    env.complete();
    // Every partition, those made during the migration included, has the validated check and
    // the column NOT NULL.
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_inherits p
              WHERE p.inhparent = 'public.events'::regclass
                AND NOT (EXISTS (SELECT FROM pg_constraint k
                                  WHERE k.conrelid = p.inhrelid AND k.convalidated
                                    AND k.conname = 'amount_cents_not_negative')
                         AND EXISTS (SELECT FROM pg_attribute a
                                      WHERE a.attrelid = p.inhrelid AND a.attnotnull
                                        AND a.attname = 'amount_cents'))"
        ),
        0
    );
    let error = env
        .version(NEW)
        .batch_execute(
            "INSERT INTO events (created_at, amount, amount_cents) VALUES (now(), 1, NULL)",
        )
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some(&postgres::error::SqlState::NOT_NULL_VIOLATION)
    );
}
