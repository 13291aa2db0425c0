//! The `tandem` binary: parses flags once, turns them into domain options, runs the command,
//! and owns exit codes and output. Everything else lives in the library crates.

mod bench;
mod cli;
mod convert;
mod create;
mod demo;
mod duration;
mod error_doc;
mod lint;
mod manual;
mod monitor_view;
mod pgbouncer;
mod pull;
mod render;
mod run;
mod trace;
mod unix;
mod usage;
mod workflow;

use std::io::Write;
use std::process::ExitCode;

/// Exit codes, documented in the README.
pub mod exit {
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    /// Another tandem run holds the migration lock.
    pub const LOCKED: u8 = 3;
    /// `validate` found a problem.
    pub const INVALID: u8 = 4;
    /// The file is not the one the migration was started with.
    pub const FILE_CHANGED: u8 = 5;
    /// The migration is still backfilling: `start` with its file continues it.
    pub const STILL_BACKFILLING: u8 = 6;
    /// The database's history does not match the directory.
    pub const HISTORY_MISMATCH: u8 = 7;
    /// The migration's status does not allow the command (another is active, none is, it did
    /// not finish starting, it is completing, it was already applied).
    pub const WRONG_STATUS: u8 = 8;
}

fn main() -> ExitCode {
    unix::quiet_on_broken_pipe();
    let args = cli::Args::parse_with_pgroll_fallbacks();
    let json = args.global.json;
    unix::set_output(args.global.quiet, args.global.verbose, args.global.color);
    match run::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if unix::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            unix::say_stopping();
            let code = run::exit_code(&err);
            if err.downcast_ref::<run::ExitWith>().is_some() {
                return ExitCode::from(code);
            }
            let mut stderr = std::io::stderr().lock();
            if json {
                let doc = serde_json::json!({ "ok": false, "error": error_doc::error_json(&err), "exit_code": code });
                println!("{doc}");
            } else {
                let text = unix::error_text(&err, unix::output().verbose);
                let _ = writeln!(stderr, "{} {text}", unix::paint("1;31", "error:"));
            }
            ExitCode::from(code)
        }
    }
}
