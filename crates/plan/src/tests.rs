//! Plan tests.

use crate::{plan, Facts, Part, PlanInput};
use tandem_model::migration::Format;
use tandem_model::{Migration, Schema};

fn plan_of(yaml: &str) -> crate::Plan {
    let migration = Migration::parse(yaml, Format::Yaml, "m.yaml", "m").unwrap();
    plan(&PlanInput {
        schema: "public",
        version_schema: "public_m",
        migration: &migration,
        physical: &Schema::new("public"),
        facts: &Facts {
            pg_major: 15,
            ..Facts::default()
        },
    })
    .unwrap()
}

#[test]
fn a_failed_start_undoes_only_the_operations_whose_steps_ran() {
    let p = plan_of(
        "operations:
  - sql: {up: CREATE TYPE mood AS ENUM ('a'), down: DROP TYPE mood}
  - create_table: {name: t, columns: [{name: id, type: int, pk: true}]}
",
    );
    assert_eq!(p.start[0].part, Some(Part::Operation(0)));
    assert_eq!(p.start[1].part, Some(Part::Operation(1)));
    let sqls = |steps: Vec<crate::Step>| steps.into_iter().map(|s| s.sql).collect::<Vec<_>>();
    assert!(sqls(p.rollback_of(&[])).is_empty());
    assert_eq!(sqls(p.rollback_of(&[0])), ["DROP TYPE mood"]);
    let all = sqls(p.rollback_of(&[0, 1]));
    assert_eq!(all, sqls(p.rollback.clone()));
    assert_eq!(all.len(), 2, "{all:?}");
}

