//! The live stream: every accepted reading, pushed to websocket clients of `GET /ws` as it
//! arrives.
//!
//! ```text
//!   ingestion ──publish──▶ inbox (bounded) ──▶ ws-broadcast ──encode once──▶ Fanout
//!                                                    │ try_send per client
//!                                                    ▼
//!                            client queue (bounded) ──▶ ws-client-N ──▶ websocket
//! ```
//!
//! Concepts:
//! - The **hub** ([`Hub`]) is shared by the node's threads. [`Hub::publish`] hands a batch
//!   of points to the broadcaster over the bounded **inbox**; when the inbox is full the
//!   batch is dropped and counted, so ingestion never waits for the live stream.
//! - The **broadcaster** ([`Hub::ws_broadcast`], thread `ws-broadcast`) encodes each point
//!   once ([`message`], the MQTT JSON shape) and offers the frame to every client through
//!   the [`fanout`] policy: a full client queue drops the frame for that client (counted),
//!   and a client that stays full past [`HubConfig::slow_client_grace`] is evicted.
//! - Each **client** has a bounded queue and its own writer thread ([`client`]), started by
//!   [`Hub::accept`] after the [`handshake`]. The writer only writes; a client that is gone
//!   is noticed when a write fails and leaves the count at once.
//! - **Shutdown**: when `ws_broadcast` returns, the hub stops accepting clients and
//!   publishes, closes every client's link and drops their queues; each writer sends a close
//!   frame (best effort) and ends. Status turns from `running` to `stopped`.
//!
//! Counting: `messages_sent` counts frames written to client sockets (one per frame per
//! client); `messages_dropped` counts points dropped at a full inbox plus frames dropped at a
//! full client queue.

pub mod client;
pub mod fanout;
pub mod handshake;
pub mod message;
#[cfg(test)]
mod tests;

use crate::http::router::Headers;
use crate::http::stream::Stream;
use crate::http::wire::Method;
use crate::storage::Point;
use crate::{log_error, log_info};
use crossbeam_channel::{bounded, select, Receiver, Sender, TrySendError};
use fanout::{ClientLink, Fanout, LinkState};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Batches of points the inbox holds before `publish` starts dropping.
pub const INBOX_BATCHES: usize = 1024;
/// Frames one client's queue holds before frames for it are dropped.
pub const CLIENT_QUEUE_FRAMES: usize = 1024;
/// How long a client's queue may stay full before the client is disconnected.
pub const SLOW_CLIENT_GRACE: Duration = Duration::from_secs(5);
/// Quiet time after which a writer sends a heartbeat frame to find out if its client is gone.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// The hub's tunables.
#[derive(Clone, Debug)]
pub struct HubConfig {
    pub inbox_batches: usize,
    pub client_queue_frames: usize,
    pub slow_client_grace: Duration,
    pub keepalive: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            inbox_batches: INBOX_BATCHES,
            client_queue_frames: CLIENT_QUEUE_FRAMES,
            slow_client_grace: SLOW_CLIENT_GRACE,
            keepalive: KEEPALIVE_INTERVAL,
        }
    }
}

/// The hub's metadata, as `GET /ws/stats` returns it.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct HubStats {
    pub connected_clients: usize,
    pub messages_sent: u64,
    pub messages_dropped: u64,
    pub status: &'static str,
}

/// Counters shared with the client writer threads.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
}

pub struct Hub {
    config: HubConfig,
    inbox_tx: Sender<Vec<Point>>,
    inbox_rx: Receiver<Vec<Point>>,
    fanout: Mutex<Fanout>,
    counters: Arc<Counters>,
    /// Clients registered, as of the last change; lets `publish` skip all work when nobody
    /// listens without taking the lock.
    listeners: AtomicUsize,
    stopped: AtomicBool,
    next_client: AtomicU64,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    pub fn new() -> Hub {
        Hub::with_config(HubConfig::default())
    }

    pub fn with_config(config: HubConfig) -> Hub {
        let (inbox_tx, inbox_rx) = bounded(config.inbox_batches.max(1));
        Hub {
            fanout: Mutex::new(Fanout::new(config.slow_client_grace)),
            config,
            inbox_tx,
            inbox_rx,
            counters: Arc::default(),
            listeners: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            next_client: AtomicU64::new(1),
        }
    }

