//! Identifiers nobody should use, and everybody eventually does: double quotes, spaces, upper
//! case, non-ASCII letters, reserved words and names of exactly 63 bytes, for tables, columns,
//! constraints, indexes and migration (file) names, plus names crafted to inject SQL. Every
//! operation kind goes through start → old and new clients write and see each other's rows →
//! rollback (catalog unchanged) → start → complete, and a bystander table proves nothing ran that
//! the names smuggled in. Migrations are built as JSON so the names arrive exactly as written.

mod common;

use common::{count, exec, Env};
use serde_json::{json, Value};
use tandem_model::migration::Format;
use tandem_model::{quote_ident as q, quote_literal, Migration};

const TABLE: &str = "Ünï \"Tab\" select";
const ID: &str = "Id";
const USER: &str = "user";
const QUOTED: &str = "Col \"q\" x";
const INJECT: &str = "x\"; DROP TABLE t; --";
const SCORE: &str = "select";
const CHECK: &str = "chk \"c\" ü; DROP TABLE t; --";
const INDEX: &str = "Idx \"i\" ü";

/// Exactly 63 bytes, the longest name PostgreSQL keeps: `prefix` padded with `ö` (2 bytes) and
/// `x`.
fn long(prefix: &str) -> String {
    let mut s = prefix.to_string();
    while s.len() + 2 <= 63 {
        s.push('ö');
    }
    while s.len() < 63 {
        s.push('x');
    }
    assert_eq!(s.len(), 63);
    s
}

fn lng() -> String {
    long("Long \"L\" ")
}

fn parse(name: &str, ops: Value) -> Migration {
    let text = json!({ "operations": ops }).to_string();
    Migration::parse(&text, Format::Json, &format!("{name}.json"), name)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `TABLE` with every kind of hostile column, a hostile check constraint and index, 100 rows,
/// and a bystander table `t` that an injection would drop.
fn setup() -> Env {
    let mut env = Env::new();
    // So that the type changes PostgreSQL makes without a rewrite go through the in-place path
    // (its view re-creation) with hostile names too.
    env.options.type_changes_in_place = true;
    let create = parse(
        "01 \"base\" ü",
        json!([{ "create_table": { "name": TABLE, "columns": [
            { "name": ID, "type": "int", "pk": true },
            { "name": USER, "type": "text", "nullable": true,
              "check": { "name": CHECK, "constraint": format!("{} <> ''", q(USER)) } },
            { "name": QUOTED, "type": "text", "nullable": true },
            { "name": INJECT, "type": "text", "nullable": true },
            { "name": lng(), "type": "text", "nullable": true },
            { "name": SCORE, "type": "text", "nullable": true }
        ]}}]),
    );
    env.start(&create).unwrap_or_else(|e| panic!("start: {e}"));
    env.complete();
    let index = parse(
        &long("02 \"index\" "),
        json!([{ "create_index": { "name": INDEX, "table": TABLE, "columns": [{ "column": QUOTED }] } }]),
    );
    env.start(&index).unwrap_or_else(|e| panic!("start: {e}"));
    env.complete();
    exec(
        &mut env.db.connect(),
        &format!(
            "CREATE TABLE t (id int); INSERT INTO t VALUES (1);
             INSERT INTO {} ({}, {}, {}, {}, {}, {})
             SELECT g, 'u' || g, 'q' || g, 'i' || g, 'l' || g, (g % 5)::text FROM generate_series(1, 100) g",
            q(TABLE),
            q(ID),
            q(USER),
            q(QUOTED),
            q(INJECT),
            q(&lng()),
            q(SCORE)
        ),
    );
    env
}

fn client(env: &Env, version_schema: &str) -> postgres::Client {
    env.db
        .connect_with_search_path(&format!("{}, public", q(version_schema)))
}

fn insert(c: &mut postgres::Client, table: &str, values: &[(&str, &str)]) {
    let cols: Vec<String> = values.iter().map(|(c, _)| q(c)).collect();
    let vals: Vec<&str> = values.iter().map(|(_, v)| *v).collect();
    exec(
        c,
        &format!(
            "INSERT INTO {} ({}) VALUES ({})",
            q(table),
            cols.join(", "),
            vals.join(", ")
        ),
    );
}

fn rows(c: &mut postgres::Client, table: &str, ids: &str) -> i64 {
    count(
        c,
        &format!(
            "SELECT count(*) FROM {} WHERE {} IN ({ids})",
            q(table),
            q(ID)
        ),
    )
}

fn bystander_intact(env: &Env) {
    let mut c = env.db.connect();
    assert_eq!(count(&mut c, "SELECT count(*) FROM public.t"), 1);
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM pg_class WHERE relname = 't' AND relnamespace = 'public'::regnamespace"),
        1
    );
}

