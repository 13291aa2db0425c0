//! Names the commit the binary is built from, for `tandem --version`: `TANDEM_COMMIT` when the
//! build sets it (a release built from a tarball), else what git says, else "unknown commit"
//! (no git, or not a checkout). It never fails the build.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=TANDEM_COMMIT");
    let commit = std::env::var("TANDEM_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let hash = git(&["rev-parse", "--short=12", "HEAD"])?;
            let date = git(&["show", "-s", "--format=%cs", "HEAD"]);
            Some(match date {
                Some(date) => format!("commit {hash} {date}"),
                None => format!("commit {hash}"),
            })
        })
        .unwrap_or_else(|| "unknown commit".into());
    // Build again when HEAD moves: HEAD itself, the branch it points to, and packed refs (the
    // paths git gives work in a worktree too).
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for path in watched {
        if let Some(p) = git(&["rev-parse", "--git-path", &path]) {
            let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(p);
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
    println!("cargo:rustc-env=TANDEM_COMMIT={commit}");
}
