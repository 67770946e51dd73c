// Query Data: pick a series and a range, get one aggregate plus a bucketed chart of the
// range, or delete the series everywhere (behind a typed confirmation).
import { useCallback, useEffect, useRef, useState } from 'react';
import TimeChart from '../components/TimeChart.jsx';
import Dialog from '../components/Dialog.jsx';
import { PRESETS, TIME_FORMAT_HINT, format12h, presetRange, validateRange } from '../time12h.js';
import { bucketsToColumns, chooseStep, formatStep } from '../bucketStep.js';
import { axisLabel, formatDurationNs, formatTimestamp, formatValue, unitFor } from '../format.js';

const OPERATIONS = ['avg', 'sum', 'min', 'max', 'count'];
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
  const [devices, setDevices] = useState([]);
  const [device, setDevice] = useState('');
  const [metrics, setMetrics] = useState([]);
  const [metric, setMetric] = useState('');
  const [listError, setListError] = useState('');
  const [operation, setOperation] = useState('avg');
  const [startText, setStartText] = useState('');
  const [endText, setEndText] = useState('');
  const [preset, setPreset] = useState('all');
  const [formErrors, setFormErrors] = useState({});
  const [running, setRunning] = useState(false);
  const [result, setResult] = useState(null);
  const [queryError, setQueryError] = useState('');
  const [chart, setChartState] = useState(null);
  const [deleteStage, setDeleteStage] = useState(null); // null | 'confirm' | 'working' | 'done'
  const [confirmText, setConfirmText] = useState('');
  const [deleteOutcome, setDeleteOutcome] = useState(null);
  const abortRef = useRef(null);

  const loadDevices = useCallback(async () => {
    setListError('');
    try {
      const { data } = await client.devices();
      const list = Array.isArray(data?.devices) ? [...data.devices].sort() : [];
      setDevices(list);
      setDevice((current) => (list.includes(current) ? current : (list[0] ?? '')));
    } catch (err) {
      setDevices([]);
      setListError(`Could not load devices: ${err.message}`);
    }
  }, [client]);

  const loadMetrics = useCallback(async (deviceId) => {
    if (!deviceId) {
      setMetrics([]);
      setMetric('');
      return;
    }
    try {
      const { data } = await client.metrics(deviceId);
      const list = Array.isArray(data?.metrics) ? [...data.metrics].sort() : [];
      setMetrics(list);
      setMetric((current) => (list.includes(current) ? current : (list[0] ?? '')));
    } catch (err) {
      setMetrics([]);
      setMetric('');
      setListError(`Could not load metrics for ${deviceId}: ${err.message}`);
    }
  }, [client]);

  useEffect(() => {
    loadDevices();
  }, [loadDevices]);

  useEffect(() => {
    loadMetrics(device);
  }, [device, loadMetrics]);

  const applyPreset = (id) => {
    setPreset(id);
    setFormErrors({});
    const { start, end } = presetRange(id, Date.now() / 1000);
    setStartText(start === 0 ? '' : format12h(start));
    setEndText(end === 0 ? '' : format12h(end));
  };

  async function runChart(base, start, end, signal) {
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

  const runQuery = async (event) => {
    event?.preventDefault();
    const errors = {};
    if (!device) errors.device = 'Choose a device.';
    if (!metric) errors.metric = 'Choose a metric.';
    // A quick range means "up to now" when the query runs: recompute it here, to the second
    // (the fields show whole minutes, so taking them back would drop the newest readings).
    let range;
    if (preset && preset !== 'all') {
      const { start, end } = presetRange(preset, Date.now() / 1000);
      setStartText(format12h(start));
      setEndText(format12h(end));
      range = { ok: true, start, end };
    } else {
      range = validateRange(startText, endText);
    }
    if (!range.ok) Object.assign(errors, range.errors);
    setFormErrors(errors);
    if (Object.keys(errors).length > 0) return;

    abortRef.current?.abort();
    const controller = new AbortController();
    abortRef.current = controller;
    const base = { device_id: device, metric_name: metric, operation };
    setRunning(true);
    setQueryError('');
    setResult(null);
    const chartDone = runChart(base, range.start, range.end, controller.signal);
    try {
      const { data, node } = await client.query(
        { ...base, start_time: range.start, end_time: range.end },
        { signal: controller.signal },
      );
      setResult({ ...data, servedBy: node, range });
    } catch (err) {
      if (err.name !== 'AbortError') setQueryError(err.message);
    } finally {
      await chartDone;
      if (abortRef.current === controller) setRunning(false);
    }
  };

  const series = device && metric ? `${device}/${metric}` : '';

  const confirmDelete = async () => {
    setDeleteStage('working');
    try {
      const { data, node } = await client.deleteSeries(device, metric);
      setDeleteOutcome({ ok: true, deleted: data?.deleted === true, node: data?.node ?? node, series, data });
      setResult(null);
      setChartState(null);
      await loadDevices();
      await loadMetrics(device);
    } catch (err) {
      setDeleteOutcome({ ok: false, series, message: err.message });
    }
    setDeleteStage('done');
  };

  const closeDelete = () => {
    setDeleteStage(null);
    setConfirmText('');
    setDeleteOutcome(null);
  };

  const unit = result ? unitFor(result.metric_name ?? metric, result.operation ?? operation) : '';

  return (
    <div className="query-tab">
      <form className="card query-form" onSubmit={runQuery} noValidate>
        <h2 className="card-title">Query a series</h2>
        {listError && (
          <p className="error" role="alert">
            {listError}{' '}
            <button type="button" className="link" onClick={loadDevices}>Retry</button>
          </p>
        )}
        <div className="form-row">
          <label className="field">
            <span>Device</span>
            <select value={device} onChange={(e) => setDevice(e.target.value)} aria-invalid={!!formErrors.device}>
              {devices.length === 0 && <option value="">No devices</option>}
              {devices.map((d) => <option key={d} value={d}>{d}</option>)}
            </select>
          </label>
          <label className="field">
            <span>Metric</span>
            <select value={metric} onChange={(e) => setMetric(e.target.value)} aria-invalid={!!formErrors.metric}>
              {metrics.length === 0 && <option value="">No metrics</option>}
              {metrics.map((m) => <option key={m} value={m}>{m}</option>)}
            </select>
          </label>
          <label className="field">
            <span>Operation</span>
            <select value={operation} onChange={(e) => setOperation(e.target.value)}>
              {OPERATIONS.map((op) => <option key={op} value={op}>{op}</option>)}
            </select>
          </label>
        </div>

        <fieldset className="presets">
          <legend>Quick range</legend>
          {PRESETS.map((p) => (
            <button
              key={p.id}
              type="button"
              className={preset === p.id ? 'chip active' : 'chip'}
              aria-pressed={preset === p.id}
              onClick={() => applyPreset(p.id)}
            >
              {p.label}
            </button>
          ))}
        </fieldset>

        <div className="form-row">
          <label className="field">
            <span>Start</span>
            <input
              type="text"
              value={startText}
              placeholder={`${TIME_FORMAT_HINT} (empty: from the first reading)`}
              onChange={(e) => { setStartText(e.target.value); setPreset(null); }}
              aria-invalid={!!(formErrors.start || formErrors.range)}
              aria-describedby="time-help"
            />
          </label>
          <label className="field">
            <span>End</span>
            <input
              type="text"
              value={endText}
              placeholder={`${TIME_FORMAT_HINT} (empty: up to the latest)`}
              onChange={(e) => { setEndText(e.target.value); setPreset(null); }}
              aria-invalid={!!(formErrors.end || formErrors.range)}
              aria-describedby="time-help"
            />
          </label>
        </div>
        <p id="time-help" className="hint">
          Local time, 12-hour clock, e.g. {format12h(Math.floor(Date.now() / 1000))}. 12:00 AM is midnight,
          12:00 PM is noon. Leave a field empty for an open end.
        </p>
        {Object.keys(formErrors).length > 0 && (
          <ul className="error" role="alert" data-testid="form-errors">
            {Object.values(formErrors).map((msg) => <li key={msg}>{msg}</li>)}
          </ul>
        )}

        <div className="actions">
          <button type="submit" className="primary" disabled={running}>
            {running ? 'Running…' : 'Run query'}
          </button>
          <button
            type="button"
            className="danger"
            disabled={!series || deleteStage !== null}
            onClick={() => setDeleteStage('confirm')}
          >
            Delete series
          </button>
        </div>
      </form>

      {queryError && <p className="card error" role="alert" data-testid="query-error">Query failed: {queryError}</p>}

      {result && (
        <div className="card result" aria-live="polite">
          <h2 className="card-title">
            {result.operation ?? operation} of {result.device_id ?? device}/{result.metric_name ?? metric}
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
            <TimeChart
              data={chart.data}
              seriesNames={[`${chart.of.device_id}/${chart.of.metric_name} (${chart.of.operation})`]}
              yLabel={axisLabel(chart.of.metric_name, chart.of.operation)}
              ariaLabel={`Chart of ${chart.of.operation} ${chart.of.metric_name} for ${chart.of.device_id}`}
            />
          )}
          {chart.data && <p className="muted small">Drag across the chart to zoom; double-click to reset.</p>}
        </div>
      )}

      {(deleteStage === 'confirm' || deleteStage === 'working') && (
        <Dialog
          open
          tone="danger"
          title={`Delete ${series}?`}
          onClose={deleteStage === 'working' ? undefined : closeDelete}
          actions={(
            <>
              <button type="button" onClick={closeDelete} disabled={deleteStage === 'working'}>Cancel</button>
              <button
                type="button"
                className="danger"
                disabled={confirmText.trim() !== series || deleteStage === 'working'}
                onClick={confirmDelete}
              >
                {deleteStage === 'working' ? 'Deleting…' : 'Delete permanently'}
              </button>
            </>
          )}
        >
          <p>
            This removes <strong>every reading</strong> of <code>{series}</code> from the whole cluster.
            It cannot be undone.
          </p>
          <label className="field">
            <span>Type <code>{series}</code> to confirm</span>
            <input
              type="text"
              value={confirmText}
              autoFocus
              autoComplete="off"
              aria-label="Confirm series name"
              onChange={(e) => setConfirmText(e.target.value)}
            />
          </label>
        </Dialog>
      )}

      {deleteStage === 'done' && deleteOutcome && (
        <Dialog
          open
          tone={deleteOutcome.ok ? 'success' : 'danger'}
          title={deleteOutcome.ok ? 'Series deleted' : 'Delete failed'}
          onClose={closeDelete}
          actions={<button type="button" className="primary" onClick={closeDelete} autoFocus>Close</button>}
        >
          {deleteOutcome.ok && deleteOutcome.deleted && (
            <p data-testid="delete-outcome">All data for <code>{deleteOutcome.series}</code> was deleted (node {deleteOutcome.node}).</p>
          )}
          {deleteOutcome.ok && !deleteOutcome.deleted && (
            <p data-testid="delete-outcome">
              Nothing to delete: the cluster holds no data for <code>{deleteOutcome.series}</code> (node {deleteOutcome.node}).
            </p>
          )}
          {!deleteOutcome.ok && (
            <p data-testid="delete-outcome" className="error">
              <code>{deleteOutcome.series}</code> was not deleted: {deleteOutcome.message}
            </p>
          )}
        </Dialog>
      )}
    </div>
  );
}
