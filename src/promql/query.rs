//! A query from its text to its answer: the time checks Prometheus makes (step alignment,
//! the 11,000-step limit), parsing with `promql-parser`, one evaluation per step, and the
//! error kinds Prometheus's API reports (`bad_data`, `execution`, `unavailable`).

use super::eval::{matchers_of, Evaluator};
use super::value::{Labels, Series, Value};
use super::{Source, MAX_POINTS, MAX_STEPS};
use crate::storage::Matcher;
use promql_parser::parser::{self, token, Expr};
use std::collections::BTreeMap;
use std::fmt;

/// Which of Prometheus's error types a failed query is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryErrorKind {
    /// The request is wrong: bad text, times, or something this evaluator refuses.
    BadData,
    /// The query is valid but cannot be answered (too much data, duplicate series).
    Execution,
    /// Where the data lives did not answer.
    Unavailable,
}

impl QueryErrorKind {
    /// The `errorType` of Prometheus's answer.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryErrorKind::BadData => "bad_data",
            QueryErrorKind::Execution => "execution",
            QueryErrorKind::Unavailable => "unavailable",
        }
    }
}

/// A query that could not be answered, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryError {
    pub kind: QueryErrorKind,
    pub message: String,
}

impl QueryError {
    pub fn bad_data(message: impl Into<String>) -> QueryError {
        QueryError {
            kind: QueryErrorKind::BadData,
            message: message.into(),
        }
    }

