//! Command-line flags of `minitrue-publisher` (clap derive, the original's underscore
//! names) turned into a validated [`PublisherConfig`]: which one mode runs and with what.

use crate::error::{Error, Result};
use clap::{ArgAction, Parser};
use std::path::PathBuf;
use std::time::Duration;

use super::load::LoadSettings;
use super::mqtt::MqttSettings;
use super::replay::ColumnMap;
use super::serial::SerialSettings;
use crate::mqtt_link::{parse_broker_url, BrokerFlags};

/// Simulated devices when `--devices` is not given: the original's sensor_1..3.
pub const DEFAULT_SIM_DEVICES: usize = 3;
/// Devices of a load run when `--devices` is not given.
pub const DEFAULT_LOAD_DEVICES: usize = 100;
/// Points a second of a load run when `--rate` is not given.
pub const DEFAULT_LOAD_RATE: f64 = 1000.0;
/// Length of a load run when `--duration` is not given, in seconds.
pub const DEFAULT_LOAD_SECONDS: f64 = 10.0;

/// `-h`'s one-line description.
const ABOUT: &str = "Publishes sensor readings to MiniTrue over MQTT (QoS 1, JSON payloads). \
One mode: --sim, --serial PORT, --replay FILE.csv or --load. --help says more.";

/// `--help`'s description: what the publisher does and each mode.
const LONG_ABOUT: &str = "\
minitrue-publisher is the device side of MiniTrue. It publishes sensor readings to an MQTT \
broker as QoS 1 messages, one reading a message, on PREFIX/{metric_name} (--topic_prefix, \
default iot/sensors) with the JSON payload the server ingests:
  {\"device_id\":\"sensor_1\",\"metric_name\":\"temperature\",\"timestamp\":1710000000,\"value\":24.2}
Every reading is checked against the server's rules before it is sent. At the end it waits \
up to --ack_timeout for the broker's acknowledgements, prints \
`sent=N acked=M elapsed=S rate=R/s`, and exits non-zero if any went unacknowledged.

Exactly one mode runs:

  --sim               A simulated fleet (--devices, default sensor_1..3) with believable \
signals for several metrics: a round of every device every --interval seconds, or single \
points at --rate a second, for --duration seconds (default: until stopped). Deterministic \
for a --seed.

  --serial PORT       An Arduino bridge: reads lines from the serial port at --baud and \
publishes their readings. A line is JSON (the payload above, fields optional, or \
{\"temp\":21.5,\"rh\":40}), `metric:value`, or `key=value,key=value`; a `device_id=...` \
pair names the device of the line, and a unit after a number is dropped \
(`Temperature: 25.0 C`, `temp=21.5C`). Readings naming no device get --device_id. Survives \
the board being unplugged; the sketch is in examples/arduino/.

  --replay FILE.csv   Backfill: publishes every row of a CSV file (header \
timestamp,device_id,metric_name,value in any order, or mapped with --columns) with its own \
timestamp (unix seconds or RFC 3339), at --rate rows a second or as fast as the broker \
acknowledges. Bad rows are reported with their line number and skipped.

  --load              A benchmark: --devices (default 100) publishing at --rate (default \
1000 points a second) for --duration (default 10 s).

Long --replay and --load runs log a progress line every 2 s: sent, acked, rate, and an ETA \
(replay: from the rows left of the file's total; load: the time left). Logs go to stderr \
(--log_level, --log_format).";

/// `minitrue-publisher`: publishes sensor readings to MiniTrue over MQTT; `--help` (the
/// `LONG_ABOUT` text) describes every mode.
#[derive(Parser, Debug, Clone)]
#[command(name = "minitrue-publisher", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct PublisherArgs {
    /// Simulate a fleet of sensors (`--sim` or the original's `--sim=true`).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = ArgAction::Set)]
    pub sim: bool,
    /// Bridge an Arduino: read readings from this serial port (e.g. /dev/ttyACM0, COM3).
    #[arg(long, value_name = "PORT")]
    pub serial: Option<String>,
    /// Publish the rows of a CSV file (timestamp,device_id,metric_name,value) for backfill.
    #[arg(long, value_name = "FILE.csv")]
    pub replay: Option<PathBuf>,
    /// Generate load: many devices at a target --rate for --duration; reports acks.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = ArgAction::Set)]
    pub load: bool,

    #[command(flatten)]
    pub mqtt: BrokerFlags,
    /// MQTT client id (default minitrue-publisher-{pid}).
    #[arg(long = "client_id")]
    pub client_id: Option<String>,
    /// Topic prefix; readings go to PREFIX/{metric_name}.
    #[arg(long = "topic_prefix", default_value = "iot/sensors")]
    pub topic_prefix: String,
    /// Most unacknowledged QoS 1 publishes on the wire.
    #[arg(long, default_value_t = 100)]
    pub inflight: u16,
    /// Seconds to wait at the end for the broker to acknowledge everything.
    #[arg(long = "ack_timeout", default_value_t = 10.0)]
    pub ack_timeout: f64,

    /// Simulated devices (--sim default 3: sensor_1..3; --load default 100).
    #[arg(long)]
    pub devices: Option<usize>,
    /// --sim: seconds between rounds (every device reports every metric each round).
    #[arg(long)]
    pub interval: Option<f64>,
    /// Points a second (--sim instead of --interval; --load target, default 1000;
    /// --replay rows a second, default unlimited).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds to run (--sim and --serial default forever; --load default 10).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seed of the simulated signals (default: from the clock, printed at start).
    #[arg(long)]
    pub seed: Option<u64>,

    /// --serial: baud rate.
    #[arg(long, default_value_t = 9600)]
    pub baud: u32,
    /// --serial: device id for readings whose line names none.
    #[arg(long = "device_id", default_value = "arduino_1")]
    pub device_id: String,

    /// --replay: map fields to the file's header names, e.g.
    /// `timestamp=time,device_id=station,metric_name=kind,value=reading`.
    #[arg(long)]
    pub columns: Option<String>,

    /// error | warn | info | debug
    #[arg(long = "log_level", default_value = "info")]
    pub log_level: String,

    /// Log lines on stderr: text or json (as minitrue-server's `--log_format`).
    #[arg(long = "log_format", value_enum, default_value = "text")]
    pub log_format: crate::log::Format,
}

/// How often the simulator publishes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SimPace {
    /// A round (every device, every metric) this often.
    Interval(Duration),
    /// Points a second, spread evenly.
    Rate(f64),
}

/// The simulator's settings.
#[derive(Clone, Debug)]
pub struct SimSettings {
    pub devices: usize,
    pub pace: SimPace,
    pub duration: Option<Duration>,
    pub seed: u64,
}

/// The one thing a run does.
#[derive(Clone, Debug)]
pub enum Mode {
    Simulate(SimSettings),
    Serial(SerialSettings),
    Replay {
        path: PathBuf,
        columns: ColumnMap,
        rate: Option<f64>,
    },
    Load(LoadSettings),
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct PublisherConfig {
    pub mqtt: MqttSettings,
    pub ack_timeout: Duration,
    pub mode: Mode,
}

impl PublisherArgs {
    pub fn into_config(self) -> Result<PublisherConfig> {
        let chosen = [
            self.sim,
            self.serial.is_some(),
            self.replay.is_some(),
            self.load,
        ]
        .iter()
        .filter(|&&on| on)
        .count();
        if chosen != 1 {
            return Err(Error::invalid(
                "mode",
                "choose exactly one of --sim, --serial PORT, --replay FILE.csv, --load",
            ));
        }
        let duration = seconds("duration", self.duration)?;
        let rate = positive("rate", self.rate)?;
        let seed = self.seed.unwrap_or_else(clock_seed);
        let mode = if self.sim {
            let pace = match (self.interval, rate) {
                (Some(_), Some(_)) => {
                    return Err(Error::invalid(
                        "interval",
                        "give --interval or --rate, not both",
                    ))
                }
                (_, Some(r)) => SimPace::Rate(r),
                (interval, None) => SimPace::Interval(
                    seconds("interval", interval.or(Some(1.0)))?
                        .expect("interval defaults to one second"),
                ),
            };
            Mode::Simulate(SimSettings {
                devices: devices(self.devices.unwrap_or(DEFAULT_SIM_DEVICES))?,
                pace,
                duration,
                seed,
            })
        } else if let Some(port) = self.serial {
            if self.baud == 0 {
                return Err(Error::invalid("baud", "must be positive"));
            }
            Mode::Serial(SerialSettings {
                port,
                baud: self.baud,
                device_id: self.device_id,
                duration,
            })
        } else if let Some(path) = self.replay {
            let columns = match &self.columns {
                Some(spec) => ColumnMap::parse(spec)?,
                None => ColumnMap::default(),
            };
            Mode::Replay {
                path,
                columns,
                rate,
            }
        } else {
            Mode::Load(LoadSettings {
                devices: devices(self.devices.unwrap_or(DEFAULT_LOAD_DEVICES))?,
                rate: Some(rate.unwrap_or(DEFAULT_LOAD_RATE)),
                duration: duration.unwrap_or(Duration::from_secs_f64(DEFAULT_LOAD_SECONDS)),
                seed,
            })
        };
        if self.topic_prefix.is_empty() || self.topic_prefix.contains(['+', '#']) {
            return Err(Error::invalid(
                "topic_prefix",
                "must be non-empty, without '+' or '#'",
            ));
        }
        let ack_timeout =
            seconds("ack_timeout", Some(self.ack_timeout))?.expect("ack_timeout is always set");
        let broker = parse_broker_url(&self.mqtt.broker)
            .map_err(|why| Error::invalid("broker", format!("{:?}: {why}", self.mqtt.broker)))?;
        let security = self.mqtt.security()?;
        security.check(&broker)?;
        Ok(PublisherConfig {
            mqtt: MqttSettings {
                broker,
                security,
                client_id: self
                    .client_id
                    .unwrap_or_else(|| format!("minitrue-publisher-{}", std::process::id())),
                inflight: self.inflight.max(1),
                topic_prefix: self.topic_prefix.trim_end_matches('/').to_string(),
            },
            ack_timeout,
            mode,
        })
    }
}

fn seconds(field: &str, value: Option<f64>) -> Result<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(s) if (0.0..1e9).contains(&s) => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(Error::invalid(
            field,
            format!("{s} is not a number of seconds"),
        )),
    }
}

fn positive(field: &str, value: Option<f64>) -> Result<Option<f64>> {
    match value {
        Some(v) if !(v.is_finite() && v > 0.0) => Err(Error::invalid(
            field,
            format!("{v} must be a positive number"),
        )),
        v => Ok(v),
    }
}

fn devices(n: usize) -> Result<usize> {
    if (1..=1_000_000).contains(&n) {
        Ok(n)
    } else {
        Err(Error::invalid("devices", "must be between 1 and 1000000"))
    }
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &[&str]) -> Result<PublisherConfig> {
        let mut all = vec!["minitrue-publisher"];
        all.extend_from_slice(extra);
        PublisherArgs::try_parse_from(all)
            .map_err(|e| Error::invalid("args", e.to_string()))?
            .into_config()
    }

    #[test]
    fn original_sim_flag_and_bare_flag() {
        for flag in ["--sim=true", "--sim"] {
            let c = config(&[flag]).unwrap();
            let Mode::Simulate(sim) = c.mode else {
                panic!("{flag} should simulate")
            };
            assert_eq!(sim.devices, 3);
            assert_eq!(sim.pace, SimPace::Interval(Duration::from_secs(1)));
            assert_eq!(sim.duration, None);
            assert_eq!(c.mqtt.broker.port, 1883);
            assert!(c.mqtt.client_id.starts_with("minitrue-publisher-"));
        }
        assert!(config(&["--sim=false"]).is_err(), "no mode chosen");
    }

    #[test]
    fn help_describes_the_publisher_and_every_mode() {
        use clap::CommandFactory;
        let long = PublisherArgs::command().render_long_help().to_string();
        for part in [
            "device side of MiniTrue",
            "Exactly one mode",
            "--sim ",
            "--serial PORT",
            "--replay FILE.csv",
            "--load ",
            "progress line every 2 s",
        ] {
            assert!(long.contains(part), "--help lacks {part:?}:\n{long}");
        }
        let short = PublisherArgs::command().render_help().to_string();
        assert!(short.contains("Publishes sensor readings"), "{short}");
    }

    #[test]
    fn exactly_one_mode() {
        assert!(config(&[]).is_err());
        assert!(config(&["--sim", "--load"]).is_err());
        assert!(config(&["--serial", "/dev/ttyACM0", "--replay", "x.csv"]).is_err());
    }

    #[test]
    fn serial_defaults() {
        let Mode::Serial(s) = config(&["--serial", "/dev/ttyUSB0"]).unwrap().mode else {
            panic!("serial mode")
        };
        assert_eq!((s.baud, s.device_id.as_str()), (9600, "arduino_1"));
    }

    #[test]
    fn load_defaults_and_rate() {
        let Mode::Load(l) = config(&["--load", "--rate", "2000", "--duration=2"])
            .unwrap()
            .mode
        else {
            panic!("load mode")
        };
        assert_eq!((l.devices, l.rate), (DEFAULT_LOAD_DEVICES, Some(2000.0)));
        assert_eq!(l.duration, Duration::from_secs(2));
    }

    #[test]
    fn bad_numbers_are_refused() {
        assert!(config(&["--sim", "--interval", "-1"]).is_err());
        assert!(config(&["--sim", "--rate", "0"]).is_err());
        assert!(config(&["--sim", "--interval", "1", "--rate", "5"]).is_err());
        assert!(config(&["--sim", "--devices", "0"]).is_err());
        assert!(config(&["--sim", "--broker", "ssl://x:1"]).is_err());
    }

    #[test]
    fn mqtts_needs_a_ca_and_a_username_needs_a_password_file() {
        let e = config(&["--sim", "--broker", "mqtts://x"]).unwrap_err();
        assert!(e.to_string().contains("broker_ca"), "{e}");
        let e = config(&["--sim", "--broker_username", "u"]).unwrap_err();
        assert!(e.to_string().contains("broker_password_file"), "{e}");
    }
}
