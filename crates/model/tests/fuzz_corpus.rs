//! The fuzzer's checked-in corpus (fuzz/corpus/migration: pgroll's examples, the project's own,
//! and the inputs the fuzzer kept because they reached new code), replayed on stable Rust through
//! the same checks as the fuzz target. A crash the fuzzer finds goes into the corpus once fixed,
//! so this test keeps it fixed.

use std::path::Path;

fn replay(dir: &str) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(dir);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let outcome = std::panic::catch_unwind(|| tandem_model::testing::exercise(text));
            assert!(outcome.is_ok(), "{} panics", path.display());
        }
        n += 1;
    }
    n
}

#[test]
fn the_fuzz_corpus_parses_and_validates_without_a_panic() {
    // The seeds alone are 60 files.
    assert!(replay("corpus/migration") >= 60);
}
