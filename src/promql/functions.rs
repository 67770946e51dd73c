//! The arithmetic of one evaluation step, free of the syntax tree: the rate family with
//! Prometheus's extrapolation, the `*_over_time` reductions, quantiles, rounding, and the
//! reductions the aggregation operators apply to a group.
//!
//! Points are `(milliseconds, value)`, oldest first. A function that has nothing to say for
//! a series (a rate over fewer than two points) returns `None`, and the series is left out
//! of the step's result, as in Prometheus.

/// `rate`, `increase` and `delta` over the points of one window `(range_start, range_end]`
/// (milliseconds), as Prometheus's `extrapolatedRate` computes them: the change between
/// the first and last point (for counters, every drop counts as a reset to zero and adds
/// the value before it), extrapolated towards each window edge when the first or last point
/// is close to it (within 1.1 average gaps; otherwise by half a gap), never extrapolating a
/// counter below zero, and divided by the window in seconds for a rate.
pub fn extrapolated_rate(
    points: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (first_t, first_v) = points[0];
    let (last_t, last_v) = points[points.len() - 1];
    let mut result = last_v - first_v;
    if is_counter {
        for pair in points.windows(2) {
            if pair[1].1 < pair[0].1 {
                result += pair[0].1;
            }
        }
    }
    let mut to_start = (first_t - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let average_gap = sampled / (points.len() - 1) as f64;
    let threshold = average_gap * 1.1;
    if to_start >= threshold {
        to_start = average_gap / 2.0;
    }
    if is_counter {
        // A counter that rose cannot have been below zero: stop at its extrapolated zero.
        let to_zero = if result > 0.0 && first_v >= 0.0 {
            sampled * (first_v / result)
        } else {
            to_start
        };
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = average_gap / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if is_rate {
        factor /= (range_end - range_start) as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate`: the per-second change between the last two points (a drop is a counter reset:
/// the change is the last value).
pub fn irate(points: &[(i64, f64)]) -> Option<f64> {
    let [.., (prev_t, prev_v), (last_t, last_v)] = points else {
        return None;
    };
    let change = if last_v < prev_v {
        *last_v
    } else {
        last_v - prev_v
    };
    let gap = (last_t - prev_t) as f64 / 1000.0;
    if gap == 0.0 {
        return None;
    }
    Some(change / gap)
}

/// A sum with Kahan-Babuška compensation, as Prometheus sums (so long runs of small values
/// do not lose precision).
pub fn sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let (mut total, mut compensation) = (0.0f64, 0.0f64);
    for v in values {
        let t = total + v;
        if t.is_infinite() {
            compensation = 0.0;
        } else if total.abs() >= v.abs() {
            compensation += (total - t) + v;
        } else {
            compensation += (v - t) + total;
        }
        total = t;
    }
    if total.is_infinite() {
        total
    } else {
        total + compensation
    }
}

/// The mean (`NaN` for no values).
pub fn mean(values: &[f64]) -> f64 {
    sum(values.iter().copied()) / values.len() as f64
}

/// The least value; a `NaN` is replaced by any later value, as Prometheus's `min` does.
pub fn min(values: impl IntoIterator<Item = f64>) -> f64 {
    values
        .into_iter()
        .reduce(|m, v| if v < m || m.is_nan() { v } else { m })
        .unwrap_or(f64::NAN)
}

/// The greatest value; a `NaN` is replaced by any later value, as Prometheus's `max` does.
pub fn max(values: impl IntoIterator<Item = f64>) -> f64 {
    values
        .into_iter()
        .reduce(|m, v| if v > m || m.is_nan() { v } else { m })
        .unwrap_or(f64::NAN)
}

/// The φ-quantile of `values` as Prometheus computes it: linear interpolation between the
/// two nearest ranks of the sorted values; `-Inf` below 0, `+Inf` above 1, `NaN` for a `NaN`
/// φ or no values.
pub fn quantile(q: f64, values: &[f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    sorted[lower as usize] * (1.0 - weight) + sorted[upper as usize] * weight
}

/// `round(v, to_nearest)`: to the nearest multiple of `to_nearest`, halves up.
pub fn round(v: f64, to_nearest: f64) -> f64 {
    let inverse = 1.0 / to_nearest;
    (v * inverse + 0.5).floor() / inverse
}

/// The `*_over_time` functions this evaluator knows, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverTime {
    Avg,
    Min,
    Max,
    Sum,
    Count,
    Last,
    Quantile,
}

impl OverTime {
    pub fn from_name(name: &str) -> Option<OverTime> {
        Some(match name {
            "avg_over_time" => OverTime::Avg,
            "min_over_time" => OverTime::Min,
            "max_over_time" => OverTime::Max,
            "sum_over_time" => OverTime::Sum,
            "count_over_time" => OverTime::Count,
            "last_over_time" => OverTime::Last,
            "quantile_over_time" => OverTime::Quantile,
            _ => return None,
        })
    }

    /// The reduction of one window's points (`q` is φ, for the quantile); `None` for an
    /// empty window.
    pub fn apply(self, q: f64, points: &[(i64, f64)]) -> Option<f64> {
        let &(_, last) = points.last()?;
        let values = || points.iter().map(|&(_, v)| v);
        Some(match self {
            OverTime::Avg => sum(values()) / points.len() as f64,
            OverTime::Min => min(values()),
            OverTime::Max => max(values()),
            OverTime::Sum => sum(values()),
            OverTime::Count => points.len() as f64,
            OverTime::Last => last,
            OverTime::Quantile => quantile(q, &values().collect::<Vec<_>>()),
        })
    }

    /// Whether the result keeps the series' metric name (`last_over_time` picks a stored
    /// value unchanged, so Prometheus 3 keeps its name; the others compute a new value).
    pub fn keeps_name(self) -> bool {
        self == OverTime::Last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(got: Option<f64>, want: f64) {
        let got = got.expect("a value");
        assert!((got - want).abs() < 1e-9, "got {got}, want {want}");
    }

    #[test]
    fn rate_extrapolates_to_both_edges_when_points_are_close_to_them() {
        // Points every 10 s from 5 s to 55 s in the window (0, 60 s]: 5 s to each edge is
        // within 1.1 gaps, so the 50 s of samples stretch to the full 60 s.
        let points: Vec<(i64, f64)> = (0..6)
            .map(|i| (5_000 + i * 10_000, 100.0 + 10.0 * i as f64))
            .collect();
        assert_close(extrapolated_rate(&points, 0, 60_000, true, false), 60.0);
        assert_close(extrapolated_rate(&points, 0, 60_000, true, true), 1.0);
    }

    #[test]
    fn counter_reset_adds_the_value_before_the_drop() {
        // 10, 20, 30, reset, 5, 15: increase 10 + 10 + 5 (from 0) + 10 = 35 across 40 s.
        let points = [
            (10_000, 10.0),
            (20_000, 20.0),
            (30_000, 30.0),
            (40_000, 5.0),
            (50_000, 15.0),
        ];
        // Window (10 s, 50 s]… first point on the edge: no extrapolation at either end.
        let increase = extrapolated_rate(&points, 10_000, 50_000, true, false);
        assert_eq!(increase, Some(35.0));
        // As a gauge, delta is the plain difference.
        assert_eq!(
            extrapolated_rate(&points, 10_000, 50_000, false, false),
            Some(5.0)
        );
    }

    #[test]
    fn far_edges_extrapolate_by_half_a_gap_and_counters_stop_at_zero() {
        // Two points 10 s apart in the middle of (0, 100 s]: each end extrapolates 5 s.
        let points = [(40_000, 100.0), (50_000, 110.0)];
        assert_eq!(
            extrapolated_rate(&points, 0, 100_000, false, false),
            Some(20.0)
        );
        // A counter from 1 to 11: its zero is 1 s before the first point, so the start
        // extrapolates 1 s, not 5 s: 10 × (10 + 1 + 5) / 10 = 16.
        let points = [(40_000, 1.0), (50_000, 11.0)];
        assert_close(extrapolated_rate(&points, 0, 100_000, true, false), 16.0);
    }

    #[test]
    fn one_point_has_no_rate() {
        assert_eq!(extrapolated_rate(&[(1, 1.0)], 0, 10, true, true), None);
        assert_eq!(irate(&[(1, 1.0)]), None);
    }

    #[test]
    fn irate_uses_the_last_two_points_and_a_drop_is_a_reset() {
        assert_eq!(irate(&[(0, 1.0), (10_000, 5.0), (12_000, 9.0)]), Some(2.0));
        assert_eq!(irate(&[(0, 100.0), (2_000, 4.0)]), Some(2.0));
    }

    #[test]
    fn quantile_interpolates_between_ranks() {
        let values = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(0.5, &values), 2.5);
        assert_eq!(quantile(0.0, &values), 1.0);
        assert_eq!(quantile(1.0, &values), 4.0);
        assert!((quantile(0.9, &values) - 3.7).abs() < 1e-12);
        assert_eq!(quantile(-1.0, &values), f64::NEG_INFINITY);
        assert_eq!(quantile(2.0, &values), f64::INFINITY);
    }

    #[test]
    fn round_goes_to_the_nearest_multiple_halves_up() {
        assert_eq!(round(2.5, 1.0), 3.0);
        assert_eq!(round(-2.5, 1.0), -2.0);
        assert_eq!(round(17.0, 5.0), 15.0);
    }

    #[test]
    fn min_and_max_skip_a_leading_nan() {
        assert_eq!(min([f64::NAN, 3.0, 1.0]), 1.0);
        assert_eq!(max([f64::NAN, 3.0, 1.0]), 3.0);
    }
}
