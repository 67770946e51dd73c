//! `make bench` for one node server: the real `minitrue-server` and `minitrue-broker`
//! binaries on loopback ports, driven by real clients, against the issue's targets:
//!
//! 1. Sustained MQTT ingestion end to end (published → durable → queryable) as a share of the
//!    broker's own QoS 1 delivery rate to a plain subscriber, measured in the same run on the
//!    same broker (the embedded `minitrue-broker`, and Mosquitto when it is installed).
//! 2. `POST /write` line protocol throughput, until every point is queryable.
//! 3. `POST /query` latency (p50/p99) at 200 concurrent connections while a writer keeps
//!    ingesting, measured with `wrk` (or, without it, a bounded Rust load generator).
//! 4. Peak resident memory (VmHWM) of each server process after its runs.
//!
//! A plain `main` (no harness) like `benches/storage.rs`: it prints one table and records it
//! in `docs/benchmarks.md` between the `server-bench` markers, with the command that made it.
//! `MINITRUE_BENCH_SCALE=0.1` scales the counts (and the query run's length) down.
//!
//! Every process it starts is killed by its PID when its guard drops, also on error.
//! Cargo builds the binaries before a bench runs and names them in `CARGO_BIN_EXE_*`.

mod common;

use common::HttpConn;
use rumqttc::{Client, Connection, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::fmt::Write as _;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Devices (one series each) the MQTT readings and `/write` points are spread over.
const DEVICES: usize = 100;
/// MQTT readings of one ingestion measurement.
const MQTT_READINGS: usize = 200_000;
/// Publisher connections (one thread each), each owning every `PUBLISHERS`-th device.
const PUBLISHERS: usize = 4;
/// QoS 1 publishes a publisher may have unacknowledged; the same for every broker.
const PUBLISHER_INFLIGHT: u16 = 100;
/// Points of the `/write` measurement.
const WRITE_POINTS: usize = 1_000_000;
/// Lines per `/write` request.
const WRITE_BATCH: usize = 5000;
/// Concurrent `/write` clients.
const WRITE_CLIENTS: usize = 2;
/// Concurrent `/query` connections and the load generator's threads.
const QUERY_CONNECTIONS: usize = 200;
const QUERY_THREADS: usize = 2;
/// Length of the query run at scale 1.
const QUERY_SECONDS: u64 = 10;
/// Background ingestion during the query run: this many lines every interval (50 000/s).
const BACKGROUND_BATCH: usize = 1000;
const BACKGROUND_INTERVAL: Duration = Duration::from_millis(20);

/// Targets from the issue.
const MQTT_RATIO_TARGET: f64 = 0.8;
const WRITE_TARGET: f64 = 100_000.0;
const QUERY_P99_TARGET_MS: f64 = 5.0;

/// A started process has this long to listen / answer `/health`.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest quiet spell of an MQTT client before it gives up.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest any one measurement may take before the bench gives up.
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the end of an ingestion run is polled on `/status`.
const STATUS_POLL: Duration = Duration::from_millis(10);
/// How long one HTTP exchange may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// First reading's timestamp, unix seconds.
const BASE_SECONDS: i64 = 1_700_000_000;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

struct Row {
    what: String,
    value: String,
    target: String,
    note: String,
}

fn row(rows: &mut Vec<Row>, what: &str, value: String, target: &str, note: &str) {
    println!("{what:<62} {value:>14}  {target:<10} {note}");
    rows.push(Row {
        what: what.to_string(),
        value,
        target: target.to_string(),
        note: note.to_string(),
    });
}

/// "met" or by how much the target is missed.
fn verdict(met: bool, miss: String) -> String {
    if met {
        "met".to_string()
    } else {
        format!("missed: {miss}")
    }
}

fn run() -> BenchResult<()> {
    let scale: f64 = std::env::var("MINITRUE_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let scaled = |n: usize, least: usize| ((n as f64 * scale) as usize).max(least);
    // Other work on this machine skews every figure here (they share the cores): say so.
    let load_at_start = load_average();
    let root = TempDir::new("server-bench")?;
    let mut rows = Vec::new();

    // 1. MQTT ingestion against the broker's own delivery rate, per broker kind.
    let per_device = scaled(MQTT_READINGS, 10 * DEVICES) / DEVICES;
    let mut brokers = vec![BrokerKind::Minitrue];
    match find_mosquitto() {
        Some(path) => brokers.push(BrokerKind::Mosquitto(path)),
        None => println!(
            "skipping Mosquitto: no `mosquitto` on PATH or in /usr/sbin (apt-get install -y mosquitto)"
        ),
    }
    let mut mqtt_nodes = Vec::new();
    for kind in &brokers {
        let total = per_device * DEVICES;
        let baseline = broker_delivery_rate(kind, root.path(), per_device)?;
        let (rate, node) = node_ingest_rate(kind, root.path(), per_device)?;
        let ratio = rate / baseline;
        let name = kind.name();
        row(
            &mut rows,
            &format!("{name}: QoS 1 delivery to a plain subscriber (msgs/s)"),
            format!("{baseline:.0}"),
            "baseline",
            &format!("{total} readings, {PUBLISHERS} publishers, {DEVICES} devices"),
        );
        row(
            &mut rows,
            &format!("{name}: MQTT → node, durable + queryable (readings/s)"),
            format!("{rate:.0}"),
            "",
            "first publish until /status counts every point",
        );
        row(
            &mut rows,
            &format!("{name}: node ingestion / broker delivery"),
            format!("{:.0} %", ratio * 100.0),
            "≥ 80 %",
            &verdict(
                ratio >= MQTT_RATIO_TARGET,
                format!(
                    "{:.0} percentage points short",
                    (MQTT_RATIO_TARGET - ratio) * 100.0
                ),
            ),
        );
        mqtt_nodes.push((name, node));
    }

    // 2. POST /write throughput on a node without a broker.
    let http_node = Node::start("bench-http", root.path(), None)?;
    let points = scaled(WRITE_POINTS, WRITE_CLIENTS * WRITE_BATCH);
    let rate = write_rate(&http_node, points)?;
    row(
        &mut rows,
        &format!("POST /write, batches of {WRITE_BATCH}, {WRITE_CLIENTS} clients (points/s)"),
        format!("{rate:.0}"),
        "≥ 100000",
        &verdict(
            rate >= WRITE_TARGET,
            format!("{:.0} % below", (1.0 - rate / WRITE_TARGET) * 100.0),
        ),
    );

    // 3. POST /query latency at 200 connections while ingesting.
    let seconds = ((QUERY_SECONDS as f64 * scale).round() as u64).clamp(2, QUERY_SECONDS);
    let latency = query_latency(&http_node, root.path(), seconds)?;
    row(
        &mut rows,
        &format!("POST /query at {QUERY_CONNECTIONS} connections while ingesting (p50/p99 ms)"),
        format!("{:.2} / {:.2}", latency.p50_ms, latency.p99_ms),
        "p99 < 5",
        &format!(
            "{}; {:.0} queries/s, {} errors, {:.0} points/s written meanwhile, {}",
            verdict(
                latency.p99_ms < QUERY_P99_TARGET_MS,
                format!("{:.1}× the target", latency.p99_ms / QUERY_P99_TARGET_MS),
            ),
            latency.requests_per_second,
            latency.errors,
            latency.background_rate,
            latency.tool
        ),
    );

    // 4. Peak resident memory of every server process.
    for (name, node) in &mqtt_nodes {
        row(
            &mut rows,
            &format!("peak RSS of the node ingesting via {name} (MiB)"),
            format!("{:.0}", node.process.peak_rss_kib()? as f64 / 1024.0),
            "",
            &format!("VmHWM; {} readings", per_device * DEVICES),
        );
    }
    let stored = http_node.status()?["points"].as_u64().unwrap_or(0);
    row(
        &mut rows,
        "peak RSS of the node after /write and /query (MiB)",
        format!("{:.0}", http_node.process.peak_rss_kib()? as f64 / 1024.0),
        "",
        &format!("VmHWM; {stored} points stored"),
    );
    drop(mqtt_nodes);
    drop(http_node);
    record(&rows, scale, &load_at_start)?;
    Ok(())
}

/// The 1-minute load average, as `/proc/loadavg` gives it.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

// ---- 1. MQTT ingestion --------------------------------------------------------------------

/// Which broker a measurement runs on.
enum BrokerKind {
    Minitrue,
    Mosquitto(PathBuf),
}

impl BrokerKind {
    fn name(&self) -> &'static str {
        match self {
            BrokerKind::Minitrue => "minitrue-broker",
            BrokerKind::Mosquitto(_) => "mosquitto",
        }
    }

    /// Starts this broker on a free loopback port and waits until it accepts connections.
    fn start(&self, dir: &Path) -> BenchResult<(Process, u16)> {
        let port = free_port()?;
        let log = dir.join(format!("{}-{port}.log", self.name()));
        let mut command = match self {
            BrokerKind::Minitrue => {
                let mut command = Command::new(env!("CARGO_BIN_EXE_minitrue-broker"));
                command.args(["--listen", &format!("127.0.0.1:{port}"), "--log-level=off"]);
                command
            }
            BrokerKind::Mosquitto(binary) => {
                // Generous limits, so neither side's inflight window is Mosquitto's default 20.
                let config = dir.join(format!("mosquitto-{port}.conf"));
                fs::write(
                    &config,
                    format!(
                        "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                         max_inflight_messages 1000\nmax_queued_messages 1000000\n"
                    ),
                )?;
                let mut command = Command::new(binary);
                command.arg("-c").arg(config);
                command
            }
        };
        let mut process = Process::spawn(self.name(), &mut command, &log)?;
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            process.check_running()?;
            if Instant::now() > deadline {
                return Err(format!("{} not listening on port {port}", self.name()).into());
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok((process, port))
    }
}

/// Debian installs `mosquitto` in /usr/sbin, which a non-root PATH may lack.
fn find_mosquitto() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("mosquitto"))
        .find(|candidate| candidate.is_file())
}

