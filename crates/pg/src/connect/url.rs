//! The connection URL `tandem latest url` prints, written for the client that will read it.
//! libpq (and psql, psycopg and everything else built on it) reads every keyword tandem does;
//! asyncpg and node-postgres read URLs of their own, and each takes some keywords differently:
//! asyncpg sends any parameter it does not know to the server as a setting, which the server
//! refuses for `connect_timeout`; node-postgres connects to one host only and reads `sslmode`
//! its own way unless told to read it as libpq does. Keywords a client cannot take are left
//! out, each with a note saying so, or refused when leaving them out would change where the
//! client connects.

use super::settings::{Host, Settings, Source};
use crate::error::{Error, Result};

/// The client a URL is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UrlClient {
    /// libpq, and psql, psycopg, pgx, Npgsql-style libpq readers: every keyword.
    #[default]
    Libpq,
    /// Python's asyncpg.
    Asyncpg,
    /// Node's `pg` (node-postgres).
    NodePostgres,
}

impl UrlClient {
    pub fn name(self) -> &'static str {
        match self {
            UrlClient::Libpq => "libpq",
            UrlClient::Asyncpg => "asyncpg",
            UrlClient::NodePostgres => "node-postgres",
        }
    }

    /// What the client does with a keyword tandem would otherwise write.
    fn takes(self, key: &str, value: &str) -> Take {
        use Take::*;
        match (self, key) {
            (UrlClient::Libpq, _) => Keep,
            // Settings the server accepts at startup, and what asyncpg parses itself.
            (
                UrlClient::Asyncpg,
                "application_name" | "sslmode" | "sslrootcert" | "target_session_attrs",
            ) => Keep,
            (UrlClient::Asyncpg, "gssencmode") if value != "require" => Same,
            (UrlClient::Asyncpg, "fallback_application_name") => Rename("application_name"),
            (UrlClient::Asyncpg, "connect_timeout") => {
                Drop("asyncpg takes it as connect(timeout=...) in seconds, not in the URL")
            }
            (UrlClient::Asyncpg, "client_encoding") => {
                Drop("asyncpg always speaks UTF8 to the server")
            }
            (UrlClient::Asyncpg, _) => Drop("asyncpg does not read it from a URL"),
            (
                UrlClient::NodePostgres,
                "application_name"
                | "fallback_application_name"
                | "sslrootcert"
                | "connect_timeout"
                | "keepalives"
                | "keepalives_idle"
                | "client_encoding",
            ) => Keep,
            (UrlClient::NodePostgres, "gssencmode") if value != "require" => Same,
            (UrlClient::NodePostgres, "sslmode") => match value {
                "disable" => Keep,
                "require" | "verify-ca" | "verify-full" => LibpqSsl,
                _ => Drop(
                    "node-postgres cannot fall back between TLS and plain connections: \
                     use sslmode=disable, require or verify-full",
                ),
            },
            (UrlClient::NodePostgres, _) => Drop("node-postgres does not read it"),
        }
    }
}

enum Take {
    Keep,
    /// Left out: the client does the same without it.
    Same,
    Rename(&'static str),
    /// Left out, with the reason for the note.
    Drop(&'static str),
    /// `sslmode` kept, with `uselibpqcompat=true` so that node-postgres reads it as libpq does
    /// (without it, `require` means `verify-full`).
    LibpqSsl,
}

/// A URL for `client`, and a note for each setting it leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientUrl {
    pub url: String,
    pub notes: Vec<String>,
}

impl Settings {
    /// A URL with these settings that libpq accepts, `extra_options` appended to `options`.
    /// See [`Settings::url_for`].
    pub fn url(&self, extra_options: Option<&str>) -> Result<String> {
        Ok(self.url_for(extra_options, UrlClient::Libpq)?.url)
    }

