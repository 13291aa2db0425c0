//! Runs a parsed command: converts flags into library options, calls the library, renders.

use crate::cli::{
    Args, BackfillArgs, BenchScenario, CheckArgs, Command, ConvertFormat, EvidenceArgs, Global,
    LatestWhat,
};
use crate::{exit, render};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use tandem_model::{Migration, Schema};
use tandem_pg::backfill::BackfillOptions;
use tandem_pg::evidence::EvidenceOptions;
use tandem_pg::preflight::PreflightOptions;
use tandem_pg::{ConnectOptions, Engine, EngineOptions, LockTimeout, LongStatementTimeout};

pub fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(ExitWith(code)) = err.downcast_ref::<ExitWith>() {
        return *code;
    }
    if err.downcast_ref::<crate::usage::UsageError>().is_some() {
        return exit::USAGE;
    }
    if let Some(code) = crate::unix::stopped_exit_code(err) {
        return code;
    }
    if err.downcast_ref::<tandem_lint::LintError>().is_some() {
        return exit::INVALID;
    }
    if let Some(e) = err.downcast_ref::<tandem_pg::Error>() {
        return match e {
            tandem_pg::Error::Locked { .. } => exit::LOCKED,
            tandem_pg::Error::Validation(_)
            | tandem_pg::Error::Load(_)
            | tandem_pg::Error::Plan(_)
            | tandem_pg::Error::UpFailsOnRow(_)
            | tandem_pg::Error::BackfillFiresTriggers { .. } => exit::INVALID,
            tandem_pg::Error::FileChanged { .. } | tandem_pg::Error::AppliedFileEdited { .. } => {
                exit::FILE_CHANGED
            }
            tandem_pg::Error::StillBackfilling { .. } => exit::STILL_BACKFILLING,
            tandem_pg::Error::HistoryMismatch { .. } => exit::HISTORY_MISMATCH,
            tandem_pg::Error::WrongStatus { .. }
            | tandem_pg::Error::ActiveMigration { .. }
            | tandem_pg::Error::NoActiveMigration { .. }
            | tandem_pg::Error::AlreadyApplied { .. } => exit::WRONG_STATUS,
            _ => exit::FAILURE,
        };
    }
    if err
        .downcast_ref::<tandem_model::ValidationError>()
        .is_some()
        || err.downcast_ref::<tandem_model::LoadError>().is_some()
    {
        return exit::INVALID;
    }
    exit::FAILURE
}

/// Ends the run with this exit code; whatever there was to say has been printed.
#[derive(Debug)]
pub struct ExitWith(pub u8);

impl std::fmt::Display for ExitWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {}", self.0)
    }
}

impl std::error::Error for ExitWith {}

pub fn connect_options(g: &Global) -> ConnectOptions {
    ConnectOptions {
        url: g.database_url.clone(),
        lock_timeout: LockTimeout(g.lock_timeout),
        role: g.role.clone(),
        application_name: Some("tandem".into()),
    }
}

pub(crate) fn engine_options(g: &Global, backfill: Option<&BackfillArgs>) -> EngineOptions {
    EngineOptions {
        schema: g.schema.clone(),
        state_schema: g.state_schema.clone(),
        long_statement_timeout: LongStatementTimeout(g.long_statement_timeout),
        backfill: backfill.map_or_else(BackfillOptions::default, backfill_options),
        type_changes_in_place: backfill.is_some_and(|b| b.type_changes_in_place),
        backfill_fires_triggers: backfill.is_some_and(|b| b.backfill_fires_triggers),
        connect: Some(connect_options(g)),
        ..EngineOptions::default()
    }
}

fn evidence_options(e: &EvidenceArgs) -> EvidenceOptions {
    EvidenceOptions {
        sample: e.sample,
        min_age: e.min_age.unwrap_or_default(),
        force: e.force,
    }
}

