import { describe, it, expect, vi } from 'vitest';
import {
  createClusterClient, clusterNodeList, defaultNodes, nodesFromStatus, normalizeNode, uniqueNodes, wsUrlFor, ClusterError,
} from './clusterClient.js';
import { createAuthGate, createTokenStore } from './auth.js';

const A = 'http://localhost:8080';
const B = 'http://localhost:8081';
const C = 'http://localhost:8082';

const json = (status, body) => ({
  status,
  statusText: '',
  text: async () => JSON.stringify(body),
});

/** A fetch whose behaviour per node comes from `plan[node]` (a function or a response). */
function mockFetch(plan) {
  const calls = [];
  const fetchImpl = vi.fn(async (url, init) => {
    const node = new URL(url).origin;
    calls.push({ node, url, init });
    const step = plan[node];
    if (step === undefined) throw new TypeError('Failed to fetch');
    return typeof step === 'function' ? step(url, init) : step;
  });
  return { fetchImpl, calls };
}

describe('node lists', () => {
  it('normalizes host:port and strips paths', () => {
    expect(normalizeNode('localhost:8081')).toBe(B);
    expect(normalizeNode('http://localhost:8082/')).toBe(C);
    expect(normalizeNode('ftp://x')).toBeNull();
    expect(normalizeNode('')).toBeNull();
  });

  it('deduplicates keeping the first position', () => {
    expect(uniqueNodes([B, 'localhost:8080', A, 'localhost:8081/'])).toEqual([B, A]);
  });

  it('starts from the page origin alone, with no built-in ports', () => {
    expect(defaultNodes({ protocol: 'http:', host: 'localhost:8081' })).toEqual([B]);
    expect(defaultNodes({ protocol: 'https:', host: 'db.example:18443' })).toEqual(['https://db.example:18443']);
    expect(defaultNodes({ protocol: 'file:', host: '' })).toEqual([]);
  });

  it('leaves the origin out under the dev server', () => {
    const loc = { protocol: 'http:', host: 'localhost:5173' };
    expect(defaultNodes(loc, { includeOrigin: false })).toEqual([]);
  });

  const status = (id, members) => ({ node_id: id, members });
  const member = (id, http_addr) => ({ id, http_addr, gossip_addr: 'x:1', state: 'alive' });

  it('reads members from /status as absolute URLs in the page scheme', () => {
    const s = status('a', [member('a', '127.0.0.1:18080'), member('b', 'db2.example:18081'), { id: 'c' }, member('d', 'https://h:1')]);
    expect(nodesFromStatus(s, 'http:')).toEqual([
      { id: 'a', url: 'http://127.0.0.1:18080' },
      { id: 'b', url: 'http://db2.example:18081' },
      { id: 'd', url: 'https://h:1' },
    ]);
    expect(nodesFromStatus(s, 'https:')[1]).toEqual({ id: 'b', url: 'https://db2.example:18081' });
    expect(nodesFromStatus(null)).toEqual([]);
    expect(nodesFromStatus({ members: 'nope' })).toEqual([]);
  });

  it('cluster list: the seed, then exactly the members it lists, the seed matched by id', () => {
    const seed = 'http://localhost:18080';
    const ids = new Map([[seed, 'polaris']]);
    const results = [[seed, { ok: true, status: status('polaris', [
      member('polaris', '127.0.0.1:18080'), member('sirius', '127.0.0.1:18081'), member('vega', '127.0.0.1:18082'),
    ]) }]];
    expect(clusterNodeList([seed], results, ids)).toEqual([seed, 'http://127.0.0.1:18081', 'http://127.0.0.1:18082']);
  });

  it('cluster list: a seed nobody lists is dropped; a dead listed member stays', () => {
    const stale = 'http://localhost:8080';
    const results = [
      [stale, { ok: false, error: 'refused' }],
      ['http://h:2', { ok: true, status: status('b', [member('b', 'h:2'), member('c', 'h:3')]) }],
      ['http://h:3', { ok: false, error: 'refused' }],
    ];
    expect(clusterNodeList([stale, 'http://h:2'], results, new Map())).toEqual(['http://h:2', 'http://h:3']);
  });

  it('cluster list: a dead seed keeps its card under its own address when peers list it', () => {
    const seed = 'http://localhost:18080';
    const ids = new Map([[seed, 'polaris'], ['http://127.0.0.1:18081', 'sirius']]);
    const results = [
      [seed, { ok: false, error: 'refused' }],
      ['http://127.0.0.1:18081', { ok: true, status: status('sirius', [member('polaris', '127.0.0.1:18080'), member('sirius', '127.0.0.1:18081')]) }],
    ];
    expect(clusterNodeList([seed], results, ids)).toEqual([seed, 'http://127.0.0.1:18081']);
  });

  it('cluster list: when nothing answers, the seeds stay (shown unreachable)', () => {
    expect(clusterNodeList([A], [[A, { ok: false }]], new Map())).toEqual([A]);
  });

  it('the client learns nodes later, at the end of the failover order', () => {
    const client = createClusterClient({ nodes: [A], fetchImpl: vi.fn() });
    client.addNodes([B, A, C]);
    expect(client.nodes).toEqual([A, B, C]);
    expect(client.wsUrls()).toEqual(['ws://localhost:8080/ws', 'ws://localhost:8081/ws', 'ws://localhost:8082/ws']);
  });

  it('derives websocket URLs', () => {
    expect(wsUrlFor(A)).toBe('ws://localhost:8080/ws');
    expect(wsUrlFor('https://h:1')).toBe('wss://h:1/ws');
    const client = createClusterClient({ nodes: [A, B, C], fetchImpl: vi.fn() });
    expect(client.wsUrls()).toEqual(['ws://localhost:8080/ws', 'ws://localhost:8081/ws', 'ws://localhost:8082/ws']);
  });
});

