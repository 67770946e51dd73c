//! Reading the WAL back after a restart: every file in id order, a torn tail of the newest
//! file truncated, corrupt records reported (or skipped, see [`replay`]); and the file
//! naming the writer and the engine share.

use super::record::*;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

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

/// Reads every WAL file in `dir` in id order and calls `apply` for each entry, in order.
/// Truncates a torn tail of the newest file; fails on any other bad record unless
/// `skip_corrupt`, which skips it and goes on. A missing `dir` replays nothing. On error,
/// `apply` may already have been called for the records before the bad one. Each file is read
/// whole into memory, which rotation keeps bounded. Not to be run on a directory a [`Wal`](super::Wal) is
/// writing to.
pub fn replay(
    dir: &Path,
    skip_corrupt: bool,
    apply: &mut dyn FnMut(WalEntry),
) -> Result<ReplayReport> {
    let files = list_files(dir)?;
    let mut report = ReplayReport {
        files: files.len(),
        ..ReplayReport::default()
    };
    let newest = files.last().map(|(id, _)| *id);
    for (id, path) in &files {
        let is_newest = Some(*id) == newest;
        replay_file(path, is_newest, skip_corrupt, apply, &mut report)?;
    }
    Ok(report)
}

fn replay_file(
    path: &Path,
    is_newest: bool,
    skip_corrupt: bool,
    apply: &mut dyn FnMut(WalEntry),
    report: &mut ReplayReport,
) -> Result<()> {
    let data = fs::read(path).map_err(|e| Error::io(path, e))?;
    let len = data.len();
    if len == 0 {
        return Ok(());
    }
    let skip_or_fail = |report: &mut ReplayReport, offset: usize, reason: String| {
        if skip_corrupt {
            report
                .skipped
                .push((path.to_path_buf(), offset as u64, reason));
            Ok(())
        } else {
            Err(Error::corrupt(path, offset as u64, reason))
        }
    };

    if len < FILE_HEADER_LEN {
        if is_newest {
            // A crash while the file was being created.
            truncate_file(path, 0)?;
            report.truncated.push((path.to_path_buf(), 0, len as u64));
            return Ok(());
        }
        let reason = format!("file header cut short ({len} of {FILE_HEADER_LEN} bytes)");
        return skip_or_fail(report, 0, reason);
    }
    if let Err(reason) = check_file_header(&data) {
        return skip_or_fail(report, 0, format!("{reason}; whole file not replayed"));
    }

    // The series numbers this file's records defined so far (format version 3).
    let mut series_ids = HashMap::new();
    let mut pos = FILE_HEADER_LEN;
    while pos < len {
        match read_frame(&data, pos) {
            Ok((payload, next)) => {
                match decode_payload(payload, &mut series_ids) {
                    Ok(entries) => {
                        report.records += 1;
                        report.entries += entries.len() as u64;
                        for entry in entries {
                            apply(entry);
                        }
                    }
                    // A checksummed record that does not parse is never a torn write.
                    Err(reason) => skip_or_fail(report, pos, format!("bad record: {reason}"))?,
                }
                pos = next;
            }
            Err(reason) => match resync(&data, pos + 1) {
                Some(next) => {
                    let reason = format!(
                        "bad record: {reason}; a valid record follows at offset {next}, so \
                         this is not a torn tail"
                    );
                    skip_or_fail(report, pos, reason)?;
                    pos = next;
                }
                None if is_newest => {
                    truncate_file(path, pos as u64)?;
                    report
                        .truncated
                        .push((path.to_path_buf(), pos as u64, (len - pos) as u64));
                    return Ok(());
                }
                None => {
                    let reason = format!(
                        "bad record: {reason}; the file is not the newest, so this is not a \
                         torn tail"
                    );
                    return skip_or_fail(report, pos, reason);
                }
            },
        }
    }
    Ok(())
}

/// Path of the WAL file with `id` in `dir`.
pub fn file_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("wal-{id:016}.log"))
}

/// The id in a WAL file name, or `None` for any other file.
pub(super) fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The WAL files in `dir`, by increasing id; none if `dir` does not exist.
pub fn list_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        if let Some(id) = name.to_str().and_then(parse_file_name) {
            files.push((id, entry.path()));
        }
    }
    files.sort_unstable_by_key(|(id, _)| *id);
    Ok(files)
}

/// Cuts `path` to `len` bytes, synced: a torn tail at replay, a failed write at recovery.
pub(super) fn truncate_file(path: &Path, len: u64) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(path, e))
}
