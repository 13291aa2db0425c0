//! `tandem latest pgbouncer`: the PgBouncer `[databases]` line of a pool whose server
//! connections are on the latest version. PgBouncer (1.18, say) refuses the `options` startup
//! parameter that `latest url` relies on, so the version is set by the pool instead: its
//! `connect_query` sets `search_path` once on every server connection it opens, and nothing
//! resets it between the transactions it serves.

use anyhow::{bail, Result};
use tandem_pg::connect::{Host, Settings};
use tandem_pg::Engine;

use crate::cli::{Global, PoolArgs};

/// `NAME = host=... port=... dbname=... connect_query='SET search_path = ...'`, every value
/// quoted as PgBouncer's connection-string parser reads it.
pub fn database_line(g: &Global, version_schema: &str, pool: &PoolArgs) -> Result<String> {
    let server = Server::from_global(g, pool)?;
    let name = match &pool.pool {
        Some(name) => name.clone(),
        None => version_schema.to_string(),
    };
    if !is_plain(&name) || name.contains(['/', ':']) {
        let from = if pool.pool.is_some() {
            "--pool"
        } else {
            "the version schema's name"
        };
        bail!(
            "{from} {name:?} cannot name a PgBouncer pool: PgBouncer 1.18 reads a database name of \
             letters, digits, `_`, `.` and `-` only; pass --pool with such a name"
        );
    }
    let Server { host, port, dbname } = server;
    let query = format!(
        "SET search_path = {}",
        Engine::search_path_for(version_schema, &g.schema)
    );
    let mut line = format!("{name} =");
    let pairs = [
        ("host", host),
        ("port", port),
        ("dbname", dbname),
        ("connect_query", query),
    ];
    for (key, value) in pairs {
        line.push_str(&format!(" {key}={}", quote_value(&value)));
    }
    Ok(line)
}

/// Where tandem itself connects, which is where the pool connects unless told otherwise.
struct Server {
    host: String,
    port: String,
    dbname: String,
}

impl Server {
    /// From the connection settings tandem itself reads (a URL or `key=value` string, a
    /// service, the PG* variables, libpq's defaults). PgBouncer 1.18 takes one host, so
    /// several need `--server-host`; an address (`hostaddr`) stands in for the host.
    fn from_global(g: &Global, pool: &PoolArgs) -> Result<Server> {
        let settings = Settings::resolve(g.database_url.as_deref())?;
        let endpoints = settings.endpoints()?;
        let host = match (&pool.server_host, endpoints.as_slice()) {
            (Some(host), _) => host.clone(),
            (None, [one]) => match (&one.host, &one.hostaddr) {
                (_, Some(addr)) => addr.clone(),
                (Host::Socket(dir), None) => dir.to_string_lossy().into_owned(),
                (Host::Tcp(h), None) => h.clone(),
            },
            (None, many) => bail!(
                "latest pgbouncer: {} hosts are set ({}), and a PgBouncer 1.18 entry takes one; \
                 name the one the pool connects to with --server-host (and --server-port)",
                many.len(),
                settings.origin("host")
            ),
        };
        let port = match pool.server_port {
            Some(p) => p.to_string(),
            None => endpoints.first().map_or(5432, |e| e.port).to_string(),
        };
        Ok(Server {
            host,
            port,
            dbname: settings.dbname().to_string(),
        })
    }
}

/// Letters, digits and `_ . - / :`, which PgBouncer's parsers take as they are.
fn is_plain(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/' | ':'))
}

/// A connection-string value: as it is when plain, else in single quotes with each quote
/// doubled, which is how PgBouncer's parser reads a quoted value (no backslash escapes).
fn quote_value(value: &str) -> String {
    if is_plain(value) {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_stay_bare_and_others_are_quoted() {
        assert_eq!(
            quote_value("/tmp/tandem-pg-x/socket"),
            "/tmp/tandem-pg-x/socket"
        );
        assert_eq!(
            quote_value(r#"SET search_path = "we'ird", "public""#),
            r#"'SET search_path = "we''ird", "public"'"#
        );
        assert_eq!(quote_value("a b"), "'a b'");
        assert_eq!(quote_value(""), "''");
    }
}
