// What the Query tab shares and exports: the query as a hash query string
// (`#query?device=..&metric=..&op=..&start=..&end=..&preset=..`, so a link reopens it) and
// the chart's buckets as CSV (time in ISO 8601 UTC, value). Pure functions, no DOM.

const OPERATIONS = ['avg', 'sum', 'min', 'max', 'count'];

/**
 * `{ device, metric, op, start, end, preset }` → `#query?…`. `start`/`end` are unix
 * seconds (0 or absent: open end); empty fields are left out.
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
  const text = params.toString();
  return text ? `#query?${text}` : '#query';
}

/**
 * `#query?…` → `{ device, metric, op, start, end, preset }`, or null when the hash names no
 * query (another tab, or no device and metric). Unknown operations become avg; times that
 * are not whole non-negative numbers become 0 (open).
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
  return {
    device,
    metric,
    op: OPERATIONS.includes(op) ? op : 'avg',
    start: seconds('start'),
    end: seconds('end'),
    preset: params.get('preset') ?? '',
  };
}

/** One CSV field: quoted when it holds a comma, quote or line break (RFC 4180). */
function csvField(value) {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/**
 * The chart's columns (`[times, values]`, uPlot's shape: unix seconds and numbers or null)
 * → CSV with a header `time,<valueName>`; times in ISO 8601 UTC, empty buckets left out.
 */
export function columnsToCsv([times, values], valueName = 'value') {
  const lines = [`time,${csvField(valueName)}`];
  for (let i = 0; i < times.length; i += 1) {
    const v = values[i];
    if (v === null || v === undefined || Number.isNaN(v)) continue;
    lines.push(`${new Date(times[i] * 1000).toISOString()},${v}`);
  }
  return `${lines.join('\n')}\n`;
}

/** A file name for an export: `sensor_1-temperature-avg.csv`, unsafe characters replaced. */
export function exportFileName({ device, metric, op }, extension) {
  const safe = (s) => String(s ?? '').replace(/[^A-Za-z0-9_.-]+/g, '_');
  return `${safe(device)}-${safe(metric)}-${safe(op)}.${extension}`;
}
