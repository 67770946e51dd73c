//! InfluxDB line protocol, as Telegraf and the Influx client libraries send it, turned into
//! MiniTrue [`Point`]s.
//!
//! One point set per line:
//!
//! ```text
//! measurement[,tag_key=tag_value...] field_key=field_value[,field_key=field_value...] [timestamp]
//! ```
//!
//! Mapping onto MiniTrue's series (a metric name and labels, see
//! [`SeriesKey`]; the same convention as Prometheus' InfluxDB adapter, which names a sample
//! `{measurement}_{field}`):
//!
//! 1. Every tag is a label, `device_id` among them; a line needs none (Telegraf's
//!    `cpu,host=a usage_idle=98` is the series `cpu_usage_idle{host="a"}`). Readings that
//!    differ in one tag are two series, never merged. A tag key becomes a label name with
//!    every character other than ASCII letters, digits, `_`, `.`, `-`, `:` replaced by `_`
//!    (and `_` before a leading digit); keys starting with `__` are refused (reserved), as
//!    are more than [`MAX_LABELS`] tags, a value over 1 KiB or one with a control character.
//! 2. The field `value` becomes the metric named after the measurement
//!    (`temperature,device_id=s1 value=24.2` → `temperature{device_id="s1"}`); any other
//!    field `f` becomes the metric `{measurement}_{f}` (`cpu,device_id=s1 usage=3` →
//!    `cpu_usage{device_id="s1"}`). So
//!    `cpu usage=…` and `cpu_usage value=…` write the same series.
//! 3. Field values: floats (`1.5`, `-2e3`, `7`), integers (`7i`) and unsigned integers
//!    (`7u`) all become `f64` (integers beyond ±2^53 lose precision); booleans (`t`, `true`,
//!    `F`, ...) are stored as 1 and 0, as Prometheus' and VictoriaMetrics' InfluxDB
//!    endpoints do. String fields cannot be stored (MiniTrue keeps numbers): the field is
//!    skipped, the line's other fields are stored, and the line is reported. Non-finite
//!    floats (`1e400`) are errors.
//! 4. The timestamp is an integer in the request's [`Precision`] (nanoseconds by default),
//!    converted to milliseconds by flooring division: sub-millisecond precision is lost, and
//!    two points less than a millisecond apart land on the same timestamp, where the later
//!    one wins (writes are idempotent). A line without a timestamp gets `now`.
//!
//! Syntax handled as InfluxDB does: a backslash escapes `,`, space, `=` and `\` in the
//! measurement, tag keys, tag values and field keys (a backslash before any other character
//! is kept literally); string field values are double-quoted with `\"` and `\\` escapes and
//! may hold spaces, commas and `=`; lines whose first non-blank character is `#` are
//! comments; blank lines are skipped; `\r\n` line ends are accepted; runs of spaces separate
//! the sections.
//!
//! A body is written **as InfluxDB does** ([`parse_body`]): every good line is stored, and
//! each line that could not be stored (a syntax error, a bad timestamp, a bad tag) or
//! was stored only in part (a string field) is reported as `line N: column C: …` (columns
//! count bytes from 1). The HTTP answer is then InfluxDB's partial-write 400 naming those
//! lines, so a client learns what was dropped and never resends what was stored.
//! [`parse_line_protocol`] is the strict form: the first problem fails the whole body.
//!
//! The parser walks each line's bytes once and borrows names from the body. A line's series
//! section (measurement and tags) is parsed and checked the first time the node sees its
//! text; after that a shared, bounded cache gives the section's series keys (the same
//! shared keys the series map holds), so a sensor's repeated lines allocate nothing for
//! their keys. On a 10 000-series, five-label set this took ingest from 0.47 M to about
//! 0.8 M points/s (docs/benchmarks.md).

use super::timestamp::{rule_error, DEFAULT_MAX_FUTURE};
use crate::error::{Error, Result};
use crate::storage::series_key::{check_label, KeyHashState};
use crate::storage::{Point, SeriesKey, Timestamp, MAX_LABELS};
use std::borrow::Cow;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// The tag whose value is a point's device id.
pub const DEVICE_TAG: &str = "device_id";

/// The field whose metric is named after the measurement alone.
pub const VALUE_FIELD: &str = "value";

/// Series sections the node keeps parsed; past this a shard starts over, so memory stays
/// bounded whatever clients send.
const MAX_CACHED_SECTIONS: usize = 50_000;

/// Text bytes (sections and their keys' canonical text) one cache shard may hold before it
/// starts over: 1 MiB, 16 MiB for the whole cache, however long or many the sections are.
const MAX_SHARD_BYTES: usize = 1 << 20;

/// Shards of the section cache: writers on different shards never wait for each other.
const SECTION_SHARDS: usize = 16;

/// Field keys whose series one cached section keeps.
const MAX_CACHED_FIELDS: usize = 64;

/// A line's series section (`measurement,tag=v,...`) parsed and checked: its measurement,
/// the series of each field key seen with it, and its labels until the first of those
/// series holds them.
struct Section {
    measurement: String,
    labels: Vec<(String, String)>,
    keys: Vec<(Box<str>, SeriesKey)>,
}

/// One shard of the section cache and the text bytes it holds. Sections are found by their
/// text's hash, computed once per line ([`section_hash`]) and used as is ([`KeyHashState`]);
/// the few texts that share a hash sit side by side in its bucket.
#[derive(Default)]
struct SectionShard {
    sections: HashMap<u64, Vec<(Box<str>, Section)>, KeyHashState>,
    count: usize,
    bytes: usize,
}

impl SectionShard {
    /// Makes room for `bytes` more, starting over when the shard is full.
    fn reserve(&mut self, bytes: usize) {
        if self.count >= MAX_CACHED_SECTIONS / SECTION_SHARDS
            || self.bytes + bytes > MAX_SHARD_BYTES
        {
            self.sections.clear();
            self.count = 0;
            self.bytes = 0;
        }
        self.bytes += bytes;
    }

    /// The cached section of `text` (whose hash is `hash`), parsed by `parse` and cached
    /// first when absent; a parse error caches nothing.
    fn get_or_parse(
        &mut self,
        hash: u64,
        text: &str,
        parse: impl FnOnce() -> Result<Section>,
    ) -> Result<&mut Section> {
        let found = self
            .sections
            .get(&hash)
            .and_then(|bucket| bucket.iter().position(|(t, _)| **t == *text));
        let index = match found {
            Some(index) => index,
            None => {
                let section = parse()?;
                self.reserve(2 * text.len());
                let bucket = self.sections.entry(hash).or_default();
                bucket.push((text.into(), section));
                self.count += 1;
                bucket.len() - 1
            }
        };
        self.sections
            .get_mut(&hash)
            .and_then(|bucket| bucket.get_mut(index))
            .map(|(_, section)| section)
            .ok_or_else(|| Error::Closed("series section cache lost an entry".to_string()))
    }
}

