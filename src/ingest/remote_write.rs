//! Prometheus remote write 1.0 (`POST /api/v1/write`), as Prometheus, Grafana Alloy and
//! vmagent push it: a snappy-compressed protobuf `WriteRequest` of time series, each a set
//! of labels and samples. This module turns such a body into [`Point`]s; the handler stores
//! them the way `/write` does.
//!
//! Wire format (remote write 1.0, `prometheus/prompb/remote.proto` and `types.proto`):
//! 1. the body is **raw (block) snappy**, not the framed format: a varint of the decoded
//!    length, then the compressed blocks (`Content-Encoding: snappy`);
//! 2. decoded, it is a protobuf `WriteRequest { repeated TimeSeries timeseries = 1; }`
//!    (`metadata = 3` is skipped as an unknown field: we keep no metadata);
//! 3. `TimeSeries { repeated Label labels = 1; repeated Sample samples = 2; }` (exemplars = 3
//!    and native histograms = 4 are skipped);
//! 4. `Label { string name = 1; string value = 2; }`,
//!    `Sample { double value = 1; int64 timestamp = 2; }` (milliseconds since the epoch).
//!
//! What is stored:
//! - `__name__` is the metric, every other label a label, checked by the store's label rules
//!   ([`SeriesKey::with_labels`]). An empty value means "no such label" in Prometheus, so
//!   such a label is left out. A series without `__name__`, or whose labels break a rule, is
//!   refused with its reason; the other series of the request are stored.
//! - Timestamps obey the store's one rule ([`rule_error`]: 1970..2262, at most
//!   `--max_future_s` ahead); a sample outside it is refused, its series' others stored.
//! - Prometheus's stale markers (the NaN with bits [`STALE_NAN_BITS`], written when a series
//!   disappears from a scrape) are not readings: skipped and counted.
//! - Other NaN and ±Inf values (a summary quantile with no observations is NaN) are skipped
//!   and counted as `non_finite_value`, without failing the request: the store, its
//!   aggregates and the cluster's JSON wire hold finite numbers only (see [`super`]), and a
//!   400 would only make Prometheus drop the batch's good samples from its own view too.
//!
//! Bounds: the compressed body is the write body limit (`MAX_WRITE_BODY`); the decoded length
//! snappy announces is checked against [`MAX_DECODED_BODY`] before anything is decompressed.

use super::payload::RejectReason;
use super::stats::{IngestStats, Source};
use super::timestamp::rule_error;
use crate::error::{Error, Result};
use crate::storage::{Point, SeriesKey, Timestamp};
use prost::Message;
use std::time::Duration;

/// Largest decoded (decompressed) body accepted: well above what Prometheus (2,000
/// samples a request by default) or vmagent (8 MiB blocks) send.
pub const MAX_DECODED_BODY: usize = 64 * 1024 * 1024;

/// The bits of Prometheus's stale marker, a NaN distinct from the usual one
/// (`prometheus/model/value.StaleNaN`).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The label that holds the metric name.
pub const METRIC_LABEL: &str = "__name__";

/// Most refused series an answer names one by one (it counts the rest).
pub const MAX_NAMED_SERIES: usize = 10;

/// Longest description of a refused series in an answer, in bytes (a label value may be
/// 1 KiB; the answer names the series, it need not repeat it whole).
const MAX_SERIES_TEXT: usize = 200;

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

