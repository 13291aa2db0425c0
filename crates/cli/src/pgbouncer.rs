//! `tandem latest pgbouncer`: the PgBouncer `[databases]` line of a pool whose server
//! connections are on the latest version. PgBouncer (1.18, say) refuses the `options` startup
//! parameter that `latest url` relies on, so the version is set by the pool instead: its
//! `connect_query` sets `search_path` once on every server connection it opens, and nothing
//! resets it between the transactions it serves.

use anyhow::{bail, Context, Result};
use tandem_pg::Engine;

use crate::cli::{Global, PoolArgs};

/// `NAME = host=... port=... dbname=... connect_query='SET search_path = ...'`, every value
/// quoted as PgBouncer's connection-string parser reads it.
pub fn database_line(g: &Global, version_schema: &str, pool: &PoolArgs) -> Result<String> {
    let server = Server::from_global(g)?;
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
    let host = pool.server_host.clone().or(server.host);
    let port = pool.server_port.map(|p| p.to_string()).or(server.port);
    let query = format!(
        "SET search_path = {}",
        Engine::search_path_for(version_schema, &g.schema)
    );
    let mut line = format!("{name} =");
    let pairs = [
        ("host", host),
        ("port", port),
        ("dbname", Some(server.dbname)),
        ("connect_query", Some(query)),
    ];
    for (key, value) in pairs {
        if let Some(value) = value {
            line.push_str(&format!(" {key}={}", quote_value(&value)));
        }
    }
    Ok(line)
}

/// Where tandem itself connects, which is where the pool connects unless told otherwise.
struct Server {
    host: Option<String>,
    port: Option<String>,
    dbname: String,
}

impl Server {
    /// From the database URL (its `host` and `port` query parameters win, as in libpq), or
    /// from PGHOST, PGPORT and PGDATABASE without one.
    fn from_global(g: &Global) -> Result<Server> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let Some(url) = &g.database_url else {
            let dbname = env("PGDATABASE").context(
                "latest pgbouncer: no database name: set --database-url (DATABASE_URL) or PGDATABASE",
            )?;
            return Ok(Server {
                host: env("PGHOST"),
                port: env("PGPORT"),
                dbname,
            });
        };
        let url = url::Url::parse(url).context("the database URL is not a postgres:// URL")?;
        let param = |k: &str| {
            url.query_pairs()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.into_owned())
                .filter(|v| !v.is_empty())
        };
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let dbname = param("dbname")
            .or_else(|| Some(decode(url.path().trim_start_matches('/'))).filter(|d| !d.is_empty()))
            .or_else(|| env("PGDATABASE"))
            .context(
                "latest pgbouncer: the database URL names no database: add one (postgres://host/DB)",
            )?;
        let host = param("host")
            .or_else(|| url.host_str().filter(|h| !h.is_empty()).map(decode))
            .or_else(|| env("PGHOST"));
        let port = param("port")
            .or_else(|| url.port().map(|p| p.to_string()))
            .or_else(|| env("PGPORT"));
        Ok(Server { host, port, dbname })
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
