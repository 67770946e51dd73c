// The dashboard shell: one cluster client shared by every tab, the tab bar, and a header
// naming the node that served the last request.
//
// Nodes come from `?nodes=host:port,host:port` when given, else the page's own origin (every
// node serves this dashboard); the other members are then learned from that node's `/status`
// (their advertised HTTP addresses) and join the failover list. No address is built in. Under
// the Vite dev server the origin is left out, as it is not a MiniTrue node: `?nodes=` names one.
//
// The access token (nodes started with `--auth_file`) is asked for by the token prompt the
// first time a node answers 401, kept in sessionStorage, and sent by the client and the live
// socket; "Forget token" in the header drops it.
import { useEffect, useMemo, useState, useSyncExternalStore } from 'react';
import { createAuthGate, createTokenStore } from './auth.js';
import { createClusterClient, defaultNodes, nodesFromStatus, uniqueNodes } from './clusterClient.js';
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

/** The tab a hash names: `#cluster`, `#query?device=…` (the part before `?`); else query. */
function tabFromHash(hash) {
  const id = String(hash ?? '').replace(/^#/, '').split('?')[0];
  return TABS.some((t) => t.id === id) ? id : 'query';
}

/** How often the failover list is refreshed from `/status` (members that joined later). */
const MEMBERS_REFRESH_MS = 30000;

/** Shown under the Vite dev server without `?nodes=`: there is no node to ask. */
function NoNodes() {
  return (
    <div className="app">
      <p className="card error" data-testid="no-nodes">
        No MiniTrue node to ask: open the dashboard from a node (http://NODE:PORT/), or add
        {' '}<code>?nodes=host:port</code> to this page&apos;s address.
      </p>
    </div>
  );
}

export default function App() {
  const nodes = useMemo(configuredNodes, []);
  return nodes.length === 0 ? <NoNodes /> : <Dashboard nodes={nodes} />;
}

function Dashboard({ nodes }) {
  const gate = useMemo(() => createAuthGate(createTokenStore()), []);
  const client = useMemo(() => createClusterClient({ nodes, auth: gate }), [gate, nodes]);
  const token = useSyncExternalStore(gate.store.subscribe, gate.store.get);
  const [tab, setTab] = useState(() => tabFromHash(window.location.hash));
  const [served, setServed] = useState(null);

  useEffect(() => client.subscribe((event) => setServed(event)), [client]);

  // The rest of the cluster: the members the nodes list, so failover reaches them.
  useEffect(() => {
    let timer = null;
    const controller = new AbortController();
    const learn = async () => {
      try {
        const { data } = await client.get('/status', { signal: controller.signal });
        client.addNodes(nodesFromStatus(data, window.location.protocol).map((m) => m.url));
      } catch {
        // No node answered: the list stays as it is; the next round tries again.
      }
      if (!controller.signal.aborted) timer = setTimeout(learn, MEMBERS_REFRESH_MS);
    };
    learn();
    return () => {
      controller.abort();
      if (timer !== null) clearTimeout(timer);
    };
  }, [client]);

  // The hash is the tab: typed, pasted, or Back/Forward on an open page switches it.
  useEffect(() => {
    const onHashChange = () => setTab(tabFromHash(window.location.hash));
    window.addEventListener('hashchange', onHashChange);
    window.addEventListener('popstate', onHashChange);
    return () => {
      window.removeEventListener('hashchange', onHashChange);
      window.removeEventListener('popstate', onHashChange);
    };
  }, []);

  const selectTab = (id) => {
    setTab(id);
    if (window.location.hash !== `#${id}`) {
      window.history.pushState(null, '', `${window.location.pathname}${window.location.search}#${id}`);
    }
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
