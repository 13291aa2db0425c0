//! The test kit: one throwaway PostgreSQL cluster per test binary and a fresh database per test on
//! it, so integration tests run in parallel against real PostgreSQL. Helpers panic with the SQL
//! and the server's message, because their only callers are tests.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once, OnceLock, PoisonError};

use postgres::NoTls;
pub use tandem_pg::cluster::{Cluster, ClusterError, ClusterOptions};

/// A shared cluster, started on first use and stopped when the test binary exits. A failed
/// start is kept too, so every test reports it at once instead of retrying it.
type Shared = OnceLock<Result<Cluster, String>>;

static CLUSTER: Shared = OnceLock::new();
static TLS_CLUSTER: Shared = OnceLock::new();
static STATS_CLUSTER: Shared = OnceLock::new();

/// The test binary's shared cluster. Panics, saying what to install, when PostgreSQL is missing.
pub fn cluster() -> &'static Cluster {
    shared(&CLUSTER, ClusterOptions::default)
}

/// A second shared cluster that serves TLS as well, with a certificate for `localhost` signed
/// by a CA of its own ([`Cluster::tls_root_cert`]). A test binary that uses only this one never
/// starts the plain one.
pub fn tls_cluster() -> &'static Cluster {
    shared(&TLS_CLUSTER, || ClusterOptions {
        tls: true,
        ..ClusterOptions::default()
    })
}

/// A third shared cluster that loads pg_stat_statements (`shared_preload_libraries`), for tests
/// of what tandem reads from it. The extension comes with the server package (Debian's
/// `postgresql`); a cluster whose binaries lack it fails to start and says so.
pub fn stats_cluster() -> &'static Cluster {
    shared(&STATS_CLUSTER, || ClusterOptions {
        settings: vec![(
            "shared_preload_libraries".into(),
            "pg_stat_statements".into(),
        )],
        ..ClusterOptions::default()
    })
}

fn shared(cell: &'static Shared, options: impl FnOnce() -> ClusterOptions) -> &'static Cluster {
    let started = cell.get_or_init(|| {
        let cluster = Cluster::start(options()).map_err(|e| e.to_string())?;
        stop_clusters_at_exit();
        Ok(cluster)
    });
    match started {
        Ok(cluster) => cluster,
        Err(message) => panic!("tandem-testkit: cannot start a PostgreSQL cluster: {message}"),
    }
}

/// Statics are never dropped, so the shared clusters are stopped from an exit hook. The harness
/// exits through `exit` whether tests pass or fail (a panicking test is caught), so the hook runs;
/// on abort or SIGKILL the kernel's parent-death signal stops the servers instead.
#[allow(unsafe_code)]
fn stop_clusters_at_exit() {
    extern "C" fn stop() {
        for cell in [&CLUSTER, &TLS_CLUSTER, &STATS_CLUSTER] {
            // Unwinding out of an `extern "C"` function aborts; keep any panic here.
            let _ = std::panic::catch_unwind(|| {
                if let Some(Ok(cluster)) = cell.get() {
                    let _ = cluster.shutdown();
                }
            });
        }
    }
    static REGISTERED: Once = Once::new();
    // SAFETY: `stop` is a plain function that captures nothing; atexit only records its address.
    // Should registration fail, the parent-death signal still stops the servers.
    REGISTERED.call_once(|| unsafe {
        libc::atexit(stop);
    });
}

/// A database of its own for one test, on the shared cluster; dropped with the value.
pub struct TestDb {
    pub name: String,
    cluster: &'static Cluster,
    /// The session `execute` reuses, opened on first use.
    session: Mutex<Option<postgres::Client>>,
}

impl TestDb {
    /// Creates a database with a name unique within this test binary, on [`cluster`].
    pub fn new() -> TestDb {
        TestDb::on(cluster())
    }

    /// Creates a database on `cluster`, such as [`tls_cluster`].
    pub fn on(cluster: &'static Cluster) -> TestDb {
        let name = unique_name();
        if let Err(error) = cluster.create_database(&name) {
            panic!("tandem-testkit: {error}");
        }
        TestDb {
            name,
            cluster,
            session: Mutex::new(None),
        }
    }

    /// Creates a database as a copy of `template` (`CREATE DATABASE ... TEMPLATE`), on its
    /// cluster: many tests get the same loaded tables for the price of one load. Nobody may be
    /// connected to `template` meanwhile; its `execute` session is closed first.
    pub fn from_template(template: &TestDb) -> TestDb {
        template
            .session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let name = unique_name();
        let created = template.cluster.create_database_from(&name, &template.name);
        if let Err(error) = created {
            panic!("tandem-testkit: {error}");
        }
        TestDb {
            name,
            cluster: template.cluster,
            session: Mutex::new(None),
        }
    }

    /// A libpq-style URL for this database; see [`Cluster::url`].
    pub fn url(&self) -> String {
        self.cluster.url(&self.name)
    }

    /// A URL for this database over TCP to `localhost`; see [`Cluster::tcp_url`].
    pub fn tcp_url(&self) -> String {
        self.cluster.tcp_url(&self.name)
    }

    /// The cluster this database lives on.
    pub fn cluster(&self) -> &'static Cluster {
        self.cluster
    }

    /// A new session on this database as the superuser.
    pub fn connect(&self) -> postgres::Client {
        self.cluster
            .connect(&self.name)
            .unwrap_or_else(|error| panic!("tandem-testkit: {error}"))
    }

    /// A new session whose `search_path` is set at connection time
    /// (`options=-c search_path=...`), as an application that picks a version schema does.
    pub fn connect_with_search_path(&self, search_path: &str) -> postgres::Client {
        let mut config = self.cluster.config(&self.name);
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
    /// text. A cluster whose binaries come without pg_dump (the builds `scripts/fetch-pg.sh`
    /// installs) is described by a catalog query instead; either way the text is only compared
    /// with another of the same cluster.
    pub fn dump_schema(&self) -> String {
        let pg_dump = self.cluster.bin_dir().join("pg_dump");
        if !pg_dump.is_file() {
            return self.describe_catalog();
        }
        let cluster = self.cluster;
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

impl TestDb {
    /// One line per user object and fact, from the catalogs (`catalog.sql`): what
    /// [`TestDb::dump_schema`] gives when the cluster has no pg_dump.
    pub fn describe_catalog(&self) -> String {
        let rows = self
            .connect()
            .query(include_str!("catalog.sql"), &[])
            .unwrap_or_else(|error| {
                panic!(
                    "tandem-testkit: describing the catalog of {}: {}",
                    self.name,
                    tandem_pg::error::describe(&error)
                )
            });
        rows.iter()
            .map(|row| row.get::<_, String>(0) + "\n")
            .collect()
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
        if let Err(error) = self.cluster.drop_database(&self.name) {
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

/// A database name unique within this test binary's run.
fn unique_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "tandem_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
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
