//! `make bench-peers`: MiniTrue side by side with VictoriaMetrics and InfluxDB 1.x on the
//! same data, on this machine, in one run.
//!
//! 1. The workload is a deterministic IoT data set shaped like TSBS's IoT use case:
//!    [`DEVICES`] devices × [`METRICS`] float metrics every [`INTERVAL_S`] s, random-walk
//!    values with two decimals, [`OUT_OF_ORDER`] of the points sent late, [`DUPLICATES`]
//!    of them sent twice (same timestamp, same value, so every system agrees on the
//!    distinct points), plus the real sensor series of `../shared/data/*.csv` when present.
//!    It is written once to a line-protocol file (measurement = metric, tag `device_id`,
//!    field `value`, seconds) that every system ingests.
//! 2. Each system in turn — MiniTrue single node, a MiniTrue 3-node cluster,
//!    VictoriaMetrics, InfluxDB — is started on loopback with its data under a temp
//!    folder, then:
//!    - ingests the file through its `/write` in batches of [`BATCH_LINES`] lines from
//!      [`WRITE_CLIENTS`] threads; the clock stops when a count query answers every distinct
//!      point;
//!    - answers [`QUERIES`] random single-series averages (a 1 h to 7 d window) through its
//!      own query API, one at a time; p50/p99 of the round trip;
//!    - has its peak RSS (VmHWM) read, is flushed/compacted and stopped cleanly, and its
//!      data directory is measured (`du`: allocated blocks; and apparent size).
//! 3. Every system must return the same average for every query (within [`AGREEMENT`]
//!    relative), or the run fails naming the first disagreement.
//!
//! A plain `main` like `benches/server.rs`: it prints the table and records it in
//! `docs/benchmarks.md` between the `peers-bench` markers. `MINITRUE_BENCH_SCALE` scales
//! the synthetic points. `MINITRUE_BENCH_SET=labels` runs the label-heavy set instead
//! ([`LABELLED_DEVICES`] devices, 10 000 series of five labels each: `device_id`, `site`,
//! `rack`, `zone`, `fw`), recorded between the `peers-bench-labels` markers.
//! `MINITRUE_BENCH_ONLY=single,cluster` runs only the systems named (slugs `single`,
//! `cluster`, `victoria`, `influx`) and records nothing; `MINITRUE_BENCH_SERVER=<path>`
//! starts that `minitrue-server` instead of this build's (an A/B against an older commit). A peer that is not installed is
//! skipped with the reason
//! (`tools/bench-peers.sh` installs the Debian packages). Every process it starts is
//! killed by its PID when its guard drops, also on error.

mod common;

use common::HttpConn;
use serde_json::Value;
use std::fmt::Write as _;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Devices of the synthetic fleet (the default set).
const DEVICES: usize = 100;
/// Devices of the label-heavy set (`MINITRUE_BENCH_SET=labels`): 10 000 series, each with
/// `device_id` and four more labels.
const LABELLED_DEVICES: usize = 2000;
/// Readings per series in the label-heavy set: about as many points as the default set.
const LABELLED_STEPS: usize = 150;
/// Float metrics every device reports (TSBS IoT-like readings).
const METRICS: [&str; 5] = ["fuel_state", "velocity", "heading", "grade", "load"];
/// Seconds between two readings of one device.
const INTERVAL_S: i64 = 10;
/// Readings per series at scale 1: 100 × 5 × 3 000 = 1.5 M points (8 h 20 min of data).
const STEPS: usize = 3000;
/// Share of points sent late, by 1 to [`MAX_DELAY_STEPS`] intervals.
const OUT_OF_ORDER: f64 = 0.05;
/// Share of points sent a second time (same timestamp and value), up to that many steps later.
const DUPLICATES: f64 = 0.01;
const MAX_DELAY_STEPS: usize = 30;
/// Seed of the data set and of the queries.
const SEED: u64 = 0x5eed_1071;
/// Lines per `/write` request and concurrent writers.
const BATCH_LINES: usize = 5000;
const WRITE_CLIENTS: usize = 2;
/// Random single-series aggregates per system, and their window lengths.
const QUERIES: usize = 1000;
const MIN_WINDOW_S: i64 = 3600;
const MAX_WINDOW_S: i64 = 7 * 86_400;
/// Largest relative difference between two systems' answers to one query.
const AGREEMENT: f64 = 1e-9;

/// A started process has this long to answer.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest ingestion (writes plus becoming queryable) or settling of one system.
const PHASE_TIMEOUT: Duration = Duration::from_secs(180);
/// A cleanly stopped process has this long to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

/// InfluxDB's cold durations: how long a shard must see no writes before its cache is
/// written to TSM and before it is fully compacted (defaults 10 min and 4 h, too long for
/// one run; shorter only brings its steady on-disk form sooner).
const INFLUX_SNAPSHOT_COLD: &str = "2s";
const INFLUX_COMPACT_COLD: &str = "5s";
/// The data directory counts as settled once unchanged this long.
const SETTLE_QUIET: Duration = Duration::from_secs(3);

/// Targets from the issue, for MiniTrue single node against each peer.
const INGEST_VS_VM_TARGET: f64 = 1.0;
const INGEST_VS_INFLUX_TARGET: f64 = 3.0;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> BenchResult<()> {
    let scale: f64 = std::env::var("MINITRUE_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let load_at_start = load_average();
    let fleet = Fleet::from_env()?;
    let root = TempDir::new("peers-bench")?;
    let steps = ((fleet.steps as f64 * scale) as usize).max(2 * MAX_DELAY_STEPS);
    let data_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let data = Dataset::generate(&fleet, steps, &data_dir)?;
    let file = root.path().join("iot.lp");
    fs::write(&file, data.lines.concat())?;
    println!(
        "data set: {} lines ({} distinct points: {} synthetic in {} series, {} real in {} series), \
         {:.1} MB in {}",
        data.lines.len(),
        data.distinct,
        data.distinct - data.real_points,
        fleet.devices * METRICS.len(),
        data.real_points,
        data.series.len() - fleet.devices * METRICS.len(),
        fs::metadata(&file)?.len() as f64 / 1e6,
        file.display()
    );
    let batches = read_batches(&file)?;
    let queries = make_queries(&data.series);

    let mut kinds = vec![Kind::Single, Kind::Cluster];
    let mut skipped = Vec::new();
    match find_program("victoria-metrics") {
        Some(path) => kinds.push(Kind::Victoria(path)),
        None => skipped.push(
            "VictoriaMetrics: no `victoria-metrics` on PATH or in /usr/bin \
             (apt-get install -y victoria-metrics)"
                .to_string(),
        ),
    }
    match find_program("influxd") {
        Some(path) => kinds.push(Kind::Influx(path)),
        None => skipped.push(
            "InfluxDB 1.x: no `influxd` on PATH or in /usr/bin (apt-get install -y influxdb)"
                .to_string(),
        ),
    }
    // `MINITRUE_BENCH_ONLY=single,cluster` (slugs: single, cluster, victoria, influx) runs
    // only those systems, for profiling one of them; such a run is printed, not recorded.
    let only: Option<Vec<String>> = std::env::var("MINITRUE_BENCH_ONLY")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| s.split(',').map(|k| k.trim().to_string()).collect());
    if let Some(only) = &only {
        kinds.retain(|k| only.iter().any(|o| o == k.slug()));
        if kinds.is_empty() {
            return Err(format!(
                "MINITRUE_BENCH_ONLY={}: names none of single, cluster, victoria, influx (installed)",
                only.join(",")
            )
            .into());
        }
    }
    for why in &skipped {
        println!("skipping {why}");
    }

    let mut results: Vec<Measured> = Vec::new();
    for kind in kinds {
        let dir = root.path().join(kind.slug());
        fs::create_dir_all(&dir)?;
        let measured = measure(&kind, &dir, &data, &batches, &queries)?;
        if let Some(reference) = results.first() {
            agree(reference, &measured, &queries)?;
        }
        let _ = fs::remove_dir_all(&dir);
        results.push(measured);
    }
    println!(
        "all {} systems agree on all {QUERIES} averages (within {AGREEMENT:e} relative)",
        results.len()
    );
    let versions = versions(&results);
    record(
        &results,
        &fleet,
        &data,
        &skipped,
        &versions,
        scale,
        &load_at_start,
    )
}

