//! Segment files: the immutable, columnar, checksummed files that sealed chunks are flushed to.
//!
//! The engine periodically writes the chunks that changed (and the series deleted) to a new
//! segment, and only once it is durable removes the WAL files it covers. A segment is written
//! once and never modified: [`write_segment`] writes a temporary file, fsyncs it, renames it
//! into place and fsyncs the directory, so a segment is either wholly visible or absent.
//!
//! Each chunk's two compressed columns lie back to back in a data region; all metadata sits
//! in an index at the end of the file, found through a fixed-size trailer. Startup can read
//! just the trailer and index ([`read_segment_index`]), which carries every chunk's summary
//! (enough for range aggregates), and fetch a chunk's columns later with one positioned read
//! ([`read_chunk`]). [`read_segment`] reads and verifies everything at once.
//!
//! Every byte is checked on read: the header and trailer by magic, version and length
//! arithmetic, the index by its CRC, each chunk's columns by their own CRC, and the chunks
//! must tile the data region exactly (no gaps, no overlap). A torn, truncated or bit-flipped
//! file is therefore reported as [`Error::Corrupt`] naming the file and offset, never
//! returned as wrong data.
//!
//! # Format (version 3)
//!
//! All integers are little-endian; `f64`s are stored as their IEEE-754 bits (8 bytes), so
//! every bit pattern (NaN payloads, -0.0) round-trips. Byte ranges are `[start, end)`.
//! A varint is LEB128: seven bits per byte, low bits first, the high bit set on every byte
//! but the last; at most five bytes, for a `u32`.
//!
//! 1. Header [6 bytes, at offset 0]:
//!    1. magic `MTSG` [4 bytes]
//!    2. version u16 [2 bytes], currently 3 (1 and 2 are still read, see 3.3.1)
//! 2. Data region [`[6, index offset)`]: for each series in index order, for each of its
//!    chunks in order, with no gaps:
//!    1. the timestamp column [ts len bytes]
//!    2. the value column [values len bytes], directly after the timestamp column
//! 3. Index [index length bytes, at index offset]:
//!    1. string table (version 3 only): string count u32 [4 bytes], then per string its
//!       length u16 [2 bytes] and UTF-8 bytes: every distinct metric name, label name and
//!       label value of the series below, once, numbered from 0 in this order. Labelled keys
//!       repeat their names and most values from series to series (`site`, `rack`, ...), so
//!       a key costs a few bytes instead of ~100.
//!    2. series count u32 [4 bytes]
//!    3. per series:
//!       1. key: the metric's string number (varint), label count u8 [1 byte], then per
//!          label, sorted by name, the name's and the value's string numbers (varints).
//!          Versions 1 and 2: key length u16 [2 bytes], then the key's stored form
//!          ([`series_key`](super::series_key)) [key length bytes]
//!       2. chunk count u32 [4 bytes]
//!       3. per chunk [81 bytes]: start i64, end i64 (first and last timestamp in ms,
//!          inclusive), count u32, sum, min, max, first, last (f64 bits, 8 bytes each),
//!          value encoding u8 (1 Gorilla, 2 decimal), ts offset u64 (file offset of the
//!          timestamp column), ts len u32, values len u32, crc32 u32 of the timestamp column
//!          followed by the value column
//!    4. tombstone count u32 [4 bytes]
//!    5. per tombstone: key length u16 [2 bytes], then the key's stored form (every version)
//! 4. Trailer [24 bytes, the last of the file]:
//!    1. index offset u64 [8 bytes]
//!    2. index length u64 [8 bytes]
//!    3. crc32 u32 of the index bytes [4 bytes]
//!    4. magic `GSTM` [4 bytes] (the header magic reversed: it closes the file)
//!
//! A reader additionally requires: index offset + index length + 24 = file length; the first
//! chunk's ts offset is 6, every later one is where the previous chunk's value column ended,
//! and the last chunk ends at the index offset; each chunk has count ≥ 1, start ≤ end and
//! `end - start ≥ count - 1` (timestamps are distinct milliseconds), a known encoding, and
//! starts after the previous chunk of its series ends; keys are valid [`SeriesKey`]s and no
//! series appears twice. [`write_segment`] refuses contents that break these rules.

use crate::error::{Error, Result};
use crate::storage::bytes::{put_key, ByteCursor, ShortRead};
use crate::storage::chunk::{ChunkMeta, EncodedChunk};
use crate::storage::codec::ValueEncoding;
use crate::storage::durable::sync_parent_dir;
use crate::storage::{SeriesKey, Timestamp};
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// First bytes of every segment file.
const MAGIC: [u8; 4] = *b"MTSG";
/// Last bytes of every segment file.
const TRAILER_MAGIC: [u8; 4] = *b"GSTM";
/// The version this code writes: 3 stores each string of the series keys once (a table),
/// 2 stored every key whole, with labels.
const VERSION: u16 = 3;
/// The oldest version this code reads (1: keys `device|metric`, see [`SeriesKey::decode`]).
const OLDEST_READABLE_VERSION: u16 = 1;
/// Magic and version.
const HEADER_LEN: u64 = 6;
/// Index offset, index length, index crc and magic.
const TRAILER_LEN: u64 = 24;
/// Bytes of one chunk entry in the index.
const CHUNK_ENTRY_LEN: usize = 81;

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

/// A segment's index: every series' chunk summaries and where their columns lie, without the
/// columns themselves (see [`read_segment_index`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SegmentIndex {
    /// The series in file order.
    pub series: Vec<SeriesIndex>,
    /// Series deleted when the segment was written.
    pub tombstones: Vec<SeriesKey>,
}

/// The index entries of one series' chunks, in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesIndex {
    pub key: SeriesKey,
    pub chunks: Vec<ChunkIndexEntry>,
}

/// Where one chunk lies in the file and what it summarises; [`read_chunk`] fetches its
/// columns. The value column starts right after the timestamp column.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChunkIndexEntry {
    /// The chunk's summary, usable without reading the columns.
    pub meta: ChunkMeta,
    /// How the value column is encoded.
    pub encoding: ValueEncoding,
    /// File offset of the timestamp column.
    pub timestamps_offset: u64,
    /// Bytes of the timestamp column.
    pub timestamps_len: u32,
    /// Bytes of the value column.
    pub values_len: u32,
    /// CRC-32 of the timestamp column followed by the value column.
    pub crc: u32,
}

impl ChunkIndexEntry {
    /// File offset of the value column.
    pub fn values_offset(&self) -> u64 {
        self.timestamps_offset + u64::from(self.timestamps_len)
    }

    /// Bytes of both columns together.
    pub fn columns_len(&self) -> u64 {
        u64::from(self.timestamps_len) + u64::from(self.values_len)
    }

