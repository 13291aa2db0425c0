//! Command-line flags. They are converted into the library's options in `run` and go no further.

use crate::duration::{parse_duration, parse_lock_timeout, parse_positive_duration};
use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "tandem",
    version = crate::manual::VERSION,
    about = "Zero-downtime PostgreSQL schema migrations: expand, let old and new versions run side by side, contract."
)]
pub struct Args {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(ClapArgs, Debug, Clone)]
pub struct Global {
    /// Database URL or libpq key=value string (pgroll's PGROLL_PG_URL when DATABASE_URL is unset); what it leaves out comes from PGSERVICE, the PG* variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE, ...) and ~/.pgpass, as with libpq.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Schema holding the application's tables (pgroll's PGROLL_SCHEMA when TANDEM_SCHEMA is unset).
    #[arg(long, env = "TANDEM_SCHEMA", default_value = "public", global = true)]
    pub schema: String,
    /// Schema holding tandem's state tables (pgroll's PGROLL_STATE_SCHEMA when TANDEM_STATE_SCHEMA is unset).
    #[arg(
        long,
        env = "TANDEM_STATE_SCHEMA",
        default_value = "tandem",
        global = true
    )]
    pub state_schema: String,
    /// How long any statement may wait for a lock before it gives up and retries, e.g. 500ms or 2s; a bare number is milliseconds (pgroll's PGROLL_LOCK_TIMEOUT when TANDEM_LOCK_TIMEOUT is unset).
    #[arg(long, env = "TANDEM_LOCK_TIMEOUT", default_value = "500ms", value_parser = parse_lock_timeout, global = true)]
    pub lock_timeout: std::time::Duration,
    /// The statement timeout of the steps that run long by design and block neither reads nor writes (CREATE INDEX CONCURRENTLY, VALIDATE CONSTRAINT, DROP INDEX CONCURRENTLY), instead of the session's own statement_timeout, e.g. 2h; 0 is no limit.
    #[arg(long, env = "TANDEM_LONG_STATEMENT_TIMEOUT", default_value = "0", value_parser = parse_duration, global = true)]
    pub long_statement_timeout: std::time::Duration,
    /// Role to SET ROLE to after connecting (pgroll's PGROLL_ROLE when TANDEM_ROLE is unset).
    #[arg(long, env = "TANDEM_ROLE", global = true)]
    pub role: Option<String>,
    /// Print one JSON document on stdout; progress goes to stderr as JSON lines (TANDEM_JSON: 1, true, yes or on).
    #[arg(long, env = "TANDEM_JSON", global = true, value_parser = clap::builder::FalseyValueParser::new())]
    pub json: bool,
    /// Print only the result and errors: no progress.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print every backfill batch, and each cause of an error on a line of its own.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Colour on standard error: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, value_enum, default_value = "auto", global = true)]
    pub color: crate::unix::ColorChoice,
}

/// pgroll's environment variables, each the fallback of a global flag: the flag comes first,
/// then tandem's variable (DATABASE_URL for the URL), then pgroll's, then the default. clap
/// reads one variable per flag, so pgroll's becomes the flag's default when it is set.
const PGROLL_VARIABLES: &[(&str, &str)] = &[
    ("database_url", "PGROLL_PG_URL"),
    ("schema", "PGROLL_SCHEMA"),
    ("state_schema", "PGROLL_STATE_SCHEMA"),
    ("lock_timeout", "PGROLL_LOCK_TIMEOUT"),
    ("role", "PGROLL_ROLE"),
];

