//! Hinted handoff: readings kept durably for an owner that was down, and handed to it once
//! it is alive again.
//!
//! Hints for owner `X` live in their own store under `DATA_DIR/NODE/hints/X/` (a full
//! [`Engine`]: WAL-durable, idempotent, compressed). The `hint-handoff` thread calls
//! [`Hints::hand_off`] every few seconds: for each owner now alive, every hinted series is
//! sent to it (`POST /internal/write`, durable there before it answers) and only then
//! deleted here. A failed send keeps the hints for the next round; a repeat is harmless
//! because writes are idempotent.
//!
//! An owner removed from the table after `--dead_member_expiry` never comes back for its
//! hints: each of its hinted series goes instead to the series' current owners (once all of
//! them are alive), so what it owned is held by `--replication` live nodes again.

use crate::cluster::membership::MemberState;
use crate::cluster::peer::{self, PeerLink};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::storage::wal;
use crate::storage::{Engine, EngineConfig, Point, SeriesFields, TimeRange, Timestamp};
use crate::{log_info, log_warn};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Points per `/internal/write` request during handoff.
pub const HANDOFF_BATCH: usize = 20_000;
/// How long one handoff request may take.
pub const HANDOFF_TIMEOUT: Duration = Duration::from_secs(10);

/// One point on the internal wire: `[device_id, metric_name, timestamp_ms, value]` for a
/// series the original API names, `[device_id, metric_name, timestamp_ms, value, {labels}]`
/// (`device_id` `""` if the series has none, `labels` the others) for any other. A node
/// from before labels refuses the five-element form with a 400 rather than store it under
/// the wrong series, so the sender keeps the points.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WirePoint {
    Plain(String, String, i64, f64),
    Labelled(String, String, i64, f64, BTreeMap<String, String>),
}

/// Body of `POST /internal/write`.
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct InternalWrite {
    pub points: Vec<WirePoint>,
}

impl InternalWrite {
    pub fn from_points(points: &[Point]) -> InternalWrite {
        InternalWrite {
            points: points
                .iter()
                .map(|p| {
                    let (device, metric) = (p.series.device_id(), p.series.metric_name());
                    let (ts, value) = (p.timestamp.0, p.value);
                    if p.series.is_device_only() {
                        WirePoint::Plain(device.into(), metric.into(), ts, value)
                    } else {
                        let labels = p.series.extra_label_map();
                        WirePoint::Labelled(device.into(), metric.into(), ts, value, labels)
                    }
                })
                .collect(),
        }
    }

    pub fn into_points(self) -> Result<Vec<Point>> {
        self.points
            .into_iter()
            .map(|point| {
                let (device_id, metric_name, ts, value, labels) = match point {
                    WirePoint::Plain(d, m, ts, v) => (d, m, ts, v, BTreeMap::new()),
                    WirePoint::Labelled(d, m, ts, v, labels) => (d, m, ts, v, labels),
                };
                let series = SeriesFields {
                    device_id,
                    metric_name,
                    labels,
                };
                let key = series.key()?;
                if let Some(why) = Timestamp::calendar_error(ts) {
                    return Err(Error::invalid("points", format!("{key}: {why}")));
                }
                Ok(Point {
                    series: key,
                    timestamp: Timestamp(ts),
                    value,
                })
            })
            .collect()
    }
}

/// Sends `points` to the node at `http_addr` (over `link`: signed, HTTPS in a TLS cluster); Ok once that
/// node has them durably.
///
/// The body is binary: WAL records ([`wal::encode_batches`]: grouped by series, each key
/// once, CRC-checked), several when the points are many. A node from before that format
/// reads the body as JSON and answers 400 `invalid body`: the points then go again as JSON.
pub fn send_points(
    http_addr: &str,
    points: &[Point],
    timeout: Duration,
    link: PeerLink<'_>,
) -> Result<()> {
    let encode = |e: Error| Error::peer(http_addr, format!("encode points: {e}"));
    for body in wal::encode_batches(points).map_err(encode)? {
        let answer = peer::call(http_addr, "POST", BINARY_WRITE_PATH, &body, timeout, link)?;
        match answer.status {
            200 | 204 => {}
            400 if String::from_utf8_lossy(&answer.body).contains("invalid body") => {
                return send_points_as_json(http_addr, points, timeout, link);
            }
            _ => return Err(write_refused(http_addr, &answer)),
        }
    }
    Ok(())
}

/// The `/internal/write` of [`send_points`]' binary body.
pub const BINARY_WRITE_PATH: &str = "/internal/write?format=wal";

/// [`send_points`] in the JSON form every version reads.
fn send_points_as_json(
    http_addr: &str,
    points: &[Point],
    timeout: Duration,
    link: PeerLink<'_>,
) -> Result<()> {
    let body = serde_json::to_vec(&InternalWrite::from_points(points))
        .map_err(|e| Error::peer(http_addr, format!("encode points: {e}")))?;
    let answer = peer::call(http_addr, "POST", "/internal/write", &body, timeout, link)?;
    match answer.status {
        200 | 204 => Ok(()),
        _ => Err(write_refused(http_addr, &answer)),
    }
}

