//! Connections, from the settings libpq would use (`settings`: a URL or `key=value` string, a
//! service, the PG* variables, the password file), with TLS through rustls (`sslmode` disable,
//! prefer, require, verify-ca, verify-full; `sslrootcert` names the CA to trust; none over Unix
//! sockets, as with libpq), and every session set up the same way: lock_timeout,
//! application_name, and the role to act as.

mod conninfo;
mod failure;
mod pgpass;
mod service;
pub mod settings;
mod url;

pub use settings::{Endpoint, Host, Settings, Source};
pub use url::{ClientUrl, UrlClient};

use crate::error::{Error, Result};
use crate::locks::LockTimeout;
use postgres::config::{ChannelBinding, SslMode, TargetSessionAttrs};
use postgres::{Client, Config, NoTls};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// A `postgres://` URL or a libpq key=value string. What it leaves out comes from the
    /// service it names (or PGSERVICE), then the PG* variables, then libpq's defaults; a
    /// missing password comes from the password file. See [`Settings`].
    pub url: Option<String>,
    pub lock_timeout: LockTimeout,
    /// `SET ROLE` to this role after connecting.
    pub role: Option<String>,
    pub application_name: Option<String>,
}

/// What libpq's `sslmode` asks for; `allow` is treated as `disable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tls {
    Disable,
    Prefer,
    Require,
    /// The certificate must chain to a trusted CA; its names are not checked.
    VerifyCa,
    /// The certificate must chain to a trusted CA and name the host connected to.
    VerifyFull,
}

