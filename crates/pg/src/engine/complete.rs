//! `complete`: contracts. It weighs the evidence that the old version still runs, then drops
//! the older version schemas and runs the stored complete steps, recording the migration as
//! complete, with the resulting schema, in the transaction of the last of them.

use super::step_run::Bookkeeping;
use super::{stored_operation_kinds, CompleteReport, Engine, Locked};
use crate::error::{Context, Error, Result};
use crate::events::{Event, OnEvent};
use crate::evidence::{Evidence, EvidenceOptions};
use crate::introspect::schema_exists;
use crate::locks::kill_point;
use crate::status::MigrationStatus;
use tandem_plan::views::{drop_version_schema, KEPT_SCHEMAS_SETTING};
use tandem_plan::Phase;

impl Engine<'_> {
    /// Contracts: drops the previous versions' schemas and what only the old version needed.
    pub fn complete(&mut self, on_event: OnEvent<'_>) -> Result<CompleteReport> {
        self.locked(|e, l| {
            e.require_evidence(on_event, &[])?;
            e.complete_locked(&l, &[], on_event).map_err(|err| {
                let schema = e.opts.schema.clone();
                let active = e.state.active(e.client, &schema);
                let err = match &active {
                    Ok(Some(a)) => err.naming_step(&a.name, &stored_operation_kinds(a)),
                    _ => err,
                };
                match active {
                    Ok(Some(a))
                        if a.status == MigrationStatus::Active
                            && matches!(err, Error::Db { .. } | Error::Step(_)) =>
                    {
                        Error::Other(format!(
                            "{err}\nnothing was changed: {:?} is still active; run `tandem complete` again once the cause is fixed, or `tandem rollback`",
                            a.name
                        ))
                    }
                    _ => err,
                }
            })
        })
    }

    /// The evidence that the old version of the active migration still runs, when it is
    /// `active` (a `completing` one has already dropped things and can only go forward).
    pub(super) fn evidence(&mut self, sample: std::time::Duration) -> Result<Option<Evidence>> {
        self.evidence_excluding(sample, &[])
    }

    /// The same, leaving out of the old version schemas those in `kept`, which this complete
    /// does not drop and whose users `migrate` keeps working on purpose.
    fn evidence_excluding(
        &mut self,
        sample: std::time::Duration,
        kept: &[String],
    ) -> Result<Option<Evidence>> {
        let schema = self.opts.schema.clone();
        let Some(active) = self.state.active(self.client, &schema)? else {
            return Ok(None);
        };
        if active.status != MigrationStatus::Active {
            return Ok(None);
        }
        let (_, plan) = self.active_plan()?;
        let old = self.older_version_schemas(&active.name, kept)?;
        let opts = EvidenceOptions {
            sample,
            ..self.opts.evidence.clone()
        };
        crate::evidence::gather(
            self.client,
            &self.opts.state_schema,
            &active,
            &plan,
            old,
            &opts,
        )
        .map(Some)
    }

    /// The version schemas of the history's other migrations that still exist, less those in
    /// `kept`: those the old version may use, and which complete drops.
    fn older_version_schemas(&mut self, active: &str, kept: &[String]) -> Result<Vec<String>> {
        let schema = self.opts.schema.clone();
        let mut older = Vec::new();
        for h in self.state.history(self.client, &schema)? {
            if h.name != active
                && !kept.contains(&h.version_schema)
                && schema_exists(self.client, &h.version_schema)?
            {
                older.push(h.version_schema);
            }
        }
        Ok(older)
    }

    /// Refuses to complete while there is evidence the old version still runs, unless forced;
    /// a forced complete records the evidence it overrode in the migration's row.
    pub(super) fn require_evidence(
        &mut self,
        on_event: OnEvent<'_>,
        kept: &[String],
    ) -> Result<()> {
        let Some(evidence) = self.evidence_excluding(self.opts.evidence.sample, kept)? else {
            return Ok(());
        };
        // (`kept` leaves out on purpose the version schema migrate keeps: that is not this.)
        if evidence.old_version_schemas.is_empty() && kept.is_empty() {
            // Said before anything is decided, so it comes ahead of a refusal too.
            on_event(&Event::Info {
                message: first_complete_note(&evidence),
            });
        }
        let findings = evidence.findings();
        if findings.is_empty() {
            return Ok(());
        }
        if !self.opts.evidence.force {
            return Err(Error::OldVersionInUse {
                name: evidence.migration,
                findings: findings.join("\n  "),
            });
        }
        on_event(&Event::Info {
            message: format!(
                "completing {} despite evidence that its old version still runs (--force):\n  {}",
                evidence.migration,
                findings.join("\n  ")
            ),
        });
        let schema = self.opts.schema.clone();
        let doc = serde_json::json!({ "findings": findings, "evidence": evidence });
        self.state
            .record_forced(self.client, &schema, &evidence.migration, &doc)
    }

    pub(super) fn complete_locked(
        &mut self,
        _: &Locked,
        keep: &[String],
        on_event: OnEvent<'_>,
    ) -> Result<CompleteReport> {
        let schema = self.opts.schema.clone();
        let (active, plan) = self.active_plan()?;
        match active.status {
            MigrationStatus::Active | MigrationStatus::Completing => {}
            MigrationStatus::Backfilling => {
                return Err(Error::StillBackfilling { name: active.name })
            }
            status => {
                return Err(Error::WrongStatus {
                    name: active.name,
                    status,
                    wanted: "completed",
                })
            }
        }
        let ours: Vec<String> = self
            .state
            .history(self.client, &schema)?
            .into_iter()
            .map(|h| h.version_schema)
            .collect();
        // Start refused the views complete could not keep working; this finds those made
        // since, before anything changes.
        let problems = crate::introspect::view_problems(self.client, &schema, &plan, &ours)?;
        if !problems.is_empty() {
            let found: Vec<String> = problems.into_iter().map(|p| p.message).collect();
            return Err(Error::Other(format!(
                "complete cannot keep working what other views read: {}. Nothing was changed; run `tandem complete` again once they are dropped or changed",
                found.join("; ")
            )));
        }
        // The version schemas `migrate` keeps must not see a column change under them: the
        // step that carries views across the change stops when one of their views reads it.
        self.client
            .execute(
                "SELECT set_config($1, $2::text[]::text, false)",
                &[&KEPT_SCHEMAS_SETTING, &keep],
            )
            .context(|| "naming the kept version schemas".into())?;
        self.state.set_status(
            self.client,
            &schema,
            &active.name,
            MigrationStatus::Completing,
        )?;
        kill_point(Phase::Complete);
        let dropped = self.older_version_schemas(&active.name, keep)?;
        // The complete steps an interrupted complete did not commit.
        let todo: Vec<usize> = (0..plan.complete.len())
            .filter(|i| !active.complete_steps.contains(i))
            .collect();
        // Dropping the older version schemas can run again; it is not recorded.
        let mut complete = self
            .step_run(Phase::Complete, &active.name, on_event)
            .unrecorded(dropped.iter().map(|v| drop_version_schema(v)))
            .plan_steps_at(&plan.complete, &todo)
            .closing_with(Bookkeeping::Complete);
        let result = complete.run(self.client);
        // A session setting outlives the command; this one means nothing outside it.
        let _ = self
            .client
            .execute("SELECT set_config($1, '', false)", &[&KEPT_SCHEMAS_SETTING]);
        if let Err(err) = result {
            // When no step committed, nothing was dropped: the migration is still active and
            // can be rolled back, so say so instead of leaving it `completing`.
            if complete.ran_nothing() && active.status == MigrationStatus::Active {
                self.state.set_status(
                    self.client,
                    &schema,
                    &active.name,
                    MigrationStatus::Active,
                )?;
            }
            return Err(err);
        }
        Ok(CompleteReport {
            name: active.name,
            version_schema: active.version_schema,
            dropped_version_schemas: dropped,
        })
    }
}

/// What `complete` says when no older version schema is left to watch, as for the first
/// migration: its old version uses the base schema's tables, which the new version shares, so
/// no session can be told apart as the old version's. Only the queries since start
/// (pg_stat_statements, when readable) and `--min-age` are weighed.
fn first_complete_note(evidence: &Evidence) -> String {
    let statements = if evidence.statements.is_some() {
        "the queries run since start (pg_stat_statements)"
    } else {
        "nothing but its age: pg_stat_statements cannot be read"
    };
    let age = if evidence.min_age_seconds > 0.0 {
        format!(
            "--min-age ({:.0} s) applies as always",
            evidence.min_age_seconds
        )
    } else {
        "there is no --min-age: `--min-age 24h` keeps a rollback window".to_string()
    };
    format!(
        "{}: there is no older version schema to watch: the old version uses the base schema's tables, which both versions share, so complete cannot see whether it still runs and weighs {statements}; {age}. Complete only once the old version is stopped",
        evidence.migration
    )
}
