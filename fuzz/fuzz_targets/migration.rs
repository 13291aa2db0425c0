//! Fuzzes the migration-file reader and the validator: any bytes that are UTF-8 go through
//! `tandem_model::testing::exercise`, which parses them as JSON and as YAML (`Migration::parse`)
//! and validates whatever parses against several schemas. Nothing may panic, and every error must
//! name the file. `crates/model/tests/fuzz_corpus.rs` replays the checked-in corpus the same way
//! on stable Rust.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        tandem_model::testing::exercise(text);
    }
});
