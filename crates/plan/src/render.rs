//! A plan as text for people: `tandem plan` prints it, and the plan snapshots hold it, so that
//! every planner change shows up as a diff a reviewer can read. Each step shows its SQL, the
//! locks it takes and what they block, and whether it runs in a transaction; each backfill its
//! table, its walk and what it computes.

use crate::{Backfill, Plan, Step};
use std::fmt::Write;

/// The plan of `file`, phase by phase.
pub fn render(file: &str, plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{file}: version schema {}", plan.version_schema);
    for note in &plan.notes {
        let _ = writeln!(out, "note: {note}");
    }
    section(
        &mut out,
        "start (expand; the old version keeps working)",
        &plan.start,
    );
    if !plan.backfills.is_empty() {
        let _ = writeln!(out, "\nbackfill (short transactions, one batch each):");
        for b in &plan.backfills {
            backfill(&mut out, b);
        }
    }
    section(
        &mut out,
        "after the backfill (validation, indexes over filled columns)",
        &plan.after_backfill,
    );
    let _ = writeln!(
        out,
        "\nthen: the version schema {} is created, one view per table in the new shape",
        plan.version_schema
    );
    section(
        &mut out,
        "complete (contract; the old version stops working)",
        &plan.complete,
    );
    section(
        &mut out,
        "rollback (undo start; the new version stops working)",
        &plan.rollback,
    );
    out
}

fn section(out: &mut String, title: &str, steps: &[Step]) {
    let _ = writeln!(out, "\n{title}:");
    if steps.is_empty() {
        let _ = writeln!(out, "  (nothing)");
    }
    for (i, step) in steps.iter().enumerate() {
        let how = if step.transactional {
            "in a transaction"
        } else {
            "outside a transaction"
        };
        let _ = writeln!(out, "  {}. {} ({how})", i + 1, step.description);
        for lock in &step.locks {
            let _ = writeln!(
                out,
                "     lock: {} on {}, blocking {}",
                lock.mode.name(),
                lock.relation,
                lock.mode.blocks()
            );
        }
        if step.runs_long() {
            let _ = writeln!(
                out,
                "     runs long by design, so under --long-statement-timeout instead of the session's statement_timeout"
            );
        }
        for line in step.sql.trim_end().lines() {
            let _ = writeln!(out, "     | {line}");
        }
    }
}

fn backfill(out: &mut String, b: &Backfill) {
    let walk = if b.key.is_empty() {
        "ranges of blocks (ctid): the table has no primary key or unique NOT NULL key".to_string()
    } else {
        format!("by key ({})", b.key.join(", "))
    };
    let _ = writeln!(out, "  {}, walked {walk}:", b.table);
    for (column, expr) in &b.assignments {
        let ty = b
            .types
            .get(column)
            .map(|t| format!(" ({t})"))
            .unwrap_or_default();
        let _ = writeln!(out, "     {column}{ty} = {expr}");
    }
}
