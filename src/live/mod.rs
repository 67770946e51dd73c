//! Live stream (CONTRACT, implemented by the live work; signatures fixed).

use crate::storage::Point;
use crossbeam_channel::Receiver;
use serde::Serialize;

/// The hub's metadata, as `GET /ws/stats` returns it.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct HubStats {
    pub connected_clients: usize,
    pub messages_sent: u64,
    pub messages_dropped: u64,
    pub status: &'static str,
}

pub struct Hub;

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    pub fn new() -> Hub {
        Hub
    }
    /// Queues accepted readings for every client; never blocks.
    pub fn publish(&self, _points: &[Point]) {}
    pub fn stats(&self) -> HubStats {
        HubStats::default()
    }
    /// Completes the websocket handshake for `GET /ws` and adds the client.
    pub fn accept(&self, request: tiny_http::Request) {
        let _ = request.respond(tiny_http::Response::empty(501));
    }
    /// The broadcaster thread's body: runs until `shutdown_rx` disconnects.
    pub fn ws_broadcast(&self, shutdown_rx: &Receiver<()>) {
        let _ = shutdown_rx.recv();
    }
}
