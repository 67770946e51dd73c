//! Tombstones: the deletes a node remembers for `--tombstone_grace_hours`, so that repair,
//! hinted hand-off and late MQTT redeliveries cannot bring a deleted series back. Kept in
//! `tombstones.json` (written atomically), learned from peers through repair
//! ([`repair`](super::repair)), and consulted by every write that could carry old points of
//! a deleted series ([`Tombstones::drop_shadowed`] under [`Tombstones::write_gate`]).

use crate::error::{Error, Result};
use crate::storage::{Point, SeriesFields, SeriesKey};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A delete every member must apply: the series, and when it was deleted (ms).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    #[serde(flatten)]
    pub series: SeriesFields,
    pub deleted_at: i64,
}

/// The deletes this node remembers for the grace, persisted to `tombstones.json` (written
/// atomically).
pub struct Tombstones {
    path: PathBuf,
    /// How long a delete is remembered (`--tombstone_grace_hours`).
    grace: Duration,
    entries: Mutex<BTreeMap<SeriesKey, i64>>,
    /// Orders filtered writes against deletes, see [`Tombstones::write_gate`].
    gate: std::sync::RwLock<()>,
}

impl Tombstones {
    /// Loads the file if present; a corrupt file is an error naming it. Deletes older than
    /// `grace` are forgotten.
    pub fn open(path: PathBuf, grace: Duration) -> Result<Tombstones> {
        let entries = match fs::read(&path) {
            Ok(bytes) => {
                let list: Vec<Tombstone> = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::corrupt(&path, 0, format!("tombstones: {e}")))?;
                let mut map = BTreeMap::new();
                for t in list {
                    map.insert(t.series.key()?, t.deleted_at);
                }
                map
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(Error::io(&path, e)),
        };
        Ok(Tombstones {
            path,
            grace,
            entries: Mutex::new(entries),
            gate: std::sync::RwLock::new(()),
        })
    }

    /// Held (shared) by a write from its [`Tombstones::drop_shadowed`] until its points are
    /// stored. Without it a delete could land between the check and the write, and the
    /// write would bring the deleted series back (seen in tests/cluster.rs: an MQTT backlog
    /// redelivered to a restarted node while the delete ran).
    pub fn write_gate(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Held (exclusively) by a delete while it drops the series and records the tombstone.
    pub fn delete_gate(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.gate.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Deletes at or after this time (unix ms) are remembered.
    fn cutoff(&self) -> i64 {
        let grace = i64::try_from(self.grace.as_millis()).unwrap_or(i64::MAX);
        now_millis().saturating_sub(grace)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<SeriesKey, i64>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a delete (keeping the later time if one is known) and persists the list.
    pub fn record(&self, key: &SeriesKey, deleted_at: i64) -> Result<()> {
        let mut entries = self.lock();
        let entry = entries.entry(key.clone()).or_insert(deleted_at);
        *entry = (*entry).max(deleted_at);
        let cutoff = self.cutoff();
        entries.retain(|_, at| *at >= cutoff);
        self.persist(&entries)
    }

    /// Whether `key` was deleted within the grace.
    pub fn contains(&self, key: &SeriesKey) -> bool {
        let cutoff = self.cutoff();
        self.lock().get(key).is_some_and(|at| *at >= cutoff)
    }

    /// Drops the points a remembered delete shadows: points of a deleted series timestamped
    /// at or before the delete. Readings published before a delete can still arrive after it
    /// (an MQTT backlog redelivered to a restarted node, hints handed off, a hand-over): they
    /// must not bring the series back.
    pub fn drop_shadowed(&self, points: &mut Vec<Point>) {
        if let Cow::Owned(kept) = self.unshadowed(points) {
            *points = kept;
        }
    }

    /// `points` without those a remembered delete shadows (see
    /// [`Tombstones::drop_shadowed`]); borrowed, not copied, when none is (always, while no
    /// delete is remembered).
    pub fn unshadowed<'p>(&self, points: &'p [Point]) -> Cow<'p, [Point]> {
        let entries = self.lock();
        if entries.is_empty() {
            return Cow::Borrowed(points);
        }
        let cutoff = self.cutoff();
        let shadowed = |p: &Point| {
            entries
                .get(&p.series)
                .is_some_and(|at| *at >= cutoff && p.timestamp.0 <= *at)
        };
        if !points.iter().any(shadowed) {
            return Cow::Borrowed(points);
        }
        Cow::Owned(points.iter().filter(|p| !shadowed(p)).cloned().collect())
    }

    pub fn list(&self) -> Vec<Tombstone> {
        let cutoff = self.cutoff();
        self.lock()
            .iter()
            .filter(|(_, at)| **at >= cutoff)
            .map(|(k, at)| Tombstone {
                series: SeriesFields::from(k),
                deleted_at: *at,
            })
            .collect()
    }

    fn persist(&self, entries: &BTreeMap<SeriesKey, i64>) -> Result<()> {
        let list: Vec<Tombstone> = entries
            .iter()
            .map(|(k, at)| Tombstone {
                series: SeriesFields::from(k),
                deleted_at: *at,
            })
            .collect();
        let bytes = serde_json::to_vec(&list)
            .map_err(|e| Error::corrupt(&self.path, 0, format!("encode tombstones: {e}")))?;
        crate::cluster::incarnation::replace_file(&self.path, &bytes)
    }
}

pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Timestamp;
    use crate::test_dir::TempDir;

