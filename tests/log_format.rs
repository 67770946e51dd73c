//! The log format of a real `minitrue-server`: every stderr line starts with an RFC 3339
//! UTC time, the level and the thread (`--log_format text`), or is one JSON object with
//! `ts`, `level`, `thread` and `msg` (`--log_format json`).

mod common;

use common::{Server, TempDir};
use std::time::Duration;

fn is_rfc3339_utc_millis(ts: &str) -> bool {
    let b = ts.as_bytes();
    b.len() == 24
        && ts.ends_with('Z')
        && [4, 7].iter().all(|&i| b[i] == b'-')
        && b[10] == b'T'
        && [13, 16].iter().all(|&i| b[i] == b':')
        && b[19] == b'.'
        && ts
            .char_indices()
            .filter(|(i, _)| ![4, 7, 10, 13, 16, 19, 23].contains(i))
            .all(|(_, c)| c.is_ascii_digit())
}

fn stopped_log(format: &str) -> String {
    let dir = TempDir::new(&format!("log-{format}"));
    let flag = format!("--log_format={format}");
    let mut server = Server::start("logs", dir.path(), &[&flag]);
    server.terminate(Duration::from_secs(5));
    let log = server.log_text();
    assert!(log.lines().count() >= 2, "too few log lines:\n{log}");
    log
}

#[test]
fn text_lines_start_with_time_level_and_thread() {
    let log = stopped_log("text");
    for line in log.lines() {
        let mut parts = line.splitn(4, ' ');
        let (ts, level, thread) = (parts.next(), parts.next(), parts.next());
        assert!(ts.is_some_and(is_rfc3339_utc_millis), "{line}");
        assert!(
            level.is_some_and(|l| ["error", "warn", "info", "debug"].contains(&l)),
            "{line}"
        );
        assert!(
            thread.is_some_and(|t| t.len() > 2 && t.starts_with('[') && t.ends_with(']')),
            "{line}"
        );
    }
}

#[test]
fn json_lines_are_objects_with_ts_level_thread_msg() {
    let log = stopped_log("json");
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["ts"].as_str().is_some_and(is_rfc3339_utc_millis),
            "{line}"
        );
        assert!(v["level"].is_string() && v["thread"].is_string(), "{line}");
        assert!(v["msg"].is_string(), "{line}");
        assert_eq!(v.as_object().map(|o| o.len()), Some(4), "{line}");
    }
}
