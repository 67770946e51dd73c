//! The one rule every stored timestamp obeys, whichever path brought it (MQTT, `/write`,
//! `/api/v2/write`, `/internal/write`): not before 1970-01-01, not after the last
//! millisecond that still fits `i64` nanoseconds (2262-04-11T23:47:16.854Z, where
//! InfluxDB's range ends too), and — for readings entering the cluster from outside — no
//! further ahead of the node's clock than `--max_future_s` (two days by default, as
//! VictoriaMetrics). A typo such as seconds sent as milliseconds lands thousands of years
//! out and is refused here instead of being stored.
//!
//! Peers' `/internal/write` gets the calendar range only: the entry node already applied
//! the future bound with its own clock, and a peer whose clock differs must not refuse a
//! hint or a repair copy for ever.

use crate::civil::rfc3339_millis;
use crate::storage::Timestamp;
use std::time::Duration;

/// The last accepted millisecond: `i64::MAX` nanoseconds, floored.
pub const LATEST_MS: i64 = Timestamp::LATEST.0;

/// `--max_future_s`'s default: two days.
pub const DEFAULT_MAX_FUTURE: Duration = Duration::from_secs(2 * 24 * 3600);

/// Why `ms` is outside 1970..2262, or `None` (the store's own range,
/// [`Timestamp::calendar_error`]).
pub fn calendar_error(ms: i64) -> Option<String> {
    Timestamp::calendar_error(ms)
}

/// Why `ms` breaks the whole rule at `now` with `max_future`, or `None`.
pub fn rule_error(ms: i64, now: Timestamp, max_future: Duration) -> Option<String> {
    if let Some(error) = calendar_error(ms) {
        return Some(error);
    }
    let ahead = i64::try_from(max_future.as_millis()).unwrap_or(i64::MAX);
    let latest = now.0.saturating_add(ahead);
    (ms > latest).then(|| {
        format!(
            "timestamp {} is more than {}s ahead of this node's clock ({}; --max_future_s)",
            rfc3339_millis(ms),
            max_future.as_secs(),
            rfc3339_millis(now.0)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_764_000_000_000);

    #[test]
    fn the_calendar_range_is_1970_to_2262() {
        assert_eq!(calendar_error(0), None);
        assert_eq!(calendar_error(LATEST_MS), None);
        assert!(calendar_error(-1).unwrap().contains("before 1970"));
        assert!(calendar_error(LATEST_MS + 1)
            .unwrap()
            .contains("2262-04-11T23:47:16.854Z"));
        assert!(calendar_error(i64::MIN).is_some());
        assert!(calendar_error(i64::MAX).is_some());
    }

    #[test]
    fn the_future_bound_follows_the_clock_and_the_flag() {
        let day = 86_400_000;
        assert_eq!(rule_error(NOW.0 + day, NOW, DEFAULT_MAX_FUTURE), None);
        assert_eq!(rule_error(NOW.0 + 2 * day, NOW, DEFAULT_MAX_FUTURE), None);
        let refused = rule_error(NOW.0 + 2 * day + 1, NOW, DEFAULT_MAX_FUTURE).unwrap();
        assert!(refused.contains("172800s ahead"), "{refused}");
        assert!(rule_error(NOW.0 + 1, NOW, Duration::ZERO).is_some());
        assert_eq!(rule_error(0, NOW, Duration::MAX), None);
        assert!(rule_error(i64::MAX, Timestamp(i64::MAX), Duration::MAX).is_some());
    }
}
