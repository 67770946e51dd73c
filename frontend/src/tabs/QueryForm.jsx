// The query form: a series (from the lists of `useSeriesLists`), label filters (exact
// `name=value` matches) and group-by labels (names and values offered by `useLabelLists`
// when the node has the Prometheus label API, free text otherwise), an operation and a
// range (a quick preset, typed 12-hour local times, or the date-time pickers beside them,
// kept in sync with the typed fields). It checks its fields and hands a valid request to
// `onRun`; it knows nothing of how the query runs.
import { useEffect, useRef, useState } from 'react';
import {
  PRESETS, TIME_FORMAT_HINT, format12h, format12hExact, pickerValueFor, presetRange, textForPicker, validateRange,
} from '../time12h.js';
import { buildQueryRequest, labelsFromRows } from '../queryLabels.js';

const OPERATIONS = ['avg', 'sum', 'min', 'max', 'count'];

/**
 * A date-time picker (`datetime-local`, local time) beside a typed 12-hour field (its label
 * must not contain "Start" or "End", which name the typed fields: tests find fields by
 * label text, case-insensitively, and "calendar" holds "end"): it shows
 * the typed `text` (empty while the text is not a time) and `onPick` gets the picked time
 * back as 12-hour text ('' when cleared).
 */
function PickerField({ label, text, onPick }) {
  return (
    <label className="field picker">
      <span>{label}</span>
      <input
        type="datetime-local"
        step="1"
        value={pickerValueFor(text)}
        onChange={(e) => onPick(textForPicker(e.target.value))}
      />
    </label>
  );
}

/**
 * `initial`: a query from the URL (`decodeQueryHash`): the form starts with it and runs it
 * once its series is in the lists. `onRun(base, range, preset)`: preset is '' for typed times.
 */
export default function QueryForm({ lists, labelLists, running, deleting, onRun, onDelete, initial = null }) {
  const { devices, device, setDevice, metrics, metric, setMetric, listError, loadDevices } = lists;
  const [rows, setRows] = useState(() => Object.entries(initial?.labels ?? {}).map(([name, value]) => ({ name, value })));
  const [groupBy, setGroupBy] = useState(() => initial?.groupBy ?? []);
  const [otherGroup, setOtherGroup] = useState('');
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
    const labels = labelsFromRows(rows);
    if (!labels.ok) errors.labels = labels.error;
    setFormErrors(errors);
    if (Object.keys(errors).length > 0) return;
    const base = buildQueryRequest({ device, metric, operation, labels: labels.labels, groupBy });
    onRun(base, range, preset ?? '', { allDevices });
  };

  const setRow = (i, change) => setRows((all) => all.map((r, j) => (j === i ? { ...r, ...change } : r)));
  const addGroup = () => {
    const name = otherGroup.trim();
    if (name && !groupBy.includes(name)) setGroupBy([...groupBy, name]);
    setOtherGroup('');
  };
  const groupChoices = [...new Set([...labelLists.names, ...groupBy])];

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

      <fieldset className="label-filters" data-testid="label-filters">
        <legend>Label filters (exact match)</legend>
        <datalist id="label-names">
          {labelLists.names.map((n) => <option key={n} value={n} />)}
        </datalist>
        {rows.map((row, i) => (
          // Rows have no identity but their place; editing never reorders them.
          // eslint-disable-next-line react/no-array-index-key
          <div className="form-row label-row" key={i}>
            <input
              type="text"
              value={row.name}
              list="label-names"
              placeholder="label, e.g. room"
              aria-label={`Label ${i + 1} name`}
              onChange={(e) => setRow(i, { name: e.target.value })}
              onBlur={(e) => labelLists.loadValues(e.target.value.trim())}
              aria-invalid={!!formErrors.labels}
            />
            <span aria-hidden="true">=</span>
            <datalist id={`label-values-${i}`}>
              {(labelLists.values[row.name.trim()] ?? []).map((v) => <option key={v} value={v} />)}
            </datalist>
            <input
              type="text"
              value={row.value}
              list={`label-values-${i}`}
              placeholder="value, e.g. lab"
              aria-label={`Label ${i + 1} value`}
              onFocus={() => labelLists.loadValues(row.name.trim())}
              onChange={(e) => setRow(i, { value: e.target.value })}
              aria-invalid={!!formErrors.labels}
            />
            <button type="button" className="link" onClick={() => setRows(rows.filter((_, j) => j !== i))}>
              Remove
            </button>
          </div>
        ))}
        <button type="button" onClick={() => setRows([...rows, { name: '', value: '' }])}>Add label filter</button>
      </fieldset>

      <fieldset className="group-by" data-testid="group-by">
        <legend>Group by</legend>
        {groupChoices.length > 0 && (
          <select
            multiple
            aria-label="Group by labels"
            value={groupBy}
            size={Math.min(6, Math.max(2, groupChoices.length))}
            onChange={(e) => setGroupBy([...e.target.selectedOptions].map((o) => o.value))}
          >
            {groupChoices.map((n) => <option key={n} value={n}>{n}</option>)}
          </select>
        )}
        <div className="form-row">
          <input
            type="text"
            value={otherGroup}
            list="label-names"
            placeholder="label name, e.g. room"
            aria-label="Another label to group by"
            onChange={(e) => setOtherGroup(e.target.value)}
            onKeyDown={(e) => { if (e.key === 'Enter') { e.preventDefault(); addGroup(); } }}
          />
          <button type="button" onClick={addGroup}>Add to group-by</button>
          {groupBy.length > 0 && (
            <button type="button" className="link" onClick={() => setGroupBy([])}>Clear group-by</button>
          )}
        </div>
        <p className="hint" data-testid="group-by-chosen">
          {groupBy.length > 0 ? `One result a combination of: ${groupBy.join(', ')}` : 'Not grouped: one result for every selected series.'}
        </p>
      </fieldset>

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
        <PickerField label="From (date picker)" text={startText} onPick={(t) => { setStartText(t); setPreset(null); }} />
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
        <PickerField label="To (date picker)" text={endText} onPick={(t) => { setEndText(t); setPreset(null); }} />
      </div>
      <p id="time-help" className="hint">
        Local time, 12-hour clock, e.g. {format12h(Math.floor(Date.now() / 1000))}. 12:00 AM is midnight,
        12:00 PM is noon. Leave a field empty for an open end. The date pickers beside them
        pick the same times.
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
