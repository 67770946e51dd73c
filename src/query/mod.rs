//! Distributed queries: the receiving node coordinates.
//!
//! - [`peer`]: a small blocking HTTP client for node-to-node calls.
//! - [`coordinator`]: forwards one request to several nodes in parallel (scoped threads,
//!   per-peer timeouts) and collects every answer or failure by node.
//!
//! The HTTP handlers decide what the answers mean: a series query is answered by the
//! fullest replica among its owners (a replica's copy is never added to another's), and
//! fails with 503 naming the owners when none can answer.

pub mod coordinator;
pub mod peer;
