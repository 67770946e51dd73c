//! Gossip: how nodes exchange their member tables over TCP (push-pull), the listener that
//! answers peers, the periodic rounds and the leave announcement. The rules of what a table
//! means live in [`membership`](super::membership); this file only moves tables around.
//!
//! A round, every `gossip_interval`: tick the table (bump our heartbeat, judge silent
//! members), then send the whole table to up to [`FANOUT`] random peers that have not left
//! (plus the seeds while no other member is alive or suspect, and one random seed every
//! [`SEED_PROBE_ROUNDS`] rounds: a member removed after `--dead_member_expiry` is no longer
//! gossiped to, so a restarted one without seeds of its own is found again this way). Each exchange is one
//! connection carrying one request frame and one reply frame, both whole tables; both sides
//! merge what they receive. Exchanges and accepted connections run on short-lived threads
//! with [`IO_TIMEOUT`] on every socket, so one hung peer delays nobody's heartbeat.
//!
//! # Wire format
//!
//! Each message is one frame (integers big-endian):
//!
//! 1. magic `MTGS` [4 bytes]
//! 2. version u16 [2 bytes]: [`VERSION`] (1, unsigned) or [`SIGNED_VERSION`] (2, sealed)
//! 3. body length u32 [4 bytes], at most [`MAX_BODY`]
//! 4. version 2 only, the seal [40 bytes]: signing time u64 in unix ms [8 bytes], then
//!    HMAC-SHA256 [32 bytes] over the time, `MTGS` and the body (see
//!    [`secret`](super::secret))
//! 5. body [length bytes]: JSON `{"from": id, "members": [{"id", "http_addr",
//!    "gossip_addr", "incarnation", "heartbeat", "state"}]}` with `state` one of
//!    `alive`, `suspect`, `dead`, `left`.
//!
//! A node with `--cluster_secret_file` sends version 2 and accepts only version 2 frames
//! that verify, are fresh and were not seen before; a node without one sends version 1 and
//! accepts both (it cannot check a seal, so it ignores it). Replies are checked like
//! requests.
//!
//! A frame with another magic or version, a longer body, a body that is not such JSON, or
//! a seal that does not pass is refused: the connection is closed, the refusal counted in
//! `/status` and logged (at most once per [`REFUSAL_LOG_INTERVAL`], with a count of the
//! ones not logged).

use super::membership::{Arrival, Change, Digest, FailureTimeouts};
use super::secret::{unix_now_ms, ClusterSecret, Seal, MAC_LEN};
use crate::cluster::fan_out::alongside;
use crate::config::{Config, LOCAL_SLOTS};
use crate::error::{Error, Result};
use crate::node::Node;
use crate::throttle::Throttle;
use crate::{log_debug, log_info, log_warn};
use crossbeam_channel::{select, tick, Receiver, RecvTimeoutError, TryRecvError};
use serde::{Deserialize, Serialize};
use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, Scope};
use std::time::{Duration, Instant};

/// First bytes of every frame.
pub const MAGIC: [u8; 4] = *b"MTGS";

/// The version of unsigned frames (a node without a cluster secret).
pub const VERSION: u16 = 1;

/// The version of frames sealed with the cluster secret.
pub const SIGNED_VERSION: u16 = 2;

/// Bytes of the header every frame starts with: magic, version, length.
pub const HEADER_LEN: usize = 10;

/// Bytes of the seal after the header of a signed frame: time and MAC.
pub const SEAL_LEN: usize = 8 + MAC_LEN;

/// Largest body accepted (1 MiB): thousands of members.
pub const MAX_BODY: u32 = 1 << 20;

/// Read, write and connect timeout of every gossip socket.
pub const IO_TIMEOUT: Duration = Duration::from_secs(1);

/// Peers contacted per round.
pub const FANOUT: usize = 2;

/// Every this many rounds one seed is contacted even when peers are known.
pub const SEED_PROBE_ROUNDS: u64 = 20;

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

/// One frame as received: its seal (signed frames only) and its body, not yet trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub seal: Option<Seal>,
    pub body: Vec<u8>,
}

impl Frame {
    /// The message in the body.
    pub fn message(&self) -> Result<Message> {
        decode_body(&self.body)
    }
}

