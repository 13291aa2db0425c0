//! Connection settings as people write them, through the binary: URLs, key=value strings and
//! the PG* variables alone (socket directories, several hosts), `.pgpass` and services on a
//! cluster that asks for a password, the errors a failed connection gives, `latest url` read
//! back by psql, and the TANDEM_* and pgroll's PGROLL_* variables.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tandem_testkit::{Access, TestDb};

/// The binary with none of the caller's connection settings: a fresh HOME (so no real
/// `~/.pgpass` or service file), no PG*, DATABASE_URL, TANDEM_* or PGROLL_* variables.
fn tandem(home: &Path, vars: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("USER", "nobody_here")
        .env("PGSYSCONFDIR", home.join("no-sysconf"))
        .args(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().expect("run tandem")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn psql(db: &TestDb) -> PathBuf {
    tandem_cluster::client_program("psql", Some(db.cluster().bin_dir()))
        .expect("psql not found: install the postgresql-client package")
}

/// A database with one migration started, whose version schema is `public_01_users`.
fn started(home: &Path) -> TestDb {
    let db = TestDb::new();
    let url = db.url();
    std::fs::write(
        home.join("01_users.yaml"),
        "operations:\n  - create_table: {name: users, columns: [{name: id, type: serial, pk: true}]}\n",
    )
    .unwrap();
    let file = home.join("01_users.yaml").to_string_lossy().into_owned();
    let o = tandem(home, &[("DATABASE_URL", &url)], &["init"]);
    assert!(o.status.success(), "{}", err(&o));
    let o = tandem(home, &[("DATABASE_URL", &url)], &["start", &file]);
    assert!(o.status.success(), "{}", err(&o));
    db
}

#[test]
fn latest_url_works_from_a_url_a_key_value_string_and_the_variables() {
    let home = tempfile::tempdir().unwrap();
    let db = started(home.path());
    let socket = db.cluster().socket_dir().to_string_lossy().into_owned();
    let port = db.cluster().port().to_string();
    let kv = format!(
        "host={socket} port={port} user={} dbname={}",
        db.user(),
        db.name
    );
    let hosts = format!("/nonexistent/socket,{socket}");
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("a URL", vec![("DATABASE_URL", db.url().leak())]),
        (
            "a socket URL",
            vec![("DATABASE_URL", db.socket_url().leak())],
        ),
        ("a TCP URL", vec![("DATABASE_URL", db.tcp_url().leak())]),
        ("a key=value string", vec![("DATABASE_URL", kv.as_str())]),
        (
            "the variables alone",
            vec![
                ("PGHOST", socket.as_str()),
                ("PGPORT", port.as_str()),
                ("PGUSER", db.user()),
                ("PGDATABASE", db.name.as_str()),
            ],
        ),
        (
            "several hosts, the first not there",
            vec![
                ("PGHOST", hosts.as_str()),
                ("PGPORT", port.as_str()),
                ("PGUSER", db.user()),
                ("PGDATABASE", db.name.as_str()),
            ],
        ),
    ];
    for (what, vars) in cases {
        let o = tandem(home.path(), &vars, &["latest", "url"]);
        assert!(o.status.success(), "{what}: {}", err(&o));
        let url = out(&o);
        assert!(
            url.contains("options=-c%20search_path%3D%22public_01_users%22,%22public%22"),
            "{what}: {url}"
        );
        // psql (libpq) accepts it and lands in the version schema.
        let o = Command::new(psql(&db))
            .env_clear()
            .args([url.as_str(), "-XAtc", "SELECT current_schemas(false)"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{what}: psql {url}: {}", err(&o));
        assert_eq!(out(&o), "{public_01_users,public}", "{what}: {url}");
    }
}

/// The snippet under "How applications select a version" in the README, run as written.
#[test]
fn the_readme_psql_snippet_runs() {
    let home = tempfile::tempdir().unwrap();
    let db = started(home.path());
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let marker = "<!-- run by crates/cli/tests/connection.rs -->";
    let after =
        &readme[readme.find(marker).expect("the README marks the snippet") + marker.len()..];
    let body = after
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block after the marker");
    let bin_dirs = [
        Path::new(env!("CARGO_BIN_EXE_tandem"))
            .parent()
            .unwrap()
            .to_path_buf(),
        psql(&db).parent().unwrap().to_path_buf(),
        PathBuf::from("/usr/bin"),
        PathBuf::from("/bin"),
    ];
    let o = Command::new("sh")
        .env_clear()
        .env("PATH", std::env::join_paths(bin_dirs).unwrap())
        .env("HOME", home.path())
        .env("DATABASE_URL", db.url())
        .args(["-ec", body])
        .output()
        .unwrap();
    assert!(o.status.success(), "{body}\n{}", err(&o));
    assert!(out(&o).contains("{public_01_users,public}"), "{}", out(&o));
}

#[test]
fn connection_errors_name_what_was_tried_and_the_fix() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // A port nothing listens on.
    let o = tandem(
        h,
        &[("DATABASE_URL", "postgres://app:hunter2@127.0.0.1:1/shop")],
        &["status"],
    );
    assert_eq!(o.status.code(), Some(1));
    let e = err(&o);
    assert!(
        e.contains("as user \"app\" to database \"shop\"")
            && e.contains("host 127.0.0.1, port 1 (sslmode prefer)")
            && e.contains("no server accepts connections there")
            && !e.contains("hunter2"),
        "{e}"
    );
    // Nothing configured at all.
    let o = tandem(h, &[], &["status"]);
    assert_eq!(o.status.code(), Some(1));
    let e = err(&o);
    assert!(
        e.contains("no connection settings were given")
            && e.contains("set DATABASE_URL or --database-url")
            && e.contains("socket /var/run/postgresql/.s.PGSQL.5432"),
        "{e}"
    );
    // A database that does not exist.
    let db = TestDb::new();
    let url = db
        .socket_url()
        .replace(&format!("/{}?", db.name), "/no_such_db?");
    let o = tandem(h, &[("DATABASE_URL", &url)], &["status"]);
    let e = err(&o);
    assert!(
        e.contains("database \"no_such_db\" does not exist")
            && e.contains("check the database name (from the connection string)"),
        "{e}"
    );
    // GSSAPI encryption: `disable` and `prefer` connect without it, as libpq does without
    // GSSAPI; `require` is refused, naming where it came from and what to use instead.
    for mode in ["disable", "prefer"] {
        let o = tandem(
            h,
            &[
                (
                    "DATABASE_URL",
                    &format!("{} gssencmode={mode}", key_values(&db)),
                ),
                ("PGGSSENCMODE", "require"),
            ],
            &["status"],
        );
        assert!(o.status.success(), "gssencmode={mode}: {}", err(&o));
    }
    let o = tandem(
        h,
        &[
            ("DATABASE_URL", &key_values(&db)),
            ("PGGSSENCMODE", "require"),
        ],
        &["status"],
    );
    let e = err(&o);
    assert!(
        !o.status.success()
            && e.contains("gssencmode require (from PGGSSENCMODE)")
            && e.contains("use sslmode=require"),
        "{e}"
    );
    // A wrong password, on a cluster that asks for one over TCP.
    let pw = PasswordDb::new();
    let wrong = pw.tcp_url_with_password("not-the-password");
    let o = tandem(h, &[("DATABASE_URL", &wrong)], &["status"]);
    let e = err(&o);
    assert!(
        e.contains("password authentication failed")
            && e.contains("the password in the connection string is wrong")
            && !e.contains("not-the-password"),
        "{e}"
    );
    let o = tandem(
        h,
        &[
            ("DATABASE_URL", &pw.tcp_url()),
            ("PGPASSWORD", "wrong-again"),
        ],
        &["status"],
    );
    let e = err(&o);
    assert!(
        e.contains("the password in PGPASSWORD is wrong") && !e.contains("wrong-again"),
        "{e}"
    );
}

/// `db` as a libpq `key=value` string over its socket.
fn key_values(db: &TestDb) -> String {
    format!(
        "host={} port={} user={} dbname={}",
        db.cluster().socket_dir().display(),
        db.cluster().port(),
        db.user(),
        db.name
    )
}

/// A database on the password cluster with a role of its own that has a password.
struct PasswordDb {
    db: TestDb,
    role: String,
}

const PASSWORD: &str = "s3cret:with\\colon";

impl PasswordDb {
    fn new() -> PasswordDb {
        let db = TestDb::with_access(tandem_testkit::password_cluster(), Access::Superuser);
        let role = format!("{}_pw", db.name);
        db.execute_as_superuser(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD {}; GRANT ALL ON DATABASE {} TO {role}; \
             GRANT CREATE ON SCHEMA public TO {role}",
            tandem_model::quote_literal(PASSWORD),
            db.name
        ));
        PasswordDb { db, role }
    }

    fn tcp_url(&self) -> String {
        self.db.cluster().tcp_url_as(&self.role, &self.db.name)
    }

    fn tcp_url_with_password(&self, password: &str) -> String {
        self.tcp_url().replacen(
            &format!("{}@", self.role),
            &format!("{}:{password}@", self.role),
            1,
        )
    }

    /// The `.pgpass` line for this database, with `:` and `\` escaped.
    fn pgpass_line(&self) -> String {
        let escaped = PASSWORD.replace('\\', "\\\\").replace(':', "\\:");
        format!(
            "localhost:{}:{}:{}:{escaped}\n",
            self.db.cluster().port(),
            self.db.name,
            self.role
        )
    }
}

fn write_private(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn passwords_come_from_pgpass_and_services() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let pw = PasswordDb::new();
    let url = pw.tcp_url();
    let status_ok = |vars: &[(&str, &str)], what: &str| {
        let o = tandem(h, vars, &["--json", "status"]);
        assert!(o.status.success(), "{what}: {}", err(&o));
        assert!(
            out(&o).contains("\"initialized\":false"),
            "{what}: {}",
            out(&o)
        );
    };
    // No password anywhere: the error says where to put one.
    let o = tandem(h, &[("DATABASE_URL", &url)], &["status"]);
    let e = err(&o);
    assert!(
        e.contains("the server asks for a password and none was given")
            && e.contains(&format!(
                "add the line `localhost:{}:{}:{}:PASSWORD`",
                pw.db.cluster().port(),
                pw.db.name,
                pw.role
            )),
        "{e}"
    );
    status_ok(
        &[("DATABASE_URL", &url), ("PGPASSWORD", PASSWORD)],
        "PGPASSWORD",
    );
    // ~/.pgpass that others may read is ignored, and the error says why.
    let pgpass = h.join(".pgpass");
    write_private(&pgpass, &pw.pgpass_line(), 0o644);
    let o = tandem(h, &[("DATABASE_URL", &url)], &["status"]);
    assert!(
        err(&o).contains("was ignored because group or others may read it (mode 0644)"),
        "{}",
        err(&o)
    );
    write_private(&pgpass, &pw.pgpass_line(), 0o600);
    status_ok(&[("DATABASE_URL", &url)], "~/.pgpass");
    std::fs::remove_file(&pgpass).unwrap();
    // PGPASSFILE, and passfile in the string.
    let other = h.join("elsewhere.pgpass");
    write_private(
        &other,
        &format!("# comment\nnowhere:1:*:*:x\n{}", pw.pgpass_line()),
        0o600,
    );
    let other = other.to_string_lossy().into_owned();
    status_ok(
        &[("DATABASE_URL", &url), ("PGPASSFILE", &other)],
        "PGPASSFILE",
    );
    status_ok(
        &[(
            "DATABASE_URL",
            &format!(
                "host=localhost port={} dbname={} user={} passfile={other}",
                pw.db.cluster().port(),
                pw.db.name,
                pw.role
            ),
        )],
        "key=value with passfile",
    );
    // A service, from PGSERVICEFILE, ~/.pg_service.conf and PGSYSCONFDIR, named by PGSERVICE,
    // by `service=` in a key=value string and in a URL; its password comes from PGPASSFILE.
    let section = format!(
        "# services\n[other]\nhost=nowhere\n\n[shop]\nhost=localhost\nport={}\ndbname={}\nuser={}\n",
        pw.db.cluster().port(),
        pw.db.name,
        pw.role
    );
    let service_file = h.join("services.conf");
    std::fs::write(&service_file, &section).unwrap();
    let service_file = service_file.to_string_lossy().into_owned();
    for (what, vars) in [
        ("PGSERVICE", vec![("PGSERVICE", "shop")]),
        (
            "service= in key=value",
            vec![("DATABASE_URL", "service=shop")],
        ),
        (
            "service= in a URL",
            vec![("DATABASE_URL", "postgres://?service=shop")],
        ),
    ] {
        let mut vars = vars.clone();
        vars.push(("PGSERVICEFILE", &service_file));
        vars.push(("PGPASSFILE", &other));
        status_ok(&vars, what);
    }
    std::fs::write(h.join(".pg_service.conf"), &section).unwrap();
    status_ok(
        &[("PGSERVICE", "shop"), ("PGPASSFILE", &other)],
        "~/.pg_service.conf",
    );
    std::fs::remove_file(h.join(".pg_service.conf")).unwrap();
    let sysconf = h.join("no-sysconf");
    std::fs::create_dir(&sysconf).unwrap();
    std::fs::write(sysconf.join("pg_service.conf"), &section).unwrap();
    status_ok(
        &[("PGSERVICE", "shop"), ("PGPASSFILE", &other)],
        "PGSYSCONFDIR",
    );
    // A service nobody defined.
    let o = tandem(h, &[("PGSERVICE", "nope")], &["status"]);
    assert!(
        err(&o).contains("service \"nope\" is not defined in"),
        "{}",
        err(&o)
    );
    // latest url never prints a password it was not given in the URL.
    let o = tandem(
        h,
        &[("PGSERVICE", "shop"), ("PGPASSFILE", &other)],
        &["latest", "url"],
    );
    assert!(
        !out(&o).contains("s3cret") && !err(&o).contains("s3cret"),
        "{}{}",
        out(&o),
        err(&o)
    );
}

#[test]
fn global_flags_have_tandem_and_pgroll_variables() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let help = out(&tandem(h, &[], &["--help"]));
    for name in [
        "DATABASE_URL",
        "TANDEM_SCHEMA",
        "TANDEM_STATE_SCHEMA",
        "TANDEM_LOCK_TIMEOUT",
        "TANDEM_ROLE",
        "TANDEM_JSON",
        "PGROLL_PG_URL",
        "PGROLL_SCHEMA",
        "PGROLL_STATE_SCHEMA",
        "PGROLL_LOCK_TIMEOUT",
        "PGROLL_ROLE",
    ] {
        assert!(
            help.contains(name),
            "--help does not mention {name}:\n{help}"
        );
    }
    // Schema: flag, then TANDEM_SCHEMA, then PGROLL_SCHEMA, then public.
    std::fs::write(
        h.join("01_users.yaml"),
        "operations:\n  - create_table: {name: users, columns: [{name: id, type: int, pk: true}]}\n",
    )
    .unwrap();
    let dir = h.to_string_lossy().into_owned();
    let local = |vars: &[(&str, &str)], extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend(["latest", "schema", "--local", &dir]);
        out(&tandem(h, vars, &args))
    };
    assert_eq!(local(&[], &[]), "public_01_users");
    assert_eq!(local(&[("PGROLL_SCHEMA", "p")], &[]), "p_01_users");
    assert_eq!(
        local(&[("PGROLL_SCHEMA", "p"), ("TANDEM_SCHEMA", "t")], &[]),
        "t_01_users"
    );
    assert_eq!(
        local(
            &[("PGROLL_SCHEMA", "p"), ("TANDEM_SCHEMA", "t")],
            &["--schema", "f"]
        ),
        "f_01_users"
    );
    // The URL: DATABASE_URL, then PGROLL_PG_URL; state schema and JSON from variables.
    let db = TestDb::new();
    let url = db.url();
    let o = tandem(
        h,
        &[
            ("PGROLL_PG_URL", &url),
            ("PGROLL_STATE_SCHEMA", "pgroll_state"),
        ],
        &["init"],
    );
    assert!(o.status.success(), "{}", err(&o));
    let o = tandem(
        h,
        &[
            ("DATABASE_URL", &url),
            ("PGROLL_PG_URL", "postgres://u@127.0.0.1:1/x"),
            ("PGROLL_STATE_SCHEMA", "pgroll_state"),
            ("TANDEM_JSON", "true"),
        ],
        &["status"],
    );
    assert!(o.status.success(), "{}", err(&o));
    let st: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(
        (st["initialized"].as_bool(), st["state_schema"].as_str()),
        (Some(true), Some("pgroll_state"))
    );
    let o = tandem(
        h,
        &[
            ("DATABASE_URL", &url),
            ("PGROLL_STATE_SCHEMA", "pgroll_state"),
            ("TANDEM_STATE_SCHEMA", "tandem_state"),
            ("TANDEM_JSON", "1"),
        ],
        &["status"],
    );
    let st: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(st["state_schema"], "tandem_state");
    // Lock timeout and role: each variable is read (a bad value or a missing role fails).
    for var in ["TANDEM_LOCK_TIMEOUT", "PGROLL_LOCK_TIMEOUT"] {
        let o = tandem(h, &[("DATABASE_URL", &url), (var, "soon")], &["status"]);
        assert_eq!(o.status.code(), Some(2), "{var}: {}", err(&o));
    }
    let o = tandem(
        h,
        &[("DATABASE_URL", &url), ("PGROLL_LOCK_TIMEOUT", "500")],
        &["status"],
    );
    assert!(o.status.success(), "pgroll's milliseconds: {}", err(&o));
    for var in ["TANDEM_ROLE", "PGROLL_ROLE"] {
        let o = tandem(
            h,
            &[("DATABASE_URL", &url), (var, "no_such_role")],
            &["status"],
        );
        assert!(
            err(&o).contains("role \"no_such_role\" does not exist"),
            "{var}: {}",
            err(&o)
        );
    }
}
