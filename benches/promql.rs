//! `make bench` for PromQL evaluation (issue 14's figures), in process over one node's
//! engine (`promql::LocalSource`), so the numbers are the evaluator's and the store's, not
//! HTTP's:
//! - `query_range` of `avg_over_time(m[5m])` over one day at a 60 s step for one series
//!   holding a reading every 10 s (target < 5 ms);
//! - `sum by (site) (g)` at one instant over 10 000 series (target < 200 ms), and
//!   `sum by (site) (rate(g[5m]))` over their last hour at 60 s.
//!
//! Each query runs [`RUNS`] times after one warm-up; p50 and p99 of the runs are printed and
//! recorded in `docs/benchmarks.md` between the `promql-bench` markers.

mod common;

use minitrue::promql::{query, LocalSource};
use minitrue::storage::{Engine, EngineConfig, SeriesKey, Timestamp};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Runs per query.
const RUNS: usize = 30;
/// Series of the `sum by` queries, their readings apart, and how many each holds.
const SERIES: usize = 10_000;
const SERIES_INTERVAL_MS: i64 = 15_000;
const SERIES_POINTS: i64 = 240;
/// The one long series: a reading every 10 s for a day.
const DAY_MS: i64 = 86_400_000;
const DAY_INTERVAL_MS: i64 = 10_000;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// p50 and p99 of `RUNS` runs of `f` (after one warm-up), and what the last run answered.
fn measure<T>(mut f: impl FnMut() -> BenchResult<T>) -> BenchResult<(Duration, Duration, T)> {
    f()?;
    let mut took = Vec::with_capacity(RUNS);
    let mut last = None;
    for _ in 0..RUNS {
        let started = Instant::now();
        last = Some(f()?);
        took.push(started.elapsed());
    }
    took.sort();
    let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.99), last.ok_or("no run")?))
}

fn run() -> BenchResult<()> {
    let dir = std::env::temp_dir().join(format!("minitrue-promql-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (engine, _) = Engine::open(&dir, EngineConfig::default())?;
    let end = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64
        / 60_000)
        * 60_000;

    let day = SeriesKey::new("d0", "m")?;
    let points: Vec<(Timestamp, f64)> = (0..DAY_MS / DAY_INTERVAL_MS)
        .map(|i| {
            (
                Timestamp(end - DAY_MS + i * DAY_INTERVAL_MS),
                (i % 97) as f64 / 4.0,
            )
        })
        .collect();
    engine.write_grouped(&[(&day, points)])?;
    for chunk in (0..SERIES).collect::<Vec<_>>().chunks(500) {
        let keys: Vec<SeriesKey> = chunk
            .iter()
            .map(|i| {
                SeriesKey::with_labels(
                    "g",
                    [
                        ("device_id", format!("d{i}")),
                        ("site", format!("s{}", i % 20)),
                    ],
                )
            })
            .collect::<Result<_, _>>()?;
        let groups: Vec<(&SeriesKey, Vec<(Timestamp, f64)>)> = keys
            .iter()
            .enumerate()
            .map(|(n, key)| {
                let points = (0..SERIES_POINTS)
                    .map(|p| {
                        let ts = end - (SERIES_POINTS - p) * SERIES_INTERVAL_MS;
                        (Timestamp(ts), (p * 3 + n as i64) as f64)
                    })
                    .collect();
                (key, points)
            })
            .collect();
        engine.write_grouped(&groups)?;
    }
    engine.flush()?;
    let source = LocalSource::new(&engine);
    let failed = |e: minitrue::promql::QueryError| e.message;

    let mut rows: Vec<(String, Duration, Duration, String, &str)> = Vec::new();
    let (p50, p99, series) = measure(|| {
        Ok(
            query::range(&source, "avg_over_time(m[5m])", end - DAY_MS, end, 60_000)
                .map_err(failed)?,
        )
    })?;
    rows.push((
        "query_range avg_over_time(m[5m]), 1 day at 60 s, one series of 8 640 points".into(),
        p50,
        p99,
        format!(
            "{} points",
            series.iter().map(|s| s.points.len()).sum::<usize>()
        ),
        "< 5 ms",
    ));
    let (p50, p99, value) =
        measure(|| Ok(query::instant(&source, "sum by (site) (g)", end).map_err(failed)?))?;
    rows.push((
        format!("query sum by (site) (g), one instant, {SERIES} series"),
        p50,
        p99,
        match &value {
            minitrue::promql::value::Value::Vector(samples) => format!("{} groups", samples.len()),
            other => format!("unexpected {other:?}"),
        },
        "< 200 ms",
    ));
    let (p50, p99, series) = measure(|| {
        Ok(query::range(
            &source,
            "sum by (site) (rate(g[5m]))",
            end - 3_600_000,
            end,
            60_000,
        )
        .map_err(failed)?)
    })?;
    rows.push((
        format!("query_range sum by (site) (rate(g[5m])), 1 h at 60 s, {SERIES} series"),
        p50,
        p99,
        format!("{} series", series.len()),
        "—",
    ));
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);

    let mut t = String::new();
    writeln!(t, "<!-- promql-bench:start -->")?;
    writeln!(
        t,
        "Command: `make bench` (`cargo bench --bench promql`): in process over one node's engine \
         (flushed to segments), {RUNS} runs per query after a warm-up.\n"
    )?;
    writeln!(t, "| query | p50 (ms) | p99 (ms) | answer | target |")?;
    writeln!(t, "|---|---:|---:|---|---|")?;
    for (what, p50, p99, answer, target) in &rows {
        let (p50, p99) = (p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3);
        println!("{what:<80} p50 {p50:>8.2} ms  p99 {p99:>8.2} ms  ({answer})");
        writeln!(t, "| {what} | {p50:.2} | {p99:.2} | {answer} | {target} |")?;
    }
    writeln!(t, "<!-- promql-bench:end -->")?;
    common::record_section("promql-bench", "PromQL evaluation", &t)?;
    Ok(())
}
