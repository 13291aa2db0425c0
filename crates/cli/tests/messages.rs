//! Messages at the moments that matter: the first migration's complete says that there is no
//! older version schema to watch, the new version's INSERT that leaves out a NOT NULL column
//! fails as a NOT NULL column would, and a role without pg_monitor is told so once per command.

mod common;
use common::{stderr, write};

use std::process::{Command, Output};
use tandem_testkit::{Access, TestDb};

fn tandem(args: &[&str], url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .env("DATABASE_URL", url)
        .output()
        .expect("run tandem")
}

#[test]
fn the_first_complete_says_there_is_no_older_version_schema_before_it_contracts() {
    let db = TestDb::new();
    let url = db.url();
    db.execute("CREATE TABLE users (id int PRIMARY KEY, name text)");
    assert!(tandem(&["init"], &url).status.success());
    let dir = tempfile::tempdir().unwrap();
    let first = write(
        dir.path(),
        "01_drop_name.yaml",
        "operations:\n  - drop_column: {table: users, column: name}\n",
    );
    assert!(tandem(&["start", &first], &url).status.success());
    let note = "01_drop_name: there is no older version schema to watch: the old version uses the base schema's tables";
    // --min-age applies as always, and the note comes with the refusal.
    let o = tandem(&["complete", "--sample", "0", "--min-age", "1h"], &url);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(note)
            && e.contains("--min-age (3600 s) applies as always")
            && e.contains("younger than --min-age (3600 s)"),
        "{e}"
    );
    // Said before the first step of the contraction.
    let o = tandem(&["complete", "--sample", "0"], &url);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    let said = e.find(note).unwrap_or_else(|| panic!("{e}"));
    let contracts = e.find("[Complete]").unwrap_or_else(|| panic!("{e}"));
    assert!(said < contracts, "{e}");
    assert!(e.contains("`--min-age 24h` keeps a rollback window"), "{e}");
    // The second migration has the first one's version schema to watch: no such note.
    let second = write(
        dir.path(),
        "02_t.yaml",
        "operations:\n  - create_table: {name: t, columns: [{name: id, type: int, pk: true}]}\n",
    );
    assert!(tandem(&["start", &second], &url).status.success());
    let o = tandem(&["complete", "--sample", "0"], &url);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("no older version schema"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_new_versions_insert_without_a_new_not_null_column_fails_naming_the_column() {
    let db = TestDb::new();
    let url = db.url();
    db.execute(
        "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, nick text);
         INSERT INTO users VALUES (1, 'ada', NULL);",
    );
    assert!(tandem(&["init"], &url).status.success());
    let before = db.describe_catalog();
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "01_email.yaml",
        "operations:\n  - add_column: {table: users, up: \"name || '@example.com'\", column: {name: email, type: text, nullable: false}}\n  - alter_column: {table: users, column: nick, nullable: false, up: \"coalesce(nick, name)\", down: \"nick\"}\n",
    );
    let o = tandem(&["start", &f], &url);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut new = db.connect_with_search_path("public_01_email");
    let err = new
        .execute(
            "INSERT INTO users (id, name, nick) VALUES (2, 'bob', 'b')",
            &[],
        )
        .unwrap_err();
    let db_err = err.as_db_error().expect("a database error");
    assert_eq!(db_err.code().code(), "23502", "{db_err:?}");
    assert_eq!(
        db_err.message(),
        "null value in column \"email\" of relation \"users\" violates not-null constraint"
    );
    assert_eq!(db_err.column(), Some("email"));
    assert_eq!(db_err.table(), Some("users"));
    // A column made NOT NULL through a second column is named as the new version sees it.
    let err = new
        .execute(
            "INSERT INTO users (id, name, email) VALUES (2, 'bob', 'bob@example.com')",
            &[],
        )
        .unwrap_err();
    let db_err = err.as_db_error().expect("a database error");
    assert_eq!(db_err.code().code(), "23502", "{db_err:?}");
    assert_eq!(
        db_err.message(),
        "null value in column \"nick\" of relation \"users\" violates not-null constraint"
    );
    // Set, it is written; an UPDATE that leaves it alone is too.
    new.execute(
        "INSERT INTO users (id, name, email, nick) VALUES (2, 'bob', 'bob@example.com', 'b')",
        &[],
    )
    .unwrap();
    new.execute("UPDATE users SET name = 'ada l' WHERE id = 1", &[])
        .unwrap();
    let err = new
        .execute("UPDATE users SET email = NULL WHERE id = 1", &[])
        .unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "23502");
    // The old version, which does not see the column, writes as before: `up` fills it.
    let mut old = db.connect();
    old.execute("INSERT INTO users (id, name) VALUES (3, 'cy')", &[])
        .unwrap();
    let email: String = old
        .query_one("SELECT email FROM users WHERE id = 3", &[])
        .unwrap()
        .get(0);
    assert_eq!(email, "cy@example.com");
    // Rollback leaves nothing of it, complete neither (the column is NOT NULL itself then).
    drop(new);
    let o = tandem(&["rollback"], &url);
    assert!(o.status.success(), "{}", stderr(&o));
    old.execute("DELETE FROM users WHERE id > 1", &[]).unwrap();
    assert_eq!(before, db.describe_catalog());
    assert!(tandem(&["start", &f], &url).status.success());
    assert!(tandem(&["complete", "--sample", "0"], &url)
        .status
        .success());
    let left: i64 = old
        .query_one(
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%\\_nn'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    let err = old
        .execute("INSERT INTO users (id, name) VALUES (4, 'di')", &[])
        .unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "23502");
}

#[test]
fn the_pg_monitor_advice_is_given_once_per_command() {
    let db = TestDb::with_access(tandem_testkit::cluster(), Access::Least);
    let url = db.url();
    db.execute(
        "CREATE TABLE a (id int PRIMARY KEY, n int);
         CREATE TABLE b (id int PRIMARY KEY, n int);
         INSERT INTO a SELECT g, g FROM generate_series(1, 10) g;
         INSERT INTO b SELECT g, g FROM generate_series(1, 10) g;",
    );
    assert!(tandem(&["init"], &url).status.success());
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "01_a.yaml",
        "operations:\n  - add_column: {table: a, up: \"n * 2\", column: {name: m, type: int, nullable: true}}\n  - add_column: {table: b, up: \"n * 2\", column: {name: m, type: int, nullable: true}}\n",
    );
    write(
        dir.path(),
        "02_b.yaml",
        "operations:\n  - add_column: {table: a, up: \"n * 3\", column: {name: k, type: int, nullable: true}}\n",
    );
    let d = dir.path().to_string_lossy().into_owned();
    let o = tandem(&["migrate", &d, "--sample", "0"], &url);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert_eq!(
        e.matches("replication lag cannot be seen").count(),
        1,
        "three backfills, one note: {e}"
    );
    assert!(e.contains("GRANT pg_monitor TO"), "{e}");
}
