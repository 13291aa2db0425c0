//! Least privilege: tandem needs no superuser. A login role that owns its schema and tables runs
//! the whole lifecycle itself; a deploy role that may only `SET ROLE` to the owner does the same
//! through `--role`, and everything tandem creates belongs to the owner. Without `--role` the
//! deploy role is refused before anything is changed, and `status` stays truthful.

mod common;

use common::{count, exec, migration, Env};
use tandem_model::{quote_ident, Migration};
use tandem_pg::{ConnectOptions, Engine, EngineOptions, Error};
use tandem_testkit::TestDb;

/// Roles are cluster-wide and tests run in parallel: each test's roles carry its database's name.
struct Roles {
    owner: String,
    deployer: String,
}

/// A database whose schema `app` and table `app.users` (with rows) belong to a login role that
/// is neither superuser nor database owner, as managed services hand out; and a deploy role that
/// is a member of it without inheriting its privileges, so it must `SET ROLE` to act as it.
fn setup() -> (TestDb, Roles) {
    let db = TestDb::new();
    let roles = Roles {
        owner: format!("{}_owner", db.name),
        deployer: format!("{}_deployer", db.name),
    };
    let (owner, deployer) = (&roles.owner, &roles.deployer);
    // Creating roles is an administrator's job, whichever role the test kit gives the tests. The
    // kit's own role (the superuser, or with TANDEM_TEST_ROLE=least a plain one) becomes a member
    // of the owner, so that the old- and new-version clients it opens can use the tables.
    db.execute_as_superuser(&format!(
        "CREATE ROLE {owner} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
         CREATE ROLE {deployer} LOGIN NOSUPERUSER NOINHERIT;
         GRANT {owner} TO {deployer};
         GRANT {owner} TO {app};
         GRANT CREATE ON DATABASE {db} TO {owner};
         CREATE SCHEMA app AUTHORIZATION {owner};
         SET ROLE {owner};
         CREATE TABLE app.users (id serial PRIMARY KEY, name text NOT NULL, legacy text);
         INSERT INTO app.users (name, legacy) SELECT 'u' || g, 'l' || g FROM generate_series(1, 200) g;
         RESET ROLE",
        db = db.name,
        app = quote_ident(db.user()),
    ));
    (db, roles)
}

/// The role is the session's (`ConnectOptions::role`, which `--role` sets), not the engine's.
fn options() -> EngineOptions {
    EngineOptions {
        schema: "app".into(),
        ..EngineOptions::default()
    }
}

/// A session as `user`, acting as `role` when given, as `tandem --role` sets it up.
fn session(db: &TestDb, user: &str, role: Option<&str>) -> postgres::Client {
    tandem_pg::connect(&ConnectOptions {
        url: Some(db.url_as(user)),
        role: role.map(str::to_string),
        ..ConnectOptions::default()
    })
    .unwrap_or_else(|e| panic!("connecting as {user}: {e}"))
}

