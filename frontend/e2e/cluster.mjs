// End-to-end harness: a real local MiniTrue cluster started process by process, so the tests
// own every PID (they kill one node with SIGKILL for the failover test, and stop and restart
// the simulator around the delete test).
//
// It builds nothing but the dashboard (`npm run build` when frontend/dist is missing); the
// Rust binaries must already be built (`make frontend-e2e` runs `cargo build --bins`
// first; MINITRUE_BIN_DIR picks another directory, e.g. target/release). Everything
// started here is killed by PID when `stop()` runs, and also when the test process exits
// for any reason.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const FRONTEND_DIR = path.resolve(here, '..');
export const REPO_ROOT = path.resolve(FRONTEND_DIR, '..');
export const DIST_DIR = path.join(FRONTEND_DIR, 'dist');
export const OUTPUT_DIR = path.join(REPO_ROOT, 'test-output', 'e2e');
// The Rust binaries: MINITRUE_BIN_DIR, or the debug build `make test` already made.
const BIN_DIR = process.env.MINITRUE_BIN_DIR || path.join(REPO_ROOT, 'target', 'debug');

/**
 * The test cluster's nodes: name, HTTP port, gossip port. Deliberately not the defaults
 * (8080-8082, 9000-9002), which a developer's `run_cluster.sh` may hold at the same time, and
 * which the dashboard must not assume: it finds the members through `/status`.
 */
export const NODES = [
  { id: 'polaris', port: 18480, tcpPort: 19400 },
  { id: 'sirius', port: 18481, tcpPort: 19401 },
  { id: 'vega', port: 18482, tcpPort: 19402 },
];
const SEEDS = NODES.map((n) => `127.0.0.1:${n.tcpPort}`).join(',');

export const nodeByPort = (port) => NODES.find((n) => n.port === Number(port));
export const nodeById = (id) => NODES.find((n) => n.id === id);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** True when nothing listens on 0.0.0.0:port (the nodes bind to all interfaces). */
function portIsFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '0.0.0.0', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** A port the kernel says is free right now (for the broker). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1' }, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

/** Every process any cluster of this test process started, killed on exit as a last resort. */
const livePids = new Set();
let exitHookInstalled = false;
function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = () => {
    for (const pid of livePids) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    livePids.clear();
  };
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => { killAll(); process.exit(130); });
  }
}

/**
 * Spawns `file args` in `cwd` with `env` added to ours, stdout and stderr to `logFile`;
 * the process is killed when the test run exits. `exited` resolves to `{ code, signal }`.
 */
function spawnLogged(file, args, { cwd, env = {}, logFile }) {
  const log = openSync(logFile, 'w');
  const child = spawn(file, args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  livePids.add(child.pid);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    livePids.delete(child.pid);
    resolve({ code, signal });
  }));
  return { child, exited };
}

function requireBinary(name) {
  const file = path.join(BIN_DIR, name);
  if (!existsSync(file)) {
    throw new Error(`${file} is missing: run \`cargo build --bins\` at the repo root first ` +
      '(or set MINITRUE_BIN_DIR), or use `make frontend-e2e`.');
  }
  return file;
}

