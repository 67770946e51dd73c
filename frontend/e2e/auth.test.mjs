// End-to-end test of the dashboard against one node with token auth on (`--auth_file` and
// `--cluster_secret_file`), in headless Chromium. The node runs on free loopback ports, apart
// from the three-node cluster of dashboard.test.mjs, and the page is pinned to it with
// `?nodes=`. The tests run in order on one page: the prompt on the first 401, a wrong token
// refused, the right one loading data, the token kept across a reload, the live monitor's
// websocket carrying the token, and a 403 for a role that is too low.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { launchBrowser, screenshots } from './browser.mjs';
import { OUTPUT_DIR, api, startNode, waitFor } from './cluster.mjs';

const sha256 = (text) => createHash('sha256').update(text).digest('hex');
// Characters that need URL-encoding on the websocket URL, as real generated tokens may have.
const READ_TOKEN = `read+${randomBytes(12).toString('base64url')}/=`;
const WRITE_TOKEN = `write-${randomBytes(12).toString('hex')}`;
const DEVICE = 'auth_sensor';
const METRIC = 'temperature';

/** POST /write (line protocol, seconds) with `token`; returns the status. */
async function writePoints(port, values, { token, start }) {
  const body = values.map((v, i) => `${METRIC},device_id=${DEVICE} value=${v} ${start + i}`).join('\n');
  const response = await fetch(`http://127.0.0.1:${port}/write?precision=s`, {
    method: 'POST',
    headers: { 'Content-Type': 'text/plain', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body,
    signal: AbortSignal.timeout(5000),
  });
  await response.arrayBuffer();
  return response.status;
}

/** The status a websocket upgrade of `pathname` gets (101 when accepted). */
function upgradeStatus(port, pathname) {
  return new Promise((resolve, reject) => {
    const req = http.get({
      host: '127.0.0.1',
      port,
      path: pathname,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
      },
      timeout: 5000,
    });
    req.once('upgrade', (res, socket) => { socket.destroy(); resolve(res.statusCode); });
    req.once('response', (res) => { res.resume(); resolve(res.statusCode); });
    req.once('timeout', () => req.destroy(new Error('upgrade timed out')));
    req.once('error', reject);
  });
}

