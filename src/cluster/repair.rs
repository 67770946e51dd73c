//! Anti-entropy repair: owners of a series converge on the union of their copies, data
//! moves to new owners when the ring changes, and deletes are not undone.
//!
//! Every `repair_interval` the `repair` thread runs one [`repair_round`]:
//! 1. It asks every reachable member for its summary (`GET /internal/summary`): each
//!    series with its point count and an order-independent hash of its points, and the
//!    member's tombstones.
//! 2. Tombstones it did not know are applied (the series is deleted here too) and kept.
//! 3. For each series this node owns where a peer's summary differs from its own, it
//!    compares per-hour digests (`POST /internal/digest`) and pulls the peer's points of
//!    every hour that differs (`POST /query-samples?local=1`). Writes are idempotent, so
//!    pulling the union converges both copies (the peer pulls from us the same way).
//! 4. For each series this node holds but no longer owns (the ring changed: a node joined
//!    or left), it sends the points to every reachable owner (`POST /internal/write`) and,
//!    once all of them have them durably, deletes its copy.
//!
//! A round transfers at most [`MAX_POINTS_PER_ROUND`] points, so repair never starves
//! ingestion. Tombstones are kept for `--tombstone_grace_hours` (default 240, Cassandra's
//! gc_grace): long enough for every member to learn them through repair. A node away
//! longer than that would bring a deleted series back, so at start it sets its old data
//! aside and refills from its peers (see [`stale`](super::stale)).
//!
//! "A series I own but do not hold" (a new owner after a join, or after a dead member was
//! removed from the table) needs no step of its own: step 3 compares against an empty
//! summary, so every hour differs and the whole series is pulled.

use crate::cluster::fan_out::{fan_out, Forward, PEER_TIMEOUT};
use crate::cluster::handoff::send_points;
use crate::cluster::peer::{self, PeerResponse};
use crate::cluster::tombstones::Tombstone;
use crate::cluster::Owner;
use crate::error::{Error, Result};
use crate::node::Node;
use crate::storage::{DigestBucket, Point, SeriesFields, SeriesKey, TimeRange, Timestamp};
use crate::{log_info, log_warn};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Digest bucket width: one hour.
pub const DIGEST_BUCKET_MILLIS: i64 = 3_600_000;
/// Most points one repair round moves.
pub const MAX_POINTS_PER_ROUND: u64 = 500_000;

/// One series in a summary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesSummary {
    #[serde(flatten)]
    pub series: SeriesFields,
    pub count: u64,
    pub hash: u64,
}

/// What `GET /internal/summary` answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub series: Vec<SeriesSummary>,
    pub tombstones: Vec<Tombstone>,
}

/// What one round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    pub pulled: u64,
    pub handed_over: u64,
    pub tombstones_learned: usize,
    pub failed_peers: Vec<String>,
}

/// This node's summary: every series with its count and hash, and its tombstones.
pub fn local_summary(node: &Node) -> Result<Summary> {
    let mut series = Vec::new();
    for key in node.engine.series() {
        let digest = node.engine.digest(&key, DIGEST_BUCKET_MILLIS)?;
        series.push(SeriesSummary {
            series: SeriesFields::from(&key),
            count: digest.iter().map(|b| b.count).sum(),
            hash: digest.iter().fold(0u64, |h, b| h.wrapping_add(b.hash)),
        });
    }
    Ok(Summary {
        series,
        tombstones: node.tombstones.list(),
    })
}

