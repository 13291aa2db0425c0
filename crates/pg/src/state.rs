//! tandem's state tables: a linear history of migrations per schema, at most one active
//! migration per schema, each row with its file content, plan, timestamps and the schema
//! snapshot it left behind. `init` creates them and upgrades them when a newer tandem runs it.

use crate::error::{Context, Error, Result};
use crate::status::MigrationStatus;
use postgres::GenericClient;
use serde::Serialize;
use tandem_model::{quote_ident, quote_literal};
use tandem_plan::Phase;

/// The newest layout of the state tables this tandem knows.
pub const STATE_VERSION: i32 = 6;

/// Each entry upgrades the state tables from the previous version; entry `i` produces `i + 1`.
/// `{s}` stands for the quoted state schema.
const UPGRADES: &[&str] = &["
CREATE TABLE IF NOT EXISTS {s}.migrations (
    schema          text        NOT NULL,
    name            text        NOT NULL,
    version_schema  text        NOT NULL,
    parent          text,
    status          text        NOT NULL CHECK (status IN ('starting', 'active', 'completing', 'complete', 'rolling_back')),
    migration       jsonb       NOT NULL,
    plan            jsonb       NOT NULL,
    resulting_schema jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    completed_at    timestamptz,
    PRIMARY KEY (schema, name)
);
-- At most one migration per schema is not complete.
CREATE UNIQUE INDEX IF NOT EXISTS migrations_one_active ON {s}.migrations (schema) WHERE status <> 'complete';
-- The history is linear: a migration has at most one child.
CREATE UNIQUE INDEX IF NOT EXISTS migrations_linear ON {s}.migrations (schema, coalesce(parent, ''));
", "
-- A start whose backfill has not finished is `backfilling`; its position is checkpointed here,
-- in the transaction of each batch, and goes with the migration's row.
ALTER TABLE {s}.migrations DROP CONSTRAINT IF EXISTS migrations_status_check;
ALTER TABLE {s}.migrations ADD CONSTRAINT migrations_status_check
    CHECK (status IN ('starting', 'backfilling', 'active', 'completing', 'complete', 'rolling_back'));
CREATE TABLE IF NOT EXISTS {s}.backfills (
    schema          text        NOT NULL,
    migration       text        NOT NULL,
    position        int         NOT NULL,
    table_name      text        NOT NULL,
    -- Row versions whose xmin is at least this 64-bit xid were written with the trigger in place.
    cutoff_xid      bigint      NOT NULL,
    -- Keyset walks: the last key done, as text; NULL before the first batch.
    last_key        text[],
    -- ctid walks: the next block to do, and the table's size in blocks when the walk began.
    next_block      bigint,
    end_block       bigint,
    rows_done       bigint      NOT NULL DEFAULT 0,
    rows_estimate   bigint      NOT NULL DEFAULT 0,
    done            boolean     NOT NULL DEFAULT false,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schema, migration, position),
    FOREIGN KEY (schema, migration) REFERENCES {s}.migrations (schema, name) ON DELETE CASCADE
);
", "
-- Evidence before complete: pg_stat_statements' calls per query when the migration became
-- active (when the extension could be read then), and the evidence a forced complete overrode.
ALTER TABLE {s}.migrations ADD COLUMN IF NOT EXISTS statements_baseline_taken boolean NOT NULL DEFAULT false;
ALTER TABLE {s}.migrations ADD COLUMN IF NOT EXISTS forced_complete jsonb;
CREATE TABLE IF NOT EXISTS {s}.statement_baselines (
    schema          text        NOT NULL,
    migration       text        NOT NULL,
    userid          bigint      NOT NULL,
    queryid         bigint      NOT NULL,
    calls           bigint      NOT NULL,
    PRIMARY KEY (schema, migration, userid, queryid),
    FOREIGN KEY (schema, migration) REFERENCES {s}.migrations (schema, name) ON DELETE CASCADE
);
", "
-- A backfill that yields: its rate, and whether it is paused or slowed down, why and since when,
-- so that `tandem monitor` can show it while another process runs the backfill.
ALTER TABLE {s}.backfills ADD COLUMN IF NOT EXISTS rows_per_second double precision;
ALTER TABLE {s}.backfills ADD COLUMN IF NOT EXISTS yield_state text
    CHECK (yield_state IN ('paused', 'throttled'));
