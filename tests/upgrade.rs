//! A store written by an older build opens in this one with every reading (issue 13): the
//! committed fixture `tests/fixtures/store-v1` (version-1 WAL and segment, keys
//! `device|metric`, see its README) is copied to a temp dir as node polaris's store and
//! served by a real node; likewise `tests/fixtures/store-v2` (version-2 files: labelled keys,
//! each WAL entry with its whole key).

mod common;

use common::{Server, TempDir};
use std::path::Path;

/// The fixture's point `i` (see tests/fixtures/README.md).
fn value(i: usize) -> f64 {
    20.0 + (i as f64 * 0.37).sin() * 3.0
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A node polaris serving a copy of `tests/fixtures/<name>` as its store (the copy lives
/// as long as the returned dir).
fn serve_fixture(name: &str) -> (TempDir, Server) {
    let dir = TempDir::new(&format!("upgrade-{name}"));
    let data = dir.path().join("data");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
        &data.join("polaris"),
    );
    let server = Server::start("polaris", &data, &[]);
    (dir, server)
}

/// When the readings each test writes after opening a fixture are stamped (ms).
const NEW_AT: i64 = 1_700_000_000_000 + 200_000;

/// Checks that opening the fixture quarantined nothing, writes `lines` (ms precision),
/// kills the node with SIGKILL and starts it again on the same store.
fn write_then_kill9(server: &mut Server, lines: &str) {
    let status = server.status();
    assert_eq!(status["quarantined"], serde_json::json!([]), "{status}");
    let r = server.post("/write?precision=ms", lines);
    assert_eq!(r.status, 204, "{}", r.text());
    server.kill9();
    server.restart();
}

fn assert_series(server: &Server, device: &str, metric: &str, points: std::ops::Range<usize>) {
    let (count, _) = server.query(device, metric, "count");
    assert_eq!(count, points.len() as u64, "{device}/{metric} count");
    let (_, sum) = server.query(device, metric, "sum");
    let expected: f64 = points.map(value).sum();
    let sum = sum.as_f64().expect("sum is a number");
    assert!(
        (sum - expected).abs() < 1e-9,
        "{device}/{metric} sum {sum} != {expected}"
    );
}

#[test]
fn a_version_1_store_opens_with_every_reading_and_takes_new_ones() {
    let (_dir, mut server) = serve_fixture("store-v1");
    assert_series(&server, "sensor_1", "temperature", 0..120);
    assert_series(&server, "sensor_2", "humidity", 0..50);
    assert_series(&server, "sensor_3", "pressure", 0..10);
    let devices = server.get("/devices").json();
    assert_eq!(
        devices["devices"],
        serde_json::json!(["sensor_1", "sensor_2", "sensor_3"]),
        "deleted series stay deleted"
    );
    // New readings (current-format files beside the version-1 ones) and a kill -9: both
    // kinds replay together.
    let ts = NEW_AT;
    write_then_kill9(
        &mut server,
        &format!(
            "temperature,device_id=sensor_1 value=1.5 {ts}\n\
             temperature,device_id=sensor_1,room=lab value=7 {ts}\n\
             pressure,device_id=sensor_4 value=2 {ts}"
        ),
    );
    // The device's query selects the labelled series too; a label names it alone.
    assert_eq!(server.count("sensor_1", "temperature"), 122);
    let lab = server
        .post(
            "/query",
            r#"{"device_id":"sensor_1","metric_name":"temperature","labels":{"room":"lab"},"operation":"sum"}"#,
        )
        .json();
    assert_eq!(
        (lab["count"].clone(), lab["result"].clone()),
        (1.into(), 7.0.into()),
        "{lab}"
    );
    assert_eq!(server.count("sensor_4", "pressure"), 1);
    assert_series(&server, "sensor_2", "humidity", 0..50);
}

/// `/query` of `labels` (exact matches) on `metric`: (count, sum).
fn labelled(server: &Server, metric: &str, labels: serde_json::Value) -> (u64, f64) {
    let body = serde_json::json!({
        "metric_name": metric, "labels": labels, "operation": "sum",
        "start_time": 0, "end_time": 0,
    });
    let answer = server.post("/query", &body.to_string()).json();
    let count = answer["count"].as_u64().unwrap_or(0);
    (count, answer["result"].as_f64().unwrap_or(f64::NAN))
}

fn sum_of(points: std::ops::Range<usize>) -> f64 {
    points.map(value).sum()
}

#[test]
fn a_version_2_store_opens_with_every_labelled_reading() {
    let (_dir, mut server) = serve_fixture("store-v2");
    let check = |server: &Server, metric: &str, labels, points: std::ops::Range<usize>| {
        let (count, sum) = labelled(server, metric, labels);
        assert_eq!(count, points.len() as u64, "{metric} count");
        assert!((sum - sum_of(points)).abs() < 1e-9, "{metric} sum {sum}");
    };
    let assert_every_series = |server: &Server| {
        check(
            server,
            "temperature",
            serde_json::json!({"device_id": "sensor_1", "room": "lab"}),
            0..120,
        );
        check(
            server,
            "temperature",
            serde_json::json!({"device_id": "sensor_1", "room": "kitchen"}),
            0..50,
        );
        check(
            server,
            "cpu_usage_idle",
            serde_json::json!({"host": "a"}),
            0..10,
        );
        for gone in ["gone", "gone_too"] {
            assert_eq!(labelled(server, gone, serde_json::json!({})).0, 0, "{gone}");
        }
    };
    assert_every_series(&server);
    // Version-3 files (series numbered) beside the version-2 ones, and a kill -9.
    let ts = NEW_AT;
    write_then_kill9(
        &mut server,
        &format!(
            "temperature,device_id=sensor_1,room=lab value=1.5 {ts}\n\
             temperature,device_id=sensor_1,room=lab value=2.5 {}",
            ts + 1000
        ),
    );
    let (count, sum) = labelled(
        &server,
        "temperature",
        serde_json::json!({"device_id": "sensor_1", "room": "lab"}),
    );
    assert_eq!(count, 122);
    assert!((sum - sum_of(0..120) - 4.0).abs() < 1e-9, "{sum}");
    check(
        &server,
        "temperature",
        serde_json::json!({"device_id": "sensor_1", "room": "kitchen"}),
        0..50,
    );
}
