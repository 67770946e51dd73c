// What the live monitor remembers of the stream, as a plain object with no React in it.
//
// Readings can arrive thousands a second, far faster than a page should re-render, so the
// socket writes into this store and the tab takes a `snapshot()` a few times a second.
// Memory is bounded: the feed keeps the last `feedSize` readings and each device of each
// metric the last `pointsPerDevice` points.

export const FEED_SIZE = 100;
export const POINTS_PER_DEVICE = 300;
export const RATE_WINDOW_MS = 5000;

/**
 * Aligns per-device points into uPlot's column form `[xs, ys(device1), ys(device2), …]`:
 * xs is the sorted union of timestamps, each device column holds null where that device
 * has no reading at that time (the last reading wins for a repeated timestamp).
 */
export function alignSeries(devices) {
  const names = [...devices.keys()].sort();
  const byDevice = names.map((name) => {
    const { t, v } = devices.get(name);
    const map = new Map();
    for (let i = 0; i < t.length; i += 1) map.set(t[i], v[i]);
    return map;
  });
  const xs = [...new Set(byDevice.flatMap((m) => [...m.keys()]))].sort((a, b) => a - b);
  const columns = byDevice.map((m) => xs.map((x) => (m.has(x) ? m.get(x) : null)));
  return { names, data: [xs, ...columns] };
}

export function createLiveStore({
  feedSize = FEED_SIZE,
  pointsPerDevice = POINTS_PER_DEVICE,
  rateWindowMs = RATE_WINDOW_MS,
} = {}) {
  let total = 0;
  let feed = [];
  // metric → device → { t: number[], v: number[] }
  let metrics = new Map();
  // [{ bin: whole second of arrival, count }] for the messages-per-second figure.
  let bins = [];
  let version = 0;

  function countArrival(nowMs, n) {
    const bin = Math.floor(nowMs / 1000);
    const last = bins[bins.length - 1];
    if (last && last.bin === bin) last.count += n;
    else bins.push({ bin, count: n });
    const oldest = Math.floor((nowMs - rateWindowMs) / 1000);
    while (bins.length > 0 && bins[0].bin <= oldest) bins.shift();
  }

  return {
    /** Records readings that arrived at `nowMs` (wall clock, ms). */
    add(readings, nowMs) {
      if (readings.length === 0) return;
      total += readings.length;
      version += 1;
      countArrival(nowMs, readings.length);
      for (const r of readings) {
        feed.push({ ...r, receivedMs: nowMs });
        let devices = metrics.get(r.metric_name);
        if (!devices) {
          devices = new Map();
          metrics.set(r.metric_name, devices);
        }
        let points = devices.get(r.device_id);
        if (!points) {
          points = { t: [], v: [] };
          devices.set(r.device_id, points);
        }
        points.t.push(r.timestamp);
        points.v.push(r.value);
        if (points.t.length > pointsPerDevice) {
          points.t.splice(0, points.t.length - pointsPerDevice);
          points.v.splice(0, points.v.length - pointsPerDevice);
        }
      }
      if (feed.length > feedSize) feed = feed.slice(feed.length - feedSize);
    },

    /** Readings received since the start (or the last reset). */
    total() {
      return total;
    },

    /** Messages per second over the last window, as of `nowMs`. */
    rate(nowMs) {
      const from = Math.floor((nowMs - rateWindowMs) / 1000);
      const count = bins.filter((b) => b.bin > from).reduce((sum, b) => sum + b.count, 0);
      return count / (rateWindowMs / 1000);
    },

    /** What the tab draws: totals, the newest-first feed and one aligned chart per metric. */
    snapshot(nowMs) {
      const charts = [...metrics.keys()].sort().map((metric) => ({
        metric,
        ...alignSeries(metrics.get(metric)),
      }));
      return {
        version,
        total,
        rate: this.rate(nowMs),
        feed: [...feed].reverse(),
        charts,
      };
    },

    /** Forgets everything (the "Clear" button). */
    reset() {
      total = 0;
      feed = [];
      metrics = new Map();
      bins = [];
      version += 1;
    },
  };
}
