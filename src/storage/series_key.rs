//! The name of one series: a metric name plus a set of labels (`device_id` is one label among
//! others), with the limits every path into the store checks, the canonical text, and the
//! byte form the WAL and segments store.
//!
//! Two series differ when their metric or any label differs: readings tagged `room=lab` and
//! `room=kitchen` are two series, never merged. Labels are kept sorted by name, so a key has
//! one form whatever order its labels arrived in.
//!
//! Canonical text (what logs, `/series` and the ring of a labelled series use) is
//! Prometheus's: `temperature{device_id="sensor_1",room="lab"}`, names sorted, values with
//! `\` and `"` escaped (values hold no control characters); a series without labels is its
//! bare metric name.
//!
//! Stored form (inside the WAL's and segments' u16-length-prefixed key field):
//! - version 1 (files written before labels): the UTF-8 bytes `device_id|metric_name`.
//! - version 2: a 0x00 byte (a version-1 key never starts with one: control characters were
//!   always refused), then
//!   1. metric length u16 [2 bytes] and its UTF-8 bytes,
//!   2. label count u8 [1 byte],
//!   3. per label, sorted by name: name length u16 [2 bytes], name, value length u16 [2 bytes],
//!      value.
//!
//!   Within the limits below a key is at most 1 + 2 + 256 + 1 + 32 × (4 + 256 + 1024) =
//!   41,348 bytes, so its length always fits the u16 prefix.
//!
//! [`SeriesKey::decode`] reads both, so a store written by an older build opens unchanged.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, OnceLock};

/// Longest accepted metric name or `device_id` value, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Longest accepted label name, in bytes.
pub const MAX_LABEL_NAME_LEN: usize = 256;
/// Longest accepted label value (other than `device_id`), in bytes.
pub const MAX_LABEL_VALUE_LEN: usize = 1024;
/// Most labels one series may carry, `device_id` included.
pub const MAX_LABELS: usize = 32;
/// The label the original API's `device_id` field names.
pub const DEVICE_LABEL: &str = "device_id";

/// The first byte of a version-2 stored key.
const STORED_V2: u8 = 0;

/// A metric name and its sorted labels. Cloning is cheap (shared).
#[derive(Clone)]
pub struct SeriesKey(Arc<Parts>);

struct Parts {
    metric: String,
    /// Sorted by name, names unique.
    labels: Vec<(String, String)>,
    /// The canonical text, built once.
    text: String,
    /// The text hashed once, with this process's random key: maps, shards and groupings
    /// of a hot write path hash a key many times, and keys with several labels are long.
    hash: u64,
}

/// A hasher for maps keyed by [`SeriesKey`] (or by another value that is already a keyed
/// hash): it takes the one `u64` written as the hash, so a key is not hashed again on every
/// map operation. Safe against chosen collisions only because what it is given was hashed
/// with this process's random key (see [`SeriesKey::hash_code`]).
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not used by `SeriesKey` or `u64`; a plain mix keeps other callers correct.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Builds [`KeyHasher`]s: `HashMap<SeriesKey, V, KeyHashState>`.
pub type KeyHashState = BuildHasherDefault<KeyHasher>;

/// The keyed hasher of every [`SeriesKey`]'s cached hash: random per process (std's
/// SipHash), so keys from outside cannot be chosen to collide.
fn key_hasher() -> &'static RandomState {
    static HASHER: OnceLock<RandomState> = OnceLock::new();
    HASHER.get_or_init(RandomState::new)
}

impl SeriesKey {
    /// The original API's series: `metric_name{device_id="device_id"}`.
    pub fn new(device_id: &str, metric_name: &str) -> Result<SeriesKey> {
        check_device(device_id)?;
        check_metric(metric_name)?;
        Ok(SeriesKey::build(
            metric_name.to_string(),
            vec![(DEVICE_LABEL.to_string(), device_id.to_string())],
        ))
    }

    /// A series of `metric` with `labels` in any order. Refused, naming the label: a
    /// duplicate name, more than [`MAX_LABELS`], or a name or value outside the limits
    /// (names: ASCII letters, digits, `_`, `.`, `-`, `:`, not starting with a digit or `__`,
    /// at most [`MAX_LABEL_NAME_LEN`] bytes; values: non-empty, no control characters, at most
    /// [`MAX_LABEL_VALUE_LEN`] bytes; `device_id` as [`SeriesKey::new`] checks it).
    pub fn with_labels<I, N, V>(metric: &str, labels: I) -> Result<SeriesKey>
    where
        I: IntoIterator<Item = (N, V)>,
        N: Into<String>,
        V: Into<String>,
    {
        check_metric(metric)?;
        let mut sorted: Vec<(String, String)> = labels
            .into_iter()
            .map(|(n, v)| (n.into(), v.into()))
            .collect();
        if sorted.len() > MAX_LABELS {
            return Err(Error::invalid(
                "labels",
                format!("{} labels, at most {MAX_LABELS} allowed", sorted.len()),
            ));
        }
        sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for pair in sorted.windows(2) {
            if pair[0].0 == pair[1].0 {
                return Err(Error::invalid(
                    format!("label {}", pair[0].0),
                    "given more than once",
                ));
            }
        }
        for (name, value) in &sorted {
            check_label(name, value)?;
        }
        Ok(SeriesKey::build(metric.to_string(), sorted))
    }

