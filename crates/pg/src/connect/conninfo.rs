//! Reads a connection string the way libpq does: a `postgres://` or `postgresql://` URL, or a
//! `key=value` string, into libpq keywords and their values. Nothing here reads the environment
//! or a file; `settings` fills in the rest.

use crate::error::{Error, Result};

/// The keywords tandem understands, as libpq spells them. Any other keyword is refused, as
/// libpq refuses one it does not know, so a typo is not silently ignored.
pub(crate) const KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "service",
    "options",
    "application_name",
    "fallback_application_name",
    "sslmode",
    "sslrootcert",
    "connect_timeout",
    "target_session_attrs",
    "channel_binding",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "client_encoding",
    "gssencmode",
];

/// Keywords libpq knows that tandem cannot honour; naming them gets an error that says so
/// rather than "unknown keyword".
const UNSUPPORTED: &[(&str, &str)] = &[
    ("sslcert", "client certificates are not supported"),
    ("sslkey", "client certificates are not supported"),
    ("sslpassword", "client certificates are not supported"),
    ("sslcrl", "certificate revocation lists are not supported"),
    (
        "sslcrldir",
        "certificate revocation lists are not supported",
    ),
    ("krbsrvname", "GSSAPI is not supported"),
    ("gsslib", "GSSAPI is not supported"),
    ("require_auth", "require_auth is not supported"),
    ("load_balance_hosts", "hosts are tried in the order given"),
    ("replication", "replication connections are not supported"),
];

/// The keyword/value pairs of a URL or `key=value` string, in the order given; a later value
/// of a keyword replaces an earlier one, as in libpq (a URL's `?host=` replaces its netloc).
pub(crate) fn parse(text: &str) -> Result<Vec<(String, String)>> {
    let pairs = match uri_rest(text) {
        Some(rest) => parse_uri(rest)?,
        None => parse_key_values(text)?,
    };
    for (key, _) in &pairs {
        check_keyword(key)?;
    }
    Ok(pairs)
}

fn uri_rest(text: &str) -> Option<&str> {
    text.strip_prefix("postgresql://")
        .or_else(|| text.strip_prefix("postgres://"))
}

pub(crate) fn check_keyword(key: &str) -> Result<()> {
    if KEYWORDS.contains(&key) {
        return Ok(());
    }
    match UNSUPPORTED.iter().find(|(k, _)| *k == key) {
        Some((_, why)) => Err(invalid(format!("{key}: {why} by tandem"))),
        None => Err(invalid(format!(
            "unknown keyword {key:?} (libpq's keywords are host, port, dbname, user, password, \
             sslmode, options, service, ...)"
        ))),
    }
}

fn invalid(what: String) -> Error {
    Error::Connect(format!("invalid connection string: {what}"))
}

/// `[user[:password]@][host][:port][,...][/dbname][?key=value&...]`, after the scheme.
fn parse_uri(rest: &str) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (before_query, None),
    };
    // The password may hold '@' only percent-encoded, so the last '@' ends the user info.
    let hostlist = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                pairs.push(("user".into(), decode(user, "user")?));
            }
            if let Some(p) = password {
                pairs.push(("password".into(), decode(p, "password")?));
            }
            hosts
        }
        None => authority,
    };
    let (hosts, ports) = parse_hostlist(hostlist)?;
    if hosts.iter().any(|h| !h.is_empty()) {
        pairs.push(("host".into(), hosts.join(",")));
    }
    if ports.iter().any(|p| !p.is_empty()) {
        pairs.push(("port".into(), ports.join(",")));
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        pairs.push(("dbname".into(), decode(db, "dbname")?));
    }
    for param in query.into_iter().flat_map(|q| q.split('&')) {
        if param.is_empty() {
            continue;
        }
        let Some((key, value)) = param.split_once('=') else {
            return Err(invalid(format!(
                "URL parameter {:?} has no '=' and value",
                param
            )));
        };
        let key = decode(key, "a parameter name")?;
        if value.contains('=') {
            return Err(invalid(format!(
                "URL parameter {key}: its value holds a second '='; percent-encode it as %3D \
                 (e.g. options=-c%20search_path%3Dapp)"
            )));
        }
        let value = decode(value, &key)?;
        // libpq's JDBC-style alias.
        if key == "ssl" && value == "true" {
            pairs.push(("sslmode".into(), "require".into()));
        } else {
            pairs.push((key, value));
        }
    }
    Ok(pairs)
}

