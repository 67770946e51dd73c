// Label filters and group-by for the Query tab, as pure functions: the form's rows
// (`[{ name, value }]`) and group-by names → the `labels` object and `group_by` list of a
// `POST /query` (exact matches, docs/api.md "Series and labels"); the answer's `groups` →
// table rows and chart lines; and the label names/values the cluster offers, read from the
// Prometheus API (`GET /api/v1/labels`, `GET /api/v1/label/<name>/values`) when the node
// has it.

/** A label name the API takes: not empty, no leading digit, not `__reserved`. */
const LABEL_NAME = /^[A-Za-z_.:-][A-Za-z0-9_.:-]*$/;

/** Why `name` is not a usable label name, or '' when it is. */
export function labelNameProblem(name) {
  if (name === '') return 'a label name is empty';
  if (name.startsWith('__')) return `label "${name}": names starting with __ are reserved`;
  if (!LABEL_NAME.test(name)) return `label "${name}": use letters, digits, _ . - : (not first a digit)`;
  return '';
}

/**
 * The filter rows → `{ ok: true, labels }` (an object, `{}` when no row is filled) or
 * `{ ok: false, error }`. Rows with neither name nor value are ignored; a name without a
 * value (or the reverse), a bad name, or a name given twice is an error.
 */
export function labelsFromRows(rows) {
  const labels = {};
  for (const row of rows ?? []) {
    const name = String(row?.name ?? '').trim();
    const value = String(row?.value ?? '');
    if (name === '' && value === '') continue;
    if (value === '') return { ok: false, error: `Label filter "${name}" needs a value.` };
    const problem = labelNameProblem(name);
    if (problem) return { ok: false, error: `Label filter: ${problem}.` };
    if (Object.hasOwn(labels, name)) return { ok: false, error: `Label filter "${name}" is given twice.` };
    labels[name] = value;
  }
  return { ok: true, labels };
}

/**
 * The `POST /query` body of the form: the series (`device_id`, `metric_name`), the
 * operation, `labels` when a filter is set and `group_by` when names are chosen (each left
 * out otherwise, so a plain query is the original request).
 */
export function buildQueryRequest({ device, metric, operation, labels = {}, groupBy = [] }) {
  const request = { device_id: device, metric_name: metric, operation };
  if (Object.keys(labels).length > 0) request.labels = { ...labels };
  const names = [...new Set(groupBy.map((n) => String(n).trim()).filter((n) => n !== ''))];
  if (names.length > 0) request.group_by = names;
  return request;
}

/** A group's name for the table and legend: `room=lab, device_id=d`, or `(no room)`. */
export function groupName(group, groupBy = []) {
  const labels = group?.labels ?? {};
  const parts = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  if (parts.length > 0) return parts.join(', ');
  return groupBy.length > 0 ? `(no ${groupBy.join(', ')})` : '(all)';
}

/**
 * The `groups` of a `/query` answer → table rows `{ name, labels, result, count, series }`
 * in the answer's order; `[]` when the answer has none.
 */
export function groupRows(answer, groupBy = []) {
  const groups = Array.isArray(answer?.groups) ? answer.groups : [];
  return groups.map((g) => ({
    name: groupName(g, groupBy),
    labels: g?.labels ?? {},
    result: g?.result ?? null,
    count: g?.count ?? 0,
    series: g?.series ?? 0,
  }));
}

/**
 * The groups of a stepped `/query` answer → `{ names, buckets }` for one chart line a
 * group (groups without a non-empty bucket left out).
 */
export function groupLines(answer, groupBy = []) {
  const groups = Array.isArray(answer?.groups) ? answer.groups : [];
  const drawn = groups
    .map((g) => ({ name: groupName(g, groupBy), buckets: Array.isArray(g?.buckets) ? g.buckets : [] }))
    .filter((g) => g.buckets.some((b) => b.count > 0));
  return { names: drawn.map((g) => g.name), buckets: drawn.map((g) => g.buckets) };
}

/**
 * A Prometheus API list answer (`{"status":"success","data":[...]}`) → its strings,
 * sorted (with `names`, `__name__` and other reserved names left out); null when it is not
 * that shape.
 */
export function promList(answer, { names = false } = {}) {
  if (!answer || answer.status !== 'success' || !Array.isArray(answer.data)) return null;
  const keep = (v) => typeof v === 'string' && !(names && v.startsWith('__'));
  return [...new Set(answer.data.filter(keep))].sort();
}

/** A label filter as PromQL writes it, for titles: `{room="lab"}`, or '' for none. */
export function labelsText(labels) {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return '';
  return `{${entries.map(([k, v]) => `${k}=${JSON.stringify(String(v))}`).join(',')}}`;
}
