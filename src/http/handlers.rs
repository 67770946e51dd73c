//! One function per endpoint: parse the request, ask the node, shape the answer. Nothing
//! here touches a socket, so every endpoint is tested by calling it.
//!
//! Times on the wire are unix seconds (possibly fractional); `0` or an absent bound is open.
//! Empty results: `avg`, `min` and `max` answer `null` (there is no such value); `count`
//! and `sum` answer `0`.

use super::errors::ApiError;
use super::json::Fields;
use super::Reply;
use crate::cluster::membership::MemberState;
use crate::ingest::line_protocol::{parse_line_protocol, Precision};
use crate::ingest::stats::BrokerState;
use crate::node::Node;
use crate::storage::{AggregateOp, Timestamp};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Samples `/query-samples` returns when the request names no `limit`.
pub const DEFAULT_SAMPLE_LIMIT: u64 = 10_000;

/// Largest `limit` `/query-samples` accepts.
pub const MAX_SAMPLE_LIMIT: u64 = 1_000_000;

type Answer = Result<Reply, ApiError>;

#[derive(Serialize)]
struct QueryAnswer<'a> {
    device_id: &'a str,
    metric_name: &'a str,
    operation: &'static str,
    result: Option<f64>,
    count: u64,
    duration_ns: u64,
    node: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    buckets: Option<Vec<BucketAnswer>>,
}

#[derive(Serialize)]
struct BucketAnswer {
    start: f64,
    result: Option<f64>,
    count: u64,
}

/// `POST /query`: one aggregate over a series and range, optionally also per `step`.
pub fn query(node: &Node, body: &[u8]) -> Answer {
    let started = Instant::now();
    let fields = Fields::parse(body)?;
    let key = fields.series()?;
    let op = fields.operation()?;
    let range = fields.time_range()?;
    let step = match fields.optional_f64("step")? {
        None => None,
        Some(s) if s > 0.0 => Some(
            Duration::try_from_secs_f64(s)
                .map_err(|_| ApiError::bad_request("invalid step: out of range"))?,
        ),
        Some(_) => return Err(ApiError::bad_request("invalid step: must be > 0 seconds")),
    };
    let aggregate = node.engine.aggregate(&key, range)?;
    let buckets = match step {
        None => None,
        Some(step) => Some(
            node.engine
                .downsample(&key, range, step)?
                .into_iter()
                .map(|b| BucketAnswer {
                    start: b.start.as_unix_seconds(),
                    result: b.aggregate.result(op),
                    count: b.aggregate.count,
                })
                .collect(),
        ),
    };
    Ok(Reply::json(
        200,
        &QueryAnswer {
            device_id: key.device_id(),
            metric_name: key.metric_name(),
            operation: op.as_str(),
            result: aggregate.result(op),
            count: aggregate.count,
            duration_ns: elapsed_ns(started),
            node: &node.config.node_id,
            buckets,
        },
    ))
}

#[derive(Serialize)]
struct SamplesAnswer<'a> {
    device_id: &'a str,
    metric_name: &'a str,
    samples: Vec<f64>,
    timestamps: Vec<f64>,
    count: usize,
    node: &'a str,
}

/// `POST /query-samples`: raw points, oldest first, at most `limit`.
pub fn query_samples(node: &Node, body: &[u8]) -> Answer {
    let fields = Fields::parse(body)?;
    let key = fields.series()?;
    if fields.optional_str("operation")?.is_some() {
        fields.operation()?;
    }
    let range = fields.time_range()?;
    let limit = fields
        .optional_u64("limit")?
        .unwrap_or(DEFAULT_SAMPLE_LIMIT);
    if !(1..=MAX_SAMPLE_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "invalid limit: must be between 1 and {MAX_SAMPLE_LIMIT}"
        )));
    }
    // `limit` is at most MAX_SAMPLE_LIMIT, which fits every usize.
    let points = node.engine.samples(&key, range, limit as usize)?;
    let (timestamps, samples): (Vec<f64>, Vec<f64>) = points
        .iter()
        .map(|(ts, v)| (ts.as_unix_seconds(), *v))
        .unzip();
    Ok(Reply::json(
        200,
        &SamplesAnswer {
            device_id: key.device_id(),
            metric_name: key.metric_name(),
            count: samples.len(),
            samples,
            timestamps,
            node: &node.config.node_id,
        },
    ))
}

