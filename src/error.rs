//! The crate's error type. Every error carries the context a user needs to act on it:
//! the file and byte offset of corrupt data, the path of a failed I/O, the field of bad input.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in MiniTrue, as a value.
#[derive(Debug)]
pub enum Error {
    /// Input from outside (a request, a payload, an argument) is not acceptable.
    InvalidInput { field: String, reason: String },
    /// An I/O operation on `path` failed.
    Io { path: PathBuf, source: io::Error },
    /// Data read from `path` failed validation (checksum, magic, bounds) at `offset`.
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// The store has been closed or a background role stopped.
    Closed(String),
    /// A peer node could not be reached or answered with an error.
    Peer { peer: String, reason: String },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn peer(peer: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Peer {
            peer: peer.into(),
            reason: reason.into(),
        }
    }

    pub fn corrupt(path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidInput { field, reason } => write!(f, "invalid {field}: {reason}"),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Corrupt {
                path,
                offset,
                reason,
            } => write!(f, "{}: {reason} at offset {offset}", path.display()),
            Error::Closed(what) => write!(f, "{what} is closed"),
            Error::Peer { peer, reason } => write!(f, "peer {peer}: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
