// Cluster: every known node's `/status`, asked directly (no failover) every 3 s, so a dead
// node shows as unreachable instead of being hidden by another node's answer. The list starts
// from the page's own node and is then exactly the members the answering nodes list (by their
// advertised `http_addr`, see clusterNodeList): no address is built in, and a node no
// `/status` lists never gets a card. Fields the server does not send are simply not shown.
import { useEffect, useRef, useState } from 'react';
import { clusterNodeList } from '../clusterClient.js';
import { formatUptime, formatValue } from '../format.js';

const POLL_MS = 3000;
const KNOWN_FIELDS = new Set([
  'node_id', 'mode', 'uptime_seconds', 'broker', 'points', 'series', 'ingest_rate', 'ws_clients',
  'members', 'ring_share',
]);

/** Ring shares arrive as fractions (0..1) or percentages; show percentages either way. */
function shareRows(ringShare) {
  const entries = Object.entries(ringShare ?? {}).filter(([, v]) => typeof v === 'number');
  const fractions = entries.every(([, v]) => v <= 1);
  return entries
    .map(([id, v]) => ({ id, percent: fractions ? v * 100 : v }))
    .sort((a, b) => a.id.localeCompare(b.id));
}

function renderScalar(value) {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'number') return formatValue(value);
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}

function BrokerState({ broker }) {
  if (broker === undefined) return null;
  if (broker === null || typeof broker !== 'object') return <dd>{renderScalar(broker)}</dd>;
  return (
    <dd>
      {Object.entries(broker).map(([k, v]) => (
        <span key={k} className="kv">{k}: <strong>{renderScalar(v)}</strong></span>
      ))}
    </dd>
  );
}

