// The query form: a series (from the lists of `useSeriesLists`), an operation and a range
// (a quick preset or typed 12-hour local times). It checks its fields and hands a valid
// request to `onRun`; it knows nothing of how the query runs.
import { useEffect, useRef, useState } from 'react';
import { PRESETS, TIME_FORMAT_HINT, format12h, format12hExact, presetRange, validateRange } from '../time12h.js';

const OPERATIONS = ['avg', 'sum', 'min', 'max', 'count'];

/**
 * `initial`: a query from the URL (`decodeQueryHash`): the form starts with it and runs it
 * once its series is in the lists. `onRun(base, range, preset)`: preset is '' for typed times.
 */
export default function QueryForm({ lists, running, deleting, onRun, onDelete, initial = null }) {
  const { devices, device, setDevice, metrics, metric, setMetric, listError, loadDevices } = lists;
  const [operation, setOperation] = useState(initial?.op ?? 'avg');
  const [startText, setStartText] = useState(initial?.start ? format12hExact(initial.start) : '');
  const [endText, setEndText] = useState(initial?.end ? format12hExact(initial.end) : '');
  const [preset, setPreset] = useState(() => {
    if (!initial) return 'all';
    if (PRESETS.some((p) => p.id === initial.preset)) return initial.preset;
    return initial.start || initial.end ? '' : 'all';
  });
  const autoRun = useRef(initial !== null);
  const [allDevices, setAllDevices] = useState(false);
  const [formErrors, setFormErrors] = useState({});

  const applyPreset = (id) => {
    setPreset(id);
    setFormErrors({});
    const { start, end } = presetRange(id, Date.now() / 1000);
    setStartText(start === 0 ? '' : format12h(start));
    setEndText(end === 0 ? '' : format12h(end));
  };

  const submit = (event) => {
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
    onRun({ device_id: device, metric_name: metric, operation }, range, preset ?? '', { allDevices });
  };

  useEffect(() => {
    if (autoRun.current && initial && device === initial.device && metric === initial.metric
      && metrics.includes(metric)) {
      autoRun.current = false;
      submit();
    }
  });

  const series = device && metric ? `${device}/${metric}` : '';

  return (
    <form className="card query-form" onSubmit={submit} noValidate>
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
      <label className="check">
        <input type="checkbox" checked={allDevices} onChange={(e) => setAllDevices(e.target.checked)} />
        {' '}Whole fleet on the chart (one line each)
      </label>

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
          disabled={!series || deleting}
          onClick={onDelete}
        >
          Delete series
        </button>
      </div>
    </form>
  );
}
