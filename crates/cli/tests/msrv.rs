//! The workspace's `rust-version` is true: no locked dependency needs a newer Rust, and every
//! crate inherits it (so clippy's `incompatible_msrv`, on by default, checks our own code
//! against it). Dependencies of other platforms are left out: `cargo metadata --offline` would
//! need them downloaded, and a clean machine has only what its own build fetched.

use std::process::Command;

/// `1.88` and `1.88.0` as the same version.
fn version(v: &str) -> Vec<u32> {
    let mut parts: Vec<u32> = v.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    parts.resize(3, 0);
    parts
}

/// The platform this test runs on, as rustc names it (`x86_64-unknown-linux-gnu`).
fn host() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let o = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_string()
}

#[test]
fn rust_version_covers_every_locked_dependency_and_every_crate_inherits_it() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let o = Command::new(cargo)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &host()])
        .output()
        .expect("run cargo metadata");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ours: Vec<String> = doc["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    let packages = doc["packages"].as_array().unwrap();
    let declared = packages
        .iter()
        .find(|p| p["name"] == "tandem-cli")
        .and_then(|p| p["rust_version"].as_str())
        .expect("tandem-cli declares rust-version");
    for p in packages {
        let name = p["name"].as_str().unwrap();
        let needs = p["rust_version"].as_str();
        if ours.iter().any(|id| *id == p["id"].as_str().unwrap()) {
            assert_eq!(
                needs,
                Some(declared),
                "{name} inherits the workspace's rust-version"
            );
        } else if let Some(needs) = needs {
            assert!(
                version(needs) <= version(declared),
                "{name} needs Rust {needs}, newer than the rust-version {declared} we declare"
            );
        }
    }
}
