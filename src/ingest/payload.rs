//! MQTT payloads: one JSON message turned into validated [`Point`]s.
//!
//! The original wire contract (topic `iot/sensors/{metric_name}`) is one object, one reading:
//!
//! ```json
//! {"device_id":"sensor_1","metric_name":"temperature","timestamp":1710000000,"value":24.2}
//! ```
//!
//! A message is one of three **shapes**:
//!
//! 1. **Single reading**: an object with a `value`. Its metric is `metric_name`, or else the
//!    topic's `{metric}` level. Other numeric fields are ignored, as they always were.
//! 2. **Multi-field**: an object with neither `value` nor `metric_name`, e.g.
//!    `{"device_id":"d1","timestamp":1710000000,"temperature":21.5,"humidity":40}`. Every
//!    field holding a number (or a boolean) is one reading, its metric the field's name;
//!    the topic's `{metric}` level is not used. Objects, arrays and `null`s are skipped,
//!    strings are labels (below). An object with `metric_name` but no `value` is still the
//!    single shape, missing its value.
//! 3. **Array** of objects of shapes 1 and 2: `[{...},{...}]`, each element read as above
//!    with the same topic. One bad element rejects the **whole message**: the broker gets
//!    one ack per message, so a partly stored message could not be told apart from a
//!    fully stored one, and a publisher that fixes the bug can resend the message as is.
//!
//! Fields (`null` counts as absent everywhere):
//!
//! 1. `device_id`: string. Non-empty, at most [`MAX_NAME_LEN`](crate::storage::MAX_NAME_LEN)
//!    bytes, no `|` and no control characters (the rules of [`SeriesKey::new`]). Absent, it
//!    is the topic's `{device_id}` level; absent from both, the message is rejected. When the
//!    payload and the topic both name a device and differ, the message is rejected
//!    (`topic_mismatch`): a device id in the topic is usually what the broker's ACLs grant,
//!    so a payload claiming another device is refused rather than filed under either.
//! 2. `metric_name`: string. When present it **wins** over the topic's `{metric}` level:
//!    that is the original contract (a publisher may send `metric_name` to any
//!    `iot/sensors/...` topic), and existing publishers rely on it.
//! 3. `timestamp`: absent → the time of receipt. A JSON number is unix time in a unit
//!    chosen by its magnitude, i.e. by the digits of its integer part (integers are read
//!    exactly, fractions are kept to the millisecond):
//!    - below 10^10 (up to 10 digits, until 2286-11-20): seconds;
//!    - 10^10 ..< 10^13 (11 to 13 digits): milliseconds;
//!    - 10^13 ..< 10^16 (14 to 16 digits): microseconds;
//!    - 10^16 and above: nanoseconds.
//!
//!    So a millisecond timestamp before 1970-04-27 (below 10^10 ms) would be read as
//!    seconds; no sensor clock sends those. A JSON string is an RFC 3339 date-time
//!    (`2026-12-03T10:00:00Z`, `2026-12-03T11:00:00.250+01:00`; see
//!    [`parse_rfc3339_millis`]). Either way the result must lie in 1970..2262
//!    ([`crate::ingest::timestamp`]); the receive loop then applies `--max_future_s`.
//! 4. `value`: a finite JSON number, or a boolean stored as `1` / `0` (as InfluxDB's
//!    clients chart booleans; we store f64 only). A number sent as a string (`"23.5"`) is
//!    rejected rather than coerced, so a publisher's bug shows up in the reject counters
//!    instead of half-working.
//!
//! **Labels**, in both object shapes: every field holding a JSON string other than the four
//! above is a label of the reading's series, name the key and value the string
//! (`"unit":"C"` → `temperature{device_id="s1",unit="C"}`), and so is every entry of an
//! explicit `"labels":{"room":"lab"}` object (string values only: anything else is
//! `wrong_type` naming `labels.<name>`). The four used fields are never labels. Rejected
//! as [`RejectReason::BadLabel`], naming the key: a key that is not a label name (see
//! [`check_label`](crate::storage::series_key::check_label); publishers choose JSON keys,
//! so a bad one is refused, never rewritten), a value empty, over
//! [`MAX_LABEL_VALUE_LEN`](crate::storage::series_key::MAX_LABEL_VALUE_LEN) bytes or with
//! control characters, a name given both as a field and in `labels`, and more than
//! [`MAX_LABELS`] labels counting `device_id`.
//!
//! Other unknown fields of the single shape (numbers, booleans, objects, arrays) are
//! ignored, so devices may send extras such as `"battery"`. A field that is used (the four
//! above, and a multi-field reading) given twice is rejected as ambiguous.
//!
//! Bounds: a message is at most [`MAX_PAYLOAD_BYTES`] and yields at most
//! [`MAX_READINGS_PER_MESSAGE`] readings. Every rejection carries a [`RejectReason`]
//! (counted per reason, since MQTT cannot tell the publisher) and a detail that names the
//! field, and the element of an array.

use crate::civil::parse_rfc3339_millis;
use crate::error::Error;
use crate::ingest::timestamp::calendar_error;
use crate::ingest::topic::{TopicLayouts, TopicValues};
use crate::storage::{Point, SeriesKey, Timestamp, DEVICE_LABEL, MAX_LABELS};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::error::Category;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest accepted payload, in bytes: room for [`MAX_READINGS_PER_MESSAGE`] readings of
/// about 100 bytes each. Anything larger is a publisher bug or abuse, and refusing it early
/// bounds parsing work.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// Most readings one message may carry (array elements times their fields).
pub const MAX_READINGS_PER_MESSAGE: usize = 10_000;

/// First second the publisher refuses to send: 2200-01-01T00:00:00Z. The server accepts
/// up to 2262 (see [`crate::ingest::timestamp`]), but a device clock this far out is wrong.
pub const MAX_TIMESTAMP_SECONDS: f64 = 7_258_118_400.0;

/// Numeric timestamps below this are seconds ...
const SECONDS_BELOW: u128 = 10_000_000_000;
/// ... below this milliseconds ...
const MILLIS_BELOW: u128 = 10_000_000_000_000;
/// ... below this microseconds, and from here on nanoseconds.
const MICROS_BELOW: u128 = 10_000_000_000_000_000;

/// The fields with a meaning of their own; every other field of a multi-field object is a
/// metric.
const RESERVED_FIELDS: [&str; 4] = ["device_id", "metric_name", "timestamp", "value"];

/// The field holding an explicit object of labels.
const LABELS_FIELD: &str = "labels";

/// How many bytes of an offending value a rejection detail quotes.
const DETAIL_QUOTE_BYTES: usize = 64;

/// Why a payload was rejected. Each reason is counted separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The payload is not valid JSON (or not UTF-8).
    NotJson,
    /// Valid JSON of the wrong shape: not an object or an array of objects, a field of the
    /// wrong JSON type, or a duplicated field.
    WrongType,
    /// A required field is absent (or `null`), or an array is empty.
    MissingField,
    /// `device_id` or `metric_name` is the empty string.
    EmptyId,
    /// `device_id` or a metric name is too long or holds `|` or a control character.
    InvalidId,
    /// A value overflows to infinity.
    NonFiniteValue,
    /// `timestamp` is not a time in 1970..2262 (or too far ahead: `--max_future_s`).
    BadTimestamp,
    /// The payload is larger than [`MAX_PAYLOAD_BYTES`].
    Oversize,
    /// The message carries more than [`MAX_READINGS_PER_MESSAGE`] readings.
    TooManyReadings,
    /// The topic matches no `--topic` layout.
    Topic,
    /// The payload's `device_id` differs from the topic's `{device_id}` level.
    TopicMismatch,
    /// A label (a string-valued extra key or an entry of `labels`) has a bad name or value,
    /// is given twice, or the series would carry more than [`MAX_LABELS`] labels.
    BadLabel,
}

