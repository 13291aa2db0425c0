//! The user's triggers and rules that the backfill's UPDATEs would set off, and how the batches
//! keep out of their way. The backfill must change nothing but the columns tandem added, so a
//! trigger that stamps `last_update`, recomputes a search vector or writes an audit row must not
//! run for it. Where the session may set it, each batch runs with `SET LOCAL
//! session_replication_role = replica` ([`TriggerMode::Replica`]): triggers and rules enabled the
//! default way (`ENABLE [ORIGIN]`) do not fire, and being `SET LOCAL` nothing of it outlives the
//! batch's transaction, whatever happens to tandem. What would still fire (for every user trigger
//! enabled the default way, when the session may not set the parameter) is refused by `start`,
//! and by `validate` with a database, before anything changes, unless the user accepts it
//! (`EngineOptions::backfill_fires_triggers`).
//!
//! Replica mode also switches off the foreign-key triggers and the rules enabled the default
//! way for the batch; why that is safe for the backfill (every constraint on the columns it
//! writes is validated after it) is argued in `docs/design/backfill-and-user-triggers.md`.
//!
//! # Which triggers a batch would fire
//!
//! Row triggers with an UPDATE event (BEFORE or AFTER, constraint triggers included) on the
//! backfilled table and on every table under it (partitions and inheritance children, which an
//! UPDATE of the parent reaches), and statement triggers with an UPDATE event on the table
//! itself, which fire once per batch. An `UPDATE OF col, ...` trigger fires only when one of its
//! columns is assigned, and the backfill assigns only columns tandem added, which no trigger
//! that existed before start can name, so those are left out. So are internal triggers (foreign
//! keys, deferred uniqueness; a partition's clone of its parent's trigger is listed under the
//! parent) and tandem's own. A trigger's `WHEN` is not evaluated: it is listed as firing.

use crate::error::{Context, Error, Result};
use postgres::error::SqlState;
use postgres::Client;
use tandem_plan::trigger::{trigger_name, update_trigger_name};
use tandem_plan::Backfill;

/// How the backfill's batches treat the user's triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TriggerMode {
    /// Each batch sets `session_replication_role = replica` for its transaction: triggers and
    /// rules enabled the default way do not fire.
    Replica,
    /// The batches run in the session's own replication role, so the user's triggers fire (there
    /// were none that would, or the user accepted them).
    #[default]
    Origin,
}

impl TriggerMode {
    /// The `tgenabled` / `ev_enabled` values that fire in this mode.
    fn firing(self) -> Vec<String> {
        let values: &[&str] = match self {
            TriggerMode::Replica => &["A", "R"],
            TriggerMode::Origin => &["O", "A"],
        };
        values.iter().map(|v| v.to_string()).collect()
    }
}

/// A trigger or rule a batch would fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    /// `table.trigger`.
    pub name: String,
    /// What it is and how often it fires, e.g. `BEFORE UPDATE, each row`.
    pub what: String,
}

impl std::fmt::Display for Firing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name, self.what)
    }
}

/// Whether this session may set `session_replication_role`: a superuser may, and on PostgreSQL
/// 15 and later a role granted `SET ON PARAMETER session_replication_role`. Asked by trying it
/// in a transaction that is rolled back, which answers for the role in effect (after `--role`)
/// on every major and managed service alike.
pub fn may_set_replica(client: &mut Client) -> Result<bool> {
    let context = || "asking whether this role may set session_replication_role".to_string();
    let mut tx = client.transaction().context(context)?;
    let tried = tx.batch_execute("SET LOCAL session_replication_role = replica");
    let _ = tx.rollback();
    match tried {
        Ok(()) => Ok(true),
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => Ok(false),
        Err(e) => Err(e).context(context),
    }
}

