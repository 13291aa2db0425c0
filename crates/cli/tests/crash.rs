//! Crashes: `tandem start`, `complete` and `rollback` killed (SIGKILL) at every step boundary,
//! for several operation kinds, through the test-only `TANDEM_TEST_KILL_AT=<phase>:<n>` hook
//! (`tandem_pg::locks::kill_point`). After each kill, `status` must tell the truth and give
//! advice; the same command run again must finish the work (new shape); `rollback` instead must
//! return to the old shape (start and rollback kills); and no row may be lost or changed, by
//! checksums of every row as each version sees it.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};
use tandem_testkit::TestDb;

const ROWS: i32 = 3000;
/// Two batches and a last, empty one: several kill points inside the backfill.
const BATCH: &str = "1500";

struct Case {
    /// The migration's name, which is its file's name without extension.
    name: &'static str,
    yaml: &'static str,
    /// The table's name for the new version (and after complete).
    new_table: &'static str,
}

fn tandem(args: &[&str], url: &str, kill_at: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
    cmd.args(args)
        .env("DATABASE_URL", url)
        .env_remove(tandem_pg::locks::KILL_AT_VAR);
    if let Some(k) = kill_at {
        cmd.env(tandem_pg::locks::KILL_AT_VAR, k);
    }
    cmd.output().expect("run tandem")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", text(&o));
    o
}

/// Creates the table `items` and initialises tandem.
fn setup(db: &TestDb) {
    create_items(db);
    ok(tandem(&["init"], &db.url(), None));
}

/// The table `items`, the same every time.
fn create_items(db: &TestDb) {
    db.execute(&format!(
        "CREATE TABLE public.items (id int PRIMARY KEY, name text NOT NULL, price int, sku text);
         INSERT INTO public.items
              SELECT g, 'item ' || g, CASE WHEN g % 7 = 0 THEN NULL ELSE g % 100 END, 'sku' || g
                FROM generate_series(1, {ROWS}) g;
         CREATE INDEX items_name_idx ON public.items (name);
         ANALYZE public.items;"
    ));
}

/// Back to what [`setup`] made, in the same database (creating a database takes longer than
/// everything else a kill point costs): every schema but `public`, tandem's and the system's
/// goes, and every table and function of `public`; tandem's state is emptied.
fn reset(db: &TestDb) {
    db.execute(
        r"DO $$
          DECLARE r record;
          BEGIN
            FOR r IN SELECT nspname FROM pg_namespace
                      WHERE nspname NOT LIKE 'pg\_%' AND nspname NOT IN ('public', 'tandem', 'information_schema')
            LOOP
              EXECUTE format('DROP SCHEMA %I CASCADE', r.nspname);
            END LOOP;
            FOR r IN SELECT oid::regclass::text AS name FROM pg_class
                      WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'
            LOOP
              EXECUTE 'DROP TABLE IF EXISTS ' || r.name || ' CASCADE';
            END LOOP;
            FOR r IN SELECT oid::regprocedure::text AS name FROM pg_proc
                      WHERE pronamespace = 'public'::regnamespace
            LOOP
              EXECUTE 'DROP FUNCTION IF EXISTS ' || r.name || ' CASCADE';
            END LOOP;
          END $$;
          TRUNCATE tandem.migrations CASCADE;",
    );
    create_items(db);
}

/// Waits until the server has ended the sessions of a killed tandem: until then they hold
/// its advisory lock, and the next command would find the migration locked (and `status`
/// would say a run is in progress, which from the server's side is still true).
fn wait_for_dead_sessions(db: &TestDb) {
    let mut c = db.connect();
    for _ in 0..500 {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND application_name = 'tandem'",
                &[],
            )
            .unwrap()
            .get(0);
        if n == 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the sessions of a killed tandem did not end");
}

