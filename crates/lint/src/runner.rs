//! Migration runners and how each one runs a file: in one transaction it opens itself, as one
//! multi-statement query (which PostgreSQL runs as one implicit transaction), or statement by
//! statement; which part of the file is the up migration; and how a file says which runner wrote
//! it. Pure: it reads the path and text it is given, never the file system.

use serde::Deserialize;

/// The tools that run SQL migration files, as far as their transaction rules go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Runner {
    /// `psql -f`: each statement commits on its own unless the file says BEGIN.
    Psql,
    /// `psql -1 -f` (`--single-transaction`): the whole file in one transaction.
    PsqlSingleTransaction,
    /// pressly/goose: each file in a transaction unless `-- +goose NO TRANSACTION`; only the
    /// `-- +goose Up` section is the migration.
    Goose,
    /// dbmate: the `-- migrate:up` section in a transaction unless it says `transaction:false`,
    /// in which case the section is sent as one query.
    Dbmate,
    /// sqlx: each file in a transaction unless it starts with `-- no-transaction`, in which case
    /// it is sent as one query.
    Sqlx,
    /// golang-migrate's postgres and pgx drivers: the file is sent as one query.
    GolangMigrate,
    /// golang-migrate with `x-multi-statement=true`: the file is split at `;` and each
    /// statement runs on its own.
    GolangMigrateMultiStatement,
    /// Flyway: each migration in a transaction, unless `executeInTransaction=false` in its
    /// script configuration (`V1__x.sql.conf`), or unless it holds a statement PostgreSQL
    /// refuses in a transaction, which Flyway then runs outside one.
    Flyway,
    /// Prisma Migrate: each `migration.sql` is sent as one query.
    Prisma,
    /// The SQL of a Rails migration: Rails runs each migration in a transaction unless it calls
    /// `disable_ddl_transaction!`.
    Rails,
    /// `manage.py sqlmigrate` output: BEGIN/COMMIT are in the SQL when the migration is atomic.
    Django,
    /// `alembic upgrade --sql` output: BEGIN/COMMIT are in the SQL.
    Alembic,
}

/// How a runner runs the statements of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transaction {
    /// One statement at a time, each committing on its own unless the file says BEGIN.
    PerStatement,
    /// The runner opens a transaction before the file and commits after it.
    Wrapped,
    /// Flyway's default: wrapped, unless the file holds a statement PostgreSQL refuses in a
    /// transaction (CREATE INDEX CONCURRENTLY, VACUUM, ...), when Flyway runs the statements
    /// one by one outside a transaction.
    WrappedUnlessNonTransactional,
    /// The file is one multi-statement query: PostgreSQL runs it as one implicit transaction,
    /// unless it holds a single statement.
    OneQuery,
}

impl Transaction {
    /// Whether a file of these statements runs inside a transaction block.
    pub fn wraps(self, statements: &[crate::model::Statement]) -> bool {
        match self {
            Transaction::PerStatement => false,
            Transaction::Wrapped => true,
            Transaction::WrappedUnlessNonTransactional => {
                !statements.iter().any(|s| s.kind.runs_outside_transaction())
            }
            Transaction::OneQuery => statements.len() > 1,
        }
    }
}

impl Runner {
    pub const ALL: &'static [Runner] = &[
        Runner::Psql,
        Runner::PsqlSingleTransaction,
        Runner::Goose,
        Runner::Dbmate,
        Runner::Sqlx,
        Runner::GolangMigrate,
        Runner::GolangMigrateMultiStatement,
        Runner::Flyway,
        Runner::Prisma,
        Runner::Rails,
        Runner::Django,
        Runner::Alembic,
    ];

    /// The name used by `--runner` and `tandem.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Runner::Psql => "psql",
            Runner::PsqlSingleTransaction => "psql-single-transaction",
            Runner::Goose => "goose",
            Runner::Dbmate => "dbmate",
            Runner::Sqlx => "sqlx",
            Runner::GolangMigrate => "golang-migrate",
            Runner::GolangMigrateMultiStatement => "golang-migrate-multi-statement",
            Runner::Flyway => "flyway",
            Runner::Prisma => "prisma",
            Runner::Rails => "rails",
            Runner::Django => "django",
            Runner::Alembic => "alembic",
        }
    }

    pub fn from_name(name: &str) -> Option<Runner> {
        Runner::ALL.iter().copied().find(|r| r.name() == name)
    }

    /// Whether this runner's directories hold down migrations as files of their own
    /// (`*.down.sql`, Flyway's `U*__*.sql`), which are not part of the history.
    pub fn is_down_file(path: &str) -> bool {
        let name = file_name(path);
        name.ends_with(".down.sql") || flyway_prefix(name) == Some('U')
    }
}

