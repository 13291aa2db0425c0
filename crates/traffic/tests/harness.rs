//! The harness itself on a real PostgreSQL: clients of every protocol read and write, phases
//! split what they did, the writes they report are exactly what the table holds, and a change
//! that breaks a prepared statement shows up as the client error it is.

use std::collections::BTreeMap;
use std::time::Duration;

use tandem_testkit::TestDb;
use tandem_traffic::{Op, Pace, Protocol, Traffic, Value, Workload};

/// A client that inserts rows of its own (ids from `base`), updates them, and reads them back.
fn writer(name: &str, protocol: Protocol, base: i64) -> Workload {
    Workload::new(name, Some("public"))
        .protocol(protocol)
        .pace(Pace::Pause(Duration::from_millis(1)))
        .op(Op::insert(
            "insert",
            "INSERT INTO items (id, label, qty) VALUES ($1, $2, $3)",
            move |c| {
                let id = base + c.n as i64;
                vec![
                    id.into(),
                    format!("it's {id}").into(),
                    Value::Int(c.n as i64),
                ]
            },
        ))
        .op(Op::update(
            "update",
            "UPDATE items SET qty = qty + $2, label = $3 WHERE id = $1",
            move |c| {
                let id = base + (c.n / 2) as i64;
                vec![id.into(), Value::Int(10), format!("{id} edited").into()]
            },
        ))
        .op(Op::read(
            "read",
            "SELECT id, label, qty FROM items WHERE id = $1",
            move |c| vec![Value::Int(base + (c.n / 3) as i64)],
        ))
}

#[test]
fn clients_of_every_protocol_write_what_they_report() {
    let db = TestDb::new();
    db.execute("CREATE TABLE items (id bigint PRIMARY KEY, label text NOT NULL, qty int NOT NULL)");
    let mut traffic = Traffic::start(
        &db.url(),
        vec![
            writer("prepared", Protocol::Prepared, 1_000_000),
            writer("extended", Protocol::Extended, 2_000_000),
        ],
    )
    .expect("traffic starts");
    traffic.wait_for_ops(30);
    traffic.mark("second");
    traffic
        .spawn(writer("simple", Protocol::Simple, 3_000_000))
        .expect("spawn");
    traffic.wait_for_ops(30);
    assert_eq!(traffic.retire("extended"), 1);
    assert_eq!(traffic.running(), vec!["prepared", "simple"]);
    traffic.wait_for_ops(9);
    let report = traffic.stop();

    assert_eq!(report.error_count(), 0, "{}", report.describe_errors(10));
    assert_eq!(
        report.phases.iter().map(|p| &*p.name).collect::<Vec<_>>(),
        ["baseline", "second"]
    );
    let summaries = report.phase_summaries();
    assert!(summaries[0].ops >= 60 && summaries[1].ops >= 30);
    assert_eq!(summaries.iter().map(|s| s.ops).sum::<u64>(), report.ops());
    assert!(summaries.iter().all(|s| s.p50 <= s.p99 && s.p99 <= s.max));
    assert!(report
        .samples_in("baseline")
        .all(|s| &*s.client != "simple"));
    // Reads find the rows their client wrote before (the third read asks for the first row).
    assert!(report
        .samples
        .iter()
        .any(|s| &*s.op == "read" && s.rows == 1));

    // Replaying each client's reported writes gives exactly the table.
    let mut expected: BTreeMap<i64, (String, i32)> = BTreeMap::new();
    for w in report.writes.iter().filter(|w| w.ok) {
        let id = w.params[0].as_int().unwrap();
        match &*w.op {
            "insert" => {
                let row = (
                    w.params[1].as_text().unwrap(),
                    w.params[2].as_int().unwrap() as i32,
                );
                assert!(expected.insert(id, row).is_none());
            }
            "update" => {
                if let Some(row) = expected.get_mut(&id) {
                    row.1 += w.params[1].as_int().unwrap() as i32;
                    row.0 = w.params[2].as_text().unwrap();
                    assert_eq!(w.rows, 1);
                } else {
                    assert_eq!(w.rows, 0);
                }
            }
            other => panic!("unexpected write {other}"),
        }
    }
    let actual: BTreeMap<i64, (String, i32)> = db
        .connect()
        .query("SELECT id, label, qty FROM items", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    assert_eq!(actual, expected);
    assert!(report.clients.iter().all(|c| c.ops > 0 && c.errors == 0));
    assert!(report.phase_table().contains("second"));
}

/// The change tandem exists to avoid: `ALTER COLUMN ... TYPE` by hand under a client that
/// prepared `SELECT` on the table breaks it, and the harness reports the error.
#[test]
fn a_type_change_by_hand_breaks_a_prepared_statement() {
    let db = TestDb::new();
    db.execute(
        "CREATE TABLE items (id bigint PRIMARY KEY, label text NOT NULL, qty int NOT NULL);
         INSERT INTO items SELECT g, 'l' || g, g FROM generate_series(1, 1000) g",
    );
    let reader = Workload::new("reader", None)
        .protocol(Protocol::Prepared)
        .pace(Pace::Pause(Duration::from_millis(1)))
        .op(Op::read(
            "read",
            "SELECT id, qty FROM items WHERE id = $1",
            |c| vec![Value::Int(1 + (c.n % 1000) as i64)],
        ));
    let traffic = Traffic::start(&db.url(), vec![reader]).expect("traffic starts");
    traffic.wait_for_ops(20);
    traffic.mark("alter by hand");
    db.execute("ALTER TABLE items ALTER COLUMN qty TYPE bigint");
    traffic.wait_for_ops(20);
    let report = traffic.stop();
    assert!(report.samples_in("baseline").all(|s| s.ok));
    let first = report
        .errors
        .first()
        .unwrap_or_else(|| panic!("the prepared SELECT must fail after the type change"));
    assert!(
        first
            .message
            .contains("cached plan must not change result type"),
        "{}",
        report.describe_errors(3)
    );
    assert_eq!(&*first.phase, "alter by hand");
    assert_eq!(report.phase_summaries()[1].errors, report.error_count());
}
