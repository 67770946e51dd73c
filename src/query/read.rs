//! Reads from this node's own store, as typed requests and answers: one aggregate (with
//! optional per-`step` buckets) over every series a request selects, the per-series
//! partials a coordinator merges, raw samples, a series' partial statistics, and the device
//! and metric listings.
//!
//! An aggregate request names a series the original way (`device_id`, `metric_name`) plus
//! optional `labels`; it **selects** every series of that metric carrying at least those
//! labels ([`selected_series`]): `{device_id: s1, metric_name: temperature}` also covers
//! `temperature{device_id="s1",room="lab"}`, and the answer aggregates across them all, as
//! InfluxDB does for a query that does not group by a tag. Samples name one series exactly.
//!
//! Each answer is what the matching endpoint returns with `?local=1`, and also what a
//! coordinator receives from an owner: the types derive both `Serialize` and `Deserialize`,
//! so the JSON shape is defined here once and a peer's answer is checked against it (see
//! [`combine`](super::combine)). Requests arrive validated: the HTTP layer builds
//! them from the body once, so bad input is refused before any peer is asked.

use crate::error::Result;
use crate::storage::{
    Aggregate, AggregateOp, Engine, SeriesFields, SeriesKey, TimeRange, Timestamp,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// `POST /query`: one aggregate over the series `key` selects (see [`selected_series`]) and a
/// range, optionally also per `step`.
#[derive(Clone, Debug)]
pub struct AggregateRequest {
    pub key: SeriesKey,
    pub op: AggregateOp,
    pub range: TimeRange,
    pub step: Option<Duration>,
    /// Label names to answer one result per distinct combination of their values for
    /// (`"group_by": ["room"]`); empty for one result over every selected series.
    pub group_by: Vec<String>,
}

/// `POST /query-samples`: raw points, oldest first, at most `limit`.
#[derive(Clone, Debug)]
pub struct SamplesRequest {
    pub key: SeriesKey,
    pub range: TimeRange,
    pub limit: usize,
}

/// What `/query` answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggregateAnswer {
    pub device_id: String,
    pub metric_name: String,
    /// The series' labels other than `device_id`; absent when it has none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub operation: String,
    /// `null` for `avg`, `min` and `max` over no points.
    pub result: Option<f64>,
    pub count: u64,
    /// How many series the request selected and the answer merges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<u64>,
    pub duration_ns: u64,
    pub node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<BucketAnswer>>,
    /// With `group_by`: one result per group, sorted by its labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<GroupAnswer>>,
}

/// One group of a `group_by` answer: the grouped labels' values (a label a group's series
/// lack is left out), and the group's own result, count, series and buckets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupAnswer {
    pub labels: BTreeMap<String, String>,
    pub result: Option<f64>,
    pub count: u64,
    pub series: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<BucketAnswer>>,
}

/// One `step` bucket of an [`AggregateAnswer`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BucketAnswer {
    /// Unix seconds of the bucket's first instant.
    pub start: f64,
    pub result: Option<f64>,
    pub count: u64,
}

/// What `/query-samples` answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplesAnswer {
    pub device_id: String,
    pub metric_name: String,
    /// The series' labels other than `device_id`; absent when it has none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub samples: Vec<f64>,
    /// Unix seconds, one per sample.
    pub timestamps: Vec<f64>,
    pub count: usize,
    /// How many series the coordinated answer merges (absent from `?local=1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<u64>,
    /// Where several series are merged, each series' own share of `samples`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<SeriesSamples>,
    pub node: String,
}

/// One series' points in a [`SamplesAnswer`] merging several.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesSamples {
    #[serde(flatten)]
    pub series: SeriesFields,
    pub samples: Vec<f64>,
    pub timestamps: Vec<f64>,
    pub count: usize,
}

/// What `/query-aggregated` answers: partial statistics a coordinator can merge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartialAnswer {
    pub sum: f64,
    pub count: u64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub node: String,
}

/// Every series in `engine` that a request naming `selector` covers, sorted: the same
/// metric, and every label of the selector with the same value (the series may carry
/// more). An index lookup of the metric and each of the selector's labels.
pub fn selected_series(engine: &Engine, selector: &SeriesKey) -> Result<Vec<SeriesKey>> {
    engine.select(&super::select::covering_matchers(selector))
}

