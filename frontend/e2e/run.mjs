// `npm run test:e2e`: the end-to-end tests (e2e/*.test.mjs) under Node's test runner, one file
// at a time (they share the cluster ports of cluster.mjs), with the run time printed at the end. The harness
// (e2e/cluster.mjs) needs the Rust binaries (../target/debug, or MINITRUE_BIN_DIR) and Debian's Chromium.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const files = process.argv.slice(2).length > 0
  ? process.argv.slice(2)
  : readdirSync(here).filter((f) => f.endsWith('.test.mjs')).sort().map((f) => path.join(here, f));

const started = Date.now();
const run = spawnSync(process.execPath, [
  '--test', '--test-concurrency=1', '--test-reporter=spec', ...files,
], { stdio: 'inherit' });
const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(`e2e: ${run.status === 0 ? 'passed' : 'FAILED'} in ${seconds} s; screenshots in test-output/e2e/`);
process.exit(run.status ?? 1);
