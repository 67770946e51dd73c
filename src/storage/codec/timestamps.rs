//! The timestamp column: delta-of-delta coding, as in Gorilla (VLDB 2015), of millisecond
//! timestamps.
//!
//! A sensor reporting at a fixed interval makes every delta-of-delta 0, and a jittery one
//! makes them small, so the column stores the first timestamp and first delta whole and then
//! only the delta-of-deltas. Instead of Gorilla's fixed prefix buckets (`0`, `10` + 7 bits,
//! `110` + 9 bits, …: at least one bit a point, and about 8.6 bits a point for ±5 ms of
//! uniform jitter), the delta-of-deltas go into a [`residuals`] stream, whose blocks adapt to
//! the data: a block of 128 regular timestamps costs 7 bits in all, and ±5 ms of jitter about
//! 5.3 bits a point.
//!
//! All arithmetic wraps, so every `i64` sequence round-trips — out of order, duplicated,
//! or jumping between `i64::MIN` and `i64::MAX`.
//!
//! Layout (the count is stored outside the column; `count == 0` is zero bytes):
//! 1. first timestamp `t[0]`, zigzag varint [1..=10 bytes];
//! 2. if `count >= 2`: first delta `t[1] - t[0]`, zigzag varint [1..=10 bytes];
//! 3. if `count >= 3`: a residual stream (see [`residuals`]) of the `count - 2`
//!    delta-of-deltas `(t[i] - t[i-1]) - (t[i-1] - t[i-2])` for `i` in `2..count`,
//!    padded with zero bits to a whole byte.

use super::bits::{BitReader, BitWriter};
use super::varint::{take_signed, write_varint, zigzag};
use super::{bounded_capacity, residuals, DecodeError};

/// Appends the encoded column for `timestamps` to `out`.
pub fn encode(timestamps: &[i64], out: &mut Vec<u8>) {
    let (first, rest) = match timestamps {
        [] => return,
        [first, rest @ ..] => (*first, rest),
    };
    write_varint(zigzag(first), out);
    let Some(&second) = rest.first() else {
        return;
    };
    write_varint(zigzag(second.wrapping_sub(first)), out);
    if timestamps.len() < 3 {
        return;
    }
    let delta_of_deltas = timestamps.windows(3).map(|t| {
        t[2].wrapping_sub(t[1])
            .wrapping_sub(t[1].wrapping_sub(t[0]))
    });
    let mut w = BitWriter::new(out);
    residuals::write(delta_of_deltas, &mut w);
    w.finish();
}

