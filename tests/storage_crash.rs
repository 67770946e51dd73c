//! Crash test for the storage engine: a child process writes batches and prints each one
//! the engine acknowledged; the parent kills it with SIGKILL at a random moment (also while
//! it flushes and compacts), reopens the store and checks every acknowledged point is there
//! exactly once, with its value.
//!
//! The child is this same test binary, re-executed with `MINITRUE_CRASH_CHILD` set.

use minitrue::storage::{Engine, EngineConfig, Point, SeriesKey, TimeRange, Timestamp};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD_ENV: &str = "MINITRUE_CRASH_CHILD";
const SERIES: usize = 5;
const BATCH_POINTS: usize = 200;

fn series_keys() -> Vec<SeriesKey> {
    (0..SERIES)
        .map(|i| SeriesKey::new(&format!("sensor_{i}"), "temperature").expect("valid key"))
        .collect()
}

/// Batch `b` holds, for each series, the timestamps `b*BATCH_POINTS ..` with value `b`.
fn batch(keys: &[SeriesKey], b: usize) -> Vec<Point> {
    keys.iter()
        .flat_map(|k| {
            (0..BATCH_POINTS).map(move |i| Point {
                series: k.clone(),
                timestamp: Timestamp((b * BATCH_POINTS + i) as i64 * 1000),
                value: b as f64,
            })
        })
        .collect()
}

/// The child's body: write batches forever, flushing and compacting often.
fn child(dir: &Path) {
    let config = EngineConfig {
        flush_interval: Duration::from_millis(30),
        compact_segments: 3,
        ..EngineConfig::default()
    };
    let (engine, report) = Engine::open(dir, config).expect("child opens the store");
    let first = report.points as usize / (SERIES * BATCH_POINTS);
    let keys = series_keys();
    let stdout = std::io::stdout();
    for b in first.. {
        engine.write(&batch(&keys, b)).expect("child writes");
        writeln!(stdout.lock(), "ack {b}").expect("child reports");
        if b % 5 == 0 {
            engine.maintain().expect("child maintains");
        }
    }
}

#[test]
fn crash_child_entry_point() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
    }
}

/// Starts the child, waits for `acks` acknowledgements, kills it; returns the highest
/// acknowledged batch.
fn run_and_kill(dir: &Path, acks: usize) -> usize {
    let mut child = Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            "--exact",
            "crash_child_entry_point",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut last = None;
    let mut seen = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child output");
        if let Some(n) = line.strip_prefix("ack ") {
            last = Some(n.parse::<usize>().expect("ack number"));
            seen += 1;
            if seen >= acks {
                break;
            }
        }
    }
    child.kill().expect("SIGKILL child");
    child.wait().expect("reap child");
    last.expect("child acknowledged at least one batch")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("minitrue-crash-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn every_acknowledged_point_survives_sigkill() {
    let dir = temp_dir("sigkill");
    let keys = series_keys();
    let mut acked = 0;
    // Several kill/restart rounds, each killing at a different point of the write/flush/
    // compaction cycle.
    for (round, acks) in [37, 91, 13, 64, 150].into_iter().enumerate() {
        acked = run_and_kill(&dir, acks);
        let (engine, report) = Engine::open(&dir, EngineConfig::default())
            .unwrap_or_else(|e| panic!("reopen after kill {round}: {e}"));
        for key in &keys {
            let agg = engine.aggregate(key, TimeRange::ALL).expect("aggregate");
            let expected_at_least = ((acked + 1) * BATCH_POINTS) as u64;
            assert!(
                agg.count >= expected_at_least,
                "round {round}: {key} holds {} points, acknowledged {expected_at_least} (report {report:?})",
                agg.count
            );
            // Nothing counted twice: timestamps are unique and values are the batch number.
            let samples = engine
                .samples(key, TimeRange::ALL, usize::MAX)
                .expect("samples");
            assert_eq!(samples.len() as u64, agg.count);
            for (i, &(ts, value)) in samples.iter().enumerate() {
                assert_eq!(
                    ts,
                    Timestamp(i as i64 * 1000),
                    "round {round}: {key} point {i}"
                );
                assert_eq!(value, (i / BATCH_POINTS) as f64);
            }
        }
        drop(engine);
    }
    assert!(acked > 0);
    let _ = std::fs::remove_dir_all(&dir);
}
