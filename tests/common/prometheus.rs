//! A real Prometheus (Debian's `prometheus`) for black-box tests: started on a free port
//! with a test's `prometheus.yml` in a temporary directory, asked instant queries over its
//! HTTP API, and killed by PID when its guard drops (also when a test fails). Tests skip,
//! with a message, where it is not installed (CI installs it, `.ci/run`).

use super::{free_port, try_request};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Whether `prometheus` (and `promtool`) can be run here; prints why a test skips if not.
pub fn installed() -> bool {
    let ok = super::certs::have("prometheus") && super::certs::have("promtool");
    if !ok {
        eprintln!("skipped: prometheus/promtool not installed (apt-get install prometheus)");
    }
    ok
}

/// A running Prometheus; killed (by PID) when dropped.
pub struct Prometheus {
    child: Child,
    /// Its HTTP port (API and its own `/metrics`).
    pub port: u16,
    log: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus with the configuration `config(port)` builds for the port it will
    /// listen on (so it can scrape itself), keeping its TSDB and log under `dir`. It answers
    /// queries only once ready: see [`Prometheus::value`].
    pub fn start(dir: &Path, config: impl FnOnce(u16) -> String) -> Prometheus {
        let port = free_port();
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config(port)).expect("write prometheus.yml");
        let log = dir.join("prometheus.log");
        let stderr = std::fs::File::create(&log).expect("create prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start prometheus");
        Prometheus { child, port, log }
    }

    /// The first value of the instant query `query` (URL-encoded), or `None`: no such
    /// series yet, or Prometheus not ready (503 until it has loaded its storage).
    pub fn value(&self, query: &str) -> Option<f64> {
        let path = format!("/api/v1/query?query={query}");
        let r = try_request(self.port, "GET", &path, &[], &[]).ok()?;
        if r.status != 200 {
            return None;
        }
        r.json()["data"]["result"][0]["value"][1]
            .as_str()?
            .parse()
            .ok()
    }

    /// What Prometheus logged so far, for failure messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