/// Mergeable statistics: of one series over a range, or of one bucket of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub count: u64,
    pub sum: f64,
    /// `null` over no points.
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Stats {
    fn of(aggregate: &Aggregate) -> Stats {
        let present = aggregate.count > 0;
        Stats {
            count: aggregate.count,
            sum: aggregate.sum,
            min: present.then_some(aggregate.min),
            max: present.then_some(aggregate.max),
        }
    }

    /// The aggregate these statistics stand for.
    pub fn aggregate(&self) -> Aggregate {
        Aggregate {
            count: self.count,
            sum: self.sum,
            min: self.min.unwrap_or(f64::INFINITY),
            max: self.max.unwrap_or(f64::NEG_INFINITY),
        }
    }
}

/// One selected series as one node holds it: its statistics over the range and, with a
/// `step`, per bucket (non-empty buckets only, by start in unix ms).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesPartial {
    #[serde(flatten)]
    pub series: SeriesFields,
    #[serde(flatten)]
    pub stats: Stats,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<(i64, Stats)>,
}

/// What `POST /internal/series-aggregate` answers: this node's copy of every series the
/// request selects, each on its own, so a coordinator can take the fullest replica of each
/// and never count a series twice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesPartials {
    pub series: Vec<SeriesPartial>,
    pub node: String,
}

/// This node's partials for `request`.
pub fn series_partials(
    engine: &Engine,
    node: &str,
    request: &AggregateRequest,
) -> Result<SeriesPartials> {
    let mut series = Vec::new();
    for key in selected_series(engine, &request.key)? {
        let aggregate = engine.aggregate(&key, request.range)?;
        let buckets = match request.step {
            None => Vec::new(),
            Some(step) => engine
                .downsample(&key, request.range, step)?
                .into_iter()
                .filter(|b| b.aggregate.count > 0)
                .map(|b| (b.start.millis(), Stats::of(&b.aggregate)))
                .collect(),
        };
        series.push(SeriesPartial {
            series: SeriesFields::from(&key),
            stats: Stats::of(&aggregate),
            buckets,
        });
    }
    Ok(SeriesPartials {
        series,
        node: node.to_string(),
    })
}

/// Partials merged: statistics over the range and per bucket start, and how many series.
#[derive(Default)]
struct Merged {
    total: Aggregate,
    buckets: BTreeMap<i64, Aggregate>,
    series: u64,
}

impl Merged {
    fn add(&mut self, partial: &SeriesPartial) {
        self.series += 1;
        self.total.merge(&partial.stats.aggregate());
        for (start, stats) in &partial.buckets {
            self.buckets
                .entry(*start)
                .or_insert(Aggregate::EMPTY)
                .merge(&stats.aggregate());
        }
    }

    fn buckets(&self, request: &AggregateRequest) -> Option<Vec<BucketAnswer>> {
        request.step.map(|_| {
            self.buckets
                .iter()
                .map(|(start, aggregate)| BucketAnswer {
                    start: Timestamp(*start).as_unix_seconds(),
                    result: aggregate.result(request.op),
                    count: aggregate.count,
                })
                .collect()
        })
    }
}

/// The answer to `request` from `partials`, at most one per series (see
/// [`combine::fullest_per_series`](super::combine::fullest_per_series)): every series'
/// statistics merged, and per bucket when a `step` was asked, and per group of the
/// `group_by` labels' values when asked.
pub fn aggregate_answer<'p>(
    request: &AggregateRequest,
    partials: impl IntoIterator<Item = &'p SeriesPartial>,
    node: &str,
    duration_ns: u64,
) -> AggregateAnswer {
    let mut all = Merged {
        total: Aggregate::EMPTY,
        ..Merged::default()
    };
    let mut groups: BTreeMap<BTreeMap<String, String>, Merged> = BTreeMap::new();
    for partial in partials {
        all.add(partial);
        if !request.group_by.is_empty() {
            let labels = request
                .group_by
                .iter()
                .filter_map(|name| {
                    let value = if name == crate::storage::DEVICE_LABEL {
                        Some(&partial.series.device_id).filter(|d| !d.is_empty())
                    } else {
                        partial.series.labels.get(name)
                    };
                    value.map(|v| (name.clone(), v.clone()))
                })
                .collect();
            groups
                .entry(labels)
                .or_insert_with(|| Merged {
                    total: Aggregate::EMPTY,
                    ..Merged::default()
                })
                .add(partial);
        }
    }
    let fields = SeriesFields::from(&request.key);
    AggregateAnswer {
        device_id: fields.device_id,
        metric_name: fields.metric_name,
        labels: fields.labels,
        operation: request.op.as_str().to_string(),
        result: all.total.result(request.op),
        count: all.total.count,
        series: Some(all.series),
        duration_ns,
        node: node.to_string(),
        buckets: all.buckets(request),
        groups: (!request.group_by.is_empty()).then(|| {
            groups
                .into_iter()
                .map(|(labels, merged)| GroupAnswer {
                    result: merged.total.result(request.op),
                    count: merged.total.count,
                    series: merged.series,
                    buckets: merged.buckets(request),
                    labels,
                })
                .collect()
        }),
    }
}

