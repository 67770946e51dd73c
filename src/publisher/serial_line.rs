//! What an Arduino may print on its serial port, one reading (or several) a line, and the
//! byte stream → lines splitter in front of the parser.
//!
//! Accepted line formats (surrounding whitespace and a trailing `\r` are ignored):
//!
//! 1. JSON, the MQTT payload itself with every field but the value optional:
//!    `{"metric_name":"temperature","value":23.45}`, plus `device_id` (a string) and
//!    `timestamp` (unix seconds) when the device knows them. A JSON object without
//!    `metric_name`/`value` is read as one metric a numeric field:
//!    `{"temperature":23.45,"humidity":40.1}` (`device_id` and `timestamp` keep their meaning).
//! 2. One pair, `metric:value` — `temperature:23.45`.
//! 3. Pairs separated by commas, `key=value,key=value` — `humidity=40.1,light=312`, each a
//!    metric (`:` is accepted in place of `=` too, and `;` in place of `,`). The key
//!    `device_id` is not a metric: it names the device of every reading on the line
//!    (`device_id=uno_7,temp=21.5`), as `--device_id` does for lines without it.
//!
//! In formats 2 and 3 (and in a JSON string value) a unit may follow the number, with or
//! without a space: `Temperature: 25.0 C`, `temp=21.5C`, `rh=40 %`, `t=21.5 °C`. The unit is
//! dropped, not stored: a unit is letters, `°`, `%` and `/` (`m/s`), so `21.5 x3` is still
//! refused as not a number.
//!
//! An empty line, or one starting with `#`, is a comment and yields nothing, so a sketch can
//! print banners. Anything else is an error that names the problem; the caller reports it
//! and goes on with the next line.

use crate::ingest::payload::MAX_TIMESTAMP_SECONDS;
use serde_json::{Map, Value};

use super::reading::Reading;

/// Longest line kept, in bytes; longer ones are line noise (a wrong baud rate) or a bug.
pub const MAX_LINE_BYTES: usize = 512;

/// A reading as the device sent it: the device and time are filled in by the publisher
/// when the line did not carry them.
#[derive(Clone, Debug, PartialEq)]
pub struct LineReading {
    pub device_id: Option<String>,
    pub metric_name: String,
    pub timestamp: Option<f64>,
    pub value: f64,
}

impl LineReading {
    /// Completes the reading with the publisher's device id and clock where missing.
    pub fn complete(self, device_id: &str, now: f64) -> Reading {
        Reading {
            device_id: self.device_id.unwrap_or_else(|| device_id.to_string()),
            metric_name: self.metric_name,
            timestamp: self.timestamp.unwrap_or(now),
            value: self.value,
        }
    }
}

/// Parses one serial line (formats in the module doc).
pub fn parse_serial_line(line: &str) -> Result<Vec<LineReading>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(Vec::new());
    }
    if line.starts_with('{') {
        return parse_json_line(line);
    }
    let mut readings = Vec::new();
    let mut device_id: Option<String> = None;
    for pair in line.split([',', ';']) {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair
            .split_once(['=', ':'])
            .ok_or_else(|| format!("{pair:?} is not metric:value or key=value"))?;
        if key.trim() == "device_id" {
            if device_id.is_some() {
                return Err("device_id given twice on the line".to_string());
            }
            device_id = Some(device_name(value)?);
            continue;
        }
        readings.push(LineReading {
            device_id: None,
            metric_name: metric_name(key)?,
            timestamp: None,
            value: number(key.trim(), value.trim())?,
        });
    }
    if readings.is_empty() {
        return Err("no reading on the line".to_string());
    }
    if device_id.is_some() {
        for reading in &mut readings {
            reading.device_id.clone_from(&device_id);
        }
    }
    Ok(readings)
}

fn parse_json_line(line: &str) -> Result<Vec<LineReading>, String> {
    let object: Map<String, Value> =
        serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let device_id = match object.get("device_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(format!("device_id must be a string, got {other}")),
    };
    let timestamp = match object.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let t = json_number("timestamp", v)?;
            if !(0.0..MAX_TIMESTAMP_SECONDS).contains(&t) {
                return Err(format!(
                    "timestamp {t} is not unix seconds in [1970, 2200); leave it out to use the publisher's clock"
                ));
            }
            Some(t)
        }
    };
    if object.contains_key("value") || object.contains_key("metric_name") {
        let metric = match object.get("metric_name") {
            Some(Value::String(s)) => metric_name(s)?,
            Some(other) => return Err(format!("metric_name must be a string, got {other}")),
            None => return Err("value without metric_name".to_string()),
        };
        let value = match object.get("value") {
            Some(v) => json_number("value", v)?,
            None => return Err(format!("metric {metric:?} without a value")),
        };
        return Ok(vec![LineReading {
            device_id,
            metric_name: metric,
            timestamp,
            value,
        }]);
    }
    let mut readings = Vec::new();
    for (key, v) in &object {
        if key == "device_id" || key == "timestamp" {
            continue;
        }
        readings.push(LineReading {
            device_id: device_id.clone(),
            metric_name: metric_name(key)?,
            timestamp,
            value: json_number(key, v)?,
        });
    }
    if readings.is_empty() {
        return Err("JSON object holds no metric".to_string());
    }
    Ok(readings)
}