    /// Appends the entry's 81 index bytes (layout 3.3.3 in the module docs).
    fn encode(&self, out: &mut Vec<u8>) {
        let meta = &self.meta;
        out.extend_from_slice(&meta.start.0.to_le_bytes());
        out.extend_from_slice(&meta.end.0.to_le_bytes());
        out.extend_from_slice(&meta.count.to_le_bytes());
        for value in [meta.sum, meta.min, meta.max, meta.first, meta.last] {
            out.extend_from_slice(&value.to_bits().to_le_bytes());
        }
        out.push(self.encoding as u8);
        out.extend_from_slice(&self.timestamps_offset.to_le_bytes());
        out.extend_from_slice(&self.timestamps_len.to_le_bytes());
        out.extend_from_slice(&self.values_len.to_le_bytes());
        out.extend_from_slice(&self.crc.to_le_bytes());
    }
}

/// Writes `contents` as a segment at `path` and returns the file's size in bytes.
///
/// The file is written to `path` + `.tmp` (replacing any leftover from a crashed write),
/// fsynced, renamed to `path` and the directory fsynced: when this returns, the segment is
/// durable, and a crash at any point leaves either no segment at `path` or the whole one.
/// Contents a reader would reject (see the module docs) are refused as invalid input.
pub fn write_segment(path: &Path, contents: &SegmentContents) -> Result<u64> {
    check_contents(contents)?;
    let tmp = tmp_path(path);
    let result = write_file(&tmp, contents).and_then(|len| {
        fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        sync_parent_dir(path)?;
        Ok(len)
    });
    if result.is_err() {
        // Best effort: the error being returned matters more than a leftover temporary file,
        // which the next write to this path replaces anyway.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads the whole segment at `path`, verifying every checksum, and returns its series (in
/// file order) and tombstones.
pub fn read_segment(path: &Path) -> Result<SegmentContents> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    let file_len = bytes.len() as u64;
    check_file_len(path, file_len)?;
    let version = check_header(path, &bytes)?;
    let trailer = parse_trailer(path, file_len, &bytes[bytes.len() - TRAILER_LEN as usize..])?;
    let index_bytes = slice(path, &bytes, trailer.index_offset, trailer.index_len)?;
    let index = parse_index(path, version, &trailer, index_bytes)?;

    let mut series = Vec::with_capacity(index.series.len());
    for series_index in index.series {
        let mut chunks = Vec::with_capacity(series_index.chunks.len());
        for entry in &series_index.chunks {
            let columns = slice(path, &bytes, entry.timestamps_offset, entry.columns_len())?;
            chunks.push(chunk_from_columns(path, entry, columns)?);
        }
        series.push(SegmentSeries {
            key: series_index.key,
            chunks,
        });
    }
    Ok(SegmentContents {
        series,
        tombstones: index.tombstones,
    })
}

/// Reads only the header, trailer and index of the segment at `path` — not the chunk
/// columns — and returns every series' chunk entries (in file order) and the tombstones.
/// The index is verified by its CRC; the columns are verified when [`read_chunk`] reads them.
pub fn read_segment_index(path: &Path) -> Result<SegmentIndex> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    check_file_len(path, file_len)?;

    let mut header = [0; HEADER_LEN as usize];
    read_at(&file, path, &mut header, 0)?;
    let version = check_header(path, &header)?;
    let mut trailer_bytes = [0; TRAILER_LEN as usize];
    read_at(&file, path, &mut trailer_bytes, file_len - TRAILER_LEN)?;
    let trailer = parse_trailer(path, file_len, &trailer_bytes)?;

    let mut index_bytes = vec![0; to_usize(path, trailer.index_offset, trailer.index_len)?];
    read_at(&file, path, &mut index_bytes, trailer.index_offset)?;
    parse_index(path, version, &trailer, &index_bytes)
}

/// Reads one chunk's columns from `file` (the segment at `path`) with a positioned read and
/// verifies their CRC against `entry`, which came from [`read_segment_index`] of that file.
pub fn read_chunk(file: &File, path: &Path, entry: &ChunkIndexEntry) -> Result<EncodedChunk> {
    let len = to_usize(path, entry.timestamps_offset, entry.columns_len())?;
    let mut columns = vec![0; len];
    read_at(file, path, &mut columns, entry.timestamps_offset)?;
    chunk_from_columns(path, entry, &columns)
}

// ---- writing ----

fn tmp_path(path: &Path) -> PathBuf {
    let mut tmp = OsString::from(path.as_os_str());
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

/// Writes the segment bytes to `tmp` and fsyncs it; returns the file size.
fn write_file(tmp: &Path, contents: &SegmentContents) -> Result<u64> {
    let io_err = |e| Error::io(tmp, e);
    let file = File::create(tmp).map_err(io_err)?;
    let mut out = BufWriter::new(file);
    out.write_all(&MAGIC).map_err(io_err)?;
    out.write_all(&VERSION.to_le_bytes()).map_err(io_err)?;

    // Lengths and counts were checked to fit by `check_contents`.
    let strings = StringTable::of(&contents.series);
    let mut index = Vec::new();
    strings.encode(&mut index);
    let mut offset = HEADER_LEN;
    index.extend_from_slice(&(contents.series.len() as u32).to_le_bytes());
    for series in &contents.series {
        strings.put_key(&mut index, &series.key);
        index.extend_from_slice(&(series.chunks.len() as u32).to_le_bytes());
        for chunk in &series.chunks {
            out.write_all(&chunk.timestamps).map_err(io_err)?;
            out.write_all(&chunk.values).map_err(io_err)?;
            let mut crc = crc32fast::Hasher::new();
            crc.update(&chunk.timestamps);
            crc.update(&chunk.values);
            let entry = ChunkIndexEntry {
                meta: chunk.meta,
                encoding: chunk.encoding,
                timestamps_offset: offset,
                timestamps_len: chunk.timestamps.len() as u32,
                values_len: chunk.values.len() as u32,
                crc: crc.finalize(),
            };
            entry.encode(&mut index);
            offset += entry.columns_len();
        }
    }
    index.extend_from_slice(&(contents.tombstones.len() as u32).to_le_bytes());
    for key in &contents.tombstones {
        put_key(&mut index, key);
    }

    out.write_all(&index).map_err(io_err)?;
    let index_len = index.len() as u64;
    let mut trailer = Vec::with_capacity(TRAILER_LEN as usize);
    trailer.extend_from_slice(&offset.to_le_bytes());
    trailer.extend_from_slice(&index_len.to_le_bytes());
    trailer.extend_from_slice(&crc32fast::hash(&index).to_le_bytes());
    trailer.extend_from_slice(&TRAILER_MAGIC);
    out.write_all(&trailer).map_err(io_err)?;

    let file = out
        .into_inner()
        .map_err(|e| Error::io(tmp, e.into_error()))?;
    file.sync_all().map_err(io_err)?;
    Ok(offset + index_len + TRAILER_LEN)
}

/// The distinct strings of a segment's series keys (metric names, label names and values),
/// numbered in order of first use.
struct StringTable<'a> {
    strings: Vec<&'a str>,
    numbers: HashMap<&'a str, u32>,
}

