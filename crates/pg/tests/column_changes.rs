//! The column-change engine against real PostgreSQL: type changes, nullability, constraints,
//! defaults and comments, through a second column where the old version must not see the
//! change and in place where it may. Old and new clients write in both directions; every row is
//! checked after complete and after rollback.

mod common;

use common::{count, exec, migration, Env};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const ITEMS: &str = "operations:
  - create_table:
      name: items
      columns:
        - {name: id, type: serial, pk: true}
        - {name: name, type: text, nullable: true, comment: the name}
        - {name: rating, type: text, default: '''0'''}
        - {name: code, type: varchar(20), nullable: true, unique: true}
";

/// `items` with 3000 rows; a tenth have no name; `code` unique; `rating` holds numbers as text.
fn setup() -> Env {
    let mut env = Env::new();
    env.apply("01_items", ITEMS);
    exec(
        &mut env.db.connect(),
        "INSERT INTO items (name, rating, code)
         SELECT CASE WHEN g % 10 = 0 THEN NULL ELSE 'item ' || g END, (g % 5)::text, 'c' || g
           FROM generate_series(1, 3000) g;
         CREATE INDEX items_name_idx ON items (lower(name));
         ALTER TABLE items ADD CONSTRAINT name_not_blank CHECK (name <> '')",
    );
    env
}

fn columns(c: &mut postgres::Client) -> Vec<String> {
    c.query(
        "SELECT attname::text FROM pg_attribute WHERE attrelid = 'public.items'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn one<T: for<'a> postgres::types::FromSql<'a>>(c: &mut postgres::Client, sql: &str) -> T {
    c.query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

#[test]
fn type_change_translates_both_ways_and_swaps_at_complete() {
    let mut env = setup();
    let before = env.db.dump_schema();
    let m = migration(
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
    for pass in 0..2 {
        let report = env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
        assert_eq!(report.backfilled_rows, 3000);
        let mut old = env.version("public_01_items");
        let mut new = env.version("public_02_rating_int");
        assert_eq!(
            one::<String>(
                &mut new,
                "SELECT pg_typeof(rating)::text FROM items LIMIT 1"
            ),
            "integer"
        );
        assert_eq!(
            count(&mut new, "SELECT count(*) FROM items WHERE rating = id % 5"),
            3000,
            "every existing row backfilled through up"
        );
        exec(
            &mut old,
            "INSERT INTO items (id, name, rating) VALUES (90001, 'o', '42')",
        );
        assert_eq!(
            count(
                &mut new,
                "SELECT rating::bigint FROM items WHERE id = 90001"
            ),
            42
        );
        exec(
            &mut new,
            "INSERT INTO items (id, name, rating) VALUES (90002, 'n', 7)",
        );
        assert_eq!(
            one::<String>(&mut old, "SELECT rating FROM items WHERE id = 90002"),
            "7"
        );
        exec(
            &mut new,
            "UPDATE items SET rating = rating + 100 WHERE id <= 10",
        );
        assert_eq!(
            count(
                &mut old,
                "SELECT count(*) FROM items WHERE id <= 10 AND rating = ((id % 5) + 100)::text"
            ),
            10
        );
        exec(
            &mut old,
            "UPDATE items SET rating = '9' WHERE id BETWEEN 11 AND 20",
        );
        assert_eq!(
            count(
                &mut new,
                "SELECT count(*) FROM items WHERE id BETWEEN 11 AND 20 AND rating = 9"
            ),
            10
        );
        // The new version's default comes from the old one's, carried over.
        exec(&mut new, "INSERT INTO items (id, name) VALUES (90003, 'd')");
        assert_eq!(
            count(
                &mut new,
                "SELECT rating::bigint FROM items WHERE id = 90003"
            ),
            0
        );
        drop((old, new));
        if pass == 0 {
            env.rollback();
            assert_eq!(
                before,
                env.db.dump_schema(),
                "rollback leaves the catalog as it was"
            );
            let mut c = env.db.connect();
            assert_eq!(
                one::<String>(&mut c, "SELECT rating FROM items WHERE id = 90002"),
                "7",
                "the new version's writes survive rollback"
            );
            exec(
                &mut c,
                "DELETE FROM items WHERE id > 3000; UPDATE items SET rating = (id % 5)::text",
            );
        }
    }
    env.complete();
    let mut c = env.db.connect();
    assert_eq!(columns(&mut c), ["id", "name", "code", "rating"]);
    assert_eq!(
        one::<String>(&mut c, "SELECT pg_typeof(rating)::text FROM items LIMIT 1"),
        "integer"
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM items WHERE id <= 10 AND rating = (id % 5) + 100"
        ),
        10
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM items WHERE id BETWEEN 11 AND 20 AND rating = 9"
        ),
        10
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM items WHERE id > 20 AND id <= 3000 AND rating = id % 5"
        ),
        2980
    );
    exec(&mut c, "INSERT INTO items (id) VALUES (90009)");
    assert_eq!(
        count(&mut c, "SELECT rating::bigint FROM items WHERE id = 90009"),
        0,
        "the default, cast to the new type"
    );
    // No trigger or helper left behind.
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.items'::regclass"
        ),
        0
    );
}

