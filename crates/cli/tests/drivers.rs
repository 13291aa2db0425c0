//! Real drivers nobody here wrote, through a type change (alter_column with up/down) with zero
//! client errors, plus psql (libpq) on `latest url`'s URL: psycopg 3 with every statement prepared server-side (`prepare_threshold=0`)
//! on the old version, asyncpg with its statement cache on and node-postgres with named
//! queries on the new one, each choosing its version as the README tells its users. The
//! scripts are in `tests/drivers/`; the drivers come from PyPI (`.venv-drivers`) and npm
//! (`.node-drivers`), which `scripts/install-deps.sh` installs.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tandem_model::migration::Format;
use tandem_model::Migration;
use tandem_pg::{ConnectOptions, Engine, EngineOptions, Event};
use tandem_testkit::TestDb;

const ROWS: i64 = 300;

const ITEMS: &str = "operations:
  - create_table:
      name: items
      columns:
        - {name: id, type: bigint, pk: true}
        - {name: name, type: text}
        - {name: qty, type: int}
";

const QTY_BIGINT: &str = "operations:
  - alter_column: {table: items, column: qty, type: bigint, up: qty::bigint, down: qty::int}
";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ok(args: &[&str], url: &str) -> String {
    let o: Output = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .env("DATABASE_URL", url)
        .output()
        .expect("run tandem");
    assert!(
        o.status.success(),
        "tandem {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The venv's Python with the drivers, or a failure saying how to install them.
fn python() -> PathBuf {
    let python = repo().join(".venv-drivers/bin/python");
    let ok = python.is_file()
        && Command::new(&python)
            .args(["-c", "import psycopg, asyncpg"])
            .status()
            .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} with psycopg and asyncpg is missing: run scripts/install-deps.sh, or \
         `python3 -m venv .venv-drivers && .venv-drivers/bin/pip install psycopg psycopg-binary asyncpg`",
        python.display()
    );
    python
}

/// node with node-postgres on NODE_PATH, or a failure saying how to install it.
fn node() -> (PathBuf, PathBuf) {
    let modules = repo().join(".node-drivers/node_modules");
    assert!(
        modules.join("pg/package.json").is_file(),
        "node-postgres is missing from {}: run scripts/install-deps.sh, or \
         `npm install --prefix .node-drivers pg`",
        modules.display()
    );
    let node = PathBuf::from("node");
    assert!(
        Command::new(&node)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "node is missing: install Node.js (`apt-get install nodejs npm`; scripts/install-deps.sh does)"
    );
    (node, modules)
}

/// One driver script, running until its stdin closes.
struct Driver {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    ops: Arc<AtomicU64>,
    lines: Option<JoinHandle<Vec<String>>>,
}

impl Driver {
    fn spawn(
        name: &'static str,
        mut command: Command,
        db: &TestDb,
        schema: &str,
        first: i64,
    ) -> Driver {
        let cluster = db.cluster();
        command
            .env("PGHOST", cluster.socket_dir())
            .env("PGPORT", cluster.port().to_string())
            .env("PGUSER", db.user())
            .env("PGDATABASE", &db.name)
            .env("TANDEM_SCHEMA", schema)
            .env("FIRST_ID", first.to_string())
            .env("ROWS", ROWS.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let ops = Arc::new(AtomicU64::new(0));
        let counter = ops.clone();
        let lines = std::thread::spawn(move || {
            let mut other = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match line.strip_prefix("ops ").and_then(|n| n.parse().ok()) {
                    Some(n) => counter.store(n, Ordering::Relaxed),
                    None => other.push(line),
                }
            }
            other
        });
        Driver {
            name,
            child,
            stdin,
            ops,
            lines: Some(lines),
        }
    }

