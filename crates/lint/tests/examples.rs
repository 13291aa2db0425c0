//! Every rule's own examples: the bad one fires the rule and the good one does not, both run on
//! a real PostgreSQL (after the rule's setup) so they are valid SQL, every tandem snippet is a
//! valid migration, and the committed docs are what the rules generate.

use tandem_lint::migration::lint_migration;
use tandem_lint::rules::Check;
use tandem_lint::{lint_sql, Config, Finding, Rule, RULES};
use tandem_model::migration::Format;
use tandem_testkit::TestDb;

fn lint(rule: &Rule, text: &str) -> Vec<Finding> {
    let config = Config::default();
    let result = if rule.is_migration_rule() {
        lint_migration("example.yaml", text, Format::Yaml, &config)
    } else {
        lint_sql("example.sql", text, &config)
    };
    result.unwrap_or_else(|e| panic!("{rule:?}: example does not lint: {e}"))
}

#[test]
fn bad_examples_fire_their_rule_and_good_ones_do_not() {
    for rule in RULES {
        let bad = lint(rule, rule.bad);
        assert!(
            bad.iter().any(|f| f.rule.id == rule.id),
            "{rule:?}: the bad example does not fire it: {bad:#?}"
        );
        let good = lint(rule, rule.good);
        assert!(
            !good.iter().any(|f| f.rule.id == rule.id),
            "{rule:?}: the good example fires it: {good:#?}"
        );
        // A good example should be clean of errors from every rule, so it can be copied.
        let errors: Vec<_> = good
            .iter()
            .filter(|f| f.level == tandem_lint::Level::Error)
            .collect();
        assert!(
            errors.is_empty(),
            "{rule:?}: the good example has errors: {errors:#?}"
        );
    }
}

#[test]
fn ids_and_names_are_unique_and_well_formed() {
    for (i, a) in RULES.iter().enumerate() {
        assert_eq!(
            a.id,
            format!("T{:03}", i + 1),
            "rules are listed in id order"
        );
        assert!(
            a.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{a:?}: names are kebab-case"
        );
        for b in &RULES[i + 1..] {
            assert_ne!(a.name, b.name);
        }
    }
}

#[test]
fn tandem_snippets_are_valid_migrations() {
    for rule in RULES {
        let snippets = [rule.tandem]
            .into_iter()
            .flatten()
            .chain(rule.is_migration_rule().then_some(rule.safe_alternative))
            .chain(rule.is_migration_rule().then_some(rule.bad))
            .chain(rule.is_migration_rule().then_some(rule.good));
        for text in snippets {
            if let Err(e) =
                tandem_model::Migration::parse(text, Format::Yaml, "snippet.yaml", "snippet")
            {
                panic!("{rule:?}: {e}\n{text}");
            }
        }
    }
}

/// Runs `sql` statement by statement (CONCURRENTLY refuses a multi-statement query string,
/// which PostgreSQL runs as one transaction), as psql would.
fn run(db: &TestDb, client: &mut postgres::Client, sql: &str) -> Result<(), String> {
    let parsed = tandem_lint::parse::parse(sql).expect("examples parse");
    for s in &parsed.statements {
        let text = &sql[s.span.start..s.span.end];
        client
            .batch_execute(text)
            .map_err(|e| format!("{} on {}: {text}", tandem_pg::error::describe(&e), db.name))?;
    }
    Ok(())
}

#[test]
fn sql_examples_run_on_postgres() {
    let sql_rules: Vec<&Rule> = RULES
        .iter()
        .copied()
        .filter(|r| matches!(r.check, Check::Statement(_) | Check::Linter))
        .collect();
    std::thread::scope(|scope| {
        for chunk in sql_rules.chunks(4) {
            scope.spawn(move || {
                for rule in chunk {
                    for (which, sql) in [("bad", rule.bad), ("good", rule.good)] {
                        let db = TestDb::new();
                        let mut client = db.connect();
                        run(&db, &mut client, rule.setup)
                            .unwrap_or_else(|e| panic!("{rule:?}: setup failed: {e}"));
                        let result = run(&db, &mut client, sql);
                        match (which, rule.bad_fails_with, result) {
                            ("bad", Some(expected), Err(e)) => assert!(
                                e.contains(expected),
                                "{rule:?}: bad example failed differently: {e}"
                            ),
                            ("bad", Some(expected), Ok(())) => {
                                panic!("{rule:?}: bad example should fail with {expected:?}")
                            }
                            (_, _, Err(e)) => panic!("{rule:?}: {which} example failed: {e}"),
                            (_, _, Ok(())) => {}
                        }
                    }
                }
            });
        }
    });
}

#[test]
fn committed_docs_are_up_to_date() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/lint");
    let update = std::env::var_os("TANDEM_UPDATE_DOCS").is_some();
    if update {
        std::fs::create_dir_all(&dir).unwrap();
    }
    for (name, text) in tandem_lint::docs::pages() {
        let path = dir.join(&name);
        if update {
            std::fs::write(&path, &text).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "docs/lint/{name} is out of date: run `TANDEM_UPDATE_DOCS=1 cargo test -p tandem-lint --test examples committed_docs`"
        );
    }
}
