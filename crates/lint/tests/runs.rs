//! Migration directories shaped as real projects keep them (`tests/data/runs/<case>/`: goose,
//! dbmate, sqlx, golang-migrate, Flyway, Prisma, plain SQL with DO blocks and functions, a
//! starting schema): each is linted as one run, in its runner's order, and must give exactly the
//! findings its `expected.txt` lists; then each file is applied to PostgreSQL as its runner sends
//! it (in a transaction, as one query, or statement by statement), and exactly the files
//! `expected.txt` marks with `!` must fail, with the error it names.

use std::path::{Path, PathBuf};
use tandem_lint::runner::{self, Transaction};
use tandem_lint::{Config, Run, SqlFile};
use tandem_testkit::TestDb;

struct Expected {
    findings: Vec<String>,
    failures: Vec<(String, String)>,
}

fn expected(case: &Path) -> Expected {
    let text = std::fs::read_to_string(case.join("expected.txt")).unwrap();
    let mut findings = Vec::new();
    let mut failures = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.strip_prefix("! ") {
            Some(failure) => {
                let (file, message) = failure.split_once(": ").unwrap();
                failures.push((file.to_string(), message.to_string()));
            }
            None => findings.push(line.to_string()),
        }
    }
    findings.sort();
    Expected { findings, failures }
}

/// The directory of migrations in a case, as the project would keep it.
fn root(case: &Path) -> PathBuf {
    ["migrations", "db/migrations", "sql"]
        .iter()
        .map(|d| case.join(d))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| panic!("{}: no migrations directory", case.display()))
}

/// The migration files, listed as `tandem lint DIR` lists them.
fn files(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() && p.join("migration.sql").is_file() {
            found.push(format!("{name}/migration.sql"));
        } else if name.ends_with(".sql") {
            found.push(name);
        }
    }
    runner::migration_files(found)
}

fn run_sql(client: &mut postgres::Client, sql: &str) -> Result<(), String> {
    client
        .batch_execute(sql)
        .map_err(|e| tandem_pg::error::describe(&e))
}

/// Applies one prepared file as its runner sends it.
fn apply(
    client: &mut postgres::Client,
    source: &str,
    transaction: Transaction,
) -> Result<(), String> {
    let parsed = tandem_lint::parse::parse(source).map_err(|e| e.message)?;
    let one_by_one = |client: &mut postgres::Client| {
        for s in &parsed.statements {
            run_sql(client, &source[s.span.start..s.span.end])?;
        }
        Ok(())
    };
    match transaction {
        Transaction::OneQuery => run_sql(client, source),
        Transaction::PerStatement => one_by_one(client),
        t if !t.wraps(&parsed.statements) => one_by_one(client),
        _ => {
            let mut tx = client
                .transaction()
                .map_err(|e| tandem_pg::error::describe(&e))?;
            tx.batch_execute(source)
                .map_err(|e| tandem_pg::error::describe(&e))?;
            tx.commit().map_err(|e| tandem_pg::error::describe(&e))
        }
    }
}

fn check_case(case: &Path) {
    let name = case.file_name().unwrap().to_string_lossy().into_owned();
    let config = match std::fs::read_to_string(case.join("case.toml")) {
        Ok(text) => Config::from_toml(&text, "case.toml").unwrap(),
        Err(_) => Config::default(),
    };
    let expected = expected(case);
    let root = root(case);
    let db = TestDb::new();
    let mut client = db.connect();
    let setup = std::fs::read_to_string(case.join("setup.sql")).ok();
    if let Some(setup) = &setup {
        run_sql(&mut client, setup).unwrap_or_else(|e| panic!("{name}: setup: {e}"));
    }
    // With a setup, the run starts from the schema read back from the database.
    let schema = setup
        .as_ref()
        .map(|_| tandem_pg::introspect::read_schema(&mut client, "public").unwrap());
    let mut run = match &schema {
        Some(s) => Run::from_schema(&config, s),
        None => Run::new(&config),
    };
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for rel in files(&root) {
        let path = root.join(&rel);
        let text = std::fs::read_to_string(&path).unwrap();
        let conf = std::fs::read_to_string(format!("{}.conf", path.display())).ok();
        let file = SqlFile {
            name: &rel,
            text: &text,
            script_config: conf.as_deref(),
        };
        let runner = run.runner_for(&file);
        for f in run.lint_sql(file).unwrap_or_else(|e| panic!("{name}: {e}")) {
            found.push(format!("{rel}:{} {}", f.line, f.rule.id));
        }
        let prepared = runner::prepare(runner, &text, conf.as_deref());
        if let Err(e) = apply(&mut client, &prepared.source, prepared.transaction) {
            failures.push((rel.clone(), e));
        }
    }
    found.sort();
    assert_eq!(
        found, expected.findings,
        "{name}: the findings differ from expected.txt"
    );
    assert_eq!(
        failures.len(),
        expected.failures.len(),
        "{name}: PostgreSQL failed on {failures:#?}, expected {:#?}",
        expected.failures
    );
    for ((file, error), (want_file, want)) in failures.iter().zip(&expected.failures) {
        assert!(
            file == want_file && error.contains(want.as_str()),
            "{name}: {file} failed with {error:?}, expected {want_file}: {want:?}"
        );
    }
}

#[test]
fn migration_directories_lint_as_their_runners_run_them() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/runs");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 12, "{cases:?}");
    std::thread::scope(|scope| {
        for chunk in cases.chunks(3) {
            scope.spawn(move || chunk.iter().for_each(|c| check_case(c)));
        }
    });
}