    fn build(metric: String, labels: Vec<(String, String)>) -> SeriesKey {
        let text = canonical_text(&metric, &labels);
        let hash = key_hasher().hash_one(text.as_str());
        SeriesKey(Arc::new(Parts {
            metric,
            labels,
            text,
            hash,
        }))
    }

    /// The key's hash (random per process, never stored or sent): equal keys have equal
    /// hashes.
    pub fn hash_code(&self) -> u64 {
        self.0.hash
    }

    /// The metric name.
    pub fn metric_name(&self) -> &str {
        &self.0.metric
    }

    /// The `device_id` label's value, or `""` for a series without one.
    pub fn device_id(&self) -> &str {
        self.label(DEVICE_LABEL).unwrap_or("")
    }

    /// Every label, sorted by name.
    pub fn labels(&self) -> &[(String, String)] {
        &self.0.labels
    }

    /// The value of label `name`, if the series has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.0
            .labels
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0.labels[i].1.as_str())
    }

    /// The labels other than `device_id`, sorted by name.
    pub fn extra_labels(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .labels
            .iter()
            .filter(|(n, _)| n != DEVICE_LABEL)
            .map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The labels other than `device_id`, as the `labels` object of the JSON forms.
    pub fn extra_label_map(&self) -> BTreeMap<String, String> {
        self.extra_labels()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The series of `metric` with this key's labels: only the metric is checked, the labels
    /// were when this key was built (one line-protocol line's fields share its tags).
    pub fn with_metric(&self, metric: &str) -> Result<SeriesKey> {
        check_metric(metric)?;
        Ok(SeriesKey::build(metric.to_string(), self.0.labels.clone()))
    }

    /// Whether the series is one the original API can name: a `device_id` and no other label.
    pub fn is_device_only(&self) -> bool {
        matches!(self.0.labels.as_slice(), [(name, _)] if name == DEVICE_LABEL)
    }

    /// The canonical text, `metric{a="x",device_id="d"}`.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// Bytes [`SeriesKey::encode`] appends (the current, version-2 form).
    pub fn encoded_len(&self) -> usize {
        1 + 2
            + self.0.metric.len()
            + 1
            + self
                .0
                .labels
                .iter()
                .map(|(n, v)| 4 + n.len() + v.len())
                .sum::<usize>()
    }

    /// Appends the version-2 stored form (see the module docs).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(STORED_V2);
        put_str(out, &self.0.metric);
        // At most MAX_LABELS (32) labels, checked when the key was built.
        out.push(self.0.labels.len() as u8);
        for (name, value) in &self.0.labels {
            put_str(out, name);
            put_str(out, value);
        }
    }

    /// A key from its stored form, either version (see the module docs), checked against the
    /// same limits as a key from outside: a file is input too.
    pub fn decode(bytes: &[u8]) -> std::result::Result<SeriesKey, String> {
        match bytes.split_first() {
            Some((&STORED_V2, rest)) => decode_v2(rest),
            _ => {
                let joined = std::str::from_utf8(bytes)
                    .map_err(|e| format!("series key is not UTF-8: {e}"))?;
                let (device, metric) = joined
                    .split_once('|')
                    .ok_or_else(|| format!("series key {joined:?} has no '|'"))?;
                SeriesKey::new(device, metric)
                    .map_err(|e| format!("bad series key {joined:?}: {e}"))
            }
        }
    }
}

