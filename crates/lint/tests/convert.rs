//! `tandem convert` on a corpus of ORM-style SQL migrations (`tests/data/convert/<case>.sql`,
//! each with the schema and rows it runs on in `<case>.setup.sql`). Each conversion is
//! snapshotted, parses as YAML and as JSON into the same operations, and validates. Then, on
//! real PostgreSQL, the converted migration is started and rolled back (the catalog must be as
//! before), started again and completed; the original SQL runs on a twin database; both must
//! end with the same catalog.

use std::path::{Path, PathBuf};
use tandem_lint::convert::{convert, Conversion, NoteKind};
use tandem_model::migration::Format;
use tandem_model::{quote_ident, Migration, Operation};
use tandem_pg::{ConnectOptions, Engine, EngineOptions, Event};
use tandem_testkit::TestDb;

fn corpus() -> Vec<(String, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/convert");
    let mut cases: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "sql")
                && !p.to_string_lossy().ends_with(".setup.sql")
        })
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 6,
        "the corpus is missing from {}",
        dir.display()
    );
    cases
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn converted(name: &str, path: &Path) -> (Conversion, Migration) {
    let sql = read(path);
    let c = convert(&format!("{name}.sql"), &sql).unwrap_or_else(|e| panic!("{name}: {e}"));
    let yaml = c.to_yaml();
    let from_yaml = Migration::parse(&yaml, Format::Yaml, &format!("{name}.yaml"), name)
        .unwrap_or_else(|e| panic!("{name}: the YAML does not parse: {e}\n{yaml}"));
    let json = c.to_json();
    let from_json = Migration::parse(&json, Format::Json, &format!("{name}.json"), name)
        .unwrap_or_else(|e| panic!("{name}: the JSON does not parse: {e}\n{json}"));
    assert_eq!(from_yaml.operations, from_json.operations, "{name}");
    let expected: Vec<_> = c.operations.iter().map(|o| o.operation.clone()).collect();
    assert_eq!(
        from_yaml.operations, expected,
        "{name}: the file reads back as converted"
    );
    (c, from_yaml)
}

#[test]
fn corpus_conversions_match_their_snapshots() {
    for (name, path) in corpus() {
        let (c, _) = converted(&name, &path);
        assert_eq!(
            c.to_yaml(),
            convert(&format!("{name}.sql"), &read(&path))
                .unwrap()
                .to_yaml(),
            "{name}: conversion is deterministic"
        );
        insta::assert_snapshot!(format!("convert_{name}"), c.to_yaml());
    }
}

/// Runs `sql` statement by statement on one session, as psql would, so BEGIN/COMMIT and
/// CONCURRENTLY behave as they do there.
fn run_sql(db: &TestDb, sql: &str) {
    let mut client = db.connect();
    for stmt in pg_query::split_with_parser(sql).unwrap() {
        client
            .batch_execute(stmt)
            .unwrap_or_else(|e| panic!("{stmt}: {}", tandem_pg::error::describe(&e)));
    }
}

/// A default that a type change carried over, which tandem writes `CAST((0) AS bigint)` (so
/// that a default of another type, such as `'0'::text` for an integer, still works) and
/// PostgreSQL then shows as `(0)::bigint`, where `ALTER COLUMN TYPE` would have left `0`: the
/// same value, spelled as the cast it is.
fn uncast_default(line: &str) -> String {
    let (Some(d), Some(c)) = (line.find(" default=("), line.rfind(" collation=")) else {
        return line.to_string();
    };
    let default = &line[d + " default=".len()..c];
    if let Some(p) = default.rfind(")::") {
        let ty = &default[p + 3..];
        if line.contains(&format!(" {ty} not_null=")) {
            return format!("{} default={}{}", &line[..d], &default[1..p], &line[c..]);
        }
    }
    line.to_string()
}

/// The catalog without column positions: a type change through a second column leaves the
/// column last, which no query that names its columns can tell.
fn catalog(db: &TestDb) -> Vec<String> {
    let mut lines: Vec<String> = db
        .describe_catalog()
        .lines()
        .map(|l| {
            if let Some(rest) = l.strip_prefix("column ") {
                let mut parts: Vec<&str> = rest.splitn(3, ' ').collect();
                if parts.len() == 3 && parts[1].starts_with('#') {
                    parts.remove(1);
                }
                format!("column {}", parts.join(" "))
            } else {
                l.to_string()
            }
        })
        .collect();
    lines.sort();
    lines
}

fn engine_client(db: &TestDb) -> postgres::Client {
    tandem_pg::connect(&ConnectOptions {
        url: Some(db.url()),
        ..ConnectOptions::default()
    })
    .expect("connect")
}