#[test]
fn not_null_with_up_carries_indexes_and_constraints_over() {
    let mut env = setup();
    let before = env.db.dump_schema();
    let m = migration(
        "02_name_required",
        "operations:
  - alter_column:
      table: items
      column: name
      nullable: false
      up: COALESCE(name, 'unnamed ' || id)
      down: name
",
    );
    env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    {
        let mut old = env.version("public_01_items");
        let mut new = env.version("public_02_name_required");
        assert_eq!(
            count(&mut new, "SELECT count(*) FROM items WHERE name IS NULL"),
            0
        );
        assert_eq!(
            count(
                &mut new,
                "SELECT count(*) FROM items WHERE name = 'unnamed 10'"
            ),
            1
        );
        // The old version may still write NULL; the new version sees the computed value.
        exec(
            &mut old,
            "INSERT INTO items (id, name) VALUES (90001, NULL)",
        );
        assert_eq!(
            count(
                &mut old,
                "SELECT count(*) FROM items WHERE id = 90001 AND name IS NULL"
            ),
            1
        );
        assert_eq!(
            count(
                &mut new,
                "SELECT count(*) FROM items WHERE name = 'unnamed 90001'"
            ),
            1
        );
        // The new version may not.
        assert!(new
            .batch_execute("INSERT INTO items (id, name) VALUES (90002, NULL)")
            .is_err());
        // The carried-over check holds for the new version too.
        assert!(new
            .batch_execute("INSERT INTO items (id, name) VALUES (90003, '')")
            .is_err());
    }
    env.rollback();
    assert_eq!(before, env.db.dump_schema());
    exec(&mut env.db.connect(), "DELETE FROM items WHERE id > 3000");
    env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    env.complete();
    let mut c = env.db.connect();
    assert!(one::<bool>(&mut c, "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'public.items'::regclass AND attname = 'name'"));
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM items WHERE name LIKE 'unnamed %'"
        ),
        300
    );
    // Index, check and comment carried over under their own names.
    assert_eq!(
        one::<String>(
            &mut c,
            "SELECT pg_get_indexdef('public.items_name_idx'::regclass)"
        ),
        "CREATE INDEX items_name_idx ON public.items USING btree (lower(name))"
    );
    assert_eq!(
        one::<String>(
            &mut c,
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'name_not_blank'"
        ),
        "CHECK ((name <> ''::text))"
    );
    assert_eq!(
        one::<String>(
            &mut c,
            "SELECT col_description(attrelid, attnum) FROM pg_attribute WHERE attrelid = 'public.items'::regclass AND attname = 'name'"
        ),
        "the name"
    );
    assert_eq!(count(&mut c, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.items'::regclass AND NOT convalidated"), 0);
}

#[test]
fn many_changes_to_one_column_share_one_new_column() {
    let mut env = setup();
    let m = migration(
        "02_code",
        "operations:
  - alter_column:
      table: items
      column: code
      type: text
      nullable: false
      default: '''none'''
      comment: the item code
      check: {name: code_length, constraint: length(code) > 1}
      up: COALESCE(code, 'x' || id)
  - alter_column:
      table: items
      column: code
      name: sku
      up: upper(code)
      down: lower(sku)
",
    );
    let report = env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    assert_eq!(report.backfilled_rows, 3000);
    {
        let mut c = env.db.connect();
        let shadows: Vec<String> = columns(&mut c)
            .into_iter()
            .filter(|c| c.starts_with("_tandem"))
            .collect();
        assert_eq!(
            shadows.len(),
            1,
            "one new column for both operations: {shadows:?}"
        );
        let mut old = env.version("public_01_items");
        let mut new = env.version("public_02_code");
        assert_eq!(
            count(&mut new, "SELECT count(*) FROM items WHERE sku = 'C7'"),
            1
        );
        exec(
            &mut old,
            "INSERT INTO items (id, code) VALUES (90001, 'abc')",
        );
        assert_eq!(
            count(&mut new, "SELECT count(*) FROM items WHERE sku = 'ABC'"),
            1
        );
        exec(
            &mut new,
            "INSERT INTO items (id, sku) VALUES (90002, 'XYZ')",
        );
        assert_eq!(
            count(&mut old, "SELECT count(*) FROM items WHERE code = 'xyz'"),
            1
        );
        exec(&mut new, "INSERT INTO items (id) VALUES (90003)");
        assert_eq!(
            count(
                &mut new,
                "SELECT count(*) FROM items WHERE id = 90003 AND sku = 'none'"
            ),
            1,
            "the new default"
        );
        // The old unique constraint is carried over to the new column.
        assert!(new
            .batch_execute("INSERT INTO items (id, sku) VALUES (90004, 'XYZ')")
            .is_err());
    }
    env.complete();
    let mut c = env.db.connect();
    assert_eq!(columns(&mut c), ["id", "name", "rating", "sku"]);
    assert_eq!(one::<String>(&mut c, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'public.items'::regclass AND attname = 'sku'"), "text");
    assert_eq!(
        one::<String>(
            &mut c,
            "SELECT col_description(attrelid, attnum) FROM pg_attribute WHERE attrelid = 'public.items'::regclass AND attname = 'sku'"
        ),
        "the item code"
    );
    assert!(one::<bool>(
        &mut c,
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'public.items'::regclass AND attname = 'sku'"
    ));
    let constraints: Vec<String> = c
        // PostgreSQL 18 also lists NOT NULL as constraints (contype 'n'), under names that do not
        // follow renames; NOT NULL itself is asserted above.
        .query("SELECT conname::text FROM pg_constraint WHERE conrelid = 'public.items'::regclass AND contype <> 'n' ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        constraints,
        [
            "code_length",
            "items_code_key",
            "items_pkey",
            "name_not_blank"
        ]
    );
    assert!(one::<bool>(&mut c, "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'public.items'::regclass AND attname = 'sku'"));
    // No constraint keeps a temporary name; on PostgreSQL 18 that includes the NOT NULL
    // constraint the second column was given.
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.items'::regclass AND conname LIKE '%tandem%'"
        ),
        0
    );
}

#[test]
fn cheap_changes_copy_nothing() {
    let mut env = setup();
    let before = env.db.dump_schema();
    let m = migration(
        "02_cheap",
        "operations:
  - alter_column: {table: items, column: rating, default: '''5''', comment: stars}
  - alter_column:
      table: items
      column: code
      check: {name: code_starts_with_c, constraint: code LIKE 'c%'}
      up: code
      down: code
  - create_constraint:
      type: unique
      table: items
      name: items_name_code
      columns: [name, code]
      up: {name: name, code: code}
      down: {name: name, code: code}
",
    );
    let report = env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    assert_eq!(report.backfilled_rows, 0, "nothing to copy");
    {
        let mut c = env.db.connect();
        assert_eq!(
            columns(&mut c),
            ["id", "name", "rating", "code"],
            "no second column"
        );
        let mut old = env.version("public_01_items");
        let mut new = env.version("public_02_cheap");
        // Each version keeps its own default until complete.
        exec(&mut old, "INSERT INTO items (id) VALUES (90001)");
        exec(&mut new, "INSERT INTO items (id) VALUES (90002)");
        assert_eq!(
            one::<String>(&mut c, "SELECT rating FROM items WHERE id = 90001"),
            "0"
        );
        assert_eq!(
            one::<String>(&mut c, "SELECT rating FROM items WHERE id = 90002"),
            "5"
        );
        // The new check is in force (validated), for both versions.
        assert!(one::<bool>(
            &mut c,
            "SELECT convalidated FROM pg_constraint WHERE conname = 'code_starts_with_c'"
        ));
        assert!(old
            .batch_execute("INSERT INTO items (id, code) VALUES (90003, 'zz')")
            .is_err());
    }
    env.rollback();
    assert_eq!(before, env.db.dump_schema());
    exec(&mut env.db.connect(), "DELETE FROM items WHERE id > 3000");
    env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    env.complete();
    let mut c = env.db.connect();
    assert_eq!(one::<String>(&mut c, "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'public.items'::regclass AND adnum = 3"), "'5'::text");
    assert_eq!(
        one::<String>(
            &mut c,
            "SELECT col_description(attrelid, attnum) FROM pg_attribute WHERE attrelid = 'public.items'::regclass AND attname = 'rating'"
        ),
        "stars"
    );
    assert_eq!(
        one::<String>(
            &mut c,
            "SELECT contype::text FROM pg_constraint WHERE conname = 'items_name_code'"
        ),
        "u"
    );
}

#[test]
fn drop_constraint_with_down_frees_the_new_version() {
    let mut env = setup();
    let m = migration(
        "02_drop_check",
        "operations:
  - drop_constraint:
      table: items
      name: name_not_blank
      up: name
      down: CASE WHEN name = '' THEN NULL ELSE name END
",
    );
    env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    {
        let mut old = env.version("public_01_items");
        let mut new = env.version("public_02_drop_check");
        exec(&mut new, "INSERT INTO items (id, name) VALUES (90001, '')");
        assert_eq!(
            count(
                &mut old,
                "SELECT count(*) FROM items WHERE id = 90001 AND name IS NULL"
            ),
            1
        );
        assert!(
            old.batch_execute("INSERT INTO items (id, name) VALUES (90002, '')")
                .is_err(),
            "the old version keeps its check"
        );
    }
    env.complete();
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_constraint WHERE conname = 'name_not_blank'"
        ),
        0
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM items WHERE id = 90001 AND name = ''"
        ),
        1
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM items WHERE name = 'item 7'"),
        1
    );
}

