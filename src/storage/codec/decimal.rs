//! The decimal value encoding: short decimals (23.47, 1004, 6.1) stored as integers.
//!
//! Sensors send values with a few decimal places. Their binary mantissas are long, so
//! Gorilla's XOR of consecutive values keeps most of their bits, but the integers behind them
//! (`2347` at exponent 2) change by a few units a step. As in ALP (Afroozeh et al., SIGMOD
//! 2023) and VictoriaMetrics, a chunk whose every value `v` equals `m / 10^e` exactly (bit
//! for bit, with one shared `e` and integers `|m| < 2^53`) is stored as those integers: the
//! first one whole, then their deltas — or, for smooth series where that is smaller, their
//! delta-of-deltas — in a residual stream (see [`super::residuals`]).
//!
//! Exactness is checked, not assumed: the encoder converts every value back with the same
//! formula the decoder uses (`m as f64 / 10^e`, one correctly rounded IEEE division by an
//! exactly representable power of ten) and refuses the chunk unless all bits match. -0.0,
//! NaN and ±inf never match, so such chunks go to Gorilla.
//!
//! Layout (the count is stored outside the column; it is never used with `count == 0`):
//! 1. exponent `e` [1 byte], 0..=18;
//! 2. order [1 byte]: 1 when deltas follow, 2 when delta-of-deltas follow;
//! 3. first mantissa `m[0]`, zigzag varint [1..=8 bytes];
//! 4. if order is 2 and `count >= 2`: first delta `m[1] - m[0]`, zigzag varint;
//! 5. if order is 1: a residual stream of the `count - 1` deltas `m[i] - m[i-1]`; if order is
//!    2: a residual stream of the `count - 2` delta-of-deltas
//!    `(m[i] - m[i-1]) - (m[i-1] - m[i-2])` (empty when there are none), padded with zero
//!    bits to a whole byte.
//!
//! Value `i` is `m[i] as f64 / 10^e`.

use super::bits::{BitReader, BitWriter};
use super::varint::{take_signed, write_varint, zigzag};
use super::{bounded_capacity, residuals, DecodeError};

/// Largest decimal exponent tried: 18 places covers anything a sensor sends, and 10^18 is
/// still an exact `f64`.
pub const MAX_EXPONENT: usize = 18;

/// `POW10[e]` is exactly 10^e (every power up to 10^22 is an exact `f64`).
const POW10: [f64; MAX_EXPONENT + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18,
];

/// Mantissas must be below 2^53 in magnitude so `m as f64` is exact.
const MANTISSA_LIMIT: f64 = 9_007_199_254_740_992.0;

const ORDER_DELTA: u8 = 1;
const ORDER_DELTA_OF_DELTA: u8 = 2;

/// The value a mantissa stands for: the decoder's formula, shared with the encoder's check.
#[inline]
fn to_value(mantissa: i64, exponent: usize) -> f64 {
    mantissa as f64 / POW10[exponent]
}

/// `value * 10^exponent` rounded to an integer (ties to even), as an `f64`.
///
/// `f64::round` is a libm call on baseline x86-64; adding and removing 2^52 rounds in one
/// instruction each. Which way ties go does not matter: the result is only a candidate that
/// [`is_exact`] verifies.
#[inline]
fn scaled(value: f64, exponent: usize) -> f64 {
    const TWO_POW_52: f64 = 4_503_599_627_370_496.0;
    let x = value * POW10[exponent];
    if x.abs() < TWO_POW_52 {
        let magic = TWO_POW_52.copysign(x);
        (x + magic) - magic
    } else {
        // Already an integer (or inf/NaN, which fail the range check).
        x
    }
}

/// The mantissa of `value` at `exponent` (meaningful once [`is_exact`] holds).
#[inline]
fn mantissa(value: f64, exponent: usize) -> i64 {
    scaled(value, exponent) as i64
}

/// True when `value` is exactly `mantissa(value, exponent) / 10^exponent`, bit for bit.
#[inline]
fn is_exact(value: f64, exponent: usize) -> bool {
    let scaled = scaled(value, exponent);
    if scaled.is_nan() || scaled.abs() >= MANTISSA_LIMIT {
        return false;
    }
    to_value(scaled as i64, exponent).to_bits() == value.to_bits()
}

/// The smallest exponent at which every value is exact, if there is one.
pub fn find_exponent(values: &[f64]) -> Option<usize> {
    let mut exponent = 0;
    // Values before this index were only checked at smaller exponents.
    let mut checked_from = 0;
    for (i, &value) in values.iter().enumerate() {
        if !is_exact(value, exponent) {
            exponent = (exponent + 1..=MAX_EXPONENT).find(|&e| is_exact(value, e))?;
            checked_from = i;
        }
    }
    // Scaling by a larger power almost always keeps an exact value exact, but rounding of
    // `value * 10^e` makes that unprovable, so confirm the earlier values.
    (exponent..=MAX_EXPONENT).find(|&e| {
        let earlier = if e == exponent {
            &values[..checked_from]
        } else {
            values
        };
        earlier.iter().all(|&v| is_exact(v, e))
    })
}