/// What one operation test describes: the migration, the table's name in the new version, and
/// the columns (new-version names) and values the new version inserts.
struct Case<'a> {
    name: String,
    ops: Value,
    new_table: String,
    new_values: Vec<(String, &'a str)>,
}

/// start → the old version (original names) and the new one each insert a row and see both →
/// rollback, catalog as before → start again → writes → complete.
fn lifecycle(case: Case<'_>) -> Env {
    let mut env = setup();
    let old_version = env.status().version_schemas.last().unwrap().clone();
    let before = env.db.dump_schema();
    let m = parse(&case.name, case.ops.clone());
    let mut pass = 0;
    let mut run = |env: &mut Env| {
        pass += 1;
        let report = env
            .start(&m)
            .unwrap_or_else(|e| panic!("start {:?}: {e}", case.name));
        assert!(report.version_schema.len() <= 63);
        let (a, b) = (1000 + 2 * pass, 1001 + 2 * pass);
        let ids = format!("{a}, {b}");
        let mut old = client(env, &old_version);
        let mut new = client(env, &report.version_schema);
        let (sa, sb) = (a.to_string(), b.to_string());
        let (user, quoted, inject, l) = (
            format!("'old{a}'"),
            format!("'q{a}'"),
            format!("'i{a}'"),
            format!("'l{a}'"),
        );
        insert(
            &mut old,
            TABLE,
            &[
                (ID, &sa),
                (USER, &user),
                (QUOTED, &quoted),
                (INJECT, &inject),
                (&lng(), &l),
                (SCORE, "'3'"),
            ],
        );
        let mut values: Vec<(&str, &str)> = vec![(ID, &sb)];
        values.extend(case.new_values.iter().map(|(c, v)| (c.as_str(), *v)));
        insert(&mut new, &case.new_table, &values);
        assert_eq!(rows(&mut old, TABLE, &ids), 2, "old sees both rows");
        assert_eq!(
            rows(&mut new, &case.new_table, &ids),
            2,
            "new sees both rows"
        );
        report
    };
    run(&mut env);
    env.rollback();
    assert_eq!(
        before,
        env.db.dump_schema(),
        "rollback of {:?} must leave the catalog as it was",
        case.name
    );
    bystander_intact(&env);
    // The clients' rows survive the rollback; remove them so the second pass starts afresh.
    exec(
        &mut env.db.connect(),
        &format!("DELETE FROM {} WHERE {} > 1000", q(TABLE), q(ID)),
    );
    run(&mut env);
    env.complete();
    assert!(env.status().active.is_none());
    bystander_intact(&env);
    env
}

/// How many constraints, relations (indexes, tables) and columns of `TABLE`'s final name carry
/// exactly `name`: the name arrived whole, neither cut nor split into SQL.
fn named(env: &Env, table: &str, name: &str) -> (i64, i64, i64) {
    let mut c = env.db.connect();
    let l = quote_literal(name);
    let t = quote_literal(&q(table));
    (
        count(
            &mut c,
            &format!("SELECT count(*) FROM pg_constraint WHERE conname = {l} AND conrelid = {t}::regclass"),
        ),
        count(
            &mut c,
            &format!("SELECT count(*) FROM pg_class WHERE relname = {l} AND relnamespace = 'public'::regnamespace"),
        ),
        count(
            &mut c,
            &format!("SELECT count(*) FROM pg_attribute WHERE attname = {l} AND attrelid = {t}::regclass AND NOT attisdropped"),
        ),
    )
}

fn col(name: &str) -> String {
    name.to_string()
}

#[test]
fn create_table() {
    let new = long("New \"T\" ");
    let env = lifecycle(Case {
        name: "03 \"create\" user".into(),
        ops: json!([{ "create_table": { "name": new, "columns": [
            { "name": ID, "type": "int", "pk": true },
            { "name": USER, "type": "text", "unique": true,
              "check": { "name": long("chk "), "constraint": format!("{} <> ''", q(USER)) } },
            { "name": INJECT, "type": "int", "nullable": true,
              "references": { "name": "fk \"x\"; --", "table": TABLE, "column": ID } }
        ]}}]),
        new_table: TABLE.into(),
        new_values: vec![(col(USER), "'new'")],
    });
    let mut c = env.db.connect();
    exec(
        &mut c,
        &format!(
            "INSERT INTO {} ({}, {}, {}) VALUES (1, 'a', 5)",
            q(&new),
            q(ID),
            q(USER),
            q(INJECT)
        ),
    );
}