const MIGRATION: &str = "operations:
  - create_table: {name: audit, columns: [{name: id, type: int, pk: true}]}
  - add_column: {table: users, up: upper(name), column: {name: shout, type: text, nullable: true}}
  - drop_column: {table: users, column: legacy, down: \"'?'\"}
  - rename_column: {table: users, from: name, to: full_name}
  - create_index: {name: users_full_name_idx, table: users, columns: [{column: full_name}]}
  - sql: {up: CREATE FUNCTION app.answer() RETURNS int LANGUAGE sql AS 'SELECT 42', down: DROP FUNCTION app.answer()}
";

fn m() -> Migration {
    migration("02_reshape", MIGRATION)
}

/// The owner of each object tandem made or changed, for assertions.
fn owners(c: &mut postgres::Client) -> Vec<(String, String)> {
    c.query(
        "SELECT 'schema ' || nspname, nspowner::regrole::text FROM pg_namespace
          WHERE nspname IN ('tandem', 'app', 'app_02_reshape')
         UNION ALL
         SELECT 'relation ' || n.nspname || '.' || c.relname, c.relowner::regrole::text
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname IN ('tandem', 'app', 'app_02_reshape') AND c.relkind IN ('r', 'v', 'i', 'S')
         UNION ALL
         SELECT 'function ' || n.nspname || '.' || p.proname, p.proowner::regrole::text
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname IN ('tandem', 'app', 'app_02_reshape')
         ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

fn assert_all_owned_by(c: &mut postgres::Client, owner: &str, expect: &[&str]) {
    let found = owners(c);
    for object in expect {
        assert!(
            found.iter().any(|(o, _)| o == object),
            "{object} is missing from {found:?}"
        );
    }
    for (object, by) in &found {
        assert_eq!(by, owner, "{object} is owned by {by}");
    }
}

#[test]
fn a_deploy_role_acts_as_the_owner_through_role() {
    let (db, roles) = setup();
    let mut client = session(&db, &roles.deployer, Some(&roles.owner));
    let current: String = client
        .query_one("SELECT current_user::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(current, roles.owner);
    let mut engine = Engine::new(&mut client, options());
    engine.init().unwrap();
    engine.start(&m(), &tandem_pg::events::ignore).unwrap();
    // While active: the version schema, its views, the trigger and its function, the new
    // table and index, and the state tables all belong to the owner.
    let mut admin = db.connect_as_superuser();
    assert_all_owned_by(
        &mut admin,
        &roles.owner,
        &[
            "schema tandem",
            "schema app_02_reshape",
            "relation tandem.migrations",
            "relation tandem.meta",
            "relation app_02_reshape.users",
            "relation app_02_reshape.audit",
            "relation app.audit",
            "relation app.users_full_name_idx",
            "function app._tandem_users",
            "function app.answer",
        ],
    );
    assert_eq!(
        count(
            &mut admin,
            "SELECT count(*) FROM pg_trigger WHERE tgname = '_tandem_users'"
        ),
        1
    );
    let mut new = db.connect_with_search_path("app_02_reshape");
    assert_eq!(
        count(
            &mut new,
            "SELECT count(*) FROM users WHERE shout = upper(full_name)"
        ),
        200
    );
    engine.rollback(&tandem_pg::events::ignore).unwrap();
    engine.start(&m(), &tandem_pg::events::ignore).unwrap();
    engine.complete(&tandem_pg::events::ignore).unwrap();
    assert_all_owned_by(
        &mut admin,
        &roles.owner,
        &["schema app_02_reshape", "relation app.audit"],
    );
    assert_eq!(
        engine.status().unwrap().latest.unwrap().status,
        tandem_pg::MigrationStatus::Complete
    );
}

#[test]
fn without_role_the_deploy_role_is_refused_before_anything_changes() {
    let (db, roles) = setup();
    // `init` needs to create the state schema, which only the owner may do here.
    let mut plain = session(&db, &roles.deployer, None);
    let e = Engine::new(&mut plain, options()).init().unwrap_err();
    assert!(
        e.to_string().contains("permission denied for database")
            && e.to_string().contains("or name it with --role"),
        "{e}"
    );
    let mut admin = db.connect_as_superuser();
    assert_eq!(
        count(
            &mut admin,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'tandem'"
        ),
        0
    );
    // With the state initialised by the owner, `start` is refused before any DDL.
    let mut owner = session(&db, &roles.deployer, Some(&roles.owner));
    Engine::new(&mut owner, options()).init().unwrap();
    let before = db.dump_schema();
    let e = Engine::new(&mut plain, options())
        .start(&m(), &tandem_pg::events::ignore)
        .unwrap_err();
    let message = e.to_string();
    assert!(
        matches!(&e, Error::Db { .. })
            && message.contains("permission denied for schema tandem")
            && message.contains("tandem must act as the owner of the schema and its tables"),
        "{message}"
    );
    assert_eq!(before, db.dump_schema(), "a refused start changes nothing");
    let status = Engine::new(&mut owner, options()).status().unwrap();
    assert!(status.active.is_none() && status.history.is_empty());
    // The same run with --role goes through.
    Engine::new(&mut owner, options())
        .start(&m(), &tandem_pg::events::ignore)
        .unwrap();
}

#[test]
fn an_owner_without_superuser_runs_the_whole_lifecycle() {
    let (db, roles) = setup();
    let mut client = session(&db, &roles.owner, None);
    let superuser: bool = client
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!superuser);
    let before = db.dump_schema();
    let mut engine = Engine::new(&mut client, options());
    engine.init().unwrap();
    let after_init = db.dump_schema();
    assert_ne!(before, after_init);
    engine.start(&m(), &tandem_pg::events::ignore).unwrap();
    let mut old = db.connect_with_search_path("app");
    let mut new = db.connect_with_search_path("app_02_reshape");
    exec(
        &mut old,
        "INSERT INTO users (name, legacy) VALUES ('old', 'l')",
    );
    exec(&mut new, "INSERT INTO users (full_name) VALUES ('new')");
    assert_eq!(
        count(&mut new, "SELECT count(*) FROM users WHERE shout = 'OLD'"),
        1
    );
    assert_eq!(
        count(&mut old, "SELECT count(*) FROM users WHERE legacy = '?'"),
        1
    );
    engine.rollback(&tandem_pg::events::ignore).unwrap();
    assert_eq!(
        after_init,
        db.dump_schema(),
        "rollback restores the catalog"
    );
    engine.start(&m(), &tandem_pg::events::ignore).unwrap();
    engine.complete(&tandem_pg::events::ignore).unwrap();
    assert_eq!(
        count(
            &mut db.connect_as_superuser(),
            "SELECT count(*) FROM app.users WHERE shout = upper(full_name)"
        ),
        202
    );
    assert_all_owned_by(
        &mut db.connect_as_superuser(),
        &roles.owner,
        &["schema app_02_reshape"],
    );
}

const ROLES_BASE: &str = "operations:
  - create_table:
      name: users
      columns:
        - {name: id, type: serial, pk: true}
        - {name: name, type: text}
        - {name: score, type: int}
        - {name: secret, type: text, nullable: true}
";

const ROLES_CHANGE: &str = "operations:
  - rename_column: {table: users, from: name, to: full_name}
  - alter_column: {table: users, column: score, type: bigint, up: score, down: score::int}
  - add_column: {table: users, column: {name: note, type: text, nullable: true}}
";

/// The SQLSTATE of what `sql` fails with, or `None` when it succeeds.
fn refused(c: &mut postgres::Client, sql: &str) -> Option<String> {
    c.batch_execute(sql).err().map(|e| {
        e.code()
            .map_or("no sqlstate".into(), |s| s.code().to_string())
    })
}

const PERMISSION_DENIED: Option<&str> = Some("42501");

/// Each role's privileges on the table and on its view, table-wide and per column, which must
/// be equal.
fn privilege_matrix(
    c: &mut postgres::Client,
    roles: &[&str],
    relation: &str,
    columns: &[&str],
) -> Vec<String> {
    let mut out = Vec::new();
    for role in roles {
        for privilege in [
            "SELECT",
            "INSERT",
            "UPDATE",
            "DELETE",
            "TRUNCATE",
            "REFERENCES",
            "TRIGGER",
        ] {
            let has: bool = c
                .query_one(
                    "SELECT has_table_privilege($1, $2, $3)",
                    &[role, &relation, &privilege],
                )
                .unwrap()
                .get(0);
            out.push(format!("{privilege} {has}"));
        }
        for (k, column) in columns.iter().enumerate() {
            for privilege in ["SELECT", "INSERT", "UPDATE", "REFERENCES"] {
                let has: bool = c
                    .query_one(
                        "SELECT has_column_privilege($1, $2, $3, $4)",
                        &[role, &relation, column, &privilege],
                    )
                    .unwrap()
                    .get(0);
                out.push(format!("column {k} {privilege} {has}"));
            }
        }
    }
    out
}

#[test]
fn application_roles_reach_the_new_version_with_exactly_the_tables_privileges() {
    let mut env = Env::new();
    env.apply("01_users", ROLES_BASE);
    exec(
        &mut env.db.connect(),
        "INSERT INTO users (name, score, secret) SELECT 'u' || g, g, 's' || g FROM generate_series(1, 50) g",
    );
    // A role granted some columns only, and one granted nothing on the table.
    let narrow = format!("{}_narrow", env.db.name);
    let outsider = format!("{}_outsider", env.db.name);
    env.db.execute_as_superuser(&format!(
        "CREATE ROLE {n} LOGIN; CREATE ROLE {o} LOGIN;
         GRANT CONNECT ON DATABASE {db} TO {n}, {o}; GRANT USAGE ON SCHEMA public TO {n}, {o}",
        n = quote_ident(&narrow),
        o = quote_ident(&outsider),
        db = quote_ident(&env.db.name),
    ));
    env.db.execute(&format!(
        "GRANT SELECT (id, name, score), UPDATE (name) ON public.users TO {}",
        quote_ident(&narrow)
    ));
    // The first migration's version schema was made before these grants: status says so.
    let drift = env.status().grant_drift;
    assert_eq!(
        drift,
        [
            "SELECT (id)",
            "SELECT (name)",
            "SELECT (score)",
            "UPDATE (name)"
        ]
        .map(|p| format!("GRANT {p} ON public_01_users.users TO {narrow};"))
    );
    env.db.execute(&drift.join("\n"));
    let m = migration("02_roles", ROLES_CHANGE);
    env.start(&m).unwrap();
    let version = "public_02_roles";
    let sp = format!("{version}, public");

    // The application role sees the new shape and is counted as the new version.
    let mut app = env.version(version);
    let first: String = app
        .query_one("SELECT (current_schemas(false))[1]::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(first, version);
    exec(
        &mut app,
        "INSERT INTO users (full_name, score, note) VALUES ('new', 7, 'n')",
    );
    exec(
        &mut app,
        "UPDATE users SET score = 800 WHERE full_name = 'new'",
    );
    assert_eq!(
        count(&mut app, "SELECT count(*) FROM users WHERE score = 800"),
        1
    );
    exec(&mut app, "DELETE FROM users WHERE full_name = 'new'");

    // The narrow role keeps exactly its columns, under their new names and types.
    let mut n = env.db.connect_as_with_search_path(&narrow, &sp);
    assert_eq!(
        count(
            &mut n,
            "SELECT sum(score)::bigint FROM users WHERE full_name LIKE 'u%'"
        ),
        1275
    );
    assert_eq!(
        refused(
            &mut n,
            "UPDATE users SET full_name = full_name || '!' WHERE id = 1"
        ),
        None
    );
    for denied in [
        "SELECT secret FROM users",
        "SELECT note FROM users",
        "UPDATE users SET score = 1",
        "INSERT INTO users (full_name, score) VALUES ('x', 1)",
        "DELETE FROM users",
    ] {
        assert_eq!(
            refused(&mut n, denied),
            PERMISSION_DENIED.map(String::from),
            "{denied}"
        );
    }
    // The old version, on the table itself, is as it was.
    let mut n_old = env.db.connect_as(&narrow);
    assert_eq!(
        count(
            &mut n_old,
            "SELECT count(*) FROM users WHERE name LIKE 'u%'"
        ),
        50
    );
    assert_eq!(
        refused(&mut n_old, "SELECT secret FROM users"),
        PERMISSION_DENIED.map(String::from)
    );

    // A role granted nothing on the table gets nothing from its view.
    let mut o = env.db.connect_as_with_search_path(&outsider, &sp);
    assert_eq!(
        refused(&mut o, "SELECT count(*) FROM users"),
        PERMISSION_DENIED.map(String::from)
    );

    // The same privileges, role by role, on the table and on the view.
    let mut admin = env.db.connect_as_superuser();
    let roles = [env.app.as_str(), narrow.as_str(), outsider.as_str()];
    assert_eq!(
        privilege_matrix(
            &mut admin,
            &roles,
            "public.users",
            &["id", "name", "score", "secret"]
        ),
        privilege_matrix(
            &mut admin,
            &roles,
            &format!("{version}.users"),
            &["id", "full_name", "score", "secret"]
        ),
    );
    assert_eq!(env.status().grant_drift, Vec::<String>::new());

    // Grants made on the table while the migration is active: status says what the views
    // lack, and its statements, run as the owner, bring them in line.
    env.db.execute(&format!(
        "GRANT SELECT (secret) ON public.users TO {n}; REVOKE DELETE ON public.users FROM {a}",
        n = quote_ident(&narrow),
        a = quote_ident(&env.app),
    ));
    let drift = env.status().grant_drift;
    let mut expected = Vec::new();
    for schema in ["public_01_users", version] {
        expected.push(format!(
            "GRANT SELECT (secret) ON {schema}.users TO {narrow};"
        ));
    }
    for schema in ["public_01_users", version] {
        expected.push(format!("REVOKE DELETE ON {schema}.users FROM {};", env.app));
    }
    assert_eq!(drift, expected);
    assert_eq!(
        refused(&mut n, "SELECT secret FROM users"),
        PERMISSION_DENIED.map(String::from)
    );
    env.db.execute(&drift.join("\n"));
    assert_eq!(env.status().grant_drift, Vec::<String>::new());
    assert_eq!(refused(&mut n, "SELECT secret FROM users"), None);
    assert_eq!(
        refused(&mut app, "DELETE FROM users WHERE id = 1"),
        PERMISSION_DENIED.map(String::from)
    );
    drop((app, n, n_old, o));

    // After complete the renamed and retyped columns keep the narrow role's privileges.
    env.complete();
    let mut n = env.db.connect_as(&narrow);
    assert_eq!(
        count(
            &mut n,
            "SELECT sum(score)::bigint FROM users WHERE full_name LIKE 'u%'"
        ),
        1275
    );
    assert_eq!(refused(&mut n, "SELECT secret FROM users"), None);
}

const DOCS_BASE: &str = "operations:
  - create_table:
      name: docs
      columns:
        - {name: id, type: int, pk: true}
        - {name: title, type: text}
  - create_table:
      name: notes
      columns:
        - {name: id, type: int, pk: true}
        - {name: body, type: text}
";

/// Tables with row-level security: on PostgreSQL 15 and later the views read them with the
/// querying role's rights (security_invoker), so the policies hold through the new version; on
/// 14 a view would read them with its owner's rights, so a migration that changes such a table
/// is refused before anything changes, and the new version reads a table it does not change
/// directly, under its policies.
#[test]
fn row_level_security_holds_through_the_new_version() {
    let mut env = Env::new();
    env.apply("01_docs", DOCS_BASE);
    env.db.execute(
        "INSERT INTO docs SELECT g, 't' || g FROM generate_series(1, 10) g;
         INSERT INTO notes SELECT g, 'b' || g FROM generate_series(1, 10) g;
         ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
         ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
         CREATE POLICY even ON docs USING (id % 2 = 0);
         CREATE POLICY low ON notes USING (id <= 3);",
    );
    let major = env.db.cluster().major_version();
    let changes_docs = migration(
        "02_docs",
        "operations:\n  - rename_column: {table: docs, from: title, to: heading}\n",
    );
    if major < 15 {
        let before = env.db.dump_schema();
        let err = env.start(&changes_docs).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, Error::Plan(_)), "{message}");
        assert!(
            message.contains("\"docs\" has row-level security")
                && message.contains("security_invoker"),
            "{message}"
        );
        assert_eq!(before, env.db.dump_schema(), "nothing changed");
        assert!(env.status().active.is_none());
        // A migration that leaves both tables as they are: the new version reads them itself.
        let other = migration(
            "02_other",
            "operations:\n  - create_table: {name: extra, columns: [{name: id, type: int, pk: true}]}\n",
        );
        env.start(&other).unwrap();
        let mut new = env.version("public_02_other");
        assert_eq!(count(&mut new, "SELECT count(*) FROM docs"), 5);
        assert_eq!(count(&mut new, "SELECT count(*) FROM notes"), 3);
        assert_eq!(count(&mut new, "SELECT count(*) FROM extra"), 0);
        let views = count(
            &mut env.db.connect(),
            "SELECT count(*) FROM pg_views WHERE schemaname = 'public_02_other' AND viewname IN ('docs', 'notes')",
        );
        assert_eq!(views, 0);
        return;
    }
    env.start(&changes_docs).unwrap();
    let mut new = env.version("public_02_docs");
    assert_eq!(
        count(
            &mut new,
            "SELECT count(*) FROM docs WHERE heading LIKE 't%'"
        ),
        5
    );
    assert_eq!(count(&mut new, "SELECT count(*) FROM notes"), 3);
    let mut old = env.version("public_01_docs");
    assert_eq!(
        count(&mut old, "SELECT count(*) FROM docs WHERE title LIKE 't%'"),
        5
    );
    drop((new, old));
    env.rollback();
    // With column privileges as well, no view can honour both: refused before any change.
    env.db.execute(&format!(
        "GRANT SELECT (id) ON docs TO {}",
        quote_ident(&env.app)
    ));
    let before = env.db.dump_schema();
    let message = env.start(&changes_docs).unwrap_err().to_string();
    assert!(
        message.contains("\"docs\" has row-level security")
            && message.contains("column privileges"),
        "{message}"
    );
    assert_eq!(before, env.db.dump_schema(), "nothing changed");
    assert!(env.status().active.is_none());
}
