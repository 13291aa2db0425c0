//! The test kit: one throwaway PostgreSQL cluster per test binary and a fresh database per test on
//! it, so integration tests run in parallel against real PostgreSQL. Helpers panic with the SQL
//! and the server's message, because their only callers are tests.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use postgres::NoTls;
pub use tandem_pg::cluster::{Cluster, ClusterError, ClusterOptions};

/// A failed start is kept too, so every test reports it at once instead of retrying it.
static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// The test binary's shared cluster, started on first use and stopped when the binary exits.
/// Panics, saying what to install, when PostgreSQL is missing.
pub fn cluster() -> &'static Cluster {
    let started = CLUSTER.get_or_init(|| {
        let cluster = Cluster::start(ClusterOptions::default()).map_err(|e| e.to_string())?;
        stop_cluster_at_exit();
        Ok(cluster)
    });
    match started {
        Ok(cluster) => cluster,
        Err(message) => panic!("tandem-testkit: cannot start a PostgreSQL cluster: {message}"),
    }
}

/// Statics are never dropped, so the shared cluster is stopped from an exit hook. The harness
/// exits through `exit` whether tests pass or fail (a panicking test is caught), so the hook runs;
/// on abort or SIGKILL the kernel's parent-death signal stops the server instead.
#[allow(unsafe_code)]
fn stop_cluster_at_exit() {
    extern "C" fn stop() {
        // Unwinding out of an `extern "C"` function aborts; keep any panic here.
        let _ = std::panic::catch_unwind(|| {
            if let Some(Ok(cluster)) = CLUSTER.get() {
                let _ = cluster.shutdown();
            }
        });
    }
    // SAFETY: `stop` is a plain function that captures nothing; atexit only records its address.
    // Should registration fail, the parent-death signal still stops the server.
    unsafe {
        libc::atexit(stop);
    }
}

/// A database of its own for one test, on the shared cluster; dropped with the value.
pub struct TestDb {
    pub name: String,
    /// The session `execute` reuses, opened on first use.
    session: Mutex<Option<postgres::Client>>,
}

