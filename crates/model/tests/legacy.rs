//! Files in the older forms of pgroll's format (tests/data/legacy): each one loads as the
//! operation today's form spells, validates against a schema it fits, and is written back (and
//! checksummed) in today's form.

use std::path::Path;

use tandem_model::migration::{Format, Migration};
use tandem_model::{validate, Schema};

/// The tables the fixtures change, as pgroll's examples left them.
fn base() -> Schema {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/legacy-base/00_tables.yaml");
    let m = Migration::load(&path).unwrap();
    validate(&m, &Schema::new("public")).unwrap().schema
}

fn load(file: &str) -> Migration {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/legacy")
        .join(file);
    Migration::load(&path).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// `file` loads as `today` (the same operations in today's form), validates, and checksums the
/// same.
fn reads_as(file: &str, today: &str) {
    let old = load(file);
    let new = Migration::parse(today, Format::Yaml, "today.yaml", &old.name)
        .unwrap_or_else(|e| panic!("today's form of {file}: {e}"));
    assert_eq!(old.operations, new.operations, "{file}");
    assert_eq!(old.checksum(), new.checksum(), "{file}");
    validate(&old, &base()).unwrap_or_else(|e| panic!("{file}: {e}"));
    // Written back in today's form, it reads the same again.
    let written = serde_json::to_string(&old.to_file()).unwrap();
    let again = Migration::parse(&written, Format::Json, "again.json", &old.name).unwrap();
    assert_eq!(again.operations, old.operations, "{file}: {written}");
}

#[test]
fn create_index_columns_as_a_list_of_names() {
    reads_as(
        "10_create_index_columns_list.json",
        "operations:
  - create_index:
      name: idx_fruits_name_price
      table: fruits
      columns: [{column: name}, {column: price}]
",
    );
}

#[test]
fn create_index_columns_as_a_map_keep_their_order() {
    reads_as(
        "11_create_index_columns_map.yaml",
        "operations:
  - create_index:
      name: idx_fruits_price_name
      table: fruits
      columns: [{column: price, sort: DESC, nulls: LAST}, {column: name}]
",
    );
}

#[test]
fn set_not_null_is_alter_column_nullable_false() {
    reads_as(
        "16_set_not_null.json",
        "operations:
  - alter_column:
      table: reviews
      column: review
      nullable: false
      up: (SELECT CASE WHEN review IS NULL THEN product || ' is good' ELSE review END)
",
    );
}

#[test]
fn alter_column_not_null_is_nullable_false() {
    reads_as(
        "17_alter_column_not_null.json",
        "operations:
  - alter_column:
      table: reviews
      column: stars
      nullable: false
      up: (SELECT CASE WHEN stars IS NULL THEN '0' ELSE stars END)
      down: stars
",
    );
}

#[test]
fn change_type_is_alter_column_type() {
    reads_as(
        "18_change_type.json",
        "operations:
  - alter_column:
      table: reviews
      column: rating
      type: integer
      up: CAST(rating AS integer)
      down: CAST(rating AS text)
",
    );
}

#[test]
fn a_foreign_key_without_a_name_gets_postgres_name() {
    reads_as(
        "19_create_table_unnamed_references.json",
        "operations:
  - create_table:
      name: orders
      columns:
        - {name: id, type: serial, pk: true}
        - {name: user_id, type: integer, references: {name: orders_user_id_fkey, table: users, column: id}}
        - {name: quantity, type: int}
",
    );
}

#[test]
fn set_check_constraint_is_alter_column_check() {
    reads_as(
        "24_set_check_constraint.json",
        "operations:
  - alter_column:
      table: posts
      column: body
      check: {name: posts_body_check, constraint: length(body) < 1000}
      up: (SELECT CASE WHEN length(body) >= 1000 THEN left(body, 999) ELSE body END)
      down: body
",
    );
}

#[test]
fn set_foreign_key_is_alter_column_references() {
    reads_as(
        "25_set_foreign_key.json",
        "operations:
  - alter_column:
      table: posts
      column: author_id
      references: {name: posts_author_id_fkey, table: users, column: id}
      up: (SELECT CASE WHEN EXISTS (SELECT 1 FROM users WHERE users.id = author_id) THEN author_id ELSE NULL END)
      down: author_id
",
    );
}

#[test]
fn set_unique_is_a_unique_constraint() {
    reads_as(
        "15_set_columns_unique.json",
        "operations:
  - create_constraint:
      table: reviews
      name: reviews_username_product_unique
      type: unique
      columns: [username, product]
",
    );
}

#[test]
fn a_check_written_as_an_expression_gets_postgres_name() {
    reads_as(
        "22_add_check_constraint_expression.json",
        "operations:
  - alter_column:
      table: posts
      column: title
      check: {name: posts_title_check, constraint: length(title) > 3}
      up: (SELECT CASE WHEN length(title) <= 3 THEN LPAD(title, 4, '-') ELSE title END)
      down: title
",
    );
}

#[test]
fn drop_constraint_with_its_column() {
    reads_as(
        "23_drop_constraint_with_column.json",
        "operations:
  - drop_constraint:
      table: posts
      name: title_length
      up: title
      down: (SELECT CASE WHEN length(title) <= 3 THEN LPAD(title, 4, '-') ELSE title END)
",
    );
}

#[test]
fn foreign_key_actions_in_lower_case() {
    reads_as(
        "21_foreign_key_lowercase_on_delete.yaml",
        "operations:
  - alter_column:
      table: posts
      column: user_id
      references: {name: fk_users_id, table: users, column: id, on_delete: CASCADE}
      up: (SELECT CASE WHEN EXISTS (SELECT 1 FROM users WHERE users.id = user_id) THEN user_id ELSE NULL END)
      down: user_id
",
    );
}

#[test]
fn set_replica_identity_as_first_released() {
    reads_as(
        "29_set_replica_identity.json",
        "operations:
  - set_replica_identity: {table: fruits, identity: {type: full}}
",
    );
}

/// The older forms are accepted, not anything at all: a wrong element still names its field.
#[test]
fn a_wrong_index_column_still_names_the_field() {
    let e = Migration::parse(
        "operations:\n  - create_index: {name: i, table: fruits, columns: [1]}\n",
        Format::Yaml,
        "x.yaml",
        "x",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("operations[0].create_index.columns"), "{e}");
    assert!(e.contains("an index column"), "{e}");
    let e = Migration::parse(
        "operations:\n  - create_index: {name: i, table: fruits, columns: {name: {sort: UP}}}\n",
        Format::Yaml,
        "x.yaml",
        "x",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("operations[0].create_index.columns"), "{e}");
    assert!(e.contains("UP"), "{e}");
    let e = Migration::parse(
        "operations:\n  - drop_constraint: {table: posts, name: n, colum: title}\n",
        Format::Yaml,
        "x.yaml",
        "x",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("unknown field `colum`"), "{e}");
    // Both spellings of nullability at once are refused, naming the operation.
    let e = Migration::parse(
        "operations:\n  - alter_column: {table: posts, column: title, nullable: false, not_null: true}\n",
        Format::Yaml,
        "x.yaml",
        "x",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("operations[0].alter_column") && e.contains("not both"),
        "{e}"
    );
    // A today's foreign key in alter_column still needs its table.
    let e = Migration::parse(
        "operations:\n  - alter_column: {table: posts, column: user_id, references: {name: f, column: id}}\n",
        Format::Yaml,
        "x.yaml",
        "x",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("references.table: missing field"), "{e}");
}

/// The checksum ignores layout and format but not content.
#[test]
fn checksum_follows_content_not_layout() {
    let a = Migration::parse(
        "operations:\n  - drop_table: {name: t}\n",
        Format::Yaml,
        "a.yaml",
        "a",
    )
    .unwrap();
    let b = Migration::parse(
        "{\"operations\": [ {\"drop_table\": {\"name\": \"t\"}} ]}",
        Format::Json,
        "a.json",
        "a",
    )
    .unwrap();
    let c = Migration::parse(
        "operations:\n  - drop_table: {name: u}\n",
        Format::Yaml,
        "a.yaml",
        "a",
    )
    .unwrap();
    assert_eq!(a.checksum(), b.checksum());
    assert_ne!(a.checksum(), c.checksum());
    assert_eq!(a.checksum().len(), 64);
    // The stored form (jsonb sorts keys its own way) gives the same checksum.
    let stored: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&a.to_file()).unwrap()).unwrap();
    assert_eq!(
        tandem_model::migration::checksum_of_stored(&stored),
        a.checksum()
    );
}