ALTER TABLE {s}.backfills ADD COLUMN IF NOT EXISTS yield_cause text;
ALTER TABLE {s}.backfills ADD COLUMN IF NOT EXISTS yield_reason text;
ALTER TABLE {s}.backfills ADD COLUMN IF NOT EXISTS yield_since timestamptz;
", "
-- Which steps of the stored plan have taken effect, so that a run interrupted by a crash is
-- not repeated step by step: start steps that may have taken effect (NULL for a migration
-- started by a tandem that did not record them: all of them, then), and complete and rollback
-- steps that committed. Each is recorded in the transaction of the steps it names.
ALTER TABLE {s}.migrations ADD COLUMN IF NOT EXISTS start_steps int[];
ALTER TABLE {s}.migrations ADD COLUMN IF NOT EXISTS complete_steps int[] NOT NULL DEFAULT '{}';
ALTER TABLE {s}.migrations ADD COLUMN IF NOT EXISTS rollback_steps int[] NOT NULL DEFAULT '{}';
", "
-- The checksum of the migration as started (`Migration::checksum`), so that `migrate` refuses a
-- file edited since it was applied. NULL for rows recorded before: their checksum is then
-- taken of the stored `migration`, which is the same content. `baseline` marks the row
-- `tandem baseline` records: the schema as it stood when tandem took over, with no operations.
ALTER TABLE {s}.migrations ADD COLUMN IF NOT EXISTS checksum text;
ALTER TABLE {s}.migrations ADD COLUMN IF NOT EXISTS baseline boolean NOT NULL DEFAULT false;
"];

/// Where a backfill is: a row of `backfills`, saved in the transaction of each batch.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BackfillCheckpoint {
    /// The backfill's index in the plan's `backfills`.
    pub position: i32,
    pub table: String,
    #[serde(skip)]
    pub cutoff_xid: i64,
    #[serde(skip)]
    pub last_key: Option<Vec<String>>,
    #[serde(skip)]
    pub next_block: Option<i64>,
    #[serde(skip)]
    pub end_block: Option<i64>,
    pub rows_done: i64,
    pub rows_estimate: i64,
    pub done: bool,
    pub updated_at: String,
    /// Rows per second of the run that saved it, pauses included.
    pub rows_per_second: Option<f64>,
    /// `paused` or `throttled` while the backfill yields, `None` while it runs freely.
    pub yield_state: Option<String>,
    /// What it yields to: `replication_lag`, `slot_retains_wal`, `wraparound_vacuum`,
    /// `lock_wait` or `slow_batch` (`throttle::Hold::cause`).
    pub yield_cause: Option<String>,
    /// The same in words.
    pub yield_reason: Option<String>,
    /// When it began to yield for this cause (read back only).
    pub yield_since: Option<String>,
}

impl BackfillCheckpoint {
    /// Seconds left at the saved rate, when there is a rate and rows left.
    pub fn eta_seconds(&self) -> Option<i64> {
        let rate = self.rows_per_second.filter(|r| *r > 0.0)?;
        if self.done {
            return None;
        }
        let left = (self.rows_estimate - self.rows_done).max(0);
        Some((left as f64 / rate).ceil() as i64)
    }
}

/// A row of the history.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationRecord {
    pub schema: String,
    pub name: String,
    pub version_schema: String,
    pub parent: Option<String>,
    pub status: MigrationStatus,
    #[serde(skip)]
    pub migration: serde_json::Value,
    #[serde(skip)]
    pub plan: serde_json::Value,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    /// The evidence that the old version was still in use which `complete --force` overrode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forced_complete: Option<serde_json::Value>,
    /// Indexes of the plan's start steps that may have taken effect; `None` when unknown
    /// (started by a tandem that did not record them).
    #[serde(skip)]
    pub start_steps: Option<Vec<usize>>,
    /// Indexes of the plan's complete steps that committed.
    #[serde(skip)]
    pub complete_steps: Vec<usize>,
    /// Indexes of the plan's rollback steps that committed.
    #[serde(skip)]
    pub rollback_steps: Vec<usize>,
    /// The checksum recorded at start; `None` for rows recorded before checksums were
    /// (see [`MigrationRecord::checksum`]).
    #[serde(skip)]
    pub stored_checksum: Option<String>,
    /// A baseline recorded by `tandem baseline`: the starting point of the history, with no
    /// operations and no version schema.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub baseline: bool,
}

