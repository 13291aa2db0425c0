//! `tandem demo`: on a throwaway cluster, a table with many rows is renamed and changed by an
//! expand/contract migration while an old-version client and a new-version client keep reading
//! and writing through their own version schemas. It prints each phase, each lock wait, and the
//! clients' error count, which must be zero.

use anyhow::{bail, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tandem_model::migration::Format;
use tandem_model::Migration;
use tandem_pg::cluster::{Cluster, ClusterOptions};
use tandem_pg::{ConnectOptions, Engine, EngineOptions, Event};

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

/// What a simulated client did.
#[derive(Default)]
struct Tally {
    ops: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A client of one application version: inserts, reads back and updates rows through its
/// version schema until told to stop.
fn spawn_client(
    url: String,
    search_path: String,
    sql: [&'static str; 3],
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let config: Result<postgres::Config, _> = url.parse();
        let mut conn = match config.map(|mut c| {
            c.options(&format!("-c search_path={search_path}"));
            c.connect(postgres::NoTls)
        }) {
            Ok(Ok(c)) => c,
            other => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
                *tally.last_error.lock().unwrap() = Some(format!("connect: {:?}", other.err()));
                return;
            }
        };
        let mut n: i64 = 0;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let result = (|| {
                let id: i64 = conn
                    .query_one(
                        sql[0],
                        &[&format!("demo {n}"), &format!("u{n}@example.com")],
                    )?
                    .get(0);
                conn.query_one(sql[1], &[&id])?;
                conn.execute(sql[2], &[&format!("demo {n} (edited)"), &id])?;
                Ok::<(), postgres::Error>(())
            })();
            tally.ops.fetch_add(3, Ordering::Relaxed);
            if let Err(e) = result {
                tally.errors.fetch_add(1, Ordering::Relaxed);
                *tally.last_error.lock().unwrap() = Some(tandem_pg::error::describe(&e));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

pub fn run(rows: i64, pg_bin: Option<PathBuf>, json: bool) -> Result<()> {
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
    let lock_waits = Arc::new(AtomicU64::new(0));
    let waits = lock_waits.clone();
    let on_event = move |e: &Event| {
        if matches!(e, Event::LockRetry { .. }) {
            waits.fetch_add(1, Ordering::Relaxed);
        }
        crate::render::event(json, e);
    };
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
    engine.start(&v1, &on_event)?;
    engine.complete(&on_event)?;
    say(&format!("loading {rows} rows"));
    engine.execute(&format!(
        "INSERT INTO public.users (name, email) SELECT 'user ' || g, CASE WHEN g % 10 <> 0 THEN 'user' || g || '@example.com' END FROM generate_series(1, {rows}) g; ANALYZE public.users"
    ))?;
    let v1_schema = Engine::version_schema_name("public", &v1);
    let v2_schema = Engine::version_schema_name("public", &v2);

    let stop_old = Arc::new(AtomicBool::new(false));
    let stop_new = Arc::new(AtomicBool::new(false));
    let old_tally = Arc::new(Tally::default());
    let new_tally = Arc::new(Tally::default());
    say(&format!(
        "old-version client starts, on search_path {v1_schema}"
    ));
    let old = spawn_client(
        url.clone(),
        format!("{v1_schema},public"),
        [
            "INSERT INTO users (name, email) VALUES ($1, $2) RETURNING id",
            "SELECT id, name, email FROM users WHERE id = $1",
            "UPDATE users SET name = $1 WHERE id = $2",
        ],
        stop_old.clone(),
        old_tally.clone(),
    );
    std::thread::sleep(Duration::from_millis(500));

    say("start: expand to version 2 (users → accounts, name → full_name, new column plan, new index, email becomes varchar(320) NOT NULL through a second column and a backfill)");
    let t = Instant::now();
    engine.start(&v2, &on_event)?;
    say(&format!(
        "start took {:.1} s; both versions are live",
        t.elapsed().as_secs_f64()
    ));
    say(&format!(
        "new-version client starts, on search_path {v2_schema}"
    ));
    let new = spawn_client(
        url.clone(),
        format!("{v2_schema},public"),
        [
            "INSERT INTO accounts (full_name, email) VALUES ($1, $2) RETURNING id",
            "SELECT id, full_name, email, plan FROM accounts WHERE id = $1",
            "UPDATE accounts SET full_name = $1 WHERE id = $2",
        ],
        stop_new.clone(),
        new_tally.clone(),
    );
    std::thread::sleep(Duration::from_secs(2));

    // Each version sees the other's writes, in its own shape.
    let mut check = tandem_pg::connect(&ConnectOptions {
        url: Some(url.clone()),
        ..ConnectOptions::default()
    })?;
    let crossed: i64 = check
        .query_one(
            &format!(
                "SELECT count(*) FROM {}.users o JOIN {}.accounts n USING (id) WHERE o.name = n.full_name",
                tandem_model::quote_ident(&v1_schema),
                tandem_model::quote_ident(&v2_schema)
            ),
            &[],
        )?
        .get(0);
    say(&format!(
        "{crossed} rows read the same through both versions"
    ));

    say("the old version is retired: its client stops");
    stop_old.store(true, Ordering::Relaxed);
    old.join().ok();
    say("complete: contract to version 2");
    let t = Instant::now();
    engine.complete(&on_event)?;
    say(&format!("complete took {:.1} s", t.elapsed().as_secs_f64()));
    std::thread::sleep(Duration::from_millis(500));
    stop_new.store(true, Ordering::Relaxed);
    new.join().ok();

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
    let old_errors = old_tally.errors.load(Ordering::Relaxed);
    let new_errors = new_tally.errors.load(Ordering::Relaxed);
    let summary = serde_json::json!({
        "emails_filled_by_up": filled,
        "rows": rows,
        "old_client": {"operations": old_tally.ops.load(Ordering::Relaxed), "errors": old_errors},
        "new_client": {"operations": new_tally.ops.load(Ordering::Relaxed), "errors": new_errors},
        "lock_waits": lock_waits.load(Ordering::Relaxed),
        "rows_visible_to_both_versions": crossed,
    });
    if json {
        println!("{summary}");
    } else {
        println!(
            "demo finished: old client {} operations, {} errors; new client {} operations, {} errors; {} lock waits",
            summary["old_client"]["operations"], old_errors, summary["new_client"]["operations"], new_errors, summary["lock_waits"]
        );
    }
    for (who, tally) in [("old", &old_tally), ("new", &new_tally)] {
        if let Some(e) = tally.last_error.lock().unwrap().as_ref() {
            eprintln!("{who} client's last error: {e}");
        }
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
