//! The user's own views and materialized views on Pagila, a schema nobody here wrote: a column
//! that changes type under `film_list` and `sales_by_store` keeps both versions' reads working
//! through start, rollback (an identical catalog) and complete, which creates the views again
//! over the new column as they were; what complete could not keep working is refused at start,
//! naming the view, before anything changes.

mod common;

use common::{count, exec, migration, Env};

fn one(c: &mut postgres::Client, sql: &str) -> String {
    c.query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

fn type_of(c: &mut postgres::Client, relation: &str, column: &str) -> String {
    one(
        c,
        &format!("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = '{relation}'::regclass AND attname = '{column}'"),
    )
}

/// What the views keep through complete: owner, grants, comments and options.
fn view_attributes(c: &mut postgres::Client, view: &str) -> String {
    one(
        c,
        &format!(
            "SELECT concat_ws(' | ', pg_get_userbyid(relowner), relacl::text, obj_description(oid, 'pg_class'),
                    array_to_string(reloptions, ','))
               FROM pg_class WHERE oid = '{view}'::regclass"
        ),
    )
}

/// Runs `m` on Pagila through start, reads of `views` by both versions, rollback (the catalog
/// must be as before), start again and complete; returns the env and the catalog before.
fn lifecycle(env: &mut Env, m: &tandem_model::Migration, old: &str, views: &[&str]) {
    let before = env.db.dump_schema();
    for pass in 0..2 {
        env.start(m).unwrap_or_else(|e| panic!("start: {e}"));
        for version in [old, m.version_schema.as_deref().unwrap_or("")] {
            let mut c = if version.is_empty() {
                env.version(&format!("public_{}", m.name))
            } else {
                env.version(version)
            };
            for view in views {
                // Pagila leaves `rental_by_category` unpopulated, which reading it says.
                if *view == "rental_by_category" {
                    let err = c
                        .query(&format!("SELECT * FROM {view}"), &[])
                        .expect_err("not populated");
                    let err = tandem_pg::error::describe(&err);
                    assert!(err.contains("has not been populated"), "{err}");
                } else {
                    let sql = format!("SELECT count(*) FROM {view}");
                    let n: i64 = c
                        .query_one(&sql, &[])
                        .unwrap_or_else(|e| {
                            panic!("{version}: {sql}: {}", tandem_pg::error::describe(&e))
                        })
                        .get(0);
                    assert!(n > 0, "{version}: {view} is empty");
                }
            }
        }
        if pass == 0 {
            env.rollback();
            assert_eq!(
                before,
                env.db.dump_schema(),
                "rollback leaves the catalog as it was"
            );
        }
    }
    env.complete();
}

#[test]
fn film_length_retyped_under_film_list_keeps_the_views_and_their_attributes() {
    let Some(mut env) = Env::pagila() else { return };
    exec(
        &mut env.db.connect(),
        "COMMENT ON VIEW public.film_list IS 'films with their actors';
         GRANT SELECT ON public.film_list TO PUBLIC;
         ALTER VIEW public.nicer_but_slower_film_list SET (security_barrier = true);
         CREATE VIEW public.long_films AS SELECT fid, title, length FROM public.film_list WHERE length > 150",
    );
    let mut c = env.db.connect();
    let film_list = view_attributes(&mut c, "public.film_list");
    let nicer = view_attributes(&mut c, "public.nicer_but_slower_film_list");
    let long_films = count(&mut c, "SELECT count(*) FROM public.long_films");
    let m = migration(
        "02_length_int",
        "operations:
  - alter_column:
      table: film
      column: length
      type: integer
      up: CAST(length AS integer)
      down: CAST(length AS smallint)
",
    );
    lifecycle(
        &mut env,
        &m,
        "public",
        &["film_list", "nicer_but_slower_film_list", "long_films"],
    );
    for view in ["film_list", "nicer_but_slower_film_list", "long_films"] {
        assert_eq!(
            type_of(&mut c, &format!("public.{view}"), "length"),
            "integer",
            "{view}"
        );
    }
    assert_eq!(view_attributes(&mut c, "public.film_list"), film_list);
    assert_eq!(
        view_attributes(&mut c, "public.nicer_but_slower_film_list"),
        nicer
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM public.long_films"),
        long_films
    );
    // Pagila's own functions still work over the table.
    assert!(count(&mut c, "SELECT count(*) FROM public.film_in_stock(1, 1)") > 0);
}