    /// A URL with these settings that `client` accepts, `extra_options` appended to `options`.
    /// It holds a password only when the string tandem was given held one: a password from
    /// PGPASSWORD, a service or the password file stays where it was. The service and the
    /// password file are not named; the settings they gave are written out.
    pub fn url_for(&self, extra_options: Option<&str>, client: UrlClient) -> Result<ClientUrl> {
        let endpoints = self.endpoints()?;
        let refuse = |why: String| {
            Error::Connect(format!("cannot write a URL for {}: {why}", client.name()))
        };
        if client != UrlClient::Libpq && self.get("hostaddr").is_some() {
            return Err(refuse(format!(
                "it has no hostaddr ({}); give the address as the host instead",
                self.origin("hostaddr")
            )));
        }
        if client == UrlClient::NodePostgres && endpoints.len() > 1 {
            return Err(refuse(format!(
                "it connects to one host, and {} are set ({}); name the one to use with \
                 --database-url, or put a pooler or a DNS name in front of them",
                endpoints.len(),
                self.origin("host")
            )));
        }
        let mut url = String::from("postgres://");
        url.push_str(&encode(self.user()));
        if let Some((password, Source::Given)) = self.values.get("password") {
            url.push(':');
            url.push_str(&encode(password));
        }
        url.push('@');
        let mut query: Vec<(String, String)> = Vec::new();
        let mut notes = Vec::new();
        let by_name = endpoints
            .iter()
            .all(|e| matches!(&e.host, Host::Tcp(h) if !h.is_empty()) && e.hostaddr.is_none());
        if by_name {
            let netloc: Vec<String> = endpoints
                .iter()
                .map(|e| {
                    let Host::Tcp(h) = &e.host else {
                        unreachable!("all endpoints are host names")
                    };
                    if h.contains(':') {
                        format!("[{h}]:{}", e.port)
                    } else {
                        format!("{}:{}", encode(h), e.port)
                    }
                })
                .collect();
            url.push_str(&netloc.join(","));
        } else {
            // Socket directories and addresses go in parameters: a path cannot be a netloc.
            let hosts: Vec<String> = endpoints
                .iter()
                .map(|e| match &e.host {
                    Host::Socket(dir) => dir.to_string_lossy().into_owned(),
                    Host::Tcp(h) => h.clone(),
                })
                .collect();
            let ports: Vec<String> = endpoints.iter().map(|e| e.port.to_string()).collect();
            query.push(("host".into(), hosts.join(",")));
            query.push(("port".into(), ports.join(",")));
            if let Some(addrs) = self.get("hostaddr") {
                query.push(("hostaddr".into(), addrs.to_string()));
            }
        }
        url.push('/');
        url.push_str(&encode(self.dbname()));
        let written_elsewhere = |key: &str| {
            matches!(
                key,
                "host"
                    | "hostaddr"
                    | "port"
                    | "user"
                    | "password"
                    | "dbname"
                    | "passfile"
                    | "service"
                    | "options"
            )
        };
        let mut renamed: Vec<(String, String)> = Vec::new();
        for key in super::conninfo::KEYWORDS {
            let Some((value, source)) = self.values.get(*key) else {
                continue;
            };
            if written_elsewhere(key) || *source == Source::Default {
                continue;
            }
            match client.takes(key, value) {
                Take::Keep => query.push((key.to_string(), value.clone())),
                Take::Same => {}
                Take::Rename(to) => renamed.push((to.to_string(), value.clone())),
                Take::Drop(why) => notes.push(format!(
                    "{key}={value} ({}) is left out: {why}",
                    self.origin(key)
                )),
                Take::LibpqSsl => {
                    query.push((key.to_string(), value.clone()));
                    query.push(("uselibpqcompat".into(), "true".into()));
                }
            }
        }
        for (key, value) in renamed {
            if !query.iter().any(|(k, _)| *k == key) {
                query.push((key, value));
            }
        }
        let options: Vec<&str> = self
            .get("options")
            .into_iter()
            .chain(extra_options)
            .collect();
        if !options.is_empty() {
            query.push(("options".into(), options.join(" ")));
        }
        let query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_param(v)))
            .collect();
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        Ok(ClientUrl { url, notes })
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters. libpq decodes `%XX` everywhere
/// and leaves `+` alone, so this is the one encoding every reader agrees on.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// [`encode`], keeping `/` and `,` readable in parameter values (socket paths, host lists):
/// no reader gives them a meaning inside a query value.
fn encode_param(s: &str) -> String {
    encode(s).replace("%2F", "/").replace("%2C", ",")
}
