//! One series in memory, and the sharded map that holds them all.
//!
//! A [`Series`] is an ordered list of sealed (compressed, immutable) chunks followed by a raw
//! head that takes appends. Invariants: sealed chunks are sorted by time and do not overlap;
//! every head timestamp is later than the last sealed chunk's end; no timestamp appears twice.
//! A point later than the last sealed chunk goes to the head (sorted insert, usually a push);
//! a point inside or before the sealed range is a *late* point: the chunk it falls in is
//! decoded, merged and re-encoded (last value wins), and replaces the old chunk.
//!
//! The [`SeriesMap`] spreads series over shards by key hash. Each shard's lock is held only to
//! find or insert a series; the series itself sits behind its own mutex, so ingestion and
//! queries on different series never wait for each other.

use crate::error::{Error, Result};
use crate::storage::chunk::{EncodedChunk, CHUNK_CAPACITY};
use crate::storage::codec::DecodeError;
use crate::storage::series_key::KeyHashState;
use crate::storage::{Aggregate, Bucket, SeriesKey, TimeRange, Timestamp};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// Most buckets one downsample query may produce; past it the step is too small.
pub const MAX_BUCKETS: usize = 100_000;

/// A chunk whose values sit only in this process's memory until a flush writes it to a
/// segment. `persisted` says a segment already holds exactly these bytes.
#[derive(Clone, Debug)]
pub struct SealedChunk {
    pub chunk: EncodedChunk,
    pub persisted: bool,
}

/// Every point of one series: sealed chunks, then the head.
#[derive(Debug, Default)]
pub struct Series {
    sealed: Vec<SealedChunk>,
    head: Vec<(Timestamp, f64)>,
    /// Bumped on every change to the head; the head is dirty while it differs from
    /// `head_flushed_version`.
    head_version: u64,
    head_flushed_version: u64,
}

/// What a flush takes from one series: the sealed chunks no segment holds yet and, if it
/// changed since the last flush, a copy of the head.
#[derive(Debug, Default)]
pub struct SeriesSnapshot {
    pub chunks: Vec<EncodedChunk>,
    pub head: Vec<(Timestamp, f64)>,
    pub head_version: u64,
}

impl SeriesSnapshot {
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.head.is_empty()
    }
}

impl Series {
    /// Rebuilds a series from chunks loaded from segments (sorted, non-overlapping). A last
    /// chunk that is not full becomes the head again so later appends keep filling it.
    pub fn from_chunks(chunks: Vec<SealedChunk>) -> std::result::Result<Series, DecodeError> {
        let mut series = Series {
            sealed: chunks,
            ..Series::default()
        };
        if let Some(last) = series.sealed.last() {
            if (last.chunk.meta.count as usize) < CHUNK_CAPACITY {
                let last = series.sealed.pop().expect("checked non-empty");
                series.head = last.chunk.decode()?;
                if !last.persisted {
                    series.head_version = 1;
                }
            }
        }
        Ok(series)
    }

    /// Inserts points (any order; a later duplicate timestamp overwrites an earlier one).
    pub fn insert(&mut self, points: &[(Timestamp, f64)]) -> std::result::Result<(), DecodeError> {
        let mut late = Vec::new();
        for &(ts, value) in points {
            let sealed_end = self.sealed.last().map(|c| c.chunk.meta.end);
            if sealed_end.is_none_or(|end| ts > end) {
                self.insert_into_head(ts, value);
            } else {
                late.push((ts, value));
            }
        }
        if !late.is_empty() {
            self.insert_late(late)?;
        }
        if self.head.len() >= CHUNK_CAPACITY {
            self.seal_head();
        }
        Ok(())
    }

    fn insert_into_head(&mut self, ts: Timestamp, value: f64) {
        self.head_version += 1;
        match self.head.last() {
            None => self.head.push((ts, value)),
            Some(&(last, _)) if ts > last => self.head.push((ts, value)),
            _ => match self.head.binary_search_by_key(&ts, |p| p.0) {
                Ok(i) => self.head[i].1 = value,
                Err(i) => self.head.insert(i, (ts, value)),
            },
        }
    }