/// The hash of a series section's text: SipHash with this process's random key, so texts
/// from outside cannot be chosen to pile into one bucket.
fn section_hash(text: &str) -> u64 {
    static HASHER: OnceLock<RandomState> = OnceLock::new();
    HASHER.get_or_init(RandomState::new).hash_one(text)
}

/// Parsed series sections by their raw text, shared by every HTTP worker (so each series
/// has one key, the series map's). Parsing is a pure function of the text, so a hit is
/// exactly what parsing again would give.
fn section_shard(hash: u64) -> MutexGuard<'static, SectionShard> {
    static SHARDS: OnceLock<Vec<Mutex<SectionShard>>> = OnceLock::new();
    let shards = SHARDS.get_or_init(|| {
        (0..SECTION_SHARDS)
            .map(|_| Mutex::new(SectionShard::default()))
            .collect()
    });
    // Middle bits: the shard's map places a section by the low bits and tags it with the
    // top seven, so neither may be the same for every section of a shard.
    let shard = (hash >> 32) as usize % SECTION_SHARDS;
    // A holder only inserts whole entries or clears: a poisoned map is still consistent.
    shards[shard]
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The unit of the timestamps in a line protocol body (InfluxDB's `precision` parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// Nanoseconds, InfluxDB's default.
    #[default]
    Ns,
    /// Microseconds.
    Us,
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
    /// Minutes (InfluxDB 1.x `m`).
    M,
    /// Hours (InfluxDB 1.x `h`).
    H,
}

impl Precision {
    /// Parses InfluxDB's precision names: `ns`/`n`, `us`/`u`/`µ`, `ms`, `s`, `m`, `h`.
    pub fn parse(text: &str) -> Result<Precision> {
        match text {
            "ns" | "n" => Ok(Precision::Ns),
            "us" | "u" | "µ" => Ok(Precision::Us),
            "ms" => Ok(Precision::Ms),
            "s" => Ok(Precision::S),
            "m" => Ok(Precision::M),
            "h" => Ok(Precision::H),
            other => Err(Error::invalid(
                "precision",
                format!("{other:?} is not one of ns, n, us, u, µ, ms, s, m, h"),
            )),
        }
    }

    /// Converts a timestamp in this unit to milliseconds, flooring finer units (so
    /// `-1ns` is `-1ms`, the millisecond that contains it). `None` on overflow.
    pub fn to_millis(self, timestamp: i64) -> Option<i64> {
        match self {
            Precision::Ns => Some(timestamp.div_euclid(1_000_000)),
            Precision::Us => Some(timestamp.div_euclid(1_000)),
            Precision::Ms => Some(timestamp),
            Precision::S => timestamp.checked_mul(1_000),
            Precision::M => timestamp.checked_mul(60_000),
            Precision::H => timestamp.checked_mul(3_600_000),
        }
    }
}

/// Parses a line protocol body into points, in order of appearance (fields of a line in
/// order, one point each). Lines without a timestamp are stamped `now`. Any problem with
/// any line (see [`parse_body`]) fails the whole body.
pub fn parse_line_protocol(body: &str, precision: Precision, now: Timestamp) -> Result<Vec<Point>> {
    parse_line_protocol_within(body, precision, now, DEFAULT_MAX_FUTURE)
}

/// [`parse_line_protocol`] refusing timestamps more than `max_future` ahead of `now` (and
/// outside 1970..2262, see [`super::timestamp`]), naming the line.
pub fn parse_line_protocol_within(
    body: &str,
    precision: Precision,
    now: Timestamp,
    max_future: Duration,
) -> Result<Vec<Point>> {
    let mut parsed = parse_body(body, precision, now, max_future);
    match parsed.problems.is_empty() {
        true => Ok(parsed.points),
        false => Err(parsed.problems.swap_remove(0).error),
    }
}

/// What a body yields under InfluxDB's partial-write rule.
#[derive(Debug, Default)]
pub struct ParsedBody {
    /// The points of every line that could be stored, in order.
    pub points: Vec<Point>,
    /// Every line that was not stored, or stored only in part, in order.
    pub problems: Vec<LineProblem>,
    /// Lines that held something (not blank, not a comment).
    pub lines: usize,
}

/// One line of a body that was not stored as sent.
#[derive(Debug)]
pub struct LineProblem {
    /// 1-based line number.
    pub line: usize,
    /// Points of the line that were stored anyway (its numeric fields, when a string field
    /// was skipped); 0 when the line was dropped.
    pub stored: usize,
    /// `line N: column C: why`, as an invalid-input error.
    pub error: Error,
}

/// Parses every line of `body`: the good ones into points, the others into problems
/// (InfluxDB 1.x and 2.x write the good lines of a batch and report the rest).
pub fn parse_body(
    body: &str,
    precision: Precision,
    now: Timestamp,
    max_future: Duration,
) -> ParsedBody {
    // One point per line is the common case (Telegraf writes one field per line for most
    // inputs); a multi-field line only grows the vector once more.
    let lines = body.bytes().filter(|&b| b == b'\n').count() + 1;
    let mut parsed = ParsedBody {
        points: Vec::with_capacity(lines),
        ..ParsedBody::default()
    };
    let mut metric = String::new();
    let mut strings = Vec::new();
    for (index, text) in body.split('\n').enumerate() {
        let line = Line {
            number: index + 1,
            text: text.strip_suffix('\r').unwrap_or(text),
        };
        let first = parsed.points.len();
        strings.clear();
        match line.parse(
            precision,
            (now, max_future),
            &mut metric,
            &mut parsed.points,
            &mut strings,
        ) {
            Ok(false) => continue,
            Ok(true) => parsed.lines += 1,
            Err(error) => {
                parsed.lines += 1;
                parsed.points.truncate(first);
                parsed.problems.push(LineProblem {
                    line: line.number,
                    stored: 0,
                    error,
                });
                continue;
            }
        }
        if let Some(&(column, ref key)) = strings.first() {
            let stored = parsed.points.len() - first;
            let others = match stored {
                0 => "no numeric field to store, nothing stored".to_string(),
                n => format!("its {n} other field(s) stored"),
            };
            let names: Vec<String> = strings.iter().map(|(_, k)| format!("{k:?}")).collect();
            let what = match names.len() {
                1 => format!("field {key:?} is a string"),
                _ => format!("fields {} are strings", names.join(", ")),
            };
            parsed.problems.push(LineProblem {
                line: line.number,
                stored,
                error: line.error(
                    column,
                    format!("{what}: not stored, MiniTrue stores numbers only ({others})"),
                ),
            });
        }
    }
    parsed
}

