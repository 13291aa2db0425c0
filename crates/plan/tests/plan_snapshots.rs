//! Snapshots of the plans of the project's `examples/` and of the whole pgroll corpus
//! (`../shared/compat/pgroll-examples`), each file planned offline against the schema the
//! earlier files of its directory leave, as `tandem plan --offline` plans it. Every planner
//! change then shows up as a diff of `tests/snapshots/` to review (`cargo insta review`).
//! Between them, the files use every operation kind; a test says so.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tandem_model::{Migration, Schema};
use tandem_plan::{Facts, PlanInput};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    files.sort();
    files
}

/// Plans every file of `dir` in order and snapshots each plan as `tandem plan` prints it;
/// returns the operation kinds the files use.
fn snapshot_dir(dir: &Path, prefix: &str) -> BTreeSet<&'static str> {
    let mut schema = Schema::new("public");
    let facts = Facts {
        pg_major: 17,
        ..Facts::default()
    };
    let mut kinds = BTreeSet::new();
    for path in files(dir) {
        let m = Migration::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        kinds.extend(m.operations.iter().map(|op| op.kind()));
        let version_schema = m
            .version_schema
            .clone()
            .unwrap_or_else(|| tandem_model::shorten_name(&format!("public_{}", m.name)));
        let validated = tandem_model::validate(&m, &schema)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let plan = tandem_plan::plan(&PlanInput::new(
            "public",
            &version_schema,
            &validated,
            &facts,
        ))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        insta::assert_snapshot!(
            format!("{prefix}__{}", m.name),
            tandem_plan::render::render(&m.file, &plan)
        );
        schema = validated.schema;
    }
    kinds
}

#[test]
fn the_examples_and_the_pgroll_corpus_plan_as_snapshotted_using_every_operation_kind() {
    let mut kinds = snapshot_dir(&repo().join("examples"), "examples");
    let corpus = repo().join("../shared/compat/pgroll-examples");
    if corpus.is_dir() {
        kinds.extend(snapshot_dir(&corpus, "pgroll"));
    } else {
        assert!(
            std::env::var_os("TANDEM_REQUIRE_COMPAT").is_none(),
            "TANDEM_REQUIRE_COMPAT is set but {} is missing",
            corpus.display()
        );
        return;
    }
    let all = [
        "create_table",
        "drop_table",
        "rename_table",
        "add_column",
        "drop_column",
        "rename_column",
        "alter_column",
        "create_index",
        "drop_index",
        "create_constraint",
        "drop_constraint",
        "drop_multicolumn_constraint",
        "rename_constraint",
        "set_replica_identity",
        "sql",
    ];
    let missing: Vec<&str> = all.iter().copied().filter(|k| !kinds.contains(k)).collect();
    assert!(missing.is_empty(), "no snapshotted file uses {missing:?}");
}
