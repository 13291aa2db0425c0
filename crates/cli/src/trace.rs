//! `tandem trace`: splits the file with the linter's parser, runs it through `tandem_pg::trace`
//! on a throwaway cluster (or, with a database URL, in a transaction that is rolled back), and
//! prints each statement's locks, rewrites and lint findings, each confirmed or not by what the
//! trace saw.

use crate::cli::{TraceArgs, TraceFormat};
use crate::exit;
use crate::lint::{config, read_input};
use crate::run::ExitWith;
use anyhow::{bail, Context, Result};
use serde_json::json;

use tandem_cluster::{Cluster, ClusterOptions};
use tandem_lint::model::StmtKind;
use tandem_lint::{lint_sql, Finding};
use tandem_pg::trace::{trace, StatementRole, StatementTrace, TraceInput, TraceMode};
use tandem_pg::ConnectOptions;

const DATABASE: &str = "tandem_trace";

/// Splits SQL into the statements to trace, with their line and transaction role.
fn inputs(file: &str, sql: &str) -> Result<Vec<TraceInput>> {
    let parsed = tandem_lint::parse::parse(sql).map_err(|e| {
        let line = sql[..e.offset].matches('\n').count() + 1;
        anyhow::Error::from(tandem_lint::LintError::Syntax {
            file: file.to_string(),
            line,
            column: e.offset - sql[..e.offset].rfind('\n').map_or(0, |i| i + 1) + 1,
            message: e.message,
        })
    })?;
    Ok(parsed
        .statements
        .iter()
        .map(|s| TraceInput {
            line: sql[..s.span.start].matches('\n').count() + 1,
            sql: sql[s.span.start..s.span.end].to_string(),
            role: role(&s.kind),
        })
        .collect())
}

fn role(kind: &StmtKind) -> StatementRole {
    match kind {
        StmtKind::Begin => StatementRole::Begin,
        StmtKind::Commit => StatementRole::Commit,
        StmtKind::Rollback => StatementRole::Rollback,
        k if k.runs_outside_transaction() => StatementRole::OutsideTransaction,
        _ => StatementRole::Ordinary,
    }
}

/// Runs SQL that prepares the throwaway database, statement by statement, outside the trace.
fn run_setup(client: &mut postgres::Client, file: &str, sql: &str) -> Result<()> {
    for s in inputs(file, sql)? {
        client.batch_execute(&s.sql).map_err(|e| {
            anyhow::anyhow!("{file}:{}: {}", s.line, tandem_pg::error::describe(&e))
        })?;
    }
    Ok(())
}