#[derive(Serialize)]
struct PartialAnswer<'a> {
    sum: f64,
    count: u64,
    min: Option<f64>,
    max: Option<f64>,
    node: &'a str,
}

/// `POST /query-aggregated`: this node's partial statistics, for a coordinator to merge.
pub fn query_aggregated(node: &Node, body: &[u8]) -> Answer {
    let fields = Fields::parse(body)?;
    let key = fields.series()?;
    if fields.optional_str("operation")?.is_some() {
        fields.operation()?;
    }
    let range = fields.time_range()?;
    let aggregate = node.engine.aggregate(&key, range)?;
    Ok(Reply::json(
        200,
        &PartialAnswer {
            sum: aggregate.sum,
            count: aggregate.count,
            min: aggregate.result(AggregateOp::Min),
            max: aggregate.result(AggregateOp::Max),
            node: &node.config.node_id,
        },
    ))
}

#[derive(Serialize)]
struct DeleteAnswer<'a> {
    deleted: bool,
    device_id: &'a str,
    metric_name: &'a str,
    node: &'a str,
}

/// `POST /delete`: removes every point of one series, durably.
pub fn delete(node: &Node, body: &[u8]) -> Answer {
    let fields = Fields::parse(body)?;
    let key = fields.series()?;
    let deleted = node.engine.delete_series(&key)?;
    Ok(Reply::json(
        200,
        &DeleteAnswer {
            deleted,
            device_id: key.device_id(),
            metric_name: key.metric_name(),
            node: &node.config.node_id,
        },
    ))
}

/// `GET /devices`: every device with data, sorted.
pub fn devices(node: &Node) -> Answer {
    let devices: BTreeSet<String> = node
        .engine
        .series()
        .iter()
        .map(|k| k.device_id().to_string())
        .collect();
    Ok(Reply::json(200, &serde_json::json!({ "devices": devices })))
}

/// `GET /metrics[?device_id=X]`: every metric (of one device), sorted.
pub fn metrics(node: &Node, query: &str) -> Answer {
    let device = super::query_param(query, "device_id")?;
    let metrics: BTreeSet<String> = node
        .engine
        .series()
        .iter()
        .filter(|k| device.as_deref().is_none_or(|d| k.device_id() == d))
        .map(|k| k.metric_name().to_string())
        .collect();
    Ok(Reply::json(200, &serde_json::json!({ "metrics": metrics })))
}

/// `GET /health`: cheap liveness.
pub fn health(node: &Node) -> Answer {
    #[derive(Serialize)]
    struct Health<'a> {
        status: &'static str,
        node_id: &'a str,
    }
    Ok(Reply::json(
        200,
        &Health {
            status: "ok",
            node_id: &node.config.node_id,
        },
    ))
}

#[derive(Serialize)]
struct StatusAnswer<'a> {
    node_id: &'a str,
    mode: &'static str,
    uptime_seconds: f64,
    broker: &'static str,
    broker_error: Option<String>,
    broker_url: &'a str,
    points: u64,
    series: usize,
    segments: usize,
    disk_bytes: u64,
    wal_bytes: u64,
    memory_bytes: u64,
    points_written: u64,
    ingest_accepted: u64,
    /// Accepted readings per second, averaged over the node's uptime.
    ingest_rate: f64,
    websocket_clients: usize,
    rejected: BTreeMap<&'static str, u64>,
    /// Every member as this node sees it, itself included.
    members: Vec<MemberAnswer>,
    /// Fraction of the hash space each ring member is primary for.
    ring_share: BTreeMap<String, f64>,
    replication: usize,
}

