//! The WAL's on-disk format: the file header, record framing (marker, length, CRC), and
//! the payload encoding of entries. Pure functions on bytes; the layout is described in the
//! [module docs](super).

use crate::error::{Error, Result};
use crate::storage::bytes::{put_key, put_key_len, ByteCursor, ShortRead};
use crate::storage::series_key::KeyHashState;
use crate::storage::{group_by_series, Point, SeriesKey, Timestamp};
use std::collections::HashMap;

/// The first four bytes of every WAL file.
pub const FILE_MAGIC: [u8; 4] = *b"MTWL";
/// The format version this code writes. Version 3 names a series by a number after its
/// first entry in a file; version 2 stores every entry's series key (with labels), version 1
/// keys `device|metric` (see [`SeriesKey::decode`]); both are still read.
pub const FORMAT_VERSION: u16 = 3;
/// The oldest format version this code reads.
pub const OLDEST_READABLE_VERSION: u16 = 1;
/// Length of the file header: magic, version, reserved.
pub const FILE_HEADER_LEN: usize = 8;
/// The first four bytes of every record, chosen to be unlikely in text and small numbers.
pub const RECORD_MARKER: u32 = 0xE71A_9CB5;
/// Length of a record's header: marker, payload length, checksum.
pub const RECORD_HEADER_LEN: usize = 12;
/// Largest payload of one record (one `append` call), about 4 million points. Recovery treats a
/// larger length field as corruption.
pub const MAX_RECORD_LEN: usize = 64 << 20;

/// Points of the series whose key follows (written by versions 1 and 2).
pub(super) const ENTRY_POINTS: u8 = 1;
/// Deletes the series whose key follows (every version).
pub(super) const ENTRY_DELETE_SERIES: u8 = 2;
/// Points of a series, naming it with a number and its key: from here on in this file, until
/// redefined, the number stands for the key (version 3).
pub(super) const ENTRY_POINTS_NEW_SERIES: u8 = 3;
/// Points of the series a number stands for (version 3).
pub(super) const ENTRY_POINTS_BY_ID: u8 = 4;
/// Record bytes after which the writer starts numbering series afresh (every key written
/// whole again): a corrupt record can take the definitions of the records after it only up
/// to there.
pub const SERIES_IDS_SPAN_BYTES: usize = 16 << 20;
/// Most series one numbering holds before the writer starts afresh (bounds its memory).
pub(super) const MAX_SERIES_IDS: usize = 1 << 20;
/// Encoded size of one `(timestamp, value)` pair.
pub(super) const POINT_LEN: usize = 16;

/// One logical change, as given to [`Wal::append`](super::Wal::append).
#[derive(Clone, Copy, Debug)]
pub enum WalEntryRef<'a> {
    Points {
        series: &'a SeriesKey,
        points: &'a [(Timestamp, f64)],
    },
    DeleteSeries(&'a SeriesKey),
}

/// One logical change, as read back by [`replay`](super::replay).
#[derive(Clone, Debug, PartialEq)]
pub enum WalEntry {
    Points {
        series: SeriesKey,
        points: Vec<(Timestamp, f64)>,
    },
    DeleteSeries(SeriesKey),
}

impl WalEntry {
    /// This entry in the borrowed form [`Wal::append`](super::Wal::append) takes.
    pub fn borrowed(&self) -> WalEntryRef<'_> {
        match self {
            WalEntry::Points { series, points } => WalEntryRef::Points { series, points },
            WalEntry::DeleteSeries(series) => WalEntryRef::DeleteSeries(series),
        }
    }
}

pub(super) fn check_file_header(data: &[u8]) -> std::result::Result<(), String> {
    let mut header = ByteCursor::new(data);
    let cut_short = |_| {
        format!(
            "file header cut short ({} of {FILE_HEADER_LEN} bytes)",
            data.len()
        )
    };
    let magic: [u8; 4] = header.array().map_err(cut_short)?;
    if magic != FILE_MAGIC {
        return Err(format!(
            "not a wal file (magic {magic:02x?}, expected {FILE_MAGIC:02x?})"
        ));
    }
    let version = header.u16().map_err(cut_short)?;
    if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(format!(
            "unsupported wal format version {version} (this build reads \
             {OLDEST_READABLE_VERSION} to {FORMAT_VERSION})"
        ));
    }
    Ok(())
}

