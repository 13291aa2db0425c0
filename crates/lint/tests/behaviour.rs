//! What the linter knows beyond one statement: transactions, tables created earlier in the file,
//! session settings, the PostgreSQL version, ignores, configuration, syntax errors, and
//! migration files.

use tandem_lint::migration::lint_migration;
use tandem_lint::{lint_sql, Config, LintError};
use tandem_model::migration::Format;

fn ids_with(sql: &str, config: &Config) -> Vec<&'static str> {
    lint_sql("t.sql", sql, config)
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|f| f.rule.id)
        .collect()
}

fn ids(sql: &str) -> Vec<&'static str> {
    ids_with(sql, &Config::default())
}

fn config(toml: &str) -> Config {
    Config::from_toml(toml, "tandem.toml").unwrap()
}

#[test]
fn tables_created_in_the_file_are_new() {
    let sql = "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, a text);\n\
               CREATE INDEX t_a ON t (a);\n\
               ALTER TABLE t ADD COLUMN b text NOT NULL;\n\
               ALTER TABLE t ADD CONSTRAINT t_a_check CHECK (a <> '');\n\
               ALTER TABLE t RENAME COLUMN a TO c;\n\
               DROP INDEX t_a;";
    assert_eq!(ids(sql), Vec::<&str>::new());
    assert!(ids("CREATE INDEX t_a ON t (a);").contains(&"T005"));
}

#[test]
fn pg_version_decides_whether_a_constant_default_rewrites() {
    let sql = "SET lock_timeout = '1s';\nALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT 0;";
    assert!(!ids(sql).contains(&"T004"));
    assert!(ids_with(sql, &config("[lint]\npg_version = 10")).contains(&"T004"));
    // A volatile default rewrites on every version.
    assert!(ids("ALTER TABLE t ADD COLUMN c uuid DEFAULT gen_random_uuid();").contains(&"T004"));
    assert!(ids("ALTER TABLE t ADD COLUMN c bigserial;").contains(&"T004"));
}

#[test]
fn transactions_are_tracked() {
    let cic = "CREATE INDEX CONCURRENTLY i ON t (a);";
    assert!(!ids(cic).contains(&"T007"));
    assert!(ids(&format!("BEGIN;\n{cic}\nCOMMIT;")).contains(&"T007"));
    assert!(!ids(&format!("BEGIN;\nCOMMIT;\n{cic}")).contains(&"T007"));
    assert!(ids_with(cic, &config("[lint]\nsingle_transaction = true")).contains(&"T007"));

    let add = "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;";
    let validate = "ALTER TABLE t VALIDATE CONSTRAINT c;";
    assert!(ids(&format!("BEGIN;\n{add}\n{validate}\nCOMMIT;")).contains(&"T010"));
    assert!(!ids(&format!("BEGIN;\n{add}\nCOMMIT;\n{validate}")).contains(&"T010"));
    // Without BEGIN each statement commits on its own.
    assert!(!ids(&format!("{add}\n{validate}")).contains(&"T010"));

    assert!(ids("BEGIN;\nSELECT 1;").contains(&"T028"));
    assert!(!ids("BEGIN;\nSELECT 1;\nROLLBACK;").contains(&"T028"));
}

#[test]
fn lock_timeout_is_reported_once_and_only_when_missing() {
    let two = "ALTER TABLE t ADD COLUMN a text;\nALTER TABLE t ADD COLUMN b text;";
    assert_eq!(ids(two).iter().filter(|i| **i == "T017").count(), 1);
    assert!(!ids(&format!("SET lock_timeout = '2s';\n{two}")).contains(&"T017"));
    assert!(ids(&format!("SET lock_timeout = 0;\n{two}")).contains(&"T017"));
    // SET LOCAL lasts until the transaction ends.
    let local =
        "BEGIN;\nSET LOCAL lock_timeout = '1s';\nALTER TABLE t ADD COLUMN a text;\nCOMMIT;\n";
    assert!(!ids(local).contains(&"T017"));
    assert!(ids(&format!("{local}ALTER TABLE t ADD COLUMN b text;")).contains(&"T017"));
    // Locks that let the application go on need no timeout.
    assert!(!ids("CREATE INDEX CONCURRENTLY i ON t (a);").contains(&"T017"));
}