fn backfill_options(b: &BackfillArgs) -> BackfillOptions {
    BackfillOptions {
        batch_size: b.backfill_batch_size,
        target: b.backfill_target,
        delay: b.backfill_batch_delay.unwrap_or_default(),
        max_replication_lag: b.max_replication_lag,
        max_slot_wal_bytes: b.max_slot_wal,
        workers: b.backfill_workers.into(),
        fixed_workers: b.fixed_backfill_workers,
        ..BackfillOptions::default()
    }
}

/// Migration files of a directory, in name order.
pub fn migration_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot read directory", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| tandem_model::migration::Format::from_path(p).is_some())
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: no migration files (.json, .yaml, .yml)", dir.display());
    }
    Ok(files)
}

pub(crate) fn load_all(paths: &[PathBuf]) -> Result<Vec<Migration>> {
    paths.iter().map(|p| load(p)).collect()
}

/// A migration file, read and with every SQL fragment parsed by PostgreSQL's grammar
/// (`tandem_lint::fragments`), so that a typo is refused before anything changes.
fn load(path: &Path) -> Result<Migration> {
    let migration = Migration::load(path)?;
    tandem_lint::fragments::check(&migration)?;
    Ok(migration)
}

pub fn run(args: Args) -> Result<()> {
    let g = args.global;
    let json = g.json;
    let on_event = move |e: &tandem_pg::Event| render::event(json, e);
    let connect = || tandem_pg::connect(&connect_options(&g)).map_err(anyhow::Error::from);
    match args.command {
        Command::Init => {
            let mut client = connect()?;
            let version = Engine::new(&mut client, engine_options(&g, None)).init()?;
            render::result(
                json,
                json!({"ok": true, "state_schema": g.state_schema, "state_version": version}),
                &format!(
                    "tandem state schema {:?} is ready (state version {version})",
                    g.state_schema
                ),
            );
        }
        Command::Start {
            file,
            complete,
            backfill,
            evidence,
        } => {
            crate::usage::start_file(&file)?;
            let migration = load(&file)?;
            let mut client = connect()?;
            let mut options = engine_options(&g, Some(&backfill));
            options.evidence = evidence_options(&evidence);
            options.backfill.stop = Some(crate::unix::stop_on_signals());
            let mut engine = Engine::new(&mut client, options);
            let started = engine.start(&migration, &on_event)?;
            let completed = if complete {
                Some(engine.complete(&on_event)?)
            } else {
                None
            };
            let human = match &completed {
                Some(_) => format!("migration {} started and completed; the latest version schema is {}", started.name, started.version_schema),
                None => format!(
                    "migration {} started: the new version uses search_path {}, the old version keeps its own; run `tandem complete` when the old version is gone, or `tandem rollback`",
                    started.name, Engine::search_path_for(&started.version_schema, &g.schema)
                ),
            };
            render::result(
                json,
                json!({"ok": true, "started": started, "completed": completed}),
                &human,
            );
        }
        Command::Complete { evidence } => {
            let mut client = connect()?;
            let mut options = engine_options(&g, None);
            options.evidence = evidence_options(&evidence);
            let report = Engine::new(&mut client, options).complete(&on_event)?;
            render::result(
                json,
                json!({"ok": true, "completed": report}),
                &format!("migration {} completed", report.name),
            );
        }
        Command::Rollback => {
            let mut client = connect()?;
            let report = Engine::new(&mut client, engine_options(&g, None)).rollback(&on_event)?;
            render::result(
                json,
                json!({"ok": true, "rolled_back": report}),
                &format!("migration {} rolled back", report.name),
            );
        }
        Command::Status { dir, sample } => {
            let mut client = connect()?;
            let status = Engine::new(&mut client, engine_options(&g, None))
                .status_sampled(sample.unwrap_or_default())?;
            let mut human = String::new();
            if !status.initialized {
                human.push_str(&format!("tandem is not initialized in this database (state schema {:?}); run `tandem init`", status.state_schema));
            } else {
                match &status.active {
                    Some(a) => human.push_str(&format!(
                        "active migration: {} ({}), version schema {}\n",
                        a.name, a.status, a.version_schema
                    )),
                    None => human.push_str("no active migration\n"),
                }
                human.push_str(&format!(
                    "schema {}: {} migration(s) in the history\n",
                    status.schema,
                    status.history.len()
                ));
                for h in &status.history {
                    // A baseline has no version schema: it is the schema as tandem found it.
                    let (state, version_schema) = if h.baseline {
                        ("baseline", status.schema.as_str())
                    } else {
                        (h.status.as_str(), h.version_schema.as_str())
                    };
                    human.push_str(&format!("  {:<40} {state:<10} {version_schema}\n", h.name));
                }
                human.push_str(&format!(
                    "version schemas present: {}",
                    if status.version_schemas.is_empty() {
                        "none".into()
                    } else {
                        status.version_schemas.join(", ")
                    }
                ));
                if let Some(e) = &status.evidence {
                    human.push_str(&crate::monitor_view::evidence(e));
                }
                if !status.grant_drift.is_empty() {
                    human.push_str(
                        "\nprivileges on tables changed after their version schemas' views were made; \
                         the views (and the application roles that use them) do not have them yet. \
                         Run, as the tables' owner:",
                    );
                    for statement in &status.grant_drift {
                        human.push_str(&format!("\n  {statement}"));
                    }
                }
                if let Some(a) = &status.advice {
                    human.push_str(&format!("\nnext: {a}"));
                }
            }
            let mut doc = serde_json::to_value(&status)?;
            if let Some(dir) = &dir {
                let (compared, text) = crate::workflow::directory(dir, &status.history)?;
                doc["directory"] = compared;
                human.push_str(&text);
            }
            render::result(json, doc, &human);
        }
        Command::Migrate {
            dir,
            complete,
            backfill,
            evidence,
        } => {
            let files = load_all(&migration_files(&dir)?)?;
            let mut client = connect()?;
            let mut options = engine_options(&g, Some(&backfill));
            options.evidence = evidence_options(&evidence);
            options.backfill.stop = Some(crate::unix::stop_on_signals());
            let report = Engine::new(&mut client, options).migrate(&files, complete, &on_event)?;
            let human = format!(
                "started {}, completed {}{}",
                report.started.len(),
                report.completed.len(),
                report
                    .active
                    .as_ref()
                    .map(|a| format!("; {a} is active"))
                    .unwrap_or_default()
            );
            render::result(json, json!({"ok": true, "migrate": report}), &human);
        }
        Command::Latest {
            what,
            local,
            client,
            pool,
        } => {
            let pool_flags =
                pool.pool.is_some() || pool.server_host.is_some() || pool.server_port.is_some();
            if pool_flags && !matches!(what, LatestWhat::Pgbouncer) {
                bail!("--pool, --server-host and --server-port apply to `latest pgbouncer` only");
            }
            if client.is_some() && !matches!(what, LatestWhat::Url) {
                bail!("--for applies to `latest url` only");
            }
            let (name, version_schema) = match local {
                Some(dir) => {
                    let files = load_all(&migration_files(&dir)?)?;
                    let last = files.last().expect("at least one file");
                    (
                        last.name.clone(),
                        Engine::version_schema_name(&g.schema, last),
                    )
                }
                None => {
                    let mut client = connect()?;
                    let status = Engine::new(&mut client, engine_options(&g, None)).status()?;
                    let latest = status
                        .latest
                        .context("no migration has been applied to this schema")?;
                    // A baseline's version is the schema itself.
                    let version_schema = if latest.baseline {
                        g.schema.clone()
                    } else {
                        latest.version_schema
                    };
                    (latest.name, version_schema)
                }
            };
            let mut notes = Vec::new();
            let out = match what {
                LatestWhat::Schema => version_schema.clone(),
                LatestWhat::Migration => name.clone(),
                LatestWhat::Url => {
                    let client = client.map_or(Default::default(), |c| c.client());
                    let url = latest_url(&g, &version_schema, client)?;
                    notes = url.notes;
                    url.url
                }
                LatestWhat::Pgbouncer => {
                    crate::pgbouncer::database_line(&g, &version_schema, &pool)?
                }
            };
            if !json {
                for note in &notes {
                    eprintln!("note: {note}");
                }
            }
            render::result(
                json,
                json!({"ok": true, "migration": name, "version_schema": version_schema, "value": out, "notes": notes}),
                &out,
            );
        }
        Command::Validate(args) => {
            let (live, planned) = plan_files(&g, &args)?;
            let checked: Vec<&str> = planned.iter().map(|p| p.name.as_str()).collect();
            render::result(
                json,
                json!({"ok": true, "validated": checked, "live": live}),
                &format!(
                    "{} migration(s) valid{}",
                    checked.len(),
                    match (live, &args.schema_from) {
                        (true, _) => " against the live schema".to_string(),
                        (false, Some(dump)) => format!(" against the schema of {}", dump.display()),
                        (false, None) => {
                            " (files only; set --database-url to check against a database)".into()
                        }
                    }
                ),
            );
        }
        Command::Plan(args) => {
            let (live, planned) = plan_files(&g, &args)?;
            let against = match (live, &args.schema_from) {
                (true, _) => "the live schema".to_string(),
                (false, Some(dump)) => format!(
                    "the schema of {} (offline, for PostgreSQL {})",
                    dump.display(),
                    args.pg_major
                ),
                (false, None) => format!(
                    "an empty schema (offline, for PostgreSQL {}; set --database-url to plan against a database)",
                    args.pg_major
                ),
            };
            let mut human = format!(
                "planned against {against}; nothing was changed\n\
                 each statement waits at most the lock timeout (--lock-timeout) for its locks, \
                 then steps back and retries, so none queues the application behind it for longer\n"
            );
            if !live {
                human.push_str(
                    "offline, PostgreSQL is not asked whether a default is volatile or a type \
                     change can be made in place, nor about existing rows, views and triggers: \
                     with a database the plan can differ\n",
                );
            }
            if planned.is_empty() {
                human.push_str("nothing to plan: every file is applied\n");
            }
            for p in &planned {
                human.push('\n');
                human.push_str(&tandem_plan::render::render(&p.file, &p.plan));
            }
            let docs: Vec<_> = planned
                .iter()
                .map(|p| json!({"file": p.file, "migration": p.name, "plan": p.plan}))
                .collect();
            render::result(
                json,
                json!({"ok": true, "live": live, "plans": docs}),
                human.trim_end(),
            );
        }
        Command::Create { name, dir, format } => {
            crate::workflow::create(&dir, &name, format.map(file_format), json)?
        }
        Command::Pull { dir, format } => {
            crate::workflow::pull(&g, &dir, file_format(format), json)?
        }
        Command::Baseline { name, dir, format } => {
            crate::workflow::baseline(&g, &name, dir.as_deref(), file_format(format), json)?
        }
        Command::Completions { shell } => crate::manual::completions(shell)?,
        Command::Man => crate::manual::man()?,
        Command::JsonSchema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&tandem_model::migration::json_schema())?
            );
        }
        Command::Lint(args) => crate::lint::run(args, json, &g.schema)?,
        Command::Convert(args) => crate::convert::run(args, json)?,
        Command::Trace(args) => {
            let live = (!args.throwaway && g.database_url.is_some()).then(|| connect_options(&g));
            crate::trace::run(args, live, json)?
        }
        Command::Monitor {
            once,
            interval,
            long_query,
            idle_in_transaction,
        } => {
            let options = tandem_pg::monitor::MonitorOptions {
                schema: g.schema.clone(),
                state_schema: g.state_schema.clone(),
                long_query,
                idle_in_transaction,
            };
            let mut client = connect()?;
            crate::monitor_view::run(&mut client, &options, once, interval, json)?;
        }
        Command::Demo {
            rows,
            pg_bin,
            chart,
        } => crate::demo::run(rows, pg_bin, chart, json)?,
        Command::Bench(args) => {
            let target = match &g.database_url {
                Some(_) if !args.throwaway => tandem_bench::Target::Database(connect_options(&g)),
                _ => tandem_bench::Target::Throwaway {
                    bin_dir: args.pg_bin.clone(),
                },
            };
            let scenarios = if args.scenarios.is_empty() {
                tandem_bench::Scenario::ALL.to_vec()
            } else {
                args.scenarios
                    .iter()
                    .map(|s| match s {
                        BenchScenario::Backfill => tandem_bench::Scenario::Backfill,
                        BenchScenario::Triggers => tandem_bench::Scenario::Triggers,
                        BenchScenario::Traffic => tandem_bench::Scenario::Traffic,
                        BenchScenario::Scaling => tandem_bench::Scenario::Scaling,
                        BenchScenario::Indexed => tandem_bench::Scenario::Indexed,
                    })
                    .collect()
            };
            let options = tandem_bench::BenchOptions {
                target,
                rows: args.rows.clone(),
                scenarios,
                repeat: args.repeat,
                backfill: backfill_options(&args.backfill),
                oltp_clients: args.oltp_clients,
                oltp_duration: args.oltp_time,
                built_in_oltp: args.built_in_oltp,
                traffic: tandem_bench::traffic::TrafficOptions {
                    clients: args.clients,
                    rate: args.rate,
                    hold: args.hold,
                    settle: std::time::Duration::from_secs(1),
                },
                chart: (!args.no_chart).then(|| args.chart.clone()),
            };
            crate::bench::run(&options, json)?
        }
    }
    Ok(())
}

