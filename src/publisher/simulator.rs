//! A fleet of simulated sensors with believable signals, deterministic for a seed.
//!
//! Each device reports every metric in [`METRICS`]; each (device, metric) pair is one
//! [`Signal`] with its own random stream, so the values depend only on the seed, the device
//! and metric index and the timestamps asked for — never on the order of calls across pairs.
//!
//! The ingredients, per metric:
//!
//! - a **daily cycle** from the UTC hour of the timestamp (temperature peaks mid-afternoon,
//!   humidity is its mirror image, light follows the sun, pressure has its small 12-hour tide);
//! - a **slow drift**: an Ornstein-Uhlenbeck process (a random walk pulled back to zero), so
//!   weather moves over hours and days without wandering off;
//! - **noise** of the size a cheap sensor shows, and **occasional spikes** (a door opened,
//!   a glitching read), about one sample in five hundred;
//! - a **battery** that only drains, at a per-device pace, and is swapped at 5 %.
//!
//! Values are rounded as sensors report them: temperature and pressure to 2 decimals,
//! humidity and battery to 1, light to whole lux.

use super::reading::{round_to, Reading};

/// The metrics every simulated device reports.
pub const METRICS: [&str; 5] = ["temperature", "humidity", "pressure", "battery", "light"];

/// Chance that one sample carries a spike.
const SPIKE_PROBABILITY: f64 = 0.002;

/// Battery level at which the simulated device gets a fresh battery, in percent.
const BATTERY_SWAP_AT: f64 = 5.0;

const SECONDS_PER_DAY: f64 = 86_400.0;

/// SplitMix64: tiny, fast and good enough for test signals; no dependency needed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // in (0, 1]: ln is finite
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// A slow random walk pulled back towards zero (Ornstein-Uhlenbeck): standard deviation
/// `sd` in the long run, forgetting its past over `tau_seconds`.
#[derive(Clone, Debug)]
struct Drift {
    sd: f64,
    tau_seconds: f64,
    level: f64,
}

impl Drift {
    fn new(sd: f64, tau_seconds: f64, rng: &mut Rng) -> Drift {
        Drift {
            sd,
            tau_seconds,
            level: sd * rng.normal(),
        }
    }

    fn step(&mut self, dt: f64, rng: &mut Rng) -> f64 {
        if dt > 0.0 {
            // Exact discretisation: stays stationary for any dt.
            let keep = (-dt / self.tau_seconds).exp();
            self.level = self.level * keep + self.sd * (1.0 - keep * keep).sqrt() * rng.normal();
        }
        self.level
    }
}

/// The daily cycle: 1 at `peak_hour` (UTC), -1 twelve hours later.
fn daily(t: f64, peak_hour: f64) -> f64 {
    let hour = t.rem_euclid(SECONDS_PER_DAY) / 3600.0;
    ((hour - peak_hour) / 24.0 * std::f64::consts::TAU).cos()
}

/// How much sun there is, 0 at night and 1 at noon (UTC), an idealised equinox day.
fn daylight(t: f64) -> f64 {
    let hour = t.rem_euclid(SECONDS_PER_DAY) / 3600.0;
    if (6.0..18.0).contains(&hour) {
        ((hour - 6.0) / 12.0 * std::f64::consts::PI).sin()
    } else {
        0.0
    }
}

/// What a metric's signal is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Metric {
    Temperature,
    Humidity,
    Pressure,
    Battery,
    Light,
}

impl Metric {
    fn from_index(i: usize) -> Metric {
        [
            Metric::Temperature,
            Metric::Humidity,
            Metric::Pressure,
            Metric::Battery,
            Metric::Light,
        ][i % METRICS.len()]
    }
}

/// One (device, metric) pair's generator.
#[derive(Clone, Debug)]
pub struct Signal {
    metric: Metric,
    rng: Rng,
    /// A per-device offset: no two sensors read alike.
    offset: f64,
    drift: Drift,
    /// Battery only: current charge (percent) and drain (percent per second).
    charge: f64,
    drain: f64,
    last_t: Option<f64>,
}

