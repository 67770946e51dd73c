//! Segment files. CONTRACT (implemented by the segment work; signatures are fixed).

use crate::error::Result;
use crate::storage::chunk::EncodedChunk;
use crate::storage::SeriesKey;
use std::path::Path;

/// The chunks of one series in a segment, in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentSeries {
    pub key: SeriesKey,
    pub chunks: Vec<EncodedChunk>,
}

/// Everything one segment file holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SegmentContents {
    pub series: Vec<SegmentSeries>,
    pub tombstones: Vec<SeriesKey>,
}

pub fn write_segment(_path: &Path, _contents: &SegmentContents) -> Result<u64> {
    unimplemented!("segment work")
}

pub fn read_segment(_path: &Path) -> Result<SegmentContents> {
    unimplemented!("segment work")
}
