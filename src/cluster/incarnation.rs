//! This node's incarnation kept across restarts, so a restarted node always supersedes
//! what its peers remember of it (including a refutation it made just before a crash) and
//! never has to win back its own name.
//!
//! The file `DATA_DIR/NODE/incarnation` holds one line: the highest incarnation this node
//! has announced, in decimal. It is replaced atomically (written to `incarnation.tmp`,
//! fsynced, renamed over, the directory fsynced), so a crash leaves the old value or the
//! new one. At start the node takes `max(stored + 1, now in unix ms)`: one more than any
//! earlier run, and still the start time when the data directory is new (or was wiped), as
//! before the file existed. Every refutation that raises the incarnation is written too.

use crate::error::{Error, Result};
use crate::storage::durable::sync_parent_dir;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Name of the file under the node's data directory.
pub const INCARNATION_FILE: &str = "incarnation";

/// The persisted incarnation of this node.
#[derive(Debug)]
pub struct IncarnationStore {
    path: PathBuf,
    /// The value on disk. Held while writing, so a lower value never lands after a higher
    /// one; writes are rare (start-up and refutations).
    stored: Mutex<u64>,
}

impl IncarnationStore {
    /// Reads the stored incarnation under `dir` (none yet: 0), picks this run's
    /// (`max(stored + 1, now_ms)`) and stores it before returning it.
    pub fn open(dir: &Path, now_ms: u64) -> Result<(IncarnationStore, u64)> {
        let path = dir.join(INCARNATION_FILE);
        let stored = match fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<u64>().map_err(|_| {
                Error::corrupt(&path, 0, format!("not an incarnation: {:?}", text.trim()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(Error::io(&path, e)),
        };
        let incarnation = stored.saturating_add(1).max(now_ms);
        let store = IncarnationStore {
            path,
            stored: Mutex::new(stored),
        };
        store.record(incarnation)?;
        Ok((store, incarnation))
    }

    /// Persists `incarnation` if it is above the stored value.
    pub fn record(&self, incarnation: u64) -> Result<()> {
        let mut stored = self.stored.lock().unwrap_or_else(|p| p.into_inner());
        if incarnation <= *stored {
            return Ok(());
        }
        replace_file(&self.path, format!("{incarnation}\n").as_bytes())?;
        *stored = incarnation;
        Ok(())
    }
}

/// Replaces `path` with `bytes` atomically and durably (temp file, fsync, rename, fsync of
/// the directory).
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, bytes)
        .and_then(|_| fs::File::open(&tmp)?.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    sync_parent_dir(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TempDir;

    #[test]
    fn a_new_directory_starts_at_now_and_each_restart_goes_up() {
        let dir = TempDir::new("incarnation-restarts");
        let (_, first) = IncarnationStore::open(dir.path(), 1000).unwrap();
        assert_eq!(first, 1000);
        // A clock that went backwards does not matter: the stored value wins.
        let (_, second) = IncarnationStore::open(dir.path(), 10).unwrap();
        assert_eq!(second, 1001);
        let (_, third) = IncarnationStore::open(dir.path(), 5000).unwrap();
        assert_eq!(third, 5000);
        assert_eq!(
            fs::read_to_string(dir.join(INCARNATION_FILE)).unwrap(),
            "5000\n"
        );
    }

    #[test]
    fn a_refutation_is_kept_for_the_next_start_and_lower_values_are_not_written() {
        let dir = TempDir::new("incarnation-refute");
        let (store, _) = IncarnationStore::open(dir.path(), 1000).unwrap();
        store.record(7000).unwrap();
        store.record(6000).unwrap();
        let (_, next) = IncarnationStore::open(dir.path(), 1000).unwrap();
        assert_eq!(next, 7001);
    }

    #[test]
    fn the_largest_stored_value_saturates() {
        let dir = TempDir::new("incarnation-max");
        fs::write(dir.join(INCARNATION_FILE), format!("{}\n", u64::MAX)).unwrap();
        let (_, next) = IncarnationStore::open(dir.path(), 1000).unwrap();
        assert_eq!(next, u64::MAX);
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = TempDir::new("incarnation-corrupt");
        fs::write(dir.join(INCARNATION_FILE), "twelve").unwrap();
        let e = IncarnationStore::open(dir.path(), 1000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("incarnation") && e.contains("twelve"), "{e}");
    }
}
