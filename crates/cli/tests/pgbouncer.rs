//! PgBouncer in transaction mode in front of a migration, with the real `pgbouncer` the test kit
//! starts: the line `tandem latest pgbouncer` prints goes verbatim into its `[databases]`, and
//! clients of the old version (on the base entry and on the first migration's pool) and of the
//! new one (on the printed pool) run through start → backfill → complete with zero errors,
//! each seeing its own shape. Also: the evidence before complete and the monitor still name a
//! session that comes through the pooler, and a role per version selects the version where
//! neither the URL nor the pooler carries it, and survives session mode's reset query, which
//! undoes `connect_query`.

mod common;
use common::tandem;

use std::time::Duration;

use tandem_model::migration::Format;
use tandem_model::Migration;
use tandem_pg::{ConnectOptions, Engine, EngineOptions, Event};
use tandem_testkit::{PgBouncer, TestDb};
use tandem_traffic::{Op, Pace, Protocol, Traffic, Value, Workload};

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

/// Runs tandem and returns its stdout, trimmed; panics with stderr when it fails.
fn ok(args: &[&str], url: Option<&str>) -> String {
    let o = tandem(args, url);
    assert!(
        o.status.success(),
        "tandem {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn connect(url: &str) -> postgres::Client {
    tandem_pg::connect(&ConnectOptions {
        url: Some(url.into()),
        ..ConnectOptions::default()
    })
    .expect("connect")
}

/// A client through a pool: simple queries only, because PgBouncer 1.18 in transaction mode
/// cannot keep a named prepared statement (each transaction may get another server
/// connection). It inserts rows of its own, updates a slice of the loaded ones and reads.
fn pooled_client(name: &str, first_id: i64) -> Workload {
    Workload::new(name, None)
        .protocol(Protocol::Simple)
        .pace(Pace::Pause(Duration::from_millis(5)))
        .op(Op::insert(
            "insert",
            "INSERT INTO items (id, name, qty) VALUES ($1, $2, $3)",
            move |c| {
                let id = first_id + c.n as i64;
                vec![
                    Value::Int(id),
                    Value::Text(format!("{id}")),
                    Value::Int(id % 1000),
                ]
            },
        ))
        .op(Op::update(
            "update",
            "UPDATE items SET qty = qty + 1 WHERE id = $1",
            move |c| vec![Value::Int(1 + (first_id / 1000 + c.n as i64) % ROWS)],
        ))
        .op(Op::read(
            "read",
            "SELECT id, name, qty FROM items WHERE id = $1",
            |c| vec![Value::Int(1 + c.n as i64 % ROWS)],
        ))
}

/// The type `qty` has for a session through `pool`, and the first schema of its search_path.
fn shape(bouncer: &PgBouncer, user: &str, pool: &str) -> (String, String) {
    let mut c = bouncer.connect(user, pool);
    let rows = c
        .simple_query(
            "SELECT pg_typeof(qty)::text, (current_schemas(false))[1]::text FROM items LIMIT 1",
        )
        .expect("reading the shape");
    let row = rows
        .iter()
        .find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .expect("a row");
    (row.get(0).unwrap().into(), row.get(1).unwrap().into())
}

/// A database with `01_items` applied and completed and the rows loaded; the files are in the
/// returned directory.
fn prepared_db() -> (TestDb, tempfile::TempDir) {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("01_items.yaml"), ITEMS).unwrap();
    let url = db.url();
    ok(&["init"], Some(&url));
    let first = dir.path().join("01_items.yaml");
    ok(
        &["start", first.to_str().unwrap(), "--complete"],
        Some(&url),
    );
    db.execute(&format!(
        "INSERT INTO items SELECT g, 'n' || g, g FROM generate_series(1, {ROWS}) g"
    ));
    (db, dir)
}

fn assert_no_errors(traffic: Traffic, what: &str) {
    let report = traffic.stop();
    eprintln!("{what}\n{}", report.phase_table());
    assert!(
        report.samples.len() > 10,
        "{what}: the clients ran ({} statements)",
        report.samples.len()
    );
    assert_eq!(
        report.error_count(),
        0,
        "{what}: {}",
        report.describe_errors(10)
    );
}

