//! Rate-limited reporting: a flapping serial cable or a broker that is down must not flood
//! stderr, yet the first occurrence is shown at once and nothing is hidden silently — the
//! next line that gets through says how many were held back.

use std::time::{Duration, Instant};

/// How often one kind of trouble may be reported.
pub const REPORT_EVERY: Duration = Duration::from_secs(2);

/// Admits at most one report per `every`, counting the ones it holds back.
#[derive(Debug)]
pub struct ReportThrottle {
    every: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl ReportThrottle {
    pub fn new(every: Duration) -> ReportThrottle {
        ReportThrottle {
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

impl Default for ReportThrottle {
    fn default() -> ReportThrottle {
        ReportThrottle::new(REPORT_EVERY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_report_passes_and_repeats_are_counted() {
        let t0 = Instant::now();
        let mut t = ReportThrottle::new(Duration::from_secs(2));
        assert_eq!(t.admit(t0), Some(0));
        assert_eq!(t.admit(t0 + Duration::from_millis(500)), None);
        assert_eq!(t.admit(t0 + Duration::from_secs(1)), None);
        assert_eq!(t.admit(t0 + Duration::from_secs(2)), Some(2));
        assert_eq!(t.admit(t0 + Duration::from_secs(5)), Some(0));
    }
}