pub(super) fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut header = [0; FILE_HEADER_LEN];
    header[0..4].copy_from_slice(&FILE_MAGIC);
    header[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header
}

/// The payload of the record at `pos` and the offset just past it, if its header and
/// checksum are sound.
pub(super) fn read_frame(data: &[u8], pos: usize) -> std::result::Result<(&[u8], usize), String> {
    let rest = &data[pos..];
    let mut header = ByteCursor::new(rest);
    let cut_short = |_| {
        format!(
            "record header cut short ({} of {RECORD_HEADER_LEN} bytes)",
            rest.len()
        )
    };
    let [marker, payload_len, stored] = [header.u32(), header.u32(), header.u32()];
    let (marker, payload_len, stored) = (
        marker.map_err(cut_short)?,
        payload_len.map_err(cut_short)? as usize,
        stored.map_err(cut_short)?,
    );
    if marker != RECORD_MARKER {
        return Err(format!(
            "no record marker (found {marker:#010x}, expected {RECORD_MARKER:#010x})"
        ));
    }
    if payload_len > MAX_RECORD_LEN {
        return Err(format!(
            "record length {payload_len} exceeds the limit of {MAX_RECORD_LEN} bytes"
        ));
    }
    let available = rest.len() - RECORD_HEADER_LEN;
    if payload_len > available {
        return Err(format!(
            "record of {payload_len} bytes runs past the end of the file ({available} left)"
        ));
    }
    let payload = &rest[RECORD_HEADER_LEN..RECORD_HEADER_LEN + payload_len];
    let computed = record_crc(&rest[4..8], payload);
    if stored != computed {
        return Err(format!(
            "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
        ));
    }
    Ok((payload, pos + RECORD_HEADER_LEN + payload_len))
}

/// Offset of the first sound record starting at or after `from`.
pub(super) fn resync(data: &[u8], from: usize) -> Option<usize> {
    let marker = RECORD_MARKER.to_le_bytes();
    let mut at = from;
    while at + RECORD_HEADER_LEN <= data.len() {
        let candidate = at + data[at..].windows(4).position(|w| w == marker)?;
        if read_frame(data, candidate).is_ok() {
            return Some(candidate);
        }
        at = candidate + 1;
    }
    None
}

pub(super) fn record_crc(len_field: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(len_field);
    hasher.update(payload);
    hasher.finalize()
}

