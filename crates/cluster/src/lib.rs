//! Throwaway PostgreSQL clusters: `initdb` into a fresh temporary directory, a postmaster that this
//! process starts and owns as a child, and teardown on drop. The test kit, `tandem demo`,
//! `tandem trace` and `tandem bench` all run against these.

use std::env;
use std::fs::{self, File};
use std::io;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use postgres::NoTls;
use tandem_model::ident::quote_ident;

/// The bootstrap superuser `initdb -U` creates. It is `postgres` whoever runs the cluster, so URLs
/// and tests do not depend on the OS user.
const SUPERUSER: &str = "postgres";
/// The unprivileged OS user that owns the server when we run as root, because `initdb` and
/// `postgres` refuse to run as root.
const SERVER_OS_USER: &str = "postgres";
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// Another process may bind the port between our probe and the postmaster's bind.
const PORT_ATTEMPTS: usize = 5;
const LOG_TAIL_LINES: usize = 40;
const DIR_PREFIX: &str = "tandem-pg-";
/// Holds the pid of the process that created a cluster directory.
const CREATOR_FILE: &str = "creator.pid";
const ABANDONED_AFTER: Duration = Duration::from_secs(60);
/// `sun_path` holds 107 bytes and PostgreSQL appends `/.s.PGSQL.NNNNN` to the socket directory.
const MAX_SOCKET_PATH: usize = 100;

/// Settings every throwaway cluster gets: durability is worthless for a cluster deleted on exit,
/// and the test kit opens many sessions at once.
const BASE_SETTINGS: &[(&str, &str)] = &[
    ("listen_addresses", "127.0.0.1"),
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("max_connections", "200"),
    ("shared_buffers", "128MB"),
];

/// How to start a [`Cluster`].
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Directory holding `initdb` and `postgres`; [`discover_bin_dir`] when `None`.
    pub bin_dir: Option<PathBuf>,
    /// Extra server settings, passed as `-c name=value` after the defaults, so they override them.
    pub settings: Vec<(String, String)>,
    /// Serve TLS (`ssl=on`) with a certificate for `localhost` signed by a CA made for this
    /// cluster alone; [`Cluster::tls_root_cert`] is that CA's certificate.
    pub tls: bool,
    /// Require a password (scram-sha-256) over TCP; the Unix socket stays `trust`, so the
    /// superuser can still get in to set roles' passwords.
    pub password_auth: bool,
}

impl ClusterOptions {
    /// Settings for a primary that [`Cluster::start_standby`] can replicate: WAL for replicas,
    /// WAL senders, and WAL kept for a standby whose base backup was copied by hand.
    pub fn replication_primary() -> ClusterOptions {
        ClusterOptions {
            settings: [
                ("wal_level", "replica"),
                ("max_wal_senders", "5"),
                ("wal_keep_size", "256MB"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            ..ClusterOptions::default()
        }
    }
}

/// A cluster could not be found, started, used or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    #[error(
        "PostgreSQL server binaries (initdb, postgres) not found in TANDEM_PG_BIN, \
         `pg_config --bindir`, /usr/lib/postgresql/*/bin or PATH: install them with \
         `apt-get install postgresql` (Debian/Ubuntu), or set TANDEM_PG_BIN to the directory \
         that holds initdb and postgres"
    )]
    BinariesNotFound,
    #[error(
        "{origin} {dir}: no {missing} there; point it at the directory that holds initdb and \
         postgres, such as /usr/lib/postgresql/15/bin"
    )]
    BadBinDir {
        origin: &'static str,
        dir: PathBuf,
        missing: &'static str,
    },
    #[error(
        "running as root, so PostgreSQL must run as the unprivileged OS user `postgres`, which \
         does not exist: install the postgresql package or `useradd --system --user-group postgres`"
    )]
    NoServerUser,
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{}: {status}\n{output}", program.display())]
    CommandFailed {
        program: PathBuf,
        status: ExitStatus,
        output: String,
    },
    #[error("{} --version: no PostgreSQL version in {output:?}", program.display())]
    UnknownVersion { program: PathBuf, output: String },
    #[error("postgres exited while starting ({status}); server log:\n{log}")]
    ServerExited { status: ExitStatus, log: String },
    #[error(
        "postgres did not accept connections within {}s (last error: {last_error}); server log:\n{log}",
        timeout.as_secs()
    )]
    StartTimeout {
        timeout: Duration,
        last_error: String,
        log: String,
    },
    #[error(
        "connecting to database {dbname:?}: {}",
        tandem_pg::error::describe(source)
    )]
    Connect {
        dbname: String,
        #[source]
        source: postgres::Error,
    },
    #[error("{context}: {}", tandem_pg::error::describe(source))]
    Sql {
        context: String,
        #[source]
        source: postgres::Error,
    },
    #[error("generating the cluster's TLS certificates: {0}")]
    Certificate(#[from] rcgen::Error),
}

impl ClusterError {
    fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> ClusterError {
        let context = context.into();
        move |source| ClusterError::Io { context, source }
    }
}

/// `postgres::Error` displays as just "db error"; the server's message lives in its source.
/// A running throwaway cluster. Dropping it (or [`Cluster::stop`]) shuts the server down and
/// deletes its directory; should this process die first, the server is told to quit by the kernel.
#[derive(Debug)]
pub struct Cluster {
    bin_dir: PathBuf,
    major_version: u32,
    socket_dir: PathBuf,
    port: u16,
    /// The CA certificate (PEM) that signed the server's certificate, when it serves TLS.
    tls_root_cert: Option<PathBuf>,
    /// `None` once stopped. Behind a mutex so a cluster held in a static, which is never
    /// dropped, can still be stopped through a shared reference at exit.
    server: Mutex<Option<Server>>,
}

