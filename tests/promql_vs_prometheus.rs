//! PromQL answers checked against the real Prometheus (issue 14): one deterministic data
//! set — gauges with jittered timestamps and a gap, counters with a reset — goes into a
//! real Prometheus (Debian's, through `promtool tsdb create-blocks-from openmetrics`) and,
//! with some points sent late, into a MiniTrue node through `/write`. Then well over 100
//! instant and range queries go to both `/api/v1/query` and `/api/v1/query_range`, and
//! every answer must agree: the same result type, the same series, the same timestamps
//! and values within 1e-9 relative. Skipped, with a message, where Prometheus is not
//! installed (CI installs it, `.ci/run`).

mod common;

use common::certs::have;
use common::{free_port, percent_encode, wait_until, Server, TempDir};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Seconds between two readings of a series.
const INTERVAL_S: i64 = 15;
/// Length of the data set.
const SPAN_S: i64 = 3 * 3600;
/// Largest relative difference two answers may have.
const AGREEMENT: f64 = 1e-9;

/// xorshift64*: small and deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One series of the data set: metric, labels (sorted) and points (unix ms, value).
struct Series {
    metric: &'static str,
    labels: Vec<(&'static str, &'static str)>,
    points: Vec<(i64, f64)>,
}

/// A point's offset from its 15 s grid: 1 ms to 2 s, never a whole second. Queries are
/// asked at whole seconds with whole-minute windows, so no point lies exactly on a window's
/// start, the one place Prometheus 2 (closed windows, the Debian package here) and
/// Prometheus 3 (left-open, what MiniTrue does) differ.
fn jitter(rng: &mut Rng) -> i64 {
    (1 + rng.below(998) + 1000 * rng.below(2)) as i64
}

/// The data set, starting at `t0` (unix ms, on a whole minute).
fn data_set(t0: i64) -> Vec<Series> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::new();
    let steps = SPAN_S / INTERVAL_S;
    let gauges: [(&str, &str, &str); 6] = [
        ("temp", "d1", "lab"),
        ("temp", "d1", "hall"),
        ("temp", "d2", "lab"),
        ("temp", "d3", "hall"),
        ("humidity", "d1", "lab"),
        ("humidity", "d2", "lab"),
    ];
    for (metric, device, room) in gauges {
        let mut level = 2000 + rng.below(600) as i64;
        let mut points = Vec::new();
        for step in 0..steps {
            // d2 in the lab is silent for 20 minutes: a gap longer than the lookback.
            let minute = step * INTERVAL_S / 60;
            if device == "d2" && (60..80).contains(&minute) {
                continue;
            }
            level = (level + rng.below(41) as i64 - 20).clamp(1000, 3000);
            let jitter = jitter(&mut rng);
            points.push((t0 + step * INTERVAL_S * 1000 + jitter, level as f64 / 100.0));
        }
        out.push(Series {
            metric,
            labels: vec![("device_id", device), ("room", room)],
            points,
        });
    }
    let counters: [(&str, &str); 3] = [("d1", "200"), ("d1", "500"), ("d2", "200")];
    for (device, code) in counters {
        let mut total = rng.below(1000) as f64;
        let mut points = Vec::new();
        for step in 0..steps {
            // d1's 200 counter restarts from zero at minute 100 (a process restart).
            if device == "d1" && code == "200" && step == 100 * 60 / INTERVAL_S {
                total = 0.0;
            }
            total += rng.below(20) as f64;
            points.push((t0 + step * INTERVAL_S * 1000 + jitter(&mut rng), total));
        }
        out.push(Series {
            metric: "requests_total",
            labels: vec![("code", code), ("device_id", device)],
            points,
        });
    }
    out
}

/// The data set as OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`.
fn openmetrics(series: &[Series]) -> String {
    let mut text = String::new();
    for s in series {
        let labels: Vec<String> = s
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        for (ts, v) in &s.points {
            let _ = writeln!(
                text,
                "{}{{{}}} {v} {}.{:03}",
                s.metric,
                labels.join(","),
                ts / 1000,
                ts % 1000
            );
        }
    }
    text.push_str("# EOF\n");
    text
}

/// The data set as line protocol (ms), every 10th point of each series held back and sent
/// after the rest: late points must land where they belong.
fn line_protocol(series: &[Series]) -> (String, String) {
    let (mut on_time, mut late) = (String::new(), String::new());
    for s in series {
        let tags: String = s.labels.iter().map(|(k, v)| format!(",{k}={v}")).collect();
        for (i, (ts, v)) in s.points.iter().enumerate() {
            let line = format!("{}{tags} value={v} {ts}\n", s.metric);
            if i % 10 == 3 {
                late.push_str(&line);
            } else {
                on_time.push_str(&line);
            }
        }
    }
    (on_time, late)
}