impl RejectReason {
    /// Every reason, e.g. to register one counter each.
    pub const ALL: [RejectReason; 12] = [
        RejectReason::NotJson,
        RejectReason::WrongType,
        RejectReason::MissingField,
        RejectReason::EmptyId,
        RejectReason::InvalidId,
        RejectReason::NonFiniteValue,
        RejectReason::BadTimestamp,
        RejectReason::Oversize,
        RejectReason::TooManyReadings,
        RejectReason::Topic,
        RejectReason::TopicMismatch,
        RejectReason::BadLabel,
    ];

    /// A stable snake_case label, for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::NotJson => "not_json",
            RejectReason::WrongType => "wrong_type",
            RejectReason::MissingField => "missing_field",
            RejectReason::EmptyId => "empty_id",
            RejectReason::InvalidId => "invalid_id",
            RejectReason::NonFiniteValue => "non_finite_value",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::Oversize => "oversize",
            RejectReason::TooManyReadings => "too_many_readings",
            RejectReason::Topic => "topic",
            RejectReason::TopicMismatch => "topic_mismatch",
            RejectReason::BadLabel => "bad_label",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected payload: the reason to count and a detail, naming the field, to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadError {
    pub reason: RejectReason,
    pub detail: String,
}

impl PayloadError {
    fn new(reason: RejectReason, detail: impl Into<String>) -> PayloadError {
        PayloadError {
            reason,
            detail: detail.into(),
        }
    }

    /// A parsed reading whose timestamp breaks the node's `--max_future_s` bound.
    pub fn too_far_ahead(detail: String) -> PayloadError {
        PayloadError::new(RejectReason::BadTimestamp, format!("timestamp: {detail}"))
    }

    /// The same error, its detail prefixed with the array element it is about.
    fn in_element(self, index: usize) -> PayloadError {
        PayloadError::new(self.reason, format!("element {index}: {}", self.detail))
    }
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.detail, self.reason)
    }
}

impl std::error::Error for PayloadError {}

impl From<PayloadError> for Error {
    fn from(e: PayloadError) -> Error {
        Error::invalid("mqtt payload", e.to_string())
    }
}

/// One JSON object as it arrives: its fields in order, each value borrowed raw so that its
/// type is checked after parsing and errors can name the field. Keys borrow from the
/// payload unless they hold escapes.
struct WireObject<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'de> Deserialize<'de> for WireObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = WireObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    fields.push((key.0, value));
                }
                Ok(WireObject { fields })
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Parses one MQTT message received on `topic` under the default layout
/// (`iot/sensors/{metric}`); a reading without a timestamp is stamped with the current time.
pub fn parse_mqtt_payload(topic: &str, payload: &[u8]) -> Result<Vec<Point>, PayloadError> {
    parse_mqtt_payload_at(topic, payload, now())
}

/// [`parse_mqtt_payload`] with the time of receipt given, for readings without a timestamp.
pub fn parse_mqtt_payload_at(
    topic: &str,
    payload: &[u8],
    now: Timestamp,
) -> Result<Vec<Point>, PayloadError> {
    parse_mqtt_message(&TopicLayouts::default(), topic, payload, now)
}

/// Parses one MQTT message received on `topic` under the node's `layouts` into its
/// readings (one or more), or the reason to reject the whole message.
pub fn parse_mqtt_message(
    layouts: &TopicLayouts,
    topic: &str,
    payload: &[u8],
    now: Timestamp,
) -> Result<Vec<Point>, PayloadError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(PayloadError::new(
            RejectReason::Oversize,
            format!(
                "payload: {} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit",
                payload.len()
            ),
        ));
    }
    let Some(from_topic) = layouts.capture(topic) else {
        return Err(PayloadError::new(
            RejectReason::Topic,
            format!(
                "topic {} matches no --topic layout ({})",
                quote(&format!("{topic:?}")),
                layouts.describe()
            ),
        ));
    };
    let mut points = Vec::new();
    match first_byte(payload) {
        Some(b'{') => {
            let object = parse_json::<WireObject>(payload)?;
            read_object(&object, topic, from_topic, now, &mut points)?;
        }
        Some(b'[') => {
            let elements = parse_json::<Vec<&RawValue>>(payload)?;
            if elements.is_empty() {
                return Err(PayloadError::new(
                    RejectReason::MissingField,
                    "payload: an empty array holds no reading",
                ));
            }
            if elements.len() > MAX_READINGS_PER_MESSAGE {
                return Err(too_many(elements.len()));
            }
            for (index, element) in elements.iter().enumerate() {
                read_element(element, topic, from_topic, now, &mut points)
                    .map_err(|e| e.in_element(index))?;
            }
        }
        _ => {
            return Err(match serde_json::from_slice::<&RawValue>(payload) {
                Ok(raw) => PayloadError::new(
                    RejectReason::WrongType,
                    format!(
                        "payload: expected a JSON object or an array of objects, found {}",
                        kind(raw.get())
                    ),
                ),
                Err(e) => not_json(&e),
            })
        }
    }
    Ok(points)
}

fn first_byte(payload: &[u8]) -> Option<u8> {
    payload
        .iter()
        .copied()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Parses the payload as `T`, telling malformed JSON apart from JSON of another shape.
fn parse_json<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, PayloadError> {
    serde_json::from_slice::<T>(payload).map_err(|e| match e.classify() {
        Category::Data => PayloadError::new(RejectReason::WrongType, format!("payload: {e}")),
        Category::Io | Category::Syntax | Category::Eof => not_json(&e),
    })
}

/// One array element: an object, read like a whole message.
fn read_element(
    element: &RawValue,
    topic: &str,
    from_topic: TopicValues<'_>,
    now: Timestamp,
    points: &mut Vec<Point>,
) -> Result<(), PayloadError> {
    if !element.get().starts_with('{') {
        return Err(PayloadError::new(
            RejectReason::WrongType,
            format!("expected an object, found {}", kind(element.get())),
        ));
    }
    let object = serde_json::from_str::<WireObject>(element.get())
        .map_err(|e| PayloadError::new(RejectReason::NotJson, format!("{e}")))?;
    read_object(&object, topic, from_topic, now, points)
}

fn too_many(n: usize) -> PayloadError {
    PayloadError::new(
        RejectReason::TooManyReadings,
        format!("payload: {n} readings or more is over the {MAX_READINGS_PER_MESSAGE}-reading limit of one message"),
    )
}

/// The reserved fields of one object, each `None` when absent or `null`.
#[derive(Default)]
struct Reserved<'a> {
    device_id: Option<&'a RawValue>,
    metric_name: Option<&'a RawValue>,
    timestamp: Option<&'a RawValue>,
    value: Option<&'a RawValue>,
}

