//! The connection settings libpq would use, and where each came from: the given URL or
//! `key=value` string first, then the service it names (or PGSERVICE), then the PG* variables,
//! then libpq's defaults. From them come the endpoints to try, in order, and the URL that
//! `tandem latest url` prints.

use super::{conninfo, pgpass, service};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where Debian's libpq, and so psql on the machines tandem is tested on, looks for the server's
/// socket when no host is set.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";
const DEFAULT_PORT: u16 = 5432;

/// The variable libpq reads for each keyword. PGSERVICE is read before these, for the service.
const ENVIRONMENT: &[(&str, &str)] = &[
    ("host", "PGHOST"),
    ("hostaddr", "PGHOSTADDR"),
    ("port", "PGPORT"),
    ("dbname", "PGDATABASE"),
    ("user", "PGUSER"),
    ("password", "PGPASSWORD"),
    ("passfile", "PGPASSFILE"),
    ("options", "PGOPTIONS"),
    ("application_name", "PGAPPNAME"),
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("target_session_attrs", "PGTARGETSESSIONATTRS"),
    ("channel_binding", "PGCHANNELBINDING"),
    ("client_encoding", "PGCLIENTENCODING"),
    ("gssencmode", "PGGSSENCMODE"),
];

/// Where a setting came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The URL or `key=value` string tandem was given.
    Given,
    /// The service file's section for the service named.
    Service,
    /// A PG* variable.
    Environment,
    /// libpq's default.
    Default,
}

/// Resolved connection settings; see the module doc for the order.
#[derive(Debug, Clone)]
pub struct Settings {
    pub(super) values: BTreeMap<String, (String, Source)>,
    home: Option<String>,
}

/// One server to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: Host,
    pub port: u16,
    /// The IP address to connect to instead of resolving `host` (libpq's `hostaddr`).
    pub hostaddr: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Tcp(String),
    /// The directory holding the server's socket `.s.PGSQL.<port>`.
    Socket(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.host, &self.hostaddr) {
            (Host::Socket(dir), _) => {
                write!(
                    f,
                    "socket {}",
                    dir.join(format!(".s.PGSQL.{}", self.port)).display()
                )
            }
            (Host::Tcp(h), Some(addr)) if !h.is_empty() => {
                write!(f, "host {h} (address {addr}), port {}", self.port)
            }
            (Host::Tcp(_), Some(addr)) => write!(f, "address {addr}, port {}", self.port),
            (Host::Tcp(h), None) => write!(f, "host {h}, port {}", self.port),
        }
    }
}