/// One repair round; see the module doc.
pub fn repair_round(node: &Node) -> RepairReport {
    let mut report = RepairReport::default();
    let members = node.cluster.reachable_members();
    if members.len() <= 1 {
        return report;
    }
    let forward = Forward {
        method: "GET",
        path: "/internal/summary",
        body: b"",
        timeout: PEER_TIMEOUT,
        link: node.trust.link(),
    };
    let local = || match local_summary(node)
        .and_then(|s| serde_json::to_vec(&s).map_err(|e| Error::invalid("summary", e.to_string())))
    {
        Ok(body) => PeerResponse { status: 200, body },
        Err(e) => PeerResponse {
            status: 500,
            body: e.to_string().into_bytes(),
        },
    };
    let mut summaries: BTreeMap<String, (Owner, Summary)> = BTreeMap::new();
    for answer in fan_out(&members, forward, &local) {
        let parsed = answer.ok_body().and_then(|b| {
            serde_json::from_slice::<Summary>(b).map_err(|e| format!("bad summary: {e}"))
        });
        match parsed {
            Ok(summary) => {
                summaries.insert(answer.target.id.clone(), (answer.target.clone(), summary));
            }
            Err(e) => {
                log_warn!("repair: {} gave no summary: {e}", answer.target.id);
                report.failed_peers.push(answer.target.id.clone());
            }
        }
    }
    let me = node.config.node_id.clone();
    let Some((_, mine)) = summaries.remove(&me) else {
        return report;
    };

    // 2. Tombstones first, so nothing below pulls a deleted series back.
    for (_, summary) in summaries.values() {
        for t in &summary.tombstones {
            let Ok(key) = t.series.key() else {
                continue;
            };
            if !node.tombstones.contains(&key) {
                let _gate = node.tombstones.delete_gate();
                match node
                    .engine
                    .delete_series(&key)
                    .and_then(|_| node.tombstones.record(&key, t.deleted_at))
                {
                    Ok(()) => report.tombstones_learned += 1,
                    Err(e) => log_warn!("repair: applying the delete of {key}: {e}"),
                }
            }
        }
    }

    let my_series: BTreeMap<SeriesKey, &SeriesSummary> = mine
        .series
        .iter()
        .filter_map(|s| Some((s.series.key().ok()?, s)))
        .collect();
    let mut budget = MAX_POINTS_PER_ROUND;

    // 3. Pull what peers hold of series this node owns.
    let mut wanted: BTreeSet<(SeriesKey, String)> = BTreeSet::new();
    for (peer_id, (_, summary)) in &summaries {
        for s in &summary.series {
            let Ok(key) = s.series.key() else {
                continue;
            };
            if node.tombstones.contains(&key) || !node.cluster.owns(&key) {
                continue;
            }
            let same = my_series
                .get(&key)
                .is_some_and(|m| m.count == s.count && m.hash == s.hash);
            if !same {
                wanted.insert((key, peer_id.clone()));
            }
        }
    }
    for (key, peer_id) in wanted {
        if budget == 0 {
            break;
        }
        let Some((peer, _)) = summaries.get(&peer_id) else {
            continue;
        };
        match pull_series(node, peer, &key, budget) {
            Ok(n) => {
                report.pulled += n;
                budget = budget.saturating_sub(n);
            }
            Err(e) => {
                log_warn!("repair: pulling {key} from {peer_id}: {e}");
                report.failed_peers.push(peer_id.clone());
            }
        }
    }

    // 4. Hand over series this node no longer owns.
    for key in my_series.keys() {
        if budget == 0 || node.cluster.owns(key) {
            continue;
        }
        match hand_over_series(node, key) {
            Ok(n) => {
                report.handed_over += n;
                budget = budget.saturating_sub(n);
            }
            Err(e) => log_warn!("repair: handing {key} to its owners: {e}"),
        }
    }
    if report.pulled > 0 || report.handed_over > 0 || report.tombstones_learned > 0 {
        log_info!(
            "repair: pulled {}, handed over {}, learned {} deletes",
            report.pulled,
            report.handed_over,
            report.tombstones_learned
        );
    }
    report
}

