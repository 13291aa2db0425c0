//! Partitioned tables, on Pagila's `payment` (partitioned by range of `payment_date`, seven
//! partitions): indexes are built partition by partition without a long lock and attached to
//! the parent's; unique ones must include the partition key, which is refused before anything
//! changes; a dropped index goes at complete; partitions made or dropped while a migration is
//! active, as pg_partman does, neither break it nor are blocked by it.

mod common;

use common::{count, exec, migration, Env};

fn pagila() -> Option<Env> {
    let mut env = Env::pagila()?;
    env.engine().init().expect("init");
    Some(env)
}

/// Each index named `name` on `payment` and on its partitions, with whether it is valid, and
/// whether the partitions' are attached to the parent's.
fn payment_indexes(c: &mut postgres::Client, name: &str) -> (bool, i64, i64) {
    let parent_valid: bool = c
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)",
            &[&format!("public.{name}")],
        )
        .expect("the parent's index exists")
        .get(0);
    let row = c
        .query_one(
            "SELECT count(*) FILTER (WHERE i.indisvalid),
                    count(*) FILTER (WHERE inh.inhparent = to_regclass($1))
               FROM pg_inherits p
               JOIN pg_index i ON i.indrelid = p.inhrelid
               LEFT JOIN pg_inherits inh ON inh.inhrelid = i.indexrelid
              WHERE p.inhparent = 'public.payment'::regclass
                AND (inh.inhparent = to_regclass($1) OR pg_get_indexdef(i.indexrelid) LIKE '%(amount)%')",
            &[&format!("public.{name}")],
        )
        .unwrap();
    (parent_valid, row.get(0), row.get(1))
}

#[test]
fn an_index_on_a_partitioned_table_is_built_partition_by_partition() {
    let Some(mut env) = pagila() else { return };
    let partitions = count(
        &mut env.db.connect(),
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.payment'::regclass",
    );
    assert_eq!(partitions, 7);
    let before = env.db.dump_schema();
    let m = migration(
        "02_payment_amount",
        "operations:\n  - create_index: {name: payment_amount_idx, table: payment, columns: [{column: amount}]}\n",
    );
    env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    let mut c = env.db.connect();
    assert_eq!(payment_indexes(&mut c, "payment_amount_idx"), (true, 7, 7));
    // Both versions write to the partitioned table through it.
    let insert = "INSERT INTO payment (customer_id, staff_id, rental_id, amount, payment_date)
                  VALUES (1, 1, 1, 9.99, '2022-03-15')";
    exec(&mut env.version("public"), insert);
    exec(&mut env.version("public_02_payment_amount"), insert);
    let explain: String = c
        .query("EXPLAIN SELECT * FROM payment WHERE amount = 9.99", &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0) + "\n")
        .collect();
    assert!(explain.contains("payment_amount_idx"), "{explain}");
    env.rollback();
    assert_eq!(
        before,
        env.db.dump_schema(),
        "rollback leaves the catalog as it was"
    );
    env.start(&m)
        .unwrap_or_else(|e| panic!("second start: {e}"));
    // A partition made while the migration is active (as pg_partman's maintenance does) gets
    // the index from PostgreSQL, and old partitions can still be detached and dropped: the
    // version schema's views read the parent, never a partition.
    exec(
        &mut c,
        "CREATE TABLE public.payment_p2022_08 PARTITION OF public.payment
             FOR VALUES FROM ('2022-08-01 00:00:00+00') TO ('2022-09-01 00:00:00+00');
         ALTER TABLE public.payment DETACH PARTITION public.payment_p2022_01;
         DROP TABLE public.payment_p2022_01;",
    );
    exec(
        &mut env.version("public_02_payment_amount"),
        "INSERT INTO payment (customer_id, staff_id, rental_id, amount, payment_date)
         VALUES (1, 1, 1, 1.50, '2022-08-15')",
    );
    env.complete();
    assert_eq!(payment_indexes(&mut c, "payment_amount_idx"), (true, 7, 7));

    // Dropping it again goes at complete, with every partition's index.
    let m = migration(
        "03_drop_amount",
        "operations:\n  - drop_index: {name: payment_amount_idx}\n",
    );
    env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    env.complete();
    let left = count(
        &mut c,
        "SELECT count(*) FROM pg_indexes WHERE indexdef LIKE '%(amount)%' AND tablename LIKE 'payment%'",
    );
    assert_eq!(left, 0);
}

