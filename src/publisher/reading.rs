//! One sensor reading and its MQTT form: the topic `{prefix}/{metric_name}` and the JSON
//! payload the server's ingest accepts (see `crate::ingest::payload`).
//!
//! The payload, written out field by field:
//!
//! ```json
//! {"device_id":"sensor_1","metric_name":"temperature","timestamp":1710000000.25,"value":24.2}
//! ```
//!
//! 1. `device_id`: JSON string.
//! 2. `metric_name`: JSON string; also the last topic level.
//! 3. `timestamp`: JSON number of unix **seconds**, rounded to the millisecond; whole seconds
//!    are written without a fraction (`1262304000`), so replayed data keeps its exact form.
//! 4. `value`: JSON number, the shortest decimal that reads back as the same `f64`.

use crate::ingest::payload::MAX_TIMESTAMP_SECONDS;
use crate::storage::SeriesKey;
use std::time::{SystemTime, UNIX_EPOCH};

/// A reading ready to publish: every field known and checked by [`Reading::check`].
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub device_id: String,
    pub metric_name: String,
    /// Unix seconds (fractions are kept to the millisecond on the wire).
    pub timestamp: f64,
    pub value: f64,
}

impl Reading {
    /// Refuses what the server would reject, and what cannot be an MQTT topic level, so a
    /// bad reading is reported here with its cause instead of vanishing into a reject counter.
    pub fn check(&self) -> Result<(), String> {
        SeriesKey::new(&self.device_id, &self.metric_name).map_err(|e| e.to_string())?;
        if self.metric_name.contains(['/', '+', '#']) {
            return Err(format!(
                "metric name {:?} holds '/', '+' or '#', which cannot be a topic level",
                self.metric_name
            ));
        }
        if !self.value.is_finite() {
            return Err(format!("value {} is not a finite number", self.value));
        }
        if !(0.0..MAX_TIMESTAMP_SECONDS).contains(&self.timestamp) {
            return Err(format!(
                "timestamp {} is not unix seconds in [1970, 2200) (milliseconds are not accepted)",
                self.timestamp
            ));
        }
        Ok(())
    }

    /// The topic this reading is published on.
    pub fn topic(&self, prefix: &str) -> String {
        format!("{prefix}/{}", self.metric_name)
    }

    /// The JSON payload (layout in the module doc).
    pub fn to_json(&self) -> String {
        // `f64`'s Display never uses an exponent and drops a zero fraction, which is
        // exactly the JSON number form wanted here.
        let timestamp = (self.timestamp * 1000.0).round() / 1000.0;
        format!(
            "{{\"device_id\":{},\"metric_name\":{},\"timestamp\":{timestamp},\"value\":{}}}",
            json_string(&self.device_id),
            json_string(&self.metric_name),
            self.value
        )
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serializes")
}

/// The wall clock as unix seconds, to the millisecond.
pub fn unix_now() -> f64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    since.as_millis() as f64 / 1000.0
}

/// Rounds to `decimals` places, as a sensor reports (`23.4567` → `23.46` at 2).
pub fn round_to(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::payload;

    fn reading(timestamp: f64, value: f64) -> Reading {
        Reading {
            device_id: "sensor_1".into(),
            metric_name: "temperature".into(),
            timestamp,
            value,
        }
    }

    #[test]
    fn payload_matches_the_wire_contract() {
        assert_eq!(
            reading(1262304000.0, 39.4).to_json(),
            r#"{"device_id":"sensor_1","metric_name":"temperature","timestamp":1262304000,"value":39.4}"#
        );
        assert_eq!(
            reading(1710000000.2504, 10.0).to_json(),
            r#"{"device_id":"sensor_1","metric_name":"temperature","timestamp":1710000000.25,"value":10}"#
        );
    }

    #[test]
    fn payload_is_accepted_by_the_server_parser() {
        let r = reading(1710000000.123, -3.25);
        let json = r.to_json();
        let points = payload::parse_mqtt_payload("iot/sensors/temperature", json.as_bytes())
            .expect("server accepts the payload");
        assert_eq!(points.len(), 1);
        let point = &points[0];
        assert_eq!(point.value, -3.25);
        assert_eq!(point.series.device_id(), "sensor_1");
    }

    #[test]
    fn check_refuses_what_the_server_rejects() {
        assert!(reading(1e12, 1.0).check().is_err(), "milliseconds");
        assert!(reading(1.0e9, f64::NAN).check().is_err());
        let mut r = reading(1.0e9, 1.0);
        r.metric_name = "a/b".into();
        assert!(r.check().is_err());
        r.metric_name = "a|b".into();
        assert!(r.check().is_err());
        r.metric_name = String::new();
        assert!(r.check().is_err());
        assert!(reading(1.0e9, 1.0).check().is_ok());
    }

    #[test]
    fn rounding_keeps_sensor_precision() {
        assert_eq!(round_to(23.4567, 2), 23.46);
        assert_eq!(round_to(40.06, 1), 40.1);
    }
}