fn file_format(f: ConvertFormat) -> tandem_model::migration::Format {
    match f {
        ConvertFormat::Yaml => tandem_model::migration::Format::Yaml,
        ConvertFormat::Json => tandem_model::migration::Format::Json,
    }
}

/// A migration file and its plan.
struct Planned {
    file: String,
    name: String,
    plan: tandem_plan::Plan,
}

/// The files `validate` and `plan` are given, each planned as start would plan it: against the
/// live schema (its pending files, each after the earlier ones replayed) when a database is
/// configured and `--offline` is not given, else against an empty schema or a dump's. Also
/// says whether it was live.
fn plan_files(g: &Global, args: &CheckArgs) -> Result<(bool, Vec<Planned>)> {
    let files = if args.path.is_dir() {
        migration_files(&args.path)?
    } else {
        vec![args.path.clone()]
    };
    let migrations = load_all(&files)?;
    let live = !args.offline
        && (g.database_url.is_some()
            || ["PGHOST", "PGDATABASE", "PGSERVICE"]
                .iter()
                .any(|v| std::env::var_os(v).is_some()));
    if live {
        return Ok((
            true,
            plan_live(g, &migrations, args.backfill_fires_triggers)?,
        ));
    }
    let (base, empty) = match &args.schema_from {
        Some(dump) => (schema_from_dump(&g.schema, dump)?, false),
        None => (Schema::new(&g.schema), true),
    };
    Ok((
        false,
        plan_offline(g, base, empty, &migrations, args.pg_major)?,
    ))
}