/// One line of the body and its 1-based number, for error messages.
struct Line<'a> {
    number: usize,
    text: &'a str,
}

impl<'a> Line<'a> {
    /// Appends the line's points to `points`, and the column and key of every string field
    /// it skipped to `strings`; `metric` is scratch space for metric names. Returns false for
    /// a blank line or a comment. A line is
    /// `measurement[,tag=value...] field=value[,field=value...] [timestamp]`, read one
    /// section at a time by a [`Cursor`]. On an error, points of this line may already be
    /// in `points`: the caller drops them.
    fn parse(
        &self,
        precision: Precision,
        (now, max_future): (Timestamp, Duration),
        metric: &mut String,
        points: &mut Vec<Point>,
        strings: &mut Vec<(usize, String)>,
    ) -> Result<bool> {
        let Some(mut cursor) = Cursor::over(self) else {
            return Ok(false);
        };
        // The series section (measurement and tags, up to the first unescaped space) of a
        // sensor's lines repeats from batch to batch: parsed and checked once, then its keys
        // are reused (the same `Arc` as the series map's, which then compares pointers).
        let section_start = cursor.pos;
        let (section_end, _) = scan(cursor.bytes, section_start, cursor.end, b" ");
        let section_text = &self.text[section_start..section_end];
        let first_point = points.len();
        {
            let hash = section_hash(section_text);
            let mut cache = section_shard(hash);
            let section = cache.get_or_parse(hash, section_text, || {
                Ok(Section {
                    measurement: cursor.measurement()?.into_owned(),
                    labels: cursor.tags()?,
                    keys: Vec::new(),
                })
            })?;
            cursor.pos = section_end;
            cursor.skip_spaces();
            if cursor.at_end() {
                return Err(cursor.error("missing field set (expected ' field=value')"));
            }
            let cached = section
                .keys
                .iter()
                .map(|(_, k)| k.as_str().len())
                .sum::<usize>();
            cursor.fields(section, now, metric, (points, strings))?;
            let added = section
                .keys
                .iter()
                .map(|(_, k)| k.as_str().len())
                .sum::<usize>();
            // Counted after the fact (the next section pays for it): new keys are few.
            cache.bytes += added - cached;
        }
        if let Some(millis) = cursor.timestamp(precision, now, max_future)? {
            for point in &mut points[first_point..] {
                point.timestamp = Timestamp(millis);
            }
        }
        Ok(true)
    }

    fn error(&self, position: usize, reason: impl fmt::Display) -> Error {
        Error::invalid(
            format!("line {}", self.number),
            format!("column {}: {reason}", position + 1),
        )
    }
}