/// A series as JSON, on the API and between nodes: the original's `device_id` and
/// `metric_name`, and `labels` holding every other label (left out when there are none, so a
/// device-only series has exactly the original's shape). `device_id` is `""` for a series
/// without one.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesFields {
    #[serde(default)]
    pub device_id: String,
    pub metric_name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl SeriesFields {
    /// The key these fields name, checked as every key from outside is.
    pub fn key(&self) -> Result<SeriesKey> {
        // A series with neither (a bare metric, as Prometheus allows) has no labels at all.
        if self.labels.is_empty() && !self.device_id.is_empty() {
            return SeriesKey::new(&self.device_id, &self.metric_name);
        }
        let device =
            (!self.device_id.is_empty()).then_some((DEVICE_LABEL, self.device_id.as_str()));
        SeriesKey::with_labels(
            &self.metric_name,
            device
                .into_iter()
                .chain(self.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        )
    }
}

impl From<&SeriesKey> for SeriesFields {
    fn from(key: &SeriesKey) -> SeriesFields {
        SeriesFields {
            device_id: key.device_id().to_string(),
            metric_name: key.metric_name().to_string(),
            labels: key.extra_label_map(),
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Every stored string is at most MAX_LABEL_VALUE_LEN bytes, checked on build.
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn decode_v2(bytes: &[u8]) -> std::result::Result<SeriesKey, String> {
    let mut rest = bytes;
    let metric = take_str(&mut rest, "metric")?;
    let (&count, tail) = rest
        .split_first()
        .ok_or("series key cut short before its label count")?;
    rest = tail;
    let mut labels = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let name = take_str(&mut rest, "label name")?;
        let value = take_str(&mut rest, "label value")?;
        labels.push((name, value));
    }
    if !rest.is_empty() {
        return Err(format!(
            "series key has {} bytes after its labels",
            rest.len()
        ));
    }
    SeriesKey::with_labels(&metric, labels).map_err(|e| format!("bad series key: {e}"))
}

/// A u16-length-prefixed UTF-8 string from the front of `rest`, which moves past it.
fn take_str(rest: &mut &[u8], what: &str) -> std::result::Result<String, String> {
    let (len, tail) = rest
        .split_first_chunk::<2>()
        .ok_or_else(|| format!("series key cut short before the {what}'s length"))?;
    let len = usize::from(u16::from_le_bytes(*len));
    if tail.len() < len {
        return Err(format!("series key cut short in the {what}"));
    }
    let (text, tail) = tail.split_at(len);
    *rest = tail;
    String::from_utf8(text.to_vec()).map_err(|e| format!("series key {what} is not UTF-8: {e}"))
}

fn canonical_text(metric: &str, labels: &[(String, String)]) -> String {
    let mut text = String::with_capacity(
        metric.len()
            + labels
                .iter()
                .map(|(n, v)| n.len() + v.len() + 4)
                .sum::<usize>()
            + 2,
    );
    text.push_str(metric);
    if labels.is_empty() {
        return text;
    }
    text.push('{');
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(name);
        text.push_str("=\"");
        for c in value.chars() {
            if c == '\\' || c == '"' {
                text.push('\\');
            }
            text.push(c);
        }
        text.push('"');
    }
    text.push('}');
    text
}

fn check_metric(metric: &str) -> Result<()> {
    check_name("metric_name", metric, MAX_NAME_LEN)
}

fn check_device(device: &str) -> Result<()> {
    check_name(DEVICE_LABEL, device, MAX_NAME_LEN)
}

/// A metric name or `device_id`: non-empty, bounded, no `|` (the version-1 separator), no
/// control characters.
fn check_name(field: &str, name: &str, max: usize) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if name.len() > max {
        return Err(Error::invalid(field, format!("longer than {max} bytes")));
    }
    if name.contains('|') {
        return Err(Error::invalid(field, "must not contain '|'"));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// Whether one label is within the limits [`SeriesKey::with_labels`] checks; the error names
/// the label.
pub fn check_label(name: &str, value: &str) -> Result<()> {
    if name == DEVICE_LABEL {
        return check_device(value);
    }
    let field = format!("label {name}");
    if name.is_empty() {
        return Err(Error::invalid("label name", "must not be empty"));
    }
    if name.len() > MAX_LABEL_NAME_LEN {
        return Err(Error::invalid(
            "label name",
            format!("longer than {MAX_LABEL_NAME_LEN} bytes"),
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':');
    if !name.chars().all(allowed) || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(Error::invalid(
            format!("label name {name:?}"),
            "must be ASCII letters, digits, '_', '.', '-' or ':', not starting with a digit",
        ));
    }
    if name.starts_with("__") {
        return Err(Error::invalid(
            &field,
            "names starting with '__' are reserved (__name__ is the metric)",
        ));
    }
    if value.is_empty() {
        return Err(Error::invalid(&field, "value must not be empty"));
    }
    if value.len() > MAX_LABEL_VALUE_LEN {
        return Err(Error::invalid(
            &field,
            format!("value longer than {MAX_LABEL_VALUE_LEN} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(
            &field,
            "value must not contain control characters",
        ));
    }
    Ok(())
}

impl PartialEq for SeriesKey {
    fn eq(&self, other: &SeriesKey) -> bool {
        // The text is the metric then the labels; label names hold none of `{`, `=`, `"`
        // or `,`, and values are escaped, so the labels' part is unambiguous once the
        // metric's length is known (a metric may hold `{` and `"`, so the text alone is
        // not). One contiguous compare instead of one per label string.
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.hash == other.0.hash
                && self.0.metric.len() == other.0.metric.len()
                && self.0.text == other.0.text)
    }
}

impl Eq for SeriesKey {}

impl Hash for SeriesKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

/// Device first, then metric, then the other labels: listings keep the order the original
/// `device|metric` keys had.
impl Ord for SeriesKey {
    fn cmp(&self, other: &SeriesKey) -> Ordering {
        self.device_id()
            .cmp(other.device_id())
            .then_with(|| self.0.metric.cmp(&other.0.metric))
            .then_with(|| self.0.labels.cmp(&other.0.labels))
    }
}

impl PartialOrd for SeriesKey {
    fn partial_cmp(&self, other: &SeriesKey) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.text)
    }
}

impl fmt::Debug for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SeriesKey({})", self.0.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(key: &SeriesKey) -> Vec<u8> {
        let mut out = Vec::new();
        key.encode(&mut out);
        assert_eq!(out.len(), key.encoded_len());
        out
    }

    #[test]
    fn keys_sharing_a_text_stay_apart() {
        let labelled = SeriesKey::with_labels("a", [("b", "c")]).unwrap();
        let bare = SeriesKey::with_labels(r#"a{b="c"}"#, Vec::<(String, String)>::new()).unwrap();
        assert_eq!(labelled.as_str(), bare.as_str());
        assert_eq!(labelled.hash_code(), bare.hash_code());
        assert_ne!(labelled, bare);
        let again = SeriesKey::with_labels("a", [("b", "c")]).unwrap();
        assert_eq!(labelled, again);
        assert_eq!(labelled.hash_code(), again.hash_code());
        // Maps hash a key by its cached hash, as is, and still tell these apart.
        assert_eq!(
            KeyHashState::default().hash_one(&labelled),
            labelled.hash_code()
        );
        let mut map: std::collections::HashSet<SeriesKey, KeyHashState> = Default::default();
        map.extend([labelled, bare, again]);
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn the_original_series_is_a_metric_with_one_device_label() {
        let key = SeriesKey::new("sensor_1", "temperature").unwrap();
        assert_eq!(key.as_str(), r#"temperature{device_id="sensor_1"}"#);
        assert_eq!(key.device_id(), "sensor_1");
        assert_eq!(key.metric_name(), "temperature");
        assert!(key.is_device_only());
        let same = SeriesKey::with_labels("temperature", [("device_id", "sensor_1")]).unwrap();
        assert_eq!(key, same);
    }

    #[test]
    fn labels_are_sorted_escaped_and_distinguish_series() {
        let lab = SeriesKey::with_labels("t", [("room", "lab"), ("device_id", "d")]).unwrap();
        let kitchen =
            SeriesKey::with_labels("t", [("device_id", "d"), ("room", "kitchen")]).unwrap();
        assert_ne!(lab, kitchen);
        assert_eq!(lab.as_str(), r#"t{device_id="d",room="lab"}"#);
        assert!(!lab.is_device_only());
        assert_eq!(lab.extra_labels().collect::<Vec<_>>(), [("room", "lab")]);
        let odd = SeriesKey::with_labels("cpu", [("path", r#"C:\ "x""#)]).unwrap();
        assert_eq!(odd.as_str(), r#"cpu{path="C:\\ \"x\""}"#);
        assert_eq!(odd.device_id(), "");
        let bare = SeriesKey::with_labels("up", Vec::<(String, String)>::new()).unwrap();
        assert_eq!(bare.as_str(), "up");
    }

    #[test]
    fn limits_are_refused_naming_the_label() {
        let err = |labels: Vec<(String, String)>| {
            SeriesKey::with_labels("m", labels).unwrap_err().to_string()
        };
        let s = |n: &str, v: &str| (n.to_string(), v.to_string());
        assert!(err(vec![s("room", "a"), s("room", "b")]).contains("label room"));
        assert!(err(vec![s("__name__", "x")]).contains("reserved"));
        assert!(err(vec![s("9lives", "x")]).contains("not starting with a digit"));
        assert!(err(vec![s("a b", "x")]).contains("label name"));
        assert!(err(vec![s("room", "")]).contains("label room"));
        assert!(err(vec![s("room", "a\nb")]).contains("control"));
        assert!(err(vec![s("room", &"v".repeat(MAX_LABEL_VALUE_LEN + 1))]).contains("longer"));
        assert!(err(vec![s("device_id", "a|b")]).contains("device_id"));
        let many = (0..=MAX_LABELS).map(|i| s(&format!("l{i}"), "v")).collect();
        assert!(err(many).contains("at most 32"));
        assert!(SeriesKey::new("", "t").is_err());
        assert!(SeriesKey::new("a", "t\n").is_err());
        assert!(SeriesKey::new(&"x".repeat(MAX_NAME_LEN + 1), "t").is_err());
        assert!(SeriesKey::with_labels("host-name.ok", [("host-name.ok:x", "v")]).is_ok());
    }

    #[test]
    fn stored_form_round_trips_and_reads_version_1() {
        let longest: Vec<(String, String)> = (0..MAX_LABELS)
            .map(|i| {
                (
                    format!("{i:_>256}").replacen('_', "l", 1),
                    "v".repeat(MAX_LABEL_VALUE_LEN),
                )
            })
            .collect();
        let keys = [
            SeriesKey::new("sensor_1", "temperature").unwrap(),
            SeriesKey::with_labels("cpu", [("host", "a"), ("cpu", "cpu0")]).unwrap(),
            SeriesKey::with_labels(&"m".repeat(MAX_NAME_LEN), longest).unwrap(),
        ];
        for key in &keys {
            let bytes = stored(key);
            assert!(
                bytes.len() <= usize::from(u16::MAX),
                "{} bytes",
                bytes.len()
            );
            assert_eq!(SeriesKey::decode(&bytes).as_ref(), Ok(key));
        }
        let v1 = SeriesKey::decode(b"sensor_1|temperature").unwrap();
        assert_eq!(v1, keys[0]);
        assert!(SeriesKey::decode(b"no-separator").is_err());
        assert!(SeriesKey::decode(&[0xff, b'|', b'm'])
            .unwrap_err()
            .contains("UTF-8"));
    }

    #[test]
    fn a_damaged_stored_key_is_refused_never_misread() {
        let bytes = stored(&SeriesKey::with_labels("cpu", [("host", "a")]).unwrap());
        for cut in 1..bytes.len() {
            assert!(SeriesKey::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(b'x');
        assert!(SeriesKey::decode(&longer)
            .unwrap_err()
            .contains("after its labels"));
        // A label twice in a file is refused by the same check as one from outside.
        let mut twice = vec![0u8];
        put_str(&mut twice, "cpu");
        twice.push(2);
        for _ in 0..2 {
            put_str(&mut twice, "host");
            put_str(&mut twice, "a");
        }
        assert!(SeriesKey::decode(&twice)
            .unwrap_err()
            .contains("more than once"));
    }

    #[test]
    fn json_fields_keep_the_original_shape_for_device_only_series() {
        let plain = SeriesKey::new("s1", "t").unwrap();
        let json = serde_json::to_string(&SeriesFields::from(&plain)).unwrap();
        assert_eq!(json, r#"{"device_id":"s1","metric_name":"t"}"#);
        let labelled = SeriesKey::with_labels("t", [("device_id", "s1"), ("room", "lab")]).unwrap();
        let fields = SeriesFields::from(&labelled);
        assert_eq!(
            serde_json::to_string(&fields).unwrap(),
            r#"{"device_id":"s1","metric_name":"t","labels":{"room":"lab"}}"#
        );
        assert_eq!(fields.key().unwrap(), labelled);
        let no_device = SeriesKey::with_labels("cpu", [("host", "a")]).unwrap();
        assert_eq!(SeriesFields::from(&no_device).key().unwrap(), no_device);
        let both = SeriesFields {
            device_id: "a".into(),
            metric_name: "t".into(),
            labels: [("device_id".to_string(), "b".to_string())].into(),
        };
        assert!(both
            .key()
            .unwrap_err()
            .to_string()
            .contains("more than once"));
    }

    #[test]
    fn order_is_device_then_metric_then_labels() {
        let mut keys = [
            SeriesKey::new("b", "a").unwrap(),
            SeriesKey::new("a", "z").unwrap(),
            SeriesKey::with_labels("a", [("device_id", "b"), ("x", "1")]).unwrap(),
        ];
        keys.sort();
        let texts: Vec<&str> = keys.iter().map(SeriesKey::as_str).collect();
        assert_eq!(
            texts,
            [
                r#"z{device_id="a"}"#,
                r#"a{device_id="b"}"#,
                r#"a{device_id="b",x="1"}"#
            ]
        );
    }
}
