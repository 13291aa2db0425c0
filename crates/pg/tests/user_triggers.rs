//! The backfill fires none of the user's triggers, while every application write of either
//! version keeps firing them: on Pagila (its `last_updated` and tsvector triggers, and an audit
//! trigger added here) through start → rollback and start → complete, with one session and with
//! workers; the refusal before any change where the role may not keep them out; and which
//! triggers count, on partitions, for statements, rules and `UPDATE OF`.

mod common;

use common::{count, exec, migration, Env};
use tandem_model::Migration;
use tandem_pg::backfill::triggers::{firing, TriggerMode};
use tandem_pg::backfill::BackfillOptions;
use tandem_pg::{Engine, EngineOptions, Error};
use tandem_testkit::{Access, TestDb};

/// An `add_column` with `up` on `film` and a type change with `up`/`down` on `address`: both
/// tables are backfilled, and both carry Pagila's `last_updated` trigger.
fn pagila_migration() -> Migration {
    migration(
        "01_title_and_address2",
        "operations:
  - add_column:
      table: film
      up: upper(title)
      column: {name: title_upper, type: text, nullable: true}
  - alter_column:
      table: address
      column: address2
      type: varchar(64)
      up: address2
      down: address2
",
    )
}

/// An audit trigger on `film` and `address` that records every row written, by table, key and
/// operation.
const AUDIT: &str = "
    CREATE TABLE public.audit (id bigserial PRIMARY KEY, tbl text NOT NULL, row_id int NOT NULL, op text NOT NULL);
    CREATE FUNCTION public.audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO public.audit (tbl, row_id, op)
        VALUES (TG_TABLE_NAME, (to_jsonb(NEW) ->> TG_ARGV[0])::int, TG_OP);
        RETURN NULL;
    END $$;
    CREATE TRIGGER audit AFTER INSERT OR UPDATE ON public.film
        FOR EACH ROW EXECUTE FUNCTION public.audit_row('film_id');
    CREATE TRIGGER audit AFTER INSERT OR UPDATE ON public.address
        FOR EACH ROW EXECUTE FUNCTION public.audit_row('address_id');";

fn server_major(c: &mut postgres::Client) -> i32 {
    c.query_one(
        "SELECT current_setting('server_version_num')::int / 10000",
        &[],
    )
    .unwrap()
    .get(0)
}

/// Whether the test's role may keep the user's triggers out of the backfill: the superuser
/// may; the least-privileged role is granted `SET ON PARAMETER` where PostgreSQL has it (15+).
fn let_role_silence(db: &TestDb) -> bool {
    match db.access() {
        Access::Superuser => true,
        Access::Least => {
            if server_major(&mut db.connect()) < 15 {
                return false;
            }
            db.execute_as_superuser(&format!(
                "GRANT SET ON PARAMETER session_replication_role TO {}",
                tandem_model::quote_ident(db.user())
            ));
            true
        }
    }
}