/// A position in one line, between its leading and trailing blanks. Every slice boundary
/// it produces is the position of an ASCII delimiter or the line's end, so slicing never
/// splits a character.
struct Cursor<'l, 'a> {
    line: &'l Line<'a>,
    bytes: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'l, 'a> Cursor<'l, 'a> {
    /// A cursor over `line` without its blanks; `None` for a blank line or a comment.
    fn over(line: &'l Line<'a>) -> Option<Cursor<'l, 'a>> {
        let bytes = line.text.as_bytes();
        let mut end = bytes.len();
        while end > 0 && matches!(bytes[end - 1], b' ' | b'\t') {
            end -= 1;
        }
        let mut pos = 0;
        while pos < end && matches!(bytes[pos], b' ' | b'\t') {
            pos += 1;
        }
        (pos < end && bytes[pos] != b'#').then_some(Cursor {
            line,
            bytes,
            pos,
            end,
        })
    }

    fn at_end(&self) -> bool {
        self.pos == self.end
    }

    fn peek(&self) -> Option<u8> {
        (self.pos < self.end).then(|| self.bytes[self.pos])
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    /// The text up to the next unescaped delimiter, unescaped, and where it ended.
    fn token(&self, from: usize, delimiters: &[u8]) -> (Cow<'a, str>, usize) {
        let (to, escaped) = scan(self.bytes, from, self.end, delimiters);
        (unescape(&self.line.text[from..to], escaped), to)
    }

    fn error(&self, reason: impl fmt::Display) -> Error {
        self.line.error(self.pos, reason)
    }

    fn error_at(&self, position: usize, reason: impl fmt::Display) -> Error {
        self.line.error(position, reason)
    }

    /// The measurement, up to the first unescaped `,` or space.
    fn measurement(&mut self) -> Result<Cow<'a, str>> {
        let (measurement, end) = self.token(self.pos, b", ");
        if end == self.pos {
            return Err(self.error("missing measurement"));
        }
        self.pos = end;
        Ok(measurement)
    }

    /// The tag set, every tag a label, each checked against the label limits (the error
    /// names the tag's column). A line may carry none.
    fn tags(&mut self) -> Result<Vec<(String, String)>> {
        let mut labels = Vec::new();
        if self.peek() != Some(b',') {
            return Ok(labels);
        }
        loop {
            self.pos += 1;
            let key_start = self.pos;
            let (key, key_end) = self.token(key_start, b",= ");
            if key_end == key_start {
                return Err(self.error_at(key_start, "empty tag key"));
            }
            if key_end == self.end || self.bytes[key_end] != b'=' {
                return Err(self.error_at(key_end, format!("tag {key:?} has no '=value'")));
            }
            let value_start = key_end + 1;
            let (value, value_end) = self.token(value_start, b", ");
            if value_end == value_start {
                return Err(self.error_at(value_start, format!("tag {key:?} has an empty value")));
            }
            if labels.len() == MAX_LABELS {
                return Err(self.error_at(
                    key_start,
                    format!(
                        "more than {MAX_LABELS} tags (a series has at most {MAX_LABELS} labels)"
                    ),
                ));
            }
            let key = label_name(&key);
            if labels.iter().any(|(k, _)| *k == key) {
                return Err(self.error_at(key_start, format!("duplicate tag {key:?}")));
            }
            check_label(&key, &value).map_err(|e| match e {
                Error::InvalidInput { field, reason } => {
                    self.error_at(key_start, format!("tag {key:?}: {field} {reason}"))
                }
                other => self.error_at(key_start, other),
            })?;
            labels.push((key, value.into_owned()));
            self.pos = value_end;
            if self.at_end() || self.peek() == Some(b' ') {
                return Ok(labels);
            }
        }
    }

    /// The field set: one point per numeric field, of the series with the line's `labels`,
    /// stamped `now` until the timestamp is read. `value` is stored as the measurement
    /// itself, any other field `f` as `measurement_f`. String fields are skipped, their
    /// column and key noted in `strings`.
    fn fields(
        &mut self,
        section: &mut Section,
        now: Timestamp,
        metric: &mut String,
        (points, strings): (&mut Vec<Point>, &mut Vec<(usize, String)>),
    ) -> Result<()> {
        loop {
            let key_start = self.pos;
            let (key, key_end) = self.token(key_start, b",= ");
            if key_end == key_start {
                return Err(self.error_at(key_start, "empty field key"));
            }
            if key_end == self.end || self.bytes[key_end] != b'=' {
                return Err(self.error_at(key_end, format!("field {key:?} has no '=value'")));
            }
            let value_start = key_end + 1;
            if value_start < self.end && self.bytes[value_start] == b'"' {
                let Some(quote) = closing_quote(self.bytes, value_start + 1, self.end) else {
                    return Err(self.error_at(
                        value_start,
                        format!("field {key:?} has an unterminated string value"),
                    ));
                };
                strings.push((value_start, key.into_owned()));
                self.pos = quote + 1;
                match self.peek() {
                    None | Some(b' ') => return Ok(()),
                    Some(b',') => {
                        self.pos += 1;
                        continue;
                    }
                    Some(_) => {
                        return Err(self.error("unexpected text after a string field value"));
                    }
                }
            }
            let (value_end, _) = scan(self.bytes, value_start, self.end, b", ");
            let value = parse_field_value(&self.line.text[value_start..value_end])
                .map_err(|reason| self.error_at(value_start, format!("field {key:?} {reason}")))?;

            let series = match section.keys.iter().find(|(field, _)| **field == *key) {
                Some((_, series)) => series.clone(),
                None => {
                    let series = self.field_series(section, &key, key_start, metric)?;
                    if section.keys.len() < MAX_CACHED_FIELDS {
                        section.keys.push((key.as_ref().into(), series.clone()));
                        // The key holds the labels now (see `field_series`).
                        section.labels = Vec::new();
                    }
                    series
                }
            };
            points.push(Point {
                series,
                timestamp: now,
                value,
            });

            self.pos = value_end;
            if self.at_end() || self.peek() == Some(b' ') {
                return Ok(());
            }
            self.pos += 1;
        }
    }

    /// The series of field `key` of a line whose series section is `section`: `value` is the
    /// measurement itself, any other field `f` is `measurement_f`.
    fn field_series(
        &self,
        section: &Section,
        key: &str,
        key_start: usize,
        metric: &mut String,
    ) -> Result<SeriesKey> {
        let metric_name: &str = if key == VALUE_FIELD {
            &section.measurement
        } else {
            metric.clear();
            metric.push_str(&section.measurement);
            metric.push('_');
            metric.push_str(key);
            metric.as_str()
        };
        // The labels were checked one by one as the tags were read, and the section's
        // first key sorts them once: what is left to refuse is the metric name.
        let series = match section.keys.first() {
            Some((_, first)) => first.with_metric(metric_name),
            None => SeriesKey::with_labels(
                metric_name,
                section.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            ),
        };
        series.map_err(|e| match e {
            Error::InvalidInput { field, reason } => {
                self.error_at(key_start, format!("{field} {metric_name:?} {reason}"))
            }
            other => self.error_at(key_start, other),
        })
    }

    /// The timestamp, if the line has one, in milliseconds: an integer in `precision`,
    /// within the one timestamp rule (see [`rule_error`]), and the last thing on the line.
    fn timestamp(
        &mut self,
        precision: Precision,
        now: Timestamp,
        max_future: Duration,
    ) -> Result<Option<i64>> {
        self.skip_spaces();
        if self.at_end() {
            return Ok(None);
        }
        let timestamp_start = self.pos;
        let (timestamp_end, _) = scan(self.bytes, self.pos, self.end, b" ");
        let token = &self.line.text[timestamp_start..timestamp_end];
        self.pos = timestamp_end;
        self.skip_spaces();
        if !self.at_end() {
            return Err(self.error("unexpected text after the timestamp"));
        }
        let raw: i64 = token.parse().map_err(|_| {
            self.error_at(
                timestamp_start,
                format!("timestamp {token:?} is not an integer"),
            )
        })?;
        let millis = precision.to_millis(raw).ok_or_else(|| {
            self.error_at(
                timestamp_start,
                format!("timestamp {token:?} is out of range for precision {precision:?}"),
            )
        })?;
        if let Some(why) = rule_error(millis, now, max_future) {
            return Err(self.error_at(
                timestamp_start,
                format!("{why} (read {token:?} as precision {precision:?})"),
            ));
        }
        Ok(Some(millis))
    }
}

/// The position of the first byte of `bytes[from..end]` that is one of `delimiters` and not
/// escaped by a backslash (or `end`), and whether a backslash was seen on the way.
fn scan(bytes: &[u8], from: usize, end: usize, delimiters: &[u8]) -> (usize, bool) {
    let mut escaped = false;
    let mut i = from;
    while i < end {
        let b = bytes[i];
        if b == b'\\' {
            escaped = true;
            i += 2;
        } else if delimiters.contains(&b) {
            return (i, escaped);
        } else {
            i += 1;
        }
    }
    (end, escaped)
}

/// The position of the `"` closing a string field value whose text starts at `from`.
fn closing_quote(bytes: &[u8], from: usize, end: usize) -> Option<usize> {
    let mut i = from;
    while i < end {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Removes the backslash of `\,`, `\ `, `\=` and `\\`; other backslashes stay. `escaped`
/// says whether `raw` holds a backslash at all, so the common case borrows.
fn unescape(raw: &str, escaped: bool) -> Cow<'_, str> {
    if !escaped {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&next) = chars.peek() {
                if matches!(next, ',' | ' ' | '=' | '\\') {
                    out.push(next);
                    chars.next();
                    continue;
                }
            }
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// A field value as f64, or why it is not acceptable (completing "field \"f\" …").
fn parse_field_value(token: &str) -> std::result::Result<f64, String> {
    if let Some(digits) = token.strip_suffix('i') {
        return digits
            .parse::<i64>()
            .map(|v| v as f64)
            .map_err(|_| format!("value {token:?} is not a valid integer"));
    }
    if let Some(digits) = token.strip_suffix('u') {
        return digits
            .parse::<u64>()
            .map(|v| v as f64)
            .map_err(|_| format!("value {token:?} is not a valid unsigned integer"));
    }
    match token {
        "" => return Err("has no value".to_string()),
        "t" | "T" | "true" | "True" | "TRUE" => return Ok(1.0),
        "f" | "F" | "false" | "False" | "FALSE" => return Ok(0.0),
        _ => {}
    }
    // `f64::from_str` also takes "inf" and "NaN", which line protocol does not.
    let numeric = token
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    let value = token
        .parse::<f64>()
        .ok()
        .filter(|_| numeric)
        .ok_or_else(|| format!("value {token:?} is not a number"))?;
    if !value.is_finite() {
        return Err(format!("value {token:?} is not a finite number"));
    }
    Ok(value)
}

/// A tag key as a label name: InfluxDB takes any key, a label name is ASCII letters, digits,
/// `_`, `.`, `-` and `:` (see [`check_label`]), so every other character becomes `_` and a
/// leading digit gets a `_` before it, as Prometheus' InfluxDB adapters name them
/// (`room id` → `room_id`, `1st` → `_1st`). Keys that then collide are a duplicate tag.
fn label_name(key: &str) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':');
    let mut name = String::with_capacity(key.len() + 1);
    if key.starts_with(|c: char| c.is_ascii_digit()) {
        name.push('_');
    }
    name.extend(key.chars().map(|c| if allowed(c) { c } else { '_' }));
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_cached_series_section_gives_what_parsing_gives() {
        let now = Timestamp(1_000_000);
        let parse = |body: &str| parse_body(body, Precision::S, now, DEFAULT_MAX_FUTURE);
        let first = parse("t,room=lab,device_id=d value=1,hum=2 10\n");
        assert!(first.problems.is_empty(), "{:?}", first.problems);
        // The same section again: a field seen before, a new one, a bad one.
        let again =
            parse("t,room=lab,device_id=d value=3,pres=4 11\nt,room=lab,device_id=d b|ad=5 11\n");
        assert_eq!(again.problems.len(), 1, "{:?}", again.problems);
        assert!(again.problems[0].error.to_string().contains("t_b|ad"));
        let keys: Vec<String> = first
            .points
            .iter()
            .chain(&again.points)
            .map(|p| p.series.to_string())
            .collect();
        assert_eq!(
            keys,
            [
                r#"t{device_id="d",room="lab"}"#,
                r#"t_hum{device_id="d",room="lab"}"#,
                r#"t{device_id="d",room="lab"}"#,
                r#"t_pres{device_id="d",room="lab"}"#,
            ]
        );
        // A bad section is never cached: it fails every time, naming its tag.
        for _ in 0..2 {
            let bad = parse("t,__x=1 value=1 10\n");
            assert!(bad.problems[0].error.to_string().contains("__x"));
        }
        // Past the bound the cache starts over and stays right.
        let many: String = (0..MAX_CACHED_SECTIONS + 10)
            .map(|i| format!("m,device_id=d{i} value={i} 10\n"))
            .collect();
        let parsed = parse(&many);
        assert!(parsed.problems.is_empty());
        assert_eq!(parsed.points.len(), MAX_CACHED_SECTIONS + 10);
        assert_eq!(parsed.points[7].series.device_id(), "d7");
        assert_eq!(
            parse("m,device_id=d7 value=1 10\n").points[0].series,
            parsed.points[7].series
        );
        // Long sections count by their bytes: a few hundred of 40 KiB each fill and clear
        // shards rather than grow the cache, and parse the same.
        let long_value = "v".repeat(1000);
        let long_lines = |tags_per_line: usize| -> String {
            (0..300)
                .map(|i| {
                    let tags: String = (0..tags_per_line)
                        .map(|t| format!(",t{t}={long_value}{i}"))
                        .collect();
                    format!("m{tags} value={i} 10\n")
                })
                .collect()
        };
        let parsed = parse(&long_lines(40));
        assert_eq!(parsed.problems.len(), 300, "more than 32 tags each");
        let parsed = parse(&long_lines(30));
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems.first());
        assert_eq!(parsed.points.len(), 300);
        assert_eq!(
            parsed.points[299].series.label("t29").map(str::len),
            Some(1003)
        );
        // Over by at most the keys one line added after its section was counted.
        for shard in 0..SECTION_SHARDS as u64 {
            let bytes = section_shard(shard << 32).bytes;
            assert!(bytes <= MAX_SHARD_BYTES + 64 * 1024, "{bytes}");
        }
    }

