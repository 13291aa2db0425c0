//! `tandem lint` as users run it: exit codes, the five output formats, standard input,
//! tandem.toml, migration files, `--explain`, and the project's own examples.

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
    // The SQL to run instead, written with the statement's own names.
    let instead = doc["files"][0]["findings"][0]["instead"].as_str().unwrap();
    assert!(
        instead.contains("ALTER TABLE users DROP COLUMN name;") && instead.contains("full_name"),
        "{instead}"
    );
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
        out.contains("\n::warning file=warn.sql,line=2,col=19,title=T025 prefer-jsonb::"),
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
    // A warning: the linter cannot tell whether the old version can live with NULL there.
    let o = tandem_in(dir.path(), &["lint", "03_drop.yaml"], None);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        text(&o.stdout).contains("03_drop.yaml:2:5: warning[T030 drop-column-without-down]"),
        "{}",
        text(&o.stdout)
    );
    std::fs::write(
        dir.path().join("03_type.yaml"),
        "operations:\n  - alter_column:\n      table: users\n      column: org_id\n      type: text\n",
    )
    .unwrap();
    let o = tandem_in(dir.path(), &["lint", "03_type.yaml"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stdout).contains("03_type.yaml:2:5: error[T031 type-change-without-down]"),
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
fn explain_prints_a_rules_page_for_a_terminal() {
    let dir = files();
    let o = tandem_in(dir.path(), &["lint", "--explain", "T011"], None);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o.stdout);
    // No generator comment, no Markdown markup: headings underlined, code indented.
    assert!(
        out.starts_with("T011 set-not-null-without-check\n===="),
        "{out}"
    );
    assert!(
        !out.contains("<!--") && !out.contains("```") && !out.contains("**"),
        "{out}"
    );
    assert!(out.contains("\nWhy\n---\n"), "{out}");
    assert!(
        out.contains("\n    ALTER TABLE users ALTER COLUMN email SET NOT NULL;"),
        "{out}"
    );
    assert!(out.contains("Level: error"), "{out}");
    let o = tandem_in(dir.path(), &["lint", "--explain", "all"], None);
    let out = text(&o.stdout);
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("T035")
            && l.contains("exclusion-constraint")
            && !l.contains('|')
            && !l.contains("](")),
        "{out}"
    );
    assert_eq!(
        tandem_in(dir.path(), &["lint", "--explain", "T999"], None)
            .status
            .code(),
        Some(1)
    );
}