impl Tls {
    fn parse(mode: &str) -> Result<Tls> {
        Ok(match mode {
            "disable" | "allow" => Tls::Disable,
            "prefer" => Tls::Prefer,
            "require" => Tls::Require,
            "verify-ca" => Tls::VerifyCa,
            "verify-full" => Tls::VerifyFull,
            other => {
                return Err(Error::Connect(format!(
                    "unknown sslmode {other:?} (use disable, prefer, require, verify-ca or \
                     verify-full)"
                )))
            }
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Tls::Disable => "disable",
            Tls::Prefer => "prefer",
            Tls::Require => "require",
            Tls::VerifyCa => "verify-ca",
            Tls::VerifyFull => "verify-full",
        }
    }
}

/// Opens a session set up for tandem's work. The endpoints are tried in order, as libpq tries
/// its hosts; when none answers, the error names each one tried and what to do about it.
pub fn connect(opts: &ConnectOptions) -> Result<Client> {
    let settings = Settings::resolve(opts.url.as_deref())?;
    let tls = Tls::parse(settings.get("sslmode").unwrap_or("prefer"))?;
    let root_cert = settings.get("sslrootcert").map(str::to_string);
    let endpoints = settings.endpoints()?;
    // Built once, before any endpoint is tried, so an unreadable sslrootcert is reported as
    // such rather than once per host.
    let connector =
        if tls != Tls::Disable && endpoints.iter().any(|e| matches!(e.host, Host::Tcp(_))) {
            Some(rustls_connector(tls, root_cert.as_deref())?)
        } else {
            None
        };
    let mut attempts = Vec::new();
    for endpoint in endpoints {
        // Like libpq, never negotiate TLS over a Unix socket: the server refuses it there, and
        // the driver cannot even name a socket path to the TLS layer.
        let tls = match endpoint.host {
            Host::Socket(_) => Tls::Disable,
            Host::Tcp(_) => tls,
        };
        let password = settings.password(&endpoint);
        let config = driver_config(&settings, &endpoint, password.value(), tls)?;
        match connect_with_tls(&config, tls, connector.as_ref()) {
            Ok(mut client) => {
                setup_session(&mut client, opts)?;
                return Ok(client);
            }
            Err(error) => attempts.push(failure::Attempt {
                endpoint,
                tls,
                password,
                error,
            }),
        }
    }
    Err(Error::Connect(failure::describe(
        &settings,
        &attempts,
        root_cert.as_deref(),
    )))
}

fn connect_with_tls(
    config: &Config,
    tls: Tls,
    connector: Option<&tokio_postgres_rustls::MakeRustlsConnect>,
) -> std::result::Result<Client, postgres::Error> {
    let Some(connector) = connector.filter(|_| tls != Tls::Disable) else {
        return config.connect(NoTls);
    };
    match tls {
        // `prefer` falls back to a plain connection when TLS itself fails, as libpq's does.
        // Other failures (a host that does not answer, a refused login) would fail the same
        // way again, so they stand.
        Tls::Prefer => config.connect(connector.clone()).or_else(|e| {
            if failure::is_tls_failure(&e) {
                config.connect(NoTls)
            } else {
                Err(e)
            }
        }),
        _ => config.connect(connector.clone()),
    }
}

/// The driver's settings for one endpoint.
fn driver_config(
    settings: &Settings,
    endpoint: &Endpoint,
    password: Option<&str>,
    tls: Tls,
) -> Result<Config> {
    let bad = |key: &str, expected: &str| {
        Error::Connect(format!(
            "{key} {:?} ({}): expected {expected}",
            settings.get(key).unwrap_or_default(),
            settings.origin(key)
        ))
    };
    let seconds = |key: &str| -> Result<Option<Duration>> {
        settings
            .get(key)
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map(Duration::from_secs)
                    .map_err(|_| bad(key, "a whole number of seconds"))
            })
            .transpose()
    };
    let mut config = Config::new();
    match &endpoint.host {
        Host::Socket(dir) => {
            config.host_path(dir);
        }
        Host::Tcp(h) if !h.is_empty() => {
            config.host(h);
        }
        Host::Tcp(_) => {}
    }
    if let Some(addr) = &endpoint.hostaddr {
        config.hostaddr(addr.parse().map_err(|_| bad("hostaddr", "IP addresses"))?);
    }
    config.port(endpoint.port);
    config.user(settings.user());
    config.dbname(settings.dbname());
    if let Some(p) = password {
        config.password(p);
    }
    if let Some(o) = settings.get("options") {
        config.options(o);
    }
    if let Some(name) = settings
        .get("application_name")
        .or(settings.get("fallback_application_name"))
    {
        config.application_name(name);
    }
    // libpq waits forever by default; a deploy script is better served by an error.
    match seconds("connect_timeout")? {
        Some(t) if t.is_zero() => {}
        Some(t) => {
            // libpq treats a timeout under two seconds as two.
            config.connect_timeout(t.max(Duration::from_secs(2)));
        }
        None => {
            config.connect_timeout(Duration::from_secs(10));
        }
    }
    match settings.get("target_session_attrs") {
        None | Some("any") => {}
        Some("read-write") => {
            config.target_session_attrs(TargetSessionAttrs::ReadWrite);
        }
        Some(_) => return Err(bad("target_session_attrs", "any or read-write")),
    }
    // tandem never tries GSSAPI encryption, which is what libpq does with `disable`, and with
    // `prefer` when the server or the client has no GSSAPI.
    match settings.get("gssencmode") {
        None | Some("disable") | Some("prefer") => {}
        Some("require") => {
            return Err(Error::Connect(format!(
                "gssencmode require ({}): GSSAPI encryption is not supported by tandem; use \
                 sslmode=require (or verify-full) for an encrypted connection",
                settings.origin("gssencmode")
            )))
        }
        Some(_) => return Err(bad("gssencmode", "disable, prefer or require")),
    }
    match settings.get("channel_binding") {
        None | Some("prefer") => {}
        Some("disable") => {
            config.channel_binding(ChannelBinding::Disable);
        }
        Some("require") => {
            config.channel_binding(ChannelBinding::Require);
        }
        Some(_) => return Err(bad("channel_binding", "disable, prefer or require")),
    }
    match settings.get("keepalives") {
        None | Some("1") => {}
        Some("0") => {
            config.keepalives(false);
        }
        Some(_) => return Err(bad("keepalives", "0 or 1")),
    }
    if let Some(t) = seconds("keepalives_idle")? {
        config.keepalives_idle(t);
    }
    if let Some(t) = seconds("keepalives_interval")? {
        config.keepalives_interval(t);
    }
    if let Some(n) = settings.get("keepalives_count") {
        config.keepalives_retries(
            n.trim()
                .parse()
                .map_err(|_| bad("keepalives_count", "a number"))?,
        );
    }
    if let Some(ms) = settings.get("tcp_user_timeout") {
        let ms: u64 = ms
            .trim()
            .parse()
            .map_err(|_| bad("tcp_user_timeout", "a number of milliseconds"))?;
        config.tcp_user_timeout(Duration::from_millis(ms));
    }
    // The driver always speaks UTF8; another encoding would garble names and data.
    if let Some(enc) = settings.get("client_encoding") {
        if !enc.eq_ignore_ascii_case("utf8") && !enc.eq_ignore_ascii_case("utf-8") {
            return Err(bad(
                "client_encoding",
                "UTF8, the only encoding tandem speaks",
            ));
        }
    }
    config.ssl_mode(match tls {
        Tls::Disable => SslMode::Disable,
        Tls::Prefer => SslMode::Prefer,
        Tls::Require | Tls::VerifyCa | Tls::VerifyFull => SslMode::Require,
    });
    Ok(config)
}

