//! Gossip: how nodes exchange their member tables over TCP (push-pull), the listener that
//! answers peers, the periodic rounds and the leave announcement. The rules of what a table
//! means live in [`membership`](super::membership); this file only moves tables around.
//!
//! A round, every `gossip_interval`: tick the table (bump our heartbeat, judge silent
//! members), then send the whole table to up to [`FANOUT`] random peers that have not left
//! (plus the seeds while no other member is alive or suspect). Each exchange is one
//! connection carrying one request frame and one reply frame, both whole tables; both sides
//! merge what they receive. Exchanges and accepted connections run on short-lived threads
//! with [`IO_TIMEOUT`] on every socket, so one hung peer delays nobody's heartbeat.
//!
//! # Wire format
//!
//! Each message is one frame (integers big-endian):
//!
//! 1. magic `MTGS` [4 bytes]
//! 2. version u16 [2 bytes], currently [`VERSION`]
//! 3. body length u32 [4 bytes], at most [`MAX_BODY`]
//! 4. body [length bytes]: JSON `{"from": id, "members": [{"id", "http_addr",
//!    "gossip_addr", "incarnation", "heartbeat", "state"}]}` with `state` one of
//!    `alive`, `suspect`, `dead`, `left`.
//!
//! A frame with another magic or version, a longer body, or a body that is not such JSON
//! is refused: the connection is closed and the refusal logged (at most once per
//! [`REFUSAL_LOG_INTERVAL`], with a count of the ones not logged).

use super::membership::{Change, Digest, FailureTimeouts};
use crate::config::{Config, LOCAL_SLOTS};
use crate::error::{Error, Result};
use crate::node::Node;
use crate::{log_debug, log_info, log_warn};
use crossbeam_channel::{select, tick, Receiver, RecvTimeoutError, TryRecvError};
use serde::{Deserialize, Serialize};
use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, Scope};
use std::time::{Duration, Instant};

/// First bytes of every frame.
pub const MAGIC: [u8; 4] = *b"MTGS";

/// The frame version this node speaks.
pub const VERSION: u16 = 1;

/// Bytes before the body: magic, version, length.
pub const HEADER_LEN: usize = 10;

/// Largest body accepted (1 MiB): thousands of members.
pub const MAX_BODY: u32 = 1 << 20;

/// Read, write and connect timeout of every gossip socket.
pub const IO_TIMEOUT: Duration = Duration::from_secs(1);

/// Peers contacted per round.
pub const FANOUT: usize = 2;

/// Time the leave announcement may take in total at shutdown.
pub const LEAVE_BUDGET: Duration = Duration::from_millis(300);

/// Accepted connections handled at once; more are closed unanswered.
pub const MAX_CONNECTIONS: usize = 32;

/// How often the listener checks for shutdown while no peer connects.
const ACCEPT_POLL: Duration = Duration::from_millis(25);

/// At most one refusal is logged per interval.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// One gossip message: the sender's whole member table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub from: String,
    pub members: Vec<Digest>,
}

/// The frame carrying `message`.
pub fn encode(message: &Message) -> Vec<u8> {
    let body = serde_json::to_vec(message).expect("a message always serializes");
    let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(&VERSION.to_be_bytes());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Checks a frame header; returns the body length.
pub fn decode_header(header: &[u8; HEADER_LEN]) -> Result<usize> {
    if header[0..4] != MAGIC {
        return Err(Error::invalid(
            "gossip frame",
            format!("wrong magic {:02x?} (want \"MTGS\")", &header[0..4]),
        ));
    }
    let version = u16::from_be_bytes([header[4], header[5]]);
    if version != VERSION {
        return Err(Error::invalid(
            "gossip frame",
            format!("version {version} (this node speaks {VERSION})"),
        ));
    }
    let length = u32::from_be_bytes([header[6], header[7], header[8], header[9]]);
    if length > MAX_BODY {
        return Err(Error::invalid(
            "gossip frame",
            format!("body of {length} bytes (at most {MAX_BODY})"),
        ));
    }
    Ok(length as usize)
}

/// Parses a frame body.
pub fn decode_body(body: &[u8]) -> Result<Message> {
    serde_json::from_slice(body)
        .map_err(|e| Error::invalid("gossip frame", format!("bad body: {e}")))
}

/// Decodes one whole frame held in `frame` (nothing may follow it).
pub fn decode(frame: &[u8]) -> Result<Message> {
    let header: &[u8; HEADER_LEN] = frame
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| Error::invalid("gossip frame", "shorter than its header"))?;
    let length = decode_header(header)?;
    let body = &frame[HEADER_LEN..];
    if body.len() != length {
        return Err(Error::invalid(
            "gossip frame",
            format!("body of {} bytes, header says {length}", body.len()),
        ));
    }
    decode_body(body)
}

