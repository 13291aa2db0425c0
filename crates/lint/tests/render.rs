//! Snapshots of the rendered diagnostics for a fixture migration, in every format.

use tandem_lint::render::{self, FileReport};
use tandem_lint::{lint_sql, Config};

fn report() -> (String, Vec<tandem_lint::Finding>) {
    let file = "tests/data/rails_style.sql";
    let sql = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/rails_style.sql"
    ))
    .unwrap();
    let findings = lint_sql(file, &sql, &Config::default()).unwrap();
    (file.to_string(), findings)
}

#[test]
fn human() {
    let (file, findings) = report();
    insta::assert_snapshot!(render::human(&[FileReport {
        file: &file,
        findings: &findings
    }]));
}

#[test]
fn github() {
    let (file, findings) = report();
    insta::assert_snapshot!(render::github(&[FileReport {
        file: &file,
        findings: &findings
    }]));
}

#[test]
fn json() {
    let (file, findings) = report();
    insta::assert_snapshot!(render::json(&[FileReport {
        file: &file,
        findings: &findings
    }]));
}
