//! A cluster of one's own: settings applied, reachable by URL from the `postgres` crate and from
//! psql, database lifecycle, and a stop that removes everything and may be repeated.

use std::process::Command;

use tandem_testkit::{Cluster, ClusterOptions};

#[test]
fn own_cluster_applies_settings_serves_urls_and_cleans_up() {
    let mut cluster = Cluster::start(ClusterOptions {
        settings: vec![("work_mem".into(), "7MB".into())],
        ..ClusterOptions::default()
    })
    .unwrap();
    let mut client = cluster.connect("postgres").unwrap();
    let work_mem: String = client.query_one("SHOW work_mem", &[]).unwrap().get(0);
    assert_eq!(work_mem, "7MB");
    let fsync: String = client.query_one("SHOW fsync", &[]).unwrap().get(0);
    assert_eq!(fsync, "off");
    drop(client);

    // A name that needs quoting and percent-encoding.
    let name = "Mixed Case/db";
    cluster.create_database(name).unwrap();
    let url = cluster.url(name);
    assert!(
        url.starts_with(&format!(
            "postgres://postgres@localhost:{}/Mixed%20Case%2Fdb?host=/",
            cluster.port()
        )),
        "{url}"
    );

    let config: postgres::Config = url.parse().unwrap();
    let mut client = config.connect(postgres::NoTls).unwrap();
    let current: String = client
        .query_one("SELECT current_database()::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(current, name);

    // libpq takes the host parameter over `localhost`, so psql comes in over the socket, where
    // inet_server_addr() is null.
    // Any libpq client will do: the cluster's own psql, or the one on PATH when the build has none
    // (scripts/fetch-pg.sh's server-only builds).
    let psql = Some(cluster.bin_dir().join("psql"))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| "psql".into());
    let output = Command::new(psql)
        .arg(&url)
        .args([
            "-XAtc",
            "SELECT current_database(), inet_server_addr() IS NULL",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("{name}|t")
    );

    // The open session does not stop the drop, and dropping twice is fine.
    cluster.drop_database(name).unwrap();
    cluster.drop_database(name).unwrap();
    assert!(client.is_closed() || client.simple_query("SELECT 1").is_err());

    let socket_dir = cluster.socket_dir().to_path_buf();
    let cluster_dir = socket_dir.parent().unwrap().to_path_buf();
    assert!(cluster_dir.join("data/PG_VERSION").is_file());
    cluster.stop().unwrap();
    assert!(
        !cluster_dir.exists(),
        "{} left behind",
        cluster_dir.display()
    );
    cluster.stop().unwrap();
    assert!(cluster.connect("postgres").is_err());
}

#[test]
fn a_wrong_bin_dir_says_what_to_fix() {
    let error = Cluster::start(ClusterOptions {
        bin_dir: Some("/nonexistent/bin".into()),
        ..ClusterOptions::default()
    })
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "ClusterOptions::bin_dir /nonexistent/bin: no initdb there; point it at the directory \
         that holds initdb and postgres, such as /usr/lib/postgresql/15/bin"
    );
}
