//! The storage engine: the one type the rest of the crate uses to store and read points.
//!
//! Write path: [`Engine::write`] groups a batch by series, appends it to the WAL as one
//! record, waits for the WAL's group commit, and only then applies it to the [`SeriesMap`].
//! When it returns `Ok`, every point of the batch is fsynced; callers acknowledge after it.
//! When it fails (a full disk, an I/O error) nothing of the batch is in memory or will
//! replay, and the WAL restarts in a new file on the next write or [`Engine::maintain`]
//! once the disk takes writes again ([`Engine::write_failure`] says why meanwhile).
//!
//! Open sets corrupt files aside in the [`quarantine`] rather than refusing to start: a
//! segment whose header, chunk, index or trailer fails its check is moved there (the node
//! starts without it; in a cluster repair refills it from the replicas), and a WAL file with a
//! corrupt record in the middle is copied there after its good records are replayed (unless
//! [`EngineConfig::strict_wal`]).
//!
//! Flush ([`Engine::flush`]): under the exclusive side of the *flush gate* (writers hold the
//! shared side from WAL append to memory apply, so the two always agree) the WAL is rotated
//! to file `N` and every series hands over what no segment holds yet. Outside the gate those
//! chunks are written to segment `segments/N.seg` and fsynced; only then are WAL files
//! older than `N` removed. A segment's id therefore says which WAL files it covers: on open,
//! WAL files older than the newest segment are already in a segment and are not replayed.
//!
//! On disk, later segments win: a chunk in segment `k` may overlap chunks of earlier
//! segments (a head flushed twice as it grew, a chunk rewritten by a late point); loading
//! merges overlapping chunks with the later segment's values winning, exactly as a late write
//! does in memory. A segment's tombstones delete the series from all *earlier* segments.
//! Compaction ([`Engine::compact`]) merges every segment into one, resolving overlaps,
//! dropping deleted series and expired chunks, and joining small chunks.
//!
//! The label [`Index`] holds exactly the series map's keys: built from the map at open
//! (after replay), added to by the write that creates a series (inside the shared flush
//! gate), and removed from by [`Engine::delete_series`] and by retention when it empties a
//! series (both under the exclusive gate, so no write sits between creating a series and
//! indexing it). Its lock is never held across I/O.

use crate::error::{Error, Result};
use crate::storage::chunk::{EncodedChunk, CHUNK_CAPACITY};
use crate::storage::codec::DecodeError;
use crate::storage::durable::sync_dir;
use crate::storage::index::{Index, Matcher};
use crate::storage::quarantine::{self, Quarantined, QUARANTINE_DIR};
use crate::storage::segment::{self, SegmentContents, SegmentSeries};
use crate::storage::series::{
    self, merge_points, read_lock, write_lock, SealedChunk, Series, SeriesMap, SeriesSnapshot,
};
use crate::storage::wal::{self, ReplayReport, Wal, WalEntry, WalEntryRef};
use crate::storage::{group_by_series, Aggregate, Bucket, Point, SeriesKey, TimeRange, Timestamp};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often [`Engine::maintain`] flushes by default.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(30);
/// WAL size past which [`Engine::maintain`] flushes early.
pub const DEFAULT_FLUSH_WAL_BYTES: u64 = 64 << 20;
/// Segment count past which [`Engine::maintain`] compacts.
pub const DEFAULT_COMPACT_SEGMENTS: usize = 8;

const SEGMENT_DIR: &str = "segments";
const WAL_DIR: &str = "wal";
const SEGMENT_SUFFIX: &str = ".seg";

/// Tunables of one engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Drop whole chunks whose newest point is older than this (none: keep forever).
    pub retention: Option<Duration>,
    /// Refuse to open when a WAL record in the middle of a file is corrupt, instead of
    /// replaying the good records and copying the file to the quarantine. Torn tails are
    /// always truncated and reported.
    pub strict_wal: bool,
    pub flush_interval: Duration,
    pub flush_wal_bytes: u64,
    pub compact_segments: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            retention: None,
            strict_wal: false,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            flush_wal_bytes: DEFAULT_FLUSH_WAL_BYTES,
            compact_segments: DEFAULT_COMPACT_SEGMENTS,
        }
    }
}

/// What opening found: loaded segments, replayed WAL, anything truncated or skipped.
#[derive(Clone, Debug, Default)]
pub struct OpenReport {
    pub segments: usize,
    pub series: usize,
    pub points: u64,
    pub wal: ReplayReport,
    /// WAL files already covered by a segment and removed without replay.
    pub wal_files_covered: usize,
    /// Files that failed their checks at this open and were set aside in the quarantine.
    pub quarantined: Vec<Quarantined>,
    /// Why the flush after quarantining a WAL file failed, if it did: the original then
    /// stays in `wal/` (and replays again) until a later flush succeeds.
    pub quarantine_flush_error: Option<String>,
}

/// One bucket of a series digest: how many points and a sum of their hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DigestBucket {
    pub start: Timestamp,
    pub count: u64,
    pub hash: u64,
}

/// A well-mixed 64-bit hash of one point (splitmix64 of timestamp and value bits), summed
/// per bucket so the digest does not depend on order.
fn point_hash(ts: Timestamp, value: f64) -> u64 {
    let mut z = (ts.0 as u64) ^ value.to_bits().rotate_left(29);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What one flush wrote.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlushReport {
    pub segment: Option<PathBuf>,
    pub series: usize,
    pub chunks: usize,
    pub bytes: u64,
}

/// Counters and sizes for `/status` and benchmarks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EngineStats {
    pub series: usize,
    pub points: u64,
    pub memory_bytes: u64,
    pub disk_bytes: u64,
    pub wal_bytes: u64,
    pub segments: usize,
    pub points_written: u64,
}

/// State only the maintenance path (flush, compaction, retention) touches.
struct Maintenance {
    /// Segment ids on disk, oldest first.
    segments: Vec<u64>,
    last_flush: Instant,
}

/// A single node's store. All methods take `&self` and are safe to call from many threads.
pub struct Engine {
    dir: PathBuf,
    config: EngineConfig,
    series: SeriesMap,
    /// The label index of `series`' keys (see the module docs).
    index: RwLock<Index>,
    wal: Wal,
    flush_gate: RwLock<()>,
    maintenance: Mutex<Maintenance>,
    /// Series deleted since the last flush: the next segment carries their tombstones.
    /// Pushed and taken only under the exclusive flush gate, so a segment covers a delete's
    /// WAL record exactly when it carries its tombstone.
    tombstones: Mutex<Vec<SeriesKey>>,
    /// Set when segments hold data that compaction should remove (deletes, retention).
    compaction_wanted: AtomicBool,
    points_written: AtomicU64,
    /// Every file in the quarantine (from this open and earlier ones).
    quarantined: Vec<Quarantined>,
}

