//! The workflow commands around a migrations directory, through the binary and against real
//! PostgreSQL: `create`, `pull`, `baseline`, `status DIR`, `migrate` refusing an applied file
//! edited since, and files in the older forms of pgroll's format.

mod common;
use common::{stderr, stdout, tandem};

use std::path::Path;
use tandem_testkit::TestDb;

fn ok(args: &[&str], url: &str) -> String {
    let o = tandem(args, Some(url));
    assert!(
        o.status.success(),
        "tandem {args:?} failed: {}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn json(args: &[&str], url: Option<&str>) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = tandem(&all, url);
    serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("{all:?}: {e}: {}{}", stdout(&o), stderr(&o)))
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.connect().query_one(sql, &[]).unwrap().get(0)
}

const USERS: &str = "operations:\n  - create_table: {name: users, columns: [{name: id, type: serial, pk: true}, {name: name, type: text}]}\n";

#[test]
fn create_numbers_after_the_last_file_and_migrate_refuses_the_skeleton_until_written() {
    let db = TestDb::new();
    let url = db.url();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    write(dir.path(), "01_users.yaml", USERS);
    let out = ok(&["create", "add_nick", "--dir", d], &url);
    assert!(out.contains("02_add_nick.yaml"), "{out}");
    assert_eq!(files(dir.path()), ["01_users.yaml", "02_add_nick.yaml"]);
    // The same name again, numbered or not, is refused and nothing is written.
    let o = tandem(&["create", "add_nick", "--dir", d], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("already has a migration named \"add_nick\" (02_add_nick)"),
        "{}",
        stderr(&o)
    );
    // A name that cannot be a file name is a usage error.
    let o = tandem(&["create", "add/nick", "--dir", d], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("letters, digits"), "{}", stderr(&o));
    assert_eq!(files(dir.path()).len(), 2);

    // The skeleton has no operations: migrate refuses it, naming the file and the field,
    // before it changes anything.
    ok(&["init"], &url);
    let o = tandem(&["migrate", d], Some(&url));
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .contains("02_add_nick.yaml: operations: a migration needs at least one operation"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'users'"
        ),
        0
    );
    // Written, it applies.
    write(
        dir.path(),
        "02_add_nick.yaml",
        "operations:\n  - add_column: {table: users, column: {name: nick, type: text, nullable: true}}\n",
    );
    ok(&["migrate", d, "--complete", "--sample", "100ms"], &url);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'users' AND column_name = 'nick'"
        ),
        1
    );

    // An empty directory starts at 0001_, JSON when asked; a timestamped one goes on with
    // timestamps.
    let empty = tempfile::tempdir().unwrap();
    let e = empty.path().join("migrations");
    let doc = json(
        &[
            "create",
            "first",
            "--dir",
            e.to_str().unwrap(),
            "--format",
            "json",
        ],
        None,
    );
    assert!(
        doc["created"]
            .as_str()
            .unwrap()
            .ends_with("0001_first.json"),
        "{doc}"
    );
    let stamped = tempfile::tempdir().unwrap();
    write(stamped.path(), "20240131120000_users.yaml", USERS);
    let doc = json(
        &["create", "later", "--dir", stamped.path().to_str().unwrap()],
        None,
    );
    let created = doc["created"].as_str().unwrap();
    let stem = Path::new(created).file_stem().unwrap().to_str().unwrap();
    let (stamp, name) = stem.split_once('_').unwrap();
    assert_eq!(name, "later");
    assert_eq!(stamp.len(), 14, "{created}");
    assert!(stamp > "20240131120000", "{created}");
}

