//! Column codecs for chunks: timestamps delta-of-delta, values Gorilla XOR or decimal.
//!
//! CONTRACT (implemented by the codec work; signatures are fixed):
//! - `encode_timestamps` / `decode_timestamps`: any `i64` sequence round-trips exactly.
//! - `encode_values` picks, per call, the smaller of Gorilla XOR and the decimal encoding
//!   (the latter only when exactly lossless) and returns which it used.
//! - `decode_values` decodes either; every f64 bit pattern round-trips (NaN payloads, ±inf,
//!   -0.0).
//! - Decoders never panic on arbitrary bytes: they return `DecodeError`.

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

pub fn encode_timestamps(_timestamps: &[i64], _out: &mut Vec<u8>) {
    unimplemented!("codec work")
}

pub fn decode_timestamps(
    _bytes: &[u8],
    _count: usize,
    _out: &mut Vec<i64>,
) -> Result<(), DecodeError> {
    unimplemented!("codec work")
}

pub fn encode_values(_values: &[f64], _out: &mut Vec<u8>) -> ValueEncoding {
    unimplemented!("codec work")
}

pub fn decode_values(
    _encoding: ValueEncoding,
    _bytes: &[u8],
    _count: usize,
    _out: &mut Vec<f64>,
) -> Result<(), DecodeError> {
    unimplemented!("codec work")
}
