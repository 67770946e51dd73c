//! Black-box tests of `minitrue-publisher`: the real binary against a real Mosquitto broker
//! on a free loopback port, checked by a real MQTT subscriber. The serial test drives the
//! bridge through a pseudo-terminal pair made by `socat`, then hangs it up.
//!
//! Without Mosquitto (or socat, for the serial test) a test prints why and passes: CI
//! installs both (`.ci/run`).

#[path = "common/ports.rs"]
mod ports;
use minitrue::ingest::payload::parse_mqtt_payload;
use ports::free_port;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PUBLISHER: &str = env!("CARGO_BIN_EXE_minitrue-publisher");

/// A spawned process, killed and reaped when dropped (also when a test fails).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh scratch directory per use, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "minitrue-publisher-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `name` on PATH, or in one of `extra` directories.
fn find_program(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A Mosquitto broker on a free loopback port.
struct Broker {
    port: u16,
    _process: Running,
    _dir: Scratch,
}

impl Broker {
    /// Starts one, or returns None (after saying why) when Mosquitto is not installed.
    fn start() -> Option<Broker> {
        let Some(mosquitto) = find_program("mosquitto", &["/usr/sbin", "/usr/local/sbin"]) else {
            eprintln!("skipped: mosquitto is not installed");
            return None;
        };
        let dir = Scratch::new("broker");
        let port = free_port();
        let conf = dir.0.join("mosquitto.conf");
        // No queue limit: a subscriber may fall behind a full-speed replay and must still
        // receive every message.
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_queued_messages 0\nmax_inflight_messages 100\n"
            ),
        )
        .expect("write mosquitto.conf");
        let child = Command::new(mosquitto)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        let broker = Broker {
            port,
            _process: Running(child),
            _dir: dir,
        };
        wait_for(Duration::from_secs(10), "mosquitto to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Some(broker)
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

fn wait_for(timeout: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One received message: topic and JSON payload.
#[derive(Clone, Debug)]
struct Message {
    topic: String,
    payload: Value,
    raw: Vec<u8>,
}

/// A subscriber to `iot/sensors/#` collecting every message on a background thread.
struct Subscriber {
    received: Arc<Mutex<Vec<Message>>>,
    _client: Client,
}

impl Subscriber {
    fn start(broker: &Broker) -> Subscriber {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let id = format!(
            "test-sub-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let options = MqttOptions::new(id, "127.0.0.1", broker.port);
        let (client, mut connection) = Client::new(options, 100);
        client
            .subscribe("iot/sensors/#", QoS::AtLeastOnce)
            .expect("queue subscribe");
        let received = Arc::new(Mutex::new(Vec::new()));
        let (subscribed_tx, subscribed_rx) = crossbeam_channel::bounded(1);
        let sink = Arc::clone(&received);
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = subscribed_tx.try_send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let payload = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        sink.lock().unwrap().push(Message {
                            topic: p.topic.clone(),
                            payload,
                            raw: p.payload.to_vec(),
                        });
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        subscribed_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("subscription acknowledged");
        Subscriber {
            received,
            _client: client,
        }
    }

    fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// Waits until `n` messages arrived, then a little longer to catch any extra ones.
    fn expect_exactly(&self, n: usize) -> Vec<Message> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.count() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        let got = self.received.lock().unwrap().clone();
        assert_eq!(got.len(), n, "messages received");
        got
    }

    /// Waits until a message satisfies `found`.
    fn wait_for_message(&self, timeout: Duration, found: impl Fn(&Message) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.received.lock().unwrap().iter().any(&found) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

/// Runs the publisher to completion (killing it after a minute, so a hang fails the test
/// instead of stalling the suite); returns (exit ok, stdout, stderr).
fn run_publisher(args: &[&str]) -> (bool, String, String) {
    let mut child = Command::new(PUBLISHER)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start minitrue-publisher");
    let read_all = |pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(pipe).read_to_string(&mut text);
            text
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = read_all(Box::new(child.stderr.take().expect("piped stderr")));
    let mut running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = running.0.try_wait().expect("poll minitrue-publisher") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "minitrue-publisher hung: {args:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.success(),
        stdout.join().expect("stdout reader"),
        stderr.join().expect("stderr reader"),
    )
}

/// Parses the summary line `sent=N acked=M elapsed=S rate=R/s`.
fn summary(stdout: &str) -> BTreeMap<String, f64> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("sent="))
        .unwrap_or_else(|| panic!("no summary line in {stdout:?}"));
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.trim_end_matches("/s")
                    .trim_end_matches('s')
                    .parse()
                    .unwrap(),
            )
        })
        .collect()
}

