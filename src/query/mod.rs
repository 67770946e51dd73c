//! Distributed queries: the receiving node coordinates.
//!
//! - [`read`]: typed requests and answers against this node's own store (what an endpoint
//!   answers with `?local=1`, and what an owner answers a coordinator).
//! - [`combine`]: what the answers mean, typed: a series read is answered by the fullest
//!   replica among its owners (a replica's copy is never added to another's) and fails
//!   naming the owners when none can answer; a delete needs every owner; a listing is the
//!   union.
//!
//! Requests travel through the cluster's transport ([`crate::cluster::fan_out`] over
//! [`crate::cluster::peer`]), so `query` depends on `cluster` and never the other way. The
//! HTTP handlers only parse the request (once, before any peer is asked) and shape the
//! reply.

pub mod combine;
pub mod read;
