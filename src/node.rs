//! The state every role of one node shares: its configuration, its store, the live hub and
//! the ingestion counters. The server creates one [`Node`] and lends `&Node` to each
//! role's thread; everything inside is safe to use from many threads.

use crate::config::Config;
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
}

impl Node {
    pub fn new(config: Config, engine: Engine) -> Node {
        Node {
            config,
            engine,
            started: Instant::now(),
            ingest: IngestStats::default(),
            hub: Hub::new(),
        }
    }
}
