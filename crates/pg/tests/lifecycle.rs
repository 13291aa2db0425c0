//! Every operation as users live through it: start → an old-version client and a new-version
//! client each read and write and see each other's writes → rollback → the catalog is identical
//! to before start → start again → complete → the final shape.

mod common;

use common::{count, exec, migration, Env};

const USERS: &str = "operations:
  - create_table:
      name: users
      columns:
        - {name: id, type: serial, pk: true}
        - {name: name, type: text}
        - {name: email, type: text, nullable: true}
        - {name: legacy, type: text}
";

/// A database with `users` (version `public_01_users`) holding some rows.
fn setup() -> Env {
    let mut env = Env::new();
    env.apply("01_users", USERS);
    exec(
        &mut env.db.connect(),
        "INSERT INTO users (name, email, legacy) SELECT 'u' || g, 'u' || g || '@x', 'l' || g FROM generate_series(1, 2500) g",
    );
    env
}

/// Runs start, `during` (with old and new clients), rollback with a catalog comparison, then
/// start and complete; returns the env for final assertions.
fn lifecycle(
    name: &str,
    yaml: &str,
    during: impl Fn(&mut postgres::Client, &mut postgres::Client),
) -> Env {
    let mut env = setup();
    let before = env.db.dump_schema();
    let m = migration(name, yaml);
    env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    let version = format!("public_{name}");
    {
        let mut old = env.version("public_01_users");
        let mut new = env.version(&version);
        during(&mut old, &mut new);
    }
    env.rollback();
    assert_eq!(
        before,
        env.db.dump_schema(),
        "rollback must leave the catalog as it was"
    );
    assert!(env.status().active.is_none());
    // The clients' rows survive the rollback, as they must; remove them so the second pass
    // starts from the same data.
    exec(
        &mut env.db.connect(),
        "DELETE FROM public.users WHERE id > 2500",
    );
    env.start(&m)
        .unwrap_or_else(|e| panic!("second start: {e}"));
    {
        let mut old = env.version("public_01_users");
        let mut new = env.version(&version);
        during(&mut old, &mut new);
    }
    env.complete();
    let status = env.status();
    assert!(status.active.is_none());
    assert_eq!(
        status.version_schemas,
        vec![version],
        "only the latest version schema remains"
    );
    env
}

#[test]
fn rename_column() {
    let env = lifecycle(
        "02_rename",
        "operations:\n  - rename_column: {table: users, from: name, to: full_name}\n",
        |old, new| {
            exec(
                old,
                "INSERT INTO users (name, legacy) VALUES ('from-old', 'x')",
            );
            exec(
                new,
                "INSERT INTO users (full_name, legacy) VALUES ('from-new', 'x')",
            );
            assert_eq!(
                count(
                    new,
                    "SELECT count(*) FROM users WHERE full_name = 'from-old'"
                ),
                1
            );
            assert_eq!(
                count(old, "SELECT count(*) FROM users WHERE name = 'from-new'"),
                1
            );
            exec(
                new,
                "UPDATE users SET full_name = 'renamed' WHERE full_name = 'from-old'",
            );
            assert_eq!(
                count(old, "SELECT count(*) FROM users WHERE name = 'renamed'"),
                1
            );
        },
    );
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM public.users WHERE full_name IS NOT NULL"
        ),
        2502
    );
}

#[test]
fn rename_column_through_alter_column_name() {
    lifecycle(
        "02_alter_name",
        "operations:\n  - alter_column: {table: users, column: email, name: mail}\n",
        |old, new| {
            exec(
                old,
                "INSERT INTO users (name, email, legacy) VALUES ('a', 'old@x', 'x')",
            );
            assert_eq!(
                count(new, "SELECT count(*) FROM users WHERE mail = 'old@x'"),
                1
            );
        },
    );
}

