//! Helpers for the engine's integration tests: a database per test with tandem initialised, a
//! migration from inline YAML, and clients of the old and new versions.

#![allow(dead_code)]

use std::sync::Mutex;
use tandem_model::migration::Format;
use tandem_model::Migration;
use tandem_pg::{ConnectOptions, Engine, EngineOptions, Event};
use tandem_testkit::TestDb;

pub struct Env {
    pub db: TestDb,
    pub client: postgres::Client,
    pub events: Mutex<Vec<Event>>,
    /// The options every engine call of this env uses.
    pub options: EngineOptions,
    /// The role the application's sessions ([`Env::version`]) log in as: not the owner, granted
    /// what an application needs on the tables the owner creates.
    pub app: String,
}

pub fn migration(name: &str, yaml: &str) -> Migration {
    Migration::parse(yaml, Format::Yaml, &format!("{name}.yaml"), name)
        .unwrap_or_else(|e| panic!("{e}"))
}

impl Env {
    pub fn new() -> Env {
        Env::on(TestDb::new())
    }

    /// An env on a database of the test's own, such as a copy of Pagila (`TestDb::pagila`).
    pub fn on(db: TestDb) -> Env {
        let app = db.application_role("client");
        let client = tandem_pg::connect(&ConnectOptions {
            url: Some(db.url()),
            ..ConnectOptions::default()
        })
        .expect("connect");
        let options = EngineOptions {
            connect: Some(ConnectOptions {
                url: Some(db.url()),
                ..ConnectOptions::default()
            }),
            ..EngineOptions::default()
        };
        let mut env = Env {
            db,
            client,
            events: Mutex::new(Vec::new()),
            options,
            app,
        };
        env.engine().init().expect("init");
        env
    }

    /// An env on a fresh copy of Pagila, or `None` where Pagila is absent. Pagila's own
    /// `last_updated` and `fulltext` triggers are kept out of the backfill through
    /// `session_replication_role`, which the least-privileged role may set once granted (15 and
    /// later); on 14 it may not, and the tests accept that the backfill fires them.
    pub fn pagila() -> Option<Env> {
        let mut env = Env::on(TestDb::pagila()?);
        if env.db.access() == tandem_testkit::Access::Least {
            if env.db.cluster().major_version() >= 15 {
                env.db.execute_as_superuser(&format!(
                    "GRANT SET ON PARAMETER session_replication_role TO {}",
                    tandem_model::quote_ident(env.db.user())
                ));
            } else {
                env.options.backfill_fires_triggers = true;
            }
        }
        Some(env)
    }

    pub fn engine(&mut self) -> Engine<'_> {
        Engine::new(&mut self.client, self.options.clone())
    }

    pub fn start(
        &mut self,
        m: &Migration,
    ) -> Result<tandem_pg::engine::StartReport, tandem_pg::Error> {
        let events = &self.events;
        let on_event = |e: &Event| events.lock().unwrap().push(e.clone());
        Engine::new(&mut self.client, self.options.clone()).start(m, &on_event)
    }

    pub fn complete(&mut self) {
        let events = &self.events;
        let on_event = |e: &Event| events.lock().unwrap().push(e.clone());
        Engine::new(&mut self.client, self.options.clone())
            .complete(&on_event)
            .unwrap_or_else(|e| panic!("complete: {e}"));
    }

    pub fn rollback(&mut self) {
        let events = &self.events;
        let on_event = |e: &Event| events.lock().unwrap().push(e.clone());
        Engine::new(&mut self.client, self.options.clone())
            .rollback(&on_event)
            .unwrap_or_else(|e| panic!("rollback: {e}"));
    }

    /// Starts and completes a migration.
    pub fn apply(&mut self, name: &str, yaml: &str) -> Migration {
        let m = migration(name, yaml);
        self.start(&m)
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        self.complete();
        m
    }

    /// A client of the version whose schema is `version_schema`, as the application role.
    pub fn version(&self, version_schema: &str) -> postgres::Client {
        self.db
            .connect_as_with_search_path(&self.app, &format!("\"{version_schema}\", public"))
    }

    /// The name of the test's database, for `ALTER DATABASE`.
    pub fn database(&mut self) -> String {
        self.client
            .query_one("SELECT current_database()", &[])
            .unwrap()
            .get(0)
    }

    pub fn status(&mut self) -> tandem_pg::Status {
        self.engine().status().expect("status")
    }
}

pub fn count(c: &mut postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {}", tandem_pg::error::describe(&e)))
        .get(0)
}

/// Runs SQL and panics with it on failure.
pub fn exec(c: &mut postgres::Client, sql: &str) {
    c.batch_execute(sql)
        .unwrap_or_else(|e| panic!("{sql}: {}", tandem_pg::error::describe(&e)));
}