/// Reads one frame from `stream`.
pub fn read_message(stream: &mut impl Read, peer: &str) -> Result<Message> {
    let mut header = [0u8; HEADER_LEN];
    stream
        .read_exact(&mut header)
        .map_err(|e| Error::io(peer, e))?;
    let length = decode_header(&header)?;
    let mut body = vec![0u8; length];
    stream
        .read_exact(&mut body)
        .map_err(|e| Error::io(peer, e))?;
    decode_body(&body)
}

/// One push-pull exchange with the peer at `addr`: sends `frame`, returns its reply.
pub fn exchange(addr: &str, frame: &[u8], timeout: Duration) -> Result<Message> {
    let mut stream = connect(addr, timeout)?;
    stream.write_all(frame).map_err(|e| Error::io(addr, e))?;
    read_message(&mut stream, addr)
}

fn connect(addr: &str, timeout: Duration) -> Result<TcpStream> {
    let timeout = timeout.max(Duration::from_millis(1));
    let socket_addr = addr
        .to_socket_addrs()
        .map_err(|e| Error::io(addr, e))?
        .next()
        .ok_or_else(|| Error::invalid("gossip peer", format!("{addr} resolves to nothing")))?;
    let stream =
        TcpStream::connect_timeout(&socket_addr, timeout).map_err(|e| Error::io(addr, e))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|_| stream.set_write_timeout(Some(timeout)))
        .and_then(|_| stream.set_nodelay(true))
        .map_err(|e| Error::io(addr, e))?;
    Ok(stream)
}

/// The addresses to try while no peer is known: `--seeds`, or, on a local run (this node
/// sits on one of the local slots' gossip ports), the other local slots. A node on other
/// ports without `--seeds` probes nothing: it must not join a local cluster by accident.
pub fn seed_addrs(config: &Config) -> Vec<String> {
    let port = config.gossip_addr.port();
    let local_run = LOCAL_SLOTS.iter().any(|s| s.2 == port);
    let own = [
        config.advertised_gossip(),
        config.gossip_addr.to_string(),
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
    ];
    let seeds: Vec<String> = if config.seeds.is_empty() && !local_run {
        Vec::new()
    } else if config.seeds.is_empty() {
        LOCAL_SLOTS
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.2))
            .collect()
    } else {
        config.seeds.clone()
    };
    seeds
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && !own.contains(s))
        .collect()
}

/// A small xorshift generator: peer choice needs spread, not cryptographic quality.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn from_entropy() -> Rng {
        Rng::new(RandomState::new().hash_one(std::process::id()))
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x % n as u64) as usize
    }
}

/// Up to `n` distinct random elements of `candidates`.
pub fn pick<T>(mut candidates: Vec<T>, n: usize, rng: &mut Rng) -> Vec<T> {
    let n = n.min(candidates.len());
    for i in 0..n {
        let j = i + rng.below(candidates.len() - i);
        candidates.swap(i, j);
    }
    candidates.truncate(n);
    candidates
}

/// Logs refused peers, at most once per [`REFUSAL_LOG_INTERVAL`].
#[derive(Default)]
struct Refusals {
    last_logged: Mutex<Option<Instant>>,
    unlogged: AtomicU64,
}

impl Refusals {
    fn note(&self, peer: SocketAddr, why: &Error) {
        match self.admit(Instant::now()) {
            None => {}
            Some(0) => log_warn!("gossip: refused {peer}: {why}"),
            Some(unlogged) => log_warn!(
                "gossip: refused {peer}: {why} ({unlogged} more refused since last report)"
            ),
        }
    }