#[test]
fn both_versions_run_through_pgbouncer_from_start_to_complete() {
    let (db, _dir) = prepared_db();
    let url = db.url();
    let user = db.user().to_string();
    // The first migration's version, on a pool of its own, from the line tandem prints.
    let v1 = ok(&["latest", "pgbouncer", "--pool", "app_v1"], Some(&url));
    assert!(
        v1.starts_with("app_v1 = host=")
            && v1.ends_with(r#" connect_query='SET search_path = "public_01_items","public"'"#),
        "{v1}"
    );
    let bouncer = PgBouncer::start(&[db.pgbouncer_entry("app"), v1], &[&user]);
    // Why the pool carries the version: PgBouncer refuses what `latest url` relies on.
    let mut with_options = bouncer.config(&user, "app");
    with_options.options(&tandem_pg::connect::search_path_option(
        "public_01_items, public",
    ));
    let refused = with_options
        .connect(postgres::NoTls)
        .err()
        .expect("refused");
    assert!(
        tandem_pg::error::describe(&refused).contains("unsupported startup parameter: options"),
        "{}",
        tandem_pg::error::describe(&refused)
    );

    let old_base = Traffic::start(
        &bouncer.url(&user, "app"),
        vec![pooled_client("old-base", 10_000)],
    )
    .expect("traffic");
    let old_v1 = Traffic::start(
        &bouncer.url(&user, "app_v1"),
        vec![pooled_client("old-v1", 20_000)],
    )
    .expect("traffic");
    assert!(old_base.wait_for_ops(3) && old_v1.wait_for_ops(3));

    // start, with the old clients running between every two backfill batches.
    let m = Migration::parse(
        QTY_BIGINT,
        Format::Yaml,
        "02_qty_bigint.yaml",
        "02_qty_bigint",
    )
    .unwrap();
    let mut session = connect(&url);
    let (base_marker, v1_marker) = (old_base.marker(), old_v1.marker());
    let (base_wait, v1_wait) = (old_base.ops_waiter(), old_v1.ops_waiter());
    let batches = std::sync::atomic::AtomicU32::new(0);
    let on_event = |e: &Event| {
        if let Event::Backfill { .. } = e {
            batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            base_marker.mark("backfill");
            v1_marker.mark("backfill");
            assert!(
                base_wait(1) && v1_wait(1),
                "clients ran between two batches"
            );
        }
    };
    old_base.mark("start");
    old_v1.mark("start");
    let mut options = EngineOptions::default();
    options.backfill.batch_size = Some(50);
    Engine::new(&mut session, options)
        .start(&m, &on_event)
        .expect("start");
    let batches = batches.into_inner();
    assert!(batches > 1, "the backfill ran in batches ({batches})");
    old_base.mark("active");
    old_v1.mark("active");

    // The new version's pool, from the line tandem prints now, fed verbatim to PgBouncer.
    let v2 = ok(&["latest", "pgbouncer"], Some(&url));
    assert!(v2.starts_with("public_02_qty_bigint = "), "{v2}");
    bouncer.add_database(&v2);
    let new = Traffic::start(
        &bouncer.url(&user, "public_02_qty_bigint"),
        vec![pooled_client("new", 30_000)],
    )
    .expect("traffic");
    assert!(new.wait_for_ops(6) && old_base.wait_for_ops(6) && old_v1.wait_for_ops(6));

    // Each side sees its own shape.
    assert_eq!(
        shape(&bouncer, &user, "app"),
        ("integer".into(), "public".into())
    );
    assert_eq!(
        shape(&bouncer, &user, "app_v1"),
        ("integer".into(), "public_01_items".into())
    );
    assert_eq!(
        shape(&bouncer, &user, "public_02_qty_bigint"),
        ("bigint".into(), "public_02_qty_bigint".into())
    );

    // The old version on its pool is retired before complete, as a rollout does; the base
    // entry's clients read the table itself and run on through complete.
    old_v1.mark("retired");
    assert_no_errors(old_v1, "old clients on app_v1");
    old_base.mark("complete");
    new.mark("complete");
    ok(&["complete", "--sample", "300ms"], Some(&url));
    old_base.mark("completed");
    new.mark("completed");
    assert!(new.wait_for_ops(6) && old_base.wait_for_ops(6));
    assert_eq!(
        shape(&bouncer, &user, "app"),
        ("bigint".into(), "public".into())
    );
    assert_eq!(
        shape(&bouncer, &user, "public_02_qty_bigint"),
        ("bigint".into(), "public_02_qty_bigint".into())
    );
    assert_no_errors(old_base, "old clients on the base entry");
    assert_no_errors(new, "new clients on the printed entry");
}

#[test]
fn evidence_and_monitor_name_a_session_that_comes_through_pgbouncer() {
    let (db, dir) = prepared_db();
    let url = db.url();
    let user = db.user().to_string();
    let v1 = ok(&["latest", "pgbouncer", "--pool", "app_v1"], Some(&url));
    let bouncer = PgBouncer::start(&[v1], &[&user]);
    std::fs::write(dir.path().join("02_qty_bigint.yaml"), QTY_BIGINT).unwrap();
    let second = dir.path().join("02_qty_bigint.yaml");
    ok(&["start", second.to_str().unwrap()], Some(&url));

    // An old client through the pool, inside a transaction on its version's view. The server
    // connection's search_path was set by connect_query; its application_name is the client's,
    // which PgBouncer passes on.
    let mut config = bouncer.config(&user, "app_v1");
    config.application_name("billing-v1");
    let mut old = config.connect(postgres::NoTls).expect("through pgbouncer");
    let mut pid = None;
    for m in old
        .simple_query("BEGIN; SELECT count(*) FROM items; SELECT pg_backend_pid()")
        .unwrap()
    {
        if let postgres::SimpleQueryMessage::Row(r) = m {
            pid = r.get(0).map(str::to_string);
        }
    }
    let pid = pid.expect("the server's pid");

    let refused = tandem(&["--json", "complete", "--sample", "300ms"], Some(&url));
    assert!(!refused.status.success(), "complete refused");
    let doc: serde_json::Value = serde_json::from_slice(&refused.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&refused.stderr)));
    let text = doc.to_string();
    assert!(
        text.contains(&format!(
            "session pid {pid} (application_name \\\"billing-v1\\\""
        )),
        "{text}"
    );

    let monitor: serde_json::Value =
        serde_json::from_str(&ok(&["monitor", "--once", "--json"], Some(&url))).unwrap();
    let old_version = monitor["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version_schema"] == "public_01_items")
        .unwrap_or_else(|| panic!("{monitor}"));
    assert_eq!(old_version["role"], "old");
    assert!(
        old_version["sessions"].as_array().unwrap().iter().any(|s| {
            s["pid"].as_i64() == pid.parse().ok() && s["application_name"] == "billing-v1"
        }),
        "{monitor}"
    );

    // Once the old client's transaction ends, nothing holds the old version: complete goes on.
    old.simple_query("COMMIT").unwrap();
    ok(&["complete", "--sample", "300ms"], Some(&url));
}

