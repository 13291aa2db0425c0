//! Lints a generated file of 10,000 statements and prints statements per second. Run with
//! `cargo bench -p tandem-lint`; the figure is recorded in docs/lint/README.md.

use std::time::Instant;
use tandem_lint::{lint_sql, Config};

const STATEMENTS: usize = 10_000;

/// A mix of what real migration files hold: DDL of each kind, transactions, settings, backfills.
fn generate() -> String {
    let templates = [
        "SET lock_timeout = '2s';",
        "CREATE TABLE t{i} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL, created_at timestamptz DEFAULT now());",
        "ALTER TABLE users ADD COLUMN c{i} text;",
        "CREATE INDEX CONCURRENTLY users_c{i}_idx ON users (c{i});",
        "ALTER TABLE users ADD CONSTRAINT users_c{i}_check CHECK (length(c{i}) < 100) NOT VALID;",
        "ALTER TABLE users VALIDATE CONSTRAINT users_c{i}_check;",
        "UPDATE users SET c{i} = name WHERE id BETWEEN {i} AND {i} + 1000;",
        "BEGIN;",
        "ALTER TABLE orders ALTER COLUMN note TYPE varchar(200);",
        "COMMIT;",
    ];
    let mut sql = String::new();
    for i in 0..STATEMENTS {
        sql.push_str(&templates[i % templates.len()].replace("{i}", &i.to_string()));
        sql.push('\n');
    }
    sql
}

fn main() {
    let sql = generate();
    let config = Config::default();
    // One untimed run warms caches and checks the input is valid.
    let findings = lint_sql("bench.sql", &sql, &config).expect("generated SQL parses");
    let runs = 5;
    let mut best = f64::MAX;
    for _ in 0..runs {
        let start = Instant::now();
        let n = lint_sql("bench.sql", &sql, &config).unwrap().len();
        assert_eq!(n, findings.len());
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "linted {STATEMENTS} statements ({} KiB, {} findings): best of {runs} runs {:.1} ms, {:.0} statements/s",
        sql.len() / 1024,
        findings.len(),
        best * 1000.0,
        STATEMENTS as f64 / best
    );
}
