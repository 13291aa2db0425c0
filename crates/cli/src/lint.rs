//! `tandem lint`: reads the files and the configuration, hands them to `tandem-lint`, prints the
//! rendered report and turns error-level findings into exit code 1.

use crate::cli::{LintArgs, LintFormat};
use crate::exit;
use crate::run::ExitWith;
use anyhow::{Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};
use tandem_lint::migration::lint_migration;
use tandem_lint::render::{self, FileReport};
use tandem_lint::{lint_sql, Config, Level};
use tandem_model::migration::Format;

const DEFAULT_CONFIG: &str = "tandem.toml";

fn load_config(args: &LintArgs) -> Result<Config> {
    let mut config = config(args.config.as_deref())?;
    if let Some(v) = args.pg_version {
        config.pg_version = v;
    }
    config.single_transaction |= args.single_transaction;
    Ok(config)
}

/// The paths given, with each directory replaced by its SQL and migration files in name order.
fn expand_dirs(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if !path.is_dir() {
            out.push(path.clone());
            continue;
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("{}: cannot read directory", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "sql") || Format::from_path(p).is_some())
            .collect();
        found.sort();
        out.extend(found);
    }
    Ok(out)
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

pub fn run(args: LintArgs, json: bool) -> Result<()> {
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
    let mut files = Vec::new();
    for path in &expand_dirs(&args.files)? {
        let name = path.display().to_string();
        if name != "-" && config.excludes_path(&name) {
            continue;
        }
        let text = if name == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading standard input")?;
            s
        } else {
            std::fs::read_to_string(path).with_context(|| format!("{name}: cannot read"))?
        };
        let findings = match Format::from_path(path) {
            Some(format) => lint_migration(&name, &text, format, &config)?,
            None => lint_sql(if name == "-" { "<stdin>" } else { &name }, &text, &config)?,
        };
        files.push((
            if name == "-" {
                "<stdin>".to_string()
            } else {
                name
            },
            findings,
        ));
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
