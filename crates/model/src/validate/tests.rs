//! Validation tests: each check fires with the file, operation index and field in its message,
//! and pgroll's examples replay in memory.

use crate::migration::{Format, Migration};
use crate::schema::Schema;
use crate::validate::{validate, LiveCheck};

fn mig(yaml: &str) -> Migration {
    Migration::parse(yaml, Format::Yaml, "m.yaml", "m").unwrap()
}

fn base() -> Schema {
    let m = mig("operations:
  - create_table:
      name: users
      columns:
        - {name: id, type: serial, pk: true}
        - {name: name, type: text}
        - {name: bio, type: text, nullable: true}
");
    validate(&m, &Schema::new("public")).unwrap().schema
}

fn err(yaml: &str) -> String {
    validate(&mig(yaml), &base()).unwrap_err().to_string()
}

#[test]
fn missing_table_and_column() {
    assert_eq!(
        err("operations:\n  - drop_table: {name: nope}\n"),
        "m.yaml: operations[0].drop_table.name: table \"nope\" does not exist"
    );
    assert_eq!(
        err("operations:\n  - drop_column: {table: users, column: nope}\n"),
        "m.yaml: operations[0].drop_column.column: column \"nope\" does not exist on table \"users\""
    );
    assert!(
        err("operations:\n  - rename_column: {table: users, from: name, to: bio}\n")
            .contains("operations[0].rename_column.to: column \"bio\" already exists")
    );
}

#[test]
fn names_that_exist_or_are_too_long() {
    assert!(
        err("operations:\n  - create_table: {name: users, columns: [{name: a, type: int}]}\n")
            .contains("operations[0].create_table.name: a relation named \"users\" already exists")
    );
    let long = "x".repeat(64);
    assert!(err(&format!(
        "operations:\n  - rename_table: {{from: users, to: {long}}}\n"
    ))
    .contains("rename_table.to: \"xxxx"));
}

#[test]
fn later_operations_see_earlier_ones() {
    let m = mig("operations:
  - rename_table: {from: users, to: people}
  - add_column: {table: people, column: {name: age, type: int, nullable: true}}
  - drop_column: {table: people, column: bio}
");
    let v = validate(&m, &base()).unwrap();
    let t = v.schema.table("people").unwrap();
    assert!(t.column("age").is_some() && t.column("bio").is_none());
    assert!(v.schema.table("users").is_none());
    // Types are left for PostgreSQL to confirm.
    assert!(
        matches!(&v.live_checks[0], LiveCheck::TypeExists { type_name, .. } if type_name == "int")
    );
}

#[test]
fn not_null_without_value_needs_an_empty_table() {
    let m = mig("operations:\n  - add_column: {table: users, column: {name: age, type: int}}\n");
    let v = validate(&m, &base()).unwrap();
    assert!(v
        .live_checks
        .iter()
        .any(|c| matches!(c, LiveCheck::TableEmpty { table, .. } if table == "users")));
    let m = mig(
        "operations:\n  - add_column: {table: users, up: '1', column: {name: age, type: int}}\n",
    );
    let v = validate(&m, &base()).unwrap();
    assert!(!v
        .live_checks
        .iter()
        .any(|c| matches!(c, LiveCheck::TableEmpty { .. })));
}

#[test]
fn drop_not_null_column_needs_down() {
    assert!(
        err("operations:\n  - drop_column: {table: users, column: name}\n").contains(
            "operations[0].drop_column.down: column \"name\" is NOT NULL without a default"
        )
    );
}

#[test]
fn sql_makes_later_checks_lenient() {
    let m = mig("operations:\n  - sql: {up: create table t(a int)}\n  - add_column: {table: t, column: {name: b, type: int, nullable: true}}\n");
    assert!(validate(&m, &base()).is_ok());
}

/// Every example of pgroll's repository parses and replays in memory, in order. CI sets
/// TANDEM_REQUIRE_COMPAT=1 so that a missing corpus fails rather than passes.
#[test]
fn pgroll_examples_replay() {
    let Some(files) = crate::testing::pgroll_examples() else {
        eprintln!("skipping: pgroll's examples are not present beside the workspace");
        return;
    };
    let mut schema = Schema::new("public");
    for m in files {
        schema = validate(&m, &schema)
            .unwrap_or_else(|e| panic!("{e}"))
            .schema;
    }
}

#[test]
fn the_placeholder_tandem_convert_leaves_is_refused_until_written() {
    assert_eq!(
        err("operations:\n  - alter_column: {table: users, column: name, type: varchar(10), up: 'left(name, 10)', down: 'TODO(tandem convert): the old value'}\n"),
        "m.yaml: operations[0].alter_column.down: still holds the placeholder `tandem convert` left (TODO(tandem convert): ...): write the SQL expression it asks for"
    );
    assert!(err(
        "operations:\n  - create_constraint: {table: users, name: c, type: check, columns: [name], check: name <> '', up: {name: 'TODO(tandem convert): x'}}\n"
    )
    .contains("operations[0].create_constraint.up.name: still holds the placeholder"));
    // The word alone, in an expression a person wrote, is no placeholder.
    validate(
        &mig("operations:\n  - add_column: {table: users, up: \"'TODO'\", column: {name: note, type: text}}\n"),
        &base(),
    )
    .unwrap();
}

#[test]
fn nulls_not_distinct_asks_the_server_for_15() {
    let m = mig("operations:
  - create_table:
      name: badges
      columns: [{name: id, type: int, pk: true}, {name: code, type: text, nullable: true}]
      constraints: [{name: badges_code_uq, type: unique, columns: [code], nulls_not_distinct: true}]
");
    let v = validate(&m, &base()).unwrap();
    let check = v
        .live_checks
        .iter()
        .find(|c| matches!(c, LiveCheck::ServerVersion { .. }))
        .expect("a server version check");
    assert!(matches!(
        check,
        LiveCheck::ServerVersion { min_major: 15, .. }
    ));
    assert_eq!(
        check.failure("m.yaml").to_string(),
        "m.yaml: operations[0].create_table.constraints[0].nulls_not_distinct: NULLS NOT DISTINCT needs PostgreSQL 15 or later, and the server is older; remove it or upgrade the server"
    );
}