    /// Waits until the script has run `n` more statements successfully; false after a minute,
    /// or as soon as the script has exited.
    fn wait_for_ops(&mut self, n: u64) -> bool {
        let target = self.ops.load(Ordering::Relaxed) + n;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.ops.load(Ordering::Relaxed) < target {
            if Instant::now() > deadline || self.child.try_wait().ok().flatten().is_some() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Closes its stdin, waits for it, and checks its summary: statements ran, none failed,
    /// and they were prepared server-side.
    fn finish(mut self) {
        self.stdin.take();
        let status = self.child.wait().expect("waiting for the driver");
        let lines = self
            .lines
            .take()
            .unwrap()
            .join()
            .expect("reading its output");
        let summary: serde_json::Value = lines
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("{}: no summary ({status}); output: {lines:?}", self.name));
        eprintln!("{}: {summary}", self.name);
        assert!(status.success(), "{}: {status}", self.name);
        assert_eq!(
            summary["errors"],
            serde_json::json!([]),
            "{}: client errors",
            self.name
        );
        assert!(
            summary["ops"].as_u64().unwrap() > 10,
            "{}: {summary}",
            self.name
        );
        assert!(
            summary["prepared"].as_u64().unwrap() >= 3,
            "{}: its statements were prepared server-side: {summary}",
            self.name
        );
    }
}

#[test]
fn psycopg_asyncpg_and_node_postgres_run_through_a_type_change() {
    let python = python();
    let (node, node_path) = node();
    let scripts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/drivers");
    let db = TestDb::new();
    let url = db.url();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("01_items.yaml"), ITEMS).unwrap();
    ok(&["init"], &url);
    let first = dir.path().join("01_items.yaml");
    ok(&["start", first.to_str().unwrap(), "--complete"], &url);
    db.execute(&format!(
        "INSERT INTO items SELECT g, 'n' || g, g FROM generate_series(1, {ROWS}) g"
    ));
    let old_schema = ok(&["latest", "schema"], &url);

    let mut command = Command::new(&python);
    command.arg(scripts.join("psycopg_old.py"));
    let mut old = Driver::spawn("psycopg (old)", command, &db, &old_schema, 10_000);
    assert!(old.wait_for_ops(6), "psycopg ran");

