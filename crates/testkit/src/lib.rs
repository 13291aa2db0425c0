//! The test kit: one throwaway PostgreSQL cluster per test binary and a fresh database per test on
//! it, so integration tests run in parallel against real PostgreSQL. Helpers panic with the SQL
//! and the server's message, because their only callers are tests.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once, OnceLock, PoisonError};

use postgres::NoTls;
pub use tandem_cluster::{Cluster, ClusterError, ClusterOptions};
use tandem_model::quote_ident;

mod pagila;
mod pgbouncer;
pub use pagila::pagila_dir;
pub use pgbouncer::{pgbouncer_binary, PgBouncer};

/// A shared cluster, started on first use and stopped when the test binary exits. A failed
/// start is kept too, so every test reports it at once instead of retrying it.
type Shared = OnceLock<Result<Cluster, String>>;

static CLUSTER: Shared = OnceLock::new();
static TLS_CLUSTER: Shared = OnceLock::new();
static STATS_CLUSTER: Shared = OnceLock::new();
static PARTMAN_CLUSTER: Shared = OnceLock::new();
static PASSWORD_CLUSTER: Shared = OnceLock::new();

/// Debian's PostgreSQL 15 server binaries, the only server Debian builds pg_partman for.
pub const PARTMAN_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// Where `postgresql-15-partman` puts the extension's control file, beside that server's own.
const PARTMAN_CONTROL: &str = "/usr/share/postgresql/15/extension/pg_partman.control";

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

/// A fourth shared cluster, always on Debian's PostgreSQL 15 whatever `TANDEM_PG_BIN` says,
/// because pg_partman (`postgresql-15-partman`) is built for that server alone and a test of it
/// must never pass by finding it missing. Panics naming the package when the server or the
/// extension is not installed.
pub fn partman_cluster() -> &'static Cluster {
    for (path, what) in [
        (
            format!("{PARTMAN_BIN_DIR}/postgres"),
            "Debian's PostgreSQL 15 server",
        ),
        (
            PARTMAN_CONTROL.to_string(),
            "pg_partman for Debian's PostgreSQL 15",
        ),
    ] {
        assert!(
            std::path::Path::new(&path).is_file(),
            "tandem-testkit: {what} is missing (no {path}): install the package \
             postgresql-15-partman (`apt-get install postgresql-15-partman`, or \
             scripts/install-deps.sh)"
        );
    }
    shared(&PARTMAN_CLUSTER, || ClusterOptions {
        bin_dir: Some(PARTMAN_BIN_DIR.into()),
        ..ClusterOptions::default()
    })
}

