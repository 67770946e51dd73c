//! Write-ahead log. CONTRACT (implemented by the WAL work; signatures are fixed).

use crate::error::Result;
use crate::storage::{SeriesKey, Timestamp};
use std::path::{Path, PathBuf};

/// One logical change, as given to [`Wal::append`].
#[derive(Clone, Copy, Debug)]
pub enum WalEntryRef<'a> {
    Points {
        series: &'a SeriesKey,
        points: &'a [(Timestamp, f64)],
    },
    DeleteSeries(&'a SeriesKey),
}

/// One logical change, as read back by [`replay`].
#[derive(Clone, Debug, PartialEq)]
pub enum WalEntry {
    Points {
        series: SeriesKey,
        points: Vec<(Timestamp, f64)>,
    },
    DeleteSeries(SeriesKey),
}

/// What replay found besides the entries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplayReport {
    pub files: usize,
    pub records: u64,
    pub entries: u64,
    /// Torn tails truncated: (file, offset truncated at, bytes dropped).
    pub truncated: Vec<(PathBuf, u64, u64)>,
    /// Corrupt records skipped (only with `skip_corrupt`): (file, offset, reason).
    pub skipped: Vec<(PathBuf, u64, String)>,
}

pub struct Wal;

pub fn replay(
    _dir: &Path,
    _skip_corrupt: bool,
    _apply: &mut dyn FnMut(WalEntry),
) -> Result<ReplayReport> {
    unimplemented!("wal work")
}

impl Wal {
    pub fn open(_dir: &Path) -> Result<Wal> {
        unimplemented!("wal work")
    }
    pub fn append(&self, _entries: &[WalEntryRef<'_>]) -> Result<u64> {
        unimplemented!("wal work")
    }
    pub fn wait_durable(&self, _seq: u64) -> Result<()> {
        unimplemented!("wal work")
    }
    pub fn rotate(&self) -> Result<u64> {
        unimplemented!("wal work")
    }
    pub fn remove_files_before(&self, _file_id: u64) -> Result<()> {
        unimplemented!("wal work")
    }
    pub fn size_bytes(&self) -> u64 {
        unimplemented!("wal work")
    }
}