/// QoS 1 messages a second from the publishers through a fresh broker to one plain rumqttc
/// subscriber (persistent session, automatic acks), first publish to last delivery.
fn broker_delivery_rate(kind: &BrokerKind, dir: &Path, per_device: usize) -> BenchResult<f64> {
    let (_broker, port) = kind.start(dir)?;
    let total = per_device * DEVICES;
    let (client, mut connection) = connect(port, "bench-subscriber", false)?;
    client
        .subscribe("iot/sensors/#", QoS::AtLeastOnce)
        .map_err(|e| format!("subscribe: {e}"))?;
    loop {
        match connection.recv_timeout(IDLE_TIMEOUT) {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => return Err(format!("subscriber: {e}").into()),
            Err(_) => return Err("subscriber: no SUBACK".into()),
        }
    }
    let (started, publishers) = start_publishers(port, "base", per_device)?;
    let mut received = 0;
    let result = loop {
        if received == total {
            break Ok(started.elapsed());
        }
        match connection.recv_timeout(IDLE_TIMEOUT) {
            Ok(Ok(Event::Incoming(Packet::Publish(_)))) => received += 1,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => break Err(format!("subscriber: {e} after {received} messages")),
            Err(_) => break Err(format!("subscriber: {received} of {total}, then silence")),
        }
    };
    drop(connection);
    join_publishers(publishers)?;
    let elapsed = result?;
    println!(
        "{}: {total} messages delivered in {:.2} s",
        kind.name(),
        elapsed.as_secs_f64()
    );
    Ok(total as f64 / elapsed.as_secs_f64())
}

