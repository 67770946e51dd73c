//! One timestamp rule on every path into a real node (issue 12, item 4): 1970..2262 and at
//! most `--max_future_s` ahead of the node's clock for readings from outside (MQTT,
//! `/write`, `/api/v2/write`), the calendar range for peers' `/internal/write`. A line
//! refused over HTTP is named in a partial-write 400 and not stored (the batch's good lines
//! are, as InfluxDB does); a refused `/internal/write` stores nothing; a refused MQTT
//! reading is counted as `bad_timestamp` and dropped.

mod common;

use common::{wait_until, Broker, BrokerKind, Publisher, Server, TempDir};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

const DAY_MS: i64 = 86_400_000;

#[test]
fn http_paths_refuse_out_of_range_timestamps_naming_the_line_and_store_only_good_lines() {
    let dir = TempDir::new("timestamps-http");
    let server = Server::start("polaris", dir.path(), &["--max_future_s=3600"]);
    let now = now_ms();
    let refused = [
        // Milliseconds sent as seconds: the year ~56,000.
        (
            "/write?precision=s",
            format!("m,device_id=ts value=1 {now}"),
            "after 2262",
        ),
        (
            "/write?precision=ms",
            format!("m,device_id=ts value=1 {}\nm,device_id=ts value=2 -5", now),
            "line 2",
        ),
        (
            "/api/v2/write?precision=ms",
            format!("m,device_id=ts value=1 {}", now + DAY_MS),
            "ahead of this node's clock",
        ),
        (
            "/write",
            "m,device_id=ts value=1 -1".to_string(),
            "before 1970",
        ),
    ];
    for (path, body, needle) in &refused {
        let r = server.post(path, body);
        assert_eq!(r.status, 400, "{path} {body}: {}", r.text());
        assert!(r.text().contains(needle), "{path} {body}: {}", r.text());
        assert!(r.text().starts_with("{\"error\":"), "{}", r.text());
    }
    let internal = r#"{"points":[["ts","m",-9223372036854775808,1.0]]}"#;
    let r = server.post("/internal/write", internal);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("before 1970"), "{}", r.text());
    assert_eq!(
        server.count("ts", "m"),
        1,
        "only the good first line of the two-line batch is stored"
    );

    let r = server.post(
        "/write?precision=ms",
        &format!("m,device_id=ts value=1 {}", now + 600_000),
    );
    assert_eq!(r.status, 204, "within --max_future_s: {}", r.text());
    assert_eq!(server.count("ts", "m"), 2);
}

#[test]
fn mqtt_readings_too_far_ahead_are_counted_and_dropped() {
    let dir = TempDir::new("timestamps-mqtt");
    let broker = Broker::start(BrokerKind::Embedded).expect("the embedded broker starts");
    let server = Server::start_with_broker("polaris", dir.path(), &broker.url(), &[]);
    server.wait_subscribed(&broker);
    let now_s = now_ms() / 1000;
    let mut publisher = Publisher::connect(&broker, "timestamps");
    let reading = |ts: i64| {
        format!(
            r#"{{"device_id":"ahead","metric_name":"temperature","timestamp":{ts},"value":1.5}}"#
        )
    };
    publisher.publish("iot/sensors/temperature", reading(now_s + 3 * 86_400));
    publisher.publish("iot/sensors/temperature", reading(now_s + 3_600));
    publisher.finish(Duration::from_secs(10));
    wait_until(
        "the near reading to be stored",
        Duration::from_secs(10),
        || server.count("ahead", "temperature") == 1,
    );
    wait_until(
        "the far reading to be counted",
        Duration::from_secs(10),
        || server.status()["rejected"]["bad_timestamp"].as_u64() == Some(1),
    );
    assert!(
        server.log_text().contains("iot/sensors/temperature"),
        "logged with its topic"
    );
}