#[test]
fn old_version_writes_during_the_backfill_are_kept() {
    let mut env = setup();
    exec(
        &mut env.db.connect(),
        "INSERT INTO items (name, rating) SELECT 'bulk ' || g, (g % 5)::text FROM generate_series(1, 30000) g",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let writer = {
        let stop = stop.clone();
        let done = done.clone();
        let mut old = env.version("public_01_items");
        std::thread::spawn(move || {
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                old.batch_execute(&format!(
                    "UPDATE items SET rating = '{}' WHERE id = {}; INSERT INTO items (name, rating) VALUES ('w{n}', '{}')",
                    n % 7,
                    1 + (n * 37) % 33000,
                    n % 3
                ))
                .expect("old-version write");
                done.store(n, Ordering::Relaxed);
            }
            n
        })
    };
    let m = migration(
        "02_rating_int",
        "operations:
  - alter_column: {table: items, column: rating, type: bigint, up: CAST(rating AS bigint) * 10, down: CAST(rating / 10 AS text)}
",
    );
    env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    // Writes of the old version once the new one is active too, not only during the backfill.
    let after_start = done.load(Ordering::Relaxed);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while done.load(Ordering::Relaxed) < after_start + 20 {
        assert!(std::time::Instant::now() < deadline, "the writer stalled");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    assert!(writes > after_start);
    let mut new = env.version("public_02_rating_int");
    let mut old = env.version("public_01_items");
    let expected: Vec<(i32, String)> = old
        .query("SELECT id, rating FROM items ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let got: Vec<(i32, i64)> = new
        .query("SELECT id, rating FROM items ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(expected.len(), got.len());
    for ((id, old_value), (id2, new_value)) in expected.iter().zip(&got) {
        assert_eq!(id, id2);
        assert_eq!(
            old_value.parse::<i64>().unwrap() * 10,
            *new_value,
            "row {id}"
        );
    }
    drop((new, old));
    env.complete();
}

/// A view of the user's over a column that changes type through a second column, and a view on
/// that view: both versions read them while the migration is active; complete creates both again
/// over the new column, with their options, comments and grants, in one transaction.
#[test]
fn complete_recreates_the_users_views_over_a_retyped_column() {
    let mut env = setup();
    exec(
        &mut env.db.connect(),
        "CREATE VIEW public.rating_report WITH (security_barrier = true) AS SELECT id, rating FROM public.items;
         CREATE VIEW public.top_ratings AS SELECT rating FROM public.rating_report WHERE id < 10
           WITH LOCAL CHECK OPTION;
         COMMENT ON VIEW public.rating_report IS 'ratings';
         COMMENT ON COLUMN public.rating_report.rating IS 'the rating';
         GRANT SELECT ON public.rating_report TO PUBLIC",
    );
    let m = migration(
        "02_rating_int",
        "operations:\n  - alter_column: {table: items, column: rating, type: integer, up: CAST(rating AS integer), down: CAST(rating AS text)}\n",
    );
    env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    for version in ["public_01_items", "public_02_rating_int"] {
        let mut c = env.version(version);
        assert_eq!(count(&mut c, "SELECT count(*) FROM rating_report"), 3000);
        assert_eq!(count(&mut c, "SELECT count(*) FROM top_ratings"), 9);
    }
    env.complete();
    let mut c = env.db.connect();
    assert_eq!(
        one::<String>(
            &mut c,
            "SELECT pg_typeof(rating)::text FROM rating_report LIMIT 1"
        ),
        "integer"
    );
    assert_eq!(
        one::<String>(
            &mut c,
            "SELECT pg_typeof(rating)::text FROM top_ratings LIMIT 1"
        ),
        "integer"
    );
    assert_eq!(
        one::<String>(
            &mut c,
            "SELECT concat_ws(' | ', obj_description('public.rating_report'::regclass, 'pg_class'),
                    col_description('public.rating_report'::regclass, 2),
                    (SELECT array_to_string(reloptions, ',') FROM pg_class WHERE oid = 'public.rating_report'::regclass),
                    (SELECT array_to_string(reloptions, ',') FROM pg_class WHERE oid = 'public.top_ratings'::regclass),
                    has_table_privilege('public', 'public.rating_report', 'SELECT')::text)"
        ),
        "ratings | the rating | security_barrier=true | check_option=local | true"
    );
}

/// Old and new clients write at the same time while the migration is active; the new client
/// keeps writing, through statements it prepared before, while complete swaps the columns.
/// Every row ends with the value the last writer gave it, translated.
#[test]
fn both_versions_write_at_once_and_the_new_one_through_complete() {
    let mut env = setup();
    let m = migration(
        "02_rating_int",
        "operations:\n  - alter_column: {table: items, column: rating, type: integer, up: CAST(rating AS integer), down: CAST(rating AS text)}\n",
    );
    env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    let stop_old = Arc::new(AtomicBool::new(false));
    let stop_new = Arc::new(AtomicBool::new(false));
    // Writes done, old and new: the test moves on once each has written enough, not after a
    // fixed time.
    let old_done = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let new_done = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let wait_for = |done: &std::sync::atomic::AtomicI64, at_least: i64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while done.load(Ordering::Relaxed) < at_least {
            assert!(std::time::Instant::now() < deadline, "the writers stalled");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    // The old version owns ids 1..=1500, the new one 1501..=3000: each sets rating to a counter.
    let old_writer = {
        let stop = stop_old.clone();
        let done = old_done.clone();
        let mut c = env.version("public_01_items");
        std::thread::spawn(move || {
            let update = c
                .prepare("UPDATE items SET rating = $1 WHERE id = $2")
                .unwrap();
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let id = (1 + n % 1500) as i32;
                c.execute(&update, &[&(n % 1000).to_string(), &id])
                    .expect("old-version write");
                done.store(n, Ordering::Relaxed);
            }
            n
        })
    };
    let new_writer = {
        let stop = stop_new.clone();
        let done = new_done.clone();
        let mut c = env.version("public_02_rating_int");
        std::thread::spawn(move || {
            let update = c
                .prepare("UPDATE items SET rating = $1 WHERE id = $2")
                .unwrap();
            let read = c.prepare("SELECT rating FROM items WHERE id = $1").unwrap();
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let id = (1501 + n % 1500) as i32;
                let value = (n % 1000) as i32;
                c.execute(&update, &[&value, &id])
                    .expect("new-version write");
                let back: i32 = c.query_one(&read, &[&id]).expect("new-version read").get(0);
                assert_eq!(back, value);
                done.store(n, Ordering::Relaxed);
            }
            n
        })
    };
    // Both write over every one of their rows at least once, at the same time.
    wait_for(&old_done, 1600);
    wait_for(&new_done, 1600);
    stop_old.store(true, Ordering::Relaxed);
    let old_writes = old_writer.join().unwrap();
    // What each version sees of the other's rows while both are there.
    {
        let mut old = env.version("public_01_items");
        let mut new = env.version("public_02_rating_int");
        let old_view: Vec<(i32, String)> = old
            .query("SELECT id, rating FROM items ORDER BY id", &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let new_view: Vec<(i32, i32)> = new
            .query("SELECT id, rating FROM items ORDER BY id", &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        for ((id, o), (_, n)) in old_view.iter().zip(&new_view) {
            if *id <= 1500 {
                assert_eq!(
                    o.parse::<i32>().unwrap(),
                    *n,
                    "row {id}: old's write reaches new"
                );
            }
        }
    }
    env.complete();
    // The new version goes on writing through its prepared statements after complete.
    let after_complete = new_done.load(Ordering::Relaxed);
    wait_for(&new_done, after_complete + 200);
    stop_new.store(true, Ordering::Relaxed);
    let new_writes = new_writer
        .join()
        .expect("the new version's prepared statements survive complete");
    assert!(old_writes > 0 && new_writes > 0);
    let mut c = env.db.connect();
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM items WHERE rating IS NULL"),
        0
    );
    assert_eq!(columns(&mut c), ["id", "name", "code", "rating"]);
}

/// An index the migration creates on a column that a later operation of the same migration
/// changes through a second column is built on that second column, so complete keeps it.
#[test]
fn an_index_made_before_a_type_change_in_the_same_migration_survives_it() {
    let mut env = setup();
    let m = migration(
        "02_index_then_type",
        "operations:
  - create_index: {name: items_rating_idx, table: items, columns: [{column: rating}]}
  - alter_column: {table: items, column: rating, type: integer, up: CAST(rating AS integer), down: CAST(rating AS text)}
",
    );
    env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    env.complete();
    let mut c = env.db.connect();
    assert_eq!(
        one::<String>(
            &mut c,
            "SELECT pg_get_indexdef('public.items_rating_idx'::regclass)"
        ),
        "CREATE INDEX items_rating_idx ON public.items USING btree (rating)"
    );
    assert_eq!(one::<String>(&mut c, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'public.items'::regclass AND attname = 'rating'"), "integer");
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM items WHERE rating = id % 5"),
        3000
    );
}

/// Once the backfill is done, an UPDATE that changes none of the columns `up` and `down` read
/// does not go through the trigger function; one that changes them does.
#[test]
fn after_the_backfill_only_updates_of_the_columns_read_go_through_the_trigger() {
    let mut env = setup();
    exec(&mut env.db.connect(), "CREATE SEQUENCE public.bump");
    let m = migration(
        "02_rating_bumped",
        "operations:\n  - alter_column: {table: items, column: rating, type: bigint, up: \"CAST(rating AS bigint) * 1000000 + nextval('public.bump')\", down: CAST(rating / 1000000 AS text)}\n",
    );
    env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    let mut old = env.version("public_01_items");
    let mut new = env.version("public_02_rating_bumped");
    let value = |new: &mut postgres::Client| -> i64 {
        new.query_one("SELECT rating FROM items WHERE id = 7", &[])
            .unwrap()
            .get(0)
    };
    let before = value(&mut new);
    exec(&mut old, "UPDATE items SET name = 'renamed' WHERE id = 7");
    assert_eq!(
        value(&mut new),
        before,
        "an update of another column leaves it"
    );
    exec(&mut old, "UPDATE items SET rating = '4' WHERE id = 7");
    let after = value(&mut new);
    assert_ne!(after, before);
    assert_eq!(after / 1_000_000, 4, "an update of rating recomputes it");
    exec(&mut new, "UPDATE items SET rating = 9000001 WHERE id = 8");
    assert_eq!(
        one::<String>(&mut old, "SELECT rating FROM items WHERE id = 8"),
        "9",
        "the new version's write reaches the old column"
    );
    drop((old, new));
    env.complete();
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.items'::regclass"
        ),
        0
    );
}

const NOTES: &str = "operations:
  - create_table:
      name: notes
      columns:
        - {name: id, type: serial, pk: true}
        - {name: title, type: varchar(20), unique: true}
        - {name: amount, type: 'numeric(10,2)', default: '0'}
        - {name: body, type: varchar(50), nullable: true}
";

/// Widening types PostgreSQL changes without a rewrite: no second column, no trigger, nothing
/// backfilled; the type changes at complete, in place.
const WIDEN: &str = "operations:
  - alter_column: {table: notes, column: title, type: varchar(40), up: title, down: title}
  - alter_column: {table: notes, column: amount, type: 'numeric(12,2)'}
  - alter_column: {table: notes, column: body, type: text}
";

fn type_of(c: &mut postgres::Client, table: &str, column: &str) -> String {
    one(
        c,
        &format!("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = '{table}'::regclass AND attname = '{column}'"),
    )
}

/// Statements a client prepares once and keeps, as drivers with a statement cache do: a read
/// returning every column, a write returning the changed columns, and one returning none of
/// them.
struct Prepared {
    read: postgres::Statement,
    write: postgres::Statement,
    count: postgres::Statement,
}

impl Prepared {
    fn new(c: &mut postgres::Client) -> Prepared {
        Prepared {
            read: c
                .prepare("SELECT id, title, amount::text, body FROM notes WHERE id = $1")
                .unwrap(),
            write: c
                .prepare("UPDATE notes SET body = $2 WHERE id = $1 RETURNING title, body")
                .unwrap(),
            count: c
                .prepare("SELECT count(*) FROM notes WHERE title LIKE $1")
                .unwrap(),
        }
    }

    /// Runs each statement; panics with `who` and the server's message when one fails.
    fn run(&self, c: &mut postgres::Client, who: &str, id: i32) {
        let row = c
            .query_one(&self.read, &[&id])
            .unwrap_or_else(|e| panic!("{who}: read: {}", tandem_pg::error::describe(&e)));
        let title: String = row.get(1);
        assert_eq!(title, format!("note {id}"), "{who}");
        // Short enough for the old type, varchar(50).
        let body = format!("{id} by a writer of {} bytes", who.len());
        let row = c
            .query_one(&self.write, &[&id, &body])
            .unwrap_or_else(|e| panic!("{who}: write: {}", tandem_pg::error::describe(&e)));
        assert_eq!(row.get::<_, String>(1), body, "{who}");
        let n: i64 = c
            .query_one(&self.count, &[&"note %"])
            .unwrap_or_else(|e| panic!("{who}: count: {}", tandem_pg::error::describe(&e)))
            .get(0);
        assert!(n >= 1000, "{who}: {n}");
    }
}

#[test]
fn widening_types_in_place_keeps_both_versions_prepared_statements() {
    let mut env = in_place_env();
    env.apply("01_notes", NOTES);
    exec(
        &mut env.db.connect(),
        "INSERT INTO notes (title, amount, body) SELECT 'note ' || g, g / 100.0, 'body ' || g FROM generate_series(1, 1000) g;
         CREATE INDEX notes_body_idx ON notes (body)",
    );
    let before = env.db.dump_schema();
    let files = "SELECT string_agg(c.relname || '=' || pg_relation_filenode(c.oid), ',' ORDER BY c.relname) FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'i')";
    let files_before: String = one(&mut env.db.connect(), files);
    // The old version, on the base table and on its own version schema, with statements
    // prepared before start.
    let mut old_base = env.db.connect_with_search_path("public");
    let mut old_view = env.version("public_01_notes");
    let p_base = Prepared::new(&mut old_base);
    let p_view = Prepared::new(&mut old_view);
    let m = migration("02_widen", WIDEN);

    for pass in 0..2 {
        let report = env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
        assert_eq!(report.backfilled_rows, 0, "nothing to backfill");
        let mut c = env.db.connect();
        assert_eq!(
            columns_of(&mut c, "notes"),
            ["id", "title", "amount", "body"]
        );
        assert_eq!(
            count(&mut c, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.notes'::regclass AND NOT tgisinternal"),
            0,
            "no dual-write trigger"
        );
        assert_eq!(
            one::<String>(&mut c, files),
            files_before,
            "nothing rewritten"
        );
        // Until complete both versions see the old types.
        assert_eq!(
            type_of(&mut c, "public.notes", "title"),
            "character varying(20)"
        );
        assert_eq!(
            type_of(&mut c, "public_02_widen.notes", "title"),
            "character varying(20)"
        );
        let mut new = env.version("public_02_widen");
        let p_new = Prepared::new(&mut new);
        for id in [1, 2, 3] {
            p_base.run(&mut old_base, "old version on the base table", id);
            p_view.run(&mut old_view, "old version on its views", id);
            p_new.run(&mut new, "new version", id);
        }
        // A value that only the new type holds waits for complete: PostgreSQL refuses it
        // rather than the old version ever seeing a value its type cannot hold.
        let err = new
            .execute("UPDATE notes SET title = repeat('x', 30) WHERE id = 1", &[])
            .unwrap_err();
        assert!(
            tandem_pg::error::describe(&err).contains("too long for type character varying(20)"),
            "{err}"
        );
        if pass == 0 {
            env.rollback();
            assert_eq!(
                before,
                env.db.dump_schema(),
                "rollback: the catalog as it was"
            );
            assert_eq!(
                type_of(&mut c, "public.notes", "title"),
                "character varying(20)"
            );
            assert_eq!(one::<String>(&mut c, files), files_before);
            for id in [4, 5] {
                p_base.run(
                    &mut old_base,
                    "old version on the base table, after rollback",
                    id,
                );
                p_view.run(
                    &mut old_view,
                    "old version on its views, after rollback",
                    id,
                );
            }
        } else {
            // The new version's statements that do not return a widened column carry on
            // through complete; the others are prepared again (see docs/design/type-changes-in-place.md).
            env.complete();
            assert_eq!(
                one::<String>(&mut c, files),
                files_before,
                "nothing rewritten"
            );
            assert_eq!(
                type_of(&mut c, "public.notes", "title"),
                "character varying(40)"
            );
            assert_eq!(type_of(&mut c, "public.notes", "amount"), "numeric(12,2)");
            assert_eq!(type_of(&mut c, "public.notes", "body"), "text");
            assert_eq!(
                type_of(&mut c, "public_02_widen.notes", "title"),
                "character varying(40)"
            );
            let n: i64 = new.query_one(&p_new.count, &[&"note %"]).unwrap().get(0);
            assert_eq!(n, 1000);
            // What cannot be avoided with one column (docs/design/type-changes-in-place.md): a statement whose
            // result has a column whose type changed fails once, and is prepared again.
            let err = new.query_one(&p_new.read, &[&1i32]).unwrap_err();
            assert!(
                tandem_pg::error::describe(&err)
                    .contains("cached plan must not change result type"),
                "{err}"
            );
            let again = Prepared::new(&mut new);
            again.run(&mut new, "new version after complete", 6);
            exec(
                &mut new,
                "UPDATE notes SET title = repeat('x', 30) WHERE id = 7; INSERT INTO notes (title) VALUES ('inserted')",
            );
            assert_eq!(
                one::<String>(
                    &mut c,
                    "SELECT amount::text FROM notes WHERE title = 'inserted'"
                ),
                "0.00",
                "the view's default survived its re-creation"
            );
        }
    }
}

/// An env whose engine changes types in place where PostgreSQL needs no rewrite
/// (`--type-changes-in-place`).
fn in_place_env() -> Env {
    let mut env = Env::new();
    env.options.type_changes_in_place = true;
    env
}

/// By default a widening type change goes through a second column like any other, so the new
/// version has its type from start, and every statement either version prepared keeps working
/// through complete: nothing has to be prepared again.
#[test]
fn widening_types_by_default_keeps_every_prepared_statement() {
    let mut env = Env::new();
    env.apply("01_notes", NOTES);
    exec(
        &mut env.db.connect(),
        "INSERT INTO notes (title, amount, body) SELECT 'note ' || g, g / 100.0, 'body ' || g FROM generate_series(1, 1000) g",
    );
    let mut old = env.version("public_01_notes");
    let p_old = Prepared::new(&mut old);
    let report = env
        .start(&migration("02_widen", WIDEN))
        .unwrap_or_else(|e| panic!("start: {e}"));
    assert_eq!(report.backfilled_rows, 1000);
    let mut c = env.db.connect();
    assert_eq!(
        type_of(&mut c, "public_02_widen.notes", "title"),
        "character varying(40)",
        "the new version has its type from start"
    );
    let mut new = env.version("public_02_widen");
    let p_new = Prepared::new(&mut new);
    p_old.run(&mut old, "old version", 1);
    p_new.run(&mut new, "new version", 2);
    exec(
        &mut new,
        "INSERT INTO notes (title) VALUES (repeat('x', 30))",
    );
    env.complete();
    assert_eq!(
        type_of(&mut c, "public.notes", "title"),
        "character varying(40)"
    );
    // No constraint keeps a temporary name; on PostgreSQL 18 that includes the NOT NULL
    // constraint the second column was given.
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.notes'::regclass AND conname LIKE '%tandem%'"
        ),
        0
    );
    p_new.run(&mut new, "new version, prepared before complete", 4);
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM notes WHERE title = repeat('x', 30)"
        ),
        1
    );
}

