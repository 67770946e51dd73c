//! Pacing by deadline: item `n` is due at `start + n × period`, and the caller sleeps until
//! its item is due. Deadlines are absolute, so sleep overshoot does not accumulate and the
//! long-run rate is exact; nothing spins.
//!
//! After a stall longer than [`MAX_CATCH_UP`] (a blocked broker, a suspended laptop) the
//! schedule restarts from the present instead of bursting everything it owes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How far behind schedule a pacer may fall and still catch up by sending without pause.
pub const MAX_CATCH_UP: Duration = Duration::from_secs(1);

/// Longest single sleep, so a stop request is noticed promptly.
const SLEEP_SLICE: Duration = Duration::from_millis(100);

/// Hands out deadlines `period` apart; `None` period means unlimited (never waits).
#[derive(Debug)]
pub struct Pacer {
    period: Option<Duration>,
    next: Instant,
}

impl Pacer {
    /// One item every `period`, the first due at `start`.
    pub fn every(period: Duration, start: Instant) -> Pacer {
        Pacer {
            period: Some(period),
            next: start,
        }
    }

    /// `rate` items a second; `None` or a non-positive rate means as fast as possible.
    pub fn per_second(rate: Option<f64>, start: Instant) -> Pacer {
        match rate {
            Some(r) if r > 0.0 && r.is_finite() => {
                Pacer::every(Duration::from_secs_f64(1.0 / r), start)
            }
            _ => Pacer {
                period: None,
                next: start,
            },
        }
    }

    /// Reserves the next item's slot: returns how long to wait from `now` until it is due
    /// (zero when due or late) and moves the schedule one period on.
    pub fn reserve(&mut self, now: Instant) -> Duration {
        let Some(period) = self.period else {
            return Duration::ZERO;
        };
        if now.saturating_duration_since(self.next) > MAX_CATCH_UP {
            self.next = now;
        }
        let wait = self.next.saturating_duration_since(now);
        self.next += period;
        wait
    }

    /// Reserves the next slot and sleeps until it is due. Returns false if the run ended
    /// first.
    pub fn wait(&mut self, until: &Until<'_>) -> bool {
        let wait = self.reserve(Instant::now());
        until.sleep(wait) && !until.reached()
    }
}

/// When a run ends: a stop flag (a signal, or the end of the connection) and an optional
/// deadline (`--duration`). Every wait of a run — pacing, backpressure, reconnect backoff —
/// checks it, so no wait outlives the run.
#[derive(Clone, Copy, Debug)]
pub struct Until<'a> {
    stop: &'a AtomicBool,
    deadline: Option<Instant>,
}

impl<'a> Until<'a> {
    /// Until `stop` is set.
    pub fn stopped(stop: &'a AtomicBool) -> Until<'a> {
        Until {
            stop,
            deadline: None,
        }
    }

    /// Until `stop` is set or `deadline` (if any) passes.
    pub fn stopped_or(stop: &'a AtomicBool, deadline: Option<Instant>) -> Until<'a> {
        Until { stop, deadline }
    }

    /// Whether the run is over.
    pub fn reached(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Sleeps for `duration` in slices; returns false (early) once the run is over, also
    /// when the deadline falls inside the sleep.
    pub fn sleep(&self, duration: Duration) -> bool {
        let wake = Instant::now() + duration;
        loop {
            if self.reached() {
                return false;
            }
            let now = Instant::now();
            if now >= wake {
                return true;
            }
            let mut left = (wake - now).min(SLEEP_SLICE);
            if let Some(deadline) = self.deadline {
                left = left.min(deadline.saturating_duration_since(now));
            }
            std::thread::sleep(left);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_one_period_apart() {
        let t0 = Instant::now();
        let mut p = Pacer::per_second(Some(10.0), t0);
        assert_eq!(p.reserve(t0), Duration::ZERO);
        assert_eq!(p.reserve(t0), Duration::from_millis(100));
        assert_eq!(p.reserve(t0), Duration::from_millis(200));
    }

    #[test]
    fn oversleeping_does_not_slow_the_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::every(Duration::from_millis(10), t0);
        p.reserve(t0);
        // Woke 3 ms late for item 1: item 2 is still due at 20 ms, not 23 ms.
        assert_eq!(p.reserve(t0 + Duration::from_millis(13)), Duration::ZERO);
        assert_eq!(
            p.reserve(t0 + Duration::from_millis(13)),
            Duration::from_millis(7)
        );
    }

    #[test]
    fn a_long_stall_restarts_the_schedule_instead_of_bursting() {
        let t0 = Instant::now();
        let mut p = Pacer::every(Duration::from_millis(10), t0);
        p.reserve(t0);
        let late = t0 + Duration::from_secs(5);
        assert_eq!(p.reserve(late), Duration::ZERO);
        assert_eq!(p.reserve(late), Duration::from_millis(10));
    }

    #[test]
    fn unlimited_never_waits() {
        let t0 = Instant::now();
        let mut p = Pacer::per_second(None, t0);
        for _ in 0..1000 {
            assert_eq!(p.reserve(t0), Duration::ZERO);
        }
    }

    #[test]
    fn sleep_returns_false_once_stopped() {
        let stop = AtomicBool::new(true);
        assert!(!Until::stopped(&stop).sleep(Duration::from_secs(10)));
    }

    #[test]
    fn sleep_ends_at_the_deadline() {
        let stop = AtomicBool::new(false);
        let t0 = Instant::now();
        let until = Until::stopped_or(&stop, Some(t0 + Duration::from_millis(20)));
        assert!(until.sleep(Duration::from_millis(1)));
        assert!(!until.sleep(Duration::from_secs(10)));
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(20) && took < Duration::from_secs(1),
            "{took:?}"
        );
        assert!(until.reached());
    }
}