/// The user's triggers and rules that a backfill of `tables` in `schema` would fire in `mode`,
/// in table and name order. Tables that do not exist (yet) have none.
pub fn firing(
    client: &mut Client,
    schema: &str,
    tables: &[&str],
    mode: TriggerMode,
) -> Result<Vec<Firing>> {
    let names: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
    // tandem's own triggers, by the names the planner gives them (a partition's clone of a
    // trigger on its parent carries the parent's trigger's name): the table's trigger, its
    // UPDATE half, and every other trigger tandem makes, all named `_tandem_...` (the new
    // version's NOT NULL triggers, `_tandem_<table>_<column>_nn`, shortened like the rest when
    // long). The prefix is tandem's, as it is for the columns it adds.
    let own: Vec<String> = tables
        .iter()
        .flat_map(|t| [trigger_name(t), update_trigger_name(t)])
        .collect();
    let rows = client
        .query(
            "WITH RECURSIVE targets (relid, root, named) AS (
                 SELECT c.oid, c.oid, true
                   FROM unnest($2::text[]) AS t(name)
                   JOIN pg_namespace n ON n.nspname = $1
                   JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.name
                 UNION
                 SELECT i.inhrelid, t.root, false
                   FROM pg_inherits i JOIN targets t ON i.inhparent = t.relid
             ),
             found AS (
                 SELECT tg.oid, tg.tgparentid, c.relname::text AS rel, tg.tgname::text AS name,
                        tg.tgtype::int AS tgtype, tg.tgenabled::text AS enabled, false AS rule
                   FROM targets t
                   JOIN pg_trigger tg ON tg.tgrelid = t.relid
                   JOIN pg_class c ON c.oid = t.relid
                  WHERE (NOT tg.tgisinternal OR tg.tgparentid <> 0)
                    AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                                     WHERE k.oid = tg.tgconstraint AND k.contype <> 't')
                    AND tg.tgtype & 16 <> 0
                    AND (tg.tgtype & 1 <> 0 OR t.named)
                    AND cardinality(tg.tgattr::int2[]) = 0
                    AND tg.tgname <> ALL ($3::text[])
                    AND tg.tgname NOT LIKE '\\_tandem\\_%'
                    AND tg.tgenabled::text = ANY ($4::text[])
                 UNION ALL
                 SELECT r.oid, 0::oid, c.relname::text, r.rulename::text, 0, r.ev_enabled::text, true
                   FROM targets t
                   JOIN pg_rewrite r ON r.ev_class = t.relid
                   JOIN pg_class c ON c.oid = t.relid
                  WHERE t.named AND r.ev_type = '2' AND r.ev_enabled::text = ANY ($4::text[])
             )
             SELECT f.rel, f.name, f.tgtype, f.enabled, f.rule
               FROM found f
              WHERE NOT EXISTS (SELECT 1 FROM found p WHERE NOT p.rule AND p.oid = f.tgparentid)
              ORDER BY f.rel, f.name",
            &[&schema, &names, &own, &mode.firing()],
        )
        .context(|| format!("listing the triggers on the backfilled tables of {schema}"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let (table, name, tgtype, enabled, rule): (String, String, i32, String, bool) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
            Firing {
                name: format!("{table}.{name}"),
                what: describe(tgtype, &enabled, rule),
            }
        })
        .collect())
}

/// What a trigger (from its `tgtype` bits) or rule is, in words.
fn describe(tgtype: i32, enabled: &str, rule: bool) -> String {
    let mut what = if rule {
        "rule ON UPDATE".to_string()
    } else {
        let timing = if tgtype & 2 != 0 {
            "BEFORE"
        } else if tgtype & 64 != 0 {
            "INSTEAD OF"
        } else {
            "AFTER"
        };
        let events: Vec<&str> = [(4, "INSERT"), (16, "UPDATE"), (8, "DELETE")]
            .iter()
            .filter(|(bit, _)| tgtype & bit != 0)
            .map(|(_, e)| *e)
            .collect();
        let level = if tgtype & 1 != 0 {
            "each row"
        } else {
            "once per batch"
        };
        format!("{timing} {}, {level}", events.join(" OR "))
    };
    match enabled {
        "A" => what.push_str(", ENABLE ALWAYS"),
        "R" => what.push_str(", ENABLE REPLICA"),
        _ => {}
    }
    what
}

/// How the backfills of a plan will treat the user's triggers, or the refusal that names the
/// triggers they would fire: replica mode where the session may set it, and whatever would
/// still fire refused unless `accept`. Asked before anything changes; with no backfill there
/// is nothing to ask.
pub fn decide(
    client: &mut Client,
    schema: &str,
    backfills: &[Backfill],
    accept: bool,
) -> Result<(TriggerMode, Vec<Firing>)> {
    if backfills.is_empty() {
        return Ok((TriggerMode::Origin, Vec::new()));
    }
    let mode = if may_set_replica(client)? {
        TriggerMode::Replica
    } else {
        TriggerMode::Origin
    };
    let mut tables: Vec<&str> = backfills.iter().map(|b| b.table.as_str()).collect();
    tables.dedup();
    let found = firing(client, schema, &tables, mode)?;
    if !found.is_empty() && !accept {
        let role: String = client
            .query_one("SELECT current_user::text", &[])
            .context(|| "asking for the current role".into())?
            .get(0);
        return Err(Error::BackfillFiresTriggers {
            triggers: found.iter().map(Firing::to_string).collect(),
            replica: mode == TriggerMode::Replica,
            role,
        });
    }
    Ok((mode, found))
}
