//! `fragments::check` accepts every migration the project and pgroll ship, and refuses a broken
//! fragment of each kind, naming its operation and field.

use tandem_model::migration::Format;
use tandem_model::Migration;

#[test]
fn every_shipped_migration_parses() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut all = tandem_model::testing::load_dir(&examples);
    all.extend(tandem_model::testing::pgroll_examples().unwrap_or_default());
    assert!(all.len() >= 4);
    for m in &all {
        if let Err(e) = tandem_lint::fragments::check(m) {
            panic!("{e}");
        }
    }
}

#[test]
fn each_kind_of_fragment_is_parsed() {
    let yaml = r#"operations:
  - create_table:
      name: t
      columns:
        - {name: a, type: "int[", default: "1 +", check: {name: c, constraint: "a >"}}
        - {name: b, type: int, generated: {expression: "a *"}}
      constraints:
        - {name: k, type: check, check: "b <"}
  - create_constraint: {table: t, name: x, type: check, columns: [a], check: "a = ANY(", up: {a: "a +"}, down: {a: a}}
  - create_index: {name: i, table: t, columns: [{column: a}], predicate: "a IS NOT"}
  - drop_column: {table: t, column: b, down: "(("}
  - alter_column: {table: t, column: a, default: "now(", check: {name: d, constraint: "a <>"}}
"#;
    let m = Migration::parse(yaml, Format::Yaml, "09_bad.yaml", "09_bad").unwrap();
    let message = tandem_lint::fragments::check(&m).unwrap_err().to_string();
    for field in [
        "operations[0].create_table.columns[0].type",
        "operations[0].create_table.columns[0].default",
        "operations[0].create_table.columns[0].check.constraint",
        "operations[0].create_table.columns[1].generated.expression",
        "operations[0].create_table.constraints[0].check",
        "operations[1].create_constraint.check",
        "operations[1].create_constraint.up.a",
        "operations[2].create_index.predicate",
        "operations[3].drop_column.down",
        "operations[4].alter_column.default",
        "operations[4].alter_column.check.constraint",
    ] {
        assert!(message.contains(field), "{field} missing from {message}");
    }
    assert!(
        message.starts_with("09_bad.yaml: 11 SQL fragment(s) do not parse"),
        "{message}"
    );
}