/// The synthetic fleet's shape: the default set, or the label-heavy one.
struct Fleet {
    devices: usize,
    steps: usize,
    /// Whether each line carries four labels besides `device_id`.
    labelled: bool,
}

impl Fleet {
    fn from_env() -> BenchResult<Fleet> {
        match std::env::var("MINITRUE_BENCH_SET").as_deref() {
            Err(_) | Ok("") | Ok("default") => Ok(Fleet {
                devices: DEVICES,
                steps: STEPS,
                labelled: false,
            }),
            Ok("labels") => Ok(Fleet {
                devices: LABELLED_DEVICES,
                steps: LABELLED_STEPS,
                labelled: true,
            }),
            Ok(other) => Err(format!("MINITRUE_BENCH_SET={other}: not default or labels").into()),
        }
    }

    /// The tags of device `d`'s lines.
    fn tags(&self, d: usize) -> String {
        if self.labelled {
            format!(
                "device_id=dev_{d:04},fw=v{},rack=rack_{:03},site=site_{:02},zone=zone_{}",
                d % 7,
                d % 200,
                d % 20,
                d % 4
            )
        } else {
            format!("device_id=dev_{d:03}")
        }
    }

    fn device(&self, d: usize) -> String {
        if self.labelled {
            format!("dev_{d:04}")
        } else {
            format!("dev_{d:03}")
        }
    }
}

// ---- the data set -------------------------------------------------------------------------

/// One series of the data set: its key and the span of its timestamps (unix seconds).
struct Series {
    device: String,
    metric: String,
    first: i64,
    last: i64,
}

struct Dataset {
    /// Line-protocol lines in the order they are sent, each ending in `\n`.
    lines: Vec<String>,
    /// Distinct (series, timestamp) points.
    distinct: u64,
    /// Of them, points from the real CSV files.
    real_points: u64,
    series: Vec<Series>,
    /// Oldest timestamp, unix seconds.
    oldest: i64,
}

/// xorshift64*: small, deterministic, good enough for workload shapes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

impl Dataset {
    /// The synthetic fleet (ending on the last whole hour before an hour ago, so no system's
    /// "too recent" or retention rules apply), then the real CSV series when present.
    fn generate(fleet: &Fleet, steps: usize, data_dir: &Path) -> BenchResult<Dataset> {
        let now = unix_now();
        let end = (now / 3600) * 3600 - 3600;
        let start = end - (steps as i64 - 1) * INTERVAL_S;
        let mut rng = Rng(SEED);
        // Values in hundredths: a random walk per series, kept within a band.
        let mut walk: Vec<i64> = (0..fleet.devices * METRICS.len())
            .map(|_| rng.range(1000, 9000))
            .collect();
        // (send position, sequence, line): stable order within one position.
        let mut sends: Vec<(usize, usize, String)> =
            Vec::with_capacity(walk.len() * steps * 102 / 100);
        for step in 0..steps {
            let ts = start + step as i64 * INTERVAL_S;
            for d in 0..fleet.devices {
                let tags = fleet.tags(d);
                for (m, metric) in METRICS.iter().enumerate() {
                    let w = &mut walk[d * METRICS.len() + m];
                    *w = (*w + rng.range(-25, 25)).clamp(0, 10_000);
                    let line = format!("{metric},{tags} value={:.2} {ts}\n", *w as f64 / 100.0);
                    let late = rng.unit() < OUT_OF_ORDER;
                    let position = if late {
                        step + rng.range(1, MAX_DELAY_STEPS as i64) as usize
                    } else {
                        step
                    };
                    if rng.unit() < DUPLICATES {
                        let again = step + rng.range(0, MAX_DELAY_STEPS as i64) as usize;
                        sends.push((again, sends.len(), line.clone()));
                    }
                    sends.push((position, sends.len(), line));
                }
            }
        }
        sends.sort_by_key(|(position, sequence, _)| (*position, *sequence));
        let mut lines: Vec<String> = sends.into_iter().map(|(_, _, line)| line).collect();
        let mut series: Vec<Series> = (0..fleet.devices)
            .flat_map(|d| {
                METRICS.iter().map(move |metric| Series {
                    device: fleet.device(d),
                    metric: metric.to_string(),
                    first: start,
                    last: end,
                })
            })
            .collect();
        let mut distinct = (fleet.devices * METRICS.len() * steps) as u64;
        let mut oldest = start;
        let mut real_points = 0;
        for file in ["greensboro-tmy3.csv", "seattle-temps-2010.csv"] {
            let path = data_dir.join(file);
            let text = match fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) => {
                    println!("skipping real data {}: {e}", path.display());
                    continue;
                }
            };
            for (n, line) in text.lines().enumerate().skip(1) {
                let fields: Vec<&str> = line.split(',').collect();
                let [ts, device, metric, value] = fields[..] else {
                    return Err(
                        format!("{} line {}: expected 4 fields", path.display(), n + 1).into(),
                    );
                };
                let ts: i64 = ts
                    .parse()
                    .map_err(|e| format!("{} line {}: timestamp: {e}", path.display(), n + 1))?;
                value
                    .parse::<f64>()
                    .map_err(|e| format!("{} line {}: value: {e}", path.display(), n + 1))?;
                lines.push(format!("{metric},device_id={device} value={value} {ts}\n"));
                match series
                    .iter_mut()
                    .find(|s| s.device == device && s.metric == metric)
                {
                    Some(s) => {
                        s.first = s.first.min(ts);
                        s.last = s.last.max(ts);
                    }
                    None => series.push(Series {
                        device: device.to_string(),
                        metric: metric.to_string(),
                        first: ts,
                        last: ts,
                    }),
                }
                oldest = oldest.min(ts);
                real_points += 1;
            }
        }
        distinct += real_points;
        Ok(Dataset {
            lines,
            distinct,
            real_points,
            series,
            oldest,
        })
    }
}