/// What a frame header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// A seal of [`SEAL_LEN`] bytes follows the header.
    pub sealed: bool,
    pub body_len: usize,
}

/// The frame carrying `message`, sealed now with `secret` if there is one.
pub fn encode(message: &Message, secret: Option<&ClusterSecret>) -> Vec<u8> {
    encode_at(message, secret, unix_now_ms())
}

/// The frame carrying `message`, sealed with `secret` (if any) as signed at `now_ms`.
pub fn encode_at(message: &Message, secret: Option<&ClusterSecret>, now_ms: u64) -> Vec<u8> {
    let body = serde_json::to_vec(message).expect("a message always serializes");
    let mut frame = Vec::with_capacity(HEADER_LEN + SEAL_LEN + body.len());
    frame.extend_from_slice(&MAGIC);
    let version = if secret.is_some() {
        SIGNED_VERSION
    } else {
        VERSION
    };
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    if let Some(secret) = secret {
        frame.extend_from_slice(&now_ms.to_be_bytes());
        frame.extend_from_slice(&secret.sign_frame(now_ms, &body));
    }
    frame.extend_from_slice(&body);
    frame
}

/// Checks a frame header; says whether a seal follows and how long the body is.
pub fn decode_header(header: &[u8; HEADER_LEN]) -> Result<FrameHeader> {
    if header[0..4] != MAGIC {
        return Err(Error::invalid(
            "gossip frame",
            format!("wrong magic {:02x?} (want \"MTGS\")", &header[0..4]),
        ));
    }
    let version = u16::from_be_bytes([header[4], header[5]]);
    if version != VERSION && version != SIGNED_VERSION {
        return Err(Error::invalid(
            "gossip frame",
            format!("version {version} (this node speaks {VERSION} and {SIGNED_VERSION})"),
        ));
    }
    let length = u32::from_be_bytes([header[6], header[7], header[8], header[9]]);
    if length > MAX_BODY {
        return Err(Error::invalid(
            "gossip frame",
            format!("body of {length} bytes (at most {MAX_BODY})"),
        ));
    }
    Ok(FrameHeader {
        sealed: version == SIGNED_VERSION,
        body_len: length as usize,
    })
}

fn decode_seal(bytes: &[u8; SEAL_LEN]) -> Seal {
    let (time, mac) = bytes.split_at(8);
    Seal {
        timestamp_ms: u64::from_be_bytes(time.try_into().expect("8 bytes")),
        mac: mac.try_into().expect("MAC_LEN bytes"),
    }
}

/// Parses a frame body.
pub fn decode_body(body: &[u8]) -> Result<Message> {
    serde_json::from_slice(body)
        .map_err(|e| Error::invalid("gossip frame", format!("bad body: {e}")))
}

/// Splits one whole frame held in `frame` (nothing may follow it) into seal and body.
pub fn decode(frame: &[u8]) -> Result<Frame> {
    let mut rest = frame;
    read_frame(&mut rest, "gossip frame")
        .map_err(|e| match e {
            Error::Io { .. } => Error::invalid("gossip frame", "shorter than its header says"),
            other => other,
        })
        .and_then(|decoded| match rest.len() {
            0 => Ok(decoded),
            extra => Err(Error::invalid(
                "gossip frame",
                format!("{extra} bytes after the body the header announces"),
            )),
        })
}

/// Reads one frame from `stream` (never allocating more than [`MAX_BODY`] for its body).
pub fn read_frame(stream: &mut impl Read, peer: &str) -> Result<Frame> {
    let mut header = [0u8; HEADER_LEN];
    stream
        .read_exact(&mut header)
        .map_err(|e| Error::io(peer, e))?;
    let header = decode_header(&header)?;
    let seal = if header.sealed {
        let mut seal = [0u8; SEAL_LEN];
        stream
            .read_exact(&mut seal)
            .map_err(|e| Error::io(peer, e))?;
        Some(decode_seal(&seal))
    } else {
        None
    };
    let mut body = vec![0u8; header.body_len];
    stream
        .read_exact(&mut body)
        .map_err(|e| Error::io(peer, e))?;
    Ok(Frame { seal, body })
}

