//! The state every role of one node shares: its configuration, its store, the live hub and
//! the ingestion counters. The server creates one [`Node`] and lends `&Node` to each
//! role's thread; everything inside is safe to use from many threads.

use crate::cluster::handoff::Hints;
use crate::cluster::membership::{Member, MemberState};
use crate::cluster::repair::Tombstones;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::http::auth::TokenTable;
use crate::ingest::stats::IngestStats;
use crate::live::Hub;
use crate::storage::Engine;
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
}

impl Node {
    /// Fails if the tombstone file exists and is corrupt, or the auth file is unreadable
    /// or invalid.
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
        let cluster = Cluster::new(me, config.replication);
        let hints = Hints::new(config.data_dir.join("hints"));
        let tombstones = Tombstones::open(config.data_dir.join("tombstones.json"))?;
        Ok(Node {
            tokens,
            tombstones,
            hints,
            cluster,
            config,
            engine,
            started: Instant::now(),
            ingest: IngestStats::default(),
            hub: Hub::new(),
        })
    }
}