    /// Whether a refusal at `now` is logged: `Some(refusals not logged since the last one)`.
    fn admit(&self, now: Instant) -> Option<u64> {
        let mut last = self.last_logged.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| now.saturating_duration_since(t) < REFUSAL_LOG_INTERVAL) {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.unlogged.swap(0, Ordering::Relaxed))
    }
}

fn log_changes(node: &Node, changes: &[Change]) {
    for change in changes {
        log_info!("{}: member {change}", node.config.node_id);
    }
}

/// The `gossip-listen` thread: answers each peer's table with ours, one short-lived thread
/// per connection, until `shutdown_rx` disconnects.
pub fn gossip_listen<'scope>(
    node: &'scope Node,
    listener: &TcpListener,
    scope: &'scope Scope<'scope, '_>,
    shutdown_rx: &Receiver<()>,
) {
    if let Err(e) = listener.set_nonblocking(true) {
        log_warn!("gossip: cannot make the listener non-blocking: {e}");
    }
    let active = Arc::new(AtomicUsize::new(0));
    let refusals = Arc::new(Refusals::default());
    loop {
        // Checked on every accept too, so a flood of peers cannot keep the listener alive.
        if let Err(TryRecvError::Disconnected) = shutdown_rx.try_recv() {
            return;
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    refusals.note(peer, &Error::invalid("gossip peer", "too many connections"));
                    continue;
                }
                active.fetch_add(1, Ordering::Relaxed);
                let (active, refusals) = (active.clone(), refusals.clone());
                let spawned = thread::Builder::new()
                    .name("gossip-answer".into())
                    .spawn_scoped(scope, move || {
                        if let Err(e) = answer(node, stream, peer) {
                            refusals.note(peer, &e);
                        }
                        active.fetch_sub(1, Ordering::Relaxed);
                    });
                if let Err(e) = spawned {
                    log_warn!("gossip: cannot spawn a thread for {peer}: {e}");
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if let Err(RecvTimeoutError::Disconnected) = shutdown_rx.recv_timeout(ACCEPT_POLL) {
                    return;
                }
            }
            Err(e) => {
                log_warn!("gossip: accept failed: {e}");
                if let Err(RecvTimeoutError::Disconnected) = shutdown_rx.recv_timeout(ACCEPT_POLL) {
                    return;
                }
            }
        }
    }
}

/// Handles one connection: read a table, merge it, reply with ours.
fn answer(node: &Node, mut stream: TcpStream, peer: SocketAddr) -> Result<()> {
    let name = peer.to_string();
    stream
        .set_nonblocking(false)
        .and_then(|_| stream.set_read_timeout(Some(IO_TIMEOUT)))
        .and_then(|_| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| Error::io(&name, e))?;
    let message = read_message(&mut stream, &name)?;
    let (changes, members) = node.cluster.update(|m| {
        let changes = m.merge(&message.members, Instant::now());
        (changes, m.digests())
    });
    log_changes(node, &changes);
    let reply = Message {
        from: node.config.node_id.clone(),
        members,
    };
    stream
        .write_all(&encode(&reply))
        .map_err(|e| Error::io(&name, e))
}

