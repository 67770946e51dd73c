//! `make bench` for the storage engine: append throughput, aggregate latency, bytes per point
//! (on disk and resident, against plain Gorilla on the same data) and WAL replay time.
//!
//! A plain `main` (no harness) so it prints one table and records it in
//! `docs/benchmarks.md` between the `storage-bench` markers, with the command that made it.
//! Sizes can be scaled down with `MINITRUE_BENCH_SCALE=0.1` for a quick look.

mod common;

use minitrue::storage::chunk::{EncodedChunk, CHUNK_CAPACITY};
use minitrue::storage::codec;
use minitrue::storage::{
    AggregateOp, Engine, EngineConfig, Point, SeriesKey, TimeRange, Timestamp,
};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const BATCH: usize = 10_000;

/// One named data set: its series and their points.
type Dataset = Vec<(SeriesKey, Vec<(Timestamp, f64)>)>;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

struct Row {
    what: String,
    value: String,
    note: String,
}

fn row(rows: &mut Vec<Row>, what: &str, value: String, note: &str) {
    println!("{what:<58} {value:>16}  {note}");
    rows.push(Row {
        what: what.to_string(),
        value,
        note: note.to_string(),
    });
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let scale: f64 = std::env::var("MINITRUE_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let scaled = |n: usize| ((n as f64 * scale) as usize).max(BATCH);
    let root = std::env::temp_dir().join(format!("minitrue-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    let mut rows = Vec::new();

    // 1. Append throughput, one thread: 100 series, batches of 10 000, memory + WAL.
    let n = scaled(5_000_000);
    let secs = append_run(&root.join("append1"), 1, n, 100)?;
    row(
        &mut rows,
        "append, 1 thread, 100 series, batch 10k (points/s)",
        format!("{:.0}", n as f64 / secs),
        "memory + fsynced WAL, group commit",
    );
    let secs = append_run(&root.join("append2"), 2, n, 100)?;
    row(
        &mut rows,
        "append, 2 threads (all cores), 100 series each (points/s)",
        format!("{:.0}", n as f64 / secs),
        "",
    );

    // 2. Aggregate latency over one long series.
    for &points in &[scaled(1_000_000), scaled(10_000_000)] {
        let dir = root.join(format!("agg{points}"));
        let (engine, _) = Engine::open(&dir, EngineConfig::default())?;
        let key = SeriesKey::new("sensor_1", "temperature")?;
        let series = simulator_series(points, 7);
        write_all(&engine, &key, &series)?;
        let whole = latency(2000, || engine.aggregate(&key, TimeRange::ALL).map(|_| ()))?;
        let t0 = series[points / 10].0;
        let t1 = series[points * 9 / 10].0;
        let bounded = TimeRange::new(Some(Timestamp(t0.0 + 7)), Some(Timestamp(t1.0 + 3)));
        let partial = latency(2000, || engine.aggregate(&key, bounded).map(|_| ()))?;
        let avg = engine.aggregate(&key, bounded)?.result(AggregateOp::Avg);
        assert!(avg.is_some());
        row(
            &mut rows,
            &format!("aggregate avg over {points} points, whole series (p50/p99 µs)"),
            format!("{:.1} / {:.1}", whole.0, whole.1),
            "metadata only",
        );
        row(
            &mut rows,
            &format!("aggregate avg over 80% of {points} points, unaligned (p50/p99 µs)"),
            format!("{:.1} / {:.1}", partial.0, partial.1),
            "two boundary chunks decoded",
        );
        drop(engine);
        let _ = fs::remove_dir_all(&dir);
    }

    // 3. Bytes per point: simulator-like series and the real data sets, against plain
    //    Gorilla (delta-of-delta timestamps + XOR values) on the same chunks.
    let mut datasets: Vec<(String, Dataset)> = vec![(
        "simulator-like (1 s, ms jitter, 2 decimals)".into(),
        (0..10)
            .map(|d| {
                let key = SeriesKey::new(&format!("sensor_{d}"), "temperature").expect("valid key");
                (key, simulator_series(scaled(200_000), d as u64))
            })
            .collect(),
    )];
    let data_dir = PathBuf::from(
        std::env::var("MINITRUE_DATA_DIR").unwrap_or_else(|_| "../shared/data".into()),
    );
    for file in ["greensboro-tmy3.csv", "seattle-temps-2010.csv"] {
        let path = data_dir.join(file);
        match read_csv(&path) {
            Ok(series) => datasets.push((file.to_string(), series)),
            Err(e) => println!("skipping {}: {e}", path.display()),
        }
    }
    for (name, series) in &datasets {
        let dir = root.join("bpp");
        let _ = fs::remove_dir_all(&dir);
        let (engine, _) = Engine::open(&dir, EngineConfig::default())?;
        let mut points = 0usize;
        let mut gorilla_overhead = 0i64;
        for (key, s) in series {
            write_all(&engine, key, s)?;
            points += s.len();
            gorilla_overhead += gorilla_value_overhead(s);
        }
        engine.flush()?;
        engine.compact()?;
        let stats = engine.stats();
        row(
            &mut rows,
            &format!("bytes/point on disk: {name}"),
            format!("{:.3}", stats.disk_bytes as f64 / points as f64),
            &format!(
                "plain Gorilla {:.3}; {points} points",
                (stats.disk_bytes as i64 + gorilla_overhead) as f64 / points as f64
            ),
        );
        row(
            &mut rows,
            &format!("bytes/point resident: {name}"),
            format!("{:.3}", stats.memory_bytes as f64 / points as f64),
            "chunks + heads, as accounted by the engine",
        );
        drop(engine);
        let _ = fs::remove_dir_all(&dir);
    }

    // 4. WAL replay time for 10 M points.
    let n = scaled(10_000_000);
    let dir = root.join("replay");
    append_run(&dir, 1, n, 100)?;
    let started = Instant::now();
    let (engine, report) = Engine::open(&dir, EngineConfig::default())?;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(report.points, n as u64);
    row(
        &mut rows,
        &format!("WAL replay of {n} points (s)"),
        format!("{secs:.2}"),
        &format!("{:.0} points/s", n as f64 / secs),
    );
    drop(engine);
    row(
        &mut rows,
        "peak resident memory of this benchmark process (MiB)",
        format!("{:.0}", peak_rss_kib() as f64 / 1024.0),
        "VmHWM",
    );
    let _ = fs::remove_dir_all(&root);
    record(&rows, scale)?;
    Ok(())
}

/// Writes `total` points over `series` series per thread from `threads` threads; returns the
/// elapsed seconds. The engine is dropped without a clean shutdown (the WAL keeps it all).
fn append_run(
    dir: &Path,
    threads: usize,
    total: usize,
    series: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let (engine, _) = Engine::open(dir, EngineConfig::default())?;
    let per_thread = total / threads;
    let started = Instant::now();
    std::thread::scope(|scope| -> Result<(), Box<dyn std::error::Error>> {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let engine = &engine;
                scope.spawn(move || -> minitrue::Result<()> {
                    let keys: Vec<SeriesKey> = (0..series)
                        .map(|s| SeriesKey::new(&format!("dev_{t}_{s}"), "temperature"))
                        .collect::<minitrue::Result<_>>()?;
                    let mut written = 0;
                    let mut i = 0i64;
                    while written < per_thread {
                        let batch: Vec<Point> = (0..BATCH)
                            .map(|j| Point {
                                series: keys[j % series].clone(),
                                timestamp: Timestamp(
                                    1_700_000_000_000 + (i + (j / series) as i64) * 1000,
                                ),
                                value: 20.0 + ((i as usize + j) % 100) as f64 / 100.0,
                            })
                            .collect();
                        engine.write(&batch)?;
                        written += BATCH;
                        i += (BATCH / series) as i64;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| "writer thread panicked")??;
        }
        Ok(())
    })?;
    Ok(started.elapsed().as_secs_f64())
}

fn write_all(
    engine: &Engine,
    key: &SeriesKey,
    points: &[(Timestamp, f64)],
) -> minitrue::Result<()> {
    for batch in points.chunks(50_000) {
        engine.write_grouped(&[(key, batch.to_vec())])?;
    }
    Ok(())
}

/// p50 and p99 in microseconds of `runs` calls.
fn latency(
    runs: usize,
    mut f: impl FnMut() -> minitrue::Result<()>,
) -> minitrue::Result<(f64, f64)> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        f()?;
        samples.push(started.elapsed());
    }
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    Ok((us(samples[runs / 2]), us(samples[runs * 99 / 100])))
}

/// A sensor as the simulator sends it: 1 s interval with a few ms of jitter, a daily cycle,
/// drift and noise, two decimals.
fn simulator_series(n: usize, seed: u64) -> Vec<(Timestamp, f64)> {
    let mut rng = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % 10_000) as f64 / 10_000.0
    };
    let start = 1_700_000_000_000i64;
    (0..n)
        .map(|i| {
            let jitter = (next() * 8.0) as i64;
            let t = i as f64;
            let daily = 4.0 * (t / 86_400.0 * std::f64::consts::TAU).sin();
            let value = 21.0 + daily + t * 1e-6 + (next() - 0.5) * 0.3;
            (
                Timestamp(start + i as i64 * 1000 + jitter),
                (value * 100.0).round() / 100.0,
            )
        })
        .collect()
}

