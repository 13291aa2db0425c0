//! Connections: from a URL or the libpq environment variables, with TLS through rustls
//! (`sslmode` disable, prefer, require, verify-ca, verify-full), and every session set up the
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
    /// PGPASSWORD, PGDATABASE and PGSSLMODE.
    pub url: Option<String>,
    pub lock_timeout: LockTimeout,
    /// `SET ROLE` to this role after connecting.
    pub role: Option<String>,
    pub application_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    Disable,
    Prefer,
    Require,
    VerifyFull,
}

/// Opens a session set up for tandem's work.
pub fn connect(opts: &ConnectOptions) -> Result<Client> {
    let (config, tls) = config(opts)?;
    let mut client = match tls {
        Tls::Disable => config.connect(NoTls),
        Tls::Prefer | Tls::Require => config.connect(rustls_connector(false)),
        Tls::VerifyFull => config.connect(rustls_connector(true)),
    }
    .map_err(|e| Error::Connect(crate::error::describe(&e)))?;
    setup_session(&mut client, opts)?;
    Ok(client)
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

fn config(opts: &ConnectOptions) -> Result<(Config, Tls)> {
    let (text, mode) = match &opts.url {
        Some(url) => strip_sslmode(url),
        None => (String::new(), std::env::var("PGSSLMODE").ok()),
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
    let tls = match mode.as_deref().unwrap_or("prefer") {
        "disable" | "allow" => Tls::Disable,
        "prefer" => Tls::Prefer,
        "require" => Tls::Require,
        "verify-ca" | "verify-full" => Tls::VerifyFull,
        other => return Err(Error::Connect(format!("unknown sslmode {other:?}"))),
    };
    config.ssl_mode(match tls {
        Tls::Disable => SslMode::Disable,
        Tls::Prefer => SslMode::Prefer,
        Tls::Require | Tls::VerifyFull => SslMode::Require,
    });
    Ok((config, tls))
}

/// Removes `sslmode` from a URL or key=value string (the driver knows fewer modes than libpq)
/// and returns it separately. A password in the URL is left in place but never printed.
fn strip_sslmode(url: &str) -> (String, Option<String>) {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return (url.to_string(), None);
        };
        let (kept, mode) = take_sslmode(query.split('&'));
        let url = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        (url, mode)
    } else {
        let (kept, mode) = take_sslmode(url.split_whitespace());
        (kept.join(" "), mode)
    }
}

/// Splits `key=value` parameters into those other than `sslmode`, and the `sslmode` value.
fn take_sslmode<'a>(params: impl Iterator<Item = &'a str>) -> (Vec<&'a str>, Option<String>) {
    let mut mode = None;
    let kept = params
        .filter(|kv| match kv.strip_prefix("sslmode=") {
            Some(m) => {
                mode = Some(m.to_string());
                false
            }
            None => true,
        })
        .collect();
    (kept, mode)
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

fn rustls_connector(verify: bool) -> tokio_postgres_rustls::MakeRustlsConnect {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let config = if verify {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        // A PGSSLROOTCERT file adds the server's own CA, as libpq's does.
        if let Ok(path) = std::env::var("PGSSLROOTCERT") {
            if let Ok(pem) = std::fs::read(&path) {
                for der in rustls_pemfile_certs(&pem) {
                    let _ = roots.add(der);
                }
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        // sslmode=require encrypts without checking the certificate, as libpq does.
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    };
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
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

#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_taken_out_of_urls() {
        let (u, m) = strip_sslmode("postgres://u:p@h/db?sslmode=verify-full&application_name=x");
        assert_eq!(u, "postgres://u:p@h/db?application_name=x");
        assert_eq!(m.as_deref(), Some("verify-full"));
        let (u, m) = strip_sslmode("host=h sslmode=require dbname=d");
        assert_eq!(u, "host=h dbname=d");
        assert_eq!(m.as_deref(), Some("require"));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:****@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
