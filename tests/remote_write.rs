//! `POST /api/v1/write` (Prometheus remote write 1.0, issue 14) against a real node: a
//! hand-built snappy protobuf body is stored series by series with exact counts, refused
//! series are named in a 400 while the good ones are stored, a bad body is a 400; and a real
//! Prometheus (Debian's `prometheus`, skipped where not installed) pushes its own scrapes
//! into the node, labels and all.

mod common;

use common::prometheus::{self, Prometheus};
use common::{try_request, wait_until, Response, Server, TempDir};
use minitrue::ingest::remote_write::{TimeSeries, WriteRequest, STALE_NAN_BITS};
use prost::Message;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch, now.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .expect("clock after 1970")
}

/// Posts `body` to `/api/v1/write` with the headers Prometheus sends.
fn post_raw(server: &Server, body: &[u8]) -> Response {
    let headers = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ];
    try_request(server.port, "POST", "/api/v1/write", body, &headers).expect("POST /api/v1/write")
}

/// Posts `timeseries` as a remote write request: protobuf, then raw snappy.
fn push(server: &Server, timeseries: Vec<TimeSeries>) -> Response {
    let body = snap::raw::Encoder::new()
        .compress_vec(&WriteRequest { timeseries }.encode_to_vec())
        .expect("snappy");
    post_raw(server, &body)
}

/// `POST /query` `count` over all time of the series of `metric` carrying `labels`:
/// `(count, series merged)`.
fn count(server: &Server, metric: &str, labels: Value) -> (u64, u64) {
    let body = json!({"metric_name": metric, "labels": labels, "operation": "count"});
    let r = server.post("/query", &body.to_string());
    assert_eq!(r.status, 200, "/query {body}: {}", r.text());
    let v = r.json();
    (
        v["count"].as_u64().expect("count"),
        v["series"].as_u64().expect("series"),
    )
}

