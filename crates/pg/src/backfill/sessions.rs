//! How many sessions the backfill runs batches in at once. One UPDATE runs on one core of the
//! server, so a big table on a server with cores to spare fills faster with several; a server
//! without them (or one whose application needs them) gains nothing and loses latency.
//!
//! So, unless told a fixed number (`BackfillOptions::fixed_workers`), the backfill starts with
//! one session and measures its rows/s over windows of at least `WINDOW` and `MIN_BATCHES`
//! batches. After a window in which nobody waited for the backfill's row locks, it adds a
//! session (up to `BackfillOptions::workers`) and keeps it only if the next window is faster by
//! at least half a session's share (from n to n+1 sessions, at least `1 + 0.5 / n` times the
//! rows/s): a server that is out of cores shows no such gain, and goes back to n. Trouble takes a
//! session away at once: a batch that could not get its row locks, a batch far slower than its
//! target, or an application session waiting for a row a batch holds. After going back it does
//! not try to grow again for `HOLD`. Each change is said as an `Event::Info`, and every progress
//! event carries the number of sessions.

use super::BackfillOptions;
use std::time::{Duration, Instant};

/// The shortest window rows/s are measured over: long enough that one slow batch or a burst
/// of the application's does not decide (with 2 s windows, a 10M-row backfill on 2 cores went
/// up to 4 sessions and ran at 0.92 of one session's rows/s).
const WINDOW: Duration = Duration::from_secs(4);
/// And the fewest batches.
const MIN_BATCHES: u64 = 8;
/// How long after going back it tries no more sessions.
const HOLD: Duration = Duration::from_secs(30);

/// The number of sessions, and what it is measuring.
pub(super) struct Sessions {
    ceiling: usize,
    adapt: bool,
    /// Batches that may be in flight at once.
    pub active: usize,
    since: Instant,
    rows: u64,
    batches: u64,
    /// While trying `active` sessions: the rows/s with one fewer.
    trial: Option<f64>,
    no_growth_until: Option<Instant>,
}

impl Sessions {
    pub fn new(opts: &BackfillOptions) -> Sessions {
        let ceiling = opts.workers.max(1);
        Sessions {
            ceiling,
            adapt: !opts.fixed_workers,
            active: if opts.fixed_workers { ceiling } else { 1 },
            since: Instant::now(),
            rows: 0,
            batches: 0,
            trial: None,
            no_growth_until: None,
        }
    }

    /// Whether it may still change the number.
    pub fn adapts(&self) -> bool {
        self.adapt && self.ceiling > 1
    }

    /// A batch of `rows` rows committed.
    pub fn committed(&mut self, rows: u64) {
        self.rows += rows;
        self.batches += 1;
    }

    /// Whether a window has been measured and `review` should be called.
    pub fn window_done(&self) -> bool {
        self.adapts() && self.batches >= MIN_BATCHES && self.since.elapsed() >= WINDOW
    }

    fn restart_window(&mut self) {
        self.since = Instant::now();
        self.rows = 0;
        self.batches = 0;
    }

    /// Something the backfill should yield to happened (`why`): one session fewer, and no new
    /// one for a while. Says what changed, if anything did.
    pub fn trouble(&mut self, why: &str) -> Option<String> {
        if !self.adapts() {
            return None;
        }
        self.no_growth_until = Some(Instant::now() + HOLD);
        self.trial = None;
        self.restart_window();
        (self.active > 1).then(|| {
            self.active -= 1;
            format!(
                "{} now, because {why}; it tries more again in {} s at the earliest",
                sessions(self.active),
                HOLD.as_secs()
            )
        })
    }

