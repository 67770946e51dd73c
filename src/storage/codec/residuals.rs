//! Residual streams: how both columns store their many small signed numbers (timestamp
//! delta-of-deltas, decimal mantissa deltas) compactly.
//!
//! Residuals are zigzag-mapped (see [`super::varint::zigzag`]) and cut into blocks of
//! [`BLOCK_LEN`]. Each block picks its own parameters, so one outlier or one busy stretch only
//! widens its own block: a run of regular timestamps costs 7 bits per block, not a bit per
//! point. Within a block the residuals are Rice-coded with an escape for outliers, which on
//! the real sensor data in `shared/data` is about 20% smaller than packing every residual of a
//! block at the block's largest width (frame of reference): sensor deltas are mostly tiny
//! with a few large ones, which a fixed width pays for on every value.
//!
//! Layout: a bit stream (see [`super::bits`]) of blocks; the residual count is known from
//! outside, every block holds [`BLOCK_LEN`] residuals except the last, which holds the rest.
//! Each block is:
//! 1. width `W` [7 bits]: the bit length of the block's largest zigzagged residual, 0..=64
//!    (65..=127 are invalid). If `W` is 0 every residual of the block is 0 and the block
//!    ends here.
//! 2. mode [3 bits]: 0 is plain; 1..=5 is Rice with an escape after `Q = 2^(mode - 1)` one
//!    bits, so `Q` is 1, 2, 4, 8 or 16; 6 and 7 are invalid.
//! 3. Rice only: `k` [6 bits], the count of low bits stored verbatim, `0 <= k < W`.
//! 4. each residual `z` (zigzagged), one after another:
//!    - plain: `z` in `W` bits;
//!    - Rice with `q = z >> k` below `Q`: `q` one bits, one zero bit, then the low `k` bits
//!      of `z`;
//!    - Rice with `q >= Q` (escape): `Q` one bits, then `z` in `W` bits.
//!
//! The encoder picks, per block, the mode and `k` of smallest estimated size from a histogram
//! of the residuals' bit lengths (the estimate can be off by less than one bit a residual;
//! the choice only affects size, never correctness).

use super::bits::{BitReader, BitWriter};
use super::varint::{unzigzag, zigzag};
use super::DecodeError;

/// Residuals per block. Smaller blocks adapt faster but pay the 16-bit header more often;
/// on the measured sensor data 64 and 128 are within 0.5% of each other.
pub const BLOCK_LEN: usize = 128;

const WIDTH_BITS: u32 = 7;
const MODE_BITS: u32 = 3;
const K_BITS: u32 = 6;
const MODE_PLAIN: u64 = 0;
/// Largest Rice mode: escape after 2^(5 - 1) = 16 ones.
const MODE_RICE_MAX: u64 = 5;

/// How one block is coded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BlockCoding {
    /// Every residual is 0 (`W` = 0).
    Zero,
    Plain {
        width: u32,
    },
    Rice {
        width: u32,
        mode: u32,
        k: u32,
    },
}

impl BlockCoding {
    /// Picks the coding of smallest estimated size for `zs` (zigzagged, non-empty) and
    /// returns it with that estimate in bits, header included.
    fn choose(zs: &[u64]) -> (BlockCoding, u64) {
        // count[len] and sum[len] of the residuals whose bit length is `len`.
        let mut count = [0u64; 65];
        let mut sum = [0u128; 65];
        for &z in zs {
            let len = (64 - z.leading_zeros()) as usize;
            count[len] += 1;
            sum[len] += u128::from(z);
        }
        let width = (0..=64).rev().find(|&len| count[len] > 0).unwrap_or(0) as u32;
        if width == 0 {
            return (BlockCoding::Zero, u64::from(WIDTH_BITS));
        }
        let n = zs.len() as u64;
        // at_most[len]: residuals of bit length <= len.
        let mut at_most = [0u64; 65];
        let mut running = 0;
        for len in 0..=64 {
            running += count[len];
            at_most[len] = running;
        }
        let header = u64::from(WIDTH_BITS + MODE_BITS);
        let mut best = (BlockCoding::Plain { width }, header + n * u64::from(width));
        for mode in 1..=MODE_RICE_MAX as u32 {
            let log2_q = mode - 1;
            let q = 1u64 << log2_q;
            for k in 0..width {
                // A residual escapes when q = z >> k reaches Q, i.e. its bit length exceeds
                // k + log2(Q).
                let limit = (k + log2_q).min(width) as usize;
                let kept = at_most[limit];
                let escaped = n - kept;
                // Sum of z >> k over kept residuals longer than k bits, rounded up a little.
                let quotients: u64 = ((k as usize + 1)..=limit)
                    .map(|len| (sum[len] >> k) as u64)
                    .sum();
                let bits = header
                    + u64::from(K_BITS)
                    + kept * u64::from(k + 1)
                    + quotients
                    + escaped * (q + u64::from(width));
                if bits < best.1 {
                    best = (BlockCoding::Rice { width, mode, k }, bits);
                }
            }
        }
        best
    }

