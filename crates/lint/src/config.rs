//! Lint configuration: the `[lint]` table of `tandem.toml` (levels per rule, excluded rules and
//! paths, the PostgreSQL version) merged with command-line options. The caller reads the file;
//! this module only interprets its text.

use crate::context::NewTables;
use crate::rules::{Level, Rule, RULES};
use crate::runner::Runner;
use crate::{LintError, Options};
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    lint: LintSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LintSection {
    pg_version: Option<u32>,
    single_transaction: Option<bool>,
    runner: Option<String>,
    new_tables: Option<NewTables>,
    small_table_rows: Option<u64>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    exclude_paths: Vec<String>,
    #[serde(default)]
    levels: BTreeMap<String, Level>,
}

/// What to check and how seriously.
#[derive(Debug, Clone)]
pub struct Config {
    pub pg_version: u32,
    /// Files whose runner is not known run as one transaction (`psql -1`).
    pub single_transaction: bool,
    /// The runner of every file, instead of the one each file's annotations or name show.
    pub runner: Option<Runner>,
    /// How long a table created by a file of the run counts as new.
    pub new_tables: NewTables,
    /// A table with at most this many rows (by the planner's estimate, when the run starts from
    /// a database) is small: what its size makes slow under a lock is a warning, not an error.
    pub small_table_rows: u64,
    /// Rule id → level, for rules whose level differs from their default; `None` turns it off.
    overrides: HashMap<&'static str, Option<Level>>,
    exclude_paths: GlobSet,
}

impl Default for Config {
    fn default() -> Self {
        let options = Options::default();
        Config {
            pg_version: options.pg_version,
            single_transaction: options.single_transaction,
            runner: None,
            new_tables: NewTables::default(),
            small_table_rows: 10_000,
            overrides: HashMap::new(),
            exclude_paths: GlobSet::empty(),
        }
    }
}

impl Config {
    /// Reads the text of a `tandem.toml`; `file` names it in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Config, LintError> {
        let error = |message: String| LintError::Config {
            file: file.to_string(),
            message,
        };
        let parsed: ConfigFile = toml::from_str(text).map_err(|e| error(e.to_string()))?;
        let lint = parsed.lint;
        let mut config = Config::default();
        if let Some(v) = lint.pg_version {
            config.pg_version = v;
        }
        if let Some(v) = lint.single_transaction {
            config.single_transaction = v;
        }
        if let Some(name) = &lint.runner {
            config.runner = Some(Runner::from_name(name).ok_or_else(|| {
                error(format!(
                    "[lint] runner: no runner is called {name:?}; one of: {}",
                    Runner::ALL
                        .iter()
                        .map(|r| r.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?);
        }
        if let Some(v) = lint.new_tables {
            config.new_tables = v;
        }
        if let Some(v) = lint.small_table_rows {
            config.small_table_rows = v;
        }
        let rule = |name: &str| {
            Rule::lookup(name).ok_or_else(|| error(format!("[lint]: no rule is called {name:?}")))
        };
        for (name, level) in lint.levels {
            config.overrides.insert(rule(&name)?.id, Some(level));
        }
        for name in lint.exclude {
            config.overrides.insert(rule(&name)?.id, None);
        }
        let mut globs = GlobSetBuilder::new();
        for pattern in &lint.exclude_paths {
            globs.add(Glob::new(pattern).map_err(|e| error(format!("exclude_paths: {e}")))?);
        }
        config.exclude_paths = globs.build().map_err(|e| error(e.to_string()))?;
        Ok(config)
    }

    /// The level `rule` reports at, or `None` when it is excluded.
    pub fn level(&self, rule: &Rule) -> Option<Level> {
        self.overrides
            .get(rule.id)
            .copied()
            .unwrap_or(Some(rule.level))
    }

    /// Whether `path` (as given on the command line) matches an `exclude_paths` glob.
    pub fn excludes_path(&self, path: &str) -> bool {
        self.exclude_paths
            .is_match(path.strip_prefix("./").unwrap_or(path))
    }

    pub fn options(&self) -> Options {
        Options {
            pg_version: self.pg_version,
            single_transaction: self.single_transaction,
        }
    }

    /// The rules that are on, for listings.
    pub fn active_rules(&self) -> impl Iterator<Item = (&'static Rule, Level)> + '_ {
        RULES.iter().filter_map(|r| self.level(r).map(|l| (*r, l)))
    }
}