/// The expressions asked, `{T}` standing for a unix-seconds time inside the data.
fn expressions() -> Vec<&'static str> {
    vec![
        "temp",
        "temp{room=\"lab\"}",
        "temp{room!=\"lab\"}",
        "temp{device_id=~\"d[12]\"}",
        "temp{device_id!~\"d1\"}",
        "{__name__=\"temp\",room=\"hall\"}",
        "{__name__=~\"temp|humidity\",device_id=\"d1\"}",
        "rate(requests_total[5m])",
        "irate(requests_total[5m])",
        "increase(requests_total[10m])",
        "delta(temp[10m])",
        "avg_over_time(temp[10m])",
        "min_over_time(temp[10m])",
        "max_over_time(temp[10m])",
        "sum_over_time(temp[10m])",
        "count_over_time(temp[10m])",
        "last_over_time(temp[10m])",
        "quantile_over_time(0.9, temp[15m])",
        "abs(temp - 22)",
        "clamp_min(temp, 21)",
        "clamp_max(temp, 22)",
        "round(temp)",
        "round(temp, 0.5)",
        "time()",
        "timestamp(temp)",
        "sum(temp)",
        "avg(temp)",
        "min(temp)",
        "max(temp)",
        "count(temp)",
        "sum by (room) (temp)",
        "avg without (device_id) (temp)",
        "max by (device_id) (temp)",
        "topk(2, temp)",
        "bottomk(1, temp)",
        "quantile(0.5, temp)",
        "temp * 2",
        "2 * temp - 1",
        "temp / 3",
        "temp % 5",
        "temp ^ 2",
        "-temp",
        "temp > 22",
        "temp > bool 22",
        "temp <= 21",
        "temp - on(device_id, room) humidity",
        "temp{room=\"lab\"} / ignoring(room) humidity",
        // Many-to-one without group_left: both must refuse it the same way.
        "temp / ignoring(room) humidity{room=\"lab\"}",
        "sum by (device_id) (rate(requests_total[5m]))",
        "sum by (code) (increase(requests_total[30m]))",
        "rate(requests_total[5m] offset 10m)",
        "temp offset 30m",
        "temp @ {T}",
        "avg_over_time(temp[10m] @ {T})",
        "1 + 2 * 3",
    ]
}

/// A running Prometheus on blocks made from `text`.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_prometheus(dir: &Path, text: &str) -> Prometheus {
    let input = dir.join("data.om");
    std::fs::write(&input, text).expect("write openmetrics");
    let tsdb = dir.join("tsdb");
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&tsdb)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool create-blocks-from openmetrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        dir.join("prometheus.yml"),
        "global:\n  scrape_interval: 1h\n",
    )
    .expect("write prometheus.yml");
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!("--storage.tsdb.path={}", tsdb.display()))
        .arg("--storage.tsdb.retention.time=30d")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    let prometheus = Prometheus { child, port };
    wait_until("Prometheus to be ready", Duration::from_secs(60), || {
        common::try_request(port, "GET", "/-/ready", &[], &[]).is_ok_and(|r| r.status == 200)
    });
    prometheus
}

/// `GET path` on `port`, its JSON.
fn ask(port: u16, path: &str) -> Value {
    let r = common::try_request(port, "GET", path, &[], &[])
        .unwrap_or_else(|e| panic!("GET {path} on {port}: {e}"));
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", r.text()))
}

/// Points per series, the series named by its labels as JSON text.
type PointsBySeries = BTreeMap<String, Vec<(f64, f64)>>;

