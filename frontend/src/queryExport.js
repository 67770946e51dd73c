// What the Query tab shares and exports: the query as a hash query string
// (`#query?device=..&metric=..&op=..&start=..&end=..&preset=..`, plus one
// `label=name=value` a label filter and one `group_by=name` a group-by label, so a link
// reopens it) and
// the chart's buckets as CSV (time in ISO 8601 UTC, value). Pure functions, no DOM.

const OPERATIONS = ['avg', 'sum', 'min', 'max', 'count'];

/**
 * `{ device, metric, op, start, end, preset, labels, groupBy }` → `#query?…`. `start`/`end`
 * are unix seconds (0 or absent: open end); `labels` an object of exact matches, `groupBy`
 * label names; empty fields are left out.
 */
export function encodeQueryHash(query) {
  const params = new URLSearchParams();
  const put = (key, value) => {
    if (value !== undefined && value !== null && value !== '' && value !== 0) params.set(key, String(value));
  };
  put('device', query.device);
  put('metric', query.metric);
  put('op', query.op);
  put('start', query.start);
  put('end', query.end);
  put('preset', query.preset);
  for (const [name, value] of Object.entries(query.labels ?? {})) params.append('label', `${name}=${value}`);
  for (const name of query.groupBy ?? []) params.append('group_by', name);
  const text = params.toString();
  return text ? `#query?${text}` : '#query';
}

/**
 * `#query?…` → `{ device, metric, op, start, end, preset, labels, groupBy }`, or null when
 * the hash names no query (another tab, or no device and metric). Unknown operations become
 * avg; times that are not whole non-negative numbers become 0 (open); a `label` without
 * `=` or a value, and empty `group_by` names, are dropped.
 */
export function decodeQueryHash(hash) {
  const text = String(hash ?? '').replace(/^#/, '');
  const [tab, search = ''] = text.split('?');
  if (tab !== 'query' || search === '') return null;
  const params = new URLSearchParams(search);
  const device = params.get('device') ?? '';
  const metric = params.get('metric') ?? '';
  if (device === '' || metric === '') return null;
  const seconds = (key) => {
    const n = Number(params.get(key));
    return Number.isInteger(n) && n >= 0 ? n : 0;
  };
  const op = params.get('op');
  const labels = {};
  for (const pair of params.getAll('label')) {
    const at = pair.indexOf('=');
    if (at > 0 && at < pair.length - 1) labels[pair.slice(0, at)] = pair.slice(at + 1);
  }
  const groupBy = [...new Set(params.getAll('group_by').filter((n) => n !== ''))];
  return {
    device,
    metric,
    op: OPERATIONS.includes(op) ? op : 'avg',
    start: seconds('start'),
    end: seconds('end'),
    preset: params.get('preset') ?? '',
    labels,
    groupBy,
  };
}

/** One CSV field: quoted when it holds a comma, quote or line break (RFC 4180). */
function csvField(value) {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

const isValue = (v) => typeof v === 'number' && !Number.isNaN(v);

/**
 * The chart's columns (`[times, values…]`, uPlot's shape: unix seconds, then one array of
 * numbers or nulls per series) → CSV with a header `time,<name>…`; times in ISO 8601 UTC, a
 * missing value empty, rows with no value at all left out. `names`: one name a series (a
 * single string for one series).
 */
export function columnsToCsv([times, ...series], names = 'value') {
  const header = (Array.isArray(names) ? names : [names]).map(csvField);
  const lines = [['time', ...header].join(',')];
  for (let i = 0; i < times.length; i += 1) {
    const row = series.map((values) => values[i]);
    if (!row.some(isValue)) continue;
    lines.push([new Date(times[i] * 1000).toISOString(), ...row.map((v) => (isValue(v) ? v : ''))].join(','));
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Several series' columns (`[times, values]` each) on one time axis for one chart: the union
 * of their times, sorted, each series null where it has no bucket.
 */
export function mergeColumns(columnsList) {
  const times = [...new Set(columnsList.flatMap(([xs]) => xs))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const series = columnsList.map(([xs, ys]) => {
    const out = new Array(times.length).fill(null);
    xs.forEach((t, i) => { out[index.get(t)] = ys[i]; });
    return out;
  });
  return [times, ...series];
}

/** A file name for an export: `sensor_1-temperature-avg.csv`, unsafe characters replaced. */
export function exportFileName({ device, metric, op }, extension) {
  const safe = (s) => String(s ?? '').replace(/[^A-Za-z0-9_.-]+/g, '_');
  return `${safe(device)}-${safe(metric)}-${safe(op)}.${extension}`;
}