impl Engine {
    /// Opens (or creates) the store in `dir`: loads segments, replays the WAL, starts a new
    /// WAL file.
    pub fn open(dir: &Path, config: EngineConfig) -> Result<(Engine, OpenReport)> {
        let segment_dir = dir.join(SEGMENT_DIR);
        let wal_dir = dir.join(WAL_DIR);
        for d in [dir, &segment_dir, &wal_dir] {
            fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        let quarantine_dir = dir.join(QUARANTINE_DIR);
        let mut report = OpenReport::default();
        let listed = list_segments(&segment_dir)?;
        // Ids keep growing past a quarantined segment, so that none is ever reused.
        let newest_listed = listed.last().copied().unwrap_or(0);
        let mut segments = Vec::new();
        let mut contents = Vec::new();
        for id in listed {
            let path = segment_dir.join(segment_file_name(id));
            match segment::read_segment(&path) {
                Ok(c) => {
                    segments.push(id);
                    contents.push(c);
                }
                Err(e @ Error::Corrupt { .. }) => {
                    report.quarantined.push(quarantine::move_in(
                        &quarantine_dir,
                        &path,
                        &e.to_string(),
                    )?);
                }
                Err(e) => return Err(e),
            }
        }
        report.segments = segments.len();
        let cutoff = retention_cutoff(config.retention);
        let merged = merge_segments(&segment_dir, contents, cutoff)?;
        let series = SeriesMap::default();
        for (key, chunks) in merged.series {
            let loaded = Series::from_chunks(chunks)
                .map_err(|e| Error::corrupt(&segment_dir, 0, format!("series {key}: {e}")))?;
            series.insert(key, loaded);
        }

        // WAL files the good segments cover go; those only a quarantined segment covered
        // (normally already removed) replay, which can only bring data back.
        let newest_segment = segments.last().copied().unwrap_or(0);
        report.wal_files_covered = remove_covered_wal_files(&wal_dir, newest_segment)?;
        let mut replay_error = None;
        // Deletes replayed from the WAL still need their tombstone in the next segment.
        let mut replayed_deletes = Vec::new();
        report.wal = wal::replay(&wal_dir, !config.strict_wal, &mut |entry| {
            if replay_error.is_some() {
                return;
            }
            if let WalEntry::DeleteSeries(key) = &entry {
                replayed_deletes.push(key.clone());
            }
            if let Err(e) = apply_entry(&series, entry) {
                replay_error = Some(e);
            }
        })?;
        if let Some(e) = replay_error {
            return Err(e);
        }
        let mut corrupt_wal: BTreeMap<&Path, Vec<String>> = BTreeMap::new();
        for (path, offset, reason) in &report.wal.skipped {
            corrupt_wal
                .entry(path)
                .or_default()
                .push(format!("offset {offset}: {reason}"));
        }
        for (path, reasons) in corrupt_wal {
            let reason = format!(
                "{}: corrupt, skipped (the good records were replayed): {}",
                path.display(),
                reasons.join("; ")
            );
            report
                .quarantined
                .push(quarantine::copy_in(&quarantine_dir, path, &reason)?);
        }
        let wal = Wal::open_from(&wal_dir, newest_listed.max(newest_segment) + 1)?;
        let mut index = Index::new();
        for (key, _) in series.entries() {
            index.add(&key);
        }
        let engine = Engine {
            dir: dir.to_path_buf(),
            config,
            series,
            index: RwLock::new(index),
            wal,
            flush_gate: RwLock::new(()),
            maintenance: Mutex::new(Maintenance {
                segments,
                last_flush: Instant::now(),
            }),
            compaction_wanted: AtomicBool::new(!replayed_deletes.is_empty()),
            tombstones: Mutex::new(replayed_deletes),
            points_written: AtomicU64::new(0),
            quarantined: quarantine::list(&quarantine_dir)?,
        };
        if !report.wal.skipped.is_empty() {
            // A segment now holds the good records, and the flush removes the corrupt
            // originals from `wal/`: they cannot replay twice or be mistaken for new.
            if let Err(e) = engine.flush() {
                report.quarantine_flush_error = Some(e.to_string());
            }
        }
        if let Some(cutoff) = cutoff {
            engine.drop_expired(cutoff);
        }
        let stats = engine.stats();
        report.series = stats.series;
        report.points = stats.points;
        Ok((engine, report))
    }

    /// Stores `points` durably: returns once they are fsynced in the WAL and visible to
    /// queries. A `(series, timestamp)` already stored is overwritten (last write wins).
    pub fn write(&self, points: &[Point]) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        self.write_grouped(&group_by_series(points, |p| (p.timestamp, p.value)))
    }

