//! Progress lines for long runs (`--replay`, `--load`): every [`PROGRESS_EVERY`] one line on
//! stderr (through the log macros) with what was sent and acknowledged, the rate, and an
//! ETA when the end is known, so a long run shows it is alive and whether the broker keeps
//! up (acked close behind sent).
//!
//! [`Progress`] is pure: the caller passes the time and the counts, and gets back the line
//! to log when one is due, so the lines are tested without sleeping.

use std::time::{Duration, Instant};

use super::mqtt::Delivery;

/// How often a long run reports its progress.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Where a run ends, for the ETA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    /// After this many items (a replay's rows): ETA from the rate so far.
    Items(u64),
    /// At this instant (a load run's duration).
    At(Instant),
    /// Unknown: no ETA.
    Open,
}

/// The progress reporter of one run.
#[derive(Clone, Debug)]
pub struct Progress {
    /// What the line is about: `replay data.csv`, `load`.
    label: String,
    /// The name of the items `Goal::Items` counts (`rows`).
    items: &'static str,
    start: Instant,
    next: Instant,
    goal: Goal,
}

impl Progress {
    /// A reporter whose first line is due [`PROGRESS_EVERY`] after `start`.
    pub fn new(label: impl Into<String>, items: &'static str, start: Instant, goal: Goal) -> Self {
        Progress {
            label: label.into(),
            items,
            start,
            next: start + PROGRESS_EVERY,
            goal,
        }
    }

    /// The line to log at `now`, if one is due; `done` is how many items were handled
    /// (published or skipped) so far.
    pub fn tick(&mut self, now: Instant, done: u64, delivery: Delivery) -> Option<String> {
        if now < self.next {
            return None;
        }
        while self.next <= now {
            self.next += PROGRESS_EVERY;
        }
        Some(self.line(now, done, delivery))
    }

    fn line(&self, now: Instant, done: u64, d: Delivery) -> String {
        let elapsed = now.saturating_duration_since(self.start).as_secs_f64();
        let rate = d.sent as f64 / elapsed.max(1e-9);
        let mut line = format!(
            "{} progress: sent={} acked={} elapsed={elapsed:.1}s rate={rate:.0}/s",
            self.label, d.sent, d.acked
        );
        match self.goal {
            Goal::Items(total) => {
                let percent = if total == 0 {
                    100.0
                } else {
                    done.min(total) as f64 * 100.0 / total as f64
                };
                line.push_str(&format!(" {}={done}/{total} ({percent:.0}%)", self.items));
                let per_second = done as f64 / elapsed.max(1e-9);
                if per_second > 0.0 {
                    let left = total.saturating_sub(done) as f64 / per_second;
                    line.push_str(&format!(" eta={left:.0}s"));
                }
            }
            Goal::At(end) => {
                let left = end.saturating_duration_since(now).as_secs_f64();
                line.push_str(&format!(" eta={left:.0}s"));
            }
            Goal::Open => {}
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(sent: u64, acked: u64) -> Delivery {
        Delivery { sent, acked }
    }

    #[test]
    fn a_line_is_due_every_two_seconds_and_not_before() {
        let start = Instant::now();
        let mut p = Progress::new("load", "points", start, Goal::Open);
        assert_eq!(p.tick(start, 0, delivery(0, 0)), None);
        assert_eq!(
            p.tick(start + Duration::from_millis(1999), 0, delivery(0, 0)),
            None
        );
        let line = p.tick(start + PROGRESS_EVERY, 10, delivery(10, 8)).unwrap();
        assert_eq!(line, "load progress: sent=10 acked=8 elapsed=2.0s rate=5/s");
        assert_eq!(
            p.tick(start + Duration::from_millis(3000), 0, delivery(0, 0)),
            None
        );
        assert!(p
            .tick(start + Duration::from_secs(4), 0, delivery(0, 0))
            .is_some());
    }

    #[test]
    fn a_late_tick_gives_one_line_not_a_burst() {
        let start = Instant::now();
        let mut p = Progress::new("load", "points", start, Goal::Open);
        assert!(p
            .tick(start + Duration::from_secs(11), 0, delivery(0, 0))
            .is_some());
        assert_eq!(
            p.tick(start + Duration::from_secs(11), 0, delivery(0, 0)),
            None
        );
        assert!(p
            .tick(start + Duration::from_secs(12), 0, delivery(0, 0))
            .is_some());
    }

    #[test]
    fn a_known_total_gives_percent_and_eta() {
        let start = Instant::now();
        let mut p = Progress::new("replay a.csv", "rows", start, Goal::Items(1000));
        let line = p
            .tick(start + Duration::from_secs(4), 250, delivery(240, 200))
            .unwrap();
        assert_eq!(
            line,
            "replay a.csv progress: sent=240 acked=200 elapsed=4.0s rate=60/s \
             rows=250/1000 (25%) eta=12s"
        );
    }

    #[test]
    fn a_known_end_gives_the_time_left() {
        let start = Instant::now();
        let mut p = Progress::new(
            "load",
            "points",
            start,
            Goal::At(start + Duration::from_secs(10)),
        );
        let line = p
            .tick(start + Duration::from_secs(2), 0, delivery(0, 0))
            .unwrap();
        assert!(line.ends_with(" eta=8s"), "{line}");
    }

    #[test]
    fn nothing_done_yet_has_no_eta_and_an_empty_total_is_complete() {
        let start = Instant::now();
        let mut p = Progress::new("replay", "rows", start, Goal::Items(10));
        let line = p.tick(start + PROGRESS_EVERY, 0, delivery(0, 0)).unwrap();
        assert!(line.ends_with("rows=0/10 (0%)"), "{line}");
        let mut p = Progress::new("replay", "rows", start, Goal::Items(0));
        let line = p.tick(start + PROGRESS_EVERY, 0, delivery(0, 0)).unwrap();
        assert!(line.contains("(100%)"), "{line}");
    }
}
