//! What a coordinator makes of its peers' answers, typed: a series read is answered by the
//! fullest replica among the series' owners, a read over many series by the fullest copy of
//! each among every member, a delete must be confirmed by every owner, and a listing is the
//! union over every reachable member.
//!
//! Peers' answers are parsed into the same types as the local answer ([`read`](super::read)),
//! and one naming a node other than the one asked is refused, so no peer can answer for
//! another. The local answer is used as is, never serialised and parsed back. Shaping the
//! HTTP reply (and its 503) is the caller's business.

use crate::cluster::fan_out::{fan_out_with, Forward};
use crate::cluster::membership::MemberState;
use crate::cluster::peer::PeerResponse;
use crate::cluster::Owner;
use crate::error::Error;
use crate::query::read::{ListingAnswer, ReplicaAnswer, SeriesPartial, SeriesPartials};
use crate::storage::SeriesFields;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A target that did not answer usefully, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailedTarget {
    pub node: String,
    pub error: String,
}

/// A series read answered by one replica, as the coordinator returns it.
#[derive(Debug, Serialize)]
pub struct FromOwners<A> {
    /// The fullest replica's answer, re-labelled as the coordinator's.
    #[serde(flatten)]
    pub answer: A,
    /// The owner whose copy answered.
    pub served_by: String,
    /// Every owner of the series, primary first.
    pub owners: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedTarget>,
}

/// No owner of the series could answer.
#[derive(Debug)]
pub struct NoReplica {
    pub owners: Vec<String>,
    pub failed: Vec<FailedTarget>,
}

/// Asks the `owners` of one series (those not known dead or left) `forward`, this node's
/// own copy through `local`, and keeps the answer with the highest count: owners hold whole
/// copies, so answers are never added together. `node` is this node's id, `elapsed_ns`
/// how long the request has taken when the answers are in.
pub fn fullest_replica<A: ReplicaAnswer>(
    node: &str,
    owners: &[Owner],
    forward: Forward<'_>,
    local: &(dyn Fn() -> Result<A, String> + Sync),
    elapsed_ns: &dyn Fn() -> u64,
) -> Result<FromOwners<A>, NoReplica> {
    let mut failed: Vec<FailedTarget> = owners
        .iter()
        .filter(|o| matches!(o.state, MemberState::Dead | MemberState::Left))
        .map(|o| FailedTarget {
            node: o.id.clone(),
            error: format!("member is {:?}", o.state).to_lowercase(),
        })
        .collect();
    let targets: Vec<Owner> = owners
        .iter()
        .filter(|o| matches!(o.state, MemberState::Alive | MemberState::Suspect))
        .cloned()
        .collect();
    let remote = |target: &Owner, answer| typed_answer(target, answer, A::node);
    let mut best: Option<(String, A)> = None;
    for (target, answer) in fan_out_with(&targets, forward, local, &remote) {
        match answer {
            Ok(answer) => {
                if best
                    .as_ref()
                    .is_none_or(|(_, b)| answer.count() > b.count())
                {
                    best = Some((target.id.clone(), answer));
                }
            }
            Err(error) => failed.push(FailedTarget {
                node: target.id.clone(),
                error,
            }),
        }
    }
    let owners: Vec<String> = owners.iter().map(|o| o.id.clone()).collect();
    match best {
        None => Err(NoReplica { owners, failed }),
        Some((served_by, mut answer)) => {
            answer.restamp(node, elapsed_ns());
            Ok(FromOwners {
                answer,
                served_by,
                owners,
                failed,
            })
        }
    }
}

/// A read over many series: the fullest copy of each among the members that answered.
#[derive(Debug, Default)]
pub struct PerSeries {
    /// One partial per series, sorted by series.
    pub partials: Vec<SeriesPartial>,
    /// The member whose copy of each series (same order as `partials`) was kept.
    pub served_by: Vec<String>,
    /// Members that answered, in the order asked.
    pub answered: Vec<String>,
    pub failed: Vec<FailedTarget>,
}

