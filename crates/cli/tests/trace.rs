//! `tandem trace` as users run it: on a throwaway cluster with --setup, against a database in a
//! transaction that is rolled back, the JSON and Markdown reports, and lint findings confirmed by
//! what the trace saw.

use std::process::{Command, Output};
use tandem_testkit::TestDb;

fn tandem(dir: &std::path::Path, args: &[&str], url: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
    cmd.args(args).current_dir(dir).env_remove("DATABASE_URL");
    if let Some(u) = url {
        cmd.env("DATABASE_URL", u);
    }
    cmd.output().expect("run tandem")
}

const SETUP: &str = "CREATE TABLE users (id int PRIMARY KEY, name text);\nINSERT INTO users SELECT g, 'n' || g FROM generate_series(1, 1000) g;\n";
const MIGRATION: &str = "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN nickname text;\nALTER TABLE users ALTER COLUMN id TYPE bigint;\nCREATE INDEX CONCURRENTLY users_name ON users (name);\n";

fn files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("setup.sql"), SETUP).unwrap();
    std::fs::write(dir.path().join("m.sql"), MIGRATION).unwrap();
    dir
}

#[test]
fn throwaway_cluster_json_report() {
    let dir = files();
    let o = tandem(
        dir.path(),
        &["trace", "--setup", "setup.sql", "--format", "json", "m.sql"],
        None,
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let s = &doc["statements"];
    assert_eq!(s[1]["line"], 2);
    assert_eq!(s[1]["locks"][0]["mode"], "AccessExclusiveLock");
    assert_eq!(s[1]["locks"][0]["relation"], "public.users");
    assert_eq!(s[1]["rewrites"].as_array().unwrap().len(), 0);
    assert_eq!(s[2]["rewrites"][0]["relation"], "public.users");
    assert_eq!(s[2]["lint"][0]["id"], "T013");
    assert!(s[2]["lint"][0]["trace"]
        .as_str()
        .unwrap()
        .starts_with("confirmed"));
    // Sampled while it ran (crates/pg/tests/trace.rs checks the modes on a larger table): no
    // lock it took blocks the application.
    assert_eq!(s[3]["error"], serde_json::Value::Null);
    for lock in s[3]["locks"].as_array().unwrap() {
        assert_eq!(lock["blocks"].as_array().unwrap().len(), 0, "{lock}");
    }
}

#[test]
fn database_url_runs_in_a_transaction_that_is_rolled_back() {
    let db = TestDb::new();
    db.execute(SETUP);
    let before = db.dump_schema();
    let dir = files();
    let o = tandem(
        dir.path(),
        &["trace", "--format", "markdown", "m.sql"],
        Some(&db.url()),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("in a transaction that was rolled back"),
        "{out}"
    );
    assert!(out.contains("| 2 | `ALTER TABLE users ADD COLUMN nickname text` | AccessExclusiveLock on public.users | DELETE, INSERT, SELECT, UPDATE |"), "{out}");
    assert!(
        out.contains("| 4 | `CREATE INDEX CONCURRENTLY users_name ON users (name)` | skipped:"),
        "{out}"
    );
    assert_eq!(db.dump_schema(), before);
}

#[test]
fn failures_and_syntax_errors() {
    let dir = files();
    std::fs::write(
        dir.path().join("bad.sql"),
        "ALTER TABLE nosuch ADD COLUMN c int;\n",
    )
    .unwrap();
    let o = tandem(dir.path(), &["trace", "bad.sql"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("failed: relation \"nosuch\" does not exist")
    );
    std::fs::write(dir.path().join("broken.sql"), "ALTER TABEL x;\n").unwrap();
    let o = tandem(dir.path(), &["trace", "broken.sql"], None);
    assert_eq!(o.status.code(), Some(4));
}

#[test]
fn schema_from_loads_a_databases_schema_into_the_throwaway_cluster() {
    let db = TestDb::new();
    db.execute(SETUP);
    let dir = files();
    let o = tandem(
        dir.path(),
        &[
            "trace",
            "--schema-from",
            &db.url(),
            "--format",
            "json",
            "m.sql",
        ],
        None,
    );
    // pg_dump refuses a server of a newer major than its own. The test kit's cluster may be newer
    // than any pg_dump at hand (scripts/fetch-pg.sh's builds have none, and PATH has the
    // machine's): then tandem must fail saying why.
    if !matches!(pg_dump_major(), Some(major) if major >= db.cluster().major_version()) {
        assert_eq!(o.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.contains("pg_dump failed") && stderr.contains("server version mismatch"),
            "{stderr}"
        );
        return;
    }
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(doc["ran_on"].as_str().unwrap().contains("throwaway"));
    assert_eq!(doc["statements"][1]["locks"][0]["relation"], "public.users");
}

/// The major version of the pg_dump `tandem trace --schema-from` runs: the test kit's cluster's
/// own (the throwaway cluster uses the same binaries), else the one on PATH.
fn pg_dump_major() -> Option<u32> {
    let own = tandem_testkit::cluster().bin_dir().join("pg_dump");
    let program = if own.is_file() { own } else { "pg_dump".into() };
    let output = std::process::Command::new(program)
        .arg("--version")
        .output()
        .ok()?;
    // "pg_dump (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .nth(2)?
        .split('.')
        .next()?
        .parse()
        .ok()
}
