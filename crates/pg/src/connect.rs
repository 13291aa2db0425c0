//! Connections: from a URL or the libpq environment variables, with TLS through rustls
//! (`sslmode` disable, prefer, require, verify-ca, verify-full; `sslrootcert` or PGSSLROOTCERT
//! names the CA to trust; none over Unix sockets, as with libpq), and every session set up the
//! same way: lock_timeout, application_name, and the role to act as.

use crate::error::{Error, Result};
use crate::locks::LockTimeout;
use postgres::config::SslMode;
use postgres::{Client, Config, NoTls};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// A `postgres://` URL or a libpq key=value string; `None` reads PGHOST, PGPORT, PGUSER,
    /// PGPASSWORD, PGDATABASE, PGSSLMODE and PGSSLROOTCERT, which also fill what a URL leaves out.
    pub url: Option<String>,
    pub lock_timeout: LockTimeout,
    /// `SET ROLE` to this role after connecting.
    pub role: Option<String>,
    pub application_name: Option<String>,
}

/// What libpq's `sslmode` asks for; `allow` is treated as `disable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    Disable,
    Prefer,
    Require,
    /// The certificate must chain to a trusted CA; its names are not checked.
    VerifyCa,
    /// The certificate must chain to a trusted CA and name the host connected to.
    VerifyFull,
}

/// Opens a session set up for tandem's work.
pub fn connect(opts: &ConnectOptions) -> Result<Client> {
    let (config, tls, root_cert) = config(opts)?;
    let mut client = match tls {
        Tls::Disable => config.connect(NoTls),
        // `prefer` falls back to a plain connection when TLS itself fails, as libpq's does;
        // that also covers a Unix socket listed beside TCP hosts. Other failures (a host that
        // does not answer, a refused login) would fail the same way again, so they stand.
        Tls::Prefer => config
            .connect(rustls_connector(tls, root_cert.as_deref())?)
            .or_else(|e| {
                if is_tls_failure(&e) {
                    config.connect(NoTls)
                } else {
                    Err(e)
                }
            }),
        _ => config.connect(rustls_connector(tls, root_cert.as_deref())?),
    }
    .map_err(|e| Error::Connect(describe_connect_error(&e, tls, root_cert.as_deref())))?;
    setup_session(&mut client, opts)?;
    Ok(client)
}

/// Whether the driver failed in the TLS layer (its message names the handshake; the kind of
/// error is not public).
fn is_tls_failure(e: &postgres::Error) -> bool {
    e.to_string().starts_with("error performing TLS handshake")
}