/// Checks the wire contract of one message and that the server's own parser accepts it.
fn check_contract(m: &Message) {
    let metric = m.payload["metric_name"]
        .as_str()
        .expect("metric_name string");
    assert_eq!(m.topic, format!("iot/sensors/{metric}"));
    assert!(m.payload["device_id"].is_string(), "{:?}", m.payload);
    assert!(m.payload["timestamp"].is_number(), "{:?}", m.payload);
    assert!(m.payload["value"].is_number(), "{:?}", m.payload);
    parse_mqtt_payload(&m.topic, &m.raw).expect("the server accepts the payload");
}

#[test]
fn simulator_publishes_every_metric_of_every_device() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let sub = Subscriber::start(&broker);
    let url = broker.url();
    let (ok, stdout, stderr) = run_publisher(&[
        "--sim=true",
        "--devices",
        "2",
        "--interval",
        "0.05",
        "--duration",
        "1",
        "--seed",
        "7",
        "--broker",
        &url,
    ]);
    assert!(ok, "publisher failed: {stdout}\n{stderr}");
    let s = summary(&stdout);
    assert_eq!(s["sent"], s["acked"], "{stdout}");
    assert!(s["sent"] >= 50.0, "too few points: {stdout}");
    let got = sub.expect_exactly(s["sent"] as usize);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut devices = BTreeSet::new();
    let mut metrics = BTreeSet::new();
    for m in &got {
        check_contract(m);
        let t = m.payload["timestamp"].as_f64().unwrap();
        assert!(
            (now - 60.0..now + 1.0).contains(&t),
            "timestamp {t} is not now"
        );
        devices.insert(m.payload["device_id"].as_str().unwrap().to_string());
        metrics.insert(m.payload["metric_name"].as_str().unwrap().to_string());
    }
    assert_eq!(
        devices,
        BTreeSet::from(["sensor_1".to_string(), "sensor_2".to_string()])
    );
    for metric in ["temperature", "humidity", "pressure", "battery"] {
        assert!(metrics.contains(metric), "no {metric} in {metrics:?}");
    }
}

#[test]
fn replay_publishes_exactly_the_rows_of_a_csv() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let sub = Subscriber::start(&broker);
    let dir = Scratch::new("replay");
    let csv = dir.0.join("small.csv");
    // Columns in another order, an extra column, a quoted field, a blank line, two bad rows.
    std::fs::write(
        &csv,
        "metric_name,value,timestamp,note,device_id\n\
         temperature,21.5,1700000000,,dev_a\n\
         humidity,40.25,1700000000,\"ok, fine\",dev_a\n\
         temperature,-3.75,1700000060.5,,dev_b\n\
         \n\
         temperature,not_a_number,1700000120,,dev_b\n\
         pressure,1013.2,1700000120000,,dev_b\n\
         pressure,1013.2,2023-11-14T22:15:20Z,,dev_b\n",
    )
    .unwrap();
    let url = broker.url();
    let (ok, stdout, stderr) =
        run_publisher(&["--replay", csv.to_str().unwrap(), "--broker", &url]);
    assert!(ok, "publisher failed: {stdout}\n{stderr}");
    assert!(
        stdout.contains("rows=6 published=4 skipped=2"),
        "counts: {stdout}"
    );
    assert!(stderr.contains("line 6"), "bad row not reported: {stderr}");
    let got = sub.expect_exactly(4);
    let mut seen: Vec<(String, String, f64, f64)> = got
        .iter()
        .map(|m| {
            check_contract(m);
            (
                m.payload["device_id"].as_str().unwrap().to_string(),
                m.payload["metric_name"].as_str().unwrap().to_string(),
                m.payload["timestamp"].as_f64().unwrap(),
                m.payload["value"].as_f64().unwrap(),
            )
        })
        .collect();
    seen.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let expected = vec![
        (
            "dev_a".to_string(),
            "humidity".to_string(),
            1700000000.0,
            40.25,
        ),
        (
            "dev_a".to_string(),
            "temperature".to_string(),
            1700000000.0,
            21.5,
        ),
        (
            "dev_b".to_string(),
            "pressure".to_string(),
            1700000120.0,
            1013.2,
        ),
        (
            "dev_b".to_string(),
            "temperature".to_string(),
            1700000060.5,
            -3.75,
        ),
    ];
    assert_eq!(seen, expected);

    // The same kind of file with its own header names, mapped with --columns.
    let mapped = dir.0.join("mapped.csv");
    std::fs::write(
        &mapped,
        "time,station,kind,reading\n1700000300,st_9,wind,4.5\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = run_publisher(&[
        "--replay",
        mapped.to_str().unwrap(),
        "--columns",
        "ts=time,device=station,metric=kind,value=reading",
        "--broker",
        &url,
    ]);
    assert!(ok, "publisher failed: {stdout}\n{stderr}");
    let got = sub.expect_exactly(5);
    let last = &got[4];
    assert_eq!(last.topic, "iot/sensors/wind");
    assert_eq!(last.payload["device_id"], "st_9");
    assert_eq!(last.payload["value"].as_f64(), Some(4.5));
}

