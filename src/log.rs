//! Leveled logging to stderr, one line per record, in one of two formats chosen once at start
//! (`--log_format`):
//!
//! - `text` (default): `2026-12-03T10:00:00.123Z info [http-0] message`: the RFC 3339 UTC
//!   time with milliseconds, the level, the thread name in brackets, the message.
//! - `json`: one object per line, `{"ts":"2026-12-03T10:00:00.123Z","level":"info",
//!   "thread":"http-0","msg":"message"}`, for log shippers.
//!
//! A global level (`--log_level`) filters records. Every binary logs through here: the
//! server and the publisher with the `log_*!` macros, the broker by routing rumqttd's
//! `tracing` events into [`write()`] (see `broker::init_logging`). A line is written with one
//! call on the locked stderr, so lines of different threads never interleave. Dates come
//! from [`crate::civil`]; no dependency is needed for lines this simple.

use crate::civil::rfc3339_millis;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Severity of a log line; lower is more severe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

/// How a line is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// `TIME LEVEL [THREAD] MESSAGE`.
    #[default]
    Text,
    /// One JSON object per line: `ts`, `level`, `thread`, `msg`.
    Json,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static FORMAT: AtomicU8 = AtomicU8::new(Format::Text as u8);

impl Level {
    pub fn parse(name: &str) -> Option<Level> {
        match name {
            "error" => Some(Level::Error),
            "warn" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

pub fn set_format(format: Format) {
    FORMAT.store(format as u8, Ordering::Relaxed);
}

fn format() -> Format {
    if FORMAT.load(Ordering::Relaxed) == Format::Json as u8 {
        Format::Json
    } else {
        Format::Text
    }
}

/// Writes one line if `level` is enabled. Use the `log_*!` macros.
pub fn write(level: Level, message: std::fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let thread = std::thread::current();
    let line = format_line(
        format(),
        now,
        level,
        thread.name().unwrap_or("unnamed"),
        &message.to_string(),
    );
    // Nothing sensible is left to do when stderr itself fails.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// One record as a complete line (newline included), at `millis` since the epoch.
pub fn format_line(format: Format, millis: i64, level: Level, thread: &str, msg: &str) -> String {
    let ts = rfc3339_millis(millis);
    match format {
        Format::Text => {
            // A message spanning lines would give lines that do not start with the time.
            let msg = if msg.contains(['\n', '\r']) {
                msg.replace('\n', "\\n").replace('\r', "\\r")
            } else {
                msg.to_string()
            };
            format!("{ts} {} [{thread}] {msg}\n", level.label())
        }
        Format::Json => {
            // Written by hand to keep the documented key order; serde escapes the strings.
            let quoted = |text: &str| {
                serde_json::to_string(text).expect("a string always serializes to JSON")
            };
            format!(
                "{{\"ts\":\"{ts}\",\"level\":\"{}\",\"thread\":{},\"msg\":{}}}\n",
                level.label(),
                quoted(thread),
                quoted(msg)
            )
        }
    }
}

#[macro_export]
macro_rules! log_error { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Error, format_args!($($t)*)) } }
#[macro_export]
macro_rules! log_warn { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Warn, format_args!($($t)*)) } }
#[macro_export]
macro_rules! log_info { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($t)*)) } }
#[macro_export]
macro_rules! log_debug { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Debug, format_args!($($t)*)) } }

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_796_292_000_123; // 2026-12-03T10:00:00.123Z

    #[test]
    fn text_line_is_time_level_thread_message() {
        assert_eq!(
            format_line(Format::Text, T, Level::Warn, "http-0", "slow peer"),
            "2026-12-03T10:00:00.123Z warn [http-0] slow peer\n"
        );
    }

    #[test]
    fn text_message_on_several_lines_stays_one_line() {
        assert_eq!(
            format_line(Format::Text, T, Level::Error, "main", "a\nb\r\n"),
            "2026-12-03T10:00:00.123Z error [main] a\\nb\\r\\n\n"
        );
    }

    #[test]
    fn json_line_is_one_object_with_the_four_fields() {
        let line = format_line(
            Format::Json,
            T,
            Level::Info,
            "mqtt-receive",
            "a \"quoted\"\nmsg",
        );
        assert!(
            line.ends_with('\n') && line.matches('\n').count() == 1,
            "{line:?}"
        );
        assert!(line.starts_with(r#"{"ts":"2026-12-03T10:00:00.123Z","level":"info","thread":"#));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "ts": "2026-12-03T10:00:00.123Z",
                "level": "info",
                "thread": "mqtt-receive",
                "msg": "a \"quoted\"\nmsg",
            })
        );
    }

    #[test]
    fn level_names_parse_back() {
        for level in [Level::Error, Level::Warn, Level::Info, Level::Debug] {
            assert_eq!(Level::parse(level.label()), Some(level));
        }
        assert_eq!(Level::parse("trace"), None);
    }
}
