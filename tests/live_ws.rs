//! The live stream end to end: a real `minitrue-server` ingesting from the embedded
//! `minitrue-broker`, a rumqttc publisher, and a tungstenite websocket client on `GET /ws`.
//! Checks the frames (one per accepted reading, in order, the exact JSON of the MQTT
//! contract), the client counts of `/status` and `/ws/stats` as a client comes and goes
//! while ingestion continues, and the refusal of a plain `GET /ws`.

mod common;

use common::{wait_until, Broker, Publisher, Server, TempDir, PROBE_DEVICE};
use serde_json::{json, Value};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use tungstenite::{Message, WebSocket};

const TOPIC: &str = "iot/sensors/temperature";
const BASE_SECONDS: i64 = 1_710_000_000;

/// Longest a client waits for the next frame, and a test for the node to catch up.
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);
const INGEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An embedded broker and a node ingesting from it, subscribed.
fn start(dir: &TempDir) -> (Broker, Server) {
    let broker = Broker::start_embedded();
    let server = Server::start_with_broker("live", dir.path(), &broker.url(), &[]);
    server.wait_subscribed(&broker);
    (broker, server)
}

/// Opens `GET /ws` with a websocket client; reads time out after [`FRAME_TIMEOUT`].
fn connect_ws(server: &Server) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect to /ws");
    stream
        .set_read_timeout(Some(FRAME_TIMEOUT))
        .expect("set read timeout");
    let url = format!("ws://127.0.0.1:{}/ws", server.port);
    let (socket, response) = tungstenite::client(url.as_str(), stream)
        .unwrap_or_else(|e| panic!("websocket handshake with {url}: {e}"));
    assert_eq!(response.status(), 101);
    socket
}

/// The next reading frame's text, skipping heartbeats and the probes of
/// [`Server::wait_subscribed`] (a late one may still be on its way).
fn next_reading(socket: &mut WebSocket<TcpStream>) -> String {
    loop {
        match socket.read() {
            Ok(Message::Text(text)) => {
                let v: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("frame is not JSON ({e}): {text}"));
                if v["device_id"] != PROBE_DEVICE {
                    return text.to_string();
                }
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(other) => panic!("unexpected websocket message: {other:?}"),
            Err(e) => panic!("no frame within {FRAME_TIMEOUT:?}: {e}"),
        }
    }
}

/// `(websocket_clients of /status, connected_clients of /ws/stats)`.
fn client_counts(server: &Server) -> (u64, u64) {
    let status = server.status()["websocket_clients"]
        .as_u64()
        .expect("websocket_clients is a number");
    let stats = server.get("/ws/stats");
    assert_eq!(stats.status, 200, "/ws/stats: {}", stats.text());
    let hub = stats.json()["connected_clients"]
        .as_u64()
        .expect("connected_clients is a number");
    (status, hub)
}

/// The frame the server sends for a reading: the MQTT payload's fields, in this order.
fn frame(device: &str, metric: &str, timestamp: &str, value: f64) -> String {
    format!(
        r#"{{"device_id":"{device}","metric_name":"{metric}","timestamp":{timestamp},"value":{}}}"#,
        serde_json::to_string(&value).expect("finite value")
    )
}