/// The line file cut into request bodies of [`BATCH_LINES`] lines.
fn read_batches(file: &Path) -> BenchResult<Vec<String>> {
    let text = fs::read_to_string(file)?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    Ok(lines.chunks(BATCH_LINES).map(|c| c.concat()).collect())
}

/// One random single-series average: `[start, end]` in unix seconds, both ends 5 s off the
/// 10 s grid every timestamp sits on, so no sample is on a boundary and inclusive or
/// exclusive ends (VictoriaMetrics' window is `(end - d, end]`) select the same points.
struct Query {
    series: usize,
    start: i64,
    end: i64,
}

fn make_queries(series: &[Series]) -> Vec<Query> {
    let mut rng = Rng(SEED ^ 0x9e37_79b9_7f4a_7c15);
    (0..QUERIES)
        .map(|_| {
            let s = rng.range(0, series.len() as i64 - 1) as usize;
            let window = rng.range(MIN_WINDOW_S / 10, MAX_WINDOW_S / 10) * 10;
            let end = rng.range(series[s].first, series[s].last) / 10 * 10 + 5;
            Query {
                series: s,
                start: end - window,
                end,
            }
        })
        .collect()
}

// ---- the systems --------------------------------------------------------------------------

/// Which system a measurement runs.
enum Kind {
    Single,
    Cluster,
    Victoria(PathBuf),
    Influx(PathBuf),
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Single => "MiniTrue, single node",
            Kind::Cluster => "MiniTrue, 3-node cluster",
            Kind::Victoria(_) => "VictoriaMetrics",
            Kind::Influx(_) => "InfluxDB 1.x",
        }
    }
    fn slug(&self) -> &'static str {
        match self {
            Kind::Single => "single",
            Kind::Cluster => "cluster",
            Kind::Victoria(_) => "victoria",
            Kind::Influx(_) => "influx",
        }
    }
    fn is_minitrue(&self) -> bool {
        matches!(self, Kind::Single | Kind::Cluster)
    }
}

/// Started processes of one system, their HTTP ports and data directories.
struct System {
    kind: Kind,
    processes: Vec<Process>,
    ports: Vec<u16>,
    data_dirs: Vec<PathBuf>,
}

/// What one system measured.
struct Measured {
    kind: Kind,
    ingest_rate: f64,
    ingest_seconds: f64,
    /// Points a second until the last write was acknowledged (not yet all queryable).
    acked_rate: f64,
    disk_bytes: u64,
    apparent_bytes: u64,
    rss_kib: u64,
    p50_ms: f64,
    p99_ms: f64,
    /// MiniTrue's p50/p99 for the same averages as PromQL through `/api/v1/query`.
    promql_ms: Option<(f64, f64)>,
    answers: Vec<Option<f64>>,
    note: String,
}

fn measure(
    kind: &Kind,
    dir: &Path,
    data: &Dataset,
    batches: &[String],
    queries: &[Query],
) -> BenchResult<Measured> {
    println!("--- {}", kind.name());
    let mut system = start(kind, dir)?;
    let (acked_seconds, ingest_seconds) = ingest(&system, batches, data)?;
    let ingest_rate = data.distinct as f64 / ingest_seconds;
    println!(
        "ingested {} points in {ingest_seconds:.2} s: {ingest_rate:.0} points/s",
        data.distinct
    );
    let (answers, mut latencies) = run_queries(&system, data, queries)?;
    latencies.sort();
    let ms = |p: usize| {
        latencies[(latencies.len() * p / 100).min(latencies.len() - 1)].as_secs_f64() * 1e3
    };
    let (p50_ms, p99_ms) = (ms(50), ms(99));
    println!("{QUERIES} queries: p50 {p50_ms:.2} ms, p99 {p99_ms:.2} ms");
    let promql_ms = if kind.is_minitrue() {
        let (p50, p99) = run_promql(&system, data, queries, &answers)?;
        println!("{QUERIES} PromQL queries (same answers): p50 {p50:.2} ms, p99 {p99:.2} ms");
        Some((p50, p99))
    } else {
        None
    };
    let settle_note = settle(&system)?;
    let rss_kib = system
        .processes
        .iter()
        .map(Process::peak_rss_kib)
        .sum::<BenchResult<u64>>()?;
    for process in &mut system.processes {
        process.terminate()?;
    }
    let (disk_bytes, apparent_bytes) = system
        .data_dirs
        .iter()
        .map(|d| dir_size(d))
        .try_fold((0, 0), |(a, b), s| s.map(|(x, y)| (a + x, b + y)))?;
    println!(
        "on disk: {disk_bytes} bytes allocated, {apparent_bytes} apparent; peak RSS {} MiB",
        rss_kib / 1024
    );
    for data_dir in &system.data_dirs {
        print_breakdown(data_dir, 2)?;
    }
    let per_point = |bytes: u64| bytes as f64 / data.distinct as f64;
    let note = match kind {
        Kind::Single => "SIGTERM (flushes), then du".to_string(),
        Kind::Cluster => {
            "replication 2 (each point on two nodes); RSS and disk summed over 3 nodes".into()
        }
        Kind::Victoria(_) => {
            let cache = dir_size(&system.data_dirs[0].join("cache"))?.0;
            format!(
                "{settle_note}; of the du, `cache/` (caches saved at shutdown, rebuilt when \
                 lost) is {:.3} B/pt, `data/` + `indexdb/` {:.3} B/pt",
                per_point(cache),
                per_point(disk_bytes - cache)
            )
        }
        Kind::Influx(_) => {
            let tsm = files_size(&system.data_dirs[0], ".tsm")?;
            let shards = fs::read_dir(system.data_dirs[0].join("data/bench/autogen"))
                .map_or(0, |d| d.count());
            format!(
                "{settle_note}; of the du, TSM files are {:.3} B/pt, the rest is the series \
                 file and per-shard indexes ({shards} shards of 7 days: the real data spans \
                 two years)",
                per_point(tsm)
            )
        }
    };
    Ok(Measured {
        kind: match kind {
            Kind::Single => Kind::Single,
            Kind::Cluster => Kind::Cluster,
            Kind::Victoria(p) => Kind::Victoria(p.clone()),
            Kind::Influx(p) => Kind::Influx(p.clone()),
        },
        ingest_rate,
        ingest_seconds,
        acked_rate: data.distinct as f64 / acked_seconds,
        disk_bytes,
        apparent_bytes,
        rss_kib,
        p50_ms,
        p99_ms,
        promql_ms,
        answers,
        note,
    })
}

