//! Black-box tests of `minitrue-broker`: the real binary on a free loopback port, real MQTT
//! clients (rumqttc). The same tests run against Mosquitto, the reference broker, so a failure
//! here is read against what a well-known broker does; they skip Mosquitto, saying so, only
//! when its binary is absent.
//!
//! The claim that matters most is tested, not assumed: QoS 1 messages published while a
//! persistent-session subscriber (`clean_session = false`) is away are delivered when it
//! comes back with the same client id.
//!
//! Every broker process is killed by its PID when its test ends, also on failure
//! ([`BrokerProcess`] does it on drop).

#[path = "common/ports.rs"]
mod ports;
use ports::free_port;
use std::collections::HashSet;
use std::env;
use std::fs;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rumqttc::{Client, Connection, Event, MqttOptions, Outgoing, Packet, QoS};

/// Time a broker has to start accepting connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest quiet spell while messages are still owed before a receiver gives up.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a broker is given to notice that a subscriber's socket is gone.
const NOTICE_DEPARTURE: Duration = Duration::from_millis(300);
/// Messages published while the persistent subscriber is away.
const OFFLINE_MESSAGES: u32 = 500;
/// Messages of the online publish/subscribe test.
const ONLINE_MESSAGES: u32 = 1000;
/// Sensors the test messages are spread over, one topic each under `iot/sensors/`.
const SENSORS: u32 = 10;
const FILTER: &str = "iot/sensors/#";

/// Which broker a test runs against.
#[derive(Debug, Clone, Copy)]
enum BrokerKind {
    Minitrue,
    Mosquitto,
}

/// A running broker process, killed by PID when dropped.
struct BrokerProcess {
    kind: BrokerKind,
    child: Child,
    port: u16,
    /// A config file written for this process, removed with it.
    config_file: Option<PathBuf>,
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(path) = &self.config_file {
            let _ = fs::remove_file(path);
        }
    }
}

impl BrokerProcess {
    /// Starts `kind` on a free loopback port; `None` (with a message) when it is Mosquitto
    /// and Mosquitto is not installed.
    fn start(kind: BrokerKind) -> Option<BrokerProcess> {
        BrokerProcess::start_with(kind, &[])
    }

    /// As [`BrokerProcess::start`], with extra flags for `minitrue-broker`.
    fn start_with(kind: BrokerKind, minitrue_flags: &[&str]) -> Option<BrokerProcess> {
        let port = free_port();
        let mut config_file = None;
        let mut command = match kind {
            BrokerKind::Minitrue => {
                let mut command = Command::new(env!("CARGO_BIN_EXE_minitrue-broker"));
                command.args(["--listen", &format!("127.0.0.1:{port}")]);
                command.args(minitrue_flags);
                command
            }
            BrokerKind::Mosquitto => {
                let Some(binary) = find_mosquitto() else {
                    eprintln!("skipped against mosquitto: no `mosquitto` binary on PATH or in /usr/sbin (apt-get install mosquitto)");
                    return None;
                };
                let path = env::temp_dir().join(format!(
                    "minitrue-test-mosquitto-{}-{port}.conf",
                    std::process::id()
                ));
                let config = format!(
                    "listener {port} 127.0.0.1\nallow_anonymous true\n\
                     max_queued_messages 100000\npersistence false\n"
                );
                fs::write(&path, config).expect("write mosquitto config to the temp dir");
                let mut command = Command::new(binary);
                command.arg("-c").arg(&path);
                config_file = Some(path);
                command
            }
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {kind:?}: {e}"));
        let mut broker = BrokerProcess {
            kind,
            child,
            port,
            config_file,
        };
        broker.wait_until_listening();
        Some(broker)
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll broker process") {
                panic!(
                    "{:?} on port {} exited early: {status}",
                    self.kind, self.port
                );
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{:?} not listening on port {} after {START_TIMEOUT:?}",
                self.kind,
                self.port
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Debian installs `mosquitto` in /usr/sbin, which a non-root PATH may lack.
fn find_mosquitto() -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("mosquitto"))
        .find(|candidate| candidate.is_file())
}

/// Connects a client and waits for CONNACK; returns the broker's `session_present`.
fn connect(
    port: u16,
    client_id: &str,
    clean_session: bool,
    cap: usize,
) -> (Client, Connection, bool) {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
    options
        .set_clean_session(clean_session)
        .set_keep_alive(Duration::from_secs(30));
    let (client, mut connection) = Client::new(options, cap);
    loop {
        match connection.recv_timeout(START_TIMEOUT) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                return (client, connection, ack.session_present)
            }
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => panic!("{client_id}: connect to port {port}: {e}"),
            Err(e) => panic!("{client_id}: no CONNACK from port {port}: {e:?}"),
        }
    }
}

