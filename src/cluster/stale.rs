//! A node that was down longer than the tombstone grace must not bring deleted series back.
//!
//! Tombstones are forgotten after `--tombstone_grace_hours`. A node that was down longer
//! missed the deletes made meanwhile, and its peers no longer remember them: repair would
//! copy its old points of a deleted series back to them. So a node remembers when it was
//! last alive, and at start, if that is longer ago than the grace and it was part of a
//! cluster, it *wipes and resyncs*, without destroying anything:
//!
//! 1. its store (`segments/`, `wal/`) and its hints for other nodes (`hints/`) are moved
//!    into `DATA_DIR/NODE/stale-<unix ms>/`, kept for the operator and never read again;
//! 2. it logs an error saying why and where, and `/status` shows it as
//!    `stale_data_set_aside`;
//! 3. it starts empty, and repair refills the series it owns from the replicas (which
//!    applied every delete).
//!
//! Refusing the stale data was the other choice (a node that will not start until the
//! operator acts): setting it aside gives the same safety and heals by itself.
//!
//! A node that was alone keeps its data: nobody can have deleted anything it did not see.
//! Alone means its last mark listed no other member *and* it was given no `--seeds`: a node
//! killed before its first mark with peers still counts as clustered through its seeds,
//! and a node without seeds that others seed to (or one on a local slot, which probes the
//! other slots) through its mark. A single node started without flags on a local slot is
//! therefore alone, as it should be. `--keep_stale_data` keeps it in a cluster too (deletes then come back).
//! A missing mark (a new data directory, or one from before this file existed) counts as
//! fresh; an unreadable one as stale (the downtime is unknown, and setting aside is safe).
//!
//! # The mark file
//!
//! `DATA_DIR/NODE/alive_at` holds one JSON object `{"unix_ms": u64, "peers": u64}`: when
//! the node was last known alive, and how many other members its table held then. It is
//! replaced atomically (see [`replace_file`]) every [`ALIVE_MARK_INTERVAL`] (or a tenth of
//! the grace, if shorter) by the `wal-flush` thread, and once more at a clean shutdown. The
//! first mark of a run, written at start before gossip has found anyone, keeps the member
//! count of the mark it replaces.

use crate::cluster::incarnation::replace_file;
use crate::error::{Error, Result};
use crate::storage::durable::sync_dir;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Name of the mark file under the node's data directory.
pub const ALIVE_FILE: &str = "alive_at";

/// Longest time between two marks.
pub const ALIVE_MARK_INTERVAL: Duration = Duration::from_secs(10);

/// What is moved aside when the data is stale: the store, and hints for other owners
/// (which hold points of series that may have been deleted since).
pub const SET_ASIDE: [&str; 3] = ["segments", "wal", "hints"];

/// The stale data goes into `stale-<unix ms>` under the node's data directory.
pub const STALE_DIR_PREFIX: &str = "stale-";

/// When the node was last alive, as the mark file holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliveMark {
    pub unix_ms: u64,
    /// Other members in its table at the time (0: it was a single node).
    pub peers: u64,
}

/// What the mark file said at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mark {
    /// No file: a new data directory, or one written before marks existed.
    Missing,
    /// A file that does not parse; the reason.
    Unreadable(String),
    At(AliveMark),
}

/// What to do with the data found at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Down no longer than the grace (or never marked): start with it.
    Fresh,
    /// Down longer than the grace, but it was a single node: start with it.
    Alone { down_for: Duration },
    /// Down longer than the grace in a cluster (or for an unknown time): set it aside.
    Stale { why: String },
}

/// What `/status` says about data set aside at this start.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StaleData {
    /// Where the old files are now.
    pub path: String,
    /// Why they were set aside.
    pub reason: String,
}

/// The path of the mark under the node's data directory `dir`.
pub fn mark_path(dir: &Path) -> PathBuf {
    dir.join(ALIVE_FILE)
}

