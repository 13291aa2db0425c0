//! The binary as a Unix tool: a closed pipe, SIGINT and SIGTERM during a backfill, durations,
//! completions and the man page, `--version`, `-q`, `-v` and colour, JSON errors and
//! timestamps, causes said once, failed steps named by file and operation, and the commands
//! that point to the right one.

mod common;
use common::{command as cmd, stderr, stdout, tandem, write};

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tandem_testkit::TestDb;

/// Runs tandem with its standard output on a pipe whose reading end is already closed, so the
/// first write fails with EPIPE whatever the timing.
fn into_closed_pipe(args: &[&str], url: Option<&str>) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    cmd(args, url)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .expect("run tandem")
}

#[test]
fn a_closed_pipe_ends_the_run_quietly() {
    let db = TestDb::new();
    let url = db.url();
    assert!(tandem(&["init"], Some(&url)).status.success());
    for args in [
        &["status"][..],
        &["json-schema"],
        &["completions", "bash"],
        &["man"],
        &["--json", "status"],
    ] {
        let o = into_closed_pipe(args, Some(&url));
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{args:?}");
    }
}

#[test]
fn durations_take_zero_and_days_and_refuse_a_bare_number() {
    let db = TestDb::new();
    let url = db.url();
    assert!(tandem(&["init"], Some(&url)).status.success());
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "01_t.yaml",
        "operations:\n  - create_table: {name: t, columns: [{name: id, type: int, pk: true}]}\n",
    );
    // The README's own defaults, written out.
    let o = tandem(&["start", &f, "--backfill-batch-delay", "0"], Some(&url));
    assert!(o.status.success(), "{}", stderr(&o));
    // Days: a migration a moment old is younger than three days.
    let o = tandem(
        &["complete", "--min-age", "3d", "--sample", "0"],
        Some(&url),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("younger than --min-age (259200 s)"),
        "{}",
        stderr(&o)
    );
    // A bare number says which units there are, and changes nothing.
    let o = tandem(&["complete", "--min-age", "30"], Some(&url));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("\"30\" has no unit: write 30ms, 30s, 30m, 30h or 30d"),
        "{}",
        stderr(&o)
    );
    let o = tandem(&["complete", "--min-age", "0", "--sample", "0"], Some(&url));
    assert!(o.status.success(), "{}", stderr(&o));
    // The lock timeout keeps pgroll's bare milliseconds, and refuses zero (wait forever).
    assert!(tandem(&["--lock-timeout", "250", "status"], Some(&url))
        .status
        .success());
    let o = tandem(&["--lock-timeout", "0", "status"], Some(&url));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("must be longer than zero"),
        "{}",
        stderr(&o)
    );
    let o = tandem(&["monitor", "--once", "--interval", "0"], Some(&url));
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn completions_man_page_and_version() {
    for (shell, mark) in [
        ("bash", "complete -F _tandem"),
        ("zsh", "#compdef tandem"),
        ("fish", "complete -c tandem"),
    ] {
        let o = tandem(&["completions", shell], None);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = stdout(&o);
        assert!(
            text.contains(mark) && text.contains("migrate"),
            "{shell}: {text}"
        );
    }
    let o = tandem(&["man"], None);
    assert!(o.status.success());
    let page = stdout(&o);
    assert!(
        page.contains(".TH tandem 1")
            && page.contains(".SH \"TANDEM MIGRATE\"")
            && page.contains("backfill\\-batch\\-delay"),
        "{page}"
    );
    let version = stdout(&tandem(&["--version"], None));
    let expected = match Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
    {
        Ok(o) if o.status.success() => {
            format!("(commit {}", String::from_utf8_lossy(&o.stdout).trim())
        }
        _ => "(unknown commit)".to_string(),
    };
    assert!(
        version.starts_with(&format!("tandem {} ", env!("CARGO_PKG_VERSION")))
            && version.contains(&expected),
        "{version} should contain {expected}"
    );
}

/// A table whose backfill takes `rows / 100` batches of 100 rows.
fn backfilled(db: &TestDb, rows: u32) -> (tempfile::TempDir, String) {
    db.execute(&format!(
        "CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL);
         INSERT INTO items SELECT g, g FROM generate_series(1, {rows}) g;
         ANALYZE items;"
    ));
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "01_double.yaml",
        "operations:\n  - add_column: {table: items, up: \"n * 2\", column: {name: doubled, type: int, nullable: true}}\n",
    );
    (dir, f)
}