/// An answer's `data` in a comparable form: result type, then per series the points.
fn normalise(answer: &Value) -> Result<(String, PointsBySeries), String> {
    if answer["status"] != "success" {
        return Err(format!("not a success: {answer}"));
    }
    let data = &answer["data"];
    let kind = data["resultType"].as_str().unwrap_or_default().to_string();
    let point = |p: &Value| -> Result<(f64, f64), String> {
        let t = p[0].as_f64().ok_or(format!("bad time in {p}"))?;
        let v: f64 = p[1]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or(format!("bad value in {p}"))?;
        Ok((t, v))
    };
    let mut series = BTreeMap::new();
    match kind.as_str() {
        "scalar" | "string" => {
            series.insert(String::new(), vec![point(&data["result"])?]);
        }
        "vector" | "matrix" => {
            for r in data["result"].as_array().ok_or("result is not an array")? {
                let labels = r["metric"].to_string();
                let points = match r.get("values") {
                    Some(values) => values
                        .as_array()
                        .ok_or("values is not an array")?
                        .iter()
                        .map(point)
                        .collect::<Result<Vec<_>, _>>()?,
                    None => vec![point(&r["value"])?],
                };
                if series.insert(labels.clone(), points).is_some() {
                    return Err(format!("series {labels} answered twice"));
                }
            }
        }
        other => return Err(format!("unknown result type {other:?}")),
    }
    Ok((kind, series))
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    a == b || (a - b).abs() <= AGREEMENT * a.abs().max(b.abs())
}

/// Why two answers differ, or `None`. Two errors agree when their types do.
fn disagreement(ours: &Value, theirs: &Value) -> Option<String> {
    if ours["status"] == "error" && theirs["status"] == "error" {
        if ours["errorType"] == theirs["errorType"] {
            return None;
        }
        return Some(format!("errors differ: {ours} against {theirs}"));
    }
    let (ours, theirs) = match (normalise(ours), normalise(theirs)) {
        (Ok(o), Ok(t)) => (o, t),
        (o, t) => return Some(format!("ours {o:?}, Prometheus {t:?}")),
    };
    if ours.0 != theirs.0 {
        return Some(format!("result type {} against {}", ours.0, theirs.0));
    }
    let (ours, theirs) = (ours.1, theirs.1);
    if ours.keys().ne(theirs.keys()) {
        return Some(format!(
            "series {:?} against {:?}",
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>()
        ));
    }
    for (labels, o) in &ours {
        let t = &theirs[labels];
        if o.len() != t.len() {
            return Some(format!("{labels}: {} points against {}", o.len(), t.len()));
        }
        for (a, b) in o.iter().zip(t) {
            if a.0 != b.0 || !close(a.1, b.1) {
                return Some(format!("{labels}: {a:?} against {b:?}"));
            }
        }
    }
    None
}

#[test]
fn promql_answers_agree_with_the_real_prometheus() {
    if !have("promtool") || !have("prometheus") {
        eprintln!("skipped: prometheus/promtool not installed (apt-get install prometheus)");
        return;
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    // Six hours ago, on a whole minute: old enough for blocks, inside the retention.
    let t0 = (now_ms - 6 * 3_600_000) / 60_000 * 60_000;
    let series = data_set(t0);
    let dir = TempDir::new("promql-vs-prometheus");
    let prometheus = start_prometheus(dir.path(), &openmetrics(&series));

    let node_dir = TempDir::new("promql-node");
    let node = Server::start("promql1", node_dir.path(), &[]);
    let (on_time, late) = line_protocol(&series);
    for body in [on_time, late] {
        let r = node.post("/write?precision=ms", &body);
        assert_eq!(r.status, 204, "{}", r.text());
    }

    let t0_s = t0 / 1000;
    // Inside, in d2's gap, just after the counter reset, at the end, within the lookback
    // after the end, and beyond it.
    let instants = [30, 75, 101, 179, 184, 190].map(|minute| t0_s + minute * 60);
    let at = (t0_s + 60 * 60).to_string();
    let mut asked = 0;
    let mut failures = Vec::new();
    for template in expressions() {
        let expr = template.replace("{T}", &at);
        let query = percent_encode(&expr);
        let mut paths: Vec<String> = instants
            .iter()
            .map(|t| format!("/api/v1/query?query={query}&time={t}"))
            .collect();
        // A whole-minute step and an odd one, both over most of the data.
        for (start, end, step) in [(10, 170, "60"), (7, 173, "47")] {
            paths.push(format!(
                "/api/v1/query_range?query={query}&start={}&end={}&step={step}",
                t0_s + start * 60,
                t0_s + end * 60
            ));
        }
        for path in paths {
            asked += 1;
            let theirs = ask(prometheus.port, &path);
            let ours = ask(node.port, &path);
            if let Some(why) = disagreement(&ours, &theirs) {
                failures.push(format!("{expr} ({path}): {why}"));
            }
        }
    }
    assert!(asked >= 100, "only {asked} queries asked");
    assert!(
        failures.is_empty(),
        "{} of {asked} answers differ from Prometheus:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
