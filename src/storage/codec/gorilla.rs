//! The Gorilla XOR value encoding (Pelkonen et al., VLDB 2015), the fallback that takes any
//! `f64` bit pattern.
//!
//! Each value is XORed with the previous one; consecutive sensor readings share sign,
//! exponent and high mantissa bits, so the XOR has long runs of leading and trailing zeros
//! and only its middle ("meaningful") bits are stored. Values are handled as raw bits, so
//! NaN payloads, ±inf and -0.0 round-trip exactly. Short decimals compress poorly here (their
//! binary mantissas are long), which is why [`super::decimal`] exists.
//!
//! Layout (the count is stored outside the column; `count == 0` is zero bytes), a bit stream
//! (see [`super::bits`]):
//! 1. the first value's bits [64 bits];
//! 2. for each later value, with `x` its bits XOR the previous value's bits:
//!    - `x == 0`: `0` [1 bit];
//!    - `x` fits the current window (at least as many leading and trailing zeros as the
//!      window's): `10`, then `x`'s bits inside the window [window length bits];
//!    - otherwise: `11`, then the leading zero count `L` capped at 31 [5 bits], the
//!      meaningful length `M = 64 - L - T` with `T` the trailing zero count, stored as 0 when
//!      it is 64 [6 bits], then `x >> T` [M bits]. `L` and `M` become the window;
//! 3. zero bits padding to a whole byte.
//!
//! There is no window before the first `11`; a decoder meeting `10` there reports corruption.

use super::bits::{BitReader, BitWriter};
use super::{bounded_capacity, DecodeError};

/// Largest leading-zero count the 5-bit field holds.
const MAX_LEADING: u32 = 31;

/// Appends the Gorilla encoding of `values` to `out`.
pub fn encode(values: &[f64], out: &mut Vec<u8>) {
    let Some((first, rest)) = values.split_first() else {
        return;
    };
    let mut w = BitWriter::new(out);
    let mut prev = first.to_bits();
    w.write_bits(prev, 64);
    // Leading and trailing zeros of the window; 64 means "no window yet" (no XOR matches).
    let (mut window_leading, mut window_trailing) = (64u32, 64u32);
    for value in rest {
        let bits = value.to_bits();
        let x = bits ^ prev;
        prev = bits;
        if x == 0 {
            w.write_bits(0, 1);
            continue;
        }
        let leading = x.leading_zeros().min(MAX_LEADING);
        let trailing = x.trailing_zeros();
        if leading >= window_leading && trailing >= window_trailing {
            let len = 64 - window_leading - window_trailing;
            w.write_bits(0b10, 2);
            w.write_bits(x >> window_trailing, len);
        } else {
            let len = 64 - leading - trailing;
            let control = 0b11 << 11 | u64::from(leading) << 6 | u64::from(len & 63);
            w.write_bits(control, 13);
            w.write_bits(x >> trailing, len);
            window_leading = leading;
            window_trailing = trailing;
        }
    }
    w.finish();
}