/// Decodes `count` timestamps from `bytes`, appending them to `out`.
pub fn decode(bytes: &[u8], count: usize, out: &mut Vec<i64>) -> Result<(), DecodeError> {
    if count == 0 {
        return Ok(());
    }
    out.reserve(bounded_capacity(count, bytes.len()));
    let mut rest = bytes;
    let mut timestamp = take_signed(&mut rest, "first timestamp")?;
    out.push(timestamp);
    if count == 1 {
        return Ok(());
    }
    let mut delta = take_signed(&mut rest, "first timestamp delta")?;
    timestamp = timestamp.wrapping_add(delta);
    out.push(timestamp);
    residuals::read(&mut BitReader::new(rest), count - 2, |delta_of_delta| {
        delta = delta.wrapping_add(delta_of_delta);
        timestamp = timestamp.wrapping_add(delta);
        out.push(timestamp);
    })
    .map_err(|e| DecodeError(format!("timestamp delta-of-deltas: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoded(timestamps: &[i64]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(timestamps, &mut out);
        out
    }

    fn round_trip(timestamps: &[i64]) -> Vec<i64> {
        let bytes = encoded(timestamps);
        let mut out = Vec::new();
        decode(&bytes, timestamps.len(), &mut out).unwrap();
        out
    }

    fn assert_every_truncation_fails(timestamps: &[i64]) {
        let bytes = encoded(timestamps);
        for cut in 0..bytes.len() {
            let mut out = Vec::new();
            assert!(
                decode(&bytes[..cut], timestamps.len(), &mut out).is_err(),
                "cut at {cut} of {}",
                bytes.len()
            );
        }
    }

    #[test]
    fn empty_column_is_zero_bytes() {
        assert!(encoded(&[]).is_empty());
        let mut out = vec![7];
        decode(&[], 0, &mut out).unwrap();
        assert_eq!(out, [7]);
    }

    #[test]
    fn single_timestamp_is_one_varint() {
        assert_eq!(encoded(&[-2]), [0x03]);
        assert_eq!(round_trip(&[1_710_000_000_123]), [1_710_000_000_123]);
    }

    #[test]
    fn decoding_appends_after_existing_values() {
        let bytes = encoded(&[5, 6, 8]);
        let mut out = vec![1, 2];
        decode(&bytes, 3, &mut out).unwrap();
        assert_eq!(out, [1, 2, 5, 6, 8]);
    }

    #[test]
    fn golden_regular_interval() {
        // 1 s interval: t0 = 1_700_000_000_000 (zigzag 3_400_000_000_000), delta 1000
        // (zigzag 2000), then 8 zero delta-of-deltas: one zero block, 7 bits.
        let timestamps: Vec<i64> = (0..10).map(|i| 1_700_000_000_000 + i * 1000).collect();
        assert_eq!(
            encoded(&timestamps),
            [0x80, 0xA0, 0xAB, 0xFE, 0xF9, 0x62, 0xD0, 0x0F, 0x00]
        );
    }

    #[test]
    fn golden_jittered_interval() {
        // Delta-of-deltas 0, 3, -5, 2: zigzag 0 6 9 4, W = 4, plain wins.
        // varint 200 (zigzag 100), varint 20 (zigzag 10),
        // 0000100 000 | 0000 0110 1001 0100
        let timestamps = [100, 110, 120, 133, 141, 151];
        assert_eq!(
            encoded(&timestamps),
            [0xC8, 0x01, 0x14, 0x08, 0x01, 0xA5, 0x00]
        );
        assert_eq!(round_trip(&timestamps), timestamps);
    }

    #[test]
    fn constant_timestamps_round_trip() {
        let timestamps = vec![42; 1000];
        assert_eq!(round_trip(&timestamps), timestamps);
        assert!(encoded(&timestamps).len() <= 10);
    }

    #[test]
    fn extreme_jumps_round_trip() {
        let timestamps = [
            i64::MIN,
            i64::MAX,
            i64::MIN,
            0,
            i64::MAX,
            i64::MAX,
            -1,
            i64::MIN + 1,
            1,
            i64::MIN,
        ];
        assert_eq!(round_trip(&timestamps), timestamps);
        assert_eq!(round_trip(&[i64::MAX, i64::MIN]), [i64::MAX, i64::MIN]);
        assert_every_truncation_fails(&timestamps);
    }

    #[test]
    fn regular_millisecond_data_costs_far_under_a_bit_per_point() {
        let timestamps: Vec<i64> = (0..1024)
            .map(|i| 1_700_000_000_000 + i * 3_600_000)
            .collect();
        let bytes = encoded(&timestamps);
        // Two varints and eight 7-bit zero blocks.
        assert_eq!(bytes.len(), 6 + 4 + 7);
        assert_eq!(round_trip(&timestamps), timestamps);
    }

    #[test]
    fn jittered_millisecond_data_costs_about_its_entropy() {
        // ±5 ms uniform jitter on a 1 s interval: delta-of-deltas span ±20.
        let mut state = 7u64;
        let timestamps: Vec<i64> = (0..1024)
            .map(|i| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                1_700_000_000_000 + i * 1000 + (state >> 33) as i64 % 11 - 5
            })
            .collect();
        let bits_per_point = encoded(&timestamps).len() as f64 * 8.0 / 1024.0;
        assert!(bits_per_point < 5.6, "{bits_per_point:.2} bits/point");
        assert_eq!(round_trip(&timestamps), timestamps);
    }

    #[test]
    fn every_truncation_of_a_jittered_column_fails() {
        let timestamps: Vec<i64> = (0..300)
            .map(|i| 1_700_000_000_000 + i * 1000 + (i * 7919 % 23) - 11)
            .collect();
        assert_every_truncation_fails(&timestamps);
    }

    fn jittered_interval() -> impl Strategy<Value = Vec<i64>> {
        (
            any::<i64>(),
            prop_oneof![Just(1000i64), Just(60_000), Just(3_600_000), 1i64..100_000],
            prop_oneof![Just(0i64), 1i64..10, 10i64..1000],
            prop::collection::vec(any::<i64>(), 0..1500),
        )
            .prop_map(|(start, interval, jitter, noise)| {
                let start = start / 4;
                noise
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        start + i as i64 * interval + n.rem_euclid(2 * jitter + 1) - jitter
                    })
                    .collect()
            })
    }

    proptest! {
        #[test]
        fn any_timestamps_round_trip(timestamps in prop::collection::vec(any::<i64>(), 0..400)) {
            prop_assert_eq!(round_trip(&timestamps), timestamps);
        }

        #[test]
        fn jittered_intervals_round_trip(timestamps in jittered_interval()) {
            prop_assert_eq!(round_trip(&timestamps), timestamps);
        }

        #[test]
        fn truncated_columns_are_errors(
            timestamps in jittered_interval(),
            cut in any::<prop::sample::Index>(),
        ) {
            let bytes = encoded(&timestamps);
            if !bytes.is_empty() {
                let mut out = Vec::new();
                prop_assert!(decode(&bytes[..cut.index(bytes.len())], timestamps.len(), &mut out).is_err());
            }
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