impl<'a> StringTable<'a> {
    fn of(series: &'a [SegmentSeries]) -> StringTable<'a> {
        let mut table = StringTable {
            strings: Vec::new(),
            numbers: HashMap::new(),
        };
        for s in series {
            table.add(s.key.metric_name());
            for (name, value) in s.key.labels() {
                table.add(name);
                table.add(value);
            }
        }
        table
    }

    fn add(&mut self, string: &'a str) {
        if !self.numbers.contains_key(string) {
            // Fits: at most 1 + 2 × 32 strings per series, and series fit a u32.
            self.numbers.insert(string, self.strings.len() as u32);
            self.strings.push(string);
        }
    }

    /// Appends the table (layout 3.1 in the module docs).
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.strings.len() as u32).to_le_bytes());
        for string in &self.strings {
            // Names and values are at most 1 KiB (the key limits).
            out.extend_from_slice(&(string.len() as u16).to_le_bytes());
            out.extend_from_slice(string.as_bytes());
        }
    }

    /// Appends `key` as string numbers (layout 3.3.1); every string of it is in the table.
    fn put_key(&self, out: &mut Vec<u8>, key: &SeriesKey) {
        let number = |s: &str| self.numbers.get(s).copied().unwrap_or(u32::MAX);
        put_varint(out, number(key.metric_name()));
        // At most MAX_LABELS (32).
        out.push(key.labels().len() as u8);
        for (name, value) in key.labels() {
            put_varint(out, number(name));
            put_varint(out, number(value));
        }
    }
}

/// LEB128: seven bits per byte, low first, the high bit set on all but the last.
fn put_varint(out: &mut Vec<u8>, mut n: u32) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Refuses contents the reader would reject, so a segment that was written can be read back.
fn check_contents(contents: &SegmentContents) -> Result<()> {
    let invalid = |reason: String| Error::invalid("segment", reason);
    if u32::try_from(contents.series.len()).is_err() {
        return Err(invalid("more than u32::MAX series".into()));
    }
    if u32::try_from(contents.tombstones.len()).is_err() {
        return Err(invalid("more than u32::MAX tombstones".into()));
    }
    let mut seen = HashSet::new();
    for series in &contents.series {
        let key = &series.key;
        if !seen.insert(key) {
            return Err(invalid(format!("series {key} appears twice")));
        }
        if u32::try_from(series.chunks.len()).is_err() {
            return Err(invalid(format!(
                "series {key} has more than u32::MAX chunks"
            )));
        }
        let mut previous_end = None;
        for (i, chunk) in series.chunks.iter().enumerate() {
            let fail = |reason: String| invalid(format!("series {key} chunk {i}: {reason}"));
            check_meta(&chunk.meta, previous_end).map_err(fail)?;
            if u32::try_from(chunk.timestamps.len()).is_err()
                || u32::try_from(chunk.values.len()).is_err()
            {
                return Err(fail("a column is longer than u32::MAX bytes".into()));
            }
            previous_end = Some(chunk.meta.end);
        }
    }
    Ok(())
}

/// The summary rules every chunk obeys; `previous_end` is the end of the series' chunk before.
fn check_meta(
    meta: &ChunkMeta,
    previous_end: Option<Timestamp>,
) -> std::result::Result<(), String> {
    let (start, end) = (meta.start.0, meta.end.0);
    if meta.count == 0 {
        return Err("count is 0".into());
    }
    if start > end {
        return Err(format!("starts at {start} after it ends at {end}"));
    }
    // Timestamps within a chunk are distinct milliseconds.
    if i128::from(end) - i128::from(start) < i128::from(meta.count) - 1 {
        return Err(format!(
            "{} points cannot fit between {start} and {end}",
            meta.count
        ));
    }
    if let Some(previous_end) = previous_end {
        if start <= previous_end.0 {
            return Err(format!(
                "starts at {start}, not after the previous chunk's end {}",
                previous_end.0
            ));
        }
    }
    Ok(())
}

// ---- reading ----

/// The trailer's fields, already checked against the file length.
struct Trailer {
    index_offset: u64,
    index_len: u64,
    index_crc: u32,
}

fn check_file_len(path: &Path, file_len: u64) -> Result<()> {
    if file_len < HEADER_LEN + TRAILER_LEN {
        return Err(Error::corrupt(
            path,
            file_len,
            format!(
                "truncated segment: {file_len} bytes, shorter than a header and trailer ({} bytes)",
                HEADER_LEN + TRAILER_LEN
            ),
        ));
    }
    Ok(())
}

/// Checks the magic and version at the start of `bytes` (the file's first bytes).
/// The file's format version, once its magic and version check out.
fn check_header(path: &Path, bytes: &[u8]) -> Result<u16> {
    let magic = &bytes[..bytes.len().min(4)];
    if magic != MAGIC {
        return Err(Error::corrupt(
            path,
            0,
            format!("bad magic {magic:02x?}, expected \"MTSG\": not a segment file"),
        ));
    }
    let version = match bytes.get(4..6) {
        Some(&[low, high]) => u16::from_le_bytes([low, high]),
        _ => return Err(Error::corrupt(path, 4, "truncated segment: no version")),
    };
    if !(OLDEST_READABLE_VERSION..=VERSION).contains(&version) {
        return Err(Error::corrupt(
            path,
            4,
            format!(
                "unsupported segment version {version}, this build reads \
                 {OLDEST_READABLE_VERSION} to {VERSION}"
            ),
        ));
    }
    Ok(version)
}

/// Parses the last [`TRAILER_LEN`] bytes of a file of `file_len` bytes and checks that the
/// index it points to lies exactly between the header and the trailer's start.
fn parse_trailer(path: &Path, file_len: u64, bytes: &[u8]) -> Result<Trailer> {
    let trailer_offset = file_len - TRAILER_LEN;
    let mut reader = ByteReader::new(path, bytes, trailer_offset);
    let index_offset = reader.u64("trailer index offset")?;
    let index_len = reader.u64("trailer index length")?;
    let index_crc = reader.u32("trailer index checksum")?;
    let magic = reader.array::<4>("trailer magic")?;
    if magic != TRAILER_MAGIC {
        return Err(Error::corrupt(
            path,
            file_len - 4,
            format!(
                "bad trailer magic {magic:02x?}, expected \"GSTM\": \
                 truncated or not a segment file"
            ),
        ));
    }
    if index_offset < HEADER_LEN || index_offset.checked_add(index_len) != Some(trailer_offset) {
        return Err(Error::corrupt(
            path,
            trailer_offset,
            format!(
                "trailer places the index at offset {index_offset} length {index_len}, \
                 but it must lie between the header (ends at {HEADER_LEN}) and the trailer \
                 (starts at {trailer_offset}): truncated or corrupt"
            ),
        ));
    }
    Ok(Trailer {
        index_offset,
        index_len,
        index_crc,
    })
}

