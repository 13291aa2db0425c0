//! `status`: what the state tables, the version schemas and the evidence say, with advice on
//! what to do next. It only reads.

use super::{Engine, Status};
use crate::error::{Error, Result};
use crate::introspect::schema_exists;
use crate::state::BackfillCheckpoint;
use crate::status::MigrationStatus;

impl Engine<'_> {
    /// The state, the history and, for an active migration, the evidence `complete` would
    /// weigh. `sample` is the window for sessions on the old version schemas (zero: one sample).
    pub fn status(&mut self) -> Result<Status> {
        self.status_sampled(std::time::Duration::ZERO)
    }

    pub fn status_sampled(&mut self, sample: std::time::Duration) -> Result<Status> {
        let schema = self.opts.schema.clone();
        let mut status = Status {
            schema: schema.clone(),
            state_schema: self.opts.state_schema.clone(),
            initialized: false,
            active: None,
            latest: None,
            history: Vec::new(),
            version_schemas: Vec::new(),
            backfills: Vec::new(),
            advice: None,
            evidence: None,
            grant_drift: Vec::new(),
        };
        match self.state.check(self.client) {
            Ok(()) => {}
            Err(Error::NotInitialized { .. }) => {
                status.advice = Some("run `tandem init`".into());
                return Ok(status);
            }
            Err(e) => return Err(e),
        }
        status.initialized = true;
        status.history = self.state.history(self.client, &schema)?;
        status.active = self.state.active(self.client, &schema)?;
        status.latest = status.history.last().cloned();
        for h in &status.history {
            if schema_exists(self.client, &h.version_schema)? {
                status.version_schemas.push(h.version_schema.clone());
            }
        }
        status.grant_drift = crate::grants::drift(self.client, &schema, &status.version_schemas)?;
        let backfilling = status
            .active
            .as_ref()
            .filter(|a| a.status == MigrationStatus::Backfilling);
        if let Some(a) = backfilling {
            status.backfills = self.state.backfills(self.client, &schema, &a.name)?;
            let running = crate::locks::RunnerLock::held_elsewhere(
                self.client,
                &self.opts.state_schema,
                &schema,
            )?;
            status.advice = Some(backfill_advice(&a.name, &status.backfills, running));
            return Ok(status);
        }
        status.evidence = self.evidence(sample)?;
        status.advice = status
            .active
            .as_ref()
            .and_then(|a| a.status.next_step(&a.name));
        Ok(status)
    }
}

/// What `status` says of a migration that is backfilling, e.g. "backfill of t: 40% (400000 of
/// ~1000000 rows), interrupted; ...".
fn backfill_advice(name: &str, backfills: &[BackfillCheckpoint], running: bool) -> String {
    let progress: Vec<String> = backfills
        .iter()
        .map(|b| {
            let estimate = b.rows_estimate.max(b.rows_done);
            if b.done {
                format!("backfill of {}: done ({} rows)", b.table, b.rows_done)
            } else {
                let percent = if estimate > 0 {
                    b.rows_done * 100 / estimate
                } else {
                    0
                };
                // A pause recorded by a run that is gone is not the backfill's state now.
                let yielding = match (&b.yield_state, &b.yield_reason) {
                    (Some(state), Some(reason)) if running => format!(", {state}: {reason}"),
                    (Some(state), Some(reason)) => {
                        format!(", {state} when it was last running: {reason}")
                    }
                    _ => String::new(),
                };
                format!(
                    "backfill of {}: {percent}% ({} of ~{estimate} rows{yielding})",
                    b.table, b.rows_done
                )
            }
        })
        .collect();
    let what = progress.join("; ");
    if running {
        format!("{what}, in progress (another tandem run holds the migration lock)")
    } else {
        format!("{what}, interrupted; run `tandem start` with the file of {name:?} again to continue, or `tandem rollback` to undo it")
    }
}
