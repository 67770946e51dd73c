// Query Data: pick a series and a range (QueryForm), get one aggregate plus a bucketed chart
// of the range, or delete the series everywhere (DeleteSeriesDialog, behind a typed
// confirmation). The series lists come from useSeriesLists, the label names and values from
// useLabelLists. With label filters the query covers only the series with those labels;
// with group-by the answer's `groups` are shown as a table and drawn as one chart line a
// group. The last query is kept in the URL hash (`#query?device=…`, src/queryExport.js) so
// a link reopens it, can be re-run on a timer (auto-refresh), and the chart can be
// downloaded as CSV (its buckets) or PNG.
import { useEffect, useMemo, useRef, useState } from 'react';
import TimeChart from '../components/TimeChart.jsx';
import DeleteSeriesDialog from '../components/DeleteSeriesDialog.jsx';
import useSeriesLists from '../hooks/useSeriesLists.js';
import useLabelLists from '../hooks/useLabelLists.js';
import QueryForm from './QueryForm.jsx';
import { bucketsToColumns, chooseStep, formatStep } from '../bucketStep.js';
import { axisLabel, formatDurationNs, formatTimestamp, formatValue, unitFor } from '../format.js';
import { columnsToCsv, decodeQueryHash, encodeQueryHash, exportFileName, mergeColumns } from '../queryExport.js';
import { presetRange } from '../time12h.js';
import { groupLines, groupRows, labelsText } from '../queryLabels.js';

/** Auto-refresh choices: label and period in ms (0: off). */
const REFRESH_CHOICES = [
  { label: 'Off', ms: 0 },
  { label: '5 s', ms: 5000 },
  { label: '30 s', ms: 30000 },
  { label: '1 min', ms: 60000 },
];

/** Starts a download of `href` as `name` (an object URL or a data: URL). */
function download(href, name) {
  const a = document.createElement('a');
  a.href = href;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
}

const MINUTE = 60;
const DAY = 86400;

/** Non-empty buckets of one `/query` with `step` over [start, end]. */
async function filledBuckets(client, base, start, end, step, signal) {
  const { data } = await client.query({ ...base, start_time: start, end_time: end, step }, { signal });
  return (data?.buckets ?? []).filter((b) => b.count > 0);
}

/**
 * Finds the span that holds data when a range end is open: a coarse query with day-wide
 * buckets finds the first and last days with readings, then minute-wide buckets over those
 * days narrow both ends to the minute. Returns `{ lo, hi }` in seconds, or null if empty.
 */
async function dataExtent(client, base, start, end, signal) {
  const days = await filledBuckets(client, base, start, end, DAY, signal);
  if (days.length === 0) return null;
  const firstDay = days[0].start;
  const lastDay = days[days.length - 1].start;
  const clampStart = (t) => (start === 0 ? t : Math.max(start, t));
  const clampEnd = (t) => (end === 0 ? t : Math.min(end, t));
  const [head, tail] = await Promise.all([
    filledBuckets(client, base, clampStart(firstDay), clampEnd(firstDay + DAY), MINUTE, signal),
    lastDay === firstDay
      ? null
      : filledBuckets(client, base, clampStart(lastDay), clampEnd(lastDay + DAY), MINUTE, signal),
  ]);
  const last = tail ?? head;
  if (head.length === 0 || last.length === 0) return { lo: firstDay, hi: lastDay + DAY };
  return { lo: head[0].start, hi: last[last.length - 1].start + MINUTE };
}

