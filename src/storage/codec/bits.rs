//! Bit-level writing and reading, most significant bit first.
//!
//! Every compressed column is a bit stream: [`BitWriter`] packs fields of 0 to 64 bits into
//! bytes, [`BitReader`] takes them back out. Both move whole fields through a 64-bit
//! register rather than looping per bit, because the codecs call them once or twice per
//! value and that cost is the codecs' speed.
//!
//! Bit order: the first bit written is the most significant bit of the first byte. A field
//! of `n` bits is written most significant bit first. The final byte is padded with zero
//! bits. For example writing `1` in 1 bit, then `0b010` in 3 bits, then `0b1111` in 4 bits
//! gives the single byte `0b1010_1111`.
//!
//! The reader never reads past its slice: asking for more bits than remain is a
//! [`DecodeError`], which is how decoders notice truncated input.

use super::DecodeError;

/// Packs bit fields into bytes appended to a `Vec<u8>`.
pub struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    /// Pending bits, left-aligned: the oldest pending bit is bit 63.
    acc: u64,
    /// How many bits of `acc` are pending (0..=63 between calls).
    used: u32,
}

impl<'a> BitWriter<'a> {
    /// Starts writing at the end of `out` (existing bytes are kept).
    pub fn new(out: &'a mut Vec<u8>) -> BitWriter<'a> {
        BitWriter {
            out,
            acc: 0,
            used: 0,
        }
    }

    /// Writes the low `n` bits of `value` (0 <= n <= 64), most significant first. Higher bits
    /// of `value` are ignored.
    #[inline]
    pub fn write_bits(&mut self, value: u64, n: u32) {
        debug_assert!(n <= 64);
        if n == 0 {
            return;
        }
        let value = value & (u64::MAX >> (64 - n));
        let free = 64 - self.used;
        if n < free {
            self.acc |= value << (free - n);
            self.used += n;
        } else {
            // Fill the register, flush it, and keep the remaining low `rest` bits pending.
            let rest = n - free;
            self.acc |= value >> rest;
            self.out.extend_from_slice(&self.acc.to_be_bytes());
            self.acc = if rest == 0 { 0 } else { value << (64 - rest) };
            self.used = rest;
        }
    }

    /// Writes one bit.
    #[inline]
    pub fn write_bit(&mut self, bit: bool) {
        self.write_bits(u64::from(bit), 1);
    }

    /// Writes `n` one bits (0 <= n <= 64).
    #[inline]
    pub fn write_ones(&mut self, n: u32) {
        self.write_bits(u64::MAX, n);
    }

    /// Flushes pending bits, padding the last byte with zeros.
    pub fn finish(self) {
        let bytes = self.used.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.acc.to_be_bytes()[..bytes]);
    }
}

/// Reads bit fields back from a byte slice.
pub struct BitReader<'a> {
    bytes: &'a [u8],
    /// Index of the next byte not yet counted in `avail`.
    pos: usize,
    /// Upcoming bits, left-aligned. Only the top `avail` bits are counted as loaded; the bits
    /// below them are either zero or already hold the bytes from `pos` on, at the position
    /// they will be loaded to (loading ORs the same bits in again).
    buf: u64,
    /// How many bits of `buf` are loaded (0..=64).
    avail: u32,
}

/// The largest field [`BitReader`] serves from its register in one step; wider fields are
/// split in two.
const MAX_DIRECT_BITS: u32 = 56;