/// Reads one object (shape 1 or 2) into `points`.
fn read_object(
    object: &WireObject<'_>,
    topic: &str,
    from_topic: TopicValues<'_>,
    now: Timestamp,
    points: &mut Vec<Point>,
) -> Result<(), PayloadError> {
    let mut reserved = Reserved::default();
    let mut seen = [false; RESERVED_FIELDS.len()];
    for (key, raw) in &object.fields {
        let Some(index) = RESERVED_FIELDS.iter().position(|f| *f == key.as_ref()) else {
            continue;
        };
        if std::mem::replace(&mut seen[index], true) {
            return Err(duplicate(key));
        }
        let raw = Some(*raw).filter(|r| !is_null(r));
        match index {
            0 => reserved.device_id = raw,
            1 => reserved.metric_name = raw,
            2 => reserved.timestamp = raw,
            _ => reserved.value = raw,
        }
    }

    let device_id = match (reserved.device_id, from_topic.device_id) {
        (Some(raw), in_topic) => {
            let device_id = string_field("device_id", raw)?;
            if let Some(in_topic) = in_topic.filter(|t| *t != device_id) {
                return Err(PayloadError::new(
                    RejectReason::TopicMismatch,
                    format!(
                        "device_id {} differs from {} in topic {}",
                        quote(&format!("{device_id:?}")),
                        quote(&format!("{in_topic:?}")),
                        quote(&format!("{topic:?}"))
                    ),
                ));
            }
            device_id
        }
        (None, Some(in_topic)) => Cow::Borrowed(in_topic),
        (None, None) => return Err(missing("device_id")),
    };
    let timestamp = match reserved.timestamp {
        Some(raw) => timestamp_field(raw)?,
        None => now,
    };
    let labels = labels(object)?;

    if reserved.value.is_some() || reserved.metric_name.is_some() {
        let (metric_name, source) = match (reserved.metric_name, from_topic.metric) {
            (Some(raw), _) => (string_field("metric_name", raw)?, None),
            (None, Some(in_topic)) => (Cow::Borrowed(in_topic), Some(topic)),
            (None, None) => {
                return Err(PayloadError::new(
                    RejectReason::MissingField,
                    format!(
                        "metric_name: missing, and topic {} has no metric level to take it from",
                        quote(&format!("{topic:?}"))
                    ),
                ))
            }
        };
        let series = labelled(series_key(&device_id, &metric_name, source)?, &labels)?;
        let value = match reserved.value {
            Some(raw) => value_field("value", raw)?,
            None => return Err(missing("value")),
        };
        push(points, series, timestamp, value)?;
        return Ok(());
    }

    let before = points.len();
    let mut metrics: Vec<&str> = Vec::new();
    for (key, raw) in &object.fields {
        if RESERVED_FIELDS.contains(&key.as_ref()) || !is_reading(raw) {
            continue;
        }
        metrics.push(key.as_ref());
        let value = value_field(key, raw)?;
        let series = labelled(series_key(&device_id, key, None)?, &labels)?;
        push(points, series, timestamp, value)?;
    }
    if points.len() == before {
        return Err(PayloadError::new(
            RejectReason::MissingField,
            "value: missing, and no other field holds a number to store as a metric",
        ));
    }
    metrics.sort_unstable();
    if let Some(pair) = metrics.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(duplicate(pair[0]));
    }
    Ok(())
}

/// The labels of one object besides `device_id`: every string-valued field that is not
/// used, and the entries of an explicit `labels` object; sorted by name.
fn labels(object: &WireObject<'_>) -> Result<Vec<(String, String)>, PayloadError> {
    let mut labels: Vec<(String, String)> = Vec::new();
    let mut explicit_seen = false;
    for (key, raw) in &object.fields {
        if RESERVED_FIELDS.contains(&key.as_ref()) {
            continue;
        }
        if key.as_ref() == LABELS_FIELD {
            if is_null(raw) {
                continue;
            }
            if std::mem::replace(&mut explicit_seen, true) {
                return Err(duplicate(key));
            }
            let entries: Vec<(Cow<'_, str>, &RawValue)> =
                match serde_json::from_str::<WireObject<'_>>(raw.get()) {
                    Ok(inner) => inner.fields,
                    Err(_) => return Err(wrong_type(LABELS_FIELD, "an object", raw.get())),
                };
            for (name, value) in &entries {
                let field = format!("{LABELS_FIELD}.{name}");
                let value = string_field(&field, value)?;
                labels.push((check_label_name(&field, name)?, value.into_owned()));
            }
            continue;
        }
        if raw.get().starts_with('"') {
            let value = string_field(key, raw)?;
            labels.push((check_label_name(key, key)?, value.into_owned()));
        }
    }
    labels.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if let Some(pair) = labels.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(bad_label(format!(
            "label `{}` given more than once (as a field or in `{LABELS_FIELD}`)",
            quote(&pair[0].0)
        )));
    }
    if labels.len() + 1 > MAX_LABELS {
        return Err(bad_label(format!(
            "labels: {} labels with device_id, at most {MAX_LABELS} allowed",
            labels.len() + 1
        )));
    }
    Ok(labels)
}

/// `name` as a label name, or a rejection naming `field` (publishers choose JSON keys, so a
/// bad one is refused rather than rewritten).
fn check_label_name(field: &str, name: &str) -> Result<String, PayloadError> {
    if name == DEVICE_LABEL {
        return Err(duplicate(field));
    }
    crate::storage::series_key::check_label(name, "x")
        .map_err(|e| bad_label(format!("{}: not a label name: {e}", quote(field))))?;
    Ok(name.to_string())
}

fn bad_label(detail: String) -> PayloadError {
    PayloadError::new(RejectReason::BadLabel, detail)
}

/// `series` (device-only) with `labels` added.
fn labelled(series: SeriesKey, labels: &[(String, String)]) -> Result<SeriesKey, PayloadError> {
    if labels.is_empty() {
        return Ok(series);
    }
    let all = series
        .labels()
        .iter()
        .cloned()
        .chain(labels.iter().cloned());
    SeriesKey::with_labels(series.metric_name(), all).map_err(|e| bad_label(e.to_string()))
}

/// Adds one reading, refusing the one over [`MAX_READINGS_PER_MESSAGE`].
fn push(
    points: &mut Vec<Point>,
    series: SeriesKey,
    timestamp: Timestamp,
    value: f64,
) -> Result<(), PayloadError> {
    if points.len() >= MAX_READINGS_PER_MESSAGE {
        return Err(too_many(points.len() + 1));
    }
    points.push(Point {
        series,
        timestamp,
        value,
    });
    Ok(())
}

fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

/// A multi-field value that is a reading: a number or a boolean.
fn is_reading(raw: &RawValue) -> bool {
    matches!(
        raw.get().as_bytes().first(),
        Some(b'-' | b'0'..=b'9' | b't' | b'f')
    )
}

fn duplicate(field: &str) -> PayloadError {
    PayloadError::new(
        RejectReason::WrongType,
        format!("payload: duplicate field `{}`", quote(field)),
    )
}

fn not_json(e: &serde_json::Error) -> PayloadError {
    PayloadError::new(
        RejectReason::NotJson,
        format!("payload: not valid JSON: {e}"),
    )
}

fn missing(field: &str) -> PayloadError {
    PayloadError::new(RejectReason::MissingField, format!("{field}: missing"))
}

fn wrong_type(field: &str, expected: &str, raw: &str) -> PayloadError {
    PayloadError::new(
        RejectReason::WrongType,
        format!("{}: expected {expected}, found {}", quote(field), kind(raw)),
    )
}

/// Names the JSON type of a raw value, quoting scalars so the sender can find them.
fn kind(raw: &str) -> String {
    match raw.as_bytes().first() {
        Some(b'"') => format!("a string {}", quote(raw)),
        Some(b't' | b'f') => format!("a boolean {raw}"),
        Some(b'n') => "null".to_string(),
        Some(b'{') => "an object".to_string(),
        Some(b'[') => "an array".to_string(),
        _ => format!("a number {}", quote(raw)),
    }
}