/// Applies `migration` with the engine on a database set up with `setup` (start, rollback back
/// to the same catalog, start, complete) and `sql` on a twin; both must end with one catalog.
fn round_trip(name: &str, setup: &str, sql: &str, c: &Conversion, migration: &Migration) {
    let ignore = |_: &Event| {};
    let twin = TestDb::new();
    run_sql(&twin, setup);
    run_sql(&twin, sql);

    let db = TestDb::new();
    run_sql(&db, setup);
    let mut client = engine_client(&db);
    Engine::new(&mut client, EngineOptions::default())
        .init()
        .expect("init");
    // A `sql` operation without `down` cannot be undone, and says so: such a migration only
    // starts and completes.
    let undoable = migration
        .operations
        .iter()
        .all(|o| !matches!(o, Operation::Sql(s) if s.down.is_empty()));
    if undoable {
        let before = db.dump_schema();
        Engine::new(&mut client, EngineOptions::default())
            .start(migration, &ignore)
            .unwrap_or_else(|e| panic!("{name}: start: {e}"));
        Engine::new(&mut client, EngineOptions::default())
            .rollback(&ignore)
            .unwrap_or_else(|e| panic!("{name}: rollback: {e}"));
        assert_eq!(
            before,
            db.dump_schema(),
            "{name}: rollback returns the original schema"
        );
    }
    Engine::new(&mut client, EngineOptions::default())
        .start(migration, &ignore)
        .unwrap_or_else(|e| panic!("{name}: second start: {e}"));
    Engine::new(&mut client, EngineOptions::default())
        .complete(&ignore)
        .unwrap_or_else(|e| panic!("{name}: complete: {e}"));
    // tandem's state and the version schema are tandem's own; the twin has neither.
    let mut plain = db.connect();
    for row in plain
        .query(
            "SELECT nspname::text FROM pg_namespace WHERE nspname <> 'public' AND nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'",
            &[],
        )
        .unwrap()
    {
        let schema: String = row.get(0);
        plain
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", quote_ident(&schema)))
            .unwrap();
    }
    let got: Vec<String> = catalog(&db).iter().map(|l| uncast_default(l)).collect();
    let want = catalog(&twin);
    if got != want {
        let only = |a: &[String], b: &[String]| {
            a.iter()
                .filter(|l| !b.contains(l))
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "{name}: the converted migration ends elsewhere than the SQL.\nonly after tandem:\n{}\nonly after the SQL:\n{}\nmigration:\n{}",
            only(&got, &want),
            only(&want, &got),
            c.to_yaml()
        );
    }
}

#[test]
fn corpus_conversions_reach_the_schema_the_sql_reaches() {
    for (name, path) in corpus() {
        let (c, migration) = converted(&name, &path);
        assert!(
            !c.has_placeholders(),
            "{name}: the corpus cases need no hand-written expression"
        );
        let setup = read(&path.with_file_name(format!("{name}.setup.sql")));
        round_trip(&name, &setup, &read(&path), &c, &migration);
    }
}

/// Every statement rule's examples are the kind of SQL people write: converted, each reaches
/// the schema it reaches. Left out: examples PostgreSQL refuses, examples whose conversion
/// leaves an expression to write or no operation at all, and `uncommitted-begin`'s bad one,
/// whose SQL commits nothing.
#[test]
fn lint_examples_converted_reach_the_schema_the_sql_reaches() {
    let mut tried = 0;
    for rule in tandem_lint::RULES {
        if !rule.is_statement_rule() {
            continue;
        }
        for (which, sql) in [("bad", rule.bad), ("good", rule.good)] {
            if (which == "bad"
                && (rule.bad_fails_with.is_some() || rule.name == "uncommitted-begin"))
                || sql.trim().is_empty()
            {
                continue;
            }
            let name = format!("{} {which} example", rule.name);
            let c = match convert("example.sql", sql) {
                Ok(c) => c,
                // VACUUM FULL, for one, is dropped with a warning: no schema change is left.
                Err(tandem_lint::LintError::NothingToConvert { .. }) => continue,
                Err(e) => panic!("{name}: {e}"),
            };
            if c.has_placeholders() {
                continue;
            }
            let yaml = c.to_yaml();
            let m = Migration::parse(&yaml, Format::Yaml, "example.yaml", "example").unwrap();
            round_trip(&name, rule.setup, sql, &c, &m);
            tried += 1;
        }
    }
    assert!(tried >= 40, "only {tried} examples were tried");
}

