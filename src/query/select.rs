//! Raw points of every series a set of label matchers selects: the request a coordinator
//! sends every member (`POST /internal/select`), and what one node answers from its own
//! store. `/query-samples` over several series, `/delete` by labels, `GET /series` and the
//! Prometheus API's selectors all read through it; the coordinator keeps the fullest copy
//! of each series ([`combine::fullest_per_series`](super::combine::fullest_per_series)).

use crate::error::{Error, Result};
use crate::query::combine::PerSeriesAnswer;
use crate::query::read::{SamplesAnswer, SamplesRequest, SeriesSamples};
use crate::storage::index::{MatchOp, Matcher, METRIC_LABEL};
use crate::storage::{Engine, SeriesFields, SeriesKey, TimeRange, Timestamp};
use serde::{Deserialize, Serialize};

/// Most matchers one selector may carry.
pub const MAX_MATCHERS: usize = 64;

/// Most points one node returns per series for one request.
pub const MAX_POINTS_PER_SERIES: usize = 10_000_000;

/// A matcher as it travels between nodes: `{"name": "room", "op": "=~", "value": "lab.*"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatcherSpec {
    pub name: String,
    pub op: String,
    pub value: String,
}

impl From<&Matcher> for MatcherSpec {
    fn from(m: &Matcher) -> MatcherSpec {
        MatcherSpec {
            name: m.name.clone(),
            op: m.op.as_str().to_string(),
            value: m.value.clone(),
        }
    }
}

/// The wire form of a [`SelectRequest`]: bounds in unix ms, `null` for open.
#[derive(Debug, Serialize, Deserialize)]
struct SelectBody {
    matchers: Vec<MatcherSpec>,
    start: Option<i64>,
    end: Option<i64>,
    /// Points per series; 0 asks only which series hold points in the range.
    limit: usize,
}

/// Every series passing all `matchers`, with up to `limit` of its points in `range` each
/// (oldest first); `limit` 0 lists the series holding points in the range and no points.
#[derive(Clone, Debug)]
pub struct SelectRequest {
    pub matchers: Vec<Matcher>,
    pub range: TimeRange,
    pub limit: usize,
}

impl SelectRequest {
    /// A request, refused as Prometheus refuses a selector when no matcher needs a
    /// non-empty value (it would select every series), or when it has too many matchers or
    /// too high a limit.
    pub fn new(matchers: Vec<Matcher>, range: TimeRange, limit: usize) -> Result<SelectRequest> {
        if matchers.len() > MAX_MATCHERS {
            return Err(Error::invalid(
                "matchers",
                format!("more than {MAX_MATCHERS} in one selector"),
            ));
        }
        if matchers.iter().all(|m| m.matches("")) {
            return Err(Error::invalid(
                "matchers",
                "a selector needs at least one matcher that does not match the empty value",
            ));
        }
        if limit > MAX_POINTS_PER_SERIES {
            return Err(Error::invalid(
                "limit",
                format!("more than {MAX_POINTS_PER_SERIES} points per series"),
            ));
        }
        Ok(SelectRequest {
            matchers,
            range,
            limit,
        })
    }

    /// What a request naming `selector` covers: its metric and each of its labels with the
    /// same value (series with more labels too).
    pub fn covering(selector: &SeriesKey, range: TimeRange, limit: usize) -> Result<Self> {
        SelectRequest::new(covering_matchers(selector), range, limit)
    }

    /// The body of `POST /internal/select`.
    pub fn to_body(&self) -> Result<Vec<u8>> {
        let body = SelectBody {
            matchers: self.matchers.iter().map(MatcherSpec::from).collect(),
            start: self.range.start.map(|t| t.0),
            end: self.range.end.map(|t| t.0),
            limit: self.limit,
        };
        serde_json::to_vec(&body).map_err(|e| Error::invalid("select", e.to_string()))
    }