impl TestDb {
    /// Creates a database with a name unique within this test binary.
    pub fn new() -> TestDb {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "tandem_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        if let Err(error) = cluster().create_database(&name) {
            panic!("tandem-testkit: {error}");
        }
        TestDb {
            name,
            session: Mutex::new(None),
        }
    }

    /// A libpq-style URL for this database; see [`Cluster::url`].
    pub fn url(&self) -> String {
        cluster().url(&self.name)
    }

    /// A new session on this database as the superuser.
    pub fn connect(&self) -> postgres::Client {
        cluster()
            .connect(&self.name)
            .unwrap_or_else(|error| panic!("tandem-testkit: {error}"))
    }

    /// A new session whose `search_path` is set at connection time
    /// (`options=-c search_path=...`), as an application that picks a version schema does.
    pub fn connect_with_search_path(&self, search_path: &str) -> postgres::Client {
        let mut config = cluster().config(&self.name);
        config.options(&format!(
            "-c search_path={}",
            escape_option_value(search_path)
        ));
        config.connect(NoTls).unwrap_or_else(|error| {
            panic!(
                "tandem-testkit: connecting to {} with search_path {search_path:?}: {}",
                self.name,
                tandem_pg::error::describe(&error)
            )
        })
    }

    /// Runs `sql` (any number of statements) on one session kept for this value's life, so
    /// session settings carry over between calls. Panics with the SQL and the error.
    pub fn execute(&self, sql: &str) {
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let client = session.get_or_insert_with(|| self.connect());
        if let Err(error) = client.batch_execute(sql) {
            // The session may be left inside a failed transaction; start afresh next time.
            session.take();
            panic!(
                "tandem-testkit: SQL failed on {}: {}\n{sql}",
                self.name,
                tandem_pg::error::describe(&error)
            );
        }
    }

    /// The schema as `pg_dump --schema-only --no-owner --no-privileges` prints it, without
    /// comments, session settings and blank lines, so two databases with equal catalogs give equal
    /// text.
    pub fn dump_schema(&self) -> String {
        let cluster = cluster();
        let pg_dump = cluster.bin_dir().join("pg_dump");
        let output = Command::new(&pg_dump)
            .args(["--schema-only", "--no-owner", "--no-privileges"])
            .arg("--host")
            .arg(cluster.socket_dir())
            .arg("--port")
            .arg(cluster.port().to_string())
            .arg("--username")
            .arg(cluster.superuser())
            .arg("--dbname")
            .arg(&self.name)
            .output()
            .unwrap_or_else(|error| {
                panic!("tandem-testkit: running {}: {error}", pg_dump.display())
            });
        if !output.status.success() {
            panic!(
                "tandem-testkit: {} for {} failed ({}):\n{}",
                pg_dump.display(),
                self.name,
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        normalize_dump(&String::from_utf8_lossy(&output.stdout))
    }
}

impl Default for TestDb {
    fn default() -> TestDb {
        TestDb::new()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Close our own session first; WITH (FORCE) ends any the test left open.
        self.session
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Err(error) = cluster().drop_database(&self.name) {
            // Panicking while already unwinding would abort and hide the test's own failure.
            if !std::thread::panicking() {
                panic!("tandem-testkit: {error}");
            }
        }
    }
}

/// Keeps the lines that describe the catalog. Comments carry versions and object headers; `SET`
/// and `set_config` lines are session setup; `\restrict` lines (pg_dump 17.6, 16.10, 15.14 and
/// later) carry a random key that differs on every run.
fn normalize_dump(dump: &str) -> String {
    let mut out = String::with_capacity(dump.len());
    for line in dump.lines() {
        let noise = line.trim().is_empty()
            || line.starts_with("--")
            || line.starts_with("SET ")
            || line.starts_with("SELECT pg_catalog.set_config(")
            || line.starts_with("\\restrict")
            || line.starts_with("\\unrestrict");
        if !noise {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The server splits `options` on whitespace and honours backslash escapes, so a search_path
/// such as `"v 2", public` must have its spaces escaped to stay one option.
fn escape_option_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c == '\\' || c.is_whitespace() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `postgres::Error` displays as just "db error"; the server's message lives in its source.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_noise_is_removed() {
        let dump =
            "--\n-- PostgreSQL database dump\n--\n\\restrict abc\n\nSET statement_timeout = 0;\n\
                    SELECT pg_catalog.set_config('search_path', '', false);\n\
                    CREATE TABLE public.t (\n    id integer\n);\n\\unrestrict abc\n";
        assert_eq!(
            normalize_dump(dump),
            "CREATE TABLE public.t (\n    id integer\n);\n"
        );
    }

    #[test]
    fn option_values_keep_spaces() {
        assert_eq!(
            escape_option_value("\"v 2\", public"),
            "\"v\\ 2\",\\ public"
        );
        assert_eq!(escape_option_value("a\\b"), "a\\\\b");
    }
}

/// The migration files of pgroll's examples (`../shared/compat/pgroll-examples` beside the
/// clone), sorted by name; `None` when the corpus is absent. CI sets TANDEM_REQUIRE_COMPAT=1,
/// which makes a missing corpus a panic instead of a skip.
pub fn pgroll_examples() -> Option<Vec<std::path::PathBuf>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/compat/pgroll-examples");
    if !dir.exists() {
        assert!(
            std::env::var_os("TANDEM_REQUIRE_COMPAT").is_none(),
            "TANDEM_REQUIRE_COMPAT is set but {} is missing",
            dir.display()
        );
        eprintln!("skipping: {} not present", dir.display());
        return None;
    }
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("tandem-testkit: reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        })
        .collect();
    files.sort();
    Some(files)
}