/// Readings a second from the publishers through a fresh broker into a `minitrue-server`
/// node, first publish until the node's `/status` counts every point (each acknowledged to
/// the broker only once fsynced). Returns the node, still running, for its memory figure.
fn node_ingest_rate(kind: &BrokerKind, dir: &Path, per_device: usize) -> BenchResult<(f64, Node)> {
    let (broker, port) = kind.start(dir)?;
    let mut node = Node::start(&format!("bench-{}", kind.name()), dir, Some(port))?;
    node.broker = Some(broker);
    let total = per_device * DEVICES;
    // The subscription is in place once a reading published now is stored.
    let deadline = Instant::now() + START_TIMEOUT;
    let (warm_client, mut warm_connection) = connect(port, "bench-warmup", true)?;
    let mut warm_seconds = BASE_SECONDS;
    let before = loop {
        let points = node.points()?;
        if points > 0 {
            break points;
        }
        if Instant::now() > deadline {
            return Err(format!("node never stored a reading via {}", kind.name()).into());
        }
        warm_client
            .publish(
                "iot/sensors/temperature",
                QoS::AtLeastOnce,
                false,
                reading("warmup", warm_seconds, 0.0),
            )
            .map_err(|e| format!("warm-up publish: {e}"))?;
        warm_seconds += 1;
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until {
            let _ = warm_connection.recv_timeout(Duration::from_millis(20));
        }
    };
    drop(warm_connection);
    let target = before + total as u64;
    let (started, publishers) = start_publishers(port, "node", per_device)?;
    let result = loop {
        let points = node.points()?;
        if points >= target {
            break Ok(started.elapsed());
        }
        if started.elapsed() > PHASE_TIMEOUT {
            break Err(format!(
                "node stored {} of {total} readings in {PHASE_TIMEOUT:?}: {}",
                points - before,
                node.status()?
            ));
        }
        thread::sleep(STATUS_POLL);
    };
    join_publishers(publishers)?;
    let elapsed = result?;
    let counted = node.count_all("dev_")?;
    if counted != total as u64 {
        return Err(format!("/query counts {counted} readings, {total} were published").into());
    }
    println!(
        "{}: node stored {total} readings in {:.2} s",
        kind.name(),
        elapsed.as_secs_f64()
    );
    Ok((total as f64 / elapsed.as_secs_f64(), node))
}

