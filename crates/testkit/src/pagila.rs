//! The Pagila sample database (`../shared/pagila`, see its NOTICE.md), a real schema nobody here
//! wrote: views and a materialized view over the tables, a partitioned `payment`, a domain, an
//! enum, a `last_updated` trigger on every table and a tsvector kept by a trigger. It is loaded
//! once per test binary into a template, and each test gets a copy of its own.

use std::path::PathBuf;
use std::sync::OnceLock;

use tandem_model::quote_ident;

use crate::TestDb;

/// The directory that holds `pagila-schema.sql` and `pagila-data.sql`: `TANDEM_PAGILA_DIR`, or
/// `../shared/pagila` beside the workspace. `None`, after saying so on stderr, when it is absent
/// and `TANDEM_REQUIRE_COMPAT` is unset; with it set (CI sets it whenever `../shared` is there) a
/// missing Pagila panics, so it is never skipped where it should run.
pub fn pagila_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("TANDEM_PAGILA_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/pagila"),
    };
    if dir.join("pagila-schema.sql").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("TANDEM_REQUIRE_COMPAT").is_none(),
        "TANDEM_REQUIRE_COMPAT is set but {} has no pagila-schema.sql",
        dir.display()
    );
    eprintln!("skipping: {} not present", dir.display());
    None
}

impl TestDb {
    /// A fresh database holding Pagila, schema and data, owned by [`TestDb::user`] (with
    /// `TANDEM_TEST_ROLE=least`, the least-privileged role); `None` where [`pagila_dir`] is.
    pub fn pagila() -> Option<TestDb> {
        static TEMPLATE: OnceLock<Option<TestDb>> = OnceLock::new();
        let template = TEMPLATE.get_or_init(|| {
            let dir = pagila_dir()?;
            let db = TestDb::new();
            load(&db, &dir);
            Some(db)
        });
        template.as_ref().map(TestDb::from_template)
    }
}

/// Loads Pagila into `db` as the superuser, with every object owned by the test's role (the dump
/// gives them to `postgres`) and schema `public` left as it was.
fn load(db: &TestDb, dir: &std::path::Path) {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("tandem-testkit: reading {}: {e}", path.display()))
    };
    let owner = format!("OWNER TO {};", quote_ident(db.user()));
    let schema: String = read("pagila-schema.sql")
        .lines()
        .filter(|line| !line.starts_with("ALTER SCHEMA public OWNER TO"))
        .map(|line| line.replace("OWNER TO postgres;", &owner) + "\n")
        .collect();
    let mut session = db.connect_as_superuser();
    session.batch_execute(&schema).unwrap_or_else(|e| {
        panic!(
            "tandem-testkit: loading pagila-schema.sql: {}",
            describe(&e)
        )
    });
    load_data(&mut session, &read("pagila-data.sql"));
}

/// Runs a plain-format `pg_dump` data file: SQL between `COPY ... FROM stdin;` blocks, each
/// block's rows up to its `\.` line sent through the COPY protocol, as psql would.
fn load_data(session: &mut postgres::Client, dump: &str) {
    use std::io::Write;
    let mut sql = String::new();
    let mut lines = dump.lines();
    while let Some(line) = lines.next() {
        if !(line.starts_with("COPY ") && line.ends_with(" FROM stdin;")) {
            sql.push_str(line);
            sql.push('\n');
            continue;
        }
        session
            .batch_execute(&std::mem::take(&mut sql))
            .unwrap_or_else(|e| panic!("tandem-testkit: pagila-data.sql: {}", describe(&e)));
        let mut rows = String::new();
        for row in lines.by_ref().take_while(|row| *row != "\\.") {
            rows.push_str(row);
            rows.push('\n');
        }
        let mut writer = session
            .copy_in(line.trim_end_matches(';'))
            .unwrap_or_else(|e| panic!("tandem-testkit: {line}: {}", describe(&e)));
        writer
            .write_all(rows.as_bytes())
            .unwrap_or_else(|e| panic!("tandem-testkit: {line}: {e}"));
        writer
            .finish()
            .unwrap_or_else(|e| panic!("tandem-testkit: {line}: {}", describe(&e)));
    }
    session
        .batch_execute(&sql)
        .unwrap_or_else(|e| panic!("tandem-testkit: pagila-data.sql: {}", describe(&e)));
}

fn describe(error: &postgres::Error) -> String {
    tandem_pg::error::describe(error)
}