#[test]
fn replay_of_the_seattle_year_arrives_exactly() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/seattle-temps-2010.csv");
    if !path.is_file() {
        eprintln!("skipped: {} is not present", path.display());
        return;
    }
    let Some(broker) = Broker::start() else {
        return;
    };
    let sub = Subscriber::start(&broker);
    let expected: BTreeMap<u64, u64> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse::<u64>().unwrap(),
                f[3].parse::<f64>().unwrap().to_bits(),
            )
        })
        .collect();
    let url = broker.url();
    let (ok, stdout, stderr) =
        run_publisher(&["--replay", path.to_str().unwrap(), "--broker", &url]);
    assert!(ok, "publisher failed: {stdout}\n{stderr}");
    let got = sub.expect_exactly(expected.len());
    let received: BTreeMap<u64, u64> = got
        .iter()
        .map(|m| {
            assert_eq!(m.payload["device_id"], "seattle_wa");
            (
                m.payload["timestamp"].as_u64().expect("whole seconds"),
                m.payload["value"].as_f64().unwrap().to_bits(),
            )
        })
        .collect();
    assert_eq!(received, expected, "every row, each value exact");
}

/// A socat pseudo-terminal pair: the test writes to `device`, the publisher reads `port`.
struct PtyPair {
    device: PathBuf,
    port: PathBuf,
    _process: Running,
}