fn one(db: &TestDb, sql: &str) -> Option<String> {
    db.connect()
        .query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// Every row as the old version sees it (the base table's original columns).
fn old_sum(db: &TestDb) -> Option<String> {
    one(
        db,
        "SELECT md5(string_agg(ROW(id, name, price, sku)::text, ',' ORDER BY id)) FROM public.items",
    )
}

/// Every row of a table or view, all columns.
fn sum_of(db: &TestDb, relation: &str) -> Option<String> {
    one(
        db,
        &format!("SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM {relation} t"),
    )
}

fn version_schema(case: &Case) -> String {
    format!("public_{}", case.name)
}

fn new_view(case: &Case) -> String {
    format!("{}.{}", version_schema(case), case.new_table)
}

/// The shapes and checksums an uninterrupted run reaches.
struct Reference {
    old_dump: String,
    old_sum: Option<String>,
    started_dump: String,
    new_sum: Option<String>,
    completed_dump: String,
    completed_sum: Option<String>,
}

fn reference(db: &TestDb, case: &Case, file: &str) -> Reference {
    setup(db);
    let url = db.url();
    let old_dump = db.describe_catalog();
    let old = old_sum(db);
    assert!(old.is_some());
    ok(tandem(
        &["start", file, "--backfill-batch-size", BATCH],
        &url,
        None,
    ));
    assert_eq!(
        old_sum(db),
        old,
        "{}: start changed the old version's rows",
        case.name
    );
    let started_dump = db.describe_catalog();
    let new_sum = sum_of(db, &new_view(case));
    ok(tandem(&["rollback"], &url, None));
    assert_eq!(db.describe_catalog(), old_dump, "{}: rollback", case.name);
    assert_eq!(old_sum(db), old);
    // The same file starts again after a rollback and reaches the same shape.
    ok(tandem(
        &["start", file, "--backfill-batch-size", BATCH],
        &url,
        None,
    ));
    assert_eq!(db.describe_catalog(), started_dump);
    ok(tandem(&["complete"], &url, None));
    let completed_dump = db.describe_catalog();
    let completed_sum = sum_of(db, &format!("public.{}", case.new_table));
    Reference {
        old_dump,
        old_sum: old,
        started_dump,
        new_sum,
        completed_dump,
        completed_sum,
    }
}

/// Runs a command with the kill point; `None` when it finished instead (there is no `n`-th
/// boundary), else asserts it died of SIGKILL.
fn killed(db: &TestDb, args: &[&str], kill_at: &str) -> Option<()> {
    let o = tandem(args, &db.url(), Some(kill_at));
    if o.status.success() {
        return None;
    }
    assert_eq!(
        o.status.signal(),
        Some(9),
        "{kill_at}: expected SIGKILL\n{}",
        text(&o)
    );
    wait_for_dead_sessions(db);
    Some(())
}

/// What `status` says, checked against the database: the migration is named with its status,
/// the version schema exists exactly when it says `active` or later, and every unfinished
/// state comes with advice naming the command that ends it. Returns the status, or `None`
/// when no migration is active.
fn checked_status(db: &TestDb, case: &Case, at: &str) -> Option<String> {
    let url = db.url();
    let o = ok(tandem(&["--json", "status"], &url, None));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let human = String::from_utf8_lossy(&ok(tandem(&["status"], &url, None)).stdout).into_owned();
    let vs = version_schema(case);
    let vs_exists = one(db, &format!("SELECT to_regnamespace('{vs}')::text")).is_some();
    let listed = doc["version_schemas"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v == vs.as_str());
    assert_eq!(listed, vs_exists, "{at}: version schemas listed\n{doc}");
    let Some(active) = doc["active"].as_object() else {
        assert!(doc["advice"].is_null(), "{at}: {doc}");
        return None;
    };
    assert_eq!(active["name"], case.name, "{at}: {doc}");
    let status = active["status"].as_str().unwrap().to_string();
    assert!(
        human.contains(case.name) && human.contains(&status),
        "{at}: the text names the migration and its status\n{human}"
    );
    // The version schema is created with `active` and dropped first by rollback.
    if status != "rolling_back" {
        assert_eq!(
            vs_exists,
            status == "active" || status == "completing",
            "{at}: status {status} but version schema present: {vs_exists}\n{doc}"
        );
    }
    let advice = doc["advice"].as_str().unwrap_or_default();
    let wants: &[&str] = match status.as_str() {
        "active" => &[],
        "starting" => &["tandem rollback", "tandem start"],
        "backfilling" => &["interrupted; run `tandem start`", "tandem rollback"],
        "completing" => &["tandem complete"],
        "rolling_back" => &["tandem rollback"],
        other => panic!("{at}: unexpected status {other}\n{doc}"),
    };
    for w in wants {
        assert!(advice.contains(w), "{at}: advice {advice:?} lacks {w:?}");
        assert!(human.contains(w), "{at}: text lacks {w:?}\n{human}");
    }
    if status == "backfilling" {
        assert!(
            !doc["backfills"].as_array().unwrap().is_empty(),
            "{at}: {doc}"
        );
    }
    Some(status)
}

fn assert_started(db: &TestDb, case: &Case, r: &Reference, at: &str) {
    assert_eq!(
        db.describe_catalog(),
        r.started_dump,
        "{at}: not the started shape"
    );
    assert_eq!(old_sum(db), r.old_sum, "{at}: old version's rows changed");
    assert_eq!(
        sum_of(db, &new_view(case)),
        r.new_sum,
        "{at}: new version's rows differ"
    );
}

fn assert_old(db: &TestDb, r: &Reference, at: &str) {
    assert_eq!(db.describe_catalog(), r.old_dump, "{at}: not the old shape");
    assert_eq!(old_sum(db), r.old_sum, "{at}: rows changed");
}

fn assert_completed(db: &TestDb, case: &Case, r: &Reference, at: &str) {
    assert_eq!(
        db.describe_catalog(),
        r.completed_dump,
        "{at}: not the completed shape"
    );
    assert_eq!(
        sum_of(db, &format!("public.{}", case.new_table)),
        r.completed_sum,
        "{at}: rows differ after complete"
    );
}

fn crash_everywhere(case: Case) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{}.yaml", case.name));
    std::fs::write(&path, case.yaml).unwrap();
    let file = path.to_string_lossy().into_owned();
    let start: &[&str] = &["start", &file, "--backfill-batch-size", BATCH];
    let t = std::time::Instant::now();
    let db = TestDb::new();
    let url = db.url();
    let r = reference(&db, &case, &file);
    eprintln!("{}: reference {:?}", case.name, t.elapsed());

    // start, killed at every boundary: then start again, or rollback.
    let mut k = 1;
    loop {
        let at = format!("start:{k}");
        reset(&db);
        if killed(&db, start, &at).is_none() {
            assert!(k > 2, "{at}: start has too few kill points");
            eprintln!(
                "{}: {} start kill points, {:?}",
                case.name,
                k - 1,
                t.elapsed()
            );
            assert_started(&db, &case, &r, &at);
            break;
        }
        let status = checked_status(&db, &case, &at);
        assert_eq!(old_sum(&db), r.old_sum, "{at}: old version's rows changed");
        if status.as_deref() == Some("active") {
            // Killed after its last commit: start had finished.
            assert_started(&db, &case, &r, &at);
        } else {
            let o = ok(tandem(start, &url, None));
            let said = String::from_utf8_lossy(&o.stderr);
            let expected = match status.as_deref() {
                Some("starting") => "interrupted while starting; undoing what it left",
                _ => "interrupted while backfilling; continuing from its checkpoint",
            };
            assert!(said.contains(expected), "{at}: start again\n{said}");
            assert_started(&db, &case, &r, &format!("{at}, then start"));
        }

        // The other way out, from the same point.
        reset(&db);
        killed(&db, start, &at).expect("the same kill point");
        checked_status(&db, &case, &at);
        ok(tandem(&["rollback"], &url, None));
        assert_old(&db, &r, &format!("{at}, then rollback"));
        k += 1;
    }

    // complete, killed at every boundary: rollback refuses once anything may be dropped,
    // complete again finishes.
    let mut k = 1;
    loop {
        let at = format!("complete:{k}");
        reset(&db);
        ok(tandem(start, &url, None));
        if killed(&db, &["complete"], &at).is_none() {
            assert!(k > 1, "{at}: complete has too few kill points");
            eprintln!(
                "{}: {} complete kill points, {:?}",
                case.name,
                k - 1,
                t.elapsed()
            );
            assert_completed(&db, &case, &r, &at);
            break;
        }
        match checked_status(&db, &case, &at).as_deref() {
            None => {}
            Some("completing") => {
                let dump = db.describe_catalog();
                let o = tandem(&["rollback"], &url, None);
                assert!(
                    !o.status.success()
                        && String::from_utf8_lossy(&o.stderr).contains("tandem complete"),
                    "{at}: rollback of a completing migration\n{}",
                    text(&o)
                );
                assert_eq!(
                    db.describe_catalog(),
                    dump,
                    "{at}: the refused rollback changed things"
                );
                ok(tandem(&["complete"], &url, None));
            }
            Some(other) => panic!("{at}: status {other}"),
        }
        assert_completed(&db, &case, &r, &at);
        k += 1;
    }

    // rollback, killed at every boundary: rollback again finishes.
    let mut k = 1;
    loop {
        let at = format!("rollback:{k}");
        reset(&db);
        ok(tandem(start, &url, None));
        if killed(&db, &["rollback"], &at).is_none() {
            assert!(k > 1, "{at}: rollback has too few kill points");
            eprintln!(
                "{}: {} rollback kill points, {:?}",
                case.name,
                k - 1,
                t.elapsed()
            );
            assert_old(&db, &r, &at);
            break;
        }
        assert_eq!(old_sum(&db), r.old_sum, "{at}: rows changed");
        match checked_status(&db, &case, &at).as_deref() {
            None => {}
            Some("rolling_back") => {
                ok(tandem(&["rollback"], &url, None));
            }
            Some(other) => panic!("{at}: status {other}"),
        }
        assert_old(&db, &r, &format!("{at}, then rollback"));
        k += 1;
    }
}

