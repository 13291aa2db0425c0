//! `migrate`: applies a directory's pending migrations in order, starting and completing each,
//! and keeps the version schema the application used when it began until the last one
//! completes.

use super::{operation_kinds, Engine, MigrateReport};
use crate::error::{Error, Result};
use crate::events::{Event, OnEvent};
use crate::status::MigrationStatus;
use tandem_model::Migration;

impl Engine<'_> {
    /// Applies the pending migrations of `files` (sorted by name) in order. Every one but the
    /// last is completed; the last too with `complete_last`. The version schema the application
    /// was using when this began is kept until the last migration completes, so the running
    /// version keeps working.
    pub fn migrate(
        &mut self,
        files: &[Migration],
        complete_last: bool,
        on_event: OnEvent<'_>,
    ) -> Result<MigrateReport> {
        self.locked(|e, l| {
            let schema = e.opts.schema.clone();
            let history = e.state.history(e.client, &schema)?;
            // The history after its latest baseline must be the directory's first files, each
            // unchanged since it was applied.
            let compared = crate::history::compare(&history, files);
            if let Some(refusal) = compared.refusal() {
                return Err(refusal);
            }
            let active = e.state.active(e.client, &schema)?;
            let keep: Vec<String> = history
                .iter()
                .rev()
                .find(|h| h.status == MigrationStatus::Complete)
                .map(|h| h.version_schema.clone())
                .into_iter()
                .collect();
            let mut report = MigrateReport {
                started: Vec::new(),
                completed: Vec::new(),
                active: None,
            };
            let pending: Vec<&Migration> = compared
                .pending()
                .filter_map(|p| files.iter().find(|f| f.name == p.name))
                .collect();
            let mut todo: Vec<(&Migration, bool)> = Vec::new();
            if let Some(a) = &active {
                // The active migration is the newest of the history: finish it first, unless it
                // is the last and was not asked to complete.
                let m = files
                    .iter()
                    .find(|f| f.name == a.name)
                    .expect("history matched the files");
                // An interrupted backfill continues through start, and an interrupted start
                // before it starts over.
                todo.push((
                    m,
                    matches!(
                        a.status,
                        MigrationStatus::Backfilling | MigrationStatus::Starting
                    ),
                ));
            }
            todo.extend(pending.into_iter().map(|m| (m, true)));
            let n = todo.len();
            for (i, (m, needs_start)) in todo.into_iter().enumerate() {
                let last = i + 1 == n;
                // A stop asked for during a step without a backfill (or during a complete) takes
                // effect here, at the next migration's edge.
                let backfill = e.opts.backfill;
                let stop_before = |what: &str| -> Result<()> {
                    if backfill.stop_requested() {
                        return Err(Error::StoppedBefore {
                            what: format!("{what} {}", m.name),
                        });
                    }
                    Ok(())
                };
                if needs_start {
                    stop_before("starting")?;
                    on_event(&Event::Info {
                        message: format!("starting {}", m.name),
                    });
                    e.start_locked(&l, m, on_event)
                        .map_err(|err| err.naming_step(&m.file, &operation_kinds(m)))?;
                    report.started.push(m.name.clone());
                }
                if !last || complete_last {
                    stop_before("completing")?;
                    on_event(&Event::Info {
                        message: format!("completing {}", m.name),
                    });
                    let keep_now: &[String] = if last { &[] } else { &keep };
                    // The same evidence as `complete`, and the same refusal. The version
                    // schema kept for the application that ran when migrate began is left out
                    // only for the migrations this run started and does not complete last:
                    // those completes leave it in place, on purpose. The migration that was
                    // already active, and the last complete, which drops it, weigh it too.
                    let started_here = active.as_ref().is_none_or(|a| a.name != m.name);
                    let unweighed: &[String] = if started_here { keep_now } else { &[] };
                    e.require_evidence(on_event, unweighed)?;
                    if let Err(err) = e.complete_locked(&l, keep_now, on_event) {
                        let err = err.naming_step(&m.file, &operation_kinds(m));
                        return Err(e.migrate_stopped(&m.name, err, keep_now));
                    }
                    report.completed.push(m.name.clone());
                } else {
                    report.active = Some(m.name.clone());
                }
            }
            Ok(report)
        })
    }

    /// A complete that failed inside `migrate`, with advice that fits the state it left:
    /// `completing` can only go forward, `active` can be retried or rolled back.
    fn migrate_stopped(&mut self, name: &str, err: Error, kept: &[String]) -> Error {
        let schema = self.opts.schema.clone();
        let status = match self.state.active(self.client, &schema) {
            Ok(Some(active)) if active.name == name => Some(active.status),
            _ => None,
        };
        let blocked_by_kept = err.postgres().and_then(|e| e.code())
            == Some(&postgres::error::SqlState::DEPENDENT_OBJECTS_STILL_EXIST);
        let mut advice = match kept.first() {
            Some(kept) if blocked_by_kept => format!(
                "The version schema {kept:?} is kept for the application version that was running when migrate began, and it still uses what {name} removes. "
            ),
            _ => String::new(),
        };
        advice.push_str(&match status {
            Some(MigrationStatus::Completing) => format!(
                "{name} is left completing; what it has dropped cannot be brought back, so it can only go forward: run `tandem complete` to finish it{}, then `tandem migrate` again for the rest",
                if blocked_by_kept { " once that version is retired" } else { " once the cause is fixed" }
            ),
            Some(MigrationStatus::Active) => format!(
                "{name} is still active and nothing was dropped: fix the cause and run `tandem migrate` again, or `tandem rollback`"
            ),
            _ => "run `tandem status` to see where it stands".to_string(),
        });
        Error::MigrateStopped {
            name: name.to_string(),
            source: Box::new(err),
            advice,
        }
    }
}