impl Settings {
    /// The settings for `text` (a URL or `key=value` string, or none), filled in from the
    /// process's environment and files as libpq would.
    pub fn resolve(text: Option<&str>) -> Result<Settings> {
        Settings::resolve_with(text, &|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// [`Settings::resolve`] with the environment read through `env`.
    pub fn resolve_with(
        text: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings> {
        let mut values = BTreeMap::new();
        if let Some(text) = text {
            for (key, value) in conninfo::parse(text)? {
                values.insert(key, (value, Source::Given));
            }
        }
        let service = match values.get("service") {
            Some((name, _)) => Some(name.clone()),
            None => env("PGSERVICE").inspect(|name| {
                values.insert("service".into(), (name.clone(), Source::Environment));
            }),
        };
        if let Some(name) = service {
            for (key, value) in service::lookup(&name, &service::files(env))? {
                values.entry(key).or_insert((value, Source::Service));
            }
        }
        for (key, var) in ENVIRONMENT {
            if !values.contains_key(*key) {
                if let Some(value) = env(var) {
                    values.insert(key.to_string(), (value, Source::Environment));
                }
            }
        }
        let mut default = |key: &str, value: String| {
            values
                .entry(key.to_string())
                .or_insert((value, Source::Default));
        };
        default("port", DEFAULT_PORT.to_string());
        default(
            "user",
            env("USER")
                .or_else(|| env("LOGNAME"))
                .unwrap_or_else(|| "postgres".into()),
        );
        default("sslmode", "prefer".into());
        if !values.contains_key("host") && !values.contains_key("hostaddr") {
            values.insert("host".into(), (DEFAULT_SOCKET_DIR.into(), Source::Default));
        }
        // libpq's database defaults to the user name.
        let user = values["user"].0.clone();
        values
            .entry("dbname".into())
            .or_insert((user, Source::Default));
        Ok(Settings {
            values,
            home: env("HOME"),
        })
    }

    /// The value of a libpq keyword, after the service, the variables and the defaults.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|(v, _)| v.as_str())
    }

    /// Where a keyword's value came from.
    pub fn source(&self, key: &str) -> Option<Source> {
        self.values.get(key).map(|(_, s)| *s)
    }

    /// Whether anything at all was set: a string, a service or a variable.
    pub fn configured(&self) -> bool {
        self.values.values().any(|(_, s)| *s != Source::Default)
    }

    pub fn user(&self) -> &str {
        &self.values["user"].0
    }

    pub fn dbname(&self) -> &str {
        &self.values["dbname"].0
    }

    /// The servers to try, in order: one per host, each with its port (a single port applies to
    /// every host) and `hostaddr`.
    pub fn endpoints(&self) -> Result<Vec<Endpoint>> {
        let list = |key: &str| -> Vec<String> {
            self.get(key)
                .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default()
        };
        let hostaddrs = list("hostaddr");
        let mut hosts = list("host");
        if hosts.is_empty() {
            hosts = vec![String::new(); hostaddrs.len()];
        }
        if !hostaddrs.is_empty() && hostaddrs.len() != hosts.len() {
            return Err(Error::Connect(format!(
                "{} host names but {} hostaddr addresses; give one address per host",
                hosts.len(),
                hostaddrs.len()
            )));
        }
        let ports = list("port");
        if ports.len() != 1 && ports.len() != hosts.len() {
            return Err(Error::Connect(format!(
                "{} ports for {} hosts; give one port for all of them or one per host",
                ports.len(),
                hosts.len()
            )));
        }
        hosts
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let port = match ports.get(i).or(ports.first()).map(String::as_str) {
                    None | Some("") => DEFAULT_PORT,
                    Some(p) => p.parse().map_err(|_| {
                        Error::Connect(format!(
                            "port {p:?} is not a port number ({})",
                            self.origin("port")
                        ))
                    })?,
                };
                let hostaddr = hostaddrs.get(i).filter(|a| !a.is_empty()).cloned();
                let host = if host.starts_with('/') {
                    Host::Socket(PathBuf::from(host))
                } else if host.is_empty() && hostaddr.is_none() {
                    Host::Socket(PathBuf::from(DEFAULT_SOCKET_DIR))
                } else {
                    Host::Tcp(host.clone())
                };
                Ok(Endpoint {
                    host,
                    port,
                    hostaddr,
                })
            })
            .collect()
    }

    /// Where to say a setting came from, for messages: the URL, the service, or the variable.
    pub fn origin(&self, key: &str) -> String {
        match self.source(key) {
            Some(Source::Given) => "from the connection string".into(),
            Some(Source::Service) => {
                format!("from service {:?}", self.get("service").unwrap_or_default())
            }
            Some(Source::Environment) => {
                let var = ENVIRONMENT
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map_or("", |(_, v)| v);
                format!("from {var}")
            }
            Some(Source::Default) | None => "libpq's default".into(),
        }
    }

    /// The password file libpq would read.
    pub fn passfile(&self) -> Option<PathBuf> {
        pgpass::path(self.get("passfile"), self.home.as_deref())
    }