/// Pulls the points of every hour of `key` where `peer`'s digest differs from ours.
fn pull_series(node: &Node, peer: &Owner, key: &SeriesKey, budget: u64) -> Result<u64> {
    let request = serde_json::to_string(&SeriesFields::from(key))
        .map_err(|e| Error::peer(&peer.id, format!("encode digest request: {e}")))?;
    #[derive(Deserialize)]
    struct DigestAnswer {
        buckets: Vec<DigestBucket>,
    }
    let theirs: DigestAnswer = post_json(node, peer, "/internal/digest", &request)?;
    let ours: BTreeMap<Timestamp, DigestBucket> = node
        .engine
        .digest(key, DIGEST_BUCKET_MILLIS)?
        .into_iter()
        .map(|b| (b.start, b))
        .collect();
    let mut pulled = 0;
    for bucket in theirs.buckets {
        if ours.get(&bucket.start) == Some(&bucket) {
            continue;
        }
        if pulled >= budget {
            break;
        }
        let points = fetch_range(node, peer, key, bucket.start)?;
        node.engine.write(&points)?;
        pulled += points.len() as u64;
    }
    Ok(pulled)
}

/// POSTs `request` (JSON) to `peer` and decodes a 200 answer as `T`.
fn post_json<T: serde::de::DeserializeOwned>(
    node: &Node,
    peer: &Owner,
    path: &str,
    request: &str,
) -> Result<T> {
    let answer = peer::call(
        &peer.http_addr,
        "POST",
        path,
        request.as_bytes(),
        PEER_TIMEOUT,
        node.trust.link(),
    )?;
    if answer.status != 200 {
        return Err(Error::peer(
            &peer.id,
            format!("{path} answered {}", answer.status),
        ));
    }
    serde_json::from_slice(&answer.body)
        .map_err(|e| Error::peer(&peer.id, format!("bad answer from {path}: {e}")))
}

/// The peer's points of `key` in the digest bucket starting at `start`.
fn fetch_range(node: &Node, peer: &Owner, key: &SeriesKey, start: Timestamp) -> Result<Vec<Point>> {
    let series = SeriesFields::from(key);
    let request = serde_json::json!({
        "device_id": series.device_id,
        "metric_name": series.metric_name,
        "labels": series.labels,
        "start_time": start.as_unix_seconds(),
        "end_time": Timestamp(start.0.saturating_add(DIGEST_BUCKET_MILLIS - 1)).as_unix_seconds(),
        "limit": 1_000_000,
    })
    .to_string();
    #[derive(Deserialize)]
    struct SamplesAnswer {
        samples: Vec<f64>,
        timestamps: Vec<f64>,
    }
    let samples: SamplesAnswer = post_json(node, peer, "/query-samples?local=1", &request)?;
    samples
        .timestamps
        .iter()
        .zip(&samples.samples)
        .map(|(&ts, &value)| {
            Ok(Point {
                series: key.clone(),
                timestamp: Timestamp::from_unix_seconds(ts)?,
                value,
            })
        })
        .collect()
}

/// Sends every point of `key` to each reachable owner, then deletes the local copy once
/// all of them have it. Keeps the copy if any owner is unreachable.
fn hand_over_series(node: &Node, key: &SeriesKey) -> Result<u64> {
    let owners = node.cluster.owners(key);
    if owners.is_empty()
        || owners
            .iter()
            .any(|o| o.state != crate::cluster::membership::MemberState::Alive)
    {
        return Ok(0);
    }
    let points: Vec<Point> = node
        .engine
        .samples(key, TimeRange::ALL, usize::MAX)?
        .into_iter()
        .map(|(timestamp, value)| Point {
            series: key.clone(),
            timestamp,
            value,
        })
        .collect();
    for owner in &owners {
        for batch in points.chunks(crate::cluster::handoff::HANDOFF_BATCH) {
            send_points(
                &owner.http_addr,
                batch,
                crate::cluster::handoff::HANDOFF_TIMEOUT,
                node.trust.link(),
            )?;
        }
    }
    node.engine.delete_series(key)?;
    Ok(points.len() as u64)
}
