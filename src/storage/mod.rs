//! The single-node store: how readings are kept compressed in memory, made durable, and
//! answered.
//!
//! Concepts:
//! - A **point** is one reading: `(device_id, metric_name, timestamp, value)`. Timestamps are
//!   [`Timestamp`]s, milliseconds since the unix epoch (the wire contract speaks seconds,
//!   possibly fractional; millisecond resolution is kept).
//! - A **series** is every point of one metric name and label set ([`SeriesKey`];
//!   `device_id` is one label). A series holds
//!   an ordered list of non-overlapping **chunks** ([`chunk`]): closed chunks are compressed
//!   (timestamps delta-of-delta, values Gorilla XOR or decimal, see [`codec`]) and carry
//!   summary metadata (`start, end, count, sum, min, max, first, last`) so an aggregate over a
//!   range reads whole chunks in O(1); the newest chunk (the head) takes appends raw.
//! - Writes are **idempotent**: a `(series, timestamp)` holds one value, the last written.
//! - **Durability**: every write goes to the write-ahead log ([`wal`]) and returns only once
//!   fsynced (group commit). Periodically the engine writes the chunks that changed to an
//!   immutable **segment** file ([`segment`]), fsyncs it, and only then removes the WAL files
//!   it covers. Segments are later compacted into one.
//! - The **label index** ([`index`]) maps label names and values (the metric as `__name__`)
//!   to the series holding them, so matchers (`=`, `!=`, `=~`, `!~`) select series without
//!   a scan; it is rebuilt from the series at open, not stored.
//! - Files that fail their checks on open are set aside in the [`quarantine`].
//! - The [`engine`] ties these together and is the only type the rest of the crate uses.

pub mod bytes;
pub mod chunk;
pub mod codec;
pub mod durable;
pub mod engine;
pub mod index;
pub mod quarantine;
pub mod segment;
pub mod series;
pub mod series_key;
pub mod wal;

pub use engine::{DigestBucket, Engine, EngineConfig};
pub use index::{MatchOp, Matcher};
pub use series_key::{SeriesFields, SeriesKey, DEVICE_LABEL, MAX_LABELS, MAX_NAME_LEN};

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use series_key::KeyHashState;
use std::collections::HashMap;

/// Milliseconds since the unix epoch (UTC). Serialized as the bare number of milliseconds.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The last storable millisecond: `i64::MAX` nanoseconds, floored
    /// (2262-04-11T23:47:16.854Z, where InfluxDB's range ends too).
    pub const LATEST: Timestamp = Timestamp(i64::MAX / 1_000_000);

    /// Why `ms` is outside what the store keeps (1970-01-01 ..= [`Timestamp::LATEST`]), or
    /// `None`. Every path into the store checks it (see `ingest::timestamp`).
    pub fn calendar_error(ms: i64) -> Option<String> {
        use crate::civil::rfc3339_millis;
        if ms < 0 {
            return Some(format!(
                "timestamp {} is before 1970-01-01",
                rfc3339_millis(ms)
            ));
        }
        if ms > Timestamp::LATEST.0 {
            return Some(format!(
                "timestamp {} is after {} (the last instant in i64 nanoseconds); check the precision",
                rfc3339_millis(ms),
                rfc3339_millis(Timestamp::LATEST.0)
            ));
        }
        None
    }

    /// Converts unix seconds (possibly fractional) to a timestamp, rounding to the nearest
    /// millisecond. Fails on non-finite or out-of-range input.
    pub fn from_unix_seconds(seconds: f64) -> Result<Timestamp> {
        if !seconds.is_finite() {
            return Err(Error::invalid("timestamp", "must be a finite number"));
        }
        let millis = (seconds * 1000.0).round();
        // ±2^53 ms keeps the conversion exact and is ±285 000 years.
        if millis.abs() > 9_007_199_254_740_992.0 {
            return Err(Error::invalid("timestamp", "out of range"));
        }
        Ok(Timestamp(millis as i64))
    }

    /// Unix seconds as a float (what the wire contract uses).
    pub fn as_unix_seconds(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// The start of the epoch-aligned bucket of `width` milliseconds (> 0) holding this
    /// timestamp: `floor(ts / width) * width`, saturating at `i64::MIN` where that start is
    /// not representable, so no timestamp and width can overflow.
    pub fn bucket_start(self, width: i64) -> Timestamp {
        debug_assert!(width > 0, "bucket width must be positive");
        Timestamp(self.0.saturating_sub(self.0.rem_euclid(width.max(1))))
    }
}

/// One reading of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub series: SeriesKey,
    pub timestamp: Timestamp,
    pub value: f64,
}

/// `points` grouped by series, series in order of first appearance and each series' points
/// in their order (so a later duplicate timestamp still comes later), each point mapped by
/// `take`. Every path that hands a batch on per series (the engine, the WAL's wire form,
/// the cluster's shares) groups with this.
pub fn group_by_series<'p, T>(
    points: &'p [Point],
    take: impl Fn(&'p Point) -> T,
) -> Vec<(&'p SeriesKey, Vec<T>)> {
    let mut groups: Vec<(&SeriesKey, Vec<T>)> = Vec::new();
    let mut index: HashMap<&SeriesKey, usize, KeyHashState> = HashMap::default();
    for point in points {
        let at = *index.entry(&point.series).or_insert_with(|| {
            groups.push((&point.series, Vec::new()));
            groups.len() - 1
        });
        groups[at].1.push(take(point));
    }
    groups
}

