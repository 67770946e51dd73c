//! Making file-system changes durable: fsync of a directory, so that a file created,
//! renamed or removed in it stays so after a crash. One copy for the WAL, segments, the
//! quarantine and the cluster's small state files.
//!
//! Windows cannot open a directory as a file, and NTFS journals its metadata itself, so
//! there these are no-ops.

use crate::error::{Error, Result};
use std::fs::File;
use std::path::Path;

/// Makes file creations, renames and deletions in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    if cfg!(unix) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// [`sync_dir`] of the directory holding `path` (the current directory for a bare name).
pub fn sync_parent_dir(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}
