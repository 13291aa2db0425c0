//! tandem's state tables: a linear history of migrations per schema, at most one active
//! migration per schema, each row with its file content, plan, timestamps and the schema
//! snapshot it left behind. `init` creates them and upgrades them when a newer tandem runs it.

use crate::error::{Context, Error, Result};
use postgres::GenericClient;
use serde::Serialize;
use tandem_model::{quote_ident, quote_literal};

/// The newest layout of the state tables this tandem knows.
pub const STATE_VERSION: i32 = 1;

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
"];

/// A row of the history.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationRecord {
    pub schema: String,
    pub name: String,
    pub version_schema: String,
    pub parent: Option<String>,
    pub status: String,
    #[serde(skip)]
    pub migration: serde_json::Value,
    #[serde(skip)]
    pub plan: serde_json::Value,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
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

    const COLUMNS: &'static str = "schema, name, version_schema, parent, status, migration, plan,
        created_at::text, started_at::text, completed_at::text";

    fn record(row: &postgres::Row) -> MigrationRecord {
        MigrationRecord {
            schema: row.get(0),
            name: row.get(1),
            version_schema: row.get(2),
            parent: row.get(3),
            status: row.get(4),
            migration: row.get(5),
            plan: row.get(6),
            created_at: row.get(7),
            started_at: row.get(8),
            completed_at: row.get(9),
        }
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
        Ok(rows.iter().map(Self::record).collect())
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
        Ok(row.as_ref().map(Self::record))
    }

    pub fn insert_starting(
        &self,
        client: &mut impl GenericClient,
        schema: &str,
        name: &str,
        version_schema: &str,
        parent: Option<&str>,
        migration: &serde_json::Value,
        plan: &serde_json::Value,
    ) -> Result<()> {
        client
            .execute(
                &format!(
                    "INSERT INTO {}.migrations (schema, name, version_schema, parent, status, migration, plan, started_at)
                     VALUES ($1, $2, $3, $4, 'starting', $5, $6, now())",
                    self.q()
                ),
                &[&schema, &name, &version_schema, &parent, migration, plan],
            )
            .context(|| format!("recording the start of migration {name:?}"))?;
        Ok(())
    }

    pub fn set_status(
        &self,
        client: &mut impl GenericClient,
        schema: &str,
        name: &str,
        status: &str,
    ) -> Result<()> {
        client
            .execute(
                &format!(
                    "UPDATE {}.migrations SET status = $3 WHERE schema = $1 AND name = $2",
                    self.q()
                ),
                &[&schema, &name, &status],
            )
            .context(|| format!("recording migration {name:?} as {status}"))?;
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
                     WHERE schema = $1 AND name = $2",
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

    /// Whether the state schema is this literal name (used to keep it out of introspection).
    pub fn literal(&self) -> String {
        quote_literal(&self.state_schema)
    }
}
