//! MQTT ingestion end to end, against both brokers: a real broker (the embedded
//! `minitrue-broker`, and Mosquitto when installed), a real `minitrue-server`, a real rumqttc
//! publisher. What the node stored is read over its HTTP API (`POST /query` counts and
//! averages, `GET /status` counters), so counts and values are checked exactly while it runs.
//!
//! Each behaviour is one function taking the broker kind, called by two `#[test]`s. Without
//! `mosquitto` installed the Mosquitto variants print why and pass.

mod common;

use common::{
    wait_until, Broker, BrokerKind, Publisher, Server, TempDir, PROBE_DEVICE, PROBE_METRIC,
};
use minitrue::ingest::{MAX_PAYLOAD_BYTES, MAX_READINGS_PER_MESSAGE};
use serde_json::{json, Value};
use std::ops::Range;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

const TOPIC: &str = "iot/sensors/temperature";
const METRIC: &str = "temperature";
const BASE_SECONDS: i64 = 1_710_000_000;
const DEVICES: usize = 10;
const NODE: &str = "m1";

/// Longest a test waits for the node to store what was published.
const INGEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a publisher waits for its PUBACKs.
const PUBACK_TIMEOUT: Duration = Duration::from_secs(30);

// ---- readings --------------------------------------------------------------------------------

/// Reading `i`: device `dev{i % 10}`, one second apart, values multiples of 0.5 (so every
/// sum, and so every average, is exact in f64 whatever the order of addition).
fn reading(i: usize) -> (String, i64, f64) {
    (
        format!("dev{}", i % DEVICES),
        BASE_SECONDS + i as i64,
        i as f64 * 0.5 - 100.0,
    )
}

fn reading_payload(i: usize) -> String {
    let (device, seconds, value) = reading(i);
    format!(
        r#"{{"device_id":"{device}","metric_name":"{METRIC}","timestamp":{seconds},"value":{value:?}}}"#
    )
}

/// Readings of `range` the node holds, summed over the devices (each device queried over
/// the range's timestamps).
fn stored_count(server: &Server, range: &Range<usize>) -> u64 {
    (0..DEVICES)
        .map(|d| {
            let (device, _, _) = reading(d);
            server
                .query_range(
                    &device,
                    METRIC,
                    "count",
                    BASE_SECONDS + range.start as i64,
                    BASE_SECONDS + range.end as i64 - 1,
                )
                .0
        })
        .sum()
}

/// Asserts that the node holds every reading of `range` exactly once: per device the exact
/// count and the exact average of the values published.
fn assert_stored_exactly(server: &Server, range: &Range<usize>, what: &str) {
    for d in 0..DEVICES {
        let (device, _, _) = reading(d);
        let values: Vec<f64> = range
            .clone()
            .filter(|i| i % DEVICES == d)
            .map(|i| reading(i).2)
            .collect();
        let (count, avg) = server.query_range(
            &device,
            METRIC,
            "avg",
            BASE_SECONDS + range.start as i64,
            BASE_SECONDS + range.end as i64 - 1,
        );
        assert_eq!(
            count,
            values.len() as u64,
            "{what}: {device} holds {count} readings of {range:?}, published {}",
            values.len()
        );
        let want = values.iter().sum::<f64>() / values.len() as f64;
        assert_eq!(
            avg,
            json!(want),
            "{what}: average of {device} over {range:?}"
        );
    }
}

/// Starts the broker of `kind` (`None`: Mosquitto not installed) and a node ingesting from
/// it, subscribed.
fn start(kind: BrokerKind, dir: &TempDir) -> Option<(Broker, Server)> {
    let broker = Broker::start(kind)?;
    let server = Server::start_with_broker(NODE, dir.path(), &broker.url(), &[]);
    server.wait_subscribed(&broker);
    Some((broker, server))
}

