//! The live stream's wire format: one websocket text frame per reading, the same JSON object
//! the MQTT ingestion path accepts, so a dashboard can treat both sources alike.
//!
//! Layout of one frame (UTF-8 JSON, keys in this order):
//! 1. `device_id`: string
//! 2. `metric_name`: string
//! 3. `timestamp`: number, unix seconds; an integer when the reading falls on a whole second,
//!    otherwise fractional with millisecond resolution (`1710000000.25`)
//! 4. `value`: number (non-finite values, which ingestion rejects, would encode as `null`)
//! 5. `labels`: object of the series' other labels (`{"room":"lab"}`), only when it has any;
//!    `device_id` is `""` for a series without one
//!
//! Example: `{"device_id":"sensor_1","metric_name":"temperature","timestamp":1710000000,"value":24.2}`

use crate::storage::Point;
use serde::Serialize;
use std::collections::BTreeMap;
use tungstenite::Utf8Bytes;

#[derive(Serialize)]
struct LiveReading<'a> {
    device_id: &'a str,
    metric_name: &'a str,
    timestamp: serde_json::Number,
    value: f64,
    /// The series' labels other than `device_id`; absent when it has none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<&'a str, &'a str>,
}

/// Encodes one point as a text frame's payload. The result is reference-counted, so handing
/// it to many clients' queues copies no bytes.
pub fn encode_point(point: &Point) -> Utf8Bytes {
    let millis = point.timestamp.millis();
    let timestamp = if millis % 1000 == 0 {
        serde_json::Number::from(millis / 1000)
    } else {
        serde_json::Number::from_f64(point.timestamp.as_unix_seconds())
            .unwrap_or_else(|| serde_json::Number::from(millis / 1000))
    };
    let reading = LiveReading {
        device_id: point.series.device_id(),
        metric_name: point.series.metric_name(),
        timestamp,
        value: point.value,
        labels: point.series.extra_labels().collect(),
    };
    // Serializing a struct of strings and numbers into memory cannot fail.
    let json = serde_json::to_string(&reading).expect("live reading serializes to JSON");
    Utf8Bytes::from(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{SeriesKey, Timestamp};

    fn point(millis: i64, value: f64) -> Point {
        Point {
            series: SeriesKey::new("sensor_1", "temperature").unwrap(),
            timestamp: Timestamp(millis),
            value,
        }
    }

    #[test]
    fn whole_second_reading_matches_the_mqtt_payload() {
        let frame = encode_point(&point(1_710_000_000_000, 24.2));
        assert_eq!(
            frame.as_str(),
            r#"{"device_id":"sensor_1","metric_name":"temperature","timestamp":1710000000,"value":24.2}"#
        );
    }

    #[test]
    fn a_labelled_reading_carries_its_other_labels() {
        let point = Point {
            series: SeriesKey::with_labels("t", [("room", "lab"), ("device_id", "d")]).unwrap(),
            timestamp: Timestamp(1_710_000_000_000),
            value: 1.0,
        };
        assert_eq!(
            encode_point(&point).as_str(),
            r#"{"device_id":"d","metric_name":"t","timestamp":1710000000,"value":1.0,"labels":{"room":"lab"}}"#
        );
    }

    #[test]
    fn sub_second_reading_keeps_milliseconds() {
        let frame = encode_point(&point(1_710_000_000_250, -3.0));
        assert_eq!(
            frame.as_str(),
            r#"{"device_id":"sensor_1","metric_name":"temperature","timestamp":1710000000.25,"value":-3.0}"#
        );
    }
}
