//! Helpers for tests of several nodes: the flags of a quick cluster, the owners the ring
//! gives a series, `/status` and count queries that report failures as values (a node may
//! be down), the tail of each node's log, and a polling wait that prints those tails.

use super::{try_request, Server};
use minitrue::cluster::ring::Ring;
use serde_json::Value;
use std::thread;
use std::time::{Duration, Instant};

/// Replication 2 and short gossip timings (suspect after 600 ms, dead after 1.5 s).
pub const CLUSTER_FLAGS: [&str; 4] = [
    "--replication=2",
    "--gossip_interval_ms=100",
    "--suspect_timeout_ms=600",
    "--dead_timeout_ms=1500",
];
/// The `--replication` of [`CLUSTER_FLAGS`].
pub const REPLICATION: usize = 2;

/// The owners of `device|metric` on the ring of `ids`, primary first.
pub fn owners(ids: &[&str], device: &str, metric: &str) -> Vec<String> {
    Ring::new(ids.iter().copied())
        .preference_list(&Ring::routing_key(device, metric), REPLICATION)
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// `GET /status` as JSON.
pub fn status(server: &Server) -> Result<Value, String> {
    let r = try_request(server.port, "GET", "/status", &[], &[])
        .map_err(|e| format!("{} /status: {e}", server.node_id))?;
    match r.status {
        200 => Ok(r.json()),
        s => Err(format!(
            "{} /status answered {s}: {}",
            server.node_id,
            r.text()
        )),
    }
}

/// A `count` query of `device|metric` up to `end` seconds (`None`: all time) on `path`
/// (`/query`, or `/query?local=1` for the node's own store).
pub fn count_query(
    server: &Server,
    path: &str,
    device: &str,
    metric: &str,
    end: Option<i64>,
) -> Result<Value, String> {
    let body = serde_json::json!({
        "device_id": device,
        "metric_name": metric,
        "operation": "count",
        "start_time": 0,
        "end_time": end.unwrap_or(0),
    })
    .to_string();
    let r = try_request(server.port, "POST", path, body.as_bytes(), &[])
        .map_err(|e| format!("{} {path}: {e}", server.node_id))?;
    match r.status {
        200 => Ok(r.json()),
        s => Err(format!(
            "{} {path} answered {s}: {}",
            server.node_id,
            r.text()
        )),
    }
}

/// The `count` of [`count_query`].
pub fn count(
    server: &Server,
    path: &str,
    device: &str,
    metric: &str,
    end: Option<i64>,
) -> Result<u64, String> {
    let v = count_query(server, path, device, metric, end)?;
    v["count"].as_u64().ok_or_else(|| format!("no count: {v}"))
}

/// The last `lines` lines of each server's log, headed by its node id.
pub fn log_tails<'a>(servers: impl IntoIterator<Item = &'a Server>, lines: usize) -> String {
    servers
        .into_iter()
        .map(|server| {
            let text = server.log_text();
            let all: Vec<&str> = text.lines().collect();
            let tail = all[all.len().saturating_sub(lines)..].join("\n");
            format!("--- {} ---\n{tail}", server.node_id)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Polls `check` every 50 ms until it returns `Ok`; after `timeout` panics with its last
/// complaint and `logs()`. Returns how long it took.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<(), String>,
    logs: impl Fn() -> String,
) -> Duration {
    let started = Instant::now();
    loop {
        match check() {
            Ok(()) => return started.elapsed(),
            Err(why) if started.elapsed() > timeout => panic!(
                "timed out after {timeout:?} waiting for {what}: {why}\n{}",
                logs()
            ),
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}
