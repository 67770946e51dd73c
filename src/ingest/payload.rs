//! MQTT payloads: one JSON object per message, turned into one validated [`Point`].
//!
//! The wire contract (topic `iot/sensors/{metric_name}`):
//!
//! ```json
//! {"device_id":"sensor_1","metric_name":"temperature","timestamp":1710000000,"value":24.2}
//! ```
//!
//! 1. `device_id`: string, required. Must be non-empty, at most
//!    [`MAX_NAME_LEN`](crate::storage::MAX_NAME_LEN) bytes, with no `|` and no control
//!    characters (the rules of [`SeriesKey::new`]).
//! 2. `metric_name`: string, optional. When absent it is the topic's last level
//!    (`iot/sensors/temperature` → `temperature`); when present it wins over the topic.
//! 3. `timestamp`: JSON number of unix **seconds**, optional (absent → the time of receipt).
//!    Fractions are kept to the millisecond. It must lie in `[1970-01-01, 2200-01-01)`:
//!    milliseconds or nanoseconds are not guessed at, they are rejected, because a wrong
//!    guess would silently file a reading decades away from where its sender meant it.
//! 4. `value`: JSON number, required, finite. A number sent as a string (`"23.5"`) is
//!    rejected rather than coerced, so a publisher's bug shows up in the reject counters
//!    instead of half-working.
//!
//! A field whose value is `null` counts as absent. Unknown fields are ignored, so devices may
//! send extras such as `"unit"`. Duplicate fields are rejected as ambiguous.
//!
//! Every rejection carries a [`RejectReason`] (to be counted per reason, since MQTT cannot
//! tell the publisher) and a detail that names the field.
//!
//! The hot path deserializes into a struct of borrowed [`RawValue`]s — no
//! `serde_json::Value` tree, no allocation unless a string contains escapes — and then
//! checks each field's JSON type itself, so a type error names its field and an overflowing
//! number (`1e400`) is reported as non-finite rather than as malformed JSON.

use crate::error::Error;
use crate::storage::{Point, SeriesKey, Timestamp};
use serde::Deserialize;
use serde_json::error::Category;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest accepted payload, in bytes. The contract's payload is under 100 bytes; anything
/// near this limit is a publisher bug or abuse, and refusing it early bounds parsing work.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;

/// First rejected timestamp, in unix seconds: 2200-01-01T00:00:00Z. Millisecond timestamps
/// of the present day (~1.7e12) lie far above it, so they cannot pass as seconds.
pub const MAX_TIMESTAMP_SECONDS: f64 = 7_258_118_400.0;

/// How many bytes of an offending value a rejection detail quotes.
const DETAIL_QUOTE_BYTES: usize = 64;

/// Why a payload was rejected. Each reason is counted separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The payload is not valid JSON (or not UTF-8).
    NotJson,
    /// Valid JSON of the wrong shape: not an object, a field of the wrong JSON type, or a
    /// duplicated field.
    WrongType,
    /// A required field is absent (or `null`).
    MissingField,
    /// `device_id` or `metric_name` is the empty string.
    EmptyId,
    /// `device_id` or `metric_name` is too long or holds `|` or a control character.
    InvalidId,
    /// `value` overflows to infinity.
    NonFiniteValue,
    /// `timestamp` is not unix seconds in `[1970, 2200)`.
    BadTimestamp,
    /// The payload is larger than [`MAX_PAYLOAD_BYTES`].
    Oversize,
}