#[derive(Serialize)]
struct MemberAnswer {
    id: String,
    http_addr: String,
    gossip_addr: String,
    state: MemberState,
    /// Milliseconds since this node last heard news of the member.
    last_heard_ms: u64,
}

/// `GET /status`: what the node holds, how ingestion goes and how it sees the cluster.
pub fn status(node: &Node) -> Answer {
    let stats = node.engine.stats();
    let uptime = node.started.elapsed().as_secs_f64();
    let accepted = node
        .ingest
        .accepted
        .load(std::sync::atomic::Ordering::Relaxed);
    let membership = node.cluster.membership();
    let heard_now = Instant::now();
    let members = membership
        .members()
        .map(|m| MemberAnswer {
            id: m.id.clone(),
            http_addr: m.http_addr.clone(),
            gossip_addr: m.gossip_addr.clone(),
            state: m.state,
            last_heard_ms: heard_now
                .saturating_duration_since(m.last_heard)
                .as_millis() as u64,
        })
        .collect();
    let (broker, broker_error) = match node.ingest.broker() {
        BrokerState::Disabled => ("disabled", None),
        BrokerState::Connecting => ("connecting", None),
        BrokerState::Connected => ("connected", None),
        BrokerState::Disconnected(e) => ("disconnected", Some(e)),
    };
    Ok(Reply::json(
        200,
        &StatusAnswer {
            node_id: &node.config.node_id,
            mode: node.config.mode.as_str(),
            uptime_seconds: uptime,
            broker,
            broker_error,
            broker_url: &node.config.broker,
            points: stats.points,
            series: stats.series,
            segments: stats.segments,
            disk_bytes: stats.disk_bytes,
            wal_bytes: stats.wal_bytes,
            memory_bytes: stats.memory_bytes,
            points_written: stats.points_written,
            ingest_accepted: accepted,
            ingest_rate: if uptime > 0.0 {
                accepted as f64 / uptime
            } else {
                0.0
            },
            websocket_clients: node.hub.stats().connected_clients,
            rejected: node.ingest.rejected().into_iter().collect(),
            members,
            ring_share: node.cluster.ring().primary_share(),
            replication: node.cluster.replication(),
        },
    ))
}

/// `POST /write` (and `/api/v2/write`): InfluxDB line protocol; 204 once durable.
pub fn write(node: &Node, query: &str, body: &[u8]) -> Answer {
    let precision = match super::query_param(query, "precision")? {
        None => Precision::default(),
        Some(p) => Precision::parse(&p)?,
    };
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("invalid body: not UTF-8 ({e})")))?;
    let points = parse_line_protocol(text, precision, now())?;
    node.engine.write(&points)?;
    node.hub.publish(&points);
    node.ingest.count_accepted(points.len() as u64);
    Ok(Reply::new(204, "text/plain", Vec::new()))
}

/// `GET /ws/stats`: the live hub's metadata.
pub fn ws_stats(node: &Node) -> Answer {
    Ok(Reply::json(200, &node.hub.stats()))
}

fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp(millis)
}