/// Starts `kind` with its data under `dir` and waits until it answers.
fn start(kind: &Kind, dir: &Path) -> BenchResult<System> {
    match kind {
        Kind::Single => {
            let http = free_port()?;
            let data_dir = dir.join("data");
            let process = start_node("peer-single", dir, &data_dir, http, free_port()?, &[])?;
            Ok(System {
                kind: Kind::Single,
                processes: vec![process],
                ports: vec![http],
                data_dirs: vec![data_dir],
            })
        }
        Kind::Cluster => {
            let ids = ["peer-a", "peer-b", "peer-c"];
            let http: Vec<u16> = (0..3).map(|_| free_port()).collect::<BenchResult<_>>()?;
            let gossip: Vec<u16> = (0..3).map(|_| free_port()).collect::<BenchResult<_>>()?;
            let mut processes = Vec::new();
            let mut data_dirs = Vec::new();
            for i in 0..3 {
                let seeds: Vec<String> = (0..3)
                    .filter(|&j| j != i)
                    .map(|j| format!("127.0.0.1:{}", gossip[j]))
                    .collect();
                let data_dir = dir.join(format!("data-{}", ids[i]));
                processes.push(start_node(
                    ids[i], dir, &data_dir, http[i], gossip[i], &seeds,
                )?);
                data_dirs.push(data_dir);
            }
            wait_for_members(&mut processes, &http)?;
            Ok(System {
                kind: Kind::Cluster,
                processes,
                ports: http,
                data_dirs,
            })
        }
        Kind::Victoria(binary) => {
            let port = free_port()?;
            let data_dir = dir.join("data");
            let mut command = Command::new(binary);
            command
                .arg(format!("-storageDataPath={}", data_dir.display()))
                .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                .arg("-retentionPeriod=100y")
                // Keeps one sample per series and millisecond, at merge and query time: the
                // duplicates (same timestamp, same value) count once, as in the others.
                .arg("-dedup.minScrapeInterval=1ms")
                .arg("-loggerLevel=ERROR")
                .stdout(Stdio::null());
            let mut process =
                Process::spawn("victoria-metrics", &mut command, &dir.join("vm.log"))?;
            wait_healthy(&mut process, port, "GET", "/health", &[])?;
            Ok(System {
                kind: Kind::Victoria(binary.clone()),
                processes: vec![process],
                ports: vec![port],
                data_dirs: vec![data_dir],
            })
        }
        Kind::Influx(binary) => {
            let port = free_port()?;
            let data_dir = dir.join("influx");
            fs::create_dir_all(&data_dir)?;
            let config = dir.join("influxdb.conf");
            fs::write(&config, influx_config(&data_dir, port, free_port()?))?;
            let mut command = Command::new(binary);
            command
                .arg("run")
                .arg("-config")
                .arg(&config)
                .stdout(Stdio::null());
            let mut process = Process::spawn("influxd", &mut command, &dir.join("influxd.log"))?;
            wait_healthy(&mut process, port, "GET", "/ping", &[])?;
            let (status, body) = HttpConn::connect(port, HTTP_TIMEOUT)?.request(
                "POST",
                "/query?q=CREATE%20DATABASE%20bench",
                &[],
            )?;
            if status != 200 {
                return Err(format!(
                    "influxd: CREATE DATABASE answered {status}: {}",
                    String::from_utf8_lossy(&body)
                )
                .into());
            }
            Ok(System {
                kind: Kind::Influx(binary.clone()),
                processes: vec![process],
                ports: vec![port],
                data_dirs: vec![data_dir],
            })
        }
    }
}

/// Starts one `minitrue-server` without a broker (port 1: nobody listens) and waits for
/// `/health`.
fn start_node(
    id: &str,
    dir: &Path,
    data_dir: &Path,
    http: u16,
    gossip: u16,
    seeds: &[String],
) -> BenchResult<Process> {
    // `MINITRUE_BENCH_SERVER=<path>` runs another build (an older commit's) for an A/B.
    let binary = std::env::var_os("MINITRUE_BENCH_SERVER").map_or_else(
        || env!("CARGO_BIN_EXE_minitrue-server").into(),
        PathBuf::from,
    );
    let mut command = Command::new(binary);
    command
        .arg(format!("--node_id={id}"))
        .arg(format!("--port={http}"))
        .arg(format!("--tcp_port={gossip}"))
        .arg(format!("--data_dir={}", data_dir.display()))
        .arg("--bind=127.0.0.1")
        .arg("--broker=tcp://127.0.0.1:1")
        .arg("--log_level=warn")
        .stdout(Stdio::null());
    if !seeds.is_empty() {
        command.arg(format!("--seeds={}", seeds.join(",")));
    }
    let mut process = Process::spawn(id, &mut command, &dir.join(format!("{id}.log")))?;
    wait_healthy(&mut process, http, "GET", "/health", &[])?;
    Ok(process)
}

/// Waits until every node's `/status` lists three alive members.
fn wait_for_members(processes: &mut [Process], ports: &[u16]) -> BenchResult<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let mut ready = 0;
        for (process, &port) in processes.iter_mut().zip(ports) {
            process.check_running()?;
            let alive = HttpConn::connect(port, HTTP_TIMEOUT)
                .and_then(|mut c| c.request("GET", "/status", &[]))
                .ok()
                .and_then(|(_, body)| serde_json::from_slice::<Value>(&body).ok())
                .and_then(|v| {
                    v["members"]
                        .as_array()
                        .map(|m| m.iter().filter(|member| member["state"] == "alive").count())
                })
                .unwrap_or(0);
            if alive == 3 {
                ready += 1;
            }
        }
        if ready == processes.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "cluster: {ready} of 3 nodes see 3 alive members after {START_TIMEOUT:?}"
            )
            .into());
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn wait_healthy(
    process: &mut Process,
    port: u16,
    method: &str,
    path: &str,
    body: &[u8],
) -> BenchResult<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        process.check_running()?;
        if let Ok((200..=204, _)) =
            HttpConn::connect(port, HTTP_TIMEOUT).and_then(|mut c| c.request(method, path, body))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} not answering {path} after {START_TIMEOUT:?}:\n{}",
                process.name,
                process.log_text()
            )
            .into());
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// InfluxDB 1.x configuration: everything on loopback and under `dir`, no usage reporting,
/// no `_internal` monitoring database (it would add its own points and bytes), and short
/// cold durations (see [`INFLUX_SNAPSHOT_COLD`]).
fn influx_config(dir: &Path, http: u16, rpc: u16) -> String {
    let d = dir.display();
    format!(
        "reporting-disabled = true\n\
         bind-address = \"127.0.0.1:{rpc}\"\n\
         [meta]\n  dir = \"{d}/meta\"\n\
         [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n  \
         cache-snapshot-write-cold-duration = \"{INFLUX_SNAPSHOT_COLD}\"\n  \
         compact-full-write-cold-duration = \"{INFLUX_COMPACT_COLD}\"\n\
         [monitor]\n  store-enabled = false\n\
         [http]\n  enabled = true\n  bind-address = \"127.0.0.1:{http}\"\n  log-enabled = false\n\
         [continuous_queries]\n  enabled = false\n"
    )
}

