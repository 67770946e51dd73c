//! Load generation: a large simulated fleet published at a target rate for a fixed time,
//! with a progress line every [`PROGRESS_EVERY`](super::progress::PROGRESS_EVERY) (ETA: the
//! time left of `--duration`) so a long run shows it is alive and whether the broker keeps
//! up (acked close behind sent).

use crate::error::Result;
use crate::log_info;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::mqtt::MqttPublisher;
use super::pacing::{Pacer, Until};
use super::progress::{Goal, Progress};
use super::reading::unix_now;
use super::simulator::Fleet;

/// A load run's shape.
#[derive(Clone, Debug)]
pub struct LoadSettings {
    pub devices: usize,
    /// Target points a second (`None`: as fast as the broker acknowledges).
    pub rate: Option<f64>,
    pub duration: Duration,
    pub seed: u64,
}

/// Publishes the fleet's readings round-robin at the target rate until the duration ends
/// or `stop` is set. Returns the number of points published.
pub fn generate_load(
    settings: &LoadSettings,
    publisher: &mut MqttPublisher,
    stop: &AtomicBool,
) -> Result<u64> {
    let mut fleet = Fleet::new("load_", settings.devices, settings.seed);
    let start = Instant::now();
    let end = start + settings.duration;
    let until = Until::stopped_or(stop, Some(end));
    let mut pacer = Pacer::per_second(settings.rate, start);
    let mut progress = Progress::new("load", "points", start, Goal::At(end));
    let mut published = 0u64;
    loop {
        let now = Instant::now();
        if now < end {
            if let Some(line) = progress.tick(now, published, publisher.delivery()) {
                log_info!("{line}");
            }
        }
        if !pacer.wait(&until) {
            break;
        }
        let reading = fleet.reading(published as usize, unix_now());
        if !publisher.publish(&reading, &until) {
            break;
        }
        published += 1;
    }
    Ok(published)
}
