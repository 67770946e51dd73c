//! HTTPS on the API (issue 11, `--tls_cert`/`--tls_key`): a real `minitrue-server` with a
//! certificate the test makes with the `openssl` CLI, spoken to with `curl --cacert`; and a
//! three-node TLS cluster (`--tls_ca`) whose routed writes, replicas and coordinated queries
//! all travel over HTTPS. Skipped, with a message, when `openssl` or `curl` is not
//! installed.

mod common;

use common::certs::{have, make_certificates};
use common::cluster::wait_for;
use common::{free_port, TempDir};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `curl` with the test CA; returns (HTTP status, body), status 0 if no answer.
fn curl(dir: &Path, url: &str, extra: &[&str]) -> (u16, String) {
    let ca = dir.join("ca.pem");
    let out = Command::new("curl")
        .args(["-s", "-m", "5", "--cacert"])
        .arg(&ca)
        .args(["-w", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn spawn_server(dir: &Path, port: u16, extra: &[String]) -> std::process::Child {
    spawn_node(dir, "tls1", port, free_port(), extra)
}

fn spawn_node(
    dir: &Path,
    id: &str,
    port: u16,
    tcp_port: u16,
    extra: &[String],
) -> std::process::Child {
    let log = std::fs::File::create(dir.join(format!("server-{port}.log"))).expect("log");
    Command::new(env!("CARGO_BIN_EXE_minitrue-server"))
        .arg(format!("--node_id={id}"))
        .arg(format!("--port={port}"))
        .arg(format!("--tcp_port={tcp_port}"))
        .arg(format!("--data_dir={}", dir.join("data").display()))
        .arg("--bind=127.0.0.1")
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn minitrue-server")
}

#[test]
fn https_write_then_query_and_plain_http_is_refused() {
    if !have("openssl") || !have("curl") {
        eprintln!("skipped: openssl or curl not installed");
        return;
    }
    let dir = TempDir::new("tls-https");
    make_certificates(dir.path());
    let port = free_port();
    let mut child = spawn_server(
        dir.path(),
        port,
        &[
            format!("--tls_cert={}", dir.path().join("cert.pem").display()),
            format!("--tls_key={}", dir.path().join("key.pem").display()),
        ],
    );
    let base = format!("https://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while curl(dir.path(), &format!("{base}/health"), &[]).0 != 200 {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("server exited early: {status}");
        }
        assert!(Instant::now() < deadline, "no HTTPS /health in time");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = curl(
        dir.path(),
        &format!("{base}/write?precision=s"),
        &[
            "--data-binary",
            "temperature,device_id=tls_1 value=21.5 1000",
        ],
    );
    assert!((200..300).contains(&status), "write: {status} {body}");
    let query = r#"{"device_id":"tls_1","metric_name":"temperature","operation":"count","start_time":0,"end_time":0}"#;
    let (status, body) = curl(
        dir.path(),
        &format!("{base}/query"),
        &["-H", "Content-Type: application/json", "--data", query],
    );
    assert_eq!(status, 200, "query: {body}");
    assert!(body.contains("\"count\":1"), "query answer: {body}");
    // The websocket upgrade goes through tiny_http's upgrade, so it works over TLS (wss).
    let (status, body) = curl(
        dir.path(),
        &format!("{base}/ws"),
        &[
            "--http1.1",
            "-m",
            "2",
            "-H",
            "Connection: Upgrade",
            "-H",
            "Upgrade: websocket",
            "-H",
            "Sec-WebSocket-Version: 13",
            "-H",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        ],
    );
    assert_eq!(status, 101, "wss upgrade: {body}");
    let (status, _) = curl(dir.path(), &format!("http://127.0.0.1:{port}/health"), &[]);
    assert_ne!(status, 200, "plain HTTP to the TLS port must not be served");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn tls_cert_without_key_is_refused_naming_the_flag() {
    let dir = TempDir::new("tls-half");
    let out = Command::new(env!("CARGO_BIN_EXE_minitrue-server"))
        .arg("--node_id=tls2")
        .arg(format!("--port={}", free_port()))
        .arg(format!("--tcp_port={}", free_port()))
        .arg(format!("--data_dir={}", dir.path().display()))
        .arg("--tls_cert=/nonexistent/cert.pem")
        .output()
        .expect("run minitrue-server");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tls_key"), "stderr: {stderr}");
}

/// Kills the nodes of a test when it ends, also when it fails.
struct Nodes(Vec<std::process::Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn tls_cluster_routes_replicates_and_coordinates_over_https() {
    if !have("openssl") || !have("curl") {
        eprintln!("skipped: openssl or curl not installed");
        return;
    }
    let dir = TempDir::new("tls-cluster");
    make_certificates(dir.path());
    let file = |name: &str| dir.path().join(name).display().to_string();
    let ids = ["tls_a", "tls_b", "tls_c"];
    let ports: Vec<(u16, u16)> = ids.iter().map(|_| (free_port(), free_port())).collect();
    let seed = format!("--seeds=127.0.0.1:{}", ports[0].1);
    let mut nodes = Nodes(Vec::new());
    for (id, (port, tcp_port)) in ids.iter().zip(&ports) {
        let extra = [
            format!("--tls_cert={}", file("cert.pem")),
            format!("--tls_key={}", file("key.pem")),
            format!("--tls_ca={}", file("ca.pem")),
            seed.clone(),
            "--replication=2".to_string(),
            "--gossip_interval_ms=100".to_string(),
            "--broker=tcp://127.0.0.1:1".to_string(),
        ];
        nodes
            .0
            .push(spawn_node(dir.path(), id, *port, *tcp_port, &extra));
    }
    let url = |i: usize, path: &str| format!("https://127.0.0.1:{}{path}", ports[i].0);
    wait_for(
        "three alive members on every node",
        Duration::from_secs(30),
        || {
            for i in 0..ids.len() {
                let (status, body) = curl(dir.path(), &url(i, "/status"), &[]);
                let alive = body.matches("\"state\":\"alive\"").count();
                if status != 200 || alive != ids.len() {
                    return Err(format!("{}: {status}, {alive} alive", ids[i]));
                }
            }
            Ok(())
        },
        String::new,
    );

    // Written through one node: each series goes to its two owners over HTTPS.
    const DEVICES: usize = 12;
    const POINTS: usize = 10;
    let lines: String = (0..DEVICES)
        .flat_map(|d| {
            (0..POINTS)
                .map(move |t| format!("temperature,device_id=dev{d} value={t} {}\n", 1000 + t))
        })
        .collect();
    let (status, body) = curl(
        dir.path(),
        &url(0, "/write?precision=s"),
        &["--data-binary", &lines],
    );
    assert_eq!(status, 204, "write: {body}");
    let count = |i: usize, path: &str, d: usize| -> u64 {
        let query =
            format!(r#"{{"device_id":"dev{d}","metric_name":"temperature","operation":"count"}}"#);
        let (status, body) = curl(
            dir.path(),
            &url(i, path),
            &["-H", "Content-Type: application/json", "--data", &query],
        );
        assert_eq!(status, 200, "{} {path}: {body}", ids[i]);
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON answer");
        v["count"].as_u64().expect("count")
    };
    wait_for(
        "every series on exactly two nodes",
        Duration::from_secs(30),
        || {
            for d in 0..DEVICES {
                let copies: Vec<u64> = (0..ids.len())
                    .map(|i| count(i, "/query?local=1", d))
                    .collect();
                let mut sorted = copies.clone();
                sorted.sort_unstable();
                if sorted != [0, POINTS as u64, POINTS as u64] {
                    return Err(format!("dev{d}: local counts {copies:?}"));
                }
            }
            Ok(())
        },
        String::new,
    );
    // Any node answers for any series, asking its owners over HTTPS.
    for (i, id) in ids.iter().enumerate() {
        for d in 0..DEVICES {
            assert_eq!(count(i, "/query", d), POINTS as u64, "{id} dev{d}");
        }
    }
}
