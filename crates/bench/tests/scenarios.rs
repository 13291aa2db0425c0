//! Every scenario end to end on small tables, on a database of the test kit's cluster, so the
//! benchmark cannot rot. Figures are never asserted; what is asserted is that each scenario
//! measured what it says (sizes, runs, drivers, columns), that nothing failed, and that the
//! benchmark leaves the database as it found it.

use std::time::Duration;
use tandem_bench::{BenchOptions, Error, Report, Scenario, Target};
use tandem_pg::backfill::BackfillOptions;
use tandem_pg::ConnectOptions;
use tandem_testkit::TestDb;

fn options(db: &TestDb, rows: &[u64], scenarios: &[Scenario]) -> BenchOptions {
    BenchOptions {
        target: Target::Database(ConnectOptions {
            url: Some(db.url()),
            ..ConnectOptions::default()
        }),
        rows: rows.to_vec(),
        scenarios: scenarios.to_vec(),
        repeat: 1,
        // Several batches even on a small table.
        backfill: BackfillOptions {
            batch_size: Some(500),
            // Not the default ceiling, so the report shows the option reached the run.
            workers: 3,
            ..BackfillOptions::default()
        },
        oltp_clients: 2,
        oltp_duration: Duration::from_secs(1),
        built_in_oltp: false,
        traffic: tandem_bench::traffic::TrafficOptions {
            clients: 2,
            rate: 100.0,
            hold: Duration::from_secs(1),
            settle: Duration::from_millis(200),
        },
        chart: None,
    }
}

fn run(opts: &BenchOptions) -> (Report, Vec<String>) {
    let seen = std::sync::Mutex::new(Vec::new());
    let report = tandem_bench::run(opts, &|m: &str| seen.lock().unwrap().push(m.to_string()))
        .unwrap_or_else(|e| panic!("tandem bench failed: {e}"));
    (report, seen.into_inner().unwrap())
}

