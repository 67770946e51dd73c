//! The node's own metrics in the Prometheus text exposition format (version 0.0.4), for
//! `GET /debug/metrics`: the pieces every role records into ([`Histogram`]), and the writer
//! that lays them out ([`Exposition`]). What is exported is chosen in
//! `http::handlers::debug_metrics`; this module knows no node state, so storage and HTTP can
//! both record into it without depending on each other.
//!
//! Histograms are cumulative (`_bucket{le=...}`, `_sum`, `_count`), with fixed bounds in
//! seconds, recorded with relaxed atomics: a scrape may see a sum and a count one
//! observation apart, which Prometheus tolerates.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket bounds (seconds) for latencies from 50 µs to 10 s: fsyncs and queries alike.
pub const LATENCY_BOUNDS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// A latency histogram over [`LATENCY_BOUNDS`].
#[derive(Debug)]
pub struct Histogram {
    /// Observations at or below each bound (not cumulative: summed when written); the last
    /// slot counts those above every bound.
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let slot = LATENCY_BOUNDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }
}

/// The kind of a metric family, as its `# TYPE` line says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Builds one exposition: each family is announced once (`# HELP`, `# TYPE`) and followed
/// by its samples.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// Starts the family `name`. Call once per name, before its samples.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample of the current family: `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.text.push_str(name);
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {}", format_value(value));
        self
    }

    /// The samples of `histogram` under the current family `name`, with `labels`.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        histogram: &Histogram,
    ) -> &mut Self {
        let mut cumulative = 0;
        let bounds = LATENCY_BOUNDS.iter().map(|b| format_value(*b));
        for (bucket, bound) in histogram
            .buckets
            .iter()
            .zip(bounds.chain(["+Inf".to_string()]))
        {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = write!(self.text, "{name}_bucket");
            write_labels(&mut self.text, labels, Some(&bound));
            let _ = writeln!(self.text, " {cumulative}");
        }
        let sum = histogram.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = write!(self.text, "{name}_sum");
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {}", format_value(sum));
        let _ = write!(self.text, "{name}_count");
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {cumulative}");
        self
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// `{k="v",...}` (with `le` last when given); nothing for no labels. Values are escaped as
/// the format requires (`\\`, `\"`, `\n`).
fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let all = labels.iter().copied().chain(le.map(|le| ("le", le)));
    for (i, (name, value)) in all.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let value = value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = write!(out, "{name}=\"{value}\"");
    }
    out.push('}');
}

/// A sample value as Prometheus writes it (`+Inf`, `-Inf`, `NaN` for the special ones).
pub fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value == f64::INFINITY {
        "+Inf".into()
    } else if value == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_is_written_cumulatively_with_sum_and_count() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(40));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(20));
        let mut e = Exposition::default();
        e.family("fsync_seconds", Kind::Histogram, "fsyncs")
            .histogram("fsync_seconds", &[("file", "wal")], &h);
        let text = e.finish();
        assert!(text.starts_with("# HELP fsync_seconds fsyncs\n# TYPE fsync_seconds histogram\n"));
        assert!(
            text.contains("fsync_seconds_bucket{file=\"wal\",le=\"0.00005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("fsync_seconds_bucket{file=\"wal\",le=\"0.005\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("fsync_seconds_bucket{file=\"wal\",le=\"10\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("fsync_seconds_bucket{file=\"wal\",le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("fsync_seconds_count{file=\"wal\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("fsync_seconds_sum{file=\"wal\"} 20.00304\n"),
            "{text}"
        );
        assert_eq!(h.count(), 3);
    }

    #[test]
    fn label_values_are_escaped_and_specials_spelled_out() {
        let mut e = Exposition::default();
        e.family("x", Kind::Gauge, "a \\ help\nline")
            .sample("x", &[("why", "a \"b\"\\\n")], f64::INFINITY)
            .sample("x", &[], f64::NAN);
        let text = e.finish();
        assert!(text.contains("# HELP x a \\\\ help\\nline\n"), "{text}");
        assert!(
            text.contains("x{why=\"a \\\"b\\\"\\\\\\n\"} +Inf\n"),
            "{text}"
        );
        assert!(text.contains("\nx NaN\n"), "{text}");
    }
}