/// What `/devices` answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DevicesAnswer {
    pub devices: BTreeSet<String>,
    pub node: String,
}

/// What `/metrics` answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsAnswer {
    pub metrics: BTreeSet<String>,
    pub node: String,
}

/// A listing every member contributes to: the coordinator answers the union.
pub trait ListingAnswer: Serialize + serde::de::DeserializeOwned + Send {
    /// The listing's items.
    fn items(&self) -> &BTreeSet<String>;
    /// The node that answered.
    fn node(&self) -> &str;
    /// The coordinator's answer: `items` as listed by `node`.
    fn union(items: BTreeSet<String>, node: &str) -> Self;
}

impl ListingAnswer for DevicesAnswer {
    fn items(&self) -> &BTreeSet<String> {
        &self.devices
    }

    fn node(&self) -> &str {
        &self.node
    }

    fn union(devices: BTreeSet<String>, node: &str) -> Self {
        DevicesAnswer {
            devices,
            node: node.to_string(),
        }
    }
}

impl ListingAnswer for MetricsAnswer {
    fn items(&self) -> &BTreeSet<String> {
        &self.metrics
    }

    fn node(&self) -> &str {
        &self.node
    }

    fn union(metrics: BTreeSet<String>, node: &str) -> Self {
        MetricsAnswer {
            metrics,
            node: node.to_string(),
        }
    }
}

/// `request` against `engine` alone (`?local=1`, or a node without peers); `started` is
/// when the request arrived.
pub fn aggregate(
    engine: &Engine,
    node: &str,
    request: &AggregateRequest,
    started: Instant,
) -> Result<AggregateAnswer> {
    let partials = series_partials(engine, node, request)?;
    Ok(aggregate_answer(
        request,
        &partials.series,
        node,
        elapsed_ns(started),
    ))
}

/// `request` against `engine`.
pub fn samples(engine: &Engine, node: &str, request: &SamplesRequest) -> Result<SamplesAnswer> {
    let points = engine.samples(&request.key, request.range, request.limit)?;
    let (timestamps, samples): (Vec<f64>, Vec<f64>) = points
        .iter()
        .map(|(ts, v)| (ts.as_unix_seconds(), *v))
        .unzip();
    Ok(SamplesAnswer {
        device_id: request.key.device_id().to_string(),
        metric_name: request.key.metric_name().to_string(),
        labels: request.key.extra_label_map(),
        count: samples.len(),
        samples,
        timestamps,
        series: None,
        results: Vec::new(),
        node: node.to_string(),
    })
}

/// The partial statistics of `key` over `range` in `engine`.
pub fn partial(
    engine: &Engine,
    node: &str,
    key: &SeriesKey,
    range: TimeRange,
) -> Result<PartialAnswer> {
    let aggregate = engine.aggregate(key, range)?;
    Ok(PartialAnswer {
        sum: aggregate.sum,
        count: aggregate.count,
        min: aggregate.result(AggregateOp::Min),
        max: aggregate.result(AggregateOp::Max),
        node: node.to_string(),
    })
}

/// Every device with data in `engine`, sorted.
pub fn devices(engine: &Engine, node: &str) -> DevicesAnswer {
    DevicesAnswer {
        devices: engine
            .series()
            .iter()
            .map(|k| k.device_id().to_string())
            .collect(),
        node: node.to_string(),
    }
}

/// Every metric in `engine` (of `device` only, if given), sorted.
pub fn metrics(engine: &Engine, node: &str, device: Option<&str>) -> MetricsAnswer {
    MetricsAnswer {
        metrics: engine
            .series()
            .iter()
            .filter(|k| device.is_none_or(|d| k.device_id() == d))
            .map(|k| k.metric_name().to_string())
            .collect(),
        node: node.to_string(),
    }
}

/// Nanoseconds since `started`, saturating.
pub fn elapsed_ns(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
}
