//! A read over many series coordinated across the cluster: every reachable member is asked
//! (the owners of the series the request names first, so their copies win ties), the
//! fullest copy of each series is kept, and the answer says what may be missing — dead
//! members, failures, whether so many failed that a series' every copy may be absent.
//! The HTTP handlers and the Prometheus API's cluster source share it; it takes the cluster
//! view and the peer link, not the whole node.

use crate::cluster::fan_out::{Forward, PEER_TIMEOUT};
use crate::cluster::membership::MemberState;
use crate::cluster::peer::PeerLink;
use crate::cluster::{Cluster, Owner};
use crate::query::combine::{fullest_per_series, FailedTarget, PerSeriesAnswer};
use crate::storage::SeriesKey;

/// A read over many series, as every member holds them: the fullest copy of each.
#[derive(Debug)]
pub struct Everywhere<C> {
    pub copies: Vec<C>,
    /// The member whose copy of each series (same order as `copies`) was kept.
    pub served_by: Vec<String>,
    /// The owners of the series the request names, primary first (none for a selector).
    pub owners: Vec<String>,
    /// Members that did not answer, dead ones included: they may hold selected series.
    pub failed: Vec<FailedTarget>,
    /// Whether so many members failed that some series' every copy may be missing.
    pub partial: bool,
}

impl<C> Everywhere<C> {
    /// Adds `served_by` (one series), `owners`, `partial` and `failed` to a reply.
    pub fn annotate(&self, reply: &mut serde_json::Value) {
        if let [served_by] = self.served_by.as_slice() {
            reply["served_by"] = served_by.as_str().into();
        }
        if !self.owners.is_empty() {
            reply["owners"] = serde_json::json!(self.owners);
        }
        reply["partial"] = self.partial.into();
        if !self.failed.is_empty() {
            reply["failed"] = serde_json::json!(self.failed);
        }
    }
}

/// No owner of the series a request names answered: the read cannot be whole.
#[derive(Debug)]
pub struct NoOwner {
    /// The named series, as text.
    pub series: String,
    pub owners: Vec<String>,
    pub failed: Vec<FailedTarget>,
}

/// Asks every reachable member `POST path` with `body` (this node through `local`) and
/// keeps the fullest copy of each series: a labelled series may live on any node. With
/// `named`, its owners are asked first and one of them must answer.
pub fn every_member<A: PerSeriesAnswer>(
    cluster: &Cluster,
    link: PeerLink<'_>,
    named: Option<&SeriesKey>,
    path: &str,
    body: &[u8],
    local: &(dyn Fn() -> Result<A, String> + Sync),
) -> Result<Everywhere<A::Copy>, NoOwner> {
    let owners = named.map(|key| cluster.owners(key)).unwrap_or_default();
    let live = |o: &&Owner| matches!(o.state, MemberState::Alive | MemberState::Suspect);
    let mut targets: Vec<Owner> = owners.iter().filter(live).cloned().collect();
    for member in cluster.reachable_members() {
        if !targets.iter().any(|t| t.id == member.id) {
            targets.push(member);
        }
    }
    let forward = Forward {
        method: "POST",
        path,
        body,
        timeout: PEER_TIMEOUT,
        link,
    };
    let outcome = fullest_per_series(&targets, forward, local);
    let mut failed: Vec<FailedTarget> = cluster
        .membership()
        .members()
        .filter(|m| m.state == MemberState::Dead)
        .map(|m| FailedTarget {
            node: m.id.clone(),
            error: "member is dead".to_string(),
        })
        .collect();
    failed.extend(outcome.failed);
    let owners: Vec<String> = owners.iter().map(|o| o.id.clone()).collect();
    if let Some(key) = named {
        if !owners.iter().any(|o| outcome.answered.contains(o)) {
            return Err(NoOwner {
                series: key.to_string(),
                owners,
                failed,
            });
        }
    }
    Ok(Everywhere {
        copies: outcome.copies,
        served_by: outcome.served_by,
        owners,
        // Every series has `replication` owners: fewer failures cannot hide one.
        partial: failed.len() >= cluster.replication(),
        failed,
    })
}
