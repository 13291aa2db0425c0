//! Helpers shared by the tests of several crates of the workspace: loading a directory of
//! migrations, and finding pgroll's example corpus. Not part of tandem's API.

use crate::migration::{Format, Migration};
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