/// `/status` `rejected` as a map of the non-zero counts.
fn rejected(status: &Value) -> Vec<(String, u64)> {
    status["rejected"]
        .as_object()
        .expect("rejected is an object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("reject count")))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn broker_state(server: &Server) -> String {
    server.status()["broker"]
        .as_str()
        .expect("broker state is a string")
        .to_string()
}

/// Publishes readings `range` from a thread, `per_burst` at a time with a pause between
/// bursts, so that the node is still ingesting while a test breaks something. `published`
/// counts the publishes queued so far. The thread returns the publisher, not finished.
fn publish_paced(
    mut publisher: Publisher,
    range: Range<usize>,
    per_burst: usize,
    published: Arc<AtomicUsize>,
) -> thread::JoinHandle<Publisher> {
    thread::spawn(move || {
        for i in range {
            publisher.publish(TOPIC, reading_payload(i));
            published.fetch_add(1, Ordering::Relaxed);
            if i % per_burst == per_burst - 1 {
                thread::sleep(Duration::from_millis(20));
            }
        }
        publisher
    })
}

// ---- behaviours ------------------------------------------------------------------------------

/// 2000 QoS 1 readings: every one stored once with its value, and counted as accepted.
fn qos1_readings_are_stored_exactly_once(kind: BrokerKind) {
    const TOTAL: usize = 2000;
    let dir = TempDir::new("exact");
    let Some((broker, server)) = start(kind, &dir) else {
        return;
    };
    let mut publisher = Publisher::connect(&broker, "test-exact");
    for i in 0..TOTAL {
        publisher.publish(TOPIC, reading_payload(i));
    }
    publisher.finish(PUBACK_TIMEOUT);

    let all = 0..TOTAL;
    wait_until("2000 readings stored", INGEST_TIMEOUT, || {
        stored_count(&server, &all) >= TOTAL as u64
    });
    assert_stored_exactly(&server, &all, &format!("{kind:?}"));
    let probes = server.count(PROBE_DEVICE, PROBE_METRIC);
    let status = server.status();
    assert_eq!(
        status["ingest_accepted"],
        json!(TOTAL as u64 + probes),
        "{kind:?}: {TOTAL} readings + {probes} probes accepted: {status}"
    );
    assert_eq!(status["points"], json!(TOTAL as u64 + probes), "{status}");
    assert_eq!(rejected(&status), vec![], "{status}");
}

/// Bad payloads between good ones: each counted under its reason, the good ones all
/// stored, and the receive loop still running after a burst of nothing but bad ones.
fn bad_payloads_are_counted_per_reason_and_skipped(kind: BrokerKind) {
    let dir = TempDir::new("bad");
    let Some((broker, server)) = start(kind, &dir) else {
        return;
    };
    let oversize = format!(
        r#"{{"device_id":"dev0","metric_name":"{METRIC}","timestamp":{BASE_SECONDS},"value":1,"pad":"{}"}}"#,
        "x".repeat(MAX_PAYLOAD_BYTES)
    );
    let mut bad = vec![
        ("not_json", "not json at all".to_string()),
        (
            "missing_field",
            r#"{"metric_name":"temperature","timestamp":1710000000,"value":1}"#.to_string(),
        ),
        (
            "wrong_type",
            r#"{"device_id":"dev0","timestamp":1710000000,"value":"23.5"}"#.to_string(),
        ),
        (
            "non_finite_value",
            r#"{"device_id":"dev0","timestamp":1710000000,"value":1e400}"#.to_string(),
        ),
        (
            "invalid_id",
            r#"{"device_id":"dev|0","timestamp":1710000000,"value":1}"#.to_string(),
        ),
    ];
    // The embedded broker refuses payloads over 64 KiB itself: only Mosquitto passes on
    // one over the node's 1 MiB limit, or 10 001 readings.
    if kind == BrokerKind::Mosquitto {
        bad.push(("oversize", oversize));
        bad.push((
            "too_many_readings",
            format!(
                "[{}]",
                vec![r#"{"device_id":"dev0","a":1}"#; MAX_READINGS_PER_MESSAGE + 1].join(",")
            ),
        ));
    }
    const ROUNDS: u64 = 3;
    const BURST: u64 = 50;
    let mut publisher = Publisher::connect(&broker, "test-bad");
    let mut good = 0;
    for round in 0..ROUNDS {
        for (_, payload) in &bad {
            publisher.publish(TOPIC, reading_payload(good));
            good += 1;
            publisher.publish(TOPIC, payload.clone());
        }
        if round == 1 {
            for _ in 0..BURST {
                publisher.publish(TOPIC, "{");
            }
        }
    }
    // The loop keeps going after all that: this one is stored too.
    publisher.publish(TOPIC, reading_payload(good));
    good += 1;
    publisher.finish(PUBACK_TIMEOUT);

    let bad_total = ROUNDS * bad.len() as u64 + BURST;
    wait_until("every message handled", INGEST_TIMEOUT, || {
        let status = server.status();
        let rejects: u64 = rejected(&status).iter().map(|(_, n)| n).sum();
        rejects >= bad_total && stored_count(&server, &(0..good)) >= good as u64
    });
    assert_stored_exactly(&server, &(0..good), &format!("{kind:?}"));
    let status = server.status();
    let mut want: Vec<(String, u64)> = bad
        .iter()
        .map(|(reason, _)| {
            let extra = if *reason == "not_json" { BURST } else { 0 };
            (reason.to_string(), ROUNDS + extra)
        })
        .collect();
    want.sort();
    assert_eq!(rejected(&status), want, "{kind:?}: {status}");
    let probes = server.count(PROBE_DEVICE, PROBE_METRIC);
    assert_eq!(
        status["ingest_accepted"],
        json!(good as u64 + probes),
        "{status}"
    );
}

/// The node is SIGKILLed while readings stream in and started again with the same node id
/// and data directory: its persistent session brings every reading it had not acknowledged,
/// and every published reading ends up stored exactly once.
fn node_killed_mid_ingestion_stores_everything_once(kind: BrokerKind) {
    const TOTAL: usize = 4000;
    let dir = TempDir::new("crash");
    let Some((broker, mut server)) = start(kind, &dir) else {
        return;
    };
    let published = Arc::new(AtomicUsize::new(0));
    let publishing = publish_paced(
        Publisher::connect(&broker, "test-crash"),
        0..TOTAL,
        100,
        published.clone(),
    );
    let mut accepted_before_kill = 0;
    wait_until("500 readings accepted", INGEST_TIMEOUT, || {
        accepted_before_kill = server.ingest_accepted();
        accepted_before_kill >= 500
    });
    server.kill9();
    let at_kill = published.load(Ordering::Relaxed);
    assert!(at_kill < TOTAL, "the kill came after the last publish");
    thread::sleep(Duration::from_millis(200));
    server.restart();
    println!(
        "{kind:?}: killed after {at_kill} publishes; {} stored at the restart",
        stored_count(&server, &(0..TOTAL))
    );
    publishing
        .join()
        .expect("publisher thread")
        .finish(PUBACK_TIMEOUT);

    let all = 0..TOTAL;
    wait_until(
        &format!("{kind:?}: {TOTAL} readings stored after the restart"),
        INGEST_TIMEOUT,
        || stored_count(&server, &all) >= TOTAL as u64,
    );
    // Redeliveries still in flight must not add anything.
    thread::sleep(Duration::from_millis(300));
    assert_stored_exactly(
        &server,
        &all,
        &format!("{kind:?} after kill -9 at {at_kill}"),
    );
    let probes = server.count(PROBE_DEVICE, PROBE_METRIC);
    // At least this many were delivered twice (stored before the kill, not yet acked); the
    // first process also accepted the probes.
    let redelivered =
        (accepted_before_kill + server.ingest_accepted()).saturating_sub(TOTAL as u64 + probes);
    println!("{kind:?}: at least {redelivered} readings redelivered after the restart");
    assert_eq!(
        server.status()["points"],
        json!(TOTAL as u64 + probes),
        "{kind:?}: points"
    );
}

/// The broker goes away while readings stream in and comes back on the same port. What
/// can be promised depends on what the broker keeps across a restart; see the two cases.
fn broker_restarts_during_ingestion(kind: BrokerKind) {
    match kind {
        BrokerKind::Mosquitto => mosquitto_restart_loses_no_acknowledged_reading(),
        BrokerKind::Embedded => embedded_broker_restart_node_resubscribes(),
    }
}

/// Mosquitto with persistence is stopped (SIGTERM) while readings stream in and started
/// again on the same port: it saved the node's session and the messages queued for it, and
/// the publisher's persistent session resends what it had no PUBACK for. So every published
/// reading is stored, exactly once.
fn mosquitto_restart_loses_no_acknowledged_reading() {
    const TOTAL: usize = 3000;
    let dir = TempDir::new("mosquitto-restart");
    let Some(mut broker) = Broker::start_mosquitto_persistent() else {
        return;
    };
    let server = Server::start_with_broker(NODE, dir.path(), &broker.url(), &[]);
    server.wait_subscribed(&broker);
    let published = Arc::new(AtomicUsize::new(0));
    let publishing = publish_paced(
        Publisher::connect_persistent(&broker, "test-broker-restart"),
        0..TOTAL,
        100,
        published.clone(),
    );
    wait_until("500 readings accepted", INGEST_TIMEOUT, || {
        server.ingest_accepted() >= 500
    });
    broker.stop();
    let at_stop = published.load(Ordering::Relaxed);
    println!(
        "mosquitto stopped after {at_stop} publishes, {} stored",
        stored_count(&server, &(0..TOTAL))
    );
    wait_until("the node to see the broker gone", INGEST_TIMEOUT, || {
        broker_state(&server) != "connected"
    });
    broker.restart();
    wait_until("the node to reconnect", INGEST_TIMEOUT, || {
        broker_state(&server) == "connected"
    });
    let publisher = publishing.join().expect("publisher thread");
    assert!(
        publisher.connection_errors() > 0,
        "the publisher never saw the broker go"
    );
    publisher.finish(PUBACK_TIMEOUT);
    assert!(at_stop < TOTAL, "the stop came after the last publish");

    let all = 0..TOTAL;
    wait_until(
        &format!("{TOTAL} readings stored across the broker restart"),
        INGEST_TIMEOUT,
        || stored_count(&server, &all) >= TOTAL as u64,
    );
    thread::sleep(Duration::from_millis(300));
    assert_stored_exactly(&server, &all, &format!("broker stopped at {at_stop}"));
}

/// The embedded broker keeps sessions and queues in memory only, so a restart forgets the
/// node's session and whatever it held for it, and the publisher's unacknowledged messages
/// (rumqttc drops them when the new CONNACK says the session is gone). What must hold: the
/// node notices the broker go and come back, subscribes again on its own, and every reading
/// published after that is stored; of those published before, none is stored twice.
fn embedded_broker_restart_node_resubscribes() {
    const BEFORE: Range<usize> = 0..2000;
    const AFTER: Range<usize> = 100_000..101_000;
    let dir = TempDir::new("embedded-restart");
    let Some((mut broker, server)) = start(BrokerKind::Embedded, &dir) else {
        return;
    };
    let published = Arc::new(AtomicUsize::new(0));
    let publishing = publish_paced(
        Publisher::connect(&broker, "test-before"),
        BEFORE,
        100,
        published.clone(),
    );
    wait_until("300 readings accepted", INGEST_TIMEOUT, || {
        server.ingest_accepted() >= 300
    });
    broker.kill();
    wait_until("the node to see the broker gone", INGEST_TIMEOUT, || {
        broker_state(&server) == "disconnected"
    });
    broker.restart();
    wait_until("the node to reconnect", INGEST_TIMEOUT, || {
        broker_state(&server) == "connected"
    });
    // The new broker knows no subscription until the node makes it again.
    server.wait_subscribed(&broker);
    // Not finished: PUBACKs for what the dead broker took are never coming.
    drop(publishing.join().expect("publisher thread"));

    let mut publisher = Publisher::connect(&broker, "test-after");
    for i in AFTER {
        publisher.publish(TOPIC, reading_payload(i));
    }
    publisher.finish(PUBACK_TIMEOUT);
    wait_until(
        "every reading published after the restart stored",
        INGEST_TIMEOUT,
        || stored_count(&server, &AFTER) >= AFTER.len() as u64,
    );
    assert_stored_exactly(&server, &AFTER, "after the broker restart");
    let before = stored_count(&server, &BEFORE);
    println!("embedded restart: {before} of {} stored", BEFORE.len());
    assert!(
        before >= 300 && before <= BEFORE.len() as u64,
        "{before} of the readings published before the restart stored"
    );
}

/// A payload without `metric_name` takes the topic's last level; one with it keeps its own.
fn metric_comes_from_the_topic_when_missing(kind: BrokerKind) {
    let dir = TempDir::new("topic");
    let Some((broker, server)) = start(kind, &dir) else {
        return;
    };
    let mut publisher = Publisher::connect(&broker, "test-topic");
    publisher.publish(
        "iot/sensors/humidity",
        r#"{"device_id":"s1","timestamp":1710000000,"value":41.5}"#,
    );
    publisher.publish(
        "iot/sensors/humidity",
        r#"{"device_id":"s1","metric_name":"pressure","timestamp":1710000001,"value":1013.25}"#,
    );
    publisher.finish(PUBACK_TIMEOUT);
    wait_until("both readings stored", INGEST_TIMEOUT, || {
        server.count("s1", "humidity") + server.count("s1", "pressure") >= 2
    });
    assert_eq!(
        server.query("s1", "humidity", "avg"),
        (1, json!(41.5)),
        "{kind:?}"
    );
    assert_eq!(
        server.query("s1", "pressure", "avg"),
        (1, json!(1013.25)),
        "{kind:?}"
    );
    assert_eq!(
        server.get("/metrics?device_id=s1").json()["metrics"],
        json!(["humidity", "pressure"]),
        "{kind:?}"
    );
}

/// An array of readings and a multi-field object, one message each: every reading stored,
/// counted exactly. The multi-field message goes through `mosquitto_pub` when installed.
fn array_and_multi_field_payloads_are_stored_exactly(kind: BrokerKind) {
    const ELEMENTS: usize = 300;
    let dir = TempDir::new("shapes");
    let Some((broker, server)) = start(kind, &dir) else {
        return;
    };
    let array: Vec<Value> = (0..ELEMENTS)
        .map(|i| {
            json!({"device_id": "arr", "metric_name": METRIC,
                   "timestamp": BASE_SECONDS + i as i64, "value": i as f64})
        })
        .collect();
    let mut publisher = Publisher::connect(&broker, "test-shapes");
    publisher.publish(TOPIC, Value::Array(array).to_string());
    let multi = format!(
        r#"{{"device_id":"multi","timestamp":{BASE_SECONDS},"temperature":21.5,"humidity":40,"door_open":true,"room":"lab"}}"#
    );
    if !mosquitto_pub(broker.port, "iot/sensors/env", &multi) {
        publisher.publish("iot/sensors/env", multi);
    }
    publisher.finish(PUBACK_TIMEOUT);
    wait_until(
        "the array and the multi-field readings",
        INGEST_TIMEOUT,
        || {
            server.count("arr", METRIC) >= ELEMENTS as u64
                && server.count("multi", "door_open") >= 1
        },
    );
    let want_avg = (0..ELEMENTS).sum::<usize>() as f64 / ELEMENTS as f64;
    assert_eq!(
        server.query("arr", METRIC, "avg"),
        (ELEMENTS as u64, json!(want_avg)),
        "{kind:?}"
    );
    assert_eq!(
        server.query("multi", "temperature", "avg"),
        (1, json!(21.5))
    );
    assert_eq!(server.query("multi", "humidity", "avg"), (1, json!(40.0)));
    assert_eq!(server.query("multi", "door_open", "avg"), (1, json!(1.0)));
    assert_eq!(
        server.get("/metrics?device_id=multi").json()["metrics"],
        json!(["door_open", "humidity", "temperature"]),
        "{kind:?}: the string field is not a metric, the topic's `env` neither"
    );
    let status = server.status();
    let probes = server.count(PROBE_DEVICE, PROBE_METRIC);
    assert_eq!(
        status["ingest_accepted"],
        json!(ELEMENTS as u64 + 3 + probes),
        "{status}"
    );
    assert_eq!(rejected(&status), vec![], "{status}");
}

/// A millisecond timestamp and RFC 3339 ones land on the second they name.
fn millisecond_and_rfc3339_timestamps_land_on_their_second(kind: BrokerKind) {
    let dir = TempDir::new("stamps");
    let Some((broker, server)) = start(kind, &dir) else {
        return;
    };
    let mut publisher = Publisher::connect(&broker, "test-stamps");
    // 2026-12-03T10:00:00Z is 1796292000.
    for (device, stamp) in [
        ("ms", "1796292000250".to_string()),
        ("rfc", r#""2026-12-03T10:00:00Z""#.to_string()),
        ("offset", r#""2026-12-03T11:00:00.5+01:00""#.to_string()),
    ] {
        publisher.publish(
            TOPIC,
            format!(r#"{{"device_id":"{device}","timestamp":{stamp},"value":7}}"#),
        );
    }
    publisher.finish(PUBACK_TIMEOUT);
    wait_until("three stamped readings", INGEST_TIMEOUT, || {
        ["ms", "rfc", "offset"]
            .iter()
            .all(|d| server.count(d, METRIC) == 1)
    });
    for device in ["ms", "rfc", "offset"] {
        let at = 1_796_292_000;
        // Query bounds are inclusive seconds: [at, at + 1] holds it, [at + 1, ∞) and
        // (0, at - 1] do not, so it lies within the second 10:00:00.
        assert_eq!(
            server.query_range(device, METRIC, "count", at, at + 1).0,
            1,
            "{kind:?}: {device} is not near 2026-12-03T10:00:00Z"
        );
        assert_eq!(
            server.query_range(device, METRIC, "count", at + 1, 0).0,
            0,
            "{kind:?}: {device} is after 2026-12-03T10:00:00Z"
        );
        assert_eq!(
            server.query_range(device, METRIC, "count", 1, at - 1).0,
            0,
            "{kind:?}: {device} is before 2026-12-03T10:00:00Z"
        );
    }
}

/// `--topic iot/{device_id}/{metric}`: the topic names the device and the metric; a
/// payload naming another device is refused.
fn device_topic_layout_fills_in_the_device(kind: BrokerKind) {
    let dir = TempDir::new("layout");
    let Some(broker) = Broker::start(kind) else {
        return;
    };
    let server = Server::start_with_broker(
        NODE,
        dir.path(),
        &broker.url(),
        &["--topic=iot/{device_id}/{metric}"],
    );
    server.wait_subscribed_on(&broker, &format!("iot/{PROBE_DEVICE}/{PROBE_METRIC}"));
    let mut publisher = Publisher::connect(&broker, "test-layout");
    publisher.publish(
        "iot/kitchen/humidity",
        format!(r#"{{"timestamp":{BASE_SECONDS},"value":55.5}}"#),
    );
    publisher.publish(
        "iot/kitchen/env",
        format!(r#"{{"timestamp":{BASE_SECONDS},"co2":600,"pm25":12}}"#),
    );
    publisher.publish(
        "iot/kitchen/humidity",
        format!(r#"{{"device_id":"cellar","timestamp":{BASE_SECONDS},"value":1}}"#),
    );
    publisher.finish(PUBACK_TIMEOUT);
    wait_until(
        "the kitchen's readings and the refusal",
        INGEST_TIMEOUT,
        || {
            server.count("kitchen", "pm25") == 1
                && server.status()["rejected"]["topic_mismatch"].as_u64() == Some(1)
        },
    );
    assert_eq!(server.query("kitchen", "humidity", "avg"), (1, json!(55.5)));
    assert_eq!(server.query("kitchen", "co2", "avg"), (1, json!(600.0)));
    assert_eq!(server.count("cellar", "humidity"), 0, "{kind:?}");
    assert_eq!(
        rejected(&server.status()),
        vec![("topic_mismatch".to_string(), 1)],
        "{kind:?}"
    );
}

/// Under the default layout a deeper topic is counted as `topic` and stored nowhere: it
/// used to be stored under its last level (`room1`) as the metric.
fn deeper_topic_is_rejected_and_not_stored(kind: BrokerKind) {
    let dir = TempDir::new("deeper");
    let Some((broker, server)) = start(kind, &dir) else {
        return;
    };
    let mut publisher = Publisher::connect(&broker, "test-deeper");
    publisher.publish(
        "iot/sensors/temperature/room1",
        format!(r#"{{"device_id":"deep","timestamp":{BASE_SECONDS},"value":1}}"#),
    );
    publisher.publish(
        TOPIC,
        format!(r#"{{"device_id":"deep","timestamp":{BASE_SECONDS},"value":2}}"#),
    );
    publisher.finish(PUBACK_TIMEOUT);
    wait_until("the deeper topic rejected", INGEST_TIMEOUT, || {
        server.status()["rejected"]["topic"].as_u64() == Some(1)
            && server.count("deep", METRIC) == 1
    });
    assert_eq!(
        server.query("deep", METRIC, "avg"),
        (1, json!(2.0)),
        "{kind:?}"
    );
    assert_eq!(server.count("deep", "room1"), 0, "{kind:?}");
    assert_eq!(
        server.get("/metrics?device_id=deep").json()["metrics"],
        json!([METRIC]),
        "{kind:?}"
    );
    assert_eq!(
        rejected(&server.status()),
        vec![("topic".to_string(), 1)],
        "{kind:?}"
    );
}

/// Publishes `payload` to `topic` once with `mosquitto_pub` (QoS 1); false when it is not
/// installed or failed, so the caller publishes another way.
fn mosquitto_pub(port: u16, topic: &str, payload: &str) -> bool {
    let status = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-q",
            "1",
            "-t",
            topic,
            "-m",
            payload,
            "-p",
        ])
        .arg(port.to_string())
        .status();
    matches!(status, Ok(s) if s.success())
}

// ---- tests -----------------------------------------------------------------------------------

#[test]
fn embedded_qos1_readings_are_stored_exactly_once() {
    qos1_readings_are_stored_exactly_once(BrokerKind::Embedded);
}

#[test]
fn mosquitto_qos1_readings_are_stored_exactly_once() {
    qos1_readings_are_stored_exactly_once(BrokerKind::Mosquitto);
}

#[test]
fn embedded_bad_payloads_are_counted_per_reason_and_skipped() {
    bad_payloads_are_counted_per_reason_and_skipped(BrokerKind::Embedded);
}

#[test]
fn mosquitto_bad_payloads_are_counted_per_reason_and_skipped() {
    bad_payloads_are_counted_per_reason_and_skipped(BrokerKind::Mosquitto);
}

#[test]
fn embedded_node_killed_mid_ingestion_stores_everything_once() {
    node_killed_mid_ingestion_stores_everything_once(BrokerKind::Embedded);
}

#[test]
fn mosquitto_node_killed_mid_ingestion_stores_everything_once() {
    node_killed_mid_ingestion_stores_everything_once(BrokerKind::Mosquitto);
}

#[test]
fn embedded_broker_restart_node_reconnects_and_stores_what_follows() {
    broker_restarts_during_ingestion(BrokerKind::Embedded);
}

#[test]
fn mosquitto_broker_restart_loses_no_acknowledged_reading() {
    broker_restarts_during_ingestion(BrokerKind::Mosquitto);
}

#[test]
fn embedded_metric_comes_from_the_topic_when_missing() {
    metric_comes_from_the_topic_when_missing(BrokerKind::Embedded);
}

#[test]
fn mosquitto_metric_comes_from_the_topic_when_missing() {
    metric_comes_from_the_topic_when_missing(BrokerKind::Mosquitto);
}

#[test]
fn embedded_array_and_multi_field_payloads_are_stored_exactly() {
    array_and_multi_field_payloads_are_stored_exactly(BrokerKind::Embedded);
}

#[test]
fn mosquitto_array_and_multi_field_payloads_are_stored_exactly() {
    array_and_multi_field_payloads_are_stored_exactly(BrokerKind::Mosquitto);
}

#[test]
fn embedded_millisecond_and_rfc3339_timestamps_land_on_their_second() {
    millisecond_and_rfc3339_timestamps_land_on_their_second(BrokerKind::Embedded);
}

#[test]
fn embedded_device_topic_layout_fills_in_the_device() {
    device_topic_layout_fills_in_the_device(BrokerKind::Embedded);
}

#[test]
fn mosquitto_device_topic_layout_fills_in_the_device() {
    device_topic_layout_fills_in_the_device(BrokerKind::Mosquitto);
}

#[test]
fn embedded_deeper_topic_is_rejected_and_not_stored() {
    deeper_topic_is_rejected_and_not_stored(BrokerKind::Embedded);
}

#[test]
fn mosquitto_deeper_topic_is_rejected_and_not_stored() {
    deeper_topic_is_rejected_and_not_stored(BrokerKind::Mosquitto);
}

/// `POST /query` count of the one series of `temperature` on `s1` labelled `room`.
fn room_count(server: &Server, room: &str) -> u64 {
    let body = json!({
        "device_id": "s1",
        "metric_name": METRIC,
        "labels": {"room": room},
        "operation": "count",
    });
    let r = server.post("/query", &body.to_string());
    assert_eq!(r.status, 200, "/query {body}: {}", r.text());
    r.json()["count"].as_u64().expect("count is a number")
}

/// Two readings alike but for the string key `room`, same second: two series, one reading
/// each, neither merged into the other.
#[test]
fn embedded_string_keys_become_labels_of_separate_series() {
    let dir = TempDir::new("labels");
    let broker = Broker::start_embedded();
    let server = Server::start_with_broker(NODE, dir.path(), &broker.url(), &[]);
    server.wait_subscribed(&broker);
    let mut publisher = Publisher::connect(&broker, "test-labels");
    for (room, value) in [("lab", 21.5), ("kitchen", 23.0)] {
        let payload = json!({
            "device_id": "s1", "room": room, "timestamp": BASE_SECONDS, "value": value,
        });
        publisher.publish(TOPIC, payload.to_string());
    }
    publisher.finish(PUBACK_TIMEOUT);
    wait_until("both rooms stored", INGEST_TIMEOUT, || {
        room_count(&server, "lab") + room_count(&server, "kitchen") >= 2
    });
    assert_eq!(room_count(&server, "lab"), 1);
    assert_eq!(room_count(&server, "kitchen"), 1);
}