#[test]
fn add_column_with_up() {
    let added = "Añadida \"n\" from";
    let env = lifecycle(Case {
        name: "03 add \"col\"".into(),
        ops: json!([{ "add_column": { "table": TABLE,
            "column": { "name": added, "type": "text", "nullable": false, "default": "'d'" },
            "up": format!("COALESCE(upper({}), 'none')", q(USER)) } }]),
        new_table: TABLE.into(),
        new_values: vec![(col(added), "'mine'")],
    });
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            &format!(
                "SELECT count(*) FROM {} WHERE {} = upper({}) AND ({} <= 100 OR {} IN (1002, 1004))",
                q(TABLE),
                q(added),
                q(USER),
                q(ID),
                q(ID)
            )
        ),
        101,
        "backfilled and old-version rows through up"
    );
}

#[test]
fn alter_column_type_nullable_and_default() {
    let env = lifecycle(Case {
        name: long("03 alter \"type\" "),
        ops: json!([
            { "alter_column": { "table": TABLE, "column": SCORE, "type": "integer",
                "up": format!("CAST({} AS integer)", q(SCORE)), "down": format!("CAST({} AS text)", q(SCORE)) } },
            { "alter_column": { "table": TABLE, "column": QUOTED, "nullable": false,
                "up": format!("COALESCE({}, 'none')", q(QUOTED)), "down": q(QUOTED) } },
            { "alter_column": { "table": TABLE, "column": lng(), "default": "'it''s \"d\"'",
                "comment": "it's \"x\"; DROP TABLE t; --" } },
            // In place at complete, through the views over the column.
            { "alter_column": { "table": TABLE, "column": INJECT, "type": "varchar" } }
        ]),
        new_table: TABLE.into(),
        new_values: vec![(col(SCORE), "42"), (col(QUOTED), "'nq'")],
    });
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            &format!(
                "SELECT count(*) FROM {} WHERE {} = 42 AND {} = 'it''s \"d\"'",
                q(TABLE),
                q(SCORE),
                q(&lng())
            )
        ),
        1
    );
    let comment: Option<String> = c
        .query_one(
            &format!(
                "SELECT col_description({}::regclass, attnum) FROM pg_attribute WHERE attrelid = {}::regclass AND attname = {}",
                quote_literal(&q(TABLE)),
                quote_literal(&q(TABLE)),
                quote_literal(&lng())
            ),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(comment.as_deref(), Some("it's \"x\"; DROP TABLE t; --"));
    let inject_type: String = c
        .query_one(
            &format!(
                "SELECT format_type(atttypid, atttypmod) || ' at ' || attnum FROM pg_attribute WHERE attrelid = {}::regclass AND attname = {}",
                quote_literal(&q(TABLE)),
                quote_literal(INJECT)
            ),
            &[],
        )
        .unwrap()
        .get(0);
    // The same column (its position unchanged), not a second one renamed into its place.
    assert_eq!(inject_type, "character varying at 4");
}

#[test]
fn alter_column_check_unique_and_rename() {
    let renamed = long("Renamed \"r\" ");
    let env = lifecycle(Case {
        name: "03 \"check\"; DROP TABLE t; --".into(),
        ops: json!([
            { "alter_column": { "table": TABLE, "column": USER,
                "check": { "name": long("chk2 \"\" "), "constraint": format!("length({}) > 0", q(USER)) },
                "up": q(USER), "down": q(USER) } },
            { "alter_column": { "table": TABLE, "column": INJECT,
                "unique": { "name": long("uq \"u\"; --") }, "up": q(INJECT), "down": q(INJECT) } },
            { "alter_column": { "table": TABLE, "column": lng(), "name": renamed } }
        ]),
        new_table: TABLE.into(),
        new_values: vec![
            (col(USER), "'new'"),
            (col(INJECT), "'unique-new'"),
            (renamed.clone(), "'r'"),
        ],
    });
    assert_eq!(named(&env, TABLE, &long("chk2 \"\" ")).0, 1);
    assert_eq!(
        named(&env, TABLE, &long("uq \"u\"; --")).1,
        1,
        "the unique index"
    );
    assert_eq!(named(&env, TABLE, &renamed).2, 1);
    assert_eq!(named(&env, TABLE, &lng()).2, 0);
    assert_eq!(named(&env, TABLE, INJECT).2, 1);
}