fn read_csv(path: &Path) -> Result<Dataset, Box<dyn std::error::Error>> {
    let text = fs::read_to_string(path)?;
    let mut by_series: std::collections::BTreeMap<SeriesKey, Vec<(Timestamp, f64)>> =
        Default::default();
    for (n, line) in text.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let [ts, device, metric, value] = fields[..] else {
            return Err(format!("{} line {}: expected 4 fields", path.display(), n + 1).into());
        };
        let key = SeriesKey::new(device, metric)?;
        by_series
            .entry(key)
            .or_default()
            .push((Timestamp::from_unix_seconds(ts.parse()?)?, value.parse()?));
    }
    Ok(by_series.into_iter().collect())
}

/// How many bytes plain Gorilla XOR values would add (positive) or save (negative) over
/// our chosen value encoding, for the same 1024-point chunks. Everything else in the file
/// (timestamps, index) is laid out the same either way.
fn gorilla_value_overhead(points: &[(Timestamp, f64)]) -> i64 {
    let mut sorted = points.to_vec();
    sorted.sort_by_key(|p| p.0);
    sorted.dedup_by_key(|p| p.0);
    sorted
        .chunks(CHUNK_CAPACITY)
        .map(|chunk| {
            let values: Vec<f64> = chunk.iter().map(|p| p.1).collect();
            let mut gorilla = Vec::new();
            codec::gorilla::encode(&values, &mut gorilla);
            gorilla.len() as i64 - EncodedChunk::encode(chunk).values.len() as i64
        })
        .sum()
}

fn peak_rss_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Prints the table and writes it into docs/benchmarks.md between the markers.
fn record(rows: &[Row], scale: f64) -> Result<(), Box<dyn std::error::Error>> {
    let mut table = String::new();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    writeln!(table, "<!-- storage-bench:start -->")?;
    writeln!(
        table,
        "Command: `make bench` (`cargo bench --bench storage`{}), {cores} cores.\n",
        if scale == 1.0 {
            String::new()
        } else {
            format!(", MINITRUE_BENCH_SCALE={scale}")
        }
    )?;
    writeln!(table, "| measure | value | note |")?;
    writeln!(table, "|---|---:|---|")?;
    for r in rows {
        writeln!(table, "| {} | {} | {} |", r.what, r.value, r.note)?;
    }
    writeln!(table, "<!-- storage-bench:end -->")?;
    common::record_section("storage-bench", "Storage engine", &table)?;
    Ok(())
}
