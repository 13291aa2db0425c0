//! What `start` asks of the database before its first change, and `validate` and `plan` with a
//! database ask the same way: the live checks and facts, the plan, the user's views that
//! complete could not keep working, the user's triggers the backfill would fire, and each
//! backfill's `up` tried on existing rows. One sequence, so that a refusal `start` would give
//! comes from `validate` and `plan` too, and in the same words.

use crate::backfill::triggers::{self, Firing, TriggerMode};
use crate::error::Result;
use crate::live;
use postgres::Client;
use tandem_model::{Migration, Schema};
use tandem_plan::{Facts, Plan, PlanInput};

/// What the preflight is asked to do.
#[derive(Debug, Clone, Copy, Default)]
pub struct PreflightOptions {
    /// Let PostgreSQL change a column's type in place where it can without a rewrite
    /// (`EngineOptions::type_changes_in_place`).
    pub type_changes_in_place: bool,
    /// Accept that the backfill fires the user's triggers (`--backfill-fires-triggers`).
    pub backfill_fires_triggers: bool,
    /// Try each backfill's `up` on existing rows. Only the first of several pending files can:
    /// a later file's `up` may read columns that only the earlier files add.
    pub try_rows: bool,
}

/// A migration that passed the preflight: its plan, and how its backfill treats the user's
/// triggers.
#[derive(Debug)]
pub struct Preflighted {
    pub plan: Plan,
    pub facts: Facts,
    pub trigger_mode: TriggerMode,
    /// The user's triggers the backfill fires, as `--backfill-fires-triggers` accepted.
    pub firing: Vec<Firing>,
}

/// Runs the preflight of `migration` on `physical`, the schema it applies to (the live one,
/// or the live one with earlier pending files replayed on it). `ours` are the version schemas
/// of the history, whose views are tandem's own.
pub fn preflight(
    client: &mut Client,
    schema: &str,
    version_schema: &str,
    migration: &Migration,
    physical: &Schema,
    ours: &[String],
    options: PreflightOptions,
) -> Result<Preflighted> {
    let (validated, mut facts) = live::validate_live(client, migration, physical)?;
    if !options.type_changes_in_place {
        facts.in_place_types.clear();
    }
    let plan = tandem_plan::plan(&PlanInput::new(schema, version_schema, &validated, &facts))?;
    // A view of the user's that complete could not keep working is refused now, before the
    // first change, rather than after the new version has been served for hours.
    live::refuse_views(client, migration, schema, &plan, ours)?;
    let (trigger_mode, firing) = triggers::decide(
        client,
        schema,
        &plan.backfills,
        options.backfill_fires_triggers,
    )?;
    if options.try_rows {
        live::try_backfills(client, schema, migration, &plan)?;
    }
    Ok(Preflighted {
        plan,
        facts,
        trigger_mode,
        firing,
    })
}
