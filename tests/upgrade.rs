//! A store written by an older build opens in this one with every reading (issue 13): the
//! committed fixture `tests/fixtures/store-v1` (version-1 WAL and segment, keys
//! `device|metric`, see its README) is copied to a temp dir as node polaris's store and
//! served by a real node.

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
    let dir = TempDir::new("upgrade-v1");
    let data = dir.path().join("data");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1"),
        &data.join("polaris"),
    );
    let mut server = Server::start("polaris", &data, &[]);
    assert_series(&server, "sensor_1", "temperature", 0..120);
    assert_series(&server, "sensor_2", "humidity", 0..50);
    assert_series(&server, "sensor_3", "pressure", 0..10);
    let devices = server.get("/devices").json();
    assert_eq!(
        devices["devices"],
        serde_json::json!(["sensor_1", "sensor_2", "sensor_3"]),
        "deleted series stay deleted"
    );
    let status = server.status();
    assert_eq!(status["quarantined"], serde_json::json!([]), "{status}");

    // New readings (version-2 files beside the version-1 ones) and a kill -9: both kinds
    // replay together.
    let ts = 1_700_000_000_000i64 + 200_000;
    let r = server.post(
        "/write?precision=ms",
        &format!(
            "temperature,device_id=sensor_1 value=1.5 {ts}\n\
             temperature,device_id=sensor_1,room=lab value=7 {ts}\n\
             pressure,device_id=sensor_4 value=2 {ts}"
        ),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    server.kill9();
    server.restart();
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