#[test]
fn a_role_per_version_selects_the_version_through_pgbouncer_too() {
    let (db, dir) = prepared_db();
    let url = db.url();
    std::fs::write(dir.path().join("02_qty_bigint.yaml"), QTY_BIGINT).unwrap();
    let second = dir.path().join("02_qty_bigint.yaml");
    ok(&["start", second.to_str().unwrap()], Some(&url));
    let schema = ok(&["latest", "schema"], Some(&url));

    // The role's setting applies whenever it logs in to this database, so no URL option and
    // no pooler setting is needed. Setting another role's defaults takes CREATEROLE (or the
    // superuser); the membership gives it the owner's privileges, for this test only.
    let role = format!("{}_v2", db.name);
    db.execute_as_superuser(&format!(
        "CREATE ROLE {role} LOGIN;
         GRANT {owner} TO {role};
         ALTER ROLE {role} IN DATABASE {name} SET search_path = {path};",
        role = tandem_model::quote_ident(&role),
        owner = tandem_model::quote_ident(db.user()),
        name = tandem_model::quote_ident(&db.name),
        path = Engine::search_path_for(&schema, "public"),
    ));
    let bouncer = PgBouncer::start(&[db.pgbouncer_entry("app")], &[db.user(), &role]);
    assert_eq!(
        shape(&bouncer, &role, "app"),
        ("bigint".into(), schema.clone())
    );
    assert_eq!(
        shape(&bouncer, db.user(), "app"),
        ("integer".into(), "public".into())
    );
    // Directly, too.
    let mut direct = connect(&db.url_as(&role));
    let first: String = direct
        .query_one("SELECT (current_schemas(false))[1]::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(first, schema);
    drop(direct);
    drop(bouncer);
    ok(&["complete", "--sample", "100ms"], Some(&url));
    db.execute_as_superuser(&format!(
        "DROP OWNED BY {role}; DROP ROLE {role}",
        role = tandem_model::quote_ident(&role)
    ));
}

#[test]
fn latest_pgbouncer_prints_one_quoted_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("01_items.yaml"), ITEMS).unwrap();
    std::fs::write(
        dir.path().join("02_qty_bigint.yaml"),
        "version_schema: \"app's v2\"\n".to_string() + QTY_BIGINT,
    )
    .unwrap();
    let d = dir.path().to_str().unwrap();
    let url = "postgres://app@db.internal:5433/shop?sslmode=require";
    assert_eq!(
        ok(
            &["latest", "pgbouncer", "--local", d, "--pool", "shop_v2"],
            Some(url)
        ),
        r#"shop_v2 = host=db.internal port=5433 dbname=shop connect_query='SET search_path = "app''s v2","public"'"#
    );
    assert_eq!(
        ok(
            &[
                "latest",
                "pgbouncer",
                "--local",
                d,
                "--pool",
                "shop_v2",
                "--server-host",
                "/var/run/postgresql",
                "--server-port",
                "5432"
            ],
            Some(url)
        ),
        r#"shop_v2 = host=/var/run/postgresql port=5432 dbname=shop connect_query='SET search_path = "app''s v2","public"'"#
    );
    // The server comes from the settings as libpq reads them: a key=value string with a
    // socket directory, a service or the variables as well as a URL.
    let local = |settings: &str| {
        tandem(
            &["latest", "pgbouncer", "--local", d, "--pool", "shop_v2"],
            Some(settings),
        )
    };
    let o = local("host=/run/pg port=5434 dbname='my shop' user=app");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        r#"shop_v2 = host=/run/pg port=5434 dbname='my shop' connect_query='SET search_path = "app''s v2","public"'"#,
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = local("postgres://app@/shop?host=/run/pg&port=5435");
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .starts_with("shop_v2 = host=/run/pg port=5435 dbname=shop "),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // PgBouncer 1.18 takes one host: several need --server-host.
    let o = local("host=db1,db2 port=5432 dbname=shop");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("2 hosts are set") && e.contains("--server-host"),
        "{e}"
    );
    let o = tandem(&["latest", "url", "--local", d, "--pool", "x"], Some(url));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("apply to `latest pgbouncer` only"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The version schema's name cannot name a pool here: say so and what to pass.
    let o = tandem(&["latest", "pgbouncer", "--local", d], Some(url));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("pass --pool"), "{err}");
}