export default function QueryTab({ client }) {
  const initial = useMemo(() => decodeQueryHash(window.location.hash), []);
  const lists = useSeriesLists(client, initial);
  const labelLists = useLabelLists(client);
  const [refreshMs, setRefreshMs] = useState(0);
  const lastRun = useRef(null);
  const chartRef = useRef(null);
  const [running, setRunning] = useState(false);
  const [result, setResult] = useState(null);
  const [queryError, setQueryError] = useState('');
  const [chart, setChartState] = useState(null);
  const [deleting, setDeleting] = useState(false);
  const abortRef = useRef(null);

  /** `devices`: more than one draws one line a device (same range and step for each). */
  async function runChart(base, start, end, signal, devices = [base.device_id]) {
    // Every chart state names the series it was asked for: the form may change afterwards.
    const setChart = (state) => setChartState({ ...state, of: base });
    setChart({ loading: true });
    try {
      let lo = start;
      let hi = end;
      if (start === 0 || end === 0) {
        const extent = await dataExtent(client, base, start, end, signal);
        if (extent === null) {
          setChart({ empty: true });
          return;
        }
        if (start === 0) lo = extent.lo;
        if (end === 0) hi = extent.hi;
        if (hi <= lo) hi = lo + MINUTE;
      }
      const step = chooseStep(hi - lo);
      if (base.group_by) {
        const { data, node } = await client.query({ ...base, start_time: lo, end_time: hi, step }, { signal });
        const lines = groupLines(data, base.group_by);
        if (lines.names.length === 0) {
          setChart({ empty: true });
          return;
        }
        setChart({
          data: mergeColumns(lines.buckets.map((b) => bucketsToColumns(b, step))),
          groups: lines.names,
          step, lo, hi,
          node: data?.node ?? node,
          buckets: Math.max(...lines.buckets.map((b) => b.length)),
        });
        return;
      }
      if (devices.length > 1) {
        const answers = await Promise.all(devices.map((device_id) => client.query(
          { ...base, device_id, start_time: lo, end_time: hi, step },
          { signal },
        )));
        const drawn = answers
          .map(({ data }, i) => ({ device: devices[i], buckets: Array.isArray(data?.buckets) ? data.buckets : [] }))
          .filter((a) => a.buckets.some((b) => b.count > 0));
        if (drawn.length === 0) {
          setChart({ empty: true });
          return;
        }
        setChart({
          data: mergeColumns(drawn.map((a) => bucketsToColumns(a.buckets, step))),
          devices: drawn.map((a) => a.device),
          step, lo, hi,
          node: answers[0].data?.node ?? answers[0].node,
          buckets: Math.max(...drawn.map((a) => a.buckets.length)),
        });
        return;
      }
      const { data, node } = await client.query(
        { ...base, start_time: lo, end_time: hi, step },
        { signal },
      );
      const buckets = Array.isArray(data?.buckets) ? data.buckets : null;
      if (buckets === null) {
        setChart({ error: 'The server answered without buckets, so there is nothing to draw.' });
        return;
      }
      if (buckets.every((b) => !(b.count > 0))) {
        setChart({ empty: true });
        return;
      }
      setChart({ data: bucketsToColumns(buckets, step), step, lo, hi, node: data?.node ?? node, buckets: buckets.length });
    } catch (err) {
      if (err.name === 'AbortError') return;
      setChart({ error: `Chart: ${err.message}` });
    }
  }

  const runQuery = async (base, range, preset = '', { allDevices = false } = {}) => {
    lastRun.current = { base, range, preset, allDevices };
    const quick = preset && preset !== 'all';
    const hash = encodeQueryHash({
      device: base.device_id,
      metric: base.metric_name,
      op: base.operation,
      start: quick ? 0 : range.start,
      end: quick ? 0 : range.end,
      preset,
      labels: base.labels,
      groupBy: base.group_by,
    });
    if (window.location.hash !== hash) {
      window.history.replaceState(null, '', `${window.location.pathname}${window.location.search}${hash}`);
    }
    abortRef.current?.abort();
    const controller = new AbortController();
    abortRef.current = controller;
    setRunning(true);
    setQueryError('');
    setResult(null);
    const chartDevices = allDevices && lists.devices.length > 1 ? lists.devices : [base.device_id];
    const chartDone = runChart(base, range.start, range.end, controller.signal, chartDevices);
    try {
      const { data, node } = await client.query(
        { ...base, start_time: range.start, end_time: range.end },
        { signal: controller.signal },
      );
      setResult({ ...data, servedBy: node, range, asked: base });
    } catch (err) {
      if (err.name !== 'AbortError') setQueryError(err.message);
    } finally {
      await chartDone;
      if (abortRef.current === controller) setRunning(false);
    }
  };

  // Auto-refresh re-runs the last query; a quick range ("last hour") moves up to now.
  useEffect(() => {
    if (refreshMs === 0) return undefined;
    const timer = setInterval(() => {
      const last = lastRun.current;
      if (!last || running) return;
      const range = last.preset && last.preset !== 'all'
        ? { ok: true, ...presetRange(last.preset, Date.now() / 1000) }
        : last.range;
      runQuery(last.base, range, last.preset, { allDevices: last.allDevices });
    }, refreshMs);
    return () => clearInterval(timer);
    // runQuery is a fresh closure each render; the timer only needs the period and the lock.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [refreshMs, running]);

  const seriesName = chart?.of
    ? `${chart.of.device_id}/${chart.of.metric_name}${labelsText(chart.of.labels)} (${chart.of.operation})`
    : '';
  let seriesNames = [seriesName];
  if (chart?.groups) seriesNames = chart.groups;
  else if (chart?.devices) seriesNames = chart.devices.map((d) => `${d}/${chart.of.metric_name} (${chart.of.operation})`);
  const exportDevice = () => {
    if (chart.devices) return 'all-devices';
    return chart.groups ? `${chart.of.device_id}-by-${chart.of.group_by.join('-')}` : chart.of.device_id;
  };
  const exportName = (ext) => exportFileName(
    { device: exportDevice(), metric: chart.of.metric_name, op: chart.of.operation }, ext);
  const downloadCsv = () => {
    const blob = new Blob([columnsToCsv(chart.data, seriesNames)], { type: 'text/csv' });
    const url = URL.createObjectURL(blob);
    download(url, exportName('csv'));
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };
  const downloadPng = () => {
    const canvas = chartRef.current?.querySelector('canvas');
    if (canvas) download(canvas.toDataURL('image/png'), exportName('png'));
  };

  const afterDelete = async () => {
    setResult(null);
    setChartState(null);
    await lists.reload();
  };

  const groups = result ? groupRows(result, result.asked.group_by ?? []) : [];
  const unit = result ? unitFor({ metric_name: result.metric_name ?? result.asked.metric_name, labels: result.labels }, result.operation ?? result.asked.operation) : '';

  return (
    <div className="query-tab">
      <QueryForm
        lists={lists}
        labelLists={labelLists}
        running={running}
        deleting={deleting}
        onRun={runQuery}
        onDelete={() => setDeleting(true)}
        initial={initial}
      />

      <div className="card refresh-row">
        <label>
          Auto-refresh{' '}
          <select value={refreshMs} onChange={(e) => setRefreshMs(Number(e.target.value))} data-testid="auto-refresh">
            {REFRESH_CHOICES.map((c) => <option key={c.ms} value={c.ms}>{c.label}</option>)}
          </select>
        </label>
        <span className="muted small"> re-runs the last query{refreshMs ? '' : ' (off)'}</span>
      </div>

      {queryError && <p className="card error" role="alert" data-testid="query-error">Query failed: {queryError}</p>}

      {result && (
        <div className="card result" aria-live="polite">
          <h2 className="card-title">
            {result.operation ?? result.asked.operation} of {result.device_id ?? result.asked.device_id}/{result.metric_name ?? result.asked.metric_name}
            {labelsText(result.asked.labels)}
            {result.series > 1 ? <span className="muted small"> · {result.series} series</span> : null}
          </h2>
          <div className="result-grid">
            <div className="stat big">
              <span className="stat-label">Result</span>
              <span className="stat-value" data-testid="result-value">
                {formatValue(result.result)}{result.result !== null && unit ? ` ${unit}` : ''}
              </span>
            </div>
            <div className="stat">
              <span className="stat-label">Readings</span>
              <span className="stat-value" data-testid="result-count">{formatValue(result.count)}</span>
            </div>
            <div className="stat">
              <span className="stat-label">Query time</span>
              <span className="stat-value" data-testid="result-duration">{formatDurationNs(result.duration_ns)}</span>
            </div>
            <div className="stat">
              <span className="stat-label">Answered by</span>
              <span className="stat-value" data-testid="result-node">{result.node ?? result.servedBy}</span>
              <span className="muted small">{result.servedBy}</span>
            </div>
          </div>
          <p className="muted small">
            Range: {result.range.start === 0 ? 'first reading' : formatTimestamp(result.range.start)} →{' '}
            {result.range.end === 0 ? 'latest reading' : formatTimestamp(result.range.end)}
          </p>
          {result.asked.group_by && (
            <table className="groups" data-testid="result-groups">
              <caption>By {result.asked.group_by.join(', ')}: {groups.length} {groups.length === 1 ? 'group' : 'groups'}</caption>
              <thead>
                <tr><th scope="col">Group</th><th scope="col">Result</th><th scope="col">Readings</th><th scope="col">Series</th></tr>
              </thead>
              <tbody>
                {groups.map((g) => (
                  <tr key={g.name} data-testid="result-group">
                    <th scope="row">{g.name}</th>
                    <td>{formatValue(g.result)}{g.result !== null && unit ? ` ${unit}` : ''}</td>
                    <td>{formatValue(g.count)}</td>
                    <td>{formatValue(g.series)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      )}

      {chart && (
        <div className="card">
          <h2 className="card-title">
            {axisLabel(chart.of.metric_name, chart.of.operation)} over time
            {chart.step ? <span className="muted small"> · {chart.of.operation} per {formatStep(chart.step)} bucket ({chart.buckets} buckets, node {chart.node})</span> : null}
          </h2>
          {chart.loading && <p className="muted">Loading chart…</p>}
          {chart.empty && <p className="muted">No readings in this range.</p>}
          {chart.error && <p className="error" role="alert">{chart.error}</p>}
          {chart.data && (
            <div ref={chartRef} data-testid="query-chart">
            <TimeChart
              data={chart.data}
              seriesNames={seriesNames}
              yLabel={axisLabel(chart.of.metric_name, chart.of.operation)}
              ariaLabel={`Chart of ${chart.of.operation} ${chart.of.metric_name} for ${chart.devices ? 'the whole fleet' : chart.of.device_id}${chart.groups ? ` by ${chart.of.group_by.join(', ')}` : ''}`}
            />
            </div>
          )}
          {chart.data && (
            <p className="export-row">
              <button type="button" onClick={downloadCsv}>Download CSV</button>{' '}
              <button type="button" onClick={downloadPng}>Download PNG</button>
            </p>
          )}
          {chart.data && <p className="muted small">Drag across the chart to zoom; double-click to reset.</p>}
        </div>
      )}

      {deleting && (
        <DeleteSeriesDialog
          client={client}
          device={lists.device}
          metric={lists.metric}
          onClose={() => setDeleting(false)}
          onDeleted={afterDelete}
        />
      )}
    </div>
  );
}
