//! `tandem bench`: runs `tandem_bench` and prints its report, a table on stdout (or one JSON
//! document with `--json`), with progress on stderr.

use anyhow::Result;
use tandem_bench::BenchOptions;

pub fn run(options: &BenchOptions, json: bool) -> Result<()> {
    let progress = |msg: &str| {
        if json {
            eprintln!("{}", serde_json::json!({"event": "bench", "message": msg}));
        } else {
            eprintln!("== {msg}");
        }
    };
    let report = tandem_bench::run(options, &progress)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", tandem_bench::render::table(&report));
    }
    Ok(())
}
