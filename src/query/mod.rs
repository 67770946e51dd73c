//! Distributed queries: the receiving node coordinates.
//!
//! - [`read`]: typed requests and answers against this node's own store (what an endpoint
//!   answers with `?local=1`, and what an owner answers a coordinator).
//! - [`combine`]: what the answers mean, typed: a read keeps the fullest copy of each
//!   series among the members (a replica's copy is never added to another's); a delete
//!   needs every owner; a listing is the union.
//! - [`coordinate`]: a read over many series asked of every reachable member, the owners
//!   of the named series first, with what may be missing said.
//! - [`select`]: raw points of every series a set of label matchers picks, the read that
//!   many-series samples, deletes by labels, series listings and PromQL selectors share.
//!
//! Requests travel through the cluster's transport ([`crate::cluster::fan_out`] over
//! [`crate::cluster::peer`]), so `query` depends on `cluster` and never the other way. The
//! HTTP handlers only parse the request (once, before any peer is asked) and shape the
//! reply.

pub mod combine;
pub mod coordinate;
pub mod read;
pub mod select;