/// Runs one of the cluster's client programs, or another installed one when the cluster's build
/// has none (server-only builds such as scripts/fetch-pg.sh installs), and fails with its stderr.
fn run_tool(cluster: &Cluster, program: &str, args: &[&std::ffi::OsStr]) -> Result<Vec<u8>> {
    let path = tandem_cluster::client_program(program, Some(cluster.bin_dir()))
        .unwrap_or_else(|| program.into());
    let out = std::process::Command::new(&path)
        .args(args)
        .output()
        .with_context(|| {
            format!(
                "cannot run {program} (looked in {}, /usr/lib/postgresql and on PATH); --schema-from needs pg_dump and psql: install PostgreSQL's client programs",
                cluster.bin_dir().display()
            )
        })?;
    if !out.status.success() {
        bail!(
            "{program} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// Loads `pg_dump --schema-only` of `url` into the cluster's trace database with psql.
fn load_schema(cluster: &Cluster, url: &str) -> Result<()> {
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    let dump = run_tool(
        cluster,
        "pg_dump",
        &[
            os("--schema-only"),
            os("--no-owner"),
            os("--no-privileges"),
            os("--dbname"),
            url.as_ref(),
        ],
    )?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("schema.sql");
    std::fs::write(&path, dump)?;
    let target = cluster.url(DATABASE);
    run_tool(
        cluster,
        "psql",
        &[
            os("-X"),
            os("-q"),
            os("-v"),
            os("ON_ERROR_STOP=1"),
            os("--dbname"),
            target.as_ref(),
            os("-f"),
            path.as_os_str(),
        ],
    )?;
    Ok(())
}

pub fn run(args: TraceArgs, live: Option<ConnectOptions>, json: bool) -> Result<()> {
    let (name, sql) = read_input(&args.file)?;
    let statements = inputs(&name, &sql)?;
    let setup = args.setup.as_deref().map(read_input).transpose()?;
    let mut lint_config = config(None)?;
    let (traces, where_) = match live {
        Some(options) => {
            if args.setup.is_some() || args.schema_from.is_some() {
                bail!("--setup and --schema-from prepare a throwaway cluster; they cannot be used with a database URL (add --throwaway)");
            }
            let mut target = tandem_pg::connect(&options)?;
            let mut observer = tandem_pg::connect(&options)?;
            lint_config.pg_version = tandem_pg::introspect::server_major(&mut target)?;
            let traces = trace(
                &mut target,
                &mut observer,
                &statements,
                TraceMode::RollbackAll,
            )?;
            (
                traces,
                "the database, in a transaction that was rolled back".to_string(),
            )
        }
        None => {
            let cluster = Cluster::start(ClusterOptions {
                bin_dir: args.pg_bin.clone(),
                ..ClusterOptions::default()
            })?;
            cluster.create_database(DATABASE)?;
            if let Some(url) = &args.schema_from {
                load_schema(&cluster, url)?;
            }
            let mut target = cluster.connect(DATABASE)?;
            if let Some((file, text)) = &setup {
                run_setup(&mut target, file, text)?;
            }
            let mut observer = cluster.connect(DATABASE)?;
            lint_config.pg_version = cluster.major_version();
            let traces = trace(&mut target, &mut observer, &statements, TraceMode::Commit)?;
            (
                traces,
                format!("a throwaway PostgreSQL {} cluster", cluster.major_version()),
            )
        }
    };
    let findings = lint_sql(&name, &sql, &lint_config)?;
    let format = if json { TraceFormat::Json } else { args.format };
    print!(
        "{}",
        match format {
            TraceFormat::Human => human(&name, &where_, &traces, &findings),
            TraceFormat::Json => json_report(&name, &where_, &traces, &findings),
            TraceFormat::Markdown => markdown(&name, &where_, &traces, &findings),
        }
    );
    if traces.iter().any(|t| t.error.is_some()) {
        return Err(ExitWith(exit::FAILURE).into());
    }
    Ok(())
}

/// What the trace says about a lint finding on the same statement.
fn verdict(f: &Finding, t: &StatementTrace) -> &'static str {
    if t.skipped.is_some() || t.error.is_some() {
        return "not checked: the statement did not run";
    }
    if f.rule.id == tandem_lint::rules::statements_after_access_exclusive::RULE.id {
        return if t.already_held.is_empty() {
            "refuted: the transaction held no lock that blocks the application"
        } else {
            "confirmed: the transaction already held a lock that blocks the application"
        };
    }
    if !t.rewrites.is_empty() {
        "confirmed: the statement rewrote a relation"
    } else if t.locks.iter().any(|l| !l.blocks.is_empty()) {
        "confirmed: the statement took a lock that blocks the application"
    } else {
        "refuted: the statement took no lock that blocks the application and rewrote nothing"
    }
}

fn findings_for<'a>(t: &StatementTrace, findings: &'a [Finding]) -> Vec<&'a Finding> {
    findings.iter().filter(|f| f.line == t.line).collect()
}

fn first_line(sql: &str) -> String {
    let line = sql.lines().next().unwrap_or_default();
    if sql.lines().nth(1).is_some() {
        format!("{line} ...")
    } else {
        line.to_string()
    }
}

