//! Human and JSON rendering of results and progress events.

use std::io::Write;
use tandem_pg::events::Event;

/// Draws a progress event on stderr.
pub fn event(json: bool, e: &Event) {
    let mut err = std::io::stderr().lock();
    if json {
        let _ = writeln!(err, "{}", serde_json::to_string(e).unwrap_or_default());
        return;
    }
    let _ = match e {
        Event::Step {
            phase,
            description,
            lock,
        } => match lock {
            Some(l) => writeln!(
                err,
                "[{phase:?}] {description}  ({} lock on {})",
                l.mode.name(),
                l.relation
            ),
            None => writeln!(err, "[{phase:?}] {description}"),
        },
        Event::LockRetry {
            description,
            attempt,
            delay_ms,
            lock,
            holders,
        } => {
            let what = lock
                .as_ref()
                .map(|l| {
                    format!(
                        "{} lock on {} (it would block {})",
                        l.mode.name(),
                        l.relation,
                        l.mode.blocks()
                    )
                })
                .unwrap_or_else(|| "a lock".into());
            writeln!(
                err,
                "lock wait: {description} could not get the {what} within the lock timeout, so it stepped back to let the application through; held by {holders}. Retry {attempt} in {delay_ms} ms."
            )
        }
        Event::Backfill {
            table,
            column,
            rows_done,
            rows_total_estimate,
        } => {
            writeln!(
                err,
                "backfill {table}.{column}: {rows_done} of ~{rows_total_estimate} rows"
            )
        }
        Event::Info { message } => writeln!(err, "{message}"),
    };
}

/// Prints a command's result: a JSON document, or human lines.
pub fn result(json: bool, doc: serde_json::Value, human: &str) {
    if json {
        println!("{doc}");
    } else if !human.is_empty() {
        println!("{human}");
    }
}
