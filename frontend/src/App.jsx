// The dashboard shell: one cluster client shared by every tab, the tab bar, and a header
// naming the node that served the last request.
//
// Nodes come from `?nodes=host:port,host:port` when given, else the page's own origin (every
// node serves this dashboard) followed by the local cluster's three nodes. Under the Vite dev
// server the origin is left out, as it is not a MiniTrue node.
//
// The access token (nodes started with `--auth_file`) is asked for by the token prompt the
// first time a node answers 401, kept in sessionStorage, and sent by the client and the live
// socket; "Forget token" in the header drops it.
import { useEffect, useMemo, useState, useSyncExternalStore } from 'react';
import { createAuthGate, createTokenStore } from './auth.js';
import { createClusterClient, defaultNodes, uniqueNodes } from './clusterClient.js';
import TokenPrompt from './components/TokenPrompt.jsx';
import QueryTab from './tabs/QueryTab.jsx';
import LiveTab from './tabs/LiveTab.jsx';
import ClusterTab from './tabs/ClusterTab.jsx';

const TABS = [
  { id: 'query', label: 'Query Data' },
  { id: 'live', label: 'Real-Time Monitor' },
  { id: 'cluster', label: 'Cluster' },
];

function configuredNodes() {
  const param = new URLSearchParams(window.location.search).get('nodes');
  if (param) {
    const nodes = uniqueNodes(param.split(','));
    if (nodes.length > 0) return nodes;
  }
  return defaultNodes(window.location, { includeOrigin: !import.meta.env.DEV });
}

function initialTab() {
  const hash = window.location.hash.replace('#', '');
  return TABS.some((t) => t.id === hash) ? hash : 'query';
}

export default function App() {
  const gate = useMemo(() => createAuthGate(createTokenStore()), []);
  const client = useMemo(() => createClusterClient({ nodes: configuredNodes(), auth: gate }), [gate]);
  const token = useSyncExternalStore(gate.store.subscribe, gate.store.get);
  const [tab, setTab] = useState(initialTab);
  const [served, setServed] = useState(null);

  useEffect(() => client.subscribe((event) => setServed(event)), [client]);

  const selectTab = (id) => {
    setTab(id);
    window.history.replaceState(null, '', `${window.location.pathname}${window.location.search}#${id}`);
  };

  const onTabKey = (event, index) => {
    const step = event.key === 'ArrowRight' ? 1 : event.key === 'ArrowLeft' ? -1 : 0;
    if (step === 0) return;
    event.preventDefault();
    const next = TABS[(index + step + TABS.length) % TABS.length];
    selectTab(next.id);
    document.getElementById(`tab-${next.id}`)?.focus();
  };

  return (
    <div className="app">
      <header className="app-header">
        <div className="brand">
          <span className="brand-name">MiniTrue</span>
          <span className="brand-sub">IoT time-series cluster</span>
        </div>
        <div className="served header-end" aria-live="polite" data-testid="served-by">
          {served === null && <span className="muted">No request yet · nodes: {client.nodes.join(', ')}</span>}
          {served?.ok && (
            <span>
              Last request served by <strong>{served.nodeId ?? served.node}</strong>
              {served.nodeId ? <span className="muted"> ({served.node})</span> : null}
            </span>
          )}
          {served && !served.ok && served.node && (
            <span>
              Last request refused by <strong>{served.node}</strong>
            </span>
          )}
          {served && !served.ok && !served.node && <span className="bad">Last request: no node could serve</span>}
        </div>
        {token !== null && (
          <button type="button" className="link forget-token" onClick={() => gate.store.clear()}>
            Forget token
          </button>
        )}
      </header>

      <nav className="tabs" role="tablist" aria-label="Dashboard sections">
        {TABS.map((t, i) => (
          <button
            key={t.id}
            id={`tab-${t.id}`}
            type="button"
            role="tab"
            aria-selected={tab === t.id}
            aria-controls={`panel-${t.id}`}
            tabIndex={tab === t.id ? 0 : -1}
            className={tab === t.id ? 'tab active' : 'tab'}
            onClick={() => selectTab(t.id)}
            onKeyDown={(e) => onTabKey(e, i)}
          >
            {t.label}
          </button>
        ))}
      </nav>

      {/* Every panel stays mounted so the live stream keeps counting on other tabs. */}
      <main>
        <section id="panel-query" role="tabpanel" aria-labelledby="tab-query" hidden={tab !== 'query'}>
          <QueryTab client={client} />
        </section>
        <section id="panel-live" role="tabpanel" aria-labelledby="tab-live" hidden={tab !== 'live'}>
          <LiveTab client={client} token={token} active={tab === 'live'} />
        </section>
        <section id="panel-cluster" role="tabpanel" aria-labelledby="tab-cluster" hidden={tab !== 'cluster'}>
          <ClusterTab client={client} active={tab === 'cluster'} />
        </section>
      </main>
      <TokenPrompt gate={gate} />
    </div>
  );
}
