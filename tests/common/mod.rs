//! Harness for black-box tests: temporary directories, free loopback ports, a
//! `minitrue-server` child and MQTT brokers (the embedded `minitrue-broker` and Mosquitto)
//! that are killed by PID when their guards drop (also when a test fails), a minimal
//! blocking HTTP/1.1 client over `std::net` (one request per connection), and a QoS 1 MQTT
//! publisher that counts the broker's PUBACKs. [`prometheus`] runs a real Prometheus;
//! [`cluster`] holds what tests of several nodes share (flags, ring owners, status and count
//! queries, log tails).
//!
//! Every wait is bounded: [`wait_until`] panics with what it waited for at its deadline.

#![allow(dead_code)]

pub mod certs;
pub mod cluster;
mod ports;
pub mod prometheus;
pub mod pyclients;
pub use ports::free_port;

/// Percent-encodes a query-string value (everything but RFC 3986's unreserved bytes).
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet, QoS};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a started server may take to answer `/health`.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// How long one HTTP exchange may take.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "minitrue-it-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `done` every 20 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` (`TERM`, `KILL`) to `child` and reaps it; panics if it is still running
/// after `timeout`.
fn signal_and_reap(child: &mut Child, signal: &str, timeout: Duration, what: &str) -> ExitStatus {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {what} failed");
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what} still running {timeout:?} after SIGTERM"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// A running `minitrue-server`; killed (by PID) when dropped. It can be killed and started
/// again with the same flags (node id, ports, data directory, broker).
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub node_id: String,
    args: Vec<String>,
    envs: Vec<(String, PathBuf)>,
    /// A command (and its arguments) that runs the binary, such as `prlimit ... --`.
    wrapper: Vec<String>,
    data_dir: PathBuf,
    starts: usize,
    log: PathBuf,
}

impl Server {
    /// Starts a node `node_id` storing under `data_dir` and waits until `/health` answers.
    /// Its broker is unreachable unless `extra` names one (`--broker=...`).
    pub fn start(node_id: &str, data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_with_env(node_id, data_dir, extra, &[])
    }

    /// Like [`Server::start`], ingesting from the broker at `broker_url`.
    pub fn start_with_broker(
        node_id: &str,
        data_dir: &Path,
        broker_url: &str,
        extra: &[&str],
    ) -> Server {
        let broker = format!("--broker={broker_url}");
        let mut args = vec![broker.as_str()];
        args.extend_from_slice(extra);
        Server::start_with_env(node_id, data_dir, &args, &[])
    }