    /// At the end of a window in which `waiters` application sessions waited for the
    /// backfill's row locks: keeps or takes back a session it was trying, or tries one more.
    pub fn review(&mut self, waiters: usize) -> Option<String> {
        let rate = self.rows as f64 / self.since.elapsed().as_secs_f64().max(1e-3);
        if waiters > 0 {
            let plural = if waiters == 1 { "session" } else { "sessions" };
            return self.trouble(&format!(
                "{waiters} application {plural} waited for rows a batch held"
            ));
        }
        self.restart_window();
        let mut said = None;
        if let Some(before) = self.trial.take() {
            let fewer = self.active - 1;
            let needed = before * (1.0 + 0.5 / fewer as f64);
            if rate < needed {
                self.active = fewer;
                self.no_growth_until = Some(Instant::now() + HOLD);
                return Some(format!(
                    "back to {}: {} gave {rate:.0} rows/s against {before:.0} with {fewer}, less than the {needed:.0} that would show the server had a core to spare",
                    sessions(fewer),
                    sessions(fewer + 1)
                ));
            }
            said = Some(format!(
                "keeps {}: {rate:.0} rows/s against {before:.0} with {fewer}",
                sessions(self.active)
            ));
        }
        let may_grow = self.no_growth_until.is_none_or(|t| Instant::now() >= t);
        if self.active < self.ceiling && may_grow {
            self.trial = Some(rate);
            self.active += 1;
            let trying = format!(
                "tries {} ({rate:.0} rows/s with {}; at most {})",
                sessions(self.active),
                self.active - 1,
                self.ceiling
            );
            said = Some(match said {
                Some(kept) => format!("{kept}; {trying}"),
                None => trying,
            });
        }
        said
    }
}

fn sessions(n: usize) -> String {
    if n == 1 {
        "1 session".into()
    } else {
        format!("{n} sessions")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adaptive(ceiling: usize) -> Sessions {
        Sessions::new(&BackfillOptions {
            workers: ceiling,
            ..BackfillOptions::default()
        })
    }

    /// A window of `rate` rows/s, measured.
    fn window(s: &mut Sessions, rate: f64) {
        s.since = Instant::now() - WINDOW;
        s.rows = (rate * WINDOW.as_secs_f64()) as u64;
        s.batches = MIN_BATCHES;
        assert!(s.window_done());
    }

    #[test]
    fn it_grows_while_each_session_pays_and_goes_back_when_one_does_not() {
        let mut s = adaptive(4);
        assert_eq!(s.active, 1);
        window(&mut s, 100_000.0);
        assert!(s.review(0).unwrap().contains("tries 2 sessions"));
        assert_eq!(s.active, 2);
        window(&mut s, 190_000.0);
        let said = s.review(0).unwrap();
        assert!(
            said.contains("keeps 2 sessions") && said.contains("tries 3 sessions"),
            "{said}"
        );
        // 3 sessions must give 190k × (1 + 0.5/2) = 237.5k; 200k shows no core to spare.
        window(&mut s, 200_000.0);
        assert!(s.review(0).unwrap().starts_with("back to 2 sessions"));
        assert_eq!(s.active, 2);
        window(&mut s, 200_000.0);
        assert_eq!(s.review(0), None, "no new try within the hold");
        assert_eq!(s.active, 2);
    }

    #[test]
    fn waiters_and_trouble_take_a_session_away() {
        let mut s = adaptive(3);
        window(&mut s, 100_000.0);
        s.review(0);
        assert_eq!(s.active, 2);
        window(&mut s, 100_000.0);
        assert!(s
            .review(2)
            .unwrap()
            .contains("2 application sessions waited"));
        assert_eq!(s.active, 1);
        assert_eq!(
            s.trouble("a batch could not get its row locks"),
            None,
            "never below one"
        );
        assert_eq!(s.active, 1);
    }

    #[test]
    fn a_fixed_number_never_moves() {
        let mut s = Sessions::new(&BackfillOptions {
            workers: 3,
            fixed_workers: true,
            ..BackfillOptions::default()
        });
        assert_eq!(s.active, 3);
        assert!(!s.window_done());
        assert_eq!(s.trouble("slow"), None);
        assert_eq!(s.active, 3);
    }
}
