//! Zigzag mapping and LEB128 varints: how the codecs store the few whole numbers that start
//! a column (a first timestamp, a first delta, a first mantissa).
//!
//! Zigzag maps signed to unsigned so that small magnitudes of either sign become small
//! numbers: 0 → 0, -1 → 1, 1 → 2, -2 → 3, …, `i64::MAX` → `u64::MAX - 1`,
//! `i64::MIN` → `u64::MAX`. The residual streams use it too.
//!
//! Varint layout (unsigned LEB128), 1 to 10 bytes:
//! 1. each byte carries 7 bits of the number, least significant group first, in its low
//!    7 bits;
//! 2. the high bit of a byte is 1 when another byte follows, 0 on the last byte.
//!
//! So 0 is `[0x00]`, 127 is `[0x7F]`, 128 is `[0x80, 0x01]`. The reader rejects a number
//! that would not fit in 64 bits, and input that ends mid-number.

use super::DecodeError;

/// Maps a signed number to an unsigned one, small magnitudes to small numbers.
#[inline]
pub fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// Appends `value` as an unsigned LEB128 varint.
pub fn write_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7F) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a varint from the start of `bytes`, returning it and the bytes it took.
pub fn read_varint(bytes: &[u8]) -> Result<(u64, usize), DecodeError> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        let group = u64::from(byte & 0x7F);
        // The tenth byte holds bit 63 only.
        if i == 9 && group > 1 {
            return Err(DecodeError("varint does not fit in 64 bits".into()));
        }
        value |= group << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if bytes.len() >= 10 {
        Err(DecodeError("varint longer than 10 bytes".into()))
    } else {
        Err(DecodeError(format!(
            "varint cut off after {} bytes",
            bytes.len()
        )))
    }
}

/// Reads a zigzag varint (a signed number) from the start of `bytes`, advancing `bytes` past
/// it. `what` names the field in the error message.
pub fn take_signed(bytes: &mut &[u8], what: &str) -> Result<i64, DecodeError> {
    let (value, len) = read_varint(bytes).map_err(|e| DecodeError(format!("{what}: {e}")))?;
    *bytes = &bytes[len..];
    Ok(unzigzag(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn zigzag_interleaves_signs() {
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(-2), 3);
        assert_eq!(zigzag(i64::MAX), u64::MAX - 1);
        assert_eq!(zigzag(i64::MIN), u64::MAX);
    }

    #[test]
    fn varint_golden_bytes() {
        let cases: [(u64, &[u8]); 5] = [
            (0, &[0x00]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (300, &[0xAC, 0x02]),
            (
                u64::MAX,
                &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            ),
        ];
        for (value, bytes) in cases {
            let mut out = Vec::new();
            write_varint(value, &mut out);
            assert_eq!(out, bytes, "{value}");
        }
    }

    #[test]
    fn varint_rejects_cut_off_and_oversized_numbers() {
        assert!(read_varint(&[]).is_err());
        assert!(read_varint(&[0x80]).is_err());
        assert!(read_varint(&[0xFF; 9]).is_err());
        assert!(
            read_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02]).is_err()
        );
        assert!(read_varint(&[0x80; 11]).is_err());
    }

    proptest! {
        #[test]
        fn zigzag_round_trips(value in any::<i64>()) {
            prop_assert_eq!(unzigzag(zigzag(value)), value);
        }

        #[test]
        fn varint_round_trips_and_reports_its_length(value in any::<u64>(), tail in any::<u8>()) {
            let mut out = Vec::new();
            write_varint(value, &mut out);
            let len = out.len();
            out.push(tail);
            prop_assert_eq!(read_varint(&out).unwrap(), (value, len));
        }

        #[test]
        fn varint_reader_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..16)) {
            let _ = read_varint(&bytes);
        }
    }
}