/// Reads one frame from `stream` and parses its message without checking any seal (for
/// tools and tests; a node checks with [`ClusterTrust`](super::secret::ClusterTrust)).
pub fn read_message(stream: &mut impl Read, peer: &str) -> Result<Message> {
    read_frame(stream, peer)?.message()
}

/// One push-pull exchange with the peer at `addr`: sends `frame`, returns its reply.
pub fn exchange(addr: &str, frame: &[u8], timeout: Duration) -> Result<Frame> {
    let mut stream = connect(addr, timeout)?;
    stream.write_all(frame).map_err(|e| Error::io(addr, e))?;
    read_frame(&mut stream, addr)
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

/// Logs refused peers, at most once per [`REFUSAL_LOG_INTERVAL`] (shared by the listener's
/// connection threads).
struct Refusals(Mutex<Throttle>);

impl Default for Refusals {
    fn default() -> Refusals {
        Refusals(Mutex::new(Throttle::new(REFUSAL_LOG_INTERVAL)))
    }
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
        self.0.lock().unwrap_or_else(|p| p.into_inner()).admit(now)
    }
}

fn log_changes(node: &Node, changes: &[Change]) {
    for change in changes {
        log_info!("{}: member {change}", node.config.node_id);
    }
}

/// Checks a received frame against this node's trust and parses it; every refusal of a
/// frame (bad header or body, or seal) is counted. I/O failures are not refusals.
fn open(node: &Node, frame: Result<Frame>) -> Result<Message> {
    let refused = |e: Error| {
        if matches!(e, Error::InvalidInput { .. }) {
            node.trust.note_refused_frame();
        }
        e
    };
    let frame = frame.map_err(refused)?;
    node.trust
        .check_frame(frame.seal.as_ref(), &frame.body, unix_now_ms())
        .map_err(|r| Error::invalid("gossip frame", r.to_string()))?;
    frame.message().map_err(refused)
}

