//! Least privilege: tandem needs no superuser. A login role that owns its schema and tables runs
//! the whole lifecycle itself; a deploy role that may only `SET ROLE` to the owner does the same
//! through `--role`, and everything tandem creates belongs to the owner. Without `--role` the
//! deploy role is refused before anything is changed, and `status` stays truthful.

mod common;

use common::{count, exec, migration};
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
    assert_eq!(engine.status().unwrap().latest.unwrap().status, "complete");
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