/// The largest payload `entries` can encode to: every points entry with its key whole and
/// its number.
pub(super) fn encoded_payload_len(entries: &[WalEntryRef<'_>]) -> usize {
    entries
        .iter()
        .map(|entry| match entry {
            WalEntryRef::Points { series, points } => (1 + 4 + put_key_len(series) + 4)
                .saturating_add(points.len().saturating_mul(POINT_LEN)),
            WalEntryRef::DeleteSeries(series) => 1 + put_key_len(series),
        })
        .fold(0, usize::saturating_add)
}

/// The writer's numbering of series in the records it appends to one file: a series' first
/// points entry carries its key and number, later ones only the number.
#[derive(Default)]
pub(super) struct SeriesIds {
    ids: HashMap<SeriesKey, u32, KeyHashState>,
    /// Record bytes encoded since this numbering started.
    bytes: usize,
}

impl SeriesIds {
    /// Forgets every number: the next entry of each series carries its key again. Called
    /// whenever the records that follow may not land in the same file, right after the
    /// records before (a new file, a failed write).
    pub(super) fn reset(&mut self) {
        self.ids.clear();
        self.bytes = 0;
    }
}

/// Appends one whole record (header and payload) for `entries` to `buf`, numbering series
/// with `ids`. On an error nothing is appended and `ids` is unchanged.
pub(super) fn encode_record(
    buf: &mut Vec<u8>,
    entries: &[WalEntryRef<'_>],
    ids: &mut SeriesIds,
) -> Result<()> {
    let bound = encoded_payload_len(entries);
    if bound > MAX_RECORD_LEN {
        return Err(Error::invalid(
            "wal batch",
            format!("encodes to {bound} bytes, over the {MAX_RECORD_LEN}-byte record limit"),
        ));
    }
    if ids.bytes > SERIES_IDS_SPAN_BYTES || ids.ids.len() > MAX_SERIES_IDS {
        ids.reset();
    }
    let start = buf.len();
    buf.reserve(RECORD_HEADER_LEN + bound);
    buf.extend_from_slice(&RECORD_MARKER.to_le_bytes());
    buf.extend_from_slice(&[0; 8]); // length and checksum, filled in once the payload is written
    for entry in entries {
        match entry {
            WalEntryRef::Points { series, points } => {
                let next = ids.ids.len() as u32; // at most MAX_SERIES_IDS + one record's
                match ids.ids.get(*series) {
                    Some(id) => {
                        buf.push(ENTRY_POINTS_BY_ID);
                        buf.extend_from_slice(&id.to_le_bytes());
                    }
                    None => {
                        ids.ids.insert((*series).clone(), next);
                        buf.push(ENTRY_POINTS_NEW_SERIES);
                        buf.extend_from_slice(&next.to_le_bytes());
                        put_key(buf, series);
                    }
                }
                // Fits: the whole payload is at most MAX_RECORD_LEN bytes.
                buf.extend_from_slice(&(points.len() as u32).to_le_bytes());
                let at = buf.len();
                buf.resize(at + points.len() * POINT_LEN, 0);
                for (slot, (ts, value)) in buf[at..].chunks_exact_mut(POINT_LEN).zip(*points) {
                    slot[..8].copy_from_slice(&ts.0.to_le_bytes());
                    slot[8..].copy_from_slice(&value.to_bits().to_le_bytes());
                }
            }
            WalEntryRef::DeleteSeries(series) => {
                buf.push(ENTRY_DELETE_SERIES);
                put_key(buf, series);
            }
        }
    }
    let payload_len = buf.len() - start - RECORD_HEADER_LEN;
    debug_assert!(payload_len <= bound);
    // Fits: at most MAX_RECORD_LEN.
    buf[start + 4..start + 8].copy_from_slice(&(payload_len as u32).to_le_bytes());
    let crc = record_crc(
        &buf[start + 4..start + 8],
        &buf[start + RECORD_HEADER_LEN..],
    );
    buf[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
    ids.bytes += buf.len() - start;
    Ok(())
}

/// The entries of one record's payload; the error names the payload byte where parsing
/// failed. `ids` holds the series numbers the file's earlier records defined; this record's
/// definitions are added only when the whole record decodes.
pub(super) fn decode_payload(
    payload: &[u8],
    ids: &mut HashMap<u32, SeriesKey>,
) -> std::result::Result<Vec<WalEntry>, String> {
    let mut entries = Vec::new();
    // This record's definitions, kept apart until it has decoded whole.
    let mut defined: HashMap<u32, SeriesKey> = HashMap::new();
    let mut reader = ByteCursor::new(payload);
    let short = |s: ShortRead| {
        format!(
            "entry field of {} bytes at payload byte {} runs past the payload ({} left)",
            s.wanted, s.at, s.left
        )
    };
    let key = |reader: &mut ByteCursor<'_>, entry_at: usize| {
        let key_len = reader.u16().map_err(short)?;
        let key_bytes = reader.take(usize::from(key_len)).map_err(short)?;
        SeriesKey::decode(key_bytes).map_err(|e| format!("entry at payload byte {entry_at}: {e}"))
    };
    while reader.remaining() > 0 {
        let entry_at = reader.position();
        let entry_type = reader.u8().map_err(short)?;
        let series = match entry_type {
            ENTRY_POINTS | ENTRY_DELETE_SERIES => key(&mut reader, entry_at)?,
            ENTRY_POINTS_NEW_SERIES => {
                let id = reader.u32().map_err(short)?;
                let series = key(&mut reader, entry_at)?;
                defined.insert(id, series.clone());
                series
            }
            ENTRY_POINTS_BY_ID => {
                let id = reader.u32().map_err(short)?;
                let found = defined.get(&id).or_else(|| ids.get(&id));
                match found {
                    Some(series) => series.clone(),
                    None => {
                        return Err(format!(
                            "entry at payload byte {entry_at}: series number {id} is not \
                             defined earlier in this file"
                        ))
                    }
                }
            }
            other => {
                return Err(format!(
                    "unknown entry type {other} at payload byte {entry_at}"
                ))
            }
        };
        if entry_type == ENTRY_DELETE_SERIES {
            entries.push(WalEntry::DeleteSeries(series));
            continue;
        }
        let count = reader.u32().map_err(short)? as usize;
        let bytes = reader
            .take(count.saturating_mul(POINT_LEN))
            .map_err(short)?;
        let points = bytes
            .chunks_exact(POINT_LEN)
            .map(|p| {
                // chunks_exact hands out exactly POINT_LEN = 16 bytes: the timestamp, then
                // the value's bits.
                let (ts, value) = p.split_at(8);
                let ts = i64::from_le_bytes(ts.try_into().unwrap_or([0; 8]));
                let bits = u64::from_le_bytes(value.try_into().unwrap_or([0; 8]));
                (Timestamp(ts), f64::from_bits(bits))
            })
            .collect();
        entries.push(WalEntry::Points { series, points });
    }
    ids.extend(defined);
    Ok(entries)
}

/// Most payload bytes one [`encode_batches`] body holds (counting every key whole):
/// half of what a node takes in one internal write, so a batch always fits.
pub const MAX_BATCH_BYTES: usize = 8 << 20;

/// `points` as WAL records, the wire form of a write between nodes (`POST
/// /internal/write?format=wal`): each a whole record (marker, length, CRC-32, entries) with
/// its own series numbering, so every body decodes on its own ([`decode_batch`]). Points
/// are grouped by series in order of first appearance; a body holds at most
/// [`MAX_BATCH_BYTES`], so many points make several bodies.
pub fn encode_batches(points: &[Point]) -> Result<Vec<Vec<u8>>> {
    let order = group_by_series(points, |p| (p.timestamp, p.value));
    let mut bodies = Vec::new();
    let mut entries: Vec<WalEntryRef<'_>> = Vec::new();
    let mut bound = 0;
    for (series, group) in &order {
        // A series with more points than one body holds is cut into several entries.
        for part in group.chunks((MAX_BATCH_BYTES / POINT_LEN / 2).max(1)) {
            let entry = WalEntryRef::Points {
                series,
                points: part,
            };
            let len = encoded_payload_len(&[entry]);
            if !entries.is_empty() && bound + len > MAX_BATCH_BYTES {
                let mut body = Vec::new();
                encode_record(&mut body, &entries, &mut SeriesIds::default())?;
                bodies.push(body);
                entries.clear();
                bound = 0;
            }
            entries.push(entry);
            bound += len;
        }
    }
    if !entries.is_empty() {
        let mut body = Vec::new();
        encode_record(&mut body, &entries, &mut SeriesIds::default())?;
        bodies.push(body);
    }
    Ok(bodies)
}

/// The entries of one body [`encode_batches`] made, checked whole: its record frame and
/// CRC, nothing after it, every key valid; the error says what is wrong.
pub fn decode_batch(body: &[u8]) -> std::result::Result<Vec<WalEntry>, String> {
    if body.len() < RECORD_HEADER_LEN {
        return Err(format!(
            "{} bytes, shorter than a record header ({RECORD_HEADER_LEN})",
            body.len()
        ));
    }
    let (payload, end) = read_frame(body, 0)?;
    if end != body.len() {
        return Err(format!(
            "{} bytes after the record's {end}",
            body.len() - end
        ));
    }
    decode_payload(payload, &mut HashMap::new())
}