#[test]
fn rename_table() {
    let env = lifecycle(
        "02_rename_table",
        "operations:\n  - rename_table: {from: users, to: people}\n",
        |old, new| {
            exec(old, "INSERT INTO users (name, legacy) VALUES ('o', 'x')");
            exec(new, "INSERT INTO people (name, legacy) VALUES ('n', 'x')");
            assert_eq!(
                count(new, "SELECT count(*) FROM people WHERE name IN ('o', 'n')"),
                2
            );
            assert_eq!(
                count(old, "SELECT count(*) FROM users WHERE name IN ('o', 'n')"),
                2
            );
        },
    );
    let mut c = env.db.connect();
    assert_eq!(count(&mut c, "SELECT count(*) FROM public.people"), 2502);
}

#[test]
fn add_nullable_column_and_column_with_default() {
    let env = lifecycle(
        "02_add",
        "operations:
  - add_column: {table: users, column: {name: nick, type: text, nullable: true}}
  - add_column: {table: users, column: {name: score, type: int, default: '10'}}
",
        |old, new| {
            // The old version inserts without knowing the new columns; the default applies.
            exec(old, "INSERT INTO users (name, legacy) VALUES ('o', 'x')");
            assert_eq!(
                count(new, "SELECT score::bigint FROM users WHERE name = 'o'"),
                10
            );
            exec(
                new,
                "INSERT INTO users (name, legacy, nick) VALUES ('n', 'x', 'nn')",
            );
            assert_eq!(count(old, "SELECT count(*) FROM users WHERE name = 'n'"), 1);
            // Inserting through the view without the column gives the column's default.
            exec(new, "INSERT INTO users (name, legacy) VALUES ('n2', 'x')");
            assert_eq!(
                count(new, "SELECT score::bigint FROM users WHERE name = 'n2'"),
                10
            );
        },
    );
    let mut c = env.db.connect();
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM public.users WHERE score = 10"),
        2503
    );
    let nullable: bool = c
        .query_one("SELECT NOT attnotnull FROM pg_attribute WHERE attrelid = 'public.users'::regclass AND attname = 'score'", &[])
        .unwrap()
        .get(0);
    assert!(!nullable, "score is NOT NULL");
}