/// The driver's message, plus what a certificate the client rejected means for the user.
fn describe_connect_error(e: &postgres::Error, tls: Tls, root_cert: Option<&str>) -> String {
    let message = crate::error::describe(e);
    let trusted = match root_cert {
        Some(path) => format!("the CA certificates in {path} (sslrootcert)"),
        None => "the public web CAs (set sslrootcert or PGSSLROOTCERT to the server's CA)".into(),
    };
    let hint = if message.contains("UnknownIssuer") || message.contains("BadSignature") {
        format!("the server's certificate is not signed by {trusted}")
    } else if message.contains("NotValidForName") || message.contains("not valid for name") {
        "the server's certificate does not name the host connected to; connect by a name it \
         lists, or use sslmode=verify-ca to check only who signed it"
            .into()
    } else if tls == Tls::Require && message.contains("server does not support TLS") {
        "the server does not offer TLS; use sslmode=prefer or disable, or turn on ssl on the server"
            .into()
    } else {
        return message;
    };
    format!("{message}: {hint}")
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

fn config(opts: &ConnectOptions) -> Result<(Config, Tls, Option<String>)> {
    let (text, tls_params) = match &opts.url {
        Some(url) => strip_tls_params(url),
        None => (String::new(), TlsParams::default()),
    };
    let mut config = if text.is_empty() {
        Config::new()
    } else {
        Config::from_str(&text).map_err(|e| Error::Connect(format!("invalid database URL: {e}")))?
    };
    // libpq's environment variables fill what the URL leaves out.
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if config.get_hosts().is_empty() {
        let host = env("PGHOST").unwrap_or_else(|| "/var/run/postgresql".into());
        for h in host.split(',') {
            config.host(h);
        }
    }
    if config.get_ports().is_empty() {
        if let Some(p) = env("PGPORT") {
            let port = p
                .parse()
                .map_err(|_| Error::Connect(format!("PGPORT {p:?} is not a port number")))?;
            config.port(port);
        }
    }
    if config.get_user().is_none() {
        let user = env("PGUSER")
            .or_else(|| env("USER"))
            .unwrap_or_else(|| "postgres".into());
        config.user(&user);
    }
    if config.get_password().is_none() {
        if let Some(p) = env("PGPASSWORD") {
            config.password(p);
        }
    }
    if config.get_dbname().is_none() {
        if let Some(d) = env("PGDATABASE") {
            config.dbname(&d);
        }
    }
    config.connect_timeout(Duration::from_secs(10));
    let mode = tls_params.mode.or_else(|| env("PGSSLMODE"));
    let tls = match mode.as_deref().unwrap_or("prefer") {
        "disable" | "allow" => Tls::Disable,
        "prefer" => Tls::Prefer,
        "require" => Tls::Require,
        "verify-ca" => Tls::VerifyCa,
        "verify-full" => Tls::VerifyFull,
        other => return Err(Error::Connect(format!("unknown sslmode {other:?}"))),
    };
    // Like libpq, never negotiate TLS over a Unix socket: the server refuses it there, and the
    // driver cannot even name a socket path to the TLS layer, so `prefer`, the default, would
    // fail every local connection.
    let tls = if config
        .get_hosts()
        .iter()
        .all(|h| matches!(h, postgres::config::Host::Unix(_)))
    {
        Tls::Disable
    } else {
        tls
    };
    config.ssl_mode(match tls {
        Tls::Disable => SslMode::Disable,
        Tls::Prefer => SslMode::Prefer,
        Tls::Require | Tls::VerifyCa | Tls::VerifyFull => SslMode::Require,
    });
    let root_cert = tls_params.root_cert.or_else(|| env("PGSSLROOTCERT"));
    Ok((config, tls, root_cert))
}

/// The TLS parameters the driver does not understand (it knows fewer `sslmode`s than libpq, and
/// no `sslrootcert`), taken out of the connection string so tandem handles them itself.
#[derive(Debug, Default, PartialEq, Eq)]
struct TlsParams {
    mode: Option<String>,
    root_cert: Option<String>,
}

/// Removes `sslmode` and `sslrootcert` from a URL or key=value string and returns them
/// separately. A password in the URL is left in place but never printed.
fn strip_tls_params(url: &str) -> (String, TlsParams) {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return (url.to_string(), TlsParams::default());
        };
        let (kept, mut params) = take_tls_params(query.split('&'));
        params.root_cert = params.root_cert.map(|path| percent_decode(&path));
        let url = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        (url, params)
    } else {
        let (kept, params) = take_tls_params(url.split_whitespace());
        (kept.join(" "), params)
    }
}

/// Splits `key=value` parameters into those tandem passes to the driver and the TLS ones.
fn take_tls_params<'a>(params: impl Iterator<Item = &'a str>) -> (Vec<&'a str>, TlsParams) {
    let mut tls = TlsParams::default();
    let kept = params
        .filter(|kv| {
            if let Some(mode) = kv.strip_prefix("sslmode=") {
                tls.mode = Some(mode.to_string());
            } else if let Some(path) = kv.strip_prefix("sslrootcert=") {
                tls.root_cert = Some(path.to_string());
            } else {
                return true;
            }
            false
        })
        .collect();
    (kept, tls)
}

/// Decodes `%XX` escapes in a URL query value; libpq does not treat `+` as a space.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes the password from a URL for display.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
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
    fn tls_params_are_taken_out_of_urls() {
        let (u, p) = strip_tls_params(
            "postgres://u:p@h/db?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca%20x.crt",
        );
        assert_eq!(u, "postgres://u:p@h/db?application_name=x");
        assert_eq!(p.mode.as_deref(), Some("verify-full"));
        assert_eq!(p.root_cert.as_deref(), Some("/tmp/ca x.crt"));
        let (u, p) = strip_tls_params("host=h sslmode=require dbname=d sslrootcert=/r.crt");
        assert_eq!(u, "host=h dbname=d");
        assert_eq!(p.mode.as_deref(), Some("require"));
        assert_eq!(p.root_cert.as_deref(), Some("/r.crt"));
        assert_eq!(strip_tls_params("postgres://h/db").1, TlsParams::default());
    }

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
