//! `tandem demo`: on a throwaway cluster, a table with many rows is renamed and changed by an
//! expand/contract migration while clients of the live-traffic harness (`tandem-traffic`), of the
//! old version and of the new, keep reading and writing through their own version schemas. It
//! prints each phase, each lock wait, and what the clients felt per phase; their error count must
//! be zero. At the end the same column changes are made by hand on a copy of the table, under
//! the same clients, and the two are shown side by side (and, with `--chart`, drawn).

use anyhow::{bail, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem_bench::chart::{self, ChartRow};
use tandem_bench::traffic::{phase, timeline, PhaseStats};
use tandem_cluster::{Cluster, ClusterOptions};
use tandem_model::migration::Format;
use tandem_model::{quote_ident, Migration};
use tandem_pg::{ConnectOptions, Engine, EngineOptions, Event};
use tandem_traffic::{Op, Pace, Protocol, Traffic, Value, Workload};

const CREATE: &str = "operations:
  - create_table:
      name: users
      columns:
        - name: id
          type: bigint
          pk: true
          generated:
            identity:
              user_specified_values: BY DEFAULT
        - name: name
          type: text
        - name: email
          type: text
          nullable: true
        - name: created_at
          type: timestamptz
          default: now()
";

const CHANGE: &str = "operations:
  - rename_table:
      from: users
      to: accounts
  - rename_column:
      table: accounts
      from: name
      to: full_name
  - add_column:
      table: accounts
      column:
        name: plan
        type: text
        default: \"'free'\"
  - create_index:
      name: accounts_email_idx
      table: accounts
      columns:
        - column: email
  - alter_column:
      table: accounts
      column: email
      type: varchar(320)
      nullable: false
      up: COALESCE(email, 'user' || id || '@unknown.example')
      down: email
";

/// The column changes of `CHANGE` as most people would write them by hand, in one transaction
/// (the renames are left out: by hand they would simply break the old clients).
const BY_HAND: &str = "BEGIN;
ALTER TABLE users_by_hand ADD COLUMN plan text DEFAULT 'free';
UPDATE users_by_hand SET email = 'user' || id || '@unknown.example' WHERE email IS NULL;
ALTER TABLE users_by_hand ALTER COLUMN email TYPE varchar(320), ALTER COLUMN email SET NOT NULL;
CREATE INDEX users_by_hand_email_idx ON users_by_hand (email);
COMMIT;";

/// Clients of each version: one sends prepared statements, one the extended protocol.
const CLIENTS: usize = 2;

/// A client that inserts a row of its own, reads it back and updates it, over and over, through
/// `table` with columns named `name_column` and `email`.
fn workload(
    version: &str,
    search_path: &str,
    table: &str,
    name_column: &str,
    i: usize,
) -> Workload {
    // Ids far above the identity sequence's, distinct per client (`Call::client`).
    let id =
        |client: usize, n: u64| Value::Int(1_000_000_000 + client as i64 * 10_000_000 + n as i64);
    let (t, col) = (quote_ident(table), quote_ident(name_column));
    Workload::new(version, Some(search_path))
        .protocol(if i.is_multiple_of(2) {
            Protocol::Prepared
        } else {
            Protocol::Extended
        })
        .pace(Pace::Pause(Duration::from_millis(2)))
        .op(Op::insert(
            "insert",
            &format!("INSERT INTO {t} (id, {col}, email) VALUES ($1, $2, $3)"),
            move |c| {
                vec![
                    id(c.client, c.n),
                    Value::Text(format!("demo {}", c.n)),
                    Value::Text(format!("u{}@example.com", c.n)),
                ]
            },
        ))
        .op(Op::read(
            "read",
            &format!("SELECT id, {col}, email FROM {t} WHERE id = $1"),
            move |c| vec![id(c.client, c.n)],
        ))
        .op(Op::update(
            "update",
            &format!("UPDATE {t} SET {col} = $1 WHERE id = $2"),
            move |c| {
                vec![
                    Value::Text(format!("demo {} (edited)", c.n)),
                    id(c.client, c.n),
                ]
            },
        ))
}

fn traffic_error(e: tandem_traffic::TrafficError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

pub fn run(
    rows: i64,
    pg_bin: Option<PathBuf>,
    chart_stem: Option<PathBuf>,
    json: bool,
) -> Result<()> {
    let say = |msg: &str| {
        if json {
            eprintln!("{}", serde_json::json!({"event": "demo", "message": msg}));
        } else {
            eprintln!("== {msg}");
        }
    };
    say("starting a throwaway PostgreSQL cluster");
    let cluster = Cluster::start(ClusterOptions {
        bin_dir: pg_bin,
        ..ClusterOptions::default()
    })?;
    say(&format!("PostgreSQL {} is up", cluster.major_version()));
    cluster.create_database("tandem_demo")?;
    let url = cluster.url("tandem_demo");
    let mut client = tandem_pg::connect(&ConnectOptions {
        url: Some(url.clone()),
        ..ConnectOptions::default()
    })?;
    let mut engine = Engine::new(&mut client, EngineOptions::default());
    engine.init()?;
    let v1 = Migration::parse(
        CREATE,
        Format::Yaml,
        "01_create_users.yaml",
        "01_create_users",
    )?;
    let v2 = Migration::parse(
        CHANGE,
        Format::Yaml,
        "02_rename_users.yaml",
        "02_rename_users",
    )?;
    say("version 1: creating table users");
    engine.start(&v1, &tandem_pg::events::ignore)?;
    engine.complete(&tandem_pg::events::ignore)?;
    say(&format!("loading {rows} rows"));
    let load = |table: &str| {
        format!(
            "INSERT INTO public.{table} (name, email) SELECT 'user ' || g, CASE WHEN g % 10 <> 0 THEN 'user' || g || '@example.com' END FROM generate_series(1, {rows}) g; ANALYZE public.{table}"
        )
    };
    engine.execute(&load("users"))?;
    let v1_schema = Engine::version_schema_name("public", &v1);
    let v2_schema = Engine::version_schema_name("public", &v2);
    let v1_path = format!("{}, public", quote_ident(&v1_schema));
    let v2_path = format!("{}, public", quote_ident(&v2_schema));

    say(&format!(
        "{CLIENTS} old-version clients start, on search_path {v1_schema}"
    ));
    let old: Vec<Workload> = (0..CLIENTS)
        .map(|i| workload(&format!("old {i}"), &v1_path, "users", "name", i))
        .collect();
    let mut traffic = Traffic::start(&url, old).map_err(traffic_error)?;
    std::thread::sleep(Duration::from_millis(500));

    let lock_waits = Arc::new(AtomicU64::new(0));
    let (waits, marker) = (lock_waits.clone(), traffic.marker());
    let on_event = move |e: &Event| {
        match e {
            Event::LockRetry { .. } => {
                waits.fetch_add(1, Ordering::Relaxed);
            }
            Event::Backfill { done, .. } => marker.mark(if *done {
                phase::PUBLISH
            } else {
                phase::BACKFILL
            }),
            _ => {}
        }
        crate::render::event(json, e);
    };
    say("start: expand to version 2 (users → accounts, name → full_name, new column plan, new index, email becomes varchar(320) NOT NULL through a second column and a backfill)");
    traffic.mark(phase::START);
    let t = Instant::now();
    engine.start(&v2, &on_event)?;
    traffic.mark(phase::ACTIVE);
    say(&format!(
        "start took {:.1} s; both versions are live",
        t.elapsed().as_secs_f64()
    ));
    say(&format!(
        "{CLIENTS} new-version clients start, on search_path {v2_schema}"
    ));
    for i in 0..CLIENTS {
        traffic
            .spawn(workload(
                &format!("new {i}"),
                &v2_path,
                "accounts",
                "full_name",
                i,
            ))
            .map_err(traffic_error)?;
    }
    // Each version sees the other's writes, in its own shape.
    traffic.wait_for_ops(30);
    let mut check = tandem_pg::connect(&ConnectOptions {
        url: Some(url.clone()),
        ..ConnectOptions::default()
    })?;
    let crossed: i64 = check
        .query_one(
            &format!(
                "SELECT count(*) FROM {}.users o JOIN {}.accounts n USING (id) WHERE o.name = n.full_name",
                quote_ident(&v1_schema),
                quote_ident(&v2_schema)
            ),
            &[],
        )?
        .get(0);
    say(&format!(
        "{crossed} rows read the same through both versions"
    ));

    say("the old version is retired: its clients stop");
    for i in 0..CLIENTS {
        traffic.retire(&format!("old {i}"));
    }
    say("complete: contract to version 2");
    traffic.mark(phase::COMPLETE);
    let t = Instant::now();
    engine.complete(&on_event)?;
    traffic.mark(phase::AFTER);
    say(&format!("complete took {:.1} s", t.elapsed().as_secs_f64()));
    std::thread::sleep(Duration::from_millis(500));
    let tandem_report = traffic.stop();

    // Every row has its email now, those that had none through `up`.
    let (filled, missing): (i64, i64) = {
        let r = check.query_one(
            "SELECT count(*) FILTER (WHERE email LIKE '%@unknown.example'), count(*) FILTER (WHERE email IS NULL) FROM public.accounts",
            &[],
        )?;
        (r.get(0), r.get(1))
    };
    say(&format!(
        "{filled} rows without an email got one from `up`; {missing} rows have none"
    ));

    // The same column changes by hand, on a copy of the original table, under the same clients.
    say(&format!(
        "for comparison: the same column changes by hand, in one transaction, on users_by_hand ({rows} rows) under {CLIENTS} clients"
    ));
    engine.execute(
        "CREATE TABLE public.users_by_hand (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name text NOT NULL, email text, created_at timestamptz DEFAULT now())",
    )?;
    engine.execute(&load("users_by_hand"))?;
    let clients: Vec<Workload> = (0..CLIENTS)
        .map(|i| {
            workload(
                &format!("by hand {i}"),
                "public",
                "users_by_hand",
                "name",
                i,
            )
        })
        .collect();
    let traffic = Traffic::start(&url, clients).map_err(traffic_error)?;
    std::thread::sleep(Duration::from_millis(500));
    traffic.mark(phase::ALTER);
    let t = Instant::now();
    check.batch_execute("SET lock_timeout = 0")?;
    check.batch_execute(BY_HAND)?;
    traffic.mark(phase::AFTER);
    let by_hand_seconds = t.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    let by_hand_report = traffic.stop();

    let stats = |r: &tandem_traffic::Report| -> Vec<PhaseStats> {
        r.phase_summaries()
            .iter()
            .map(PhaseStats::from_summary)
            .collect()
    };
    let (tandem_phases, by_hand_phases) = (stats(&tandem_report), stats(&by_hand_report));
    let worst = |p: &[PhaseStats]| {
        (
            p.iter().map(|s| s.p99_ms).fold(0.0, f64::max),
            p.iter().map(|s| s.max_ms).fold(0.0, f64::max),
        )
    };
    let count = |r: &tandem_traffic::Report, who: &str| -> (u64, u64) {
        r.clients
            .iter()
            .filter(|c| c.name.starts_with(who))
            .fold((0, 0), |(o, e), c| (o + c.ops, e + c.errors))
    };
    let (old_ops, old_errors) = count(&tandem_report, "old");
    let (new_ops, new_errors) = count(&tandem_report, "new");
    let by_hand_errors = by_hand_report.error_count();
    let by_hand_first_error = by_hand_report.errors.first().map(|e| e.message.clone());

    let charts = match &chart_stem {
        Some(stem) => {
            let row = ChartRow {
                title: format!("the demo's change, {rows} rows"),
                tandem: timeline(&tandem_report, Vec::new()),
                by_hand: timeline(&by_hand_report, Vec::new()),
            };
            let files = chart::draw(
                "tandem demo: client latency, tandem (left) and the same column changes by hand (right)",
                &[row],
                stem,
            )?;
            say(&format!(
                "chart written to {} and {}",
                files.svg.display(),
                files.png.display()
            ));
            Some(files)
        }
        None => None,
    };

    let summary = serde_json::json!({
        "emails_filled_by_up": filled,
        "rows": rows,
        "old_client": {"operations": old_ops, "errors": old_errors},
        "new_client": {"operations": new_ops, "errors": new_errors},
        "lock_waits": lock_waits.load(Ordering::Relaxed),
        "rows_visible_to_both_versions": crossed,
        "phases": tandem_phases,
        "by_hand": {
            "statement": BY_HAND,
            "seconds": by_hand_seconds,
            "errors": by_hand_errors,
            "first_error": by_hand_first_error,
            "phases": by_hand_phases,
        },
        "chart": charts,
    });
    if json {
        println!("{summary}");
    } else {
        println!("What the clients felt during tandem's migration:");
        print!("{}", tandem_report.phase_table());
        println!("\nThe same column changes by hand, in one transaction ({by_hand_seconds:.1} s):");
        print!("{}", by_hand_report.phase_table());
        let ((tp99, tmax), (hp99, hmax)) = (worst(&tandem_phases), worst(&by_hand_phases));
        println!(
            "\ntandem: worst p99 {tp99:.1} ms, max {tmax:.1} ms, {} client errors; by hand: worst p99 {hp99:.1} ms, max {hmax:.1} ms, {by_hand_errors} client errors{}",
            old_errors + new_errors,
            by_hand_first_error
                .as_ref()
                .map(|m| format!(" (first: {m})"))
                .unwrap_or_default()
        );
        println!(
            "demo finished: old clients {old_ops} operations, {old_errors} errors; new clients {new_ops} operations, {new_errors} errors; {} lock waits",
            lock_waits.load(Ordering::Relaxed)
        );
    }
    if old_errors + new_errors > 0 {
        eprintln!("{}", tandem_report.describe_errors(5));
    }
    drop(engine);
    drop(check);
    drop(client);
    drop(cluster);
    if missing > 0 {
        bail!("{missing} rows have no email after complete");
    }
    if old_errors + new_errors > 0 {
        bail!(
            "the clients saw {} errors during the migration",
            old_errors + new_errors
        );
    }
    Ok(())
}
