//! The README's "Your first migration on your own database", run as written, in an empty
//! directory against a database that already has a `users` table and rows.

use std::path::{Path, PathBuf};
use std::process::Command;
use tandem_testkit::TestDb;

#[test]
fn the_readme_walkthrough_runs_as_written() {
    let db = TestDb::new();
    db.execute(
        "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);
         INSERT INTO users SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 500) g;",
    );
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let marker = "<!-- run by crates/cli/tests/walkthrough.rs -->";
    let after = &readme[readme
        .find(marker)
        .expect("the README marks the walkthrough")
        + marker.len()..];
    let body = after
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a sh block after the marker");
    let work = tempfile::tempdir().unwrap();
    let bin_dirs = [
        Path::new(env!("CARGO_BIN_EXE_tandem"))
            .parent()
            .unwrap()
            .to_path_buf(),
        PathBuf::from("/usr/bin"),
        PathBuf::from("/bin"),
    ];
    let o = Command::new("sh")
        .current_dir(work.path())
        .env_clear()
        .env("PATH", std::env::join_paths(bin_dirs).unwrap())
        .env("HOME", work.path())
        .env("DATABASE_URL", db.url())
        .args(["-exc", body])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{body}\n{stdout}\n{stderr}");
    assert!(
        work.path()
            .join("migrations/0001_add_nickname.yaml")
            .is_file(),
        "create wrote the file the README names"
    );
    for expected in [
        "1 migration(s) valid against the live schema",
        "planned against the live schema",
        "options=-c%20search_path%3D%22public_0001_add_nickname%22,%22public%22",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?}:\n{stdout}\n{stderr}"
        );
    }
    let nickname: i64 = db
        .connect()
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'users' AND column_name = 'nickname'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(nickname, 1, "complete left the new column in place");
    let rows: i64 = db
        .connect()
        .query_one("SELECT count(*) FROM users", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 500);
}