/// Subscribes to [`FILTER`] at QoS 1 and waits for SUBACK.
fn subscribe(client: &Client, connection: &mut Connection, client_id: &str) {
    client
        .subscribe(FILTER, QoS::AtLeastOnce)
        .expect("queue SUBSCRIBE");
    loop {
        match connection.recv_timeout(IDLE_TIMEOUT) {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => return,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => panic!("{client_id}: subscribe: {e}"),
            Err(e) => panic!("{client_id}: no SUBACK: {e:?}"),
        }
    }
}

/// Publishes messages `0..count` at QoS 1 (sequence number as payload, spread over
/// [`SENSORS`] topics) and returns once every one is acknowledged.
fn publish_all(port: u16, client_id: &str, count: u32) {
    publish_all_sized(port, client_id, count, 0)
}

/// As [`publish_all`], with the payload padded to at least `payload_len` bytes.
fn publish_all_sized(port: u16, client_id: &str, count: u32, payload_len: usize) {
    let (client, mut connection, _) = connect(port, client_id, true, 1024);
    let publisher = thread::spawn(move || {
        for seq in 0..count {
            let mut payload = seq.to_be_bytes().to_vec();
            payload.resize(payload_len.max(4), b' ');
            let topic = format!("iot/sensors/s{}/reading", seq % SENSORS);
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .expect("queue PUBLISH");
        }
        client
    });
    let mut acked = 0;
    while acked < count {
        match connection.recv_timeout(IDLE_TIMEOUT) {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => panic!("{client_id}: publish: {e} after {acked} acks"),
            Err(e) => panic!("{client_id}: {acked} of {count} PUBACKs, then none: {e:?}"),
        }
    }
    publisher.join().expect("publisher thread");
}

/// What a subscriber received: sequence numbers in arrival order.
struct Received {
    seqs: Vec<u32>,
}

impl Received {
    /// Receives until every sequence number in `0..count` has arrived, or nothing arrives for
    /// [`IDLE_TIMEOUT`].
    fn collect(connection: &mut Connection, client_id: &str, count: u32) -> Received {
        Received::collect_until_idle(connection, client_id, count, IDLE_TIMEOUT)
    }

    /// As [`Received::collect`], giving up after `idle` without a message.
    fn collect_until_idle(
        connection: &mut Connection,
        client_id: &str,
        count: u32,
        idle: Duration,
    ) -> Received {
        let mut seqs = Vec::new();
        let mut distinct = HashSet::new();
        while distinct.len() < count as usize {
            match connection.recv_timeout(idle) {
                Ok(Ok(Event::Incoming(Packet::Publish(publish)))) => {
                    let bytes: [u8; 4] = publish.payload[..4]
                        .try_into()
                        .expect("payload starts with a u32 sequence number");
                    let seq = u32::from_be_bytes(bytes);
                    distinct.insert(seq);
                    seqs.push(seq);
                }
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => panic!("{client_id}: receive: {e} after {} messages", seqs.len()),
                Err(_) => break,
            }
        }
        Received { seqs }
    }