/// `host[:port]` entries separated by commas; an IPv6 address is written in brackets.
fn parse_hostlist(list: &str) -> Result<(Vec<String>, Vec<String>)> {
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    for spec in list.split(',') {
        let (host, port) = if let Some(inner) = spec.strip_prefix('[') {
            let Some((addr, after)) = inner.split_once(']') else {
                return Err(invalid(format!("unterminated IPv6 address in {spec:?}")));
            };
            let port = match after {
                "" => "",
                p => p.strip_prefix(':').ok_or_else(|| {
                    invalid(format!("unexpected {p:?} after the IPv6 address {addr}"))
                })?,
            };
            (addr.to_string(), port)
        } else {
            match spec.split_once(':') {
                Some((h, p)) => (decode(h, "host")?, p),
                None => (decode(spec, "host")?, ""),
            }
        };
        hosts.push(host);
        ports.push(decode(port, "port")?);
    }
    Ok((hosts, ports))
}

/// Decodes `%XX` escapes; like libpq, `+` stays a plus and a bad escape is an error. `what`
/// names the part in the error, never its value (it may be a password).
fn decode(text: &str, what: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let byte = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .filter(|b| *b != 0)
                .ok_or_else(|| invalid(format!("bad percent-encoding in the URL's {what}")))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid(format!("the URL's {what} is not UTF-8")))
}

/// `key=value` pairs separated by whitespace; a value may be single-quoted, and a backslash
/// escapes the next character, quoted or not.
fn parse_key_values(text: &str) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(invalid(format!(
                "missing \"=\" after {key:?}; a connection string is a postgres:// URL or \
                 key=value pairs such as \"host=db dbname=app\""
            )));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(invalid(format!("unterminated quoted value of {key}")));
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn kv(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn urls_are_read_as_libpq_reads_them() {
        assert_eq!(
            pairs("postgres://u:p%40ss@db.example:6432/app?sslmode=require&options=-c%20search_path%3Dv2"),
            kv(&[
                ("user", "u"),
                ("password", "p@ss"),
                ("host", "db.example"),
                ("port", "6432"),
                ("dbname", "app"),
                ("sslmode", "require"),
                ("options", "-c search_path=v2"),
            ])
        );
        assert_eq!(
            pairs("postgresql://a:1,[::1]:2,c/db"),
            kv(&[("host", "a,::1,c"), ("port", "1,2,"), ("dbname", "db")])
        );
        assert_eq!(
            pairs("postgres://u@/db?host=%2Fvar%2Frun%2Fpostgresql&port=5433"),
            kv(&[
                ("user", "u"),
                ("dbname", "db"),
                ("host", "/var/run/postgresql"),
                ("port", "5433")
            ])
        );
        assert_eq!(pairs("postgres://"), kv(&[]));
        assert_eq!(
            pairs("postgres:///db?ssl=true"),
            kv(&[("dbname", "db"), ("sslmode", "require")])
        );
    }

    #[test]
    fn key_value_strings_take_quotes_and_escapes() {
        assert_eq!(
            pairs("host=a,b port = 1,2 options='-c search_path=\\'x y\\'' password=a\\ b"),
            kv(&[
                ("host", "a,b"),
                ("port", "1,2"),
                ("options", "-c search_path='x y'"),
                ("password", "a b"),
            ])
        );
        assert_eq!(pairs("  "), kv(&[]));
    }

    #[test]
    fn bad_strings_are_refused_without_echoing_secrets() {
        let e = parse("postgres://h/db?options=-c search_path=x").unwrap_err();
        assert!(e.to_string().contains("%3D"), "{e}");
        let e = parse("postgres://u:se%zzcret@h/db")
            .unwrap_err()
            .to_string();
        assert!(e.contains("password") && !e.contains("cret"), "{e}");
        let e = parse("mydb").unwrap_err().to_string();
        assert!(e.contains("missing \"=\" after \"mydb\""), "{e}");
        let e = parse("host=h sslcert=/c").unwrap_err().to_string();
        assert!(e.contains("client certificates"), "{e}");
        let e = parse("host=h colour=blue").unwrap_err().to_string();
        assert!(e.contains("unknown keyword \"colour\""), "{e}");
        assert!(parse("password='unterminated").is_err());
    }
}