#[test]
fn in_session_mode_the_reset_query_undoes_connect_query_but_not_a_role_default() {
    let (db, dir) = prepared_db();
    let url = db.url();
    std::fs::write(dir.path().join("02_qty_bigint.yaml"), QTY_BIGINT).unwrap();
    let second = dir.path().join("02_qty_bigint.yaml");
    ok(&["start", second.to_str().unwrap()], Some(&url));
    let schema = ok(&["latest", "schema"], Some(&url));
    let role = format!("{}_v2", db.name);
    db.execute_as_superuser(&format!(
        "CREATE ROLE {role} LOGIN;
         GRANT {owner} TO {role};
         ALTER ROLE {role} IN DATABASE {name} SET search_path = {path};",
        role = tandem_model::quote_ident(&role),
        owner = tandem_model::quote_ident(db.user()),
        name = tandem_model::quote_ident(&db.name),
        path = Engine::search_path_for(&schema, "public"),
    ));
    // One server connection per pool, so the second client gets the first one's back, after
    // PgBouncer's server_reset_query (DISCARD ALL) has run on it.
    let line = ok(&["latest", "pgbouncer", "--pool", "v2"], Some(&url));
    let bouncer = PgBouncer::start(
        &[
            format!("{line} pool_mode=session pool_size=1"),
            format!(
                "{} pool_mode=session pool_size=1",
                db.pgbouncer_entry("app")
            ),
        ],
        &[db.user(), &role],
    );
    let first_schema = |user: &str, pool: &str| shape(&bouncer, user, pool).1;
    assert_eq!(first_schema(db.user(), "v2"), schema, "the first client");
    assert_eq!(
        first_schema(db.user(), "v2"),
        "public",
        "DISCARD ALL reset the search_path that connect_query set"
    );
    assert_eq!(
        first_schema(&role, "app"),
        schema,
        "the role's first client"
    );
    assert_eq!(
        first_schema(&role, "app"),
        schema,
        "the role's default survives DISCARD ALL"
    );
    drop(bouncer);
    ok(&["complete", "--sample", "100ms"], Some(&url));
    db.execute_as_superuser(&format!(
        "DROP OWNED BY {role}; DROP ROLE {role}",
        role = tandem_model::quote_ident(&role)
    ));
}
