//! Malformed migration files, several of them shapes the fuzzer (fuzz/) reached: each one is
//! refused with an error that names the file and the field, never a panic.

use std::path::Path;

use tandem_model::migration::{Format, Migration};
use tandem_model::{validate, Schema};

fn base() -> Schema {
    let m = Migration::parse(
        "operations:
  - create_table:
      name: users
      columns:
        - {name: id, type: serial, pk: true}
        - {name: name, type: text}
",
        Format::Yaml,
        "base.yaml",
        "base",
    )
    .unwrap();
    validate(&m, &Schema::new("public")).unwrap().schema
}

/// The error `file` (under tests/data/malformed) gets from loading, or else from validation.
fn error(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/malformed")
        .join(file);
    match Migration::load(&path) {
        Err(e) => e.to_string(),
        Ok(m) => match validate(&m, &base()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{file} was accepted"),
        },
    }
}

/// Each file, and how its error begins: the file, the position when the parser knows it, and the
/// path to the field.
const CASES: &[(&str, &str)] = &[
    ("alter_nothing.yaml", "alter_nothing.yaml: operations[0].alter_column: nothing to change"),
    ("bad_enum_value.yaml", "bad_enum_value.yaml:2:74: operations[0].create_index.columns[0].sort: unknown variant `SIDEWAYS`"),
    ("deep_nesting.json", "deep_nesting.json:1:17: operations[0]: invalid type: sequence"),
    ("duplicate_column.yaml", "duplicate_column.yaml: operations[0].create_table.columns[1].name: column \"id\" is defined twice"),
    ("empty_table_name.yaml", "empty_table_name.yaml: operations[0].create_table.name: must not be empty"),
    ("missing_column_type.yaml", "missing_column_type.yaml:5:9: operations[0].add_column.column.type: missing field"),
    ("name_too_long.yaml", "name_too_long.yaml: operations[0].rename_column.to: \"xxxx"),
    ("no_operations.json", "no_operations.json: operations: a migration needs at least one operation"),
    ("null_operation.yaml", "null_operation.yaml:2:5: operations[0]: invalid type: unit value"),
    // The text ends inside a key: the error names the object that holds it, never `?`.
    ("truncated.json", "truncated.json:1:77: operations[0].create_table.columns[0]: EOF while parsing"),
    ("two_kinds_in_one.yaml", "two_kinds_in_one.yaml:2:5: operations[0]: invalid value: map, expected map with a single key"),
    ("unknown_operation.yaml", "unknown_operation.yaml:2:5: operations[0].frobnicate_table: unknown variant"),
    ("wrong_value_type.json", "wrong_value_type.json:1:100: operations[0].create_table.columns[0].pk: invalid type: string \"yes\""),
];

#[test]
fn every_malformed_file_is_refused_naming_the_file_and_the_field() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/malformed");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let listed: Vec<&str> = CASES.iter().map(|(file, _)| *file).collect();
    assert_eq!(files, listed, "every fixture has an expectation");
    for (file, expected) in CASES {
        let message = error(file);
        assert!(
            message.starts_with(expected),
            "{file}:\n  got      {message}\n  expected {expected}..."
        );
    }
}