#[derive(Debug)]
struct Server {
    postmaster: Child,
    keepalive: Keepalive,
    dir: tempfile::TempDir,
}

/// The OS user that runs `initdb` and `postgres`, when it is not us.
#[derive(Debug, Clone, Copy)]
struct ServerUser {
    uid: u32,
    gid: u32,
}

impl Cluster {
    /// Creates a fresh cluster in a temporary directory and starts it, returning once it accepts
    /// connections.
    pub fn start(opts: ClusterOptions) -> Result<Cluster, ClusterError> {
        let bin_dir = match opts.bin_dir {
            Some(dir) => check_bin_dir(dir, "ClusterOptions::bin_dir")?,
            None => discover_bin_dir()?,
        };
        let major_version = server_major_version(&bin_dir)?;
        let owner = server_user()?;
        let layout = Layout::create(owner)?;
        initdb(&bin_dir, &layout, owner, opts.password_auth)?;
        let mut settings = Vec::new();
        let tls_root_cert = if opts.tls {
            let files = tls::write_certificates(&layout.dir.path().join("tls"), owner)?;
            settings.extend(files.settings());
            Some(files.root_cert)
        } else {
            None
        };
        settings.extend(opts.settings);
        let (port, postmaster, keepalive) = start_postmaster(&bin_dir, &layout, &settings, owner)?;
        Ok(Cluster {
            bin_dir,
            major_version,
            socket_dir: layout.socket_dir,
            port,
            tls_root_cert,
            server: Mutex::new(Some(Server {
                postmaster,
                keepalive,
                dir: layout.dir,
            })),
        })
    }

    /// The directory holding this cluster's `initdb`, `postgres`, `pg_dump` and `psql`.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The server's major version (15 for 15.4), as `postgres --version` reports it.
    pub fn major_version(&self) -> u32 {
        self.major_version
    }

    /// The private directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The TCP port on 127.0.0.1, which also names the Unix socket.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser every connection uses; authentication is `trust`.
    pub fn superuser(&self) -> &str {
        SUPERUSER
    }

    /// `postgres://postgres@localhost:PORT/DBNAME?host=SOCKETDIR`, for libpq, psql and the
    /// `postgres` crate. libpq lets the `host` parameter replace `localhost`, so it uses the
    /// socket; the `postgres` crate tries `localhost` over TCP first, which also works.
    pub fn url(&self, dbname: &str) -> String {
        self.url_as(SUPERUSER, dbname)
    }

    /// [`Cluster::url`] for another role (authentication is `trust`, so no password).
    pub fn url_as(&self, user: &str, dbname: &str) -> String {
        format!(
            "postgres://{}@localhost:{}/{}?host={}",
            percent_encode(user, false),
            self.port,
            percent_encode(dbname, false),
            percent_encode(&self.socket_dir.to_string_lossy(), true),
        )
    }

    /// `postgres://USER@/DBNAME?host=SOCKETDIR&port=PORT`: over the Unix socket alone, the way
    /// a client on the database's own machine connects.
    pub fn socket_url_as(&self, user: &str, dbname: &str) -> String {
        format!(
            "postgres://{}@/{}?host={}&port={}",
            percent_encode(user, false),
            percent_encode(dbname, false),
            percent_encode(&self.socket_dir.to_string_lossy(), true),
            self.port,
        )
    }

    /// `postgres://postgres@localhost:PORT/DBNAME`: over TCP, which TLS needs (a Unix socket never
    /// negotiates it). Add `sslmode` and `sslrootcert` as query parameters.
    pub fn tcp_url(&self, dbname: &str) -> String {
        self.tcp_url_as(SUPERUSER, dbname)
    }

    /// [`Cluster::tcp_url`] for another role.
    pub fn tcp_url_as(&self, user: &str, dbname: &str) -> String {
        format!(
            "postgres://{}@localhost:{}/{}",
            percent_encode(user, false),
            self.port,
            percent_encode(dbname, false),
        )
    }

    /// The CA certificate (PEM) that signed the server's certificate for `localhost`, when the
    /// cluster was started with [`ClusterOptions::tls`].
    pub fn tls_root_cert(&self) -> Option<&Path> {
        self.tls_root_cert.as_deref()
    }

    /// Connection settings for `dbname` over the Unix socket, for callers that add their own
    /// (options, application name) before connecting.
    pub fn config(&self, dbname: &str) -> postgres::Config {
        connect_config(&self.socket_dir, self.port, dbname)
    }

    /// Connects to `dbname` as the superuser.
    pub fn connect(&self, dbname: &str) -> Result<postgres::Client, ClusterError> {
        self.config(dbname)
            .connect(NoTls)
            .map_err(|source| ClusterError::Connect {
                dbname: dbname.to_string(),
                source,
            })
    }

    /// Creates database `name` from `template1`.
    pub fn create_database(&self, name: &str) -> Result<(), ClusterError> {
        self.maintenance(
            &format!("CREATE DATABASE {}", quote_ident(name)),
            format!("creating database {name:?}"),
        )
    }

    /// Creates database `name` as a copy of `template`, which nobody may be connected to.
    pub fn create_database_from(&self, name: &str, template: &str) -> Result<(), ClusterError> {
        self.maintenance(
            &format!(
                "CREATE DATABASE {} TEMPLATE {}",
                quote_ident(name),
                quote_ident(template)
            ),
            format!("creating database {name:?} from {template:?}"),
        )
    }