/// The JSON payload of one reading.
fn reading(device: &str, seconds: i64, value: f64) -> String {
    format!(
        r#"{{"device_id":"{device}","metric_name":"temperature","timestamp":{seconds},"value":{value:.2}}}"#
    )
}

/// Connects an MQTT client and waits for CONNACK.
fn connect(port: u16, client_id: &str, clean_session: bool) -> BenchResult<(Client, Connection)> {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
    options
        .set_clean_session(clean_session)
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(PUBLISHER_INFLIGHT);
    let (client, mut connection) = Client::new(options, 1000);
    loop {
        match connection.recv_timeout(START_TIMEOUT) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return Ok((client, connection)),
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => return Err(format!("{client_id}: connect to port {port}: {e}").into()),
            Err(_) => return Err(format!("{client_id}: no CONNACK from port {port}").into()),
        }
    }
}

/// Connects [`PUBLISHERS`] clients, then lets them all publish `per_device` readings of each
/// of their devices at QoS 1; returns the moment they started and their threads, which end
/// once every publish is acknowledged.
fn start_publishers(
    port: u16,
    tag: &str,
    per_device: usize,
) -> BenchResult<(Instant, Vec<JoinHandle<BenchResult<()>>>)> {
    let barrier = Arc::new(Barrier::new(PUBLISHERS + 1));
    let ready = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let barrier = Arc::clone(&barrier);
            let ready = Arc::clone(&ready);
            let id = format!("bench-pub-{tag}-{p}");
            thread::spawn(move || -> BenchResult<()> {
                let connected = connect(port, &id, true);
                if connected.is_ok() {
                    ready.fetch_add(1, Ordering::SeqCst);
                }
                barrier.wait();
                let (client, mut connection) = connected?;
                if ready.load(Ordering::SeqCst) != PUBLISHERS as u64 {
                    return Err("another publisher failed to connect".into());
                }
                let devices: Vec<usize> = (p..DEVICES).step_by(PUBLISHERS).collect();
                let count = devices.len() * per_device;
                let sender = thread::spawn(move || -> BenchResult<()> {
                    for k in 0..per_device {
                        for &d in &devices {
                            let value = 20.0 + ((k * 7 + d) % 100) as f64 / 100.0;
                            let payload =
                                reading(&format!("dev_{d}"), BASE_SECONDS + k as i64, value);
                            client
                                .publish(
                                    "iot/sensors/temperature",
                                    QoS::AtLeastOnce,
                                    false,
                                    payload,
                                )
                                .map_err(|e| format!("publish: {e}"))?;
                        }
                    }
                    Ok(())
                });
                let mut acked = 0;
                let result = loop {
                    if acked == count {
                        break Ok(());
                    }
                    match connection.recv_timeout(IDLE_TIMEOUT) {
                        Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
                        Ok(Ok(_)) => continue,
                        Ok(Err(e)) => break Err(format!("{id}: {e} after {acked} acks")),
                        Err(_) => break Err(format!("{id}: {acked} of {count} acks, then none")),
                    }
                };
                // Dropping the event loop makes a blocked `publish` fail instead of hanging.
                drop(connection);
                let sent = sender.join().map_err(|_| "publisher thread panicked")?;
                result?;
                sent
            })
        })
        .collect();
    barrier.wait();
    Ok((Instant::now(), handles))
}