    /// Queues accepted readings for every client; never blocks. Full inbox: the batch is
    /// dropped and counted. With no client connected (or after shutdown) it does nothing.
    pub fn publish(&self, points: &[Point]) {
        if points.is_empty()
            || self.listeners.load(Ordering::Relaxed) == 0
            || self.stopped.load(Ordering::Relaxed)
        {
            return;
        }
        match self.inbox_tx.try_send(points.to_vec()) {
            Ok(()) => {}
            Err(TrySendError::Full(batch) | TrySendError::Disconnected(batch)) => {
                self.counters
                    .dropped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
        }
    }

    pub fn stats(&self) -> HubStats {
        let connected_clients = {
            let mut fanout = self.lock_fanout();
            let remaining = fanout.prune();
            self.listeners.store(remaining, Ordering::Relaxed);
            remaining
        };
        HubStats {
            connected_clients,
            messages_sent: self.counters.sent.load(Ordering::Relaxed),
            messages_dropped: self.counters.dropped.load(Ordering::Relaxed),
            status: if self.stopped.load(Ordering::Relaxed) {
                "stopped"
            } else {
                "running"
            },
        }
    }

    /// Completes the websocket handshake for `GET /ws` and adds the client, starting its
    /// writer thread `ws-client-N`. A bad upgrade request gets a 4xx JSON error; after
    /// shutdown, 503.
    pub fn accept(&self, method: &Method, headers: &Headers, peer: SocketAddr, mut stream: Stream) {
        if self.stopped.load(Ordering::Relaxed) {
            let _ = handshake::json_error(&mut stream, 503, "the live stream is shut down", &[]);
            return;
        }
        let Some(socket) = handshake::upgrade(method, headers, stream) else {
            return;
        };
        let id = self.next_client.fetch_add(1, Ordering::Relaxed);
        let (queue_tx, queue_rx) = bounded(self.config.client_queue_frames.max(1));
        let link = Arc::new(ClientLink::default());
        let writer = {
            let link = link.clone();
            let counters = self.counters.clone();
            let keepalive = self.config.keepalive;
            move || client::ws_client_write(socket, queue_rx, link, counters, keepalive)
        };
        // Detached on purpose, not in the server's thread scope: clients come and go for the
        // node's whole life, and a scoped thread is only reclaimed when the scope ends, so
        // each connection would leak its handle until shutdown. The thread owns everything
        // it touches (the socket, its queue, `Arc`s), ends when its queue disconnects
        // (`stop` drops every sender at shutdown, `fanout` drops a slow client's) or a
        // write fails, and needs no join: it holds no data that must reach disk.
        if let Err(e) = thread::Builder::new()
            .name(format!("ws-client-{id}"))
            .spawn(writer)
        {
            log_error!("live client {id} ({peer}): cannot start its writer thread: {e}");
            return;
        }
        let mut fanout = self.lock_fanout();
        // Checked under the lock `stop` takes, so no client slips in after shutdown.
        if self.stopped.load(Ordering::Relaxed) {
            link.close(LinkState::Shutdown);
            return;
        }
        fanout.add(id, queue_tx, link);
        self.listeners.store(fanout.len(), Ordering::Relaxed);
        drop(fanout);
        log_info!("live client {id} connected from {peer}");
    }

    /// The broadcaster thread's body: runs until `shutdown_rx` disconnects (or carries a
    /// message), then shuts the hub down.
    pub fn ws_broadcast(&self, shutdown_rx: &Receiver<()>) {
        loop {
            select! {
                recv(shutdown_rx) -> _ => break,
                recv(self.inbox_rx) -> batch => {
                    // The hub holds `inbox_tx`, so the inbox never disconnects.
                    if let Ok(points) = batch {
                        self.broadcast(&points, Instant::now());
                    }
                }
            }
        }
        self.stop();
    }

    /// Encodes `points` and offers them to every client.
    fn broadcast(&self, points: &[Point], now: Instant) {
        let frames: Vec<_> = points.iter().map(message::encode_point).collect();
        let delivery = {
            let mut fanout = self.lock_fanout();
            let delivery = fanout.deliver(&frames, now);
            self.listeners.store(fanout.len(), Ordering::Relaxed);
            delivery
        };
        if delivery.dropped > 0 {
            self.counters
                .dropped
                .fetch_add(delivery.dropped, Ordering::Relaxed);
        }
        for id in &delivery.evicted {
            log_info!(
                "live client {id} disconnected: its queue stayed full for {:?}",
                self.config.slow_client_grace
            );
        }
        for id in &delivery.gone {
            log_info!("live client {id} disconnected");
        }
    }

    /// Stops accepting clients and publishes and tells every writer to close.
    fn stop(&self) {
        let mut fanout = self.lock_fanout();
        self.stopped.store(true, Ordering::Relaxed);
        fanout.close_all(LinkState::Shutdown);
        self.listeners.store(0, Ordering::Relaxed);
        drop(fanout);
        // Batches published before the stop are no longer wanted.
        while self.inbox_rx.try_recv().is_ok() {}
    }

    fn lock_fanout(&self) -> MutexGuard<'_, Fanout> {
        // The registry stays consistent even if a holder panicked: every operation on it
        // completes or leaves it unchanged.
        self.fanout.lock().unwrap_or_else(|p| p.into_inner())
    }
}
