//! `run_cluster.sh` end to end, as a user runs it: three nodes, the embedded broker and the
//! simulator come up, simulated readings become queryable on every node, and a signal
//! stops everything it started, leaving no process behind.
//!
//! The script always uses the local slots (HTTP 8080-8082, gossip 9000-9002); the test
//! fails with a clear message when something else holds them.

#[path = "common/ports.rs"]
mod ports;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const HTTP_PORTS: [u16; 3] = [8080, 8081, 8082];

/// The script's process group, signalled and reaped on drop.
struct Script(Child);

impl Drop for Script {
    fn drop(&mut self) {
        // kill(2) itself, not the `kill` program: procps-ng's `kill -KILL -<pgid>` reads
        // the group as the option `-<first digit>` and signals pid -1, which is every
        // process the user may signal (the test runner and the shell that started it too).
        if let Ok(pgid) = libc::pid_t::try_from(self.0.id()) {
            // SAFETY: a plain system call on our own child's process group.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        let _ = self.0.wait();
    }
}

fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(200));
    }
}

fn count_on(port: u16) -> u64 {
    let query = r#"{"device_id":"sensor_1","metric_name":"temperature","operation":"count","start_time":0,"end_time":0}"#;
    http(port, "POST", "/query", query)
        .filter(|(status, _)| *status == 200)
        .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
        .and_then(|v| v["count"].as_u64())
        .unwrap_or(0)
}

/// PIDs of processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

#[test]
fn run_cluster_starts_three_nodes_with_data_flowing_and_stops_cleanly() {
    for port in HTTP_PORTS.iter().chain(&[9000, 9001, 9002]) {
        assert!(
            TcpListener::bind(("0.0.0.0", *port)).is_ok(),
            "port {port} is busy: stop whatever holds 8080-8082/9000-9002 to run this test"
        );
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_minitrue-server"))
        .parent()
        .expect("binary directory")
        .to_path_buf();
    let run_dir = std::env::temp_dir().join(format!("minitrue-run-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    let broker_port = ports::free_port();
    let mut script = Script(
        Command::new("bash")
            .arg(root.join("run_cluster.sh"))
            .env("MINITRUE_SKIP_BUILD", "1")
            .env("MINITRUE_SKIP_FRONTEND", "1")
            .env("MINITRUE_BIN_DIR", &bin_dir)
            .env("MINITRUE_RUN_DIR", &run_dir)
            .env("MINITRUE_BROKER_PORT", broker_port.to_string())
            .env("MINITRUE_SIM_INTERVAL", "0.2")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start run_cluster.sh"),
    );

    for port in HTTP_PORTS {
        wait_until(
            &format!("/health on {port}"),
            Duration::from_secs(30),
            || http(port, "GET", "/health", "").is_some_and(|(s, _)| s == 200),
        );
    }
    // Simulated readings become queryable through every node.
    for port in HTTP_PORTS {
        wait_until(
            &format!("readings on {port}"),
            Duration::from_secs(30),
            || count_on(port) > 0,
        );
    }
    let logs: Vec<String> = std::fs::read_dir(run_dir.join("logs"))
        .expect("logs directory")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    for name in ["broker.log", "simulator.log"] {
        assert!(
            logs.contains(&name.to_string()),
            "{name} missing in {logs:?}"
        );
    }

    // A signal to the script stops everything it started.
    let pid = script.0.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("signal the script");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = script.0.try_wait().expect("poll the script") {
            assert!(status.success(), "run_cluster.sh exited with {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "run_cluster.sh did not stop within 20 s"
        );
        thread::sleep(Duration::from_millis(100));
    }
    // Every process the script starts names the broker's port on its command line.
    let left = processes_mentioning(&format!("127.0.0.1:{broker_port}"));
    assert!(left.is_empty(), "processes left behind: {left:?}");
    for port in HTTP_PORTS {
        assert!(
            http(port, "GET", "/health", "").is_none(),
            "port {port} still answers"
        );
    }
    let _ = std::fs::remove_dir_all(&run_dir);
}