    /// A request from a peer's body, checked as every outside input is.
    pub fn from_body(body: &[u8]) -> Result<SelectRequest> {
        let body: SelectBody = serde_json::from_slice(body)
            .map_err(|e| Error::invalid("body", format!("not a select request: {e}")))?;
        if body.matchers.len() > MAX_MATCHERS {
            return Err(Error::invalid(
                "matchers",
                format!("more than {MAX_MATCHERS} in one selector"),
            ));
        }
        let matchers = body
            .matchers
            .iter()
            .map(|m| Matcher::new(&m.name, MatchOp::parse(&m.op)?, &m.value))
            .collect::<Result<Vec<_>>>()?;
        let bound = |ms: Option<i64>, name: &str| match ms {
            Some(ms) if Timestamp::calendar_error(ms).is_some() => {
                Err(Error::invalid(name, "outside the storable range"))
            }
            other => Ok(other.map(Timestamp)),
        };
        let range = TimeRange::new(bound(body.start, "start")?, bound(body.end, "end")?);
        SelectRequest::new(matchers, range, body.limit)
    }
}

/// The matchers of what a request naming `selector` covers: its metric, and each of its
/// labels with the same value.
pub fn covering_matchers(selector: &SeriesKey) -> Vec<Matcher> {
    std::iter::once(Matcher::equal(METRIC_LABEL, selector.metric_name()))
        .chain(
            selector
                .labels()
                .iter()
                .map(|(name, value)| Matcher::equal(name, value)),
        )
        .collect()
}

/// One node's copy of one selected series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoints {
    #[serde(flatten)]
    pub series: SeriesFields,
    /// Points in the range this node holds (all of them, also beyond the limit).
    pub count: u64,
    /// Up to the request's limit of them, oldest first, as `[unix ms, value]`.
    #[serde(default)]
    pub points: Vec<(i64, f64)>,
}

/// What `POST /internal/select` answers: this node's copy of each selected series holding
/// points in the range, sorted by series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelectedSeries {
    pub series: Vec<SeriesPoints>,
    pub node: String,
}

impl PerSeriesAnswer for SelectedSeries {
    type Copy = SeriesPoints;

    fn node(&self) -> &str {
        &self.node
    }

    fn into_copies(self) -> Vec<SeriesPoints> {
        self.series
    }

    fn series(copy: &SeriesPoints) -> &SeriesFields {
        &copy.series
    }

    fn points(copy: &SeriesPoints) -> u64 {
        copy.count
    }
}

/// `request` against this node's store.
pub fn select(engine: &Engine, node: &str, request: &SelectRequest) -> Result<SelectedSeries> {
    let mut series = Vec::new();
    for key in engine.select(&request.matchers)? {
        let (count, points) = if request.limit == 0 {
            (engine.aggregate(&key, request.range)?.count, Vec::new())
        } else {
            let points: Vec<(i64, f64)> = engine
                .samples(&key, request.range, request.limit)?
                .into_iter()
                .map(|(ts, v)| (ts.0, v))
                .collect();
            // Under the limit the points are all there are: no second read to count them.
            let count = match points.len() < request.limit {
                true => points.len() as u64,
                false => engine.aggregate(&key, request.range)?.count,
            };
            (count, points)
        };
        if count == 0 {
            continue;
        }
        series.push(SeriesPoints {
            series: SeriesFields::from(&key),
            count,
            points,
        });
    }
    Ok(SelectedSeries {
        series,
        node: node.to_string(),
    })
}

