//! Where the evaluator gets its data: the [`Source`] trait, and [`LocalSource`], which
//! answers it from this node's [`Engine`].
//!
//! The trait deals in [`Matcher`]s (`__name__` is the metric) and inclusive millisecond
//! ranges; it knows nothing of PromQL, so a cluster source only has to fan the same four
//! questions out to the owners and merge the answers.

use super::MAX_POINTS;
use crate::storage::index::METRIC_LABEL;
use crate::storage::{Engine, Matcher, SeriesKey, TimeRange, Timestamp};
use std::collections::BTreeSet;

/// One selected series: its name and its points `(milliseconds, value)`, oldest first.
pub type SelectedSeries = (SeriesKey, Vec<(i64, f64)>);

/// Where the evaluator gets raw points and series names. Every method takes the matchers a
/// series must all pass and an inclusive range `[start_ms, end_ms]`; errors are messages
/// naming what failed (they are answered as Prometheus's `unavailable`).
pub trait Source: Sync {
    /// Every series passing all matchers that has points in the range, each with those
    /// points oldest first. A source may stop reading once it has more than
    /// [`MAX_POINTS`] points for the answer: the evaluator refuses such a query anyway.
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SelectedSeries>, String>;

    /// The series passing all matchers that have at least one point in the range, without
    /// their points (`/api/v1/series`).
    fn series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesKey>, String>;

    /// The label names (`__name__` included) of the series passing all matchers, sorted;
    /// with no matchers, of every series.
    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, String>;

    /// The values label `name` takes among the series passing all matchers, sorted; with no
    /// matchers, among every series.
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, String>;
}

/// A [`Source`] over one node's own store.
pub struct LocalSource<'a> {
    engine: &'a Engine,
}

impl<'a> LocalSource<'a> {
    pub fn new(engine: &'a Engine) -> LocalSource<'a> {
        LocalSource { engine }
    }

    /// The series passing `matchers` with points in `[start_ms, end_ms]`, each with up to
    /// `per_series` of them, stopping once `total` points are read.
    fn selected(
        &self,
        matchers: &[Matcher],
        (start_ms, end_ms): (i64, i64),
        per_series: usize,
        total: usize,
    ) -> Result<Vec<SelectedSeries>, String> {
        let range = TimeRange::new(Some(Timestamp(start_ms)), Some(Timestamp(end_ms)));
        let mut budget = total;
        let mut out = Vec::new();
        for key in self.engine.select(matchers).map_err(|e| e.to_string())? {
            if budget == 0 {
                break;
            }
            let points = self
                .engine
                .samples(&key, range, per_series.min(budget))
                .map_err(|e| format!("series {key}: {e}"))?;
            if !points.is_empty() {
                budget -= points.len();
                out.push((key, points.into_iter().map(|(t, v)| (t.0, v)).collect()));
            }
        }
        Ok(out)
    }

    /// The series passing `matchers` with a point in the range.
    fn present(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesKey>, String> {
        let selected = self.selected(matchers, (start_ms, end_ms), 1, usize::MAX)?;
        Ok(selected.into_iter().map(|(key, _)| key).collect())
    }
}

impl Source for LocalSource<'_> {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SelectedSeries>, String> {
        // More than MAX_POINTS is refused by the evaluator: reading on would only cost memory.
        self.selected(matchers, (start_ms, end_ms), usize::MAX, MAX_POINTS + 1)
    }

    fn series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesKey>, String> {
        self.present(matchers, start_ms, end_ms)
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, String> {
        if matchers.is_empty() {
            return Ok(self.engine.label_names());
        }
        Ok(names_of(&self.present(matchers, start_ms, end_ms)?))
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, String> {
        if matchers.is_empty() {
            return Ok(self.engine.label_values(name));
        }
        Ok(values_of(name, &self.present(matchers, start_ms, end_ms)?))
    }
}

/// The label names of `keys`, `__name__` included, sorted.
pub fn names_of(keys: &[SeriesKey]) -> Vec<String> {
    let mut names = BTreeSet::new();
    for key in keys {
        names.insert(METRIC_LABEL.to_string());
        names.extend(key.labels().iter().map(|(n, _)| n.clone()));
    }
    names.into_iter().collect()
}

/// The values label `name` (`__name__`: the metric) takes among `keys`, sorted.
pub fn values_of(name: &str, keys: &[SeriesKey]) -> Vec<String> {
    let mut values = BTreeSet::new();
    for key in keys {
        let value = if name == METRIC_LABEL {
            Some(key.metric_name())
        } else {
            key.label(name)
        };
        values.extend(value.map(str::to_string));
    }
    values.into_iter().collect()
}

/// A [`Source`] over series held in memory, for tests.
#[cfg(test)]
pub(crate) struct MemorySource(pub Vec<SelectedSeries>);

#[cfg(test)]
impl MemorySource {
    fn matching<'s>(
        &'s self,
        matchers: &'s [Matcher],
    ) -> impl Iterator<Item = &'s SelectedSeries> + 's {
        self.0
            .iter()
            .filter(move |(key, _)| matchers.iter().all(|m| m.matches_series(key)))
    }
}

#[cfg(test)]
impl Source for MemorySource {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SelectedSeries>, String> {
        Ok(self
            .matching(matchers)
            .map(|(key, points)| {
                let inside = points
                    .iter()
                    .copied()
                    .filter(|&(t, _)| t >= start_ms && t <= end_ms)
                    .collect();
                (key.clone(), inside)
            })
            .filter(|(_, points): &SelectedSeries| !points.is_empty())
            .collect())
    }

    fn series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesKey>, String> {
        Ok(self
            .select(matchers, start_ms, end_ms)?
            .into_iter()
            .map(|(key, _)| key)
            .collect())
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, String> {
        Ok(names_of(&self.series(matchers, start, end)?))
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, String> {
        Ok(values_of(name, &self.series(matchers, start, end)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_node::TestNode;
    use crate::storage::{MatchOp, Point};

    #[test]
    fn local_source_reads_the_engine_within_the_range() {
        let t = TestNode::new("promql_local_source");
        let a = SeriesKey::with_labels("t", [("device_id", "a"), ("room", "lab")]).unwrap();
        let b = SeriesKey::with_labels("u", [("device_id", "b")]).unwrap();
        let points: Vec<Point> = [(&a, 1_000, 1.0), (&a, 2_000, 2.0), (&b, 5_000, 3.0)]
            .into_iter()
            .map(|(key, ms, value)| Point {
                series: key.clone(),
                timestamp: Timestamp(ms),
                value,
            })
            .collect();
        t.node.engine.write(&points).unwrap();
        let source = LocalSource::new(&t.node.engine);
        let all = [Matcher::new("device_id", MatchOp::Regex, ".+").unwrap()];
        assert_eq!(
            source.select(&all, 1_500, 5_000).unwrap(),
            vec![
                (a.clone(), vec![(2_000, 2.0)]),
                (b.clone(), vec![(5_000, 3.0)])
            ]
        );
        assert_eq!(source.series(&all, 0, 1_000).unwrap(), vec![a.clone()]);
        assert_eq!(
            source.label_names(&all, 0, 10_000).unwrap(),
            ["__name__", "device_id", "room"]
        );
        assert_eq!(
            source
                .label_values("__name__", &all, 3_000, 10_000)
                .unwrap(),
            ["u"]
        );
        assert_eq!(source.label_values("room", &[], 0, 0).unwrap(), ["lab"]);
    }
}