/// Plans each file against the schema the earlier ones leave, replayed in memory from `base`,
/// with no database to ask: defaults are taken as non-volatile and type changes as rewrites.
/// When `base` is the `empty` schema, a refusal of something missing says why it is missing.
fn plan_offline(
    g: &Global,
    base: Schema,
    empty: bool,
    migrations: &[Migration],
    pg_major: u32,
) -> Result<Vec<Planned>> {
    let mut schema = base;
    let mut planned = Vec::new();
    let facts = tandem_plan::Facts {
        pg_major,
        ..Default::default()
    };
    for m in migrations {
        let validated = tandem_model::validate(m, &schema).map_err(|mut e| {
            if empty && e.message.contains("does not exist") {
                e.message.push_str(
                    " (planned offline, against an empty schema: plan against the database with \
                     --database-url and without --offline, or against a `pg_dump --schema-only` \
                     file with --schema-from)",
                );
            }
            e
        })?;
        let version_schema = Engine::version_schema_name(&g.schema, m);
        let plan = tandem_plan::plan(&tandem_plan::PlanInput::new(
            &g.schema,
            &version_schema,
            &validated,
            &facts,
        ))
        .map_err(tandem_pg::Error::from)?;
        let next = validated.schema;
        planned.push(Planned {
            file: m.file.clone(),
            name: m.name.clone(),
            plan,
        });
        schema = next;
    }
    Ok(planned)
}