impl MigrationRecord {
    /// The checksum of the migration as it was applied: the recorded one, or for a row
    /// recorded before checksums, the checksum of the stored content.
    pub fn checksum(&self) -> String {
        self.stored_checksum
            .clone()
            .unwrap_or_else(|| tandem_model::migration::checksum_of_stored(&self.migration))
    }
}

/// The column of `migrations` that records the steps of a phase that have run.
fn steps_column(phase: Phase) -> &'static str {
    match phase {
        Phase::Start => "start_steps",
        Phase::Complete => "complete_steps",
        Phase::Rollback => "rollback_steps",
    }
}

fn indexes(v: Option<Vec<i32>>) -> Option<Vec<usize>> {
    v.map(|v| v.into_iter().map(|i| i as usize).collect())
}

/// The row `start` records before it changes anything.
pub struct Starting<'a> {
    pub schema: &'a str,
    pub name: &'a str,
    pub version_schema: &'a str,
    pub parent: Option<&'a str>,
    pub migration: &'a serde_json::Value,
    pub plan: &'a serde_json::Value,
    /// `Migration::checksum` of the file.
    pub checksum: &'a str,
}

/// The row `tandem baseline` records.
pub struct Baseline<'a> {
    pub schema: &'a str,
    pub name: &'a str,
    /// Never created: a name no migration's version schema can take.
    pub version_schema: &'a str,
    pub parent: Option<&'a str>,
    pub snapshot: &'a serde_json::Value,
}

pub struct State {
    pub state_schema: String,
}

impl State {
    pub fn new(state_schema: &str) -> State {
        State {
            state_schema: state_schema.to_string(),
        }
    }

    fn q(&self) -> String {
        quote_ident(&self.state_schema)
    }