/// At most [`DETAIL_QUOTE_BYTES`] of `text`, cut on a character boundary.
fn quote(text: &str) -> String {
    if text.len() <= DETAIL_QUOTE_BYTES {
        return text.to_string();
    }
    let mut end = DETAIL_QUOTE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A JSON string field, borrowed from the payload unless it holds escapes.
fn string_field<'a>(field: &str, raw: &'a RawValue) -> Result<Cow<'a, str>, PayloadError> {
    let text = raw.get();
    let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
        return Err(wrong_type(field, "a string", text));
    };
    // serde_json has validated the string: without a backslash its text is its value.
    if !inner.contains('\\') {
        return Ok(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(text)
        .map(Cow::Owned)
        .map_err(|e| PayloadError::new(RejectReason::NotJson, format!("{field}: {e}")))
}

/// A JSON number field as f64; overflow gives ±infinity for the caller to judge.
fn number_field(field: &str, raw: &RawValue) -> Result<f64, PayloadError> {
    let text = raw.get();
    match text.as_bytes().first() {
        // JSON's number grammar is a subset of what `f64::from_str` accepts, and Rust's
        // parser rounds correctly.
        Some(b'-' | b'0'..=b'9') => text
            .parse::<f64>()
            .map_err(|e| PayloadError::new(RejectReason::NotJson, format!("{field}: {e}"))),
        _ => Err(wrong_type(field, "a number or a boolean", text)),
    }
}

/// A reading's value: a finite number, or a boolean as 1 / 0.
fn value_field(field: &str, raw: &RawValue) -> Result<f64, PayloadError> {
    let value = match raw.get() {
        "true" => return Ok(1.0),
        "false" => return Ok(0.0),
        _ => number_field(field, raw)?,
    };
    if !value.is_finite() {
        return Err(PayloadError::new(
            RejectReason::NonFiniteValue,
            format!(
                "{}: {} is not a finite number",
                quote(field),
                quote(raw.get())
            ),
        ));
    }
    Ok(value)
}

fn bad_timestamp(raw: &RawValue, why: &str) -> PayloadError {
    PayloadError::new(
        RejectReason::BadTimestamp,
        format!("timestamp: {} {why}", quote(raw.get())),
    )
}

/// A timestamp: a number whose unit goes by its magnitude, or an RFC 3339 string.
fn timestamp_field(raw: &RawValue) -> Result<Timestamp, PayloadError> {
    let text = raw.get();
    let millis = match text.as_bytes().first() {
        Some(b'"') => {
            let inner = string_field("timestamp", raw)?;
            parse_rfc3339_millis(&inner).map_err(|why| {
                bad_timestamp(raw, &format!("is not an RFC 3339 date-time: {why}"))
            })?
        }
        Some(b'-') => {
            return Err(bad_timestamp(raw, "is negative: before 1970"));
        }
        Some(b'0'..=b'9') => number_millis(raw)?,
        _ => {
            return Err(wrong_type(
                "timestamp",
                "a number or an RFC 3339 string",
                text,
            ))
        }
    };
    if let Some(why) = calendar_error(millis) {
        return Err(PayloadError::new(
            RejectReason::BadTimestamp,
            format!("timestamp: {}: {why}", quote(text)),
        ));
    }
    Ok(Timestamp(millis))
}

/// A non-negative JSON number as unix milliseconds, its unit chosen by magnitude. Integers
/// are read exactly (nanoseconds exceed f64's 53 bits); other numbers as f64, rounded to
/// the millisecond.
fn number_millis(raw: &RawValue) -> Result<i64, PayloadError> {
    let text = raw.get();
    let out_of_range = || bad_timestamp(raw, "is out of range");
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let n: u128 = text.parse().map_err(|_| out_of_range())?;
        let millis = match n {
            _ if n < SECONDS_BELOW => n * 1000,
            _ if n < MILLIS_BELOW => n,
            _ if n < MICROS_BELOW => n / 1000,
            _ => n / 1_000_000,
        };
        return i64::try_from(millis).map_err(|_| out_of_range());
    }
    let x = number_field("timestamp", raw)?;
    if !x.is_finite() {
        return Err(out_of_range());
    }
    let seconds = match x {
        _ if x < SECONDS_BELOW as f64 => x,
        _ if x < MILLIS_BELOW as f64 => x / 1e3,
        _ if x < MICROS_BELOW as f64 => x / 1e6,
        _ => x / 1e9,
    };
    Timestamp::from_unix_seconds(seconds)
        .map(|t| t.0)
        .map_err(|_| out_of_range())
}

/// Builds the series key, classifying id problems as empty or invalid. `topic` is set when
/// the metric name came from it, so the detail can say so.
fn series_key(
    device_id: &str,
    metric_name: &str,
    topic: Option<&str>,
) -> Result<SeriesKey, PayloadError> {
    for (field, id) in [("device_id", device_id), ("metric_name", metric_name)] {
        if id.is_empty() {
            return Err(PayloadError::new(
                RejectReason::EmptyId,
                format!("{field}: must not be empty"),
            ));
        }
    }
    SeriesKey::new(device_id, metric_name).map_err(|e| {
        let detail = match e {
            Error::InvalidInput { field, reason } => {
                let id = if field == "device_id" {
                    device_id
                } else {
                    metric_name
                };
                let source = match topic {
                    Some(topic) if field == "metric_name" => {
                        format!(" (taken from topic {})", quote(&format!("{topic:?}")))
                    }
                    _ => String::new(),
                };
                format!("{field} {}{source}: {reason}", quote(&format!("{id:?}")))
            }
            other => other.to_string(),
        };
        PayloadError::new(RejectReason::InvalidId, detail)
    })
}