impl Args {
    /// Parses the command line, with pgroll's variables as the fallbacks of the global flags.
    pub fn parse_with_pgroll_fallbacks() -> Args {
        use clap::{CommandFactory, FromArgMatches};
        let mut command = Args::command();
        for (id, var) in PGROLL_VARIABLES {
            let Some(value) = std::env::var(var).ok().filter(|v| !v.is_empty()) else {
                continue;
            };
            // Parsed once per run, so leaking the few bytes of a default is harmless.
            let value: &'static str = Box::leak(value.into_boxed_str());
            command = command.mut_arg(*id, |a| {
                // A URL may hold a password; --help must not show it.
                a.default_value(value)
                    .hide_default_value(*id == "database_url")
            });
        }
        let matches = command.get_matches();
        Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create or upgrade tandem's state schema (idempotent).
    Init,
    /// Start a migration: expand the schema and create the new version schema.
    Start {
        file: PathBuf,
        /// Complete right after starting.
        #[arg(long)]
        complete: bool,
        #[command(flatten)]
        backfill: BackfillArgs,
        #[command(flatten)]
        evidence: EvidenceArgs,
    },
    /// Complete the active migration: contract to the new shape, once no evidence shows the old version still runs.
    Complete {
        #[command(flatten)]
        evidence: EvidenceArgs,
    },
    /// Roll back the active migration.
    Rollback,
    /// Show the active migration, the history, the version schemas and the evidence that the old version still runs; with DIR, also which of its files are applied, pending or edited since.
    Status {
        /// A directory of migration files to hold against the history.
        dir: Option<PathBuf>,
        /// How long to watch for sessions on the old version schemas; without it, one sample.
        #[arg(long, value_parser = parse_duration)]
        sample: Option<std::time::Duration>,
    },
    /// Watch the database: the active migration, lock waits, long queries and transactions, replication, versions in use.
    Monitor {
        /// Print one snapshot and exit (with --json, one JSON document).
        #[arg(long)]
        once: bool,
        /// Time between redraws.
        #[arg(long, default_value = "1s", value_parser = parse_positive_duration)]
        interval: std::time::Duration,
        /// List queries running longer than this.
        #[arg(long, default_value = "5s", value_parser = parse_positive_duration)]
        long_query: std::time::Duration,
        /// List sessions idle in a transaction longer than this.
        #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
        idle_in_transaction: std::time::Duration,
    },
    /// Apply the pending migrations of a directory in file-name order.
    Migrate {
        dir: PathBuf,
        /// Also complete the last migration.
        #[arg(long)]
        complete: bool,
        #[command(flatten)]
        backfill: BackfillArgs,
        #[command(flatten)]
        evidence: EvidenceArgs,
    },
    /// Write a new migration file skeleton, numbered after the directory's last file.
    Create {
        /// The migration's name: letters, digits, `_` and `-`.
        #[arg(value_parser = parse_migration_name)]
        name: String,
        /// The migrations directory (created if missing).
        #[arg(long, default_value = "migrations")]
        dir: PathBuf,
        /// File format (default: that of the directory's last file, else YAML).
        #[arg(long, value_enum)]
        format: Option<ConvertFormat>,
    },
    /// Write the applied history back as migration files into DIR, for the migrations it does not have.
    Pull {
        dir: PathBuf,
        /// File format of the files written.
        #[arg(long, value_enum, default_value = "yaml")]
        format: ConvertFormat,
    },
    /// Record the current schema as the starting point of the history, for a database that existed before tandem; with DIR, also write the baseline's placeholder file there.
    Baseline {
        #[arg(value_parser = parse_migration_name)]
        name: String,
        dir: Option<PathBuf>,
        /// File format of the placeholder file.
        #[arg(long, value_enum, default_value = "yaml")]
        format: ConvertFormat,
    },
    /// Print the latest version schema, migration name, a URL selecting the latest version, or the PgBouncer `[databases]` line of a pool on it.
    Latest {
        what: LatestWhat,
        /// Read the latest migration from this directory instead of the database.
        #[arg(long)]
        local: Option<PathBuf>,
        /// With `url`: the client that reads the URL (psycopg and psql read libpq's).
        #[arg(long = "for", value_enum, value_name = "CLIENT")]
        client: Option<UrlFor>,
        #[command(flatten)]
        pool: PoolArgs,
    },
    /// Validate migration files (and, with a database, against its live schema) without changing anything.
    Validate(CheckArgs),
    /// Print what start, complete and rollback would run for migration files: each step's SQL, its locks and what they block, the backfills; with a database, planned on its live schema, changing nothing.
    Plan(CheckArgs),
    /// Print the JSON Schema of the migration file format.
    JsonSchema,
    /// Print a shell completion script: `tandem completions bash > /etc/bash_completion.d/tandem`.
    Completions { shell: crate::manual::Shell },
    /// Print tandem's man page (roff): `tandem man > /usr/local/share/man/man1/tandem.1`.
    Man,
    /// Lint SQL migrations and tandem migration files for statements that lock or break a running application.
    Lint(LintArgs),
    /// Turn a plain SQL migration into a tandem migration file of safe operations.
    Convert(ConvertArgs),
    /// Run SQL statement by statement and report the locks each statement took, what they block and what was rewritten.
    Trace(TraceArgs),
    /// Run an expand/contract migration on a throwaway cluster while simulated clients keep working.
    Demo {
        /// Rows in the demo table.
        #[arg(long, default_value_t = 100_000)]
        rows: i64,
        /// Directory of PostgreSQL server binaries (default: discovered as the test kit does).
        #[arg(long, env = "TANDEM_PG_BIN")]
        pg_bin: Option<PathBuf>,
        /// Also draw the clients' latency, tandem against by hand, to PATH.svg and PATH.png.
        #[arg(long)]
        chart: Option<PathBuf>,
    },
    /// Measure what a migration costs the application, against the same change done by hand: figures, a table, --json, and a latency chart.
    Bench(BenchArgs),
}

#[derive(ClapArgs, Debug, Clone)]
pub struct BenchArgs {
    /// Table sizes, comma-separated; k and M multiply by a thousand and a million.
    #[arg(long, value_delimiter = ',', value_parser = parse_rows, default_value = "100k,1M,5M")]
    pub rows: Vec<u64>,
    /// Scenarios to run, comma-separated (default: all).
    #[arg(long = "scenario", value_enum, value_delimiter = ',')]
    pub scenarios: Vec<BenchScenario>,
    /// Runs of each measurement; medians are reported.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Concurrent sessions of the OLTP mix (scenario triggers).
    #[arg(long, default_value_t = 4)]
    pub oltp_clients: u32,
    /// How long each run of the OLTP mix lasts.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    pub oltp_time: std::time::Duration,
    /// Drive the OLTP mix with the built-in generator even when pgbench is found.
    #[arg(long)]
    pub built_in_oltp: bool,
    /// Concurrent application clients (scenario traffic); half use prepared statements.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Statements per second per client (scenario traffic).
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// How long the other session keeps its transaction open (scenario traffic).
    #[arg(long, default_value = "3s", value_parser = parse_positive_duration)]
    pub hold: std::time::Duration,
    /// Where the latency chart goes: PATH-ROWS.svg and PATH-ROWS.png per table size.
    #[arg(long, default_value = "tandem-bench")]
    pub chart: PathBuf,
    /// Draw no chart.
    #[arg(long)]
    pub no_chart: bool,
    /// Use a throwaway cluster even when a database URL is set.
    #[arg(long)]
    pub throwaway: bool,
    /// Directory of PostgreSQL server binaries for the throwaway cluster (default: discovered as the test kit does).
    #[arg(long, env = "TANDEM_PG_BIN")]
    pub pg_bin: Option<PathBuf>,
    #[command(flatten)]
    pub backfill: BackfillArgs,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchScenario {
    /// 1: backfill rows/s against one plain UPDATE of the same expression.
    Backfill,
    /// 2: bulk UPDATE and a single-row OLTP mix, with and without the dual-write triggers.
    Triggers,
    /// 3: clients at a fixed rate during a type change and a NOT NULL addition, by tandem and by hand.
    Traffic,
    /// 4: backfill rows/s across the table sizes.
    Scaling,
    /// 5: int → bigint of an indexed column: tandem against one plain UPDATE and the blocking ALTER, with clients running.
    Indexed,
}

/// A migration name, as `tandem_model::migration::invalid_name` accepts it.
pub fn parse_migration_name(s: &str) -> Result<String, String> {
    match tandem_model::migration::invalid_name(s) {
        Some(why) => Err(why),
        None => Ok(s.to_string()),
    }
}

/// `100k`, `1M`, `5000000`: a number of rows.
pub fn parse_rows(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, factor) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1_000),
        Some('m' | 'M') => (&s[..s.len() - 1], 1_000_000),
        _ => (s, 1),
    };
    let n: u64 = digits
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{s:?} is not a number of rows (e.g. 100k, 1M, 250000)"))?;
    match n.checked_mul(factor) {
        Some(0) | None => Err(format!("{s:?}: a table needs between 1 and 2^64 rows")),
        Some(rows) => Ok(rows),
    }
}