#[test]
fn add_not_null_column_with_up_is_backfilled_and_kept_in_step() {
    let env = lifecycle(
        "02_add_up",
        "operations:
  - add_column:
      table: users
      up: upper(name)
      column: {name: shout, type: text, unique: true, check: {name: shout_upper, constraint: shout = upper(shout)}}
",
        |old, new| {
            assert_eq!(count(new, "SELECT count(*) FROM users WHERE shout IS NULL"), 0, "existing rows backfilled");
            assert_eq!(count(new, "SELECT count(*) FROM users WHERE shout = 'U7'"), 1);
            // The old version's writes get `up`.
            exec(old, "INSERT INTO users (name, legacy) VALUES ('from old', 'x')");
            assert_eq!(count(new, "SELECT count(*) FROM users WHERE shout = 'FROM OLD'"), 1);
            exec(old, "UPDATE users SET name = 'changed by old' WHERE name = 'from old'");
            assert_eq!(count(new, "SELECT count(*) FROM users WHERE shout = 'CHANGED BY OLD'"), 1);
            // The new version writes the column itself, and cannot store NULL.
            exec(new, "INSERT INTO users (name, legacy, shout) VALUES ('n', 'x', 'EXPLICIT')");
            assert_eq!(count(old, "SELECT count(*) FROM users WHERE name = 'n'"), 1);
            assert_eq!(count(new, "SELECT count(*) FROM users WHERE shout = 'EXPLICIT'"), 1);
            assert!(new.batch_execute("INSERT INTO users (name, legacy, shout) VALUES ('bad', 'x', 'lower')").is_err(), "check enforced");
        },
    );
    let mut c = env.db.connect();
    let (not_null, constraints): (bool, i64) = {
        let r = c
            .query_one(
                "SELECT attnotnull, (SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.users'::regclass AND contype IN ('u', 'c') AND convalidated)
                   FROM pg_attribute WHERE attrelid = 'public.users'::regclass AND attname = 'shout'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!(not_null, "NOT NULL after complete");
    assert_eq!(
        constraints, 2,
        "unique and check constraints attached and validated"
    );
    assert_eq!(count(&mut c, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.users'::regclass AND NOT tgisinternal"), 0, "trigger removed");
}

#[test]
fn add_column_with_volatile_default_does_not_rewrite_and_is_filled() {
    let env = lifecycle(
        "02_volatile",
        "operations:\n  - add_column: {table: users, column: {name: token, type: double precision, default: random()}}\n",
        |old, new| {
            assert_eq!(count(new, "SELECT count(*) FROM users WHERE token IS NULL"), 0);
            exec(old, "INSERT INTO users (name, legacy) VALUES ('o', 'x')");
            assert_eq!(count(new, "SELECT count(*) FROM users WHERE token IS NULL"), 0);
            assert!(count(new, "SELECT count(DISTINCT token) FROM users") > 100, "evaluated per row");
        },
    );
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM public.users WHERE token IS NULL"
        ),
        0
    );
}

#[test]
fn add_column_with_foreign_key() {
    let mut env = setup();
    env.apply("02_teams", "operations:\n  - create_table: {name: teams, columns: [{name: id, type: int, pk: true}]}\n");
    exec(&mut env.db.connect(), "INSERT INTO teams VALUES (1), (2)");
    let m = migration(
        "03_team_fk",
        "operations:\n  - add_column: {table: users, column: {name: team_id, type: int, nullable: true, references: {name: users_team_fk, table: teams, column: id}}}\n",
    );
    env.start(&m).unwrap();
    let mut new = env.version("public_03_team_fk");
    exec(&mut new, "UPDATE users SET team_id = 1 WHERE id < 10");
    assert!(
        new.batch_execute("UPDATE users SET team_id = 99 WHERE id = 11")
            .is_err(),
        "foreign key enforced for new writes"
    );
    env.complete();
    let validated: bool = env
        .db
        .connect()
        .query_one(
            "SELECT convalidated FROM pg_constraint WHERE conname = 'users_team_fk'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(validated);
}

#[test]
fn drop_column_with_down() {
    let env = lifecycle(
        "02_drop",
        "operations:\n  - drop_column: {table: users, column: legacy, down: \"'from new: ' || name\"}\n",
        |old, new| {
            // The new version no longer sees the column...
            assert!(new.batch_execute("SELECT legacy FROM users").is_err());
            // ...and its inserts fill it for the old version through `down`.
            exec(new, "INSERT INTO users (name) VALUES ('n')");
            assert_eq!(count(old, "SELECT count(*) FROM users WHERE legacy = 'from new: n'"), 1);
            exec(old, "INSERT INTO users (name, legacy) VALUES ('o', 'kept')");
            assert_eq!(count(old, "SELECT count(*) FROM users WHERE legacy = 'kept'"), 1);
        },
    );
    let mut c = env.db.connect();
    assert_eq!(count(&mut c, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'legacy'"), 0);
}

#[test]
fn create_and_drop_table() {
    let mut env = lifecycle(
        "02_tables",
        "operations:
  - create_table:
      name: posts
      comment: posts of users
      columns:
        - {name: id, type: bigint, pk: true, generated: {identity: {user_specified_values: ALWAYS}}}
        - {name: user_id, type: int, references: {name: posts_user_fk, table: users, column: id, on_delete: CASCADE}}
        - {name: title, type: text, check: {name: title_len, constraint: length(title) > 0}, comment: the title}
        - {name: slug, type: text, unique: true}
        - {name: views, type: int, default: '0'}
      constraints:
        - {name: title_slug_unique, type: unique, columns: [title, slug]}
",
        |old, new| {
            exec(new, "INSERT INTO posts (user_id, title, slug) VALUES (1, 'hello', 'hello')");
            assert_eq!(count(new, "SELECT views::bigint FROM posts"), 0);
            // The old version does not see the new table in its own schema.
            assert!(old.batch_execute("SELECT * FROM \"public_01_users\".posts").is_err());
        },
    );
    let mut c = env.db.connect();
    assert_eq!(count(&mut c, "SELECT count(*) FROM public.posts"), 1);
    env.apply(
        "03_drop_posts",
        "operations:\n  - drop_table: {name: posts}\n",
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_class WHERE relname = 'posts'"
        ),
        0
    );
}

#[test]
fn drop_table_is_hidden_until_complete() {
    let mut env = setup();
    let before = env.db.dump_schema();
    env.start(&migration(
        "02_drop_users",
        "operations:\n  - drop_table: {name: users}\n",
    ))
    .unwrap();
    let mut new = env.version("public_02_drop_users");
    assert_eq!(
        count(
            &mut new,
            "SELECT count(*) FROM pg_views WHERE schemaname = 'public_02_drop_users'"
        ),
        0
    );
    let mut old = env.version("public_01_users");
    assert_eq!(
        count(&mut old, "SELECT count(*) FROM users"),
        2500,
        "the old version still has its data"
    );
    env.rollback();
    assert_eq!(before, env.db.dump_schema());
}

#[test]
fn create_and_drop_index() {
    let mut env = lifecycle(
        "02_index",
        "operations:
  - create_index: {name: users_email_lower, table: users, columns: [{column: email, opclass: {name: text_pattern_ops}, sort: DESC}], predicate: email IS NOT NULL, storage_parameters: fillfactor = 70}
  - create_index: {name: users_name_hash, table: users, method: hash, columns: [{column: name}]}
",
        |_old, new| {
            assert_eq!(count(new, "SELECT count(*) FROM pg_indexes WHERE indexname IN ('users_email_lower', 'users_name_hash')"), 2);
        },
    );
    let mut c = env.db.connect();
    let def: String = c
        .query_one(
            "SELECT pg_get_indexdef('public.users_email_lower'::regclass)",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        def.contains("text_pattern_ops DESC")
            && def.contains("fillfactor='70'")
            && def.contains("WHERE (email IS NOT NULL)"),
        "{def}"
    );
    env.start(&migration(
        "03_drop_index",
        "operations:\n  - drop_index: {name: users_name_hash}\n",
    ))
    .unwrap();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'users_name_hash'"
        ),
        1,
        "kept while the old version runs"
    );
    env.complete();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'users_name_hash'"
        ),
        0
    );
}