/// A metric name as it will appear in a topic level and a series key.
fn metric_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("empty metric name".to_string());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(format!(
            "metric name {name:?} may hold only letters, digits, '_', '-' and '.'"
        ));
    }
    Ok(name.to_string())
}

/// A `device_id=` value: non-empty, without `|` or control characters (the server's rules
/// for a device id).
fn device_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("empty device_id".to_string());
    }
    if name.chars().any(|c| c == '|' || c.is_control()) {
        return Err(format!(
            "device_id {name:?} may not hold '|' or control characters"
        ));
    }
    Ok(name.to_string())
}

/// A number as a sketch prints it (`Serial.print(23.45)`), optionally followed by a unit
/// (dropped); `nan`/`inf` (a failed sensor read) are refused.
fn number(metric: &str, raw: &str) -> Result<f64, String> {
    let (digits, unit) = raw.split_at(number_prefix_len(raw));
    let unit = unit.trim();
    let is_unit = |c: char| c.is_alphabetic() || matches!(c, '°' | '%' | '/');
    let text = if raw.parse::<f64>().is_ok() || unit.is_empty() || !unit.chars().all(is_unit) {
        raw
    } else {
        digits.trim_end()
    };
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{metric}: {raw:?} is not a number"))?;
    if !value.is_finite() {
        return Err(format!(
            "{metric}: {raw:?} is not a finite number (sensor read failed?)"
        ));
    }
    Ok(value)
}

/// Bytes of `raw` that form a decimal number: sign, digits, fraction, and an exponent
/// only when digits follow the `e` (so `21.5e` leaves `e` as a unit, not a broken number).
fn number_prefix_len(raw: &str) -> usize {
    let b = raw.as_bytes();
    let digits_from = |mut at: usize| {
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        at
    };
    let mut at = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    at = digits_from(at);
    if b.get(at) == Some(&b'.') {
        at = digits_from(at + 1);
    }
    if matches!(b.get(at), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(at + 1), Some(b'+' | b'-')));
        let end = digits_from(at + 1 + sign);
        if end > at + 1 + sign {
            at = end;
        }
    }
    at
}

fn json_number(field: &str, v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .ok_or_else(|| format!("{field}: {n} is not a finite number")),
        Value::String(s) => number(field, s.trim()),
        other => Err(format!("{field} must be a number, got {other}")),
    }
}

/// Splits a byte stream into lines, holding back a partial line until its end arrives and
/// cutting off lines longer than [`MAX_LINE_BYTES`].
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
    /// True while the rest of an overlong line is being skipped.
    skipping: bool,
}