    /// Merges points that fall at or before the last sealed chunk's end into the chunks
    /// they belong to: the last chunk starting at or before the point, or the first chunk.
    fn insert_late(
        &mut self,
        mut late: Vec<(Timestamp, f64)>,
    ) -> std::result::Result<(), DecodeError> {
        // Stable sort keeps arrival order among equal timestamps, so the last one wins below.
        late.sort_by_key(|p| p.0);
        let mut start = 0;
        while start < late.len() {
            let index = self.chunk_index_for(late[start].0);
            let next_start = self.sealed.get(index + 1).map(|c| c.chunk.meta.start);
            let end = start
                + late[start..]
                    .iter()
                    .take_while(|p| next_start.is_none_or(|n| p.0 < n))
                    .count();
            let replacement = rewrite_chunk(&self.sealed[index].chunk, &late[start..end])?;
            self.sealed.splice(index..=index, replacement);
            start = end;
        }
        Ok(())
    }

    fn chunk_index_for(&self, ts: Timestamp) -> usize {
        self.sealed
            .partition_point(|c| c.chunk.meta.start <= ts)
            .saturating_sub(1)
    }

    fn seal_head(&mut self) {
        for part in self.head.chunks(CHUNK_CAPACITY) {
            self.sealed.push(SealedChunk {
                chunk: EncodedChunk::encode(part),
                persisted: false,
            });
        }
        // Drop the allocation too: a big batch may have grown it far past one chunk.
        self.head = Vec::new();
        self.head_version += 1;
        // An empty head has nothing to flush.
        self.head_flushed_version = self.head_version;
    }

    pub fn point_count(&self) -> u64 {
        self.sealed
            .iter()
            .map(|c| u64::from(c.chunk.meta.count))
            .sum::<u64>()
            + self.head.len() as u64
    }

    /// Bytes this series holds in memory: compressed columns plus the raw head.
    pub fn memory_bytes(&self) -> usize {
        self.sealed
            .iter()
            .map(|c| c.chunk.encoded_len() + std::mem::size_of::<SealedChunk>())
            .sum::<usize>()
            + self.head.capacity() * std::mem::size_of::<(Timestamp, f64)>()
    }

