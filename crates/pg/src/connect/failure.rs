//! What a failed connection tells the user: each endpoint tried (host or socket, port, TLS
//! mode), as which user, to which database, what went wrong, and the likely fix. A password
//! never appears: only where it came from.

use super::pgpass::Lookup;
use super::settings::{Endpoint, Password, Settings, Source};
use super::Tls;
use postgres::error::SqlState;

/// One endpoint tried and how it failed.
pub(crate) struct Attempt {
    pub endpoint: Endpoint,
    pub tls: Tls,
    pub password: Password,
    pub error: postgres::Error,
}

/// Whether the driver failed in the TLS layer (its message names the handshake; the kind of
/// error is not public).
pub(crate) fn is_tls_failure(e: &postgres::Error) -> bool {
    e.to_string().starts_with("error performing TLS handshake")
}

/// The message for a connection that no endpoint accepted.
pub(crate) fn describe(
    settings: &Settings,
    attempts: &[Attempt],
    root_cert: Option<&str>,
) -> String {
    let mut out = format!(
        "as user {:?} to database {:?}",
        settings.user(),
        settings.dbname()
    );
    if !settings.configured() {
        out.push_str(
            " (no connection settings were given, so libpq's defaults were tried; set \
             DATABASE_URL or --database-url to a postgres:// URL, or PGHOST and PGDATABASE)",
        );
    }
    out.push(':');
    for a in attempts {
        let tls = match a.endpoint.host {
            super::Host::Socket(_) => "no TLS over a socket".to_string(),
            super::Host::Tcp(_) => format!("sslmode {}", a.tls.name()),
        };
        out.push_str(&format!(
            "\n  {} ({tls}): {}",
            a.endpoint,
            explain(settings, a, root_cert)
        ));
    }
    out
}

/// The driver's message and what to do about it.
fn explain(settings: &Settings, a: &Attempt, root_cert: Option<&str>) -> String {
    let message = crate::error::describe(&a.error);
    let hint = match a.error.as_db_error().map(|db| db.code().clone()) {
        Some(SqlState::INVALID_PASSWORD) => Some(wrong_password(&a.password)),
        Some(SqlState::INVALID_CATALOG_NAME) => Some(format!(
            "check the database name ({}), or create the database",
            settings.origin("dbname")
        )),
        Some(SqlState::INVALID_AUTHORIZATION_SPECIFICATION) if message.contains("pg_hba.conf") => {
            Some(
                "the server's pg_hba.conf lets no such connection in; connect as a user, to a \
                 database and over TLS or not as it allows, or ask for an entry to be added"
                    .to_string(),
            )
        }
        Some(SqlState::INVALID_AUTHORIZATION_SPECIFICATION) => {
            Some(format!("check the user name ({})", settings.origin("user")))
        }
        Some(SqlState::TOO_MANY_CONNECTIONS) => {
            Some("the server has no connection slot free; wait, or connect through a pooler".into())
        }
        Some(SqlState::CANNOT_CONNECT_NOW) => {
            Some("the server is starting up or shutting down; try again shortly".into())
        }
        Some(_) => None,
        None => non_db_hint(settings, a, &message, root_cert),
    };
    match hint {
        Some(h) => format!("{message}; {h}"),
        None => message,
    }
}

fn non_db_hint(
    settings: &Settings,
    a: &Attempt,
    message: &str,
    root_cert: Option<&str>,
) -> Option<String> {
    if message.contains("password missing") {
        return Some(no_password(settings, a));
    }
    if let Some(h) = tls_hint(message, a.tls, root_cert) {
        return Some(h);
    }
    let io = io_kind(&a.error);
    let where_ = format!(
        "check the host ({}) and port ({})",
        settings.origin("host"),
        settings.origin("port")
    );
    match io {
        Some(std::io::ErrorKind::ConnectionRefused) => Some(format!(
            "no server accepts connections there: is it running, and on this port? {where_}"
        )),
        Some(std::io::ErrorKind::NotFound) => Some(format!(
            "there is no such socket: is the server running, with its socket in this directory \
             and on this port? {where_}"
        )),
        Some(std::io::ErrorKind::PermissionDenied) => Some(
            "this OS user may not open the socket; connect as a user who may, or over TCP".into(),
        ),
        _ if message.contains("failed to lookup address") => {
            Some(format!("the host name does not resolve; {where_}"))
        }
        _ if message.contains("timeout") => Some(format!(
            "the server did not answer within the connect timeout (connect_timeout); {where_}"
        )),
        _ => None,
    }
}

fn io_kind(e: &postgres::Error) -> Option<std::io::ErrorKind> {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = cause.source();
    }
    None
}

fn wrong_password(password: &Password) -> String {
    match password {
        Password::Set(_, Source::Given) => "the password in the connection string is wrong".into(),
        Password::Set(_, Source::Service) => "the password in the service file is wrong".into(),
        Password::Set(_, _) => "the password in PGPASSWORD is wrong".into(),
        Password::FromFile(_, file) => format!(
            "the password {} gives for this host, port, database and user is wrong",
            file.display()
        ),
        Password::None(_) => "no password was sent".into(),
    }
}

fn no_password(settings: &Settings, a: &Attempt) -> String {
    let host = match &a.endpoint.host {
        super::Host::Socket(_) => "localhost".to_string(),
        super::Host::Tcp(h) => h.replace(':', "\\:"),
    };
    let line = format!(
        "{host}:{}:{}:{}:PASSWORD",
        a.endpoint.port,
        settings.dbname(),
        settings.user()
    );
    let file = match &a.password {
        Password::None(Some((file, Lookup::TooOpen { mode }))) => {
            return format!(
                "the server asks for a password and none was given: {} was ignored because \
                 group or others may read it (mode {mode:04o}); run `chmod 0600 {}`",
                file.display(),
                file.display()
            )
        }
        Password::None(Some((file, _))) => file.display().to_string(),
        _ => "~/.pgpass".into(),
    };
    format!(
        "the server asks for a password and none was given: add the line `{line}` to {file} \
         (mode 0600; PGPASSFILE names another file), or set PGPASSWORD"
    )
}

/// What a certificate the client rejected, or a server without TLS, means for the user.
fn tls_hint(message: &str, tls: Tls, root_cert: Option<&str>) -> Option<String> {
    let trusted = match root_cert {
        Some(path) => format!("the CA certificates in {path} (sslrootcert)"),
        None => "the public web CAs (set sslrootcert or PGSSLROOTCERT to the server's CA)".into(),
    };
    if message.contains("UnknownIssuer") || message.contains("BadSignature") {
        Some(format!(
            "the server's certificate is not signed by {trusted}"
        ))
    } else if message.contains("NotValidForName") || message.contains("not valid for name") {
        Some(
            "the server's certificate does not name the host connected to; connect by a name it \
             lists, or use sslmode=verify-ca to check only who signed it"
                .into(),
        )
    } else if tls == Tls::Require && message.contains("server does not support TLS") {
        Some(
            "the server does not offer TLS; use sslmode=prefer or disable, or turn on ssl on \
             the server"
                .into(),
        )
    } else {
        None
    }
}