#[test]
fn quiet_says_only_the_result_and_verbose_every_batch() {
    let db = TestDb::new();
    let url = db.url();
    let (_dir, f) = backfilled(&db, 500);
    assert!(tandem(&["init"], Some(&url)).status.success());
    let o = tandem(
        &["-v", "start", &f, "--backfill-batch-size", "100"],
        Some(&url),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let batches = stderr(&o)
        .lines()
        .filter(|l| l.starts_with("backfill items (doubled): "))
        .count();
    // Five batches of 100 rows, and the line that closes the backfill.
    assert_eq!(batches, 6, "{}", stderr(&o));
    assert!(tandem(&["rollback"], Some(&url)).status.success());
    let o = tandem(
        &["-q", "start", &f, "--backfill-batch-size", "100"],
        Some(&url),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
    assert!(stdout(&o).contains("migration 01_double started"));
    let o = tandem(&["-q", "-v", "status"], Some(&url));
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn colour_only_on_a_terminal_or_when_asked_and_never_with_no_color() {
    let missing = "/nonexistent/01_x.yaml";
    // Standard error is a pipe here: no colour by default.
    let o = tandem(&["start", missing], None);
    assert!(stderr(&o).starts_with("error: "), "{:?}", stderr(&o));
    let o = tandem(&["--color", "always", "start", missing], None);
    assert!(
        stderr(&o).starts_with("\x1b[1;31merror:\x1b[0m "),
        "{:?}",
        stderr(&o)
    );
    // On a terminal, colour, unless NO_COLOR says otherwise; `script` gives tandem one.
    let on_terminal = |no_color: Option<&str>| {
        let mut c = Command::new("script");
        c.args([
            "-qec",
            &format!("{} start {missing}", env!("CARGO_BIN_EXE_tandem")),
            "/dev/null",
        ])
        .env_remove("NO_COLOR")
        .env("TERM", "xterm");
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        let o = c
            .output()
            .expect("script(1) from util-linux runs a command on a terminal");
        stdout(&o)
    };
    let text = on_terminal(None);
    assert!(text.contains("\x1b[1;31merror:"), "{text:?}");
    let text = on_terminal(Some("1"));
    assert!(
        text.contains("error: ") && !text.contains("\x1b[1;31m"),
        "{text:?}"
    );
}

#[test]
fn json_errors_are_objects_and_timestamps_rfc_3339() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "03_add_column.yaml",
        "operations:\n  - add_column:\n      table: t\n      column:\n        name: c\n",
    );
    let o = tandem(&["--json", "validate", &f], None);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["exit_code"], 4);
    let e = &doc["error"];
    assert_eq!(e["file"], "03_add_column.yaml", "{doc:#}");
    assert_eq!(e["operation"], "operations[0].add_column", "{doc:#}");
    assert_eq!(e["field"], "column.type", "{doc:#}");
    assert_eq!(e["line"], 5, "{doc:#}");
    assert!(
        e["message"].as_str().unwrap().contains("missing field"),
        "{doc:#}"
    );

    let db = TestDb::new();
    let url = db.url();
    assert!(tandem(&["init"], Some(&url)).status.success());
    let t = write(
        dir.path(),
        "01_t.yaml",
        "operations:\n  - create_table: {name: t, columns: [{name: id, type: int, pk: true}]}\n",
    );
    assert!(tandem(&["start", &t, "--complete"], Some(&url))
        .status
        .success());
    let o = tandem(&["--json", "status"], Some(&url));
    let st: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let h = &st["history"][0];
    for key in ["created_at", "started_at", "completed_at"] {
        let ts = h[key].as_str().unwrap_or_else(|| panic!("{key}: {h:#}"));
        assert!(rfc_3339(ts), "{key}: {ts}");
    }
    let o = tandem(&["--json", "monitor", "--once"], Some(&url));
    let snap: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(rfc_3339(snap["taken_at"].as_str().unwrap()), "{snap:#}");
}

/// `2026-12-02T19:54:59.123456+00:00`: date, `T`, time, optional fraction, offset with a colon.
fn rfc_3339(ts: &str) -> bool {
    let b = ts.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    let head = b.len() >= 25
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    let offset = &ts[ts.len().saturating_sub(6)..];
    let ob = offset.as_bytes();
    head && (ob[0] == b'+' || ob[0] == b'-') && ob[3] == b':'
}