    /// Like [`Server::start`] with extra environment variables.
    pub fn start_with_env(
        node_id: &str,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &Path)],
    ) -> Server {
        Server::start_wrapped(node_id, data_dir, extra, env, &[])
    }

    /// Like [`Server::start_with_env`], run by `wrapper` (a command that execs the binary
    /// path and arguments appended to it, so the PID stays the server's).
    pub fn start_wrapped(
        node_id: &str,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &Path)],
        wrapper: &[&str],
    ) -> Server {
        let port = free_port();
        let tcp_port = free_port();
        let mut args = vec![
            format!("--node_id={node_id}"),
            format!("--port={port}"),
            format!("--tcp_port={tcp_port}"),
            format!("--data_dir={}", data_dir.display()),
            "--bind=127.0.0.1".to_string(),
            "--http_workers=4".to_string(),
        ];
        if !extra.iter().any(|a| a.starts_with("--broker")) {
            // Nothing listens on port 1: the API must work without a broker.
            args.push("--broker=tcp://127.0.0.1:1".to_string());
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut server = Server {
            child: None,
            port,
            node_id: node_id.to_string(),
            args,
            envs: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_path_buf()))
                .collect(),
            wrapper: wrapper.iter().map(|w| w.to_string()).collect(),
            data_dir: data_dir.to_path_buf(),
            starts: 0,
            log: PathBuf::new(),
        };
        server.spawn();
        server
    }

    /// Like [`Server::start_with_broker`] on HTTP port `port` and gossip port `tcp_port`
    /// chosen by the caller, so peers started before this node can name it in `--seeds`.
    pub fn start_on_ports(
        node_id: &str,
        data_dir: &Path,
        broker_url: &str,
        port: u16,
        tcp_port: u16,
        extra: &[&str],
    ) -> Server {
        let mut args = vec![
            format!("--node_id={node_id}"),
            format!("--port={port}"),
            format!("--tcp_port={tcp_port}"),
            format!("--data_dir={}", data_dir.display()),
            format!("--broker={broker_url}"),
            "--bind=127.0.0.1".to_string(),
            "--http_workers=4".to_string(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut server = Server {
            child: None,
            port,
            node_id: node_id.to_string(),
            args,
            envs: Vec::new(),
            wrapper: Vec::new(),
            data_dir: data_dir.to_path_buf(),
            starts: 0,
            log: PathBuf::new(),
        };
        server.spawn();
        server
    }

    /// Whether the process is running (started and not yet killed or terminated).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the running process without waiting.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.node_id);
    }

    /// Starts the process (again) with the same flags and waits until `/health` answers.
    pub fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "server {} still running",
            self.node_id
        );
        self.spawn();
    }

    fn spawn(&mut self) {
        self.starts += 1;
        self.log = self.data_dir.join(format!(
            "{}-{}-{}.log",
            self.node_id, self.port, self.starts
        ));
        let stderr = std::fs::File::create(&self.log).expect("create server log");
        let binary = env!("CARGO_BIN_EXE_minitrue-server");
        let mut command = match self.wrapper.split_first() {
            None => Command::new(binary),
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
        };
        let child = command
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn minitrue-server");
        self.child = Some(child);
        self.wait_healthy();
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("server exited early ({status}):\n{}", self.log_text());
                }
            }
            if let Ok(r) = try_request(self.port, "GET", "/health", &[], &[]) {
                // Another status means another binary (a stale build in a shared target
                // directory): fail now rather than after the timeout.
                assert_eq!(r.status, 200, "/health answered {}: {}", r.status, r.text());
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("server not healthy in time:\n{}", self.log_text());
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// The stderr of the current (or last) run so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("server running");
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILL: no chance to flush, acknowledge or disconnect.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("server running");
        signal_and_reap(
            &mut child,
            "KILL",
            Duration::from_secs(10),
            "minitrue-server",
        );
    }

    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> Response {
        request(self.port, method, path, body)
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[])
    }

    pub fn post(&self, path: &str, body: &str) -> Response {
        self.request("POST", path, body.as_bytes())
    }

    /// `GET /status` as JSON.
    pub fn status(&self) -> Value {
        let r = self.get("/status");
        assert_eq!(r.status, 200, "/status: {}", r.text());
        r.json()
    }

    /// `/status` `ingest_accepted`: readings accepted since this process started.
    pub fn ingest_accepted(&self) -> u64 {
        self.status()["ingest_accepted"]
            .as_u64()
            .expect("ingest_accepted is a number")
    }

    /// `POST /query` over all time: `(count, result)` of `operation` on one series.
    pub fn query(&self, device_id: &str, metric_name: &str, operation: &str) -> (u64, Value) {
        self.query_range(device_id, metric_name, operation, 0, 0)
    }

    /// `POST /query` over `[start, end]` unix seconds (inclusive; 0 is open).
    pub fn query_range(
        &self,
        device_id: &str,
        metric_name: &str,
        operation: &str,
        start: i64,
        end: i64,
    ) -> (u64, Value) {
        let body = serde_json::json!({
            "device_id": device_id,
            "metric_name": metric_name,
            "operation": operation,
            "start_time": start,
            "end_time": end,
        });
        let r = self.post("/query", &body.to_string());
        assert_eq!(r.status, 200, "/query {body}: {}", r.text());
        let v = r.json();
        let count = v["count"].as_u64().expect("count is a number");
        (count, v["result"].clone())
    }

    /// Points stored in one series.
    pub fn count(&self, device_id: &str, metric_name: &str) -> u64 {
        self.query(device_id, metric_name, "count").0
    }

    /// Waits until the node's MQTT subscription is in place at `broker`: publishes probe
    /// readings (series `probe|probe`, distinct timestamps) one at a time until one is
    /// stored. A broker drops publishes that match no subscription, so test data published
    /// before this returns could be lost. Probes are stored like any reading: account for
    /// them with `self.count(PROBE_DEVICE, PROBE_METRIC)`.
    pub fn wait_subscribed(&self, broker: &Broker) {
        self.wait_subscribed_on(broker, &format!("iot/sensors/{PROBE_METRIC}"));
    }

    /// [`Server::wait_subscribed`] with the probes published to `topic`, for a node whose
    /// `--topic` layouts do not take `iot/sensors/probe`.
    pub fn wait_subscribed_on(&self, broker: &Broker, topic: &str) {
        static NEXT_PROBE: AtomicU64 = AtomicU64::new(0);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut probe = Publisher::connect(broker, &format!("probe-{}", self.port));
        let before = self.count(PROBE_DEVICE, PROBE_METRIC);
        loop {
            let n = NEXT_PROBE.fetch_add(1, Ordering::Relaxed);
            probe.publish(
                topic,
                format!(
                    r#"{{"device_id":"{PROBE_DEVICE}","metric_name":"{PROBE_METRIC}","timestamp":{},"value":{n}}}"#,
                    PROBE_BASE_SECONDS + n
                ),
            );
            let answered = Instant::now() + Duration::from_millis(300);
            while Instant::now() < answered {
                if self.count(PROBE_DEVICE, PROBE_METRIC) > before {
                    probe.finish(Duration::from_secs(10));
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
            assert!(
                Instant::now() < deadline,
                "node {} never stored a probe published to {:?} on port {}:\n{}",
                self.node_id,
                broker.kind,
                broker.port,
                self.log_text()
            );
        }
    }
}

/// Series of the readings [`Server::wait_subscribed`] publishes.
pub const PROBE_DEVICE: &str = "probe";
pub const PROBE_METRIC: &str = "probe";
/// Probe timestamps start here (2001-09-09), far from any test's data.
const PROBE_BASE_SECONDS: u64 = 1_000_000_000;

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---- MQTT brokers ----------------------------------------------------------------------------

/// How long a broker may take to accept connections, and to exit after SIGTERM.
pub const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// Which broker a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// `minitrue-broker`, our binary (rumqttd): always available; sessions in memory only.
    Embedded,
    /// Mosquitto, the reference broker; tests against it skip when it is not installed.
    Mosquitto,
}