/// The value of the sample `name` (with its labels, as exposed) in `/debug/metrics`.
fn debug_metric(server: &Server, name: &str) -> Option<f64> {
    let text = server.get("/debug/metrics").text();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn series_differing_in_one_label_are_stored_apart_with_exact_counts() {
    let dir = TempDir::new("remote_write");
    let server = Server::start("rw1", dir.path(), &[]);
    let t = now_ms() - 60_000;
    let stale = f64::from_bits(STALE_NAN_BITS);
    let lab: Vec<(i64, f64)> = (0..3).map(|i| (t + i * 1000, 20.0 + i as f64)).collect();
    let mut kitchen: Vec<(i64, f64)> = (0..5).map(|i| (t + i * 1000, 30.0)).collect();
    kitchen.push((t + 5000, stale));
    let r = push(
        &server,
        vec![
            TimeSeries::new(
                &[("__name__", "room_temp"), ("job", "home"), ("room", "lab")],
                &lab,
            ),
            TimeSeries::new(
                &[
                    ("room", "kitchen"),
                    ("__name__", "room_temp"),
                    ("job", "home"),
                ],
                &kitchen,
            ),
        ],
    );
    assert_eq!(r.status, 204, "{}", r.text());

    assert_eq!(count(&server, "room_temp", json!({"room": "lab"})), (3, 1));
    assert_eq!(
        count(&server, "room_temp", json!({"room": "kitchen"})),
        (5, 1)
    );
    assert_eq!(count(&server, "room_temp", json!({"job": "home"})), (8, 2));
    assert_eq!(
        debug_metric(
            &server,
            r#"minitrue_ingest_accepted_total{source="remote_write"}"#
        ),
        Some(8.0)
    );
    assert_eq!(
        debug_metric(&server, "minitrue_remote_write_stale_markers_total"),
        Some(1.0)
    );
}

#[test]
fn refused_series_are_named_and_the_good_ones_stored() {
    let dir = TempDir::new("remote_write_refused");
    let server = Server::start("rw2", dir.path(), &[]);
    let t = now_ms() - 1000;
    let r = push(
        &server,
        vec![
            TimeSeries::new(&[("job", "nameless")], &[(t, 1.0), (t + 1, 2.0)]),
            TimeSeries::new(&[("__name__", "up"), ("job", "ok")], &[(t, 1.0)]),
            TimeSeries::new(&[("__name__", "up"), ("__meta_x", "y")], &[(t, 1.0)]),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let error = r.json()["error"].as_str().expect("error").to_string();
    assert!(
        error.starts_with(
            "remote write: 2 of 3 series not stored, 0 stored in part, 1 samples written"
        ),
        "{error}"
    );
    assert!(
        error.contains(r#"series {job="nameless"}: no __name__ label"#),
        "{error}"
    );
    assert!(error.contains("__meta_x"), "{error}");
    assert_eq!(count(&server, "up", json!({"job": "ok"})), (1, 1));
    assert_eq!(
        debug_metric(
            &server,
            r#"minitrue_ingest_rejected_total{reason="missing_field"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        debug_metric(
            &server,
            r#"minitrue_ingest_rejected_total{reason="bad_label"}"#
        ),
        Some(1.0)
    );

    let r = post_raw(&server, b"\xff\xff\xff\xff\xff\xffnot snappy");
    assert_eq!(r.status, 400, "{}", r.text());
    let error = r.json()["error"].as_str().expect("error").to_string();
    assert!(error.contains("not raw snappy"), "{error}");
    let not_protobuf = snap::raw::Encoder::new()
        .compress_vec(b"\x0a\xffnot protobuf")
        .expect("snappy");
    let r = post_raw(&server, &not_protobuf);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("WriteRequest"), "{}", r.text());
    let r = server.get("/api/v1/write");
    assert_eq!(r.status, 405, "{}", r.text());
}

#[test]
fn a_real_prometheus_pushes_its_scrapes_into_the_node() {
    if !prometheus::installed() {
        return;
    }
    let dir = TempDir::new("remote_write_prometheus");
    let server = Server::start("rw3", dir.path(), &[]);
    let node = server.port;
    let prometheus = Prometheus::start(dir.path(), |port| {
        format!(
            "global:\n  scrape_interval: 1s\n\
             scrape_configs:\n\
             \x20 - job_name: prometheus\n\
             \x20   static_configs:\n\
             \x20     - targets: ['127.0.0.1:{port}']\n\
             \x20 - job_name: minitrue\n\
             \x20   metrics_path: /debug/metrics\n\
             \x20   static_configs:\n\
             \x20     - targets: ['127.0.0.1:{node}']\n\
             remote_write:\n\
             \x20 - url: http://127.0.0.1:{node}/api/v1/write\n\
             \x20   queue_config:\n\
             \x20     batch_send_deadline: 1s\n"
        )
    });
    let instance = format!("127.0.0.1:{}", prometheus.port);
    let up = |job: &str, instance: &str| {
        count(&server, "up", json!({"job": job, "instance": instance})).0
    };
    wait_until(
        "Prometheus's scrapes (up{job=\"prometheus\"}) to reach the node",
        Duration::from_secs(60),
        || up("prometheus", &instance) >= 2,
    );
    assert!(up("minitrue", &format!("127.0.0.1:{node}")) >= 1);
    // Prometheus's own series arrive with their labels (a histogram's `le` among them).
    wait_until(
        "Prometheus's histogram buckets to reach the node",
        Duration::from_secs(30),
        || {
            let (buckets, series) = count(
                &server,
                "prometheus_http_request_duration_seconds_bucket",
                json!({"job": "prometheus", "instance": instance}),
            );
            buckets > 0 && series > 1
        },
    );
    // Everything Prometheus sent was taken: no 4xx for it to log, nothing rejected but
    // the NaNs of summaries without observations.
    let status = server.status();
    for (reason, n) in status["rejected"].as_object().expect("rejected") {
        if reason != "non_finite_value" {
            assert_eq!(
                n.as_u64(),
                Some(0),
                "rejected {reason}: {}",
                prometheus.log_text()
            );
        }
    }
    assert!(
        !prometheus.log_text().contains("non-recoverable error"),
        "{}",
        prometheus.log_text()
    );
    assert!(debug_metric(
        &server,
        r#"minitrue_ingest_accepted_total{source="remote_write"}"#
    )
    .is_some_and(|n| n > 0.0));
}