#[derive(ClapArgs, Debug, Clone)]
pub struct LintArgs {
    /// SQL files (.sql, anything else not .json/.yaml/.yml), migration files, and directories of them; `-` reads SQL from standard input.
    #[arg(required_unless_present = "explain")]
    pub files: Vec<PathBuf>,
    /// Print a rule's documentation (by id or name, e.g. T001 or rename-column), or `all` for the list.
    #[arg(long, value_name = "RULE")]
    pub explain: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: LintFormat,
    /// PostgreSQL major version the migrations will run on (default 15, or `pg_version` in tandem.toml).
    #[arg(long)]
    pub pg_version: Option<u32>,
    /// Files whose runner is not recognised run as one transaction (psql -1); same as `--runner psql-single-transaction` for them.
    #[arg(long)]
    pub single_transaction: bool,
    /// The tool that runs the files, which decides their transactions (default: recognised per file from its annotations and name, else psql).
    #[arg(long, value_name = "RUNNER", value_parser = clap::builder::PossibleValuesParser::new(
        tandem_lint::runner::Runner::ALL.iter().map(|r| r.name())
    ))]
    pub runner: Option<String>,
    /// How long a table created by a file counts as new: `file` (default; later files were deployed later, when the table was in use) or `run` (all the files are deployed together).
    #[arg(long, value_enum)]
    pub new_tables: Option<LintNewTables>,
    /// The schema the first file runs on (column types, NOT NULL columns): a `pg_dump --schema-only` file, or a postgres:// URL whose --schema is read (nothing is changed).
    #[arg(long, value_name = "DUMP|URL")]
    pub schema_from: Option<PathBuf>,
    /// Configuration file (default: tandem.toml in the current directory, if present).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LintNewTables {
    File,
    Run,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LintFormat {
    Human,
    /// One line per finding: `file:line:col: severity: RULE name: message`.
    Compact,
    Json,
    Github,
    Sarif,
}