fn human(file: &str, where_: &str, traces: &[StatementTrace], findings: &[Finding]) -> String {
    let mut out = format!("traced {file} on {where_}\n\n");
    for t in traces {
        out.push_str(&format!("{file}:{}  {}\n", t.line, first_line(&t.sql)));
        if let Some(why) = &t.skipped {
            out.push_str(&format!("    skipped: {why}\n\n"));
            continue;
        }
        if let Some(e) = &t.error {
            out.push_str(&format!("    failed: {e}\n"));
        }
        for l in &t.locks {
            let what = match (&l.relation, &l.relkind) {
                (Some(r), Some(k)) => format!("{r} ({k})"),
                _ => l.locktype.clone(),
            };
            let blocks = if l.blocks.is_empty() {
                "blocks no reads or writes".to_string()
            } else {
                format!("blocks {}", l.blocks.join(", "))
            };
            out.push_str(&format!("    {:<26} {what}: {blocks}\n", l.mode));
        }
        for r in &t.rewrites {
            out.push_str(&format!(
                "    rewrote {} ({}): relfilenode {} -> {}\n",
                r.relation, r.relkind, r.relfilenode_before, r.relfilenode_after
            ));
        }
        out.push_str(&format!("    ran {:.1} ms", t.duration_ms));
        if let Some(held) = t.held_ms {
            out.push_str(&format!(", locks held {held:.1} ms"));
        }
        out.push('\n');
        for f in findings_for(t, findings) {
            out.push_str(&format!(
                "    lint {} {}: {} ({})\n",
                f.rule.id,
                f.rule.name,
                f.message,
                verdict(f, t)
            ));
        }
        out.push('\n');
    }
    out
}

fn json_report(
    file: &str,
    where_: &str,
    traces: &[StatementTrace],
    findings: &[Finding],
) -> String {
    let statements: Vec<_> = traces
        .iter()
        .map(|t| {
            let mut v = serde_json::to_value(t).unwrap_or_default();
            v["lint"] = findings_for(t, findings)
                .iter()
                .map(|f| json!({"id": f.rule.id, "name": f.rule.name, "level": f.level, "message": f.message, "trace": verdict(f, t)}))
                .collect();
            v
        })
        .collect();
    let doc = json!({
        "ok": traces.iter().all(|t| t.error.is_none()),
        "file": file,
        "ran_on": where_,
        "statements": statements,
    });
    format!(
        "{}\n",
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    )
}

fn markdown(file: &str, where_: &str, traces: &[StatementTrace], findings: &[Finding]) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = format!(
        "## tandem trace: `{file}`\n\nRan on {where_}.\n\n| line | statement | locks taken | blocks | rewritten | held | lint |\n|---|---|---|---|---|---|---|\n"
    );
    for t in traces {
        let locks: Vec<String> = t
            .locks
            .iter()
            .map(|l| {
                format!(
                    "{} on {}",
                    l.mode,
                    l.relation.as_deref().unwrap_or(&l.locktype)
                )
            })
            .collect();
        let mut blocks: Vec<&str> = t
            .locks
            .iter()
            .flat_map(|l| l.blocks.iter().copied())
            .collect();
        blocks.sort_unstable();
        blocks.dedup();
        let rewrites: Vec<&str> = t.rewrites.iter().map(|r| r.relation.as_str()).collect();
        let lint: Vec<String> = findings_for(t, findings)
            .iter()
            .map(|f| {
                format!(
                    "{} {} ({})",
                    f.rule.id,
                    f.rule.name,
                    verdict(f, t).split(':').next().unwrap_or_default()
                )
            })
            .collect();
        let status = match (&t.skipped, &t.error) {
            (Some(why), _) => format!("skipped: {why}"),
            (_, Some(e)) => format!("failed: {e}"),
            _ => locks.join("<br>"),
        };
        out.push_str(&format!(
            "| {} | `{}` | {} | {} | {} | {} | {} |\n",
            t.line,
            cell(&first_line(&t.sql)),
            cell(&status),
            blocks.join(", "),
            rewrites.join(", "),
            t.held_ms.map(|h| format!("{h:.1} ms")).unwrap_or_default(),
            cell(&lint.join("<br>"))
        ));
    }
    out
}
