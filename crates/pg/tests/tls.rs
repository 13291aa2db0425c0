//! TLS end to end, against a cluster of this binary's own that serves a certificate for
//! `localhost` signed by a CA made at test time: each sslmode does what libpq's does, a wrong CA
//! and a wrong host name are refused with messages that say so, and a migration runs over TLS.

mod common;

use common::{count, migration};
use std::path::Path;
use tandem_cluster::tls::Authority;
use tandem_pg::{ConnectOptions, Engine, EngineOptions};
use tandem_testkit::{tls_cluster, TestDb};

fn db() -> TestDb {
    TestDb::on(tls_cluster())
}

fn root_cert() -> &'static Path {
    tls_cluster()
        .tls_root_cert()
        .expect("the TLS cluster has a CA")
}

/// `url` with `params` appended as its query.
fn with_params(url: &str, params: &[(&str, &str)]) -> String {
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{url}?{}", query.join("&"))
}

fn connect(url: String) -> Result<postgres::Client, tandem_pg::Error> {
    tandem_pg::connect(&ConnectOptions {
        url: Some(url),
        ..ConnectOptions::default()
    })
}

/// The message of a connection that must fail.
fn connect_err(url: String) -> String {
    match connect(url) {
        Ok(_) => panic!("the connection must be refused"),
        Err(e) => e.to_string(),
    }
}

/// Whether the session itself is encrypted, as the server sees it.
fn session_uses_tls(client: &mut postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .expect("pg_stat_ssl")
        .get(0)
}

#[test]
fn require_encrypts_and_disable_does_not() {
    let db = db();
    let mut client = connect(with_params(&db.tcp_url(), &[("sslmode", "require")])).unwrap();
    assert!(session_uses_tls(&mut client));
    let mut client = connect(with_params(&db.tcp_url(), &[("sslmode", "disable")])).unwrap();
    assert!(!session_uses_tls(&mut client));
    // libpq's default, prefer, takes TLS when the server offers it.
    let mut client = connect(db.tcp_url()).unwrap();
    assert!(session_uses_tls(&mut client));
}

/// A Unix socket never negotiates TLS, whatever `sslmode` says, as with libpq: the default
/// (`prefer`) and `require` both connect, unencrypted, on a server that offers TLS over TCP.
#[test]
fn a_unix_socket_connects_without_tls_whatever_the_sslmode() {
    let db = db();
    for mode in [None, Some("prefer"), Some("require")] {
        let url = match mode {
            Some(m) => format!("{}&sslmode={m}", db.socket_url()),
            None => db.socket_url(),
        };
        let mut client = connect(url).unwrap_or_else(|e| panic!("sslmode {mode:?}: {e}"));
        let over_socket: bool = client
            .query_one("SELECT inet_server_addr() IS NULL", &[])
            .unwrap()
            .get(0);
        assert!(over_socket, "sslmode {mode:?} connected over TCP");
        assert!(!session_uses_tls(&mut client));
    }
    // A socket listed after a TCP host that refuses connections: `prefer` gets through on it.
    let mixed = format!(
        "host=127.0.0.1,{} port=1,{} user={} dbname={}",
        db.cluster().socket_dir().display(),
        db.cluster().port(),
        db.user(),
        db.name
    );
    let mut client = connect(mixed.clone()).unwrap_or_else(|e| panic!("{mixed}: {e}"));
    assert!(!session_uses_tls(&mut client));
}

#[test]
fn verify_full_trusts_the_root_cert_it_is_given() {
    let db = db();
    let root = root_cert().to_string_lossy().into_owned();
    let url = with_params(
        &db.tcp_url(),
        &[("sslmode", "verify-full"), ("sslrootcert", &root)],
    );
    let mut client = connect(url).unwrap();
    assert!(session_uses_tls(&mut client));
    // The key=value form carries the same parameters.
    let cluster = tls_cluster();
    let kv = format!(
        "host=localhost port={} user={} dbname={} sslmode=verify-full sslrootcert={root}",
        cluster.port(),
        cluster.superuser(),
        db.name
    );
    let mut client = connect(kv).unwrap();
    assert!(session_uses_tls(&mut client));
}

