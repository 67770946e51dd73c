//! The publisher: the device side of MiniTrue. It produces sensor readings and publishes
//! them over MQTT the way a fleet of IoT devices would, to drive, backfill and load-test a
//! cluster.
//!
//! ```text
//!   simulator (Fleet of Signals) ─┐
//!   serial port ─▶ LineSplitter ─▶ parse_serial_line ─┤
//!   CSV file ─▶ CsvLayout::parse_row ─────────────────┼─▶ Reading::check ─▶ Pacer ─▶ MqttPublisher
//!   load (big Fleet, target rate) ─┘                                  (QoS 1, counts PubAcks)
//! ```
//!
//! Concepts:
//!
//! - A [`Reading`] is one value of one metric of one device at one time; it is published to
//!   `iot/sensors/{metric_name}` as the JSON payload the server's ingest accepts. Every
//!   reading is checked against the server's rules before it is sent, so a bad input is
//!   reported here, with its cause, instead of disappearing into a reject counter.
//! - Exactly one **mode** runs: `--sim` (a [`simulator::Fleet`] with believable signals,
//!   deterministic for `--seed`), `--serial` (an Arduino bridge that survives unplugging),
//!   `--replay` (CSV backfill) or `--load` (a large fleet at a target rate).
//! - **Pacing** is by deadline ([`pacing::Pacer`]), so rates are exact and nothing spins.
//! - **Delivery** is QoS 1 with bounded in-flight publishes ([`mqtt::MqttPublisher`]):
//!   a slow broker slows the producer instead of growing a queue. The run ends by waiting
//!   for every acknowledgement, and reports `sent=N acked=M elapsed=S rate=R/s`; the
//!   binary exits non-zero if anything went unacknowledged.
//!
//! Trouble (a serial port that flaps, a broker that is down, a bad CSV row) is reported at
//! most once per [`REPORT_EVERY`] per kind, with a count of what was held back
//! ([`crate::throttle::Throttle`]).
//!
//! The pure pieces (line parser, CSV parser, signal generator, pacer) hold no sockets and are tested by unit tests; `tests/publisher.rs` runs the binary against
//! Mosquitto and a pseudo-terminal.

pub mod config;
pub mod load;
pub mod mqtt;
pub mod pacing;
pub mod progress;
pub mod reading;
pub mod replay;
pub mod serial;
pub mod serial_line;
pub mod simulator;

pub use config::{Mode, PublisherArgs, PublisherConfig};

/// How often one kind of trouble may be reported.
pub const REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
pub use reading::Reading;
pub use serial_line::parse_serial_line;

use crate::error::Result;
use crate::log_info;
use config::{SimPace, SimSettings};
use mqtt::{Delivery, MqttPublisher};
use pacing::{Pacer, Until};
use reading::unix_now;
use simulator::Fleet;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct Summary {
    pub delivery: Delivery,
    /// From the start of the run until the last acknowledgement (or the ack timeout).
    pub elapsed: Duration,
    /// The mode's own counts, e.g. `replay data.csv: rows=10 published=9 skipped=1`.
    pub detail: String,
}

impl Summary {
    /// Acknowledged points a second over the whole run.
    pub fn rate(&self) -> f64 {
        self.delivery.acked as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Summary {
    /// The final line: `sent=N acked=M elapsed=S rate=R/s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent={} acked={} elapsed={:.2}s rate={:.1}/s",
            self.delivery.sent,
            self.delivery.acked,
            self.elapsed.as_secs_f64(),
            self.rate()
        )
    }
}

/// Runs the configured mode until it ends (or `stop` is set), then waits for the broker's
/// acknowledgements and disconnects.
pub fn run(config: PublisherConfig, stop: &AtomicBool) -> Result<Summary> {
    let start = Instant::now();
    let mut publisher = MqttPublisher::start(&config.mqtt)?;
    log_info!(
        "publishing to {} as {} (QoS 1, in-flight {})",
        config.mqtt.broker,
        config.mqtt.client_id,
        config.mqtt.inflight
    );
    let detail = match &config.mode {
        Mode::Simulate(sim) => {
            let points = simulate(sim, &mut publisher, stop);
            format!(
                "sim: devices={} seed={} points={points}",
                sim.devices, sim.seed
            )
        }
        Mode::Serial(serial) => {
            let c = serial::bridge_serial(serial, &mut publisher, stop)?;
            format!(
                "serial {}: lines={} readings={} bad_lines={} failed_opens={}",
                serial.port, c.lines, c.readings, c.bad_lines, c.failed_opens
            )
        }
        Mode::Replay {
            path,
            columns,
            rate,
        } => {
            let c = replay::replay_csv(path, columns, *rate, &mut publisher, stop)?;
            format!(
                "replay {}: rows={} published={} skipped={}",
                path.display(),
                c.rows,
                c.published,
                c.skipped
            )
        }
        Mode::Load(load) => {
            log_info!(
                "load: {} devices, target {} points/s for {:?}",
                load.devices,
                load.rate.unwrap_or(f64::INFINITY),
                load.duration
            );
            let points = load::generate_load(load, &mut publisher, stop)?;
            format!(
                "load: devices={} seed={} points={points}",
                load.devices, load.seed
            )
        }
    };
    let delivery = publisher.finish(config.ack_timeout);
    Ok(Summary {
        delivery,
        elapsed: start.elapsed(),
        detail,
    })
}

/// The simulator loop: rounds every `interval`, or single points at `rate`. Returns how
/// many points were published.
fn simulate(sim: &SimSettings, publisher: &mut MqttPublisher, stop: &AtomicBool) -> u64 {
    log_info!(
        "simulating {} devices (seed {}), {:?}",
        sim.devices,
        sim.seed,
        sim.pace
    );
    let mut fleet = Fleet::new("sensor_", sim.devices, sim.seed);
    let start = Instant::now();
    let until = Until::stopped_or(stop, sim.duration.map(|d| start + d));
    let mut pacer = match sim.pace {
        SimPace::Interval(every) => Pacer::every(every, start),
        SimPace::Rate(rate) => Pacer::per_second(Some(rate), start),
    };
    let mut published = 0u64;
    let mut index = 0usize;
    while pacer.wait(&until) {
        let readings = match sim.pace {
            SimPace::Interval(_) => fleet.round(unix_now()),
            SimPace::Rate(_) => {
                index += 1;
                vec![fleet.reading(index - 1, unix_now())]
            }
        };
        for reading in &readings {
            if !publisher.publish(reading, &until) {
                return published;
            }
            published += 1;
        }
    }
    published
}
