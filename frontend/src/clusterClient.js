// Cluster failover client: every request of the dashboard goes through here.
//
// MiniTrue nodes are symmetric, so any node can answer any request. The client keeps an
// ordered list of node base URLs and tries them one after another:
//   - network errors, timeouts, 5xx answers and unreadable (non-JSON) bodies mean "this node
//     cannot serve right now" and the next node is tried;
//   - a 4xx answer is the server telling the caller the request itself is wrong, so it is
//     returned to the caller at once (with the server's `error` message) and no other node is
//     asked: every node would say the same.
// The last node that answered is remembered and tried first next time, so a dead node costs
// one timeout, not one per request. Every success reports which node served it.
//
// With an `auth` gate (src/auth.js) every request carries the stored token as
// `Authorization: Bearer`, and a 401 is not returned to the caller: the request waits for the
// gate (the user entering a token) and is then sent again to the same node.
import { authHeaders } from './auth.js';

/** Default time a node gets to answer before the next one is tried. */
export const DEFAULT_TIMEOUT_MS = 5000;

/**
 * Turns "host:port", "http://host:port/" or "https://host" into a base URL without a
 * trailing slash; returns null for something that is not a usable URL.
 */
export function normalizeNode(node) {
  if (typeof node !== 'string') return null;
  let text = node.trim();
  if (text === '') return null;
  if (!/^[a-z]+:\/\//i.test(text)) text = `http://${text}`;
  try {
    const url = new URL(text);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
    return `${url.protocol}//${url.host}`;
  } catch {
    return null;
  }
}

/** Normalizes and deduplicates a node list, keeping the first occurrence's position. */
export function uniqueNodes(nodes) {
  const seen = new Set();
  const out = [];
  for (const node of nodes) {
    const base = normalizeNode(node);
    if (base && !seen.has(base)) {
      seen.add(base);
      out.push(base);
    }
  }
  return out;
}

/**
 * The node list a dashboard page starts with: the origin that served the page (every node
 * serves the dashboard, so that node is alive). The rest of the cluster is learned from its
 * `/status` (`nodesFromStatus`); no address is built in. `includeOrigin` is false under the
 * Vite dev server, whose origin is not a MiniTrue node (then `?nodes=` names them).
 */
export function defaultNodes(location = globalThis.location, { includeOrigin = true } = {}) {
  if (includeOrigin && location && /^https?:$/.test(location.protocol) && location.host) {
    return [`${location.protocol}//${location.host}`];
  }
  return [];
}

/**
 * The members a node's `/status` lists, as `{ id, url }` with absolute URLs: `http_addr` is
 * the advertised `host:port`, given the page's scheme (`protocol`, 'http:' or 'https:'), since
 * every node of a cluster speaks the same one. Members without a usable address are left out.
 */
export function nodesFromStatus(status, protocol = 'http:') {
  const scheme = protocol === 'https:' ? 'https:' : 'http:';
  const members = status && Array.isArray(status.members) ? status.members : [];
  const out = [];
  for (const m of members) {
    if (!m || typeof m.http_addr !== 'string') continue;
    const addr = m.http_addr.trim();
    const url = normalizeNode(/^[a-z]+:\/\//i.test(addr) ? addr : `${scheme}//${addr}`);
    if (url && !out.some((n) => n.url === url)) out.push({ id: typeof m.id === 'string' ? m.id : null, url });
  }
  return out;
}

/**
 * The Cluster tab's next list of node URLs to show and poll, after one round of `/status`.
 * - `seeds`: the nodes the page started with (its origin, or `?nodes=`);
 * - `results`: `[url, { ok, status? }]` of the round;
 * - `idsByUrl`: node id each URL has answered with (remembered across rounds, so a dead
 *   node keeps its one card although its peers list it under another address form).
 * A node is shown when it answered, or a node that answered lists it as a member; a seed
 * nobody lists is dropped, unless no node answered at all (then the seeds stay, shown as
 * unreachable, so the page says what it tried). Members are matched by id first.
 */
export function clusterNodeList(seeds, results, idsByUrl = new Map(), protocol = 'http:') {
  const urlById = new Map();
  for (const [url, id] of idsByUrl) if (id && !urlById.has(id)) urlById.set(id, url);
  const answered = results.filter(([, e]) => e && e.ok);
  const listed = [];
  for (const [, e] of answered) {
    for (const m of nodesFromStatus(e.status, protocol)) {
      const url = (m.id && urlById.get(m.id)) || m.url;
      if (!listed.includes(url)) listed.push(url);
    }
  }
  if (answered.length === 0) return uniqueNodes([...seeds, ...results.map(([url]) => url)]);
  const answeredUrls = answered.map(([url]) => url);
  const keep = (url) => answeredUrls.includes(url) || listed.includes(url);
  return uniqueNodes([...seeds.filter(keep), ...results.map(([url]) => url).filter(keep), ...listed]);
}

/** `http://host:port` → `ws://host:port/ws` (`https` → `wss`). */
export function wsUrlFor(node) {
  const base = normalizeNode(node);
  if (!base) return null;
  return `${base.replace(/^http/, 'ws')}/ws`;
}

/** Websocket URLs for live-stream failover, in the same order as the HTTP nodes. */
export function wsUrls(nodes) {
  return uniqueNodes(nodes).map(wsUrlFor);
}

/**
 * An error the dashboard shows to the user. `kind` is 'http' when a node answered with a
 * 4xx (then `status` and `node` are set) and 'unavailable' when no node could serve (then
 * `attempts` lists each node tried and why it failed).
 */
export class ClusterError extends Error {
  constructor(message, { kind, status = null, node = null, attempts = [] } = {}) {
    super(message);
    this.name = 'ClusterError';
    this.kind = kind;
    this.status = status;
    this.node = node;
    this.attempts = attempts;
  }
}

/** Why one node could not serve: a short phrase for the "all nodes down" message. */
function describeFailure(failure) {
  switch (failure.reason) {
    case 'timeout':
      return `timed out after ${failure.timeoutMs} ms`;
    case 'network':
      return `unreachable (${failure.detail})`;
    case 'server':
      return `HTTP ${failure.status}${failure.detail ? `: ${failure.detail}` : ''}`;
    case 'invalid':
      return `invalid response (${failure.detail})`;
    default:
      return failure.detail || 'failed';
  }
}

/** Resolves with `promise`, or rejects with an AbortError once `signal` aborts. */
function unlessAborted(promise, signal) {
  if (!signal) return promise;
  const abortError = () => new DOMException('request aborted', 'AbortError');
  if (signal.aborted) return Promise.reject(abortError());
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(abortError());
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => { signal.removeEventListener('abort', onAbort); resolve(value); },
      (err) => { signal.removeEventListener('abort', onAbort); reject(err); },
    );
  });
}

