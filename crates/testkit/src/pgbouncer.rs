//! A real PgBouncer for tests, in transaction mode on a loopback port, with its configuration,
//! user list and log in a temporary directory of its own. It runs as the unprivileged `postgres`
//! OS user when tests run as root, and stops with the value or, should the test binary die, by
//! the kernel's parent-death signal, as the test clusters do. Debian's packaged service plays no
//! part.

use std::fmt::Write as _;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use postgres::{NoTls, SimpleQueryMessage};
use tandem_cluster::ServerProcess;

/// Where Debian's `pgbouncer` package puts the binary, which is not on a normal user's PATH.
const DEBIAN_BINARY: &str = "/usr/sbin/pgbouncer";
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The admin console's user ([`PgBouncer::admin`]); it must be in the user list as well.
const ADMIN_USER: &str = "postgres";

/// A running PgBouncer; see the module doc.
pub struct PgBouncer {
    port: u16,
    dir: tempfile::TempDir,
    state: Mutex<State>,
    process: Mutex<Option<ServerProcess>>,
}

/// What the configuration holds, rewritten as a whole on every change.
struct State {
    databases: Vec<String>,
    users: Vec<String>,
}

/// The pgbouncer binary: `TANDEM_PGBOUNCER`, else `pgbouncer` on PATH, else Debian's
/// `/usr/sbin/pgbouncer`. Panics, saying what to install, when there is none.
pub fn pgbouncer_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TANDEM_PGBOUNCER") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "tandem-testkit: TANDEM_PGBOUNCER={} is not a file",
            path.display()
        );
        return path;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("pgbouncer"))
            .find(|p| p.is_file())
    });
    on_path
        .or_else(|| Some(PathBuf::from(DEBIAN_BINARY)).filter(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!(
                "tandem-testkit: pgbouncer not found on PATH or at {DEBIAN_BINARY}: install it \
                 with `apt-get install pgbouncer` (scripts/install-deps.sh does), or set \
                 TANDEM_PGBOUNCER to the binary"
            )
        })
}

