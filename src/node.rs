//! The state every role of one node shares: its configuration, its store, the live hub and
//! the ingestion counters. The server creates one [`Node`] and lends `&Node` to each
//! role's thread; everything inside is safe to use from many threads.

use crate::cluster::handoff::Hints;
use crate::cluster::incarnation::IncarnationStore;
use crate::cluster::membership::{Member, MemberState};
use crate::cluster::repair::RepairReport;
use crate::cluster::secret::{unix_now_ms, ClusterTrust};
use crate::cluster::stale::StaleData;
use crate::cluster::tombstones::Tombstones;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::http::auth::TokenTable;
use crate::http::listener::HttpStats;
use crate::http::router::RequestLatency;
use crate::ingest::stats::IngestStats;
use crate::live::Hub;
use crate::mqtt_link::TrustedCa;
use crate::storage::Engine;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub struct Node {
    pub config: Config,
    pub engine: Engine,
    pub started: Instant,
    pub ingest: IngestStats,
    pub hub: Hub,
    pub cluster: Cluster,
    /// Readings kept for owners that are down (hinted handoff).
    pub hints: Hints,
    /// Deletes this node must not let repair undo.
    pub tombstones: Tombstones,
    /// The tokens of `--auth_file`; `None` when the node asks no credentials.
    pub tokens: Option<TokenTable>,
    /// The cluster secret (if any) and the counts of frames and requests it refused.
    pub trust: ClusterTrust,
    /// This node's incarnation on disk, raised with every refutation.
    pub incarnation: IncarnationStore,
    /// The HTTP connection layer's counters (shared with its listener).
    pub http: Arc<HttpStats>,
    /// Data set aside at this start because the node was down past the tombstone grace.
    pub stale_data: Option<StaleData>,
    /// How long each endpoint takes to answer.
    pub request_latency: RequestLatency,
    /// What the repair rounds did since start.
    pub repair: RepairStats,
}

/// Totals of the repair rounds since start (for `/debug/metrics`).
#[derive(Debug, Default)]
pub struct RepairStats {
    pub rounds: AtomicU64,
    pub points_pulled: AtomicU64,
    pub points_handed_over: AtomicU64,
    pub tombstones_learned: AtomicU64,
    /// Peers a round could not reach or read, summed over rounds.
    pub peer_failures: AtomicU64,
}

impl RepairStats {
    /// Adds one round's report.
    pub fn record(&self, report: &RepairReport) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
        self.points_pulled
            .fetch_add(report.pulled, Ordering::Relaxed);
        self.points_handed_over
            .fetch_add(report.handed_over, Ordering::Relaxed);
        self.tombstones_learned
            .fetch_add(report.tombstones_learned as u64, Ordering::Relaxed);
        self.peer_failures
            .fetch_add(report.failed_peers.len() as u64, Ordering::Relaxed);
    }
}

impl Node {
    /// Fails if the tombstone or incarnation file is corrupt, the incarnation cannot be
    /// stored, the auth file is unreadable or invalid, or `--tls_ca` holds no CA.
    pub fn new(config: Config, engine: Engine) -> crate::Result<Node> {
        let tokens = config
            .auth_file
            .as_deref()
            .map(TokenTable::load)
            .transpose()?;
        let me = Member {
            id: config.node_id.clone(),
            http_addr: config.advertised_http(),
            gossip_addr: config.advertised_gossip(),
            state: MemberState::Alive,
            last_heard: Instant::now(),
        };
        let (incarnation, current) = IncarnationStore::open(&config.data_dir, unix_now_ms())?;
        let cluster = Cluster::with_incarnation(me, current, config.replication);
        let hints = Hints::new(config.data_dir.join("hints"));
        let tombstones = Tombstones::open(
            config.data_dir.join("tombstones.json"),
            config.tombstone_grace,
        )?;
        let peer_tls = match config.tls.as_ref().and_then(|t| t.peer_ca.as_deref()) {
            None => None,
            Some(ca) => Some(Arc::new(
                TrustedCa::load_for("tls_ca", ca)?.client_config()?,
            )),
        };
        Ok(Node {
            tokens,
            trust: ClusterTrust::with_peer_tls(config.cluster_secret.clone(), peer_tls),
            incarnation,
            tombstones,
            hints,
            cluster,
            config,
            engine,
            started: Instant::now(),
            ingest: IngestStats::default(),
            hub: Hub::new(),
            http: Arc::default(),
            stale_data: None,
            request_latency: RequestLatency::default(),
            repair: RepairStats::default(),
        })
    }
}