/// Each film and address with its `last_update` and (for films) search vector, as text.
fn stamps(c: &mut postgres::Client) -> Vec<(String, i32, String)> {
    c.query(
        "SELECT 'film', film_id, last_update::text || ' ' || fulltext::text FROM public.film
         UNION ALL SELECT 'address', address_id, last_update::text FROM public.address
         ORDER BY 1, 2",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// The audit's rows as (table, key, operation), in order.
fn audit(c: &mut postgres::Client) -> Vec<(String, i32, String)> {
    c.query("SELECT tbl, row_id, op FROM public.audit ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn options(env: &Env, workers: usize, stop: Option<u64>, accept: bool) -> EngineOptions {
    EngineOptions {
        backfill: BackfillOptions {
            batch_size: Some(150),
            workers,
            fixed_workers: true,
            stop_after_batches: stop,
            ..BackfillOptions::default()
        },
        backfill_fires_triggers: accept,
        ..env.options.clone()
    }
}

/// Starts `m` with `options(env, ...)`.
fn start_with(
    env: &mut Env,
    m: &Migration,
    workers: usize,
    stop: Option<u64>,
    accept: bool,
) -> Result<tandem_pg::engine::StartReport, Error> {
    let opts = options(env, workers, stop, accept);
    Engine::new(&mut env.client, opts).start(m, &tandem_pg::events::ignore)
}

/// Writes of the application: `UPDATE ... SET <col> = <col>` of each key, which changes nothing
/// but fires the table's triggers; returns them as the audit should record them.
fn write(
    c: &mut postgres::Client,
    table: &str,
    column: &str,
    ids: &[i32],
) -> Vec<(String, i32, String)> {
    let key = format!("{table}_id");
    for id in ids {
        exec(
            c,
            &format!("UPDATE {table} SET {column} = {column} WHERE {key} = {id}"),
        );
    }
    ids.iter()
        .map(|id| (table.to_string(), *id, "UPDATE".to_string()))
        .collect()
}

/// Start (interrupted after two batches, with old-version writes before it resumes) → writes of
/// both versions → rollback → start → writes → complete; at each step the rows nobody wrote
/// keep their `last_update` and search vector, and the audit holds exactly the writes.
fn lifecycle(workers: usize) {
    let Some(db) = TestDb::pagila() else { return };
    let silenced = let_role_silence(&db);
    exec(&mut db.connect(), AUDIT);
    let mut env = Env::on(db);
    let m = pagila_migration();
    let before = stamps(&mut env.db.connect());
    let mut written: Vec<(String, i32, String)> = Vec::new();
    let mut old = env.db.connect();

    // Without the role's privilege the start is refused (see the test below); the option
    // accepts the triggers' effect, which is then what this test sees.
    let accept = !silenced;
    let interrupted = start_with(&mut env, &m, workers, Some(2), accept);
    assert!(
        matches!(interrupted, Err(Error::BackfillInterrupted { .. })),
        "{interrupted:?}"
    );
    // The old version writes while the backfill is half-way: rows behind and ahead of it.
    written.extend(write(&mut old, "film", "rental_rate", &[1, 2, 990]));
    written.extend(write(&mut old, "address", "phone", &[3, 600]));
    let report =
        start_with(&mut env, &m, workers, None, accept).unwrap_or_else(|e| panic!("start: {e}"));
    let mut new = env.version(&report.version_schema);
    written.extend(write(&mut new, "film", "rental_rate", &[10, 11]));
    written.extend(write(&mut new, "address", "phone", &[12]));
    written.extend(write(&mut old, "film", "rental_rate", &[20]));
    assert_eq!(
        count(
            &mut new,
            "SELECT count(*) FROM film WHERE title_upper = upper(title)"
        ),
        1000,
        "the new column is filled"
    );

    let check = |c: &mut postgres::Client, written: &[(String, i32, String)], step: &str| {
        let after = stamps(c);
        assert_eq!(after.len(), before.len());
        for (was, now) in before.iter().zip(&after) {
            let wrote = written.iter().any(|(t, id, _)| *t == was.0 && *id == was.1);
            if wrote || !silenced {
                assert_ne!(
                    was, now,
                    "{step}: {} {} was written, so stamped",
                    was.0, was.1
                );
            } else {
                assert_eq!(
                    was, now,
                    "{step}: {} {} was written by nobody",
                    was.0, was.1
                );
            }
        }
        let audited = audit(c);
        if silenced {
            assert_eq!(
                audited, written,
                "{step}: the audit holds the application's writes"
            );
        } else {
            // Accepted: the backfill's writes were audited too, so every row was audited (a
            // row the application wrote before the backfill reached it was skipped by it).
            for (table, id, _) in &before {
                assert!(
                    audited.iter().any(|(t, i, _)| t == table && i == id),
                    "{step}: {table} {id} was audited"
                );
            }
        }
    };
    check(&mut old, &written, "after start");

    env.options = options(&env, workers, None, accept);
    env.rollback();
    check(&mut old, &written, "after rollback");

    let report = env.start(&m).unwrap_or_else(|e| panic!("start again: {e}"));
    let mut new = env.version(&report.version_schema);
    written.extend(write(&mut new, "address", "phone", &[40]));
    written.extend(write(&mut old, "film", "rental_rate", &[41]));
    env.complete();
    written.extend(write(&mut new, "film", "rental_rate", &[42]));
    check(&mut old, &written, "after complete");
}

#[test]
fn the_backfill_leaves_last_update_and_the_audit_to_the_application() {
    lifecycle(1);
}

#[test]
fn the_parallel_backfill_leaves_last_update_and_the_audit_to_the_application() {
    lifecycle(2);
}

/// As a role that may not set `session_replication_role` (the least-privileged role before any
/// grant; as the superuser, a trigger enabled ALWAYS fires even so), start is refused before it
/// changes anything, naming the triggers and the option; with the option it proceeds; on 15+ a
/// grant of `SET ON PARAMETER` lets it proceed without.
#[test]
fn start_refuses_before_any_change_naming_the_triggers() {
    let Some(db) = TestDb::pagila() else { return };
    exec(&mut db.connect(), AUDIT);
    let expected: Vec<String> = match db.access() {
        Access::Superuser => {
            exec(
                &mut db.connect(),
                "ALTER TABLE public.address ENABLE ALWAYS TRIGGER audit",
            );
            vec!["address.audit (AFTER INSERT OR UPDATE, each row, ENABLE ALWAYS)".into()]
        }
        Access::Least => vec![
            "address.audit (AFTER INSERT OR UPDATE, each row)".into(),
            "address.last_updated (BEFORE UPDATE, each row)".into(),
            "film.audit (AFTER INSERT OR UPDATE, each row)".into(),
            "film.film_fulltext_trigger (BEFORE INSERT OR UPDATE, each row)".into(),
            "film.last_updated (BEFORE UPDATE, each row)".into(),
        ],
    };
    let mut env = Env::on(db);
    let m = pagila_migration();
    let catalog = env.db.describe_catalog();
    let before = stamps(&mut env.db.connect());
    let refused = start_with(&mut env, &m, 1, None, false);
    match &refused {
        Err(
            e @ Error::BackfillFiresTriggers {
                triggers, replica, ..
            },
        ) => {
            assert_eq!(triggers, &expected);
            assert_eq!(*replica, env.db.access() == Access::Superuser);
            let message = e.to_string();
            assert!(
                message.contains("--backfill-fires-triggers")
                    && message.contains("film.last_updated") == (env.db.access() == Access::Least)
                    && message.contains("Nothing was changed"),
                "{message}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        env.db.describe_catalog(),
        catalog,
        "the catalog is unchanged"
    );
    let status = env.status();
    assert!(
        status.active.is_none() && status.history.is_empty(),
        "{status:?}"
    );
    assert_eq!(
        count(&mut env.db.connect(), "SELECT count(*) FROM public.audit"),
        0
    );

    if env.db.access() == Access::Least && let_role_silence(&env.db) {
        // Granted: the same start proceeds without the option, and fires nothing.
        start_with(&mut env, &m, 1, None, false)
            .unwrap_or_else(|e| panic!("start after the grant: {e}"));
        assert_eq!(stamps(&mut env.db.connect()), before);
        assert_eq!(
            count(&mut env.db.connect(), "SELECT count(*) FROM public.audit"),
            0
        );
    } else {
        // Accepted: it proceeds, and the triggers fire for the backfilled rows.
        start_with(&mut env, &m, 1, None, true)
            .unwrap_or_else(|e| panic!("start with the option: {e}"));
        assert!(count(&mut env.db.connect(), "SELECT count(*) FROM public.audit") > 0);
    }
    assert!(env.status().active.is_some());
}

/// Which triggers and rules a batch would fire: row triggers of the table and of every
/// partition (a clone listed once, under its parent), statement triggers of the table itself,
/// rules; not `UPDATE OF` triggers, foreign keys, disabled triggers or other events. In replica
/// mode, only those enabled ALWAYS or REPLICA.
#[test]
fn the_triggers_a_batch_would_fire() {
    let env = Env::new();
    let mut c = env.db.connect();
    exec(
        &mut c,
        "CREATE TABLE public.parent_keys (id int PRIMARY KEY);
         CREATE TABLE public.events (id int NOT NULL, at date NOT NULL, ref int REFERENCES public.parent_keys,
                                     note text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE TABLE public.events_2025 PARTITION OF public.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         CREATE FUNCTION public.nothing() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
         CREATE TRIGGER on_parent BEFORE UPDATE ON public.events FOR EACH ROW EXECUTE FUNCTION public.nothing();
         CREATE TRIGGER on_partition AFTER UPDATE ON public.events_2025 FOR EACH ROW EXECUTE FUNCTION public.nothing();
         CREATE TRIGGER per_statement AFTER UPDATE ON public.events FOR EACH STATEMENT EXECUTE FUNCTION public.nothing();
         CREATE TRIGGER partition_statement AFTER UPDATE ON public.events_2024 FOR EACH STATEMENT EXECUTE FUNCTION public.nothing();
         CREATE TRIGGER of_note BEFORE UPDATE OF note ON public.events FOR EACH ROW EXECUTE FUNCTION public.nothing();
         CREATE TRIGGER on_insert BEFORE INSERT ON public.events FOR EACH ROW EXECUTE FUNCTION public.nothing();
         CREATE TRIGGER always AFTER UPDATE ON public.events_2024 FOR EACH ROW EXECUTE FUNCTION public.nothing();
         ALTER TABLE public.events_2024 ENABLE ALWAYS TRIGGER always;
         CREATE TRIGGER switched_off AFTER UPDATE ON public.events_2024 FOR EACH ROW EXECUTE FUNCTION public.nothing();
         ALTER TABLE public.events_2024 DISABLE TRIGGER switched_off;
         CREATE TABLE public.plain (id int PRIMARY KEY, note text);
         CREATE TABLE public.plain_log (id int);
         CREATE RULE log_update AS ON UPDATE TO public.plain DO ALSO INSERT INTO public.plain_log VALUES (NEW.id);",
    );
    let names = |mode| -> Vec<String> {
        firing(&mut env.db.connect(), "public", &["events", "plain"], mode)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(
        names(TriggerMode::Origin),
        [
            "events.on_parent (BEFORE UPDATE, each row)",
            "events.per_statement (AFTER UPDATE, once per batch)",
            "events_2024.always (AFTER UPDATE, each row, ENABLE ALWAYS)",
            "events_2025.on_partition (AFTER UPDATE, each row)",
            "plain.log_update (rule ON UPDATE)",
        ]
    );
    assert_eq!(
        names(TriggerMode::Replica),
        ["events_2024.always (AFTER UPDATE, each row, ENABLE ALWAYS)"]
    );
}