#[test]
fn invalid_index_left_by_a_failed_build_is_rebuilt() {
    let mut env = setup();
    exec(
        &mut env.db.connect(),
        "INSERT INTO users (name, legacy) VALUES ('u1', 'dup')",
    );
    // A unique build over duplicate values fails and leaves an INVALID index behind...
    let err = env
        .start(&migration("02_unique", "operations:\n  - create_index: {name: users_name_uq, table: users, unique: true, columns: [{column: name}]}\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("could not create unique index"), "{err}");
    // ...which the failed start removed with everything else it did.
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_class WHERE relname = 'users_name_uq'"
        ),
        0
    );
    assert!(env.status().active.is_none());
    // An INVALID index of that name from elsewhere is dropped and rebuilt.
    exec(&mut c, "DELETE FROM users WHERE legacy = 'dup'");
    exec(&mut c, "CREATE INDEX users_name_idx ON users (name)");
    // Writing the catalog directly takes the superuser, whatever role the tests run as.
    exec(
        &mut env.db.connect_as_superuser(),
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'users_name_idx'::regclass",
    );
    env.start(&migration("03_rebuild", "operations:\n  - create_index: {name: users_name_idx, table: users, columns: [{column: name}]}\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    let valid: bool = c
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_name_idx'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(valid);
}

#[test]
fn sql_beside_other_operations() {
    let mut env = lifecycle(
        "02_sql",
        "operations:
  - sql: {up: 'CREATE TABLE audit (id int PRIMARY KEY, note text)', down: DROP TABLE audit}
  - add_column: {table: audit, column: {name: at, type: timestamptz, default: now()}}
  - rename_column: {table: users, from: email, to: mail}
",
        |_old, new| {
            exec(new, "INSERT INTO audit (id, note) VALUES (1, 'n')");
            assert_eq!(
                count(new, "SELECT count(*) FROM audit WHERE at IS NOT NULL"),
                1
            );
        },
    );
    env.apply(
        "03_on_complete",
        "operations:\n  - sql: {up: ALTER TABLE audit ADD COLUMN extra int, onComplete: true}\n",
    );
    let mut c = env.db.connect();
    assert_eq!(count(&mut c, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'audit' AND column_name = 'extra'"), 1);
}

#[test]
fn rename_and_set_replica_identity_and_constraint() {
    let mut env = setup();
    env.apply(
        "02_constraint",
        "operations:
  - create_table: {name: t, columns: [{name: id, type: int, pk: true}, {name: v, type: int, check: {name: v_pos, constraint: v > 0}}]}
",
    );
    env.apply(
        "03_more",
        "operations:
  - rename_constraint: {table: t, from: v_pos, to: v_positive}
  - set_replica_identity: {table: t, identity: {type: index, index: t_pkey}}
",
    );
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_constraint WHERE conname = 'v_positive'"
        ),
        1
    );
    let ident: String = c
        .query_one(
            "SELECT relreplident::text FROM pg_class WHERE oid = 'public.t'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(ident, "i");
}

/// The table's replica identity as `pg_class` and `pg_index` record it: `d`, `f`, `n`, or the
/// index's name.
fn replica_identity(c: &mut postgres::Client, table: &str) -> String {
    c.query_one(
        "SELECT CASE c.relreplident WHEN 'i' THEN (SELECT i.indexrelid::regclass::text
                     FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)
                ELSE c.relreplident::text END
           FROM pg_class c WHERE c.oid = to_regclass($1)",
        &[&table],
    )
    .unwrap()
    .get(0)
}

#[test]
fn set_replica_identity_is_undone_by_rollback() {
    let env = lifecycle(
        "02_full",
        "operations:\n  - set_replica_identity: {table: users, identity: {type: full}}\n",
        |old, new| {
            assert_eq!(replica_identity(old, "public.users"), "f");
            exec(old, "INSERT INTO users (name, legacy) VALUES ('old', 'l')");
            exec(new, "UPDATE users SET name = 'new' WHERE name = 'old'");
            assert_eq!(
                count(old, "SELECT count(*) FROM users WHERE name = 'new'"),
                1
            );
        },
    );
    assert_eq!(replica_identity(&mut env.db.connect(), "public.users"), "f");
}

#[test]
fn set_replica_identity_rollback_restores_an_index_identity() {
    let mut env = setup();
    let mut c = env.db.connect();
    exec(
        &mut c,
        "CREATE UNIQUE INDEX users_id_name ON users (id, name);
         ALTER TABLE users REPLICA IDENTITY USING INDEX users_id_name",
    );
    let before = env.db.dump_schema();
    for identity in [
        "{type: nothing}",
        "{type: index, index: users_pkey}",
        "{type: default}",
    ] {
        let m = migration(
            "02_identity",
            &format!(
                "operations:\n  - set_replica_identity: {{table: users, identity: {identity}}}\n"
            ),
        );
        env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
        assert_ne!(
            replica_identity(&mut c, "users"),
            "users_id_name",
            "{identity}"
        );
        env.rollback();
        assert_eq!(
            replica_identity(&mut c, "users"),
            "users_id_name",
            "{identity}"
        );
        assert_eq!(before, env.db.dump_schema(), "{identity}");
    }
    // Two changes in one migration: rollback still ends at the setting from before start.
    env.start(&migration(
        "02_twice",
        "operations:\n  - set_replica_identity: {table: users, identity: {type: full}}\n  - set_replica_identity: {table: users, identity: {type: nothing}}\n",
    ))
    .unwrap();
    assert_eq!(replica_identity(&mut c, "users"), "n");
    env.rollback();
    assert_eq!(before, env.db.dump_schema());
}

/// A table created and dropped by one migration leaves nothing behind, through rollback and
/// through complete; neither version ever sees it.
#[test]
fn create_and_drop_a_table_in_one_migration() {
    let env = lifecycle(
        "02_scratch",
        "operations:
  - create_table:
      name: scratch
      columns:
        - {name: id, type: bigint, pk: true}
  - drop_table:
      name: scratch
",
        |old, new| {
            for client in [old, new] {
                let seen: i64 = client
                    .query_one(
                        "SELECT count(*) FROM pg_class WHERE relname = 'scratch' AND relkind = 'v'",
                        &[],
                    )
                    .unwrap()
                    .get(0);
                assert_eq!(seen, 0, "no version has a view of the scratch table");
            }
        },
    );
    let mut client = env.db.connect();
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM pg_class WHERE relname = 'scratch'"
        ),
        0
    );
}
