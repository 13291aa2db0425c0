//! `tandem convert` as users run it: a file or standard input in, YAML or JSON out, notes on
//! standard error, exit codes; and `tandem validate` refusing the placeholder it leaves.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn tandem_in(dir: &std::path::Path, args: &[&str], stdin: &str) -> Output {
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
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const SQL: &str = "BEGIN;
SET lock_timeout = '2s';
ALTER TABLE users ADD COLUMN plan text;
UPDATE users SET plan = 'free';
ALTER TABLE users ALTER COLUMN plan SET NOT NULL;
CREATE INDEX users_plan_idx ON users (plan);
ANALYZE users;
COMMIT;
";

#[test]
fn converts_a_file_to_yaml_with_warnings_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.sql"), SQL).unwrap();
    let out = tandem_in(dir.path(), &["convert", "m.sql"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(
        yaml.starts_with("# Converted by `tandem convert` from m.sql.\n"),
        "{yaml}"
    );
    assert!(yaml.contains("  - add_column:\n"), "{yaml}");
    assert!(yaml.contains("      up: '''free'''\n"), "{yaml}");
    assert!(yaml.contains("  - create_index:\n"), "{yaml}");
    assert!(
        !yaml.contains("lock_timeout"),
        "tandem sets its own: {yaml}"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("m.sql:7:1: warning: kept as a `sql` operation"),
        "{stderr}"
    );
    // The same SQL from standard input, as JSON, written to a file.
    let out = tandem_in(
        dir.path(),
        &["convert", "-", "--format", "json", "--output", "m.json"],
        SQL,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("<stdin>:7:1: warning"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("m.json")).unwrap()).unwrap();
    let ops = json["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 3, "{json}");
    assert_eq!(ops[0]["add_column"]["up"], "'free'");
    assert_eq!(ops[0]["add_column"]["column"]["nullable"], false);
    assert_eq!(ops[2]["sql"]["up"], "ANALYZE users");
    // The global --json flag means JSON too.
    let out = tandem_in(dir.path(), &["--json", "convert", "m.sql"], "");
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again, json);
}

#[test]
fn exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = tandem_in(dir.path(), &["convert", "-"], "ALTER TABLE t ADD COLUMN;");
    assert_eq!(out.status.code(), Some(4), "a syntax error");
    assert!(text(&out.stderr).contains("<stdin>:1:1: syntax error"));
    let out = tandem_in(dir.path(), &["convert", "-"], "BEGIN; COMMIT;");
    assert_eq!(out.status.code(), Some(4), "nothing to convert");
    let out = tandem_in(dir.path(), &["convert", "missing.sql"], "");
    assert_eq!(out.status.code(), Some(1), "an unreadable file");
    assert!(text(&out.stderr).contains("missing.sql: cannot read"));
    let out = tandem_in(dir.path(), &["convert", "-", "--format", "xml"], "");
    assert_eq!(out.status.code(), Some(2), "a usage error");
}

#[test]
fn validate_refuses_the_placeholder_until_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let sql = "CREATE TABLE items (id bigint PRIMARY KEY, price numeric);
ALTER TABLE items ALTER COLUMN price TYPE integer USING (price * 100)::integer;
";
    let out = tandem_in(dir.path(), &["convert", "-", "-o", "02_cents.yaml"], sql);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("<stdin>:2:1: TODO: write `down`"),
        "{stderr}"
    );
    let out = tandem_in(dir.path(), &["validate", "--offline", "02_cents.yaml"], "");
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stdout));
    let message = text(&out.stdout) + &text(&out.stderr);
    assert!(
        message.contains("operations[1].alter_column.down") && message.contains("placeholder"),
        "{message}"
    );
    let path = dir.path().join("02_cents.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap();
    let line = yaml.lines().find(|l| l.contains("down: ")).unwrap();
    std::fs::write(
        &path,
        yaml.replace(line, "      down: (price / 100.0)::numeric"),
    )
    .unwrap();
    let out = tandem_in(dir.path(), &["validate", "--offline", "02_cents.yaml"], "");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