impl TimeSeries {
    /// A series of `labels` (`__name__` among them) and `(timestamp ms, value)` samples, as a
    /// sender builds one.
    pub fn new(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: labels
                .iter()
                .map(|(name, value)| Label {
                    name: name.to_string(),
                    value: value.to_string(),
                })
                .collect(),
            samples: samples
                .iter()
                .map(|&(timestamp, value)| Sample { value, timestamp })
                .collect(),
        }
    }
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// Why the request's headers say it is not remote write 1.0 in snappy, or `None`. Remote
/// write 2.0 names its message in `Content-Type` (`proto=io.prometheus.write.v2.Request`);
/// refusing it (415) makes a 2.0 sender fall back to 1.0.
pub fn unsupported(content_type: Option<&str>, content_encoding: Option<&str>) -> Option<String> {
    if let Some(proto) = content_type
        .and_then(|t| t.split(';').find_map(|p| p.trim().strip_prefix("proto=")))
        .filter(|proto| proto.trim_matches('"') != "prometheus.WriteRequest")
    {
        return Some(format!(
            "unsupported remote write message {proto}: send remote write 1.0 \
             (prometheus.WriteRequest)"
        ));
    }
    let encoding = content_encoding.map(str::trim).unwrap_or("snappy");
    (!encoding.eq_ignore_ascii_case("snappy"))
        .then(|| format!("invalid Content-Encoding {encoding:?}: remote write bodies are snappy"))
}

/// The `WriteRequest` in a raw-snappy `body`. Refused (invalid input, naming what is wrong):
/// bad snappy, a decoded length over [`MAX_DECODED_BODY`], bad protobuf.
pub fn decode_body(body: &[u8]) -> Result<WriteRequest> {
    let invalid = |reason: String| Error::invalid("body", reason);
    let length =
        snap::raw::decompress_len(body).map_err(|e| invalid(format!("not raw snappy ({e})")))?;
    if length > MAX_DECODED_BODY {
        return Err(invalid(format!(
            "decodes to {length} bytes, more than {MAX_DECODED_BODY}"
        )));
    }
    let decoded = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| invalid(format!("not raw snappy ({e})")))?;
    WriteRequest::decode(decoded.as_slice())
        .map_err(|e| invalid(format!("not a remote write 1.0 WriteRequest ({e})")))
}

/// A series not stored, or stored only in part.
#[derive(Clone, Debug, PartialEq)]
pub struct Refused {
    /// The series as sent, `metric{name="value",...}`, shortened when long.
    pub series: String,
    pub reason: RejectReason,
    /// What was wrong, e.g. `invalid label __meta: names starting with '__' are reserved`.
    pub error: String,
    /// Samples of the series not stored for this reason.
    pub samples: u64,
    /// Samples of the series stored all the same (those with a good timestamp).
    pub stored: u64,
}

/// A request turned into points, with what was left out and why.
#[derive(Debug, Default)]
pub struct Decoded {
    /// What to store, in the order sent.
    pub points: Vec<Point>,
    /// Series in the request.
    pub series: usize,
    /// Stale markers skipped.
    pub stale_markers: u64,
    /// Other NaN and ±Inf samples skipped.
    pub non_finite: u64,
    /// Series refused, or stored in part, in the order sent.
    pub refused: Vec<Refused>,
}

impl Decoded {
    /// The 400 message when a series was refused (the first [`MAX_NAMED_SERIES`] named, the
    /// rest counted), or `None` when every series was stored.
    pub fn refusal(&self) -> Option<String> {
        if self.refused.is_empty() {
            return None;
        }
        let partly = self.refused.iter().filter(|r| r.stored > 0).count();
        let mut named: Vec<String> = self
            .refused
            .iter()
            .take(MAX_NAMED_SERIES)
            .map(|r| format!("series {}: {}", r.series, r.error))
            .collect();
        if self.refused.len() > MAX_NAMED_SERIES {
            named.push(format!(
                "and {} more",
                self.refused.len() - MAX_NAMED_SERIES
            ));
        }
        Some(format!(
            "remote write: {} of {} series not stored, {partly} stored in part, {} samples \
             written: {}",
            self.refused.len() - partly,
            self.series,
            self.points.len(),
            named.join("; ")
        ))
    }