/// The runner a file's text or path names: goose and dbmate annotations, sqlx's
/// `-- no-transaction`, Flyway's `V1__name.sql`, Prisma's `<timestamp>_<name>/migration.sql`,
/// golang-migrate's `<version>_<name>.up.sql`. `None` when nothing says.
pub fn detect(path: &str, text: &str) -> Option<Runner> {
    if annotation_lines(text, "-- +goose").next().is_some() {
        return Some(Runner::Goose);
    }
    if annotation_lines(text, "-- migrate:").next().is_some() {
        return Some(Runner::Dbmate);
    }
    if starts_with_no_transaction(text) {
        return Some(Runner::Sqlx);
    }
    let name = file_name(path);
    if flyway_prefix(name).is_some() {
        return Some(Runner::Flyway);
    }
    if name == "migration.sql" && parent_name(path).is_some_and(is_prisma_directory) {
        return Some(Runner::Prisma);
    }
    let versioned = name
        .split('_')
        .next()
        .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
    if versioned && (name.ends_with(".up.sql") || name.ends_with(".down.sql")) {
        return Some(Runner::GolangMigrate);
    }
    None
}

/// A file as its runner runs it.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The text to lint: the file with everything that is not the up migration (goose's and
    /// dbmate's down sections, and the annotations) blanked out, so lines and columns stay
    /// those of the file.
    pub source: String,
    pub transaction: Transaction,
    pub runner: Runner,
}

/// Prepares `text` (the file at `path`) as `runner` runs it. `script_config` is the text of
/// Flyway's per-script configuration (`V1__x.sql.conf`), when there is one.
pub fn prepare(runner: Runner, text: &str, script_config: Option<&str>) -> Prepared {
    let (source, transaction) = match runner {
        Runner::Psql | Runner::Django | Runner::Alembic => {
            (text.to_string(), Transaction::PerStatement)
        }
        Runner::PsqlSingleTransaction | Runner::Rails => (text.to_string(), Transaction::Wrapped),
        Runner::GolangMigrateMultiStatement => (text.to_string(), Transaction::PerStatement),
        Runner::GolangMigrate | Runner::Prisma => (text.to_string(), Transaction::OneQuery),
        Runner::Sqlx if starts_with_no_transaction(text) => {
            (text.to_string(), Transaction::OneQuery)
        }
        Runner::Sqlx => (text.to_string(), Transaction::Wrapped),
        Runner::Flyway => {
            let off_line = |l: &str| {
                let l: String = l.chars().filter(|c| !c.is_whitespace()).collect();
                l.eq_ignore_ascii_case("executeInTransaction=false")
            };
            // The script configuration file, or (Flyway 10) `-- flyway:` comments in the script.
            let off = script_config.is_some_and(|conf| conf.lines().any(off_line))
                || annotation_lines(text, "-- flyway:")
                    .any(|(_, l)| off_line(&l["-- flyway:".len()..]));
            let transaction = if off {
                Transaction::PerStatement
            } else {
                Transaction::WrappedUnlessNonTransactional
            };
            (text.to_string(), transaction)
        }
        Runner::Goose => goose(text),
        Runner::Dbmate => dbmate(text),
    };
    Prepared {
        source,
        transaction,
        runner,
    }
}