#[test]
fn a_unique_index_on_a_partitioned_table_must_include_the_partition_key() {
    let Some(mut env) = pagila() else { return };
    let before = env.db.dump_schema();
    let bad = migration(
        "02_unique_id",
        "operations:\n  - create_index: {name: payment_id_key, table: payment, unique: true, columns: [{column: payment_id}]}\n",
    );
    let err = env.start(&bad).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, tandem_pg::Error::Plan(_)), "{message}");
    assert!(
        message.contains("02_unique_id.yaml: operations[0].create_index")
            && message.contains("partition key")
            && message.contains("payment_date"),
        "{message}"
    );
    assert_eq!(before, env.db.dump_schema(), "nothing changed");
    assert!(env.status().active.is_none());
    let good = migration(
        "02_unique_id_date",
        "operations:\n  - create_index: {name: payment_id_date_key, table: payment, unique: true, columns: [{column: payment_id}, {column: payment_date}]}\n",
    );
    env.start(&good).unwrap_or_else(|e| panic!("start: {e}"));
    env.complete();
    let mut c = env.db.connect();
    let (valid, unique): (bool, bool) = {
        let row = c
            .query_one(
                "SELECT indisvalid, indisunique FROM pg_index WHERE indexrelid = 'public.payment_id_date_key'::regclass",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert!(valid && unique);
}

#[test]
fn columns_of_a_partitioned_table_change_on_every_partition() {
    let Some(mut env) = pagila() else { return };
    let m = migration(
        "02_amount_cents",
        "operations:
  - add_column:
      table: payment
      up: (amount * 100)::int
      column:
        name: amount_cents
        type: int
        nullable: true
        check: {name: amount_cents_not_negative, constraint: amount_cents >= 0}
",
    );
    env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM payment WHERE amount_cents IS DISTINCT FROM (amount * 100)::int"
        ),
        0
    );
    // The check, added NOT VALID, was validated on the parent and every partition.
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_constraint WHERE conname = 'amount_cents_not_negative' AND convalidated"
        ),
        8
    );
    // A partition made while the migration is active has the column, and the trigger fills it
    // for the old version's writes.
    exec(
        &mut c,
        "CREATE TABLE public.payment_p2022_08 PARTITION OF public.payment
             FOR VALUES FROM ('2022-08-01 00:00:00+00') TO ('2022-09-01 00:00:00+00')",
    );
    exec(
        &mut env.version("public"),
        "INSERT INTO payment (customer_id, staff_id, rental_id, amount, payment_date)
         VALUES (1, 1, 1, 2.25, '2022-08-15')",
    );
    assert_eq!(
        count(
            &mut env.version("public_02_amount_cents"),
            "SELECT amount_cents::bigint FROM payment WHERE payment_date = '2022-08-15'"
        ),
        225
    );
    env.complete();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM payment WHERE amount_cents IS DISTINCT FROM (amount * 100)::int"
        ),
        0
    );
}

/// Before PostgreSQL 18 a foreign key cannot be added NOT VALID to a partitioned table, so it is
/// refused before anything changes; on 18 it is added NOT VALID and validated.
#[test]
fn a_foreign_key_on_a_partitioned_table_waits_for_postgresql_18() {
    let Some(mut env) = pagila() else { return };
    let m = migration(
        "02_payment_store",
        "operations:
  - add_column:
      table: payment
      column:
        name: store_id
        type: int
        nullable: true
        references: {name: payment_store_id_fkey, table: store, column: store_id}
",
    );
    if env.db.cluster().major_version() < 18 {
        let before = env.db.dump_schema();
        let message = env.start(&m).unwrap_err().to_string();
        assert!(
            message.contains("02_payment_store.yaml: operations[0].add_column")
                && message.contains("partitioned table \"payment\"")
                && message.contains("PostgreSQL 18"),
            "{message}"
        );
        assert_eq!(before, env.db.dump_schema(), "nothing changed");
        return;
    }
    env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    env.complete();
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.payment'::regclass AND conname = 'payment_store_id_fkey' AND convalidated"
        ),
        1
    );
}

/// A type change of a column of a partitioned table goes through a second column on the parent,
/// which every partition gets; one that an index or constraint of a partition's own uses is
/// refused before anything changes, since the second column would not carry it over.
#[test]
fn a_column_of_a_partitioned_table_changes_type_through_a_second_column() {
    let Some(mut env) = pagila() else { return };
    let before = env.db.dump_schema();
    let refused = migration(
        "02_staff_bigint",
        "operations:\n  - alter_column: {table: payment, column: staff_id, type: bigint, up: staff_id, down: staff_id::int}\n",
    );
    let message = env.start(&refused).unwrap_err().to_string();
    assert!(
        message.contains("02_staff_bigint.yaml: operations[0].alter_column")
            && message.contains("of its partition public.payment_p2022_01")
            && message.contains("would not carry over"),
        "{message}"
    );
    assert_eq!(before, env.db.dump_schema(), "nothing changed");

    env.db.execute(
        "CREATE TABLE public.readings (id int, at timestamptz, n int, PRIMARY KEY (id, at))
             PARTITION BY RANGE (at);
         CREATE TABLE public.readings_2022 PARTITION OF public.readings
             FOR VALUES FROM ('2022-01-01') TO ('2023-01-01');
         CREATE TABLE public.readings_2023 PARTITION OF public.readings
             FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
         INSERT INTO public.readings SELECT g, '2022-06-01'::timestamptz + g * interval '1 hour', g
           FROM generate_series(1, 12000) g;",
    );
    let before = env.db.dump_schema();
    let m = migration(
        "02_readings_bigint",
        "operations:\n  - alter_column: {table: readings, column: n, type: bigint, up: n * 10, down: (n / 10)::int}\n",
    );
    env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    let mut new = env.version("public_02_readings_bigint");
    assert_eq!(
        count(&mut new, "SELECT count(*) FROM readings WHERE n = id * 10"),
        12000
    );
    exec(
        &mut new,
        "INSERT INTO readings VALUES (0, '2023-03-01', 500)",
    );
    drop(new);
    exec(
        &mut env.version("public"),
        "INSERT INTO readings VALUES (-1, '2023-04-01', 7)",
    );
    env.rollback();
    exec(&mut env.db.connect(), "DELETE FROM readings WHERE id <= 0");
    assert_eq!(
        before,
        env.db.dump_schema(),
        "rollback leaves the catalog as it was"
    );
    env.start(&m)
        .unwrap_or_else(|e| panic!("second start: {e}"));
    env.complete();
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_attribute WHERE attname = 'n' AND atttypid = 'int8'::regtype
                AND attrelid IN ('public.readings'::regclass, 'public.readings_2022'::regclass, 'public.readings_2023'::regclass)"
        ),
        3
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM readings WHERE n = id * 10"),
        12000
    );
}
