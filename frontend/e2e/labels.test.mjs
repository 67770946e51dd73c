// End-to-end test of the Query tab's label filters, group-by and date-time pickers in
// headless Chromium, against one real node (cluster.mjs `startNode`, no broker: the data
// comes in through `POST /write`). Two series of one device and metric differ in the
// `room` label: lab (1 a reading) and kitchen (100 a reading), three readings each.
// Screenshots go to test-output/e2e/labels-*.png at the repo root.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { launchBrowser, screenshots } from './browser.mjs';
import { OUTPUT_DIR, startNode, waitFor } from './cluster.mjs';

describe('Query tab: label filters, group-by, date-time pickers (one node, headless Chromium)', () => {
  let node;
  let browser;
  let page;
  const queryBodies = []; // the JSON bodies of every POST /query the page sent

  const { withShot } = screenshots(() => page, OUTPUT_DIR, 'labels-');
  const byTestId = (id) => page.getByTestId(id);

  function watch(p) {
    p.on('request', (r) => {
      if (new URL(r.url()).pathname === '/query' && r.method() === 'POST') queryBodies.push(JSON.parse(r.postData()));
    });
  }

  /** Waits for the device and metric in the lists and picks them with `sum`. */
  async function selectSeries(p) {
    await waitFor('device d in the Device list', async () =>
      (await p.getByLabel('Device').locator('option').allTextContents()).includes('d'));
    await p.getByLabel('Device').selectOption('d');
    await waitFor('metric t in the Metric list', async () =>
      (await p.getByLabel('Metric').locator('option').allTextContents()).includes('t'));
    await p.getByLabel('Metric').selectOption('t');
    await p.getByLabel('Operation').selectOption('sum');
  }

  /** Clicks Run query; returns the first /query body it sent and the shown result. */
  async function runQuery() {
    const sent = queryBodies.length;
    await page.getByRole('button', { name: 'Run query' }).click();
    await waitFor('a /query request', () => queryBodies.length > sent, { timeoutMs: 5000 });
    await waitFor('the result, and Run query enabled again', async () =>
      (await byTestId('result-value').isVisible()) && page.getByRole('button', { name: 'Run query' }).isEnabled(),
    { timeoutMs: 15000 });
    return { body: queryBodies[sent], value: (await byTestId('result-value').textContent()).trim() };
  }

  before(async () => {
    mkdirSync(OUTPUT_DIR, { recursive: true });
    node = await startNode({ nodeId: 'labels' });
    const now = Math.floor(Date.now() / 1000);
    const lines = [0, 30, 60].flatMap((dt) => [
      `t,device_id=d,room=lab value=1 ${now - 120 + dt}`,
      `t,device_id=d,room=kitchen value=100 ${now - 120 + dt}`,
    ]);
    const r = await fetch(`http://127.0.0.1:${node.port}/write?precision=s`, { method: 'POST', body: lines.join('\n') });
    assert.equal(r.status, 204, `POST /write answered ${r.status}: ${await r.text()}`);
    browser = await launchBrowser();
    page = await browser.context.newPage();
    watch(page);
    await page.goto(`http://127.0.0.1:${node.port}/`);
    await selectSeries(page);
  });

  after(async () => {
    try {
      await browser?.close();
    } finally {
      await node?.stop();
    }
  });

  test('a label filter room=lab sends labels and shows the lab series only', withShot('1-filter', async () => {
    await page.getByRole('button', { name: 'Add label filter' }).click();
    await page.getByLabel('Label 1 name').fill('room');
    await page.getByLabel('Label 1 value').fill('lab');
    const { body, value } = await runQuery();
    assert.deepEqual(body.labels, { room: 'lab' });
    assert.equal(body.group_by, undefined);
    assert.equal(value, '3', 'sum of the three lab readings (1 each)');
    assert.equal((await byTestId('result-count').textContent()).trim(), '3');
    assert.match(await page.evaluate(() => window.location.hash), /label=room%3Dlab/);
  }));

  test('group by room: two groups in the table and two chart lines with a legend', withShot('2-group-by', async () => {
    await page.getByLabel('Label 1 name').locator('xpath=..').getByRole('button', { name: 'Remove' }).click();
    await page.getByLabel('Another label to group by').fill('room');
    await page.getByRole('button', { name: 'Add to group-by' }).click();
    const { body, value } = await runQuery();
    assert.deepEqual(body.group_by, ['room']);
    assert.equal(body.labels, undefined);
    assert.equal(value, '303', 'the top-level result covers both series');
    const rows = byTestId('result-group');
    await waitFor('two group rows', async () => (await rows.count()) === 2, { timeoutMs: 5000 });
    const text = (await rows.allTextContents()).map((t) => t.replace(/\s+/g, ' '));
    assert.deepEqual(text, ['room=kitchen30031', 'room=lab331']);
    await byTestId('query-chart').waitFor({ timeout: 15000 });
    const legend = await byTestId('query-chart').locator('.u-legend .u-series .u-label').allTextContents();
    assert.ok(legend.includes('room=kitchen') && legend.includes('room=lab'), `legend: ${legend.join(' | ')}`);
  }));

  test('the link reopens the grouped query; the pickers follow the typed times and back', withShot('3-link-picker', async () => {
    const url = page.url();
    assert.match(url, /group_by=room/);
    const shared = await browser.context.newPage();
    watch(shared);
    try {
      await shared.goto(url);
      await waitFor('the shared link to run its grouped query', async () =>
        (await shared.getByTestId('result-group').count()) === 2, { timeoutMs: 15000 });
      assert.match(await shared.getByTestId('group-by-chosen').textContent(), /room/);
    } finally {
      await shared.close();
    }

    await page.getByLabel('From (date picker)').fill('2024-03-10T14:30');
    assert.equal(await page.getByLabel('Start').inputValue(), '2024-03-10 02:30 PM');
    await page.getByLabel('End', { exact: true }).fill('2024-03-11 12:05 AM');
    assert.equal(await page.getByLabel('To (date picker)').inputValue(), '2024-03-11T00:05');
  }));
});
