//! The hub's registry of connected clients and its delivery policy, with no sockets inside:
//! a client is a bounded queue ([`Sender`]) plus a shared [`ClientLink`], so the policy is
//! tested with in-memory queues and an explicit clock.
//!
//! Policy, per client and per frame: `try_send` onto the client's queue, never blocking.
//! - Queue full: the frame is dropped for that client and counted. A client whose queue has
//!   stayed full (no frame accepted) for longer than the slow-client grace is evicted: its
//!   link is closed so its writer stops, and it leaves the registry.
//! - Queue disconnected or link closed (the writer thread ended, e.g. on a write error): the
//!   client leaves the registry.

use crossbeam_channel::{Sender, TrySendError};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};
use tungstenite::Utf8Bytes;

/// Why a client's connection is ending, shared between the hub and the client's writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    Open = 0,
    /// The hub evicted the client for staying full too long.
    Evicted = 1,
    /// The hub is shutting down.
    Shutdown = 2,
    /// The writer ended on its own (write error, peer gone).
    Failed = 3,
}

/// The flag both ends of one client watch: the hub closes it to stop the writer, the writer
/// closes it when the socket fails so the hub drops the client without waiting for a send.
#[derive(Debug)]
pub struct ClientLink {
    state: AtomicU8,
}

impl Default for ClientLink {
    fn default() -> Self {
        ClientLink {
            state: AtomicU8::new(LinkState::Open as u8),
        }
    }
}

impl ClientLink {
    pub fn state(&self) -> LinkState {
        match self.state.load(Ordering::Acquire) {
            0 => LinkState::Open,
            1 => LinkState::Evicted,
            2 => LinkState::Shutdown,
            _ => LinkState::Failed,
        }
    }

    pub fn is_open(&self) -> bool {
        self.state() == LinkState::Open
    }

    /// Closes the link with `reason`; the first reason wins.
    pub fn close(&self, reason: LinkState) {
        let _ = self.state.compare_exchange(
            LinkState::Open as u8,
            reason as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }
}

/// One registered client.
struct Subscriber {
    id: u64,
    queue_tx: Sender<Utf8Bytes>,
    link: std::sync::Arc<ClientLink>,
    /// When the queue last turned full with no frame accepted since.
    full_since: Option<Instant>,
}

/// What one [`Fanout::deliver`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Frames placed on client queues (one per frame per client).
    pub queued: u64,
    /// Frames dropped because a client's queue was full.
    pub dropped: u64,
    /// Clients evicted for staying full past the grace.
    pub evicted: Vec<u64>,
    /// Clients removed because their writer had ended.
    pub gone: Vec<u64>,
}

/// The set of connected clients.
pub struct Fanout {
    subscribers: Vec<Subscriber>,
    slow_client_grace: Duration,
}

impl Fanout {
    pub fn new(slow_client_grace: Duration) -> Fanout {
        Fanout {
            subscribers: Vec::new(),
            slow_client_grace,
        }
    }

    pub fn add(&mut self, id: u64, queue_tx: Sender<Utf8Bytes>, link: std::sync::Arc<ClientLink>) {
        self.subscribers.push(Subscriber {
            id,
            queue_tx,
            link,
            full_since: None,
        });
    }

    pub fn len(&self) -> usize {
        self.subscribers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
    }

    /// Offers every frame, in order, to every client; never blocks.
    pub fn deliver(&mut self, frames: &[Utf8Bytes], now: Instant) -> Delivery {
        let mut delivery = Delivery::default();
        let grace = self.slow_client_grace;
        self.subscribers.retain_mut(|sub| {
            if !sub.link.is_open() {
                delivery.gone.push(sub.id);
                return false;
            }
            for frame in frames {
                match sub.queue_tx.try_send(frame.clone()) {
                    Ok(()) => {
                        delivery.queued += 1;
                        sub.full_since = None;
                    }
                    Err(TrySendError::Full(_)) => {
                        delivery.dropped += 1;
                        sub.full_since.get_or_insert(now);
                    }
                    Err(TrySendError::Disconnected(_)) => {
                        sub.link.close(LinkState::Failed);
                        delivery.gone.push(sub.id);
                        return false;
                    }
                }
            }
            if let Some(since) = sub.full_since {
                if now.saturating_duration_since(since) >= grace {
                    sub.link.close(LinkState::Evicted);
                    delivery.evicted.push(sub.id);
                    return false;
                }
            }
            true
        });
        delivery
    }

    /// Drops clients whose writer has ended; returns how many remain.
    pub fn prune(&mut self) -> usize {
        self.subscribers.retain(|sub| sub.link.is_open());
        self.subscribers.len()
    }