    /// Asserts that each of `0..count` arrived, exactly once and in order.
    fn assert_complete_in_order(&self, what: &str, count: u32) {
        let distinct: HashSet<u32> = self.seqs.iter().copied().collect();
        let missing: Vec<u32> = (0..count).filter(|s| !distinct.contains(s)).collect();
        assert!(
            missing.is_empty(),
            "{what}: received {} of {count} ({} missing, first {:?})",
            distinct.len(),
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        assert_eq!(
            self.seqs.len(),
            count as usize,
            "{what}: {} duplicates",
            self.seqs.len() - count as usize
        );
        let first_out_of_order = self.seqs.windows(2).position(|w| w[0] >= w[1]);
        assert_eq!(first_out_of_order, None, "{what}: out of order");
    }
}

/// How the persistent subscriber leaves and comes back.
#[derive(Debug, Clone, Copy)]
struct Absence {
    /// Send DISCONNECT before closing, rather than just dropping the socket (a crash, a pulled
    /// cable as the broker sees it).
    graceful: bool,
    /// Subscribe again after reconnecting, as many clients do whether or not the session
    /// was kept.
    resubscribe: bool,
}

/// The claim: QoS 1 messages published while a persistent subscriber is away reach it when it
/// reconnects with the same client id.
fn offline_messages_reach_returning_subscriber(kind: BrokerKind, absence: Absence) {
    let Some(broker) = BrokerProcess::start(kind) else {
        return;
    };
    let port = broker.port;
    let what = format!("{kind:?} {absence:?}");
    let subscriber_id = "minitrue-ingest-1";

    let (client, mut connection, _) = connect(port, subscriber_id, false, 64);
    subscribe(&client, &mut connection, subscriber_id);
    if absence.graceful {
        client.disconnect().expect("queue DISCONNECT");
        loop {
            match connection.recv_timeout(IDLE_TIMEOUT) {
                Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) => break,
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => panic!("{what}: disconnect: {e}"),
                Err(e) => panic!("{what}: DISCONNECT never went out: {e:?}"),
            }
        }
    }
    drop(connection);
    drop(client);
    thread::sleep(NOTICE_DEPARTURE);

    publish_all(port, "sensor-gateway", OFFLINE_MESSAGES);

    let (client, mut connection, session_present) = connect(port, subscriber_id, false, 64);
    assert!(
        session_present,
        "{what}: session not kept (CONNACK session_present = 0)"
    );
    if absence.resubscribe {
        client
            .subscribe(FILTER, QoS::AtLeastOnce)
            .expect("queue SUBSCRIBE");
    }
    let received = Received::collect(&mut connection, subscriber_id, OFFLINE_MESSAGES);
    received.assert_complete_in_order(&what, OFFLINE_MESSAGES);
    drop(broker);
}

/// Past `--max-queued-mb` an offline subscriber loses the oldest messages and keeps the
/// newest, in order (Mosquitto, past `max_queued_messages`, keeps the oldest instead).
#[test]
fn minitrue_keeps_newest_when_offline_backlog_exceeds_max_queued() {
    const MESSAGES: u32 = 5000;
    const PAYLOAD_BYTES: usize = 1000;
    let broker = BrokerProcess::start_with(BrokerKind::Minitrue, &["--max-queued-mb", "1"])
        .expect("minitrue-broker starts");
    let port = broker.port;
    let subscriber_id = "minitrue-ingest-overflow";
    let (client, mut connection, _) = connect(port, subscriber_id, false, 64);
    subscribe(&client, &mut connection, subscriber_id);
    drop(connection);
    drop(client);
    thread::sleep(NOTICE_DEPARTURE);

    publish_all_sized(port, "sensor-gateway", MESSAGES, PAYLOAD_BYTES);

    let (_client, mut connection, session_present) = connect(port, subscriber_id, false, 64);
    assert!(session_present);
    let received = Received::collect_until_idle(
        &mut connection,
        subscriber_id,
        MESSAGES,
        Duration::from_secs(1),
    );
    let seqs = &received.seqs;
    println!(
        "kept the newest {} of {MESSAGES} messages of {PAYLOAD_BYTES} bytes",
        seqs.len()
    );
    // About 1 KiB a message, 1 to 2 MiB kept (whole 1 MiB segments are dropped).
    assert!(
        (1000..=2100).contains(&seqs.len()),
        "kept {} of {MESSAGES}",
        seqs.len()
    );
    let first = seqs[0];
    let newest: Vec<u32> = (first..MESSAGES).collect();
    assert_eq!(seqs, &newest, "not the newest {} in order", seqs.len());
    drop(broker);
}

/// Messages published while a subscriber is connected reach it complete and in order.
fn online_messages_arrive_complete_in_order(kind: BrokerKind) {
    let Some(broker) = BrokerProcess::start(kind) else {
        return;
    };
    let port = broker.port;
    let subscriber_id = "minitrue-ingest-online";
    let (client, mut connection, _) = connect(port, subscriber_id, true, 64);
    subscribe(&client, &mut connection, subscriber_id);

    let publisher = thread::spawn(move || publish_all(port, "sensor-gateway", ONLINE_MESSAGES));
    let received = Received::collect(&mut connection, subscriber_id, ONLINE_MESSAGES);
    publisher.join().expect("publisher thread");
    received.assert_complete_in_order(&format!("{kind:?} online"), ONLINE_MESSAGES);
    drop(broker);
}