    /// Drops database `name` if it exists, disconnecting its sessions first (PostgreSQL 13+).
    pub fn drop_database(&self, name: &str) -> Result<(), ClusterError> {
        self.maintenance(
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)),
            format!("dropping database {name:?}"),
        )
    }

    fn maintenance(&self, sql: &str, context: String) -> Result<(), ClusterError> {
        self.connect("postgres")?
            .batch_execute(sql)
            .map_err(|source| ClusterError::Sql { context, source })
    }

    /// Shuts the server down (fast shutdown, then SIGKILL after 10s) and deletes its directory.
    /// Idempotent; dropping the cluster does the same.
    pub fn stop(&mut self) -> Result<(), ClusterError> {
        self.shutdown()
    }

    /// Starts a streaming standby of this cluster: a base backup of it in a fresh temporary
    /// directory, `standby.signal` and `primary_conninfo` pointing at this cluster's socket, and
    /// a postmaster of its own. The primary needs `wal_level` of `replica` or more and a free WAL
    /// sender ([`ClusterOptions::replication_primary`]). The backup is taken with `pg_basebackup`
    /// when the cluster's binaries have it; the builds `scripts/fetch-pg.sh` installs have only
    /// `initdb`, `pg_ctl` and `postgres`, so there the backup is taken by hand with the
    /// low-level API (`pg_backup_start`, a copy of the data directory, `pg_backup_stop`). The
    /// standby reports its position every second, so lag shows up on the primary soon.
    pub fn start_standby(&self) -> Result<Cluster, ClusterError> {
        let owner = server_user()?;
        let layout = Layout::create(owner)?;
        let basebackup = self.bin_dir.join("pg_basebackup");
        if basebackup.is_file() {
            let mut command = Command::new(&basebackup);
            command
                .arg("-D")
                .arg(&layout.data_dir)
                .args(["-X", "stream", "-c", "fast", "-R", "--no-sync"])
                .arg("-h")
                .arg(&self.socket_dir)
                .arg("-p")
                .arg(self.port.to_string())
                .args(["-U", SUPERUSER]);
            prepare(&mut command, layout.dir.path(), owner, libc::SIGKILL);
            let output = command.output().map_err(ClusterError::io(format!(
                "running {}",
                basebackup.display()
            )))?;
            if !output.status.success() {
                return Err(ClusterError::CommandFailed {
                    program: basebackup,
                    status: output.status,
                    output: String::from_utf8_lossy(&output.stdout).into_owned()
                        + &String::from_utf8_lossy(&output.stderr),
                });
            }
        } else {
            self.copy_backup(&layout, owner)?;
        }
        let settings = vec![
            ("hot_standby".to_string(), "on".to_string()),
            ("wal_receiver_status_interval".to_string(), "1s".to_string()),
        ];
        let (port, postmaster, keepalive) =
            start_postmaster(&self.bin_dir, &layout, &settings, owner)?;
        Ok(Cluster {
            bin_dir: self.bin_dir.clone(),
            major_version: self.major_version,
            socket_dir: layout.socket_dir,
            port,
            tls_root_cert: None,
            server: Mutex::new(Some(Server {
                postmaster,
                keepalive,
                dir: layout.dir,
            })),
        })
    }

    /// A base backup without `pg_basebackup`: the low-level backup API around a copy of the data
    /// directory, then what `pg_basebackup -R` would write (`standby.signal`, `primary_conninfo`).
    /// The WAL written during the copy is streamed by the standby from the primary, which keeps
    /// it (`wal_keep_size` of [`ClusterOptions::replication_primary`]).
    fn copy_backup(&self, layout: &Layout, owner: Option<ServerUser>) -> Result<(), ClusterError> {
        let sql = |context: &str| {
            let context = context.to_string();
            move |source| ClusterError::Sql { context, source }
        };
        let mut session = self.connect("postgres")?;
        let (start, stop) = if self.major_version >= 15 {
            (
                "SELECT pg_backup_start('tandem standby', true)",
                "SELECT labelfile FROM pg_backup_stop(false)",
            )
        } else {
            (
                "SELECT pg_start_backup('tandem standby', true, false)",
                "SELECT labelfile FROM pg_stop_backup(false, false)",
            )
        };
        session
            .execute(start, &[])
            .map_err(sql("starting a base backup"))?;
        let data_dir: String = session
            .query_one("SELECT current_setting('data_directory')", &[])
            .map_err(sql("reading data_directory"))?
            .get(0);
        let copied = copy_data_dir(Path::new(&data_dir), &layout.data_dir, owner);
        let label: String = session
            .query_one(stop, &[])
            .map_err(sql("ending the base backup"))?
            .get(0);
        copied?;
        let conninfo = format!(
            "host={} port={} user={SUPERUSER} application_name=tandem_standby",
            self.socket_dir.display(),
            self.port
        );
        let files = [
            ("backup_label", label),
            ("standby.signal", String::new()),
            (
                "postgresql.auto.conf",
                format!("primary_conninfo = '{}'\n", conninfo.replace('\'', "''")),
            ),
        ];
        for (name, text) in files {
            let path = layout.data_dir.join(name);
            fs::write(&path, text)
                .map_err(ClusterError::io(format!("writing {}", path.display())))?;
            chown(&path, owner)?;
        }
        Ok(())
    }

    /// [`Cluster::stop`] through a shared reference, for a cluster that lives in a static (as the
    /// test kit's does) and so is never dropped.
    pub fn shutdown(&self) -> Result<(), ClusterError> {
        let server = self
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut server) = server else {
            return Ok(());
        };
        let stopped = stop_postmaster(&mut server.postmaster);
        // Only now may the spawning thread end: ending it earlier would signal the postmaster.
        drop(server.keepalive);
        let path = server.dir.path().to_path_buf();
        let removed = server.dir.close();
        stopped.map_err(ClusterError::io("stopping postgres"))?;
        removed.map_err(ClusterError::io(format!("removing {}", path.display())))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Nowhere to report a failure from drop; callers who care call `stop`.
        let _ = self.shutdown();
    }
}