#[test]
fn create_and_drop_constraint() {
    let env = lifecycle(Case {
        name: "03 constraints".into(),
        ops: json!([
            { "create_constraint": { "type": "check", "table": TABLE, "name": long("cc \"x\" "),
                "columns": [INJECT], "check": format!("{} <> 'bad'", q(INJECT)),
                "up": { INJECT: q(INJECT) }, "down": { INJECT: q(INJECT) } } },
            { "create_constraint": { "type": "unique", "table": TABLE, "name": "select",
                "columns": [USER, QUOTED],
                "up": { USER: q(USER), QUOTED: q(QUOTED) }, "down": { USER: q(USER), QUOTED: q(QUOTED) } } },
            { "drop_constraint": { "table": TABLE, "name": CHECK,
                "up": q(USER), "down": format!("CASE WHEN {0} = '' THEN NULL ELSE {0} END", q(USER)) } }
        ]),
        new_table: TABLE.into(),
        new_values: vec![(col(USER), "'new'"), (col(INJECT), "'fine'")],
    });
    assert_eq!(named(&env, TABLE, &long("cc \"x\" ")).0, 1);
    assert_eq!(named(&env, TABLE, "select").0, 1);
    assert_eq!(named(&env, TABLE, CHECK).0, 0, "dropped");
    assert_eq!(named(&env, TABLE, USER).2, 1);
}

#[test]
fn create_and_drop_index_and_replica_identity() {
    let env = lifecycle(Case {
        name: "03 \"index\"".into(),
        ops: json!([
            { "create_index": { "name": long("Ix \"u\" "), "table": TABLE, "unique": true,
                "columns": [{ "column": ID }, { "column": INJECT }] } },
            { "drop_index": { "name": INDEX } },
            { "set_replica_identity": { "table": TABLE, "identity": { "type": "full" } } }
        ]),
        new_table: TABLE.into(),
        new_values: vec![],
    });
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            &format!(
                "SELECT count(*) FROM pg_class WHERE relname = {} AND relreplident = 'f'",
                quote_literal(TABLE)
            )
        ),
        1
    );
    assert_eq!(named(&env, TABLE, &long("Ix \"u\" ")).1, 1);
    assert_eq!(named(&env, TABLE, INDEX).1, 0, "dropped");
}

#[test]
fn rename_table_and_column_and_drop_column() {
    let table = long("Renamed \"T\" ");
    let column = "y\"; DROP TABLE t; --";
    let env = lifecycle(Case {
        name: "03 rename".into(),
        ops: json!([
            { "rename_column": { "table": TABLE, "from": INJECT, "to": column } },
            { "drop_column": { "table": TABLE, "column": QUOTED,
                "down": format!("'from new: ' || {}", q(USER)) } },
            { "rename_table": { "from": TABLE, "to": table } }
        ]),
        new_table: table.clone(),
        new_values: vec![(col(USER), "'new'"), (col(column), "'c'")],
    });
    let mut c = env.db.connect();
    assert_eq!(
        count(
            &mut c,
            &format!(
                "SELECT count(*) FROM {} WHERE {} = 'c'",
                q(&table),
                q(column)
            )
        ),
        1
    );
}

/// A migration file whose name (and so the migration's name and version schema) is hostile,
/// loaded from disk as `tandem start FILE` does.
#[test]
fn migration_file_names() {
    let mut env = setup();
    let dir = tempfile::tempdir().unwrap();
    let name = long("03 \"file\"; DROP TABLE t; -- ");
    let path = dir.path().join(format!("{name}.json"));
    std::fs::write(
        &path,
        json!({ "operations": [{ "add_column": { "table": TABLE,
            "column": { "name": "from file", "type": "int", "nullable": true } } }] })
        .to_string(),
    )
    .unwrap();
    let m = Migration::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.name, name);
    let report = env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    assert!(
        report.version_schema.len() <= 63,
        "{}",
        report.version_schema
    );
    let mut new = client(&env, &report.version_schema);
    exec(
        &mut new,
        &format!(
            "INSERT INTO {} ({}, \"from file\") VALUES (5000, 7)",
            q(TABLE),
            q(ID)
        ),
    );
    env.rollback();
    bystander_intact(&env);
    env.start(&m)
        .unwrap_or_else(|e| panic!("second start: {e}"));
    env.complete();
    let status = env.status();
    assert_eq!(status.history.last().unwrap().name, name);
    assert_eq!(status.version_schemas, vec![report.version_schema]);
    bystander_intact(&env);
}
