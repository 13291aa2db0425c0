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