/// Verifies the index bytes against the trailer's CRC and parses them, checking every chunk
/// entry's metadata and that the chunks tile the data region `[HEADER_LEN, index offset)`.
fn parse_index(path: &Path, version: u16, trailer: &Trailer, bytes: &[u8]) -> Result<SegmentIndex> {
    let index_offset = trailer.index_offset;
    let computed = crc32fast::hash(bytes);
    if computed != trailer.index_crc {
        return Err(Error::corrupt(
            path,
            index_offset,
            format!(
                "index checksum mismatch (stored {:08x}, computed {computed:08x})",
                trailer.index_crc
            ),
        ));
    }

    let mut reader = ByteReader::new(path, bytes, index_offset);
    let strings = match version {
        3.. => Some(reader.string_table()?),
        _ => None,
    };
    let series_count = reader.u32("series count")?;
    let mut series = Vec::new();
    let mut seen = HashSet::new();
    let mut data_end = HEADER_LEN;
    for _ in 0..series_count {
        let key_offset = reader.offset();
        let key = match &strings {
            Some(strings) => reader.numbered_key(strings)?,
            None => reader.key()?,
        };
        if !seen.insert(key.clone()) {
            return Err(Error::corrupt(
                path,
                key_offset,
                format!("series {key} appears twice in the index"),
            ));
        }
        let chunk_count = reader.u32("chunk count")?;
        let mut chunks = Vec::new();
        let mut previous_end = None;
        for i in 0..chunk_count {
            let entry_offset = reader.offset();
            let fail = |reason: String| {
                Error::corrupt(
                    path,
                    entry_offset,
                    format!("series {key} chunk {i}: {reason}"),
                )
            };
            let entry = reader.chunk_entry(fail)?;
            check_meta(&entry.meta, previous_end).map_err(fail)?;
            if entry.timestamps_offset != data_end {
                return Err(fail(format!(
                    "columns at offset {}, but the previous chunk (or the header) ends at \
                     {data_end}",
                    entry.timestamps_offset
                )));
            }
            let end = data_end + entry.columns_len();
            if end > index_offset {
                return Err(fail(format!(
                    "columns [{data_end}, {end}) overlap the index at {index_offset}"
                )));
            }
            data_end = end;
            previous_end = Some(entry.meta.end);
            chunks.push(entry);
        }
        series.push(SeriesIndex { key, chunks });
    }
    if data_end != index_offset {
        return Err(Error::corrupt(
            path,
            data_end,
            format!(
                "chunks end at {data_end}, but the index starts at {index_offset}: \
                 unaccounted bytes in the data region"
            ),
        ));
    }

    let tombstone_count = reader.u32("tombstone count")?;
    let mut tombstones = Vec::new();
    for _ in 0..tombstone_count {
        tombstones.push(reader.key()?);
    }
    if reader.remaining() != 0 {
        return Err(Error::corrupt(
            path,
            reader.offset(),
            format!(
                "{} unexpected bytes at the end of the index",
                reader.remaining()
            ),
        ));
    }
    Ok(SegmentIndex { series, tombstones })
}

/// Checks a chunk's column bytes (both columns, as read from the file) against its entry.
fn chunk_from_columns(
    path: &Path,
    entry: &ChunkIndexEntry,
    columns: &[u8],
) -> Result<EncodedChunk> {
    let computed = crc32fast::hash(columns);
    if computed != entry.crc {
        return Err(Error::corrupt(
            path,
            entry.timestamps_offset,
            format!(
                "chunk checksum mismatch (stored {:08x}, computed {computed:08x})",
                entry.crc
            ),
        ));
    }
    let split = columns
        .split_at_checked(entry.timestamps_len as usize)
        .filter(|(_, values)| values.len() == entry.values_len as usize);
    let Some((timestamps, values)) = split else {
        return Err(Error::corrupt(
            path,
            entry.timestamps_offset,
            format!(
                "chunk columns are {} bytes, expected {}",
                columns.len(),
                entry.columns_len()
            ),
        ));
    };
    Ok(EncodedChunk {
        meta: entry.meta,
        encoding: entry.encoding,
        timestamps: timestamps.into(),
        values: values.into(),
    })
}

/// `bytes[offset..offset + len]`, or a corrupt error if that lies outside `bytes`.
fn slice<'a>(path: &Path, bytes: &'a [u8], offset: u64, len: u64) -> Result<&'a [u8]> {
    let range = usize::try_from(offset)
        .ok()
        .zip(usize::try_from(len).ok())
        .and_then(|(start, len)| Some(start..start.checked_add(len)?));
    range.and_then(|range| bytes.get(range)).ok_or_else(|| {
        Error::corrupt(
            path,
            offset,
            format!("truncated segment: {len} bytes at offset {offset} lie past its end"),
        )
    })
}

fn to_usize(path: &Path, offset: u64, len: u64) -> Result<usize> {
    usize::try_from(len)
        .map_err(|_| Error::corrupt(path, offset, format!("{len} bytes do not fit in memory")))
}

/// Fills `buf` from `file` at `offset` without moving a shared cursor; reading past the end
/// is a truncated segment.
fn read_at(file: &File, path: &Path, buf: &mut [u8], offset: u64) -> Result<()> {
    read_exact_at(file, buf, offset).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Error::corrupt(
                path,
                offset,
                format!(
                    "truncated segment: {} bytes at offset {offset} lie past its end",
                    buf.len()
                ),
            )
        } else {
            Error::io(path, e)
        }
    })
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A cursor over bytes that begin at file offset `base`; running out is a corrupt error at
/// the offset reached.
struct ByteReader<'a> {
    path: &'a Path,
    cursor: ByteCursor<'a>,
    base: u64,
}

