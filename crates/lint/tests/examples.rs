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
        // Messages are written out: no `{column}` left from a template.
        for f in &bad {
            assert!(
                !f.message.contains('{') && !f.message.contains('}'),
                "{rule:?}: a placeholder is left in {:?}",
                f.message
            );
        }
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
        .filter(|r| r.is_statement_rule() || matches!(r.check, Check::Linter))
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

/// Rules whose explanation says the bad example takes a lock that blocks the application
/// (or rewrites a table), and the kind of evidence the trace must show for it.
const TRACED_CLAIMS: &[(&str, Claim)] = &[
    ("T001", Claim::Blocks),
    ("T002", Claim::Blocks),
    ("T004", Claim::Rewrites),
    ("T005", Claim::Blocks),
    ("T006", Claim::Blocks),
    ("T008", Claim::Blocks),
    ("T009", Claim::Blocks),
    ("T010", Claim::AlreadyHeld),
    ("T011", Claim::Blocks),
    ("T012", Claim::Blocks),
    ("T013", Claim::Rewrites),
    ("T014", Claim::Blocks),
    ("T015", Claim::Blocks),
    ("T017", Claim::Blocks),
    ("T018", Claim::AlreadyHeld),
    ("T019", Claim::Rewrites),
    ("T020", Claim::Rewrites),
    ("T021", Claim::Blocks),
    ("T026", Claim::Blocks),
    ("T035", Claim::Blocks),
];

/// Rules whose good example is the CONCURRENTLY form, which must block nothing: on any
/// relation, or only on the one named. DETACH PARTITION CONCURRENTLY keeps the partitioned
/// table open to reads and writes, but its last transaction takes ACCESS EXCLUSIVE on the
/// partition it detaches, briefly; a trace sees that lock or not depending on when it samples
/// `pg_locks`.
const NON_BLOCKING_GOOD: &[(&str, Option<&str>)] = &[
    ("T005", None),
    ("T006", None),
    ("T008", None),
    ("T026", Some("public.events")),
];

#[derive(Clone, Copy, Debug)]
enum Claim {
    Blocks,
    Rewrites,
    AlreadyHeld,
}

fn trace_example(rule: &Rule, sql: &str) -> Vec<tandem_pg::trace::StatementTrace> {
    use tandem_lint::model::StmtKind;
    use tandem_pg::trace::{StatementRole, TraceInput, TraceMode};
    let db = TestDb::new();
    let mut target = db.connect();
    run(&db, &mut target, rule.setup).unwrap_or_else(|e| panic!("{rule:?}: {e}"));
    let parsed = tandem_lint::parse::parse(sql).unwrap();
    let inputs: Vec<TraceInput> = parsed
        .statements
        .iter()
        .map(|s| TraceInput {
            line: sql[..s.span.start].matches('\n').count() + 1,
            sql: sql[s.span.start..s.span.end].to_string(),
            role: match &s.kind {
                StmtKind::Begin => StatementRole::Begin,
                StmtKind::Commit => StatementRole::Commit,
                StmtKind::Rollback => StatementRole::Rollback,
                k if k.runs_outside_transaction() => StatementRole::OutsideTransaction,
                _ => StatementRole::Ordinary,
            },
        })
        .collect();
    let mut observer = db.connect();
    tandem_pg::trace::trace(&mut target, &mut observer, &inputs, TraceMode::Commit)
        .unwrap_or_else(|e| panic!("{rule:?}: {e}"))
}

/// What each rule says about locks is measured: tracing its bad example on a real server shows
/// the blocking lock, the rewrite or the lock already held that the rule describes, on the
/// statement the rule fires on; the CONCURRENTLY alternatives block nothing.
#[test]
fn traces_confirm_what_the_rules_say() {
    std::thread::scope(|scope| {
        for chunk in TRACED_CLAIMS.chunks(5) {
            scope.spawn(move || {
                for (id, claim) in chunk {
                    let rule = Rule::lookup(id).unwrap();
                    let traces = trace_example(rule, rule.bad);
                    let lines: Vec<usize> = lint(rule, rule.bad)
                        .iter()
                        .filter(|f| f.rule.id == rule.id)
                        .map(|f| f.line)
                        .collect();
                    for line in lines {
                        // A finding points at its clause: the statement is the last one that
                        // starts on or before that line.
                        let t = traces.iter().rev().find(|t| t.line <= line).unwrap();
                        assert!(t.error.is_none(), "{rule:?}: {t:?}");
                        let seen = match claim {
                            Claim::Blocks => t.locks.iter().any(|l| !l.blocks.is_empty()),
                            Claim::Rewrites => !t.rewrites.is_empty(),
                            Claim::AlreadyHeld => !t.already_held.is_empty(),
                        };
                        assert!(seen, "{rule:?}: the trace does not show {claim:?}: {t:#?}");
                    }
                    if let Some((_, only)) = NON_BLOCKING_GOOD.iter().find(|(r, _)| r == id) {
                        for t in trace_example(rule, rule.good) {
                            assert!(t.error.is_none(), "{rule:?}: {t:?}");
                            assert!(
                                t.locks
                                    .iter()
                                    .filter(|l| only.is_none() || l.relation.as_deref() == *only)
                                    .all(|l| l.blocks.is_empty()),
                                "{rule:?}: the good example blocks: {t:#?}"
                            );
                        }
                    }
                }
            });
        }
    });
}

/// The migration-file examples are valid migrations for the schema their setup creates: they
/// replay on a snapshot read from a real database.
#[test]
fn migration_examples_validate_against_the_setup_schema() {
    for rule in RULES.iter().filter(|r| r.is_migration_rule()) {
        let db = TestDb::new();
        let mut client = db.connect();
        run(&db, &mut client, rule.setup).unwrap_or_else(|e| panic!("{rule:?}: {e}"));
        let schema = tandem_pg::introspect::read_schema(&mut client, "public").unwrap();
        for text in [rule.bad, rule.good] {
            let m = tandem_model::Migration::parse(text, Format::Yaml, "example.yaml", "example")
                .unwrap_or_else(|e| panic!("{rule:?}: {e}"));
            if let Err(e) = tandem_model::validate(&m, &schema) {
                panic!("{rule:?}: {e}\n{text}");
            }
        }
    }
}
