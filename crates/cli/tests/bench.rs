//! `tandem bench` as users run it: `--json` on a scratch database given by `--database-url`,
//! small tables, every scenario. Figures are not asserted, only that each scenario reported
//! what it measured and that the database is left as it was.

use std::process::Command;
use tandem_testkit::TestDb;

#[test]
fn bench_json_on_a_scratch_database() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .env_remove("DATABASE_URL")
        .current_dir(dir.path())
        .args([
            "--json",
            "--database-url",
            &db.url(),
            "bench",
            "--rows",
            "1k,2000",
            "--oltp-time",
            "1s",
            "--oltp-clients",
            "2",
            "--clients",
            "2",
            "--hold",
            "1s",
        ])
        .output()
        .expect("run tandem");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "{stderr}\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    assert_eq!(doc["target"], "database");
    let sizes = |key: &str| -> Vec<u64> {
        doc[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key} missing: {doc}"))
            .iter()
            .map(|x| x["rows"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(sizes("backfill"), [1000, 2000]);
    assert_eq!(sizes("triggers"), [1000, 2000]);
    assert_eq!(doc["scaling"]["points"].as_array().unwrap().len(), 2);
    assert_eq!(sizes("indexed"), [1000, 2000]);
    for x in doc["indexed"].as_array().unwrap() {
        let arms: Vec<&str> = x["arms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["arm"].as_str().unwrap())
            .collect();
        assert_eq!(arms, ["tandem", "plain_update", "blocking_alter"], "{x}");
        for a in x["arms"].as_array().unwrap() {
            assert!(a["fill_rows_per_s"].as_f64().unwrap() > 0.0, "{a}");
            assert!(a["wal_bytes"].as_f64().unwrap() > 0.0, "{a}");
        }
        assert!(
            x["backfill_over_plain_update"].as_f64().unwrap() > 0.0,
            "{x}"
        );
    }
    let traffic = doc["traffic"].as_array().expect("traffic");
    assert_eq!(traffic.len(), 16, "8 runs per size");
    for t in traffic.iter().filter(|t| t["method"] == "tandem") {
        assert_eq!(t["total"]["errors"], 0, "{t}");
    }
    // The chart of each size, in the working directory by default.
    let charts = doc["charts"].as_array().expect("charts");
    assert_eq!(charts.len(), 2);
    for rows in [1000, 2000] {
        for ext in ["svg", "png"] {
            let file = dir.path().join(format!("tandem-bench-{rows}.{ext}"));
            assert!(file.is_file(), "{} missing", file.display());
        }
    }
    for t in doc["triggers"].as_array().unwrap() {
        assert_eq!(t["oltp"]["failed"], 0, "{t}");
        assert_eq!(t["bulk"].as_array().unwrap().len(), 2);
    }
    // Progress went to stderr as JSON lines.
    assert!(stderr
        .lines()
        .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    let left: i64 = db
        .connect()
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tandem\\_bench%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the benchmark's schemas were left behind");
}

#[test]
fn bench_refuses_a_bad_size_as_a_usage_error() {
    let o = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .env_remove("DATABASE_URL")
        .args(["bench", "--rows", "lots"])
        .output()
        .expect("run tandem");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not a number of rows"));
}