#[test]
fn a_cause_is_said_once_and_a_failed_step_names_file_and_operation() {
    let o = tandem(&["start", "/nonexistent/01_x.yaml"], None);
    let e = stderr(&o);
    assert_eq!(e.matches("No such file or directory").count(), 1, "{e}");

    let db = TestDb::new();
    let url = db.url();
    db.execute("CREATE TABLE users (id int PRIMARY KEY, name text)");
    assert!(tandem(&["init"], Some(&url)).status.success());
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "02_x.yaml",
        "operations:\n  - add_column: {table: users, column: {name: email, type: text, nullable: true}}\n  - sql: {up: \"ALTER TABLE missing_table ADD COLUMN c int\"}\n",
    );
    let o = tandem(&["start", &f], Some(&url));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("error: 02_x.yaml: operations[1].sql: ")
            && e.contains("relation \"missing_table\" does not exist (SQLSTATE 42P01)"),
        "{e}"
    );
    assert_eq!(e.matches("does not exist").count(), 1, "{e}");
    let o = tandem(&["--json", "start", &f], Some(&url));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["error"]["file"], "02_x.yaml", "{doc:#}");
    assert_eq!(doc["error"]["operation"], "operations[1].sql", "{doc:#}");
}

#[test]
fn start_of_a_directory_points_to_migrate_and_convert_refuses_what_changes_no_schema() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_string_lossy().into_owned();
    let o = tandem(&["start", &d], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&format!("run `tandem migrate {d}`")),
        "{}",
        stderr(&o)
    );
    let f = write(
        dir.path(),
        "data.sql",
        "UPDATE users SET name = 'x' WHERE id = 1;\nSELECT 1;\n",
    );
    let o = tandem(&["convert", &f], None);
    assert_eq!(o.status.code(), Some(4), "{}", stdout(&o));
    assert!(
        stderr(&o)
            .contains("nothing to convert: the file has no statement that changes the schema"),
        "{}",
        stderr(&o)
    );
    let f = write(
        dir.path(),
        "ddl.sql",
        "CREATE TABLE t (id int PRIMARY KEY);\n",
    );
    assert!(tandem(&["convert", &f], None).status.success());
}

/// Starts `tandem start` with small, slow batches and waits until one has committed, as its
/// progress line on standard error says. Returns the child and the rest of its stderr.
fn backfilling(url: &str, file: &str) -> (Child, mpsc::Receiver<String>) {
    let mut child = cmd(
        &[
            "-v",
            "start",
            file,
            "--backfill-batch-size",
            "100",
            "--backfill-batch-delay",
            "100ms",
        ],
        Some(url),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("run tandem start");
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.starts_with("backfill items (doubled): ") => return (child, rx),
            Ok(_) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no backfill progress line: {e}");
            }
        }
    }
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name}");
}

fn finish(mut child: Child, rx: mpsc::Receiver<String>) -> (Option<i32>, String) {
    let status = child.wait().unwrap();
    let mut text = String::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
        text.push_str(&line);
        text.push('\n');
    }
    (status.code(), text)
}