    pub fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.head.is_empty()
    }

    /// Sealed chunks overlapping `range` (binary search on both ends).
    fn sealed_in(&self, range: TimeRange) -> &[SealedChunk] {
        let first = match range.start {
            Some(s) => self.sealed.partition_point(|c| c.chunk.meta.end < s),
            None => 0,
        };
        let last = match range.end {
            Some(e) => self.sealed.partition_point(|c| c.chunk.meta.start <= e),
            None => self.sealed.len(),
        };
        &self.sealed[first..last.max(first)]
    }

    fn head_in(&self, range: TimeRange) -> &[(Timestamp, f64)] {
        let first = match range.start {
            Some(s) => self.head.partition_point(|p| p.0 < s),
            None => 0,
        };
        let last = match range.end {
            Some(e) => self.head.partition_point(|p| p.0 <= e),
            None => self.head.len(),
        };
        &self.head[first..last.max(first)]
    }

    /// Summary of the points in `range`. Chunks wholly inside it answer from metadata; only
    /// the (at most two) boundary chunks are decoded.
    pub fn aggregate(&self, range: TimeRange) -> std::result::Result<Aggregate, DecodeError> {
        let mut total = Aggregate::EMPTY;
        for sealed in self.sealed_in(range) {
            let meta = &sealed.chunk.meta;
            if range.covers(meta.start, meta.end) {
                total.merge(&meta.aggregate());
            } else {
                for (ts, value) in sealed.chunk.decode()? {
                    if range.contains(ts) {
                        total.add(value);
                    }
                }
            }
        }
        for &(_, value) in self.head_in(range) {
            total.add(value);
        }
        Ok(total)
    }

    /// Up to `limit` points of `range`, oldest first.
    pub fn samples(
        &self,
        range: TimeRange,
        limit: usize,
    ) -> std::result::Result<Vec<(Timestamp, f64)>, DecodeError> {
        let mut out = Vec::new();
        for sealed in self.sealed_in(range) {
            if out.len() >= limit {
                return Ok(out);
            }
            let room = limit - out.len();
            out.extend(
                sealed
                    .chunk
                    .decode()?
                    .into_iter()
                    .filter(|p| range.contains(p.0))
                    .take(room),
            );
        }
        let room = limit.saturating_sub(out.len());
        out.extend(self.head_in(range).iter().take(room));
        Ok(out)
    }

    /// One aggregate per non-empty bucket of `step_millis`, buckets aligned to the epoch
    /// (`start = floor(ts / step) * step`), oldest first. A chunk that lies inside one bucket
    /// and inside `range` answers from metadata.
    pub fn downsample(&self, range: TimeRange, step_millis: i64) -> Result<Vec<Bucket>> {
        if step_millis <= 0 {
            return Err(Error::invalid("step", "must be positive"));
        }
        let mut buckets: Vec<Bucket> = Vec::new();
        let bucket_of = |ts: Timestamp| ts.bucket_start(step_millis);
        let mut add = |start: Timestamp, aggregate: &Aggregate| -> Result<()> {
            match buckets.last_mut() {
                Some(last) if last.start == start => last.aggregate.merge(aggregate),
                _ => {
                    if buckets.len() >= MAX_BUCKETS {
                        return Err(Error::invalid(
                            "step",
                            format!("too small: the range needs more than {MAX_BUCKETS} buckets"),
                        ));
                    }
                    buckets.push(Bucket {
                        start,
                        aggregate: *aggregate,
                    });
                }
            }
            Ok(())
        };
        let single = |value: f64| {
            let mut a = Aggregate::EMPTY;
            a.add(value);
            a
        };
        for sealed in self.sealed_in(range) {
            let meta = &sealed.chunk.meta;
            if range.covers(meta.start, meta.end) && bucket_of(meta.start) == bucket_of(meta.end) {
                add(bucket_of(meta.start), &meta.aggregate())?;
                continue;
            }
            let points = sealed.chunk.decode().map_err(decode_error)?;
            for (ts, value) in points.into_iter().filter(|p| range.contains(p.0)) {
                add(bucket_of(ts), &single(value))?;
            }
        }
        for &(ts, value) in self.head_in(range) {
            add(bucket_of(ts), &single(value))?;
        }
        Ok(buckets)
    }

    /// Takes what a flush must write; see [`SeriesSnapshot`].
    pub fn snapshot_unpersisted(&self) -> SeriesSnapshot {
        let head_dirty = self.head_version != self.head_flushed_version;
        SeriesSnapshot {
            chunks: self
                .sealed
                .iter()
                .filter(|c| !c.persisted)
                .map(|c| c.chunk.clone())
                .collect(),
            head: if head_dirty {
                self.head.clone()
            } else {
                Vec::new()
            },
            head_version: self.head_version,
        }
    }

    /// Records that a segment now holds `snapshot`. Chunks replaced since the snapshot stay
    /// unpersisted (they are compared by identity), as does a head changed since.
    pub fn mark_persisted(&mut self, snapshot: &SeriesSnapshot) {
        for sealed in &mut self.sealed {
            if !sealed.persisted
                && snapshot
                    .chunks
                    .iter()
                    .any(|c| Arc::ptr_eq(&c.timestamps, &sealed.chunk.timestamps))
            {
                sealed.persisted = true;
            }
        }
        if snapshot.head_version > self.head_flushed_version
            && snapshot.head_version <= self.head_version
        {
            self.head_flushed_version = snapshot.head_version;
        }
    }

    /// Drops sealed chunks that end before `cutoff`; returns how many points went.
    pub fn drop_chunks_before(&mut self, cutoff: Timestamp) -> u64 {
        let keep_from = self.sealed.partition_point(|c| c.chunk.meta.end < cutoff);
        self.sealed
            .drain(..keep_from)
            .map(|c| u64::from(c.chunk.meta.count))
            .sum()
    }
}

/// Merges `late` (sorted; later entries win on equal timestamps) into `chunk`, returning the
/// replacement chunk(s), split so none exceeds twice the capacity.
fn rewrite_chunk(
    chunk: &EncodedChunk,
    late: &[(Timestamp, f64)],
) -> std::result::Result<Vec<SealedChunk>, DecodeError> {
    let merged = merge_points(chunk.decode()?, late);
    let parts: Vec<&[(Timestamp, f64)]> = if merged.len() > 2 * CHUNK_CAPACITY {
        merged.chunks(CHUNK_CAPACITY).collect()
    } else {
        vec![&merged[..]]
    };
    Ok(parts
        .into_iter()
        .map(|part| SealedChunk {
            chunk: EncodedChunk::encode(part),
            persisted: false,
        })
        .collect())
}

