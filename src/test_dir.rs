//! Test-only: a fresh, empty directory per test under the system temp dir, removed on drop.
//! One copy for every unit test that touches files (integration tests have their own in
//! `tests/common`, since they are separate crates).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A directory unique to this process and call, created empty, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// `minitrue-{name}-{pid}-{n}` under the system temp dir.
    pub fn new(name: &str) -> TempDir {
        TempDir::under(&std::env::temp_dir(), name)
    }

    /// `minitrue-{name}-{pid}-{n}` under `base` (another disk, say).
    pub fn under(base: &Path, name: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = base.join(format!("minitrue-{name}-{}-{unique}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        if let Err(e) = std::fs::create_dir_all(&path) {
            panic!("create test dir {}: {e}", path.display());
        }
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, file: impl AsRef<Path>) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