/// A helper server that lives beside the clusters, such as the test kit's PgBouncer: started
/// like the postmaster, as the unprivileged server OS user when we run as root, and told to quit
/// by the kernel should this process die. Dropping it stops the process (SIGINT, then SIGKILL).
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    keepalive: Option<Keepalive>,
}

impl ServerProcess {
    /// Spawns `command` from `dir` as the server OS user, with SIGTERM (PgBouncer's immediate
    /// shutdown) as its parent-death signal and as the signal that stops it. `dir` and `paths` are handed to that user first, so it can read its configuration
    /// and write its log there.
    pub fn spawn(
        mut command: Command,
        dir: &Path,
        paths: &[&Path],
    ) -> Result<ServerProcess, ClusterError> {
        let owner = server_user()?;
        for path in std::iter::once(dir).chain(paths.iter().copied()) {
            chown(path, owner)?;
        }
        prepare(&mut command, dir, owner, libc::SIGTERM);
        let program = command.get_program().to_owned();
        let (child, keepalive) = spawn_supervised(command).map_err(ClusterError::io(format!(
            "starting {}",
            Path::new(&program).display()
        )))?;
        Ok(ServerProcess {
            child,
            keepalive: Some(keepalive),
        })
    }

    /// The process's exit status, once it has exited.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Nowhere to report a failure from drop; the parent-death signal is the backstop.
        let _ = stop_process(&mut self.child, libc::SIGTERM);
        // Only now may the spawning thread end: ending it earlier would signal the process.
        self.keepalive.take();
    }
}

/// Copies a running cluster's data directory for a base backup, leaving out what a backup
/// leaves out: the WAL (streamed instead), the postmaster's pid and options, and temporary files.
fn copy_data_dir(from: &Path, to: &Path, owner: Option<ServerUser>) -> Result<(), ClusterError> {
    const SKIP: &[&str] = &[
        "postmaster.pid",
        "postmaster.opts",
        "pg_internal.init",
        "backup_label",
        "tablespace_map",
    ];
    const EMPTY: &[&str] = &[
        "pg_wal",
        "pg_replslot",
        "pg_dynshmem",
        "pg_notify",
        "pg_serial",
        "pg_snapshots",
        "pg_stat_tmp",
        "pg_subtrans",
    ];
    fs::create_dir(to).map_err(ClusterError::io(format!("creating {}", to.display())))?;
    fs::set_permissions(to, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(ClusterError::io(format!("chmod {}", to.display())))?;
    chown(to, owner)?;
    let entries =
        fs::read_dir(from).map_err(ClusterError::io(format!("reading {}", from.display())))?;
    for entry in entries {
        let entry = entry.map_err(ClusterError::io(format!("reading {}", from.display())))?;
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        if SKIP.contains(&name_str.as_ref()) || name_str.starts_with("pgsql_tmp") {
            continue;
        }
        let target = to.join(&name);
        // A file may vanish while the server runs (a dropped relation); the backup does not need it.
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            if EMPTY.contains(&name_str.as_ref()) {
                fs::create_dir(&target)
                    .map_err(ClusterError::io(format!("creating {}", target.display())))?;
                chown(&target, owner)?;
                if name_str == "pg_wal" {
                    let status = target.join("archive_status");
                    fs::create_dir(&status)
                        .map_err(ClusterError::io(format!("creating {}", status.display())))?;
                    chown(&status, owner)?;
                }
            } else {
                copy_data_dir(&entry.path(), &target, owner)?;
            }
        } else if meta.is_file() {
            match fs::copy(entry.path(), &target) {
                Ok(_) => chown(&target, owner)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(ClusterError::Io {
                        context: format!("copying {}", entry.path().display()),
                        source: e,
                    })
                }
            }
        }
    }
    Ok(())
}

fn chown(path: &Path, owner: Option<ServerUser>) -> Result<(), ClusterError> {
    match owner {
        Some(o) => std::os::unix::fs::chown(path, Some(o.uid), Some(o.gid))
            .map_err(ClusterError::io(format!("chown {}", path.display()))),
        None => Ok(()),
    }
}

/// Finds the directory with PostgreSQL's server binaries: `$TANDEM_PG_BIN`, else
/// `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin` (Debian's layout), else
/// `initdb` on `PATH`.
pub fn discover_bin_dir() -> Result<PathBuf, ClusterError> {
    if let Some(dir) = env::var_os("TANDEM_PG_BIN").filter(|dir| !dir.is_empty()) {
        // An explicit choice that is wrong should fail loudly, not fall back to another version.
        return check_bin_dir(PathBuf::from(dir), "TANDEM_PG_BIN");
    }
    pg_config_bin_dir()
        .filter(|dir| has_server_binaries(dir))
        .or_else(|| newest_versioned_bin_dir(Path::new("/usr/lib/postgresql")))
        .or_else(bin_dir_on_path)
        .ok_or(ClusterError::BinariesNotFound)
}