// ---- ingestion ----------------------------------------------------------------------------

/// Seconds from the first write until the last is acknowledged, and until a count query
/// answers every distinct point. Writers
/// take the batches in file order from a shared counter; in the cluster, writer `c` sends
/// to node `c`.
fn ingest(system: &System, batches: &[String], data: &Dataset) -> BenchResult<(f64, f64)> {
    let path = match system.kind {
        Kind::Single | Kind::Cluster | Kind::Victoria(_) => "/write?precision=s",
        Kind::Influx(_) => "/write?db=bench&precision=s",
    };
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    thread::scope(|scope| -> BenchResult<()> {
        let handles: Vec<_> = (0..WRITE_CLIENTS)
            .map(|c| {
                let port = system.ports[c % system.ports.len()];
                let next = &next;
                scope.spawn(move || -> BenchResult<()> {
                    let mut conn = HttpConn::connect(port, HTTP_TIMEOUT)?;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(body) = batches.get(i) else {
                            return Ok(());
                        };
                        let (status, answer) = conn.request("POST", path, body.as_bytes())?;
                        if status != 204 {
                            return Err(format!(
                                "batch {i}: /write answered {status}: {}",
                                String::from_utf8_lossy(&answer)
                            )
                            .into());
                        }
                        if started.elapsed() > PHASE_TIMEOUT {
                            return Err(
                                format!("writes still running after {PHASE_TIMEOUT:?}").into()
                            );
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| "write client panicked")??;
        }
        Ok(())
    })?;
    let written = started.elapsed().as_secs_f64();
    println!(
        "  {written:.2} s: every write acknowledged ({:.0} points/s)",
        data.distinct as f64 / written
    );
    let mut polls = 0;
    let mut seen = u64::MAX;
    loop {
        let count = count_points(system, data)?;
        polls += 1;
        if count != seen && count != data.distinct {
            // How visibility grows after the last acknowledged write.
            println!(
                "  {:.2} s: {count} of {} points queryable",
                started.elapsed().as_secs_f64(),
                data.distinct
            );
            seen = count;
        }
        if count == data.distinct {
            break;
        }
        if count > data.distinct {
            return Err(format!(
                "{} counts {count} points, {} distinct were written (duplicates kept?)",
                system.kind.name(),
                data.distinct
            )
            .into());
        }
        if started.elapsed() > PHASE_TIMEOUT {
            return Err(format!(
                "{}: {count} of {} points queryable after {PHASE_TIMEOUT:?}",
                system.kind.name(),
                data.distinct
            )
            .into());
        }
        thread::sleep(POLL);
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("last write acknowledged at {written:.2} s; all points counted at {elapsed:.2} s after {polls} count queries");
    Ok((written, elapsed))
}

/// Every point the system can count now, through its own query API.
fn count_points(system: &System, data: &Dataset) -> BenchResult<u64> {
    let port = system.ports[0];
    match &system.kind {
        Kind::Single | Kind::Cluster => {
            // One count a metric: a request naming only the metric (empty `labels`) covers
            // every series of it, each series' copy counted once.
            let metrics: std::collections::BTreeSet<&str> =
                data.series.iter().map(|s| s.metric.as_str()).collect();
            let mut conn = HttpConn::connect(port, HTTP_TIMEOUT)?;
            let mut sum = 0;
            for metric in metrics {
                let body = serde_json::json!({
                    "metric_name": metric, "labels": {},
                    "operation": "count", "start_time": 0, "end_time": 0,
                });
                let answer =
                    json_request(&mut conn, "POST", "/query", body.to_string().as_bytes())?;
                sum += answer["count"]
                    .as_u64()
                    .ok_or_else(|| format!("/query count answered {answer}"))?;
            }
            Ok(sum)
        }
        Kind::Victoria(_) => {
            // VictoriaMetrics caches which series a tag filter selects: a count asked before
            // the new series are searchable keeps missing them for ~10 s after they are
            // (seen here: all points counted at 9-10 s instead of ~2 s). A filter that
            // differs on every poll (`bench_poll`, a label no series has) is never answered
            // from that cache, so each poll sees what a new reader would.
            static POLLS: AtomicUsize = AtomicUsize::new(0);
            let poll = POLLS.fetch_add(1, Ordering::Relaxed);
            let now = unix_now();
            let window = now - data.oldest + 86_400;
            let path = format!(
                "/api/v1/query?nocache=1&time={now}&query={}",
                url_encode(&format!(
                    "sum(count_over_time({{__name__!=\"\",bench_poll!=\"{poll}\"}}[{window}s]))"
                ))
            );
            let answer = json_request(
                &mut HttpConn::connect(port, HTTP_TIMEOUT)?,
                "GET",
                &path,
                &[],
            )?;
            Ok(victoria_value(&answer)?.unwrap_or(0.0) as u64)
        }
        Kind::Influx(_) => {
            let path = format!(
                "/query?db=bench&epoch=s&q={}",
                url_encode("SELECT count(value) FROM /.*/")
            );
            let answer = json_request(
                &mut HttpConn::connect(port, HTTP_TIMEOUT)?,
                "GET",
                &path,
                &[],
            )?;
            let mut sum = 0;
            for series in answer["results"][0]["series"]
                .as_array()
                .into_iter()
                .flatten()
            {
                sum += series["values"][0][1].as_u64().unwrap_or(0);
            }
            Ok(sum)
        }
    }
}

// ---- queries ------------------------------------------------------------------------------

/// Runs every query once, one at a time (round robin over the nodes of a cluster), and
/// returns the answers and round-trip times.
fn run_queries(
    system: &System,
    data: &Dataset,
    queries: &[Query],
) -> BenchResult<(Vec<Option<f64>>, Vec<Duration>)> {
    let mut conns: Vec<HttpConn> = system
        .ports
        .iter()
        .map(|&p| HttpConn::connect(p, HTTP_TIMEOUT))
        .collect::<std::io::Result<_>>()?;
    let mut answers = Vec::with_capacity(queries.len());
    let mut latencies = Vec::with_capacity(queries.len());
    for (i, q) in queries.iter().enumerate() {
        let s = &data.series[q.series];
        let conn = &mut conns[i % system.ports.len()];
        let (method, path, body) = match system.kind {
            Kind::Single | Kind::Cluster => (
                "POST",
                "/query".to_string(),
                serde_json::json!({
                    "device_id": s.device, "metric_name": s.metric, "operation": "avg",
                    "start_time": q.start, "end_time": q.end,
                })
                .to_string(),
            ),
            Kind::Victoria(_) => (
                "GET",
                format!(
                    "/api/v1/query?time={}&query={}",
                    q.end,
                    url_encode(&format!(
                        "avg_over_time({}_value{{device_id=\"{}\"}}[{}s])",
                        s.metric,
                        s.device,
                        q.end - q.start
                    ))
                ),
                String::new(),
            ),
            Kind::Influx(_) => (
                "GET",
                format!(
                    "/query?db=bench&epoch=s&q={}",
                    url_encode(&format!(
                        "SELECT mean(value) FROM \"{}\" WHERE \"device_id\"='{}' \
                         AND time >= {}s AND time <= {}s",
                        s.metric, s.device, q.start, q.end
                    ))
                ),
                String::new(),
            ),
        };
        let sent = Instant::now();
        let answer = json_request(conn, method, &path, body.as_bytes())?;
        latencies.push(sent.elapsed());
        let value = match system.kind {
            Kind::Single | Kind::Cluster => answer["result"].as_f64(),
            Kind::Victoria(_) => victoria_value(&answer)?,
            Kind::Influx(_) => {
                if let Some(error) = answer["results"][0]["error"].as_str() {
                    return Err(format!("influxd query {i}: {error}").into());
                }
                answer["results"][0]["series"][0]["values"][0][1].as_f64()
            }
        };
        answers.push(value);
    }
    Ok((answers, latencies))
}

/// The same averages as PromQL, `avg_over_time(metric{device_id="d"}[window])` at the
/// window's end, through MiniTrue's `/api/v1/query` (the query VictoriaMetrics answers
/// with its own metric naming); every answer must equal `expected` (the `/query` answers).
/// The p50 and p99 in ms.
fn run_promql(
    system: &System,
    data: &Dataset,
    queries: &[Query],
    expected: &[Option<f64>],
) -> BenchResult<(f64, f64)> {
    let mut conns: Vec<HttpConn> = system
        .ports
        .iter()
        .map(|&p| HttpConn::connect(p, HTTP_TIMEOUT))
        .collect::<std::io::Result<_>>()?;
    let mut latencies = Vec::with_capacity(queries.len());
    for (i, q) in queries.iter().enumerate() {
        let s = &data.series[q.series];
        let path = format!(
            "/api/v1/query?time={}&query={}",
            q.end,
            url_encode(&format!(
                "avg_over_time({{__name__=\"{}\",device_id=\"{}\"}}[{}s])",
                s.metric,
                s.device,
                q.end - q.start
            ))
        );
        let conn = &mut conns[i % system.ports.len()];
        let sent = Instant::now();
        let answer = json_request(conn, "GET", &path, b"")?;
        latencies.push(sent.elapsed());
        let got = victoria_value(&answer)?;
        let agree = match (got, expected[i]) {
            (Some(a), Some(b)) => a == b || (a - b).abs() <= AGREEMENT * a.abs().max(b.abs()),
            (None, None) => true,
            _ => false,
        };
        if !agree {
            return Err(format!(
                "PromQL query {i} ({path}) answered {got:?}, /query {:?}",
                expected[i]
            )
            .into());
        }
    }
    latencies.sort();
    let ms = |p: usize| {
        latencies[(latencies.len() * p / 100).min(latencies.len() - 1)].as_secs_f64() * 1e3
    };
    Ok((ms(50), ms(99)))
}

/// The single value of a VictoriaMetrics instant vector (none when empty).
fn victoria_value(answer: &Value) -> BenchResult<Option<f64>> {
    if answer["status"] != "success" {
        return Err(format!("victoria-metrics answered {answer}").into());
    }
    match answer["data"]["result"].as_array().map(Vec::as_slice) {
        Some([]) | None => Ok(None),
        Some([one]) => Ok(one["value"][1].as_str().and_then(|v| v.parse::<f64>().ok())),
        Some(many) => Err(format!("victoria-metrics: {} series for one query", many.len()).into()),
    }
}

/// Fails on the first query where `other` and `reference` differ.
fn agree(reference: &Measured, other: &Measured, queries: &[Query]) -> BenchResult<()> {
    for (i, (a, b)) in reference.answers.iter().zip(&other.answers).enumerate() {
        let same = match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => (a - b).abs() <= AGREEMENT * a.abs().max(b.abs()),
            _ => false,
        };
        if !same {
            let q = &queries[i];
            return Err(format!(
                "query {i} (series {}, [{}, {}]): {} answers {a:?}, {} answers {b:?}",
                q.series,
                q.start,
                q.end,
                reference.kind.name(),
                other.kind.name()
            )
            .into());
        }
    }
    Ok(())
}

// ---- flush, compaction, stop --------------------------------------------------------------

/// Brings a peer to its steady on-disk form before it is stopped; says how.
fn settle(system: &System) -> BenchResult<String> {
    let port = system.ports[0];
    match system.kind {
        Kind::Single | Kind::Cluster => Ok(String::new()),
        Kind::Victoria(_) => {
            let mut conn = HttpConn::connect(port, HTTP_TIMEOUT)?;
            for path in ["/internal/force_flush", "/internal/force_merge"] {
                let (status, body) = conn.request("GET", path, &[])?;
                if status != 200 {
                    return Err(format!(
                        "victoria-metrics {path} answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    )
                    .into());
                }
            }
            // A forced merge runs in the background: wait until none is active.
            let started = Instant::now();
            loop {
                let (_, body) = conn.request("GET", "/metrics", &[])?;
                let text = String::from_utf8_lossy(&body);
                let active = text
                    .lines()
                    .find_map(|l| l.strip_prefix("vm_active_force_merges "))
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .unwrap_or(0.0);
                if active == 0.0 {
                    break;
                }
                if started.elapsed() > PHASE_TIMEOUT {
                    return Err("victoria-metrics: force merge still running".into());
                }
                thread::sleep(Duration::from_millis(100));
            }
            Ok(format!(
                "/internal/force_flush and force_merge ({:.1} s), SIGTERM, then du",
                started.elapsed().as_secs_f64()
            ))
        }
        Kind::Influx(_) => {
            // Cache snapshots and full compactions happen once shards are cold; wait for
            // them, then for the directory to stay unchanged.
            let started = Instant::now();
            let dir = &system.data_dirs[0];
            let mut last = dir_size(dir)?;
            let mut quiet_since = Instant::now();
            loop {
                thread::sleep(Duration::from_millis(500));
                let now = dir_size(dir)?;
                if now != last {
                    last = now;
                    quiet_since = Instant::now();
                }
                let wal = dir_size(&dir.join("wal"))?.1;
                if started.elapsed() > Duration::from_secs(8)
                    && quiet_since.elapsed() >= SETTLE_QUIET
                    && wal < 1 << 20
                {
                    break;
                }
                if started.elapsed() > PHASE_TIMEOUT {
                    return Err(format!("influxd: data still changing (WAL {wal} bytes)").into());
                }
            }
            Ok(format!(
                "cold snapshot after {INFLUX_SNAPSHOT_COLD}, full compaction after \
                 {INFLUX_COMPACT_COLD}; waited {:.0} s until the files were still, SIGTERM, then du",
                started.elapsed().as_secs_f64()
            ))
        }
    }
}

/// The sizes of the folders `levels` deep under `dir` (and of the files one level above
/// the deepest), for the reader of the output.
fn print_breakdown(dir: &Path, levels: usize) -> BenchResult<()> {
    fn walk(root: &Path, dir: &Path, levels: usize) -> BenchResult<()> {
        let Ok(entries) = fs::read_dir(dir) else {
            return Ok(());
        };
        let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            let shown = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            if path.is_dir() {
                let (disk, apparent) = dir_size(&path)?;
                println!("  {shown}/: {disk} bytes allocated, {apparent} apparent");
                if levels > 1 {
                    walk(root, &path, levels - 1)?;
                }
            } else if levels == 1 {
                println!("  {shown}: {} bytes", fs::metadata(&path)?.len());
            }
        }
        Ok(())
    }
    walk(dir, dir, levels)
}

/// Allocated bytes of the files under `dir` whose names end in `suffix`.
fn files_size(dir: &Path, suffix: &str) -> BenchResult<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in fs::read_dir(dir)?.flatten() {
        let meta = entry.metadata()?;
        if meta.is_dir() {
            total += files_size(&entry.path(), suffix)?;
        } else if entry.file_name().to_string_lossy().ends_with(suffix) {
            total += meta.blocks() * 512;
        }
    }
    Ok(total)
}

/// Allocated bytes (as `du`) and apparent bytes of every file under `dir`.
fn dir_size(dir: &Path) -> BenchResult<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut total = (0, 0);
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(total),
        Err(e) => return Err(format!("{}: {e}", dir.display()).into()),
    };
    for entry in entries {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let (a, b) = dir_size(&entry.path())?;
            total = (total.0 + a, total.1 + b);
        } else {
            total = (total.0 + meta.blocks() * 512, total.1 + meta.len());
        }
    }
    Ok(total)
}