#[test]
fn migrate_refuses_an_applied_file_edited_since_naming_it() {
    let db = TestDb::new();
    let url = db.url();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    write(dir.path(), "01_users.yaml", USERS);
    ok(&["init"], &url);
    ok(&["migrate", d, "--complete", "--sample", "100ms"], &url);
    let recorded: Option<String> = db
        .connect()
        .query_one(
            "SELECT checksum FROM tandem.migrations WHERE name = '01_users'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(recorded.as_deref().map(str::len), Some(64));

    // Layout, comments and format are not edits: the same migration as JSON, commented YAML.
    write(
        dir.path(),
        "01_users.yaml",
        "# the users\noperations:\n  - create_table:\n      name: users\n      columns:\n        - {name: id, type: serial, pk: true}\n        - {name: name, type: text}\n",
    );
    write(
        dir.path(),
        "02_nick.yaml",
        "operations:\n  - add_column: {table: users, column: {name: nick, type: text, nullable: true}}\n",
    );
    ok(&["migrate", d, "--complete", "--sample", "100ms"], &url);

    // A change to what it does is refused, naming the file, with exit code 4, and nothing runs.
    write(
        dir.path(),
        "01_users.yaml",
        "operations:\n  - create_table: {name: users, columns: [{name: id, type: bigserial, pk: true}, {name: name, type: text}]}\n",
    );
    write(
        dir.path(),
        "03_email.yaml",
        "operations:\n  - add_column: {table: users, column: {name: email, type: text, nullable: true}}\n",
    );
    let o = tandem(&["migrate", d], Some(&url));
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("01_users.yaml: migration \"01_users\" was already applied, and the file was edited since"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM tandem.migrations"),
        2,
        "03_email must not have started"
    );
    // validate against the database says so before a deploy does.
    let o = tandem(&["validate", d], Some(&url));
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("01_users.yaml: migration \"01_users\" was already applied"),
        "{}",
        stderr(&o)
    );
    // status DIR says so too, and lists the pending file.
    let st = ok(&["status", d], &url);
    assert!(
        st.contains("01_users.yaml") && st.contains("edited since it was applied"),
        "{st}"
    );
    assert!(
        st.contains("03_email.yaml") && st.contains("pending"),
        "{st}"
    );

    // A history recorded before checksums: the stored content stands for the checksum.
    db.execute("UPDATE tandem.migrations SET checksum = NULL");
    let o = tandem(&["migrate", d], Some(&url));
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(stderr(&o).contains("01_users.yaml"), "{}", stderr(&o));
    write(dir.path(), "01_users.yaml", USERS);
    ok(&["migrate", d, "--complete", "--sample", "100ms"], &url);
    assert_eq!(count(&db, "SELECT count(*) FROM tandem.migrations"), 3);
}

#[test]
fn status_with_a_directory_lists_its_pending_files() {
    let db = TestDb::new();
    let url = db.url();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    write(dir.path(), "01_users.yaml", USERS);
    // Before the first migrate, every file is pending.
    ok(&["init"], &url);
    let doc = json(&["status", d], Some(&url));
    assert_eq!(doc["directory"]["files"][0]["state"], "pending", "{doc}");
    ok(&["migrate", d, "--complete", "--sample", "100ms"], &url);
    write(
        dir.path(),
        "02_nick.yaml",
        "operations:\n  - add_column: {table: users, column: {name: nick, type: text, nullable: true}}\n",
    );
    write(
        dir.path(),
        "03_email.yaml",
        "operations:\n  - add_column: {table: users, column: {name: email, type: text, nullable: true}}\n",
    );
    let st = ok(&["status", d], &url);
    assert!(st.contains("1 applied, 2 pending"), "{st}");
    let pending: Vec<&str> = st
        .lines()
        .filter(|l| l.starts_with("  ") && l.ends_with(" pending"))
        .collect();
    assert_eq!(pending.len(), 2, "{st}");
    assert!(pending[0].contains("02_nick.yaml") && pending[1].contains("03_email.yaml"));
    let doc = json(&["status", d], Some(&url));
    let states: Vec<(&str, &str)> = doc["directory"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("01_users", "applied"),
            ("02_nick", "pending"),
            ("03_email", "pending")
        ]
    );
    // A directory that does not match the history says how.
    let other = tempfile::tempdir().unwrap();
    write(other.path(), "01_other.yaml", USERS);
    let st = ok(&["status", other.path().to_str().unwrap()], &url);
    assert!(st.contains("does not match the directory"), "{st}");
}

