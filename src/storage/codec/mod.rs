//! Column codecs for chunks: timestamps delta-of-delta, values Gorilla XOR or decimal.
//!
//! A sealed chunk stores its timestamps and its values as two separate byte columns; the
//! point count lives in the chunk's metadata, so the columns do not store it and a decoder is
//! always told how many values to produce.
//!
//! - Timestamps ([`timestamps`]): the first timestamp and first delta whole, then the
//!   delta-of-deltas, which are 0 for a sensor on a fixed interval.
//! - Values are stored one of two ways, chosen per chunk ([`ValueEncoding`]):
//!   - [`gorilla`]: XOR with the previous value's bits; takes any `f64` bit pattern.
//!   - [`decimal`]: when every value is exactly `m / 10^e` for one small `e` (a sensor's
//!     23.47 is 2347 at `e = 2`), the integers `m`, whose deltas are small.
//!
//!   [`encode_values`] builds both and keeps the smaller (Gorilla on a tie).
//! - Both the timestamp delta-of-deltas and the decimal deltas go through [`residuals`]:
//!   blocks of 128 zigzagged integers, Rice-coded with per-block parameters.
//! - [`bits`] and [`varint`] are the bit- and byte-level primitives beneath them.
//!
//! CONTRACT (signatures are fixed):
//! - `encode_timestamps` / `decode_timestamps`: any `i64` sequence round-trips exactly.
//! - `encode_values` picks, per call, the smaller of Gorilla XOR and the decimal encoding
//!   (the latter only when exactly lossless) and returns which it used.
//! - `decode_values` decodes either; every f64 bit pattern round-trips (NaN payloads, ±inf,
//!   -0.0).
//! - Decoders never panic on arbitrary bytes: they return `DecodeError`. Cutting any bytes off
//!   the end of a column makes its decoder fail.

pub mod bits;
pub mod decimal;
pub mod gorilla;
pub mod residuals;
pub mod timestamps;
pub mod varint;

use std::fmt;

/// Why a column could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a chunk's value column is encoded (stored as one byte in segment files).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ValueEncoding {
    Gorilla = 1,
    Decimal = 2,
}

impl ValueEncoding {
    pub fn from_u8(byte: u8) -> Option<ValueEncoding> {
        match byte {
            1 => Some(ValueEncoding::Gorilla),
            2 => Some(ValueEncoding::Decimal),
            _ => None,
        }
    }
}

/// Appends the timestamp column for `timestamps` to `out` (nothing when empty).
pub fn encode_timestamps(timestamps: &[i64], out: &mut Vec<u8>) {
    timestamps::encode(timestamps, out);
}

/// Decodes `count` timestamps from `bytes`, appending them to `out`.
pub fn decode_timestamps(
    bytes: &[u8],
    count: usize,
    out: &mut Vec<i64>,
) -> Result<(), DecodeError> {
    timestamps::decode(bytes, count, out)
}

/// Appends the value column for `values` to `out` in whichever encoding is smaller, and
/// returns that encoding. Decimal is only a candidate when exactly lossless.
pub fn encode_values(values: &[f64], out: &mut Vec<u8>) -> ValueEncoding {
    let start = out.len();
    gorilla::encode(values, out);
    let gorilla_len = out.len() - start;
    if decimal::encode(values, out) {
        let decimal_len = out.len() - start - gorilla_len;
        if decimal_len < gorilla_len {
            out.copy_within(start + gorilla_len.., start);
            out.truncate(start + decimal_len);
            return ValueEncoding::Decimal;
        }
        out.truncate(start + gorilla_len);
    }
    ValueEncoding::Gorilla
}

/// Decodes `count` values encoded as `encoding` from `bytes`, appending them to `out`.
pub fn decode_values(
    encoding: ValueEncoding,
    bytes: &[u8],
    count: usize,
    out: &mut Vec<f64>,
) -> Result<(), DecodeError> {
    match encoding {
        ValueEncoding::Gorilla => gorilla::decode(bytes, count, out),
        ValueEncoding::Decimal => decimal::decode(bytes, count, out),
    }
}

