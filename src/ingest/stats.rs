//! Ingestion counters shown in `/status`: readings accepted, payloads rejected per reason,
//! and the broker connection state. Updated by the MQTT receive loop, `POST /write` and
//! `POST /api/v1/write` (remote write, which also counts the stale markers it skips).

use crate::ingest::payload::RejectReason;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// State of the node's MQTT connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerState {
    /// Not started (query-only mode) or not yet tried.
    Disabled,
    Connecting,
    Connected,
    /// Lost; reconnecting with backoff. Holds the last error.
    Disconnected(String),
}

/// Where accepted readings came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Mqtt,
    /// `POST /write` and `/api/v2/write`.
    Http,
    /// `POST /api/v1/write` (Prometheus remote write).
    RemoteWrite,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::Mqtt, Source::Http, Source::RemoteWrite];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Mqtt => "mqtt",
            Source::Http => "http",
            Source::RemoteWrite => "remote_write",
        }
    }
}

pub struct IngestStats {
    pub accepted: AtomicU64,
    accepted_by: [AtomicU64; Source::ALL.len()],
    rejected: [AtomicU64; RejectReason::ALL.len()],
    /// Line protocol lines not stored, or stored only in part (partial writes).
    lines_not_stored: AtomicU64,
    /// Prometheus stale markers a remote write skipped (they are not readings).
    stale_markers: AtomicU64,
    broker: Mutex<BrokerState>,
}

impl Default for IngestStats {
    fn default() -> Self {
        IngestStats {
            accepted: AtomicU64::new(0),
            accepted_by: std::array::from_fn(|_| AtomicU64::new(0)),
            rejected: std::array::from_fn(|_| AtomicU64::new(0)),
            lines_not_stored: AtomicU64::new(0),
            stale_markers: AtomicU64::new(0),
            broker: Mutex::new(BrokerState::Disabled),
        }
    }
}

impl IngestStats {
    /// Counts `n` readings accepted from `source`.
    pub fn count_accepted(&self, source: Source, n: u64) {
        self.accepted.fetch_add(n, Ordering::Relaxed);
        self.accepted_by[source as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Readings accepted from `source` since start.
    pub fn accepted_from(&self, source: Source) -> u64 {
        self.accepted_by[source as usize].load(Ordering::Relaxed)
    }

    /// Counts line protocol lines a write did not store (or stored only in part).
    pub fn count_lines_not_stored(&self, n: u64) {
        self.lines_not_stored.fetch_add(n, Ordering::Relaxed);
    }

    pub fn lines_not_stored(&self) -> u64 {
        self.lines_not_stored.load(Ordering::Relaxed)
    }

    pub fn count_rejected(&self, reason: RejectReason) {
        self.count_rejected_n(reason, 1);
    }

    /// Counts `n` rejects for `reason` (remote write counts each sample not stored).
    pub fn count_rejected_n(&self, reason: RejectReason, n: u64) {
        let index = RejectReason::ALL
            .iter()
            .position(|r| *r == reason)
            .expect("ALL lists every reason");
        self.rejected[index].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` Prometheus stale markers a remote write skipped.
    pub fn count_stale_markers(&self, n: u64) {
        self.stale_markers.fetch_add(n, Ordering::Relaxed);
    }

    pub fn stale_markers(&self) -> u64 {
        self.stale_markers.load(Ordering::Relaxed)
    }

    /// `(reason label, count)` for every reason, zeros included.
    pub fn rejected(&self) -> Vec<(&'static str, u64)> {
        RejectReason::ALL
            .iter()
            .zip(&self.rejected)
            .map(|(r, n)| (r.as_str(), n.load(Ordering::Relaxed)))
            .collect()
    }

    pub fn set_broker(&self, state: BrokerState) {
        *self.broker.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    pub fn broker(&self) -> BrokerState {
        self.broker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
