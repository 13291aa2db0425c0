//! One run of steps of a phase ([`StepRun`]): consecutive transactional steps share a
//! transaction, the others run alone, all under the lock discipline of `locks`; the state row
//! records which of the plan's steps have run, and the bookkeeping that goes with the run
//! ([`Bookkeeping`]) commits with its first or last transaction.

use crate::error::Result;
use crate::events::OnEvent;
use crate::introspect::read_schema;
use crate::locks::{kill_point, run_alone, run_in_transaction, StepRules};
use crate::state::{Starting, State};
use crate::status::MigrationStatus;
use postgres::{Client, Transaction};
use std::ops::Range;
use tandem_plan::{Phase, Step};

/// The state row of one migration, which a run records into.
pub(crate) struct MigrationRow {
    state: State,
    schema: String,
    name: String,
}

impl MigrationRow {
    pub(crate) fn new(state: &State, schema: &str, name: &str) -> MigrationRow {
        MigrationRow {
            state: State::new(&state.state_schema),
            schema: schema.to_string(),
            name: name.to_string(),
        }
    }
}

/// State bookkeeping that commits in the same transaction as steps of a run, so that a crash
/// never leaves the state row ahead of the schema (nor behind it).
pub(crate) enum Bookkeeping<'r> {
    /// The migration's row, `starting`, inserted with the first group of start steps, so that a
    /// crash never leaves `starting` with none of its steps done.
    Starting(&'r Starting<'r>),
    /// The migration `active`, with its statement baseline, when the version schema's views
    /// are created.
    Active,
    /// The migration `complete`, with the resulting schema snapshot, with the last complete
    /// steps.
    Complete,
    /// The migration's row deleted, with the last rollback steps.
    Deleted,
}

impl Bookkeeping<'_> {
    fn commit_in(&self, tx: &mut Transaction<'_>, row: &MigrationRow) -> Result<()> {
        let MigrationRow {
            state,
            schema,
            name,
        } = row;
        match self {
            Bookkeeping::Starting(starting) => state.insert_starting(tx, starting),
            Bookkeeping::Active => {
                state.set_status(tx, schema, name, MigrationStatus::Active)?;
                crate::evidence::record_baseline(tx, &state.state_schema, schema, name)
            }
            Bookkeeping::Complete => {
                let snapshot = read_schema(tx, schema)?;
                let snapshot = serde_json::to_value(snapshot).expect("snapshot serializes");
                state.mark_complete(tx, schema, name, &snapshot)
            }
            Bookkeeping::Deleted => state.delete(tx, schema, name),
        }
    }
}

/// Steps of one phase, run in order, with what the state row records of them. Built from the
/// phase, the migration's row, the retry policy and the event sink, then given its steps and
/// bookkeeping, then run:
///
/// ```text
/// StepRun::new(rules, row, on_event)
///     .unrecorded([drop_version_schema(&plan.version_schema)])
///     .plan_steps_at(&plan.rollback, &todo)
///     .closing_with(Bookkeeping::Deleted)
///     .run(client)?;
/// ```
pub(crate) struct StepRun<'r> {
    rules: StepRules,
    row: MigrationRow,
    on_event: OnEvent<'r>,
    steps: Vec<Step>,
    /// For each step, its index in the plan's steps of `phase`, which the state row records
    /// once it has run; `None` for steps that can always run again and are not recorded.
    plan_index: Vec<Option<usize>>,
    opening: Option<Bookkeeping<'r>>,
    closing: Option<Bookkeeping<'r>>,
    /// The positions in `steps` of those whose effect may have stayed, even when a later step
    /// fails: those of committed transactions, and each step run outside a transaction once
    /// attempted (a failed `CREATE INDEX CONCURRENTLY` leaves an invalid index behind).
    ran: Vec<usize>,
}

impl<'r> StepRun<'r> {
    pub(crate) fn new(rules: StepRules, row: MigrationRow, on_event: OnEvent<'r>) -> StepRun<'r> {
        StepRun {
            rules,
            row,
            on_event,
            steps: Vec::new(),
            plan_index: Vec::new(),
            opening: None,
            closing: None,
            ran: Vec::new(),
        }
    }

    /// Adds steps that can always run again (dropping a version schema, creating its views, the
    /// steps after the backfill, which first drop what an interrupted start left): the state
    /// row does not record them.
    pub(crate) fn unrecorded(mut self, steps: impl IntoIterator<Item = Step>) -> StepRun<'r> {
        for step in steps {
            self.steps.push(step);
            self.plan_index.push(None);
        }
        self
    }

