//! Human and JSON rendering of results and progress events.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tandem_pg::events::Event;
use tandem_pg::throttle::YieldAction;

/// The backfill progress display: on a terminal one line redrawn in place, otherwise a plain
/// line every `PLAIN_EVERY`.
struct Progress {
    line_open: bool,
    last_plain: Option<Instant>,
    /// The notes already said in this command.
    said: BTreeSet<String>,
}

static PROGRESS: Mutex<Progress> = Mutex::new(Progress {
    line_open: false,
    last_plain: None,
    said: BTreeSet::new(),
});

const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// Draws a progress event on stderr: nothing with `-q`; with `-v`, every backfill batch.
pub fn event(json: bool, e: &Event) {
    let output = crate::unix::output();
    if output.quiet {
        return;
    }
    let mut err = std::io::stderr().lock();
    if json {
        let _ = writeln!(err, "{}", serde_json::to_string(e).unwrap_or_default());
        return;
    }
    let mut progress = PROGRESS.lock().unwrap_or_else(|p| p.into_inner());
    // The same note from each backfill of a command (what this role cannot watch) is said once.
    if let Event::Info { message } = e {
        if !progress.said.insert(message.clone()) {
            return;
        }
    }
    if let Event::Backfill {
        table,
        column,
        rows_done,
        rows_total_estimate,
        rows_per_second,
        eta_seconds,
        batch_size,
        sessions,
        done,
    } = e
    {
        let percent = (*rows_done * 100)
            .checked_div(*rows_total_estimate)
            .unwrap_or(100);
        let eta = match eta_seconds {
            Some(s) => format!(", ETA {}", human_seconds(*s)),
            None => String::new(),
        };
        let text = format!(
            "backfill {table} ({column}): {percent}% ({rows_done} of ~{rows_total_estimate} rows), {rows_per_second} rows/s{eta}, batch {batch_size}{}",
            if *sessions > 1 {
                format!(", {sessions} sessions")
            } else {
                String::new()
            }
        );
        if err.is_terminal() {
            let width = 20;
            let filled = (percent.min(100) as usize * width) / 100;
            let _ = write!(
                err,
                "\r\x1b[2K[{}{}] {text}",
                "#".repeat(filled),
                ".".repeat(width - filled)
            );
            progress.line_open = !done;
            if *done {
                let _ = writeln!(err);
            }
            let _ = err.flush();
        } else if *done
            || output.verbose
            || !matches!(progress.last_plain, Some(t) if t.elapsed() < PLAIN_EVERY)
        {
            progress.last_plain = Some(Instant::now());
            let _ = writeln!(err, "{text}");
        }
        if *done {
            progress.last_plain = None;
        }
        return;
    }
    if progress.line_open {
        // Leave the progress line as it stands and draw below it.
        let _ = writeln!(err);
        progress.line_open = false;
    }
    let _ = match e {
        Event::Step {
            phase,
            description,
            lock,
        } => match lock {
            Some(l) => writeln!(
                err,
                "{} {description}  ({} lock on {})",
                crate::unix::paint("36", &format!("[{phase:?}]")),
                l.mode.name(),
                l.relation
            ),
            None => writeln!(
                err,
                "{} {description}",
                crate::unix::paint("36", &format!("[{phase:?}]"))
            ),
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
                "{} {description} could not get the {what} within the lock timeout, so it stepped back to let the application through; held by {holders}. Retry {attempt} in {delay_ms} ms.",
                crate::unix::paint("33", "lock wait:")
            )
        }
        Event::Backfill { .. } => Ok(()),
        Event::BackfillYield {
            table,
            action,
            reason,
            hold,
        } => match action {
            YieldAction::Resumed => writeln!(
                err,
                "backfill {table} resumed: {} has cleared",
                hold.cause().replace('_', " ")
            ),
            _ => writeln!(err, "backfill {table} {}: {reason}", action.name()),
        },
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

/// `75s` as `1m15s`.
fn human_seconds(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}