    fn write(self, zs: &[u64], w: &mut BitWriter) {
        match self {
            BlockCoding::Zero => w.write_bits(0, WIDTH_BITS),
            BlockCoding::Plain { width } => {
                w.write_bits(
                    u64::from(width) << MODE_BITS | MODE_PLAIN,
                    WIDTH_BITS + MODE_BITS,
                );
                for &z in zs {
                    w.write_bits(z, width);
                }
            }
            BlockCoding::Rice { width, mode, k } => {
                let header = (u64::from(width) << MODE_BITS | u64::from(mode)) << K_BITS;
                w.write_bits(header | u64::from(k), WIDTH_BITS + MODE_BITS + K_BITS);
                let escape = 1u64 << (mode - 1);
                for &z in zs {
                    let q = z >> k;
                    if q < escape {
                        // q ones, a zero, then k low bits: at most 16 + 63 bits.
                        let unary = ((1u64 << q) - 1) << 1;
                        let len = q as u32 + 1 + k;
                        if len <= 64 {
                            w.write_bits(unary << k | z & low_mask(k), len);
                        } else {
                            w.write_bits(unary, q as u32 + 1);
                            w.write_bits(z, k);
                        }
                    } else {
                        w.write_ones(escape as u32);
                        w.write_bits(z, width);
                    }
                }
            }
        }
    }
}

/// The low `k` bits set (k < 64).
#[inline]
fn low_mask(k: u32) -> u64 {
    (1u64 << k) - 1
}

/// Feeds `residuals` to `block` in blocks of [`BLOCK_LEN`] zigzagged values, without
/// allocating.
fn for_each_block(residuals: impl IntoIterator<Item = i64>, mut block: impl FnMut(&[u64])) {
    let mut buf = [0u64; BLOCK_LEN];
    let mut len = 0;
    for r in residuals {
        buf[len] = zigzag(r);
        len += 1;
        if len == BLOCK_LEN {
            block(&buf);
            len = 0;
        }
    }
    if len > 0 {
        block(&buf[..len]);
    }
}

/// Writes `residuals` as a residual stream.
pub fn write(residuals: impl IntoIterator<Item = i64>, w: &mut BitWriter) {
    for_each_block(residuals, |zs| {
        let (coding, _) = BlockCoding::choose(zs);
        coding.write(zs, w);
    });
}

/// Estimates the size in bits [`write()`] would produce for `residuals` (exact for zero and
/// plain blocks, at most one bit a residual high for Rice blocks).
pub fn estimate_bits(residuals: impl IntoIterator<Item = i64>) -> u64 {
    let mut bits = 0;
    for_each_block(residuals, |zs| bits += BlockCoding::choose(zs).1);
    bits
}