    // start, with psycopg running between every two backfill batches.
    let m = Migration::parse(
        QTY_BIGINT,
        Format::Yaml,
        "02_qty_bigint.yaml",
        "02_qty_bigint",
    )
    .unwrap();
    let mut session = tandem_pg::connect(&ConnectOptions {
        url: Some(url.clone()),
        ..ConnectOptions::default()
    })
    .expect("connect");
    let mut options = EngineOptions::default();
    options.backfill.batch_size = Some(50);
    let old_ops = old.ops.clone();
    let on_event = move |e: &Event| {
        if let Event::Backfill { .. } = e {
            let seen = old_ops.load(Ordering::Relaxed);
            let deadline = Instant::now() + Duration::from_secs(60);
            while old_ops.load(Ordering::Relaxed) == seen && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    Engine::new(&mut session, options)
        .start(&m, &on_event)
        .expect("start");
    let new_schema = ok(&["latest", "schema"], &url);

    // psql (libpq) on the URL `latest url` prints.
    let psql = tandem_cluster::client_program("psql", Some(db.cluster().bin_dir()))
        .expect("psql is missing: install the postgresql-client package");
    let latest = ok(&["latest", "url"], &url);
    let o = Command::new(psql)
        .arg(&latest)
        .args([
            "-XAtc",
            "SELECT (current_schemas(false))[1], pg_typeof(qty) FROM items LIMIT 1",
        ])
        .output()
        .expect("run psql");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("{new_schema}|bigint"),
        "psql {latest}: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    let mut command = Command::new(&python);
    command.arg(scripts.join("asyncpg_new.py"));
    let mut asyncpg = Driver::spawn("asyncpg (new)", command, &db, &new_schema, 20_000);
    let mut command = Command::new(&node);
    command
        .arg(scripts.join("node_pg_new.js"))
        .env("NODE_PATH", &node_path);
    let mut node_pg = Driver::spawn("node-postgres (new)", command, &db, &new_schema, 30_000);
    assert!(asyncpg.wait_for_ops(6), "asyncpg ran");
    assert!(node_pg.wait_for_ops(6), "node-postgres ran");
    assert!(old.wait_for_ops(6), "psycopg ran beside them");

    // The old version is retired before complete; the new one runs on through it.
    old.finish();
    ok(&["complete", "--sample", "300ms"], &url);
    assert!(asyncpg.wait_for_ops(6), "asyncpg ran after complete");
    assert!(node_pg.wait_for_ops(6), "node-postgres ran after complete");
    asyncpg.finish();
    node_pg.finish();
}

/// `tandem latest url --for CLIENT` from settings given as a TCP string, a socket string and
/// a list of hosts whose first is not there: each driver, given nothing but the URL printed
/// for it, lands in the version schema with the application name the settings carry. What a
/// client cannot read is left out with a note, or refused where leaving it out would change
/// where the client connects.
#[test]
fn latest_url_is_read_by_each_driver_as_it_is_printed() {
    let python = python();
    let (node, node_path) = node();
    let scripts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/drivers");
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("01_items.yaml"), ITEMS).unwrap();
    ok(&["init"], &db.url());
    let first = dir.path().join("01_items.yaml");
    ok(&["start", first.to_str().unwrap(), "--complete"], &db.url());
    let schema = ok(&["latest", "schema"], &db.url());
    let socket = db.cluster().socket_dir().to_string_lossy().into_owned();
    let port = db.cluster().port();
    let who = format!("user={} dbname={}", db.user(), db.name);
    let cases = [
        (
            "TCP",
            format!("host=localhost port={port} {who} application_name=app_v2 connect_timeout=5"),
        ),
        (
            "a socket",
            format!("host={socket} port={port} {who} application_name=app_v2 gssencmode=disable"),
        ),
        (
            "two hosts, the first not there",
            format!("host=/nonexistent,{socket} port={port} {who} application_name=app_v2"),
        ),
    ];
    let expected = format!("{schema}|app_v2");
    for (what, settings) in &cases {
        for client in ["libpq", "psycopg", "asyncpg", "node-postgres"] {
            let o = Command::new(env!("CARGO_BIN_EXE_tandem"))
                .args(["latest", "url", "--for", client])
                .env("DATABASE_URL", settings)
                .output()
                .expect("run tandem");
            let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
            if client == "node-postgres" && what.starts_with("two hosts") {
                assert!(!o.status.success(), "{what}, {client}: refused");
                assert!(stderr.contains("connects to one host"), "{what}: {stderr}");
                continue;
            }
            assert!(o.status.success(), "{what}, {client}: {stderr}");
            let url = String::from_utf8_lossy(&o.stdout).trim().to_string();
            let dropped_timeout =
                stderr.contains("connect_timeout=5 (from the connection string) is left out");
            assert_eq!(
                dropped_timeout,
                client == "asyncpg" && *what == "TCP",
                "{what}, {client}: {stderr}"
            );
            let mut command = match client {
                "libpq" => {
                    let psql = tandem_cluster::client_program("psql", Some(db.cluster().bin_dir()))
                        .expect("psql");
                    let mut c = Command::new(psql);
                    c.args([
                        url.as_str(),
                        "-XAtc",
                        "SELECT (current_schemas(false))[1] || '|' || current_setting('application_name')",
                    ]);
                    c
                }
                "node-postgres" => {
                    let mut c = Command::new(&node);
                    c.arg(scripts.join("url_check.js"))
                        .arg(&url)
                        .env("NODE_PATH", &node_path);
                    c
                }
                python_driver => {
                    let mut c = Command::new(&python);
                    c.arg(scripts.join("url_check.py"))
                        .args([python_driver, url.as_str()]);
                    c
                }
            };
            for var in [
                "PGHOST",
                "PGPORT",
                "PGUSER",
                "PGDATABASE",
                "PGAPPNAME",
                "PGOPTIONS",
                "PGSERVICE",
            ] {
                command.env_remove(var);
            }
            let o = command.output().expect("run the driver");
            assert_eq!(
                String::from_utf8_lossy(&o.stdout).trim(),
                expected,
                "{what}, {client} on {url}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}