/// Applies tandem's session settings; every connection tandem opens goes through here so that
/// no statement ever waits in a lock queue longer than the lock timeout.
pub fn setup_session(client: &mut Client, opts: &ConnectOptions) -> Result<()> {
    let mut sql = format!(
        "SET lock_timeout = '{}ms'; SET application_name = {}",
        opts.lock_timeout.0.as_millis(),
        tandem_model::quote_literal(opts.application_name.as_deref().unwrap_or("tandem"))
    );
    if let Some(role) = &opts.role {
        sql.push_str(&format!("; SET ROLE {}", tandem_model::quote_ident(role)));
    }
    client.batch_execute(&sql).map_err(|e| {
        Error::Connect(format!(
            "setting up the session: {}",
            crate::error::describe(&e)
        ))
    })
}

/// Removes the password from a URL for display.
pub fn redact(url: &str) -> String {
    match ::url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

fn rustls_connector(
    tls: Tls,
    root_cert: Option<&str>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = match tls {
        Tls::VerifyCa | Tls::VerifyFull => {
            let roots = Arc::new(root_store(root_cert)?);
            let chain = rustls::client::WebPkiServerVerifier::builder_with_provider(
                roots,
                provider.clone(),
            )
            .build()
            .map_err(|e| Error::Connect(format!("setting up TLS verification: {e}")))?;
            if tls == Tls::VerifyFull {
                chain
            } else {
                Arc::new(LaxVerifier {
                    provider,
                    chain: Some(chain),
                })
            }
        }
        _ => Arc::new(LaxVerifier {
            provider,
            chain: None,
        }),
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// The CAs to trust: those in the `sslrootcert` file alone when one is named, as libpq does,
/// otherwise the public web CAs (managed services' certificates often chain to one).
fn root_store(root_cert: Option<&str>) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    let Some(path) = root_cert else {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(roots);
    };
    let pem = std::fs::read(path)
        .map_err(|e| Error::Connect(format!("reading sslrootcert {path}: {e}")))?;
    let certs = rustls_pemfile_certs(&pem);
    if certs.is_empty() {
        return Err(Error::Connect(format!(
            "sslrootcert {path} holds no PEM certificate"
        )));
    }
    for der in certs {
        roots
            .add(der)
            .map_err(|e| Error::Connect(format!("sslrootcert {path}: {e}")))?;
    }
    Ok(roots)
}

/// Minimal PEM reader for CERTIFICATE blocks.
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let text = String::from_utf8_lossy(pem);
    let mut out = Vec::new();
    for block in text.split("-----BEGIN CERTIFICATE-----").skip(1) {
        let Some(b64) = block.split("-----END CERTIFICATE-----").next() else {
            continue;
        };
        let clean: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
        if let Some(der) = base64_decode(&clean) {
            out.push(rustls::pki_types::CertificateDer::from(der));
        }
    }
    out
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        buf = (buf << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    Some(out)
}

/// The certificate check of `sslmode` require and prefer (none: they encrypt without checking,
/// as libpq does) and of verify-ca (the chain is checked as for verify-full, but a certificate
/// that does not name the host is accepted). verify-full uses rustls's own verifier.
#[derive(Debug)]
struct LaxVerifier {
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// `None` for require and prefer.
    chain: Option<Arc<rustls::client::WebPkiServerVerifier>>,
}

impl rustls::client::danger::ServerCertVerifier for LaxVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        let Some(chain) = &self.chain else {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            // webpki checks the name only after the chain, so this error means the chain is good.
            Err(rustls::Error::InvalidCertificate(
                NotValidForName | NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The `options` value that sets `search_path` at connection time, as an application that picks
/// a version schema does. The server splits `options` on whitespace and honours backslash
/// escapes, so spaces (and backslashes) are escaped to keep a path such as `"v 2", public` one
/// option.
pub fn search_path_option(search_path: &str) -> String {
    let mut out = String::from("-c search_path=");
    for c in search_path.chars() {
        if c == '\\' || c.is_whitespace() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:****@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn search_path_options_keep_spaces_and_backslashes() {
        assert_eq!(
            search_path_option("\"v 2\", public"),
            "-c search_path=\"v\\ 2\",\\ public"
        );
        assert_eq!(search_path_option("a\\b"), "-c search_path=a\\\\b");
    }
}