/// A goose directory linted as users run it: in migration order, the schema carried from file
/// to file, only the Up sections, each file's transaction as goose runs it; `--runner` and
/// `--new-tables` change that, `--schema-from` starts from a dump.
#[test]
fn directories_carry_the_schema_and_follow_the_runner() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("migrations");
    std::fs::create_dir(&m).unwrap();
    for (name, sql) in [
        (
            "00001_users.sql",
            "-- +goose Up\nCREATE TABLE users (id bigint PRIMARY KEY, email varchar(20) NOT NULL);\n-- +goose Down\nDROP TABLE users;\n",
        ),
        (
            "00002_widen.sql",
            "-- +goose Up\nSET lock_timeout = '2s';\nALTER TABLE users ALTER COLUMN email TYPE varchar(255);\n-- +goose Down\nALTER TABLE users ALTER COLUMN email TYPE varchar(20);\n",
        ),
        (
            "00003_index.sql",
            "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);\n",
        ),
        (
            "00010_plan.sql",
            "-- +goose Up\nCREATE INDEX users_plan_idx ON users (email);\n",
        ),
    ] {
        std::fs::write(m.join(name), sql).unwrap();
    }
    let found = |args: &[&str]| -> Vec<String> {
        let o = tandem_in(dir.path(), args, None);
        let doc: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o.stderr)));
        let mut out = Vec::new();
        for f in doc["files"].as_array().unwrap() {
            let file = f["file"].as_str().unwrap().rsplit('/').next().unwrap();
            for finding in f["findings"].as_array().unwrap() {
                out.push(format!(
                    "{file}:{} {}",
                    finding["line"], finding["rule"]["id"]
                ));
            }
        }
        out
    };
    // 00002 widens the varchar 00001 created (no T013, and its Down is not linted); 00003 runs
    // outside a transaction; 00010 (after 00003: versions compare as numbers) indexes a table
    // that is no longer new.
    assert_eq!(
        found(&["lint", "--format", "json", "migrations"]),
        ["00010_plan.sql:2 \"T005\"", "00010_plan.sql:2 \"T017\""]
    );
    // Deployed together, the table stays new.
    assert_eq!(
        found(&[
            "lint",
            "--format",
            "json",
            "--new-tables",
            "run",
            "migrations"
        ]),
        Vec::<String>::new()
    );
    // As psql would run them, the Down sections are SQL too.
    let psql = found(&["lint", "--format", "json", "--runner", "psql", "migrations"]);
    assert!(
        psql.contains(&"00002_widen.sql:5 \"T013\"".to_string()),
        "{psql:?}"
    );
    // A file alone knows nothing of the column it changes.
    let alone = found(&["lint", "--format", "json", "migrations/00002_widen.sql"]);
    assert_eq!(alone, ["00002_widen.sql:3 \"T013\""]);
    // ...unless the schema comes from a dump.
    std::fs::write(
        dir.path().join("schema.sql"),
        "SET statement_timeout = 0;\nCREATE TABLE public.users (\n    id bigint NOT NULL,\n    email character varying(20) NOT NULL\n);\nALTER TABLE ONLY public.users\n    ADD CONSTRAINT users_pkey PRIMARY KEY (id);\n",
    )
    .unwrap();
    let dumped = found(&[
        "lint",
        "--format",
        "json",
        "--schema-from",
        "schema.sql",
        "migrations/00002_widen.sql",
    ]);
    assert_eq!(dumped, Vec::<String>::new());
    // ...or from a database.
    let db = tandem_testkit::TestDb::new();
    db.connect()
        .batch_execute("CREATE TABLE users (id bigint PRIMARY KEY, email varchar(20) NOT NULL)")
        .unwrap();
    let url = db.url();
    let live = found(&[
        "lint",
        "--format",
        "json",
        "--schema-from",
        &url,
        "migrations/00002_widen.sql",
    ]);
    assert_eq!(live, Vec::<String>::new());
    // The database's row estimates say a table is small: what its size makes slow under a lock
    // is then a warning that says so; with a lower small_table_rows it is an error again.
    db.connect()
        .batch_execute(
            "INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 50) g; ANALYZE users;",
        )
        .unwrap();
    std::fs::write(
        dir.path().join("index.sql"),
        "SET lock_timeout = '2s';\nCREATE INDEX users_email_idx ON users (email);\n",
    )
    .unwrap();
    let o = tandem_in(dir.path(), &["lint", "index.sql"], None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    let o = tandem_in(
        dir.path(),
        &["lint", "--schema-from", &url, "index.sql"],
        None,
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("warning[T005") && out.contains("users has about 50 rows"),
        "{out}"
    );
    std::fs::write(
        dir.path().join("tiny.toml"),
        "[lint]\nsmall_table_rows = 10\n",
    )
    .unwrap();
    let o = tandem_in(
        dir.path(),
        &[
            "lint",
            "--config",
            "tiny.toml",
            "--schema-from",
            &url,
            "index.sql",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    let o = tandem_in(
        dir.path(),
        &["lint", "--runner", "nope", "migrations"],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("goose"), "{}", text(&o.stderr));
}

#[test]
fn compact_format_is_one_line_per_finding() {
    let dir = files();
    std::fs::write(
        dir.path().join("two.sql"),
        "SET lock_timeout = '2s';\nALTER TABLE orders\n  ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id),\n  ADD CONSTRAINT orders_total_positive CHECK (total >= 0);\n",
    )
    .unwrap();
    let o = tandem_in(
        dir.path(),
        &["lint", "--format", "compact", "two.sql", "warn.sql"],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stdout),
        "two.sql:3:3: error: T009 constraint-without-not-valid: FOREIGN KEY constraint orders_user_fk on orders is added without NOT VALID: every row is checked while SHARE ROW EXCLUSIVE locks on orders and users are held (no INSERT, UPDATE or DELETE on either)\n\
two.sql:4:3: error: T009 constraint-without-not-valid: CHECK constraint orders_total_positive on orders is added without NOT VALID: every row is checked while an ACCESS EXCLUSIVE lock on orders is held (no reads or writes)\n\
warn.sql:2:19: warning: T025 prefer-jsonb: column settings is json: use jsonb\n"
    );
}

/// The project's own example migrations are clean of errors: `examples/04_drop_bio.yaml`
/// drops a nullable column without `down`, which T030 reports as a warning only (the old
/// version reads NULL there, which its schema allows).
#[test]
fn the_projects_examples_pass() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let o = tandem_in(&examples, &["lint", "--format", "json", "."], None);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["errors"], 0, "{out}");
    assert_eq!(doc["files"].as_array().unwrap().len(), 4, "{out}");
}
