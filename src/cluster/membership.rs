//! Cluster membership (CONTRACT at this commit: the gossip work replaces the internals and
//! keeps these public types and methods).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Instant;

/// How this node sees a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    Alive,
    Suspect,
    Dead,
    /// Announced a clean shutdown: out of the ring until it comes back.
    Left,
}

/// One member as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    /// `host:port` of its HTTP API, as it advertises it.
    pub http_addr: String,
    /// `host:port` of its gossip listener.
    pub gossip_addr: String,
    pub state: MemberState,
    /// When this node last heard news of it (local clock).
    pub last_heard: Instant,
}

/// The members this node knows, itself included.
#[derive(Clone, Debug)]
pub struct Membership {
    me: String,
    members: BTreeMap<String, Member>,
}

impl Membership {
    pub fn new(me: Member) -> Membership {
        let id = me.id.clone();
        Membership {
            me: id.clone(),
            members: BTreeMap::from([(id, me)]),
        }
    }

    pub fn me(&self) -> &str {
        &self.me
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn get(&self, id: &str) -> Option<&Member> {
        self.members.get(id)
    }

    /// Adds or replaces a member as-is (tests of code that reads membership).
    #[cfg(test)]
    pub fn insert_for_test(&mut self, member: Member) {
        self.members.insert(member.id.clone(), member);
    }

    /// Ids of the members that hold ring positions: every member that has not left.
    pub fn ring_member_ids(&self) -> Vec<String> {
        self.members
            .values()
            .filter(|m| m.state != MemberState::Left)
            .map(|m| m.id.clone())
            .collect()
    }
}
