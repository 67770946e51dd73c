//! A node as Prometheus sees it (issue 14's "metrics out"): `GET /debug/metrics` passes
//! `promtool check metrics`, and a real Prometheus (Debian's `prometheus`) scrapes it and
//! answers with the node's own numbers. Skipped, with a message, where Prometheus is not
//! installed (CI installs it, `.ci/run`).

mod common;

use common::prometheus::{self, Prometheus};
use common::{wait_until, Server, TempDir};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Writes `n` readings of one series through `/write`.
fn write_points(server: &Server, n: usize) {
    let body: String = (0..n)
        .map(|i| {
            format!(
                "temperature,device_id=prom value={i} {}\n",
                1_760_000_000 + i
            )
        })
        .collect();
    let r = server.post("/write?precision=s", &body);
    assert_eq!(r.status, 204, "{}", r.text());
}

#[test]
fn debug_metrics_pass_promtool_and_a_real_prometheus_scrapes_them() {
    if !prometheus::installed() {
        return;
    }
    let dir = TempDir::new("prometheus");
    let server = Server::start("prom1", dir.path(), &[]);
    write_points(&server, 250);
    assert_eq!(server.count("prom", "temperature"), 250);

    let metrics = server.get("/debug/metrics");
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("Content-Type")
        .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")));
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    lint.stdin
        .take()
        .expect("stdin")
        .write_all(metrics.text().as_bytes())
        .expect("feed promtool");
    let out = lint.wait_with_output().expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A real Prometheus scraping the node every second.
    let prometheus = Prometheus::start(dir.path(), |_| {
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: minitrue\n    \
             metrics_path: /debug/metrics\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            server.port
        )
    });
    let ask = |query: &str| prometheus.value(query);
    let mut seen = None;
    wait_until(
        "Prometheus to have scraped the node",
        Duration::from_secs(30),
        || {
            seen = ask("minitrue_points");
            seen.is_some()
        },
    );
    assert_eq!(seen, Some(250.0));
    assert_eq!(
        ask("minitrue_ingest_accepted_total%7Bsource%3D%22http%22%7D"),
        Some(250.0)
    );
    assert_eq!(ask("up%7Bjob%3D%22minitrue%22%7D"), Some(1.0));
    // The scrapes themselves show up in the node's request latency.
    wait_until(
        "the scrape endpoint in the latency histogram",
        Duration::from_secs(10),
        || {
            ask("minitrue_http_request_seconds_count%7Bendpoint%3D%22%2Fdebug%2Fmetrics%22%7D")
                .is_some_and(|n| n >= 1.0)
        },
    );
}
