//! Cluster membership across real processes: three `minitrue-server`s find each other
//! through a seed, agree on the ring, and follow a hung node (SIGSTOP/SIGCONT), a killed
//! and restarted node (SIGKILL) and a clean leave (SIGTERM). Another test feeds the gossip
//! port garbage and checks that the node and its gossip carry on.
//!
//! Short timings (`--gossip_interval_ms 100 --suspect_timeout_ms 600 --dead_timeout_ms
//! 1500`) keep the runs short; every wait has a deadline.

mod common;

use common::{free_port, try_request, TempDir};
use minitrue::cluster::gossip::{encode, read_message, Message, MAX_BODY};
use minitrue::cluster::membership::{Digest, MemberState};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const TIMINGS: [&str; 3] = [
    "--gossip_interval_ms=100",
    "--suspect_timeout_ms=600",
    "--dead_timeout_ms=1500",
];

/// Longest any convergence may take.
const CONVERGE: Duration = Duration::from_secs(15);

/// One `minitrue-server` with ports chosen here (so it can be restarted on the same ones);
/// killed by PID when dropped.
struct Node {
    id: String,
    http: u16,
    gossip: u16,
    seed: u16,
    dir: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    starts: usize,
}

impl Node {
    fn start(id: &str, seed: Option<u16>, dir: &Path) -> Node {
        let gossip = free_port();
        let mut node = Node {
            id: id.into(),
            http: free_port(),
            gossip,
            seed: seed.unwrap_or(gossip),
            dir: dir.to_path_buf(),
            child: None,
            log: PathBuf::new(),
            starts: 0,
        };
        node.spawn();
        node
    }

