//! The cluster: how symmetric nodes find each other and share the data.
//!
//! - [`ring`]: the CRC32 consistent-hash ring (150 virtual nodes per node) that gives each
//!   series an ordered preference list of owners (primary, then replicas).
//! - [`membership`]: who is in the cluster and in what state (alive, suspect, dead, left):
//!   the pure state machine (merge a peer's table, tick the failure detector, leave).
//! - [`gossip`]: moves member tables between nodes over TCP (push-pull rounds every
//!   `--gossip_interval_ms`, a listener answering peers, the leave announcement at
//!   shutdown) and applies them through [`Cluster::update`], so the ring follows.
//! - [`placement`]: which readings this node stores (its owned share) and which it keeps as
//!   hints for owners that are down.
//! - [`handoff`]: the durable hint stores and their delivery when an owner returns.
//! - [`incarnation`]: this node's incarnation kept on disk, so a restart supersedes it.
//! - [`secret`]: the cluster secret (`--cluster_secret_file`) that signs gossip frames and
//!   node-to-node requests, and the checks (MAC, freshness, replay) on what arrives.
//! - [`repair`]: anti-entropy between owners, rebalancing after ring changes.
//! - [`tombstones`]: the deletes remembered for the grace, which repair and every late
//!   write respect.
//! - [`peer`]: the blocking HTTP client every node-to-node call goes through (signed with
//!   the secret, HTTPS in a TLS cluster), and [`fan_out`]: one request to several nodes in
//!   parallel (scoped threads, per-peer timeouts), used by repair and by query
//!   coordination.
//! - [`stale`]: the last-alive mark, and setting aside the data of a node that was down
//!   longer than the tombstone grace, so it cannot bring deletes back.
//! - [`Cluster`] joins them: the owners of a series under the current membership.

pub mod fan_out;
pub mod gossip;
pub mod handoff;
pub mod incarnation;
pub mod membership;
pub mod peer;
pub mod placement;
pub mod repair;
pub mod ring;
pub mod secret;
pub mod stale;
pub mod tombstones;

use crate::storage::SeriesKey;
use membership::{Member, MemberState, Membership};
use ring::Ring;
use std::sync::{Mutex, MutexGuard};

/// One owner of a series, with what a coordinator needs to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub id: String,
    pub http_addr: String,
    pub state: MemberState,
    pub is_self: bool,
}

impl Owner {
    /// `member` as seen by the node `me`.
    fn of(member: &Member, me: &str) -> Owner {
        Owner {
            id: member.id.clone(),
            http_addr: member.http_addr.clone(),
            state: member.state,
            is_self: member.id == me,
        }
    }
}

/// Membership plus the ring built from it (rebuilt whenever the ring's node set changes).
pub struct Cluster {
    replication: usize,
    inner: Mutex<ClusterState>,
}

struct ClusterState {
    membership: Membership,
    ring: Ring,
}

impl Cluster {
    /// A cluster of `me` alone, at the current unix time in ms as incarnation.
    pub fn new(me: Member, replication: usize) -> Cluster {
        Cluster::with_membership(Membership::new(me), replication)
    }

    /// A cluster of `me` alone at `incarnation` (the one [`incarnation`] picked).
    pub fn with_incarnation(me: Member, incarnation: u64, replication: usize) -> Cluster {
        Cluster::with_membership(Membership::with_incarnation(me, incarnation), replication)
    }

    fn with_membership(membership: Membership, replication: usize) -> Cluster {
        let ring = Ring::new(membership.ring_member_ids());
        Cluster {
            replication,
            inner: Mutex::new(ClusterState { membership, ring }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ClusterState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn replication(&self) -> usize {
        self.replication
    }

    /// Runs `change` on the membership, then rebuilds the ring if its node set changed.
    pub fn update<R>(&self, change: impl FnOnce(&mut Membership) -> R) -> R {
        let mut state = self.lock();
        let result = change(&mut state.membership);
        let ids = state.membership.ring_member_ids();
        if ids.as_slice() != state.ring.nodes() {
            state.ring = Ring::new(ids);
        }
        result
    }

    /// A copy of the current membership.
    pub fn membership(&self) -> Membership {
        self.lock().membership.clone()
    }

    pub fn ring(&self) -> Ring {
        self.lock().ring.clone()
    }

    /// The preference list of `series` under the current membership, primary first.
    pub fn owners(&self, series: &SeriesKey) -> Vec<Owner> {
        let state = self.lock();
        let key = Ring::series_key(series);
        let me = state.membership.me();
        state
            .ring
            .preference_list(&key, self.replication)
            .into_iter()
            .filter_map(|id| state.membership.get(id))
            .map(|m| Owner::of(m, me))
            .collect()
    }

    /// True while this node knows no other member: every request is answered locally.
    pub fn is_single(&self) -> bool {
        self.lock().membership.members().count() <= 1
    }

    /// Every member that is neither dead nor left, this node included.
    pub fn reachable_members(&self) -> Vec<Owner> {
        let state = self.lock();
        let me = state.membership.me();
        state
            .membership
            .members()
            .filter(|m| matches!(m.state, MemberState::Alive | MemberState::Suspect))
            .map(|m| Owner::of(m, me))
            .collect()
    }

    /// Whether this node is one of the owners of `series`.
    pub fn owns(&self, series: &SeriesKey) -> bool {
        self.owners(series).iter().any(|o| o.is_self)
    }
}