impl RejectReason {
    /// Every reason, e.g. to register one counter each.
    pub const ALL: [RejectReason; 8] = [
        RejectReason::NotJson,
        RejectReason::WrongType,
        RejectReason::MissingField,
        RejectReason::EmptyId,
        RejectReason::InvalidId,
        RejectReason::NonFiniteValue,
        RejectReason::BadTimestamp,
        RejectReason::Oversize,
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

/// The payload as it arrives: every field borrowed raw, its type checked after parsing so
/// that errors can name the field.
#[derive(Deserialize)]
struct WirePayload<'a> {
    #[serde(borrow)]
    device_id: Option<&'a RawValue>,
    #[serde(borrow)]
    metric_name: Option<&'a RawValue>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow)]
    value: Option<&'a RawValue>,
}

/// Parses one MQTT message received on `topic`; a payload without a timestamp is stamped
/// with the current time.
pub fn parse_mqtt_payload(topic: &str, payload: &[u8]) -> Result<Point, PayloadError> {
    parse_mqtt_payload_at(topic, payload, now())
}

/// [`parse_mqtt_payload`] with the time of receipt given, for payloads without a timestamp.
pub fn parse_mqtt_payload_at(
    topic: &str,
    payload: &[u8],
    now: Timestamp,
) -> Result<Point, PayloadError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(PayloadError::new(
            RejectReason::Oversize,
            format!(
                "payload: {} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit",
                payload.len()
            ),
        ));
    }
    let wire = parse_object(payload)?;

    let device_id = match wire.device_id {
        Some(raw) => string_field("device_id", raw)?,
        None => return Err(missing("device_id")),
    };
    let (metric_name, from_topic) = match wire.metric_name {
        Some(raw) => (string_field("metric_name", raw)?, false),
        None => (Cow::Borrowed(metric_from_topic(topic)?), true),
    };
    let series = series_key(&device_id, &metric_name, from_topic.then_some(topic))?;

    let value = match wire.value {
        Some(raw) => number_field("value", raw)?,
        None => return Err(missing("value")),
    };
    if !value.is_finite() {
        return Err(PayloadError::new(
            RejectReason::NonFiniteValue,
            format!(
                "value: {} is not a finite number",
                quote(wire_text(wire.value))
            ),
        ));
    }

    let timestamp = match wire.timestamp {
        Some(raw) => timestamp_field(raw)?,
        None => now,
    };
    Ok(Point {
        series,
        timestamp,
        value,
    })
}

fn wire_text(raw: Option<&RawValue>) -> &str {
    raw.map_or("", RawValue::get)
}

/// Parses the payload as a JSON object, telling malformed JSON apart from JSON of another
/// shape.
fn parse_object(payload: &[u8]) -> Result<WirePayload<'_>, PayloadError> {
    let first = payload
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        // serde would map a JSON array onto the struct positionally; only objects are
        // accepted. This is the error path, so a second parse costs nothing that matters.
        return Err(match serde_json::from_slice::<&RawValue>(payload) {
            Ok(raw) => PayloadError::new(
                RejectReason::WrongType,
                format!("payload: expected a JSON object, found {}", kind(raw.get())),
            ),
            Err(e) => not_json(&e),
        });
    }
    serde_json::from_slice::<WirePayload>(payload).map_err(|e| match e.classify() {
        // The only data errors an object can raise here are duplicated fields.
        Category::Data => PayloadError::new(RejectReason::WrongType, format!("payload: {e}")),
        Category::Io | Category::Syntax | Category::Eof => not_json(&e),
    })
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
        format!("{field}: expected {expected}, found {}", kind(raw)),
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
        _ => Err(wrong_type(field, "a number", text)),
    }
}

fn timestamp_field(raw: &RawValue) -> Result<Timestamp, PayloadError> {
    let seconds = number_field("timestamp", raw)?;
    let bad = || {
        PayloadError::new(
            RejectReason::BadTimestamp,
            format!(
                "timestamp: {} is not unix seconds in 1970..2200 \
                 (seconds are expected, not milliseconds or nanoseconds)",
                quote(raw.get())
            ),
        )
    };
    if !(0.0..MAX_TIMESTAMP_SECONDS).contains(&seconds) {
        return Err(bad());
    }
    Timestamp::from_unix_seconds(seconds).map_err(|_| bad())
}

