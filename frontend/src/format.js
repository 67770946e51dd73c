// Number, duration and unit formatting shared by the tabs.

/**
 * The unit to show beside a value of `series` (`{ metric_name, labels? }`, or a metric name)
 * under `operation`. Only a unit that is known is shown: a count counts readings, and a
 * series' `unit` label names its unit (series carry no labels yet, so today that is never
 * set). Nothing is guessed from the metric name: a sensor's "temperature" may be in °F.
 * The one place a unit is decided, so the `unit` label plugs in here.
 */
export function unitFor(series, operation = 'avg') {
  if (operation === 'count') return 'readings';
  const unit = series && typeof series === 'object' ? series.labels?.unit : undefined;
  return typeof unit === 'string' ? unit.trim() : '';
}

/** "temperature (°F)" for axis labels when the unit is known, else the metric name. */
export function axisLabel(series, operation) {
  const name = series && typeof series === 'object' ? series.metric_name : series;
  const unit = unitFor(series, operation);
  return unit ? `${name} (${unit})` : String(name ?? '');
}

/** A measurement for people: null → "—", big or small numbers trimmed to 4 decimals. */
export function formatValue(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return '—';
  if (typeof value !== 'number') return String(value);
  if (Number.isInteger(value)) return value.toLocaleString('en-US');
  return value.toLocaleString('en-US', { maximumFractionDigits: 4 });
}

/** Nanoseconds → "2.847 ms". */
export function formatDurationNs(ns) {
  if (typeof ns !== 'number') return '—';
  return `${(ns / 1e6).toLocaleString('en-US', { maximumFractionDigits: 3 })} ms`;
}

/** Seconds → "3 d 4 h", "5 h 12 min", "42 s". */
export function formatUptime(seconds) {
  if (typeof seconds !== 'number' || seconds < 0) return '—';
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min ${s % 60} s`;
  return `${s} s`;
}

/** Unix seconds → local "2024-03-10 02:30:05 PM" (the chart cursor and the live feed). */
export function formatTimestamp(seconds) {
  if (typeof seconds !== 'number') return '—';
  const date = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  const h = date.getHours();
  const h12 = h % 12 === 0 ? 12 : h % 12;
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(h12)}:${pad(date.getMinutes())}:${pad(date.getSeconds())} ${h < 12 ? 'AM' : 'PM'}`;
}

/** Line colours for chart series, distinguishable and readable on white. */
export const PALETTE = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#db2777', '#0891b2', '#4b5563'];
