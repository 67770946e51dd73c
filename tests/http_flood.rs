//! The HTTP connection layer under floods, as an attacker or a broken client fleet would
//! make them: thousands of idle and half-sent connections against a real node (run as an
//! unprivileged user under a limit of 150 processes when the test runs as root, so the
//! limit binds), then fresh clients must still be answered, and everything works after the
//! flood with no restart. Also keep-alive, pipelining, chunked bodies and refused heads.

mod common;

use common::{try_request, wait_until, Server, TempDir};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Runs the server as user `nobody` under `ulimit -u 150` where that is possible (root
/// with setpriv and prlimit); otherwise under the process limit only, or plainly.
fn process_limited_wrapper(dir: &TempDir) -> Vec<&'static str> {
    let has = |tool: &str| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok()
    };
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !has("prlimit") {
        eprintln!("prlimit missing: the flood runs without a process limit");
        return Vec::new();
    }
    if root && has("setpriv") {
        // RLIMIT_NPROC does not bind root: run as nobody, who must write the data dir.
        let _ = std::process::Command::new("chmod")
            .args(["0777", &dir.path().display().to_string()])
            .status();
        return vec![
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "prlimit",
            "--nproc=150:150",
            "--",
        ];
    }
    vec!["prlimit", "--nproc=150:150", "--"]
}

/// Connections that hold a place: some send nothing, some half a head.
fn flood(port: u16, idle: usize, half_sent: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(idle + half_sent);
    for i in 0..idle + half_sent {
        let mut stream = match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => s,
            Err(e) => panic!("flood connection {i} refused by the kernel: {e}"),
        };
        if i >= idle {
            let _ = stream.write_all(b"GET /health HTTP/1.1\r\nHost: flood\r\n");
        }
        held.push(stream);
    }
    held
}

/// `/health` and a write-then-query from a fresh client, each within `bound`.
fn fresh_client_is_served(server: &Server, bound: Duration, value: u32) {
    let started = Instant::now();
    let health = try_request(server.port, "GET", "/health", &[], &[]).expect("/health answers");
    assert_eq!(health.status, 200, "{}", health.text());
    assert!(
        started.elapsed() < bound,
        "/health took {:?}",
        started.elapsed()
    );
    let line = format!(
        "m,device_id=fresh value={value} {}\n",
        1_700_000_000_000u64 + u64::from(value)
    );
    let started = Instant::now();
    let written = try_request(
        server.port,
        "POST",
        "/write?precision=ms",
        line.as_bytes(),
        &[],
    )
    .expect("/write answers");
    assert_eq!(written.status, 204, "{}", written.text());
    assert!(
        started.elapsed() < bound,
        "/write took {:?}",
        started.elapsed()
    );
}

fn open_connections(server: &Server) -> u64 {
    server.status()["http"]["open_connections"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

#[test]
fn flood_of_idle_and_half_sent_connections_leaves_fresh_clients_served() {
    let dir = TempDir::new("flood");
    let wrapper = process_limited_wrapper(&dir);
    let server = Server::start_wrapped("polaris", dir.path(), &[], &[], &wrapper);
    let held = flood(server.port, 3_000, 2_000);
    // Well inside the 10 s header timeout, which closes the flood later on its own.
    wait_until("the node to hold the flood", Duration::from_secs(5), || {
        open_connections(&server) >= 4_000
    });
    for value in 0..5 {
        fresh_client_is_served(&server, Duration::from_secs(1), value);
    }
    drop(held);
    wait_until(
        "the flood's connections to close",
        Duration::from_secs(20),
        || open_connections(&server) <= 2,
    );
    fresh_client_is_served(&server, Duration::from_secs(1), 99);
    assert_eq!(
        server.count("fresh", "m"),
        6,
        "every acknowledged write is queryable"
    );
    assert!(server.is_running());
}

#[test]
fn above_the_cap_the_longest_waiting_connection_makes_room() {
    let dir = TempDir::new("flood-cap");
    let server = Server::start("polaris", dir.path(), &["--max_connections=50"]);
    let mut held = flood(server.port, 200, 0);
    fresh_client_is_served(&server, Duration::from_secs(1), 1);
    let status = server.status();
    assert_eq!(status["http"]["max_connections"], 50);
    assert!(
        status["http"]["evicted"].as_u64().unwrap() >= 150,
        "{}",
        status["http"]
    );
    // The first connections were the ones closed: reading them ends at once.
    let first = &mut held[0];
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(matches!(first.read(&mut byte), Ok(0) | Err(_)));
}

#[test]
fn a_half_sent_head_is_closed_after_the_header_timeout() {
    let dir = TempDir::new("flood-slow");
    let server = Server::start("polaris", dir.path(), &[]);
    let mut slow = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: slow\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let mut byte = [0u8; 1];
    assert!(matches!(slow.read(&mut byte), Ok(0) | Err(_)));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(8) && waited < Duration::from_secs(15),
        "{waited:?}"
    );
    assert!(server.status()["http"]["timed_out"].as_u64().unwrap() >= 1);
}

/// Everything the node answers on one connection, read until it closes.
fn exchange(port: u16, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn keep_alive_pipelining_and_chunked_bodies_work_and_bad_heads_are_refused() {
    let dir = TempDir::new("flood-wire");
    let server = Server::start("polaris", dir.path(), &[]);
    // Two pipelined requests then a chunked write, on one connection; the last closes.
    let answer = exchange(
        server.port,
        b"GET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /health HTTP/1.1\r\nHost: a\r\n\r\n\
          POST /write?precision=ms HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\
          Connection: close\r\n\r\n1d\r\nm,device_id=chunky value=1 17\r\n3\r\n000\r\n0\r\n\r\n",
    );
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 2, "{answer}");
    assert!(answer.contains("HTTP/1.1 204 No Content"), "{answer}");
    assert_eq!(server.count("chunky", "m"), 1);

    let smuggle = exchange(
        server.port,
        b"POST /write HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert!(smuggle.starts_with("HTTP/1.1 400 "), "{smuggle}");
    assert!(
        smuggle.contains("Content-Length and Transfer-Encoding"),
        "{smuggle}"
    );
    let garbage = exchange(server.port, b"HELLO\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400 "), "{garbage}");
    assert!(garbage.contains("{\"error\":"), "{garbage}");
    assert!(server.is_running());
}

#[test]
fn out_of_descriptors_the_oldest_waiting_connection_makes_room() {
    let has_prlimit = std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok();
    if !has_prlimit {
        eprintln!("prlimit missing: skipping the descriptor-exhaustion flood");
        return;
    }
    let dir = TempDir::new("flood-fds");
    // 256 descriptors and a cap above them: `accept` itself runs out (EMFILE).
    let server = Server::start_wrapped(
        "polaris",
        dir.path(),
        &["--max_connections=5000"],
        &[],
        &["prlimit", "--nofile=256:256", "--"],
    );
    let held = flood(server.port, 400, 0);
    fresh_client_is_served(&server, Duration::from_secs(1), 1);
    let http = &server.status()["http"];
    assert!(http["accept_errors"].as_u64().unwrap() >= 1, "{http}");
    assert!(http["evicted"].as_u64().unwrap() >= 1, "{http}");
    drop(held);
    fresh_client_is_served(&server, Duration::from_secs(1), 2);
    assert!(server.is_running());
}
