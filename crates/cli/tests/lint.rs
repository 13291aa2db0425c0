//! `tandem lint` as users run it: exit codes, the four output formats, standard input,
//! tandem.toml, and migration files.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn tandem_in(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tandem");
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const BAD: &str = "SET lock_timeout = '2s';\nALTER TABLE users RENAME COLUMN name TO full_name;\n";
const WARN_ONLY: &str = "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN settings json;\n";
const CLEAN: &str = "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);\n";

fn files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, sql) in [
        ("bad.sql", BAD),
        ("warn.sql", WARN_ONLY),
        ("clean.sql", CLEAN),
    ] {
        std::fs::write(dir.path().join(name), sql).unwrap();
    }
    dir
}

#[test]
fn exit_codes_follow_the_worst_finding() {
    let dir = files();
    let run = |args: &[&str]| tandem_in(dir.path(), args, None);
    assert_eq!(run(&["lint", "clean.sql"]).status.code(), Some(0));
    assert_eq!(run(&["lint", "warn.sql"]).status.code(), Some(0));
    let o = run(&["lint", "clean.sql", "bad.sql"]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o.stdout);
    assert!(
        out.contains("bad.sql:2:1: error[T001 rename-column]"),
        "{out}"
    );
    // The snippet with a caret under the statement, the explanation and the fix.
    assert!(
        out.contains("2 | ALTER TABLE users RENAME COLUMN name TO full_name;\n  | ^"),
        "{out}"
    );
    assert!(
        out.contains("ACCESS EXCLUSIVE lock on the table") && out.contains("rename_column:"),
        "{out}"
    );
    assert_eq!(run(&["lint", "missing.sql"]).status.code(), Some(1));
    // A directory stands for its .sql and migration files.
    let o = run(&["lint", "--format", "json", "."]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<_> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["./bad.sql", "./clean.sql", "./warn.sql"]);
    assert_eq!(run(&["lint"]).status.code(), Some(2));
}

#[test]
fn syntax_errors_exit_4_naming_file_line_and_column() {
    let dir = files();
    std::fs::write(
        dir.path().join("broken.sql"),
        "SELECT 1;\n  ALTER TABEL users ADD COLUMN c int;\n",
    )
    .unwrap();
    let o = tandem_in(dir.path(), &["lint", "broken.sql"], None);
    assert_eq!(o.status.code(), Some(4));
    let err = text(&o.stderr);
    assert!(
        err.contains("broken.sql:2:3: syntax error at or near \"TABEL\"")
            && !err.contains("syntax error: syntax error"),
        "{err}"
    );
}

#[test]
fn standard_input() {
    let dir = files();
    let o = tandem_in(dir.path(), &["lint", "-"], Some(BAD));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stdout).contains("<stdin>:2:1: error[T001"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn json_github_and_sarif_formats() {
    let dir = files();
    let o = tandem_in(
        dir.path(),
        &["lint", "--format", "json", "bad.sql", "warn.sql"],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["errors"], 1);
    assert_eq!(
        doc["files"][0]["findings"][0]["rule"]["name"],
        "rename-column"
    );
    assert_eq!(doc["files"][0]["findings"][0]["line"], 2);
    assert_eq!(doc["files"][1]["findings"][0]["level"], "warning");
    // --json means the JSON format too, with nothing else on stdout.
    let o = tandem_in(dir.path(), &["--json", "lint", "bad.sql"], None);
    serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap();

    let o = tandem_in(
        dir.path(),
        &["lint", "--format", "github", "bad.sql", "warn.sql"],
        None,
    );
    let out = text(&o.stdout);
    assert!(
        out.starts_with(
            "::error file=bad.sql,line=2,col=1,title=T001 rename-column::renaming column name"
        ),
        "{out}"
    );
    assert!(
        out.contains("\n::warning file=warn.sql,line=2,col=1,title=T025 prefer-jsonb::"),
        "{out}"
    );

    let o = tandem_in(dir.path(), &["lint", "--format", "sarif", "bad.sql"], None);
    let sarif: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    let result = &run["results"][0];
    assert_eq!(result["ruleId"], "T001");
    assert_eq!(result["level"], "error");
    assert_eq!(
        result["locations"][0]["physicalLocation"]["region"]["startLine"],
        2
    );
    let index = result["ruleIndex"].as_u64().unwrap() as usize;
    assert_eq!(run["tool"]["driver"]["rules"][index]["id"], "T001");
}

#[test]
fn config_file_and_flags() {
    let dir = files();
    std::fs::create_dir(dir.path().join("old")).unwrap();
    std::fs::write(dir.path().join("old/bad.sql"), BAD).unwrap();
    std::fs::write(
        dir.path().join("tandem.toml"),
        "[lint]\nexclude_paths = [\"old/**\"]\n[lint.levels]\nprefer-jsonb = \"error\"\n",
    )
    .unwrap();
    let run = |args: &[&str]| tandem_in(dir.path(), args, None);
    assert_eq!(run(&["lint", "old/bad.sql"]).status.code(), Some(0));
    assert_eq!(run(&["lint", "warn.sql"]).status.code(), Some(1));
    std::fs::write(
        dir.path().join("other.toml"),
        "[lint]\nexclude = [\"rename-column\"]\n",
    )
    .unwrap();
    assert_eq!(
        run(&["lint", "--config", "other.toml", "bad.sql"])
            .status
            .code(),
        Some(0)
    );
    std::fs::write(
        dir.path().join("wrong.toml"),
        "[lint]\nexclude = [\"no-such-rule\"]\n",
    )
    .unwrap();
    let o = run(&["lint", "--config", "wrong.toml", "bad.sql"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(text(&o.stderr).contains("no rule is called \"no-such-rule\""));
    // --pg-version: before 11 a constant default rewrites the table.
    std::fs::write(
        dir.path().join("default.sql"),
        "SET lock_timeout = '1s';\nALTER TABLE t ADD COLUMN c int DEFAULT 0;\n",
    )
    .unwrap();
    assert_eq!(run(&["lint", "default.sql"]).status.code(), Some(0));
    assert_eq!(
        run(&["lint", "--pg-version", "10", "default.sql"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        run(&["lint", "--single-transaction", "clean.sql"])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn migration_files() {
    let dir = files();
    std::fs::write(
        dir.path().join("03_drop.yaml"),
        "operations:\n  - drop_column:\n      table: users\n      column: legacy\n",
    )
    .unwrap();
    let o = tandem_in(dir.path(), &["lint", "03_drop.yaml"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stdout).contains("03_drop.yaml:2:5: error[T030 drop-column-without-down]"),
        "{}",
        text(&o.stdout)
    );
    std::fs::write(
        dir.path().join("04_bad.yaml"),
        "operations:\n  - drop_column: {}\n",
    )
    .unwrap();
    assert_eq!(
        tandem_in(dir.path(), &["lint", "04_bad.yaml"], None)
            .status
            .code(),
        Some(4)
    );
}

#[test]
fn explain_prints_a_rules_page() {
    let dir = files();
    let o = tandem_in(dir.path(), &["lint", "--explain", "T011"], None);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).starts_with("<!-- generated"));
    assert!(text(&o.stdout).contains("# T011 `set-not-null-without-check`"));
    let o = tandem_in(dir.path(), &["lint", "--explain", "all"], None);
    assert!(text(&o.stdout).contains("| T032 |"));
    assert_eq!(
        tandem_in(dir.path(), &["lint", "--explain", "T999"], None)
            .status
            .code(),
        Some(1)
    );
}