    /// Creates or upgrades the state tables. Idempotent; serialised by a transaction-level
    /// advisory lock so two concurrent inits do not race.
    pub fn init(&self, client: &mut postgres::Client) -> Result<i32> {
        let s = self.q();
        let mut tx = client.transaction().context(|| "beginning init".into())?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('tandem:init', 0))",
            &[],
        )
        .context(|| "waiting for other inits".into())?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value text NOT NULL);"
        ))
        .context(|| format!("creating state schema {}", self.state_schema))?;
        let found = self.stored_version(&mut tx)?;
        if found > STATE_VERSION {
            return Err(Error::StateTooNew {
                state_schema: self.state_schema.clone(),
                found,
                known: STATE_VERSION,
            });
        }
        for (i, sql) in UPGRADES.iter().enumerate().skip(found as usize) {
            tx.batch_execute(&sql.replace("{s}", &s))
                .context(|| format!("upgrading state tables to version {}", i + 1))?;
        }
        tx.execute(
            &format!(
                "INSERT INTO {s}.meta VALUES ('state_version', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            ),
            &[&STATE_VERSION.to_string()],
        )
        .context(|| "recording the state version".into())?;
        tx.commit().context(|| "committing init".into())?;
        Ok(STATE_VERSION)
    }

    /// The layout version recorded in the state tables (0 before the first init).
    fn stored_version(&self, client: &mut impl GenericClient) -> Result<i32> {
        Ok(client
            .query_opt(
                &format!(
                    "SELECT value::int FROM {}.meta WHERE key = 'state_version'",
                    self.q()
                ),
                &[],
            )
            .context(|| "reading the state version".into())?
            .map_or(0, |r| r.get(0)))
    }

    /// Errors unless the state tables exist and are of a layout this tandem knows.
    pub fn check(&self, client: &mut impl GenericClient) -> Result<()> {
        let exists: bool = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&format!("{}.migrations", self.q())],
            )
            .context(|| "looking for the state schema".into())?
            .get(0);
        if !exists {
            return Err(Error::NotInitialized {
                state_schema: self.state_schema.clone(),
            });
        }
        let found = self.stored_version(client)?;
        if found > STATE_VERSION {
            return Err(Error::StateTooNew {
                state_schema: self.state_schema.clone(),
                found,
                known: STATE_VERSION,
            });
        }
        if found < STATE_VERSION {
            return Err(Error::Other(format!(
                "tandem's state tables in {:?} are of an older layout (version {found}); run `tandem init` to upgrade them",
                self.state_schema
            )));
        }
        Ok(())
    }

    /// Timestamps are read in RFC 3339 (`to_json` writes ISO 8601 whatever `DateStyle` is), for
    /// `--json` readers.
    const COLUMNS: &'static str = "schema, name, version_schema, parent, status, migration, plan,
        to_json(created_at) #>> '{}', to_json(started_at) #>> '{}', to_json(completed_at) #>> '{}', forced_complete,
        start_steps, complete_steps, rollback_steps, checksum, baseline";

    fn record(row: &postgres::Row) -> Result<MigrationRecord> {
        let name: String = row.get(1);
        let stored: String = row.get(4);
        let status = MigrationStatus::parse(&stored).ok_or_else(|| {
            Error::Other(format!(
                "migration {name:?} has status {stored:?}, which this tandem does not know; upgrade tandem"
            ))
        })?;
        Ok(MigrationRecord {
            schema: row.get(0),
            name,
            version_schema: row.get(2),
            parent: row.get(3),
            status,
            migration: row.get(5),
            plan: row.get(6),
            created_at: row.get(7),
            started_at: row.get(8),
            completed_at: row.get(9),
            forced_complete: row.get(10),
            start_steps: indexes(row.get(11)),
            complete_steps: indexes(row.get(12)).unwrap_or_default(),
            rollback_steps: indexes(row.get(13)).unwrap_or_default(),
            stored_checksum: row.get(14),
            baseline: row.get(15),
        })
    }

    /// The schema's history, oldest first.
    pub fn history(
        &self,
        client: &mut impl GenericClient,
        schema: &str,
    ) -> Result<Vec<MigrationRecord>> {
        let rows = client
            .query(
                &format!(
                    "WITH RECURSIVE chain AS (
                        SELECT m.*, 1 AS depth FROM {s}.migrations m WHERE schema = $1 AND parent IS NULL
                        UNION ALL
                        SELECT m.*, c.depth + 1 FROM {s}.migrations m JOIN chain c ON m.schema = c.schema AND m.parent = c.name
                     ) SELECT {cols} FROM chain ORDER BY depth",
                    s = self.q(),
                    cols = Self::COLUMNS
                ),
                &[&schema],
            )
            .context(|| format!("reading the migration history of schema {schema:?}"))?;
        rows.iter().map(Self::record).collect()
    }

    /// The migration of the schema that is not complete, if any.
    pub fn active(
        &self,
        client: &mut impl GenericClient,
        schema: &str,
    ) -> Result<Option<MigrationRecord>> {
        let row = client
            .query_opt(
                &format!(
                    "SELECT {} FROM {}.migrations WHERE schema = $1 AND status <> 'complete'",
                    Self::COLUMNS,
                    self.q()
                ),
                &[&schema],
            )
            .context(|| "reading the active migration".into())?;
        row.as_ref().map(Self::record).transpose()
    }

    pub fn insert_starting(&self, client: &mut impl GenericClient, s: &Starting<'_>) -> Result<()> {
        let Starting {
            schema,
            name,
            version_schema,
            parent,
            migration,
            plan,
            checksum,
        } = s;
        client
            .execute(
                &format!(
                    "INSERT INTO {}.migrations (schema, name, version_schema, parent, status, migration, plan, started_at, start_steps, checksum)
                     VALUES ($1, $2, $3, $4, 'starting', $5, $6, now(), '{{}}', $7)",
                    self.q()
                ),
                &[&schema, &name, &version_schema, &parent, migration, plan, checksum],
            )
            .context(|| format!("recording the start of migration {name:?}"))?;
        Ok(())
    }

    /// Records a baseline: a complete row with no operations and an empty plan, whose
    /// resulting schema is `snapshot`, as the newest of the history.
    pub fn insert_baseline(&self, client: &mut impl GenericClient, b: &Baseline<'_>) -> Result<()> {
        let migration = serde_json::json!({ "operations": [] });
        let plan = tandem_plan::Plan {
            version_schema: b.version_schema.to_string(),
            start: Vec::new(),
            backfills: Vec::new(),
            after_backfill: Vec::new(),
            complete: Vec::new(),
            rollback: Vec::new(),
            overlay: Default::default(),
            dropped: Vec::new(),
            altered: Vec::new(),
            notes: Vec::new(),
            view_columns: Vec::new(),
        };
        let plan = serde_json::to_value(plan).expect("plan serializes");
        client
            .execute(
                &format!(
                    "INSERT INTO {}.migrations (schema, name, version_schema, parent, status, migration, plan, resulting_schema, started_at, completed_at, start_steps, baseline)
                     VALUES ($1, $2, $3, $4, 'complete', $5, $6, $7, now(), now(), '{{}}', true)",
                    self.q()
                ),
                &[&b.schema, &b.name, &b.version_schema, &b.parent, &migration, &plan, b.snapshot],
            )
            .context(|| format!("recording the baseline {:?}", b.name))?;
        Ok(())
    }

    /// Moves migration `name` to `status`, from one of the statuses it may follow
    /// ([`MigrationStatus::follows`]); refuses, changing nothing, from any other.
    pub fn set_status(
        &self,
        client: &mut impl GenericClient,
        schema: &str,
        name: &str,
        status: MigrationStatus,
    ) -> Result<()> {
        let from: Vec<&str> = status.follows().iter().map(|s| s.as_str()).collect();
        let moved = client
            .execute(
                &format!(
                    "UPDATE {}.migrations SET status = $3 WHERE schema = $1 AND name = $2 AND status = ANY($4)",
                    self.q()
                ),
                &[&schema, &name, &status.as_str(), &from],
            )
            .context(|| format!("recording migration {name:?} as {status}"))?;
        if moved == 1 {
            return Ok(());
        }
        let now: Option<String> = client
            .query_opt(
                &format!(
                    "SELECT status FROM {}.migrations WHERE schema = $1 AND name = $2",
                    self.q()
                ),
                &[&schema, &name],
            )
            .context(|| format!("reading the status of migration {name:?}"))?
            .map(|row| row.get(0));
        Err(Error::StatusConflict {
            name: name.to_string(),
            found: now.unwrap_or_else(|| "gone".into()),
            wanted: status,
        })
    }

    /// Records that the steps of `phase` at these indexes of the plan ran (see the columns'
    /// comment in `UPGRADES`); called in the transaction of those steps.
    pub fn add_steps(
        &self,
        client: &mut impl GenericClient,
        schema: &str,
        name: &str,
        phase: Phase,
        steps: &[usize],
    ) -> Result<()> {
        let steps: Vec<i32> = steps.iter().map(|&i| i as i32).collect();
        let column = steps_column(phase);
        client
            .execute(
                &format!(
                    "UPDATE {}.migrations SET {column} = {column} || $3::int[] WHERE schema = $1 AND name = $2",
                    self.q()
                ),
                &[&schema, &name, &steps],
            )
            .context(|| format!("recording the {column} of migration {name:?}"))?;
        Ok(())
    }

    pub fn mark_complete(
        &self,
        client: &mut impl GenericClient,
        schema: &str,
        name: &str,
        resulting_schema: &serde_json::Value,
    ) -> Result<()> {
        client
            .execute(
                &format!(
                    "UPDATE {}.migrations SET status = 'complete', completed_at = now(), resulting_schema = $3
                     WHERE schema = $1 AND name = $2 AND status = 'completing'",
                    self.q()
                ),
                &[&schema, &name, resulting_schema],
            )
            .context(|| format!("recording migration {name:?} as complete"))?;
        Ok(())
    }

    pub fn delete(&self, client: &mut impl GenericClient, schema: &str, name: &str) -> Result<()> {
        client
            .execute(
                &format!(
                    "DELETE FROM {}.migrations WHERE schema = $1 AND name = $2",
                    self.q()
                ),
                &[&schema, &name],
            )
            .context(|| format!("removing migration {name:?} from the history"))?;
        Ok(())
    }

    /// Records the backfills of a start whose steps (and so its triggers) have just committed:
    /// one checkpoint per backfill, with the cutoff xid taken from a snapshot begun after that
    /// commit, and the migration as `backfilling`.
    pub fn begin_backfills(
        &self,
        client: &mut impl GenericClient,
        schema: &str,
        name: &str,
        tables: &[&str],
    ) -> Result<()> {
        let positions: Vec<i32> = (0..tables.len() as i32).collect();
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.backfills (schema, migration, position, table_name, cutoff_xid)
                     SELECT $1, $2, p, t, pg_snapshot_xmax(pg_current_snapshot())::text::bigint
                       FROM unnest($3::int[], $4::text[]) AS b(p, t)
                     ON CONFLICT DO NOTHING",
                    s = self.q()
                ),
                &[&schema, &name, &positions, &tables],
            )
            .context(|| format!("recording the backfills of migration {name:?}"))?;
        self.set_status(client, schema, name, MigrationStatus::Backfilling)
    }

    /// The backfill checkpoints of a migration, in plan order.
    pub fn backfills(
        &self,
        client: &mut impl GenericClient,
        schema: &str,
        name: &str,
    ) -> Result<Vec<BackfillCheckpoint>> {
        let rows = client
            .query(
                &format!(
                    "SELECT position, table_name, cutoff_xid, last_key, next_block, end_block,
                            rows_done, rows_estimate, done, to_json(updated_at) #>> '{{}}',
                            rows_per_second, yield_state, yield_cause, yield_reason, to_json(yield_since) #>> '{{}}'
                       FROM {}.backfills WHERE schema = $1 AND migration = $2 ORDER BY position",
                    self.q()
                ),
                &[&schema, &name],
            )
            .context(|| format!("reading the backfill checkpoints of {name:?}"))?;
        Ok(rows
            .iter()
            .map(|r| BackfillCheckpoint {
                position: r.get(0),
                table: r.get(1),
                cutoff_xid: r.get(2),
                last_key: r.get(3),
                next_block: r.get(4),
                end_block: r.get(5),
                rows_done: r.get(6),
                rows_estimate: r.get(7),
                done: r.get(8),
                updated_at: r.get(9),
                rows_per_second: r.get(10),
                yield_state: r.get(11),
                yield_cause: r.get(12),
                yield_reason: r.get(13),
                yield_since: r.get(14),
            })
            .collect())
    }

    /// Saves a checkpoint; called in the transaction of the batch it records.
    pub fn save_backfill(
        &self,
        client: &mut impl GenericClient,
        schema: &str,
        name: &str,
        c: &BackfillCheckpoint,
    ) -> Result<()> {
        client
            .execute(
                &format!(
                    "UPDATE {}.backfills SET last_key = $4, next_block = $5, end_block = $6,
                            rows_done = $7, rows_estimate = $8, done = $9, updated_at = now(),
                            rows_per_second = $10,
                            yield_since = CASE WHEN $11::text IS NULL THEN NULL
                                               WHEN yield_cause IS NOT DISTINCT FROM $12::text
                                                AND yield_state IS NOT DISTINCT FROM $11::text THEN yield_since
                                               ELSE now() END,
                            yield_state = $11, yield_cause = $12, yield_reason = $13
                      WHERE schema = $1 AND migration = $2 AND position = $3",
                    self.q()
                ),
                &[
                    &schema,
                    &name,
                    &c.position,
                    &c.last_key,
                    &c.next_block,
                    &c.end_block,
                    &c.rows_done,
                    &c.rows_estimate,
                    &c.done,
                    &c.rows_per_second,
                    &c.yield_state,
                    &c.yield_cause,
                    &c.yield_reason,
                ],
            )
            .context(|| format!("saving the backfill checkpoint of {}", c.table))?;
        Ok(())
    }

    /// Records the evidence a forced complete overrode, with the complete it lets through.
    pub fn record_forced(
        &self,
        client: &mut impl GenericClient,
        schema: &str,
        name: &str,
        evidence: &serde_json::Value,
    ) -> Result<()> {
        client
            .execute(
                &format!(
                    "UPDATE {}.migrations SET forced_complete = $3 WHERE schema = $1 AND name = $2",
                    self.q()
                ),
                &[&schema, &name, evidence],
            )
            .context(|| format!("recording the forced complete of {name:?}"))?;
        Ok(())
    }

    /// Whether the state schema is this literal name (used to keep it out of introspection).
    pub fn literal(&self) -> String {
        quote_literal(&self.state_schema)
    }
}
