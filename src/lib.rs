//! MiniTrue: a distributed time-series database for IoT telemetry.
//!
//! How data flows through the crate, the two paths a reading takes in and a query takes out:
//!
//! ```text
//!   MQTT ──▶ ingest::mqtt (receive loop) ──▶ ingest::payload (validate) ──▶ ingest::route
//!   POST /write ──▶ http ──▶ ingest::line_protocol ─────────────────────────┘   │
//!        route: this node's share ──▶ storage::Engine::write                    │
//!               other owners' shares ──▶ cluster::handoff (/internal/write, hints)
//!   Engine::write ──▶ storage::wal (group-committed, fsynced) ──▶ storage::series (memory)
//!   flush tick ──▶ storage::segment (immutable columnar files) ──▶ old WAL files removed
//!
//!   POST /query ──▶ http::handlers (parse once) ──▶ query::combine::fullest_per_series
//!        ──▶ cluster::fan_out (parallel, per-peer timeout) ──▶ every member's
//!            /internal/series-aggregate or /internal/select (owners first)
//!        ──▶ query::read, query::select ──▶ storage::Engine::{select, aggregate, samples}
//! ```
//!
//! - [`storage`] is the single-node store: codecs, chunks, the series map, the write-ahead
//!   log, segment files, the quarantine for corrupt files, and the engine that ties them
//!   together. It knows nothing of HTTP, MQTT or the cluster.
//! - [`ingest`] turns MQTT JSON payloads and InfluxDB line protocol into validated
//!   [`storage::Point`]s and routes each to its owners.
//! - [`cluster`] is membership (gossip, incarnations, the signed frames of
//!   [`cluster::secret`]), placement (the CRC32 ring), hinted handoff, anti-entropy repair
//!   with tombstones, and the node-to-node transport ([`cluster::peer`], the parallel
//!   [`cluster::fan_out`]).
//! - [`query`] answers reads from the local store ([`query::read`]) and combines the
//!   owners' answers ([`query::combine`]); it depends on `cluster`, never the reverse.
//! - [`promql`] evaluates PromQL (parsed by `promql-parser`) over a [`promql::Source`] of
//!   points, for the Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`).
//! - [`server`] starts a node: one named thread per role (HTTP listener and workers, MQTT
//!   receive loop, websocket broadcaster, flusher, gossip, hand-off, repair) sharing a
//!   [`node::Node`]; [`config`] turns flags into its configuration; [`http`] and [`live`]
//!   serve the API and the live stream (who may call them: [`http::auth`], [`http::cors`];
//!   [`sighup`] reloads the tokens).
//! - [`broker`] is the MQTT broker that ships with MiniTrue (`minitrue-broker`): embedded
//!   rumqttd, so a machine without Mosquitto still has somewhere for sensors to publish.
//! - [`publisher`] is the device side: a fleet simulator, an Arduino serial bridge, CSV
//!   replay and a load generator, all publishing JSON readings over MQTT (QoS 1).
//! - [`mqtt_link`] is how both MQTT clients (a node's receive loop and the publisher) reach
//!   a broker: the `--broker` URL, TLS (`mqtts://`, `--broker_ca`) and credentials.
//! - [`error`] holds the crate's one error type; [`log`] writes leveled lines to stderr
//!   (text or JSON), dated by [`civil`].

pub mod broker;
pub mod civil;
pub mod cluster;
pub mod config;
pub mod error;
pub mod http;
pub mod ingest;
pub mod live;
pub mod log;
pub mod metrics;
pub mod mqtt_link;
pub mod node;
pub mod promql;
pub mod publisher;
pub mod query;
pub mod server;
pub mod sighup;
pub mod storage;
#[cfg(test)]
pub(crate) mod test_dir;
pub mod throttle;

pub use error::{Error, Result};
