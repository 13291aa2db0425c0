//! `tandem plan`: what start, complete and rollback would run, planned on Pagila's live schema
//! through the same preflight as start (so its refusals too), changing nothing; and offline.

mod common;
use common::tandem;

use tandem_testkit::TestDb;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const FILM_LENGTH: &str = "operations:
  - alter_column: {table: film, column: length, type: integer, up: length::integer, down: length::smallint}
";

#[test]
fn plan_on_pagila_shows_every_phase_and_changes_nothing() {
    let Some(db) = TestDb::pagila() else { return };
    let url = db.url();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("01_film_length.yaml");
    std::fs::write(&file, FILM_LENGTH).unwrap();
    let file = file.to_str().unwrap();
    // Pagila's film has a trigger that stamps last_update: accepted, as start would need it
    // accepted for a role that may not keep it out of the batches.
    let o = tandem(&["plan", file, "--backfill-fires-triggers"], Some(&url));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    for expected in [
        "planned against the live schema; nothing was changed",
        "01_film_length.yaml: version schema public_01_film_length",
        "start (expand; the old version keeps working):",
        "lock: ACCESS EXCLUSIVE on \"public\".\"film\", blocking all reads and writes",
        "film, walked by key (film_id):",
        "_tandem_new_length (integer) = (CAST((length::integer) AS integer))",
        "complete (contract; the old version stops working):",
        "rollback (undo start; the new version stops working):",
        // Pagila's views over film.length are carried across complete.
        "drop the views that read \"public\".\"film\".length, saving them",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    let o = tandem(
        &["plan", file, "--backfill-fires-triggers", "--json"],
        Some(&url),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["live"], true);
    assert_eq!(doc["plans"][0]["migration"], "01_film_length");
    assert_eq!(doc["plans"][0]["plan"]["backfills"][0]["table"], "film");
    assert_eq!(doc["plans"][0]["plan"]["backfills"][0]["key"][0], "film_id");
    // Nothing changed: no version schema, no state, no new column.
    let count = |sql: &str| -> i64 { db.connect().query_one(sql, &[]).unwrap().get(0) };
    assert_eq!(
        count("SELECT count(*) FROM pg_namespace WHERE nspname IN ('public_01_film_length', 'tandem')"),
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM pg_attribute WHERE attrelid = 'film'::regclass AND attname LIKE '_tandem%'"),
        0
    );
}

#[test]
fn plan_refuses_what_start_would_refuse_with_exit_code_4() {
    let Some(db) = TestDb::pagila() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("01_bad_up.yaml");
    std::fs::write(
        &file,
        "operations:
  - alter_column:
      table: film
      column: length
      type: integer
      up: CASE WHEN film_id = 7 THEN length / 0 ELSE length END
      down: length::smallint
",
    )
    .unwrap();
    let o = tandem(
        &["plan", file.to_str().unwrap(), "--backfill-fires-triggers"],
        Some(&db.url()),
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(
        err.contains("01_bad_up.yaml")
            && err.contains("operations[0].alter_column.up")
            && err.contains("film_id")
            && err.contains("division by zero"),
        "{err}"
    );
}

#[test]
fn plan_offline_plans_the_examples_for_the_major_asked() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let o = tandem(&["plan", "--offline", "--pg-major", "14", examples], None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("offline, for PostgreSQL 14")
            && out.contains("04_drop_bio.yaml: version schema public_04_drop_bio"),
        "{out}"
    );
    // --pg-major means nothing with a database.
    let o = tandem(&["plan", "--pg-major", "14", examples], None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
}

#[test]
fn offline_against_an_empty_schema_a_missing_table_says_how_to_plan_against_the_real_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("01_film_length.yaml");
    std::fs::write(&file, FILM_LENGTH).unwrap();
    let file = file.to_str().unwrap();
    for command in ["plan", "validate"] {
        let o = tandem(&[command, "--offline", file], None);
        assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
        let err = text(&o.stderr);
        assert!(
            err.contains("operations[0].alter_column.table: table \"film\" does not exist")
                && err.contains("planned offline, against an empty schema")
                && err.contains("--database-url")
                && err.contains("--schema-from"),
            "{err}"
        );
    }
    // Against a dump that lacks the table, the refusal is the plain one: the schema was given.
    let dump = dir.path().join("schema.sql");
    std::fs::write(
        &dump,
        "CREATE TABLE public.actor (actor_id int PRIMARY KEY);\n",
    )
    .unwrap();
    let o = tandem(
        &[
            "plan",
            "--offline",
            "--schema-from",
            dump.to_str().unwrap(),
            file,
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("table \"film\" does not exist") && !err.contains("empty schema"),
        "{err}"
    );
}
