//! `tandem lint`: reads the files and the configuration, lists directories in migration order,
//! hands the files to one `tandem_lint::Run` (so each file sees the schema the earlier ones
//! left, starting from `--schema-from`), prints the rendered report and turns error-level
//! findings into exit code 1.

use crate::cli::{LintArgs, LintFormat, LintNewTables};
use crate::exit;
use crate::run::ExitWith;
use anyhow::{Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};
use tandem_lint::context::NewTables;
use tandem_lint::migration::lint_migration;
use tandem_lint::render::{self, FileReport};
use tandem_lint::runner::{self, Runner};
use tandem_lint::{Config, Level, Run, SqlFile};
use tandem_model::migration::Format;

const DEFAULT_CONFIG: &str = "tandem.toml";

fn load_config(args: &LintArgs) -> Result<Config> {
    let mut config = config(args.config.as_deref())?;
    if let Some(v) = args.pg_version {
        config.pg_version = v;
    }
    config.single_transaction |= args.single_transaction;
    if let Some(name) = &args.runner {
        let runner = Runner::from_name(name).ok_or_else(|| {
            let names: Vec<_> = Runner::ALL.iter().map(|r| r.name()).collect();
            anyhow::anyhow!(
                "--runner: no runner is called {name:?}; one of: {}",
                names.join(", ")
            )
        })?;
        config.runner = Some(runner);
    }
    if let Some(v) = args.new_tables {
        config.new_tables = match v {
            LintNewTables::File => NewTables::File,
            LintNewTables::Run => NewTables::Run,
        };
    }
    Ok(config)
}

/// The paths given, with each directory replaced by its migrations in the order their runner
/// applies them: its SQL and migration files, and the `migration.sql` of each subdirectory
/// (Prisma's layout); down migrations are left out.
fn expand_dirs(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if !path.is_dir() {
            out.push(path.clone());
            continue;
        }
        let mut found = Vec::new();
        for entry in std::fs::read_dir(path)
            .with_context(|| format!("{}: cannot read directory", path.display()))?
        {
            let p = entry?.path();
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if p.is_dir() {
                if p.join("migration.sql").is_file() {
                    found.push(format!("{name}/migration.sql"));
                }
            } else if p.extension().is_some_and(|e| e == "sql") || Format::from_path(&p).is_some() {
                found.push(name);
            }
        }
        out.extend(
            runner::migration_files(found)
                .into_iter()
                .map(|relative| path.join(relative)),
        );
    }
    Ok(out)
}

/// The schema a run starts from: the database's `schema` when `from` is a connection URL (read
/// as `validate` reads it, nothing changed, with the planner's row estimates), else a
/// `pg_dump --schema-only` file (which has no rows to estimate).
fn starting_schema(
    from: &Path,
    schema: &str,
) -> Result<(
    tandem_model::Schema,
    std::collections::BTreeMap<String, i64>,
)> {
    let text = from.to_string_lossy();
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        let mut client = tandem_pg::connect(&tandem_pg::ConnectOptions {
            url: Some(text.into_owned()),
            application_name: Some("tandem lint".into()),
            ..tandem_pg::ConnectOptions::default()
        })?;
        let tables = tandem_pg::introspect::read_schema(&mut client, schema)?;
        let rows = tandem_pg::introspect::row_estimates(&mut client, schema)?;
        return Ok((tables, rows));
    }
    Ok((
        crate::run::schema_from_dump(schema, from)?,
        Default::default(),
    ))
}

/// The name to show for `path` and its text; `-` is standard input, shown as `<stdin>`.
pub fn read_input(path: &Path) -> Result<(String, String)> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        return Ok(("<stdin>".to_string(), s));
    }
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("{name}: cannot read"))?;
    Ok((name, text))
}

/// The linter's configuration: `--config`, else `tandem.toml` in the current directory.
pub fn config(path: Option<&Path>) -> Result<Config> {
    let path = match path {
        Some(p) => Some(p.to_path_buf()),
        None => Some(Path::new(DEFAULT_CONFIG).to_path_buf()).filter(|p| p.exists()),
    };
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("{}: cannot read", p.display()))?;
            Ok(Config::from_toml(&text, &p.display().to_string())?)
        }
        None => Ok(Config::default()),
    }
}

/// Lints what `args` names; `schema` is the schema of the application's tables, which
/// `--schema-from` reads.
pub fn run(args: LintArgs, json: bool, schema: &str) -> Result<()> {
    if let Some(name) = &args.explain {
        let page = match tandem_lint::Rule::lookup(name) {
            Some(rule) => tandem_lint::docs::rule_page(rule),
            None if name == "all" => tandem_lint::docs::index(),
            None => {
                anyhow::bail!("no rule is called {name:?}; `tandem lint --explain all` lists them")
            }
        };
        // Markdown for the docs; plain text for a terminal.
        print!("{}", render::terminal(&page));
        return Ok(());
    }
    let config = load_config(&args)?;
    let start = match &args.schema_from {
        Some(from) => Some(starting_schema(from, schema)?),
        None => None,
    };
    let mut run = match &start {
        Some((schema, rows)) => Run::from_schema(&config, schema).with_row_estimates(rows.clone()),
        None => Run::new(&config),
    };
    let mut files = Vec::new();
    for path in &expand_dirs(&args.files)? {
        let name = path.display().to_string();
        if name != "-" && config.excludes_path(&name) {
            continue;
        }
        let (shown, text) = read_input(path)?;
        let findings = match Format::from_path(path) {
            Some(format) => lint_migration(&name, &text, format, &config)?,
            None => {
                // Flyway reads a script's configuration from `<script>.conf` beside it.
                let conf = std::fs::read_to_string(format!("{name}.conf")).ok();
                run.lint_sql(SqlFile {
                    name: &shown,
                    text: &text,
                    script_config: conf.as_deref(),
                })?
            }
        };
        files.push((shown, findings));
    }
    let reports: Vec<FileReport> = files
        .iter()
        .map(|(file, findings)| FileReport { file, findings })
        .collect();
    let format = if json { LintFormat::Json } else { args.format };
    let out = match format {
        LintFormat::Human => render::human(&reports),
        LintFormat::Compact => render::compact(&reports),
        LintFormat::Json => render::json(&reports),
        LintFormat::Github => render::github(&reports),
        LintFormat::Sarif => render::sarif(&reports),
    };
    print!("{out}");
    if !out.is_empty() && !out.ends_with('\n') {
        println!();
    }
    let failed = files
        .iter()
        .flat_map(|(_, f)| f)
        .any(|f| f.level == Level::Error);
    if failed {
        return Err(ExitWith(exit::FAILURE).into());
    }
    Ok(())
}