    /// Like [`Engine::write`] for points already grouped by series.
    pub fn write_grouped(&self, groups: &[(&SeriesKey, Vec<(Timestamp, f64)>)]) -> Result<()> {
        let entries: Vec<WalEntryRef<'_>> = groups
            .iter()
            .map(|(series, points)| WalEntryRef::Points { series, points })
            .collect();
        {
            // Memory takes the batch only once the WAL holds it durably: a batch whose write
            // failed is never visible. The shared gate spans both, so a flush's snapshot
            // holds exactly what the WAL files before its cut hold.
            let _gate = read_gate(&self.flush_gate);
            let seq = self.wal.append(&entries)?;
            self.wal.wait_durable(seq)?;
            for (key, points) in groups {
                let (handle, created) = self.series.get_or_create(key);
                if created {
                    write_lock(&self.index).add(key);
                }
                series::lock(&handle)
                    .insert(points)
                    .map_err(|e| memory_corrupt(key, e))?;
            }
        }
        let count: usize = groups.iter().map(|(_, p)| p.len()).sum();
        self.points_written
            .fetch_add(count as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Deletes every point of `key`, durably. Returns whether the series existed.
    pub fn delete_series(&self, key: &SeriesKey) -> Result<bool> {
        let existed = {
            // Exclusive: no write to this series may sit between its WAL append and its
            // memory apply while the series is removed. Applied only once durable.
            let _gate = write_gate(&self.flush_gate);
            let seq = self.wal.append(&[WalEntryRef::DeleteSeries(key)])?;
            self.wal.wait_durable(seq)?;
            lock_poisoned(&self.tombstones).push(key.clone());
            write_lock(&self.index).remove(key);
            self.series.remove(key).is_some()
        };
        self.compaction_wanted.store(true, Ordering::Relaxed);
        Ok(existed)
    }

    /// Count, sum, min and max of the points of `key` in `range`.
    pub fn aggregate(&self, key: &SeriesKey, range: TimeRange) -> Result<Aggregate> {
        match self.series.get(key) {
            None => Ok(Aggregate::EMPTY),
            Some(handle) => series::lock(&handle)
                .aggregate(range)
                .map_err(|e| memory_corrupt(key, e)),
        }
    }

    /// Up to `limit` points of `key` in `range`, oldest first.
    pub fn samples(
        &self,
        key: &SeriesKey,
        range: TimeRange,
        limit: usize,
    ) -> Result<Vec<(Timestamp, f64)>> {
        match self.series.get(key) {
            None => Ok(Vec::new()),
            Some(handle) => series::lock(&handle)
                .samples(range, limit)
                .map_err(|e| memory_corrupt(key, e)),
        }
    }

    /// One aggregate per non-empty epoch-aligned bucket of `step`.
    pub fn downsample(
        &self,
        key: &SeriesKey,
        range: TimeRange,
        step: Duration,
    ) -> Result<Vec<Bucket>> {
        let step_millis =
            i64::try_from(step.as_millis()).map_err(|_| Error::invalid("step", "too large"))?;
        if step_millis == 0 {
            return Err(Error::invalid("step", "must be at least 1 ms"));
        }
        match self.series.get(key) {
            None => Ok(Vec::new()),
            Some(handle) => series::lock(&handle).downsample(range, step_millis),
        }
    }

    /// Every stored series, sorted by device then metric.
    pub fn series(&self) -> Vec<SeriesKey> {
        self.series
            .entries()
            .into_iter()
            .filter(|(_, handle)| !series::lock(handle).is_empty())
            .map(|(key, _)| key)
            .collect()
    }

    /// The stored series passing every matcher (their intersection), sorted by device then
    /// metric. A selector of only negative or empty-matching matchers selects from every
    /// series; callers that must refuse it check before.
    pub fn select(&self, matchers: &[Matcher]) -> Result<Vec<SeriesKey>> {
        let keys = read_lock(&self.index).select(matchers);
        // As `series()`: a series created by a write still applying holds no point yet.
        Ok(keys
            .into_iter()
            .filter(|key| {
                self.series
                    .get(key)
                    .is_some_and(|handle| !series::lock(&handle).is_empty())
            })
            .collect())
    }

    /// Every label name of the stored series, `__name__` (the metric) included, sorted.
    pub fn label_names(&self) -> Vec<String> {
        read_lock(&self.index).label_names()
    }

    /// Every value label `name` takes among the stored series, sorted.
    pub fn label_values(&self, name: &str) -> Vec<String> {
        read_lock(&self.index).label_values(name)
    }

    /// Order-independent digest of `key`'s points per epoch-aligned bucket of
    /// `bucket_millis`: replicas holding the same points have the same digests, so repair
    /// compares digests and transfers only buckets that differ.
    pub fn digest(&self, key: &SeriesKey, bucket_millis: i64) -> Result<Vec<DigestBucket>> {
        if bucket_millis <= 0 {
            return Err(Error::invalid("bucket", "must be positive"));
        }
        let mut buckets: Vec<DigestBucket> = Vec::new();
        for (ts, value) in self.samples(key, TimeRange::ALL, usize::MAX)? {
            let start = ts.bucket_start(bucket_millis);
            let hash = point_hash(ts, value);
            match buckets.last_mut() {
                Some(b) if b.start == start => {
                    b.count += 1;
                    b.hash = b.hash.wrapping_add(hash);
                }
                _ => buckets.push(DigestBucket {
                    start,
                    count: 1,
                    hash,
                }),
            }
        }
        Ok(buckets)
    }

    /// Flushes and compacts when due: call it from a maintenance thread every second or so.
    /// Also restarts the WAL once the disk takes writes again after a failure; while it
    /// cannot, nothing else is tried (it would fail the same way).
    pub fn maintain(&self) -> Result<()> {
        if self.wal.failure().is_some() && self.wal.recover().is_err() {
            return Ok(());
        }
        if let Some(cutoff) = retention_cutoff(self.config.retention) {
            self.drop_expired(cutoff);
        }
        let due = lock_poisoned(&self.maintenance).last_flush.elapsed()
            >= self.config.flush_interval
            || !lock_poisoned(&self.tombstones).is_empty()
            || self.wal.size_bytes() >= self.config.flush_wal_bytes;
        if due {
            self.flush()?;
        }
        let segments = lock_poisoned(&self.maintenance).segments.len();
        if segments > self.config.compact_segments
            || (segments > 0 && self.compaction_wanted.load(Ordering::Relaxed))
        {
            self.compact()?;
        }
        Ok(())
    }

    /// Writes everything not yet in a segment to a new segment, then drops the WAL it covers.
    pub fn flush(&self) -> Result<FlushReport> {
        let mut maintenance = lock_poisoned(&self.maintenance);
        maintenance.last_flush = Instant::now();
        let (segment_id, snapshots, tombstones) = {
            let _gate = write_gate(&self.flush_gate);
            let mut snapshots = Vec::new();
            for (key, handle) in self.series.entries() {
                let snapshot = series::lock(&handle).snapshot_unpersisted();
                if !snapshot.is_empty() {
                    snapshots.push((key, handle, snapshot));
                }
            }
            let mut pending = lock_poisoned(&self.tombstones);
            if snapshots.is_empty() && pending.is_empty() {
                return Ok(FlushReport::default());
            }
            let segment_id = self.wal.rotate()?;
            (segment_id, snapshots, std::mem::take(&mut *pending))
        };

        let contents = SegmentContents {
            series: snapshots
                .iter()
                .map(|(key, _, snapshot)| SegmentSeries {
                    key: key.clone(),
                    chunks: snapshot_chunks(snapshot),
                })
                .collect(),
            tombstones,
        };
        let path = self.segment_path(segment_id);
        let bytes = match segment::write_segment(&path, &contents) {
            Ok(bytes) => bytes,
            Err(e) => {
                // The WAL still holds the deletes; the next flush must carry them again.
                lock_poisoned(&self.tombstones).extend(contents.tombstones);
                return Err(e);
            }
        };
        maintenance.segments.push(segment_id);
        for (_, handle, snapshot) in &snapshots {
            series::lock(handle).mark_persisted(snapshot);
        }
        self.wal.remove_files_before(segment_id)?;
        Ok(FlushReport {
            segment: Some(path),
            series: contents.series.len(),
            chunks: contents.series.iter().map(|s| s.chunks.len()).sum(),
            bytes,
        })
    }

    /// Merges every segment into one: overlaps resolved (later wins), deleted series and
    /// expired chunks dropped, small chunks joined. Memory is not touched.
    pub fn compact(&self) -> Result<()> {
        let mut maintenance = lock_poisoned(&self.maintenance);
        self.compaction_wanted.store(false, Ordering::Relaxed);
        let segments = maintenance.segments.clone();
        let Some(&newest) = segments.last() else {
            return Ok(());
        };
        let segment_dir = self.dir.join(SEGMENT_DIR);
        let cutoff = retention_cutoff(self.config.retention);
        let merged = load_segments(&segment_dir, &segments, cutoff)?;
        let mut contents = SegmentContents {
            series: Vec::new(),
            tombstones: merged.pending_tombstones,
        };
        for (key, chunks) in merged.series {
            let chunks = join_small_chunks(&key, chunks)?;
            contents.series.push(SegmentSeries { key, chunks });
        }
        // Written over the newest input (same WAL coverage), then the older inputs go. A
        // crash in between leaves the older inputs beside a segment that supersedes them.
        segment::write_segment(&self.segment_path(newest), &contents)?;
        for &old in &segments[..segments.len() - 1] {
            let path = self.segment_path(old);
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
        sync_dir(&segment_dir)?;
        maintenance.segments = vec![newest];
        Ok(())
    }

    /// Flushes everything and closes the WAL: a clean shutdown.
    pub fn close(self) -> Result<()> {
        self.flush()?;
        Ok(())
    }

    pub fn stats(&self) -> EngineStats {
        let mut stats = EngineStats::default();
        for (_, handle) in self.series.entries() {
            let s = series::lock(&handle);
            if !s.is_empty() {
                stats.series += 1;
            }
            stats.points += s.point_count();
            stats.memory_bytes += s.memory_bytes() as u64;
        }
        let m = lock_poisoned(&self.maintenance);
        stats.segments = m.segments.len();
        stats.disk_bytes = m
            .segments
            .iter()
            .filter_map(|&id| fs::metadata(self.segment_path(id)).ok())
            .map(|meta| meta.len())
            .sum();
        stats.wal_bytes = self.wal.size_bytes();
        stats.points_written = self.points_written.load(Ordering::Relaxed);
        stats
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long the write-ahead log's group-commit fsyncs take.
    pub fn wal_sync_latency(&self) -> &crate::metrics::Histogram {
        self.wal.sync_latency()
    }

    /// Why writes fail, while they do: the WAL stopped after a failed write or sync and has
    /// not yet restarted (see [`Engine::maintain`]).
    pub fn write_failure(&self) -> Option<String> {
        self.wal.failure()
    }

    /// Every file in the store's quarantine, with the reason it is there.
    pub fn quarantined(&self) -> &[Quarantined] {
        &self.quarantined
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        self.dir.join(SEGMENT_DIR).join(segment_file_name(id))
    }

    fn drop_expired(&self, cutoff: Timestamp) {
        let mut dropped = 0;
        let mut emptied = Vec::new();
        for (key, handle) in self.series.entries() {
            let mut s = series::lock(&handle);
            let gone = s.drop_chunks_before(cutoff);
            if gone > 0 && s.is_empty() {
                emptied.push(key);
            }
            dropped += gone;
        }
        if dropped > 0 {
            self.compaction_wanted.store(true, Ordering::Relaxed);
        }
        if !emptied.is_empty() {
            // Exclusive: no write is between creating (or finding) one of these series and
            // applying to it, so a series still empty here can go from the map and the index
            // together. Its expired chunks on disk are dropped on load and by compaction.
            let _gate = write_gate(&self.flush_gate);
            let mut index = write_lock(&self.index);
            for key in emptied {
                let still_empty = self
                    .series
                    .get(&key)
                    .is_some_and(|handle| series::lock(&handle).is_empty());
                if still_empty {
                    self.series.remove(&key);
                    index.remove(&key);
                }
            }
        }
    }
}

/// The chunks a flush writes for one series: its unpersisted sealed chunks and its head.
fn snapshot_chunks(snapshot: &SeriesSnapshot) -> Vec<EncodedChunk> {
    let mut chunks = snapshot.chunks.clone();
    for part in snapshot.head.chunks(CHUNK_CAPACITY) {
        chunks.push(EncodedChunk::encode(part));
    }
    chunks
}

fn apply_entry(series: &SeriesMap, entry: WalEntry) -> Result<()> {
    match entry {
        WalEntry::Points {
            series: key,
            points,
        } => {
            let (handle, _) = series.get_or_create(&key);
            let mut s = series::lock(&handle);
            s.insert(&points).map_err(|e| memory_corrupt(&key, e))
        }
        WalEntry::DeleteSeries(key) => {
            series.remove(&key);
            Ok(())
        }
    }
}

/// Series merged from a run of segments, oldest first.
struct MergedSegments {
    series: BTreeMap<SeriesKey, Vec<SealedChunk>>,
    /// Tombstones that must survive a rewrite of these segments: those that delete data in
    /// an older segment still on disk (everything but the oldest segment's own).
    pending_tombstones: Vec<SeriesKey>,
}

/// Reads `ids` (oldest first) and merges them: tombstones clear earlier data, overlapping
/// chunks merge with the later segment winning, chunks ending before `cutoff` go.
fn load_segments(dir: &Path, ids: &[u64], cutoff: Option<Timestamp>) -> Result<MergedSegments> {
    let contents = ids
        .iter()
        .map(|&id| segment::read_segment(&dir.join(segment_file_name(id))))
        .collect::<Result<Vec<_>>>()?;
    merge_segments(dir, contents, cutoff)
}

/// Merges segments already read (oldest first), as [`load_segments`] does.
fn merge_segments(
    dir: &Path,
    segments: Vec<SegmentContents>,
    cutoff: Option<Timestamp>,
) -> Result<MergedSegments> {
    // Per series: chunks tagged with the order of the segment they came from.
    let mut by_series: BTreeMap<SeriesKey, Vec<(usize, EncodedChunk)>> = BTreeMap::new();
    let mut tombstones = Vec::new();
    for (order, contents) in segments.into_iter().enumerate() {
        for key in contents.tombstones {
            by_series.remove(&key);
            if order > 0 {
                tombstones.push(key);
            }
        }
        for s in contents.series {
            let entry = by_series.entry(s.key).or_default();
            entry.extend(
                s.chunks
                    .into_iter()
                    .filter(|c| cutoff.is_none_or(|cut| c.meta.end >= cut))
                    .map(|c| (order, c)),
            );
        }
    }
    let mut series = BTreeMap::new();
    for (key, chunks) in by_series {
        let resolved = resolve_overlaps(chunks).map_err(|e| {
            Error::corrupt(dir, 0, format!("series {key}: chunk failed to decode: {e}"))
        })?;
        if !resolved.is_empty() {
            series.insert(key, resolved);
        }
    }
    tombstones.sort();
    tombstones.dedup();
    Ok(MergedSegments {
        series,
        pending_tombstones: tombstones,
    })
}

/// Turns chunks from several segments into a sorted, non-overlapping list. Chunks that
/// overlap nothing pass through untouched (still persisted); overlapping groups are decoded
/// and merged with the later segment's values winning, and come back unpersisted.
fn resolve_overlaps(
    mut chunks: Vec<(usize, EncodedChunk)>,
) -> std::result::Result<Vec<SealedChunk>, DecodeError> {
    chunks.sort_by_key(|(order, c)| (c.meta.start, *order));
    let mut out = Vec::new();
    let mut i = 0;
    while i < chunks.len() {
        let mut group_end = chunks[i].1.meta.end;
        let mut j = i + 1;
        while j < chunks.len() && chunks[j].1.meta.start <= group_end {
            group_end = group_end.max(chunks[j].1.meta.end);
            j += 1;
        }
        if j == i + 1 {
            out.push(SealedChunk {
                chunk: chunks[i].1.clone(),
                persisted: true,
            });
        } else {
            let mut group: Vec<&(usize, EncodedChunk)> = chunks[i..j].iter().collect();
            group.sort_by_key(|(order, _)| *order);
            let mut points = Vec::new();
            for (_, chunk) in group {
                points = merge_points(points, &chunk.decode()?);
            }
            for part in points.chunks(CHUNK_CAPACITY) {
                out.push(SealedChunk {
                    chunk: EncodedChunk::encode(part),
                    persisted: false,
                });
            }
        }
        i = j;
    }
    Ok(out)
}

/// Joins runs of chunks smaller than half the capacity into full ones (for compaction).
fn join_small_chunks(key: &SeriesKey, chunks: Vec<SealedChunk>) -> Result<Vec<EncodedChunk>> {
    let mut out = Vec::new();
    let mut carry: Vec<(Timestamp, f64)> = Vec::new();
    let flush_carry = |carry: &mut Vec<(Timestamp, f64)>, out: &mut Vec<EncodedChunk>| {
        for part in carry.chunks(CHUNK_CAPACITY) {
            out.push(EncodedChunk::encode(part));
        }
        carry.clear();
    };
    for sealed in chunks {
        let chunk = sealed.chunk;
        if chunk.meta.count as usize >= CHUNK_CAPACITY / 2 && carry.is_empty() {
            out.push(chunk);
            continue;
        }
        carry.extend(chunk.decode().map_err(|e| memory_corrupt(key, e))?);
        if carry.len() >= CHUNK_CAPACITY {
            flush_carry(&mut carry, &mut out);
        }
    }
    flush_carry(&mut carry, &mut out);
    Ok(out)
}

fn segment_file_name(id: u64) -> String {
    format!("{id:016}{SEGMENT_SUFFIX}")
}

fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) {
            match stem.parse::<u64>() {
                Ok(id) => ids.push(id),
                Err(_) => {
                    return Err(Error::corrupt(
                        entry.path(),
                        0,
                        "segment file name is not a number",
                    ))
                }
            }
        } else if name.ends_with(".tmp") {
            // A segment write that crashed before its rename: never part of the store.
            let path = entry.path();
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Removes WAL files whose contents segment `newest_segment` already holds.
fn remove_covered_wal_files(wal_dir: &Path, newest_segment: u64) -> Result<usize> {
    let mut removed = 0;
    for (id, path) in wal::list_files(wal_dir)? {
        if id < newest_segment {
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(wal_dir)?;
    }
    Ok(removed)
}

fn retention_cutoff(retention: Option<Duration>) -> Option<Timestamp> {
    let retention = retention?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    let cutoff = now.checked_sub(retention)?;
    Some(Timestamp(i64::try_from(cutoff.as_millis()).ok()?))
}

fn memory_corrupt(key: &SeriesKey, e: DecodeError) -> Error {
    Error::corrupt(
        format!("<memory:{key}>"),
        0,
        format!("chunk failed to decode: {e}"),
    )
}

/// Locks a mutex whose data every holder leaves consistent, taking over a poisoned one.
fn lock_poisoned<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read_gate(gate: &RwLock<()>) -> std::sync::RwLockReadGuard<'_, ()> {
    gate.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write_gate(gate: &RwLock<()>) -> std::sync::RwLockWriteGuard<'_, ()> {
    gate.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::series::MAX_BUCKETS;
    use crate::storage::AggregateOp;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    use crate::test_dir::TempDir;

    #[test]
    fn select_follows_writes_deletes_retention_and_reopen() {
        let dir = TempDir::new("select");
        let labelled = |device: &str, room: &str| {
            SeriesKey::with_labels("t", [("device_id", device), ("room", room)]).unwrap()
        };
        let (a, b, c) = (
            labelled("a", "lab"),
            labelled("b", "lab"),
            labelled("c", "hall"),
        );
        let bare = SeriesKey::with_labels("up", Vec::<(String, String)>::new()).unwrap();
        let lab = [Matcher::equal("room", "lab")];
        let no_room = [Matcher::equal("room", "")];
        {
            let engine = open(dir.path());
            for k in [&a, &b, &c, &bare] {
                engine.write(&series_points(k, 0, 3)).unwrap();
            }
            assert_eq!(engine.select(&lab).unwrap(), [a.clone(), b.clone()]);
            assert_eq!(engine.select(&no_room).unwrap(), vec![bare.clone()]);
            assert_eq!(engine.label_names(), ["__name__", "device_id", "room"]);
            assert_eq!(engine.label_values("room"), ["hall", "lab"]);
            assert!(engine.delete_series(&a).unwrap());
            assert_eq!(engine.select(&lab).unwrap(), vec![b.clone()]);
            engine.flush().unwrap();
            engine.write(&series_points(&c, 10, 2)).unwrap();
        }
        let engine = open(dir.path());
        assert_eq!(engine.select(&lab).unwrap(), vec![b.clone()]);
        let not_lab = [Matcher::new("room", crate::storage::MatchOp::NotEqual, "lab").unwrap()];
        // No device sorts first.
        assert_eq!(engine.select(&not_lab).unwrap(), [bare.clone(), c.clone()]);
        assert_eq!(engine.label_values("device_id"), ["b", "c"]);
    }

    #[test]
    fn retention_that_empties_a_series_unindexes_it() {
        let dir = TempDir::new("select-retention");
        let config = EngineConfig {
            retention: Some(Duration::from_secs(3600)),
            ..EngineConfig::default()
        };
        let (engine, _) = Engine::open(dir.path(), config).unwrap();
        let old = SeriesKey::with_labels("t", [("room", "attic")]).unwrap();
        let kept = SeriesKey::with_labels("t", [("room", "hall")]).unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        // Exactly one chunk of two-hour-old points: it seals, leaving the head empty.
        let points: Vec<Point> = (0..CHUNK_CAPACITY as i64)
            .map(|i| point(&old, now - 7_200_000 + i, 1.0))
            .collect();
        engine.write(&points).unwrap();
        engine.write(&[point(&kept, now, 1.0)]).unwrap();
        let attic = [Matcher::equal("room", "attic")];
        assert_eq!(engine.select(&attic).unwrap(), vec![old.clone()]);
        engine.maintain().unwrap();
        assert!(engine.select(&attic).unwrap().is_empty());
        assert_eq!(engine.label_values("room"), ["hall"]);
        // Written again, it is indexed again.
        engine.write(&[point(&old, now, 2.0)]).unwrap();
        assert_eq!(engine.select(&attic).unwrap(), [old]);
    }

    fn key(device: &str, metric: &str) -> SeriesKey {
        SeriesKey::new(device, metric).unwrap()
    }

    fn point(series: &SeriesKey, ts: i64, value: f64) -> Point {
        Point {
            series: series.clone(),
            timestamp: Timestamp(ts),
            value,
        }
    }

    fn open(dir: &Path) -> Engine {
        Engine::open(dir, EngineConfig::default()).unwrap().0
    }

    /// What the engine should hold: per series, timestamp → last written value.
    type Model = BTreeMap<SeriesKey, BTreeMap<i64, f64>>;

    fn model_aggregate(model: &Model, key: &SeriesKey, range: TimeRange) -> Aggregate {
        let mut agg = Aggregate::EMPTY;
        if let Some(points) = model.get(key) {
            for (&ts, &v) in points {
                if range.contains(Timestamp(ts)) {
                    agg.add(v);
                }
            }
        }
        agg
    }

    fn assert_matches_model(engine: &Engine, model: &Model, ranges: &[TimeRange]) {
        let stored: Vec<SeriesKey> = engine.series();
        let expected: Vec<SeriesKey> = model
            .iter()
            .filter(|(_, p)| !p.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(stored, expected, "series listing");
        for (key, points) in model {
            let all = engine.samples(key, TimeRange::ALL, usize::MAX).unwrap();
            let want: Vec<(Timestamp, f64)> =
                points.iter().map(|(&t, &v)| (Timestamp(t), v)).collect();
            assert_eq!(all, want, "samples of {key}");
            for &range in ranges {
                let got = engine.aggregate(key, range).unwrap();
                let want = model_aggregate(model, key, range);
                assert_eq!(got.count, want.count, "count of {key} in {range:?}");
                assert_eq!(got.min, want.min, "min of {key} in {range:?}");
                assert_eq!(got.max, want.max, "max of {key} in {range:?}");
                let tolerance = 1e-9 * want.sum.abs().max(1.0);
                assert!(
                    (got.sum - want.sum).abs() <= tolerance,
                    "sum of {key} in {range:?}: {} vs {}",
                    got.sum,
                    want.sum
                );
            }
        }
    }

    fn count(engine: &Engine, s: &SeriesKey) -> u64 {
        engine.aggregate(s, TimeRange::ALL).unwrap().count
    }

    fn flip_byte(path: &Path, offset: u64) {
        let mut data = fs::read(path).unwrap();
        data[offset as usize] ^= 0x20;
        fs::write(path, data).unwrap();
    }

    fn series_points(s: &SeriesKey, from: i64, n: i64) -> Vec<Point> {
        (from..from + n)
            .map(|i| point(s, i * 1000, i as f64))
            .collect()
    }

    #[test]
    fn failed_write_is_never_visible_and_writes_resume_once_the_disk_takes_them() {
        let dir = TempDir::new("disk-full");
        let s = key("sensor_1", "temperature");
        let engine = open(dir.path());
        engine.write(&series_points(&s, 0, 100)).unwrap();
        engine.wal.inject_fault(Some(wal::Fault {
            errno: 28,
            partial: true,
        }));
        match engine.write(&series_points(&s, 100, 100)) {
            Err(Error::Io { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::StorageFull)
            }
            other => panic!("expected a full disk, got {other:?}"),
        }
        assert_eq!(count(&engine, &s), 100, "the failed batch is not visible");
        assert!(engine.write_failure().is_some());
        assert!(engine.write(&series_points(&s, 300, 1)).is_err());
        engine.maintain().unwrap();
        assert!(engine.write_failure().is_some(), "still full");

        engine.wal.inject_fault(None);
        engine.maintain().unwrap();
        assert_eq!(engine.write_failure(), None, "recovered without a write");
        engine.write(&series_points(&s, 200, 100)).unwrap();
        assert_eq!(count(&engine, &s), 200);
        drop(engine);

        let engine = open(dir.path());
        assert_eq!(
            count(&engine, &s),
            200,
            "after reopen: exactly the acknowledged"
        );
        let samples = engine.samples(&s, TimeRange::ALL, usize::MAX).unwrap();
        assert!(samples
            .iter()
            .all(|(ts, _)| !(100_000..200_000).contains(&ts.0)));
    }

    /// Writes series `a` into segment 1 and `b` into segment 2; returns segment 2's path.
    fn two_segments(dir: &Path, a: &SeriesKey, b: &SeriesKey) -> PathBuf {
        let engine = open(dir);
        engine.write(&series_points(a, 0, 3000)).unwrap();
        engine.close().unwrap();
        let engine = open(dir);
        engine.write(&series_points(b, 0, 3000)).unwrap();
        engine.close().unwrap();
        let mut ids = list_segments(&dir.join(SEGMENT_DIR)).unwrap();
        assert_eq!(ids.len(), 2);
        dir.join(SEGMENT_DIR)
            .join(segment_file_name(ids.pop().unwrap()))
    }

    #[test]
    fn segment_failing_a_check_is_quarantined_and_the_rest_opens() {
        let (a, b) = (key("dev_a", "t"), key("dev_b", "t"));
        for kind in ["chunk", "index", "trailer"] {
            let dir = TempDir::new("quarantine-segment");
            let seg = two_segments(dir.path(), &a, &b);
            let len = fs::metadata(&seg).unwrap().len();
            let data = fs::read(&seg).unwrap();
            let index_offset = u64::from_le_bytes(
                data[len as usize - 24..len as usize - 16]
                    .try_into()
                    .unwrap(),
            );
            let offset = match kind {
                "chunk" => 6 + 3,
                "index" => index_offset + 5,
                _ => len - 6,
            };
            flip_byte(&seg, offset);

            let (engine, report) = Engine::open(dir.path(), EngineConfig::default()).unwrap();
            assert_eq!(report.quarantined.len(), 1, "{kind}");
            assert_eq!(engine.quarantined(), &report.quarantined[..]);
            assert!(!seg.exists(), "{kind}: moved out of segments/");
            assert!(report.quarantined[0]
                .file
                .starts_with(dir.path().join(QUARANTINE_DIR)));
            assert_eq!(count(&engine, &a), 3000, "{kind}: the rest is exact");
            assert_eq!(count(&engine, &b), 0, "{kind}");
            // The store goes on: new data lands in a new segment, never the old id.
            engine.write(&series_points(&b, 0, 10)).unwrap();
            engine.close().unwrap();
            let (engine, report) = Engine::open(dir.path(), EngineConfig::default()).unwrap();
            assert!(report.quarantined.is_empty());
            assert_eq!(
                engine.quarantined().len(),
                1,
                "still listed after a restart"
            );
            assert_eq!((count(&engine, &a), count(&engine, &b)), (3000, 10));
        }
    }

    #[test]
    fn corrupt_wal_record_mid_file_is_quarantined_and_the_good_records_replay() {
        let dir = TempDir::new("quarantine-wal");
        let s = key("sensor_1", "temperature");
        let engine = open(dir.path());
        for batch in 0..3 {
            engine.write(&series_points(&s, batch * 100, 100)).unwrap();
        }
        drop(engine); // a crash: everything is in one WAL file
        let files = wal::list_files(&dir.join(WAL_DIR)).unwrap();
        let (_, wal_file) = files
            .iter()
            .find(|(_, p)| fs::metadata(p).unwrap().len() > 100)
            .unwrap();
        let data = fs::read(wal_file).unwrap();
        let first_len = u32::from_le_bytes(data[12..16].try_into().unwrap()) as u64;
        let second = (wal::FILE_HEADER_LEN + wal::RECORD_HEADER_LEN) as u64 + first_len;
        flip_byte(wal_file, second + wal::RECORD_HEADER_LEN as u64 + 40);

        let strict = EngineConfig {
            strict_wal: true,
            ..EngineConfig::default()
        };
        assert!(matches!(
            Engine::open(dir.path(), strict),
            Err(Error::Corrupt { .. })
        ));
        let (engine, report) = Engine::open(dir.path(), EngineConfig::default()).unwrap();
        assert_eq!(count(&engine, &s), 200, "batches 1 and 3");
        assert_eq!(report.quarantined.len(), 1);
        assert_eq!(report.quarantine_flush_error, None);
        assert!(!wal_file.exists(), "a segment holds the good records now");
        drop(engine);
        let (engine, report) = Engine::open(dir.path(), EngineConfig::default()).unwrap();
        assert!(report.wal.skipped.is_empty(), "not replayed twice");
        assert_eq!(count(&engine, &s), 200);
        assert_eq!(engine.quarantined().len(), 1);
    }

    #[test]
    fn written_points_are_queryable_and_survive_reopen() {
        let dir = TempDir::new("reopen");
        let s = key("sensor_1", "temperature");
        let engine = open(dir.path());
        let points: Vec<Point> = (0..5000)
            .map(|i| {
                point(
                    &s,
                    1_710_000_000_000 + i * 1000,
                    20.0 + (i % 7) as f64 / 4.0,
                )
            })
            .collect();
        engine.write(&points).unwrap();
        let agg = engine.aggregate(&s, TimeRange::ALL).unwrap();
        assert_eq!(agg.count, 5000);
        drop(engine); // no clean shutdown: the WAL alone must bring it back
        let (engine, report) = Engine::open(dir.path(), EngineConfig::default()).unwrap();
        assert_eq!(report.points, 5000);
        assert_eq!(engine.aggregate(&s, TimeRange::ALL).unwrap(), agg);
        engine.close().unwrap();
        let engine = open(dir.path());
        assert_eq!(engine.aggregate(&s, TimeRange::ALL).unwrap(), agg);
        assert_eq!(engine.stats().segments, 1);
    }

    #[test]
    fn duplicate_writes_keep_one_point_with_the_last_value() {
        let dir = TempDir::new("dup");
        let s = key("d", "m");
        let engine = open(dir.path());
        let batch: Vec<Point> = (0..3000).map(|i| point(&s, i, 1.0)).collect();
        engine.write(&batch).unwrap();
        engine.flush().unwrap();
        engine.write(&batch).unwrap();
        engine
            .write(&[point(&s, 10, 5.0), point(&s, 2999, 7.0)])
            .unwrap();
        let agg = engine.aggregate(&s, TimeRange::ALL).unwrap();
        assert_eq!(agg.count, 3000);
        assert_eq!(agg.sum, 2998.0 + 5.0 + 7.0);
        engine.close().unwrap();
        let engine = open(dir.path());
        assert_eq!(engine.aggregate(&s, TimeRange::ALL).unwrap(), agg);
    }

    #[test]
    fn late_point_lands_in_old_chunk() {
        let dir = TempDir::new("late");
        let s = key("d", "m");
        let engine = open(dir.path());
        let batch: Vec<Point> = (0..5000).map(|i| point(&s, i * 10, 1.0)).collect();
        engine.write(&batch).unwrap();
        engine.flush().unwrap();
        engine
            .write(&[point(&s, 15, 100.0), point(&s, -5, 3.0)])
            .unwrap();
        let samples = engine
            .samples(&s, TimeRange::new(None, Some(Timestamp(20))), 10)
            .unwrap();
        assert_eq!(
            samples,
            vec![
                (Timestamp(-5), 3.0),
                (Timestamp(0), 1.0),
                (Timestamp(10), 1.0),
                (Timestamp(15), 100.0),
                (Timestamp(20), 1.0)
            ]
        );
        engine.close().unwrap();
        let engine = open(dir.path());
        assert_eq!(engine.aggregate(&s, TimeRange::ALL).unwrap().count, 5002);
        assert_eq!(
            engine
                .aggregate(&s, TimeRange::new(Some(Timestamp(15)), Some(Timestamp(15))))
                .unwrap()
                .sum,
            100.0
        );
    }

    #[test]
    fn deleted_series_stays_deleted_after_flush_compaction_and_reopen() {
        let dir = TempDir::new("delete");
        let gone = key("d", "gone");
        let kept = key("d", "kept");
        let engine = open(dir.path());
        for round in 0..3 {
            let batch: Vec<Point> = (0..2000)
                .flat_map(|i| {
                    let ts = round * 2000 + i;
                    [point(&gone, ts, 1.0), point(&kept, ts, 2.0)]
                })
                .collect();
            engine.write(&batch).unwrap();
            engine.flush().unwrap();
        }
        assert!(engine.delete_series(&gone).unwrap());
        assert_eq!(engine.aggregate(&gone, TimeRange::ALL).unwrap().count, 0);
        // Reopen from the WAL alone: the delete record must win over the segments.
        drop(engine);
        let engine = open(dir.path());
        assert_eq!(engine.series(), vec![kept.clone()]);
        engine.maintain().unwrap();
        assert_eq!(engine.stats().segments, 1);
        let only_segment = || engine.segment_path(lock_poisoned(&engine.maintenance).segments[0]);
        let compacted = segment::read_segment(&only_segment()).unwrap();
        assert!(compacted.series.iter().all(|s| s.key != gone));
        // Its tombstone stays until no older segment can hold the data, then goes too.
        engine.compact().unwrap();
        let bytes = fs::read(only_segment()).unwrap();
        let needle = b"d|gone";
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "segment still names the deleted series after the second compaction"
        );
        // Written again after the delete: only the new point exists.
        engine.write(&[point(&gone, 5, 9.0)]).unwrap();
        engine.close().unwrap();
        let engine = open(dir.path());
        assert_eq!(
            engine.samples(&gone, TimeRange::ALL, 10).unwrap(),
            vec![(Timestamp(5), 9.0)]
        );
        assert_eq!(engine.aggregate(&kept, TimeRange::ALL).unwrap().count, 6000);
    }

    #[test]
    fn digests_match_exactly_when_replicas_hold_the_same_points() {
        let a_dir = TempDir::new("digest-a");
        let b_dir = TempDir::new("digest-b");
        let s = key("d", "m");
        let (a, b) = (open(a_dir.path()), open(b_dir.path()));
        let points: Vec<Point> = (0..5000).map(|i| point(&s, i * 997, i as f64)).collect();
        a.write(&points).unwrap();
        let mut reversed = points.clone();
        reversed.reverse();
        b.write(&reversed).unwrap();
        assert_eq!(
            a.digest(&s, 3_600_000).unwrap(),
            b.digest(&s, 3_600_000).unwrap()
        );
        b.write(&[point(&s, 1994, 7.5)]).unwrap();
        let (da, db) = (
            a.digest(&s, 3_600_000).unwrap(),
            b.digest(&s, 3_600_000).unwrap(),
        );
        let differing: Vec<_> = da.iter().zip(&db).filter(|(x, y)| x != y).collect();
        assert_eq!(differing.len(), 1, "one changed value changes one bucket");
        assert_eq!(differing[0].0.start, Timestamp(0));
    }

    #[test]
    fn retention_drops_whole_old_chunks() {
        let dir = TempDir::new("retention");
        let s = key("d", "m");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let config = EngineConfig {
            retention: Some(Duration::from_secs(3600)),
            ..EngineConfig::default()
        };
        let (engine, _) = Engine::open(dir.path(), config.clone()).unwrap();
        let old: Vec<Point> = (0..CHUNK_CAPACITY as i64)
            .map(|i| point(&s, now - 7_200_000 + i, 1.0))
            .collect();
        let fresh: Vec<Point> = (0..10).map(|i| point(&s, now - 1000 + i, 2.0)).collect();
        engine.write(&old).unwrap();
        engine.write(&fresh).unwrap();
        engine.maintain().unwrap();
        assert_eq!(engine.aggregate(&s, TimeRange::ALL).unwrap().count, 10);
        engine.close().unwrap();
        let (engine, _) = Engine::open(dir.path(), config).unwrap();
        assert_eq!(engine.aggregate(&s, TimeRange::ALL).unwrap().count, 10);
    }

    #[test]
    fn downsample_buckets_match_brute_force() {
        let dir = TempDir::new("downsample");
        let s = key("d", "m");
        let engine = open(dir.path());
        let points: Vec<Point> = (0..10_000)
            .map(|i| point(&s, i * 250, (i as f64 * 0.37).sin()))
            .collect();
        engine.write(&points).unwrap();
        let range = TimeRange::new(Some(Timestamp(12_345)), Some(Timestamp(2_000_000)));
        let buckets = engine
            .downsample(&s, range, Duration::from_secs(60))
            .unwrap();
        let mut want: BTreeMap<i64, Aggregate> = BTreeMap::new();
        for p in points.iter().filter(|p| range.contains(p.timestamp)) {
            want.entry(p.timestamp.0.div_euclid(60_000) * 60_000)
                .or_default()
                .add(p.value);
        }
        assert_eq!(buckets.len(), want.len());
        for (bucket, (start, agg)) in buckets.iter().zip(&want) {
            assert_eq!(bucket.start.0, *start);
            assert_eq!(bucket.aggregate.count, agg.count);
            assert!((bucket.aggregate.sum - agg.sum).abs() < 1e-9);
            assert_eq!(
                bucket.aggregate.result(AggregateOp::Max),
                agg.result(AggregateOp::Max)
            );
        }
        let dense = key("d", "dense");
        let many: Vec<Point> = (0..=MAX_BUCKETS as i64)
            .map(|i| point(&dense, i, 1.0))
            .collect();
        engine.write(&many).unwrap();
        assert!(engine
            .downsample(&dense, TimeRange::ALL, Duration::from_millis(1))
            .is_err());
        assert_eq!(
            engine
                .downsample(&dense, TimeRange::ALL, Duration::from_millis(2))
                .unwrap()
                .len(),
            MAX_BUCKETS / 2 + 1
        );
    }

    #[derive(Clone, Debug)]
    enum Op {
        Write(Vec<(u8, i64, f64)>),
        Delete(u8),
        Flush,
        Compact,
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        let value = prop_oneof![
            (-1000i32..1000).prop_map(|v| f64::from(v) / 100.0),
            (-1e6f64..1e6),
        ];
        prop_oneof![
            6 => prop::collection::vec((0u8..3, -50i64..3000, value), 1..400).prop_map(Op::Write),
            1 => (0u8..3).prop_map(Op::Delete),
            1 => Just(Op::Flush),
            1 => Just(Op::Compact),
            1 => Just(Op::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Random writes (duplicates, out of order), deletes, flushes, compactions and
        /// reopens, checked against a brute-force model after every step.
        #[test]
        fn engine_matches_brute_force_model(ops in prop::collection::vec(op(), 1..25)) {
            let dir = TempDir::new("model");
            let keys = [key("a", "x"), key("a", "y"), key("b", "x")];
            let ranges = [
                TimeRange::ALL,
                TimeRange::new(Some(Timestamp(100)), Some(Timestamp(1500))),
                TimeRange::new(None, Some(Timestamp(0))),
                TimeRange::new(Some(Timestamp(2999)), None),
            ];
            let mut model = Model::new();
            let mut engine = open(dir.path());
            for op in ops {
                match op {
                    Op::Write(batch) => {
                        let points: Vec<Point> = batch
                            .iter()
                            .map(|&(k, ts, v)| point(&keys[k as usize], ts, v))
                            .collect();
                        engine.write(&points).unwrap();
                        for (k, ts, v) in batch {
                            model.entry(keys[k as usize].clone()).or_default().insert(ts, v);
                        }
                    }
                    Op::Delete(k) => {
                        engine.delete_series(&keys[k as usize]).unwrap();
                        model.remove(&keys[k as usize]);
                    }
                    Op::Flush => {
                        engine.flush().unwrap();
                    }
                    Op::Compact => {
                        engine.flush().unwrap();
                        engine.compact().unwrap();
                    }
                    Op::Reopen => {
                        drop(engine);
                        engine = open(dir.path());
                    }
                }
                assert_matches_model(&engine, &model, &ranges);
            }
        }
    }
}