impl PgBouncer {
    /// Starts PgBouncer in transaction mode with `databases` (lines of its `[databases]`
    /// section, `name = host=... dbname=...`, as given) and `users` in its user list
    /// (authentication is `trust`, but PgBouncer still admits only listed users). Returns once
    /// its admin console answers. Panics with PgBouncer's log on failure.
    pub fn start(databases: &[String], users: &[&str]) -> PgBouncer {
        let binary = pgbouncer_binary();
        let dir = tempfile::Builder::new()
            .prefix("tandem-pgbouncer-")
            .tempdir()
            .unwrap_or_else(|e| panic!("tandem-testkit: creating a directory for pgbouncer: {e}"));
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("tandem-testkit: finding a free port for pgbouncer: {e}"));
        let mut all_users = vec![ADMIN_USER.to_string()];
        all_users.extend(users.iter().map(|u| u.to_string()));
        let bouncer = PgBouncer {
            port,
            dir,
            state: Mutex::new(State {
                databases: databases.to_vec(),
                users: all_users,
            }),
            process: Mutex::new(None),
        };
        bouncer.write_files();
        let log = fs::File::create(bouncer.log_path())
            .unwrap_or_else(|e| panic!("tandem-testkit: creating pgbouncer's log: {e}"));
        let mut command = Command::new(&binary);
        command
            .arg(bouncer.config_path())
            .stdout(Stdio::null())
            .stderr(log);
        let config = bouncer.config_path();
        let users_file = bouncer.users_path();
        let log_path = bouncer.log_path();
        let process = ServerProcess::spawn(
            command,
            bouncer.dir.path(),
            &[&config, &users_file, &log_path],
        )
        .unwrap_or_else(|e| panic!("tandem-testkit: {e}"));
        *bouncer.lock_process() = Some(process);
        bouncer.wait_until_ready();
        bouncer
    }

    /// The port PgBouncer listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://USER@127.0.0.1:PORT/POOL`: a client of pool `POOL` (a `[databases]` name).
    pub fn url(&self, user: &str, pool: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{pool}", self.port)
    }

    /// Connection settings for a client of `pool` as `user`.
    pub fn config(&self, user: &str, pool: &str) -> postgres::Config {
        let mut config = postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user(user)
            .dbname(pool)
            .connect_timeout(Duration::from_secs(10));
        config
    }

    /// A new session through pool `pool` as `user`. Panics with the error and PgBouncer's log.
    pub fn connect(&self, user: &str, pool: &str) -> postgres::Client {
        self.config(user, pool).connect(NoTls).unwrap_or_else(|e| {
            panic!(
                "tandem-testkit: connecting through pgbouncer to pool {pool} as {user}: {}\n{}",
                tandem_pg::error::describe(&e),
                self.log()
            )
        })
    }

    /// Adds a line to `[databases]` and reloads; the pool is usable when this returns, since
    /// the admin console's RELOAD answers only once the configuration is read.
    pub fn add_database(&self, line: &str) {
        self.lock_state().databases.push(line.to_string());
        self.reload();
    }

    /// Adds a user to the user list and reloads.
    pub fn add_user(&self, user: &str) {
        self.lock_state().users.push(user.to_string());
        self.reload();
    }

    /// Runs a command on the admin console (`SHOW POOLS`, `RELOAD`), which speaks only the
    /// simple-query protocol, and returns its rows, each as its columns' text.
    pub fn admin(&self, command: &str) -> Vec<Vec<Option<String>>> {
        let mut client = self.connect(ADMIN_USER, "pgbouncer");
        let messages = client.simple_query(command).unwrap_or_else(|e| {
            panic!(
                "tandem-testkit: pgbouncer admin console, {command}: {}\n{}",
                tandem_pg::error::describe(&e),
                self.log()
            )
        });
        messages
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                ),
                _ => None,
            })
            .collect()
    }

    /// PgBouncer's log so far, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path())
            .unwrap_or_else(|e| format!("(cannot read pgbouncer's log: {e})"))
    }

    fn reload(&self) {
        self.write_files();
        self.admin("RELOAD");
    }

    fn write_files(&self) {
        let state = self.lock_state();
        let mut config = String::from("[databases]\n");
        for line in &state.databases {
            config.push_str(line);
            config.push('\n');
        }
        // Transaction pooling, as production setups run it: a server connection serves a
        // client for one transaction at a time, and is not reset in between.
        let _ = write!(
            config,
            "[pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {users}\n\
             admin_users = {ADMIN_USER}\n\
             pool_mode = transaction\n\
             max_client_conn = 200\n\
             default_pool_size = 10\n\
             server_login_retry = 1\n",
            port = self.port,
            users = self.users_path().display(),
        );
        let users: String = state
            .users
            .iter()
            .map(|u| format!("\"{}\" \"\"\n", u.replace('"', "\"\"")))
            .collect();
        for (path, text) in [(self.config_path(), config), (self.users_path(), users)] {
            fs::write(&path, text)
                .unwrap_or_else(|e| panic!("tandem-testkit: writing {}: {e}", path.display()));
        }
    }

    /// Polls the admin console until PgBouncer listens, failing early if it exited.
    fn wait_until_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .lock_process()
                .as_mut()
                .and_then(|p| p.try_wait().ok().flatten())
            {
                panic!(
                    "tandem-testkit: pgbouncer exited while starting ({status}):\n{}",
                    self.log()
                );
            }
            let last_error = match self.config(ADMIN_USER, "pgbouncer").connect(NoTls) {
                Ok(_) => return,
                Err(e) => tandem_pg::error::describe(&e),
            };
            assert!(
                Instant::now() < deadline,
                "tandem-testkit: pgbouncer did not accept connections within {}s ({last_error}):\n{}",
                START_TIMEOUT.as_secs(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("pgbouncer.ini")
    }

    fn users_path(&self) -> PathBuf {
        self.dir.path().join("users.txt")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("pgbouncer.log")
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_process(&self) -> std::sync::MutexGuard<'_, Option<ServerProcess>> {
        self.process.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The directory holding the configuration, for tests that show it in a message.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // Stop the process before its directory goes.
        self.lock_process().take();
    }
}