/// A broker process on a free loopback port, killed by PID when dropped. It can be stopped
/// and started again on the same port.
pub struct Broker {
    pub kind: BrokerKind,
    pub port: u16,
    child: Option<Child>,
    program: PathBuf,
    args: Vec<String>,
    /// Config, log and (Mosquitto with persistence) the database.
    dir: TempDir,
    starts: usize,
}

impl Broker {
    /// Starts `kind`; `None` (with a message on stderr) if it is Mosquitto and Mosquitto is
    /// not installed.
    pub fn start(kind: BrokerKind) -> Option<Broker> {
        match kind {
            BrokerKind::Embedded => Some(Broker::start_embedded()),
            BrokerKind::Mosquitto => Broker::start_mosquitto(),
        }
    }

    /// `minitrue-broker` on a free port.
    pub fn start_embedded() -> Broker {
        Broker::start_embedded_with(&[])
    }

    /// `minitrue-broker` on a free port with more flags (`--username`, `--tls-listen` ...);
    /// [`Broker::port`] is the plain listener's.
    pub fn start_embedded_with(extra: &[String]) -> Broker {
        let port = free_port();
        let mut args = vec![
            "--listen".to_string(),
            format!("127.0.0.1:{port}"),
            "--log-level".to_string(),
            "warn".to_string(),
        ];
        args.extend_from_slice(extra);
        let program = PathBuf::from(env!("CARGO_BIN_EXE_minitrue-broker"));
        Broker::launch(
            BrokerKind::Embedded,
            port,
            program,
            args,
            TempDir::new("broker"),
        )
    }

    /// Mosquitto on a free port, messages in memory only.
    pub fn start_mosquitto() -> Option<Broker> {
        Broker::mosquitto(false)
    }