    fn spawn(&mut self) {
        self.starts += 1;
        self.log = self.dir.join(format!("{}-{}.log", self.id, self.starts));
        let stderr = std::fs::File::create(&self.log).expect("create server log");
        let child = Command::new(env!("CARGO_BIN_EXE_minitrue-server"))
            .arg(format!("--node_id={}", self.id))
            .arg(format!("--port={}", self.http))
            .arg(format!("--tcp_port={}", self.gossip))
            .arg(format!("--seeds=127.0.0.1:{}", self.seed))
            .arg(format!("--data_dir={}", self.dir.display()))
            .arg("--bind=127.0.0.1")
            .arg("--broker=tcp://127.0.0.1:1")
            .arg("--http_workers=2")
            .args(TIMINGS)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn minitrue-server");
        self.child = Some(child);
        let deadline = Instant::now() + common::STARTUP_TIMEOUT;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("{} exited early ({status}):\n{}", self.id, self.log_text());
            }
            if try_request(self.http, "GET", "/health", &[], &[]).is_ok_and(|r| r.status == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not healthy:\n{}",
                self.id,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("node running").id();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    /// Waits (bounded) for the process to exit after a signal.
    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("node running");
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not exit", self.id);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// This node's view: member id → state, and the ring shares.
    fn view(&self) -> Option<(BTreeMap<String, String>, Value)> {
        let status = try_request(self.http, "GET", "/status", &[], &[]).ok()?;
        let body = status.json();
        let states = body["members"]
            .as_array()?
            .iter()
            .map(|m| {
                (
                    m["id"].as_str().unwrap_or_default().to_string(),
                    m["state"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        Some((states, body["ring_share"].clone()))
    }

    fn state_of(&self, id: &str) -> Option<String> {
        self.view()?.0.get(id).cloned()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `done` every 20 ms until it holds; panics with `what` and the logs at `timeout`.
fn wait_until(what: &str, timeout: Duration, nodes: &[&Node], mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            let logs: Vec<String> = nodes
                .iter()
                .map(|n| format!("--- {} ---\n{}", n.id, n.log_text()))
                .collect();
            panic!("timed out waiting for {what}\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether every node in `observers` sees exactly `expected` and all agree on the ring.
fn all_see(observers: &[&Node], expected: &[(&str, &str)]) -> bool {
    let want: BTreeMap<String, String> = expected
        .iter()
        .map(|(id, s)| (id.to_string(), s.to_string()))
        .collect();
    let mut rings = Vec::new();
    for node in observers {
        match node.view() {
            Some((states, ring)) if states == want => rings.push(ring),
            _ => return false,
        }
    }
    rings.windows(2).all(|w| w[0] == w[1])
}

#[test]
fn three_nodes_agree_and_follow_hangs_crashes_restarts_and_leaves() {
    let dir = TempDir::new("membership");
    let a = Node::start("polaris", None, dir.path());
    let b = Node::start("sirius", Some(a.gossip), dir.path());
    let mut c = Node::start("vega", Some(a.gossip), dir.path());
    let all = [("polaris", "alive"), ("sirius", "alive"), ("vega", "alive")];

    wait_until(
        "three alive members everywhere",
        CONVERGE,
        &[&a, &b, &c],
        || all_see(&[&a, &b, &c], &all),
    );
    let (_, ring) = a.view().expect("status");
    let total: f64 = ring
        .as_object()
        .expect("ring_share map")
        .values()
        .map(|v| v.as_f64().expect("share"))
        .sum();
    assert!((total - 1.0).abs() < 1e-9, "{ring}");
    assert_eq!(ring.as_object().map(|m| m.len()), Some(3), "{ring}");

    // Hung, not dead: suspected first, then dead.
    b.signal("STOP");
    let mut suspected = [false, false];
    wait_until("sirius dead to the others", CONVERGE, &[&a, &c], || {
        let states = [a.state_of("sirius"), c.state_of("sirius")];
        for (seen, state) in suspected.iter_mut().zip(&states) {
            *seen |= state.as_deref() == Some("suspect");
        }
        states.iter().all(|s| s.as_deref() == Some("dead"))
    });
    assert_eq!(suspected, [true, true], "suspect before dead on both");
    b.signal("CONT");
    wait_until("sirius alive again", CONVERGE, &[&a, &b, &c], || {
        all_see(&[&a, &b, &c], &all)
    });

    // Crashed: dead; restarted on the same id and ports: alive (a newer incarnation).
    c.signal("KILL");
    c.wait_exit(Duration::from_secs(5));
    wait_until("vega dead", CONVERGE, &[&a, &b], || {
        all_see(
            &[&a, &b],
            &[("polaris", "alive"), ("sirius", "alive"), ("vega", "dead")],
        )
    });
    c.spawn();
    wait_until("restarted vega alive", CONVERGE, &[&a, &b, &c], || {
        all_see(&[&a, &b, &c], &all)
    });

    // Clean shutdown: announced, so the others see it left at once and drop it from the ring.
    let mut b = b;
    b.signal("TERM");
    let status = b.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "sirius exit: {status}\n{}", b.log_text());
    wait_until("sirius left", Duration::from_secs(2), &[&a, &c], || {
        all_see(
            &[&a, &c],
            &[("polaris", "alive"), ("sirius", "left"), ("vega", "alive")],
        )
    });
    let (_, ring) = a.view().expect("status");
    assert!(
        ring.get("sirius").is_none(),
        "left node still in ring: {ring}"
    );
}

/// Sends `bytes` to the gossip port and reads until the node closes (or 3 s pass).
fn send_garbage(port: u16, bytes: &[u8]) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to gossip port");
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let _ = stream.write_all(bytes);
    let mut sink = Vec::new();
    let _ = stream.read_to_end(&mut sink);
}

#[test]
fn garbage_on_the_gossip_port_does_not_stop_the_node_or_its_gossip() {
    let dir = TempDir::new("membership-garbage");
    let a = Node::start("polaris", None, dir.path());
    let b = Node::start("sirius", Some(a.gossip), dir.path());
    let both = [("polaris", "alive"), ("sirius", "alive")];
    wait_until("two alive members", CONVERGE, &[&a, &b], || {
        all_see(&[&a, &b], &both)
    });

    // Idle connections that never send a byte must not hold up anyone else.
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", a.gossip)).expect("connect"))
        .collect();

    let mut random = Vec::with_capacity(4096);
    let mut x: u32 = 0x9e37_79b9;
    for _ in 0..4096 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        random.push(x as u8);
    }
    let mut wrong_magic = b"XXXX\x00\x01\x00\x00\x00\x02{}".to_vec();
    wrong_magic.extend_from_slice(&random[..64]);
    let mut huge = b"MTGS\x00\x01".to_vec();
    huge.extend_from_slice(&(MAX_BODY + 1).to_be_bytes());
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    let mut other_version = b"MTGS\x00\x09".to_vec();
    other_version.extend_from_slice(&2u32.to_be_bytes());
    other_version.extend_from_slice(b"{}");
    let mut bad_json = b"MTGS\x00\x01".to_vec();
    bad_json.extend_from_slice(&6u32.to_be_bytes());
    bad_json.extend_from_slice(b"{\"fro");
    for garbage in [
        &random[..],
        &wrong_magic,
        &huge,
        &other_version,
        &bad_json,
        b"MTG",
        b"GET / HTTP/1.1\r\n\r\n",
    ] {
        send_garbage(a.gossip, garbage);
    }

    // A well-formed exchange is answered while the idle connections are still open.
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", a.gossip)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let hello = Message {
        from: "probe".into(),
        members: vec![Digest {
            id: "probe".into(),
            http_addr: "127.0.0.1:1".into(),
            gossip_addr: "127.0.0.1:1".into(),
            incarnation: 1,
            heartbeat: 1,
            state: MemberState::Left,
        }],
    };
    stream.write_all(&encode(&hello, None)).expect("send frame");
    let reply = read_message(&mut stream, "polaris").expect("a reply frame");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "answer waited for idle peers: {:?}",
        started.elapsed()
    );
    assert_eq!(reply.from, "polaris");
    let ids: Vec<&str> = reply.members.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["polaris", "probe", "sirius"]);
    drop(idle);

    assert!(try_request(a.http, "GET", "/health", &[], &[]).is_ok_and(|r| r.status == 200));
    // Gossip goes on: longer than the dead timeout later, both still see each other alive.
    std::thread::sleep(Duration::from_millis(2000));
    let expected = [("polaris", "alive"), ("probe", "left"), ("sirius", "alive")];
    // Only a member itself announces its leave: polaris heard probe's from probe, sirius
    // only through polaris, so it does not learn of probe at all. Neither ring holds it.
    wait_until("gossip still flowing", CONVERGE, &[&a, &b], || {
        all_see(&[&a], &expected)
            && all_see(&[&b], &both)
            && a.view().map(|v| v.1) == b.view().map(|v| v.1)
    });
    let heard: Value = try_request(b.http, "GET", "/status", &[], &[])
        .expect("status")
        .json();
    let polaris = heard["members"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["id"] == "polaris"))
        .cloned()
        .expect("polaris in sirius's view");
    assert!(
        polaris["last_heard_ms"].as_u64().is_some_and(|ms| ms < 600),
        "{polaris}"
    );
    assert!(a.log_text().contains("refused"), "{}", a.log_text());
}
