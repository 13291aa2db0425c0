//! The test kit's promises: per-test databases are isolated and usable in parallel, schema dumps
//! are faithful and stable, search_path sessions work, the shared cluster runs the binaries
//! it reports, and PgBouncer pools in transaction mode and stops with its value.

use std::process::Command;
use std::sync::Barrier;
use std::thread;

use tandem_testkit::{cluster, Access, PgBouncer, TestDb};

fn public_tables(client: &mut postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[test]
fn databases_are_isolated_and_used_in_parallel() {
    let dbs = [TestDb::new(), TestDb::new()];
    assert_ne!(dbs[0].name, dbs[1].name);
    let names: Vec<&str> = dbs.iter().map(|db| db.name.as_str()).collect();
    let barrier = Barrier::new(2);
    thread::scope(|scope| {
        for (db, table) in dbs.iter().zip(["left_side", "right_side"]) {
            let (barrier, names) = (&barrier, &names);
            scope.spawn(move || {
                let mut client = db.connect();
                client
                    .batch_execute(&format!("CREATE TABLE {table} (id int)"))
                    .unwrap();
                // From here both sessions are open and both tables exist.
                barrier.wait();
                assert_eq!(public_tables(&mut client), [table]);
                let sessions: i64 = client
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY($1)",
                        &[names],
                    )
                    .unwrap()
                    .get(0);
                assert_eq!(sessions, 2, "one open session in each database");
                // Keep both sessions open until both threads have counted.
                barrier.wait();
            });
        }
    });
}

#[test]
fn dump_schema_shows_the_catalog_and_is_stable() {
    let db = TestDb::new();
    let empty = db.dump_schema();
    assert!(!empty.contains("CREATE TABLE"), "{empty}");

    let ddl = "CREATE TABLE widgets (id bigint PRIMARY KEY, name text NOT NULL);\
               CREATE INDEX widgets_name ON widgets (name);";
    db.execute(ddl);
    let dump = db.dump_schema();
    if cluster().bin_dir().join("pg_dump").is_file() {
        assert!(dump.contains("CREATE TABLE public.widgets ("), "{dump}");
        assert!(dump.contains("    name text NOT NULL"), "{dump}");
        assert!(
            dump.contains("CREATE INDEX widgets_name ON public.widgets USING btree (name);"),
            "{dump}"
        );
    } else {
        // Builds without pg_dump (scripts/fetch-pg.sh's) get the catalog description instead.
        for line in [
            "column public.widgets #2 name text not_null=t identity= generated= default= collation=",
            "index CREATE INDEX widgets_name ON public.widgets USING btree (name) valid=t replica_identity=f clustered=f",
        ] {
            assert!(dump.lines().any(|l| l == line), "{line}\nnot in\n{dump}");
        }
    }
    for line in dump.lines() {
        assert!(
            !line.trim().is_empty() && !line.starts_with("--") && !line.starts_with("SET "),
            "noise left in the dump: {line:?}"
        );
    }
    assert_eq!(dump, db.dump_schema(), "two dumps of one database differ");

    // Equal catalogs in different databases dump equal, which is what rollback tests compare.
    let twin = TestDb::new();
    twin.execute(ddl);
    assert_eq!(dump, twin.dump_schema());
}