fn columns_of(c: &mut postgres::Client, table: &str) -> Vec<String> {
    c.query(
        &format!("SELECT attname::text FROM pg_attribute WHERE attrelid = 'public.{table}'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"),
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// A view of the user's over a column whose type changes in place: complete drops it, changes
/// the type and creates it again, with the new version's views, in one transaction.
#[test]
fn complete_recreates_a_users_view_around_a_type_change_in_place() {
    let mut env = in_place_env();
    env.apply("01_notes", NOTES);
    exec(
        &mut env.db.connect(),
        "CREATE VIEW public.titles AS SELECT title FROM notes",
    );
    env.start(&migration("02_widen", WIDEN)).unwrap();
    env.complete();
    let mut c = env.db.connect();
    assert_eq!(
        type_of(&mut c, "public.notes", "title"),
        "character varying(40)"
    );
    assert_eq!(
        type_of(&mut c, "public.titles", "title"),
        "character varying(40)"
    );
}

/// `migrate` keeps the version schema of the application version that was running when it
/// began, and that version must not see a type change: the in-place change stops, as a drop
/// would, and says why; nothing changes.
#[test]
fn migrate_keeps_the_running_versions_type() {
    let mut env = in_place_env();
    env.apply("01_notes", NOTES);
    let files = vec![
        migration("01_notes", NOTES),
        migration("02_widen", WIDEN),
        migration(
            "03_more",
            "operations:\n  - add_column: {table: notes, column: {name: more, type: int, nullable: true}}\n",
        ),
    ];
    let e = env
        .engine()
        .migrate(&files, true, &tandem_pg::events::ignore)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("The version schema \"public_01_notes\" is kept for the application version that was running when migrate began")
            && e.contains("02_widen is still active and nothing was dropped"),
        "{e}"
    );
    let mut c = env.db.connect();
    assert_eq!(
        type_of(&mut c, "public.notes", "title"),
        "character varying(20)"
    );
    assert_eq!(
        type_of(&mut c, "public_01_notes.notes", "title"),
        "character varying(20)"
    );
    assert_eq!(
        env.status().active.unwrap().status,
        tandem_pg::MigrationStatus::Active
    );
    // Once that version is retired, complete (which drops its schema) changes the type.
    env.complete();
    assert_eq!(
        type_of(&mut c, "public.notes", "title"),
        "character varying(40)"
    );
}

/// A second column is added at the end of the table, but the new version's view shows it where
/// the column it stands in for is, so `SELECT *` through the version schema keeps its order.
#[test]
fn the_new_version_sees_a_retyped_column_where_it_was() {
    let mut env = setup();
    let m = migration(
        "02_rating_int",
        "operations:\n  - alter_column: {table: items, column: rating, type: int, up: rating::int, down: rating::text}\n  - rename_column: {table: items, from: name, to: title}\n",
    );
    env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    let mut new = env.version("public_02_rating_int");
    let shown: Vec<String> = new
        .prepare("SELECT * FROM items")
        .unwrap()
        .columns()
        .iter()
        .map(|c| format!("{} {}", c.name(), c.type_()))
        .collect();
    assert_eq!(
        shown,
        ["id int4", "title text", "rating int4", "code varchar"]
    );
    assert_eq!(
        columns(&mut env.db.connect()).last().unwrap(),
        "_tandem_new_rating"
    );
}

/// A type change carries over only what holds for the new type: a check that does not apply to
/// it (`length(age)` once `age` is an integer) and a default that cannot be cast to it are left
/// off the second column with a note, so old-version INSERTs keep working; an `up` that fails on
/// the column's default (which every such INSERT gives the column) is refused before anything
/// changes.
#[test]
fn a_type_change_carries_over_only_what_fits_the_new_type() {
    let mut env = Env::new();
    env.apply(
        "01_people",
        "operations:
  - create_table:
      name: people
      columns:
        - {name: id, type: serial, pk: true}
        - {name: age, type: text, nullable: true, check: {name: age_short, constraint: length(age) < 3}}
        - {name: status, type: text, default: \"'unknown'\"}
",
    );
    exec(
        &mut env.db.connect(),
        "INSERT INTO people (age, status) SELECT (g % 90)::text, (g % 3)::text FROM generate_series(1, 300) g",
    );
    let before = env.db.dump_schema();
    let refused = migration(
        "02_status_int",
        "operations:\n  - alter_column: {table: people, column: status, type: int, up: status::int, down: status::text}\n",
    );
    let message = env.start(&refused).unwrap_err().to_string();
    assert!(
        message.contains("02_status_int.yaml: operations[0].alter_column.up")
            && message.contains("default")
            && message.contains("invalid input syntax for type integer"),
        "{message}"
    );
    assert_eq!(before, env.db.dump_schema(), "nothing changed");

    let m = migration(
        "02_numbers",
        "operations:
  - alter_column: {table: people, column: age, type: int, up: age::int, down: age::text}
  - alter_column:
      table: people
      column: status
      type: int
      up: \"CASE WHEN status ~ '^[0-9]+$' THEN status::int ELSE -1 END\"
      down: status::text
",
    );
    env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    let notes: Vec<String> = env
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            tandem_pg::Event::Info { message } => Some(message.clone()),
            _ => None,
        })
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("check age_short of people does not hold for the new type")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("the default of people.status cannot be cast to int")),
        "{notes:?}"
    );
    // The old version leaves status out: its default and the trigger's `up` fill both columns.
    exec(
        &mut env.version("public_01_people"),
        "INSERT INTO people (age) VALUES ('7')",
    );
    let mut new = env.version("public_02_numbers");
    assert_eq!(
        count(
            &mut new,
            "SELECT count(*) FROM people WHERE age = 7 AND status = -1 AND id > 300"
        ),
        1
    );
    // Until complete the old column, with its check, takes the new version's writes too: a value
    // the old version could not hold is refused.
    assert!(new
        .batch_execute("INSERT INTO people (age, status) VALUES (123, 4)")
        .is_err());
    exec(&mut new, "INSERT INTO people (age, status) VALUES (12, 4)");
    drop(new);
    env.complete();
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_constraint WHERE conname = 'age_short'"
        ),
        0
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM people WHERE age = 12 AND status = 4"
        ),
        1
    );
}

/// An `add_column` whose `up` reads a column an earlier operation of the migration gives a
/// second column reads that second column: the trigger computes it first, and the backfill's
/// one UPDATE, which sees the row as it was, computes it from the same expression.
#[test]
fn an_up_reading_a_column_the_migration_retypes_sees_its_new_value() {
    let mut env = setup();
    let m = migration(
        "02_rating_doubled",
        "operations:
  - alter_column: {table: items, column: rating, type: int, up: rating::int, down: rating::text}
  - add_column: {table: items, up: rating * 2, column: {name: doubled, type: int, nullable: true}}
",
    );
    env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    exec(
        &mut env.version("public_01_items"),
        "INSERT INTO items (name, rating) VALUES ('old', '21')",
    );
    let mut new = env.version("public_02_rating_doubled");
    assert_eq!(
        count(
            &mut new,
            "SELECT count(*) FROM items WHERE doubled IS DISTINCT FROM rating * 2"
        ),
        0
    );
    assert_eq!(
        count(
            &mut new,
            "SELECT doubled::bigint FROM items WHERE name = 'old'"
        ),
        42
    );
}