/// goose: the statements between `-- +goose Up` and `-- +goose Down` (the whole file when it
/// has no Up annotation); `NO TRANSACTION` anywhere runs them one by one, outside a transaction.
fn goose(text: &str) -> (String, Transaction) {
    let mut no_transaction = false;
    let mut up = None;
    let mut down = None;
    for (at, line) in annotation_lines(text, "-- +goose") {
        let words: Vec<String> = line["-- +goose".len()..]
            .split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect();
        match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["up", ..] if up.is_none() => up = Some(at),
            ["down", ..] if down.is_none() => down = Some(at),
            ["no", "transaction", ..] => no_transaction = true,
            _ => {}
        }
    }
    let transaction = if no_transaction {
        Transaction::PerStatement
    } else {
        Transaction::Wrapped
    };
    (keep_section(text, up, down), transaction)
}

/// dbmate: the statements between `-- migrate:up` and `-- migrate:down`; `transaction:false`
/// on the up line sends them as one query instead of in a transaction.
fn dbmate(text: &str) -> (String, Transaction) {
    let mut up = None;
    let mut down = None;
    let mut transaction = Transaction::Wrapped;
    for (at, line) in annotation_lines(text, "-- migrate:") {
        let rest = line["-- migrate:".len()..].trim();
        if rest.starts_with("up") && up.is_none() {
            up = Some(at);
            if rest.split_whitespace().any(|w| w == "transaction:false") {
                transaction = Transaction::OneQuery;
            }
        } else if rest.starts_with("down") && down.is_none() {
            down = Some(at);
        }
    }
    (keep_section(text, up, down), transaction)
}

/// The text with everything before `up` (the line of the annotation included) and from `down`
/// on replaced by spaces, newlines kept.
fn keep_section(text: &str, up: Option<usize>, down: Option<usize>) -> String {
    let start = up.map_or(0, |at| text[at..].find('\n').map_or(text.len(), |i| at + i));
    let end = down.unwrap_or(text.len()).max(start);
    let blank = |s: &str| -> String {
        s.chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect()
    };
    format!(
        "{}{}{}",
        blank(&text[..start]),
        &text[start..end],
        blank(&text[end..])
    )
}

/// The lines that start with `prefix` (case-insensitive, no leading space, as goose and dbmate
/// require), with their byte offsets.
fn annotation_lines<'a>(
    text: &'a str,
    prefix: &'a str,
) -> impl Iterator<Item = (usize, &'a str)> + 'a {
    let mut at = 0;
    text.split_inclusive('\n').filter_map(move |line| {
        let start = at;
        at += line.len();
        let line = line.trim_end();
        (line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix))
            .then_some((start, line))
    })
}

/// sqlx reads `-- no-transaction` only as the very start of the file.
fn starts_with_no_transaction(text: &str) -> bool {
    text.trim_start_matches('\u{feff}')
        .starts_with("-- no-transaction")
}

fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

fn parent_name(path: &str) -> Option<&str> {
    let mut parts = path.rsplit(['/', '\\']);
    parts.next();
    parts.next()
}

/// Prisma names each migration's directory `<14-digit timestamp>_<name>`.
fn is_prisma_directory(name: &str) -> bool {
    let (stamp, rest) = name.split_at(name.len().min(14));
    stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit()) && rest.starts_with('_')
}

/// `V1__x.sql`, `V1.2__x.sql`, `R__x.sql`, `U1__x.sql`: Flyway's prefix letter.
fn flyway_prefix(name: &str) -> Option<char> {
    let stem = name.strip_suffix(".sql")?;
    let (version, _) = stem.split_once("__")?;
    let mut chars = version.chars();
    let prefix = chars.next()?;
    let rest: &str = chars.as_str();
    let ok = match prefix {
        'R' => rest.is_empty(),
        'V' | 'U' => {
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '.' || c == '_')
        }
        _ => false,
    };
    ok.then_some(prefix)
}

/// The version of `V1.2__x.sql` as numbers (`[1, 2]`); Flyway also accepts `_` between them.
fn flyway_version(name: &str) -> Option<Vec<u64>> {
    if flyway_prefix(name)? != 'V' {
        return None;
    }
    let (version, _) = name[1..].split_once("__")?;
    version.split(['.', '_']).map(|p| p.parse().ok()).collect()
}

/// The migrations of a directory listing, in the order their runner applies them: the up
/// migrations only (`*.down.sql` and Flyway's undo files are left out), sorted with
/// [`migration_order`] on the path relative to the directory.
pub fn migration_files(mut relative: Vec<String>) -> Vec<String> {
    relative.retain(|p| !Runner::is_down_file(p));
    relative.sort_by(|a, b| migration_order(a, b));
    relative
}

