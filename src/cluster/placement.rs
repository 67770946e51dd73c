//! Which readings this node keeps: its owned share, and hints for owners that are down.
//!
//! Every node sees every MQTT reading (each subscribes with its own persistent session).
//! A node stores a reading when it is one of the reading's owners. When an owner is not
//! alive, one other node keeps the reading as a *hint* for it (hinted handoff): the first
//! alive node clockwise on the ring after the owners, or, if every non-owner is down, the
//! first alive owner. Every node computes the same hint holder from the same membership.

use crate::cluster::membership::MemberState;
use crate::cluster::Cluster;
use crate::storage::Point;
use std::collections::BTreeMap;

/// What this node must store of a batch.
#[derive(Debug, Default, PartialEq)]
pub struct LocalShare {
    /// Readings this node owns.
    pub owned: Vec<Point>,
    /// Readings kept for an owner that is down, by owner id.
    pub hints: BTreeMap<String, Vec<Point>>,
}

/// Splits `points` into this node's share. A single node (no peers known) owns everything.
pub fn local_share(cluster: &Cluster, points: Vec<Point>) -> LocalShare {
    if cluster.is_single() {
        return LocalShare {
            owned: points,
            hints: BTreeMap::new(),
        };
    }
    let membership = cluster.membership();
    let ring = cluster.ring();
    let me = membership.me().to_string();
    let alive = |id: &str| {
        membership
            .get(id)
            .is_some_and(|m| m.state == MemberState::Alive)
    };
    let mut share = LocalShare::default();
    for point in points {
        let key = crate::cluster::ring::Ring::series_key(&point.series);
        let clockwise = ring.preference_list(&key, usize::MAX);
        let owners = &clockwise[..cluster.replication().min(clockwise.len())];
        let down: Vec<&str> = owners.iter().copied().filter(|o| !alive(o)).collect();
        if !down.is_empty() {
            let holder = clockwise[owners.len()..]
                .iter()
                .chain(owners.iter())
                .copied()
                .find(|id| alive(id));
            if holder == Some(me.as_str()) {
                for owner in &down {
                    share
                        .hints
                        .entry((*owner).to_string())
                        .or_default()
                        .push(point.clone());
                }
            }
        }
        if owners.contains(&me.as_str()) {
            share.owned.push(point);
        }
    }
    share
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::membership::Member;
    use crate::storage::{SeriesKey, Timestamp};
    use std::time::Instant;

    fn member(id: &str) -> Member {
        Member {
            id: id.into(),
            http_addr: format!("{id}:80"),
            gossip_addr: format!("{id}:90"),
            state: MemberState::Alive,
            last_heard: Instant::now(),
        }
    }

    fn cluster_seen_by(me: &str, states: &[(&str, MemberState)]) -> Cluster {
        let cluster = Cluster::new(member(me), 2);
        cluster.update(|m| {
            for &(id, state) in states {
                m.insert_for_test(Member {
                    state,
                    ..member(id)
                });
            }
        });
        cluster
    }

    fn points(n: usize) -> Vec<Point> {
        (0..n)
            .map(|i| Point {
                series: SeriesKey::new(&format!("sensor_{i}"), "temperature").unwrap(),
                timestamp: Timestamp(i as i64),
                value: 1.0,
            })
            .collect()
    }

    const ALL: [&str; 3] = ["polaris", "sirius", "vega"];

    #[test]
    fn every_reading_is_owned_by_exactly_replication_nodes() {
        let batch = points(300);
        let mut owned_count = vec![0; batch.len()];
        for me in ALL {
            let others: Vec<_> = ALL
                .iter()
                .filter(|id| **id != me)
                .map(|id| (*id, MemberState::Alive))
                .collect();
            let share = local_share(&cluster_seen_by(me, &others), batch.clone());
            assert!(share.hints.is_empty());
            for p in share.owned {
                owned_count[p.timestamp.0 as usize] += 1;
            }
        }
        assert!(owned_count.iter().all(|&c| c == 2), "{owned_count:?}");
    }

    #[test]
    fn exactly_one_alive_node_holds_the_hint_for_a_dead_owner() {
        let batch = points(300);
        let mut hinted = vec![0; batch.len()];
        for me in ["polaris", "sirius"] {
            let states: Vec<_> = ALL
                .iter()
                .filter(|id| **id != me)
                .map(|id| {
                    let s = if *id == "vega" {
                        MemberState::Dead
                    } else {
                        MemberState::Alive
                    };
                    (*id, s)
                })
                .collect();
            let share = local_share(&cluster_seen_by(me, &states), batch.clone());
            for (owner, ps) in share.hints {
                assert_eq!(owner, "vega");
                for p in ps {
                    hinted[p.timestamp.0 as usize] += 1;
                }
            }
        }
        let ring = crate::cluster::ring::Ring::new(ALL);
        for (i, p) in batch.iter().enumerate() {
            let key = crate::cluster::ring::Ring::series_key(&p.series);
            let vega_owns = ring.preference_list(&key, 2).contains(&"vega");
            assert_eq!(hinted[i], usize::from(vega_owns), "reading {i}");
        }
    }

    #[test]
    fn a_single_node_owns_everything() {
        let cluster = Cluster::new(member("solo"), 2);
        let share = local_share(&cluster, points(10));
        assert_eq!(share.owned.len(), 10);
    }
}