function ensureDashboardBuilt() {
  if (existsSync(path.join(DIST_DIR, 'index.html'))) return;
  console.log('# e2e: frontend/dist missing, running npm run build');
  const r = spawnSync('npm', ['run', 'build'], { cwd: FRONTEND_DIR, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('npm run build failed');
}

/**
 * POST/GET JSON to a node, with a time limit; `token` is sent as `Authorization: Bearer`.
 * Returns `{ status, data, headers }`.
 */
export async function api(port, pathname, body, { timeoutMs = 5000, token } = {}) {
  const init = { signal: AbortSignal.timeout(timeoutMs), headers: {} };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.method = 'POST';
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(`http://127.0.0.1:${port}${pathname}`, init);
  const text = await response.text();
  let data;
  try { data = JSON.parse(text); } catch { data = text; }
  return { status: response.status, data, headers: response.headers };
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor(what, check, { timeoutMs = 10000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` +
    (lastError ? ` (last error: ${lastError.message})` : ''));
}

/**
 * Starts broker, three nodes and the simulator. Returns a handle with `stop()`,
 * `killNode(id)` (SIGKILL), `stopSimulator()`, `startSimulator()`, `aliveNodes()`.
 */
export async function startCluster({ devices = 3, interval = 0.2 } = {}) {
  installExitHook();
  const broker = requireBinary('minitrue-broker');
  const server = requireBinary('minitrue-server');
  const publisher = requireBinary('minitrue-publisher');
  ensureDashboardBuilt();

  const busy = [];
  for (const n of NODES) {
    for (const port of [n.port, n.tcpPort]) {
      if (!(await portIsFree(port))) busy.push(port);
    }
  }
  if (busy.length > 0) {
    throw new Error(`port(s) ${busy.join(', ')} in use: the e2e tests need ${NODES.map((n) => `${n.port}/${n.tcpPort}`).join(', ')}. ` +
      'Stop whatever listens there (another MiniTrue cluster?) and retry.');
  }

  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'minitrue-e2e-'));
  const logDir = path.join(OUTPUT_DIR, 'logs');
  mkdirSync(logDir, { recursive: true });
  const procs = new Map(); // name -> { child, exited: Promise }

  function launch(name, file, args, env = {}) {
    // cwd: never the repo: a node must find the dashboard through the env var.
    const { child, exited } = spawnLogged(file, args, {
      cwd: dataDir, env, logFile: path.join(logDir, `${name}.log`),
    });
    procs.set(name, { child, exited, args });
    return child;
  }

  async function kill(name, signal = 'SIGKILL') {
    const p = procs.get(name);
    if (!p) return;
    procs.delete(name);
    if (p.child.exitCode === null && p.child.signalCode === null) {
      try { process.kill(p.child.pid, signal); } catch { /* gone */ }
    }
    await Promise.race([p.exited, sleep(5000)]);
  }

  const brokerPort = await freePort();
  const brokerUrl = `tcp://127.0.0.1:${brokerPort}`;

  const simArgs = ['--sim=true', '--devices', String(devices), '--interval', String(interval), '--broker', brokerUrl];
  const handle = {
    brokerPort,
    dataDir,
    logDir,
    killed: new Set(),
    aliveNodes: () => NODES.filter((n) => !handle.killed.has(n.id)),
    async killNode(id) {
      handle.killed.add(id);
      await kill(id, 'SIGKILL');
    },
    async stopSimulator() {
      await kill('simulator', 'SIGTERM');
    },
    startSimulator() {
      launch('simulator', publisher, simArgs);
    },
    async stop() {
      // Simulator first, then nodes, broker last; SIGTERM, then SIGKILL after 5 s.
      for (const name of ['simulator', ...NODES.map((n) => n.id).reverse(), 'broker']) {
        const p = procs.get(name);
        if (!p) continue;
        await kill(name, 'SIGTERM');
        if (p.child.exitCode === null && p.child.signalCode === null) {
          try { process.kill(p.child.pid, 'SIGKILL'); } catch { /* gone */ }
          await Promise.race([p.exited, sleep(2000)]);
        }
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };

  try {
    launch('broker', broker, ['--listen', `127.0.0.1:${brokerPort}`]);
    await waitFor(`the broker on port ${brokerPort}`, () => canConnect(brokerPort), { timeoutMs: 10000 });

    for (const n of NODES) {
      launch(n.id, server, [
        '--mode=all', '--node_id', n.id, '--port', String(n.port), '--tcp_port', String(n.tcpPort),
        '--data_dir', dataDir, '--broker', brokerUrl, '--log_level', 'info', '--seeds', SEEDS,
      ], { MINITRUE_FRONTEND_DIR: DIST_DIR });
    }
    for (const n of NODES) {
      await waitFor(`/health of ${n.id} on port ${n.port} (see ${logDir}/${n.id}.log)`, async () => {
        const p = procs.get(n.id);
        if (p.child.exitCode !== null) throw new Error(`${n.id} exited with ${p.child.exitCode}`);
        const { status, data } = await api(n.port, '/health', undefined, { timeoutMs: 1000 });
        return status === 200 && data?.node_id === n.id;
      }, { timeoutMs: 20000 });
    }

    handle.startSimulator();
    return handle;
  } catch (err) {
    await handle.stop();
    throw err;
  }
}

/**
 * Starts one node on free loopback ports (not the cluster's, so it never meets the cluster
 * above) with `args` added to its command line, and waits until `/health` answers. No
 * broker: the HTTP API works without one. Returns `{ port, tcpPort, nodeId, dataDir,
 * logFile, stop() }`; the process is killed by PID by `stop()` and on exit.
 */
export async function startNode({ nodeId = 'solo', args = [] } = {}) {
  installExitHook();
  const server = requireBinary('minitrue-server');
  ensureDashboardBuilt();
  const port = await freePort();
  const tcpPort = await freePort();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'minitrue-e2e-node-'));
  const logDir = path.join(OUTPUT_DIR, 'logs');
  mkdirSync(logDir, { recursive: true });
  const logFile = path.join(logDir, `${nodeId}.log`);
  const { child, exited } = spawnLogged(server, [
    '--mode=all', '--node_id', nodeId, '--port', String(port), '--tcp_port', String(tcpPort),
    '--bind', '127.0.0.1', '--data_dir', dataDir, '--broker', 'tcp://127.0.0.1:1',
    '--log_level', 'info', ...args,
  ], { cwd: dataDir, env: { MINITRUE_FRONTEND_DIR: DIST_DIR }, logFile });

  const handle = {
    port,
    tcpPort,
    nodeId,
    dataDir,
    logFile,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        try { process.kill(child.pid, 'SIGTERM'); } catch { /* gone */ }
        const done = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
        if (!done) {
          try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
          await Promise.race([exited, sleep(2000)]);
        }
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  try {
    await waitFor(`/health of ${nodeId} on port ${port} (see ${logFile})`, async () => {
      if (child.exitCode !== null) throw new Error(`${nodeId} exited with ${child.exitCode}`);
      const { status } = await api(port, '/health', undefined, { timeoutMs: 1000 });
      return status === 200;
    }, { timeoutMs: 20000 });
  } catch (err) {
    await handle.stop();
    throw err;
  }
  return handle;
}