impl<'a> BitReader<'a> {
    pub fn new(bytes: &'a [u8]) -> BitReader<'a> {
        BitReader {
            bytes,
            pos: 0,
            buf: 0,
            avail: 0,
        }
    }

    /// Loads bytes until at least 57 bits are available or the input is exhausted. Only
    /// called with `avail <= 56`.
    #[inline]
    fn refill(&mut self) {
        debug_assert!(self.avail <= MAX_DIRECT_BITS);
        if let Some(word) = self.bytes.get(self.pos..self.pos + 8) {
            let word = u64::from_be_bytes(word.try_into().expect("slice of 8 bytes"));
            self.buf |= word >> self.avail;
            // Count whole bytes only: the partial byte at the bottom is loaded again later.
            self.pos += (63 - self.avail as usize) >> 3;
            self.avail |= 56;
        } else {
            while self.avail <= MAX_DIRECT_BITS && self.pos < self.bytes.len() {
                self.buf |= u64::from(self.bytes[self.pos]) << (MAX_DIRECT_BITS - self.avail);
                self.pos += 1;
                self.avail += 8;
            }
        }
    }

    #[inline]
    fn consume(&mut self, n: u32) {
        debug_assert!(n <= self.avail && n < 64);
        self.buf <<= n;
        self.avail -= n;
    }

    fn out_of_bits(&self, wanted: u32) -> DecodeError {
        DecodeError(format!(
            "bit stream ends early: wanted {wanted} more bits after byte {} of {}",
            self.pos.saturating_sub(self.avail.div_ceil(8) as usize),
            self.bytes.len()
        ))
    }

    /// Reads an `n`-bit field (0 <= n <= 64).
    #[inline]
    pub fn read_bits(&mut self, n: u32) -> Result<u64, DecodeError> {
        debug_assert!(n <= 64);
        if n == 0 {
            return Ok(0);
        }
        if n > MAX_DIRECT_BITS {
            let high = self.read_bits(n - 32)?;
            let low = self.read_bits(32)?;
            return Ok(high << 32 | low);
        }
        if self.avail < n {
            self.refill();
            if self.avail < n {
                return Err(self.out_of_bits(n));
            }
        }
        let value = self.buf >> (64 - n);
        self.consume(n);
        Ok(value)
    }

    /// Reads one bit.
    #[inline]
    pub fn read_bit(&mut self) -> Result<bool, DecodeError> {
        Ok(self.read_bits(1)? == 1)
    }

    /// Reads a unary count capped at `max` (1 <= max <= 56): counts one bits up to the first
    /// zero bit, which is consumed too, and returns the count. After `max` ones it stops
    /// without a terminating zero and returns `max`.
    #[inline]
    pub fn read_unary(&mut self, max: u32) -> Result<u32, DecodeError> {
        debug_assert!((1..=MAX_DIRECT_BITS).contains(&max));
        if self.avail <= max {
            self.refill();
        }
        let ones = (!self.buf).leading_zeros();
        if ones >= max {
            if self.avail < max {
                return Err(self.out_of_bits(max));
            }
            self.consume(max);
            Ok(max)
        } else {
            if self.avail < ones + 1 {
                return Err(self.out_of_bits(ones + 1));
            }
            self.consume(ones + 1);
            Ok(ones)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mask(value: u64, n: u32) -> u64 {
        if n == 0 {
            0
        } else {
            value & (u64::MAX >> (64 - n))
        }
    }

    #[test]
    fn fields_are_packed_most_significant_bit_first() {
        let mut out = Vec::new();
        let mut w = BitWriter::new(&mut out);
        w.write_bits(1, 1);
        w.write_bits(0b010, 3);
        w.write_bits(0b1111, 4);
        w.write_bits(0b101, 3);
        w.finish();
        assert_eq!(out, [0b1010_1111, 0b1010_0000]);
    }

    #[test]
    fn writer_appends_after_existing_bytes() {
        let mut out = vec![0xAB];
        let mut w = BitWriter::new(&mut out);
        w.write_bits(0xCD, 8);
        w.finish();
        assert_eq!(out, [0xAB, 0xCD]);
    }

    #[test]
    fn full_width_fields_survive_unaligned_positions() {
        let mut out = Vec::new();
        let mut w = BitWriter::new(&mut out);
        w.write_bit(true);
        w.write_bits(u64::MAX, 64);
        w.write_bits(0x8000_0000_0000_0001, 64);
        w.finish();
        let mut r = BitReader::new(&out);
        assert!(r.read_bit().unwrap());
        assert_eq!(r.read_bits(64).unwrap(), u64::MAX);
        assert_eq!(r.read_bits(64).unwrap(), 0x8000_0000_0000_0001);
    }

    #[test]
    fn reading_past_the_end_is_an_error() {
        let mut r = BitReader::new(&[0xFF]);
        assert_eq!(r.read_bits(7).unwrap(), 0x7F);
        assert!(r.read_bits(2).is_err());
        assert!(BitReader::new(&[]).read_bit().is_err());
        assert!(BitReader::new(&[0; 7]).read_bits(57).is_err());
    }

    #[test]
    fn unary_stops_at_zero_or_at_max() {
        // 1110 1111 1000 0000
        let bytes = [0b1110_1111, 0b1000_0000];
        let mut r = BitReader::new(&bytes);
        assert_eq!(r.read_unary(8).unwrap(), 3);
        assert_eq!(r.read_unary(4).unwrap(), 4);
        assert_eq!(r.read_unary(4).unwrap(), 1);
        assert_eq!(r.read_bits(6).unwrap(), 0);
        assert!(r.read_unary(1).is_err());
    }

    #[test]
    fn unary_running_into_the_end_is_an_error() {
        assert!(BitReader::new(&[0xFF]).read_unary(16).is_err());
        assert_eq!(BitReader::new(&[0xFF]).read_unary(8).unwrap(), 8);
    }

    proptest! {
        #[test]
        fn any_sequence_of_fields_round_trips(
            fields in prop::collection::vec((any::<u64>(), 0u32..=64), 0..200)
        ) {
            let mut out = Vec::new();
            let mut w = BitWriter::new(&mut out);
            for &(value, n) in &fields {
                w.write_bits(value, n);
            }
            w.finish();
            let total: u32 = fields.iter().map(|f| f.1).sum();
            prop_assert_eq!(out.len(), total.div_ceil(8) as usize);
            let mut r = BitReader::new(&out);
            for &(value, n) in &fields {
                prop_assert_eq!(r.read_bits(n).unwrap(), mask(value, n));
            }
            // Only padding is left.
            prop_assert!(r.read_bits(8).is_err());
        }

        #[test]
        fn unary_counts_round_trip(
            counts in prop::collection::vec((0u32..=16, 1u32..=16), 0..200)
        ) {
            let mut out = Vec::new();
            let mut w = BitWriter::new(&mut out);
            for &(count, max) in &counts {
                let count = count.min(max);
                w.write_ones(count);
                if count < max {
                    w.write_bit(false);
                }
            }
            w.finish();
            let mut r = BitReader::new(&out);
            for &(count, max) in &counts {
                prop_assert_eq!(r.read_unary(max).unwrap(), count.min(max));
            }
        }
    }
}
