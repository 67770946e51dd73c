// Picks the bucket width for the query chart, as pure functions.
//
// The chart asks `/query` with a `step` so the server returns one aggregate per bucket.
// A few hundred buckets draw a readable line at any zoom, so the step is the smallest "nice"
// width (one a person reads at a glance: 1 s, 5 s, 15 s, 1 min, 5 min, 1 h, 1 d…) that
// keeps the bucket count at or below the target.

/** Bucket count the chart aims for. */
export const TARGET_BUCKETS = 300;

const MINUTE = 60;
const HOUR = 3600;
const DAY = 86400;

/** Nice bucket widths in seconds, ascending. */
export const NICE_STEPS = [
  1, 2, 5, 10, 15, 30,
  MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE,
  HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR,
  DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY,
];

/**
 * The step (seconds) for a range of `rangeSeconds`: the smallest nice step giving at most
 * `target` buckets; beyond the largest nice step, a whole number of 30-day periods.
 */
export function chooseStep(rangeSeconds, target = TARGET_BUCKETS) {
  if (!Number.isFinite(rangeSeconds) || rangeSeconds <= 0) return NICE_STEPS[0];
  const wanted = rangeSeconds / Math.max(1, target);
  for (const step of NICE_STEPS) {
    if (step >= wanted) return step;
  }
  const largest = NICE_STEPS[NICE_STEPS.length - 1];
  return Math.ceil(wanted / largest) * largest;
}

/** Number of buckets a range splits into with `step`. */
export function bucketCount(rangeSeconds, step) {
  if (rangeSeconds <= 0) return 0;
  return Math.ceil(rangeSeconds / step);
}

/** "15 s", "5 min", "6 h", "1 d" for the chart caption. */
export function formatStep(step) {
  if (step % DAY === 0) return `${step / DAY} d`;
  if (step % HOUR === 0) return `${step / HOUR} h`;
  if (step % MINUTE === 0) return `${step / MINUTE} min`;
  return `${step} s`;
}

/**
 * The server's buckets as uPlot columns `[starts, results]`. The server sends only buckets
 * that hold readings, so a missing bucket gets a null at its start: the line breaks there
 * instead of being drawn straight across a time with no data. Empty buckets sent anyway
 * (count 0) are nulls too.
 */
export function bucketsToColumns(buckets, step) {
  const xs = [];
  const ys = [];
  let previous = null;
  for (const b of buckets) {
    if (previous !== null && step > 0 && b.start - previous > step) {
      xs.push(previous + step);
      ys.push(null);
    }
    xs.push(b.start);
    ys.push(b.count > 0 && typeof b.result === 'number' ? b.result : null);
    previous = b.start;
  }
  return [xs, ys];
}