/// Where a client program of PostgreSQL (`pgbench`, `pg_dump`, `psql`) is: next to the server
/// binaries in `preferred` when they ship it, else in the directory [`discover_bin_dir`] finds,
/// else in the newest versioned directory under `/usr/lib/postgresql` that has it, else on `PATH`.
/// Server builds that carry only `initdb`, `pg_ctl` and `postgres` (the npm packages) lack them,
/// and a client of another major version still speaks to the server.
pub fn client_program(name: &str, preferred: Option<&Path>) -> Option<PathBuf> {
    let versioned = || {
        versioned_bin_dirs(Path::new("/usr/lib/postgresql"))
            .into_iter()
            .map(|bin| bin.join(name))
            .find(|p| p.is_file())
    };
    let on_path = || {
        env::split_paths(&env::var_os("PATH")?)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    };
    preferred
        .map(|dir| dir.join(name))
        .filter(|p| p.is_file())
        .or_else(|| {
            discover_bin_dir()
                .ok()
                .map(|d| d.join(name))
                .filter(|p| p.is_file())
        })
        .or_else(versioned)
        .or_else(on_path)
}

fn check_bin_dir(dir: PathBuf, origin: &'static str) -> Result<PathBuf, ClusterError> {
    for binary in ["initdb", "postgres"] {
        if !dir.join(binary).is_file() {
            return Err(ClusterError::BadBinDir {
                origin,
                dir,
                missing: binary,
            });
        }
    }
    Ok(dir)
}

fn has_server_binaries(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

fn pg_config_bin_dir() -> Option<PathBuf> {
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = String::from_utf8(output.stdout).ok()?;
    Some(PathBuf::from(dir.trim()))
}

/// The `bin` directory of the highest version under `root` (`root/15/bin`, `root/16/bin`, ...).
fn newest_versioned_bin_dir(root: &Path) -> Option<PathBuf> {
    versioned_bin_dirs(root)
        .into_iter()
        .find(|bin| has_server_binaries(bin))
}

/// The `bin` directories of the versions under `root`, highest version first.
fn versioned_bin_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<(Vec<u32>, PathBuf)> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(|part| part.parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    dirs.sort_by(|a, b| b.0.cmp(&a.0));
    dirs.into_iter().map(|(_, bin)| bin).collect()
}

fn bin_dir_on_path() -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path).find_map(|dir| {
        let initdb = dir.join("initdb");
        if !initdb.is_file() {
            return None;
        }
        // /usr/bin/initdb is often a link into a versioned directory that also holds pg_dump and
        // psql, which callers of `bin_dir` want too, so prefer the link's target directory.
        let target = fs::canonicalize(&initdb)
            .ok()
            .and_then(|real| real.parent().map(Path::to_path_buf));
        target
            .into_iter()
            .chain([dir])
            .find(|d| has_server_binaries(d))
    })
}

fn server_major_version(bin_dir: &Path) -> Result<u32, ClusterError> {
    let program = bin_dir.join("postgres");
    let output = Command::new(&program)
        .arg("--version")
        .output()
        .map_err(ClusterError::io(format!(
            "running {} --version",
            program.display()
        )))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(ClusterError::CommandFailed {
            program,
            status: output.status,
            output: text + &String::from_utf8_lossy(&output.stderr),
        });
    }
    parse_major_version(&text).ok_or(ClusterError::UnknownVersion {
        program,
        output: text,
    })
}

/// Reads the major version from `postgres (PostgreSQL) 15.14 (Debian 15.14-1.pgdg120+1)`; for
/// releases before 10 that is the first component only.
fn parse_major_version(output: &str) -> Option<u32> {
    let rest = output.split_once("(PostgreSQL)")?.1.trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn server_user() -> Result<Option<ServerUser>, ClusterError> {
    if !sys::is_root() {
        return Ok(None);
    }
    match sys::user_ids(SERVER_OS_USER) {
        Ok(Some((uid, gid))) => Ok(Some(ServerUser { uid, gid })),
        Ok(None) => Err(ClusterError::NoServerUser),
        Err(source) => Err(ClusterError::Io {
            context: format!("looking up OS user {SERVER_OS_USER:?}"),
            source,
        }),
    }
}

fn make_cluster_dir() -> io::Result<tempfile::TempDir> {
    let parent = env::temp_dir();
    remove_abandoned_cluster_dirs(&parent);
    let mut dir = tempfile::Builder::new()
        .prefix(DIR_PREFIX)
        .tempdir_in(&parent)?;
    let socket = dir.path().join("socket/.s.PGSQL.65535");
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        // A deep TMPDIR (macOS puts it under /var/folders/...) leaves no room for the socket path.
        dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in("/tmp")?;
    }
    fs::write(
        dir.path().join(CREATOR_FILE),
        std::process::id().to_string(),
    )?;
    Ok(dir)
}