    /// Counts what was stored (source `remote_write`) and every sample left out, by reason.
    /// Stale markers are not rejects: they count apart.
    pub fn count_in(&self, stats: &IngestStats) {
        if !self.points.is_empty() {
            stats.count_accepted(Source::RemoteWrite, self.points.len() as u64);
        }
        for refused in &self.refused {
            stats.count_rejected_n(refused.reason, refused.samples);
        }
        stats.count_rejected_n(RejectReason::NonFiniteValue, self.non_finite);
        stats.count_stale_markers(self.stale_markers);
    }
}

/// The points of `request`, timestamps checked at `now` with `max_future` (see the module
/// comment for what is stored, skipped and refused).
pub fn to_points(request: &WriteRequest, now: Timestamp, max_future: Duration) -> Decoded {
    let mut decoded = Decoded {
        series: request.timeseries.len(),
        ..Decoded::default()
    };
    for series in &request.timeseries {
        let key = match series_key(&series.labels) {
            Ok(key) => key,
            Err((reason, error)) => {
                decoded.refused.push(Refused {
                    series: describe(&series.labels),
                    reason,
                    error,
                    samples: series.samples.len() as u64,
                    stored: 0,
                });
                continue;
            }
        };
        let before = decoded.points.len();
        let mut bad_time: Option<(String, u64)> = None;
        for sample in &series.samples {
            if sample.value.to_bits() == STALE_NAN_BITS {
                decoded.stale_markers += 1;
            } else if !sample.value.is_finite() {
                decoded.non_finite += 1;
            } else if let Some(why) = rule_error(sample.timestamp, now, max_future) {
                bad_time.get_or_insert((why, 0)).1 += 1;
            } else {
                decoded.points.push(Point {
                    series: key.clone(),
                    timestamp: Timestamp(sample.timestamp),
                    value: sample.value,
                });
            }
        }
        if let Some((why, samples)) = bad_time {
            let error = if samples == 1 {
                why
            } else {
                format!("{samples} samples refused, the first: {why}")
            };
            decoded.refused.push(Refused {
                series: key.as_str().to_string(),
                reason: RejectReason::BadTimestamp,
                error,
                samples,
                stored: (decoded.points.len() - before) as u64,
            });
        }
    }
    decoded
}

/// The series a label set names: `__name__` the metric, the other non-empty labels its
/// labels. The error is the reject reason and what was wrong.
fn series_key(labels: &[Label]) -> std::result::Result<SeriesKey, (RejectReason, String)> {
    let mut metric: Option<&str> = None;
    let mut others = Vec::with_capacity(labels.len());
    for label in labels {
        if label.name == METRIC_LABEL {
            if metric.replace(&label.value).is_some() {
                return Err((
                    RejectReason::BadLabel,
                    format!("invalid label {METRIC_LABEL}: given more than once"),
                ));
            }
        } else if !label.value.is_empty() {
            others.push((label.name.as_str(), label.value.as_str()));
        }
    }
    let Some(metric) = metric else {
        return Err((
            RejectReason::MissingField,
            format!("no {METRIC_LABEL} label (the metric name)"),
        ));
    };
    SeriesKey::with_labels(metric, others).map_err(|e| {
        let reason = match &e {
            Error::InvalidInput { field, .. } if field == "metric_name" => RejectReason::InvalidId,
            _ => RejectReason::BadLabel,
        };
        (reason, e.to_string())
    })
}