#[test]
fn a_type_change_with_using_leaves_down_to_write_and_validate_refuses_it() {
    let c = convert(
        "m.sql",
        "ALTER TABLE items ALTER COLUMN price TYPE integer USING (price * 100)::integer;",
    )
    .unwrap();
    assert!(c.has_placeholders());
    let yaml = c.to_yaml();
    assert!(yaml.contains("# TODO: write `down`"), "{yaml}");
    let todo = c
        .notes()
        .into_iter()
        .find(|n| n.kind == NoteKind::Todo)
        .unwrap();
    assert_eq!((todo.line, todo.column), (1, 1));
    let m = Migration::parse(&yaml, Format::Yaml, "m.yaml", "m").unwrap();
    let mut base = tandem_model::Schema::default();
    let mut table = tandem_model::Table {
        name: "items".into(),
        ..Default::default()
    };
    table.columns.push(tandem_model::Column {
        name: "price".into(),
        data_type: "numeric".into(),
        nullable: true,
        default: None,
        identity: None,
        generated: None,
        comment: None,
    });
    base.tables.insert("items".into(), table);
    let err = tandem_model::validate(&m, &base).unwrap_err();
    assert_eq!((err.op_index, err.field.as_str()), (0, "down"));
    assert!(err.message.contains("placeholder"), "{err}");
    // Once written, the same file validates.
    let fixed = yaml.replace(
        &yaml[yaml.find("down: ").unwrap()..]
            .lines()
            .next()
            .unwrap()
            .to_string(),
        "down: (price / 100.0)::numeric",
    );
    let m = Migration::parse(&fixed, Format::Yaml, "m.yaml", "m").unwrap();
    tandem_model::validate(&m, &base).unwrap_or_else(|e| panic!("{e}\n{fixed}"));
}

#[test]
fn what_has_no_operation_stays_sql_with_a_warning_naming_its_line() {
    let c = convert(
        "m.sql",
        "BEGIN;\nSET lock_timeout = '1s';\nALTER TABLE t ADD COLUMN a int;\nALTER TABLE t SET (fillfactor = 70);\nCOMMIT;\n",
    )
    .unwrap();
    assert_eq!(
        c.operations.len(),
        2,
        "BEGIN, SET lock_timeout and COMMIT are tandem's own"
    );
    assert_eq!(c.operations[1].operation.kind(), "sql");
    let warning = c
        .notes()
        .into_iter()
        .find(|n| n.kind == NoteKind::Warning)
        .unwrap();
    assert_eq!(warning.line, 4);
    assert!(
        warning.message.contains("kept as a `sql` operation"),
        "{}",
        warning.message
    );
    let err = convert("m.sql", "BEGIN; COMMIT;").unwrap_err();
    assert!(err.to_string().contains("nothing to convert"), "{err}");
    let err = convert("m.sql", "ALTER TABLE t ADD COLUMN;").unwrap_err();
    assert!(
        err.to_string().starts_with("m.sql:1:1: syntax error"),
        "{err}"
    );
}

#[test]
fn every_kind_of_note_is_written_where_it_belongs() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/convert_notes.sql");
    let c = convert("convert_notes.sql", &read(&path)).unwrap();
    let yaml = c.to_yaml();
    Migration::parse(&yaml, Format::Yaml, "n.yaml", "n").unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    insta::assert_snapshot!("convert_notes", yaml);
    let stderr: Vec<String> = c
        .notes()
        .into_iter()
        .filter(|n| n.kind.is_for_stderr())
        .map(|n| format!("{}:{}: {}: {}", n.line, n.column, n.kind.label(), n.message))
        .collect();
    insta::assert_snapshot!("convert_notes_stderr", stderr.join("\n"));
}

/// Every lint rule's SQL examples, good and bad, convert into a file that reads back as
/// converted, or are refused with a message (nothing to convert, a syntax error).
#[test]
fn every_lint_example_converts_into_a_file_that_reads_back() {
    for rule in tandem_lint::RULES {
        if !rule.is_statement_rule() {
            continue;
        }
        for (which, sql) in [("bad", rule.bad), ("good", rule.good)] {
            let name = format!("{}_{which}", rule.name.replace('-', "_"));
            match convert(&format!("{name}.sql"), sql) {
                Ok(c) => {
                    let yaml = c.to_yaml();
                    let m = Migration::parse(&yaml, Format::Yaml, "m.yaml", "m")
                        .unwrap_or_else(|e| panic!("{name}: {e}\n{yaml}"));
                    assert_eq!(m.operations.len(), c.operations.len(), "{name}");
                }
                Err(e) => assert!(
                    matches!(
                        e,
                        tandem_lint::LintError::NothingToConvert { .. }
                            | tandem_lint::LintError::Syntax { .. }
                    ),
                    "{name}: {e}"
                ),
            }
        }
    }
}