/// The `gossip-round` thread: every `gossip_interval`, ticks the table and exchanges it
/// with a few peers; when `shutdown_rx` disconnects, announces the leave and returns.
pub fn gossip_round<'scope>(
    node: &'scope Node,
    scope: &'scope Scope<'scope, '_>,
    shutdown_rx: &Receiver<()>,
) {
    let timeouts = FailureTimeouts {
        suspect: node.config.suspect_timeout,
        dead: node.config.dead_timeout,
    };
    let seeds = seed_addrs(&node.config);
    let mut rng = Rng::from_entropy();
    // Peers with an exchange under way: a hung peer gets one thread, not one per round.
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    let ticker = tick(node.config.gossip_interval);
    loop {
        select! {
            recv(shutdown_rx) -> _ => {
                announce_leave(node);
                return;
            }
            recv(ticker) -> _ => {}
        }
        let now = Instant::now();
        let (changes, members, peers, lonely) = node.cluster.update(|m| {
            let changes = m.tick(now, &timeouts);
            (changes, m.digests(), m.peer_addrs(), !m.knows_live_peer())
        });
        log_changes(node, &changes);
        let mut targets = pick(peers, FANOUT, &mut rng);
        if lonely {
            for seed in &seeds {
                if !targets.contains(seed) {
                    targets.push(seed.clone());
                }
            }
        }
        let frame = Arc::new(encode(&Message {
            from: node.config.node_id.clone(),
            members,
        }));
        for addr in targets {
            if !lock(&in_flight).insert(addr.clone()) {
                continue;
            }
            let (frame, in_flight) = (frame.clone(), in_flight.clone());
            let spawned = thread::Builder::new()
                .name("gossip-exchange".into())
                .spawn_scoped(scope, move || {
                    exchange_with(node, &addr, &frame);
                    lock(&in_flight).remove(&addr);
                });
            if let Err(e) = spawned {
                log_warn!("gossip: cannot spawn an exchange thread: {e}");
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn exchange_with(node: &Node, addr: &str, frame: &[u8]) {
    match exchange(addr, frame, IO_TIMEOUT) {
        Ok(reply) => {
            let changes = node
                .cluster
                .update(|m| m.merge(&reply.members, Instant::now()));
            log_changes(node, &changes);
        }
        Err(e) => log_debug!("gossip: exchange with {addr}: {e}"),
    }
}

/// Marks this node as left and pushes that to every known peer, best effort, within
/// [`LEAVE_BUDGET`].
pub fn announce_leave(node: &Node) {
    let deadline = Instant::now() + LEAVE_BUDGET;
    let (change, members, peers) = node
        .cluster
        .update(|m| (m.leave(), m.digests(), m.peer_addrs()));
    log_info!("{}: member {change}", node.config.node_id);
    let frame = encode(&Message {
        from: node.config.node_id.clone(),
        members,
    });
    thread::scope(|s| {
        for addr in &peers {
            let frame = &frame;
            s.spawn(move || {
                let left = deadline.saturating_duration_since(Instant::now());
                if let Err(e) = exchange(addr, frame, left) {
                    log_debug!("gossip: leave announcement to {addr}: {e}");
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::membership::MemberState;

    fn sample() -> Message {
        Message {
            from: "polaris".into(),
            members: vec![Digest {
                id: "polaris".into(),
                http_addr: "127.0.0.1:8080".into(),
                gossip_addr: "127.0.0.1:9000".into(),
                incarnation: 1700000000000,
                heartbeat: 42,
                state: MemberState::Alive,
            }],
        }
    }

    #[test]
    fn frame_round_trips() {
        let mut message = sample();
        for (i, state) in [MemberState::Suspect, MemberState::Dead, MemberState::Left]
            .into_iter()
            .enumerate()
        {
            message.members.push(Digest {
                id: format!("n{i}"),
                http_addr: String::new(),
                gossip_addr: format!("h:{i}"),
                incarnation: u64::MAX - i as u64,
                heartbeat: i as u64,
                state,
            });
        }
        let frame = encode(&message);
        assert_eq!(decode(&frame).unwrap(), message);
        assert_eq!(
            read_message(&mut frame.as_slice(), "test").unwrap(),
            message
        );
    }

    #[test]
    fn golden_frame_bytes() {
        // A change here breaks mixed-version clusters: never silent.
        let body = br#"{"from":"polaris","members":[{"id":"polaris","http_addr":"127.0.0.1:8080","gossip_addr":"127.0.0.1:9000","incarnation":1700000000000,"heartbeat":42,"state":"alive"}]}"#;
        let mut golden = b"MTGS\x00\x01".to_vec();
        golden.extend_from_slice(&(body.len() as u32).to_be_bytes());
        assert_eq!(&golden[6..], &[0, 0, 0, 166]);
        golden.extend_from_slice(body);
        assert_eq!(encode(&sample()), golden);
    }

    #[test]
    fn bad_frames_are_refused() {
        let good = encode(&sample());
        let mut wrong_magic = good.clone();
        wrong_magic[0] = b'X';
        let mut wrong_version = good.clone();
        wrong_version[5] = 2;
        let mut huge = good[..HEADER_LEN].to_vec();
        huge[6..10].copy_from_slice(&(MAX_BODY + 1).to_be_bytes());
        let mut garbage_body = good[..6].to_vec();
        garbage_body.extend_from_slice(&4u32.to_be_bytes());
        garbage_body.extend_from_slice(b"\xff{x}");
        let cases: [(&str, &[u8], &str); 6] = [
            ("wrong magic", &wrong_magic, "magic"),
            ("wrong version", &wrong_version, "version 2"),
            ("huge length", &huge, "at most"),
            ("garbage body", &garbage_body, "bad body"),
            ("truncated", &good[..good.len() - 1], "header says"),
            ("empty", b"", "shorter"),
        ];
        for (name, frame, want) in cases {
            let e = decode(frame).expect_err(name).to_string();
            assert!(e.contains(want), "{name}: {e}");
        }
        // A reader never allocates what an oversize header claims.
        let e = read_message(&mut huge.as_slice(), "peer").unwrap_err();
        assert!(e.to_string().contains("at most"), "{e}");
        let e = read_message(&mut &good[..20], "peer").unwrap_err();
        assert!(e.to_string().starts_with("peer:"), "{e}");
    }

    #[test]
    fn the_largest_body_is_accepted_and_one_more_byte_is_not() {
        let mut header = *b"MTGS\x00\x01\x00\x00\x00\x00";
        header[6..].copy_from_slice(&MAX_BODY.to_be_bytes());
        assert_eq!(decode_header(&header).unwrap(), MAX_BODY as usize);
        header[6..].copy_from_slice(&(MAX_BODY + 1).to_be_bytes());
        assert!(decode_header(&header).is_err());
    }

    fn config(flags: &[&str]) -> Config {
        use clap::Parser;
        let mut all = vec!["minitrue-server", "--bind=127.0.0.1"];
        all.extend_from_slice(flags);
        crate::config::ServerArgs::try_parse_from(all)
            .unwrap()
            .into_config()
            .unwrap()
    }

    #[test]
    fn seeds_default_to_the_other_local_slots() {
        assert_eq!(
            seed_addrs(&config(&["--node_id=sirius"])),
            ["127.0.0.1:9000", "127.0.0.1:9002"]
        );
        let c = config(&[
            "--node_id=node_a",
            "--port=8090",
            "--tcp_port=10090",
            "--seeds=localhost:9000,127.0.0.1:10090,localhost:9001",
        ]);
        assert_eq!(seed_addrs(&c), ["localhost:9000", "localhost:9001"]);
        let elsewhere = config(&["--node_id=node_b", "--port=8091", "--tcp_port=10091"]);
        assert!(
            seed_addrs(&elsewhere).is_empty(),
            "no probing off the local slots"
        );
    }

    #[test]
    fn refusals_are_logged_at_most_once_per_interval_with_a_count() {
        let refusals = Refusals::default();
        let t0 = Instant::now();
        assert_eq!(refusals.admit(t0), Some(0));
        for ms in [1, 10, 4999] {
            assert_eq!(refusals.admit(t0 + Duration::from_millis(ms)), None);
        }
        assert_eq!(refusals.admit(t0 + REFUSAL_LOG_INTERVAL), Some(3));
    }

    #[test]
    fn pick_returns_distinct_elements_up_to_n() {
        let mut rng = Rng::new(7);
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let chosen = pick(vec![1, 2, 3, 4, 5], 2, &mut rng);
            assert_eq!(chosen.len(), 2);
            assert_ne!(chosen[0], chosen[1]);
            seen.extend(chosen);
        }
        assert_eq!(seen.len(), 5, "every peer gets picked eventually");
        assert_eq!(pick(vec![1], 2, &mut rng), [1]);
        assert!(pick(Vec::<u8>::new(), 2, &mut rng).is_empty());
    }
}