#[test]
fn payment_amount_retyped_under_the_sales_views_and_an_empty_materialized_view() {
    let Some(mut env) = Env::pagila() else { return };
    exec(
        &mut env.db.connect(),
        "CREATE INDEX rental_by_category_category ON public.rental_by_category (category)",
    );
    let m = migration(
        "02_amount_wider",
        "operations:\n  - alter_column: {table: payment, column: amount, type: 'numeric(7,2)'}\n",
    );
    lifecycle(
        &mut env,
        &m,
        "public",
        &[
            "sales_by_store",
            "sales_by_film_category",
            "rental_by_category",
        ],
    );
    let mut c = env.db.connect();
    for view in [
        "sales_by_store",
        "sales_by_film_category",
        "rental_by_category",
    ] {
        assert_eq!(
            type_of(&mut c, &format!("public.{view}"), "total_sales"),
            "numeric",
            "{view}"
        );
    }
    assert_eq!(type_of(&mut c, "public.payment", "amount"), "numeric(7,2)");
    exec(
        &mut c,
        "REFRESH MATERIALIZED VIEW public.rental_by_category",
    );
    assert!(count(&mut c, "SELECT count(*) FROM public.rental_by_category") > 0);
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'rental_by_category_category'"
        ),
        1
    );
}

#[test]
fn a_dropped_column_a_view_reads_is_refused_at_start_naming_the_view() {
    let Some(mut env) = Env::pagila() else { return };
    let before = env.db.dump_schema();
    let m = migration(
        "02_no_length",
        "operations:\n  - drop_column: {table: film, column: length}\n",
    );
    let err = env.start(&m).expect_err("film_list reads film.length");
    assert!(matches!(err, tandem_pg::Error::Validation(_)), "{err}");
    let err = err.to_string();
    assert!(
        err.contains("operations[0].drop_column.column")
            && err.contains("view public.film_list reads column film.length, which complete drops")
            && err.contains("view public.nicer_but_slower_film_list"),
        "{err}"
    );
    assert!(env.status().active.is_none());
    assert_eq!(before, env.db.dump_schema(), "nothing changed");
}

#[test]
fn a_populated_materialized_view_is_refused_at_start_naming_it() {
    let Some(mut env) = Env::pagila() else { return };
    exec(
        &mut env.db.connect(),
        "REFRESH MATERIALIZED VIEW public.rental_by_category",
    );
    let before = env.db.dump_schema();
    let m = migration(
        "02_amount_wider",
        "operations:\n  - alter_column: {table: payment, column: amount, type: 'numeric(7,2)'}\n",
    );
    let err = env
        .start(&m)
        .expect_err("rental_by_category holds data")
        .to_string();
    assert!(
        err.contains("operations[0].alter_column.type")
            && err.contains(
                "materialized view public.rental_by_category reads column payment.amount"
            ),
        "{err}"
    );
    assert!(env.status().active.is_none());
    assert_eq!(before, env.db.dump_schema(), "nothing changed");
}

/// A view made while the migration is active, over a column complete drops: complete refuses
/// before changing anything, naming it, and goes ahead once it is gone.
#[test]
fn complete_refuses_a_view_made_since_start_over_a_dropped_column() {
    let Some(mut env) = Env::pagila() else { return };
    let m = migration(
        "02_no_features",
        "operations:\n  - drop_column: {table: film, column: special_features}\n",
    );
    env.start(&m).unwrap_or_else(|e| panic!("start: {e}"));
    exec(
        &mut env.db.connect(),
        "CREATE VIEW public.featured AS SELECT film_id, special_features FROM public.film",
    );
    let before = env.db.dump_schema();
    let err = env
        .engine()
        .complete(&tandem_pg::events::ignore)
        .expect_err("featured reads film.special_features")
        .to_string();
    assert!(
        err.contains(
            "view public.featured reads column film.special_features, which complete drops"
        ) && err.contains("Nothing was changed"),
        "{err}"
    );
    assert_eq!(
        env.status().active.unwrap().status,
        tandem_pg::MigrationStatus::Active
    );
    assert_eq!(before, env.db.dump_schema());
    exec(&mut env.db.connect(), "DROP VIEW public.featured");
    env.complete();
}