    /// Closes every client's link with `reason` and forgets them; dropping the queues wakes
    /// idle writers.
    pub fn close_all(&mut self, reason: LinkState) {
        for sub in self.subscribers.drain(..) {
            sub.link.close(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::{bounded, Receiver};
    use std::sync::Arc;

    const GRACE: Duration = Duration::from_secs(5);

    fn client(
        fanout: &mut Fanout,
        id: u64,
        capacity: usize,
    ) -> (Receiver<Utf8Bytes>, Arc<ClientLink>) {
        let (tx, rx) = bounded(capacity);
        let link = Arc::new(ClientLink::default());
        fanout.add(id, tx, link.clone());
        (rx, link)
    }

    fn frames(texts: &[&str]) -> Vec<Utf8Bytes> {
        texts.iter().map(|t| Utf8Bytes::from(*t)).collect()
    }

    fn drain(rx: &Receiver<Utf8Bytes>) -> Vec<String> {
        rx.try_iter().map(|f| f.as_str().to_owned()).collect()
    }

    #[test]
    fn every_client_gets_every_frame_in_order() {
        let mut fanout = Fanout::new(GRACE);
        let (a, _) = client(&mut fanout, 1, 16);
        let (b, _) = client(&mut fanout, 2, 16);
        let delivery = fanout.deliver(&frames(&["1", "2", "3"]), Instant::now());
        assert_eq!(delivery.queued, 6);
        assert_eq!(delivery.dropped, 0);
        assert_eq!(drain(&a), ["1", "2", "3"]);
        assert_eq!(drain(&b), ["1", "2", "3"]);
    }

    #[test]
    fn full_queue_drops_for_that_client_only() {
        let mut fanout = Fanout::new(GRACE);
        let (small, _) = client(&mut fanout, 1, 2);
        let (big, _) = client(&mut fanout, 2, 16);
        let delivery = fanout.deliver(&frames(&["1", "2", "3", "4"]), Instant::now());
        assert_eq!(delivery.queued, 6);
        assert_eq!(delivery.dropped, 2);
        assert!(delivery.evicted.is_empty());
        assert_eq!(drain(&small), ["1", "2"]);
        assert_eq!(drain(&big), ["1", "2", "3", "4"]);
        assert_eq!(fanout.len(), 2);
    }

    #[test]
    fn client_full_past_the_grace_is_evicted() {
        let mut fanout = Fanout::new(GRACE);
        let (_stuck, link) = client(&mut fanout, 7, 1);
        let start = Instant::now();
        fanout.deliver(&frames(&["1", "2"]), start);
        let later = fanout.deliver(&frames(&["3"]), start + GRACE / 2);
        assert!(later.evicted.is_empty(), "still within the grace");
        let last = fanout.deliver(&frames(&["4"]), start + GRACE);
        assert_eq!(last.evicted, [7]);
        assert_eq!(link.state(), LinkState::Evicted);
        assert!(fanout.is_empty());
    }

    #[test]
    fn client_that_catches_up_restarts_the_grace() {
        let mut fanout = Fanout::new(GRACE);
        let (rx, link) = client(&mut fanout, 1, 1);
        let start = Instant::now();
        fanout.deliver(&frames(&["1", "2"]), start);
        drain(&rx);
        fanout.deliver(&frames(&["3"]), start + GRACE / 2);
        let delivery = fanout.deliver(&frames(&["4"]), start + GRACE);
        assert!(delivery.evicted.is_empty());
        assert!(link.is_open());
    }

    #[test]
    fn ended_writer_is_removed() {
        let mut fanout = Fanout::new(GRACE);
        let (rx, _) = client(&mut fanout, 1, 4);
        let (_alive_rx, _) = client(&mut fanout, 2, 4);
        let (_failed_rx, failed) = client(&mut fanout, 3, 4);
        drop(rx);
        failed.close(LinkState::Failed);
        assert_eq!(fanout.prune(), 2, "a closed link is pruned without a send");
        let delivery = fanout.deliver(&frames(&["1"]), Instant::now());
        assert_eq!(delivery.gone, [1]);
        assert_eq!(delivery.queued, 1);
        assert_eq!(fanout.len(), 1);
    }

    #[test]
    fn close_all_closes_links_and_drops_queues() {
        let mut fanout = Fanout::new(GRACE);
        let (rx, link) = client(&mut fanout, 1, 4);
        fanout.close_all(LinkState::Shutdown);
        assert_eq!(link.state(), LinkState::Shutdown);
        assert!(fanout.is_empty());
        assert!(rx.recv().is_err(), "the writer's queue is disconnected");
    }

    #[test]
    fn first_close_reason_wins() {
        let link = ClientLink::default();
        link.close(LinkState::Failed);
        link.close(LinkState::Shutdown);
        assert_eq!(link.state(), LinkState::Failed);
    }
}