fn join_publishers(handles: Vec<JoinHandle<BenchResult<()>>>) -> BenchResult<()> {
    for h in handles {
        h.join().map_err(|_| "publisher panicked")??;
    }
    Ok(())
}

// ---- 2. POST /write -----------------------------------------------------------------------

/// Points a second written by [`WRITE_CLIENTS`] keep-alive clients in batches of
/// [`WRITE_BATCH`] lines, until the last is acknowledged (204: durable) and `/status`
/// counts every point. The bodies are made before the clock starts.
fn write_rate(node: &Node, points: usize) -> BenchResult<f64> {
    let before = node.points()?;
    let per_client = points / WRITE_CLIENTS;
    let bodies: Vec<Vec<String>> = (0..WRITE_CLIENTS)
        .map(|c| {
            let devices: Vec<usize> = (c..DEVICES).step_by(WRITE_CLIENTS).collect();
            let lines: Vec<String> = (0..per_client)
                .map(|i| {
                    let d = devices[i % devices.len()];
                    let k = (i / devices.len()) as i64;
                    let value = 20.0 + ((i * 7) % 100) as f64 / 100.0;
                    format!(
                        "temperature,device_id=dev_{d} value={value:.2} {}\n",
                        (BASE_SECONDS + k) * 1000
                    )
                })
                .collect();
            lines.chunks(WRITE_BATCH).map(|c| c.concat()).collect()
        })
        .collect();
    let total: usize = (per_client * WRITE_CLIENTS).max(1);
    let port = node.port;
    let started = Instant::now();
    thread::scope(|scope| -> BenchResult<()> {
        let handles: Vec<_> = bodies
            .iter()
            .map(|batches| {
                scope.spawn(move || -> BenchResult<()> {
                    let mut conn = HttpConn::connect(port, HTTP_TIMEOUT)?;
                    for body in batches {
                        let (status, answer) =
                            conn.request("POST", "/write?precision=ms", body.as_bytes())?;
                        if status != 204 {
                            return Err(format!(
                                "/write answered {status}: {}",
                                String::from_utf8_lossy(&answer)
                            )
                            .into());
                        }
                        if started.elapsed() > PHASE_TIMEOUT {
                            return Err(
                                format!("/write still running after {PHASE_TIMEOUT:?}").into()
                            );
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| "write client panicked")??;
        }
        Ok(())
    })?;
    loop {
        if node.points()? >= before + total as u64 {
            break;
        }
        if started.elapsed() > PHASE_TIMEOUT {
            return Err("written points never all showed up in /status".into());
        }
        thread::sleep(STATUS_POLL);
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("/write: {total} points in {elapsed:.2} s");
    Ok(total as f64 / elapsed)
}

// ---- 3. POST /query under load ------------------------------------------------------------

struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    requests_per_second: f64,
    errors: u64,
    background_rate: f64,
    tool: &'static str,
}

/// `/query` latency at [`QUERY_CONNECTIONS`] connections for `seconds`, while one client
/// writes [`BACKGROUND_BATCH`] lines every [`BACKGROUND_INTERVAL`].
fn query_latency(node: &Node, dir: &Path, seconds: u64) -> BenchResult<Latency> {
    let stop = AtomicBool::new(false);
    let written = AtomicU64::new(0);
    let port = node.port;
    thread::scope(|scope| -> BenchResult<Latency> {
        let writer = scope.spawn(|| background_writes(port, &stop, &written));
        let started = Instant::now();
        let measured = match which("wrk") {
            Some(wrk) => run_wrk(&wrk, port, dir, seconds),
            None => {
                println!(
                    "no `wrk` on PATH (apt-get install -y wrk): using the built-in load generator"
                );
                run_load_generator(port, seconds)
            }
        };
        let elapsed = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        writer.join().map_err(|_| "background writer panicked")??;
        let mut latency = measured?;
        latency.background_rate = written.load(Ordering::Relaxed) as f64 / elapsed;
        Ok(latency)
    })
}

/// Writes to devices of their own (`bg_N`) at a steady pace until `stop`.
fn background_writes(port: u16, stop: &AtomicBool, written: &AtomicU64) -> BenchResult<()> {
    let mut conn = HttpConn::connect(port, HTTP_TIMEOUT)?;
    let mut next = Instant::now();
    let mut k = 0i64;
    while !stop.load(Ordering::Relaxed) {
        let mut body = String::with_capacity(BACKGROUND_BATCH * 48);
        for i in 0..BACKGROUND_BATCH {
            let d = i % DEVICES;
            let ts = (BASE_SECONDS + k + (i / DEVICES) as i64) * 1000;
            let _ = writeln!(body, "temperature,device_id=bg_{d} value=21.5 {ts}");
        }
        k += (BACKGROUND_BATCH / DEVICES) as i64;
        let (status, answer) = conn.request("POST", "/write?precision=ms", body.as_bytes())?;
        if status != 204 {
            return Err(format!(
                "background /write answered {status}: {}",
                String::from_utf8_lossy(&answer)
            )
            .into());
        }
        written.fetch_add(BACKGROUND_BATCH as u64, Ordering::Relaxed);
        next += BACKGROUND_INTERVAL;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
    }
    Ok(())
}

/// The query every request sends, for a random device of the `/write` run.
const WRK_SCRIPT: &str = r#"-- POST /query for a random device, the whole series.
math.randomseed(42)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local body = string.format(
    '{"device_id":"dev_%d","metric_name":"temperature","operation":"avg","start_time":0,"end_time":0}',
    math.random(0, 99))
  return wrk.format(nil, "/query", nil, body)
end
"#;

fn run_wrk(wrk: &Path, port: u16, dir: &Path, seconds: u64) -> BenchResult<Latency> {
    let script = dir.join("query.lua");
    fs::write(&script, WRK_SCRIPT)?;
    let out_path = dir.join("wrk.out");
    let out = fs::File::create(&out_path)?;
    let mut command = Command::new(wrk);
    command
        .arg(format!("-t{QUERY_THREADS}"))
        .arg(format!("-c{QUERY_CONNECTIONS}"))
        .arg(format!("-d{seconds}s"))
        .args(["--latency", "--timeout", "5s", "-s"])
        .arg(&script)
        .arg(format!("http://127.0.0.1:{port}/query"))
        .stdout(out);
    let mut process = Process::spawn("wrk", &mut command, &dir.join("wrk.err"))?;
    let deadline = Instant::now() + Duration::from_secs(seconds + 20);
    let status = loop {
        if let Some(status) = process.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            return Err("wrk did not finish in time".into());
        }
        thread::sleep(Duration::from_millis(50));
    };
    let text = fs::read_to_string(&out_path)?;
    if !status.success() {
        return Err(format!("wrk failed ({status}): {text}{}", process.log_text()).into());
    }
    println!("{}", text.trim_end());
    parse_wrk(&text).ok_or_else(|| format!("cannot read wrk's output:\n{text}").into())
}

/// p50/p99, requests/s and failures from `wrk --latency` output.
fn parse_wrk(text: &str) -> Option<Latency> {
    let percentile = |p: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(p))
            .and_then(|v| parse_duration_ms(v.trim()))
    };
    let number_after = |label: &str| -> Option<f64> {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(label))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    let socket_errors: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map(|rest| {
            rest.split(',')
                .filter_map(|part| part.split_whitespace().last())
                .filter_map(|n| n.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let non_2xx = number_after("Non-2xx or 3xx responses:").unwrap_or(0.0) as u64;
    Some(Latency {
        p50_ms: percentile("50%")?,
        p99_ms: percentile("99%")?,
        requests_per_second: number_after("Requests/sec:")?,
        errors: socket_errors + non_2xx,
        background_rate: 0.0,
        tool: "wrk -t2 -c200",
    })
}

/// `812.00us`, `4.56ms`, `1.02s`, `1.50m` in milliseconds.
fn parse_duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match unit {
        "us" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        "m" => 60e3,
        _ => return None,
    };
    Some(number * factor)
}

/// The fallback without `wrk`: one thread a connection, each sending the next request once
/// the last is answered, for `seconds`.
fn run_load_generator(port: u16, seconds: u64) -> BenchResult<Latency> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let errors = AtomicU64::new(0);
    let mut samples: Vec<Duration> = thread::scope(|scope| {
        let handles: Vec<_> = (0..QUERY_CONNECTIONS)
            .map(|c| {
                let errors = &errors;
                scope.spawn(move || {
                    let mut samples = Vec::new();
                    let Ok(mut conn) = HttpConn::connect(port, HTTP_TIMEOUT) else {
                        errors.fetch_add(1, Ordering::Relaxed);
                        return samples;
                    };
                    let mut i = c;
                    while Instant::now() < deadline {
                        let body = format!(
                            r#"{{"device_id":"dev_{}","metric_name":"temperature","operation":"avg","start_time":0,"end_time":0}}"#,
                            i % DEVICES
                        );
                        i += 7;
                        let sent = Instant::now();
                        match conn.request("POST", "/query", body.as_bytes()) {
                            Ok((200, _)) => samples.push(sent.elapsed()),
                            _ => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                match HttpConn::connect(port, HTTP_TIMEOUT) {
                                    Ok(fresh) => conn = fresh,
                                    Err(_) => return samples,
                                }
                            }
                        }
                    }
                    samples
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    if samples.is_empty() {
        return Err("no /query succeeded".into());
    }
    samples.sort();
    let ms =
        |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)].as_secs_f64() * 1e3;
    Ok(Latency {
        p50_ms: ms(50),
        p99_ms: ms(99),
        requests_per_second: samples.len() as f64 / elapsed,
        errors: errors.load(Ordering::Relaxed),
        background_rate: 0.0,
        tool: "built-in load generator (no wrk)",
    })
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

// ---- processes and the HTTP client --------------------------------------------------------

/// A child process, killed by its PID when dropped.
struct Process {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    /// Spawns `command` with its stderr in `log` (and stdout discarded unless set).
    fn spawn(name: &str, command: &mut Command, log: &Path) -> BenchResult<Process> {
        let stderr = fs::File::create(log)?;
        let child = command
            .stdin(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("start {name}: {e}"))?;
        Ok(Process {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn try_wait(&mut self) -> BenchResult<Option<std::process::ExitStatus>> {
        match self.child.as_mut() {
            Some(child) => Ok(child.try_wait()?),
            None => Err(format!("{} already reaped", self.name).into()),
        }
    }

    /// An error (with the process's log) if it has exited.
    fn check_running(&mut self) -> BenchResult<()> {
        match self.try_wait()? {
            Some(status) => {
                Err(format!("{} exited ({status}):\n{}", self.name, self.log_text()).into())
            }
            None => Ok(()),
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Peak resident set size (VmHWM) in KiB.
    fn peak_rss_kib(&self) -> BenchResult<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no VmHWM in /proc/{}/status", self.pid()).into())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running `minitrue-server` (and the broker it ingests from, if any).
struct Node {
    process: Process,
    port: u16,
    /// Declared after `process`, so it is killed after the node.
    broker: Option<Process>,
}

impl Node {
    /// Starts node `name` storing under `dir`, ingesting from the broker on `broker_port`
    /// (none: a port nobody listens on), and waits until `/health` answers.
    fn start(name: &str, dir: &Path, broker_port: Option<u16>) -> BenchResult<Node> {
        let port = free_port()?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_minitrue-server"));
        command
            .arg(format!("--node_id={name}"))
            .arg(format!("--port={port}"))
            .arg(format!("--tcp_port={}", free_port()?))
            .arg(format!("--data_dir={}", dir.display()))
            .arg("--bind=127.0.0.1")
            .arg(format!(
                "--broker=tcp://127.0.0.1:{}",
                broker_port.unwrap_or(1)
            ))
            .arg("--log_level=warn")
            .stdout(Stdio::null());
        let mut process = Process::spawn(name, &mut command, &dir.join(format!("{name}.log")))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            process.check_running()?;
            if let Ok((200, _)) = HttpConn::connect(port, HTTP_TIMEOUT)
                .and_then(|mut c| c.request("GET", "/health", &[]))
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{name} not healthy in {START_TIMEOUT:?}:\n{}",
                    process.log_text()
                )
                .into());
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(Node {
            process,
            port,
            broker: None,
        })
    }

    fn status(&self) -> BenchResult<Value> {
        let (status, body) =
            HttpConn::connect(self.port, HTTP_TIMEOUT)?.request("GET", "/status", &[])?;
        if status != 200 {
            return Err(format!("/status answered {status}").into());
        }
        Ok(serde_json::from_slice(&body)?)
    }

    /// Points the node holds, by `/status`.
    fn points(&self) -> BenchResult<u64> {
        self.status()?["points"]
            .as_u64()
            .ok_or_else(|| "/status has no points".into())
    }

    /// The `/query` count over devices `{prefix}0..{prefix}99`, summed.
    fn count_all(&self, prefix: &str) -> BenchResult<u64> {
        let mut conn = HttpConn::connect(self.port, HTTP_TIMEOUT)?;
        let mut sum = 0;
        for d in 0..DEVICES {
            let body = format!(
                r#"{{"device_id":"{prefix}{d}","metric_name":"temperature","operation":"count","start_time":0,"end_time":0}}"#
            );
            let (status, answer) = conn.request("POST", "/query", body.as_bytes())?;
            let answer: Value = serde_json::from_slice(&answer)?;
            sum += answer["count"]
                .as_u64()
                .ok_or_else(|| format!("/query answered {status}: {answer}"))?;
        }
        Ok(sum)
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> BenchResult<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> BenchResult<TempDir> {
        let dir = std::env::temp_dir().join(format!("minitrue-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

// ---- the record ---------------------------------------------------------------------------

/// Writes the table into docs/benchmarks.md between the markers.
fn record(rows: &[Row], scale: f64, load_at_start: &str) -> BenchResult<()> {
    let mut table = String::new();
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    writeln!(table, "<!-- server-bench:start -->")?;
    writeln!(
        table,
        "Command: `make bench` (`cargo bench --bench server`{}), {cores} cores, load average \
         {load_at_start} at the start; every process on this one machine over 127.0.0.1.\n",
        if scale == 1.0 {
            String::new()
        } else {
            format!(", MINITRUE_BENCH_SCALE={scale}")
        }
    )?;
    println!("load average at the start: {load_at_start}");
    writeln!(table, "| measure | value | target | note |")?;
    writeln!(table, "|---|---:|---|---|")?;
    for r in rows {
        writeln!(
            table,
            "| {} | {} | {} | {} |",
            r.what, r.value, r.target, r.note
        )?;
    }
    writeln!(table, "<!-- server-bench:end -->")?;
    common::record_section("server-bench", "Node server", &table)?;
    Ok(())
}