#[test]
fn statements_after_an_access_exclusive_lock() {
    let sql = "SET lock_timeout = '1s';\nBEGIN;\nALTER TABLE t ADD COLUMN a text;\nSET LOCAL statement_timeout = '1s';\nUPDATE t SET a = 'x' WHERE id < 10;\nUPDATE t SET a = 'y' WHERE id < 10;\nCOMMIT;";
    let found = lint_sql("t.sql", sql, &Config::default()).unwrap();
    let t018: Vec<_> = found.iter().filter(|f| f.rule.id == "T018").collect();
    assert_eq!(t018.len(), 1, "{found:#?}");
    assert_eq!(t018[0].line, 5);
}

#[test]
fn set_not_null_uses_a_validated_check() {
    let check = "SET lock_timeout = '1s';\nALTER TABLE t ADD CONSTRAINT t_a_nn CHECK (a IS NOT NULL) NOT VALID;\nALTER TABLE t VALIDATE CONSTRAINT t_a_nn;\n";
    let set = "ALTER TABLE t ALTER COLUMN a SET NOT NULL;";
    assert!(ids(set).contains(&"T011"));
    assert!(!ids(&format!("{check}{set}")).contains(&"T011"));
    // Not validated: the scan still happens.
    assert!(ids(&format!(
        "ALTER TABLE t ADD CONSTRAINT t_a_nn CHECK (a IS NOT NULL) NOT VALID;\n{set}"
    ))
    .contains(&"T011"));
    // Before 12 the check does not help.
    assert!(
        ids_with(&format!("{check}{set}"), &config("[lint]\npg_version = 11")).contains(&"T011")
    );
}

#[test]
fn type_changes_that_do_not_rewrite_are_not_reported() {
    let base = "SET lock_timeout = '1s';\nALTER TABLE t ADD COLUMN c varchar(20);\n";
    for (change, fires) in [
        ("varchar(40)", false),
        ("varchar", false),
        ("text", false),
        ("varchar(10)", true),
        ("integer", true),
    ] {
        let found = ids(&format!(
            "{base}ALTER TABLE t ALTER COLUMN c TYPE {change};"
        ));
        assert_eq!(
            found.contains(&"T013"),
            fires,
            "varchar(20) -> {change}: {found:?}"
        );
    }
    assert!(ids("ALTER TABLE t ALTER COLUMN n TYPE numeric(12,2);").contains(&"T013"));
    assert!(!ids("ALTER TABLE t ALTER COLUMN n TYPE text;").contains(&"T013"));
}

#[test]
fn ignores_on_and_above_statements() {
    assert!(!ids("CREATE INDEX i ON t (a); -- tandem-lint: ignore T005").contains(&"T005"));
    assert!(!ids("-- tandem-lint: ignore create-index-without-concurrently (tiny table)\nCREATE INDEX i ON t (a);").contains(&"T005"));
    assert!(!ids("/* tandem-lint: ignore T005 */ CREATE INDEX i ON t (a);").contains(&"T005"));
    // A trailing comment belongs to the statement it trails, not to the next one.
    let found = ids("SELECT 1; -- tandem-lint: ignore T005\nCREATE INDEX i ON t (a);");
    assert!(
        found.contains(&"T005") && found.contains(&"T029"),
        "{found:?}"
    );
    // Names end where the reason starts.
    assert!(ids("-- tandem-lint: ignore T005, missing-lock-timeout because the table is tiny\nCREATE INDEX i ON t (a);").is_empty());
    // Unused and misspelt ignores are reported.
    assert_eq!(
        ids("-- tandem-lint: ignore T001, no-such-rule\nSELECT 1;"),
        ["T029", "T029"]
    );
}

#[test]
fn config_excludes_rules_and_sets_levels() {
    let sql = "ALTER TABLE t DROP COLUMN c;";
    let found = lint_sql("t.sql", sql, &Config::default()).unwrap();
    let drop = found.iter().find(|f| f.rule.id == "T014").unwrap();
    assert_eq!(drop.level, tandem_lint::Level::Warning);
    let strict = config("[lint]\nexclude = [\"T017\"]\n[lint.levels]\ndrop-column = \"error\"");
    let found = lint_sql("t.sql", sql, &strict).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].level, tandem_lint::Level::Error);
    let paths = config("[lint]\nexclude_paths = [\"migrations/old/**\"]");
    assert!(paths.excludes_path("migrations/old/001.sql"));
    assert!(paths.excludes_path("./migrations/old/001.sql"));
    assert!(!paths.excludes_path("migrations/002.sql"));
    assert!(matches!(
        Config::from_toml("[lint]\nexclude = [\"nope\"]", "tandem.toml"),
        Err(LintError::Config { .. })
    ));
}