/// The `/query-samples` answer merging `copies` (one per selected series, sorted by
/// series): the oldest `request.limit` points of them all, ties in series order, and with
/// more than one series each one's share of them in `results`.
pub fn samples_answer(
    request: &SamplesRequest,
    copies: &[SeriesPoints],
    node: &str,
) -> SamplesAnswer {
    let mut merged: Vec<(i64, usize, f64)> = copies
        .iter()
        .enumerate()
        .flat_map(|(i, copy)| copy.points.iter().map(move |&(ts, v)| (ts, i, v)))
        .collect();
    merged.sort_by_key(|&(ts, i, _)| (ts, i));
    merged.truncate(request.limit);
    let seconds = |ms: i64| Timestamp(ms).as_unix_seconds();
    let results = if copies.len() > 1 {
        let mut results: Vec<SeriesSamples> = copies
            .iter()
            .map(|copy| SeriesSamples {
                series: copy.series.clone(),
                samples: Vec::new(),
                timestamps: Vec::new(),
                count: 0,
            })
            .collect();
        for &(ts, i, v) in &merged {
            results[i].samples.push(v);
            results[i].timestamps.push(seconds(ts));
            results[i].count += 1;
        }
        results
    } else {
        Vec::new()
    };
    SamplesAnswer {
        device_id: request.key.device_id().to_string(),
        metric_name: request.key.metric_name().to_string(),
        labels: request.key.extra_label_map(),
        count: merged.len(),
        samples: merged.iter().map(|&(_, _, v)| v).collect(),
        timestamps: merged.iter().map(|&(ts, _, _)| seconds(ts)).collect(),
        series: Some(copies.len() as u64),
        results,
        node: node.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::EngineConfig;
    use crate::test_dir::TempDir;

    #[test]
    fn a_selector_matching_every_series_is_refused() {
        let all = Matcher::new("room", MatchOp::Regex, ".*").unwrap();
        let e = SelectRequest::new(vec![all], TimeRange::ALL, 10).unwrap_err();
        assert!(e.to_string().contains("matchers"), "{e}");
        assert!(SelectRequest::new(Vec::new(), TimeRange::ALL, 10).is_err());
    }

    #[test]
    fn a_request_survives_the_wire_and_bad_ones_are_refused() {
        let request = SelectRequest::new(
            vec![
                Matcher::equal(METRIC_LABEL, "temp"),
                Matcher::new("room", MatchOp::NotRegex, "k.*").unwrap(),
            ],
            TimeRange::new(Some(Timestamp(5)), None),
            7,
        )
        .unwrap();
        let back = SelectRequest::from_body(&request.to_body().unwrap()).unwrap();
        assert_eq!(back.limit, 7);
        assert_eq!(back.range, request.range);
        assert_eq!(back.matchers.len(), 2);
        assert!(back.matchers[1].matches("lab") && !back.matchers[1].matches("kitchen"));

        let bad_op = br#"{"matchers":[{"name":"a","op":"~","value":"x"}],"start":null,"end":null,"limit":1}"#;
        assert!(SelectRequest::from_body(bad_op).is_err());
        let bad_regex = br#"{"matchers":[{"name":"a","op":"=~","value":"("}],"start":null,"end":null,"limit":1}"#;
        assert!(SelectRequest::from_body(bad_regex).is_err());
        let bad_time =
            br#"{"matchers":[{"name":"a","op":"=","value":"x"}],"start":-5,"end":null,"limit":1}"#;
        assert!(SelectRequest::from_body(bad_time).is_err());
        assert!(SelectRequest::from_body(b"[1,2]").is_err());
    }

    #[test]
    fn a_node_answers_each_selected_series_with_its_points_and_full_count() {
        let dir = TempDir::new("select");
        let (engine, _) = Engine::open(dir.path(), EngineConfig::default()).unwrap();
        let lab = SeriesKey::with_labels("temp", [("device_id", "d"), ("room", "lab")]).unwrap();
        let kitchen =
            SeriesKey::with_labels("temp", [("device_id", "d"), ("room", "kitchen")]).unwrap();
        let hum = SeriesKey::new("d", "hum").unwrap();
        let five = |v: &dyn Fn(i64) -> f64| (0..5).map(|i| (Timestamp(1000 + i), v(i))).collect();
        engine
            .write_grouped(&[
                (&lab, five(&|i| i as f64)),
                (&hum, five(&|_| 1.0)),
                (&kitchen, vec![(Timestamp(1), 9.0)]),
            ])
            .unwrap();

        let request = SelectRequest::new(
            vec![Matcher::equal(METRIC_LABEL, "temp")],
            TimeRange::new(Some(Timestamp(1000)), None),
            3,
        )
        .unwrap();
        let answer = select(&engine, "n1", &request).unwrap();
        // The kitchen series holds no point in the range, so it is not listed.
        assert_eq!(answer.series.len(), 1);
        let only = &answer.series[0];
        assert_eq!(only.series, SeriesFields::from(&lab));
        assert_eq!(only.count, 5);
        assert_eq!(only.points, vec![(1000, 0.0), (1001, 1.0), (1002, 2.0)]);

        // Under the limit, the count is the points returned.
        let all = SelectRequest::new(request.matchers.clone(), request.range, 10).unwrap();
        let answer = select(&engine, "n1", &all).unwrap();
        assert_eq!(
            (answer.series[0].count, answer.series[0].points.len()),
            (5, 5)
        );

        let keys_only = SelectRequest::new(request.matchers.clone(), TimeRange::ALL, 0).unwrap();
        let listed = select(&engine, "n1", &keys_only).unwrap();
        assert_eq!(listed.series.len(), 2);
        assert!(listed.series.iter().all(|s| s.points.is_empty()));
    }
}