/// Merges two sorted point lists; on equal timestamps `newer` wins, and within `newer` the
/// last of equal timestamps wins.
pub fn merge_points(
    older: Vec<(Timestamp, f64)>,
    newer: &[(Timestamp, f64)],
) -> Vec<(Timestamp, f64)> {
    let mut out = Vec::with_capacity(older.len() + newer.len());
    let mut old = older.into_iter().peekable();
    let mut i = 0;
    while i < newer.len() {
        // Skip to the last of a run of equal timestamps in `newer`.
        let mut j = i;
        while j + 1 < newer.len() && newer[j + 1].0 == newer[i].0 {
            j += 1;
        }
        let (ts, value) = newer[j];
        while let Some(&(old_ts, old_value)) = old.peek() {
            if old_ts < ts {
                out.push((old_ts, old_value));
                old.next();
            } else {
                if old_ts == ts {
                    old.next();
                }
                break;
            }
        }
        out.push((ts, value));
        i = j + 1;
    }
    out.extend(old);
    out
}

fn decode_error(e: DecodeError) -> Error {
    Error::corrupt("<memory>", 0, format!("chunk failed to decode: {e}"))
}

/// Number of shards in a [`SeriesMap`]; a power of two well above the core count.
pub const SERIES_SHARDS: usize = 64;

/// A shared handle to one series.
pub type SeriesHandle = Arc<Mutex<Series>>;

/// All series of a node, sharded by key hash.
pub struct SeriesMap {
    shards: Vec<RwLock<Shard>>,
}

/// One shard of a [`SeriesMap`]: keys hashed by their cached hash ([`KeyHashState`]).
type Shard = HashMap<SeriesKey, SeriesHandle, KeyHashState>;

impl Default for SeriesMap {
    fn default() -> Self {
        SeriesMap {
            shards: (0..SERIES_SHARDS)
                .map(|_| RwLock::new(Shard::default()))
                .collect(),
        }
    }
}

impl SeriesMap {
    fn shard(&self, key: &SeriesKey) -> &RwLock<Shard> {
        // Bits the shard's own table leaves alone: it places a key by the low bits and tags
        // it with the top seven, so neither may be the same for every key of a shard.
        &self.shards[((key.hash_code() >> 32) % SERIES_SHARDS as u64) as usize]
    }

    pub fn get(&self, key: &SeriesKey) -> Option<SeriesHandle> {
        read_lock(self.shard(key)).get(key).cloned()
    }

    /// The series of `key`, created empty if absent; `true` with it when this call created
    /// it (so the caller indexes it once, off the hot path of existing series).
    pub fn get_or_create(&self, key: &SeriesKey) -> (SeriesHandle, bool) {
        if let Some(found) = self.get(key) {
            return (found, false);
        }
        let mut shard = write_lock(self.shard(key));
        let mut created = false;
        let handle = shard
            .entry(key.clone())
            .or_insert_with(|| {
                created = true;
                SeriesHandle::default()
            })
            .clone();
        (handle, created)
    }

    pub fn insert(&self, key: SeriesKey, series: Series) {
        write_lock(self.shard(&key)).insert(key, Arc::new(Mutex::new(series)));
    }

    pub fn remove(&self, key: &SeriesKey) -> Option<SeriesHandle> {
        write_lock(self.shard(key)).remove(key)
    }

    /// Every series with its handle, sorted by key.
    pub fn entries(&self) -> Vec<(SeriesKey, SeriesHandle)> {
        let mut all: Vec<_> = self
            .shards
            .iter()
            .flat_map(|shard| {
                read_lock(shard)
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// Locks a series. A panic while holding the lock cannot leave a series half-updated in a
/// way later readers would misread (every mutation replaces whole values), so a poisoned
/// lock is taken over rather than propagated.
pub fn lock(series: &SeriesHandle) -> MutexGuard<'_, Series> {
    series
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Read-locks `lock`, taking a poisoned lock over (its holders replace whole values).
pub(crate) fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Write-locks `lock`, taking a poisoned lock over (its holders replace whole values).
pub(crate) fn write_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