    #[test]
    fn sections_sharing_a_hash_are_kept_apart_and_parsed_once() {
        let mut shard = SectionShard::default();
        let section = |measurement: &str| Section {
            measurement: measurement.to_string(),
            labels: Vec::new(),
            keys: Vec::new(),
        };
        let parsed = |m: &'static str| move || Ok(section(m));
        assert_eq!(
            shard.get_or_parse(7, "a", parsed("a")).unwrap().measurement,
            "a"
        );
        assert_eq!(
            shard.get_or_parse(7, "b", parsed("b")).unwrap().measurement,
            "b"
        );
        let not_again = || -> Result<Section> { panic!("a cached section was parsed again") };
        assert_eq!(
            shard.get_or_parse(7, "a", not_again).unwrap().measurement,
            "a"
        );
        assert_eq!(
            shard.get_or_parse(7, "b", not_again).unwrap().measurement,
            "b"
        );
        assert_eq!(shard.count, 2);
        // A section that fails to parse is not cached.
        let failing = || Err(Error::invalid("line 1", "bad"));
        assert!(shard.get_or_parse(7, "c", failing).is_err());
        assert_eq!(shard.count, 2);
    }

    const NOW: Timestamp = Timestamp(1_720_000_000_000);

    fn parse(body: &str) -> Result<Vec<Point>> {
        parse_line_protocol(body, Precision::Ns, NOW)
    }

    fn accepted(body: &str) -> Vec<Point> {
        match parse(body) {
            Ok(points) => points,
            Err(e) => panic!("{body:?} was rejected: {e}"),
        }
    }