describe('failover', () => {
  it('moves on after a network error and reports the serving node', async () => {
    const { fetchImpl, calls } = mockFetch({ [B]: json(200, { devices: ['sensor_1'] }) });
    const client = createClusterClient({ nodes: [A, B, C], fetchImpl });
    const res = await client.devices();
    expect(res).toEqual({ data: { devices: ['sensor_1'] }, node: B });
    expect(calls.map((c) => c.node)).toEqual([A, B]);
  });

  it('moves on after a 503', async () => {
    const { fetchImpl, calls } = mockFetch({
      [A]: json(503, { error: 'shutting down' }),
      [B]: json(500, { error: 'boom' }),
      [C]: json(200, { result: 1 }),
    });
    const client = createClusterClient({ nodes: [A, B, C], fetchImpl });
    const res = await client.query({ device_id: 'd', metric_name: 'm', operation: 'avg' });
    expect(res.node).toBe(C);
    expect(calls.map((c) => c.node)).toEqual([A, B, C]);
  });

  it('stops at a 400 and surfaces the server message', async () => {
    const { fetchImpl, calls } = mockFetch({
      [A]: json(400, { error: 'operation must be one of avg, sum, min, max, count' }),
      [B]: json(200, { result: 1 }),
    });
    const client = createClusterClient({ nodes: [A, B, C], fetchImpl });
    const err = await client.query({ operation: 'median' }).catch((e) => e);
    expect(err).toBeInstanceOf(ClusterError);
    expect(err.kind).toBe('http');
    expect(err.status).toBe(400);
    expect(err.node).toBe(A);
    expect(err.message).toBe('operation must be one of avg, sum, min, max, count');
    expect(calls).toHaveLength(1);
  });

  it('stops at a 404 without an error body', async () => {
    const { fetchImpl, calls } = mockFetch({
      [A]: { status: 404, statusText: 'Not Found', text: async () => '' },
    });
    const client = createClusterClient({ nodes: [A, B], fetchImpl });
    await expect(client.get('/nope')).rejects.toThrow('HTTP 404 Not Found');
    expect(calls).toHaveLength(1);
  });

  it('remembers the last good node and starts there next time', async () => {
    const { fetchImpl, calls } = mockFetch({ [C]: json(200, { ok: true }) });
    const client = createClusterClient({ nodes: [A, B, C], fetchImpl });
    await client.get('/status');
    expect(client.lastGoodNode()).toBe(C);
    calls.length = 0;
    await client.get('/status');
    expect(calls.map((c) => c.node)).toEqual([C]);
    expect(client.order()).toEqual([C, A, B]);
  });

  it('falls back through the rest when the remembered node dies', async () => {
    const plan = { [B]: json(200, { n: 'b' }) };
    const { fetchImpl, calls } = mockFetch(plan);
    const client = createClusterClient({ nodes: [A, B, C], fetchImpl });
    await client.get('/x');
    delete plan[B];
    plan[A] = json(200, { n: 'a' });
    calls.length = 0;
    const res = await client.get('/x');
    expect(calls.map((c) => c.node)).toEqual([B, A]);
    expect(res.node).toBe(A);
  });

  it('names every node tried when all are down', async () => {
    const { fetchImpl } = mockFetch({ [B]: json(503, { error: 'no quorum' }) });
    const client = createClusterClient({ nodes: [A, B, C], fetchImpl });
    const err = await client.get('/devices').catch((e) => e);
    expect(err).toBeInstanceOf(ClusterError);
    expect(err.kind).toBe('unavailable');
    expect(err.message).toContain(A);
    expect(err.message).toContain(`${B} HTTP 503: no quorum`);
    expect(err.message).toContain(C);
    expect(err.attempts.map((a) => a.node)).toEqual([A, B, C]);
  });

  it('moves on after a timeout', async () => {
    const { fetchImpl, calls } = mockFetch({
      [A]: (url, init) => new Promise((_, reject) => {
        init.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
      }),
      [B]: json(200, { ok: 1 }),
    });
    const client = createClusterClient({ nodes: [A, B], fetchImpl, timeoutMs: 20 });
    const res = await client.get('/status');
    expect(res.node).toBe(B);
    expect(calls.map((c) => c.node)).toEqual([A, B]);
  });

  it('reports a timeout in the all-down message', async () => {
    const never = (url, init) => new Promise((_, reject) => {
      init.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
    });
    const { fetchImpl } = mockFetch({ [A]: never });
    const client = createClusterClient({ nodes: [A], fetchImpl, timeoutMs: 10 });
    await expect(client.get('/status')).rejects.toThrow(/timed out after 10 ms/);
  });

  it('treats a 200 that is not JSON as a bad node', async () => {
    const { fetchImpl, calls } = mockFetch({
      [A]: { status: 200, text: async () => '<!doctype html>' },
      [B]: json(200, { devices: [] }),
    });
    const client = createClusterClient({ nodes: [A, B], fetchImpl });
    expect((await client.devices()).node).toBe(B);
    expect(calls).toHaveLength(2);
  });

  it('sends JSON bodies and encodes query parameters', async () => {
    const { fetchImpl, calls } = mockFetch({ [A]: json(200, { metrics: [] }) });
    const client = createClusterClient({ nodes: [A], fetchImpl });
    await client.deleteSeries('sensor 1', 'temperature');
    expect(calls[0].url).toBe(`${A}/delete`);
    expect(calls[0].init.method).toBe('POST');
    expect(JSON.parse(calls[0].init.body)).toEqual({ device_id: 'sensor 1', metric_name: 'temperature' });
    await client.metrics('sensor 1&x');
    expect(calls[1].url).toBe(`${A}/metrics?device_id=sensor%201%26x`);
  });

  it('tells subscribers which node served', async () => {
    const { fetchImpl } = mockFetch({ [B]: json(200, { node: 'sirius' }) });
    const client = createClusterClient({ nodes: [A, B], fetchImpl });
    const seen = [];
    const unsubscribe = client.subscribe((e) => seen.push(e));
    await client.post('/query', {});
    expect(seen).toEqual([{ node: B, nodeId: 'sirius', path: '/query', ok: true }]);
    unsubscribe();
    await client.post('/query', {});
    expect(seen).toHaveLength(1);
  });

  it('asks one node without failover for the cluster view', async () => {
    const { fetchImpl, calls } = mockFetch({ [B]: json(200, { node_id: 'sirius' }) });
    const client = createClusterClient({ nodes: [A, B], fetchImpl });
    await expect(client.status(A)).rejects.toThrow(/localhost:8080 unreachable/);
    expect((await client.status(B)).data.node_id).toBe('sirius');
    expect(calls.map((c) => c.node)).toEqual([A, B]);
    expect(client.lastGoodNode()).toBe(A);
  });
});