/// A fifth shared cluster that asks for a password (scram-sha-256) over TCP, for tests of
/// where tandem finds one (PGPASSWORD, `.pgpass`, a service file). Its Unix socket stays
/// `trust`, so the superuser sets roles' passwords through it.
pub fn password_cluster() -> &'static Cluster {
    shared(&PASSWORD_CLUSTER, || ClusterOptions {
        password_auth: true,
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
        for cell in [
            &CLUSTER,
            &TLS_CLUSTER,
            &STATS_CLUSTER,
            &PARTMAN_CLUSTER,
            &PASSWORD_CLUSTER,
        ] {
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

/// A primary of its own with a streaming standby, for tests of what tandem does about
/// replication. Each test gets its own pair, because pausing replay on a standby is seen by
/// everything on its primary. Both clusters stop when the value is dropped.
pub struct Replicated {
    pub primary: Cluster,
    pub standby: Cluster,
}

impl Replicated {
    /// Starts the primary, takes a base backup of it (`Cluster::start_standby`), starts the
    /// standby, and waits until the primary shows it streaming. Panics on failure.
    pub fn start() -> Replicated {
        let primary = Cluster::start(ClusterOptions::replication_primary())
            .unwrap_or_else(|e| panic!("tandem-testkit: starting a replication primary: {e}"));
        let standby = primary
            .start_standby()
            .unwrap_or_else(|e| panic!("tandem-testkit: starting a standby: {e}"));
        let pair = Replicated { primary, standby };
        let mut c = pair.primary_session("postgres");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let streaming: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
                    &[],
                )
                .expect("reading pg_stat_replication")
                .get(0);
            if streaming > 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "tandem-testkit: the standby did not start streaming within a minute"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        pair
    }

    /// A session on the primary's database `db` as the superuser.
    pub fn primary_session(&self, db: &str) -> postgres::Client {
        self.primary
            .connect(db)
            .unwrap_or_else(|e| panic!("tandem-testkit: {e}"))
    }

    /// A session on the standby's database `db` as the superuser.
    pub fn standby_session(&self, db: &str) -> postgres::Client {
        self.standby
            .connect(db)
            .unwrap_or_else(|e| panic!("tandem-testkit: {e}"))
    }

    /// Waits until the standby has replayed everything the primary has written so far.
    pub fn wait_for_replay(&self) {
        let mut p = self.primary_session("postgres");
        let mut s = self.standby_session("postgres");
        let target: String = p
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .expect("pg_current_wal_lsn")
            .get(0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let caught_up: bool = s
                .query_one(
                    "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                    &[&target],
                )
                .expect("pg_last_wal_replay_lsn")
                .get(0);
            if caught_up {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "tandem-testkit: the standby did not replay up to {target} within a minute"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// Who a [`TestDb`]'s tests act as: [`TestDb::url`], [`TestDb::connect`], [`TestDb::execute`] and
/// [`TestDb::connect_with_search_path`] all log in as this role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The cluster's superuser, which also owns the database.
    Superuser,
    /// A login role of the test's own, the way managed PostgreSQL services hand them out: neither
    /// superuser nor the database's owner (the superuser creates and owns the database), with no
    /// CREATEDB, CREATEROLE, REPLICATION or BYPASSRLS, and no predefined roles such as
    /// pg_monitor. It has CONNECT, CREATE and TEMPORARY on the database and USAGE and CREATE on
    /// schema `public`, so it owns the tables it creates. Tests that need more take
    /// [`TestDb::connect_as_superuser`] or [`TestDb::execute_as_superuser`].
    Least,
}

impl Access {
    /// `TANDEM_TEST_ROLE`: unset, empty or `superuser` for [`Access::Superuser`], `least` for
    /// [`Access::Least`]. Any other value panics, so a typo never runs the suite the default way.
    pub fn from_env() -> Access {
        static ACCESS: OnceLock<Access> = OnceLock::new();
        *ACCESS.get_or_init(|| match std::env::var("TANDEM_TEST_ROLE").as_deref() {
            Err(_) | Ok("" | "superuser") => Access::Superuser,
            Ok("least") => Access::Least,
            Ok(other) => panic!(
                "tandem-testkit: TANDEM_TEST_ROLE={other:?}: expected `least` or `superuser`"
            ),
        })
    }
}

/// A database of its own for one test, on the shared cluster; dropped with the value.
pub struct TestDb {
    pub name: String,
    cluster: &'static Cluster,
    access: Access,
    /// The role the test logs in as: the superuser, or with [`Access::Least`] a role of its own.
    user: String,
    /// The session `execute` reuses, opened on first use.
    session: Mutex<Option<postgres::Client>>,
}

impl TestDb {
    /// Creates a database with a name unique within this test binary, on [`cluster`], for the
    /// access `TANDEM_TEST_ROLE` selects ([`Access::from_env`]).
    pub fn new() -> TestDb {
        TestDb::on(cluster())
    }

    /// Creates a database on `cluster`, such as [`tls_cluster`].
    pub fn on(cluster: &'static Cluster) -> TestDb {
        TestDb::with_access(cluster, Access::from_env())
    }

    /// Creates a database on `cluster` whose tests act with `access`, whatever the environment
    /// says.
    pub fn with_access(cluster: &'static Cluster, access: Access) -> TestDb {
        let name = unique_name();
        if let Err(error) = cluster.create_database(&name) {
            panic!("tandem-testkit: {error}");
        }
        TestDb::for_database(cluster, name, access)
    }

    /// The value for database `name`, just created on `cluster`; with [`Access::Least`] it also
    /// creates the test's role and grants it what a managed service would.
    fn for_database(cluster: &'static Cluster, name: String, access: Access) -> TestDb {
        let user = match access {
            Access::Superuser => cluster.superuser().to_string(),
            Access::Least => format!("{name}_app"),
        };
        let db = TestDb {
            name,
            cluster,
            access,
            user,
            session: Mutex::new(None),
        };
        if access == Access::Least {
            // Roles are cluster-wide; the name carries the database's, so tests never share one.
            let role = quote_ident(&db.user);
            let database = quote_ident(&db.name);
            db.execute_as_superuser(&format!(
                "CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION \
                     NOBYPASSRLS;
                 GRANT CONNECT, CREATE, TEMPORARY ON DATABASE {database} TO {role};
                 GRANT USAGE, CREATE ON SCHEMA public TO {role};"
            ));
        }
        db
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
        let db = TestDb::for_database(template.cluster, name, template.access);
        if template.access == Access::Least {
            // The copy's objects belong to the template's role; they become the copy's own.
            db.execute_as_superuser(&format!(
                "REASSIGN OWNED BY {} TO {}",
                quote_ident(&template.user),
                quote_ident(&db.user)
            ));
        }
        db
    }

    /// How this database's tests act: as the superuser or as a least-privileged role.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The role [`TestDb::url`], [`TestDb::connect`] and [`TestDb::execute`] log in as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// A libpq-style URL for this database as [`TestDb::user`]; see [`Cluster::url`].
    pub fn url(&self) -> String {
        self.cluster.url_as(&self.user, &self.name)
    }

    /// A URL for this database as another role, such as one a test created.
    pub fn url_as(&self, user: &str) -> String {
        self.cluster.url_as(user, &self.name)
    }

    /// A URL for this database as the cluster's superuser, whatever the access.
    pub fn superuser_url(&self) -> String {
        self.cluster.url(&self.name)
    }

    /// A URL for this database over TCP to `localhost` as [`TestDb::user`]; see
    /// [`Cluster::tcp_url`].
    pub fn tcp_url(&self) -> String {
        self.cluster.tcp_url_as(&self.user, &self.name)
    }

    /// A URL for this database over the Unix socket alone, as [`TestDb::user`]; see
    /// [`Cluster::socket_url_as`].
    pub fn socket_url(&self) -> String {
        self.cluster.socket_url_as(&self.user, &self.name)
    }

    /// A PgBouncer `[databases]` line that routes pool `pool` to this database over the
    /// cluster's Unix socket, with no settings of its own: the base entry that clients of the
    /// base schema's version use.
    pub fn pgbouncer_entry(&self, pool: &str) -> String {
        format!(
            "{pool} = host={} port={} dbname={}",
            self.cluster.socket_dir().display(),
            self.cluster.port(),
            self.name
        )
    }

    /// The cluster this database lives on.
    pub fn cluster(&self) -> &'static Cluster {
        self.cluster
    }

    /// A new session on this database as [`TestDb::user`].
    pub fn connect(&self) -> postgres::Client {
        self.connect_as(&self.user)
    }

    /// A new session on this database as the cluster's superuser, for what a managed service
    /// reserves to its administrators (roles, untrusted extensions, other roles' sessions).
    pub fn connect_as_superuser(&self) -> postgres::Client {
        self.connect_as(self.cluster.superuser())
    }

    /// A new session on this database as `user`.
    pub fn connect_as(&self, user: &str) -> postgres::Client {
        let mut config = self.cluster.config(&self.name);
        config.user(user);
        config.connect(NoTls).unwrap_or_else(|error| {
            panic!(
                "tandem-testkit: connecting to {} as {user}: {}",
                self.name,
                tandem_pg::error::describe(&error)
            )
        })
    }

    /// A new session as [`TestDb::user`] whose `search_path` is set at connection time
    /// (`options=-c search_path=...`), as an application that picks a version schema does.
    pub fn connect_with_search_path(&self, search_path: &str) -> postgres::Client {
        self.connect_as_with_search_path(&self.user, search_path)
    }

    /// A new session as `user` whose `search_path` is set at connection time, as
    /// [`TestDb::connect_with_search_path`].
    pub fn connect_as_with_search_path(&self, user: &str, search_path: &str) -> postgres::Client {
        let mut config = self.cluster.config(&self.name);
        config.user(user);
        config.options(&tandem_pg::connect::search_path_option(search_path));
        config.connect(NoTls).unwrap_or_else(|error| {
            panic!(
                "tandem-testkit: connecting to {} as {user} with search_path {search_path:?}: {}",
                self.name,
                tandem_pg::error::describe(&error)
            )
        })
    }

    /// Creates a login role for an application's sessions, `<database>_<suffix>`, that is not
    /// the owner of anything: it may connect, and is granted SELECT, INSERT, UPDATE and DELETE on
    /// the tables (and USAGE on the sequences) of schema `public`, those there now and those
    /// [`TestDb::user`] creates from now on (through default privileges), as a deployment grants
    /// its application role.
    /// Returns the role's name.
    pub fn application_role(&self, suffix: &str) -> String {
        let name = format!("{}_{suffix}", self.name);
        let role = quote_ident(&name);
        let owner = quote_ident(&self.user);
        self.execute_as_superuser(&format!(
            "CREATE ROLE {role} LOGIN NOSUPERUSER NOINHERIT;
             GRANT CONNECT ON DATABASE {db} TO {role};
             GRANT USAGE ON SCHEMA public TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
             GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};
             ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public
                 GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role};
             ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public
                 GRANT USAGE, SELECT ON SEQUENCES TO {role};",
            db = quote_ident(&self.name),
        ));
        name
    }

    /// Runs `sql` as the superuser on a session of its own, whatever the access. Panics with the
    /// SQL and the error.
    pub fn execute_as_superuser(&self, sql: &str) {
        if let Err(error) = self.connect_as_superuser().batch_execute(sql) {
            panic!(
                "tandem-testkit: SQL failed on {} as the superuser: {}\n{sql}",
                self.name,
                tandem_pg::error::describe(&error)
            );
        }
    }

    /// Runs `sql` (any number of statements) as [`TestDb::user`] on one session kept for this
    /// value's life, so session settings carry over between calls. Panics with the SQL and the error.
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
            .connect_as_superuser()
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
        let mut dropped = self
            .cluster
            .drop_database(&self.name)
            .map_err(|e| e.to_string());
        if dropped.is_ok() && self.access == Access::Least {
            // Its objects went with the database; memberships a test granted go with the role.
            // Privileges on cluster-wide objects (a `GRANT SET ON PARAMETER`) would keep the
            // role from being dropped: DROP OWNED revokes them, from any database.
            let role = quote_ident(&self.user);
            dropped = self
                .cluster
                .connect("postgres")
                .map_err(|e| e.to_string())
                .and_then(|mut client| {
                    client
                        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
                        .map_err(|e| {
                            format!(
                                "dropping role {}: {}",
                                self.user,
                                tandem_pg::error::describe(&e)
                            )
                        })
                });
        }
        if let Err(error) = dropped {
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
}