/// Appends the decimal encoding of `values` to `out` and returns true, or returns false and
/// leaves `out` untouched when `values` is empty or not exactly decimal.
pub fn encode(values: &[f64], out: &mut Vec<u8>) -> bool {
    let Some(exponent) = find_exponent(values) else {
        return false;
    };
    if values.is_empty() {
        return false;
    }
    let mantissas: Vec<i64> = values.iter().map(|&v| mantissa(v, exponent)).collect();
    let deltas = || mantissas.windows(2).map(|m| m[1].wrapping_sub(m[0]));
    let delta_of_deltas = || {
        mantissas.windows(3).map(|m| {
            m[2].wrapping_sub(m[1])
                .wrapping_sub(m[1].wrapping_sub(m[0]))
        })
    };

    let first_delta = deltas().next();
    let delta_bits = residuals::estimate_bits(deltas());
    let delta_of_delta_bits = first_delta.map_or(u64::MAX, |d| {
        8 * varint_len(zigzag(d)) + residuals::estimate_bits(delta_of_deltas())
    });
    let order = if delta_of_delta_bits < delta_bits {
        ORDER_DELTA_OF_DELTA
    } else {
        ORDER_DELTA
    };

    out.push(exponent as u8);
    out.push(order);
    write_varint(zigzag(mantissas[0]), out);
    if values.len() < 2 {
        return true;
    }
    if order == ORDER_DELTA_OF_DELTA {
        if let Some(d) = first_delta {
            write_varint(zigzag(d), out);
        }
    }
    let mut w = BitWriter::new(out);
    if order == ORDER_DELTA {
        residuals::write(deltas(), &mut w);
    } else {
        residuals::write(delta_of_deltas(), &mut w);
    }
    w.finish();
    true
}

fn varint_len(value: u64) -> u64 {
    u64::from((64 - value.leading_zeros()).max(1).div_ceil(7))
}

