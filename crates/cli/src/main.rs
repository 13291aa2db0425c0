//! The `tandem` binary: parses flags once, turns them into domain options, runs the command,
//! and owns exit codes and output. Everything else lives in the library crates.

mod bench;
mod cli;
mod convert;
mod create;
mod demo;
mod lint;
mod monitor_view;
mod pgbouncer;
mod pull;
mod render;
mod run;
mod trace;
mod workflow;

use std::process::ExitCode;

/// Exit codes, documented in the README.
pub mod exit {
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    /// Another tandem run holds the migration lock.
    pub const LOCKED: u8 = 3;
    /// `validate` found a problem.
    pub const INVALID: u8 = 4;
}

fn main() -> ExitCode {
    let args = cli::Args::parse_with_pgroll_fallbacks();
    let json = args.global.json;
    match run::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = run::exit_code(&err);
            if err.downcast_ref::<run::ExitWith>().is_some() {
                return ExitCode::from(code);
            }
            if json {
                let doc = serde_json::json!({ "ok": false, "error": format!("{err:#}"), "exit_code": code });
                println!("{doc}");
            } else {
                eprintln!("error: {err:#}");
            }
            ExitCode::from(code)
        }
    }
}
