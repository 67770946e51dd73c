//! End-to-end tests of the live stream over real sockets: the node's HTTP listener on a
//! free loopback port hands `GET /ws` to [`Hub::accept`], `ws_broadcast` runs on its own thread,
//! and real tungstenite clients connect. Every wait polls against a deadline.

use super::*;
use crate::http::listener::{HttpListener, Ready};
use crate::storage::{SeriesKey, Timestamp};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(20);

type Client = tungstenite::WebSocket<TcpStream>;

/// A hub served over HTTP, shut down (and its threads joined) on drop.
struct LiveServer {
    hub: Arc<Hub>,
    port: u16,
    shutdown_tx: Option<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl LiveServer {
    fn start(config: HubConfig) -> LiveServer {
        let hub = Arc::new(Hub::with_config(config));
        let addr = "127.0.0.1:0".parse().unwrap();
        let http = Arc::new(HttpListener::bind(addr, None, 1, 64, Arc::default()).unwrap());
        let port = http.local_addr().unwrap().port();
        let (shutdown_tx, shutdown_rx) = bounded::<()>(0);
        let mut threads = Vec::new();
        {
            let (http, shutdown_rx) = (http.clone(), shutdown_rx.clone());
            threads.push(thread::spawn(move || http.listen(&shutdown_rx)));
        }
        {
            let (hub, http, shutdown_rx) = (hub.clone(), http.clone(), shutdown_rx.clone());
            threads.push(thread::spawn(move || loop {
                select! {
                    recv(shutdown_rx) -> _ => return,
                    recv(http.requests()) -> ready => {
                        let Ok(Ready { conn, head }) = ready else { return };
                        let headers = Headers::new(head.headers.iter().cloned());
                        if head.target == "/ws" {
                            hub.accept(&head.method, &headers, conn.peer, conn.into_stream());
                        } else {
                            let mut stream = conn.into_stream();
                            let _ = crate::http::wire::write_response(
                                &mut stream, 404, &[], b"", false, false,
                            );
                        }
                    }
                }
            }));
        }
        {
            let hub = hub.clone();
            threads.push(thread::spawn(move || hub.ws_broadcast(&shutdown_rx)));
        }
        LiveServer {
            hub,
            port,
            shutdown_tx: Some(shutdown_tx),
            threads,
        }
    }

    fn connect(&self) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let url = format!("ws://127.0.0.1:{}/ws", self.port);
        let (socket, response) = tungstenite::client(url.as_str(), stream).unwrap();
        assert_eq!(response.status(), 101);
        socket
    }

    /// Connects `n` more clients and waits until the hub counts them.
    fn connect_many(&self, n: usize) -> Vec<Client> {
        let before = self.hub.stats().connected_clients;
        let clients: Vec<_> = (0..n).map(|_| self.connect()).collect();
        wait_for("clients to register", || {
            self.hub.stats().connected_clients == before + n
        });
        clients
    }

    fn shutdown(&mut self) {
        self.shutdown_tx.take();
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
    }
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

fn point(device: &str, seconds: i64, value: f64) -> Point {
    Point {
        series: SeriesKey::new(device, "temperature").unwrap(),
        timestamp: Timestamp(seconds * 1000),
        value,
    }
}

/// The next text frame as JSON, skipping heartbeats.
fn next_json(client: &mut Client) -> serde_json::Value {
    loop {
        match client.read().unwrap() {
            tungstenite::Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            tungstenite::Message::Pong(_) | tungstenite::Message::Ping(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

#[test]
fn client_receives_points_in_order_as_mqtt_json() {
    let mut server = LiveServer::start(HubConfig::default());
    let mut clients = server.connect_many(2);
    let points: Vec<_> = (0..300)
        .map(|i| point("sensor_1", 1_710_000_000 + i, i as f64 + 0.5))
        .collect();
    for batch in points.chunks(7) {
        server.hub.publish(batch);
    }
    for client in &mut clients {
        for (i, p) in points.iter().enumerate() {
            let json = next_json(client);
            let expected = serde_json::json!({
                "device_id": "sensor_1",
                "metric_name": "temperature",
                "timestamp": p.timestamp.millis() / 1000,
                "value": p.value,
            });
            assert_eq!(json, expected, "message {i}");
            assert_eq!(json.as_object().unwrap().len(), 4);
        }
    }
    wait_for("sent count", || server.hub.stats().messages_sent == 600);
    let stats = server.hub.stats();
    assert_eq!(stats.messages_dropped, 0);
    assert_eq!(stats.status, "running");

    server.shutdown();
    assert_eq!(server.hub.stats().status, "stopped");
    assert_eq!(server.hub.stats().connected_clients, 0);
    for client in &mut clients {
        // A close frame, then the connection ends.
        match client.read() {
            Ok(tungstenite::Message::Close(Some(frame))) => {
                assert_eq!(
                    frame.code,
                    tungstenite::protocol::frame::coding::CloseCode::Away
                )
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[test]
fn disconnected_client_is_removed_and_others_keep_receiving() {
    let server = LiveServer::start(HubConfig::default());
    let mut clients = server.connect_many(3);
    let leaving = clients.remove(1);
    drop(leaving);
    // The writer notices on a failed write, so keep the stream flowing while waiting.
    let mut second = 0;
    wait_for("the gone client to be counted out", || {
        second += 1;
        server.hub.publish(&[point("sensor_2", second, 1.0)]);
        server.hub.stats().connected_clients == 2
    });
    server.hub.publish(&[point("marker", 42, 42.0)]);
    for client in &mut clients {
        loop {
            let json = next_json(client);
            if json["device_id"] == "marker" {
                assert_eq!(json["value"], 42.0);
                break;
            }
        }
    }
    assert_eq!(server.hub.stats().connected_clients, 2);
}

#[test]
fn slow_client_never_blocks_publish_and_is_dropped() {
    let config = HubConfig {
        client_queue_frames: 64,
        slow_client_grace: Duration::from_millis(200),
        ..HubConfig::default()
    };
    let server = LiveServer::start(config);
    // Never read from: its socket buffers fill, its writer blocks, its queue stays full.
    let _slow = server.connect_many(1);
    // Long names make each frame large, so the kernel buffers fill quickly.
    let device = "d".repeat(crate::storage::MAX_NAME_LEN);
    let points: Vec<_> = (0..100_000).map(|i| point(&device, i, 1.0)).collect();

    let started = Instant::now();
    for batch in points.chunks(100) {
        server.hub.publish(batch);
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "publish took {took:?}");

    wait_for("the slow client to be evicted", || {
        server.hub.publish(&points[..1000]);
        server.hub.stats().connected_clients == 0
    });
    let stats = server.hub.stats();
    assert!(stats.messages_dropped > 0, "{stats:?}");
    assert_eq!(stats.status, "running");
}

#[test]
fn upgrade_without_key_is_a_json_400() {
    let server = LiveServer::start(HubConfig::default());
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(json["error"]
        .as_str()
        .unwrap()
        .contains("Sec-WebSocket-Key"));
    assert_eq!(server.hub.stats().connected_clients, 0);
}

#[test]
fn publish_without_clients_does_nothing() {
    let hub = Hub::new();
    hub.publish(&[point("sensor_1", 1, 1.0)]);
    let stats = hub.stats();
    assert_eq!(
        stats,
        HubStats {
            connected_clients: 0,
            messages_sent: 0,
            messages_dropped: 0,
            status: "running"
        }
    );
}
