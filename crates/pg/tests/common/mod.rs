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
}

pub fn migration(name: &str, yaml: &str) -> Migration {
    Migration::parse(yaml, Format::Yaml, &format!("{name}.yaml"), name)
        .unwrap_or_else(|e| panic!("{e}"))
}

impl Env {
    pub fn new() -> Env {
        Env::on(TestDb::new())
    }

    /// An env over a database the test made (a copy of Pagila, say), with tandem initialised.
    pub fn on(db: TestDb) -> Env {
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
        };
        env.engine().init().expect("init");
        env
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

    /// A client of the version whose schema is `version_schema`.
    pub fn version(&self, version_schema: &str) -> postgres::Client {
        self.db
            .connect_with_search_path(&format!("\"{version_schema}\", public"))
    }

    pub fn status(&mut self) -> tandem_pg::Status {
        self.engine().status().expect("status")
    }
}

pub fn count(c: &mut postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// Runs SQL and panics with it on failure.
pub fn exec(c: &mut postgres::Client, sql: &str) {
    c.batch_execute(sql)
        .unwrap_or_else(|e| panic!("{sql}: {}", tandem_pg::error::describe(&e)));
}