/// A sensor that publishes before anyone subscribes is acknowledged, not disconnected.
fn publishes_nobody_subscribes_to_are_accepted(kind: BrokerKind) {
    let Some(broker) = BrokerProcess::start(kind) else {
        return;
    };
    publish_all(broker.port, "early-sensor", 100);
    drop(broker);
}

const ABRUPT: Absence = Absence {
    graceful: false,
    resubscribe: false,
};
const GRACEFUL_RESUBSCRIBING: Absence = Absence {
    graceful: true,
    resubscribe: true,
};

#[test]
fn minitrue_keeps_qos1_for_abruptly_gone_persistent_subscriber() {
    offline_messages_reach_returning_subscriber(BrokerKind::Minitrue, ABRUPT);
}

#[test]
fn minitrue_keeps_qos1_for_disconnected_resubscribing_subscriber() {
    offline_messages_reach_returning_subscriber(BrokerKind::Minitrue, GRACEFUL_RESUBSCRIBING);
}

#[test]
fn mosquitto_keeps_qos1_for_abruptly_gone_persistent_subscriber() {
    offline_messages_reach_returning_subscriber(BrokerKind::Mosquitto, ABRUPT);
}

#[test]
fn mosquitto_keeps_qos1_for_disconnected_resubscribing_subscriber() {
    offline_messages_reach_returning_subscriber(BrokerKind::Mosquitto, GRACEFUL_RESUBSCRIBING);
}

#[test]
fn minitrue_accepts_publishes_nobody_subscribes_to() {
    publishes_nobody_subscribes_to_are_accepted(BrokerKind::Minitrue);
}

#[test]
fn mosquitto_accepts_publishes_nobody_subscribes_to() {
    publishes_nobody_subscribes_to_are_accepted(BrokerKind::Mosquitto);
}

#[test]
fn minitrue_delivers_online_qos1_complete_in_order() {
    online_messages_arrive_complete_in_order(BrokerKind::Minitrue);
}

#[test]
fn mosquitto_delivers_online_qos1_complete_in_order() {
    online_messages_arrive_complete_in_order(BrokerKind::Mosquitto);
}

/// Messages of the delivery-rate measurement, each the size of a small JSON sensor reading.
const RATE_MESSAGES: u32 = 100_000;
const RATE_PAYLOAD_BYTES: usize = 64;

/// QoS 1 messages a second from one publisher through the broker to one plain subscriber,
/// timed from the first publish to the last delivery. Run in release:
/// `cargo test --release --test broker -- --ignored --nocapture`.
fn qos1_delivery_rate(kind: BrokerKind) {
    let Some(broker) = BrokerProcess::start(kind) else {
        return;
    };
    let port = broker.port;
    let (client, mut connection, _) = connect(port, "rate-subscriber", true, 64);
    subscribe(&client, &mut connection, "rate-subscriber");

    let started = Instant::now();
    let publisher = thread::spawn(move || {
        publish_all_sized(port, "rate-publisher", RATE_MESSAGES, RATE_PAYLOAD_BYTES)
    });
    let received = Received::collect(&mut connection, "rate-subscriber", RATE_MESSAGES);
    let elapsed = started.elapsed();
    publisher.join().expect("publisher thread");
    received.assert_complete_in_order(&format!("{kind:?} rate"), RATE_MESSAGES);
    println!(
        "{kind:?}: {RATE_MESSAGES} QoS 1 messages of {RATE_PAYLOAD_BYTES} bytes in {:.2} s: {:.0} messages/s",
        elapsed.as_secs_f64(),
        f64::from(RATE_MESSAGES) / elapsed.as_secs_f64()
    );
    drop(broker);
}

#[test]
#[ignore = "measurement; run with --ignored --nocapture, in release"]
fn minitrue_qos1_delivery_rate() {
    qos1_delivery_rate(BrokerKind::Minitrue);
}

#[test]
#[ignore = "measurement; run with --ignored --nocapture, in release"]
fn mosquitto_qos1_delivery_rate() {
    qos1_delivery_rate(BrokerKind::Mosquitto);
}