/// The error for an internal write the owner did not take.
fn write_refused(http_addr: &str, answer: &peer::PeerResponse) -> Error {
    Error::peer(
        http_addr,
        format!(
            "internal write answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        ),
    )
}

/// The hint stores of one node, opened on first use.
pub struct Hints {
    dir: PathBuf,
    stores: Mutex<BTreeMap<String, Arc<Engine>>>,
}

impl Hints {
    /// Hint stores under `dir`; nothing is read until [`Hints::load_existing`] or a hint.
    pub fn new(dir: PathBuf) -> Hints {
        Hints {
            dir,
            stores: Mutex::new(BTreeMap::new()),
        }
    }

    /// Opens every hint store already on disk (hints kept before a restart).
    pub fn load_existing(&self) -> Result<()> {
        if !self.dir.exists() {
            return Ok(());
        }
        for entry in fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))? {
            let entry = entry.map_err(|e| Error::io(&self.dir, e))?;
            if entry.path().is_dir() {
                self.store(&entry.file_name().to_string_lossy())?;
            }
        }
        Ok(())
    }

    fn store(&self, owner: &str) -> Result<Arc<Engine>> {
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = stores.get(owner) {
            return Ok(store.clone());
        }
        let (engine, _) = Engine::open(&self.dir.join(owner), EngineConfig::default())?;
        let engine = Arc::new(engine);
        stores.insert(owner.to_string(), engine.clone());
        Ok(engine)
    }

    /// The open stores, copied out so no lock is held while they are used.
    fn snapshot(&self) -> Vec<(String, Arc<Engine>)> {
        self.stores
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Keeps `points` durably for `owner`.
    pub fn keep(&self, owner: &str, points: &[Point]) -> Result<()> {
        self.store(owner)?.write(points)
    }

    /// Points held per owner (for `/status`).
    pub fn pending(&self) -> BTreeMap<String, u64> {
        let stores = self.snapshot();
        stores
            .into_iter()
            .map(|(owner, engine)| (owner, engine.stats().points))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Hands every hint of every owner that is alive now to it (over `link`). Returns
    /// points handed off.
    pub fn hand_off(&self, cluster: &Cluster, link: PeerLink<'_>) -> u64 {
        let membership = cluster.membership();
        let stores = self.snapshot();
        let mut handed = 0;
        for (owner, engine) in stores {
            let member = match membership.get(&owner) {
                Some(member) if member.state == MemberState::Alive => Some(member),
                Some(_) => continue,
                None if membership.is_removed(&owner) => None,
                // Not heard of yet (just started): wait for gossip.
                None => continue,
            };
            for series in engine.series() {
                let targets: Vec<String> = match member {
                    Some(member) => vec![member.http_addr.clone()],
                    None => {
                        let owners = cluster.owners(&series);
                        if owners.is_empty() || owners.iter().any(|o| o.state != MemberState::Alive)
                        {
                            continue;
                        }
                        owners.into_iter().map(|o| o.http_addr).collect()
                    }
                };
                match hand_off_series(&engine, &targets, &series, link) {
                    Ok(n) => handed += n,
                    Err(e) => {
                        log_warn!("hinted handoff for {owner}: {e}; kept for the next round");
                        break;
                    }
                }
            }
            if let Err(e) = engine.maintain() {
                log_warn!("hint store for {owner}: {e}");
            }
        }
        if handed > 0 {
            log_info!("hinted handoff: {handed} readings delivered");
        }
        handed
    }

    /// Flushes every hint store (clean shutdown).
    pub fn close(&self) -> Result<()> {
        let stores = std::mem::take(&mut *self.stores.lock().unwrap_or_else(|p| p.into_inner()));
        for (_, engine) in stores {
            engine.flush()?;
        }
        Ok(())
    }
}

/// Sends every hinted point of `series` to each of `targets` (HTTP addresses), then deletes
/// the hints.
fn hand_off_series(
    engine: &Engine,
    targets: &[String],
    series: &crate::storage::SeriesKey,
    link: PeerLink<'_>,
) -> Result<u64> {
    let samples = engine.samples(series, TimeRange::ALL, usize::MAX)?;
    for batch in samples.chunks(HANDOFF_BATCH) {
        let points: Vec<Point> = batch
            .iter()
            .map(|&(timestamp, value)| Point {
                series: series.clone(),
                timestamp,
                value,
            })
            .collect();
        for http_addr in targets {
            send_points(http_addr, &points, HANDOFF_TIMEOUT, link)?;
        }
    }
    // Only after the owners have every point durably.
    engine.delete_series(series)?;
    Ok(samples.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SeriesKey;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    /// A node from before the binary write: reads every body as JSON. Answers the first
    /// request as such a node answers a binary body, the second with 204; returns each
    /// request's path and body.
    fn old_node(listener: TcpListener) -> Vec<(String, Vec<u8>)> {
        let mut seen = Vec::new();
        for answer in [
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 45\r\n\r\n{\"error\":\"invalid body: expected value at 1\"}",
            "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
        ] {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap().to_string();
            let mut length = 0;
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if header == "\r\n" {
                    break;
                }
                if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            reader.get_mut().write_all(answer.as_bytes()).unwrap();
            seen.push((path, body));
        }
        seen
    }

    #[test]
    fn a_node_that_reads_only_json_gets_the_points_again_as_json() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let node = std::thread::spawn(move || old_node(listener));
        let points = vec![Point {
            series: SeriesKey::with_labels("t", [("device_id", "d"), ("room", "lab")]).unwrap(),
            timestamp: Timestamp(1_000),
            value: 2.5,
        }];
        let link = PeerLink {
            secret: None,
            tls: None,
        };
        send_points(&addr, &points, Duration::from_secs(5), link).unwrap();
        let seen = node.join().unwrap();
        assert_eq!(seen[0].0, BINARY_WRITE_PATH);
        assert_eq!(wal::decode_batch(&seen[0].1).unwrap().len(), 1);
        assert_eq!(seen[1].0, "/internal/write");
        let json: InternalWrite = serde_json::from_slice(&seen[1].1).unwrap();
        assert_eq!(json.into_points().unwrap(), points);
    }
}