impl LineSplitter {
    /// Feeds bytes; returns each completed line, or an error for each overlong one.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<String, String>> {
        let mut lines = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                if self.skipping {
                    self.skipping = false;
                } else {
                    let line = String::from_utf8_lossy(&self.partial);
                    lines.push(Ok(line.trim_end_matches('\r').to_string()));
                }
                self.partial.clear();
            } else if !self.skipping {
                if self.partial.len() == MAX_LINE_BYTES {
                    self.partial.clear();
                    self.skipping = true;
                    lines.push(Err(format!(
                        "line longer than {MAX_LINE_BYTES} bytes (wrong --baud?)"
                    )));
                } else {
                    self.partial.push(b);
                }
            }
        }
        lines
    }

    /// Forgets a partial line, e.g. after the port was reopened.
    pub fn reset(&mut self) {
        self.partial.clear();
        self.skipping = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(metric: &str, value: f64) -> LineReading {
        LineReading {
            device_id: None,
            metric_name: metric.to_string(),
            timestamp: None,
            value,
        }
    }

    #[test]
    fn colon_pair_is_one_reading() {
        assert_eq!(
            parse_serial_line("temperature:23.45\r").unwrap(),
            vec![one("temperature", 23.45)]
        );
    }

    #[test]
    fn key_value_pairs_are_one_reading_each() {
        assert_eq!(
            parse_serial_line("humidity=40.1, light=312").unwrap(),
            vec![one("humidity", 40.1), one("light", 312.0)]
        );
    }

    #[test]
    fn json_payload_keeps_device_and_timestamp() {
        let r = parse_serial_line(
            r#"{"device_id":"uno_7","metric_name":"temperature","timestamp":1710000000,"value":21.5}"#,
        )
        .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].device_id.as_deref(), Some("uno_7"));
        assert_eq!(r[0].timestamp, Some(1710000000.0));
        assert_eq!(r[0].value, 21.5);
    }

    #[test]
    fn json_without_device_or_time_is_completed() {
        let r = parse_serial_line(r#"{"metric_name":"pressure","value":1013.2}"#).unwrap();
        let full = r[0].clone().complete("arduino_1", 1710000000.5);
        assert_eq!(full.device_id, "arduino_1");
        assert_eq!(full.timestamp, 1710000000.5);
    }

    #[test]
    fn json_object_of_metrics_is_one_reading_each() {
        let r = parse_serial_line(r#"{"temperature":23.4,"humidity":40}"#).unwrap();
        let names: Vec<_> = r.iter().map(|r| r.metric_name.as_str()).collect();
        assert_eq!(names, ["humidity", "temperature"]);
    }

    #[test]
    fn device_id_pair_names_the_device_of_the_line() {
        let r = parse_serial_line("device_id=uno_7, temp=21.5; rh:40").unwrap();
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|r| r.device_id.as_deref() == Some("uno_7")));
        assert_eq!((r[0].metric_name.as_str(), r[0].value), ("temp", 21.5));
        let full = r[1].clone().complete("arduino_1", 1.0);
        assert_eq!(full.device_id, "uno_7");
        // Not a metric, and on its own no reading.
        assert!(parse_serial_line("device_id=uno_7").is_err());
        for bad in [
            "device_id=,t=1",
            "device_id=a|b,t=1",
            "device_id=a,device_id=b,t=1",
        ] {
            assert!(parse_serial_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_unit_after_the_number_is_dropped() {
        for (line, metric, value) in [
            ("Temperature: 25.0 C", "Temperature", 25.0),
            ("temp=21.5C", "temp", 21.5),
            ("rh=40 %", "rh", 40.0),
            ("t=21.5 °C", "t", 21.5),
            ("wind=3.5m/s", "wind", 3.5),
            ("p=1.0e3hPa", "p", 1000.0),
            ("x=-2e", "x", -2.0),
        ] {
            assert_eq!(
                parse_serial_line(line).unwrap(),
                vec![one(metric, value)],
                "{line}"
            );
        }
        let r = parse_serial_line(r#"{"temperature":"25.0 C"}"#).unwrap();
        assert_eq!(r[0].value, 25.0);
    }

    #[test]
    fn a_unit_does_not_make_junk_a_number() {
        for bad in [
            "t=C",
            "t=21.5 x3",
            "t=21.5.3C",
            "t= C 21",
            "t=nanC",
            "t=infinity",
        ] {
            assert!(parse_serial_line(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn comments_and_blank_lines_yield_nothing() {
        assert!(parse_serial_line("").unwrap().is_empty());
        assert!(parse_serial_line("# minitrue sensor v1")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn bad_lines_are_errors_naming_the_problem() {
        for bad in [
            "hello world",
            "temperature:abc",
            "temperature:nan",
            "=5",
            "temp/x:1",
            "{\"metric_name\":\"t\"}",
            "{\"value\":1}",
            "{\"metric_name\":\"t\",\"value\":1,\"timestamp\":1710000000000}",
            "{broken",
            ",,,",
        ] {
            assert!(parse_serial_line(bad).is_err(), "{bad:?} should be refused");
        }
        let e = parse_serial_line("temperature:abc").unwrap_err();
        assert!(e.contains("temperature") && e.contains("abc"), "{e}");
    }

    #[test]
    fn splitter_holds_partial_lines() {
        let mut s = LineSplitter::default();
        assert!(s.push(b"tempera").is_empty());
        assert_eq!(s.push(b"ture:1\r\nhum"), vec![Ok("temperature:1".into())]);
        assert_eq!(s.push(b"=2\n"), vec![Ok("hum=2".into())]);
    }

    #[test]
    fn splitter_cuts_overlong_lines_once() {
        let mut s = LineSplitter::default();
        let long = vec![b'x'; MAX_LINE_BYTES * 3];
        let out = s.push(&long);
        assert_eq!(out.len(), 1);
        assert!(out[0].is_err());
        assert_eq!(s.push(b"\nok:1\n"), vec![Ok("ok:1".into())]);
    }
}
