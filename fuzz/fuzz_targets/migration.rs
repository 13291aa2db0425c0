//! Fuzzes the migration-file reader and the validator: any bytes are parsed as JSON and as YAML
//! (`Migration::parse`), and whatever parses is validated against an empty schema, against a
//! schema with tables, constraints and indexes, and once more against the schema its own first
//! replay produced. Nothing may panic, and every error must name the file.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tandem_model::migration::{Format, Migration};
use tandem_model::{validate, Schema};

/// A schema for the operations to find things in: keys of several kinds, a foreign key, a check,
/// a unique constraint, indexes and a renamed column.
const BASE: &str = "operations:
  - create_table:
      name: users
      columns:
        - {name: id, type: serial, pk: true}
        - {name: email, type: text, unique: true}
        - {name: name, type: text, check: {name: users_name_length, constraint: length(name) < 100}}
        - {name: bio, type: text, nullable: true, default: \"'none'\"}
  - create_table:
      name: posts
      columns:
        - {name: id, type: bigint, pk: true}
        - {name: user_id, type: integer, references: {name: posts_user_fk, table: users, column: id}}
        - {name: title, type: varchar(255)}
        - {name: body, type: text, nullable: true}
  - create_table:
      name: tags
      columns:
        - {name: post_id, type: bigint, pk: true}
        - {name: tag, type: text, pk: true}
  - create_index: {name: posts_title_idx, table: posts, columns: [{column: title}]}
  - create_index: {name: users_email_name, table: users, columns: [{column: email, sort: DESC}, {column: name}], unique: true}
  - rename_column: {table: posts, from: body, to: content}
";

const FILE_JSON: &str = "fuzz.json";
const FILE_YAML: &str = "fuzz.yaml";

fn base() -> &'static Schema {
    static BASE_SCHEMA: OnceLock<Schema> = OnceLock::new();
    BASE_SCHEMA.get_or_init(|| {
        let m = Migration::parse(BASE, Format::Yaml, "base.yaml", "base")
            .unwrap_or_else(|e| panic!("the fuzz target's base schema: {e}"));
        validate(&m, &Schema::new("public"))
            .unwrap_or_else(|e| panic!("the fuzz target's base schema: {e}"))
            .schema
    })
}

fn check(text: &str, format: Format, file: &str) {
    let migration = match Migration::parse(text, format, file, "fuzz") {
        Ok(m) => m,
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with(file), "an error that does not name the file: {message}");
            return;
        }
    };
    for schema in [&Schema::new("public"), base()] {
        match validate(&migration, schema) {
            Ok(validated) => {
                // Replaying on the schema it produced reaches the "already exists" and "no longer
                // there" paths with names the input chose.
                if let Err(e) = validate(&migration, &validated.schema) {
                    let message = e.to_string();
                    assert!(message.starts_with(file), "{message}");
                }
            }
            Err(e) => {
                let message = e.to_string();
                assert!(message.starts_with(&format!("{file}: operations[")), "{message}");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check(text, Format::Json, FILE_JSON);
    check(text, Format::Yaml, FILE_YAML);
});