#[test]
fn pull_writes_the_applied_history_back_and_migrate_accepts_it() {
    let db = TestDb::new();
    let url = db.url();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    write(dir.path(), "01_users.yaml", USERS);
    // An older form: pull writes it back in today's.
    write(
        dir.path(),
        "02_index.json",
        "{\"name\": \"02_index\", \"operations\": [{\"create_index\": {\"name\": \"users_name_id\", \"table\": \"users\", \"columns\": [\"name\", \"id\"]}}]}",
    );
    ok(&["init"], &url);
    ok(&["migrate", d, "--sample", "100ms"], &url);

    let pulled = tempfile::tempdir().unwrap();
    let p = pulled.path().join("history");
    let p = p.to_str().unwrap();
    let doc = json(&["pull", p], Some(&url));
    assert_eq!(
        doc["pulled"]["written"].as_array().unwrap().len(),
        2,
        "{doc}"
    );
    assert_eq!(
        files(Path::new(p)),
        ["01_users.yaml", "02_index.yaml"],
        "the active migration is pulled too"
    );
    let index = std::fs::read_to_string(Path::new(p).join("02_index.yaml")).unwrap();
    assert!(
        index.contains("- column: name") && index.contains("- column: id"),
        "{index}"
    );
    // The pulled files are the history: migrate has nothing to start and completes the last.
    let doc = json(
        &["migrate", p, "--complete", "--sample", "100ms"],
        Some(&url),
    );
    assert_eq!(doc["migrate"]["started"], serde_json::json!([]), "{doc}");
    assert_eq!(doc["migrate"]["completed"], serde_json::json!(["02_index"]));
    // Pulled again, nothing is written; as JSON, a file that is already there is kept.
    let doc = json(&["pull", p, "--format", "json"], Some(&url));
    assert_eq!(doc["pulled"]["written"], serde_json::json!([]));
    assert_eq!(
        doc["pulled"]["present"],
        serde_json::json!(["01_users", "02_index"])
    );
    let j = tempfile::tempdir().unwrap();
    ok(
        &["pull", j.path().to_str().unwrap(), "--format", "json"],
        &url,
    );
    assert_eq!(files(j.path()), ["01_users.json", "02_index.json"]);
    let doc = json(&["status", j.path().to_str().unwrap()], Some(&url));
    assert!(
        doc["directory"]["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["state"] == "applied"),
        "{doc}"
    );
    // Before init, pull says what to do.
    let fresh = TestDb::new();
    let o = tandem(&["pull", p], Some(&fresh.url()));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("run `tandem init` first"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn baseline_starts_the_history_of_a_database_that_existed_before_tandem() {
    let db = TestDb::new();
    let url = db.url();
    db.execute(
        "CREATE TABLE accounts (id serial PRIMARY KEY, name text NOT NULL);
         INSERT INTO accounts (name) VALUES ('ada'), ('grace');",
    );
    ok(&["init"], &url);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = ok(&["baseline", "0000_baseline", d], &url);
    assert!(
        out.contains("baseline 0000_baseline recorded") && out.contains("1 table(s)"),
        "{out}"
    );
    assert_eq!(files(dir.path()), ["0000_baseline.yaml"]);
    // status and latest show it; the latest version is the schema itself.
    let st = ok(&["status"], &url);
    assert!(
        st.lines().any(|l| l.contains("0000_baseline")
            && l.contains("baseline")
            && l.trim_end().ends_with("public")),
        "{st}"
    );
    assert_eq!(ok(&["latest", "migration"], &url).trim(), "0000_baseline");
    assert_eq!(ok(&["latest", "schema"], &url).trim(), "public");
    let doc = json(&["status"], Some(&url));
    assert_eq!(doc["history"][0]["baseline"], true, "{doc}");
    assert_eq!(doc["history"][0]["status"], "complete");

    // Later migrations follow it, planned against the schema the database has; migrate leaves
    // the placeholder aside.
    let st = ok(&["status", d], &url);
    assert!(st.contains("1 applied, 0 pending"), "{st}");
    write(
        dir.path(),
        "0001_email.yaml",
        "operations:\n  - add_column: {table: accounts, up: lower(name) || '@example.com', column: {name: email, type: text}}\n",
    );
    let doc = json(
        &["migrate", d, "--complete", "--sample", "100ms"],
        Some(&url),
    );
    assert_eq!(
        doc["migrate"]["started"],
        serde_json::json!(["0001_email"]),
        "{doc}"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM accounts WHERE email = name || '@example.com'"
        ),
        2
    );
    let parent: Option<String> = db
        .connect()
        .query_one(
            "SELECT parent FROM tandem.migrations WHERE name = '0001_email'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(parent.as_deref(), Some("0000_baseline"));
    assert_eq!(ok(&["latest", "schema"], &url).trim(), "public_0001_email");
    // A directory without the placeholder works the same.
    let without = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir.path().join("0001_email.yaml"),
        without.path().join("0001_email.yaml"),
    )
    .unwrap();
    let st = ok(&["status", without.path().to_str().unwrap()], &url);
    assert!(st.contains("1 applied, 0 pending"), "{st}");
    // pull writes the baseline's placeholder and the migrations after it.
    let pulled = tempfile::tempdir().unwrap();
    ok(&["pull", pulled.path().to_str().unwrap()], &url);
    assert_eq!(
        files(pulled.path()),
        ["0000_baseline.yaml", "0001_email.yaml"]
    );
    let doc = json(&["migrate", pulled.path().to_str().unwrap()], Some(&url));
    assert_eq!(doc["migrate"]["started"], serde_json::json!([]), "{doc}");

    // The same name twice, or a baseline while a migration is active, is refused.
    let o = tandem(&["baseline", "0000_baseline"], Some(&url));
    assert_eq!(o.status.code(), Some(8));
    assert!(stderr(&o).contains("already applied"), "{}", stderr(&o));
    write(
        dir.path(),
        "0002_nick.yaml",
        "operations:\n  - add_column: {table: accounts, column: {name: nick, type: text, nullable: true}}\n",
    );
    ok(&["migrate", d, "--sample", "100ms"], &url);
    let o = tandem(&["baseline", "again"], Some(&url));
    assert_eq!(o.status.code(), Some(8));
    assert!(
        stderr(&o).contains("0002_nick\" is active"),
        "{}",
        stderr(&o)
    );
    let o = tandem(&["baseline", "two words"], Some(&url));
    assert_eq!(o.status.code(), Some(2));
}

/// The files of tests/data/legacy in tandem-model, one per older form of pgroll's format,
/// applied to real tables: each does what today's form of it does.
#[test]
fn files_of_older_pgroll_releases_apply_as_they_are() {
    let db = TestDb::new();
    let url = db.url();
    let legacy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/data/legacy");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // The tables the fixtures change, shared with tandem-model's tests of the same files.
    std::fs::copy(
        legacy.join("../legacy-base/00_tables.yaml"),
        dir.path().join("00_tables.yaml"),
    )
    .unwrap();
    ok(&["init"], &url);
    ok(&["migrate", d, "--complete", "--sample", "100ms"], &url);
    db.execute(
        "INSERT INTO users DEFAULT VALUES;
         INSERT INTO reviews (username, product, review, stars, rating) VALUES ('ada', 'apples', NULL, NULL, '5');
         INSERT INTO posts (title, user_id, author_id, body) VALUES ('hello', 1, 1, 'some text');",
    );
    let mut names: Vec<String> = std::fs::read_dir(&legacy)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().to_string())
        .collect();
    names.sort();
    assert!(names.len() >= 13, "{names:?}");
    // One file at a time, as a team adds them: `migrate` keeps the version schema of the
    // application it found running, which a set_not_null would otherwise have to change.
    for name in &names {
        std::fs::copy(legacy.join(name), dir.path().join(name)).unwrap();
        ok(&["migrate", d, "--complete", "--sample", "100ms"], &url);
    }
    let mut c = db.connect();
    let mut index = |name: &str| -> String {
        c.query_one(
            "SELECT pg_get_indexdef(to_regclass($1))",
            &[&format!("public.{name}")],
        )
        .unwrap()
        .get(0)
    };
    // create_index.columns as names, and as a map: in the order written.
    assert!(index("idx_fruits_name_price").ends_with("(name, price)"));
    assert!(index("idx_fruits_price_name").ends_with("(price DESC NULLS LAST, name)"));
    let constraints: Vec<(String, String)> = c
        .query(
            "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint
             WHERE conrelid IN ('posts'::regclass, 'reviews'::regclass, 'orders'::regclass)
               AND contype <> 'p' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let def = |name: &str| {
        constraints
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("no constraint {name}: {constraints:?}"))
    };
    // set_unique: a unique constraint over both columns.
    assert_eq!(
        def("reviews_username_product_unique"),
        "UNIQUE (username, product)"
    );
    // A bare check expression, named as PostgreSQL names one.
    assert_eq!(def("posts_title_check"), "CHECK ((length(title) > 3))");
    // drop_constraint with its column: dropped.
    assert!(
        !constraints.iter().any(|(n, _)| n == "title_length"),
        "{constraints:?}"
    );
    // A lower-case foreign key action.
    assert_eq!(
        def("fk_users_id"),
        "FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE"
    );
    // set_not_null: NOT NULL, with `up` filling the row that had none.
    let review: String = c
        .query_one("SELECT review FROM reviews", &[])
        .unwrap()
        .get(0);
    assert_eq!(review, "apples is good");
    let nullable: String = c
        .query_one(
            "SELECT is_nullable FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'reviews' AND column_name = 'review'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(nullable, "NO");
    // alter_column with not_null: true.
    let (stars, nullable): (String, String) = c
        .query_one(
            "SELECT r.stars, c.is_nullable::text FROM reviews r, information_schema.columns c
             WHERE c.table_schema = 'public' AND c.table_name = 'reviews' AND c.column_name = 'stars'",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((stars.as_str(), nullable.as_str()), ("0", "NO"));
    // change_type: the column is an integer, its value converted by `up`.
    let rating: i32 = c
        .query_one("SELECT rating FROM reviews", &[])
        .unwrap()
        .get(0);
    assert_eq!(rating, 5);
    // set_check_constraint and set_foreign_key, and a foreign key without a name, named as
    // PostgreSQL names them.
    assert_eq!(def("posts_body_check"), "CHECK ((length(body) < 1000))");
    assert_eq!(
        def("posts_author_id_fkey"),
        "FOREIGN KEY (author_id) REFERENCES users(id)"
    );
    assert_eq!(
        def("orders_user_id_fkey"),
        "FOREIGN KEY (user_id) REFERENCES users(id)"
    );
    // set_replica_identity as first released.
    let identity: i8 = c
        .query_one(
            "SELECT relreplident::\"char\" FROM pg_class WHERE oid = 'fruits'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(identity as u8, b'f');
    // Applied as they are, checked as they are: the unchanged older files are not edits.
    let st = ok(&["status", d], &url);
    assert!(
        st.contains(&format!("{} applied, 0 pending", names.len() + 1)),
        "{st}"
    );
}