#[derive(ClapArgs, Debug, Clone)]
pub struct ConvertArgs {
    /// The SQL migration to convert (`-` reads standard input).
    pub file: PathBuf,
    /// Output format of the migration file.
    #[arg(long, value_enum, default_value = "yaml")]
    pub format: ConvertFormat,
    /// Write the migration to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvertFormat {
    Yaml,
    Json,
}

#[derive(ClapArgs, Debug, Clone)]
pub struct TraceArgs {
    /// The SQL file to trace (`-` reads standard input).
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: TraceFormat,
    /// SQL run before the traced file and not traced, e.g. the tables it changes.
    #[arg(long)]
    pub setup: Option<PathBuf>,
    /// Load the schema of this database (pg_dump --schema-only) into the throwaway cluster first.
    #[arg(long)]
    pub schema_from: Option<String>,
    /// Use a throwaway cluster even when a database URL is set.
    #[arg(long)]
    pub throwaway: bool,
    /// Directory of PostgreSQL server binaries for the throwaway cluster (default: discovered as the test kit does).
    #[arg(long, env = "TANDEM_PG_BIN")]
    pub pg_bin: Option<PathBuf>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceFormat {
    Human,
    Json,
    Markdown,
}

#[derive(ClapArgs, Debug, Clone)]
pub struct BackfillArgs {
    /// Rows per backfill batch; without it the size adapts to --backfill-target.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub backfill_batch_size: Option<u64>,
    /// How long one backfill batch (and so its row locks) should last, e.g. 150ms.
    #[arg(long, default_value = "150ms", value_parser = parse_positive_duration)]
    pub backfill_target: std::time::Duration,
    /// The most sessions updating backfill batches at once (each on its own key or block range).
    /// The backfill starts with one and adds one while that makes it faster and nobody waits on
    /// its locks; 1 keeps it to one session.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub backfill_workers: u16,
    /// Run exactly --backfill-workers sessions from the first batch on, without adapting.
    #[arg(long)]
    pub fixed_backfill_workers: bool,
    /// A pause between backfill batches, e.g. 10ms; 0 for none.
    #[arg(long, value_parser = parse_duration)]
    pub backfill_batch_delay: Option<std::time::Duration>,
    /// Pause the backfill while a standby replays further behind than this (needs pg_monitor to see).
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    pub max_replication_lag: std::time::Duration,
    /// Pause the backfill while a replication slot retains more WAL than this, e.g. 1GB.
    #[arg(long, value_parser = parse_size)]
    pub max_slot_wal: Option<i64>,
    /// Change a column's type in place at complete, with no second column and no backfill, where
    /// PostgreSQL needs no rewrite (e.g. varchar(n) to a longer varchar or text). The new version
    /// sees the new type only after complete, and its statements prepared before complete that
    /// return the column fail once with "cached plan must not change result type".
    #[arg(long)]
    pub type_changes_in_place: bool,
    /// Let the backfill fire the user's triggers it cannot keep out of its batches (every
    /// UPDATE trigger of the backfilled tables when the role may not set
    /// session_replication_role; those enabled ALWAYS or REPLICA otherwise). Without it, start
    /// refuses, naming them, before it changes anything.
    #[arg(long)]
    pub backfill_fires_triggers: bool,
}

#[derive(ClapArgs, Debug, Clone)]
pub struct EvidenceArgs {
    /// How long complete watches for sessions on the old version schemas before it contracts.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub sample: std::time::Duration,
    /// Refuse to complete a migration started less than this long ago (the rollback window), e.g. 24h or 3d; 0 for none.
    #[arg(long, value_parser = parse_duration)]
    pub min_age: Option<std::time::Duration>,
    /// Complete despite evidence that the old version still runs; the evidence is recorded.
    #[arg(long)]
    pub force: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum LatestWhat {
    Schema,
    Migration,
    Url,
    /// A PgBouncer `[databases]` line whose pool serves the latest version (`connect_query`).
    Pgbouncer,
}

/// What `validate` and `plan` check, and against what.
#[derive(ClapArgs, Debug, Clone)]
pub struct CheckArgs {
    /// A migration file, or a directory of them (its pending files, in order).
    pub path: PathBuf,
    /// Only read the files, even when a database URL is set.
    #[arg(long)]
    pub offline: bool,
    /// With --offline: the schema the files apply to, from a `pg_dump --schema-only` file
    /// (its tables, columns, constraints and indexes), instead of an empty one.
    #[arg(long, requires = "offline")]
    pub schema_from: Option<PathBuf>,
    /// With --offline: the PostgreSQL major version to plan for.
    #[arg(long, requires = "offline", default_value_t = 17, value_name = "MAJOR")]
    pub pg_major: u32,
    /// Accept that a backfill fires the user's triggers (as for start and migrate).
    #[arg(long)]
    pub backfill_fires_triggers: bool,
}

/// The client `latest url --for` writes the URL for.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlFor {
    /// libpq and what is built on it: psql, psycopg, pgx, Ruby's pg, ...
    Libpq,
    Psycopg,
    Asyncpg,
    /// Node's `pg`.
    NodePostgres,
}

impl UrlFor {
    pub fn client(self) -> tandem_pg::connect::UrlClient {
        use tandem_pg::connect::UrlClient;
        match self {
            UrlFor::Libpq | UrlFor::Psycopg => UrlClient::Libpq,
            UrlFor::Asyncpg => UrlClient::Asyncpg,
            UrlFor::NodePostgres => UrlClient::NodePostgres,
        }
    }
}

/// Where the pool that `latest pgbouncer` prints reaches PostgreSQL, and its name.
#[derive(ClapArgs, Debug, Clone, Default)]
pub struct PoolArgs {
    /// Name of the pool, which clients give as their database name (default: the version schema's name).
    #[arg(long, value_name = "NAME")]
    pub pool: Option<String>,
    /// Host (or Unix socket directory) PgBouncer connects to (default: the database URL's).
    #[arg(long, value_name = "HOST")]
    pub server_host: Option<String>,
    /// Port PgBouncer connects to (default: the database URL's).
    #[arg(long, value_name = "PORT")]
    pub server_port: Option<u16>,
}

/// Parses `1GB`, `512MB`, `64kB`, `100B` or a bare number of bytes (units are powers of 1024).
pub fn parse_size(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "B"), |i| (&s[..i], s[i..].trim()));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 512MB or 1GB"))?;
    let factor: f64 = match unit.to_ascii_lowercase().as_str() {
        "b" => 1.0,
        "kb" | "k" => 1024.0,
        "mb" | "m" => 1024.0 * 1024.0,
        "gb" | "g" => 1024.0 * 1024.0 * 1024.0,
        "tb" | "t" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use B, kB, MB, GB or TB)"
            ))
        }
    };
    Ok((n * factor) as i64)
}