/// The wall clock as a [`Timestamp`] (the time of receipt of a reading).
pub fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp(millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TOPIC: &str = "iot/sensors/temperature";
    const NOW: Timestamp = Timestamp(1_720_000_000_000);

    fn parse(topic: &str, payload: &str) -> Result<Vec<Point>, PayloadError> {
        parse_mqtt_payload_at(topic, payload.as_bytes(), NOW)
    }

    /// Every reading of an accepted payload.
    fn accepted_all(topic: &str, payload: &str) -> Vec<Point> {
        match parse(topic, payload) {
            Ok(points) => points,
            Err(e) => panic!("{payload} was rejected: {e}"),
        }
    }

    /// The one reading of an accepted payload.
    fn accepted(topic: &str, payload: &str) -> Point {
        let mut points = accepted_all(topic, payload);
        assert_eq!(points.len(), 1, "{payload}: {points:?}");
        points.remove(0)
    }

    fn rejected(topic: &str, payload: &str) -> PayloadError {
        match parse(topic, payload) {
            Ok(points) => panic!("{payload} was accepted as {points:?}"),
            Err(e) => e,
        }
    }

    fn in_layouts(
        templates: &[&str],
        topic: &str,
        payload: &str,
    ) -> Result<Vec<Point>, PayloadError> {
        let layouts = TopicLayouts::parse(templates).unwrap();
        parse_mqtt_message(&layouts, topic, payload.as_bytes(), NOW)
    }

    fn point(device: &str, metric: &str, millis: i64, value: f64) -> Point {
        Point {
            series: SeriesKey::new(device, metric).unwrap(),
            timestamp: Timestamp(millis),
            value,
        }
    }

    #[test]
    fn spec_example_is_accepted() {
        let p = accepted(
            TOPIC,
            r#"{"device_id":"sensor_1","metric_name":"temperature","timestamp":1710000000,"value":24.2}"#,
        );
        assert_eq!(p, point("sensor_1", "temperature", 1_710_000_000_000, 24.2));
    }

    #[test]
    fn an_array_gives_one_reading_per_element_in_order() {
        let points = accepted_all(
            TOPIC,
            r#"[{"device_id":"a","timestamp":1,"value":1},
                {"device_id":"b","metric_name":"humidity","timestamp":2,"value":2},
                {"device_id":"c","timestamp":3,"t1":3,"t2":4}]"#,
        );
        assert_eq!(
            points,
            vec![
                point("a", "temperature", 1000, 1.0),
                point("b", "humidity", 2000, 2.0),
                point("c", "t1", 3000, 3.0),
                point("c", "t2", 3000, 4.0),
            ]
        );
    }

    #[test]
    fn one_bad_element_rejects_the_whole_array_naming_it() {
        let e = rejected(
            TOPIC,
            r#"[{"device_id":"a","value":1},{"device_id":"b","value":"x"}]"#,
        );
        assert_eq!(e.reason, RejectReason::WrongType);
        assert!(e.detail.starts_with("element 1: value"), "{}", e.detail);
        let e = rejected(TOPIC, r#"[{"device_id":"a","value":1},{"value":1}]"#);
        assert_eq!(e.reason, RejectReason::MissingField);
        assert_eq!(e.detail, "element 1: device_id: missing");
    }

    #[test]
    fn an_empty_array_is_missing_field() {
        let e = rejected(TOPIC, " [ ] ");
        assert_eq!(e.reason, RejectReason::MissingField);
        assert!(e.detail.contains("empty array"), "{}", e.detail);
    }

    #[test]
    fn readings_per_message_are_bounded() {
        let element = r#"{"device_id":"d","value":1}"#;
        let at_limit = format!("[{}]", vec![element; MAX_READINGS_PER_MESSAGE].join(","));
        assert_eq!(
            accepted_all(TOPIC, &at_limit).len(),
            MAX_READINGS_PER_MESSAGE
        );
        let over = format!(
            "[{}]",
            vec![element; MAX_READINGS_PER_MESSAGE + 1].join(",")
        );
        assert_eq!(rejected(TOPIC, &over).reason, RejectReason::TooManyReadings);
        // Counted in readings, not elements: 5001 elements of two fields each.
        let pair = r#"{"device_id":"d","a":1,"b":2}"#;
        let over = format!(
            "[{}]",
            vec![pair; MAX_READINGS_PER_MESSAGE / 2 + 1].join(",")
        );
        let e = rejected(TOPIC, &over);
        assert_eq!(e.reason, RejectReason::TooManyReadings);
        assert!(e.detail.contains("10000-reading limit"), "{}", e.detail);
    }

    #[test]
    fn multi_field_object_gives_one_reading_per_numeric_field() {
        let points = accepted_all(
            "iot/sensors/env",
            r#"{"device_id":"d1","timestamp":1710000000,"temperature":21.5,"humidity":40,
                "unit":"C","room":"lab","note":null,"nested":{"x":1},"list":[1,2]}"#,
        );
        assert_eq!(
            points,
            vec![
                labelled_point(
                    "temperature",
                    &[("room", "lab"), ("unit", "C")],
                    1_710_000_000_000,
                    21.5
                ),
                labelled_point(
                    "humidity",
                    &[("room", "lab"), ("unit", "C")],
                    1_710_000_000_000,
                    40.0
                ),
            ]
        );
    }

    /// A reading of device `d1` whose series also carries `labels`.
    fn labelled_point(metric: &str, labels: &[(&str, &str)], millis: i64, value: f64) -> Point {
        let all = labels.iter().copied().chain([(DEVICE_LABEL, "d1")]);
        Point {
            series: SeriesKey::with_labels(metric, all).unwrap(),
            timestamp: Timestamp(millis),
            value,
        }
    }

    #[test]
    fn string_fields_become_labels_in_both_shapes() {
        let points = accepted_all(
            "iot/sensors/env",
            r#"{"device_id":"d1","room":"lab","timestamp":1710000000,"temperature":21.5,"humidity":40}"#,
        );
        assert_eq!(
            points,
            vec![
                labelled_point("temperature", &[("room", "lab")], 1_710_000_000_000, 21.5),
                labelled_point("humidity", &[("room", "lab")], 1_710_000_000_000, 40.0),
            ]
        );
        let p = accepted(
            TOPIC,
            r#"{"device_id":"d1","metric_name":"temperature","value":24.2,"unit":"C"}"#,
        );
        assert_eq!(
            p,
            labelled_point("temperature", &[("unit", "C")], NOW.0, 24.2)
        );
        assert_eq!(
            p.series.to_string(),
            r#"temperature{device_id="d1",unit="C"}"#
        );
    }

    #[test]
    fn label_order_in_the_payload_is_irrelevant() {
        let a = accepted(TOPIC, r#"{"device_id":"d1","value":1,"b":"2","a":"1"}"#);
        let b = accepted(TOPIC, r#"{"a":"1","value":1,"device_id":"d1","b":"2"}"#);
        assert_eq!(a, b);
        assert_eq!(
            a,
            labelled_point("temperature", &[("a", "1"), ("b", "2")], NOW.0, 1.0)
        );
    }

    #[test]
    fn used_fields_are_never_labels() {
        let p = accepted(
            TOPIC,
            r#"{"device_id":"d1","metric_name":"m","timestamp":"2026-12-03T10:00:00Z","value":1}"#,
        );
        assert!(p.series.is_device_only(), "{}", p.series);
    }

    #[test]
    fn explicit_labels_object_is_read() {
        let p = accepted(
            TOPIC,
            r#"{"device_id":"d1","value":1,"labels":{"room":"lab","floor":"2"},"unit":"C"}"#,
        );
        let want = &[("floor", "2"), ("room", "lab"), ("unit", "C")];
        assert_eq!(p, labelled_point("temperature", want, NOW.0, 1.0));
        let e = rejected(TOPIC, r#"{"device_id":"d1","value":1,"labels":{"room":3}}"#);
        assert_eq!(e.reason, RejectReason::WrongType);
        assert!(e.detail.starts_with("labels.room:"), "{}", e.detail);
        let e = rejected(TOPIC, r#"{"device_id":"d1","value":1,"labels":"room"}"#);
        assert_eq!(e.reason, RejectReason::WrongType);
        assert!(e.detail.starts_with("labels:"), "{}", e.detail);
    }

    #[test]
    fn label_given_twice_is_rejected() {
        let e = rejected(
            TOPIC,
            r#"{"device_id":"d1","value":1,"room":"a","labels":{"room":"b"}}"#,
        );
        assert_eq!(e.reason, RejectReason::BadLabel);
        assert!(
            e.detail.contains("`room` given more than once"),
            "{}",
            e.detail
        );
        let e = rejected(
            TOPIC,
            r#"{"device_id":"d1","value":1,"labels":{"device_id":"x"}}"#,
        );
        assert_eq!(e.reason, RejectReason::WrongType);
        assert!(e.detail.contains("labels.device_id"), "{}", e.detail);
    }

    #[test]
    fn bad_label_names_and_values_are_rejected_naming_the_key() {
        for (payload, names) in [
            (r#"{"device_id":"d","value":1,"my room":"lab"}"#, "my room"),
            (r#"{"device_id":"d","value":1,"9x":"lab"}"#, "9x"),
            (r#"{"device_id":"d","value":1,"__x":"lab"}"#, "__x"),
            (
                r#"{"device_id":"d","t":1,"labels":{"a/b":"lab"}}"#,
                "labels.a/b",
            ),
        ] {
            let e = rejected(TOPIC, payload);
            assert_eq!(e.reason, RejectReason::BadLabel, "{payload}");
            assert!(e.detail.contains(names), "{payload}: {}", e.detail);
        }
        let long = format!(
            r#"{{"device_id":"d","value":1,"room":"{}"}}"#,
            "x".repeat(1025)
        );
        let e = rejected(TOPIC, &long);
        assert_eq!(e.reason, RejectReason::BadLabel);
        assert!(e.detail.contains("room"), "{}", e.detail);
        let e = rejected(TOPIC, r#"{"device_id":"d","value":1,"room":"a\u0007b"}"#);
        assert_eq!(e.reason, RejectReason::BadLabel);
        assert!(e.detail.contains("room"), "{}", e.detail);
    }

    #[test]
    fn too_many_labels_are_rejected() {
        let fields = |n: usize| -> String { (0..n).map(|i| format!(r#","l{i}":"v""#)).collect() };
        let ok = format!(r#"{{"device_id":"d","value":1{}}}"#, fields(MAX_LABELS - 1));
        assert_eq!(accepted(TOPIC, &ok).series.labels().len(), MAX_LABELS);
        let over = format!(r#"{{"device_id":"d","value":1{}}}"#, fields(MAX_LABELS));
        let e = rejected(TOPIC, &over);
        assert_eq!(e.reason, RejectReason::BadLabel);
        assert!(e.detail.contains("at most 32"), "{}", e.detail);
    }

    #[test]
    fn booleans_are_stored_as_one_and_zero() {
        let points = accepted_all(TOPIC, r#"{"device_id":"d","door_open":true,"alarm":false}"#);
        assert_eq!(
            points.iter().map(|p| p.value).collect::<Vec<_>>(),
            [1.0, 0.0]
        );
        assert_eq!(
            accepted(TOPIC, r#"{"device_id":"d","value":true}"#).value,
            1.0
        );
        assert_eq!(
            accepted(TOPIC, r#"{"device_id":"d","value":false}"#).value,
            0.0
        );
    }

    #[test]
    fn value_makes_the_single_shape_and_other_numbers_are_ignored() {
        let p = accepted(
            TOPIC,
            r#"{"device_id":"d","value":1,"battery":87,"rssi":-60}"#,
        );
        assert_eq!(p, point("d", "temperature", NOW.0, 1.0));
    }

    #[test]
    fn multi_field_names_must_be_valid_metric_names_and_unique() {
        let e = rejected(TOPIC, r#"{"device_id":"d","a|b":1}"#);
        assert_eq!(e.reason, RejectReason::InvalidId);
        assert!(e.detail.starts_with("metric_name \"a|b\""), "{}", e.detail);
        let e = rejected(TOPIC, r#"{"device_id":"d","t":1,"t":2}"#);
        assert_eq!(e.reason, RejectReason::WrongType);
        assert!(e.detail.contains("duplicate field `t`"), "{}", e.detail);
        let e = rejected(TOPIC, r#"{"device_id":"d","t":1e400}"#);
        assert_eq!(e.reason, RejectReason::NonFiniteValue);
        assert!(e.detail.starts_with("t:"), "{}", e.detail);
        let e = rejected(TOPIC, r#"{"device_id":"d","unit":"C"}"#);
        assert_eq!(e.reason, RejectReason::MissingField);
    }

    #[test]
    fn null_then_value_is_still_a_duplicate() {
        let e = rejected(TOPIC, r#"{"device_id":"d","value":null,"value":2}"#);
        assert_eq!(e.reason, RejectReason::WrongType);
    }

    #[test]
    fn topic_matching_no_layout_is_rejected_and_never_stored() {
        for topic in [
            "iot/sensors/temperature/room1",
            "iot/sensors",
            "elsewhere/temperature",
            "",
        ] {
            let e = rejected(
                topic,
                r#"{"device_id":"d","metric_name":"temperature","value":1}"#,
            );
            assert_eq!(e.reason, RejectReason::Topic, "{topic:?}");
            assert!(e.detail.contains("iot/sensors/{metric}"), "{}", e.detail);
        }
    }

    #[test]
    fn device_id_comes_from_the_topic_when_the_payload_lacks_it() {
        let layout = ["iot/{device_id}/{metric}"];
        let points = in_layouts(&layout, "iot/d7/humidity", r#"{"timestamp":1,"value":40}"#);
        assert_eq!(points, Ok(vec![point("d7", "humidity", 1000, 40.0)]));
        let points = in_layouts(
            &layout,
            "iot/d7/env",
            r#"[{"timestamp":1,"t":1,"h":2},{"device_id":"d7","timestamp":2,"value":3}]"#,
        );
        assert_eq!(
            points,
            Ok(vec![
                point("d7", "t", 1000, 1.0),
                point("d7", "h", 1000, 2.0),
                point("d7", "env", 2000, 3.0),
            ])
        );
    }

    #[test]
    fn device_id_in_payload_and_topic_must_agree() {
        let layout = ["iot/{device_id}/{metric}"];
        let same = in_layouts(&layout, "iot/d7/t", r#"{"device_id":"d7","value":1}"#);
        assert_eq!(same, Ok(vec![point("d7", "t", NOW.0, 1.0)]));
        let e = in_layouts(&layout, "iot/d7/t", r#"{"device_id":"d8","value":1}"#).unwrap_err();
        assert_eq!(e.reason, RejectReason::TopicMismatch);
        assert!(
            e.detail.contains("\"d8\" differs from \"d7\""),
            "{}",
            e.detail
        );
    }

    #[test]
    fn a_layout_without_device_or_metric_needs_them_in_the_payload() {
        let layout = ["plant/{device_id}"];
        let e = in_layouts(&layout, "plant/p1", r#"{"value":1}"#).unwrap_err();
        assert_eq!(e.reason, RejectReason::MissingField);
        assert!(e.detail.starts_with("metric_name: missing"), "{}", e.detail);
        let ok = in_layouts(&layout, "plant/p1", r#"{"metric_name":"rpm","value":1}"#);
        assert_eq!(ok, Ok(vec![point("p1", "rpm", NOW.0, 1.0)]));
        let e = in_layouts(&["plant/{metric}"], "plant/rpm", r#"{"value":1}"#).unwrap_err();
        assert_eq!(
            e,
            PayloadError::new(RejectReason::MissingField, "device_id: missing")
        );
    }

    #[test]
    fn metric_name_falls_back_to_topic_last_level() {
        let p = accepted(
            "iot/sensors/humidity",
            r#"{"device_id":"sensor_1","timestamp":1710000000,"value":40}"#,
        );
        assert_eq!(p, point("sensor_1", "humidity", 1_710_000_000_000, 40.0));
    }

    #[test]
    fn metric_name_in_payload_wins_over_topic() {
        let p = accepted(
            "iot/sensors/humidity",
            r#"{"device_id":"d","metric_name":"pressure","timestamp":1,"value":1}"#,
        );
        assert_eq!(p.series.metric_name(), "pressure");
    }

    #[test]
    fn null_metric_name_falls_back_to_topic() {
        let p = accepted(
            TOPIC,
            r#"{"device_id":"d","metric_name":null,"timestamp":1,"value":1}"#,
        );
        assert_eq!(p.series.metric_name(), "temperature");
    }

    #[test]
    fn missing_or_null_timestamp_means_now() {
        let p = accepted(TOPIC, r#"{"device_id":"d","value":1.5}"#);
        assert_eq!(p.timestamp, NOW);
        let p = accepted(TOPIC, r#"{"device_id":"d","timestamp":null,"value":1.5}"#);
        assert_eq!(p.timestamp, NOW);
    }

    #[test]
    fn default_now_is_the_wall_clock() {
        let before = now();
        let p = parse_mqtt_payload(TOPIC, br#"{"device_id":"d","value":1}"#).unwrap();
        assert!(p[0].timestamp >= before && p[0].timestamp <= now());
    }

    #[test]
    fn fractional_timestamp_keeps_milliseconds() {
        let p = accepted(
            TOPIC,
            r#"{"device_id":"d","timestamp":1710000000.1234,"value":1}"#,
        );
        assert_eq!(p.timestamp, Timestamp(1_710_000_000_123));
    }

    fn stamped(timestamp: &str) -> Result<Timestamp, PayloadError> {
        parse(
            TOPIC,
            &format!(r#"{{"device_id":"d","timestamp":{timestamp},"value":1}}"#),
        )
        .map(|p| p[0].timestamp)
    }

    #[test]
    fn timestamp_unit_goes_by_magnitude() {
        let second = 1_710_000_000_000;
        for (text, millis) in [
            ("0", 0),
            ("1710000000", second),
            ("10000000000", 10_000_000_000),
            ("1710000000123", second + 123),
            ("9000000000000", 9_000_000_000_000),
            ("10000000000000", 10_000_000_000),
            ("1710000000123456", second + 123),
            ("9000000000000999", 9_000_000_000_000),
            ("10000000000000000", 10_000_000_000),
            ("1710000000123456789", second + 123),
            ("1710000000.5", second + 500),
            ("1710000000123.4", second + 123),
            ("1.710000000123e12", second + 123),
            ("1.710000000123456e15", second + 123),
            ("1.7100000001234568e18", second + 123),
        ] {
            assert_eq!(stamped(text), Ok(Timestamp(millis)), "{text}");
        }
    }

    #[test]
    fn timestamp_bounds_are_1970_to_2262() {
        assert_eq!(stamped("0"), Ok(Timestamp(0)));
        // 2262-04-11T23:47:16.854Z, the last i64 nanosecond, as nanoseconds.
        assert_eq!(
            stamped("9223372036854775807"),
            Ok(Timestamp(crate::ingest::timestamp::LATEST_MS))
        );
        for text in [
            "-1",
            "-1710000000",
            "9999999999",
            "1e400",
            "9223372036854775808000",
            "99999999999999999999999999999999999999999999",
            r#""1969-12-31T23:59:59Z""#,
        ] {
            let e = stamped(text).unwrap_err();
            assert_eq!(e.reason, RejectReason::BadTimestamp, "{text}: {}", e.detail);
            assert!(e.detail.starts_with("timestamp"), "{}", e.detail);
        }
    }

    #[test]
    fn rfc3339_timestamps_are_read_with_offsets_and_fractions() {
        let ten = Timestamp(1_796_292_000_000);
        assert_eq!(stamped(r#""2026-12-03T10:00:00Z""#), Ok(ten));
        assert_eq!(stamped(r#""2026-12-03T11:00:00+01:00""#), Ok(ten));
        assert_eq!(
            stamped(r#""2026-12-03T10:00:00.250Z""#),
            Ok(Timestamp(ten.0 + 250))
        );
        assert_eq!(stamped(r#""2026-12-03T10:00:00Z""#), Ok(ten));
    }

    #[test]
    fn bad_timestamp_strings_say_why() {
        for text in [
            r#""1710000000""#,
            r#""2026-12-03""#,
            r#""2026-02-30T10:00:00Z""#,
            r#""2026-12-03T10:00:00""#,
            r#""yesterday""#,
            r#""""#,
        ] {
            let e = stamped(text).unwrap_err();
            assert_eq!(e.reason, RejectReason::BadTimestamp, "{text}");
            assert!(e.detail.contains("RFC 3339"), "{}", e.detail);
        }
        for text in ["true", "[1]", "{}"] {
            let e = stamped(text).unwrap_err();
            assert_eq!(e.reason, RejectReason::WrongType, "{text}");
        }
    }

    #[test]
    fn numbers_of_every_json_shape_are_accepted() {
        for (text, value) in [
            ("24", 24.0),
            ("-3", -3.0),
            ("0", 0.0),
            ("-0.5", -0.5),
            ("2.5e3", 2500.0),
            ("1E-2", 0.01),
            ("1.7976931348623157e308", f64::MAX),
        ] {
            let p = accepted(TOPIC, &format!(r#"{{"device_id":"d","value":{text}}}"#));
            assert_eq!(p.value, value, "{text}");
        }
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let p = accepted(
            r"iot/sensors/x",
            r#"{"device_id":"sensor\u005f1 \"a\" \\ \/","metric_name":"temp\u00e9rature","value":1}"#,
        );
        assert_eq!(p.series.device_id(), r#"sensor_1 "a" \ /"#);
        assert_eq!(p.series.metric_name(), "température");
    }

    #[test]
    fn unknown_fields_and_whitespace_are_tolerated() {
        let p = accepted(
            TOPIC,
            " \n{ \"unit\" : \"C\", \"device_id\" : \"d\",\r\n \"value\" : 1, \"extra\": {\"a\":[1,2]} }\n ",
        );
        let want = SeriesKey::with_labels("temperature", [("device_id", "d"), ("unit", "C")]);
        assert_eq!(p.series, want.unwrap());
    }

    #[test]
    fn payload_of_exactly_the_limit_is_accepted() {
        let body = r#"{"device_id":"d","value":1}"#;
        let padded = format!("{body}{}", " ".repeat(MAX_PAYLOAD_BYTES - body.len()));
        assert_eq!(padded.len(), MAX_PAYLOAD_BYTES);
        accepted(TOPIC, &padded);
    }

    #[test]
    fn oversize_payload_is_rejected_before_parsing() {
        let e = rejected(TOPIC, &" ".repeat(MAX_PAYLOAD_BYTES + 1));
        assert_eq!(e.reason, RejectReason::Oversize);
        assert!(e.detail.contains("1048577 bytes"), "{}", e.detail);
    }

    #[test]
    fn malformed_json_is_not_json() {
        for payload in [
            "",
            "   ",
            "{",
            "garbage",
            r#"{"device_id":"d","value":1"#,
            r#"{"device_id":"d","value":1} trailing"#,
            r#"{"device_id":"d","value":NaN}"#,
            r#"{"device_id":"d","value":01}"#,
            r#"{'device_id':'d','value':1}"#,
        ] {
            let e = rejected(TOPIC, payload);
            assert_eq!(e.reason, RejectReason::NotJson, "{payload}: {}", e.detail);
        }
    }

    #[test]
    fn invalid_utf8_is_not_json() {
        let e =
            parse_mqtt_payload_at(TOPIC, b"{\"device_id\":\"\xff\",\"value\":1}", NOW).unwrap_err();
        assert_eq!(e.reason, RejectReason::NotJson);
    }

    #[test]
    fn non_object_json_is_wrong_type() {
        for (payload, found) in [
            (
                "[\"d\",\"t\",1,2]",
                "element 0: expected an object, found a string",
            ),
            ("[[{}]]", "element 0: expected an object, found an array"),
            ("42", "a number 42"),
            ("\"text\"", "a string"),
            ("null", "null"),
        ] {
            let e = rejected(TOPIC, payload);
            assert_eq!(e.reason, RejectReason::WrongType, "{payload}");
            assert!(e.detail.contains(found), "{}", e.detail);
        }
    }

    #[test]
    fn value_as_string_is_wrong_type_naming_the_field() {
        let e = rejected(TOPIC, r#"{"device_id":"d","value":"23.5"}"#);
        assert_eq!(e.reason, RejectReason::WrongType);
        assert_eq!(
            e.detail,
            r#"value: expected a number or a boolean, found a string "23.5""#
        );
    }

    #[test]
    fn field_of_wrong_json_type_is_wrong_type_naming_the_field() {
        for (payload, field) in [
            (r#"{"device_id":7,"value":1}"#, "device_id"),
            (
                r#"{"device_id":"d","metric_name":true,"value":1}"#,
                "metric_name",
            ),
            (r#"{"device_id":"d","value":[1]}"#, "value"),
            (r#"{"device_id":"d","value":{"v":1}}"#, "value"),
            (r#"{"device_id":"d","value":"1"}"#, "value"),
        ] {
            let e = rejected(TOPIC, payload);
            assert_eq!(e.reason, RejectReason::WrongType, "{payload}");
            assert!(e.detail.starts_with(field), "{}", e.detail);
        }
    }

    #[test]
    fn duplicate_field_is_wrong_type() {
        let e = rejected(TOPIC, r#"{"device_id":"d","value":1,"value":2}"#);
        assert_eq!(e.reason, RejectReason::WrongType);
        assert!(e.detail.contains("value"), "{}", e.detail);
    }

    #[test]
    fn missing_required_field_names_it() {
        let e = rejected(TOPIC, r#"{"value":1}"#);
        assert_eq!(e.reason, RejectReason::MissingField);
        assert_eq!(e.detail, "device_id: missing");
        let e = rejected(TOPIC, r#"{"device_id":"d"}"#);
        assert_eq!(e.reason, RejectReason::MissingField);
        assert!(e.detail.starts_with("value: missing"), "{}", e.detail);
        let e = rejected(TOPIC, r#"{"device_id":"d","metric_name":"m"}"#);
        assert_eq!(e.reason, RejectReason::MissingField);
        assert_eq!(e.detail, "value: missing");
        let e = rejected(TOPIC, r#"{"device_id":null,"value":1}"#);
        assert_eq!(e.reason, RejectReason::MissingField);
    }

    #[test]
    fn metric_name_missing_from_payload_and_topic_is_missing_field() {
        let e = rejected("iot/sensors/", r#"{"device_id":"d","value":1}"#);
        assert_eq!(e.reason, RejectReason::MissingField);
        assert!(e.detail.starts_with("metric_name"), "{}", e.detail);
    }

    #[test]
    fn empty_ids_are_empty_id() {
        let e = rejected(TOPIC, r#"{"device_id":"","value":1}"#);
        assert_eq!(e.reason, RejectReason::EmptyId);
        assert!(e.detail.starts_with("device_id"), "{}", e.detail);
        let e = rejected(TOPIC, r#"{"device_id":"d","metric_name":"","value":1}"#);
        assert_eq!(e.reason, RejectReason::EmptyId);
        assert!(e.detail.starts_with("metric_name"), "{}", e.detail);
    }

    #[test]
    fn pipe_control_character_or_overlong_id_is_invalid_id() {
        let long = "x".repeat(crate::storage::MAX_NAME_LEN + 1);
        for (payload, field) in [
            (r#"{"device_id":"a|b","value":1}"#.to_string(), "device_id"),
            (
                r#"{"device_id":"a\u0007","value":1}"#.to_string(),
                "device_id",
            ),
            (r#"{"device_id":"a\nb","value":1}"#.to_string(), "device_id"),
            (
                r#"{"device_id":"d","metric_name":"t|x","value":1}"#.to_string(),
                "metric_name",
            ),
            (
                format!(r#"{{"device_id":"{long}","value":1}}"#),
                "device_id",
            ),
        ] {
            let e = rejected(TOPIC, &payload);
            assert_eq!(e.reason, RejectReason::InvalidId, "{payload}");
            assert!(e.detail.starts_with(field), "{}", e.detail);
        }
    }

    #[test]
    fn invalid_metric_from_topic_says_it_came_from_the_topic() {
        let e = rejected("iot/sensors/a|b", r#"{"device_id":"d","value":1}"#);
        assert_eq!(e.reason, RejectReason::InvalidId);
        assert!(e.detail.contains("taken from topic"), "{}", e.detail);
    }

    #[test]
    fn overflowing_value_is_non_finite() {
        for text in ["1e400", "-1e400"] {
            let e = rejected(TOPIC, &format!(r#"{{"device_id":"d","value":{text}}}"#));
            assert_eq!(e.reason, RejectReason::NonFiniteValue, "{text}");
            assert!(e.detail.starts_with("value"), "{}", e.detail);
        }
    }

    #[test]
    fn timestamps_before_1970_say_so() {
        let e = stamped("-1").unwrap_err();
        assert!(e.detail.contains("before 1970"), "{}", e.detail);
        let e = stamped(r#""1960-01-01T00:00:00Z""#).unwrap_err();
        assert!(e.detail.contains("before 1970"), "{}", e.detail);
    }

    #[test]
    fn every_reject_reason_has_a_distinct_snake_case_label() {
        let labels: Vec<&str> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        let mut unique = labels.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), labels.len());
        for label in labels {
            assert!(label.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
        assert_eq!(RejectReason::NotJson.as_str(), "not_json");
    }

    #[test]
    fn long_offending_values_are_quoted_short() {
        let long = "9".repeat(500);
        let e = rejected(
            TOPIC,
            &format!(r#"{{"device_id":"d","timestamp":{long},"value":1}}"#),
        );
        assert!(e.detail.len() < 200, "{}", e.detail);
    }

    #[test]
    fn payload_error_converts_to_crate_error() {
        let e: Error = rejected(TOPIC, "{").into();
        assert!(e.to_string().contains("not_json"), "{e}");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(topic in ".{0,40}", payload in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_mqtt_payload_at(&topic, &payload, NOW);
        }

        #[test]
        fn arbitrary_topics_and_layouts_never_panic(
            topic in "[a-z0-9/{}+#_]{0,30}",
            payload in r#"[{}\[\]":,0-9a-z_.\-]{0,80}"#,
        ) {
            let layouts = TopicLayouts::parse(&["iot/{device_id}/{metric}", "a/{metric}"]).unwrap();
            let _ = parse_mqtt_message(&layouts, &topic, payload.as_bytes(), NOW);
            let _ = parse_mqtt_message(&layouts, "iot/d/m", payload.as_bytes(), NOW);
        }

        #[test]
        fn json_like_text_never_panics(payload in r#"[{}\[\]":,0-9a-z_.eE+\-\\ |\u{0}-\u{1f}é]{0,120}"#) {
            let _ = parse_mqtt_payload_at(TOPIC, payload.as_bytes(), NOW);
        }

        #[test]
        fn well_formed_payloads_round_trip(
            device in "[a-zA-Z0-9_ .:\"\\\\/é-]{1,40}",
            metric in "[a-zA-Z0-9_.]{1,20}",
            millis in 0i64..7_258_118_400_000,
            value in -1e300f64..1e300,
        ) {
            let payload = format!(
                r#"{{"device_id":{},"metric_name":{},"timestamp":{},"value":{:?}}}"#,
                serde_json::to_string(&device).unwrap(),
                serde_json::to_string(&metric).unwrap(),
                Timestamp(millis).as_unix_seconds(),
                value,
            );
            let p = parse_mqtt_payload_at(TOPIC, payload.as_bytes(), NOW).unwrap();
            prop_assert_eq!(p, vec![point(&device, &metric, millis, value)]);
        }
    }
}
