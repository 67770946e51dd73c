//! CSV replay for backfill: rows of `timestamp,device_id,metric_name,value` published with
//! their own timestamps, as fast as asked.
//!
//! The file format:
//!
//! 1. A header row is required. By default it names the columns `timestamp`, `device_id`,
//!    `metric_name` and `value`, in any order; other columns are ignored. A file with other
//!    names maps them with `--columns timestamp=time,device_id=station,...` (each field may
//!    also be written `ts`, `device`, `metric`).
//! 2. One reading a row. `timestamp` is unix seconds (fractions allowed) or RFC 3339
//!    (`2010-01-01T00:00:00Z`, `2010-01-01 00:00:00+01:00`); `value` a decimal number.
//! 3. Fields are separated by `,`; a field may be double-quoted (`"a,b"`, `""` for a quote).
//!    Blank lines are skipped.
//!
//! A bad row is reported with its line number and skipped; the run goes on. Every
//! [`PROGRESS_EVERY`](super::progress::PROGRESS_EVERY) a progress line gives the rows done
//! of the file's total (counted by a first pass over the file, which costs one read of
//! it) and an ETA.

use crate::civil::parse_rfc3339_millis;
use crate::error::{Error, Result};
use crate::{log_info, log_warn};
use std::io::BufRead;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::mqtt::MqttPublisher;
use super::pacing::{Pacer, Until};
use super::progress::{Goal, Progress};
use super::reading::Reading;
use super::REPORT_EVERY;
use crate::throttle::Throttle;

/// Which header names hold the four fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnMap {
    pub timestamp: String,
    pub device_id: String,
    pub metric_name: String,
    pub value: String,
}

impl Default for ColumnMap {
    fn default() -> ColumnMap {
        ColumnMap {
            timestamp: "timestamp".into(),
            device_id: "device_id".into(),
            metric_name: "metric_name".into(),
            value: "value".into(),
        }
    }
}

impl ColumnMap {
    /// Parses `field=header,...`; fields not named keep their default header.
    pub fn parse(spec: &str) -> Result<ColumnMap> {
        let mut map = ColumnMap::default();
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, header) = pair.split_once('=').ok_or_else(|| {
                Error::invalid("columns", format!("{pair:?} is not field=header"))
            })?;
            let header = header.trim().to_string();
            if header.is_empty() {
                return Err(Error::invalid(
                    "columns",
                    format!("{pair:?} names no header"),
                ));
            }
            match field.trim() {
                "timestamp" | "ts" | "time" => map.timestamp = header,
                "device_id" | "device" => map.device_id = header,
                "metric_name" | "metric" => map.metric_name = header,
                "value" => map.value = header,
                other => {
                    return Err(Error::invalid(
                        "columns",
                        format!(
                        "unknown field {other:?}: use timestamp, device_id, metric_name or value"
                    ),
                    ))
                }
            }
        }
        Ok(map)
    }
}

/// Column positions of the four fields in a file, found from its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CsvLayout {
    timestamp: usize,
    device_id: usize,
    metric_name: usize,
    value: usize,
}

impl CsvLayout {
    pub fn from_header(
        header: &str,
        columns: &ColumnMap,
    ) -> std::result::Result<CsvLayout, String> {
        let names = split_csv_line(header.trim_start_matches('\u{feff}'))?;
        let find = |wanted: &str| {
            names
                .iter()
                .position(|n| n.trim() == wanted)
                .ok_or_else(|| {
                    format!(
                        "header has no column {wanted:?} (columns: {}); map yours with --columns",
                        names.join(",")
                    )
                })
        };
        Ok(CsvLayout {
            timestamp: find(&columns.timestamp)?,
            device_id: find(&columns.device_id)?,
            metric_name: find(&columns.metric_name)?,
            value: find(&columns.value)?,
        })
    }

    /// One data row as a checked reading.
    pub fn parse_row(&self, line: &str) -> std::result::Result<Reading, String> {
        let fields = split_csv_line(line)?;
        let field = |i: usize, name: &str| {
            fields
                .get(i)
                .map(|f| f.trim())
                .ok_or_else(|| format!("row has {} fields, no {name}", fields.len()))
        };
        let ts = field(self.timestamp, "timestamp")?;
        let value = field(self.value, "value")?;
        let reading = Reading {
            device_id: field(self.device_id, "device_id")?.to_string(),
            metric_name: field(self.metric_name, "metric_name")?.to_string(),
            timestamp: parse_timestamp(ts)?,
            value: value
                .parse()
                .map_err(|_| format!("value {value:?} is not a number"))?,
        };
        reading.check()?;
        Ok(reading)
    }
}

/// Splits one CSV line into fields, honouring double quotes.
pub fn split_csv_line(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.trim_end_matches(['\r', '\n']).chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            (false, ',') => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    if quoted {
        return Err("unclosed quote".to_string());
    }
    fields.push(field);
    Ok(fields)
}

/// Unix seconds, or an RFC 3339 date-time (`T` or a space between date and time; `Z` or
/// an offset; an absent zone means UTC).
pub fn parse_timestamp(raw: &str) -> std::result::Result<f64, String> {
    if let Ok(seconds) = raw.parse::<f64>() {
        return Ok(seconds);
    }
    parse_rfc3339(raw).ok_or_else(|| {
        format!("timestamp {raw:?} is neither unix seconds nor RFC 3339 (2010-01-01T00:00:00Z)")
    })
}

/// RFC 3339 through [`parse_rfc3339_millis`], the server's parser, as unix seconds; a
/// date-time without a zone is read as UTC (spreadsheets often export it so).
fn parse_rfc3339(raw: &str) -> Option<f64> {
    let millis = parse_rfc3339_millis(raw)
        .or_else(|_| parse_rfc3339_millis(&format!("{raw}Z")))
        .ok()?;
    Some(millis as f64 / 1000.0)
}