/// Orders migration paths as their runners do: by name, with runs of digits compared as numbers
/// (Flyway's `V2__` before `V10__`; zero-padded versions and timestamps sort the same either way).
pub fn migration_order(a: &str, b: &str) -> std::cmp::Ordering {
    if let (Some(x), Some(y)) = (flyway_version(file_name(a)), flyway_version(file_name(b))) {
        return x.cmp(&y).then_with(|| a.cmp(b));
    }
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(&cb) {
        let ord = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if ord != std::cmp::Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_runners_from_annotations_and_names() {
        assert_eq!(
            detect("x/001_a.sql", "-- +goose Up\nSELECT 1;"),
            Some(Runner::Goose)
        );
        assert_eq!(
            detect(
                "x/2024_a.sql",
                "-- migrate:up\nSELECT 1;\n-- migrate:down\n"
            ),
            Some(Runner::Dbmate)
        );
        assert_eq!(
            detect("m/20240101_a.sql", "-- no-transaction\nSELECT 1;"),
            Some(Runner::Sqlx)
        );
        assert_eq!(detect("db/V2__add.sql", "SELECT 1;"), Some(Runner::Flyway));
        assert_eq!(detect("db/V2.1__add.sql", ""), Some(Runner::Flyway));
        assert_eq!(detect("db/R__views.sql", ""), Some(Runner::Flyway));
        assert_eq!(detect("db/Vx__add.sql", ""), None);
        assert_eq!(
            detect("prisma/migrations/20240101120000_init/migration.sql", ""),
            Some(Runner::Prisma)
        );
        assert_eq!(detect("m/3_add.up.sql", ""), Some(Runner::GolangMigrate));
        assert_eq!(detect("m/add.sql", "SELECT 1;"), None);
    }

    #[test]
    fn sections_are_blanked_keeping_positions() {
        let text = "-- +goose Up\nSELECT 1;\n-- +goose Down\nDROP TABLE t;\n";
        let p = prepare(Runner::Goose, text, None);
        assert_eq!(p.source.len(), text.len());
        assert_eq!(p.source.lines().nth(1), Some("SELECT 1;"));
        assert!(!p.source.contains("DROP"));
        assert_eq!(p.transaction, Transaction::Wrapped);
        let p = prepare(
            Runner::Goose,
            "-- +goose NO TRANSACTION\n-- +goose Up\nSELECT 1;",
            None,
        );
        assert_eq!(p.transaction, Transaction::PerStatement);
        let p = prepare(
            Runner::Dbmate,
            "-- migrate:up transaction:false\nSELECT 1;\n-- migrate:down\nSELECT 2;\n",
            None,
        );
        assert_eq!(p.transaction, Transaction::OneQuery);
        assert!(p.source.contains("SELECT 1") && !p.source.contains("SELECT 2"));
        let p = prepare(
            Runner::Flyway,
            "SELECT 1;",
            Some("# comment\nexecuteInTransaction = false\n"),
        );
        assert_eq!(p.transaction, Transaction::PerStatement);
        let p = prepare(
            Runner::Flyway,
            "-- flyway:executeInTransaction=false\nSELECT 1;",
            None,
        );
        assert_eq!(p.transaction, Transaction::PerStatement);
        let p = prepare(Runner::Flyway, "SELECT 1;", None);
        assert_eq!(p.transaction, Transaction::WrappedUnlessNonTransactional);
    }

    #[test]
    fn migrations_sort_by_version() {
        let mut names = vec!["V10__c.sql", "V2__b.sql", "V1__a.sql", "V1.1__a.sql"];
        names.sort_by(|a, b| migration_order(a, b));
        assert_eq!(
            names,
            ["V1__a.sql", "V1.1__a.sql", "V2__b.sql", "V10__c.sql"]
        );
        let mut names = vec!["0002_b.sql", "0010_c.sql", "0001_a.sql"];
        names.sort_by(|a, b| migration_order(a, b));
        assert_eq!(names, ["0001_a.sql", "0002_b.sql", "0010_c.sql"]);
    }
}
