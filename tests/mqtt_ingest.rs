//! MQTT ingestion end to end: a real Mosquitto, a real `minitrue-server`, a real rumqttc
//! publisher. What the server stored is read by stopping it and opening its data directory
//! with `Engine::open`, so counts and values are checked exactly.
//!
//! Needs `mosquitto` on PATH (Debian package `mosquitto`); without it every test prints
//! "skipping: mosquitto not installed" and passes.

use minitrue::storage::{Engine, EngineConfig, SeriesKey, TimeRange, Timestamp};
use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet, QoS};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const TOPIC: &str = "iot/sensors/temperature";
const BASE_SECONDS: i64 = 1_710_000_000;
const DEVICES: usize = 10;

// ---- harness -------------------------------------------------------------------------------

fn mosquitto_installed() -> bool {
    Command::new("mosquitto")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

macro_rules! require_mosquitto {
    () => {
        if !mosquitto_installed() {
            eprintln!("skipping: mosquitto not installed");
            return;
        }
    };
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "minitrue-mqtt-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A Mosquitto broker on a free loopback port, killed by PID when dropped.
struct Mosquitto {
    child: Child,
    port: u16,
}

impl Mosquitto {
    fn start(dir: &Path, max_inflight: u32) -> Mosquitto {
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_queued_messages 100000\nmax_inflight_messages {max_inflight}\n"
            ),
        )
        .expect("write mosquitto.conf");
        let log = File::create(dir.join("mosquitto.log")).expect("create mosquitto log");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn mosquitto");
        let broker = Mosquitto { child, port };
        wait_for("mosquitto to listen", Duration::from_secs(5), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        broker
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `minitrue-server` node (`m1`), restartable on the same ports and data directory.
struct Server {
    child: Option<Child>,
    args: Vec<String>,
    http_port: u16,
    root: PathBuf,
    starts: usize,
}

impl Server {
    fn start(root: &Path, broker: &str) -> Server {
        let http_port = free_port();
        let args = vec![
            "--node_id=m1".to_string(),
            format!("--port={http_port}"),
            format!("--tcp_port={}", free_port()),
            format!("--data_dir={}", root.join("data").display()),
            format!("--broker={broker}"),
            "--bind=127.0.0.1".to_string(),
            "--log_level=debug".to_string(),
        ];
        let mut server = Server {
            child: None,
            args,
            http_port,
            root: root.to_path_buf(),
            starts: 0,
        };
        server.restart();
        server
    }

    fn log_path(&self) -> PathBuf {
        self.root.join(format!("server-{}.log", self.starts))
    }

    fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data").join("m1")
    }

    /// Starts the process and waits until it answers HTTP and has an MQTT session.
    fn restart(&mut self) {
        assert!(self.child.is_none(), "server already running");
        self.starts += 1;
        let log = File::create(self.log_path()).expect("create server log");
        let child = Command::new(env!("CARGO_BIN_EXE_minitrue-server"))
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn minitrue-server");
        self.child = Some(child);
        let port = self.http_port;
        wait_for("/health", Duration::from_secs(10), || http_answers(port));
        wait_for("the MQTT subscription", Duration::from_secs(10), || {
            let log = self.log();
            log.contains("mqtt: subscribed to") || log.contains("(session resumed)")
        });
    }

    /// SIGTERM, then waits for a clean exit.
    fn terminate(&mut self) {
        let mut child = self.child.take().expect("server running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().expect("wait for server") {
                assert!(status.success(), "server exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "server ignored SIGTERM");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL: no chance to flush, ack or disconnect.
    fn kill9(&mut self) {
        let mut child = self.child.take().expect("server running");
        child.kill().expect("SIGKILL server");
        child.wait().expect("reap server");
    }

    /// Messages the running process reports having handled (its debug lines per batch).
    fn handled(&self) -> usize {
        self.log()
            .lines()
            .filter_map(|line| line.split(" readings from ").nth(1))
            .filter_map(|rest| rest.split(' ').next()?.parse::<usize>().ok())
            .sum()
    }

    /// Waits until the running process has handled `messages`, then stops it cleanly.
    fn drain_and_stop(&mut self, messages: usize) {
        wait_for(
            &format!("{messages} messages handled"),
            Duration::from_secs(60),
            || self.handled() >= messages,
        );
        self.terminate();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether anything answers an HTTP GET /health (in this branch the API may answer 501).
fn http_answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// Publishes QoS 1 messages and waits for the broker's PUBACK of each.
struct Publisher {
    client: Client,
    acked: std::sync::Arc<AtomicUsize>,
    pump: Option<thread::JoinHandle<()>>,
    sent: usize,
}

impl Publisher {
    fn connect(broker: &Mosquitto, id: &str) -> Publisher {
        let mut options = MqttOptions::new(id, "127.0.0.1", broker.port);
        options.set_keep_alive(Duration::from_secs(10));
        let (client, mut connection) = Client::new(options, 1000);
        let acked = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = acked.clone();
        let pump = thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                    Ok(_) => {}
                    Err(e) => panic!("publisher connection: {e}"),
                }
            }
        });
        Publisher {
            client,
            acked,
            pump: Some(pump),
            sent: 0,
        }
    }

    fn publish(&mut self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .expect("queue publish");
        self.sent += 1;
    }

    /// Waits until the broker has acked every message, then disconnects.
    fn finish(mut self) {
        let sent = self.sent;
        wait_for("broker PUBACKs", Duration::from_secs(60), || {
            self.acked.load(Ordering::Relaxed) >= sent
        });
        self.client.disconnect().expect("disconnect publisher");
        if let Some(pump) = self.pump.take() {
            pump.join().expect("publisher pump");
        }
    }
}

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
        r#"{{"device_id":"{device}","metric_name":"temperature","timestamp":{seconds},"value":{value:?}}}"#
    )
}

/// Every `(series, timestamp, value)` stored in `data_dir`, sorted.
fn stored(data_dir: &Path) -> Vec<(String, i64, f64)> {
    let (engine, _) = Engine::open(data_dir, EngineConfig::default()).expect("open data dir");
    let mut all = Vec::new();
    for key in engine.series() {
        for (ts, value) in engine
            .samples(&key, TimeRange::ALL, usize::MAX)
            .expect("samples")
        {
            all.push((key.to_string(), ts.millis(), value));
        }
    }
    engine.close().expect("close engine");
    all.sort_by(|a, b| a.partial_cmp(b).expect("finite values"));
    all
}

fn expected_readings(range: std::ops::Range<usize>) -> Vec<(String, i64, f64)> {
    let mut all: Vec<_> = range
        .map(|i| {
            let (device, seconds, value) = reading(i);
            let key = SeriesKey::new(&device, "temperature").expect("valid key");
            (key.to_string(), Timestamp(seconds * 1000).millis(), value)
        })
        .collect();
    all.sort_by(|a, b| a.partial_cmp(b).expect("finite values"));
    all
}

// ---- tests ---------------------------------------------------------------------------------

#[test]
fn qos1_readings_are_stored_exactly_once_with_their_values() {
    require_mosquitto!();
    let dir = TempDir::new("exact");
    let broker = Mosquitto::start(&dir.0, 20);
    let mut server = Server::start(&dir.0, &broker.url());

    let mut publisher = Publisher::connect(&broker, "test-exact");
    for i in 0..2000 {
        publisher.publish(TOPIC, reading_payload(i));
    }
    publisher.finish();
    server.drain_and_stop(2000);

    let stored = stored(&server.data_dir());
    assert_eq!(stored.len(), 2000);
    assert_eq!(stored, expected_readings(0..2000));
}

#[test]
fn bad_payloads_are_dropped_and_the_good_ones_around_them_stored() {
    require_mosquitto!();
    let dir = TempDir::new("bad");
    let broker = Mosquitto::start(&dir.0, 20);
    let mut server = Server::start(&dir.0, &broker.url());

    let bad = [
        "not json at all".to_string(),
        r#"{"metric_name":"temperature","timestamp":1710000000,"value":1}"#.to_string(),
        r#"{"device_id":"dev0","timestamp":1710000000,"value":"23.5"}"#.to_string(),
        r#"{"device_id":"dev0","timestamp":1710000000,"value":1e400}"#.to_string(),
    ];
    let mut publisher = Publisher::connect(&broker, "test-bad");
    let mut good = 0;
    for round in 0..3 {
        for payload in &bad {
            publisher.publish(TOPIC, reading_payload(good));
            good += 1;
            publisher.publish(TOPIC, payload.clone());
        }
        // A burst of only bad messages must not stall anything either.
        if round == 1 {
            for _ in 0..50 {
                publisher.publish(TOPIC, "{");
            }
        }
    }
    publisher.publish(TOPIC, reading_payload(good));
    good += 1;
    let total = publisher.sent;
    publisher.finish();
    server.drain_and_stop(total);

    assert_eq!(stored(&server.data_dir()), expected_readings(0..good));
    let log = server.log();
    assert!(log.contains("mqtt: dropped a message on"), "{log}");
    // One line per second at most: the 62 rejects of this burst are mostly suppressed.
    let lines = log.matches("mqtt: dropped a message on").count();
    assert!(lines < 10, "{lines} reject lines logged:\n{log}");
}

#[test]
fn metric_comes_from_the_topic_when_the_payload_has_none() {
    require_mosquitto!();
    let dir = TempDir::new("topic");
    let broker = Mosquitto::start(&dir.0, 20);
    let mut server = Server::start(&dir.0, &broker.url());

    let mut publisher = Publisher::connect(&broker, "test-topic");
    publisher.publish(
        "iot/sensors/humidity",
        r#"{"device_id":"s1","timestamp":1710000000,"value":41.5}"#,
    );
    publisher.publish(
        "iot/sensors/humidity",
        r#"{"device_id":"s1","metric_name":"pressure","timestamp":1710000001,"value":1013.25}"#,
    );
    publisher.finish();
    server.drain_and_stop(2);

    assert_eq!(
        stored(&server.data_dir()),
        vec![
            ("s1|humidity".to_string(), 1_710_000_000_000, 41.5),
            ("s1|pressure".to_string(), 1_710_000_001_000, 1013.25),
        ]
    );
}

#[test]
fn server_killed_mid_ingestion_loses_nothing_after_restart() {
    require_mosquitto!();
    const TOTAL: usize = 6000;
    let dir = TempDir::new("crash");
    let broker = Mosquitto::start(&dir.0, 20);
    let mut server = Server::start(&dir.0, &broker.url());

    // The publisher keeps going, at a steady pace, while the server dies and comes back.
    let publisher = {
        let mut publisher = Publisher::connect(&broker, "test-crash");
        thread::spawn(move || {
            for burst in 0..TOTAL / 100 {
                for i in burst * 100..(burst + 1) * 100 {
                    publisher.publish(TOPIC, reading_payload(i));
                }
                thread::sleep(Duration::from_millis(25));
            }
            publisher.finish();
        })
    };

    wait_for("some ingestion", Duration::from_secs(20), || {
        server.handled() >= 500
    });
    server.kill9();
    // The store after the crash holds a strict part of the stream: the kill was mid-way.
    let survived = stored(&server.data_dir()).len();
    assert!(
        survived > 0 && survived < TOTAL,
        "{survived} stored at the kill"
    );
    thread::sleep(Duration::from_millis(300));
    server.restart();
    publisher.join().expect("publisher thread");

    // Whatever the broker still holds for the session reaches the restarted server; wait
    // until the log goes quiet, then check and (if needed) give it another round.
    let mut rounds = 0;
    loop {
        let mut last = usize::MAX;
        wait_for("ingestion to go quiet", Duration::from_secs(30), || {
            let now = server.handled();
            let quiet = now == last;
            last = now;
            thread::sleep(Duration::from_millis(300));
            quiet
        });
        server.terminate();
        let stored = stored(&server.data_dir());
        if stored.len() == TOTAL || rounds == 3 {
            assert_eq!(stored.len(), TOTAL, "every reading stored exactly once");
            assert_eq!(stored, expected_readings(0..TOTAL));
            break;
        }
        rounds += 1;
        server.restart();
    }
}

/// Rough end-to-end rate: one publisher, QoS 1, one node. Run with
/// `cargo test --release --test mqtt_ingest -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_qos1_ingest_rate() {
    require_mosquitto!();
    const TOTAL: usize = 50_000;
    for max_inflight in [20, 1000] {
        let dir = TempDir::new("rate");
        let broker = Mosquitto::start(&dir.0, max_inflight);
        let mut server = Server::start(&dir.0, &broker.url());
        let started = Instant::now();
        let mut publisher = Publisher::connect(&broker, "test-rate");
        for i in 0..TOTAL {
            publisher.publish(TOPIC, reading_payload(i));
        }
        publisher.finish();
        let published = started.elapsed();
        wait_for("all handled", Duration::from_secs(300), || {
            server.handled() >= TOTAL
        });
        let elapsed = started.elapsed();
        println!(
            "broker max_inflight_messages {max_inflight}: {TOTAL} QoS 1 readings stored in \
             {:.2} s = {:.0} points/s (publisher done after {:.2} s)",
            elapsed.as_secs_f64(),
            TOTAL as f64 / elapsed.as_secs_f64(),
            published.as_secs_f64()
        );
        server.terminate();
        assert_eq!(stored(&server.data_dir()).len(), TOTAL);
    }
}