/// The metric name carried by the topic: its last level (`iot/sensors/temperature`).
fn metric_from_topic(topic: &str) -> Result<&str, PayloadError> {
    match topic.rsplit('/').next() {
        Some(level) if !level.is_empty() => Ok(level),
        _ => Err(PayloadError::new(
            RejectReason::MissingField,
            format!(
                "metric_name: missing, and topic {} has no last level to take it from",
                quote(&format!("{topic:?}"))
            ),
        )),
    }
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

    fn parse(topic: &str, payload: &str) -> Result<Point, PayloadError> {
        parse_mqtt_payload_at(topic, payload.as_bytes(), NOW)
    }

    fn accepted(topic: &str, payload: &str) -> Point {
        match parse(topic, payload) {
            Ok(point) => point,
            Err(e) => panic!("{payload} was rejected: {e}"),
        }
    }

    fn rejected(topic: &str, payload: &str) -> PayloadError {
        match parse(topic, payload) {
            Ok(point) => panic!("{payload} was accepted as {point:?}"),
            Err(e) => e,
        }
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
        assert!(p.timestamp >= before && p.timestamp <= now());
    }

    #[test]
    fn fractional_timestamp_keeps_milliseconds() {
        let p = accepted(
            TOPIC,
            r#"{"device_id":"d","timestamp":1710000000.1234,"value":1}"#,
        );
        assert_eq!(p.timestamp, Timestamp(1_710_000_000_123));
    }

    #[test]
    fn timestamp_bounds_are_1970_inclusive_and_2200_exclusive() {
        let p = accepted(TOPIC, r#"{"device_id":"d","timestamp":0,"value":1}"#);
        assert_eq!(p.timestamp, Timestamp(0));
        let p = accepted(
            TOPIC,
            r#"{"device_id":"d","timestamp":7258118399.999,"value":1}"#,
        );
        assert_eq!(p.timestamp, Timestamp(7_258_118_399_999));
        let e = rejected(
            TOPIC,
            r#"{"device_id":"d","timestamp":7258118400,"value":1}"#,
        );
        assert_eq!(e.reason, RejectReason::BadTimestamp);
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
        assert_eq!(p, point("d", "temperature", NOW.0, 1.0));
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
        assert!(e.detail.contains("16385 bytes"), "{}", e.detail);
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
            ("[\"d\",\"t\",1,2]", "an array"),
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
            r#"value: expected a number, found a string "23.5""#
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
            (
                r#"{"device_id":"d","timestamp":"1710000000","value":1}"#,
                "timestamp",
            ),
            (r#"{"device_id":"d","value":[1]}"#, "value"),
            (r#"{"device_id":"d","value":{"v":1}}"#, "value"),
            (r#"{"device_id":"d","value":false}"#, "value"),
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
        assert_eq!(e.detail, "value: missing");
        let e = rejected(TOPIC, r#"{"device_id":null,"value":1}"#);
        assert_eq!(e.reason, RejectReason::MissingField);
    }

    #[test]
    fn metric_name_missing_from_payload_and_topic_is_missing_field() {
        for topic in ["iot/sensors/", ""] {
            let e = rejected(topic, r#"{"device_id":"d","value":1}"#);
            assert_eq!(e.reason, RejectReason::MissingField, "{topic:?}");
            assert!(e.detail.starts_with("metric_name"), "{}", e.detail);
        }
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
    fn timestamps_not_in_seconds_are_bad_timestamp() {
        for text in ["1710000000000", "1710000000000000000", "-1", "1e400"] {
            let e = rejected(
                TOPIC,
                &format!(r#"{{"device_id":"d","timestamp":{text},"value":1}}"#),
            );
            assert_eq!(e.reason, RejectReason::BadTimestamp, "{text}");
            assert!(e.detail.starts_with("timestamp"), "{}", e.detail);
            assert!(e.detail.contains("seconds are expected"), "{}", e.detail);
        }
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
            prop_assert_eq!(p, point(&device, &metric, millis, value));
        }
    }
}