/// Reads the mark under `dir`; only an I/O failure other than a missing file is an error.
pub fn read_mark(dir: &Path) -> Result<Mark> {
    let path = mark_path(dir);
    match fs::read(&path) {
        Ok(bytes) => Ok(match serde_json::from_slice::<AliveMark>(&bytes) {
            Ok(mark) => Mark::At(mark),
            Err(e) => Mark::Unreadable(format!("{}: {e}", path.display())),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Mark::Missing),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Replaces the mark under `dir` atomically.
pub fn write_mark(dir: &Path, mark: AliveMark) -> Result<()> {
    let path = mark_path(dir);
    let bytes = serde_json::to_vec(&mark)
        .map_err(|e| Error::corrupt(&path, 0, format!("encode alive mark: {e}")))?;
    replace_file(&path, &bytes)
}

/// How often the mark is written under `grace`: often enough that it is never more than a
/// tenth of the grace old while the node runs.
pub fn mark_interval(grace: Duration) -> Duration {
    ALIVE_MARK_INTERVAL
        .min(grace / 10)
        .max(Duration::from_millis(10))
}

/// Judges the data under the mark `mark` at `now_ms`, for a grace of `grace`, on a node
/// given `--seeds` (`has_seeds`) or not.
pub fn judge(mark: &Mark, now_ms: u64, grace: Duration, has_seeds: bool) -> Verdict {
    let mark = match mark {
        Mark::Missing => return Verdict::Fresh,
        Mark::Unreadable(reason) => {
            return Verdict::Stale {
                why: format!(
                    "the last-alive mark is unreadable ({reason}), so the downtime is unknown"
                ),
            }
        }
        Mark::At(mark) => mark,
    };
    // A clock that went back makes the downtime 0: nothing says it was long.
    let down_for = Duration::from_millis(now_ms.saturating_sub(mark.unix_ms));
    if down_for <= grace {
        Verdict::Fresh
    } else if mark.peers == 0 && !has_seeds {
        Verdict::Alone { down_for }
    } else {
        Verdict::Stale {
            why: format!(
                "down {}, longer than the tombstone grace of {}: deletes made meanwhile are \
                 forgotten by the peers and would come back",
                human(down_for),
                human(grace)
            ),
        }
    }
}

/// Moves what [`SET_ASIDE`] names out of `dir` into `dir/stale-<now_ms>/`. Returns that
/// directory, or `None` when there was nothing to move.
pub fn set_aside(dir: &Path, now_ms: u64) -> Result<Option<PathBuf>> {
    let present: Vec<&str> = SET_ASIDE
        .into_iter()
        .filter(|name| dir.join(name).exists())
        .collect();
    if present.is_empty() {
        return Ok(None);
    }
    let mut target = dir.join(format!("{STALE_DIR_PREFIX}{now_ms}"));
    let mut n = 0;
    while target.exists() {
        n += 1;
        target = dir.join(format!("{STALE_DIR_PREFIX}{now_ms}-{n}"));
    }
    fs::create_dir_all(&target).map_err(|e| Error::io(&target, e))?;
    for name in present {
        let to = target.join(name);
        fs::rename(dir.join(name), &to).map_err(|e| Error::io(&to, e))?;
    }
    sync_dir(&target)?;
    sync_dir(dir)?;
    Ok(Some(target))
}

/// What [`check_at_start`] judges by: the node's data directory, the grace, whether the
/// node was given `--seeds`, and `--keep_stale_data`.
#[derive(Clone, Copy, Debug)]
pub struct StartCheck<'a> {
    pub dir: &'a Path,
    pub grace: Duration,
    pub has_seeds: bool,
    pub keep: bool,
}

/// What [`check_at_start`] found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StartOutcome {
    /// What was set aside, for `/status`.
    pub set_aside: Option<StaleData>,
    /// Other members in the mark found (0 without one). The first mark of this run, written
    /// before gossip has found anyone, carries it on, so a crash right after the start does
    /// not make a cluster node look alone.
    pub peers_before: u64,
}

/// At start, before the store opens: judges the data under `check.dir` at `now_ms` and
/// sets it aside when stale (unless `check.keep`); logs what it decided.
pub fn check_at_start(check: StartCheck<'_>, now_ms: u64) -> Result<StartOutcome> {
    let mark = read_mark(check.dir)?;
    let peers_before = match &mark {
        Mark::At(m) => m.peers,
        Mark::Missing | Mark::Unreadable(_) => 0,
    };
    Ok(StartOutcome {
        set_aside: set_aside_if_stale(check, &mark, now_ms)?,
        peers_before,
    })
}

fn set_aside_if_stale(
    check: StartCheck<'_>,
    mark: &Mark,
    now_ms: u64,
) -> Result<Option<StaleData>> {
    let StartCheck {
        dir,
        grace,
        has_seeds,
        keep,
    } = check;
    let why = match judge(mark, now_ms, grace, has_seeds) {
        Verdict::Fresh => return Ok(None),
        Verdict::Alone { down_for } => {
            crate::log_info!(
                "down {} (longer than the tombstone grace), but this node was alone: \
                 keeping its data",
                human(down_for)
            );
            return Ok(None);
        }
        Verdict::Stale { why } => why,
    };
    if keep {
        crate::log_warn!(
            "{why}; --keep_stale_data: starting with the old data anyway (deleted series \
             may come back)"
        );
        return Ok(None);
    }
    let Some(path) = set_aside(dir, now_ms)? else {
        return Ok(None);
    };
    crate::log_error!(
        "{why}: set the old data aside in {} (kept, never read) and starting empty; \
         repair refills this node's series from its replicas",
        path.display()
    );
    Ok(Some(StaleData {
        path: path.display().to_string(),
        reason: why,
    }))
}

/// `90 s`, `2.5 h`, `12.0 d`: a duration for a log line.
fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 120.0 {
        format!("{secs:.1} s")
    } else if secs < 2.0 * 3600.0 {
        format!("{:.1} min", secs / 60.0)
    } else if secs < 2.0 * 86_400.0 {
        format!("{:.1} h", secs / 3600.0)
    } else {
        format!("{:.1} d", secs / 86_400.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TempDir;

    const HOUR: Duration = Duration::from_secs(3600);
    const NOW: u64 = 1_800_000_000_000;

    fn at(ago: Duration, peers: u64) -> Mark {
        Mark::At(AliveMark {
            unix_ms: NOW - ago.as_millis() as u64,
            peers,
        })
    }

    fn check(dir: &Path, grace: Duration, keep: bool) -> StartCheck<'_> {
        StartCheck {
            dir,
            grace,
            has_seeds: true,
            keep,
        }
    }

    #[test]
    fn down_within_the_grace_is_fresh_and_longer_in_a_cluster_is_stale() {
        let grace = 240 * HOUR;
        assert_eq!(judge(&at(HOUR, 2), NOW, grace, true), Verdict::Fresh);
        assert_eq!(judge(&at(grace, 2), NOW, grace, true), Verdict::Fresh);
        assert!(matches!(
            judge(&at(grace + Duration::from_millis(1), 2), NOW, grace, true),
            Verdict::Stale { .. }
        ));
        // Peers in the mark, or seeds to look for: either makes it a cluster node.
        assert!(matches!(
            judge(&at(2 * grace, 0), NOW, grace, true),
            Verdict::Stale { .. }
        ));
        let Verdict::Stale { why } = judge(&at(11 * 24 * HOUR, 1), NOW, grace, false) else {
            panic!("eleven days down in a cluster is stale");
        };
        assert!(why.contains("11.0 d") && why.contains("10.0 d"), "{why}");
    }

    #[test]
    fn a_single_node_a_missing_mark_and_a_clock_that_went_back_keep_the_data() {
        let grace = HOUR;
        assert_eq!(
            judge(&at(2 * HOUR, 0), NOW, grace, false),
            Verdict::Alone { down_for: 2 * HOUR }
        );
        assert_eq!(judge(&Mark::Missing, NOW, grace, true), Verdict::Fresh);
        let future = Mark::At(AliveMark {
            unix_ms: NOW + 10 * HOUR.as_millis() as u64,
            peers: 2,
        });
        assert_eq!(judge(&future, NOW, grace, true), Verdict::Fresh);
        assert!(matches!(
            judge(&Mark::Unreadable("x".into()), NOW, grace, false),
            Verdict::Stale { .. }
        ));
    }

    #[test]
    fn the_mark_round_trips_and_a_bad_one_is_unreadable() {
        let tmp = TempDir::new("stale-mark");
        let dir = tmp.path().to_path_buf();
        assert_eq!(read_mark(&dir).unwrap(), Mark::Missing);
        let mark = AliveMark {
            unix_ms: NOW,
            peers: 2,
        };
        write_mark(&dir, mark).unwrap();
        assert_eq!(read_mark(&dir).unwrap(), Mark::At(mark));
        assert_eq!(
            fs::read_to_string(mark_path(&dir)).unwrap(),
            r#"{"unix_ms":1800000000000,"peers":2}"#
        );
        fs::write(mark_path(&dir), b"yesterday").unwrap();
        let Mark::Unreadable(reason) = read_mark(&dir).unwrap() else {
            panic!("garbage is unreadable");
        };
        assert!(reason.contains(ALIVE_FILE), "{reason}");
    }

    #[test]
    fn stale_data_is_moved_aside_whole_and_the_rest_stays() {
        let tmp = TempDir::new("stale-aside");
        let dir = tmp.path().to_path_buf();
        for sub in ["segments", "wal", "hints/vega", "quarantine"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        fs::write(dir.join("segments/000001.seg"), b"seg").unwrap();
        fs::write(dir.join("wal/000001.wal"), b"wal").unwrap();
        fs::write(dir.join("tombstones.json"), b"[]").unwrap();
        write_mark(
            &dir,
            AliveMark {
                unix_ms: NOW - 3 * HOUR.as_millis() as u64,
                peers: 2,
            },
        )
        .unwrap();
        let outcome = check_at_start(check(&dir, HOUR, false), NOW).unwrap();
        assert_eq!(outcome.peers_before, 2);
        let report = outcome.set_aside.expect("set aside");
        let aside = dir.join(format!("stale-{NOW}"));
        assert_eq!(report.path, aside.display().to_string());
        assert!(report.reason.contains("3.0 h"), "{}", report.reason);
        assert_eq!(fs::read(aside.join("segments/000001.seg")).unwrap(), b"seg");
        assert_eq!(fs::read(aside.join("wal/000001.wal")).unwrap(), b"wal");
        assert!(aside.join("hints/vega").is_dir());
        for gone in SET_ASIDE {
            assert!(!dir.join(gone).exists(), "{gone} still in place");
        }
        assert!(dir.join("quarantine").is_dir() && dir.join("tombstones.json").exists());
        // A second stale start in the same millisecond does not mix the two.
        fs::create_dir_all(dir.join("wal")).unwrap();
        let again = set_aside(&dir, NOW).unwrap().expect("wal moved");
        assert_eq!(again, dir.join(format!("stale-{NOW}-1")));
        assert_eq!(set_aside(&dir, NOW).unwrap(), None, "nothing left to move");
    }

    #[test]
    fn keep_stale_data_and_fresh_marks_leave_the_store_in_place() {
        let tmp = TempDir::new("stale-keep");
        let dir = tmp.path().to_path_buf();
        fs::create_dir_all(dir.join("segments")).unwrap();
        let old = AliveMark {
            unix_ms: NOW - 3 * HOUR.as_millis() as u64,
            peers: 1,
        };
        write_mark(&dir, old).unwrap();
        let kept = |c| check_at_start(c, NOW).unwrap().set_aside.is_none();
        assert!(kept(check(&dir, HOUR, true)));
        assert!(kept(check(&dir, 4 * HOUR, false)));
        write_mark(&dir, AliveMark { peers: 0, ..old }).unwrap();
        let alone = StartCheck {
            has_seeds: false,
            ..check(&dir, HOUR, false)
        };
        assert!(kept(alone));
        assert!(dir.join("segments").is_dir());
    }

    #[test]
    fn marks_come_at_least_ten_times_per_grace() {
        assert_eq!(mark_interval(240 * HOUR), ALIVE_MARK_INTERVAL);
        assert_eq!(
            mark_interval(Duration::from_millis(7200)),
            Duration::from_millis(720)
        );
    }
}