/// Lines of `path` after the header that are not blank: the rows a replay will read.
fn count_data_lines(path: &Path) -> Result<u64> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut rows = 0u64;
    for line in std::io::BufReader::new(file).split(b'\n').skip(1) {
        let line = line.map_err(|e| Error::io(path, e))?;
        if !line.iter().all(u8::is_ascii_whitespace) {
            rows += 1;
        }
    }
    Ok(rows)
}

/// What a replay did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayCounts {
    pub rows: u64,
    pub published: u64,
    pub skipped: u64,
}

/// Publishes every row of `path` at up to `rate` rows a second (`None`: unlimited).
pub fn replay_csv(
    path: &Path,
    columns: &ColumnMap,
    rate: Option<f64>,
    publisher: &mut MqttPublisher,
    stop: &AtomicBool,
) -> Result<ReplayCounts> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut lines = std::io::BufReader::new(file).lines();
    let header = match lines.next() {
        Some(line) => line.map_err(|e| Error::io(path, e))?,
        None => {
            return Err(Error::invalid(
                "replay",
                format!("{}: empty file, no header", path.display()),
            ))
        }
    };
    let layout = CsvLayout::from_header(&header, columns)
        .map_err(|e| Error::invalid("replay", format!("{}: {e}", path.display())))?;
    log_info!(
        "replaying {} at {}",
        path.display(),
        rate.map_or("full speed".to_string(), |r| format!("{r} rows/s"))
    );
    let total_rows = count_data_lines(path)?;
    let mut counts = ReplayCounts::default();
    let started = Instant::now();
    let mut progress = Progress::new(
        format!("replay {}", path.display()),
        "rows",
        started,
        Goal::Items(total_rows),
    );
    let mut pacer = Pacer::per_second(rate, started);
    let mut trouble = Throttle::new(REPORT_EVERY);
    let until = Until::stopped(stop);
    for (index, line) in lines.enumerate() {
        let line_no = index + 2;
        let line = line.map_err(|e| Error::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        counts.rows += 1;
        if let Some(line) = progress.tick(Instant::now(), counts.rows - 1, publisher.delivery()) {
            log_info!("{line}");
        }
        let reading = match layout.parse_row(&line) {
            Ok(r) => r,
            Err(e) => {
                counts.skipped += 1;
                trouble.warn(|| format!("{} line {line_no}: skipped: {e}", path.display()));
                continue;
            }
        };
        if !pacer.wait(&until) || !publisher.publish(&reading, &until) {
            log_warn!("replay of {} stopped at line {line_no}", path.display());
            break;
        }
        counts.published += 1;
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_header_in_any_order() {
        let layout = CsvLayout::from_header(
            "value,metric_name,device_id,timestamp",
            &ColumnMap::default(),
        )
        .unwrap();
        let r = layout
            .parse_row("39.4,temperature,seattle_wa,1262304000")
            .unwrap();
        assert_eq!(r.device_id, "seattle_wa");
        assert_eq!(r.metric_name, "temperature");
        assert_eq!(r.timestamp, 1262304000.0);
        assert_eq!(r.value, 39.4);
    }

    #[test]
    fn mapped_header_and_extra_columns() {
        let map = ColumnMap::parse("ts=time, device=station,metric=kind,value=reading").unwrap();
        let layout = CsvLayout::from_header("station,time,note,kind,reading", &map).unwrap();
        let r = layout
            .parse_row("st_1,2010-01-01T00:00:00Z,\"ok, fine\",humidity,71")
            .unwrap();
        assert_eq!((r.timestamp, r.value), (1262304000.0, 71.0));
        assert_eq!(r.device_id, "st_1");
    }

    #[test]
    fn missing_column_names_what_is_there() {
        let e = CsvLayout::from_header("time,dev,val", &ColumnMap::default()).unwrap_err();
        assert!(e.contains("timestamp") && e.contains("time,dev,val"), "{e}");
    }

    #[test]
    fn unknown_mapping_field_is_refused() {
        assert!(ColumnMap::parse("unit=u").is_err());
        assert!(ColumnMap::parse("ts").is_err());
    }

    #[test]
    fn bad_rows_are_errors() {
        let layout = CsvLayout::from_header(
            "timestamp,device_id,metric_name,value",
            &ColumnMap::default(),
        )
        .unwrap();
        for bad in [
            "x,d,m,1",
            "1262304000,d,m,abc",
            "1262304000,d,m",
            "1262304000000,d,m,1",
            "1262304000,,m,1",
            "1262304000,d,m,\"1",
        ] {
            assert!(layout.parse_row(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn csv_quotes() {
        assert_eq!(
            split_csv_line("a,\"b,c\",\"d\"\"e\",").unwrap(),
            vec!["a", "b,c", "d\"e", ""]
        );
    }

    #[test]
    fn rfc3339_forms() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z").unwrap(), 0.0);
        assert_eq!(
            parse_timestamp("2010-01-01 01:00:00+01:00").unwrap(),
            1262304000.0
        );
        assert_eq!(
            parse_timestamp("2024-02-29T12:00:00.5Z").unwrap(),
            1709208000.5
        );
        assert_eq!(parse_timestamp("1710000000.25").unwrap(), 1710000000.25);
        assert_eq!(
            parse_timestamp("2010-01-01T00:00:00").unwrap(),
            1262304000.0,
            "no zone: UTC"
        );
        assert!(parse_timestamp("2024-13-01T00:00:00Z").is_err());
        assert!(parse_timestamp("2010-01-01T00:00:00ZZ").is_err());
        assert!(parse_timestamp("yesterday").is_err());
    }
}