    /// The password for `endpoint`: the one set, else the password file's line for it.
    pub(crate) fn password(&self, endpoint: &Endpoint) -> Password {
        if let Some((p, source)) = self.values.get("password") {
            return Password::Set(p.clone(), *source);
        }
        let Some(file) = self.passfile() else {
            return Password::None(None);
        };
        let host = match &endpoint.host {
            Host::Socket(_) => None,
            Host::Tcp(h) if h.is_empty() => endpoint.hostaddr.as_deref(),
            Host::Tcp(h) => Some(h.as_str()),
        };
        match pgpass::lookup(&file, host, endpoint.port, self.dbname(), self.user()) {
            pgpass::Lookup::Found(p) => Password::FromFile(p, file),
            other => Password::None(Some((file, other))),
        }
    }
}

/// The password for one endpoint, and where it came from.
#[derive(Debug, Clone)]
pub(crate) enum Password {
    Set(String, Source),
    FromFile(String, PathBuf),
    /// None set, and what the password file (if any) said.
    None(Option<(PathBuf, pgpass::Lookup)>),
}

impl Password {
    pub(crate) fn value(&self) -> Option<&str> {
        match self {
            Password::Set(p, _) | Password::FromFile(p, _) => Some(p),
            Password::None(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: Option<&str>, vars: &[(&str, &str)]) -> Settings {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::resolve_with(text, &|k| {
            vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
        .unwrap()
    }

    #[test]
    fn the_string_comes_before_the_variables_and_the_defaults() {
        let s = resolve(
            Some("host=db dbname=app"),
            &[("PGHOST", "other"), ("PGUSER", "alice"), ("PGPORT", "6432")],
        );
        assert_eq!(s.get("host"), Some("db"));
        assert_eq!(s.get("user"), Some("alice"));
        assert_eq!(s.source("user"), Some(Source::Environment));
        assert_eq!(
            s.endpoints().unwrap(),
            vec![Endpoint {
                host: Host::Tcp("db".into()),
                port: 6432,
                hostaddr: None
            }]
        );
        let s = resolve(None, &[("USER", "bob")]);
        assert!(!s.configured());
        assert_eq!((s.user(), s.dbname()), ("bob", "bob"));
        assert_eq!(
            s.endpoints().unwrap()[0].host,
            Host::Socket(DEFAULT_SOCKET_DIR.into())
        );
    }

    #[test]
    fn several_hosts_take_one_port_each_or_one_for_all() {
        let s = resolve(Some("host=a,/tmp/s port=1,2"), &[]);
        let e = s.endpoints().unwrap();
        assert_eq!(e[0].host, Host::Tcp("a".into()));
        assert_eq!(
            (e[1].host.clone(), e[1].port),
            (Host::Socket("/tmp/s".into()), 2)
        );
        assert_eq!(
            resolve(Some("host=a,b port=7"), &[]).endpoints().unwrap()[1].port,
            7
        );
        assert!(resolve(Some("host=a,b,c port=1,2"), &[])
            .endpoints()
            .is_err());
    }

    #[test]
    fn urls_are_printed_for_libpq_and_the_drivers() {
        let s = resolve(
            Some("postgres://app:pw@db:6432/app?sslmode=verify-full&options=-c%20statement_timeout%3D5s"),
            &[],
        );
        assert_eq!(
            s.url(Some("-c search_path=v2,public")).unwrap(),
            "postgres://app:pw@db:6432/app?sslmode=verify-full&options=-c%20statement_timeout%3D5s%20-c%20search_path%3Dv2,public"
        );
        // A password from the environment is not printed; socket directories are parameters.
        let s = resolve(
            None,
            &[
                ("PGHOST", "/run/pg,db"),
                ("PGPORT", "5433,5434"),
                ("PGUSER", "u"),
                ("PGPASSWORD", "secret"),
                ("PGDATABASE", "d b"),
            ],
        );
        assert_eq!(
            s.url(None).unwrap(),
            "postgres://u@/d%20b?host=/run/pg,db&port=5433,5434"
        );
        let s = resolve(Some("host=::1,h port=1 user=u dbname=d"), &[]);
        assert_eq!(s.url(None).unwrap(), "postgres://u@[::1]:1,h:1/d");
    }
}