/// After the backfill, validation scans run before anything in the same transaction takes a
/// lock that blocks writes (narrowing the trigger takes SHARE ROW EXCLUSIVE): otherwise the
/// application's writes would wait for the whole scan.
#[test]
fn validation_scans_come_before_write_blocking_locks_after_the_backfill() {
    let base = "operations:
  - create_table: {name: t, columns: [{name: id, type: int, pk: true}, {name: a, type: text, nullable: true}]}
";
    let base = Migration::parse(base, Format::Yaml, "01.yaml", "01").unwrap();
    let physical = tandem_model::validate(&base, &Schema::new("public"))
        .unwrap()
        .schema;
    let migration = Migration::parse(
        "operations:
  - alter_column: {table: t, column: a, nullable: false, up: \"COALESCE(a, '')\", down: a}
  - alter_column: {table: t, column: a, check: {name: a_short, constraint: length(a) < 10}, up: \"left(a, 9)\", down: a}
",
        Format::Yaml,
        "m.yaml",
        "m",
    )
    .unwrap();
    let p = plan(&PlanInput {
        schema: "public",
        version_schema: "public_m",
        migration: &migration,
        physical: &physical,
        facts: &Facts {
            pg_major: 15,
            ..Facts::default()
        },
    })
    .unwrap();
    let steps = &p.after_backfill;
    let last_validate = steps
        .iter()
        .rposition(|s| s.sql.contains("VALIDATE CONSTRAINT"))
        .expect("a validation after the backfill");
    let first_blocking = steps
        .iter()
        .position(|s| {
            s.strongest_lock()
                .is_some_and(|l| l.mode >= crate::step::LockMode::Share)
                || s.sql.contains("CREATE TRIGGER")
        })
        .expect("the trigger narrows after the backfill");
    assert!(
        last_validate < first_blocking,
        "{:#?}",
        steps.iter().map(|s| &s.description).collect::<Vec<_>>()
    );
}

/// The views over a column complete replaces are dropped before its first transactional step
/// and created again after the renames, with only transactional steps between, so the two
/// share a transaction (the saved definitions live in a transaction-local setting). A concurrent
/// index drop goes first, outside; a rename without a change of the column recreates nothing.
#[test]
fn views_over_replaced_columns_are_saved_and_recreated_in_one_transaction() {
    let base = "operations:
  - create_table: {name: t, columns: [{name: id, type: int, pk: true}, {name: a, type: text, nullable: true}, {name: b, type: int, nullable: true}]}
  - create_index: {name: t_b, table: t, columns: [{column: b}]}
";
    let base = Migration::parse(base, Format::Yaml, "01.yaml", "01").unwrap();
    let physical = tandem_model::validate(&base, &Schema::new("public"))
        .unwrap()
        .schema;
    let plan_for = |yaml: &str| {
        let migration = Migration::parse(yaml, Format::Yaml, "m.yaml", "m").unwrap();
        plan(&PlanInput {
            schema: "public",
            version_schema: "public_m",
            migration: &migration,
            physical: &physical,
            facts: &Facts {
                pg_major: 15,
                ..Facts::default()
            },
        })
        .unwrap()
    };
    let p = plan_for(
        "operations:
  - drop_index: {name: t_b}
  - alter_column: {table: t, column: a, type: integer, up: CAST(a AS integer), down: CAST(a AS text)}
",
    );
    let descriptions: Vec<&str> = p.complete.iter().map(|s| s.description.as_str()).collect();
    let save = descriptions
        .iter()
        .position(|d| d.starts_with("drop the views that read"))
        .expect("a save step");
    let restore = descriptions
        .iter()
        .position(|d| *d == "create the saved views again")
        .expect("a restore step");
    let drop_old = descriptions
        .iter()
        .position(|d| d.starts_with("drop the old column"))
        .expect("the old column's drop");
    let rename = descriptions
        .iter()
        .position(|d| d.starts_with("rename column t._tandem_new_a"))
        .expect("the rename");
    assert!(save < drop_old && rename < restore, "{descriptions:#?}");
    assert!(!p.complete[0].transactional, "{descriptions:#?}");
    assert!(
        p.complete[save..=restore].iter().all(|s| s.transactional),
        "{descriptions:#?}"
    );
    assert!(p.complete[save]
        .sql
        .contains("'\"public\".\"t\"'::regclass"));
    assert_eq!(p.view_columns.len(), 1);
    assert_eq!(p.view_columns[0].replaced_by.as_deref(), Some("a"));
    assert_eq!(p.view_columns[0].field, "type");

    let p = plan_for("operations:\n  - rename_column: {table: t, from: a, to: c}\n");
    assert!(
        p.complete
            .iter()
            .all(|s| !s.sql.contains("tandem.saved_views")),
        "{:#?}",
        p.complete
    );
    let p = plan_for("operations:\n  - alter_column: {table: t, column: a, name: c, type: integer, up: CAST(a AS integer), down: CAST(c AS text)}\n");
    assert_eq!(p.view_columns[0].replaced_by.as_deref(), Some("c"));
}

/// The steps that run long by design (they block neither reads nor writes) are told apart from
/// the short lock-taking ones, so the executor can lift the session's statement timeout for
/// them alone.
#[test]
fn scans_that_block_nobody_run_long_and_lock_taking_steps_do_not() {
    let p = plan_of(
        "operations:
  - create_table: {name: t, columns: [{name: id, type: int, pk: true}, {name: a, type: int, nullable: true}]}
  - create_index: {name: t_a, table: t, columns: [a]}
",
    );
    let all: Vec<&crate::Step> = p.start.iter().chain(&p.after_backfill).collect();
    let build = all
        .iter()
        .find(|s| s.sql.contains("CREATE INDEX CONCURRENTLY"))
        .expect("a concurrent build");
    assert!(build.runs_long(), "{build:?}");
    assert!(
        all.iter()
            .filter(|s| s.sql.starts_with("CREATE TABLE"))
            .all(|s| !s.runs_long()),
        "CREATE TABLE takes no lock on an existing table and is no long scan"
    );
    let blocking = crate::Step {
        locks: vec![crate::Lock {
            mode: crate::LockMode::ShareRowExclusive,
            relation: "t".into(),
        }],
        ..crate::Step::tx("narrow", "CREATE TRIGGER ...")
    };
    assert!(!blocking.runs_long());
}
