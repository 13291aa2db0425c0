//! What the linter sees beyond the top-level statements of one file: the statements of DO
//! blocks and PL/pgSQL functions (where they are, which transaction they run in, ignores
//! inside and above them), and what a run carries from one file to the next.

use tandem_lint::{lint_sql, Config, LintError, Run, SqlFile};

fn found(sql: &str) -> Vec<(&'static str, usize, usize)> {
    lint_sql("t.sql", sql, &Config::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|f| (f.rule.id, f.line, f.column))
        .collect()
}

fn ids(sql: &str) -> Vec<&'static str> {
    found(sql).into_iter().map(|(id, _, _)| id).collect()
}

#[test]
fn do_block_statements_are_linted_where_they_are() {
    let sql = "SET lock_timeout = '2s';\n\
               DO $$\n\
               BEGIN\n\
               \x20 ALTER TABLE users RENAME COLUMN name TO full_name;\n\
               \x20 IF true THEN\n\
               \x20   EXECUTE 'CREATE INDEX users_email ON users (email)';\n\
               \x20 END IF;\n\
               END $$;";
    // The rename's ACCESS EXCLUSIVE lock is still held at the EXECUTE: one transaction.
    assert_eq!(
        found(sql),
        [("T001", 4, 3), ("T005", 6, 14), ("T018", 6, 14)]
    );
    let f = &lint_sql("t.sql", sql, &Config::default()).unwrap()[0];
    assert_eq!(f.origin.as_deref(), Some("the DO block on line 2"));
    assert_eq!(
        f.source_line,
        "  ALTER TABLE users RENAME COLUMN name TO full_name;"
    );
    // A SQL function's statements too; another language's body is not SQL.
    assert!(ids("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;").is_empty());
    assert_eq!(
        found("CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$\n  UPDATE users SET plan = 'free';\n$$;"),
        [("T016", 2, 3)]
    );
    assert!(ids(
        "CREATE FUNCTION f() RETURNS int LANGUAGE plperl AS $$ UPDATE users SET a = 1; $$;"
    )
    .is_empty());
    // A body the PL/pgSQL parser cannot read without the catalog is left to PostgreSQL.
    assert!(ids("CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $f$ DECLARE r users%ROWTYPE; BEGIN RETURN NEW; END $f$;").is_empty());
}

#[test]
fn ignores_above_and_inside_bodies() {
    let above = "SET lock_timeout = '2s';\n-- tandem-lint: ignore rename-column (nothing reads it yet)\nDO $$ BEGIN ALTER TABLE users RENAME COLUMN a TO b; END $$;";
    assert!(ids(above).is_empty(), "{:?}", ids(above));
    let inside = "SET lock_timeout = '2s';\nDO $$\nBEGIN\n  -- tandem-lint: ignore T001\n  ALTER TABLE users RENAME COLUMN a TO b;\n  -- tandem-lint: ignore T005\n  UPDATE t SET a = 1 WHERE id = 1;\nEND $$;";
    // The first ignore is used; the second suppresses nothing and says so, on its statement.
    assert_eq!(found(inside), [("T018", 7, 3), ("T029", 7, 3)]);
}

#[test]
fn a_do_block_is_one_transaction_unless_it_commits() {
    let add = "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;";
    let validate = "ALTER TABLE t VALIDATE CONSTRAINT c;";
    let lock = "SET lock_timeout = '2s';\n";
    assert!(ids(&format!("{lock}DO $$ BEGIN {add} {validate} END $$;")).contains(&"T010"));
    assert!(!ids(&format!(
        "{lock}DO $$ BEGIN {add} COMMIT; {validate} END $$;"
    ))
    .contains(&"T010"));
    // The block's transaction ends with it.
    assert!(!ids(&format!("{lock}DO $$ BEGIN {add} END $$;\n{validate}")).contains(&"T010"));
    assert!(
        !ids("DO $$ BEGIN PERFORM 1; END $$;\nCREATE INDEX CONCURRENTLY i ON t (a);")
            .contains(&"T007")
    );
    // CONCURRENTLY inside the block runs in its transaction.
    assert!(
        ids("DO $$ BEGIN EXECUTE 'CREATE INDEX CONCURRENTLY i ON t (a)'; END $$;")
            .contains(&"T007")
    );
    // A loop whose batches all run in that transaction, and one that commits each batch.
    let update = "UPDATE t SET a = 0 WHERE id IN (SELECT id FROM t WHERE a IS NULL LIMIT 100);";
    let looped = |body: &str| {
        ids(&format!(
            "DO $$ DECLARE n int; BEGIN LOOP {update} GET DIAGNOSTICS n = ROW_COUNT; {body} EXIT WHEN n = 0; END LOOP; END $$;"
        ))
    };
    assert!(looped("").contains(&"T016"));
    assert!(!looped("COMMIT;").contains(&"T016"));
    // Outside a loop, a batch is a batch.
    assert!(!ids(&format!("DO $$ BEGIN {update} END $$;")).contains(&"T016"));
}