impl PtyPair {
    fn start(socat: &Path, dir: &Path) -> PtyPair {
        let device = dir.join("arduino");
        let port = dir.join("ttyACM");
        let child = Command::new(socat)
            .arg("-d")
            .arg("-d")
            .arg(format!("pty,raw,echo=0,link={}", device.display()))
            .arg(format!("pty,raw,echo=0,link={}", port.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start socat");
        let pair = PtyPair {
            device,
            port,
            _process: Running(child),
        };
        wait_for(Duration::from_secs(10), "socat's pty links", || {
            pair.device.exists() && pair.port.exists()
        });
        pair
    }

    fn write_lines(&self, lines: &str) {
        let mut tty = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.device)
            .expect("open the device end");
        tty.write_all(lines.as_bytes()).expect("write to the pty");
        tty.flush().unwrap();
    }
}

/// Collects a child's stderr lines on a thread.
fn capture_stderr(child: &mut Child) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let stderr = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

fn count_matching(lines: &Mutex<Vec<String>>, needle: &str) -> usize {
    lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

#[test]
fn serial_bridge_parses_every_format_and_survives_hang_up() {
    let Some(socat) = find_program("socat", &[]) else {
        eprintln!("skipped: socat is not installed");
        return;
    };
    let Some(broker) = Broker::start() else {
        return;
    };
    let sub = Subscriber::start(&broker);
    let dir = Scratch::new("serial");
    let pty = PtyPair::start(&socat, &dir.0);
    let url = broker.url();
    let mut child = Command::new(PUBLISHER)
        .args(["--serial", pty.port.to_str().unwrap(), "--baud", "9600"])
        .args(["--device_id", "uno_1", "--broker", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start minitrue-publisher");
    let stderr = capture_stderr(&mut child);
    let mut publisher = Running(child);
    // The port is flushed when opened: write only once the bridge has it open.
    wait_for(
        Duration::from_secs(10),
        "the bridge to open the port",
        || count_matching(&stderr, "open at 9600 baud") > 0,
    );

    pty.write_lines(concat!(
        "# minitrue_sensor ready\r\n",
        "temperature:23.45\r\n",
        "humidity=40.1,light=312\r\n",
        "{\"metric_name\":\"battery\",\"value\":4.87}\n",
        "{\"device_id\":\"uno_2\",\"metric_name\":\"pressure\",\"timestamp\":1700000000,\"value\":1013.25}\n",
        "garbage without a separator\n",
        "temperature:nan\n",
        "{\"metric_name\":\"broken\"\n",
        "co2: 415\n",
    ));
    let got = sub.expect_exactly(6);
    let mut readings: Vec<(String, String, f64)> = got
        .iter()
        .map(|m| {
            check_contract(m);
            (
                m.payload["device_id"].as_str().unwrap().to_string(),
                m.payload["metric_name"].as_str().unwrap().to_string(),
                m.payload["value"].as_f64().unwrap(),
            )
        })
        .collect();
    readings.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let r = |d: &str, m: &str, v: f64| (d.to_string(), m.to_string(), v);
    assert_eq!(
        readings,
        vec![
            r("uno_1", "battery", 4.87),
            r("uno_1", "co2", 415.0),
            r("uno_1", "humidity", 40.1),
            r("uno_1", "light", 312.0),
            r("uno_1", "temperature", 23.45),
            r("uno_2", "pressure", 1013.25),
        ]
    );
    let pressure = got
        .iter()
        .find(|m| m.payload["device_id"] == "uno_2")
        .unwrap();
    assert_eq!(pressure.payload["timestamp"].as_f64(), Some(1700000000.0));
    wait_for(Duration::from_secs(5), "the bad line report", || {
        count_matching(&stderr, "skipped line") > 0
    });

    // Hang up: the bridge must report and keep trying, not exit.
    drop(pty);
    wait_for(Duration::from_secs(10), "reconnect reports", || {
        count_matching(&stderr, "reconnecting") >= 2
    });
    assert!(
        publisher.0.try_wait().unwrap().is_none(),
        "the bridge exited after a hang-up: {:?}",
        stderr.lock().unwrap()
    );

    // Plug back in: the bridge reopens the port and carries on.
    let pty = PtyPair::start(&socat, &dir.0);
    wait_for(
        Duration::from_secs(15),
        "the bridge to reopen the port",
        || count_matching(&stderr, "reopened at 9600 baud") > 0,
    );
    pty.write_lines("temperature:19.5\n");
    assert!(
        sub.wait_for_message(Duration::from_secs(10), |m| m.payload["value"].as_f64()
            == Some(19.5)),
        "no reading after reopening"
    );
    assert!(publisher.0.try_wait().unwrap().is_none());
}

#[test]
fn load_mode_reports_every_publish_acknowledged() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let url = broker.url();
    let (ok, stdout, stderr) = run_publisher(&[
        "--load",
        "--devices",
        "50",
        "--rate",
        "2000",
        "--duration",
        "2",
        "--broker",
        &url,
    ]);
    assert!(ok, "publisher failed: {stdout}\n{stderr}");
    let s = summary(&stdout);
    assert_eq!(s["sent"], s["acked"], "{stdout}");
    assert!(
        (3000.0..=4001.0).contains(&s["sent"]),
        "2 s at 2000/s should send about 4000: {stdout}"
    );
    assert!(s["elapsed"] >= 1.9, "{stdout}");
}