/// Asks every one of `targets` for its copy of each selected series (`forward`, this
/// node's through `local`) and keeps, per series, the copy with the most points: replicas
/// hold whole copies, so a series is counted once however many members hold it. On equal
/// counts the earlier target wins, so list a series' owners first. A peer's series whose
/// name is not a valid key fails that peer's whole answer.
pub fn fullest_per_series(
    targets: &[Owner],
    forward: Forward<'_>,
    local: &(dyn Fn() -> Result<SeriesPartials, String> + Sync),
) -> PerSeries {
    let remote = |target: &Owner, answer| {
        let partials: SeriesPartials = typed_answer(target, answer, |a: &SeriesPartials| &a.node)?;
        for p in &partials.series {
            p.series
                .key()
                .map_err(|e| format!("answer names a bad series: {e}"))?;
        }
        Ok(partials)
    };
    let mut best: BTreeMap<SeriesFields, (String, SeriesPartial)> = BTreeMap::new();
    let mut outcome = PerSeries::default();
    for (target, answer) in fan_out_with(targets, forward, local, &remote) {
        match answer {
            Ok(partials) => {
                outcome.answered.push(target.id.clone());
                for partial in partials.series {
                    match best.get(&partial.series) {
                        Some((_, kept)) if kept.stats.count >= partial.stats.count => {}
                        _ => {
                            best.insert(partial.series.clone(), (target.id.clone(), partial));
                        }
                    }
                }
            }
            Err(error) => outcome.failed.push(FailedTarget {
                node: target.id.clone(),
                error,
            }),
        }
    }
    for (_, (node, partial)) in best {
        outcome.served_by.push(node);
        outcome.partials.push(partial);
    }
    outcome
}

/// What one member answers to a forwarded delete (`/delete?local=1`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteAnswer {
    /// Whether the member held the series.
    pub deleted: bool,
    pub device_id: String,
    pub metric_name: String,
    /// The series' labels other than `device_id`; absent when it has none.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    pub node: String,
}

/// A delete sent to every reachable member.
#[derive(Debug)]
pub struct DeleteOutcome {
    /// Whether any member held the series.
    pub deleted: bool,
    /// Members that confirmed, in the order asked.
    pub confirmed: Vec<String>,
    /// Owners of the series that did not confirm: the delete must be retried.
    pub unconfirmed: Vec<String>,
    pub failed: Vec<FailedTarget>,
}

/// Sends a delete to every one of `members` (a former owner may still hold a copy), this
/// node's through `local`; every one of `owners` must confirm.
pub fn delete_everywhere(
    owners: &[Owner],
    members: &[Owner],
    forward: Forward<'_>,
    local: &(dyn Fn() -> Result<DeleteAnswer, String> + Sync),
) -> DeleteOutcome {
    let remote = |target: &Owner, answer| typed_answer(target, answer, |a: &DeleteAnswer| &a.node);
    let mut outcome = DeleteOutcome {
        deleted: false,
        confirmed: Vec::new(),
        unconfirmed: Vec::new(),
        failed: Vec::new(),
    };
    for (target, answer) in fan_out_with(members, forward, local, &remote) {
        match answer {
            Ok(answer) => {
                outcome.deleted |= answer.deleted;
                outcome.confirmed.push(target.id.clone());
            }
            Err(error) => outcome.failed.push(FailedTarget {
                node: target.id.clone(),
                error,
            }),
        }
    }
    outcome.unconfirmed = owners
        .iter()
        .filter(|o| !outcome.confirmed.contains(&o.id))
        .map(|o| o.id.clone())
        .collect();
    outcome
}

/// The union of a listing over every one of `members`, this node's through `local`, with
/// the members that failed (the answer is then partial).
pub fn union_of<L: ListingAnswer>(
    node: &str,
    members: &[Owner],
    forward: Forward<'_>,
    local: &(dyn Fn() -> Result<L, String> + Sync),
) -> (L, Vec<FailedTarget>) {
    let remote = |target: &Owner, answer| typed_answer(target, answer, L::node);
    let mut union = BTreeSet::new();
    let mut failed = Vec::new();
    for (target, answer) in fan_out_with(members, forward, local, &remote) {
        match answer {
            Ok(listing) => union.extend(listing.items().iter().cloned()),
            Err(error) => failed.push(FailedTarget {
                node: target.id.clone(),
                error,
            }),
        }
    }
    (L::union(union, node), failed)
}