#[test]
fn verify_full_refuses_a_certificate_from_another_ca() {
    let db = db();
    let dir = tempfile::tempdir().unwrap();
    let other_ca = dir.path().join("other-ca.crt");
    std::fs::write(
        &other_ca,
        Authority::new("some other CA").unwrap().cert_pem(),
    )
    .unwrap();
    let other = other_ca.to_string_lossy().into_owned();
    let e = connect_err(with_params(
        &db.tcp_url(),
        &[("sslmode", "verify-full"), ("sslrootcert", &other)],
    ));
    assert!(
        e.contains(&format!(
            "the server's certificate is not signed by the CA certificates in {other} (sslrootcert)"
        )),
        "{e}"
    );
    // verify-ca checks the chain just as strictly.
    let e = connect_err(with_params(
        &db.tcp_url(),
        &[("sslmode", "verify-ca"), ("sslrootcert", &other)],
    ));
    assert!(e.contains("is not signed by"), "{e}");
    // Without any root cert only the public web CAs are trusted, and they did not sign it.
    let e = connect_err(with_params(&db.tcp_url(), &[("sslmode", "verify-full")]));
    assert!(e.contains("not signed by the public web CAs"), "{e}");
    // A root cert file that is missing is an error of its own, not a silent fallback.
    let missing = dir
        .path()
        .join("missing.crt")
        .to_string_lossy()
        .into_owned();
    let e = connect_err(with_params(
        &db.tcp_url(),
        &[("sslmode", "verify-full"), ("sslrootcert", &missing)],
    ));
    assert!(e.contains(&format!("reading sslrootcert {missing}")), "{e}");
}

#[test]
fn verify_full_refuses_a_host_the_certificate_does_not_name() {
    let db = db();
    let root = root_cert().to_string_lossy().into_owned();
    // The certificate names `localhost` only; 127.0.0.1 is the same server by another name.
    let by_address = db.tcp_url().replace("@localhost:", "@127.0.0.1:");
    let e = connect_err(with_params(
        &by_address,
        &[("sslmode", "verify-full"), ("sslrootcert", &root)],
    ));
    assert!(
        e.contains("the server's certificate does not name the host connected to"),
        "{e}"
    );
    // verify-ca checks who signed the certificate, not the name in it.
    let mut client = connect(with_params(
        &by_address,
        &[("sslmode", "verify-ca"), ("sslrootcert", &root)],
    ))
    .unwrap();
    assert!(session_uses_tls(&mut client));
}

#[test]
fn a_migration_runs_start_to_complete_over_verified_tls() {
    let db = db();
    db.execute("CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL)");
    db.execute("INSERT INTO users (name) SELECT 'u' || g FROM generate_series(1, 10) g");
    let root = root_cert().to_string_lossy().into_owned();
    let mut client = connect(with_params(
        &db.tcp_url(),
        &[("sslmode", "verify-full"), ("sslrootcert", &root)],
    ))
    .unwrap();
    assert!(session_uses_tls(&mut client));
    let mut engine = Engine::new(&mut client, EngineOptions::default());
    engine.init().unwrap();
    let m = migration(
        "01_nick",
        "operations:\n  - add_column: {table: users, up: upper(name), column: {name: nick, type: text, nullable: true}}\n  - rename_column: {table: users, from: name, to: full_name}\n",
    );
    let report = engine.start(&m, &tandem_pg::events::ignore).unwrap();
    assert_eq!(report.version_schema, "public_01_nick");
    assert_eq!(report.backfilled_rows, 10);
    let mut new = db.connect_with_search_path("public_01_nick, public");
    assert_eq!(
        count(
            &mut new,
            "SELECT count(*) FROM users WHERE nick = upper(full_name)"
        ),
        10
    );
    engine.complete(&tandem_pg::events::ignore).unwrap();
    let status = engine.status().unwrap();
    assert!(status.active.is_none());
    assert_eq!(status.latest.unwrap().status, "complete");
    assert!(session_uses_tls(engine.client));
    assert_eq!(
        count(
            &mut db.connect(),
            "SELECT count(*) FROM public.users WHERE full_name IS NOT NULL AND nick IS NOT NULL"
        ),
        10
    );
}
