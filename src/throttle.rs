//! How often to do a thing again: [`Throttle`] lets one log line through per interval and
//! counts the ones it holds back (a flapping serial cable, a broker that is down, a
//! misbehaving publisher must not flood stderr, yet the first occurrence shows at once and
//! the next line says how many were held back); [`Backoff`] spaces retries, doubling up to
//! a cap. One copy of each for the server, the publisher and the cluster.

use std::time::{Duration, Instant};

/// Admits at most one report per `every`, counting the ones it holds back.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    pub fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: None,
            held_back: 0,
        }
    }

    /// Whether a report may be written at `now`; if so, how many were held back since the
    /// last one written.
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }

    /// Writes `message()` as a warning if admitted now.
    pub fn warn(&mut self, message: impl FnOnce() -> String) {
        if let Some(held_back) = self.admit(Instant::now()) {
            if held_back > 0 {
                crate::log_warn!("{} ({held_back} similar reports held back)", message());
            } else {
                crate::log_warn!("{}", message());
            }
        }
    }
}

/// Exponential retry delay: `min`, doubling on each failure up to `max`.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The delay before the next attempt; each call doubles the one after.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// The delay the next failure will wait, without counting one.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// Called on success: the next failure waits `min` again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_report_passes_and_repeats_are_counted() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Duration::from_secs(2));
        assert_eq!(t.admit(t0), Some(0));
        assert_eq!(t.admit(t0 + Duration::from_millis(500)), None);
        assert_eq!(t.admit(t0 + Duration::from_secs(1)), None);
        assert_eq!(t.admit(t0 + Duration::from_secs(2)), Some(2));
        assert_eq!(t.admit(t0 + Duration::from_secs(5)), Some(0));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(500));
        let delays: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
        assert_eq!(delays, [ms(100), ms(200), ms(400), ms(500), ms(500)]);
        assert_eq!(b.peek(), ms(500));
        b.reset();
        assert_eq!(b.next_delay(), ms(100));
    }
}