#[test]
fn a_function_body_runs_when_called() {
    // Its statements are linted as they would run: inside the caller's transaction...
    assert!(ids("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'DROP INDEX CONCURRENTLY i'; END $$;").contains(&"T007"));
    // ...but defining it changes nothing: the table is not created by the definition.
    let sql = "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN CREATE TABLE x (a int); END $$;\nCREATE INDEX x_a ON x (a);";
    assert!(ids(sql).contains(&"T005"));
}

fn run_ids(config: &Config, files: &[&str]) -> Vec<Vec<&'static str>> {
    let mut run = Run::new(config);
    files
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let name = format!("{:03}_m.sql", i + 1);
            run.lint_sql(SqlFile {
                name: &name,
                text,
                script_config: None,
            })
            .unwrap()
            .iter()
            .map(|f| f.rule.id)
            .collect()
        })
        .collect()
}

#[test]
fn a_run_carries_the_schema_from_file_to_file() {
    let config = Config::default();
    let lock = "SET lock_timeout = '2s';\n";
    let create = "CREATE TABLE t (id bigint PRIMARY KEY, code varchar(20) NOT NULL, note text);";
    let widen = format!("{lock}ALTER TABLE t ALTER COLUMN code TYPE varchar(40);");
    let set = format!("{lock}ALTER TABLE t ALTER COLUMN note SET NOT NULL;");
    assert_eq!(
        run_ids(&config, &[create, &widen]),
        [Vec::<&str>::new(), vec![]]
    );
    // The same file alone cannot tell.
    assert!(ids(&widen).contains(&"T013"));
    // The primary key column is NOT NULL; a column whose NOT NULL was dropped is not.
    let pk = format!("{lock}ALTER TABLE t ALTER COLUMN id SET NOT NULL;");
    let drop = format!("{lock}ALTER TABLE t ALTER COLUMN code DROP NOT NULL;");
    let reset = format!("{lock}ALTER TABLE t ALTER COLUMN code SET NOT NULL;");
    assert_eq!(
        run_ids(&config, &[create, &pk, &set, &drop, &reset]),
        [
            Vec::<&str>::new(),
            vec![],
            vec!["T011"],
            vec![],
            vec!["T011"]
        ]
    );
    // Renames carry what is known; a dropped and re-created table starts again.
    let rename =
        format!("{lock}ALTER TABLE t RENAME COLUMN code TO ref;\nALTER TABLE t RENAME TO u;");
    let widen_u = format!("{lock}ALTER TABLE u ALTER COLUMN ref TYPE varchar(40);");
    assert_eq!(
        run_ids(&config, &[create, &rename, &widen_u])[2],
        Vec::<&str>::new()
    );
    let recreate = "DROP TABLE t;\nCREATE TABLE t (id bigint, code text);";
    let narrow = format!("{lock}ALTER TABLE t ALTER COLUMN code TYPE varchar(40);");
    assert_eq!(run_ids(&config, &[create, recreate, &narrow])[2], ["T013"]);
    // Each file is a new session: a lock_timeout does not carry over.
    let index = "CREATE INDEX t_note ON t (note);";
    assert!(run_ids(&config, &[create, lock, index])[2].contains(&"T017"));
}

#[test]
fn new_tables_and_runner_in_tandem_toml() {
    let create = "CREATE TABLE t (id bigint, a text);";
    let index = "CREATE INDEX t_a ON t (a);";
    let file = Config::default();
    assert!(run_ids(&file, &[create, index])[1].contains(&"T005"));
    let run = Config::from_toml("[lint]\nnew_tables = \"run\"", "tandem.toml").unwrap();
    assert!(run_ids(&run, &[create, index])[1].is_empty());
    // A runner named in tandem.toml applies to every file, annotated or not.
    let cic = "CREATE INDEX CONCURRENTLY t_a ON t (a);\nCOMMENT ON INDEX t_a IS 'x';";
    assert!(!ids(cic).contains(&"T007"));
    let migrate = Config::from_toml("[lint]\nrunner = \"golang-migrate\"", "tandem.toml").unwrap();
    assert!(lint_sql("t.sql", cic, &migrate)
        .unwrap()
        .iter()
        .any(|f| f.rule.id == "T007"));
    assert!(matches!(
        Config::from_toml("[lint]\nrunner = \"liquibase\"", "tandem.toml"),
        Err(LintError::Config { message, .. }) if message.contains("goose")
    ));
}
