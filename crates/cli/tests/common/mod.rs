//! What the CLI test files share: running the binary as a user would, with the connection
//! settings given (or none) and nothing from the test process's own environment.

#![allow(dead_code)]

use std::process::{Command, Output};

/// The variables that would otherwise reach the binary from the environment the tests run in.
const AMBIENT: &[&str] = &[
    "DATABASE_URL",
    "PGHOST",
    "PGPORT",
    "PGDATABASE",
    "PGSERVICE",
    "TANDEM_JSON",
    "NO_COLOR",
];

/// `tandem ARGS` with `DATABASE_URL` set to `url` (or unset), and no other PG* settings.
pub fn command(args: &[&str], url: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
    cmd.args(args);
    for var in AMBIENT {
        cmd.env_remove(var);
    }
    if let Some(u) = url {
        cmd.env("DATABASE_URL", u);
    }
    cmd
}

/// Runs [`command`] to its end.
pub fn tandem(args: &[&str], url: Option<&str>) -> Output {
    command(args, url).output().expect("run tandem")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}
