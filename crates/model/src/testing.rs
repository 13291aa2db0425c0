//! Helpers shared by the tests of several crates of the workspace: loading a directory of
//! migrations, and finding pgroll's example corpus. Not part of tandem's API.
//! Behind the `testing` feature; it may print (a skipped corpus says so on stderr).
#![allow(clippy::print_stderr, clippy::unwrap_used)]

use crate::migration::{Format, Migration};
use crate::schema::Schema;
use std::path::{Path, PathBuf};

/// How many migrations pgroll's example corpus holds, so that a partial copy is noticed.
pub const PGROLL_EXAMPLES: usize = 56;

/// The migration files of `dir` (`.json`, `.yaml`, `.yml`), loaded in name order. Panics with the
/// file and field of the first that does not load, because its callers are tests.
pub fn load_dir(dir: &Path) -> Vec<Migration> {
    migration_paths(dir)
        .iter()
        .map(|path| Migration::load(path).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn migration_paths(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| Format::from_path(path).is_some())
        .collect();
    paths.sort();
    paths
}

/// The paths of pgroll's example files from `../shared/compat/pgroll-examples` beside the
/// workspace, in name order; `None` when that directory is absent. With TANDEM_REQUIRE_COMPAT
/// set (CI sets it) a missing or partial corpus panics instead, so it can never pass by being
/// skipped.
pub fn pgroll_example_paths() -> Option<Vec<PathBuf>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/compat/pgroll-examples");
    if !dir.exists() {
        assert!(
            std::env::var_os("TANDEM_REQUIRE_COMPAT").is_none(),
            "TANDEM_REQUIRE_COMPAT is set but {} is missing",
            dir.display()
        );
        eprintln!("skipping: {} not present", dir.display());
        return None;
    }
    let paths = migration_paths(&dir);
    assert_eq!(
        paths.len(),
        PGROLL_EXAMPLES,
        "{} holds {} migrations, not {PGROLL_EXAMPLES}",
        dir.display(),
        paths.len()
    );
    Some(paths)
}

/// pgroll's examples, loaded in order (see [`pgroll_example_paths`]).
pub fn pgroll_examples() -> Option<Vec<Migration>> {
    let paths = pgroll_example_paths()?;
    Some(
        paths
            .iter()
            .map(|path| Migration::load(path).unwrap_or_else(|e| panic!("{e}")))
            .collect(),
    )
}

/// What the fuzz target (fuzz/fuzz_targets/migration.rs) does with one input, and what the corpus
/// replay test does with each file of fuzz/corpus: the text is parsed as JSON and as YAML, and
/// whatever parses is validated against an empty schema, against a schema with tables,
/// constraints and indexes, and once more against the schema its own first replay produced.
/// Panics when anything panics or when an error does not start with the file's name.
pub fn exercise(text: &str) {
    exercise_as(text, Format::Json, "fuzz.json");
    exercise_as(text, Format::Yaml, "fuzz.yaml");
}

/// A schema for the operations to find things in: keys of several kinds, a foreign key, a check,
/// a unique constraint, indexes and a renamed column.
const FUZZ_BASE: &str = "operations:
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

fn fuzz_base() -> &'static Schema {
    static BASE_SCHEMA: std::sync::OnceLock<Schema> = std::sync::OnceLock::new();
    BASE_SCHEMA.get_or_init(|| {
        let m = Migration::parse(FUZZ_BASE, Format::Yaml, "base.yaml", "base")
            .unwrap_or_else(|e| panic!("the fuzz target's base schema: {e}"));
        crate::validate::validate(&m, &Schema::new("public"))
            .unwrap_or_else(|e| panic!("the fuzz target's base schema: {e}"))
            .schema
    })
}

fn exercise_as(text: &str, format: Format, file: &str) {
    let migration = match Migration::parse(text, format, file, "fuzz") {
        Ok(m) => m,
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.starts_with(file),
                "an error that does not name the file: {message}"
            );
            return;
        }
    };
    for schema in [&Schema::new("public"), fuzz_base()] {
        match crate::validate::validate(&migration, schema) {
            Ok(validated) => {
                // Replaying on the schema it produced reaches the "already exists" and "no longer
                // there" paths with names the input chose.
                if let Err(e) = crate::validate::validate(&migration, &validated.schema) {
                    let message = e.to_string();
                    assert!(message.starts_with(file), "{message}");
                }
            }
            Err(e) => {
                let message = e.to_string();
                assert!(
                    message.starts_with(&format!("{file}: operations[")),
                    "{message}"
                );
            }
        }
    }
}
