//! Request bodies: a JSON object whose fields are read one by one, so every error names the
//! field at fault (`missing field device_id`, `invalid start_time: must be a number`) rather
//! than quoting serde's position-based messages.

use super::errors::ApiError;
use crate::storage::series_key::check_label;
use crate::storage::{AggregateOp, SeriesFields, SeriesKey, TimeRange, Timestamp, MAX_LABELS};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The fields of a JSON object body.
pub struct Fields(Map<String, Value>);

impl Fields {
    /// Parses `body` as a JSON object.
    pub fn parse(body: &[u8]) -> Result<Fields, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request("request body must be a JSON object"));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Fields(map)),
            Ok(_) => Err(ApiError::bad_request("request body must be a JSON object")),
            Err(e) => Err(ApiError::bad_request(format!("invalid JSON: {e}"))),
        }
    }

    /// A field that is absent or `null` is `None`.
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    pub fn required_str(&self, name: &str) -> Result<&str, ApiError> {
        match self.get(name) {
            None => Err(ApiError::bad_request(format!("missing field {name}"))),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(ApiError::bad_request(format!(
                "invalid {name}: must be a string"
            ))),
        }
    }

    pub fn optional_str(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(_) => self.required_str(name).map(Some),
        }
    }

    pub fn optional_f64(&self, name: &str) -> Result<Option<f64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| ApiError::bad_request(format!("invalid {name}: must be a number"))),
        }
    }

    pub fn optional_u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                ApiError::bad_request(format!("invalid {name}: must be a non-negative integer"))
            }),
        }
    }

    /// The series named by `metric_name`, `device_id` and the optional `labels` object
    /// (`{"room": "lab"}`, string values: the series' other labels). Without `labels`,
    /// `device_id` is required, as the original API has it; with them, a series without a
    /// `device_id` can be named too, and `"labels": {}` alone names the bare metric (which
    /// a query widens to every series of it).
    pub fn series(&self) -> Result<SeriesKey, ApiError> {
        let labels = self.labels()?;
        let device_id = match labels {
            // The original's shape: `device_id` required and non-empty.
            None => {
                let device_id = self.required_str("device_id")?;
                let metric_name = self.required_str("metric_name")?;
                return Ok(SeriesKey::new(device_id, metric_name)?);
            }
            Some(_) => self.optional_str("device_id")?.unwrap_or(""),
        };
        let metric_name = self.required_str("metric_name")?;
        let series = SeriesFields {
            device_id: device_id.to_string(),
            metric_name: metric_name.to_string(),
            labels: labels.unwrap_or_default(),
        };
        Ok(series.key()?)
    }

    /// The optional `group_by` array: distinct label names (`device_id` included), at most
    /// as many as a series has labels.
    pub fn group_by(&self) -> Result<Vec<String>, ApiError> {
        let Some(value) = self.get("group_by") else {
            return Ok(Vec::new());
        };
        let invalid = |why: String| ApiError::bad_request(format!("invalid group_by: {why}"));
        let Value::Array(names) = value else {
            return Err(invalid("must be an array of label names".into()));
        };
        if names.len() > MAX_LABELS {
            return Err(invalid(format!("at most {MAX_LABELS} label names")));
        }
        let mut out: Vec<String> = Vec::with_capacity(names.len());
        for name in names {
            let Value::String(name) = name else {
                return Err(invalid("must be an array of label names".into()));
            };
            // The name's rules are a label's; the value checked is a stand-in.
            check_label(name, "v").map_err(|e| invalid(e.to_string()))?;
            if out.contains(name) {
                return Err(invalid(format!("{name} given more than once")));
            }
            out.push(name.clone());
        }
        Ok(out)
    }

    /// The optional `labels` object: label name → string value.
    pub fn labels(&self) -> Result<Option<BTreeMap<String, String>>, ApiError> {
        let Some(value) = self.get("labels") else {
            return Ok(None);
        };
        let Value::Object(map) = value else {
            return Err(ApiError::bad_request(
                "invalid labels: must be an object of label name to string value",
            ));
        };
        map.iter()
            .map(|(name, value)| match value {
                Value::String(v) => Ok((name.clone(), v.clone())),
                _ => Err(ApiError::bad_request(format!(
                    "invalid labels: label {name} must be a string"
                ))),
            })
            .collect::<Result<BTreeMap<_, _>, _>>()
            .map(Some)
    }

    /// `start_time` and `end_time`, unix seconds; absent or 0 is an open bound.
    pub fn time_range(&self) -> Result<TimeRange, ApiError> {
        let start = self.bound("start_time")?;
        let end = self.bound("end_time")?;
        if let (Some(s), Some(e)) = (start, end) {
            if s > e {
                return Err(ApiError::bad_request("start_time must be <= end_time"));
            }
        }
        Ok(TimeRange::new(start, end))
    }

    fn bound(&self, name: &str) -> Result<Option<Timestamp>, ApiError> {
        match self.optional_f64(name)? {
            None => Ok(None),
            Some(0.0) => Ok(None),
            Some(s) => Timestamp::from_unix_seconds(s)
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("invalid {name}: out of range"))),
        }
    }

    pub fn operation(&self) -> Result<AggregateOp, ApiError> {
        Ok(AggregateOp::parse(self.required_str("operation")?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: &str) -> Fields {
        Fields::parse(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {}", e.message))
    }

    fn message<T>(r: Result<T, ApiError>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.message,
        }
    }

    #[test]
    fn labels_name_a_series_beside_device_id() {
        let f = fields(r#"{"device_id":"d","metric_name":"t","labels":{"room":"lab"}}"#);
        assert_eq!(
            f.series().unwrap().as_str(),
            r#"t{device_id="d",room="lab"}"#
        );
        let f = fields(r#"{"metric_name":"cpu","labels":{"host":"a"}}"#);
        assert_eq!(f.series().unwrap().as_str(), r#"cpu{host="a"}"#);
        let f = fields(r#"{"metric_name":"cpu"}"#);
        assert_eq!(message(f.series()), "missing field device_id");
        let f = fields(r#"{"device_id":"","metric_name":"cpu"}"#);
        assert!(message(f.series()).contains("device_id"));
        // Empty labels and no device: the bare metric, whose query covers all its series.
        let f = fields(r#"{"metric_name":"cpu","labels":{}}"#);
        assert_eq!(f.series().unwrap().as_str(), "cpu");
        let f = fields(r#"{"device_id":"d","metric_name":"t","labels":["room"]}"#);
        assert!(message(f.series()).starts_with("invalid labels: must be an object"));
        let f = fields(r#"{"device_id":"d","metric_name":"t","labels":{"room":1}}"#);
        assert_eq!(
            message(f.series()),
            "invalid labels: label room must be a string"
        );
        let f = fields(r#"{"device_id":"d","metric_name":"t","labels":{"__x":"1"}}"#);
        assert!(
            message(f.series()).contains("label __x"),
            "{}",
            message(f.series())
        );
    }

    #[test]
    fn group_by_is_a_list_of_distinct_label_names() {
        let f = fields(r#"{"group_by":["room","device_id"]}"#);
        assert_eq!(f.group_by().unwrap(), ["room", "device_id"]);
        assert!(fields("{}").group_by().unwrap().is_empty());
        for (body, want) in [
            (r#"{"group_by":"room"}"#, "must be an array"),
            (r#"{"group_by":[1]}"#, "must be an array"),
            (r#"{"group_by":["a","a"]}"#, "a given more than once"),
            (r#"{"group_by":["__name__"]}"#, "reserved"),
            (r#"{"group_by":["a b"]}"#, "label name"),
        ] {
            let m = message(fields(body).group_by());
            assert!(
                m.starts_with("invalid group_by: ") && m.contains(want),
                "{body}: {m}"
            );
        }
    }

    #[test]
    fn non_object_bodies_are_refused() {
        assert_eq!(
            message(Fields::parse(b"")),
            "request body must be a JSON object"
        );
        assert_eq!(
            message(Fields::parse(b"[1]")),
            "request body must be a JSON object"
        );
        assert!(message(Fields::parse(b"{")).starts_with("invalid JSON"));
    }

    #[test]
    fn missing_and_mistyped_fields_are_named() {
        let f = fields(r#"{"metric_name":"t","start_time":"x"}"#);
        assert_eq!(message(f.series()), "missing field device_id");
        assert_eq!(
            message(f.time_range()),
            "invalid start_time: must be a number"
        );
        let f = fields(r#"{"device_id":3}"#);
        assert_eq!(message(f.series()), "invalid device_id: must be a string");
        let f = fields(r#"{"device_id":null}"#);
        assert_eq!(message(f.series()), "missing field device_id");
    }

    #[test]
    fn zero_bounds_are_open_and_inverted_ranges_refused() {
        assert_eq!(
            fields(r#"{"start_time":0,"end_time":0}"#)
                .time_range()
                .unwrap(),
            TimeRange::ALL
        );
        let r = fields(r#"{"start_time":1.5}"#).time_range().unwrap();
        assert_eq!(r.start, Some(Timestamp(1500)));
        assert_eq!(
            message(fields(r#"{"start_time":20,"end_time":10}"#).time_range()),
            "start_time must be <= end_time"
        );
        assert_eq!(
            message(fields(r#"{"end_time":1e300}"#).time_range()),
            "invalid end_time: out of range"
        );
    }

    #[test]
    fn unknown_operation_lists_the_valid_ones() {
        assert_eq!(
            message(fields(r#"{"operation":"median"}"#).operation()),
            "invalid operation: \"median\" is not one of avg, sum, min, max, count"
        );
    }
}