/// An inclusive time range; `None` is an open bound (the wire contract's `0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TimeRange {
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
}

impl TimeRange {
    pub const ALL: TimeRange = TimeRange {
        start: None,
        end: None,
    };

    pub fn new(start: Option<Timestamp>, end: Option<Timestamp>) -> TimeRange {
        TimeRange { start, end }
    }

    pub fn contains(&self, ts: Timestamp) -> bool {
        self.start.is_none_or(|s| ts >= s) && self.end.is_none_or(|e| ts <= e)
    }

    /// True when every timestamp in `[lo, hi]` lies inside this range.
    pub fn covers(&self, lo: Timestamp, hi: Timestamp) -> bool {
        self.start.is_none_or(|s| lo >= s) && self.end.is_none_or(|e| hi <= e)
    }

    /// True when `[lo, hi]` and this range share at least one timestamp.
    pub fn overlaps(&self, lo: Timestamp, hi: Timestamp) -> bool {
        self.start.is_none_or(|s| hi >= s) && self.end.is_none_or(|e| lo <= e)
    }
}

/// Which summary an aggregate query returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AggregateOp {
    Avg,
    Sum,
    Min,
    Max,
    Count,
}

impl AggregateOp {
    pub fn parse(op: &str) -> Result<AggregateOp> {
        match op {
            "avg" => Ok(AggregateOp::Avg),
            "sum" => Ok(AggregateOp::Sum),
            "min" => Ok(AggregateOp::Min),
            "max" => Ok(AggregateOp::Max),
            "count" => Ok(AggregateOp::Count),
            other => Err(Error::invalid(
                "operation",
                format!("{other:?} is not one of avg, sum, min, max, count"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AggregateOp::Avg => "avg",
            AggregateOp::Sum => "sum",
            AggregateOp::Min => "min",
            AggregateOp::Max => "max",
            AggregateOp::Count => "count",
        }
    }
}

/// Mergeable summary statistics of a set of points: what chunks keep as metadata and what
/// partial queries exchange. An empty aggregate has `count == 0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Aggregate {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Default for Aggregate {
    fn default() -> Self {
        Aggregate::EMPTY
    }
}

impl Aggregate {
    pub const EMPTY: Aggregate = Aggregate {
        count: 0,
        sum: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    };

    pub fn add(&mut self, value: f64) {
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    pub fn merge(&mut self, other: &Aggregate) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The value of `op` over this aggregate; `None` when it holds no points (except `count`
    /// and `sum`, which are 0).
    pub fn result(&self, op: AggregateOp) -> Option<f64> {
        match op {
            AggregateOp::Count => Some(self.count as f64),
            AggregateOp::Sum => Some(self.sum),
            _ if self.count == 0 => None,
            AggregateOp::Avg => Some(self.sum / self.count as f64),
            AggregateOp::Min => Some(self.min),
            AggregateOp::Max => Some(self.max),
        }
    }
}

/// One bucket of a downsampled series: the points with `start <= ts < start + step`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub start: Timestamp,
    pub aggregate: Aggregate,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_keeps_first_appearance_and_each_series_order() {
        let (a, b) = (
            SeriesKey::new("d", "a").unwrap(),
            SeriesKey::new("d", "b").unwrap(),
        );
        let p = |s: &SeriesKey, ts: i64, value: f64| Point {
            series: s.clone(),
            timestamp: Timestamp(ts),
            value,
        };
        let points = [p(&b, 5, 1.0), p(&a, 1, 2.0), p(&b, 5, 3.0), p(&a, 0, 4.0)];
        let groups = group_by_series(&points, |p| (p.timestamp.0, p.value));
        assert_eq!(
            groups,
            vec![
                (&b, vec![(5, 1.0), (5, 3.0)]),
                (&a, vec![(1, 2.0), (0, 4.0)])
            ]
        );
    }

    #[test]
    fn bucket_start_floors_and_never_overflows() {
        assert_eq!(Timestamp(25).bucket_start(10), Timestamp(20));
        assert_eq!(Timestamp(-5).bucket_start(10), Timestamp(-10));
        assert_eq!(Timestamp(i64::MIN).bucket_start(7), Timestamp(i64::MIN));
        assert_eq!(Timestamp(i64::MIN + 1).bucket_start(3), Timestamp(i64::MIN));
        assert_eq!(
            Timestamp(i64::MIN + 1).bucket_start(i64::MAX),
            Timestamp(i64::MIN + 1)
        );
        let top = Timestamp(i64::MAX).bucket_start(i64::MAX);
        assert_eq!(top, Timestamp(i64::MAX));
        assert_eq!(Timestamp(i64::MAX - 1).bucket_start(i64::MAX), Timestamp(0));
    }

    #[test]
    fn fractional_seconds_keep_millisecond_resolution() {
        let ts = Timestamp::from_unix_seconds(1_710_000_000.123_4).unwrap();
        assert_eq!(ts.millis(), 1_710_000_000_123);
        assert!(Timestamp::from_unix_seconds(f64::NAN).is_err());
        assert!(Timestamp::from_unix_seconds(1e300).is_err());
    }

    #[test]
    fn empty_aggregate_has_no_average() {
        let agg = Aggregate::EMPTY;
        assert_eq!(agg.result(AggregateOp::Avg), None);
        assert_eq!(agg.result(AggregateOp::Count), Some(0.0));
    }
}