    /// Mosquitto on a free port that saves sessions and queued messages to disk (every
    /// second, and on SIGTERM), so they survive [`Broker::stop`] + [`Broker::restart`].
    pub fn start_mosquitto_persistent() -> Option<Broker> {
        Broker::mosquitto(true)
    }

    fn mosquitto(persistent: bool) -> Option<Broker> {
        let dir = TempDir::new("mosquitto");
        let mut settings = "allow_anonymous true\n".to_string();
        if persistent {
            let db = dir.path().join("db");
            std::fs::create_dir_all(&db).expect("create mosquitto db dir");
            // Started as root, Mosquitto drops to its own user, which must write here.
            make_world_writable(&db);
            settings.push_str(&format!(
                "persistence true\npersistence_location {}/\nautosave_interval 1\n",
                db.display()
            ));
        } else {
            settings.push_str("persistence false\n");
        }
        Broker::mosquitto_in(dir, &settings)
    }

    /// Mosquitto with one listener on a free port whose settings (after the `listener`
    /// line: TLS files, `allow_anonymous`, `password_file` ...) the caller writes; messages
    /// in memory only. Files it reads must be readable by the `mosquitto` user, which it
    /// becomes when started as root. `None` (with a message) if Mosquitto is not installed.
    pub fn start_mosquitto_with(settings: &str) -> Option<Broker> {
        Broker::mosquitto_in(
            TempDir::new("mosquitto"),
            &format!("{settings}\npersistence false\n"),
        )
    }

    /// Mosquitto on a free port: a `listener` line, then `settings`, config and log in `dir`.
    fn mosquitto_in(dir: TempDir, settings: &str) -> Option<Broker> {
        let Some(program) = find_mosquitto() else {
            eprintln!(
                "skipping the Mosquitto variant: no `mosquitto` on PATH or in /usr/sbin \
                 (apt-get install mosquitto)"
            );
            return None;
        };
        let port = free_port();
        let conf = format!("listener {port} 127.0.0.1\n{settings}max_queued_messages 100000\n");
        let conf_path = dir.path().join("mosquitto.conf");
        std::fs::write(&conf_path, conf).expect("write mosquitto.conf");
        let args = vec!["-c".to_string(), conf_path.display().to_string()];
        Some(Broker::launch(
            BrokerKind::Mosquitto,
            port,
            program,
            args,
            dir,
        ))
    }

    fn launch(
        kind: BrokerKind,
        port: u16,
        program: PathBuf,
        args: Vec<String>,
        dir: TempDir,
    ) -> Broker {
        let mut broker = Broker {
            kind,
            port,
            child: None,
            program,
            args,
            dir,
            starts: 0,
        };
        broker.spawn();
        broker
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path()).expect("create broker log");
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {:?}: {e}", self.kind));
        self.child = Some(child);
        let deadline = Instant::now() + BROKER_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("just spawned");
            if let Some(status) = child.try_wait().expect("poll broker") {
                self.child = None;
                panic!(
                    "{:?} on port {} exited early ({status}):\n{}",
                    self.kind,
                    self.port,
                    self.log_text()
                );
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{:?} not listening on port {} after {BROKER_TIMEOUT:?}:\n{}",
                self.kind,
                self.port,
                self.log_text()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("broker-{}.log", self.starts))
    }

    /// The broker's stderr of the current (or last) run.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `tcp://127.0.0.1:PORT`, as `--broker` takes it.
    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// SIGTERM, then waits for the exit (Mosquitto saves its database on the way out).
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("broker running");
        signal_and_reap(&mut child, "TERM", BROKER_TIMEOUT, "broker");
    }

    /// SIGKILL: whatever the broker held only in memory is gone.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("broker running");
        signal_and_reap(&mut child, "KILL", BROKER_TIMEOUT, "broker");
    }

    /// Starts the stopped broker again on the same port, with the same configuration.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{:?} still running", self.kind);
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Debian installs `mosquitto` in /usr/sbin, which a non-root PATH may lack.
pub fn find_mosquitto() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("mosquitto"))
        .find(|candidate| candidate.is_file())
}