#[test]
fn sigint_and_sigterm_stop_the_backfill_after_its_batch_and_say_what_next() {
    let db = TestDb::new();
    let url = db.url();
    let (_dir, f) = backfilled(&db, 5000);
    assert!(tandem(&["init"], Some(&url)).status.success());

    let (child, rx) = backfilling(&url, &f);
    signal(&child, "INT");
    let (code, text) = finish(child, rx);
    assert_eq!(code, Some(130), "{text}");
    assert!(
        text.contains("SIGINT: a backfill stops once its batch in flight commits")
            && text.contains("error: backfill of items stopped after ")
            && text.contains("the migration is left backfilling with its checkpoint; run `tandem start` with the same file again to continue, or `tandem rollback` to undo it"),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
    let mut probe = db.connect();
    let done: i64 = probe
        .query_one("SELECT rows_done FROM tandem.backfills", &[])
        .unwrap()
        .get(0);
    assert!(done > 0 && done < 5000, "{done}");
    // Nothing runs it now: no rate, no ETA, and status says it was interrupted.
    let o = tandem(&["--json", "monitor", "--once"], Some(&url));
    let snap: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let b = &snap["migration"]["backfills"][0];
    assert_eq!(b["running"], false, "{b:#}");
    assert_eq!(b["eta_seconds"], serde_json::Value::Null, "{b:#}");
    let o = tandem(&["monitor", "--once"], Some(&url));
    assert!(
        !stdout(&o).contains("ETA") && !stdout(&o).contains("rows/s"),
        "{}",
        stdout(&o)
    );
    let o = tandem(&["status"], Some(&url));
    assert!(
        stdout(&o).contains("interrupted; run `tandem start` with the file of \"01_double\" again"),
        "{}",
        stdout(&o)
    );

    // Resumed, it runs: monitor shows it running without the last run's state; SIGTERM stops
    // it the same way.
    let (child, rx) = backfilling(&url, &f);
    let o = tandem(&["--json", "monitor", "--once"], Some(&url));
    let snap: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let b = &snap["migration"]["backfills"][0];
    assert_eq!(b["running"], true, "{b:#}");
    assert_eq!(b["yield_state"], serde_json::Value::Null, "{b:#}");
    signal(&child, "TERM");
    let (code, text) = finish(child, rx);
    assert_eq!(code, Some(143), "{text}");
    assert!(text.contains("SIGTERM: a backfill stops"), "{text}");

    // The third run finishes it, from the checkpoint.
    let o = tandem(&["start", &f], Some(&url));
    assert!(o.status.success(), "{}", stderr(&o));
    let wrong: i64 = probe
        .query_one(
            "SELECT count(*) FROM items WHERE doubled IS DISTINCT FROM n * 2",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(wrong, 0);
}

/// A backfill stopped while it was paused: status and monitor show the pause as the last run's,
/// not as what the backfill does now, and no ETA; the next start finishes it.
#[test]
fn a_stopped_paused_backfill_is_shown_as_the_last_runs_pause_not_as_current() {
    let db = TestDb::new();
    let url = db.url();
    let (_dir, f) = backfilled(&db, 3000);
    assert!(tandem(&["init"], Some(&url)).status.success());
    let (child, rx) = backfilling(&url, &f);
    // Hold a row ahead of the backfill: it pauses for the lock and records why.
    let mut holder = db.connect();
    holder
        .batch_execute(
            "SET application_name = 'row-holder'; BEGIN; SELECT * FROM items WHERE id = 2900 FOR UPDATE",
        )
        .unwrap();
    let mut probe = db.connect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while probe
        .query_opt(
            "SELECT 1 FROM tandem.backfills WHERE yield_state = 'paused'",
            &[],
        )
        .unwrap()
        .is_none()
    {
        assert!(Instant::now() < deadline, "the backfill never paused");
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&child, "INT");
    let (code, text) = finish(child, rx);
    assert_eq!(code, Some(130), "{text}");
    holder.batch_execute("COMMIT").unwrap();
    let o = tandem(&["status"], Some(&url));
    assert!(
        stdout(&o).contains("paused when it was last running: a batch could not get its row locks"),
        "{}",
        stdout(&o)
    );
    let o = tandem(&["monitor", "--once"], Some(&url));
    assert!(
        stdout(&o).contains("(when last run; not running now)") && !stdout(&o).contains("ETA"),
        "{}",
        stdout(&o)
    );
    let o = tandem(&["start", &f, "--backfill-batch-size", "100"], Some(&url));
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `migrate` asked to stop while a start without a backfill waits for a lock: the start ends
/// as usual, and migrate stops at the next migration's edge, saying where it is.
#[test]
fn migrate_stops_between_migrations_when_no_backfill_runs() {
    let db = TestDb::new();
    let url = db.url();
    db.execute("CREATE TABLE users (id int PRIMARY KEY, name text)");
    assert!(tandem(&["init"], Some(&url)).status.success());
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "01_email.yaml",
        "operations:\n  - add_column: {table: users, column: {name: email, type: text, nullable: true}}\n",
    );
    write(
        dir.path(),
        "02_t.yaml",
        "operations:\n  - create_table: {name: t, columns: [{name: id, type: int, pk: true}]}\n",
    );
    let d = dir.path().to_string_lossy().into_owned();
    let mut holder = db.connect();
    holder
        .batch_execute("BEGIN; LOCK TABLE users IN ACCESS SHARE MODE")
        .unwrap();
    let mut child = cmd(
        &["--lock-timeout", "100ms", "migrate", &d, "--sample", "0"],
        Some(&url),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.starts_with("lock wait: ") => break,
            Ok(_) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no lock wait line: {e}");
            }
        }
    }
    signal(&child, "INT");
    holder.batch_execute("COMMIT").unwrap();
    let (code, text) = finish(child, rx);
    assert_eq!(code, Some(130), "{text}");
    assert!(
        text.contains("error: migrate stopped as asked, before completing 01_email; what it did so far stands, and `tandem migrate` with the same directory goes on from there"),
        "{text}"
    );
    let o = tandem(&["--json", "status"], Some(&url));
    let st: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(st["active"]["name"], "01_email", "{st:#}");
    assert_eq!(st["active"]["status"], "active", "{st:#}");
    let o = tandem(&["migrate", &d, "--sample", "0"], Some(&url));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("02_t is active"), "{}", stdout(&o));
}
