// Real-Time Monitor: one websocket with node failover, totals, messages per second, the
// last 100 readings and a small chart per metric. Readings land in a plain store; the page
// redraws from a snapshot twice a second, so a fast stream does not re-render per message.
// Pause freezes the feed and charts (the counters keep going); Resume catches up at once.
// A new access token (`token`, from the token prompt) reconnects at once with it.
import { useEffect, useRef, useState } from 'react';
import TimeChart from '../components/TimeChart.jsx';
import { connectLive, RETRY_MS } from '../liveSocket.js';
import { createLiveStore } from '../liveStore.js';
import { axisLabel, formatTimestamp, formatValue } from '../format.js';

const REFRESH_MS = 500;

function statusText(status) {
  switch (status.state) {
    case 'open':
      return `Connected to ${status.url}`;
    case 'connecting':
      return `Connecting to ${status.url} (attempt ${status.attempt})…`;
    case 'waiting':
      return `Disconnected; trying ${status.url} in ${Math.round((status.retryInMs ?? RETRY_MS) / 1000)} s`;
    case 'stopped':
      return 'Not connected';
    default:
      return 'Starting…';
  }
}

export default function LiveTab({ client, token = null, active }) {
  const storeRef = useRef(null);
  if (storeRef.current === null) storeRef.current = createLiveStore();
  const [status, setStatus] = useState({ state: 'idle' });
  const [enabled, setEnabled] = useState(true);
  const [paused, setPaused] = useState(false);
  const [counters, setCounters] = useState({ total: 0, rate: 0 });
  const [view, setView] = useState(() => storeRef.current.snapshot(Date.now()));
  const pausedRef = useRef(paused);
  pausedRef.current = paused;

  useEffect(() => {
    if (!enabled) return undefined;
    const connection = connectLive({
      urls: () => client.wsUrls(),
      token: () => token,
      onStatus: setStatus,
      onReadings: (readings) => storeRef.current.add(readings, Date.now()),
    });
    return () => connection.stop();
  }, [client, enabled, token]);

  useEffect(() => {
    let lastVersion = -1;
    const tick = () => {
      const store = storeRef.current;
      const now = Date.now();
      setCounters({ total: store.total(), rate: store.rate(now) });
      if (!pausedRef.current && active) {
        const snap = store.snapshot(now);
        if (snap.version !== lastVersion) {
          lastVersion = snap.version;
          setView(snap);
        }
      }
    };
    tick();
    const id = setInterval(tick, REFRESH_MS);
    return () => clearInterval(id);
  }, [active, paused]);

  const clear = () => {
    storeRef.current.reset();
    setView(storeRef.current.snapshot(Date.now()));
    setCounters({ total: 0, rate: 0 });
  };

  const connected = status.state === 'open';

  return (
    <div className="live-tab">
      <div className="card live-header">
        <div className="live-status">
          <span className={`dot ${connected ? 'dot-ok' : status.state === 'waiting' ? 'dot-bad' : 'dot-wait'}`} aria-hidden="true" />
          <span data-testid="live-status" aria-live="polite">{statusText(status)}</span>
        </div>
        <div className="result-grid">
          <div className="stat">
            <span className="stat-label">Total messages</span>
            <span className="stat-value" data-testid="live-total">{counters.total.toLocaleString('en-US')}</span>
          </div>
          <div className="stat">
            <span className="stat-label">Messages per second</span>
            <span className="stat-value" data-testid="live-rate">{formatValue(Math.round(counters.rate * 10) / 10)}</span>
          </div>
          <div className="stat">
            <span className="stat-label">Series seen</span>
            <span className="stat-value">{view.charts.reduce((n, c) => n + c.names.length, 0)}</span>
          </div>
        </div>
        <div className="actions">
          <button type="button" onClick={() => setPaused((p) => !p)} aria-pressed={paused}>
            {paused ? 'Resume' : 'Pause'}
          </button>
          <button type="button" onClick={() => setEnabled((e) => !e)}>
            {enabled ? 'Disconnect' : 'Connect'}
          </button>
          <button type="button" onClick={clear}>Clear</button>
          {paused && <span className="muted">Paused: feed and charts are frozen, counters keep running.</span>}
        </div>
      </div>

      <div className="live-charts">
        {view.charts.length === 0 && <p className="card muted">Waiting for readings…</p>}
        {view.charts.map((c) => (
          <div className="card" key={c.metric}>
            <h2 className="card-title">{c.metric} <span className="muted small">last {c.data[0].length} timestamps</span></h2>
            <TimeChart
              data={c.data}
              seriesNames={c.names}
              yLabel={axisLabel(c.metric)}
              height={180}
              spanGaps
              ariaLabel={`Live chart of ${c.metric}`}
            />
          </div>
        ))}
      </div>

      <div className="card">
        <h2 className="card-title">Recent readings <span className="muted small">(newest first, last 100)</span></h2>
        <div className="table-wrap">
          <table className="feed" aria-label="Recent readings">
            <thead>
              <tr><th scope="col">Time</th><th scope="col">Device</th><th scope="col">Metric</th><th scope="col" className="num">Value</th></tr>
            </thead>
            <tbody>
              {view.feed.map((r, i) => (
                // Readings carry no id; position in the newest-first feed is stable per snapshot.
                // eslint-disable-next-line react/no-array-index-key
                <tr key={`${view.version}-${i}`}>
                  <td>{formatTimestamp(r.timestamp)}</td>
                  <td>{r.device_id}</td>
                  <td>{r.metric_name}</td>
                  <td className="num">{formatValue(r.value)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </div>
    </div>
  );
}
