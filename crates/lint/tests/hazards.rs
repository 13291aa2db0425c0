//! Real-world-shaped migrations (`tests/data/hazards/*.sql`) for the hazards the rules learned
//! from issue 15: each file lists every finding it must give as `-- expect: LINE:COLUMN RULE`
//! (the column is the offending clause), and gives exactly those, no more. Every file runs on
//! PostgreSQL after `schema.sql` (or fails as its `-- postgres refuses:` line says); every "instead" SQL a finding writes runs there too, in place
//! of its statement; and the messages carry no template placeholders.

use std::path::PathBuf;
use tandem_lint::{lint_sql, Config, Finding};
use tandem_testkit::TestDb;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/hazards")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every fixture but the schema, by name.
fn fixtures() -> Vec<(String, String)> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql") && n != "schema.sql")
        .collect();
    names.sort();
    assert!(names.len() >= 8, "the fixtures are missing: {names:?}");
    names
        .into_iter()
        .map(|n| {
            let text = read(&n);
            (n, text)
        })
        .collect()
}

fn lint(name: &str, sql: &str) -> Vec<Finding> {
    lint_sql(name, sql, &Config::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn expected(sql: &str) -> Vec<String> {
    let mut out: Vec<String> = sql
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-- expect: "))
        .map(|e| e.trim().to_string())
        .collect();
    out.sort();
    out
}

fn found(findings: &[Finding]) -> Vec<String> {
    let mut out: Vec<String> = findings
        .iter()
        .map(|f| format!("{}:{} {}", f.line, f.column, f.rule.id))
        .collect();
    out.sort();
    out
}

#[test]
fn every_fixture_gives_exactly_the_findings_it_expects() {
    let mut wrong = Vec::new();
    for (name, sql) in fixtures() {
        let findings = lint(&name, &sql);
        if found(&findings) != expected(&sql) {
            wrong.push(format!(
                "{name}: expected {:?}, found {:?}:\n{}",
                expected(&sql),
                found(&findings),
                findings
                    .iter()
                    .map(|f| format!("  {}:{} {} {}", f.line, f.column, f.rule.id, f.message))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn messages_have_no_placeholders_and_name_the_right_object() {
    let mut all = Vec::new();
    for (name, sql) in fixtures() {
        all.extend(lint(&name, &sql));
    }
    for f in &all {
        for text in [Some(&f.message), f.instead.as_ref()].into_iter().flatten() {
            assert!(
                !text.contains('{') && !text.contains('}'),
                "{}: a template placeholder is left: {text}",
                f.rule.id
            );
        }
    }
    let by = |id: &str| -> Vec<&Finding> { all.iter().filter(|f| f.rule.id == id).collect() };
    // T011 names the column in its CHECK; T017 on a DROP INDEX names the index's table.
    assert!(by("T011")
        .iter()
        .any(|f| f.message.contains("CHECK (email IS NOT NULL)")));
    let drop_index = all
        .iter()
        .find(|f| f.rule.id == "T017" && f.source_line.starts_with("DROP INDEX"))
        .expect("T017 on the DROP INDEX");
    assert!(
        drop_index
            .message
            .contains("lock on the table of index users_email_idx"),
        "{}",
        drop_index.message
    );
    // The foreign key of a new table names the table it references.
    assert!(by("T017")
        .iter()
        .any(|f| f.message.contains("the table it references, users")));
    // The instead SQL is written with the statement's own names, not the rule's example.
    let fk = by("T009");
    assert_eq!(fk.len(), 3, "{fk:#?}");
    assert_eq!(
        fk[2].instead.as_deref().unwrap(),
        "ALTER TABLE sessions ADD COLUMN account_id bigint;\n\
ALTER TABLE sessions ADD CONSTRAINT sessions_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE NOT VALID;\n\
-- then, in a later transaction:\n\
ALTER TABLE sessions VALIDATE CONSTRAINT sessions_account_id_fkey;"
    );
    assert!(fk[0].instead.as_deref().unwrap().contains(
        "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;"
    ));
    assert!(fk[1]
        .instead
        .as_deref()
        .unwrap()
        .contains("ALTER TABLE orders VALIDATE CONSTRAINT orders_total_positive;"));
}

/// Runs `sql` statement by statement, as psql does.
fn run(client: &mut postgres::Client, sql: &str) -> Result<(), String> {
    for s in tandem_lint::parse::parse(sql).expect("parses").statements {
        let text = &sql[s.span.start..s.span.end];
        client
            .batch_execute(text)
            .map_err(|e| format!("{}: {text}", tandem_pg::error::describe(&e)))?;
    }
    Ok(())
}

#[test]
fn fixtures_and_their_instead_sql_run_on_postgres() {
    let schema = read("schema.sql");
    std::thread::scope(|scope| {
        for (name, sql) in fixtures() {
            let schema = &schema;
            scope.spawn(move || {
                let db = TestDb::new();
                let mut client = db.connect();
                run(&mut client, schema).unwrap_or_else(|e| panic!("schema.sql: {e}"));
                // A file may say that PostgreSQL refuses it, as the linter does.
                let refuses = sql
                    .lines()
                    .find_map(|l| l.strip_prefix("-- postgres refuses: "));
                match (run(&mut client, &sql), refuses) {
                    (Ok(()), None) => {}
                    (Err(e), Some(expected)) if e.contains(expected) => {}
                    (Err(e), _) => panic!("{name}: {e}"),
                    (Ok(()), Some(expected)) => panic!("{name}: should fail with {expected:?}"),
                }
                // Each finding's SQL, run where its statement would have run.
                let statements = tandem_lint::parse::parse(&sql).unwrap().statements;
                for f in lint(&name, &sql) {
                    let Some(instead) = &f.instead else { continue };
                    let offset = line_col_offset(&sql, f.line, f.column);
                    let index = statements
                        .iter()
                        .position(|s| s.span.start <= offset && offset <= s.span.end)
                        .unwrap();
                    let db = TestDb::new();
                    let mut client = db.connect();
                    run(&mut client, schema).unwrap();
                    for s in &statements[..index] {
                        run(&mut client, &sql[s.span.start..s.span.end]).unwrap();
                    }
                    run(&mut client, instead).unwrap_or_else(|e| {
                        panic!(
                            "{name}:{}: {} instead SQL fails: {e}\n{instead}",
                            f.line, f.rule.id
                        )
                    });
                }
            });
        }
    });
}

fn line_col_offset(source: &str, line: usize, column: usize) -> usize {
    let start: usize = source.lines().take(line - 1).map(|l| l.len() + 1).sum();
    start
        + source[start..]
            .chars()
            .take(column - 1)
            .map(char::len_utf8)
            .sum::<usize>()
}

#[test]
fn human_and_compact_output() {
    let sql = read("several_violations.sql");
    let findings = lint("several_violations.sql", &sql);
    let reports = [tandem_lint::render::FileReport {
        file: "several_violations.sql",
        findings: &findings,
    }];
    insta::assert_snapshot!("hazards_human", tandem_lint::render::human(&reports));
    insta::assert_snapshot!("hazards_compact", tandem_lint::render::compact(&reports));
}
