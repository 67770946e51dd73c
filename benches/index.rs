//! `make bench` for the label index alone: 1 M series (metric `m`, `device_id=d{i%10000}`,
//! `room=r{i%100}`, `host=h{i}`), its bytes per series beyond the label strings, and the time
//! of one-label `=` matches.
//!
//! Bytes are counted by a global allocator that tallies what the index's construction asks
//! for (live bytes after minus before; the keys are built first and shared with the index,
//! so they are not counted), minus the bytes of the distinct label strings it stores once
//! each. The index's own estimate from capacities ([`Index::overhead_bytes`]) is printed
//! beside it. The table is recorded in `docs/benchmarks.md` between the `index-bench`
//! markers.

mod common;

use minitrue::storage::index::Index;
use minitrue::storage::{Matcher, SeriesKey};
use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The system allocator, counting live bytes requested.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const SERIES: usize = 1_000_000;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let keys: Vec<SeriesKey> = (0..SERIES)
        .map(|i| {
            SeriesKey::with_labels(
                "m",
                [
                    ("device_id", format!("d{}", i % 10_000)),
                    ("room", format!("r{}", i % 100)),
                    ("host", format!("h{i}")),
                ],
            )
        })
        .collect::<minitrue::Result<_>>()?;
    let before = LIVE.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut index = Index::new();
    for key in &keys {
        index.add(key);
    }
    let build_secs = started.elapsed().as_secs_f64();
    let allocated = LIVE.load(Ordering::Relaxed) - before;
    let strings = index.string_bytes();
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let mut row = |what: &str, value: String, note: String| {
        println!("{what:<58} {value:>14}  {note}");
        rows.push((what.to_string(), value, note));
    };
    row(
        &format!("build the index of {SERIES} series (s)"),
        format!("{build_secs:.2}"),
        format!("{:.0} series/s", SERIES as f64 / build_secs),
    );
    row(
        "index bytes/series beyond the label strings (allocated)",
        format!("{:.1}", (allocated - strings) as f64 / SERIES as f64),
        format!(
            "{allocated} B asked of the allocator − {strings} B of distinct strings; capacity estimate {:.1}",
            (index.overhead_bytes() as f64) / SERIES as f64
        ),
    );
    let selectors = [
        vec![Matcher::equal("room", "r7")],
        vec![Matcher::equal("device_id", "d7")],
        vec![
            Matcher::equal("room", "r7"),
            Matcher::equal("device_id", "d7"),
        ],
    ];
    for matchers in &selectors {
        let text: Vec<String> = matchers.iter().map(Matcher::to_string).collect();
        let text = text.join(",");
        let found = index.select(matchers).len();
        for (kind, note, keys) in [("match", "postings", false), ("select", "keys", true)] {
            let (p50, p99) = latency(200, || {
                if keys {
                    std::hint::black_box(index.select(matchers));
                } else {
                    std::hint::black_box(index.select_ids(matchers));
                }
            });
            let how = if keys {
                "ids → SeriesKey clones, sorted by key"
            } else {
                "sorted ids, intersected"
            };
            row(
                &format!("{kind} {{{text}}}: {note} ({found} series, p50/p99 µs)"),
                format!("{p50:.1} / {p99:.1}"),
                how.to_string(),
            );
        }
    }

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut table = String::new();
    writeln!(table, "<!-- index-bench:start -->")?;
    writeln!(
        table,
        "Command: `make bench` (`cargo bench --bench index`), {cores} cores.\n"
    )?;
    writeln!(table, "| measure | value | note |")?;
    writeln!(table, "|---|---:|---|")?;
    for (what, value, note) in &rows {
        writeln!(table, "| {what} | {value} | {note} |")?;
    }
    writeln!(table, "<!-- index-bench:end -->")?;
    common::record_section("index-bench", "Label index", &table)?;
    Ok(())
}

/// p50 and p99 in microseconds of `runs` calls.
fn latency(runs: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        f();
        samples.push(started.elapsed());
    }
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    (us(samples[runs / 2]), us(samples[runs * 99 / 100]))
}
