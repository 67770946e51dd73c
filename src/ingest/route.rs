//! Routing accepted readings to where they are stored: the ring decides, this module moves.
//!
//! - [`store_share`] (MQTT path): every node receives every reading, so each stores only
//!   its owned share, plus hints for owners that are down when it is their hint holder.
//! - [`store_everywhere`] (`POST /write` path): only the receiving node has the readings,
//!   so it writes its own share locally, sends each other owner its share over
//!   `POST /internal/write` (in parallel, durable there before it answers), and keeps a
//!   durable hint for every owner that is down or fails to answer.
//!
//! Both return only when every reading is durable somewhere it will be found: on its
//! owners, or in a hint store that hands it to them later. Both first drop the readings a
//! remembered delete shadows (see [`Tombstones::drop_shadowed`]).
//!
//! [`Tombstones::drop_shadowed`]: crate::cluster::tombstones::Tombstones::drop_shadowed

use crate::cluster::fan_out::{alongside, PEER_TIMEOUT};
use crate::cluster::handoff::send_points;
use crate::cluster::membership::MemberState;
use crate::cluster::placement::local_share;
use crate::error::Result;
use crate::log_warn;
use crate::node::Node;
use crate::storage::{group_by_series, Point};
use std::collections::BTreeMap;

/// Stores this node's share of `points` (owned readings and hints). Ok once durable.
pub fn store_share(node: &Node, points: &[Point]) -> Result<()> {
    let mut points = points.to_vec();
    let _gate = node.tombstones.write_gate();
    node.tombstones.drop_shadowed(&mut points);
    let share = local_share(&node.cluster, points);
    node.engine.write(&share.owned)?;
    for (owner, hinted) in &share.hints {
        node.hints.keep(owner, hinted)?;
    }
    Ok(())
}

/// One remote owner's part of a write: its id, its address (`None` when it is not alive)
/// and its points.
struct Share {
    owner: String,
    address: Option<String>,
    points: Vec<Point>,
}

/// Makes `points` durable on their owners (or as hints for them). Ok once all are.
pub fn store_everywhere(node: &Node, points: &[Point]) -> Result<()> {
    if node.cluster.is_single() {
        let _gate = node.tombstones.write_gate();
        return node.engine.write(&node.tombstones.unshadowed(points));
    }
    let mut points = points.to_vec();
    node.tombstones.drop_shadowed(&mut points);
    let points = points.as_slice();
    let mut local = Vec::new();
    // Per remote owner: its address (None when not alive) and its readings.
    let mut remote: BTreeMap<String, (Option<String>, Vec<Point>)> = BTreeMap::new();
    // The owners of each series once, not of each point (a lock, a ring lookup and an
    // `Owner` per owner each time); a series' points keep their order.
    for (series, of_series) in group_by_series(points, |p| p) {
        for owner in node.cluster.owners(series) {
            let share = if owner.is_self {
                &mut local
            } else {
                let address = (owner.state == MemberState::Alive).then_some(owner.http_addr);
                &mut remote
                    .entry(owner.id)
                    .or_insert_with(|| (address, Vec::new()))
                    .1
            };
            share.extend(of_series.iter().map(|&p| p.clone()));
        }
    }
    let shares: Vec<Share> = remote
        .into_iter()
        .map(|(owner, (address, points))| Share {
            owner,
            address,
            points,
        })
        .collect();
    // A share that could not be sent comes back, to be kept as a hint.
    let send = |share: Share| match &share.address {
        Some(address) => {
            match send_points(address, &share.points, PEER_TIMEOUT, node.trust.link()) {
                Ok(()) => None,
                Err(e) => {
                    log_warn!("write to owner {}: {e}; keeping a hint", share.owner);
                    Some(share)
                }
            }
        }
        None => Some(share),
    };
    let owners: Vec<String> = shares.iter().map(|s| s.owner.clone()).collect();
    let (local_result, sent) = alongside(shares, send, || {
        // Checked again under the gate: a delete may have come since the first check.
        let _gate = node.tombstones.write_gate();
        let mut local = local;
        node.tombstones.drop_shadowed(&mut local);
        node.engine.write(&local)
    });
    local_result?;
    let mut failed = Vec::new();
    for (owner, outcome) in owners.into_iter().zip(sent) {
        match outcome {
            Some(None) => {}
            Some(Some(unsent)) => failed.push((unsent.owner, unsent.points)),
            // Whether that owner has the points is unknown, and they are gone with the
            // thread: the write fails, so the client retries (writes are idempotent).
            None => {
                return Err(crate::Error::Closed(format!(
                    "the write to owner {owner} panicked"
                )))
            }
        }
    }
    for (owner, owned) in failed {
        node.hints.keep(&owner, &owned)?;
    }
    Ok(())
}