    const GRACE: Duration = Duration::from_secs(3600);

    #[test]
    fn tombstones_persist_and_keep_the_latest_time() {
        let dir = TempDir::new("tombstones");
        let path = dir.join("tombstones.json");
        let key = SeriesKey::new("d", "m").unwrap();
        let now = now_millis();
        {
            let t = Tombstones::open(path.clone(), GRACE).unwrap();
            t.record(&key, now - 10).unwrap();
            t.record(&key, now - 20).unwrap();
        }
        let t = Tombstones::open(path.clone(), GRACE).unwrap();
        assert!(t.contains(&key));
        assert_eq!(t.list()[0].deleted_at, now - 10);
        let old = SeriesKey::new("d", "old").unwrap();
        t.record(&old, now - 2 * GRACE.as_millis() as i64).unwrap();
        assert!(!t.contains(&old), "expired tombstones are forgotten");
        // The grace is the flag's: the same delete is still known under a longer one.
        let longer = Tombstones::open(path.clone(), 3 * GRACE).unwrap();
        assert!(longer.list().iter().all(|t| t.series.metric_name != "old"));
        longer
            .record(&old, now - 2 * GRACE.as_millis() as i64)
            .unwrap();
        assert!(longer.contains(&old));
        fs::write(&path, b"{not json").unwrap();
        let e = Tombstones::open(path, GRACE)
            .err()
            .expect("corrupt file is an error");
        assert!(e.to_string().contains("tombstones.json"), "{e}");
    }

    #[test]
    fn a_delete_shadows_older_points_of_its_series_only() {
        let dir = TempDir::new("tombstones-shadow");
        let t = Tombstones::open(dir.join("tombstones.json"), GRACE).unwrap();
        let key = SeriesKey::new("d", "m").unwrap();
        let point = |series: &SeriesKey, ms: i64| Point {
            series: series.clone(),
            timestamp: Timestamp(ms),
            value: 1.0,
        };
        let deleted_at = now_millis();
        t.record(&key, deleted_at).unwrap();
        let other = SeriesKey::new("d", "other").unwrap();
        let mut points = vec![
            point(&key, deleted_at - 1),
            point(&key, deleted_at),
            point(&key, deleted_at + 1),
            point(&other, deleted_at - 1),
        ];
        t.drop_shadowed(&mut points);
        assert_eq!(
            points,
            vec![point(&key, deleted_at + 1), point(&other, deleted_at - 1)]
        );
        // What no delete shadows is handed back as it came, not copied.
        assert!(matches!(t.unshadowed(&points), Cow::Borrowed(p) if p == points.as_slice()));
        let shadowed = [point(&other, deleted_at), point(&key, deleted_at - 5)];
        assert_eq!(
            t.unshadowed(&shadowed).into_owned(),
            vec![point(&other, deleted_at)]
        );
    }
}
