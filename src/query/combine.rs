//! What a coordinator makes of its peers' answers, typed: a read over one or many series
//! keeps the fullest copy of each series among every member (replicas are never added
//! together), a delete must be confirmed by every owner, and a listing is the
//! union over every reachable member.
//!
//! Peers' answers are parsed into the same types as the local answer ([`read`](super::read)),
//! and one naming a node other than the one asked is refused, so no peer can answer for
//! another. The local answer is used as is, never serialised and parsed back. Shaping the
//! HTTP reply (and its 503) is the caller's business.

use crate::cluster::fan_out::{fan_out_with, Forward};
use crate::cluster::peer::PeerResponse;
use crate::cluster::Owner;
use crate::error::Error;
use crate::query::read::{ListingAnswer, SeriesPartial, SeriesPartials};
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

/// An answer holding one node's copy of each of many series (`/internal/series-aggregate`,
/// `/internal/select`), so a coordinator can keep the fullest copy of each.
pub trait PerSeriesAnswer: DeserializeOwned + Send {
    type Copy: Send;
    /// The node that answered.
    fn node(&self) -> &str;
    fn into_copies(self) -> Vec<Self::Copy>;
    /// The series a copy is of.
    fn series(copy: &Self::Copy) -> &SeriesFields;
    /// Points the copy holds: the copy with the most is the fullest.
    fn points(copy: &Self::Copy) -> u64;
}

impl PerSeriesAnswer for SeriesPartials {
    type Copy = SeriesPartial;

    fn node(&self) -> &str {
        &self.node
    }

    fn into_copies(self) -> Vec<SeriesPartial> {
        self.series
    }

    fn series(copy: &SeriesPartial) -> &SeriesFields {
        &copy.series
    }

    fn points(copy: &SeriesPartial) -> u64 {
        copy.stats.count
    }
}

/// A read over many series: the fullest copy of each among the members that answered.
#[derive(Debug)]
pub struct PerSeries<C> {
    /// One copy per series, sorted by series.
    pub copies: Vec<C>,
    /// The member whose copy of each series (same order as `copies`) was kept.
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
pub fn fullest_per_series<A: PerSeriesAnswer>(
    targets: &[Owner],
    forward: Forward<'_>,
    local: &(dyn Fn() -> Result<A, String> + Sync),
) -> PerSeries<A::Copy> {
    let remote = |target: &Owner, answer| {
        let answer: A = typed_answer(target, answer, |a: &A| a.node())?;
        let copies = answer.into_copies();
        for copy in &copies {
            A::series(copy)
                .key()
                .map_err(|e| format!("answer names a bad series: {e}"))?;
        }
        Ok(copies)
    };
    let local = || local().map(A::into_copies);
    let mut best: BTreeMap<SeriesFields, (String, A::Copy)> = BTreeMap::new();
    let mut outcome = PerSeries {
        copies: Vec::new(),
        served_by: Vec::new(),
        answered: Vec::new(),
        failed: Vec::new(),
    };
    for (target, answer) in fan_out_with(targets, forward, &local, &remote) {
        match answer {
            Ok(copies) => {
                outcome.answered.push(target.id.clone());
                for copy in copies {
                    match best.get(A::series(&copy)) {
                        Some((_, kept)) if A::points(kept) >= A::points(&copy) => {}
                        _ => {
                            best.insert(A::series(&copy).clone(), (target.id.clone(), copy));
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
    for (_, (node, copy)) in best {
        outcome.served_by.push(node);
        outcome.copies.push(copy);
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
    use crate::cluster::membership::MemberState;
    use crate::query::read::DevicesAnswer;
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

    /// A node's copy of series `d`/`m` holding `count` points.
    fn partials(node: &str, count: u64) -> SeriesPartials {
        SeriesPartials {
            series: vec![SeriesPartial {
                series: SeriesFields {
                    device_id: "d".into(),
                    metric_name: "m".into(),
                    labels: Default::default(),
                },
                stats: crate::query::read::Stats {
                    count,
                    sum: count as f64,
                    min: Some(1.0),
                    max: Some(1.0),
                },
                buckets: Vec::new(),
            }],
            node: node.into(),
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
    fn the_fullest_copy_of_a_series_wins_and_dead_targets_fail() {
        let fuller = answering(serde_json::to_string(&partials("b", 9)).unwrap());
        let targets = [
            owner("a", "unused", true, MemberState::Alive),
            owner("b", &fuller, false, MemberState::Alive),
            owner("c", "127.0.0.1:1", false, MemberState::Alive),
        ];
        let local = || Ok(partials("a", 4));
        let got = fullest_per_series(&targets, forward(), &local);
        assert_eq!(got.served_by, ["b"]);
        assert_eq!(got.copies.len(), 1);
        assert_eq!(got.copies[0].stats.count, 9);
        assert_eq!(got.answered, ["a", "b"]);
        assert_eq!(got.failed.len(), 1, "{:?}", got.failed);
        assert_eq!(got.failed[0].node, "c");
    }

    #[test]
    fn an_answer_naming_another_node_is_refused() {
        let liar = answering(serde_json::to_string(&partials("evil", 999_999)).unwrap());
        let targets = [
            owner("a", "unused", true, MemberState::Alive),
            owner("b", &liar, false, MemberState::Alive),
        ];
        let local = || Ok(partials("a", 4));
        let got = fullest_per_series(&targets, forward(), &local);
        assert_eq!(got.served_by, ["a"]);
        assert_eq!(got.copies[0].stats.count, 4);
        let error = &got.failed[0].error;
        assert!(
            error.contains("\"evil\"") && error.contains("ignored"),
            "{error}"
        );

        let mut anonymous = serde_json::to_value(partials("b", 999_999)).unwrap();
        anonymous.as_object_mut().unwrap().remove("node");
        let anon = answering(anonymous.to_string());
        let targets = [
            owner("a", "unused", true, MemberState::Alive),
            owner("b", &anon, false, MemberState::Alive),
        ];
        let got = fullest_per_series(&targets, forward(), &local);
        assert_eq!(got.served_by, ["a"]);
        assert!(got.failed[0].error.contains("node"), "{:?}", got.failed);
    }

    #[test]
    fn a_peer_naming_a_bad_series_fails_its_whole_answer() {
        let mut bad = serde_json::to_value(partials("b", 50)).unwrap();
        bad["series"][0]["metric_name"] = "".into();
        let bad = answering(bad.to_string());
        let targets = [
            owner("a", "unused", true, MemberState::Alive),
            owner("b", &bad, false, MemberState::Alive),
        ];
        let local = || Err::<SeriesPartials, _>("disk on fire".to_string());
        let got = fullest_per_series(&targets, forward(), &local);
        assert!(got.copies.is_empty());
        assert_eq!(got.failed.len(), 2, "{:?}", got.failed);
        assert_eq!(got.failed[0].error, "disk on fire");
        assert!(
            got.failed[1].error.contains("bad series"),
            "{:?}",
            got.failed
        );
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
