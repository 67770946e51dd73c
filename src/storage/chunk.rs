//! Chunks: a run of consecutive points of one series, compressed, with summary metadata.
//!
//! A sealed chunk keeps its timestamps and values as two compressed columns (see
//! [`crate::storage::codec`]) and a [`ChunkMeta`] that answers count/sum/min/max/first/last
//! without decoding. Chunks are immutable: a late point that lands inside one produces a new
//! chunk (decode, merge, re-encode) that replaces it.

use crate::storage::codec::{self, DecodeError, ValueEncoding};
use crate::storage::{Aggregate, Timestamp};
use std::sync::Arc;

/// Points per sealed chunk. Larger chunks compress better and make range aggregates cheaper
/// (fewer metadata entries); smaller ones make a late write's re-encode cheaper. 1024 points
/// is about 1 KiB encoded for typical sensor data.
pub const CHUNK_CAPACITY: usize = 1024;

/// Summary of a chunk's points. `start`/`end` are the first and last timestamps (inclusive).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChunkMeta {
    pub start: Timestamp,
    pub end: Timestamp,
    pub count: u32,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub first: f64,
    pub last: f64,
}

impl ChunkMeta {
    /// Summarises `points`, which must be non-empty and sorted by timestamp.
    pub fn of_points(points: &[(Timestamp, f64)]) -> ChunkMeta {
        let mut aggregate = Aggregate::EMPTY;
        for &(_, value) in points {
            aggregate.add(value);
        }
        let (start, first) = points[0];
        let (end, last) = points[points.len() - 1];
        ChunkMeta {
            start,
            end,
            count: points.len() as u32,
            sum: aggregate.sum,
            min: aggregate.min,
            max: aggregate.max,
            first,
            last,
        }
    }

    pub fn aggregate(&self) -> Aggregate {
        Aggregate {
            count: u64::from(self.count),
            sum: self.sum,
            min: self.min,
            max: self.max,
        }
    }
}

/// A sealed, compressed chunk. Cloning is cheap (the columns are shared).
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedChunk {
    pub meta: ChunkMeta,
    pub encoding: ValueEncoding,
    pub timestamps: Arc<[u8]>,
    pub values: Arc<[u8]>,
}

impl EncodedChunk {
    /// Compresses `points`, which must be non-empty, sorted by timestamp and free of
    /// duplicate timestamps.
    pub fn encode(points: &[(Timestamp, f64)]) -> EncodedChunk {
        debug_assert!(!points.is_empty());
        debug_assert!(points.windows(2).all(|w| w[0].0 < w[1].0));
        let timestamps: Vec<i64> = points.iter().map(|p| p.0 .0).collect();
        let values: Vec<f64> = points.iter().map(|p| p.1).collect();
        let mut ts_bytes = Vec::new();
        codec::encode_timestamps(&timestamps, &mut ts_bytes);
        let mut value_bytes = Vec::new();
        let encoding = codec::encode_values(&values, &mut value_bytes);
        EncodedChunk {
            meta: ChunkMeta::of_points(points),
            encoding,
            timestamps: ts_bytes.into(),
            values: value_bytes.into(),
        }
    }

    /// Decodes every point, in time order.
    pub fn decode(&self) -> Result<Vec<(Timestamp, f64)>, DecodeError> {
        let count = self.meta.count as usize;
        let mut timestamps = Vec::with_capacity(count);
        codec::decode_timestamps(&self.timestamps, count, &mut timestamps)?;
        let mut values = Vec::with_capacity(count);
        codec::decode_values(self.encoding, &self.values, count, &mut values)?;
        if timestamps.len() != count || values.len() != count {
            return Err(DecodeError(format!(
                "chunk holds {} timestamps and {} values, expected {count}",
                timestamps.len(),
                values.len()
            )));
        }
        Ok(timestamps.into_iter().map(Timestamp).zip(values).collect())
    }

    /// Bytes of the two compressed columns.
    pub fn encoded_len(&self) -> usize {
        self.timestamps.len() + self.values.len()
    }
}