/// Merges a peer's table into ours and returns ours after the merge; a refutation's new
/// incarnation is stored before the next start can need it.
fn merge_message(node: &Node, message: &Message) -> Vec<Digest> {
    let arrival = Arrival {
        sender: &message.from,
        at: Instant::now(),
        unix_ms: unix_now_ms(),
    };
    let (changes, members, incarnation) = node.cluster.update(|m| {
        let changes = m.merge(&message.members, arrival);
        (changes, m.digests(), m.incarnation())
    });
    log_changes(node, &changes);
    if let Err(e) = node.incarnation.record(incarnation) {
        log_warn!(
            "{}: cannot store incarnation {incarnation}: {e}",
            node.config.node_id
        );
    }
    members
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
    let message = open(node, read_frame(&mut stream, &name))?;
    let members = merge_message(node, &message);
    let reply = Message {
        from: node.config.node_id.clone(),
        members,
    };
    stream
        .write_all(&encode(&reply, node.trust.secret()))
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
        expiry: node.config.dead_member_expiry,
    };
    let seeds = seed_addrs(&node.config);
    let mut rng = Rng::from_entropy();
    let mut round: u64 = 0;
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
        round = round.wrapping_add(1);
        if !lonely && round.is_multiple_of(SEED_PROBE_ROUNDS) && !seeds.is_empty() {
            let seed = &seeds[rng.below(seeds.len())];
            if !targets.contains(seed) {
                targets.push(seed.clone());
            }
        }
        if lonely {
            for seed in &seeds {
                if !targets.contains(seed) {
                    targets.push(seed.clone());
                }
            }
        }
        let frame = Arc::new(encode(
            &Message {
                from: node.config.node_id.clone(),
                members,
            },
            node.trust.secret(),
        ));
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
    match open(node, exchange(addr, frame, IO_TIMEOUT)) {
        Ok(reply) => {
            merge_message(node, &reply);
        }
        Err(e @ Error::InvalidInput { .. }) => log_warn!("gossip: reply of {addr} refused: {e}"),
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
    let frame = encode(
        &Message {
            from: node.config.node_id.clone(),
            members,
        },
        node.trust.secret(),
    );
    let announce = |addr: &String| {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Err(e) = exchange(addr, &frame, left) {
            log_debug!("gossip: leave announcement to {addr}: {e}");
        }
    };
    alongside(peers.iter().collect(), announce, || ());
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
        let frame = encode(&message, None);
        assert_eq!(decode(&frame).unwrap().message().unwrap(), message);
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
        assert_eq!(encode(&sample(), None), golden);
    }

    fn test_secret() -> ClusterSecret {
        ClusterSecret::new(b"0123456789abcdef", "test").unwrap()
    }

    #[test]
    fn golden_signed_frame_layout() {
        let secret = test_secret();
        let frame = encode_at(&sample(), Some(&secret), 1_700_000_000_123);
        let body = serde_json::to_vec(&sample()).unwrap();
        assert_eq!(&frame[..6], b"MTGS\x00\x02");
        assert_eq!(&frame[6..10], &(body.len() as u32).to_be_bytes());
        assert_eq!(&frame[10..18], &1_700_000_000_123u64.to_be_bytes());
        assert_eq!(&frame[18..50], &secret.sign_frame(1_700_000_000_123, &body));
        assert_eq!(&frame[50..], body.as_slice());
        let decoded = decode(&frame).unwrap();
        assert_eq!(
            decoded.seal.map(|s| s.timestamp_ms),
            Some(1_700_000_000_123)
        );
        assert_eq!(decoded.message().unwrap(), sample());
        assert_eq!(read_message(&mut frame.as_slice(), "t").unwrap(), sample());
        // Computed independently (Python's hmac): a change of the MAC input is never silent.
        let mac = secret.sign_frame(0, b"");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "30505667587fe47671ae434637c916cbe79abc8bf4f3c4c03fe646444bcfb20f"
        );
        let truncated = &frame[..20];
        assert!(decode(truncated)
            .unwrap_err()
            .to_string()
            .contains("shorter"));
    }

    #[test]
    fn bad_frames_are_refused() {
        let good = encode(&sample(), None);
        let mut wrong_magic = good.clone();
        wrong_magic[0] = b'X';
        let mut wrong_version = good.clone();
        wrong_version[5] = 3;
        let mut huge = good[..HEADER_LEN].to_vec();
        huge[6..10].copy_from_slice(&(MAX_BODY + 1).to_be_bytes());
        let mut garbage_body = good[..6].to_vec();
        garbage_body.extend_from_slice(&4u32.to_be_bytes());
        garbage_body.extend_from_slice(b"\xff{x}");
        let cases: [(&str, &[u8], &str); 6] = [
            ("wrong magic", &wrong_magic, "magic"),
            ("wrong version", &wrong_version, "version 3"),
            ("huge length", &huge, "at most"),
            ("garbage body", &garbage_body, "bad body"),
            ("truncated", &good[..good.len() - 1], "header says"),
            ("empty", b"", "shorter"),
        ];
        for (name, frame, want) in cases {
            let e = decode(frame)
                .and_then(|f| f.message())
                .expect_err(name)
                .to_string();
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
        assert_eq!(decode_header(&header).unwrap().body_len, MAX_BODY as usize);
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

        /// The decoder never panics, whatever arrives, and never reads past what it got.
        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
        ) {
            let _ = decode(&bytes).and_then(|f| f.message());
            let _ = read_message(&mut bytes.as_slice(), "fuzz");
            let _ = decode_body(&bytes);
        }

        /// Valid headers with arbitrary seals and bodies: still no panic, and a node with a
        /// secret refuses every one of them.
        #[test]
        fn arbitrary_sealed_frames_are_refused_without_panic(
            sealed in proptest::bool::ANY,
            seal in proptest::collection::vec(proptest::num::u8::ANY, SEAL_LEN),
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            extra in 0usize..3,
        ) {
            let mut frame = MAGIC.to_vec();
            frame.extend_from_slice(&(if sealed { SIGNED_VERSION } else { VERSION }).to_be_bytes());
            frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
            if sealed {
                frame.extend_from_slice(&seal);
            }
            frame.extend_from_slice(&body);
            frame.extend(std::iter::repeat_n(0u8, extra));
            let trust = crate::cluster::secret::ClusterTrust::new(Some(test_secret()));
            if let Ok(f) = decode(&frame) {
                let _ = f.message();
                proptest::prop_assert!(trust.check_frame(f.seal.as_ref(), &f.body, unix_now_ms()).is_err());
            }
        }
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