describe('dashboard with token auth (one node, headless Chromium)', () => {
  let node;
  let secrets;
  let browser;
  let page;
  const start = Math.floor(Date.now() / 1000) - 60;
  const apiRequests = []; // { path, authorization } of every API request the page sent
  const sockets = []; // URLs of the websockets the page opened

  const { shot, withShot } = screenshots(() => page, OUTPUT_DIR, 'auth-');
  const byTestId = (id) => page.getByTestId(id);
  const tokenField = () => page.getByLabel('Access token');

  async function enterToken(token) {
    await tokenField().fill(token);
    await page.getByRole('button', { name: 'Use token' }).click();
  }

  before(async () => {
    mkdirSync(OUTPUT_DIR, { recursive: true });
    secrets = mkdtempSync(path.join(os.tmpdir(), 'minitrue-e2e-auth-'));
    const authFile = path.join(secrets, 'auth.toml');
    writeFileSync(authFile, [
      '[[token]]', 'name = "dashboard"', 'role = "read"', `sha256 = "${sha256(READ_TOKEN)}"`, '',
      '[[token]]', 'name = "loader"', 'role = "write"', `sha256 = "${sha256(WRITE_TOKEN)}"`, '',
    ].join('\n'));
    const secretFile = path.join(secrets, 'cluster.secret');
    writeFileSync(secretFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    node = await startNode({
      nodeId: 'guarded',
      args: ['--auth_file', authFile, '--cluster_secret_file', secretFile],
    });

    // The node's side of the contract the dashboard relies on.
    const open = await api(node.port, '/devices');
    assert.equal(open.status, 401, `GET /devices without a token: ${JSON.stringify(open.data)}`);
    assert.equal(typeof open.data?.error, 'string');
    assert.match(open.headers.get('www-authenticate') ?? '', /^Bearer realm="minitrue"/);
    assert.equal((await api(node.port, '/health')).status, 200, '/health stays open');
    assert.equal(await writePoints(node.port, [20], { token: READ_TOKEN, start }), 403, 'a read token cannot write');
    assert.equal(await writePoints(node.port, [20, 21, 22, 23, 24], { token: WRITE_TOKEN, start }), 204);

    browser = await launchBrowser();
    page = await browser.context.newPage();
    page.on('request', (r) => {
      const url = new URL(r.url());
      if (url.port === String(node.port) && url.pathname !== '/' && !url.pathname.startsWith('/assets/')) {
        apiRequests.push({ path: url.pathname, authorization: r.headers().authorization ?? null });
      }
    });
    page.on('websocket', (ws) => sockets.push(ws.url()));
  });

  after(async () => {
    try {
      await browser?.close();
    } finally {
      await node?.stop();
      if (secrets) rmSync(secrets, { recursive: true, force: true });
    }
  });

  test('the dashboard loads without a token and asks for one on the first 401', withShot('1-prompt', async () => {
    const response = await page.goto(`http://127.0.0.1:${node.port}/?nodes=127.0.0.1:${node.port}`);
    assert.equal(response.status(), 200, 'the static dashboard is served without credentials');
    await tokenField().waitFor({ timeout: 10000 });
    assert.ok(await page.getByRole('dialog', { name: 'Token required' }).isVisible());
    assert.match(await byTestId('token-required').textContent(), /asks for an access token/);
    assert.deepEqual(apiRequests.find((r) => r.path === '/devices'), { path: '/devices', authorization: null });
  }));

  test('a wrong token is refused and the prompt stays', withShot('2-refused', async () => {
    await enterToken('not-a-token');
    await byTestId('token-refused').waitFor({ timeout: 10000 });
    assert.match(await byTestId('token-refused').textContent(), /^Token refused/);
    assert.ok(apiRequests.some((r) => r.authorization === 'Bearer not-a-token'), 'the wrong token was sent');
    assert.equal(await tokenField().inputValue(), '', 'the field is cleared for another try');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('minitrue.token')), null);
  }));

  test('the right token loads the data, sent as Bearer on every request', withShot('3-data', async () => {
    const sentBefore = apiRequests.length;
    await enterToken(READ_TOKEN);
    await tokenField().waitFor({ state: 'detached', timeout: 10000 });
    const deviceSelect = page.getByLabel('Device');
    await waitFor(`${DEVICE} in the Device list`, async () =>
      (await deviceSelect.locator('option').allTextContents()).includes(DEVICE));
    await page.getByLabel('Operation').selectOption('count');
    await page.getByRole('button', { name: 'All data' }).click();
    await page.getByRole('button', { name: 'Run query' }).click();
    await byTestId('result-count').waitFor({ timeout: 10000 });
    assert.equal((await byTestId('result-count').textContent()).trim(), '5');
    const sent = apiRequests.slice(sentBefore).filter((r) => r.path !== '/ws');
    assert.ok(sent.length >= 3, `requests after the token: ${JSON.stringify(sent)}`);
    for (const r of sent) assert.equal(r.authorization, `Bearer ${READ_TOKEN}`, `${r.path} carries the token`);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('minitrue.token')), READ_TOKEN);
  }));

  test('the token is kept for the session: a reload asks no more', withShot('4-reload', async () => {
    await page.reload();
    const deviceSelect = page.getByLabel('Device');
    await waitFor(`${DEVICE} in the Device list after the reload`, async () =>
      (await deviceSelect.locator('option').allTextContents()).includes(DEVICE));
    assert.equal(await tokenField().count(), 0, 'no prompt');
  }));

  test('the live monitor connects with token= on the websocket URL and receives writes', withShot('5-live', async () => {
    assert.notEqual(await upgradeStatus(node.port, '/ws'), 101, '/ws without a token is refused');
    await page.getByRole('tab', { name: 'Real-Time Monitor', exact: true }).click();
    await waitFor('the live monitor to connect', async () =>
      (await byTestId('live-status').textContent()) === `Connected to ws://127.0.0.1:${node.port}/ws`,
    { timeoutMs: 15000 });
    const withToken = `ws://127.0.0.1:${node.port}/ws?token=${encodeURIComponent(READ_TOKEN)}`;
    assert.ok(sockets.includes(withToken), `websocket URLs: ${sockets.join(', ')}`);
    assert.equal(await upgradeStatus(node.port, `/ws?token=${encodeURIComponent(READ_TOKEN)}`), 101);

    assert.equal(await writePoints(node.port, [30, 31, 32], { token: WRITE_TOKEN, start: start + 10 }), 204);
    await waitFor('3 live messages', async () =>
      Number((await byTestId('live-total').textContent()).replace(/,/g, '')) >= 3, { timeoutMs: 10000 });
  }));

  test('a role too low shows the server\'s 403 message naming the role', withShot('6-forbidden', async () => {
    await page.getByRole('tab', { name: 'Query Data', exact: true }).click();
    const series = `${DEVICE}/${METRIC}`;
    await page.getByRole('button', { name: 'Delete series' }).click();
    await page.getByLabel('Confirm series name').fill(series);
    await page.getByRole('button', { name: 'Delete permanently' }).click();
    await byTestId('delete-outcome').waitFor({ timeout: 10000 });
    const shown = await byTestId('delete-outcome').textContent();

    const direct = await api(node.port, '/delete', { device_id: DEVICE, metric_name: METRIC }, { token: READ_TOKEN });
    assert.equal(direct.status, 403);
    assert.match(direct.data.error, /admin/);
    assert.ok(shown.includes(direct.data.error), `"${shown}" shows "${direct.data.error}"`);
    assert.equal(await tokenField().count(), 0, 'a 403 does not ask for another token');
    await shot('6-forbidden-dialog');
    await page.getByRole('button', { name: 'Close' }).click();

    const count = await api(node.port, '/query', {
      device_id: DEVICE, metric_name: METRIC, operation: 'count', start_time: 0, end_time: 0,
    }, { token: READ_TOKEN });
    assert.equal(count.data.count, 8, 'the series is intact');
  }));

  test('Forget token drops it: the next request asks again', withShot('7-forget', async () => {
    await page.getByRole('button', { name: 'Forget token' }).click();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('minitrue.token')), null);
    await page.getByRole('button', { name: 'Run query' }).click();
    await tokenField().waitFor({ timeout: 10000 });
    await enterToken(READ_TOKEN);
    await tokenField().waitFor({ state: 'detached', timeout: 10000 });
    await waitFor('the query result', async () => (await byTestId('result-count').textContent()).trim() === '8');
  }));
});
