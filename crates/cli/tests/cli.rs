//! The binary as users run it: exit codes, JSON output, messages that name the file and field,
//! the shipped JSON Schema, `latest`, and the demo.

mod common;
use common::{stderr, stdout, tandem, write};

use std::process::{Command, Output};
use tandem_testkit::TestDb;

#[test]
fn usage_errors_exit_2() {
    assert_eq!(tandem(&["frobnicate"], None).status.code(), Some(2));
    assert_eq!(
        tandem(&["--lock-timeout", "soon", "status"], None)
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn invalid_files_exit_4_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "03_add_column.yaml",
        "operations:\n  - add_column:\n      table: t\n      column:\n        name: c\n",
    );
    let o = tandem(&["validate", &f], None);
    assert_eq!(o.status.code(), Some(4));
    assert!(
        stderr(&o).contains("03_add_column.yaml:5:9: ")
            && stderr(&o).contains("operations[0].add_column.column.type: missing field"),
        "{}",
        stderr(&o)
    );
    let o = tandem(&["--json", "validate", &f], None);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["exit_code"], 4);
}

#[test]
fn the_shipped_json_schema_is_generated_from_the_types() {
    let o = tandem(&["json-schema"], None);
    let generated: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let shipped: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../schema/tandem-migration.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        generated, shipped,
        "run `tandem json-schema > schema/tandem-migration.schema.json`"
    );
}

#[test]
fn full_cycle_through_the_binary() {
    let db = TestDb::new();
    let url = db.url();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "01_users.yaml", "operations:\n  - create_table: {name: users, columns: [{name: id, type: serial, pk: true}, {name: name, type: text}]}\n");
    let second = write(
        dir.path(),
        "02_rename.yaml",
        "operations:\n  - rename_column: {table: users, from: name, to: full_name}\n",
    );
    let d = dir.path().to_string_lossy().into_owned();
    // Before init, commands say what to do.
    let o = tandem(&["start", &second], Some(&url));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("run `tandem init` first"),
        "{}",
        stderr(&o)
    );
    assert!(tandem(&["init"], Some(&url)).status.success());
    assert!(tandem(&["validate", &d], Some(&url)).status.success());
    let o = tandem(&["--json", "migrate", &d], Some(&url));
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["migrate"]["active"], "02_rename");
    // Progress went to stderr as JSON lines.
    assert!(
        stderr(&o)
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{}",
        stderr(&o)
    );
    let o = tandem(&["--json", "status"], Some(&url));
    let st: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(st["active"]["name"], "02_rename");
    assert_eq!(
        stdout(&tandem(&["latest", "schema"], Some(&url))).trim(),
        "public_02_rename"
    );
    assert_eq!(
        stdout(&tandem(&["latest", "migration", "--local", &d], None)).trim(),
        "02_rename"
    );
    // The URL selects the new version: its search_path starts with the version schema.
    let latest = stdout(&tandem(&["latest", "url"], Some(&url)))
        .trim()
        .to_string();
    assert!(
        latest.ends_with("options=-c%20search_path%3D%22public_02_rename%22,%22public%22"),
        "{latest}"
    );
    let mut c: postgres::Client = latest
        .parse::<postgres::Config>()
        .unwrap()
        .connect(postgres::NoTls)
        .unwrap();
    c.batch_execute("INSERT INTO users (full_name) VALUES ('via latest url')")
        .unwrap();
    let o = tandem(&["rollback"], Some(&url));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = tandem(&["start", &second, "--complete"], Some(&url));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("started and completed"));
}

#[test]
fn a_second_runner_exits_3() {
    let db = TestDb::new();
    let url = db.url();
    assert!(tandem(&["init"], Some(&url)).status.success());
    let mut holder = db.connect();
    holder
        .query_one(
            "SELECT pg_try_advisory_lock(hashtextextended('tandem:tandem:public', 0))",
            &[],
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "01_t.yaml",
        "operations:\n  - create_table: {name: t, columns: [{name: id, type: int, pk: true}]}\n",
    );
    let o = tandem(&["start", &f], Some(&url));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("another tandem run holds the migration lock"));
}