    pub fn execution(message: impl Into<String>) -> QueryError {
        QueryError {
            kind: QueryErrorKind::Execution,
            message: message.into(),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> QueryError {
        QueryError {
            kind: QueryErrorKind::Unavailable,
            message: message.into(),
        }
    }

    /// Something PromQL has that this evaluator does not do.
    pub fn unsupported(what: impl fmt::Display) -> QueryError {
        QueryError::bad_data(format!(
            "{what} is not supported by MiniTrue's PromQL evaluator"
        ))
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for QueryError {}

/// Parses a query's text, Prometheus's way of reporting a bad one.
pub fn parse(text: &str) -> Result<Expr, QueryError> {
    parser::parse(text)
        .map_err(|e| QueryError::bad_data(format!("invalid parameter \"query\": parse error: {e}")))
}

/// The matchers of a series selector (`up{job="a"}`, `{__name__=~"x.*"}`), as `match[]`
/// parameters give them.
pub fn selector_matchers(text: &str) -> Result<Vec<Matcher>, QueryError> {
    match parser::parse(text) {
        Ok(Expr::VectorSelector(vs)) => matchers_of(&vs),
        Ok(_) => Err(QueryError::bad_data(format!(
            "invalid parameter \"match[]\": {text:?} is not a series selector"
        ))),
        Err(e) => Err(QueryError::bad_data(format!(
            "invalid parameter \"match[]\": parse error: {e}"
        ))),
    }
}

/// The value of `text` at `time_ms`. A vector comes sorted by labels, except the answer of
/// a top-level `topk`/`bottomk`, which keeps their order.
pub fn instant(source: &dyn Source, text: &str, time_ms: i64) -> Result<Value, QueryError> {
    let expr = parse(text)?;
    let mut evaluator = Evaluator::new(source, time_ms, time_ms);
    let value = evaluator.eval(&expr, time_ms)?;
    Ok(match value {
        Value::Vector(mut samples) if !keeps_order(&expr) => {
            samples.sort_by(|a, b| a.labels.cmp(&b.labels));
            Value::Vector(samples)
        }
        other => other,
    })
}

/// Whether the expression's vector comes in an order of its own (`topk`, `bottomk`).
fn keeps_order(expr: &Expr) -> bool {
    match expr {
        Expr::Paren(p) => keeps_order(&p.expr),
        Expr::Aggregate(a) => matches!(a.op.id(), token::T_TOPK | token::T_BOTTOMK),
        _ => false,
    }
}

/// The values of `text` at `start_ms`, `start_ms + step_ms`, … up to and including
/// `end_ms`: one series per label set seen at any step, sorted by labels, each with a point
/// per step it had a value at. A scalar expression is one series without labels.
pub fn range(
    source: &dyn Source,
    text: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
) -> Result<Vec<Series>, QueryError> {
    if end_ms < start_ms {
        return Err(QueryError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    if step_ms <= 0 {
        return Err(QueryError::bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end_ms - start_ms) / step_ms > MAX_STEPS {
        return Err(QueryError::bad_data(format!(
            "exceeded maximum resolution of {MAX_STEPS} points per timeseries. Try decreasing the query resolution (?step=XX)"
        )));
    }
    let expr = parse(text)?;
    let mut evaluator = Evaluator::new(source, start_ms, end_ms);
    let mut series: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    let mut points = 0usize;
    let mut t = start_ms;
    while t <= end_ms {
        match evaluator.eval(&expr, t)? {
            Value::Scalar(v) => series.entry(Labels::default()).or_default().push((t, v)),
            Value::Vector(samples) => {
                points += samples.len();
                if points > MAX_POINTS {
                    return Err(QueryError::execution(format!(
                        "query processing would hold too many samples in memory: more than {MAX_POINTS} result points"
                    )));
                }
                for sample in samples {
                    series
                        .entry(sample.labels)
                        .or_default()
                        .push((t, sample.value));
                }
            }
            other => {
                let name = if matches!(other, Value::Matrix(_)) {
                    "range vector"
                } else {
                    other.type_name()
                };
                return Err(QueryError::bad_data(format!(
                    "invalid expression type \"{name}\" for range query, must be Scalar or instant Vector"
                )));
            }
        }
        match t.checked_add(step_ms) {
            Some(next) => t = next,
            None => break,
        }
    }
    Ok(series
        .into_iter()
        .map(|(labels, points)| Series { labels, points })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::source::MemorySource;
    use crate::promql::value::Sample;
    use crate::storage::SeriesKey;

    const S: i64 = 1000;

    fn key(metric: &str, labels: &[(&str, &str)]) -> SeriesKey {
        SeriesKey::with_labels(metric, labels.iter().copied()).expect("valid test key")
    }

    /// Points from `(seconds, value)` pairs.
    fn points(pairs: &[(i64, f64)]) -> Vec<(i64, f64)> {
        pairs.iter().map(|&(s, v)| (s * S, v)).collect()
    }

    fn source() -> MemorySource {
        MemorySource(vec![
            // A counter scraped every 15 s that resets between 45 s and 60 s.
            (
                key("requests", &[("device_id", "a")]),
                points(&[
                    (0, 0.0),
                    (15, 10.0),
                    (30, 20.0),
                    (45, 30.0),
                    (60, 5.0),
                    (75, 15.0),
                ]),
            ),
            (
                key("temp", &[("device_id", "a"), ("room", "lab")]),
                points(&[(0, 1.0)]),
            ),
            (
                key("temp", &[("device_id", "b"), ("room", "lab")]),
                points(&[(0, 2.0)]),
            ),
            (
                key("temp", &[("device_id", "c"), ("room", "kitchen")]),
                points(&[(0, 5.0)]),
            ),
            (
                key("num", &[("device_id", "x"), ("job", "j")]),
                points(&[(0, 10.0)]),
            ),
            (
                key("den", &[("device_id", "x"), ("kind", "k")]),
                points(&[(0, 2.0)]),
            ),
            (
                key("level", &[("device_id", "a")]),
                points(&[(0, 1.0), (60, 2.0), (120, 3.0)]),
            ),
            (
                key("sparse", &[("device_id", "a")]),
                points(&[(0, 1.0), (600, 2.0)]),
            ),
            (
                key("quartet", &[("device_id", "a")]),
                points(&[(10, 4.0), (20, 1.0), (30, 3.0), (40, 2.0)]),
            ),
            // Same labels as `requests` under another name: rate() of both collides.
            (
                key("requests.copy", &[("device_id", "a")]),
                points(&[(0, 0.0), (15, 10.0)]),
            ),
        ])
    }

    fn vector(text: &str, at_s: i64) -> Vec<Sample> {
        match instant(&source(), text, at_s * S) {
            Ok(Value::Vector(samples)) => samples,
            other => panic!("{text}: expected a vector, got {other:?}"),
        }
    }

    /// `(labels as a="x" pairs without __name__ unless kept, value)` of each sample.
    fn flat(samples: &[Sample]) -> Vec<(String, f64)> {
        samples
            .iter()
            .map(|s| {
                let labels: Vec<String> = s
                    .labels
                    .pairs()
                    .iter()
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect();
                (labels.join(","), s.value)
            })
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn rate_extrapolates_over_a_counter_reset() {
        // Window (15 s, 75 s]: 20, 30, 5, 15 at 30..75 s. Increase 15 − 20 + 30 (the reset)
        // = 25 over 45 s of samples; the first point is 15 s from the window start (under
        // 1.1 × the 15 s gap), so the 45 s stretch to 60 s: increase 25 × 60/45, rate / 60.
        let rate = vector("rate(requests[1m])", 75);
        assert_eq!(rate.len(), 1);
        assert_eq!(
            rate[0].labels.pairs(),
            &[("device_id".to_string(), "a".to_string())]
        );
        assert!(close(rate[0].value, 25.0 / 45.0), "{}", rate[0].value);
        let increase = vector("increase(requests[1m])", 75);
        assert!(
            close(increase[0].value, 25.0 * 60.0 / 45.0),
            "{}",
            increase[0].value
        );
        // delta ignores resets: 15 − 20 = −5, stretched the same way.
        let delta = vector("delta(requests[1m])", 75);
        assert!(
            close(delta[0].value, -5.0 * 60.0 / 45.0),
            "{}",
            delta[0].value
        );
        // irate: the last two points, 5 → 15 over 15 s.
        let irate = vector("irate(requests[1m])", 75);
        assert!(close(irate[0].value, 10.0 / 15.0), "{}", irate[0].value);
    }

    #[test]
    fn sum_by_groups_and_drops_other_labels() {
        let sums = vector("sum by (room) (temp)", 10);
        assert_eq!(
            flat(&sums),
            vec![
                ("room=kitchen".to_string(), 5.0),
                ("room=lab".to_string(), 3.0)
            ]
        );
        let without = vector("max without (device_id) (temp)", 10);
        assert_eq!(
            flat(&without),
            vec![
                ("room=kitchen".to_string(), 5.0),
                ("room=lab".to_string(), 2.0)
            ]
        );
        assert_eq!(flat(&vector("count(temp)", 10)), vec![(String::new(), 3.0)]);
        assert_eq!(
            flat(&vector("avg(temp)", 10)),
            vec![(String::new(), 8.0 / 3.0)]
        );
        assert_eq!(
            flat(&vector("quantile(0.5, temp)", 10)),
            vec![(String::new(), 2.0)]
        );
    }

    #[test]
    fn topk_keeps_whole_series_in_value_order() {
        let top = vector("topk(2, temp)", 10);
        assert_eq!(
            flat(&top),
            vec![
                ("__name__=temp,device_id=c,room=kitchen".to_string(), 5.0),
                ("__name__=temp,device_id=b,room=lab".to_string(), 2.0),
            ]
        );
        let bottom = vector("bottomk by (room) (1, temp)", 10);
        assert_eq!(bottom.len(), 2);
        assert_eq!(bottom[0].value, 5.0);
        assert_eq!(bottom[1].value, 1.0);
    }

    #[test]
    fn vector_matching_with_on_and_ignoring() {
        assert_eq!(
            flat(&vector("num / on(device_id) den", 10)),
            vec![("device_id=x".to_string(), 5.0)]
        );
        assert_eq!(
            flat(&vector("num - ignoring(job, kind) den", 10)),
            vec![("device_id=x".to_string(), 8.0)]
        );
        // Without a modifier all labels but the name must agree: nothing matches.
        assert!(vector("num + den", 10).is_empty());
        // A filtering comparison keeps the left side's sample, name and all.
        assert_eq!(
            flat(&vector("num > on(device_id) den", 10)),
            vec![("device_id=x".to_string(), 10.0)]
        );
        assert_eq!(
            flat(&vector("num < bool ignoring(job, kind) den", 10)),
            vec![("device_id=x".to_string(), 0.0)]
        );
    }

    #[test]
    fn scalar_arithmetic_and_comparison_follow_prometheus() {
        assert_eq!(
            flat(&vector("temp > 1", 10)),
            vec![
                ("__name__=temp,device_id=b,room=lab".to_string(), 2.0),
                ("__name__=temp,device_id=c,room=kitchen".to_string(), 5.0),
            ]
        );
        assert_eq!(
            flat(&vector("2 < bool temp", 10)),
            vec![
                ("device_id=a,room=lab".to_string(), 0.0),
                ("device_id=b,room=lab".to_string(), 0.0),
                ("device_id=c,room=kitchen".to_string(), 1.0),
            ]
        );
        let power = vector("-(temp{device_id=\"c\"} ^ 2) % 7 + 1", 10);
        assert_eq!(
            flat(&power),
            vec![("device_id=c,room=kitchen".to_string(), -25.0 % 7.0 + 1.0)]
        );
        assert_eq!(instant(&source(), "(1 + 2) * 3", 0), Ok(Value::Scalar(9.0)));
        assert_eq!(instant(&source(), "2 >= bool 3", 0), Ok(Value::Scalar(0.0)));
    }

    #[test]
    fn offset_and_at_move_the_read_time() {
        assert_eq!(vector("level", 120)[0].value, 3.0);
        assert_eq!(vector("level offset 1m", 120)[0].value, 2.0);
        assert_eq!(vector("level @ 60", 120)[0].value, 2.0);
        assert_eq!(vector("level @ 120 offset 2m", 0)[0].value, 1.0);
        let pinned = range(&source(), "level @ start()", 0, 120 * S, 60 * S).expect("range");
        assert_eq!(pinned[0].points, points(&[(0, 1.0), (60, 1.0), (120, 1.0)]));
        let pinned = range(&source(), "level @ end()", 0, 120 * S, 60 * S).expect("range");
        assert_eq!(pinned[0].points, points(&[(0, 3.0), (60, 3.0), (120, 3.0)]));
        let moved = range(
            &source(),
            "sum_over_time(level[1m] offset 1m)",
            60 * S,
            120 * S,
            60 * S,
        )
        .expect("range");
        // At 60 s the window is (−60 s, 0] → 1; at 120 s it is (0, 60 s] → 2.
        assert_eq!(moved[0].points, points(&[(60, 1.0), (120, 2.0)]));
    }

    #[test]
    fn lookback_is_five_minutes_open_at_its_start() {
        assert_eq!(vector("sparse", 299)[0].value, 1.0);
        assert!(vector("sparse", 300).is_empty());
        let steps = range(&source(), "sparse", 0, 900 * S, 100 * S).expect("range");
        assert_eq!(
            steps[0].points,
            points(&[
                (0, 1.0),
                (100, 1.0),
                (200, 1.0),
                (600, 2.0),
                (700, 2.0),
                (800, 2.0)
            ])
        );
    }

    #[test]
    fn over_time_functions_reduce_the_window() {
        // quartet: 4, 1, 3, 2 at 10..40 s.
        assert_eq!(
            vector("quantile_over_time(0.5, quartet[1m])", 40)[0].value,
            2.5
        );
        assert_eq!(vector("avg_over_time(quartet[1m])", 40)[0].value, 2.5);
        assert_eq!(vector("min_over_time(quartet[1m])", 40)[0].value, 1.0);
        assert_eq!(vector("max_over_time(quartet[1m])", 40)[0].value, 4.0);
        assert_eq!(vector("sum_over_time(quartet[1m])", 40)[0].value, 10.0);
        // (10 s, 40 s] leaves out the point at 10 s.
        assert_eq!(vector("count_over_time(quartet[30s])", 40)[0].value, 3.0);
        let last = vector("last_over_time(quartet[1m])", 40);
        assert_eq!(last[0].value, 2.0);
        assert_eq!(last[0].labels.get("__name__"), "quartet");
        assert_eq!(
            vector("max_over_time(quartet[1m])", 40)[0]
                .labels
                .get("__name__"),
            ""
        );
    }

    #[test]
    fn instant_functions_change_values_and_drop_the_name() {
        assert_eq!(
            flat(&vector("abs(-temp{device_id=\"a\"})", 10)),
            vec![("device_id=a,room=lab".to_string(), 1.0)]
        );
        assert_eq!(
            vector("clamp_min(temp{device_id=\"a\"}, 3)", 10)[0].value,
            3.0
        );
        assert_eq!(
            vector("clamp_max(temp{device_id=\"c\"}, 3)", 10)[0].value,
            3.0
        );
        assert_eq!(vector("round(temp{device_id=\"c\"} / 4)", 10)[0].value, 1.0);
        assert_eq!(vector("round(temp{device_id=\"c\"}, 2)", 10)[0].value, 6.0);
        // timestamp() of a selector is its point's time, not the evaluation time.
        assert_eq!(vector("timestamp(level)", 100)[0].value, 60.0);
        assert_eq!(
            instant(&source(), "time()", 42 * S),
            Ok(Value::Scalar(42.0))
        );
    }

    #[test]
    fn range_steps_start_at_start_and_never_pass_end() {
        let steps = range(&source(), "time()", 10 * S, 65 * S, 20 * S).expect("range");
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].labels, Labels::default());
        assert_eq!(
            steps[0].points,
            points(&[(10, 10.0), (30, 30.0), (50, 50.0)])
        );
    }

    #[test]
    fn too_many_steps_and_bad_times_are_bad_data() {
        let e = range(&source(), "time()", 0, 11_001 * S, S).expect_err("too many steps");
        assert_eq!(e.kind, QueryErrorKind::BadData);
        assert!(e.message.contains("11000"), "{}", e.message);
        assert!(range(&source(), "time()", 0, 11_000 * S, S).is_ok());
        let e = range(&source(), "time()", 10, 0, S).expect_err("end before start");
        assert_eq!(e.kind, QueryErrorKind::BadData);
        let e = range(&source(), "temp[1m]", 0, 10, 1).expect_err("matrix");
        assert!(e.message.contains("range vector"), "{}", e.message);
    }

    #[test]
    fn unsupported_parts_are_refused_by_name() {
        for (text, named) in [
            ("histogram_quantile(0.9, temp)", "histogram_quantile"),
            ("num * on(device_id) group_left den", "group_left"),
            ("temp and temp", "and"),
            ("stddev(temp)", "stddev"),
            ("max_over_time(temp[5m:1m])", "subquery"),
        ] {
            let e = instant(&source(), text, 10 * S).expect_err(text);
            assert_eq!(e.kind, QueryErrorKind::BadData, "{text}");
            assert!(e.message.contains(named), "{text}: {}", e.message);
        }
        let e = instant(&source(), "rate(", 0).expect_err("parse error");
        assert_eq!(e.kind, QueryErrorKind::BadData);
    }

    #[test]
    fn dropping_the_name_of_series_that_differ_only_in_it_is_an_execution_error() {
        let e = instant(&source(), r#"rate({__name__=~"requests.*"}[1m])"#, 15 * S)
            .expect_err("duplicate labelset");
        assert_eq!(e.kind, QueryErrorKind::Execution);
        assert!(e.message.contains("same labelset"), "{}", e.message);
    }

    #[test]
    fn name_matcher_reaches_metrics_promql_cannot_spell() {
        let copy = vector(r#"{__name__="requests.copy"}"#, 15);
        assert_eq!(copy[0].value, 10.0);
    }
}