/// The typed body of a 200 answer from `target`, or why there is none. An answer that
/// names another node than `target` (per `node_of`) is refused.
pub fn typed_answer<T: DeserializeOwned>(
    target: &Owner,
    answer: Result<PeerResponse, Error>,
    node_of: impl Fn(&T) -> &str,
) -> Result<T, String> {
    let response = answer.map_err(|e| e.to_string())?;
    if response.status != 200 {
        return Err(format!(
            "answered {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        ));
    }
    let value: T =
        serde_json::from_slice(&response.body).map_err(|e| format!("bad answer: {e}"))?;
    let node = node_of(&value);
    if node != target.id {
        return Err(format!(
            "answer names node {node:?}, not {:?}: ignored",
            target.id
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::fan_out::one_shot;
    use crate::query::read::{AggregateAnswer, DevicesAnswer};
    use std::time::Duration;

    fn owner(id: &str, addr: &str, is_self: bool, state: MemberState) -> Owner {
        Owner {
            id: id.into(),
            http_addr: addr.into(),
            state,
            is_self,
        }
    }

    /// A peer answering one request with 200 and `body`.
    fn answering(body: String) -> String {
        one_shot(200, body)
    }

    fn aggregate(node: &str, count: u64) -> AggregateAnswer {
        AggregateAnswer {
            device_id: "d".into(),
            metric_name: "m".into(),
            labels: Default::default(),
            operation: "count".into(),
            series: None,
            result: Some(count as f64),
            count,
            duration_ns: 5,
            node: node.into(),
            buckets: None,
            groups: None,
        }
    }

    fn forward() -> Forward<'static> {
        Forward {
            method: "POST",
            path: "/query?local=1",
            body: b"{}",
            timeout: Duration::from_secs(2),
            link: crate::cluster::peer::PeerLink::default(),
        }
    }

    #[test]
    fn fullest_replica_wins_and_is_relabelled_as_the_coordinators() {
        let fuller = answering(serde_json::to_string(&aggregate("b", 9)).unwrap());
        let owners = [
            owner("a", "unused", true, MemberState::Alive),
            owner("b", &fuller, false, MemberState::Alive),
            owner("c", "unused", false, MemberState::Dead),
        ];
        let local = || Ok(aggregate("a", 4));
        let got = fullest_replica("a", &owners, forward(), &local, &|| 77).unwrap();
        assert_eq!(got.served_by, "b");
        assert_eq!(got.answer.count, 9);
        assert_eq!(got.answer.node, "a");
        assert_eq!(got.answer.duration_ns, 77);
        assert_eq!(got.owners, ["a", "b", "c"]);
        assert_eq!(got.failed.len(), 1, "{:?}", got.failed);
        assert_eq!(got.failed[0].node, "c");
        let json = serde_json::to_value(&got).unwrap();
        assert_eq!(json["served_by"], "b");
        assert_eq!(json["count"], 9);
        assert_eq!(json["node"], "a");
    }

    #[test]
    fn an_answer_naming_another_node_is_refused() {
        let liar = answering(serde_json::to_string(&aggregate("evil", 999_999)).unwrap());
        let owners = [
            owner("a", "unused", true, MemberState::Alive),
            owner("b", &liar, false, MemberState::Alive),
        ];
        let local = || Ok(aggregate("a", 4));
        let got = fullest_replica("a", &owners, forward(), &local, &|| 0).unwrap();
        assert_eq!((got.served_by.as_str(), got.answer.count), ("a", 4));
        let error = &got.failed[0].error;
        assert!(
            error.contains("\"evil\"") && error.contains("ignored"),
            "{error}"
        );

        let mut anonymous = serde_json::to_value(aggregate("b", 999_999)).unwrap();
        anonymous.as_object_mut().unwrap().remove("node");
        let anon = answering(anonymous.to_string());
        let owners = [
            owner("a", "unused", true, MemberState::Alive),
            owner("b", &anon, false, MemberState::Alive),
        ];
        let got = fullest_replica("a", &owners, forward(), &local, &|| 0).unwrap();
        assert_eq!(got.served_by, "a");
        assert!(got.failed[0].error.contains("node"), "{:?}", got.failed);
    }

    #[test]
    fn no_answer_at_all_names_every_owner() {
        let owners = [owner("a", "unused", true, MemberState::Alive)];
        let local = || Err::<AggregateAnswer, _>("disk on fire".to_string());
        let err = fullest_replica("a", &owners, forward(), &local, &|| 0).unwrap_err();
        assert_eq!(err.owners, ["a"]);
        assert_eq!(err.failed[0].error, "disk on fire");
    }

    #[test]
    fn listing_is_the_union_and_names_failures() {
        let other = answering(r#"{"devices":["x","z"],"node":"b"}"#.to_string());
        let members = [
            owner("a", "unused", true, MemberState::Alive),
            owner("b", &other, false, MemberState::Alive),
            owner("c", "127.0.0.1:1", false, MemberState::Alive),
        ];
        let local = || {
            Ok(DevicesAnswer {
                devices: ["y".to_string(), "x".to_string()].into(),
                node: "a".into(),
            })
        };
        let (union, failed) = union_of("a", &members, forward(), &local);
        assert_eq!(
            union.devices.into_iter().collect::<Vec<_>>(),
            ["x", "y", "z"]
        );
        assert_eq!(union.node, "a");
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].node, "c");
    }
}