/// The schemas the benchmark owns, left in the database.
fn leftovers(db: &TestDb) -> Vec<String> {
    db.connect()
        .query(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tandem\\_bench%' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

#[test]
fn backfill_speed_and_scaling_at_each_size() {
    let db = TestDb::new();
    // What an earlier, interrupted run left is cleared; the database's own schemas are not.
    db.execute(
        "CREATE SCHEMA app; CREATE TABLE app.keep (id int); CREATE SCHEMA tandem_bench_leftover",
    );
    let (report, progress) = run(&options(
        &db,
        &[3000, 2000],
        &[Scenario::Backfill, Scenario::Scaling],
    ));
    let sizes: Vec<u64> = report.backfill.iter().map(|b| b.rows).collect();
    assert_eq!(sizes, [2000, 3000], "sizes run smallest first");
    for b in &report.backfill {
        assert!(
            positive(b.backfill_rows_per_s) && positive(b.plain_update_rows_per_s),
            "{b:?}"
        );
        assert_eq!(b.ratio, b.backfill_rows_per_s / b.plain_update_rows_per_s);
        // 500-row batches: the backfill walked the whole table in several of them.
        assert!(b.batches >= b.rows / 500, "{b:?}");
        assert_eq!((b.backfill_runs.len(), b.plain_update_runs.len()), (1, 1));
        assert!(positive(b.plain_update_under_trigger_rows_per_s), "{b:?}");
        assert_eq!(
            b.ratio_under_trigger,
            b.backfill_rows_per_s / b.plain_update_under_trigger_rows_per_s
        );
        assert_eq!(b.plain_update_under_trigger_runs.len(), 1);
        assert_eq!(b.parallel_workers, 3, "{b:?}");
        assert!(positive(b.parallel_backfill_rows_per_s), "{b:?}");
        assert_eq!(
            b.parallel_ratio,
            b.parallel_backfill_rows_per_s / b.plain_update_rows_per_s
        );
        assert_eq!(b.parallel_backfill_runs.len(), 1);
    }
    let scaling = report.scaling.as_ref().expect("scaling was asked for");
    let points: Vec<(u64, f64)> = scaling
        .points
        .iter()
        .map(|p| (p.rows, p.backfill_rows_per_s))
        .collect();
    assert_eq!(
        points,
        report
            .backfill
            .iter()
            .map(|b| (b.rows, b.backfill_rows_per_s))
            .collect::<Vec<_>>(),
        "scaling reuses scenario 1's figures"
    );
    for (p, b) in scaling.points.iter().zip(&report.backfill) {
        assert_eq!(p.plain_update_rows_per_s, Some(b.plain_update_rows_per_s));
        assert_eq!(
            p.parallel_backfill_rows_per_s,
            Some(b.parallel_backfill_rows_per_s)
        );
    }
    let (small, large) = (&report.backfill[0], &report.backfill[1]);
    assert_eq!(
        scaling.plain_update_largest_over_smallest,
        Some(large.plain_update_rows_per_s / small.plain_update_rows_per_s)
    );
    assert_eq!(
        scaling.parallel_largest_over_smallest,
        Some(large.parallel_backfill_rows_per_s / small.parallel_backfill_rows_per_s)
    );
    assert!(report.triggers.is_empty());
    assert!(progress
        .iter()
        .any(|m| m.contains("backfill speed, 3000 rows")));
    assert!(leftovers(&db).is_empty(), "{:?}", leftovers(&db));
    let kept: i64 = db
        .connect()
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'app'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(kept, 1);
    let text = tandem_bench::render::table(&report);
    assert!(
        text.contains("1. Backfill speed") && text.contains("3,000"),
        "{text}"
    );
    assert!(
        text.contains("4. Scaling") && !text.contains("2. Write cost"),
        "{text}"
    );
    assert!(text.contains("the same for one plain UPDATE"), "{text}");
}

#[test]
fn scaling_alone_measures_the_backfill_at_each_size() {
    let db = TestDb::new();
    let (report, _) = run(&options(&db, &[1500, 2500], &[Scenario::Scaling]));
    assert!(report.backfill.is_empty());
    let scaling = report.scaling.expect("scaling");
    assert_eq!(
        scaling.points.iter().map(|p| p.rows).collect::<Vec<_>>(),
        [1500, 2500]
    );
    for p in &scaling.points {
        assert!(positive(p.backfill_rows_per_s), "{p:?}");
        assert!((p.us_per_row - 1e6 / p.backfill_rows_per_s).abs() < 1e-9);
    }
    assert!(positive(scaling.largest_over_smallest));
    assert_eq!(scaling.plain_update_largest_over_smallest, None);
    assert!(scaling
        .points
        .iter()
        .all(|p| p.plain_update_rows_per_s.is_none() && p.parallel_backfill_rows_per_s.is_none()));
    assert!(leftovers(&db).is_empty());
}

#[test]
fn trigger_cost_with_pgbench_and_with_the_built_in_mix() {
    let db = TestDb::new();
    let mut opts = options(&db, &[2000], &[Scenario::Triggers]);
    for built_in in [false, true] {
        opts.built_in_oltp = built_in;
        let (report, progress) = run(&opts);
        assert_eq!(report.triggers.len(), 1);
        let t = &report.triggers[0];
        assert_eq!(t.rows, 2000);
        let bulk: Vec<(&str, bool)> = t
            .bulk
            .iter()
            .map(|b| (b.column.as_str(), b.read_by_up))
            .collect();
        assert_eq!(bulk, [("a", true), ("d", false)]);
        for b in &t.bulk {
            assert!(
                positive(b.with_triggers_s) && positive(b.without_triggers_s),
                "{b:?}"
            );
        }
        // pgbench comes with the server binaries or with Debian's postgresql package; npm builds
        // lack it and borrow the installed one (pgbench of one major runs against another).
        let driver = if built_in { "built-in" } else { "pgbench" };
        assert_eq!(t.oltp.driver, driver, "{progress:?}");
        assert_eq!(t.oltp.clients, 2);
        assert!(positive(t.oltp.with_triggers_tps) && positive(t.oltp.without_triggers_tps));
        assert!(positive(t.oltp.with_triggers_latency_ms));
        assert_eq!(t.oltp.failed, 0, "no transaction of the mix may fail");
        assert!(progress
            .iter()
            .any(|m| m.contains("OLTP mix with triggers")));
        assert!(leftovers(&db).is_empty());
        let text = tandem_bench::render::table(&report);
        assert!(
            text.contains(&format!("OLTP mix ({driver}, 2 clients)")),
            "{text}"
        );
    }
}

#[test]
fn bad_options_are_refused_before_anything_runs() {
    let db = TestDb::new();
    for (rows, scenarios) in [
        (vec![], vec![Scenario::Backfill]),
        (vec![0], vec![Scenario::Backfill]),
        (vec![100], vec![]),
    ] {
        let opts = options(&db, &rows, &scenarios);
        match tandem_bench::run(&opts, &|_: &str| {}) {
            Err(Error::Options(_)) => {}
            other => panic!("{rows:?} {scenarios:?}: {other:?}"),
        }
    }
    assert!(leftovers(&db).is_empty());
}

#[test]
fn a_throwaway_cluster_when_no_database_is_given() {
    let opts = BenchOptions {
        target: Target::Throwaway {
            bin_dir: Some(tandem_testkit::cluster().bin_dir().to_path_buf()),
        },
        ..options(&TestDb::new(), &[1000], &[Scenario::Backfill])
    };
    let (report, progress) = run(&opts);
    assert_eq!(report.target, "throwaway cluster");
    assert_eq!(report.backfill.len(), 1);
    assert!(progress[0].contains("throwaway"), "{progress:?}");
}

#[test]
fn traffic_during_each_change_by_tandem_and_by_hand() {
    use tandem_bench::traffic::{phase, Change, Method, TrafficOptions};
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let hold = Duration::from_secs(1);
    let opts = BenchOptions {
        traffic: TrafficOptions {
            clients: 2,
            rate: 100.0,
            hold,
            settle: Duration::from_millis(200),
        },
        chart: Some(dir.path().join("latency")),
        ..options(&db, &[2000], &[Scenario::Traffic])
    };
    let (report, _) = run(&opts);
    assert_eq!(
        report.traffic.len(),
        8,
        "2 changes × quiet/long transaction × tandem/by hand"
    );
    for change in Change::ALL {
        for long_transaction in [false, true] {
            for method in [Method::Tandem, Method::ByHand] {
                let what = format!("{change:?}, long transaction {long_transaction}, {method:?}");
                let run = report
                    .traffic
                    .iter()
                    .find(|r| {
                        r.change == change
                            && r.method == method
                            && r.long_transaction == long_transaction
                    })
                    .unwrap_or_else(|| panic!("no run for {what}"));
                let names: Vec<&str> = run.phases.iter().map(|p| p.phase.as_str()).collect();
                assert_eq!(names.first(), Some(&phase::BASELINE), "{what}: {names:?}");
                assert_eq!(names.last(), Some(&phase::AFTER), "{what}: {names:?}");
                assert!(run.total.statements > 0 && run.total.max_ms > 0.0, "{what}");
                assert_eq!(
                    run.total.statements,
                    run.phases.iter().map(|p| p.statements).sum::<u64>(),
                    "{what}"
                );
                assert_eq!(
                    run.timeline.samples.len() as u64,
                    run.total.statements,
                    "{what}"
                );
                match method {
                    Method::Tandem => {
                        for p in [phase::START, phase::ACTIVE, phase::COMPLETE] {
                            assert!(names.contains(&p), "{what}: {names:?}");
                        }
                        // tandem's promise: the application never sees an error.
                        assert_eq!(run.total.errors, 0, "{what}: {:?}", run.error_messages);
                        // Behind the long transaction, tandem gave up waiting and retried.
                        assert_eq!(run.lock_retries > 0, long_transaction, "{what}");
                    }
                    Method::ByHand => {
                        assert!(names.contains(&phase::ALTER), "{what}: {names:?}");
                        assert_eq!(run.lock_retries, 0);
                        if long_transaction {
                            // The ALTER queued behind the open transaction.
                            assert!(run.change_seconds >= hold.as_secs_f64(), "{what}");
                            assert_eq!(run.timeline.held.len(), 1, "{what}");
                        }
                    }
                }
            }
        }
    }
    // By hand, the type change breaks the statements clients prepared before it.
    let by_hand_type = report
        .traffic
        .iter()
        .find(|r| {
            r.change == Change::TypeChange && r.method == Method::ByHand && !r.long_transaction
        })
        .unwrap();
    assert!(
        by_hand_type
            .error_messages
            .iter()
            .any(|m| m.contains("cached plan must not change result type")),
        "{:?}",
        by_hand_type.error_messages
    );
    assert_eq!(report.charts.len(), 1);
    let svg = std::fs::read_to_string(&report.charts[0].svg).unwrap();
    assert!(svg.contains("int → bigint, behind a long transaction: by hand"));
    assert!(report.charts[0].png.is_file());
    assert!(report.charts[0].svg.ends_with("latency-2000.svg"));
    let text = tandem_bench::render::table(&report);
    assert!(text.contains("3. What the application feels"), "{text}");
    assert!(leftovers(&db).is_empty());
}