/// A label set as Prometheus writes it, `metric{name="value",...}` in the order sent (with
/// `__name__` as a label when it is missing or repeated), at most [`MAX_SERIES_TEXT`] bytes.
fn describe(labels: &[Label]) -> String {
    let names = labels.iter().filter(|l| l.name == METRIC_LABEL).count();
    let mut text = String::new();
    if names == 1 {
        text.push_str(
            labels
                .iter()
                .find(|l| l.name == METRIC_LABEL)
                .map_or("", |l| l.value.as_str()),
        );
    }
    let shown = labels
        .iter()
        .filter(|l| names != 1 || l.name != METRIC_LABEL);
    text.push('{');
    for (i, label) in shown.enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&label.name);
        text.push_str("=\"");
        text.push_str(&label.value.replace('\\', "\\\\").replace('"', "\\\""));
        text.push('"');
    }
    text.push('}');
    if text.len() > MAX_SERIES_TEXT {
        let mut end = MAX_SERIES_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::timestamp::DEFAULT_MAX_FUTURE;

    const NOW: Timestamp = Timestamp(1_764_000_000_000);

    fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries::new(labels, samples)
    }

    /// `request` as Prometheus sends it: protobuf, then raw snappy.
    fn body(request: &WriteRequest) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .expect("compress")
    }

    fn decode(timeseries: Vec<TimeSeries>) -> Decoded {
        let request = WriteRequest { timeseries };
        let decoded = decode_body(&body(&request)).expect("decodes");
        // Bytes, not values: NaN is not equal to itself, and its bits must survive.
        assert_eq!(decoded.encode_to_vec(), request.encode_to_vec());
        to_points(&decoded, NOW, DEFAULT_MAX_FUTURE)
    }

    fn stale() -> f64 {
        f64::from_bits(STALE_NAN_BITS)
    }

    #[test]
    fn name_is_the_metric_and_other_labels_are_labels() {
        let t = NOW.0 - 1000;
        let d = decode(vec![
            series(
                &[("__name__", "up"), ("job", "node"), ("instance", "a:9100")],
                &[(t, 1.0), (t + 1000, 0.0)],
            ),
            series(
                &[("job", "node"), ("__name__", "up"), ("instance", "b:9100")],
                &[(t, 1.0)],
            ),
        ]);
        assert!(d.refused.is_empty(), "{:?}", d.refused);
        assert_eq!(d.refusal(), None);
        assert_eq!(d.points.len(), 3);
        let a = &d.points[0].series;
        assert_eq!(a.metric_name(), "up");
        assert_eq!(a.as_str(), r#"up{instance="a:9100",job="node"}"#);
        assert_eq!(
            (d.points[1].timestamp, d.points[1].value),
            (Timestamp(t + 1000), 0.0)
        );
        assert_eq!(d.points[2].series.label("instance"), Some("b:9100"));
        assert_ne!(d.points[2].series, *a);
    }

    #[test]
    fn empty_label_values_mean_no_label() {
        let d = decode(vec![series(
            &[("__name__", "up"), ("env", "")],
            &[(NOW.0, 1.0)],
        )]);
        assert_eq!(d.points[0].series.as_str(), "up");
    }

    #[test]
    fn stale_markers_are_skipped_and_counted() {
        let d = decode(vec![series(
            &[("__name__", "up")],
            &[(NOW.0 - 2, 1.0), (NOW.0 - 1, stale()), (NOW.0, 1.0)],
        )]);
        assert_eq!(d.points.len(), 2);
        assert_eq!((d.stale_markers, d.non_finite), (1, 0));
        assert_eq!(d.refusal(), None);
    }

    #[test]
    fn other_non_finite_values_are_skipped_and_counted_without_refusing() {
        let d = decode(vec![series(
            &[("__name__", "q")],
            &[
                (1, f64::NAN),
                (2, f64::INFINITY),
                (3, f64::NEG_INFINITY),
                (4, 2.5),
            ],
        )]);
        assert_eq!(d.points.len(), 1);
        assert_eq!((d.stale_markers, d.non_finite), (0, 3));
        assert_eq!(d.refusal(), None);
    }

    #[test]
    fn missing_name_refuses_the_series_and_keeps_the_others() {
        let d = decode(vec![
            series(&[("job", "x")], &[(NOW.0, 1.0), (NOW.0 + 1, 2.0)]),
            series(&[("__name__", "up"), ("job", "x")], &[(NOW.0, 1.0)]),
        ]);
        assert_eq!(d.points.len(), 1);
        assert_eq!(d.refused.len(), 1);
        let r = &d.refused[0];
        assert_eq!(r.reason, RejectReason::MissingField);
        assert_eq!((r.samples, r.stored), (2, 0));
        assert_eq!(r.series, r#"{job="x"}"#);
        let message = d.refusal().expect("a refusal");
        assert!(
            message.starts_with("remote write: 1 of 2 series not stored, 0 stored in part, 1 samples written: series {job=\"x\"}: no __name__ label"),
            "{message}"
        );
    }

    #[test]
    fn a_label_breaking_a_rule_refuses_the_series_naming_it() {
        let d = decode(vec![
            series(&[("__name__", "up"), ("__meta_x", "y")], &[(NOW.0, 1.0)]),
            series(&[("__name__", "up"), ("1st", "y")], &[(NOW.0, 1.0)]),
            series(&[("__name__", "a|b")], &[(NOW.0, 1.0)]),
            series(&[("__name__", "up"), ("__name__", "down")], &[(NOW.0, 1.0)]),
        ]);
        assert!(d.points.is_empty());
        let reasons: Vec<RejectReason> = d.refused.iter().map(|r| r.reason).collect();
        use RejectReason::{BadLabel, InvalidId};
        assert_eq!(reasons, [BadLabel, BadLabel, InvalidId, BadLabel]);
        assert!(
            d.refused[0].error.contains("reserved"),
            "{}",
            d.refused[0].error
        );
        assert!(
            d.refused[1].error.contains("\"1st\""),
            "{}",
            d.refused[1].error
        );
        assert!(
            d.refused[2].error.contains("metric_name"),
            "{}",
            d.refused[2].error
        );
        assert_eq!(d.refused[3].series, r#"{__name__="up",__name__="down"}"#);
    }

    #[test]
    fn bad_timestamps_refuse_those_samples_only() {
        let d = decode(vec![series(
            &[("__name__", "up")],
            &[(-5, 1.0), (NOW.0, 2.0), (NOW.0 + 3 * 86_400_000, 3.0)],
        )]);
        assert_eq!(d.points.len(), 1);
        let r = &d.refused[0];
        assert_eq!(
            (r.reason, r.samples, r.stored),
            (RejectReason::BadTimestamp, 2, 1)
        );
        assert!(
            r.error
                .starts_with("2 samples refused, the first: timestamp"),
            "{}",
            r.error
        );
        let message = d.refusal().expect("a refusal");
        assert!(
            message.contains("0 of 1 series not stored, 1 stored in part"),
            "{message}"
        );
    }

    #[test]
    fn the_answer_names_the_first_refused_series_and_counts_the_rest() {
        let many = (0..MAX_NAMED_SERIES + 3)
            .map(|i| series(&[("job", &i.to_string())], &[(NOW.0, 1.0)]))
            .collect();
        let message = decode(many).refusal().expect("a refusal");
        assert!(message.ends_with("; and 3 more"), "{message}");
        assert_eq!(message.matches("series {job=").count(), MAX_NAMED_SERIES);
    }

    #[test]
    fn long_series_are_shortened_in_answers() {
        let long = "v".repeat(1000);
        let d = decode(vec![series(&[("a", &long)], &[(NOW.0, 1.0)])]);
        assert!(d.refused[0].series.len() <= MAX_SERIES_TEXT + '…'.len_utf8());
        assert!(d.refused[0].series.ends_with('…'));
    }

    #[test]
    fn counts_go_to_the_ingest_stats() {
        let d = decode(vec![
            series(
                &[("__name__", "up")],
                &[(NOW.0, 1.0), (NOW.0 + 1, stale()), (NOW.0 + 2, f64::NAN)],
            ),
            series(&[("job", "x")], &[(NOW.0, 1.0), (NOW.0 + 1, 1.0)]),
        ]);
        let stats = IngestStats::default();
        d.count_in(&stats);
        assert_eq!(stats.accepted_from(Source::RemoteWrite), 1);
        assert_eq!(stats.accepted_from(Source::Http), 0);
        assert_eq!(stats.stale_markers(), 1);
        let rejected: std::collections::BTreeMap<_, _> = stats.rejected().into_iter().collect();
        assert_eq!(rejected["missing_field"], 2);
        assert_eq!(rejected["non_finite_value"], 1);
    }

    #[test]
    fn bad_snappy_and_bad_protobuf_are_refused_naming_which() {
        let e = decode_body(b"\xff\xff\xff\xff\xff\xff")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid body: not raw snappy"), "{e}");
        // The framed format (what `snap::write::FrameEncoder` writes) is not raw snappy.
        let framed = b"\xff\x06\x00\x00sNaPpY";
        let e = decode_body(framed).unwrap_err().to_string();
        assert!(e.contains("not raw snappy"), "{e}");
        let not_protobuf = snap::raw::Encoder::new()
            .compress_vec(b"\x0a\xff")
            .expect("compress");
        let e = decode_body(&not_protobuf).unwrap_err().to_string();
        assert!(
            e.starts_with("invalid body: not a remote write 1.0 WriteRequest"),
            "{e}"
        );
        let e = decode_body(b"").unwrap_err().to_string();
        assert!(e.contains("not raw snappy"), "{e}");
    }

    #[test]
    fn an_oversized_decoded_length_is_refused_before_decompressing() {
        // A varint announcing MAX_DECODED_BODY + 1 bytes, then (almost) nothing.
        let mut header = Vec::new();
        let mut n = MAX_DECODED_BODY as u64 + 1;
        while n >= 0x80 {
            header.push((n as u8) | 0x80);
            n >>= 7;
        }
        header.push(n as u8);
        header.push(0);
        let e = decode_body(&header).unwrap_err().to_string();
        assert!(
            e.contains(&format!("decodes to {} bytes", MAX_DECODED_BODY + 1)),
            "{e}"
        );
        // Exactly the bound is still decoded.
        let full = snap::raw::Encoder::new()
            .compress_vec(&vec![0u8; MAX_DECODED_BODY])
            .expect("compress");
        let e = decode_body(&full).unwrap_err().to_string();
        assert!(e.contains("WriteRequest"), "{e}");
    }

    #[test]
    fn unknown_fields_exemplars_and_histograms_are_skipped() {
        // A TimeSeries with an exemplar (3) and a native histogram (4), each an empty
        // message, as field 1 of the request; then metadata (3) naming `up` (field 2).
        let mut timeseries = series(&[("__name__", "up")], &[(NOW.0, 1.0)]).encode_to_vec();
        timeseries.extend_from_slice(b"\x1a\x00\x22\x00");
        let mut bytes = vec![0x0a, timeseries.len() as u8];
        bytes.extend_from_slice(&timeseries);
        bytes.extend_from_slice(b"\x1a\x04\x12\x02up");
        let body = snap::raw::Encoder::new()
            .compress_vec(&bytes)
            .expect("compress");
        let request = decode_body(&body).expect("decodes");
        let d = to_points(&request, NOW, DEFAULT_MAX_FUTURE);
        assert_eq!(d.points.len(), 1);
        assert_eq!(d.points[0].series.as_str(), "up");
    }

    #[test]
    fn only_snappy_remote_write_1_is_taken() {
        assert_eq!(unsupported(None, None), None);
        assert_eq!(
            unsupported(Some("application/x-protobuf"), Some("snappy")),
            None
        );
        assert_eq!(
            unsupported(
                Some("application/x-protobuf;proto=prometheus.WriteRequest"),
                None
            ),
            None
        );
        let v2 = unsupported(
            Some("application/x-protobuf;proto=io.prometheus.write.v2.Request"),
            Some("snappy"),
        )
        .expect("refused");
        assert!(v2.contains("io.prometheus.write.v2.Request"), "{v2}");
        let gzip = unsupported(None, Some("gzip")).expect("refused");
        assert!(gzip.contains("\"gzip\""), "{gzip}");
    }
}
