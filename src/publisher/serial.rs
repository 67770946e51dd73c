//! The Arduino bridge: reads lines from a serial port, turns them into readings (see
//! [`serial_line`](super::serial_line)) and publishes each.
//!
//! Nothing the device does ends the bridge. A bad line is reported (rate-limited) and
//! skipped; a read error or hang-up (the board unplugged) closes the port, and it is
//! reopened with exponential backoff until it comes back. Only `--duration` or a stop
//! signal end the loop.

use crate::error::Result;
use crate::log_info;
use std::io::{ErrorKind, Read};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::mqtt::MqttPublisher;
use super::pacing::Until;
use super::reading::unix_now;
use super::serial_line::{parse_serial_line, LineSplitter};
use super::REPORT_EVERY;
use crate::throttle::{Backoff, Throttle};

/// How long one read waits for bytes before the loop checks its deadline and stop flag.
const READ_TIMEOUT: Duration = Duration::from_millis(200);

/// First and longest pause before reopening the port.
const REOPEN_MIN: Duration = Duration::from_millis(200);
const REOPEN_MAX: Duration = Duration::from_secs(5);

/// The serial side of a run.
#[derive(Clone, Debug)]
pub struct SerialSettings {
    /// Device path, e.g. `/dev/ttyACM0` or `COM3`.
    pub port: String,
    pub baud: u32,
    /// Stamped on readings whose line does not name a device.
    pub device_id: String,
    /// Stop after this long; `None` runs until stopped.
    pub duration: Option<Duration>,
}

/// What the bridge saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SerialCounts {
    pub lines: u64,
    pub readings: u64,
    pub bad_lines: u64,
    /// Attempts to open the port that failed (the device was unplugged or absent).
    pub failed_opens: u64,
}

/// Runs the bridge until the duration ends or `stop` is set.
pub fn bridge_serial(
    settings: &SerialSettings,
    publisher: &mut MqttPublisher,
    stop: &AtomicBool,
) -> Result<SerialCounts> {
    let until = Until::stopped_or(stop, settings.duration.map(|d| Instant::now() + d));
    let port_name = settings.port.as_str();
    let mut counts = SerialCounts::default();
    let mut port_trouble = Throttle::new(REPORT_EVERY);
    let mut line_trouble = Throttle::new(REPORT_EVERY);
    let mut backoff = Backoff::new(REOPEN_MIN, REOPEN_MAX);
    let mut splitter = LineSplitter::default();
    let mut buf = [0u8; 1024];
    let mut first_open = true;
    while !until.reached() {
        let mut port = match serialport::new(port_name, settings.baud)
            .timeout(READ_TIMEOUT)
            .open()
        {
            Ok(port) => port,
            Err(e) => {
                counts.failed_opens += 1;
                let attempt = counts.failed_opens;
                port_trouble.warn(|| {
                    format!(
                        "serial {port_name}: cannot open: {e}; reconnecting in {:?} (attempt {attempt})",
                        backoff.peek()
                    )
                });
                pause(&mut backoff, &until);
                continue;
            }
        };
        if first_open {
            log_info!("serial {port_name}: open at {} baud", settings.baud);
            first_open = false;
        } else {
            log_info!("serial {port_name}: reopened at {} baud", settings.baud);
        }
        splitter.reset();
        let failure = loop {
            if until.reached() {
                break None;
            }
            match port.read(&mut buf) {
                Ok(0) => break Some("port closed (hang-up)".to_string()),
                Ok(n) => {
                    for line in splitter.push(&buf[..n]) {
                        counts.lines += 1;
                        let readings = line.and_then(|l| {
                            parse_serial_line(&l).map_err(|e| format!("{}: {e}", quote(&l)))
                        });
                        match readings {
                            Ok(readings) => {
                                // A working line proves the link: later trouble starts
                                // from the shortest pause again.
                                backoff.reset();
                                let now = unix_now();
                                for r in readings {
                                    let reading = r.complete(&settings.device_id, now);
                                    if let Err(e) = reading.check() {
                                        counts.bad_lines += 1;
                                        line_trouble.warn(|| {
                                            format!("serial {port_name}: skipped line: {e}")
                                        });
                                    } else if publisher.publish(&reading, &until) {
                                        counts.readings += 1;
                                    }
                                }
                            }
                            Err(e) => {
                                counts.bad_lines += 1;
                                line_trouble
                                    .warn(|| format!("serial {port_name}: skipped line {e}"));
                            }
                        }
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::TimedOut | ErrorKind::WouldBlock | ErrorKind::Interrupted
                    ) => {}
                Err(e) => break Some(format!("read failed: {e}")),
            }
        };
        drop(port);
        if let Some(why) = failure {
            port_trouble.warn(|| {
                format!(
                    "serial {port_name}: {why}; reconnecting in {:?}",
                    backoff.peek()
                )
            });
            pause(&mut backoff, &until);
        }
    }
    Ok(counts)
}

/// Sleeps the next backoff delay (not past the end of the run).
fn pause(backoff: &mut Backoff, until: &Until<'_>) {
    until.sleep(backoff.next_delay());
}

/// A line for a report: quoted, and cut short if long.
fn quote(line: &str) -> String {
    const MAX: usize = 80;
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &line[..cut]),
        None => format!("{line:?}"),
    }
}