#[test]
fn every_accepted_reading_arrives_in_order_as_its_json() {
    let dir = TempDir::new("ws-frames");
    let (broker, server) = start(&dir);
    let mut socket = connect_ws(&server);
    wait_until("the client to be counted", FRAME_TIMEOUT, || {
        client_counts(&server) == (1, 1)
    });

    // (topic, payload, the frame it must produce, if any)
    let mut messages: Vec<(String, String, Option<String>)> = (0..60)
        .map(|i| {
            let device = format!("sensor_{}", i % 3);
            let seconds = BASE_SECONDS + i;
            let value = i as f64 * 0.25 - 5.0;
            (
                TOPIC.to_string(),
                format!(
                    r#"{{"device_id":"{device}","metric_name":"temperature","timestamp":{seconds},"value":{value:?}}}"#
                ),
                Some(frame(&device, "temperature", &seconds.to_string(), value)),
            )
        })
        .collect();
    // Sub-second timestamps keep their milliseconds; a missing metric comes from the topic;
    // a rejected payload produces no frame.
    messages.insert(
        20,
        (
            TOPIC.to_string(),
            r#"{"device_id":"sensor_9","metric_name":"temperature","timestamp":1710000100.25,"value":-3}"#.to_string(),
            Some(frame("sensor_9", "temperature", "1710000100.25", -3.0)),
        ),
    );
    messages.insert(
        30,
        (
            "iot/sensors/humidity".to_string(),
            r#"{"device_id":"sensor_9","timestamp":1710000200,"value":55.5,"unit":"%"}"#
                .to_string(),
            // A string key is a label of the series, and the frame carries it.
            Some(
                r#"{"device_id":"sensor_9","metric_name":"humidity","timestamp":1710000200,"value":55.5,"labels":{"unit":"%"}}"#
                    .to_string(),
            ),
        ),
    );
    messages.insert(
        40,
        (
            TOPIC.to_string(),
            r#"{"device_id":"sensor_9","value":"hot"}"#.to_string(),
            None,
        ),
    );

    let mut publisher = Publisher::connect(&broker, "ws-frames");
    for (topic, payload, _) in &messages {
        publisher.publish(topic, payload.clone());
    }
    publisher.finish(INGEST_TIMEOUT);

    let want: Vec<String> = messages.into_iter().filter_map(|m| m.2).collect();
    let got: Vec<String> = (0..want.len()).map(|_| next_reading(&mut socket)).collect();
    assert_eq!(got, want);
    let stats = server.get("/ws/stats").json();
    assert!(
        stats["messages_sent"].as_u64() >= Some(want.len() as u64),
        "{stats}"
    );
    assert_eq!(stats["status"], "running", "{stats}");
}

#[test]
fn client_leaving_mid_stream_is_forgotten_while_ingestion_goes_on() {
    const TOTAL: usize = 3000;
    const READ_BEFORE_LEAVING: usize = 100;
    let dir = TempDir::new("ws-leave");
    let (broker, server) = start(&dir);
    let mut socket = connect_ws(&server);
    wait_until("the client to be counted", FRAME_TIMEOUT, || {
        client_counts(&server) == (1, 1)
    });

    let published = Arc::new(AtomicUsize::new(0));
    let publishing = {
        let mut publisher = Publisher::connect(&broker, "ws-leave");
        let published = published.clone();
        thread::spawn(move || {
            for i in 0..TOTAL {
                publisher.publish(
                    TOPIC,
                    format!(
                        r#"{{"device_id":"walker","metric_name":"temperature","timestamp":{},"value":{i}}}"#,
                        BASE_SECONDS + i as i64
                    ),
                );
                published.fetch_add(1, Ordering::Relaxed);
                if i % 50 == 49 {
                    thread::sleep(Duration::from_millis(20));
                }
            }
            publisher
        })
    };

    for i in 0..READ_BEFORE_LEAVING {
        assert_eq!(
            next_reading(&mut socket),
            frame(
                "walker",
                "temperature",
                &(BASE_SECONDS + i as i64).to_string(),
                i as f64
            ),
            "frame {i}"
        );
    }
    // Gone without a close handshake, as a browser tab that is killed.
    drop(socket);
    let at_leave = published.load(Ordering::Relaxed);
    wait_until("the client to be forgotten", FRAME_TIMEOUT, || {
        client_counts(&server) == (0, 0)
    });
    let still_publishing = published.load(Ordering::Relaxed) < TOTAL;

    publishing
        .join()
        .expect("publisher thread")
        .finish(INGEST_TIMEOUT);
    assert!(
        at_leave < TOTAL && still_publishing,
        "ingestion had ended before the client was forgotten ({at_leave} published at the \
         leave): the test proves nothing"
    );
    wait_until(
        &format!("all {TOTAL} readings stored"),
        INGEST_TIMEOUT,
        || server.count("walker", "temperature") >= TOTAL as u64,
    );
    assert_eq!(
        server.query("walker", "temperature", "sum"),
        (TOTAL as u64, json!((0..TOTAL).sum::<usize>() as f64))
    );
    assert_eq!(client_counts(&server), (0, 0));
}

#[test]
fn ws_without_upgrade_headers_is_a_400_json_error() {
    let dir = TempDir::new("ws-plain");
    let server = Server::start("live", dir.path(), &[]);
    let r = server.get("/ws");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let error = r.json()["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field: {}", r.text()))
        .to_string();
    assert!(error.contains("Upgrade: websocket"), "{error}");
    assert_eq!(client_counts(&server), (0, 0));
}
