//! The quarantine: where the engine sets aside files that failed their checks, so that a node
//! with one corrupt file starts with everything else instead of refusing to start.
//!
//! A store's quarantine is the directory `quarantine/` beside `segments/` and `wal/`. Each
//! quarantined file keeps its name (with `.1`, `.2`, … appended if that name is taken) and
//! gets a companion `NAME.reason` holding one line: what failed, with file and offset. The
//! engine lists the directory on open, so `/status` shows what is there across restarts.
//! Nothing in it is ever read back as data: an operator inspects it, and in a cluster repair
//! refills what it held from the replicas. Deleting the directory is safe.
//!
//! A corrupt segment is *moved* here: the store no longer holds it. A WAL file with a corrupt
//! record is *copied* here, because its good records were replayed into memory and stay in
//! the original until a segment holds them (the engine flushes right after opening, which
//! removes the original).

use crate::error::{Error, Result};
use crate::storage::durable::sync_dir;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The quarantine's directory name inside a store.
pub const QUARANTINE_DIR: &str = "quarantine";
/// Suffix of the file holding a quarantined file's reason.
const REASON_SUFFIX: &str = ".reason";

/// One file in the quarantine.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Quarantined {
    /// Where the file is now, inside the quarantine.
    pub file: PathBuf,
    /// What failed its check, naming the original file and the offset.
    pub reason: String,
}

/// Moves `file` into `quarantine_dir` and records `reason` beside it.
pub fn move_in(quarantine_dir: &Path, file: &Path, reason: &str) -> Result<Quarantined> {
    let target = free_name(quarantine_dir, file)?;
    fs::rename(file, &target).map_err(|e| Error::io(file, e))?;
    record_reason(quarantine_dir, &target, reason)?;
    if let Some(parent) = file.parent() {
        sync_dir(parent)?;
    }
    Ok(Quarantined {
        file: target,
        reason: reason.to_string(),
    })
}

/// Copies `file` into `quarantine_dir` (fsynced) and records `reason` beside it. A copy
/// already there with the same name and length (from a start that crashed before the
/// original was removed) is reused, so restarts do not pile up copies.
pub fn copy_in(quarantine_dir: &Path, file: &Path, reason: &str) -> Result<Quarantined> {
    fs::create_dir_all(quarantine_dir).map_err(|e| Error::io(quarantine_dir, e))?;
    let len = fs::metadata(file).map_err(|e| Error::io(file, e))?.len();
    if let Some(name) = file.file_name() {
        let same = quarantine_dir.join(name);
        if fs::metadata(&same).is_ok_and(|m| m.len() == len) {
            record_reason(quarantine_dir, &same, reason)?;
            return Ok(Quarantined {
                file: same,
                reason: reason.to_string(),
            });
        }
    }
    let target = free_name(quarantine_dir, file)?;
    fs::copy(file, &target).map_err(|e| Error::io(&target, e))?;
    fs::File::open(&target)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(&target, e))?;
    record_reason(quarantine_dir, &target, reason)?;
    Ok(Quarantined {
        file: target,
        reason: reason.to_string(),
    })
}

/// Every file in `quarantine_dir` with its reason, sorted by path; none if it does not exist.
pub fn list(quarantine_dir: &Path) -> Result<Vec<Quarantined>> {
    let entries = match fs::read_dir(quarantine_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(quarantine_dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(quarantine_dir, e))?;
        let file = entry.path();
        if file.to_string_lossy().ends_with(REASON_SUFFIX) {
            continue;
        }
        let reason = fs::read_to_string(reason_path(&file))
            .map(|r| r.trim_end().to_string())
            .unwrap_or_else(|_| "no reason recorded".to_string());
        out.push(Quarantined { file, reason });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(out)
}

/// `quarantine_dir/NAME`, or `NAME.1`, `NAME.2`, … if taken; creates the directory.
fn free_name(quarantine_dir: &Path, file: &Path) -> Result<PathBuf> {
    fs::create_dir_all(quarantine_dir).map_err(|e| Error::io(quarantine_dir, e))?;
    let name = file
        .file_name()
        .ok_or_else(|| Error::invalid("quarantine", format!("{} has no name", file.display())))?
        .to_string_lossy()
        .into_owned();
    let mut candidate = quarantine_dir.join(&name);
    let mut n = 0u32;
    while candidate.exists() {
        n += 1;
        candidate = quarantine_dir.join(format!("{name}.{n}"));
    }
    Ok(candidate)
}

fn reason_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_os_string();
    name.push(REASON_SUFFIX);
    PathBuf::from(name)
}

fn record_reason(quarantine_dir: &Path, file: &Path, reason: &str) -> Result<()> {
    let path = reason_path(file);
    fs::write(&path, format!("{reason}\n")).map_err(|e| Error::io(&path, e))?;
    sync_dir(quarantine_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_dir::TempDir;

    #[test]
    fn moved_and_copied_files_are_listed_with_their_reasons() {
        let dir = TempDir::new("quarantine-list");
        let q = dir.join(QUARANTINE_DIR);
        fs::write(dir.join("a.seg"), b"bad").unwrap();
        fs::write(dir.join("w.log"), b"half bad").unwrap();
        move_in(&q, &dir.join("a.seg"), "a.seg: chunk checksum mismatch").unwrap();
        copy_in(&q, &dir.join("w.log"), "w.log: bad record at offset 20").unwrap();
        assert!(!dir.join("a.seg").exists(), "moved");
        assert!(dir.join("w.log").exists(), "copied");

        let listed = list(&q).unwrap();
        assert_eq!(
            listed,
            [
                Quarantined {
                    file: q.join("a.seg"),
                    reason: "a.seg: chunk checksum mismatch".into()
                },
                Quarantined {
                    file: q.join("w.log"),
                    reason: "w.log: bad record at offset 20".into()
                },
            ]
        );
    }

    #[test]
    fn a_taken_name_gets_a_number_and_a_repeated_copy_is_reused() {
        let dir = TempDir::new("quarantine-names");
        let q = dir.join(QUARANTINE_DIR);
        for _ in 0..2 {
            fs::write(dir.join("a.seg"), b"bad").unwrap();
            move_in(&q, &dir.join("a.seg"), "bad").unwrap();
        }
        fs::write(dir.join("w.log"), b"x").unwrap();
        copy_in(&q, &dir.join("w.log"), "bad").unwrap();
        copy_in(&q, &dir.join("w.log"), "bad").unwrap();
        let files: Vec<PathBuf> = list(&q).unwrap().into_iter().map(|f| f.file).collect();
        assert_eq!(files, [q.join("a.seg"), q.join("a.seg.1"), q.join("w.log")]);
        assert!(list(&dir.join("none")).unwrap().is_empty());
    }
}