describe('access token', () => {
  /** A node with auth on: 200 for `good` (or a token in `roles` with enough role), else 401. */
  function authNode({ tokens = { good: 'admin' }, need = 'read' } = {}) {
    const rank = { read: 0, write: 1, admin: 2 };
    return (url, init) => {
      const header = init.headers.Authorization ?? '';
      const token = header.startsWith('Bearer ') ? header.slice(7) : null;
      if (token === null) return json(401, { error: 'missing credential' });
      if (!(token in tokens)) return json(401, { error: 'invalid token' });
      if (rank[tokens[token]] < rank[need]) return json(403, { error: `this needs the ${need} role; token has ${tokens[token]}` });
      return json(200, { devices: ['sensor_1'] });
    };
  }

  const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

  it('sends the stored token as a Bearer header on every request', async () => {
    const { fetchImpl, calls } = mockFetch({ [A]: json(200, {}) });
    const store = createTokenStore(null);
    store.set('good');
    const client = createClusterClient({ nodes: [A], fetchImpl, auth: createAuthGate(store) });
    await client.devices();
    await client.query({});
    await client.status(A);
    expect(calls.map((c) => c.init.headers.Authorization)).toEqual(['Bearer good', 'Bearer good', 'Bearer good']);
  });

  it('sends no Authorization header without a token', async () => {
    const { fetchImpl, calls } = mockFetch({ [A]: json(200, {}) });
    const client = createClusterClient({ nodes: [A], fetchImpl, auth: createAuthGate(createTokenStore(null)) });
    await client.devices();
    expect(calls[0].init.headers).not.toHaveProperty('Authorization');
  });

  it('on a 401 waits for the prompt, then retries the same node with the token', async () => {
    const { fetchImpl, calls } = mockFetch({ [A]: authNode(), [B]: json(200, { devices: ['other'] }) });
    const gate = createAuthGate(createTokenStore(null));
    const client = createClusterClient({ nodes: [A, B], fetchImpl, auth: gate });
    const pending = client.devices();
    await settle();
    expect(gate.prompt()).toMatchObject({ reason: 'required', message: 'missing credential', node: A });
    gate.submit('good');
    await expect(pending).resolves.toEqual({ data: { devices: ['sensor_1'] }, node: A });
    expect(calls.map((c) => c.node)).toEqual([A, A]);
    expect(calls[1].init.headers.Authorization).toBe('Bearer good');
  });

  it('a wrong token gets "refused" and the prompt again; the right one then goes through', async () => {
    const { fetchImpl, calls } = mockFetch({ [A]: authNode() });
    const gate = createAuthGate(createTokenStore(null));
    const client = createClusterClient({ nodes: [A], fetchImpl, auth: gate });
    const pending = client.devices();
    await settle();
    gate.submit('wrong');
    await settle();
    expect(gate.prompt()).toMatchObject({ reason: 'refused', message: 'invalid token' });
    expect(gate.token()).toBeNull();
    gate.submit('good');
    await expect(pending).resolves.toMatchObject({ node: A });
    expect(calls.map((c) => c.init.headers.Authorization)).toEqual([undefined, 'Bearer wrong', 'Bearer good']);
  });

  it('a stored token that gets a 401 is forgotten and the prompt says refused', async () => {
    const { fetchImpl } = mockFetch({ [A]: authNode() });
    const store = createTokenStore(null);
    store.set('revoked');
    const gate = createAuthGate(store);
    const client = createClusterClient({ nodes: [A], fetchImpl, auth: gate });
    client.devices();
    await settle();
    expect(store.get()).toBeNull();
    expect(gate.prompt()?.reason).toBe('refused');
  });

  it('many requests refused at once share one prompt and all retry', async () => {
    const { fetchImpl, calls } = mockFetch({ [A]: authNode() });
    const gate = createAuthGate(createTokenStore(null));
    let prompts = 0;
    gate.subscribe(() => { if (gate.prompt()) prompts += 1; });
    const client = createClusterClient({ nodes: [A], fetchImpl, auth: gate });
    const all = Promise.all([client.devices(), client.metrics('sensor_1'), client.status(A)]);
    await settle();
    expect(prompts).toBe(1);
    gate.submit('good');
    await expect(all).resolves.toHaveLength(3);
    expect(calls.filter((c) => c.init.headers.Authorization === 'Bearer good')).toHaveLength(3);
  });

  it('a 403 is not a prompt: it fails with the server\'s text naming the role', async () => {
    const { fetchImpl, calls } = mockFetch({ [A]: authNode({ tokens: { reader: 'read' }, need: 'admin' }) });
    const store = createTokenStore(null);
    store.set('reader');
    const gate = createAuthGate(store);
    const client = createClusterClient({ nodes: [A, B], fetchImpl, auth: gate });
    const err = await client.deleteSeries('sensor_1', 'temperature').catch((e) => e);
    expect(err).toBeInstanceOf(ClusterError);
    expect(err.status).toBe(403);
    expect(err.message).toBe('this needs the admin role; token has read');
    expect(gate.prompt()).toBeNull();
    expect(store.get()).toBe('reader');
    expect(calls).toHaveLength(1);
  });

  it('a request abandoned while the prompt is open rejects with AbortError', async () => {
    const { fetchImpl } = mockFetch({ [A]: authNode() });
    const gate = createAuthGate(createTokenStore(null));
    const client = createClusterClient({ nodes: [A], fetchImpl, auth: gate });
    const controller = new AbortController();
    const pending = client.devices({ signal: controller.signal });
    await settle();
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('without an auth gate a 401 is an ordinary 4xx', async () => {
    const { fetchImpl } = mockFetch({ [A]: authNode() });
    const client = createClusterClient({ nodes: [A], fetchImpl });
    await expect(client.devices()).rejects.toMatchObject({ status: 401, message: 'missing credential' });
  });
});

describe('label lists (Prometheus API, optional on a node)', () => {
  it('asks /api/v1/labels and the escaped values path, and keeps a 404 from the listeners', async () => {
    const { fetchImpl, calls } = mockFetch({
      [A]: (url) => (url.endsWith('/api/v1/labels')
        ? json(200, { status: 'success', data: ['room'] })
        : json(404, { error: 'no such endpoint' })),
    });
    const client = createClusterClient({ nodes: [A], fetchImpl });
    const events = [];
    client.subscribe((e) => events.push(e));
    expect((await client.labelNames()).data.data).toEqual(['room']);
    await expect(client.labelValues('a/b c')).rejects.toMatchObject({ kind: 'http', status: 404 });
    expect(calls.map((c) => c.url)).toEqual([`${A}/api/v1/labels`, `${A}/api/v1/label/a%2Fb%20c/values`]);
    expect(events).toEqual([]);
    await client.devices().catch(() => {});
    expect(events.length).toBe(1);
  });
});