/** Reads a body as JSON; returns `{ ok, value }` so callers decide what bad JSON means. */
async function readJson(response) {
  let text;
  try {
    text = await response.text();
  } catch (err) {
    return { ok: false, error: `body could not be read: ${err?.message ?? err}` };
  }
  if (text.trim() === '') return { ok: true, value: null };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, error: 'body is not JSON' };
  }
}

/**
 * Creates a client over `nodes` (default: `defaultNodes()`).
 * - `fetchImpl`: the fetch to use (tests pass a mock); default `globalThis.fetch`.
 * - `timeoutMs`: per-node time limit.
 * - `auth`: `{ token(), unauthorized({ sentToken, message, node }) }` (an auth gate): the
 *   token sent on every request, and what to wait for before retrying a 401. Without it a 401
 *   is an ordinary 4xx.
 */
export function createClusterClient({
  nodes,
  fetchImpl,
  timeoutMs = DEFAULT_TIMEOUT_MS,
  auth = null,
} = {}) {
  let nodeList = uniqueNodes(nodes ?? defaultNodes());
  if (nodeList.length === 0) throw new Error('cluster client needs at least one node');
  const doFetch = fetchImpl ?? ((...args) => globalThis.fetch(...args));
  let preferred = nodeList[0];
  const listeners = new Set();

  /** Nodes in the order the next request tries them: last good node first. */
  function order() {
    return [preferred, ...nodeList.filter((n) => n !== preferred)];
  }

  function notify(event) {
    for (const listener of listeners) {
      try {
        listener(event);
      } catch {
        // A broken listener must not break the request that triggered it.
      }
    }
  }

  /**
   * One attempt at one node. Resolves to `{ ok: true, data }`, `{ ok: false, final: true,
   * error, sentToken }` for a 4xx, or `{ ok: false, failure }` when the next node should be
   * tried.
   */
  async function attempt(node, path, { method, body, signal: outerSignal }) {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onOuterAbort = () => controller.abort();
    outerSignal?.addEventListener?.('abort', onOuterAbort);
    try {
      const sentToken = auth?.token() ?? null;
      const init = {
        method,
        signal: controller.signal,
        headers: { Accept: 'application/json', ...authHeaders(sentToken) },
      };
      if (body !== undefined) {
        init.headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
      let response;
      try {
        response = await doFetch(`${node}${path}`, init);
      } catch (err) {
        if (outerSignal?.aborted) throw err;
        if (timedOut) return { ok: false, failure: { node, reason: 'timeout', timeoutMs } };
        return { ok: false, failure: { node, reason: 'network', detail: err?.message ?? String(err) } };
      }
      const parsed = await readJson(response);
      if (timedOut) return { ok: false, failure: { node, reason: 'timeout', timeoutMs } };
      const serverMessage = parsed.ok && parsed.value && typeof parsed.value.error === 'string'
        ? parsed.value.error
        : '';
      if (response.status >= 500) {
        return { ok: false, failure: { node, reason: 'server', status: response.status, detail: serverMessage } };
      }
      if (response.status >= 400) {
        const message = serverMessage || `HTTP ${response.status} ${response.statusText || ''}`.trim();
        return {
          ok: false,
          final: true,
          sentToken,
          error: new ClusterError(message, { kind: 'http', status: response.status, node }),
        };
      }
      if (!parsed.ok) return { ok: false, failure: { node, reason: 'invalid', detail: parsed.error } };
      return { ok: true, data: parsed.value };
    } finally {
      clearTimeout(timer);
      outerSignal?.removeEventListener?.('abort', onOuterAbort);
    }
  }

  /**
   * `attempt`, sent again after each 401 once the auth gate has a token to try (every node
   * of a cluster reads the same auth file, so the same node is asked again).
   */
  async function attemptAuthorized(node, path, options) {
    for (;;) {
      const result = await attempt(node, path, options);
      if (!(auth && result.final && result.error.status === 401)) return result;
      await unlessAborted(
        auth.unauthorized({ sentToken: result.sentToken, message: result.error.message, node }),
        options.signal,
      );
    }
  }

  /**
   * Sends one request with failover; resolves to `{ data, node }` or rejects with a
   * `ClusterError`. `signal` lets the caller abandon the whole request; `quiet` keeps it
   * from the listeners (a probe of an optional endpoint, whose 404 is no news to the user).
   */
  async function request(path, { method = 'GET', body, signal, quiet = false } = {}) {
    const tell = quiet ? () => {} : notify;
    const failures = [];
    for (const node of order()) {
      if (signal?.aborted) throw new DOMException('request aborted', 'AbortError');
      const result = await attemptAuthorized(node, path, { method, body, signal });
      if (result.ok) {
        preferred = node;
        const data = result.data;
        const nodeId = data && typeof data === 'object'
          ? (typeof data.node === 'string' ? data.node : (typeof data.node_id === 'string' ? data.node_id : null))
          : null;
        tell({ node, nodeId, path, ok: true });
        return { data: result.data, node };
      }
      if (result.final) {
        // The node is alive and answered; the request itself was refused.
        preferred = node;
        tell({ node, path, ok: false, error: result.error });
        throw result.error;
      }
      failures.push(result.failure);
    }
    const detail = failures.map((f) => `${f.node} ${describeFailure(f)}`).join('; ');
    const error = new ClusterError(`no node could serve ${path}: tried ${detail}`, {
      kind: 'unavailable',
      attempts: failures,
    });
    tell({ node: null, path, ok: false, error });
    throw error;
  }

  /** Asks one named node, without failover (the cluster view polls each node). */
  async function requestNode(node, path, { method = 'GET', body, signal } = {}) {
    const base = normalizeNode(node);
    if (!base) throw new ClusterError(`not a node address: ${node}`, { kind: 'unavailable' });
    const result = await attemptAuthorized(base, path, { method, body, signal });
    if (result.ok) return { data: result.data, node: base };
    if (result.final) throw result.error;
    throw new ClusterError(`${base} ${describeFailure(result.failure)}`, {
      kind: 'unavailable',
      attempts: [result.failure],
    });
  }

  const post = (path, body, opts) => request(path, { ...opts, method: 'POST', body });

  return {
    /** The nodes tried, in configured order (grows with `addNodes`). */
    get nodes() { return nodeList; },
    /** Adds nodes learned later (the members in `/status`) at the end of the failover order. */
    addNodes(more) {
      nodeList = uniqueNodes([...nodeList, ...more]);
    },
    order,
    lastGoodNode: () => preferred,
    /**
     * Called with `{ node, nodeId?, path, ok, error? }` after every failover request (nodeId
     * is the server's own name when the answer carried one); returns an unsubscribe function.
     */
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    request,
    requestNode,
    get: (path, opts) => request(path, { ...opts, method: 'GET' }),
    post,
    query: (req, opts) => post('/query', req, opts),
    querySamples: (req, opts) => post('/query-samples', req, opts),
    deleteSeries: (deviceId, metricName, opts) =>
      post('/delete', { device_id: deviceId, metric_name: metricName }, opts),
    devices: (opts) => request('/devices', opts),
    metrics: (deviceId, opts) => request(`/metrics?device_id=${encodeURIComponent(deviceId)}`, opts),
    /** Label names and one label's values (Prometheus API; a node may not have it: quiet). */
    labelNames: (opts) => request('/api/v1/labels', { ...opts, quiet: true }),
    labelValues: (name, opts) => request(`/api/v1/label/${encodeURIComponent(name)}/values`, { ...opts, quiet: true }),
    status: (node, opts) => requestNode(node, '/status', opts),
    /** Websocket URLs in configured order (same origin first) for live-stream failover. */
    wsUrls: () => wsUrls(nodeList),
  };
}