#[test]
fn a_backfill_that_would_fire_the_users_triggers_exits_4_naming_them_and_the_option() {
    let db = TestDb::new();
    let url = db.url();
    // Enabled ALWAYS, the trigger fires for the backfill whether or not the role may set
    // session_replication_role, so superuser and least-privileged role are refused alike.
    db.execute(
        "CREATE TABLE public.items (id int PRIMARY KEY, name text, touched timestamptz);
         INSERT INTO public.items SELECT g, 'item ' || g FROM generate_series(1, 50) g;
         CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN NEW.touched := clock_timestamp(); RETURN NEW; END $$;
         CREATE TRIGGER touch BEFORE UPDATE ON public.items FOR EACH ROW EXECUTE FUNCTION public.touch();
         ALTER TABLE public.items ENABLE ALWAYS TRIGGER touch;",
    );
    assert!(tandem(&["init"], Some(&url)).status.success());
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "01_upper.yaml",
        "operations:\n  - add_column:\n      table: items\n      up: upper(name)\n      column: {name: name_upper, type: text, nullable: true}\n",
    );
    let named = |o: &Output| {
        let e = stderr(o);
        assert!(
            e.contains("items.touch (BEFORE UPDATE, each row, ENABLE ALWAYS)")
                && e.contains("--backfill-fires-triggers")
                && e.contains("Nothing was changed"),
            "{e}"
        );
    };
    for command in ["validate", "start"] {
        let o = tandem(&[command, &f], Some(&url));
        assert_eq!(o.status.code(), Some(4), "{command}: {}", stderr(&o));
        named(&o);
    }
    let status = tandem(&["--json", "status"], Some(&url));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert!(doc["active"].is_null(), "{doc}");
    assert_eq!(
        db.connect()
            .query_one(
                "SELECT count(*) FROM public.items WHERE touched IS NOT NULL",
                &[]
            )
            .unwrap()
            .get::<_, i64>(0),
        0
    );
    let o = tandem(&["validate", "--backfill-fires-triggers", &f], Some(&url));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = tandem(&["start", "--backfill-fires-triggers", &f], Some(&url));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        db.connect()
            .query_one(
                "SELECT count(*) FROM public.items WHERE touched IS NOT NULL",
                &[]
            )
            .unwrap()
            .get::<_, i64>(0),
        50,
        "accepted, the trigger fired for every backfilled row"
    );
}

