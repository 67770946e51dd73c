//! The WAL's on-disk format: the file header, record framing (marker, length, CRC), and
//! the payload encoding of entries. Pure functions on bytes; the layout is described in the
//! [module docs](super).

use crate::error::{Error, Result};
use crate::storage::bytes::{put_key, put_key_len, ByteCursor, ShortRead};
use crate::storage::{SeriesKey, Timestamp};

/// The first four bytes of every WAL file.
pub const FILE_MAGIC: [u8; 4] = *b"MTWL";
/// The format version this code writes. Version 2 stores series keys with labels; version
/// 1 files (keys `device|metric`) are still read (see [`SeriesKey::decode`]).
pub const FORMAT_VERSION: u16 = 2;
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

pub(super) const ENTRY_POINTS: u8 = 1;
pub(super) const ENTRY_DELETE_SERIES: u8 = 2;
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

pub(super) fn encoded_payload_len(entries: &[WalEntryRef<'_>]) -> usize {
    entries
        .iter()
        .map(|entry| match entry {
            WalEntryRef::Points { series, points } => {
                (1 + put_key_len(series) + 4).saturating_add(points.len().saturating_mul(POINT_LEN))
            }
            WalEntryRef::DeleteSeries(series) => 1 + put_key_len(series),
        })
        .fold(0, usize::saturating_add)
}

/// One whole record (header and payload) for `entries`, in one allocation.
pub(super) fn encode_record(entries: &[WalEntryRef<'_>]) -> Result<Vec<u8>> {
    let payload_len = encoded_payload_len(entries);
    if payload_len > MAX_RECORD_LEN {
        return Err(Error::invalid(
            "wal batch",
            format!("encodes to {payload_len} bytes, over the {MAX_RECORD_LEN}-byte record limit"),
        ));
    }
    let mut buf = Vec::with_capacity(RECORD_HEADER_LEN + payload_len);
    buf.extend_from_slice(&RECORD_MARKER.to_le_bytes());
    buf.extend_from_slice(&(payload_len as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]); // the checksum, filled in once the payload is written
    for entry in entries {
        match entry {
            WalEntryRef::Points { series, points } => {
                buf.push(ENTRY_POINTS);
                put_key(&mut buf, series);
                // Fits: the whole payload is at most MAX_RECORD_LEN bytes.
                buf.extend_from_slice(&(points.len() as u32).to_le_bytes());
                let start = buf.len();
                buf.resize(start + points.len() * POINT_LEN, 0);
                for (slot, (ts, value)) in buf[start..].chunks_exact_mut(POINT_LEN).zip(*points) {
                    slot[..8].copy_from_slice(&ts.0.to_le_bytes());
                    slot[8..].copy_from_slice(&value.to_bits().to_le_bytes());
                }
            }
            WalEntryRef::DeleteSeries(series) => {
                buf.push(ENTRY_DELETE_SERIES);
                put_key(&mut buf, series);
            }
        }
    }
    debug_assert_eq!(buf.len(), RECORD_HEADER_LEN + payload_len);
    let crc = record_crc(&buf[4..8], &buf[RECORD_HEADER_LEN..]);
    buf[8..12].copy_from_slice(&crc.to_le_bytes());
    Ok(buf)
}

/// The entries of one record's payload; the error names the payload byte where parsing failed.
pub(super) fn decode_payload(payload: &[u8]) -> std::result::Result<Vec<WalEntry>, String> {
    let mut entries = Vec::new();
    let mut reader = ByteCursor::new(payload);
    let short = |s: ShortRead| {
        format!(
            "entry field of {} bytes at payload byte {} runs past the payload ({} left)",
            s.wanted, s.at, s.left
        )
    };
    while reader.remaining() > 0 {
        let entry_at = reader.position();
        let entry_type = reader.u8().map_err(short)?;
        let key_len = reader.u16().map_err(short)?;
        let key_bytes = reader.take(usize::from(key_len)).map_err(short)?;
        let series = SeriesKey::decode(key_bytes)
            .map_err(|e| format!("entry at payload byte {entry_at}: {e}"))?;
        match entry_type {
            ENTRY_POINTS => {
                let count = reader.u32().map_err(short)? as usize;
                let bytes = reader
                    .take(count.saturating_mul(POINT_LEN))
                    .map_err(short)?;
                let points = bytes
                    .chunks_exact(POINT_LEN)
                    .map(|p| {
                        // chunks_exact hands out exactly POINT_LEN = 16 bytes: the
                        // timestamp, then the value's bits.
                        let (ts, value) = p.split_at(8);
                        let ts = i64::from_le_bytes(ts.try_into().unwrap_or([0; 8]));
                        let bits = u64::from_le_bytes(value.try_into().unwrap_or([0; 8]));
                        (Timestamp(ts), f64::from_bits(bits))
                    })
                    .collect();
                entries.push(WalEntry::Points { series, points });
            }
            ENTRY_DELETE_SERIES => entries.push(WalEntry::DeleteSeries(series)),
            other => {
                return Err(format!(
                    "unknown entry type {other} at payload byte {entry_at}"
                ))
            }
        }
    }
    Ok(entries)
}
