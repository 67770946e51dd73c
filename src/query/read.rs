//! Reads from this node's own store, as typed requests and answers: one aggregate (with
//! optional per-`step` buckets), raw samples, a series' partial statistics, and the device
//! and metric listings.
//!
//! Each answer is what the matching endpoint returns with `?local=1`, and also what a
//! coordinator receives from an owner: the types derive both `Serialize` and `Deserialize`,
//! so the JSON shape is defined here once and a peer's answer is checked against it (see
//! [`combine`](super::combine)). Requests arrive validated: the HTTP layer builds
//! them from the body once, so bad input is refused before any peer is asked.

use crate::error::Result;
use crate::storage::{AggregateOp, Engine, SeriesFields, SeriesKey, TimeRange};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// `POST /query`: one aggregate over a series and range, optionally also per `step`.
#[derive(Clone, Debug)]
pub struct AggregateRequest {
    pub key: SeriesKey,
    pub op: AggregateOp,
    pub range: TimeRange,
    pub step: Option<Duration>,
}

/// `POST /query-samples`: raw points, oldest first, at most `limit`.
#[derive(Clone, Debug)]
pub struct SamplesRequest {
    pub key: SeriesKey,
    pub range: TimeRange,
    pub limit: usize,
}

/// An answer one replica of a series gives. A coordinator keeps the fullest of them.
pub trait ReplicaAnswer: Serialize + serde::de::DeserializeOwned + Send {
    /// Points the answer covers: the replica with the most holds the fullest copy.
    fn count(&self) -> u64;
    /// The node that answered.
    fn node(&self) -> &str;
    /// Re-labels the answer as the coordinator's: its node, and how long the whole
    /// request took where the answer reports it.
    fn restamp(&mut self, node: &str, elapsed_ns: u64);
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
    pub duration_ns: u64,
    pub node: String,
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

impl ReplicaAnswer for AggregateAnswer {
    fn count(&self) -> u64 {
        self.count
    }

    fn node(&self) -> &str {
        &self.node
    }

    fn restamp(&mut self, node: &str, elapsed_ns: u64) {
        self.node = node.to_string();
        self.duration_ns = elapsed_ns;
    }
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
    pub node: String,
}

impl ReplicaAnswer for SamplesAnswer {
    fn count(&self) -> u64 {
        self.count as u64
    }

    fn node(&self) -> &str {
        &self.node
    }

    fn restamp(&mut self, node: &str, _elapsed_ns: u64) {
        self.node = node.to_string();
    }
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

/// `request` against `engine`; `started` is when the request arrived.
pub fn aggregate(
    engine: &Engine,
    node: &str,
    request: &AggregateRequest,
    started: Instant,
) -> Result<AggregateAnswer> {
    let AggregateRequest {
        key,
        op,
        range,
        step,
    } = request;
    let aggregate = engine.aggregate(key, *range)?;
    let buckets = match step {
        None => None,
        Some(step) => Some(
            engine
                .downsample(key, *range, *step)?
                .into_iter()
                .map(|b| BucketAnswer {
                    start: b.start.as_unix_seconds(),
                    result: b.aggregate.result(*op),
                    count: b.aggregate.count,
                })
                .collect(),
        ),
    };
    Ok(AggregateAnswer {
        device_id: key.device_id().to_string(),
        metric_name: key.metric_name().to_string(),
        labels: SeriesFields::from(key).labels,
        operation: op.as_str().to_string(),
        result: aggregate.result(*op),
        count: aggregate.count,
        duration_ns: elapsed_ns(started),
        node: node.to_string(),
        buckets,
    })
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
        labels: SeriesFields::from(&request.key).labels,
        count: samples.len(),
        samples,
        timestamps,
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