#[test]
fn add_column_not_null_with_up() {
    crash_everywhere(Case {
        name: "02_add_total",
        yaml: "operations:
  - add_column:
      table: items
      up: coalesce(price, 0) * 2 + id
      column: {name: total, type: bigint, nullable: false}
",
        new_table: "items",
    });
}

#[test]
fn alter_column_type_with_up_and_down() {
    crash_everywhere(Case {
        name: "02_price_text",
        yaml: "operations:
  - alter_column:
      table: items
      column: price
      type: text
      up: CAST(price AS text) || ' EUR'
      down: CAST(split_part(price, ' ', 1) AS integer)
",
        new_table: "items",
    });
}

#[test]
fn create_index() {
    crash_everywhere(Case {
        name: "02_index_name",
        yaml: "operations:
  - create_index: {name: items_sku_idx, table: items, columns: [{column: sku}]}
",
        new_table: "items",
    });
}

#[test]
fn drop_column_with_down() {
    crash_everywhere(Case {
        name: "02_drop_sku",
        yaml: "operations:
  - drop_column:
      table: items
      column: sku
      down: \"'sku' || id\"
",
        new_table: "items",
    });
}

#[test]
fn create_unique_constraint_with_up() {
    crash_everywhere(Case {
        name: "02_unique_sku",
        yaml: "operations:
  - create_constraint:
      type: unique
      table: items
      name: items_sku_key
      columns: [sku]
      up: {sku: \"sku || '-' || id\"}
      down: {sku: sku}
",
        new_table: "items",
    });
}

/// Complete in several steps: the index is dropped concurrently, outside the transaction that
/// drops the column.
#[test]
fn drop_index_and_column() {
    crash_everywhere(Case {
        name: "02_drop_name_idx_and_sku",
        yaml: "operations:
  - drop_index: {name: items_name_idx}
  - drop_column: {table: items, column: sku, down: \"'sku' || id\"}
",
        new_table: "items",
    });
}

/// The author's `down` cannot run twice, nor before its `up`: rollback may run it only for a
/// start whose steps committed.
#[test]
fn sql_with_down_and_add_column() {
    crash_everywhere(Case {
        name: "02_cheap_items",
        yaml: "operations:
  - add_column:
      table: items
      column: {name: note, type: text, nullable: true}
  - sql:
      up: CREATE VIEW public.cheap_items AS SELECT id, name FROM public.items WHERE price < 10
      down: DROP VIEW public.cheap_items
",
        new_table: "items",
    });
}

/// The author's `down` cannot run twice, nor before its `up`, and it comes after a step that
/// runs outside a transaction: in start, the index is built before the `sql` runs, so a start
/// killed after the build must not run the `down`; in rollback, the `down` commits before the
/// index is dropped, so a rollback killed in between must not run it again. Both are known from
/// the steps recorded in the state row.
#[test]
fn sql_with_down_after_a_concurrent_index() {
    crash_everywhere(Case {
        name: "02_index_then_view",
        yaml: "operations:
  - create_index: {name: items_sku_idx, table: items, columns: [{column: sku}]}
  - sql:
      up: CREATE VIEW public.cheap_items AS SELECT id, name FROM public.items WHERE price < 10
      down: DROP VIEW public.cheap_items
",
        new_table: "items",
    });
}

#[test]
fn rename_table() {
    crash_everywhere(Case {
        name: "02_rename_items",
        yaml: "operations:
  - rename_table: {from: items, to: products}
",
        new_table: "products",
    });
}

/// `migrate` killed while starting its last migration finishes it when run again.
#[test]
fn migrate_again_after_a_killed_start() {
    let db = TestDb::new();
    setup(&db);
    let url = db.url();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("02_note.yaml"),
        "operations:\n  - add_column: {table: items, column: {name: note, type: text, nullable: true}}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("03_index.yaml"),
        "operations:\n  - create_index: {name: items_sku_idx, table: items, columns: [{column: sku}]}\n",
    )
    .unwrap();
    let d = dir.path().to_string_lossy().into_owned();
    let before = old_sum(&db);
    // 02's start and complete pass, then 03's state row is recorded alone (its first step runs
    // outside a transaction) and its index is built: the third boundary of start.
    killed(&db, &["migrate", &d, "--complete"], "start:3").expect("killed");
    let o = ok(tandem(&["--json", "status"], &url, None));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["active"]["name"], "03_index", "{doc}");
    assert_eq!(doc["active"]["status"], "starting", "{doc}");
    ok(tandem(&["migrate", &d, "--complete"], &url, None));
    let o = ok(tandem(&["--json", "status"], &url, None));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(doc["active"].is_null(), "{doc}");
    assert_eq!(doc["latest"]["name"], "03_index", "{doc}");
    assert_eq!(doc["latest"]["status"], "complete", "{doc}");
    assert_eq!(old_sum(&db), before);
    assert!(one(&db, "SELECT to_regclass('public.items_sku_idx')::text").is_some());
}