fn elapsed_ns(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_node::TestNode;
    use crate::storage::{Point, SeriesKey};
    use serde_json::Value;

    fn key(device: &str, metric: &str) -> SeriesKey {
        SeriesKey::new(device, metric).expect("valid test key")
    }

    fn seed(node: &Node) {
        let points: Vec<Point> = [(10_000, 1.0), (20_000, 2.0), (30_000, 6.0)]
            .iter()
            .map(|&(ms, v)| Point {
                series: key("s1", "temperature"),
                timestamp: Timestamp(ms),
                value: v,
            })
            .chain(std::iter::once(Point {
                series: key("s2", "humidity"),
                timestamp: Timestamp(10_000),
                value: 50.0,
            }))
            .collect();
        node.engine.write(&points).expect("seed");
    }

    fn json(answer: Answer) -> Value {
        let reply = answer.unwrap_or_else(|e| panic!("{}: {}", e.status, e.message));
        serde_json::from_slice(&reply.body).expect("JSON answer")
    }

    fn err(answer: Answer) -> (u16, String) {
        match answer {
            Ok(r) => panic!("expected an error, got {}", r.status),
            Err(e) => (e.status, e.message),
        }
    }

    fn q(node: &Node, body: &str) -> Value {
        json(query(node, body.as_bytes()))
    }

    #[test]
    fn query_answers_every_operation() {
        let t = TestNode::new("query_ops");
        seed(&t.node);
        let base = r#""device_id":"s1","metric_name":"temperature","start_time":0,"end_time":0"#;
        for (op, want) in [
            ("avg", 3.0),
            ("sum", 9.0),
            ("min", 1.0),
            ("max", 6.0),
            ("count", 3.0),
        ] {
            let v = q(&t.node, &format!(r#"{{{base},"operation":"{op}"}}"#));
            assert_eq!(v["result"], want, "{op}");
            assert_eq!(v["count"], 3);
            assert_eq!(v["operation"], op);
            assert_eq!(v["device_id"], "s1");
            assert_eq!(v["metric_name"], "temperature");
            assert_eq!(v["node"], "test");
            assert!(v["duration_ns"].is_u64());
            assert!(v.get("buckets").is_none());
        }
    }

    #[test]
    fn query_range_is_inclusive_seconds() {
        let t = TestNode::new("query_range");
        seed(&t.node);
        let v = q(
            &t.node,
            r#"{"device_id":"s1","metric_name":"temperature","operation":"sum","start_time":20,"end_time":30}"#,
        );
        assert_eq!(v["result"], 8.0);
    }

    #[test]
    fn empty_query_is_null_for_avg_and_zero_for_count() {
        let t = TestNode::new("query_empty");
        let body =
            |op: &str| format!(r#"{{"device_id":"x","metric_name":"y","operation":"{op}"}}"#);
        assert!(q(&t.node, &body("avg"))["result"].is_null());
        assert!(q(&t.node, &body("max"))["result"].is_null());
        assert_eq!(q(&t.node, &body("count"))["result"], 0.0);
        assert_eq!(q(&t.node, &body("sum"))["result"], 0.0);
    }

    #[test]
    fn query_with_step_adds_buckets() {
        let t = TestNode::new("query_step");
        seed(&t.node);
        let v = q(
            &t.node,
            r#"{"device_id":"s1","metric_name":"temperature","operation":"sum","step":20}"#,
        );
        let buckets = v["buckets"].as_array().expect("buckets");
        assert_eq!(buckets.len(), 2);
        assert_eq!(buckets[0]["start"], 0.0);
        assert_eq!(buckets[0]["result"], 1.0);
        assert_eq!(buckets[1]["start"], 20.0);
        assert_eq!(buckets[1]["result"], 8.0);
        assert_eq!(buckets[1]["count"], 2);
    }

    #[test]
    fn query_errors_name_the_field() {
        let t = TestNode::new("query_errors");
        let cases = [
            (
                r#"{"metric_name":"t","operation":"avg"}"#,
                "missing field device_id",
            ),
            (
                r#"{"device_id":"s","operation":"avg"}"#,
                "missing field metric_name",
            ),
            (
                r#"{"device_id":"s","metric_name":"t"}"#,
                "missing field operation",
            ),
            (
                r#"{"device_id":"s","metric_name":"t","operation":"median"}"#,
                "invalid operation: \"median\" is not one of avg, sum, min, max, count",
            ),
            (
                r#"{"device_id":"s","metric_name":"t","operation":"avg","start_time":5,"end_time":1}"#,
                "start_time must be <= end_time",
            ),
            (
                r#"{"device_id":"","metric_name":"t","operation":"avg"}"#,
                "invalid device_id: must not be empty",
            ),
            (
                r#"{"device_id":"s","metric_name":"t","operation":"avg","step":-1}"#,
                "invalid step: must be > 0 seconds",
            ),
            (
                r#"{"device_id":"s","metric_name":"t","operation":"avg","step":0.0001}"#,
                "invalid step: must be at least 1 ms",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                err(query(&t.node, body.as_bytes())),
                (400, want.into()),
                "{body}"
            );
        }
    }

    #[test]
    fn samples_carry_timestamps_and_respect_limit() {
        let t = TestNode::new("samples");
        seed(&t.node);
        let v = json(query_samples(
            &t.node,
            br#"{"device_id":"s1","metric_name":"temperature","limit":2}"#,
        ));
        assert_eq!(v["samples"], serde_json::json!([1.0, 2.0]));
        assert_eq!(v["timestamps"], serde_json::json!([10.0, 20.0]));
        assert_eq!(v["count"], 2);
        let (status, message) = err(query_samples(
            &t.node,
            br#"{"device_id":"s1","metric_name":"temperature","limit":0}"#,
        ));
        assert_eq!(status, 400);
        assert!(message.starts_with("invalid limit"), "{message}");
    }

    #[test]
    fn aggregated_is_partial_stats_with_null_extremes_when_empty() {
        let t = TestNode::new("aggregated");
        seed(&t.node);
        let v = json(query_aggregated(
            &t.node,
            br#"{"device_id":"s1","metric_name":"temperature"}"#,
        ));
        assert_eq!(
            (v["sum"].clone(), v["count"].clone()),
            (9.0.into(), 3.into())
        );
        assert_eq!(
            (v["min"].clone(), v["max"].clone()),
            (1.0.into(), 6.0.into())
        );
        let v = json(query_aggregated(
            &t.node,
            br#"{"device_id":"n","metric_name":"o"}"#,
        ));
        assert_eq!(v["count"], 0);
        assert!(v["min"].is_null() && v["max"].is_null());
    }

    #[test]
    fn delete_reports_whether_the_series_existed() {
        let t = TestNode::new("delete");
        seed(&t.node);
        let body = br#"{"device_id":"s1","metric_name":"temperature"}"#;
        assert_eq!(json(delete(&t.node, body))["deleted"], true);
        assert_eq!(json(delete(&t.node, body))["deleted"], false);
        assert_eq!(
            q(
                &t.node,
                r#"{"device_id":"s1","metric_name":"temperature","operation":"count"}"#
            )["result"],
            0.0
        );
    }

    #[test]
    fn devices_and_metrics_are_sorted_and_filtered() {
        let t = TestNode::new("listing");
        seed(&t.node);
        assert_eq!(
            json(devices(&t.node))["devices"],
            serde_json::json!(["s1", "s2"])
        );
        assert_eq!(
            json(metrics(&t.node, ""))["metrics"],
            serde_json::json!(["humidity", "temperature"])
        );
        assert_eq!(
            json(metrics(&t.node, "device_id=s2"))["metrics"],
            serde_json::json!(["humidity"])
        );
    }

    #[test]
    fn write_stores_line_protocol_and_counts_it() {
        let t = TestNode::new("write");
        let reply = write(
            &t.node,
            "precision=s",
            b"temperature,device_id=s9 value=4 100\ntemperature,device_id=s9 value=6 200\n",
        )
        .expect("write");
        assert_eq!(reply.status, 204);
        let v = q(
            &t.node,
            r#"{"device_id":"s9","metric_name":"temperature","operation":"avg","start_time":100,"end_time":200}"#,
        );
        assert_eq!(v["result"], 5.0);
        let status = json(status(&t.node));
        assert_eq!(status["ingest_accepted"], 2);
        assert_eq!(status["points"], 2);
        assert_eq!(status["node_id"], "test");
        assert!(status["rejected"].is_object());
    }

    #[test]
    fn bad_line_protocol_and_precision_are_bad_requests() {
        let t = TestNode::new("write_bad");
        let (status, message) = err(write(&t.node, "", b"temperature value=1"));
        assert_eq!(status, 400);
        assert!(message.starts_with("invalid line 1"), "{message}");
        let (status, message) = err(write(&t.node, "precision=fortnight", b""));
        assert_eq!(status, 400);
        assert!(message.starts_with("invalid precision"), "{message}");
        assert_eq!(err(write(&t.node, "", &[0xff, 0xfe])).0, 400);
    }
}