#[test]
fn passwords_are_never_printed() {
    let o = tandem(
        &[
            "--database-url",
            "postgres://u:hunter2@127.0.0.1:1/db?connect_timeout=1",
            "status",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(!stderr(&o).contains("hunter2") && !stdout(&o).contains("hunter2"));
}

#[test]
fn demo_runs_with_zero_client_errors() {
    let o = tandem(&["--json", "demo", "--rows", "3000"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
    assert_eq!(doc["old_client"]["errors"], 0);
    assert_eq!(doc["new_client"]["errors"], 0);
    assert!(doc["old_client"]["operations"].as_u64().unwrap() > 0);
    assert!(doc["new_client"]["operations"].as_u64().unwrap() > 0);
    assert!(doc["rows_visible_to_both_versions"].as_i64().unwrap() >= 3000);
    // The clients' latency per phase of the migration, and the same changes by hand beside it.
    let phases: Vec<&str> = doc["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    for p in ["baseline", "start", "complete", "after"] {
        assert!(phases.contains(&p), "{phases:?}");
    }
    let by_hand: Vec<&str> = doc["by_hand"]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(by_hand, ["baseline", "ALTER TABLE", "after"]);
}

/// A `tandem start` killed (SIGKILL) in the middle of its backfill, with three workers, leaves
/// the migration `backfilling`; `status` says how far it got, and `start` with the same file
/// (here with two workers) continues it without writing again a row written before.
#[test]
fn a_killed_backfill_continues_with_start() {
    use std::io::{BufRead, BufReader};
    let db = TestDb::new();
    let url = db.url();
    db.execute(
        "CREATE TABLE public.acc (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO public.acc SELECT g, g FROM generate_series(1, 3000) g;
         ANALYZE public.acc;",
    );
    assert!(tandem(&["init"], Some(&url)).status.success());
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "02_token.yaml",
        "operations:\n  - add_column:\n      table: acc\n      up: \"v || ':' || md5(random()::text)\"\n      column: {name: token, type: text, nullable: true}\n",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args([
            "--json",
            "start",
            &f,
            "--backfill-batch-size",
            "50",
            "--backfill-batch-delay",
            "20ms",
            "--backfill-workers",
            "3",
            "--fixed-backfill-workers",
        ])
        .env("DATABASE_URL", &url)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = 0;
    for line in lines {
        let event: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        if event["event"] == "backfill" {
            seen = event["rows_done"].as_u64().unwrap();
            if seen >= 500 {
                break;
            }
        }
    }
    assert_eq!(seen, 500, "progress arrives as JSON lines");
    child.kill().unwrap();
    child.wait().unwrap();

    let o = tandem(&["--json", "status"], Some(&url));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["active"]["status"], "backfilling", "{doc}");
    let done = doc["backfills"][0]["rows_done"].as_i64().unwrap();
    assert!((500..3000).contains(&done), "{doc}");
    let o = tandem(&["status"], Some(&url));
    assert!(
        stdout(&o).contains("backfill of acc: ")
            && stdout(&o).contains("interrupted; run `tandem start`"),
        "{}",
        stdout(&o)
    );
    let mut c = db.connect();
    let before: Vec<Option<String>> = c
        .query("SELECT token FROM public.acc ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();

    let o = tandem(
        &[
            "start",
            &f,
            "--backfill-workers",
            "2",
            "--fixed-backfill-workers",
        ],
        Some(&url),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("continuing from its checkpoint")
            && stderr(&o).contains("backfill acc (token): 100% (3000 of ~3000 rows)"),
        "{}",
        stderr(&o)
    );
    let after: Vec<String> = c
        .query("SELECT token FROM public.acc ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert!(a.starts_with(&format!("{}:", i + 1)), "row {}: {a}", i + 1);
        if let Some(b) = b {
            assert_eq!(
                b,
                a,
                "row {} was done before the kill and is not redone",
                i + 1
            );
        }
    }
    let o = tandem(&["--json", "status"], Some(&url));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["active"]["status"], "active", "{doc}");
}

#[test]
fn tls_settings_come_from_the_url_or_the_libpq_variables() {
    let cluster = tandem_testkit::tls_cluster();
    let db = TestDb::on(cluster);
    let root = cluster
        .tls_root_cert()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let verified = format!("{}?sslmode=verify-full&sslrootcert={root}", db.tcp_url());
    let o = tandem(&["init"], Some(&verified));
    assert!(o.status.success(), "{}", stderr(&o));
    // PGSSLMODE and PGSSLROOTCERT fill what the URL leaves out, as they do for libpq.
    let o = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["--json", "status"])
        .env("DATABASE_URL", db.tcp_url())
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", &root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let st: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(st["initialized"], true);
    // A CA that did not sign the server's certificate is refused, and the message says so.
    let dir = tempfile::tempdir().unwrap();
    let other = write(
        dir.path(),
        "other.crt",
        &tandem_cluster::tls::Authority::new("other CA")
            .unwrap()
            .cert_pem(),
    );
    let o = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("status")
        .env("DATABASE_URL", db.tcp_url())
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", &other)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!(
            "the server's certificate is not signed by the CA certificates in {other}"
        )),
        "{}",
        stderr(&o)
    );
}