    fn rejected(body: &str) -> String {
        match parse(body) {
            Ok(points) => panic!("{body:?} was accepted as {points:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn point(device: &str, metric: &str, millis: i64, value: f64) -> Point {
        Point {
            series: SeriesKey::new(device, metric).unwrap(),
            timestamp: Timestamp(millis),
            value,
        }
    }

    fn labelled(metric: &str, labels: &[(&str, &str)], millis: i64, value: f64) -> Point {
        Point {
            series: SeriesKey::with_labels(metric, labels.iter().copied()).unwrap(),
            timestamp: Timestamp(millis),
            value,
        }
    }

    #[test]
    fn spec_example_as_line_protocol() {
        assert_eq!(
            accepted("temperature,device_id=sensor_1 value=24.2 1710000000000000000"),
            vec![point("sensor_1", "temperature", 1_710_000_000_000, 24.2)]
        );
        assert_eq!(
            parse_line_protocol(
                "temperature,device_id=sensor_1 value=24.2 1710000000",
                Precision::S,
                NOW
            )
            .unwrap(),
            vec![point("sensor_1", "temperature", 1_710_000_000_000, 24.2)]
        );
    }

    #[test]
    fn other_fields_become_measurement_underscore_field() {
        assert_eq!(
            accepted("cpu,host=a,device_id=d usage=3,value=1,idle=96 5000000"),
            vec![
                labelled("cpu_usage", &[("host", "a"), ("device_id", "d")], 5, 3.0),
                labelled("cpu", &[("host", "a"), ("device_id", "d")], 5, 1.0),
                labelled("cpu_idle", &[("host", "a"), ("device_id", "d")], 5, 96.0),
            ]
        );
    }

    #[test]
    fn integer_unsigned_and_float_fields_are_numbers() {
        let points = accepted("m,device_id=d a=-7i,b=7u,c=1.5,d=-2e3,e=7,f=.5,g=1.,h=+3 0");
        let values: Vec<f64> = points.iter().map(|p| p.value).collect();
        assert_eq!(values, [-7.0, 7.0, 1.5, -2000.0, 7.0, 0.5, 1.0, 3.0]);
    }

    #[test]
    fn missing_timestamp_means_now() {
        assert_eq!(
            accepted("m,device_id=d value=1"),
            vec![point("d", "m", NOW.0, 1.0)]
        );
    }

    #[test]
    fn precisions_convert_to_milliseconds() {
        let cases = [
            (Precision::Ns, "1710000000123456789", 1_710_000_000_123),
            (Precision::Us, "1710000000123456", 1_710_000_000_123),
            (Precision::Ms, "1710000000123", 1_710_000_000_123),
            (Precision::S, "1710000000", 1_710_000_000_000),
            (Precision::M, "28500000", 1_710_000_000_000),
            (Precision::H, "475000", 1_710_000_000_000),
        ];
        for (precision, text, millis) in cases {
            let points =
                parse_line_protocol(&format!("m,device_id=d value=1 {text}"), precision, NOW)
                    .unwrap();
            assert_eq!(
                points[0].timestamp,
                Timestamp(millis),
                "{precision:?} {text}"
            );
        }
    }

    #[test]
    fn precision_parses_influx_names() {
        for (text, precision) in [
            ("ns", Precision::Ns),
            ("n", Precision::Ns),
            ("us", Precision::Us),
            ("u", Precision::Us),
            ("µ", Precision::Us),
            ("ms", Precision::Ms),
            ("s", Precision::S),
            ("m", Precision::M),
            ("h", Precision::H),
        ] {
            assert_eq!(Precision::parse(text).unwrap(), precision, "{text}");
        }
        assert_eq!(Precision::default(), Precision::Ns);
        for bad in ["", "sec", "NS", "d"] {
            assert!(Precision::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamp_overflowing_milliseconds_is_rejected() {
        let e = parse_line_protocol(
            "m,device_id=d value=1 9223372036854775807",
            Precision::S,
            NOW,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("out of range"), "{e}");
        // Seconds sent with precision=ms would land in the year 285,000: refused.
        let e = parse_line_protocol("m,device_id=d value=1 9007199254740993", Precision::Ms, NOW)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 1") && e.contains("after 2262-04-11"),
            "{e}"
        );
    }

    #[test]
    fn timestamps_before_1970_or_too_far_ahead_are_refused_naming_the_line() {
        for (body, precision, needle) in [
            ("m,device_id=d value=1 -1", Precision::Ns, "before 1970"),
            (
                "m,device_id=d value=1 0\nm,device_id=d value=1 -1001",
                Precision::Us,
                "line 2",
            ),
            (
                "m,device_id=d value=1 1720000000000",
                Precision::S,
                "after 2262",
            ),
        ] {
            let e = parse_line_protocol(body, precision, NOW)
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{body}: {e}");
        }
        let day_ms = 86_400_000;
        let soon = format!("m,device_id=d value=1 {}", NOW.0 + day_ms);
        assert!(parse_line_protocol(&soon, Precision::Ms, NOW).is_ok());
        let late = format!("m,device_id=d value=1 {}", NOW.0 + 3 * day_ms);
        let e = parse_line_protocol(&late, Precision::Ms, NOW)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ahead of this node's clock"), "{e}");
        let within =
            parse_line_protocol_within(&late, Precision::Ms, NOW, Duration::from_secs(4 * 86_400));
        assert!(within.is_ok(), "a wider --max_future_s takes it");
    }

    #[test]
    fn escapes_in_measurement_tags_and_field_keys_are_removed() {
        assert_eq!(
            accepted(r"my\ room\,1,device_id=sensor\ 1\,a\=b,other\ tag=x\ y temp\ c\=1=2 0"),
            vec![labelled(
                "my room,1_temp c=1",
                &[("device_id", "sensor 1,a=b"), ("other_tag", "x y")],
                0,
                2.0
            )]
        );
        assert_eq!(
            accepted(r"back\\slash,device_id=a\b value=1 0"),
            vec![point(r"a\b", r"back\slash", 0, 1.0)]
        );
    }

    #[test]
    fn tag_keys_become_label_names() {
        // A backslash before `_` is kept, then replaced: a label of its own.
        assert_eq!(
            accepted(r"m,device\_id=x,device_id=d value=1 0"),
            vec![labelled(
                "m",
                &[("device__id", "x"), ("device_id", "d")],
                0,
                1.0
            )]
        );
        assert_eq!(
            accepted(r"m,room\ id=a,1st=b,host.name=c value=1 0"),
            vec![labelled(
                "m",
                &[("room_id", "a"), ("_1st", "b"), ("host.name", "c")],
                0,
                1.0
            )]
        );
        let e = rejected(r"m,a\ b=1,a_b=2 value=1 0");
        assert!(e.contains("column 10: duplicate tag \"a_b\""), "{e}");
        let e = rejected("m,__name__=x value=1 0");
        assert!(e.contains("column 3") && e.contains("reserved"), "{e}");
        let many: String = (0..=crate::storage::MAX_LABELS)
            .map(|i| format!(",t{i}=v"))
            .collect();
        let e = rejected(&format!("m{many} value=1 0"));
        assert!(e.contains("more than 32 tags"), "{e}");
    }

    #[test]
    fn readings_that_differ_in_one_tag_are_two_series() {
        let points =
            accepted("t,device_id=d,room=lab value=1 0\nt,device_id=d,room=kitchen value=2 0");
        assert_eq!(
            points,
            [
                labelled("t", &[("device_id", "d"), ("room", "lab")], 0, 1.0),
                labelled("t", &[("device_id", "d"), ("room", "kitchen")], 0, 2.0),
            ]
        );
        assert_ne!(points[0].series, points[1].series);
    }

    #[test]
    fn comments_blank_lines_crlf_and_extra_spaces_are_handled() {
        let body = "# a comment\r\n\r\n   \n  m,device_id=d value=1   2000000 \r\n\t# indented comment\nm,device_id=e  value=2\r\n";
        assert_eq!(
            accepted(body),
            vec![point("d", "m", 2, 1.0), point("e", "m", NOW.0, 2.0)]
        );
        assert_eq!(accepted(""), vec![]);
    }

    #[test]
    fn unicode_names_are_kept() {
        assert_eq!(
            accepted("température,device_id=capteur_é valeur=1 0"),
            vec![point("capteur_é", "température_valeur", 0, 1.0)]
        );
    }

    #[test]
    fn telegraf_lines_without_device_id_are_series_of_their_tags() {
        assert_eq!(
            accepted("cpu,host=a,cpu=cpu0 usage_idle=98.5,usage_user=1i 1000000\nup value=1 0"),
            vec![
                labelled("cpu_usage_idle", &[("cpu", "cpu0"), ("host", "a")], 1, 98.5),
                labelled("cpu_usage_user", &[("cpu", "cpu0"), ("host", "a")], 1, 1.0),
                labelled("up", &[], 0, 1.0),
            ]
        );
    }

    #[test]
    fn booleans_are_stored_as_one_and_zero() {
        for (b, want) in [
            ("t", 1.0),
            ("T", 1.0),
            ("true", 1.0),
            ("True", 1.0),
            ("TRUE", 1.0),
            ("f", 0.0),
            ("F", 0.0),
            ("false", 0.0),
            ("False", 0.0),
            ("FALSE", 0.0),
        ] {
            let points = accepted(&format!("m,device_id=d on={b} 0"));
            assert_eq!(points, [point("d", "m_on", 0, want)], "{b}");
        }
    }

    fn body(text: &str) -> ParsedBody {
        parse_body(text, Precision::Ns, NOW, DEFAULT_MAX_FUTURE)
    }

    #[test]
    fn string_field_is_skipped_and_the_line_reported_with_its_other_fields_stored() {
        let parsed = body(r#"m,device_id=d msg="a, b=c \"q\" d",value=1 0"#);
        assert_eq!(parsed.points, [point("d", "m", 0, 1.0)]);
        assert_eq!(parsed.problems.len(), 1);
        let problem = &parsed.problems[0];
        assert_eq!((problem.line, problem.stored), (1, 1));
        assert_eq!(
            problem.error.to_string(),
            "invalid line 1: column 19: field \"msg\" is a string: not stored, MiniTrue stores \
             numbers only (its 1 other field(s) stored)"
        );

        let parsed = body("m,device_id=d a=\"x\",b=\"y\" 0\nm,device_id=d value=2 0");
        assert_eq!(parsed.points, [point("d", "m", 0, 2.0)]);
        assert_eq!(parsed.problems[0].stored, 0);
        let e = parsed.problems[0].error.to_string();
        assert!(
            e.contains("fields \"a\", \"b\" are strings") && e.contains("nothing stored"),
            "{e}"
        );

        let e = rejected(r#"m,device_id=d msg="never closed \" 0"#);
        assert!(e.contains("unterminated string"), "{e}");
        let e = rejected(r#"m,device_id=d msg="closed"x=1 0"#);
        assert!(e.contains("unexpected text after a string field"), "{e}");
    }

    #[test]
    fn a_body_keeps_its_good_lines_and_names_each_bad_one() {
        let parsed = body(
            "m,device_id=d value=1 0\n# comment\n\nm,device_id=d value=x\nm,host=h value=3 0\n\
             m,device_id=d value=4 1000000",
        );
        assert_eq!(
            parsed.points,
            [
                point("d", "m", 0, 1.0),
                labelled("m", &[("host", "h")], 0, 3.0),
                point("d", "m", 1, 4.0)
            ]
        );
        let lines: Vec<(usize, usize)> =
            parsed.problems.iter().map(|p| (p.line, p.stored)).collect();
        assert_eq!(lines, [(4, 0)]);
        assert_eq!(parsed.lines, 4, "comments and blank lines do not count");
        // A line that fails after some fields parsed leaves none of them behind.
        let parsed = body("m,device_id=d a=1,b=2,c=oops 0");
        assert!(parsed.points.is_empty());
        assert_eq!(parsed.problems.len(), 1);
    }

    #[test]
    fn bad_numbers_are_rejected_naming_the_field() {
        for value in [
            "1.5i", "-1u", "i", "u", "abc", "inf", "NaN", "1e400", "-1e400", "1..2", "--1",
        ] {
            let e = rejected(&format!("m,device_id=d temp={value} 0"));
            assert!(
                e.contains("line 1") && e.contains("field \"temp\""),
                "{value}: {e}"
            );
        }
        let e = rejected("m,device_id=d temp= 0");
        assert!(e.contains("field \"temp\" has no value"), "{e}");
    }

    #[test]
    fn malformed_lines_are_rejected_with_line_and_column() {
        for (body, expected) in [
            ("m,device_id=d", "line 1: column 14: missing field set"),
            ("m,device_id=d   ", "line 1: column 14: missing field set"),
            ("m", "line 1: column 2: missing field set"),
            (
                ",device_id=d value=1",
                "line 1: column 1: missing measurement",
            ),
            (
                " ,device_id=d value=1",
                "line 1: column 2: missing measurement",
            ),
            (
                "m,device_id value=1",
                "line 1: column 12: tag \"device_id\" has no '=value'",
            ),
            (
                "m,device_id= value=1",
                "line 1: column 13: tag \"device_id\" has an empty value",
            ),
            ("m,,device_id=d value=1", "line 1: column 3: empty tag key"),
            ("m,device_id=d, value=1", "line 1: column 15: empty tag key"),
            (
                "m,device_id=d,device_id=e value=1",
                "line 1: column 15: duplicate tag \"device_id\"",
            ),
            (
                "m,device_id=d value",
                "line 1: column 20: field \"value\" has no '=value'",
            ),
            ("m,device_id=d =1", "line 1: column 15: empty field key"),
            (
                "m,device_id=d value=1,",
                "line 1: column 23: empty field key",
            ),
            (
                "m,device_id=d value=1 12 13",
                "line 1: column 26: unexpected text after the timestamp",
            ),
            (
                "m,device_id=d value=1 1.5",
                "line 1: column 23: timestamp \"1.5\" is not an integer",
            ),
            (
                "m,device_id=d value=1 now",
                "line 1: column 23: timestamp \"now\" is not an integer",
            ),
        ] {
            let e = rejected(body);
            assert!(e.contains(expected), "{body:?}: {e}");
        }
    }

    #[test]
    fn invalid_ids_are_rejected_naming_which() {
        let e = rejected("m|x,device_id=d value=1");
        assert!(
            e.contains("metric_name \"m|x\" must not contain '|'"),
            "{e}"
        );
        let e = rejected("m,device_id=a|b value=1");
        assert_eq!(
            e,
            "invalid line 1: column 3: tag \"device_id\": device_id must not contain '|'"
        );
        let long = "x".repeat(crate::storage::MAX_NAME_LEN);
        let e = rejected(&format!("{long},device_id=d usage=1"));
        assert!(
            e.contains("metric_name") && e.contains("longer than"),
            "{e}"
        );
    }

    #[test]
    fn one_bad_line_rejects_the_whole_body() {
        let body =
            "m,device_id=d value=1 0\nm,device_id=d value=2 1000000\nm,device_id=d value=x\n";
        let e = rejected(body);
        assert!(e.starts_with("invalid line 3: "), "{e}");
    }

    /// Formats names the way Influx clients do: backslash before `,`, space, `=` and `\`.
    fn escape(name: &str) -> String {
        let mut out = String::with_capacity(name.len());
        for c in name.chars() {
            if matches!(c, ',' | ' ' | '=' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }

    #[derive(Clone, Debug)]
    enum FieldValue {
        Float(f64),
        Int(i64),
        Uint(u64),
    }

    impl FieldValue {
        fn text(&self) -> String {
            match self {
                FieldValue::Float(v) => format!("{v}"),
                FieldValue::Int(v) => format!("{v}i"),
                FieldValue::Uint(v) => format!("{v}u"),
            }
        }

        fn as_f64(&self) -> f64 {
            match *self {
                FieldValue::Float(v) => v,
                FieldValue::Int(v) => v as f64,
                FieldValue::Uint(v) => v as f64,
            }
        }
    }

    #[derive(Clone, Debug)]
    struct LineCase {
        measurement: String,
        device: String,
        extra_tag: Option<(String, String)>,
        fields: Vec<(String, FieldValue)>,
        /// Milliseconds and the sub-millisecond nanoseconds; `None` for no timestamp.
        time: Option<(i64, i64)>,
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_ ,=\\\\\"'#.:é€-]{1,12}"
    }

    fn field_value() -> impl Strategy<Value = FieldValue> {
        prop_oneof![
            (-1e300f64..1e300).prop_map(FieldValue::Float),
            any::<i64>().prop_map(FieldValue::Int),
            any::<u64>().prop_map(FieldValue::Uint),
        ]
    }

    fn line_case() -> impl Strategy<Value = LineCase> {
        (
            name().prop_filter("a leading # makes a comment", |m| !m.starts_with('#')),
            name(),
            proptest::option::of((name(), name())),
            proptest::collection::vec(
                (
                    prop_oneof![Just(VALUE_FIELD.to_string()), name()],
                    field_value(),
                ),
                1..4,
            ),
            // Up to the test's clock: later ones are refused (see `timestamp`).
            proptest::option::of((0i64..NOW.0, 0i64..1_000_000)),
        )
            .prop_map(|(measurement, device, extra_tag, fields, time)| LineCase {
                measurement,
                device,
                extra_tag: extra_tag.filter(|(key, _)| {
                    let label = label_name(key);
                    label != DEVICE_TAG && !label.starts_with("__")
                }),
                fields,
                time,
            })
    }

    impl LineCase {
        fn format(&self, precision: Precision) -> String {
            let mut line = escape(&self.measurement);
            if let Some((key, value)) = &self.extra_tag {
                line += &format!(",{}={}", escape(key), escape(value));
            }
            line += &format!(",{DEVICE_TAG}={} ", escape(&self.device));
            let fields: Vec<String> = self
                .fields
                .iter()
                .map(|(key, value)| format!("{}={}", escape(key), value.text()))
                .collect();
            line += &fields.join(",");
            if let Some((millis, sub)) = self.time {
                let raw = match precision {
                    Precision::Ns => millis * 1_000_000 + sub,
                    Precision::Us => millis * 1_000 + sub / 1_000,
                    Precision::Ms => millis,
                    Precision::S => millis / 1_000,
                    Precision::M => millis / 60_000,
                    Precision::H => millis / 3_600_000,
                };
                line += &format!(" {raw}");
            }
            line
        }

        fn points(&self, precision: Precision) -> Vec<Point> {
            let millis = match self.time {
                None => NOW.0,
                Some((millis, _)) => match precision {
                    Precision::Ns | Precision::Us | Precision::Ms => millis,
                    Precision::S => millis / 1_000 * 1_000,
                    Precision::M => millis / 60_000 * 60_000,
                    Precision::H => millis / 3_600_000 * 3_600_000,
                },
            };
            self.fields
                .iter()
                .map(|(key, value)| {
                    let metric = if key == VALUE_FIELD {
                        self.measurement.clone()
                    } else {
                        format!("{}_{key}", self.measurement)
                    };
                    let mut labels = vec![(DEVICE_TAG.to_string(), self.device.clone())];
                    if let Some((key, value)) = &self.extra_tag {
                        labels.push((label_name(key), value.clone()));
                    }
                    Point {
                        series: SeriesKey::with_labels(&metric, labels).unwrap(),
                        timestamp: Timestamp(millis),
                        value: value.as_f64(),
                    }
                })
                .collect()
        }
    }

    fn precision() -> impl Strategy<Value = Precision> {
        prop_oneof![
            Just(Precision::Ns),
            Just(Precision::Us),
            Just(Precision::Ms),
            Just(Precision::S),
            Just(Precision::M),
            Just(Precision::H),
        ]
    }

    proptest! {
        #[test]
        fn formatted_points_parse_back_to_the_same_points(
            cases in proptest::collection::vec(line_case(), 1..8),
            precision in precision(),
            crlf in any::<bool>(),
        ) {
            let separator = if crlf { "\r\n" } else { "\n" };
            let body: Vec<String> = cases.iter().map(|c| c.format(precision)).collect();
            let body = body.join(separator);
            let expected: Vec<Point> = cases.iter().flat_map(|c| c.points(precision)).collect();
            let parsed = parse_line_protocol(&body, precision, NOW);
            prop_assert!(parsed.is_ok(), "{:?}: {:?}", body, parsed);
            prop_assert_eq!(parsed.unwrap(), expected, "{:?}", body);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let body = String::from_utf8_lossy(&bytes);
            let _ = parse_line_protocol(&body, Precision::Ns, NOW);
        }

        #[test]
        fn line_protocol_like_text_never_panics(
            body in "[a-z_#,= \\\\\"\r\n\t0-9.iueE+-é]{0,200}",
            precision in precision(),
        ) {
            let _ = parse_line_protocol(&body, precision, NOW);
        }
    }
}
