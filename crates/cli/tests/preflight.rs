//! What `validate` and `start` refuse before anything changes: SQL fragments PostgreSQL's
//! grammar does not accept, and what the planner refuses, each with exit code 4 and the file,
//! operation and field.

mod common;
use common::{stderr, tandem, write};

use tandem_testkit::TestDb;

const BROKEN: &str = "operations:
  - add_column:
      table: users
      up: upper(full_name
      column: {name: shout, type: text, nullable: true}
  - alter_column: {table: users, column: name, type: \"varchar(\", up: name, down: name}
  - sql: {up: \"CREATE TABLE extra (id int PRIMARY KEY,,)\", down: DROP TABLE extra}
  - create_index: {name: users_name_idx, table: users, columns: [{column: name}], predicate: name <> ''}
";

#[test]
fn fragments_that_do_not_parse_are_refused_offline_naming_each() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "02_broken.yaml", BROKEN);
    let out = tandem(&["validate", "--offline", &file], None);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("02_broken.yaml: 3 SQL fragment(s) do not parse"),
        "{err}"
    );
    for field in [
        "operations[0].add_column.up: syntax error",
        "operations[1].alter_column.type: syntax error",
        "operations[2].sql.up: syntax error",
    ] {
        assert!(err.contains(field), "{field} missing from: {err}");
    }
    assert!(!err.contains("operations[3]"), "{err}");
}

#[test]
fn start_refuses_a_fragment_that_does_not_parse_before_anything_changes() {
    let db = TestDb::new();
    db.execute("CREATE TABLE users (id int PRIMARY KEY, name text)");
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "02_broken.yaml", BROKEN);
    let url = db.url();
    assert_eq!(tandem(&["init"], Some(&url)).status.code(), Some(0));
    let before = db.dump_schema();
    let out = tandem(&["start", &file], Some(&url));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("operations[0].add_column.up"),
        "{}",
        stderr(&out)
    );
    assert_eq!(before, db.dump_schema(), "nothing changed");
}

#[test]
fn validate_with_a_database_refuses_what_the_planner_refuses() {
    let db = TestDb::new();
    db.execute("CREATE TABLE users (id int PRIMARY KEY, name text)");
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "02_key.yaml",
        "operations:\n  - alter_column: {table: users, column: id, type: bigint, up: id, down: id::int}\n",
    );
    let url = db.url();
    let out = tandem(&["validate", &file], Some(&url));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("02_key.yaml: operations[0].alter_column") && err.contains("primary key"),
        "{err}"
    );
}

/// An `up` that one existing row in a thousand cannot take: validate and start try it on the
/// existing rows first and name the row, before anything changes.
#[test]
fn an_up_that_fails_on_an_existing_row_is_refused_naming_the_row() {
    let db = TestDb::new();
    db.execute(
        "CREATE TABLE users (id int PRIMARY KEY, code text NOT NULL);
         INSERT INTO users SELECT g, CASE WHEN g = 777 THEN 'n/a' ELSE g::text END
           FROM generate_series(1, 1000) g;",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "02_code_int.yaml",
        "operations:\n  - alter_column: {table: users, column: code, type: int, up: code::int, down: code::text}\n",
    );
    let url = db.url();
    assert_eq!(tandem(&["init"], Some(&url)).status.code(), Some(0));
    let before = db.dump_schema();
    for command in ["validate", "start"] {
        let out = tandem(&[command, &file], Some(&url));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(4), "{command}: {err}");
        assert!(
            err.contains("02_code_int.yaml: operations[0].alter_column.up:")
                && err.contains("column \"code\" of \"users\"")
                && err.contains("row (id)=(777)")
                && err.contains("invalid input syntax for type integer: \"n/a\""),
            "{command}: {err}"
        );
        assert_eq!(before, db.dump_schema(), "{command} changed nothing");
    }
    // Once the row is fixed, it starts.
    db.execute("UPDATE users SET code = '0' WHERE id = 777");
    let out = tandem(&["start", &file], Some(&url));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// `validate --offline --schema-from` checks files against the tables of a `pg_dump
/// --schema-only` file, here Pagila's, so that CI can validate migrations of a database that
/// existed before tandem without connecting to it.
#[test]
fn validate_offline_reads_the_schema_from_a_dump() {
    let Some(pagila) = tandem_testkit::pagila_dir() else {
        return;
    };
    let dump = pagila.join("pagila-schema.sql");
    let dump = dump.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "02_film.yaml",
        "operations:
  - add_column: {table: film, up: length * 60, column: {name: length_seconds, type: int, nullable: true}}
  - rename_column: {table: customer, from: email, to: mail}
  - create_index: {name: customer_mail_idx, table: customer, columns: [{column: mail}]}
",
    );
    let out = tandem(&["validate", "--offline", &good], None);
    assert_eq!(
        out.status.code(),
        Some(4),
        "without the dump the tables are unknown"
    );
    let out = tandem(
        &["validate", "--offline", "--schema-from", dump, &good],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("against the schema of"));
    let typo = write(
        dir.path(),
        "03_typo.yaml",
        "operations:\n  - rename_column: {table: customer, from: emial, to: mail}\n",
    );
    let out = tandem(
        &["validate", "--offline", "--schema-from", dump, &typo],
        None,
    );
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("03_typo.yaml: operations[0].rename_column.from: column \"emial\" does not exist on table \"customer\""),
        "{}",
        stderr(&out)
    );
}