/// The densest any column gets: a residual block of 128 zeros in 7 bits.
const MAX_VALUES_PER_BYTE: usize = 8 * residuals::BLOCK_LEN / 7 + 1;

/// How much room to reserve for `count` decoded values: `count`, unless `bytes_len` bytes
/// cannot hold that many (a corrupt count must not allocate gigabytes).
fn bounded_capacity(count: usize, bytes_len: usize) -> usize {
    count.min(
        bytes_len
            .saturating_mul(MAX_VALUES_PER_BYTE)
            .saturating_add(2),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::time::Instant;

    fn encode(values: &[f64]) -> (ValueEncoding, Vec<u8>) {
        let mut out = Vec::new();
        let encoding = encode_values(values, &mut out);
        (encoding, out)
    }

    fn round_trip_bits(values: &[f64]) -> Vec<u64> {
        let (encoding, bytes) = encode(values);
        let mut out = Vec::new();
        decode_values(encoding, &bytes, values.len(), &mut out).unwrap();
        out.iter().map(|v| v.to_bits()).collect()
    }

    fn bits(values: &[f64]) -> Vec<u64> {
        values.iter().map(|v| v.to_bits()).collect()
    }

    fn gorilla_len(values: &[f64]) -> usize {
        let mut out = Vec::new();
        gorilla::encode(values, &mut out);
        out.len()
    }

    const SENSOR: [f64; 16] = [
        23.47, 23.51, 23.49, 23.5, 23.55, 23.61, 23.58, 23.6, 23.64, 23.7, 23.66, 23.69, 23.72,
        23.7, 23.75, 23.8,
    ];

    #[test]
    fn short_decimals_choose_decimal_and_beat_gorilla() {
        let values: Vec<f64> = SENSOR.iter().cycle().take(1024).copied().collect();
        let (encoding, bytes) = encode(&values);
        assert_eq!(encoding, ValueEncoding::Decimal);
        assert!(
            bytes.len() * 3 < gorilla_len(&values),
            "decimal {} bytes, gorilla {}",
            bytes.len(),
            gorilla_len(&values)
        );
        assert_eq!(round_trip_bits(&values), bits(&values));
    }

    #[test]
    fn random_bit_patterns_choose_gorilla() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let values: Vec<f64> = (0..1024)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                f64::from_bits(state)
            })
            .collect();
        assert_eq!(encode(&values).0, ValueEncoding::Gorilla);
        assert_eq!(round_trip_bits(&values), bits(&values));
    }

    #[test]
    fn empty_input_is_an_empty_gorilla_column() {
        assert_eq!(encode(&[]), (ValueEncoding::Gorilla, vec![]));
        let mut out = Vec::new();
        decode_values(ValueEncoding::Decimal, &[], 0, &mut out).unwrap();
        decode_timestamps(&[], 0, &mut Vec::new()).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn single_value_round_trips_in_either_encoding() {
        // 8 bytes of Gorilla against 3 bytes of decimal.
        assert_eq!(
            encode(&[21.5]),
            (ValueEncoding::Decimal, vec![1, 1, 0xAE, 0x03])
        );
        assert_eq!(encode(&[-0.0]).0, ValueEncoding::Gorilla);
        assert_eq!(round_trip_bits(&[-0.0]), bits(&[-0.0]));
    }

    #[test]
    fn encoding_appends_after_existing_bytes() {
        let mut out = vec![0xEE];
        let encoding = encode_values(&SENSOR, &mut out);
        assert_eq!(out[0], 0xEE);
        let mut values = Vec::new();
        decode_values(encoding, &out[1..], SENSOR.len(), &mut values).unwrap();
        assert_eq!(bits(&values), bits(&SENSOR));
    }

    #[test]
    fn constant_series_is_tiny() {
        let values = vec![1013.25; 1024];
        let (encoding, bytes) = encode(&values);
        assert_eq!(encoding, ValueEncoding::Decimal);
        assert!(bytes.len() <= 12, "{} bytes", bytes.len());
        assert_eq!(round_trip_bits(&values), bits(&values));
    }

    #[test]
    fn special_values_fall_back_to_gorilla() {
        for special in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0] {
            let mut values = SENSOR.to_vec();
            values[7] = special;
            assert_eq!(encode(&values).0, ValueEncoding::Gorilla);
            assert_eq!(round_trip_bits(&values), bits(&values));
        }
    }

    fn value_series() -> impl Strategy<Value = Vec<f64>> {
        let decimals = (
            0u32..=4,
            prop::collection::vec(-10_000_000i64..10_000_000, 0..1100),
        )
            .prop_map(|(places, ints)| {
                let scale = 10f64.powi(places as i32);
                ints.iter().map(|&m| m as f64 / scale).collect::<Vec<_>>()
            });
        let walk = (
            0u32..=3,
            -1_000_000i64..1_000_000,
            prop::collection::vec(-20i64..=20, 0..1100),
        )
            .prop_map(|(places, start, steps)| {
                let scale = 10f64.powi(places as i32);
                steps
                    .iter()
                    .scan(start, |m, s| {
                        *m += s;
                        Some(*m as f64 / scale)
                    })
                    .collect()
            });
        let constant = (any::<u64>(), 0usize..1100).prop_map(|(b, n)| vec![f64::from_bits(b); n]);
        let monotonic = (-1e9f64..1e9, 0.0f64..100.0, 0usize..1100)
            .prop_map(|(start, step, n)| (0..n).map(|i| start + step * i as f64).collect());
        let specials = prop::collection::vec(
            prop_oneof![
                Just(f64::NAN),
                any::<u64>().prop_map(|p| f64::from_bits(0x7FF0_0000_0000_0001 | p)),
                Just(f64::INFINITY),
                Just(f64::NEG_INFINITY),
                Just(-0.0),
                Just(0.0),
                (-1000i64..1000).prop_map(|m| m as f64 / 100.0),
            ],
            0..300,
        );
        let raw = prop::collection::vec(any::<u64>().prop_map(f64::from_bits), 0..300);
        let mixed = prop::collection::vec(
            prop_oneof![
                4 => (-10_000i64..10_000).prop_map(|m| m as f64 / 10.0),
                1 => any::<u64>().prop_map(f64::from_bits),
                1 => any::<f64>(),
            ],
            0..500,
        );
        prop_oneof![decimals, walk, constant, monotonic, specials, raw, mixed]
    }

    proptest! {
        #[test]
        fn any_values_round_trip_bit_exactly(values in value_series()) {
            prop_assert_eq!(round_trip_bits(&values), bits(&values));
        }

        #[test]
        fn chosen_encoding_is_never_larger_than_gorilla(values in value_series()) {
            prop_assert!(encode(&values).1.len() <= gorilla_len(&values));
        }

        #[test]
        fn truncated_value_columns_are_errors(
            values in value_series(),
            cut in any::<prop::sample::Index>(),
        ) {
            let (encoding, bytes) = encode(&values);
            if !bytes.is_empty() {
                let mut out = Vec::new();
                let cut = cut.index(bytes.len());
                prop_assert!(decode_values(encoding, &bytes[..cut], values.len(), &mut out).is_err());
            }
        }

        #[test]
        fn random_bytes_never_panic_any_decoder(
            bytes in prop::collection::vec(any::<u8>(), 0..400),
            count in 0usize..10_000,
        ) {
            let mut values = Vec::new();
            for encoding in [ValueEncoding::Gorilla, ValueEncoding::Decimal] {
                values.clear();
                if decode_values(encoding, &bytes, count, &mut values).is_ok() {
                    prop_assert_eq!(values.len(), count);
                }
            }
            let mut timestamps = Vec::new();
            if decode_timestamps(&bytes, count, &mut timestamps).is_ok() {
                prop_assert_eq!(timestamps.len(), count);
            }
        }
    }

    /// Points per measured chunk, as sealed chunks hold.
    const MEASURE_CHUNK: usize = 1024;

    /// The real sensor series of `shared/data` (override with `MINITRUE_DATA_DIR`), keyed by
    /// `device|metric`, each sorted by time, timestamps in milliseconds.
    fn real_series() -> Option<BTreeMap<String, Vec<(i64, f64)>>> {
        let dir = std::env::var("MINITRUE_DATA_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data").into());
        let mut series: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
        let mut entries: Vec<_> = std::fs::read_dir(&dir).ok()?.flatten().collect();
        entries.sort_by_key(|e| e.path());
        for entry in entries {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("csv") {
                continue;
            }
            let text = std::fs::read_to_string(&path).ok()?;
            for line in text.lines().skip(1) {
                let fields: Vec<&str> = line.split(',').collect();
                let [ts, device, metric, value] = fields[..] else {
                    panic!("{}: bad line {line:?}", path.display());
                };
                let seconds: i64 = ts.parse().expect("integer seconds");
                let value: f64 = value.parse().expect("numeric value");
                series
                    .entry(format!("{device}|{metric}"))
                    .or_default()
                    .push((seconds * 1000, value));
            }
        }
        for points in series.values_mut() {
            points.sort_by_key(|p| p.0);
        }
        Some(series)
    }

    /// Prints bytes per point of each encoding on the real data, per series, in chunks of
    /// 1024 points, and checks the targets. Run with
    /// `cargo test --release -- --ignored --nocapture real_data`.
    #[test]
    #[ignore = "reads shared/data; prints a table"]
    fn real_data_bytes_per_point() {
        let Some(series) = real_series() else {
            eprintln!("no data directory; skipped");
            return;
        };
        #[derive(Default)]
        struct Sizes {
            points: usize,
            timestamps: usize,
            gorilla: usize,
            decimal: usize,
            decimal_chunks: usize,
            chosen: usize,
            chunks: usize,
        }
        let mut rows: Vec<(String, Sizes)> = Vec::new();
        let mut total = Sizes::default();
        for (key, points) in &series {
            let mut sizes = Sizes::default();
            for chunk in points.chunks(MEASURE_CHUNK) {
                let ts: Vec<i64> = chunk.iter().map(|p| p.0).collect();
                let values: Vec<f64> = chunk.iter().map(|p| p.1).collect();
                let mut ts_bytes = Vec::new();
                encode_timestamps(&ts, &mut ts_bytes);
                let g = gorilla_len(&values);
                let mut d = Vec::new();
                let d_len = if decimal::encode(&values, &mut d) {
                    sizes.decimal_chunks += 1;
                    d.len()
                } else {
                    g
                };
                let (encoding, chosen) = encode(&values);
                let mut decoded_ts = Vec::new();
                decode_timestamps(&ts_bytes, ts.len(), &mut decoded_ts).unwrap();
                assert_eq!(decoded_ts, ts);
                let mut decoded = Vec::new();
                decode_values(encoding, &chosen, values.len(), &mut decoded).unwrap();
                assert_eq!(bits(&decoded), bits(&values));
                sizes.points += chunk.len();
                sizes.timestamps += ts_bytes.len();
                sizes.gorilla += g;
                sizes.decimal += d_len;
                sizes.chosen += chosen.len();
                sizes.chunks += 1;
            }
            total.points += sizes.points;
            total.timestamps += sizes.timestamps;
            total.gorilla += sizes.gorilla;
            total.decimal += sizes.decimal;
            total.decimal_chunks += sizes.decimal_chunks;
            total.chosen += sizes.chosen;
            total.chunks += sizes.chunks;
            rows.push((key.clone(), sizes));
        }
        rows.push(("ALL".into(), total));
        println!(
            "| series | points | timestamps B/pt | gorilla B/pt | decimal B/pt | chosen B/pt | chunk B/pt | decimal chunks |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for (key, s) in &rows {
            let per = |bytes: usize| bytes as f64 / s.points as f64;
            println!(
                "| {key} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {}/{} |",
                s.points,
                per(s.timestamps),
                per(s.gorilla),
                per(s.decimal),
                per(s.chosen),
                per(s.timestamps + s.chosen),
                s.decimal_chunks,
                s.chunks
            );
            assert!(s.chosen <= s.gorilla, "{key}");
        }
        let all = &rows.last().expect("the ALL row").1;
        let chunk = (all.timestamps + all.chosen) as f64 / all.points as f64;
        assert!(chunk <= 1.37, "whole chunk {chunk:.3} bytes/point");
        assert!(
            all.chosen * 2 < all.gorilla,
            "chosen not clearly below gorilla"
        );
    }

    /// Rough codec speed. Run with `cargo test --release -- --ignored --nocapture speed`.
    #[test]
    #[ignore = "timing; meaningful only with --release"]
    fn codec_speed() {
        const N: usize = 1 << 20;
        let mut state = 12345u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 33
        };
        let timestamps: Vec<i64> = (0..N as i64)
            .map(|i| 1_700_000_000_000 + i * 1000 + (next() % 21) as i64 - 10)
            .collect();
        let mut m = 2000i64;
        let decimals: Vec<f64> = (0..N)
            .map(|_| {
                m += (next() % 41) as i64 - 20;
                m as f64 / 100.0
            })
            .collect();
        let smooth: Vec<f64> = (0..N).map(|i| (i as f64 / 1000.0).sin() * 1e3).collect();

        let report = |what: &str, bytes: usize, seconds: f64| {
            println!(
                "{what:<28} {:>7.1} M values/s {:>8.0} Mbit/s of output ({:.2} bits/value)",
                N as f64 / seconds / 1e6,
                bytes as f64 * 8.0 / seconds / 1e6,
                bytes as f64 * 8.0 / N as f64
            );
        };
        let mut bytes = Vec::new();
        let start = Instant::now();
        for chunk in timestamps.chunks(MEASURE_CHUNK) {
            encode_timestamps(chunk, &mut bytes);
        }
        report(
            "timestamps encode",
            bytes.len(),
            start.elapsed().as_secs_f64(),
        );
        // Single column for decoding speed.
        bytes.clear();
        encode_timestamps(&timestamps, &mut bytes);
        let mut out = Vec::with_capacity(N);
        let start = Instant::now();
        decode_timestamps(&bytes, N, &mut out).unwrap();
        report(
            "timestamps decode",
            bytes.len(),
            start.elapsed().as_secs_f64(),
        );
        assert_eq!(out, timestamps);

        for (name, values) in [("decimal walk", &decimals), ("smooth floats", &smooth)] {
            let mut bytes = Vec::new();
            let start = Instant::now();
            let mut encoding = ValueEncoding::Gorilla;
            for chunk in values.chunks(MEASURE_CHUNK) {
                encoding = encode_values(chunk, &mut bytes);
            }
            report(
                &format!("{name} encode ({encoding:?})"),
                bytes.len(),
                start.elapsed().as_secs_f64(),
            );
            bytes.clear();
            let encoding = encode_values(values, &mut bytes);
            let mut out = Vec::with_capacity(N);
            let start = Instant::now();
            decode_values(encoding, &bytes, N, &mut out).unwrap();
            report(
                &format!("{name} decode ({encoding:?})"),
                bytes.len(),
                start.elapsed().as_secs_f64(),
            );
            assert_eq!(bits(&out), bits(values));
        }
    }
}