#[test]
fn connect_with_search_path_sets_the_session_search_path() {
    let db = TestDb::new();
    db.execute(
        r#"CREATE SCHEMA "version 2";
           CREATE TABLE "version 2".items (id int);
           INSERT INTO "version 2".items VALUES (42);"#,
    );
    let mut client = db.connect_with_search_path(r#""version 2", public"#);
    let path: String = client.query_one("SHOW search_path", &[]).unwrap().get(0);
    assert_eq!(path, r#""version 2", public"#);
    let id: i32 = client
        .query_one("SELECT id FROM items", &[])
        .unwrap()
        .get(0);
    assert_eq!(id, 42);

    let mut plain = db.connect();
    let path: String = plain.query_one("SHOW search_path", &[]).unwrap().get(0);
    assert_eq!(path, r#""$user", public"#);
}

#[test]
fn major_version_matches_the_running_server_and_binaries() {
    let cluster = cluster();
    let mut client = cluster.connect("postgres").unwrap();
    let number: String = client
        .query_one("SHOW server_version_num", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        number.parse::<u32>().unwrap() / 10_000,
        cluster.major_version()
    );

    // The server binary always; pg_dump too where the build has it (scripts/fetch-pg.sh's do not).
    for program in ["postgres", "pg_dump"] {
        let path = cluster.bin_dir().join(program);
        if program == "pg_dump" && !path.is_file() {
            continue;
        }
        let output = Command::new(path).arg("--version").output().unwrap();
        let version = String::from_utf8(output.stdout).unwrap();
        assert!(
            version.contains(&format!("(PostgreSQL) {}.", cluster.major_version())),
            "{version}"
        );
    }
}

#[test]
fn execute_keeps_one_session() {
    let db = TestDb::new();
    db.execute("CREATE TEMP TABLE scratch (id int)");
    db.execute("INSERT INTO scratch VALUES (1)");
    db.execute("CREATE TABLE kept AS SELECT * FROM scratch");
    let mut client = db.connect();
    assert_eq!(public_tables(&mut client), ["kept"]);
}

#[test]
fn the_catalog_description_sees_what_a_migration_changes_and_undoes() {
    let db = TestDb::new();
    db.execute(
        "CREATE TABLE t (id serial PRIMARY KEY, name text NOT NULL DEFAULT 'x' CHECK (name <> ''));
         CREATE TYPE mood AS ENUM ('a', 'b');
         COMMENT ON COLUMN t.name IS 'the name'",
    );
    let before = db.describe_catalog();
    for line in [
        "column public.t #2 name text not_null=t identity= generated= default='x'::text collation=",
        "index CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id) valid=t replica_identity=f clustered=f",
        "enum public.mood: 'a', 'b'",
        "comment on column name of table t: the name",
        "sequence t_id_seq owned by t.id",
    ] {
        assert!(before.lines().any(|l| l == line), "{line}\nnot in\n{before}");
    }
    // Each change shows, and undoing it gives the same text again.
    for (change, undo) in [
        (
            "ALTER TABLE t ADD COLUMN extra int",
            "ALTER TABLE t DROP COLUMN extra",
        ),
        (
            "ALTER TABLE t REPLICA IDENTITY FULL",
            "ALTER TABLE t REPLICA IDENTITY DEFAULT",
        ),
        (
            "CREATE SCHEMA v; CREATE VIEW v.t AS SELECT id FROM t",
            "DROP SCHEMA v CASCADE",
        ),
        (
            "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
             CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()",
            "DROP FUNCTION f() CASCADE",
        ),
        (
            "ALTER TYPE mood ADD VALUE 'c'",
            "DROP TYPE mood; CREATE TYPE mood AS ENUM ('a', 'b')",
        ),
        (
            "ALTER TABLE t ALTER COLUMN name DROP DEFAULT",
            "ALTER TABLE t ALTER COLUMN name SET DEFAULT 'x'",
        ),
    ] {
        db.execute(change);
        assert_ne!(before, db.describe_catalog(), "{change} did not show");
        db.execute(undo);
        assert_eq!(
            before,
            db.describe_catalog(),
            "{undo} did not undo {change}"
        );
    }
}

/// One row of facts about the session's role and the database.
fn who(client: &mut postgres::Client) -> (String, bool, bool, bool, String, bool) {
    let row = client
        .query_one(
            "SELECT current_user::text, r.rolsuper, r.rolcreatedb, r.rolcreaterole,
                    d.datdba::regrole::text, pg_has_role(current_user, 'pg_monitor', 'USAGE')
               FROM pg_roles r, pg_database d
              WHERE r.rolname = current_user AND d.datname = current_database()",
            &[],
        )
        .unwrap();
    (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
    )
}

#[test]
fn least_access_is_a_plain_role_that_owns_what_it_creates() {
    let db = TestDb::with_access(cluster(), Access::Least);
    assert_eq!(db.access(), Access::Least);
    let superuser = cluster().superuser();
    assert_ne!(db.user(), superuser);
    let mut client = db.connect();
    let (user, is_super, createdb, createrole, db_owner, monitor) = who(&mut client);
    assert_eq!(user, db.user());
    assert!(!is_super && !createdb && !createrole && !monitor);
    assert_eq!(db_owner, superuser, "the database belongs to someone else");

    // It may create schemas, tables in public and temporary tables, and owns them.
    db.execute("CREATE SCHEMA mine; CREATE TABLE mine.t (id int); CREATE TABLE p (id int)");
    db.execute("CREATE TEMP TABLE scratch (id int)");
    let owners: Vec<String> = client
        .query(
            "SELECT relowner::regrole::text FROM pg_class WHERE relname IN ('t', 'p') ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(owners, [db.user(), db.user()]);
    // What a managed service keeps for itself is refused.
    let refused = client.batch_execute("CREATE ROLE intruder").unwrap_err();
    assert_eq!(
        refused.code(),
        Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    let refused = client
        .batch_execute(&format!("ALTER DATABASE {} SET work_mem = '8MB'", db.name))
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );

    // The URLs and search_path sessions log in as the same role; the superuser is still at hand.
    let mut by_url = postgres::Client::connect(&db.url(), postgres::NoTls).unwrap();
    assert_eq!(who(&mut by_url).0, db.user());
    assert_eq!(who(&mut db.connect_with_search_path("mine")).0, db.user());
    let (user, is_super, ..) = who(&mut db.connect_as_superuser());
    assert_eq!((user.as_str(), is_super), (superuser, true));
    db.execute_as_superuser(
        "CREATE ROLE kit_made_by_the_superuser; DROP ROLE kit_made_by_the_superuser",
    );

    // Dropping the database drops its role too.
    let role = db.user().to_string();
    drop(client);
    drop(by_url);
    drop(db);
    let left: i64 = cluster()
        .connect("postgres")
        .unwrap()
        .query_one("SELECT count(*) FROM pg_roles WHERE rolname = $1", &[&role])
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

#[test]
fn the_environment_picks_who_tests_act_as() {
    let db = TestDb::new();
    assert_eq!(db.access(), Access::from_env());
    let (user, is_super, ..) = who(&mut db.connect());
    assert_eq!(user, db.user());
    assert_eq!(is_super, db.access() == Access::Superuser);
}

#[test]
fn pagila_loads_whole_and_belongs_to_the_tests_role() {
    let Some(db) = TestDb::pagila() else { return };
    let mut client = db.connect();
    let counts: Vec<(String, i64)> = [
        "actor",
        "film",
        "rental",
        "payment",
        "payment_p2022_03",
        "customer",
    ]
    .iter()
    .map(|table| {
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM public.{table}"), &[])
            .unwrap()
            .get(0);
        (table.to_string(), n)
    })
    .collect();
    assert_eq!(
        counts,
        [
            ("actor".to_string(), 200),
            ("film".to_string(), 1000),
            ("rental".to_string(), 16044),
            ("payment".to_string(), 16049),
            ("payment_p2022_03".to_string(), 2713),
            ("customer".to_string(), 599),
        ]
    );
    // Every table, view, sequence and function of Pagila belongs to the role the tests act as, so
    // that with TANDEM_TEST_ROLE=least tandem runs on it as a plain owner.
    let foreign: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(foreign, 0);
    // Its own machinery works: the views read, the trigger stamps last_update.
    let listed: i64 = client
        .query_one("SELECT count(*) FROM public.film_list", &[])
        .unwrap()
        .get(0);
    assert!(listed > 900, "film_list has {listed} rows");
    client
        .batch_execute("UPDATE public.actor SET first_name = 'X' WHERE actor_id = 1")
        .unwrap();
    let stamped: bool = client
        .query_one(
            "SELECT last_update > now() - interval '1 minute' FROM public.actor WHERE actor_id = 1",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(stamped);
}

#[test]
fn pgbouncer_pools_in_transaction_mode_and_stops_when_dropped() {
    let db = TestDb::new();
    db.execute("CREATE TABLE seen (n int)");
    let bouncer = PgBouncer::start(&[db.pgbouncer_entry("app")], &[db.user()]);
    let mut client = bouncer.connect(db.user(), "app");
    client.simple_query("INSERT INTO seen VALUES (1)").unwrap();
    let mode = bouncer
        .admin("SHOW CONFIG")
        .into_iter()
        .find(|row| row[0].as_deref() == Some("pool_mode"))
        .and_then(|row| row[1].clone());
    assert_eq!(mode.as_deref(), Some("transaction"));
    let n: i64 = db
        .connect()
        .query_one("SELECT count(*) FROM seen", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "the write went through the pool");
    let port = bouncer.port();
    drop(client);
    drop(bouncer);
    // Dropping waits for the process to exit, so nothing listens any more.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