#[test]
fn syntax_errors_name_the_line_and_column() {
    for (sql, line, column) in [
        ("SELECT 1;\n  SELEC 2;", 2, 3),
        ("SELECT 1;\nCREATE TABLE t (a int;\n", 2, 1),
        ("SELECT 1;\n  SELECT (2;\nSELECT 3;", 2, 3),
    ] {
        match lint_sql("x.sql", sql, &Config::default()) {
            Err(LintError::Syntax {
                line: l,
                column: c,
                ref message,
                ..
            }) => assert_eq!((l, c), (line, column), "{sql:?}: {message}"),
            other => panic!("{sql:?}: {other:?}"),
        }
    }
}

#[test]
fn positions_and_long_identifiers() {
    let long = "a".repeat(64);
    let sql = format!("SELECT 1;\n\n   CREATE TABLE \"{long}\" (id bigint);");
    let found = lint_sql("t.sql", &sql, &Config::default()).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].rule.id, found[0].line, found[0].column),
        ("T027", 3, 17),
        "at the identifier, not the statement"
    );
    assert!(ids(&format!("CREATE TABLE {} (id bigint);", "b".repeat(63))).is_empty());
}

#[test]
fn migration_files_lint_their_sql_and_operations() {
    let yaml = "operations:\n  - drop_column:\n      table: users\n      column: legacy\n  - sql:\n      up: |\n        SELECT 1;\n        CREATE INDEX users_email ON users (email);\n      down: DROP INDEX IF EXISTS users_email\n";
    let found = lint_migration("m.yaml", yaml, Format::Yaml, &Config::default()).unwrap();
    let at: Vec<_> = found
        .iter()
        .map(|f| (f.rule.id, f.line, f.origin.clone().unwrap_or_default()))
        .collect();
    assert!(
        at.contains(&("T030", 2, "operations[0].drop_column".into())),
        "{at:?}"
    );
    assert!(
        at.contains(&("T005", 8, "operations[1].sql.up".into())),
        "{at:?}"
    );
    // `down` drops what `up` created: nothing the application uses. tandem sets lock_timeout.
    assert!(
        at.iter().all(|(id, _, _)| *id != "T006" && *id != "T017"),
        "{at:?}"
    );
    assert!(at.iter().any(|(id, _, _)| *id == "T032"), "{at:?}");

    let bad_expr = "operations:\n  - add_column:\n      table: t\n      column: {name: c, type: int, nullable: true}\n      up: lower(email\n";
    match lint_migration("m.yaml", bad_expr, Format::Yaml, &Config::default()) {
        Err(LintError::Syntax { line, message, .. }) => {
            assert_eq!(line, 5);
            assert!(message.contains("operations[0].add_column.up"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let json =
        r#"{"operations": [{"alter_column": {"table": "t", "column": "c", "type": "text"}}]}"#;
    let found = lint_migration("m.json", json, Format::Json, &Config::default()).unwrap();
    assert_eq!(
        found.iter().map(|f| f.rule.id).collect::<Vec<_>>(),
        ["T031"]
    );
}

#[test]
fn maintenance_on_new_tables_and_inline_constraints() {
    let new = "CREATE TABLE n (id bigint PRIMARY KEY);\nCREATE INDEX n_id ON n (id);\n";
    assert!(ids(&format!(
        "{new}VACUUM FULL n;\nCLUSTER n USING n_id;\nREINDEX INDEX n_id;"
    ))
    .is_empty());
    assert!(ids("VACUUM FULL;").contains(&"T019"));
    let found = ids(
        "SET lock_timeout = '1s';\nALTER TABLE t ADD COLUMN org_id bigint REFERENCES orgs (id);",
    );
    assert_eq!(found, ["T009"]);
}

/// pgroll's own examples lint without a syntax error (their `up`/`down` may be a plain
/// expression or a `SELECT ...`), and only the two raw `sql` operations that create tables draw
/// `sql-operation-does-ddl`. CI sets TANDEM_REQUIRE_COMPAT=1 so a missing corpus fails.
#[test]
fn pgroll_examples_lint() {
    let Some(files) = tandem_model::testing::pgroll_example_paths() else {
        return;
    };
    assert_eq!(files.len(), 56);
    let mut ddl = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let found = lint_migration(
            &name,
            &text,
            Format::from_path(f).unwrap(),
            &Config::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        if found
            .iter()
            .any(|f| f.rule.name == "sql-operation-does-ddl")
        {
            ddl.push(name);
        }
    }
    assert_eq!(ddl, ["05_sql.yaml", "32_sql_on_complete.yaml"]);
}
