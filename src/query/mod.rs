//! Distributed queries: the receiving node coordinates.
//!
//! - [`read`]: typed requests and answers against this node's own store (what an endpoint
//!   answers with `?local=1`, and what an owner answers a coordinator).
//! - [`peer`]: a small blocking HTTP client for node-to-node calls.
//! - [`coordinator`]: forwards one request to several nodes in parallel (scoped threads,
//!   per-peer timeouts) and collects every answer or failure by node.
//! - [`combine`]: what the answers mean, typed: a series read is answered by the fullest
//!   replica among its owners (a replica's copy is never added to another's) and fails
//!   naming the owners when none can answer; a delete needs every owner; a listing is the
//!   union.
//!
//! The HTTP handlers only parse the request (once, before any peer is asked) and shape
//! the reply.

pub mod combine;
pub mod coordinator;
pub mod peer;
pub mod read;