/// Decodes `count` values from `bytes`, appending them to `out`.
pub fn decode(bytes: &[u8], count: usize, out: &mut Vec<f64>) -> Result<(), DecodeError> {
    if count == 0 {
        return Ok(());
    }
    let (&exponent, rest) = bytes
        .split_first()
        .ok_or_else(|| DecodeError("decimal column has no exponent byte".into()))?;
    let exponent = usize::from(exponent);
    if exponent > MAX_EXPONENT {
        return Err(DecodeError(format!(
            "decimal exponent {exponent} is over {MAX_EXPONENT}"
        )));
    }
    let (&order, mut rest) = rest
        .split_first()
        .ok_or_else(|| DecodeError("decimal column has no order byte".into()))?;
    if order != ORDER_DELTA && order != ORDER_DELTA_OF_DELTA {
        return Err(DecodeError(format!(
            "decimal column has unknown order {order}"
        )));
    }
    out.reserve(bounded_capacity(count, bytes.len()));
    let mut mantissa = take_signed(&mut rest, "first decimal mantissa")?;
    out.push(to_value(mantissa, exponent));
    if count == 1 {
        return Ok(());
    }
    let residual_error = |e: DecodeError| DecodeError(format!("decimal residuals: {e}"));
    if order == ORDER_DELTA {
        residuals::read(&mut BitReader::new(rest), count - 1, |delta| {
            mantissa = mantissa.wrapping_add(delta);
            out.push(to_value(mantissa, exponent));
        })
        .map_err(residual_error)
    } else {
        let mut delta = take_signed(&mut rest, "first decimal delta")?;
        mantissa = mantissa.wrapping_add(delta);
        out.push(to_value(mantissa, exponent));
        residuals::read(&mut BitReader::new(rest), count - 2, |delta_of_delta| {
            delta = delta.wrapping_add(delta_of_delta);
            mantissa = mantissa.wrapping_add(delta);
            out.push(to_value(mantissa, exponent));
        })
        .map_err(residual_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoded(values: &[f64]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        encode(values, &mut out).then_some(out)
    }

    fn bits(values: &[f64]) -> Vec<u64> {
        values.iter().map(|v| v.to_bits()).collect()
    }

    fn round_trip_bits(values: &[f64]) -> Vec<u64> {
        let bytes = encoded(values).expect("decimal applies");
        let mut out = Vec::new();
        decode(&bytes, values.len(), &mut out).unwrap();
        bits(&out)
    }

    #[test]
    fn exponent_is_the_fewest_places_that_cover_every_value() {
        assert_eq!(find_exponent(&[993.0, 1004.0, -7.0]), Some(0));
        assert_eq!(find_exponent(&[23.47, 23.5, 23.0]), Some(2));
        assert_eq!(find_exponent(&[0.1]), Some(1));
        assert_eq!(find_exponent(&[1.0, 0.001]), Some(3));
        assert_eq!(find_exponent(&[3e-18]), Some(18));
        assert_eq!(find_exponent(&[0.0, 9_007_199_254_740_991.0]), Some(0));
    }

    #[test]
    fn non_decimal_values_are_refused() {
        for value in [
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1.0 / 3.0,
            0.1 + 0.2,
            9_007_199_254_740_992.0,
            1e300,
            f64::MIN_POSITIVE,
        ] {
            assert_eq!(find_exponent(&[1.5, value]), None, "{value:e}");
            assert_eq!(encoded(&[1.5, value]), None);
        }
        assert_eq!(encoded(&[]), None);
    }

    #[test]
    fn golden_short_series() {
        // e = 2, order 1, m0 = 2347 (zigzag 4694), deltas 4 and -2 (zigzag 8, 3):
        // 0000100 000 | 1000 0011
        assert_eq!(
            encoded(&[23.47, 23.51, 23.49]).unwrap(),
            [2, 1, 0xD6, 0x24, 0x08, 0x20, 0xC0]
        );
    }

    #[test]
    fn golden_single_value() {
        assert_eq!(encoded(&[-4.5]).unwrap(), [1, 1, 89]);
        assert_eq!(round_trip_bits(&[-4.5]), bits(&[-4.5]));
    }

    #[test]
    fn smooth_series_use_delta_of_deltas() {
        // A slow sine at two places: deltas up to ±10, delta-of-deltas within ±1.
        let values: Vec<f64> = (0..1000)
            .map(|i| (2000.0 + 1000.0 * (f64::from(i) / 100.0).sin()).round() / 100.0)
            .collect();
        let bytes = encoded(&values).unwrap();
        assert_eq!(bytes[1], ORDER_DELTA_OF_DELTA);
        assert!(bytes.len() < 250, "{} bytes", bytes.len());
        assert_eq!(round_trip_bits(&values), bits(&values));
    }

    #[test]
    fn noisy_series_use_deltas() {
        let values: Vec<f64> = (0..1000)
            .map(|i| ((i * 7919) % 101) as f64 / 10.0)
            .collect();
        assert_eq!(encoded(&values).unwrap()[1], ORDER_DELTA);
        assert_eq!(round_trip_bits(&values), bits(&values));
    }

    #[test]
    fn extreme_mantissas_round_trip() {
        let limit = 9_007_199_254_740_991.0;
        let values = [limit, -limit, limit, 0.0, -limit];
        assert_eq!(round_trip_bits(&values), bits(&values));
    }

    #[test]
    fn invalid_headers_are_errors() {
        let mut out = Vec::new();
        assert!(decode(&[], 1, &mut out).is_err());
        assert!(decode(&[19, 1, 0], 1, &mut out).is_err());
        assert!(decode(&[2, 3, 0], 1, &mut out).is_err());
        assert!(decode(&[2], 1, &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn every_truncation_fails() {
        for values in [
            (0..300)
                .map(|i| ((i * 37) % 101) as f64 / 10.0)
                .collect::<Vec<_>>(),
            (0..300).map(|i| (i * i) as f64 / 100.0).collect(),
            vec![21.5; 300],
        ] {
            let bytes = encoded(&values).unwrap();
            for cut in 0..bytes.len() {
                let mut out = Vec::new();
                assert!(
                    decode(&bytes[..cut], values.len(), &mut out).is_err(),
                    "cut {cut}"
                );
            }
        }
    }

    fn decimals() -> impl Strategy<Value = Vec<f64>> {
        (
            0usize..=4,
            prop::collection::vec(-1_000_000i64..1_000_000, 1..600),
        )
            .prop_map(|(places, ints)| ints.iter().map(|&m| m as f64 / POW10[places]).collect())
    }

    proptest! {
        #[test]
        fn decimals_round_trip(values in decimals()) {
            prop_assert_eq!(round_trip_bits(&values), bits(&values));
        }

        #[test]
        fn random_walks_round_trip(
            start in -100_000i64..100_000,
            steps in prop::collection::vec(-50i64..=50, 0..1500),
            places in 0usize..=3,
        ) {
            let values: Vec<f64> = std::iter::once(start)
                .chain(steps.iter().scan(start, |m, s| { *m += s; Some(*m) }))
                .map(|m| m as f64 / POW10[places])
                .collect();
            prop_assert_eq!(round_trip_bits(&values), bits(&values));
        }

        #[test]
        fn encoder_accepts_only_what_round_trips(raw in prop::collection::vec(any::<u64>(), 1..50)) {
            let values: Vec<f64> = raw.iter().map(|&b| f64::from_bits(b)).collect();
            if encoded(&values).is_some() {
                prop_assert_eq!(round_trip_bits(&values), raw);
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

        #[test]
        fn valid_headers_with_random_bodies_never_panic(
            exponent in 0u8..=18,
            order in 1u8..=2,
            body in prop::collection::vec(any::<u8>(), 0..300),
            count in 0usize..10_000,
        ) {
            let mut bytes = vec![exponent, order];
            bytes.extend(body);
            let mut out = Vec::new();
            if decode(&bytes, count, &mut out).is_ok() {
                prop_assert_eq!(out.len(), count);
            }
        }
    }
}
