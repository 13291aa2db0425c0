//! How the binary behaves as a Unix tool: a closed pipe ends it quietly, SIGINT and SIGTERM stop
//! a backfill after its batch in flight, colour goes to terminals only (never with `NO_COLOR`),
//! `-q` and `-v` set how much is said, and an error's causes are each said once.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// How much the run says on standard error, and whether in colour.
#[derive(Debug, Clone, Copy, Default)]
pub struct Output {
    /// `-q`: the result and errors only, no progress.
    pub quiet: bool,
    /// `-v`: every backfill batch, and each cause of an error on a line of its own.
    pub verbose: bool,
    /// Colour on standard error.
    pub color: bool,
}

static OUTPUT: OnceLock<Output> = OnceLock::new();

/// `--color`: `auto` colours a terminal unless `NO_COLOR` is set (to anything but the empty
/// string, as no-color.org says) or `TERM` is `dumb`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// Settles the output settings once, before anything is printed.
pub fn set_output(quiet: bool, verbose: bool, color: ColorChoice) {
    let color = match color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
        }
    };
    let _ = OUTPUT.set(Output {
        quiet,
        verbose,
        color,
    });
}

pub fn output() -> Output {
    OUTPUT.get().copied().unwrap_or_default()
}

/// `text` in an SGR colour (`"31"` red, `"33"` yellow, `"36"` cyan, `"1"` bold) when colour is on.
pub fn paint(code: &str, text: &str) -> String {
    if output().color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// A reader that went away (`tandem status | head -1`) is not an error: whatever tandem had to
/// do is done, and nobody is left to read the rest. `println!` panics on a closed pipe (Rust
/// ignores SIGPIPE, so writes fail with EPIPE); this ends the run quietly, with exit code 0 as
/// ripgrep does, instead of printing the panic. tandem still ignores SIGPIPE, so a migration
/// whose standard error is closed does not die between two statements: its progress lines
/// are written with `let _ =` and lost.
pub fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or_default();
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// From here on, SIGINT and SIGTERM ask a backfill to stop once its batch in flight commits;
/// the flag returned is what `BackfillOptions::stop` watches. A second signal ends the process
/// at once, as the signal's default action does. Only `start` and `migrate` call this: every
/// other command keeps the default action, so Ctrl-C ends `monitor` or a `status --sample` at
/// once.
pub fn stop_on_signals() -> &'static AtomicBool {
    let flag = STOP.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // The order matters: the conditional default sees the flag as the last signal left
            // it, so the first signal only sets it and the second one ends the process.
            // The signal's number is stored before the flag is set, so whoever sees the flag
            // sees the number.
            let registered = signal_hook::flag::register_conditional_default(signal, flag.clone())
                .and_then(|_| {
                    signal_hook::flag::register_usize(signal, shared_signal(), signal as usize)
                })
                .and_then(|_| signal_hook::flag::register(signal, flag.clone()));
            if let Err(e) = registered {
                eprintln!(
                    "warning: cannot handle signal {signal}: {e}; it will end tandem at once"
                );
            }
        }
        announce(flag.clone());
        flag
    });
    flag
}

/// Whether `err` is a write to a closed pipe, which ends the run quietly as well.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The signal that asked the run to stop (0: none yet), set by its handler.
fn shared_signal() -> Arc<AtomicUsize> {
    static SHARED: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
    SHARED.get_or_init(|| Arc::new(AtomicUsize::new(0))).clone()
}

/// Says, as soon as the first signal arrives, what tandem does about it: a signal handler may
/// not print, so a thread watches the flag.
fn announce(flag: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        while !flag.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        say_stopping();
    });
}

/// What tandem does about the signal, said once: by the watching thread as soon as it sees it,
/// or by `main` before the error, should the run end first.
pub fn say_stopping() {
    static SAID: AtomicBool = AtomicBool::new(false);
    let Some(signal) = stop_signal() else {
        return;
    };
    if SAID.swap(true, Ordering::SeqCst) {
        return;
    }
    eprintln!(
        "\n{}: a backfill stops once its batch in flight commits, and the migration stays resumable; {} again ends tandem at once",
        signal_name(signal),
        signal_name(signal)
    );
}

/// The signal that asked the run to stop, if one did.
pub fn stop_signal() -> Option<usize> {
    if !STOP.get()?.load(Ordering::SeqCst) {
        return None;
    }
    let signal = shared_signal().load(Ordering::SeqCst);
    Some(signal).filter(|s| *s != 0)
}

/// `128 + signal` for a run that stopped because a signal asked it to, as a shell reports a
/// command the signal ended (130 for SIGINT, 143 for SIGTERM).
pub fn stopped_exit_code(err: &anyhow::Error) -> Option<u8> {
    let stopped = err
        .chain()
        .any(|c| match c.downcast_ref::<tandem_pg::Error>() {
            Some(tandem_pg::Error::BackfillInterrupted { source, .. }) => {
                matches!(**source, tandem_pg::Error::StopRequested)
            }
            Some(tandem_pg::Error::StopRequested | tandem_pg::Error::StoppedBefore { .. }) => true,
            _ => false,
        });
    let signal = stop_signal().filter(|_| stopped)?;
    u8::try_from(128 + signal).ok()
}

pub fn signal_name(signal: usize) -> &'static str {
    match signal as i32 {
        signal_hook::consts::SIGINT => "SIGINT",
        signal_hook::consts::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// An error with its causes, each said once: a cause whose text the message already holds
/// (`{file}: cannot read: {source}` that also reports `source` as its cause) is not repeated.
/// With `-v`, each cause is on a line of its own.
pub fn error_text(err: &anyhow::Error, verbose: bool) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if out.is_empty() {
            out = text;
        } else if verbose {
            out.push_str(&format!("\n  caused by: {text}"));
        } else {
            out.push_str(&format!(": {text}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "No such file or directory (os error 2)",
        );
        #[derive(Debug)]
        struct Read(std::io::Error);
        impl std::fmt::Display for Read {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "a.yaml: cannot read: {}", self.0)
            }
        }
        impl std::error::Error for Read {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err = anyhow::Error::new(Read(io)).context("loading the migrations");
        assert_eq!(
            error_text(&err, false),
            "loading the migrations: a.yaml: cannot read: No such file or directory (os error 2)"
        );
        assert_eq!(
            error_text(&err, true),
            "loading the migrations\n  caused by: a.yaml: cannot read: No such file or directory (os error 2)"
        );
    }
}