impl Signal {
    pub fn new(metric_index: usize, seed: u64) -> Signal {
        let metric = Metric::from_index(metric_index);
        let mut rng = Rng::new(seed);
        let (offset, drift) = match metric {
            Metric::Temperature => (
                rng.range(-1.5, 1.5),
                Drift::new(1.0, 6.0 * 3600.0, &mut rng),
            ),
            Metric::Humidity => (
                rng.range(-5.0, 5.0),
                Drift::new(3.0, 4.0 * 3600.0, &mut rng),
            ),
            Metric::Pressure => (
                rng.range(-3.0, 3.0),
                Drift::new(6.0, 48.0 * 3600.0, &mut rng),
            ),
            Metric::Battery => (0.0, Drift::new(0.0, 1.0, &mut rng)),
            // Cloud cover: a multiplicative factor around 1.
            Metric::Light => (
                rng.range(0.8, 1.1),
                Drift::new(0.15, 2.0 * 3600.0, &mut rng),
            ),
        };
        let charge = rng.range(85.0, 100.0);
        // Between 0.5 and 1.5 percent an hour: visible on a dashboard within the hour.
        let drain = rng.range(0.5, 1.5) / 3600.0;
        Signal {
            metric,
            rng,
            offset,
            drift,
            charge,
            drain,
            last_t: None,
        }
    }

    /// The reading at unix time `t`. Times should not go backwards; if they do, the slow
    /// parts simply hold still.
    pub fn sample(&mut self, t: f64) -> f64 {
        let dt = self.last_t.map_or(0.0, |last| (t - last).max(0.0));
        self.last_t = Some(self.last_t.map_or(t, |last| last.max(t)));
        let drift = self.drift.step(dt, &mut self.rng);
        let noise = self.rng.normal();
        let spike = if self.rng.unit() < SPIKE_PROBABILITY {
            let sign = if self.rng.unit() < 0.5 { -1.0 } else { 1.0 };
            sign * self.rng.range(1.0, 2.0)
        } else {
            0.0
        };
        match self.metric {
            Metric::Temperature => {
                let v = 21.0 + self.offset + 4.0 * daily(t, 15.0) + drift + 0.1 * noise;
                round_to(v + 4.0 * spike, 2)
            }
            Metric::Humidity => {
                let v = 50.0 + self.offset - 8.0 * daily(t, 15.0) + drift + 0.4 * noise;
                round_to((v + 10.0 * spike).clamp(5.0, 99.0), 1)
            }
            Metric::Pressure => {
                let tide = 0.6 * daily(2.0 * t, 20.0);
                let v = 1013.25 + self.offset + drift + tide + 0.05 * noise;
                round_to(v, 2)
            }
            Metric::Battery => {
                self.charge -= self.drain * dt;
                if self.charge < BATTERY_SWAP_AT {
                    self.charge = 100.0;
                }
                round_to(self.charge, 1)
            }
            Metric::Light => {
                let clouds = (self.offset + drift).clamp(0.2, 1.2);
                let v = 800.0 * daylight(t) * clouds + 5.0 * noise.abs();
                round_to((v * (1.0 + 0.5 * spike)).max(0.0), 0)
            }
        }
    }
}

/// Every device's signals: device `d` (0-based) is named `{prefix}{d + 1}`.
#[derive(Debug)]
pub struct Fleet {
    devices: Vec<String>,
    /// `signals[d][m]`: device `d`, metric `METRICS[m]`.
    signals: Vec<Vec<Signal>>,
}

impl Fleet {
    pub fn new(device_prefix: &str, devices: usize, seed: u64) -> Fleet {
        let mut seeds = Rng::new(seed);
        let signals = (0..devices)
            .map(|_| {
                (0..METRICS.len())
                    .map(|m| Signal::new(m, seeds.next_u64()))
                    .collect()
            })
            .collect();
        Fleet {
            devices: (1..=devices)
                .map(|d| format!("{device_prefix}{d}"))
                .collect(),
            signals,
        }
    }