/// Decodes `count` values from `bytes`, appending them to `out`.
pub fn decode(bytes: &[u8], count: usize, out: &mut Vec<f64>) -> Result<(), DecodeError> {
    if count == 0 {
        return Ok(());
    }
    out.reserve(bounded_capacity(count, bytes.len()));
    let mut r = BitReader::new(bytes);
    let mut prev = r.read_bits(64)?;
    out.push(f64::from_bits(prev));
    let mut window: Option<(u32, u32)> = None;
    for index in 1..count {
        match r.read_unary(2)? {
            0 => {}
            1 => {
                let (leading, trailing) = window.ok_or_else(|| {
                    DecodeError(format!(
                        "gorilla value {index} reuses a window before any was set"
                    ))
                })?;
                prev ^= r.read_bits(64 - leading - trailing)? << trailing;
            }
            _ => {
                let fields = r.read_bits(11)? as u32;
                let leading = fields >> 6;
                let len = match fields & 63 {
                    0 => 64,
                    len => len,
                };
                if leading + len > 64 {
                    return Err(DecodeError(format!(
                        "gorilla value {index}: {leading} leading zeros and {len} meaningful bits exceed 64"
                    )));
                }
                let trailing = 64 - leading - len;
                prev ^= r.read_bits(len)? << trailing;
                window = Some((leading, trailing));
            }
        }
        out.push(f64::from_bits(prev));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoded(values: &[f64]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(values, &mut out);
        out
    }

    fn round_trip_bits(values: &[f64]) -> Vec<u64> {
        let mut out = Vec::new();
        decode(&encoded(values), values.len(), &mut out).unwrap();
        out.iter().map(|v| v.to_bits()).collect()
    }

    fn bits(values: &[f64]) -> Vec<u64> {
        values.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn empty_column_is_zero_bytes() {
        assert!(encoded(&[]).is_empty());
        let mut out = Vec::new();
        decode(&[], 0, &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn golden_small_series() {
        // 1.0 whole; 1.0 again: 0; 2.0: XOR 0x7FF0.. → 11, L=1, M=11, 11 ones;
        // 3.0: XOR 0x0008.. (L=12, T=51, outside the window) → 11, L=12, M=1, 1.
        assert_eq!(
            encoded(&[1.0, 1.0, 2.0, 3.0]),
            [0x3F, 0xF0, 0, 0, 0, 0, 0, 0, 0x61, 0x2F, 0xFF, 0xEC, 0x06]
        );
    }

    #[test]
    fn golden_full_width_xor() {
        // 0 whole; XOR 0x8000_0000_0000_0001 → 11, L=0, M=64 (stored 0), 64 bits;
        // XOR u64::MAX reuses that window → 10 and 64 bits.
        let values = [
            f64::from_bits(0),
            f64::from_bits(0x8000_0000_0000_0001),
            f64::from_bits(0x7FFF_FFFF_FFFF_FFFE),
        ];
        let mut expected = vec![0; 8];
        expected.extend([0xC0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0x0D]);
        expected.extend([0xFF; 7]);
        expected.push(0xFE);
        assert_eq!(encoded(&values), expected);
        assert_eq!(round_trip_bits(&values), bits(&values));
    }

    #[test]
    fn constant_series_costs_a_bit_per_value() {
        let values = vec![23.47; 1024];
        assert_eq!(encoded(&values).len(), 8 + 1023usize.div_ceil(8));
        assert_eq!(round_trip_bits(&values), bits(&values));
    }

    #[test]
    fn special_values_round_trip() {
        let values = [
            0.0,
            -0.0,
            f64::NAN,
            f64::from_bits(0x7FF0_0000_0000_0001),
            f64::from_bits(0xFFF8_DEAD_BEEF_0001),
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::from_bits(1),
            f64::MAX,
            f64::MIN,
        ];
        assert_eq!(round_trip_bits(&values), bits(&values));
    }

    #[test]
    fn window_reuse_before_any_window_is_an_error() {
        // First value, then control 10.
        let mut bytes = vec![0; 8];
        bytes.push(0b1000_0000);
        let mut out = Vec::new();
        assert!(decode(&bytes, 2, &mut out).is_err());
    }

    #[test]
    fn oversized_window_is_an_error() {
        // 11, L = 31, M = 40: 71 bits.
        let mut bytes = vec![0; 8];
        bytes.extend([0b1111_1111, 0b0100_0000, 0, 0, 0, 0, 0, 0]);
        let mut out = Vec::new();
        assert!(decode(&bytes, 2, &mut out).is_err());
    }

    #[test]
    fn every_truncation_fails() {
        let values: Vec<f64> = (0..200).map(|i| (i as f64 * 0.37).sin() * 40.0).collect();
        let bytes = encoded(&values);
        for cut in 0..bytes.len() {
            let mut out = Vec::new();
            assert!(
                decode(&bytes[..cut], values.len(), &mut out).is_err(),
                "cut {cut}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_bit_patterns_round_trip(raw in prop::collection::vec(any::<u64>(), 0..300)) {
            let values: Vec<f64> = raw.iter().map(|&b| f64::from_bits(b)).collect();
            prop_assert_eq!(round_trip_bits(&values), raw);
        }

        #[test]
        fn slowly_varying_values_round_trip(
            start in -1e6f64..1e6,
            steps in prop::collection::vec(-1.0f64..1.0, 0..500),
        ) {
            let values: Vec<f64> = steps
                .iter()
                .scan(start, |v, s| { *v += s; Some(*v) })
                .collect();
            prop_assert_eq!(round_trip_bits(&values), bits(&values));
        }

        #[test]
        fn random_bytes_never_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..300),
            count in 0usize..10_000,
        ) {
            let mut out = Vec::new();
            if decode(&bytes, count, &mut out).is_ok() {
                prop_assert_eq!(out.len(), count);
            }
        }
    }
}