#[test]
fn role_makes_every_session_act_as_that_role() {
    let db = TestDb::new();
    let (owner, deployer) = (
        format!("{}_owner", db.name),
        format!("{}_deployer", db.name),
    );
    db.execute_as_superuser(&format!(
        "CREATE ROLE {owner}; CREATE ROLE {deployer} LOGIN NOINHERIT; GRANT {owner} TO {deployer};
         GRANT CREATE ON DATABASE {} TO {owner}; ALTER SCHEMA public OWNER TO {owner}",
        db.name
    ));
    let url = db.url_as(&deployer);
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "01_t.yaml",
        "operations:\n  - create_table: {name: t, columns: [{name: id, type: int, pk: true}]}\n",
    );
    let o = tandem(&["init"], Some(&url));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("or name it with --role"),
        "{}",
        stderr(&o)
    );
    for args in [
        ["--role", &owner, "init"].as_slice(),
        &["--role", &owner, "start", &file, "--complete"],
    ] {
        let o = tandem(args, Some(&url));
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
    let mut c = db.connect();
    let owners: Vec<String> = c
        .query(
            "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname IN ('tandem', 'public_01_t')
             UNION ALL SELECT relowner::regrole::text FROM pg_class WHERE oid = 'public.t'::regclass",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(owners, [owner.clone(), owner.clone(), owner]);
}

/// `migrate` takes complete's evidence options: `--min-age` refuses to complete the active
/// migration on the way, naming the rollback window, and `--force` proceeds and is recorded.
#[test]
fn migrate_refuses_like_complete_and_takes_force() {
    let db = TestDb::new();
    let url = db.url();
    let dir = tempfile::tempdir().unwrap();
    let first = write(dir.path(), "01_users.yaml", "operations:\n  - create_table: {name: users, columns: [{name: id, type: serial, pk: true}, {name: name, type: text}]}\n");
    write(
        dir.path(),
        "02_nick.yaml",
        "operations:\n  - add_column: {table: users, column: {name: nick, type: text, nullable: true}}\n",
    );
    let d = dir.path().to_string_lossy().into_owned();
    assert!(tandem(&["init"], Some(&url)).status.success());
    assert!(tandem(&["start", &first], Some(&url)).status.success());
    let o = tandem(
        &[
            "migrate",
            &d,
            "--complete",
            "--min-age",
            "24h",
            "--sample",
            "100ms",
        ],
        Some(&url),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("01_users\" was not completed")
            && stderr(&o).contains("younger than --min-age"),
        "{}",
        stderr(&o)
    );
    let o = tandem(
        &[
            "--json",
            "migrate",
            &d,
            "--complete",
            "--min-age",
            "24h",
            "--sample",
            "100ms",
            "--force",
        ],
        Some(&url),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        doc["migrate"]["completed"],
        serde_json::json!(["01_users", "02_nick"])
    );
    let o = tandem(&["--json", "status"], Some(&url));
    let status: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let forced: Vec<&str> = status["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| !h["forced_complete"].is_null())
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(forced, vec!["01_users", "02_nick"]);
}

/// A drop of a column one of the user's views reads: `validate` against the database and
/// `start` both exit 4 naming the file, the operation and the view, and nothing is started.
#[test]
fn a_dropped_column_under_a_users_view_exits_4_at_validate_and_start() {
    let db = TestDb::new();
    let url = db.url();
    db.execute(
        "CREATE TABLE public.users (id int PRIMARY KEY, name text);
         CREATE VIEW public.user_names AS SELECT name FROM public.users",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "01_drop_name.yaml",
        "operations:\n  - drop_column: {table: users, column: name}\n",
    );
    assert!(tandem(&["init"], Some(&url)).status.success());
    for command in ["validate", "start"] {
        let o = tandem(&[command, &file], Some(&url));
        assert_eq!(o.status.code(), Some(4), "{command}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("01_drop_name.yaml: operations[0].drop_column.column: view public.user_names reads column users.name, which complete drops"),
            "{command}: {}",
            stderr(&o)
        );
    }
    let o = tandem(&["--json", "status"], Some(&url));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(doc["active"].is_null(), "nothing was started: {doc}");
}