    /// How many (device, metric) pairs there are: the points in one round.
    pub fn points_per_round(&self) -> usize {
        self.devices.len() * METRICS.len()
    }

    /// The reading of pair `index` (counting device-major over [`Fleet::points_per_round`])
    /// at time `t`.
    pub fn reading(&mut self, index: usize, t: f64) -> Reading {
        let index = index % self.points_per_round().max(1);
        let (d, m) = (index / METRICS.len(), index % METRICS.len());
        Reading {
            device_id: self.devices[d].clone(),
            metric_name: METRICS[m].to_string(),
            timestamp: t,
            value: self.signals[d][m].sample(t),
        }
    }

    /// One reading of every metric of every device, all at time `t`.
    pub fn round(&mut self, t: f64) -> Vec<Reading> {
        (0..self.points_per_round())
            .map(|i| self.reading(i, t))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: f64 = 1_710_000_000.0;

    fn series(seed: u64, rounds: usize) -> Vec<Reading> {
        let mut fleet = Fleet::new("sensor_", 3, seed);
        (0..rounds)
            .flat_map(|i| fleet.round(T0 + i as f64 * 60.0))
            .collect()
    }

    #[test]
    fn same_seed_same_values() {
        assert_eq!(series(7, 50), series(7, 50));
        assert_ne!(series(7, 50), series(8, 50));
    }

    #[test]
    fn every_device_reports_every_metric() {
        let round = Fleet::new("sensor_", 3, 1).round(T0);
        assert_eq!(round.len(), 3 * METRICS.len());
        assert_eq!(round[0].device_id, "sensor_1");
        assert_eq!(round.last().unwrap().device_id, "sensor_3");
        assert!(round.iter().all(|r| r.check().is_ok()));
    }

    #[test]
    fn values_stay_in_believable_ranges() {
        for r in series(42, 2000) {
            let ok = match r.metric_name.as_str() {
                "temperature" => (0.0..45.0).contains(&r.value),
                "humidity" => (5.0..=99.0).contains(&r.value),
                "pressure" => (950.0..1070.0).contains(&r.value),
                "battery" => (0.0..=100.0).contains(&r.value),
                "light" => (0.0..2000.0).contains(&r.value),
                _ => false,
            };
            assert!(ok, "{r:?}");
        }
    }

    #[test]
    fn values_have_sensor_precision() {
        for r in series(3, 100) {
            let decimals = if r.metric_name == "light" { 0 } else { 2 };
            assert_eq!(round_to(r.value, decimals), r.value, "{r:?}");
        }
    }

    #[test]
    fn temperature_follows_the_day() {
        let mut s = Signal::new(0, 99);
        let afternoon = T0 - T0.rem_euclid(SECONDS_PER_DAY) + 15.0 * 3600.0;
        let night = afternoon + 12.0 * 3600.0;
        let warm: f64 = (0..20).map(|i| s.sample(afternoon + i as f64)).sum::<f64>();
        let cold: f64 = (0..20).map(|i| s.sample(night + i as f64)).sum::<f64>();
        assert!(warm > cold + 20.0 * 4.0, "warm {warm} cold {cold}");
    }

    #[test]
    fn battery_only_drains() {
        let mut s = Signal::new(3, 5);
        let mut last = f64::INFINITY;
        for i in 0..100 {
            let v = s.sample(T0 + i as f64 * 600.0);
            assert!(v <= last, "battery rose from {last} to {v}");
            last = v;
        }
        assert!(last < 100.0);
    }

    #[test]
    fn normal_has_unit_spread() {
        let mut rng = Rng::new(1);
        let xs: Vec<f64> = (0..20_000).map(|_| rng.normal()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(
            mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }
}