// ---- processes and the HTTP client --------------------------------------------------------

/// A child process, killed by its PID when dropped.
struct Process {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    fn spawn(name: &str, command: &mut Command, log: &Path) -> BenchResult<Process> {
        let stderr = fs::File::create(log)?;
        let child = command
            .stdin(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("start {name}: {e}"))?;
        Ok(Process {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn check_running(&mut self) -> BenchResult<()> {
        let Some(child) = self.child.as_mut() else {
            return Err(format!("{} already stopped", self.name).into());
        };
        match child.try_wait()? {
            Some(status) => {
                Err(format!("{} exited ({status}):\n{}", self.name, self.log_text()).into())
            }
            None => Ok(()),
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Peak resident set size (VmHWM) in KiB.
    fn peak_rss_kib(&self) -> BenchResult<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no VmHWM in /proc/{}/status", self.pid()).into())
    }

    /// Stops the process cleanly (SIGTERM to its PID) and waits for it; kills it if it has
    /// not exited after [`STOP_TIMEOUT`].
    fn terminate(&mut self) -> BenchResult<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                if sent.is_ok() {
                    return Ok(());
                }
                return Err(format!("{}: could not send SIGTERM ({status})", self.name).into());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{} did not stop within {STOP_TIMEOUT:?}", self.name).into());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A request whose answer must be 200 with a JSON body.
fn json_request(conn: &mut HttpConn, method: &str, path: &str, body: &[u8]) -> BenchResult<Value> {
    let (status, answer) = conn.request(method, path, body)?;
    if status != 200 {
        return Err(format!(
            "{method} {path} answered {status}: {}",
            String::from_utf8_lossy(&answer)
        )
        .into());
    }
    Ok(serde_json::from_slice(&answer)?)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A loopback port that was free a moment ago.
fn free_port() -> BenchResult<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `program` on PATH or in /usr/bin (Debian's place for both peers).
fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> BenchResult<TempDir> {
        let dir = std::env::temp_dir().join(format!("minitrue-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

// ---- the record ---------------------------------------------------------------------------

/// The 1-minute load average, as `/proc/loadavg` gives it.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

/// Total memory from /proc/meminfo, in GiB.
fn memory_gib() -> f64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0)
}

/// The first line a command prints on stdout or stderr, if it runs.
fn first_line(program: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    [out.stdout, out.stderr]
        .iter()
        .flat_map(|o| {
            String::from_utf8_lossy(o)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .map(|l| l.trim().to_string())
        .find(|l| !l.is_empty())
}

/// Every system's version: its own `version` command, else the Debian package's version.
fn versions(results: &[Measured]) -> Vec<String> {
    let mut out = vec![format!("minitrue {}", env!("CARGO_PKG_VERSION"))];
    for m in results {
        let (binary, args, package): (&Path, &[&str], &str) = match &m.kind {
            Kind::Victoria(p) => (p, &["-version"], "victoria-metrics"),
            Kind::Influx(p) => (p, &["version"], "influxdb"),
            _ => continue,
        };
        let own = first_line(binary, args);
        let debian = first_line(
            Path::new("dpkg-query"),
            &["-W", "-f", "${Version}\n", package],
        );
        out.push(match (own, debian) {
            (Some(own), Some(debian)) => format!("{own} (Debian {package} {debian})"),
            (Some(own), None) => own,
            (None, Some(debian)) => format!(
                "{package} {debian} (Debian package; `{} {}` prints nothing)",
                binary.display(),
                args.join(" ")
            ),
            (None, None) => format!("{package}: version unknown"),
        });
    }
    out
}

/// "met" or by how much a ratio target is missed.
fn verdict(ratio: f64, target: f64, higher_is_better: bool) -> String {
    let met = if higher_is_better {
        ratio >= target
    } else {
        ratio < target
    };
    if met {
        "met".to_string()
    } else {
        "missed".to_string()
    }
}

/// Prints the table and records it in docs/benchmarks.md, unless `MINITRUE_BENCH_ONLY`
/// left systems out.
fn record(
    results: &[Measured],
    fleet: &Fleet,
    data: &Dataset,
    skipped: &[String],
    versions: &[String],
    scale: f64,
    load_at_start: &str,
) -> BenchResult<()> {
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let mut t = String::new();
    let (marker, heading, set) = if fleet.labelled {
        (
            "peers-bench-labels",
            "Against VictoriaMetrics and InfluxDB: 10 000 series of five labels",
            ", MINITRUE_BENCH_SET=labels",
        )
    } else {
        ("peers-bench", "Against VictoriaMetrics and InfluxDB", "")
    };
    writeln!(t, "<!-- {marker}:start -->")?;
    writeln!(
        t,
        "Command: `make bench-peers` (`tools/bench-peers.sh` → `cargo bench --bench peers`{set}{}). \
         Machine: {cores} cores (`nproc`), {:.1} GiB memory, load average {load_at_start} at \
         the start; every process on this machine over 127.0.0.1, one system at a time.\n",
        if scale == 1.0 {
            String::new()
        } else {
            format!(", MINITRUE_BENCH_SCALE={scale}")
        },
        memory_gib()
    )?;
    writeln!(t, "Versions: {}.\n", versions.join("; "))?;
    writeln!(
        t,
        "Data: {} distinct points ({} lines sent: {:.0} % out of order, {:.0} % duplicates) — \
         {} devices × {} metrics every {INTERVAL_S} s{} plus {} real points from \
         `../shared/data` — as InfluxDB line protocol in seconds; writes of {BATCH_LINES} lines \
         from {WRITE_CLIENTS} threads; {QUERIES} random single-series averages (windows of 1 h \
         to 7 d, bounds 5 s off the 10 s grid) through each system's own API, one at a time. \
         All systems returned the same {QUERIES} averages (within {AGREEMENT:e} relative).\n",
        data.distinct,
        data.lines.len(),
        OUT_OF_ORDER * 100.0,
        DUPLICATES * 100.0,
        fleet.devices,
        METRICS.len(),
        if fleet.labelled {
            " (tags device_id, site, rack, zone, fw: 10 000 series of five labels)"
        } else {
            ""
        },
        data.real_points
    )?;
    writeln!(
        t,
        "| system | ingest, until queryable (points/s) | until acknowledged (points/s) | bytes/point on disk (du) | apparent bytes/point | peak RSS (MiB) | query p50 / p99 (ms) | how it was settled |"
    )?;
    writeln!(t, "|---|---:|---:|---:|---:|---:|---:|---|")?;
    println!();
    for m in results {
        let bpp = m.disk_bytes as f64 / data.distinct as f64;
        let abpp = m.apparent_bytes as f64 / data.distinct as f64;
        let rss = m.rss_kib as f64 / 1024.0;
        println!(
            "{:<26} {:>10.0} pts/s ({:.2} s)  {bpp:>6.3} B/pt  {abpp:>6.3} B/pt  {rss:>6.0} MiB  {:>6.2} / {:>6.2} ms",
            m.kind.name(),
            m.ingest_rate,
            m.ingest_seconds,
            m.p50_ms,
            m.p99_ms
        );
        writeln!(
            t,
            "| {} | {:.0} | {:.0} | {bpp:.3} | {abpp:.3} | {rss:.0} | {:.2} / {:.2} | {} |",
            m.kind.name(),
            m.ingest_rate,
            m.acked_rate,
            m.p50_ms,
            m.p99_ms,
            m.note
        )?;
    }
    for why in skipped {
        writeln!(
            t,
            "| {} | — | — | — | — | — | — | not run: {} |",
            why.split(':').next().unwrap_or(why),
            why
        )?;
    }
    if let Some(ours) = results.iter().find(|m| matches!(m.kind, Kind::Single)) {
        let peers: Vec<&Measured> = results.iter().filter(|m| !m.kind.is_minitrue()).collect();
        if !peers.is_empty() {
            writeln!(
                t,
                "\nMiniTrue single node against each peer (ingest: ours ÷ theirs, higher is \
                 better; bytes/point and p99: ours ÷ theirs, lower is better):\n"
            )?;
            writeln!(
                t,
                "| peer | ingest | target | bytes/point (du) | target | query p99 | target |"
            )?;
            writeln!(t, "|---|---:|---|---:|---|---:|---|")?;
            for p in peers {
                let ingest = ours.ingest_rate / p.ingest_rate;
                let bytes = ours.disk_bytes as f64 / p.disk_bytes as f64;
                let p99 = ours.p99_ms / p.p99_ms;
                let ingest_target = match p.kind {
                    Kind::Influx(_) => INGEST_VS_INFLUX_TARGET,
                    _ => INGEST_VS_VM_TARGET,
                };
                let line = format!(
                    "| {} | {ingest:.2}× | ≥ {ingest_target}×: {} | {bytes:.2}× | < 1×: {} | {p99:.2}× | < 1×: {} |",
                    p.kind.name(),
                    verdict(ingest, ingest_target, true),
                    verdict(bytes, 1.0, false),
                    verdict(p99, 1.0, false),
                );
                println!("{line}");
                writeln!(t, "{line}")?;
            }
        }
    }
    let victoria = results.iter().find(|m| matches!(m.kind, Kind::Victoria(_)));
    writeln!(
        t,
        "\nThe same {QUERIES} averages as PromQL (`avg_over_time(m{{device_id=\"d\"}}[w])` at the \
         window's end) through each system's `/api/v1/query`, every answer checked against \
         `/query`'s (VictoriaMetrics' column above is already PromQL; Prometheus itself is not in \
         this bench, see tests/promql_vs_prometheus.rs for answers checked against it):\n"
    )?;
    writeln!(
        t,
        "| system | PromQL p50 / p99 (ms) | p99 ÷ VictoriaMetrics' |"
    )?;
    writeln!(t, "|---|---:|---:|")?;
    for m in results {
        let (p50, p99) = match (m.promql_ms, &m.kind) {
            (Some(ms), _) => ms,
            (None, Kind::Victoria(_)) => (m.p50_ms, m.p99_ms),
            (None, _) => continue,
        };
        let ratio = victoria.map_or("—".to_string(), |v| format!("{:.2}×", p99 / v.p99_ms));
        writeln!(t, "| {} | {p50:.2} / {p99:.2} | {ratio} |", m.kind.name())?;
    }
    writeln!(t, "<!-- {marker}:end -->")?;
    if std::env::var("MINITRUE_BENCH_ONLY").is_ok_and(|s| !s.is_empty()) {
        println!("MINITRUE_BENCH_ONLY is set: not recorded in docs/benchmarks.md");
        return Ok(());
    }
    common::record_section(marker, heading, &t)?;
    Ok(())
}