/// A process that aborts or is killed never runs `Drop`: the parent-death signal stops its server
/// but its directory stays. Starting a cluster removes such directories: those whose creator is
/// gone and whose server is not running. The age check spares a directory whose creator is alive
/// in another PID namespace sharing this temp directory and is still running initdb.
fn remove_abandoned_cluster_dirs(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        if !entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let dir = entry.path();
        let marker = dir.join(CREATOR_FILE);
        let creator = fs::read_to_string(&marker)
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok());
        let old = fs::metadata(&marker)
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > ABANDONED_AFTER);
        let abandoned = creator.is_some_and(|pid| !sys::process_exists(pid))
            && old
            && !dir.join("data/postmaster.pid").exists();
        if abandoned {
            // Best effort: another user's directory, say, is not ours to remove.
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

/// Common setup for `initdb` and `postgres`: run as the server user, from a directory it can
/// read, with English messages, and signalled with `death_signal` if this process dies.
fn prepare(command: &mut Command, dir: &Path, owner: Option<ServerUser>, death_signal: i32) {
    command
        .current_dir(dir)
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    if let Some(owner) = owner {
        command.uid(owner.uid).gid(owner.gid);
    }
    sys::die_with_parent(command, death_signal);
}

/// A cluster's temporary directory: `data/`, `socket/`, `server.log` and `creator.pid`.
struct Layout {
    dir: tempfile::TempDir,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_path: PathBuf,
}

impl Layout {
    fn create(owner: Option<ServerUser>) -> Result<Layout, ClusterError> {
        let dir = make_cluster_dir().map_err(ClusterError::io("creating a temporary directory"))?;
        let layout = Layout {
            data_dir: dir.path().join("data"),
            socket_dir: dir.path().join("socket"),
            log_path: dir.path().join("server.log"),
            dir,
        };
        fs::create_dir(&layout.socket_dir).map_err(ClusterError::io(format!(
            "creating {}",
            layout.socket_dir.display()
        )))?;
        if let Some(owner) = owner {
            // initdb creates data/ inside, and the server creates its socket.
            for path in [layout.dir.path(), &layout.socket_dir] {
                std::os::unix::fs::chown(path, Some(owner.uid), Some(owner.gid))
                    .map_err(ClusterError::io(format!("chown {}", path.display())))?;
            }
        }
        Ok(layout)
    }
}

/// Starts the postmaster on a free port and waits until it accepts connections, trying another
/// port when someone else took the one we picked.
fn start_postmaster(
    bin_dir: &Path,
    layout: &Layout,
    settings: &[(String, String)],
    owner: Option<ServerUser>,
) -> Result<(u16, Child, Keepalive), ClusterError> {
    let mut attempt = 1;
    loop {
        let port = free_port().map_err(ClusterError::io("finding a free TCP port"))?;
        let (mut postmaster, keepalive) = spawn_postmaster(bin_dir, layout, port, settings, owner)?;
        let config = connect_config(&layout.socket_dir, port, "postgres");
        let failure = match wait_until_ready(&mut postmaster, &config) {
            Ok(()) => return Ok((port, postmaster, keepalive)),
            Err(Startup::Exited(status)) => {
                let log = log_tail(&layout.log_path);
                if port_taken(&log) && attempt < PORT_ATTEMPTS {
                    attempt += 1;
                    continue;
                }
                ClusterError::ServerExited { status, log }
            }
            Err(Startup::TimedOut(last_error)) => ClusterError::StartTimeout {
                timeout: START_TIMEOUT,
                last_error,
                log: log_tail(&layout.log_path),
            },
            Err(Startup::Wait(source)) => ClusterError::Io {
                context: "waiting for postgres to start".into(),
                source,
            },
        };
        // Best effort: the startup failure is the error worth reporting.
        let _ = stop_postmaster(&mut postmaster);
        return Err(failure);
    }
}

fn spawn_postmaster(
    bin_dir: &Path,
    layout: &Layout,
    port: u16,
    settings: &[(String, String)],
    owner: Option<ServerUser>,
) -> Result<(Child, Keepalive), ClusterError> {
    let program = bin_dir.join("postgres");
    let log = File::create(&layout.log_path).map_err(ClusterError::io(format!(
        "creating {}",
        layout.log_path.display()
    )))?;
    let stderr = log
        .try_clone()
        .map_err(ClusterError::io("duplicating the server log handle"))?;
    let mut command = Command::new(&program);
    command
        .arg("-D")
        .arg(&layout.data_dir)
        .arg("-k")
        .arg(&layout.socket_dir)
        .arg("-p")
        .arg(port.to_string())
        .stdout(log)
        .stderr(stderr);
    let extra = settings.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    for (name, value) in BASE_SETTINGS.iter().copied().chain(extra) {
        command.arg("-c").arg(format!("{name}={value}"));
    }
    prepare(&mut command, layout.dir.path(), owner, libc::SIGQUIT);
    spawn_supervised(command).map_err(ClusterError::io(format!("starting {}", program.display())))
}

fn initdb(
    bin_dir: &Path,
    layout: &Layout,
    owner: Option<ServerUser>,
    password_auth: bool,
) -> Result<(), ClusterError> {
    let program = bin_dir.join("initdb");
    let mut command = Command::new(&program);
    if password_auth {
        command.args(["--auth-local=trust", "--auth-host=scram-sha-256"]);
    } else {
        command.args(["-A", "trust"]);
    }
    command
        .args(["-U", SUPERUSER, "--no-sync", "-E", "UTF8"])
        .args(["--locale=C", "-D"])
        .arg(&layout.data_dir);
    prepare(&mut command, layout.dir.path(), owner, libc::SIGKILL);
    let output = command
        .output()
        .map_err(ClusterError::io(format!("running {}", program.display())))?;
    if output.status.success() {
        return Ok(());
    }
    Err(ClusterError::CommandFailed {
        program,
        status: output.status,
        output: String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    })
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn connect_config(socket_dir: &Path, port: u16, dbname: &str) -> postgres::Config {
    let mut config = postgres::Config::new();
    config
        .host_path(socket_dir)
        .port(port)
        .user(SUPERUSER)
        .dbname(dbname)
        .connect_timeout(Duration::from_secs(10));
    config
}

/// The thread that spawned the postmaster must outlive it: Linux sends the parent-death signal
/// when that *thread* exits, not the process. So the postmaster is spawned from a thread of its
/// own that waits until this value is dropped.
#[derive(Debug)]
struct Keepalive {
    release: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Keepalive {
    fn drop(&mut self) {
        self.release.take();
        if let Some(thread) = self.thread.take() {
            // The thread only waits on a channel; it cannot panic.
            let _ = thread.join();
        }
    }
}

fn spawn_supervised(mut command: Command) -> io::Result<(Child, Keepalive)> {
    let (spawned_tx, spawned_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let thread = thread::Builder::new()
        .name("tandem-pg-postmaster".into())
        .spawn(move || {
            let spawned = command.spawn();
            let ok = spawned.is_ok();
            if spawned_tx.send(spawned).is_ok() && ok {
                // Returns when the Keepalive drops its sender.
                let _ = release_rx.recv();
            }
        })?;
    let keepalive = Keepalive {
        release: Some(release_tx),
        thread: Some(thread),
    };
    let child = spawned_rx
        .recv()
        .map_err(|_| io::Error::other("the postmaster's spawning thread ended early"))??;
    Ok((child, keepalive))
}

enum Startup {
    Exited(ExitStatus),
    TimedOut(String),
    Wait(io::Error),
}

fn wait_until_ready(postmaster: &mut Child, config: &postgres::Config) -> Result<(), Startup> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = postmaster.try_wait().map_err(Startup::Wait)? {
            return Err(Startup::Exited(status));
        }
        // "the database system is starting up" and a missing socket both mean: not yet.
        let last_error = match config.connect(NoTls) {
            Ok(_) => return Ok(()),
            Err(error) => tandem_pg::error::describe(&error),
        };
        if Instant::now() >= deadline {
            return Err(Startup::TimedOut(last_error));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Fast shutdown (SIGINT): sessions are rolled back and the server exits after a checkpoint,
/// which is quick with fsync off. A server stuck for 10s gets SIGKILL.
fn stop_postmaster(postmaster: &mut Child) -> io::Result<()> {
    stop_process(postmaster, libc::SIGINT)
}

/// Sends `signal`, and SIGKILL to a process that has not exited 10s later.
fn stop_process(postmaster: &mut Child, signal: libc::c_int) -> io::Result<()> {
    if postmaster.try_wait()?.is_some() {
        return Ok(());
    }
    sys::signal(postmaster.id(), signal)?;
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if postmaster.try_wait()?.is_some() {
            return Ok(());
        }
        thread::sleep(POLL_INTERVAL);
    }
    postmaster.kill()?;
    postmaster.wait()?;
    Ok(())
}

fn log_tail(path: &Path) -> String {
    let text = match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(error) => return format!("(cannot read {}: {error})", path.display()),
    };
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

fn port_taken(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("could not create any TCP/IP sockets")
}

/// Percent-encodes all but RFC 3986 unreserved characters (and `/` when `keep_slash`). Not the
/// form encoding of the `url` crate: libpq does not decode `+` as a space.
fn percent_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(byte))
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A certificate authority made for one cluster and the server certificate it signs, so TLS can
/// be tested end to end, verification included, without any certificate on the machine.
pub mod tls {
    use super::{ClusterError, ServerUser};
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    /// The server's certificate is valid for this name only, so connecting to `127.0.0.1` with
    /// `sslmode=verify-full` is a hostname mismatch.
    pub const SERVER_NAME: &str = "localhost";

    /// A certificate authority: its certificate as PEM, and what it needs to sign others.
    pub struct Authority {
        cert: rcgen::Certificate,
        key: KeyPair,
    }

    impl Authority {
        /// A new self-signed CA under `common_name`.
        pub fn new(common_name: &str) -> Result<Authority, rcgen::Error> {
            let mut params = CertificateParams::new(Vec::new())?;
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(DnType::CommonName, common_name);
            let key = KeyPair::generate()?;
            let cert = params.self_signed(&key)?;
            Ok(Authority { cert, key })
        }

        pub fn cert_pem(&self) -> String {
            self.cert.pem()
        }

        /// A certificate for `names`, signed by this CA; returns the certificate and its
        /// private key, both PEM.
        pub fn sign_server(&self, names: &[&str]) -> Result<(String, String), rcgen::Error> {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            let mut params = CertificateParams::new(names)?;
            params
                .distinguished_name
                .push(DnType::CommonName, SERVER_NAME);
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &self.cert, &self.key)?;
            Ok((cert.pem(), key.serialize_pem()))
        }
    }

    pub(super) struct Files {
        pub root_cert: PathBuf,
        server_cert: PathBuf,
        server_key: PathBuf,
    }

    impl Files {
        pub fn settings(&self) -> Vec<(String, String)> {
            vec![
                ("ssl".into(), "on".into()),
                (
                    "ssl_cert_file".into(),
                    self.server_cert.display().to_string(),
                ),
                ("ssl_key_file".into(), self.server_key.display().to_string()),
            ]
        }
    }

    /// Writes a fresh CA and a server certificate for `localhost` into `dir`. The server refuses
    /// a key file that others can read, or that belongs to another user unless that is root.
    pub(super) fn write_certificates(
        dir: &Path,
        owner: Option<ServerUser>,
    ) -> Result<Files, ClusterError> {
        let ca = Authority::new("tandem test cluster CA")?;
        let (cert, key) = ca.sign_server(&[SERVER_NAME])?;
        fs::create_dir(dir).map_err(ClusterError::io(format!("creating {}", dir.display())))?;
        let files = Files {
            root_cert: dir.join("root.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
        };
        for (path, text, mode) in [
            (&files.root_cert, ca.cert_pem(), 0o644),
            (&files.server_cert, cert, 0o644),
            (&files.server_key, key, 0o600),
        ] {
            let context = || format!("writing {}", path.display());
            fs::write(path, text).map_err(ClusterError::io(context()))?;
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .map_err(ClusterError::io(context()))?;
            if let Some(owner) = owner {
                std::os::unix::fs::chown(path, Some(owner.uid), Some(owner.gid))
                    .map_err(ClusterError::io(context()))?;
            }
        }
        Ok(files)
    }
}

/// The few OS calls std does not wrap. Each function allows `unsafe` for itself alone.
mod sys {
    use std::ffi::CString;
    use std::io;
    use std::process::Command;

    /// `initdb` and `postgres` check the effective user id, so that is what decides.
    #[allow(unsafe_code)]
    pub(super) fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    /// The uid and gid of OS user `name`, through NSS like every other tool.
    #[allow(unsafe_code)]
    pub(super) fn user_ids(name: &str) -> io::Result<Option<(u32, u32)>> {
        let name = CString::new(name)?;
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        // SAFETY: passwd is plain old data; all-zero is a valid (empty) value.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer refers to a live local of the size passed; getpwnam_r writes only
        // into `entry`, `buf` and `result`, and we read `entry`'s integer fields only.
        let rc = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut entry,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok((!result.is_null()).then_some((entry.pw_uid, entry.pw_gid)))
    }

    /// Sends `signal` to process `pid`; std can only send SIGKILL.
    #[allow(unsafe_code)]
    pub(super) fn signal(pid: u32, signal: libc::c_int) -> io::Result<()> {
        let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
        // SAFETY: kill has no memory-safety preconditions. Callers pass their unreaped child,
        // whose pid cannot have been recycled for another process.
        if unsafe { libc::kill(pid, signal) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Whether a process `pid` exists (perhaps as another user's, or as a zombie).
    #[allow(unsafe_code)]
    pub(super) fn process_exists(pid: u32) -> bool {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: kill has no memory-safety preconditions, and signal 0 sends nothing.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        alive || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }

    /// Asks the kernel to send `signal` to the child when the spawning thread dies, so a server
    /// never outlives a test run that aborted or was killed.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    pub(super) fn die_with_parent(command: &mut Command, signal: libc::c_int) {
        use std::os::unix::process::CommandExt;
        let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
        let signal = libc::c_ulong::try_from(signal).unwrap_or(libc::SIGKILL as libc::c_ulong);
        // SAFETY: the closure runs between fork and exec. It calls only prctl and getppid, which
        // are async-signal-safe, and builds io::Errors from raw codes, which does not allocate.
        // std runs it after setuid, which would otherwise clear the setting.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, signal, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // Had we died before prctl, no signal would ever come.
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }

    /// Elsewhere there is no parent-death signal; `Drop` and the test kit's exit hook still stop
    /// the server on every orderly exit.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn die_with_parent(_command: &mut Command, _signal: libc::c_int) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_major_versions() {
        let debian = "postgres (PostgreSQL) 15.14 (Debian 15.14-1.pgdg120+1)\n";
        assert_eq!(parse_major_version(debian), Some(15));
        assert_eq!(
            parse_major_version("postgres (PostgreSQL) 17beta2"),
            Some(17)
        );
        assert_eq!(parse_major_version("postgres (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_major_version("something else 15.1"), None);
    }

    #[test]
    fn picks_the_newest_versioned_bin_dir() {
        let root = tempfile::tempdir().unwrap();
        for version in ["9.6", "15", "16", "notaversion"] {
            let bin = root.path().join(version).join("bin");
            fs::create_dir_all(&bin).unwrap();
            for binary in ["initdb", "postgres"] {
                File::create(bin.join(binary)).unwrap();
            }
        }
        // A newer version without server binaries (client-only install) is skipped.
        fs::create_dir_all(root.path().join("17/bin")).unwrap();
        assert_eq!(
            newest_versioned_bin_dir(root.path()),
            Some(root.path().join("16/bin"))
        );
        assert_eq!(newest_versioned_bin_dir(&root.path().join("missing")), None);
    }

    #[test]
    fn removes_only_abandoned_cluster_dirs() {
        let parent = tempfile::tempdir().unwrap();
        let mut exited = Command::new("true").spawn().unwrap();
        exited.wait().unwrap();
        let gone = exited.id();
        let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        let make = |name: &str, creator: Option<u32>, old: bool, running: bool| {
            let dir = parent.path().join(name);
            fs::create_dir_all(dir.join("data")).unwrap();
            if running {
                File::create(dir.join("data/postmaster.pid")).unwrap();
            }
            if let Some(pid) = creator {
                let marker = dir.join(CREATOR_FILE);
                fs::write(&marker, pid.to_string()).unwrap();
                if old {
                    let file = File::options().write(true).open(&marker).unwrap();
                    file.set_modified(hour_ago).unwrap();
                }
            }
            dir
        };
        let abandoned = make("tandem-pg-abandoned", Some(gone), true, false);
        let ours = make("tandem-pg-ours", Some(std::process::id()), true, false);
        let running = make("tandem-pg-running", Some(gone), true, true);
        let fresh = make("tandem-pg-fresh", Some(gone), false, false);
        let unmarked = make("tandem-pg-unmarked", None, true, false);
        let other = make("someone-else", Some(gone), true, false);

        remove_abandoned_cluster_dirs(parent.path());
        assert!(!abandoned.exists());
        for kept in [ours, running, fresh, unmarked, other] {
            assert!(kept.exists(), "{} was removed", kept.display());
        }
    }

    #[test]
    fn encodes_url_parts() {
        assert_eq!(
            percent_encode("/tmp/tandem-pg-x1", true),
            "/tmp/tandem-pg-x1"
        );
        assert_eq!(percent_encode("a b/c", false), "a%20b%2Fc");
        assert_eq!(percent_encode("é+", false), "%C3%A9%2B");
    }

    #[test]
    fn recognises_port_collisions() {
        let log = "LOG:  could not bind IPv4 address \"127.0.0.1\": Address already in use\n\
                   FATAL:  could not create any TCP/IP sockets";
        assert!(port_taken(log));
        assert!(!port_taken("FATAL:  data directory has wrong ownership"));
    }
}