/// The tables, columns, constraints and indexes a `pg_dump --schema-only` file creates, read
/// as `tandem convert` reads SQL and replayed in memory. What no tandem operation describes
/// (functions, triggers, views, sequences, partitioned tables), and what stands on it, is left
/// out, so a file that relies on it is judged on the rest.
pub(crate) fn schema_from_dump(schema: &str, dump: &Path) -> Result<Schema> {
    let file = dump.display().to_string();
    let text =
        std::fs::read_to_string(dump).with_context(|| format!("reading the schema from {file}"))?;
    let conversion = tandem_lint::convert::convert(&file, &text)?;
    let mut replayed = Schema::new(schema);
    for converted in conversion.operations {
        if matches!(converted.operation, tandem_model::Operation::Sql(_)) {
            continue;
        }
        let one = Migration {
            name: "schema".into(),
            file: file.clone(),
            version_schema: None,
            operations: vec![converted.operation],
        };
        // An operation on something left out (an index on a materialized view) is left out too.
        if let Ok(v) = tandem_model::validate(&one, &replayed) {
            replayed = v.schema;
        }
    }
    Ok(replayed)
}

/// Plans the pending files on the live schema, each after the earlier ones replayed in memory,
/// through the preflight start runs before its first change.
fn plan_live(g: &Global, migrations: &[Migration], accept_triggers: bool) -> Result<Vec<Planned>> {
    let mut client = tandem_pg::connect(&connect_options(g))?;
    let history = match Engine::new(&mut client, engine_options(g, None)).status() {
        Ok(s) => s.history,
        Err(_) => Vec::new(),
    };
    // An applied file edited since is refused as `migrate` would refuse it (a history that
    // does not match is left to `migrate` and `status DIR` to explain).
    let compared = tandem_pg::history::compare(&history, migrations);
    if let Some(edited @ tandem_pg::Error::AppliedFileEdited { .. }) = compared.refusal() {
        return Err(edited.into());
    }
    let applied: Vec<String> = history.iter().map(|h| h.name.clone()).collect();
    let ours: Vec<String> = history.into_iter().map(|h| h.version_schema).collect();
    let mut schema = tandem_pg::introspect::read_schema(&mut client, &g.schema)?;
    let mut planned = Vec::new();
    for m in migrations.iter().filter(|m| !applied.contains(&m.name)) {
        let done = tandem_pg::preflight::preflight(
            &mut client,
            &g.schema,
            &Engine::version_schema_name(&g.schema, m),
            m,
            &schema,
            &ours,
            PreflightOptions {
                backfill_fires_triggers: accept_triggers,
                // Existing rows are the first pending file's to try: later files' `up` may
                // read columns that only the earlier files add.
                try_rows: planned.is_empty(),
                ..PreflightOptions::default()
            },
        )?;
        schema = tandem_model::validate(m, &schema)?.schema;
        planned.push(Planned {
            file: m.file.clone(),
            name: m.name.clone(),
            plan: done.plan,
        });
    }
    Ok(planned)
}

/// The connection URL with `options=-c search_path=...` selecting the version, built from the
/// settings tandem itself connects with (the URL or `key=value` string, a service, the PG*
/// variables), so it works however those were given. It holds a password only when the given
/// URL or string held one; one from PGPASSWORD, a service or the password file is left out.
fn latest_url(
    g: &Global,
    version_schema: &str,
    client: tandem_pg::connect::UrlClient,
) -> Result<tandem_pg::connect::ClientUrl> {
    let settings = tandem_pg::connect::Settings::resolve(g.database_url.as_deref())?;
    let search_path = Engine::search_path_for(version_schema, &g.schema);
    let options = tandem_pg::connect::search_path_option(&search_path);
    Ok(settings.url_for(Some(&options), client)?)
}
