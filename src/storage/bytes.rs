//! Little-endian bytes for the binary formats (WAL records, segments): a bounds-checked
//! cursor for reading, and the length-prefixed series key both formats store. One copy, so
//! the two formats cannot drift apart in how they read a key or a number; each format wraps
//! [`ShortRead`] into its own error (a WAL payload offset, a segment file offset).

use crate::storage::SeriesKey;

/// A read that wanted more bytes than were left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShortRead {
    /// Position (from the cursor's start) of the read.
    pub at: usize,
    pub wanted: usize,
    pub left: usize,
}

/// Reads numbers and slices off the front of a byte slice, never past its end.
#[derive(Clone, Debug)]
pub struct ByteCursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> ByteCursor<'a> {
    pub fn new(bytes: &'a [u8]) -> ByteCursor<'a> {
        ByteCursor { bytes, position: 0 }
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.position
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    /// The next `len` bytes.
    pub fn take(&mut self, len: usize) -> Result<&'a [u8], ShortRead> {
        let left = self.remaining();
        if len > left {
            return Err(ShortRead {
                at: self.position,
                wanted: len,
                left,
            });
        }
        let taken = &self.bytes[self.position..self.position + len];
        self.position += len;
        Ok(taken)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], ShortRead> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    pub fn u8(&mut self) -> Result<u8, ShortRead> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, ShortRead> {
        self.array().map(u16::from_le_bytes)
    }

    pub fn u32(&mut self) -> Result<u32, ShortRead> {
        self.array().map(u32::from_le_bytes)
    }

    pub fn u64(&mut self) -> Result<u64, ShortRead> {
        self.array().map(u64::from_le_bytes)
    }

    pub fn i64(&mut self) -> Result<i64, ShortRead> {
        self.array().map(i64::from_le_bytes)
    }

    /// An `f64` stored as its IEEE-754 bits, so every bit pattern round-trips.
    pub fn f64(&mut self) -> Result<f64, ShortRead> {
        self.u64().map(f64::from_bits)
    }
}

/// Appends `key` as a u16 length and its stored form ([`SeriesKey::encode`]). A valid key
/// is at most 41,348 bytes (see [`series_key`](super::series_key)), so the length fits.
pub fn put_key(out: &mut Vec<u8>, key: &SeriesKey) {
    out.extend_from_slice(&(key.encoded_len() as u16).to_le_bytes());
    key.encode(out);
}

/// Bytes [`put_key`] appends for `key`.
pub fn put_key_len(key: &SeriesKey) -> usize {
    2 + key.encoded_len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_and_refuses_to_run_past_the_end() {
        let mut bytes = vec![7u8];
        bytes.extend_from_slice(&0x0102u16.to_le_bytes());
        bytes.extend_from_slice(&(-5i64).to_le_bytes());
        bytes.extend_from_slice(&f64::NAN.to_bits().to_le_bytes());
        let mut cursor = ByteCursor::new(&bytes);
        assert_eq!(cursor.u8(), Ok(7));
        assert_eq!(cursor.u16(), Ok(0x0102));
        assert_eq!(cursor.i64(), Ok(-5));
        assert_eq!(cursor.f64().map(f64::to_bits), Ok(f64::NAN.to_bits()));
        assert_eq!(
            cursor.u32(),
            Err(ShortRead {
                at: 19,
                wanted: 4,
                left: 0
            })
        );
        assert_eq!(cursor.position(), 19, "a short read consumes nothing");
    }

    #[test]
    fn key_round_trips_behind_its_length() {
        let key = SeriesKey::with_labels("m", [("device_id", "d"), ("room", "lab")]).unwrap();
        let mut out = Vec::new();
        put_key(&mut out, &key);
        assert_eq!(out.len(), put_key_len(&key));
        let mut cursor = ByteCursor::new(&out);
        let len = cursor.u16().unwrap();
        assert_eq!(
            SeriesKey::decode(cursor.take(usize::from(len)).unwrap()),
            Ok(key)
        );
    }
}