fn make_world_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777))
        .expect("chmod mosquitto db dir");
}

// ---- MQTT publisher --------------------------------------------------------------------------

/// Requests rumqttc may queue before `publish` blocks: far more than any test sends at once.
const PUBLISH_QUEUE: usize = 10_000;

/// Publishes QoS 1 messages and counts the broker's PUBACKs. Survives broker restarts:
/// rumqttc reconnects, and with a persistent session (and a broker that kept it) resends
/// what was not acknowledged.
pub struct Publisher {
    client: Client,
    acked: Arc<AtomicUsize>,
    connection_errors: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    pump: Option<JoinHandle<()>>,
    sent: usize,
}

impl Publisher {
    /// A clean-session publisher: the broker forgets it when it disconnects.
    pub fn connect(broker: &Broker, client_id: &str) -> Publisher {
        Publisher::with_session(broker.port, client_id, true)
    }

    /// A persistent-session publisher (`clean_session = false`).
    pub fn connect_persistent(broker: &Broker, client_id: &str) -> Publisher {
        Publisher::with_session(broker.port, client_id, false)
    }

    fn with_session(port: u16, client_id: &str, clean_session: bool) -> Publisher {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options
            .set_keep_alive(Duration::from_secs(10))
            .set_clean_session(clean_session)
            // Room for a payload just over the server's 1 MiB limit, to see it rejected.
            .set_max_packet_size(2 << 20, 2 << 20);
        let (client, mut connection) = Client::new(options, PUBLISH_QUEUE);
        let acked = Arc::new(AtomicUsize::new(0));
        let connection_errors = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let pump = {
            let (acked, errors, stop) = (acked.clone(), connection_errors.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match connection.recv_timeout(Duration::from_millis(100)) {
                        Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => {
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) => return,
                        Ok(Ok(_)) | Err(rumqttc::RecvTimeoutError::Timeout) => {}
                        Ok(Err(_)) => {
                            // Broker gone: rumqttc reconnects on the next poll.
                            errors.fetch_add(1, Ordering::Relaxed);
                            thread::sleep(Duration::from_millis(50));
                        }
                        Err(rumqttc::RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
        };
        Publisher {
            client,
            acked,
            connection_errors,
            stop,
            pump: Some(pump),
            sent: 0,
        }
    }

    /// Queues one QoS 1 publish.
    pub fn publish(&mut self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .expect("queue publish");
        self.sent += 1;
    }

    pub fn sent(&self) -> usize {
        self.sent
    }

    /// PUBACKs received so far.
    pub fn acked(&self) -> usize {
        self.acked.load(Ordering::Relaxed)
    }

    /// Times the connection failed (and was retried).
    pub fn connection_errors(&self) -> usize {
        self.connection_errors.load(Ordering::Relaxed)
    }

    /// Waits until every publish is acknowledged, then disconnects.
    pub fn finish(mut self, timeout: Duration) {
        let sent = self.sent;
        let acked = self.acked.clone();
        wait_until(&format!("PUBACKs for {sent} publishes"), timeout, || {
            acked.load(Ordering::Relaxed) >= sent
        });
        let _ = self.client.disconnect();
        self.join_pump();
    }

    fn join_pump(&mut self) {
        if let Some(pump) = self.pump.take() {
            // Bounded: the pump polls with a timeout and checks `stop` in between.
            let deadline = Instant::now() + Duration::from_secs(2);
            while !pump.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
            self.stop.store(true, Ordering::Relaxed);
            let _ = pump.join();
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.join_pump();
    }
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request and reads the whole answer; panics on I/O failure.
pub fn request(port: u16, method: &str, path: &str, body: &[u8]) -> Response {
    try_request(port, method, path, body, &[])
        .unwrap_or_else(|e| panic!("{method} {path} on port {port}: {e}"))
}

/// Sends one request (`Connection: close`) and reads the whole answer.
pub fn try_request(
    port: u16,
    method: &str,
    path: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    // The server may answer (413) and stop reading before the body is through: the
    // answer is still there to read.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("headers not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}