/// Reads `count` residuals, passing each to `emit` in order.
pub fn read(r: &mut BitReader, count: usize, mut emit: impl FnMut(i64)) -> Result<(), DecodeError> {
    let mut remaining = count;
    while remaining > 0 {
        let n = remaining.min(BLOCK_LEN);
        remaining -= n;
        let width = r.read_bits(WIDTH_BITS)? as u32;
        if width > 64 {
            return Err(DecodeError(format!(
                "residual block width {width} is over 64 bits"
            )));
        }
        if width == 0 {
            (0..n).for_each(|_| emit(0));
            continue;
        }
        match r.read_bits(MODE_BITS)? {
            MODE_PLAIN => {
                for _ in 0..n {
                    emit(unzigzag(r.read_bits(width)?));
                }
            }
            mode @ 1..=MODE_RICE_MAX => {
                let k = r.read_bits(K_BITS)? as u32;
                if k >= width {
                    return Err(DecodeError(format!(
                        "residual block keeps {k} low bits of {width}-bit residuals"
                    )));
                }
                let escape = 1u32 << (mode - 1);
                for _ in 0..n {
                    let q = r.read_unary(escape)?;
                    let z = if q < escape {
                        u64::from(q) << k | r.read_bits(k)?
                    } else {
                        r.read_bits(width)?
                    };
                    emit(unzigzag(z));
                }
            }
            mode => {
                return Err(DecodeError(format!(
                    "residual block has unknown mode {mode}"
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(residuals: &[i64]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = BitWriter::new(&mut out);
        write(residuals.iter().copied(), &mut w);
        w.finish();
        out
    }

    fn decode(bytes: &[u8], count: usize) -> Result<Vec<i64>, DecodeError> {
        let mut values = Vec::new();
        read(&mut BitReader::new(bytes), count, |v| values.push(v))?;
        Ok(values)
    }

    #[test]
    fn zero_blocks_cost_seven_bits() {
        let bytes = encode(&[0; 3 * BLOCK_LEN]);
        assert_eq!(bytes.len(), 3); // 21 bits
        assert_eq!(
            decode(&bytes, 3 * BLOCK_LEN).unwrap(),
            vec![0; 3 * BLOCK_LEN]
        );
    }

    #[test]
    fn golden_plain_block() {
        // zigzag 0 1 2 3 4: W = 3 and plain (25 bits) beats every Rice choice.
        // 0000011 000 | 000 001 010 011 100
        let bytes = encode(&[0, -1, 1, -2, 2]);
        assert_eq!(bytes, [0x06, 0x01, 0x4E, 0x00]);
        assert_eq!(decode(&bytes, 5).unwrap(), [0, -1, 1, -2, 2]);
    }

    #[test]
    fn golden_rice_block_with_escape() {
        // Eight zeros and a 5 (zigzag 10 = 0b1010): W = 4, Rice with Q = 1 and k = 0, so each
        // zero is a single 0 bit and the 5 escapes as 1 then 1010.
        // 0000100 001 000000 | 00000000 | 1 1010
        let residuals = [0, 0, 0, 0, 0, 0, 0, 0, 5];
        let bytes = encode(&residuals);
        assert_eq!(bytes, [0x08, 0x40, 0x00, 0xD0]);
        assert_eq!(decode(&bytes, residuals.len()).unwrap(), residuals);
    }

    #[test]
    fn golden_full_width_block() {
        // zigzag(MIN) = 64 ones, zigzag(MAX) = 63 ones and a zero: W = 64, plain.
        // 1000000 000 | 1 x 64 | 1 x 63, 0
        let bytes = encode(&[i64::MIN, i64::MAX]);
        let mut expected = vec![0x80, 0x3F];
        expected.extend([0xFF; 15]);
        expected.push(0x80);
        assert_eq!(bytes, expected);
        assert_eq!(decode(&bytes, 2).unwrap(), [i64::MIN, i64::MAX]);
    }

    #[test]
    fn one_outlier_widens_only_its_own_block() {
        let mut residuals = vec![0i64; 4 * BLOCK_LEN];
        residuals[5] = 1 << 40;
        let bytes = encode(&residuals);
        assert!(bytes.len() < 40, "{} bytes", bytes.len());
        assert_eq!(decode(&bytes, residuals.len()).unwrap(), residuals);
    }

    #[test]
    fn invalid_headers_are_errors() {
        // W = 65
        assert!(decode(&[0b1000_0010, 0], 1).is_err());
        // W = 1, mode 6
        assert!(decode(&[0b0000_0011, 0b1000_0000], 1).is_err());
        // W = 1, Rice mode 1, k = 1 (not below W)
        assert!(decode(&[0b0000_0010, 0b0100_0010, 0], 1).is_err());
    }

    #[test]
    fn estimate_is_close_to_the_written_size() {
        let residuals: Vec<i64> = (0..1000).map(|i| (i * 7919 % 61) - 30).collect();
        let written = encode(&residuals).len() as u64 * 8;
        let estimate = estimate_bits(residuals.iter().copied());
        assert!(estimate + 8 >= written && estimate <= written + residuals.len() as u64);
    }

    fn skewed_residuals() -> impl Strategy<Value = Vec<i64>> {
        prop::collection::vec(
            prop_oneof![
                8 => -3i64..=3,
                4 => -300i64..=300,
                1 => any::<i64>(),
            ],
            0..700,
        )
    }

    proptest! {
        #[test]
        fn any_residuals_round_trip(residuals in prop::collection::vec(any::<i64>(), 0..300)) {
            prop_assert_eq!(decode(&encode(&residuals), residuals.len()).unwrap(), residuals);
        }

        #[test]
        fn skewed_residuals_round_trip(residuals in skewed_residuals()) {
            prop_assert_eq!(decode(&encode(&residuals), residuals.len()).unwrap(), residuals);
        }

        #[test]
        fn truncated_streams_are_errors(residuals in skewed_residuals(), cut in any::<prop::sample::Index>()) {
            let bytes = encode(&residuals);
            if !bytes.is_empty() {
                let cut = cut.index(bytes.len());
                prop_assert!(decode(&bytes[..cut], residuals.len()).is_err());
            }
        }

        #[test]
        fn random_bytes_never_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..200),
            count in 0usize..10_000,
        ) {
            if let Ok(values) = decode(&bytes, count) {
                prop_assert_eq!(values.len(), count);
            }
        }
    }
}