    /// Adds all of the plan's steps of the phase, each recorded in the state row as it runs.
    pub(crate) fn plan_steps(self, steps: &[Step]) -> StepRun<'r> {
        let all: Vec<usize> = (0..steps.len()).collect();
        self.plan_steps_at(steps, &all)
    }

    /// Adds the plan's steps of the phase at `indexes`, each recorded in the state row, by its
    /// index, as it runs.
    pub(crate) fn plan_steps_at(mut self, steps: &[Step], indexes: &[usize]) -> StepRun<'r> {
        for &i in indexes {
            self.steps.push(steps[i].clone());
            self.plan_index.push(Some(i));
        }
        self
    }

    /// Bookkeeping that commits in the run's first transaction, before its steps (in a
    /// transaction of its own when the first step runs outside one).
    pub(crate) fn opening_with(mut self, bookkeeping: Bookkeeping<'r>) -> StepRun<'r> {
        self.opening = Some(bookkeeping);
        self
    }

    /// Bookkeeping that commits in the run's last transaction, after its steps (in a
    /// transaction of its own when the last step runs outside one).
    pub(crate) fn closing_with(mut self, bookkeeping: Bookkeeping<'r>) -> StepRun<'r> {
        self.closing = Some(bookkeeping);
        self
    }

    /// The indexes of the plan's steps whose effect may have stayed (see `ran`), so that a
    /// failed start undoes only what they did.
    pub(crate) fn ran(&self) -> Vec<usize> {
        self.ran
            .iter()
            .filter_map(|&k| self.plan_index[k])
            .collect()
    }

    /// Whether no step ran: no transaction of steps committed, and no step outside one was
    /// attempted.
    pub(crate) fn ran_nothing(&self) -> bool {
        self.ran.is_empty()
    }

    /// Runs the steps in order: consecutive transactional steps share one transaction (retried
    /// as a whole on a lock timeout), the others run on their own. Each transaction records
    /// its plan steps in the state row, so the record commits with them. A step that runs
    /// outside a transaction is recorded in a transaction of its own: before it at start (its
    /// effect may stay even if it fails half-way), after it at complete and rollback (a rerun
    /// skips only what surely finished, and those steps can run twice).
    pub(crate) fn run(&mut self, client: &mut Client) -> Result<()> {
        let len = self.steps.len();
        let record_before = self.rules.phase == Phase::Start;
        let mut i = 0;
        while i < len {
            if self.steps[i].transactional {
                let end = self.steps[i..]
                    .iter()
                    .position(|s| !s.transactional)
                    .map_or(len, |p| i + p);
                self.commit(client, i..end, i..end, end == len)?;
                self.ran.extend(i..end);
                kill_point(self.rules.phase);
                i = end;
                continue;
            }
            let recorded = self.plan_index[i].is_some();
            if self.opening.is_some() || (record_before && recorded) {
                let record = if record_before { i..i + 1 } else { i..i };
                self.commit(client, i..i, record, false)?;
                kill_point(self.rules.phase);
            }
            self.ran.push(i);
            run_alone(client, &self.rules, &self.steps[i], self.on_event)?;
            kill_point(self.rules.phase);
            if !record_before && recorded {
                self.commit(client, i..i, i..i + 1, false)?;
            }
            i += 1;
        }
        if self.opening.is_some() || self.closing.is_some() {
            self.commit(client, len..len, len..len, true)?;
            kill_point(self.rules.phase);
        }
        Ok(())
    }

    /// Commits one transaction: the opening bookkeeping if it has not committed yet, the steps
    /// at `steps`, the record of the plan steps at `record`, and the closing bookkeeping when
    /// `last`.
    fn commit(
        &mut self,
        client: &mut Client,
        steps: Range<usize>,
        record: Range<usize>,
        last: bool,
    ) -> Result<()> {
        let opening = self.opening.take();
        let closing = if last { self.closing.take() } else { None };
        let recorded: Vec<usize> = self.plan_index[record].iter().flatten().copied().collect();
        let (row, phase) = (&self.row, self.rules.phase);
        run_in_transaction(
            client,
            &self.rules,
            &self.steps[steps],
            self.on_event,
            |tx| match &opening {
                Some(bookkeeping) => bookkeeping.commit_in(tx, row),
                None => Ok(()),
            },
            |tx| {
                if !recorded.is_empty() {
                    row.state
                        .add_steps(tx, &row.schema, &row.name, phase, &recorded)?;
                }
                match &closing {
                    Some(bookkeeping) => bookkeeping.commit_in(tx, row),
                    None => Ok(()),
                }
            },
        )
    }
}