function NodeCard({ node, entry }) {
  const s = entry?.status;
  const reachable = entry?.ok === true;
  const extra = s ? Object.entries(s).filter(([k]) => !KNOWN_FIELDS.has(k)) : [];
  const shares = shareRows(s?.ring_share);
  return (
    <article className={`card node-card ${reachable ? '' : 'node-down'}`} aria-label={`Node ${node}`}>
      <header className="node-head">
        <h2 className="card-title">{s?.node_id ?? node}</h2>
        <span className={`badge ${entry === undefined ? 'badge-wait' : reachable ? 'badge-ok' : 'badge-bad'}`}>
          {entry === undefined ? 'checking' : reachable ? 'reachable' : 'unreachable'}
        </span>
      </header>
      <p className="muted small">{node}{entry?.checkedAt ? ` · checked ${new Date(entry.checkedAt).toLocaleTimeString()}` : ''}</p>
      {!reachable && entry?.error && <p className="error small">{entry.error}</p>}
      {s && (
        <>
          <dl className="facts">
            {s.mode !== undefined && (<><dt>Mode</dt><dd>{renderScalar(s.mode)}</dd></>)}
            {s.uptime_seconds !== undefined && (<><dt>Uptime</dt><dd>{formatUptime(s.uptime_seconds)}</dd></>)}
            {s.points !== undefined && (<><dt>Points</dt><dd>{renderScalar(s.points)}</dd></>)}
            {s.series !== undefined && (<><dt>Series</dt><dd>{renderScalar(s.series)}</dd></>)}
            {s.ingest_rate !== undefined && (<><dt>Ingest rate</dt><dd>{renderScalar(typeof s.ingest_rate === 'number' ? Math.round(s.ingest_rate * 10) / 10 : s.ingest_rate)} /s</dd></>)}
            {s.ws_clients !== undefined && (<><dt>Websocket clients</dt><dd>{renderScalar(s.ws_clients)}</dd></>)}
            {s.broker !== undefined && (<><dt>Broker</dt><BrokerState broker={s.broker} /></>)}
          </dl>

          {Array.isArray(s.members) && s.members.length > 0 && (
            <div className="table-wrap">
            <table className="members" aria-label={`Members seen by ${s.node_id ?? node}`}>
              <thead>
                <tr><th scope="col">Member</th><th scope="col">HTTP</th><th scope="col">Gossip</th><th scope="col">State</th><th scope="col" className="num">Last heard</th></tr>
              </thead>
              <tbody>
                {s.members.map((m) => (
                  <tr key={m.id ?? m.http_addr}>
                    <td>{m.id ?? '—'}</td>
                    <td>{m.http_addr ?? '—'}</td>
                    <td>{m.gossip_addr ?? '—'}</td>
                    <td><span className={`badge state-${m.state ?? 'unknown'}`}>{m.state ?? 'unknown'}</span></td>
                    <td className="num">{typeof m.last_heard_ms === 'number' ? `${formatValue(m.last_heard_ms)} ms` : '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            </div>
          )}

          {shares.length > 0 && (
            <div className="shares" aria-label={`Ring share seen by ${s.node_id ?? node}`}>
              <h3 className="small">Ring share</h3>
              {shares.map((r) => (
                <div className="share-row" key={r.id}>
                  <span className="share-id">{r.id}</span>
                  <span className="share-bar"><span style={{ width: `${Math.min(100, Math.max(0, r.percent))}%` }} /></span>
                  <span className="num">{r.percent.toFixed(1)}%</span>
                </div>
              ))}
            </div>
          )}

          {extra.length > 0 && (
            <details>
              <summary className="small">Other fields</summary>
              <dl className="facts">
                {extra.map(([k, v]) => (
                  <div key={k} className="fact"><dt>{k}</dt><dd>{renderScalar(v)}</dd></div>
                ))}
              </dl>
            </details>
          )}
        </>
      )}
    </article>
  );
}

export default function ClusterTab({ client, active }) {
  const seeds = useRef(client.nodes);
  const [nodes, setNodes] = useState(client.nodes);
  const [entries, setEntries] = useState({});
  const nodesRef = useRef(nodes);
  nodesRef.current = nodes;
  // Node id each polled address has answered with, remembered after it stops answering, so a
  // dead node's own card stays its only card (its peers list it under another address form).
  const idsByUrl = useRef(new Map());

  useEffect(() => {
    if (!active) return undefined;
    let cancelled = false;
    let timer = null;
    const controller = new AbortController();

    async function poll() {
      // Learned members are polled in the same round they are first seen.
      let list = nodesRef.current;
      let results = [];
      for (let round = 0; round < 3; round += 1) {
        const asked = new Set(results.map(([url]) => url));
        const fresh = await Promise.all(list.filter((node) => !asked.has(node)).map(async (node) => {
          try {
            const { data } = await client.status(node, { signal: controller.signal });
            return [node, { ok: true, status: data ?? {}, checkedAt: Date.now() }];
          } catch (err) {
            return [node, { ok: false, error: err.message, checkedAt: Date.now() }];
          }
        }));
        if (cancelled) return;
        results = [...results, ...fresh];
        for (const [url, e] of fresh) {
          if (e.ok && e.status.node_id) idsByUrl.current.set(url, e.status.node_id);
        }
        list = clusterNodeList(seeds.current, results, idsByUrl.current, window.location.protocol);
        if (list.every((node) => results.some(([url]) => url === node))) break;
      }
      setEntries(Object.fromEntries(results));
      setNodes(list);
      client.addNodes(list);
      timer = setTimeout(poll, POLL_MS);
    }

    poll();
    return () => {
      cancelled = true;
      controller.abort();
      if (timer !== null) clearTimeout(timer);
    };
  }, [client, active]);

  const reachable = nodes.filter((n) => entries[n]?.ok).length;
  const checked = nodes.filter((n) => entries[n] !== undefined).length;

  return (
    <div className="cluster-tab">
      <p className="card" aria-live="polite" data-testid="cluster-summary">
        {checked === 0
          ? `Checking ${nodes.length} ${nodes.length === 1 ? 'node' : 'nodes'}…`
          : `${reachable} of ${nodes.length} nodes reachable`}
        <span className="muted small"> · refreshed every {POLL_MS / 1000} s while this tab is open</span>
      </p>
      <div className="node-grid">
        {nodes.map((node) => <NodeCard key={node} node={node} entry={entries[node]} />)}
      </div>
    </div>
  );
}