impl<'a> ByteReader<'a> {
    fn new(path: &'a Path, bytes: &'a [u8], base: u64) -> ByteReader<'a> {
        ByteReader {
            path,
            cursor: ByteCursor::new(bytes),
            base,
        }
    }

    /// File offset of the next byte.
    fn offset(&self) -> u64 {
        self.base + self.cursor.position() as u64
    }

    fn remaining(&self) -> usize {
        self.cursor.remaining()
    }

    /// `read` from the cursor; running out is corruption naming `what`.
    fn read<T>(
        &mut self,
        what: &str,
        read: impl FnOnce(&mut ByteCursor<'a>) -> std::result::Result<T, ShortRead>,
    ) -> Result<T> {
        read(&mut self.cursor).map_err(|short| {
            Error::corrupt(
                self.path,
                self.base + short.at as u64,
                format!(
                    "{what} ({} bytes) runs past the end of its region",
                    short.wanted
                ),
            )
        })
    }

    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8]> {
        self.read(what, |c| c.take(len))
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        self.read(what, ByteCursor::array)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        self.read(what, ByteCursor::u8)
    }

    fn u16(&mut self, what: &str) -> Result<u16> {
        self.read(what, ByteCursor::u16)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        self.read(what, ByteCursor::u32)
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        self.read(what, ByteCursor::u64)
    }

    fn i64(&mut self, what: &str) -> Result<i64> {
        self.read(what, ByteCursor::i64)
    }

    fn f64(&mut self, what: &str) -> Result<f64> {
        self.read(what, ByteCursor::f64)
    }

    /// A LEB128 `u32` (see [`put_varint`]).
    fn varint(&mut self, what: &str) -> Result<u32> {
        let offset = self.offset();
        let mut n: u32 = 0;
        for shift in (0..35).step_by(7) {
            let byte = self.u8(what)?;
            let bits = u32::from(byte & 0x7f);
            if shift == 28 && bits > 0x0f {
                break;
            }
            n |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(Error::corrupt(
            self.path,
            offset,
            format!("{what}: variable-length number over 32 bits"),
        ))
    }

    /// The string table (layout 3.1 in the module docs), every string UTF-8.
    fn string_table(&mut self) -> Result<Vec<String>> {
        let count = self.u32("string count")?;
        // Each string takes at least its 2-byte length: a count the index cannot hold is
        // corruption, not a reason to allocate.
        if count as usize > self.remaining() / 2 {
            return Err(Error::corrupt(
                self.path,
                self.offset(),
                format!("string count {count} does not fit the index"),
            ));
        }
        let mut strings = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let offset = self.offset();
            let len = self.u16("string length")?;
            let bytes = self.take(usize::from(len), "string")?;
            let string = std::str::from_utf8(bytes).map_err(|e| {
                Error::corrupt(self.path, offset, format!("string is not UTF-8: {e}"))
            })?;
            strings.push(string.to_string());
        }
        Ok(strings)
    }

    /// A series key as string numbers into `strings` (layout 3.3.1), checked as every key
    /// from outside is.
    fn numbered_key(&mut self, strings: &[String]) -> Result<SeriesKey> {
        let offset = self.offset();
        let string = |reader: &mut Self, what: &str| -> Result<&str> {
            let number = reader.varint(what)?;
            strings
                .get(number as usize)
                .map(String::as_str)
                .ok_or_else(|| {
                    Error::corrupt(
                        reader.path,
                        offset,
                        format!(
                            "{what} {number} is past the string table ({} strings)",
                            strings.len()
                        ),
                    )
                })
        };
        let metric = string(self, "metric string")?;
        let label_count = self.u8("label count")?;
        let mut labels = Vec::with_capacity(usize::from(label_count));
        for _ in 0..label_count {
            let name = string(self, "label name string")?;
            let value = string(self, "label value string")?;
            labels.push((name, value));
        }
        SeriesKey::with_labels(metric, labels)
            .map_err(|e| Error::corrupt(self.path, offset, format!("bad series key: {e}")))
    }

    /// A length-prefixed series key.
    fn key(&mut self) -> Result<SeriesKey> {
        let offset = self.offset();
        let len = self.u16("series key length")?;
        let bytes = self.take(usize::from(len), "series key")?;
        SeriesKey::decode(bytes).map_err(|reason| Error::corrupt(self.path, offset, reason))
    }

    /// One chunk entry (layout 3.3.3 in the module docs); its metadata is not yet checked.
    /// `fail` builds the error for an unknown encoding byte.
    fn chunk_entry(&mut self, fail: impl Fn(String) -> Error) -> Result<ChunkIndexEntry> {
        // Taking the whole entry first makes a short index one error, not one per field.
        let offset = self.offset();
        let entry = self.take(CHUNK_ENTRY_LEN, "chunk entry")?;
        let mut fields = ByteReader::new(self.path, entry, offset);
        let meta = ChunkMeta {
            start: Timestamp(fields.i64("chunk start")?),
            end: Timestamp(fields.i64("chunk end")?),
            count: fields.u32("chunk count")?,
            sum: fields.f64("chunk sum")?,
            min: fields.f64("chunk min")?,
            max: fields.f64("chunk max")?,
            first: fields.f64("chunk first")?,
            last: fields.f64("chunk last")?,
        };
        let encoding_byte = fields.u8("chunk encoding")?;
        let encoding = ValueEncoding::from_u8(encoding_byte)
            .ok_or_else(|| fail(format!("unknown value encoding {encoding_byte}")))?;
        Ok(ChunkIndexEntry {
            meta,
            encoding,
            timestamps_offset: fields.u64("timestamp column offset")?,
            timestamps_len: fields.u32("timestamp column length")?,
            values_len: fields.u32("value column length")?,
            crc: fields.u32("chunk checksum")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TempDir;

    fn key(joined: &str) -> SeriesKey {
        SeriesKey::decode(joined.as_bytes()).unwrap()
    }

    /// A chunk with arbitrary column bytes (the codecs are not needed to store them).
    fn chunk(start: i64, end: i64, count: u32, timestamps: &[u8], values: &[u8]) -> EncodedChunk {
        EncodedChunk {
            meta: ChunkMeta {
                start: Timestamp(start),
                end: Timestamp(end),
                count,
                sum: 1.5 * f64::from(count),
                min: -0.0,
                max: f64::from(count),
                first: f64::NAN,
                last: f64::INFINITY,
            },
            encoding: ValueEncoding::Gorilla,
            timestamps: timestamps.into(),
            values: values.into(),
        }
    }

    /// Several series (one with a UTF-8 key), several chunks, both encodings, tombstones.
    fn sample_contents() -> SegmentContents {
        let mut decimal = chunk(5_000, 5_009, 10, &[9, 8, 7, 6], &[5, 4]);
        decimal.encoding = ValueEncoding::Decimal;
        SegmentContents {
            series: vec![
                SegmentSeries {
                    key: key("sensor_1|temperature"),
                    chunks: vec![
                        chunk(1_000, 1_999, 3, &[1, 2, 3, 4, 5], &[10, 20, 30]),
                        chunk(2_000, 2_000, 1, &[6], &[]),
                        decimal,
                    ],
                },
                SegmentSeries {
                    key: key("capteur_é|température_°C"),
                    chunks: vec![chunk(-50, 50, 2, &[0xff; 7], &[0x00; 3])],
                },
            ],
            tombstones: vec![key("gone|humidity"), key("設備|温度")],
        }
    }

    /// Compares contents bit for bit (NaN != NaN under `PartialEq`).
    fn assert_same(actual: &SegmentContents, expected: &SegmentContents) {
        assert_eq!(format!("{actual:?}"), format!("{expected:?}"));
        for (a, e) in actual.series.iter().zip(&expected.series) {
            for (a, e) in a.chunks.iter().zip(&e.chunks) {
                assert_eq!(a.meta.first.to_bits(), e.meta.first.to_bits());
                assert_eq!(a.meta.min.to_bits(), e.meta.min.to_bits());
            }
        }
    }

    /// The file offset and reason of a corrupt error; panics on anything else.
    fn corrupt<T: std::fmt::Debug>(result: Result<T>) -> (u64, String) {
        match result {
            Err(Error::Corrupt { offset, reason, .. }) => (offset, reason),
            other => panic!("expected a corrupt error, got {other:?}"),
        }
    }

    /// Rewrites the segment at `path` with its index changed by `patch` and a matching
    /// index CRC, so the reader gets past the checksum to the rule being tested.
    fn patch_index(path: &Path, patch: impl FnOnce(&mut Vec<u8>)) {
        let bytes = fs::read(path).unwrap();
        let trailer = bytes.len() - TRAILER_LEN as usize;
        let index_offset = u64::from_le_bytes(bytes[trailer..trailer + 8].try_into().unwrap());
        let mut index = bytes[index_offset as usize..trailer].to_vec();
        patch(&mut index);
        let mut out = bytes[..index_offset as usize].to_vec();
        out.extend_from_slice(&index);
        out.extend_from_slice(&index_offset.to_le_bytes());
        out.extend_from_slice(&(index.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&index).to_le_bytes());
        out.extend_from_slice(&TRAILER_MAGIC);
        fs::write(path, out).unwrap();
    }

    /// Index offset of the first chunk entry of `sample_contents()`: series count, key
    /// length, key, chunk count.
    /// Index bytes before the first series' key in [`sample_contents`]'s segment: the
    /// string table and the series count.
    fn first_key() -> usize {
        let contents = sample_contents();
        let mut table = Vec::new();
        StringTable::of(&contents.series).encode(&mut table);
        table.len() + 4
    }

    /// Index offset of the first chunk entry in [`sample_contents`]'s segment.
    fn first_entry() -> usize {
        let contents = sample_contents();
        let mut key = Vec::new();
        StringTable::of(&contents.series).put_key(&mut key, &contents.series[0].key);
        first_key() + key.len() + 4
    }

    fn write_sample(dir: &TempDir) -> PathBuf {
        let path = dir.join("000001.seg");
        write_segment(&path, &sample_contents()).unwrap();
        path
    }

    #[test]
    fn series_chunks_and_tombstones_round_trip() {
        let dir = TempDir::new("round-trip");
        let path = dir.join("000001.seg");
        let contents = sample_contents();
        let size = write_segment(&path, &contents).unwrap();
        assert_eq!(size, fs::metadata(&path).unwrap().len());
        assert_same(&read_segment(&path).unwrap(), &contents);
    }

    #[test]
    fn segment_with_only_tombstones_round_trips() {
        let dir = TempDir::new("tombstones-only");
        let path = dir.join("000001.seg");
        let contents = SegmentContents {
            series: vec![],
            tombstones: vec![key("ünï|cødé"), key("a|b")],
        };
        write_segment(&path, &contents).unwrap();
        assert_eq!(read_segment(&path).unwrap(), contents);
    }

    #[test]
    fn empty_segment_round_trips() {
        let dir = TempDir::new("empty");
        let path = dir.join("000001.seg");
        let size = write_segment(&path, &SegmentContents::default()).unwrap();
        assert_eq!(size, HEADER_LEN + 4 + 8 + TRAILER_LEN);
        assert_eq!(read_segment(&path).unwrap(), SegmentContents::default());
    }

    #[test]
    fn index_read_matches_full_read_and_read_chunk_returns_the_columns() {
        let dir = TempDir::new("index");
        let path = write_sample(&dir);
        let contents = sample_contents();
        let index = read_segment_index(&path).unwrap();
        assert_eq!(index.tombstones, contents.tombstones);
        assert_eq!(index.series.len(), contents.series.len());

        let file = File::open(&path).unwrap();
        for (series_index, series) in index.series.iter().zip(&contents.series) {
            assert_eq!(series_index.key, series.key);
            assert_eq!(series_index.chunks.len(), series.chunks.len());
            for (entry, chunk) in series_index.chunks.iter().zip(&series.chunks) {
                assert_eq!(format!("{:?}", entry.meta), format!("{:?}", chunk.meta));
                assert_eq!(entry.encoding, chunk.encoding);
                let read = read_chunk(&file, &path, entry).unwrap();
                assert_eq!(read.timestamps, chunk.timestamps);
                assert_eq!(read.values, chunk.values);
                assert_eq!(
                    entry.values_offset(),
                    entry.timestamps_offset + read.timestamps.len() as u64
                );
            }
        }
    }

    #[test]
    fn truncation_at_every_offset_is_an_error() {
        let dir = TempDir::new("truncate");
        let path = write_sample(&dir);
        let bytes = fs::read(&path).unwrap();
        let truncated = dir.join("truncated.seg");
        for len in 0..bytes.len() {
            fs::write(&truncated, &bytes[..len]).unwrap();
            let full = read_segment(&truncated);
            assert!(
                matches!(full, Err(Error::Corrupt { .. } | Error::Io { .. })),
                "truncated at {len}: read_segment gave {full:?}"
            );
            let index = read_segment_index(&truncated);
            assert!(
                matches!(index, Err(Error::Corrupt { .. } | Error::Io { .. })),
                "truncated at {len}: read_segment_index gave {index:?}"
            );
        }
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let dir = TempDir::new("bit-flip");
        let path = write_sample(&dir);
        let bytes = fs::read(&path).unwrap();
        let flipped = dir.join("flipped.seg");
        for position in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[position] ^= 1 << bit;
                fs::write(&flipped, &damaged).unwrap();
                let result = read_segment(&flipped);
                assert!(
                    matches!(result, Err(Error::Corrupt { .. })),
                    "bit {bit} of byte {position} flipped: read_segment gave {result:?}"
                );
            }
        }
    }

    #[test]
    fn damaged_chunk_is_reported_at_its_offset_while_the_index_still_reads() {
        let dir = TempDir::new("chunk-crc");
        let path = write_sample(&dir);
        let index = read_segment_index(&path).unwrap();
        let entry = index.series[0].chunks[2];
        let mut bytes = fs::read(&path).unwrap();
        bytes[entry.values_offset() as usize] ^= 0x40;
        fs::write(&path, &bytes).unwrap();

        let (offset, reason) = corrupt(read_segment(&path));
        assert_eq!(offset, entry.timestamps_offset);
        assert!(reason.contains("chunk checksum mismatch"), "{reason}");

        let reread = read_segment_index(&path).unwrap();
        assert_eq!(format!("{reread:?}"), format!("{index:?}"));
        let file = File::open(&path).unwrap();
        assert!(read_chunk(&file, &path, &index.series[0].chunks[0]).is_ok());
        let (offset, _) = corrupt(read_chunk(&file, &path, &entry));
        assert_eq!(offset, entry.timestamps_offset);
    }

    #[test]
    fn wrong_magic_is_corrupt() {
        let dir = TempDir::new("magic");
        let path = write_sample(&dir);
        let mut bytes = fs::read(&path).unwrap();
        bytes[..4].copy_from_slice(b"WAL0");
        fs::write(&path, &bytes).unwrap();
        let (offset, reason) = corrupt(read_segment_index(&path));
        assert_eq!(offset, 0);
        assert!(reason.contains("bad magic"), "{reason}");
    }

    #[test]
    fn unknown_version_is_corrupt() {
        let dir = TempDir::new("version");
        let path = write_sample(&dir);
        let mut bytes = fs::read(&path).unwrap();
        bytes[4] = VERSION as u8 + 1;
        fs::write(&path, &bytes).unwrap();
        let (offset, reason) = corrupt(read_segment(&path));
        assert_eq!(offset, 4);
        assert!(reason.contains("unsupported segment version"), "{reason}");
    }

    #[test]
    fn trailer_pointing_outside_the_file_is_corrupt() {
        let dir = TempDir::new("trailer");
        let path = write_sample(&dir);
        let mut bytes = fs::read(&path).unwrap();
        let trailer = bytes.len() - TRAILER_LEN as usize;
        let past_the_end = bytes.len() as u64 + 100;
        bytes[trailer..trailer + 8].copy_from_slice(&past_the_end.to_le_bytes());
        fs::write(&path, &bytes).unwrap();
        let (offset, reason) = corrupt(read_segment_index(&path));
        assert_eq!(offset, trailer as u64);
        assert!(reason.contains("trailer places the index"), "{reason}");
    }

    #[test]
    fn index_checksum_mismatch_is_corrupt() {
        let dir = TempDir::new("index-crc");
        let path = write_sample(&dir);
        let mut bytes = fs::read(&path).unwrap();
        let index_offset = index_offset(&bytes);
        bytes[index_offset as usize + first_entry() + 16] ^= 1; // the first chunk's count
        fs::write(&path, &bytes).unwrap();
        let (offset, reason) = corrupt(read_segment_index(&path));
        assert_eq!(offset, index_offset);
        assert!(reason.contains("index checksum mismatch"), "{reason}");
    }

    #[test]
    fn chunk_with_zero_count_is_corrupt() {
        let dir = TempDir::new("zero-count");
        let path = write_sample(&dir);
        patch_index(&path, |index| {
            index[first_entry() + 16..first_entry() + 20].copy_from_slice(&0u32.to_le_bytes());
        });
        let (offset, reason) = corrupt(read_segment(&path));
        assert_eq!(
            offset,
            index_offset(&fs::read(&path).unwrap()) + first_entry() as u64
        );
        assert!(reason.contains("chunk 0: count is 0"), "{reason}");
    }

    #[test]
    fn chunk_starting_after_its_end_is_corrupt() {
        let dir = TempDir::new("start-after-end");
        let path = write_sample(&dir);
        patch_index(&path, |index| {
            index[first_entry()..first_entry() + 8].copy_from_slice(&3_000i64.to_le_bytes());
        });
        let (_, reason) = corrupt(read_segment_index(&path));
        assert!(
            reason.contains("starts at 3000 after it ends at 1999"),
            "{reason}"
        );
    }

    #[test]
    fn unknown_value_encoding_is_corrupt() {
        let dir = TempDir::new("encoding");
        let path = write_sample(&dir);
        patch_index(&path, |index| index[first_entry() + 60] = 7);
        let (_, reason) = corrupt(read_segment(&path));
        assert!(reason.contains("unknown value encoding 7"), "{reason}");
    }

    #[test]
    fn chunk_columns_overlapping_the_index_are_corrupt() {
        let dir = TempDir::new("overlap");
        let path = write_sample(&dir);
        patch_index(&path, |index| {
            let values_len = first_entry() + 73;
            index[values_len..values_len + 4].copy_from_slice(&10_000u32.to_le_bytes());
        });
        let (_, reason) = corrupt(read_segment_index(&path));
        assert!(reason.contains("overlap the index"), "{reason}");
    }

    #[test]
    fn gap_in_the_data_region_is_corrupt() {
        let dir = TempDir::new("gap");
        let path = write_sample(&dir);
        patch_index(&path, |index| {
            let ts_offset = first_entry() + 61;
            index[ts_offset..ts_offset + 8].copy_from_slice(&7u64.to_le_bytes());
        });
        let (_, reason) = corrupt(read_segment_index(&path));
        assert!(
            reason.contains("previous chunk (or the header) ends at 6"),
            "{reason}"
        );
    }

    #[test]
    fn invalid_series_key_is_corrupt() {
        let dir = TempDir::new("bad-key");
        let path = write_sample(&dir);
        // The first string of the table (after its count and length) is the first series'
        // metric: its first byte becomes a control character.
        patch_index(&path, |index| index[4 + 2] = b'\n');
        let (offset, reason) = corrupt(read_segment(&path));
        assert_eq!(
            offset,
            index_offset(&fs::read(&path).unwrap()) + first_key() as u64
        );
        assert!(
            reason.contains("bad series key") && reason.contains("control characters"),
            "{reason}"
        );
    }

    #[test]
    fn a_key_naming_a_string_past_the_table_or_an_overlong_number_is_corrupt() {
        let dir = TempDir::new("bad-string-number");
        let path = write_sample(&dir);
        let key_at = first_key();
        let bytes = fs::read(&path).unwrap();
        let table_len = u32::from_le_bytes(
            bytes[index_offset(&bytes) as usize..][..4]
                .try_into()
                .unwrap(),
        );
        assert!(table_len < 0x7f, "one-byte numbers in the sample");
        patch_index(&path, |index| index[key_at] = 0x7f);
        let (offset, reason) = corrupt(read_segment(&path));
        assert_eq!(
            offset,
            index_offset(&fs::read(&path).unwrap()) + key_at as u64
        );
        assert!(
            reason.contains("metric string 127 is past the string table"),
            "{reason}"
        );
        let path = write_sample(&dir);
        // Five bytes of a number that would need more than 32 bits.
        patch_index(&path, |index| {
            index.splice(key_at..key_at + 1, [0xff, 0xff, 0xff, 0xff, 0x7f]);
        });
        let (_, reason) = corrupt(read_segment(&path));
        assert!(reason.contains("over 32 bits"), "{reason}");
    }

    #[test]
    fn missing_file_is_an_io_error_naming_the_path() {
        let dir = TempDir::new("missing");
        let path = dir.join("absent.seg");
        for result in [
            read_segment(&path).map(drop),
            read_segment_index(&path).map(drop),
        ] {
            match result {
                Err(Error::Io {
                    path: error_path, ..
                }) => assert_eq!(error_path, path),
                other => panic!("expected an io error, got {other:?}"),
            }
        }
    }

    #[test]
    fn write_leaves_no_temporary_file() {
        let dir = TempDir::new("no-tmp");
        let path = write_sample(&dir);
        assert!(!tmp_path(&path).exists());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [OsString::from("000001.seg")]);
    }

    #[test]
    fn stale_temporary_file_from_a_crashed_write_is_replaced() {
        let dir = TempDir::new("stale-tmp");
        let path = dir.join("000001.seg");
        fs::write(tmp_path(&path), vec![0xAB; 10_000]).unwrap();
        write_segment(&path, &sample_contents()).unwrap();
        assert!(!tmp_path(&path).exists());
        assert_same(&read_segment(&path).unwrap(), &sample_contents());
    }

    #[test]
    fn writer_refuses_a_chunk_the_reader_would_reject() {
        let dir = TempDir::new("refuse");
        let path = dir.join("000001.seg");
        let mut contents = sample_contents();
        contents.series[0].chunks[1].meta.count = 0;
        let result = write_segment(&path, &contents);
        assert!(
            matches!(result, Err(Error::InvalidInput { .. })),
            "{result:?}"
        );
        assert!(!path.exists() && !tmp_path(&path).exists());
    }

    #[test]
    fn writer_refuses_overlapping_chunks_and_duplicate_series() {
        let dir = TempDir::new("refuse-order");
        let path = dir.join("000001.seg");
        let mut overlapping = sample_contents();
        overlapping.series[0].chunks[1].meta.start = Timestamp(1_999);
        overlapping.series[0].chunks[1].meta.end = Timestamp(1_999);
        let mut duplicated = sample_contents();
        duplicated.series[1].key = duplicated.series[0].key.clone();
        for contents in [overlapping, duplicated] {
            let result = write_segment(&path, &contents);
            assert!(
                matches!(result, Err(Error::InvalidInput { .. })),
                "{result:?}"
            );
        }
    }

    #[test]
    fn golden_bytes_of_a_tiny_segment() {
        let dir = TempDir::new("golden");
        let path = dir.join("000001.seg");
        let contents = SegmentContents {
            series: vec![SegmentSeries {
                key: key("s|t"),
                chunks: vec![EncodedChunk {
                    meta: ChunkMeta {
                        start: Timestamp(1_000),
                        end: Timestamp(2_000),
                        count: 2,
                        sum: 3.0,
                        min: 1.0,
                        max: 2.0,
                        first: 1.0,
                        last: 2.0,
                    },
                    encoding: ValueEncoding::Gorilla,
                    timestamps: [0x01, 0x02].into(),
                    values: [0x03].into(),
                }],
            }],
            tombstones: vec![key("x|y")],
        };
        let expected: Vec<u8> = [
            &b"MTSG"[..],                    // 1.1 magic
            &[3, 0],                         // 1.2 version
            &[0x01, 0x02],                   // 2.1 timestamp column, at 6
            &[0x03],                         // 2.2 value column
            &[3, 0, 0, 0],                   // 3.1 string count, index at 9
            &[1, 0],                         //     string 0: length
            b"t",                            //     the metric
            &[9, 0],                         //     string 1
            b"device_id",                    //     a label name
            &[1, 0],                         //     string 2
            b"s",                            //     its value
            &[1, 0, 0, 0],                   // 3.2 series count
            &[0, 1, 1, 2],                   // 3.3.1 key: metric 0, one label: 1 = 2
            &[1, 0, 0, 0],                   // 3.3.2 chunk count
            &[0xe8, 0x03, 0, 0, 0, 0, 0, 0], // 3.3.3 start 1000
            &[0xd0, 0x07, 0, 0, 0, 0, 0, 0], //       end 2000
            &[2, 0, 0, 0],                   //       count
            &[0, 0, 0, 0, 0, 0, 0x08, 0x40], //       sum 3.0
            &[0, 0, 0, 0, 0, 0, 0xf0, 0x3f], //       min 1.0
            &[0, 0, 0, 0, 0, 0, 0x00, 0x40], //       max 2.0
            &[0, 0, 0, 0, 0, 0, 0xf0, 0x3f], //       first 1.0
            &[0, 0, 0, 0, 0, 0, 0x00, 0x40], //       last 2.0
            &[1],                            //       encoding Gorilla
            &[6, 0, 0, 0, 0, 0, 0, 0],       //       ts offset
            &[2, 0, 0, 0],                   //       ts len
            &[1, 0, 0, 0],                   //       values len
            &0x55bc_801d_u32.to_le_bytes(),  //       crc32 of 01 02 03
            &[1, 0, 0, 0],                   // 3.4 tombstone count
            &[19, 0],                        // 3.5 key length
            &[0, 1, 0],                      //     key: version 2, metric length
            b"y",                            //     metric
            &[1, 9, 0],                      //     label count, name length
            b"device_id",                    //     label name
            &[1, 0],                         //     value length
            b"x",                            //     value
            &[9, 0, 0, 0, 0, 0, 0, 0],       // 4.1 index offset
            &[139, 0, 0, 0, 0, 0, 0, 0],     // 4.2 index length
            &0x792c_e00a_u32.to_le_bytes(),  // 4.3 index crc32
            b"GSTM",                         // 4.4 magic
        ]
        .concat();
        assert_eq!(write_segment(&path, &contents).unwrap(), 172);
        assert_eq!(fs::read(&path).unwrap(), expected);
        assert_eq!(read_segment(&path).unwrap(), contents);
    }

    fn index_offset(bytes: &[u8]) -> u64 {
        let trailer = bytes.len() - TRAILER_LEN as usize;
        u64::from_le_bytes(bytes[trailer..trailer + 8].try_into().unwrap())
    }
}
