// Debian's Chromium driven by playwright-core (a Playwright browser download does not work
// here). A fresh, empty profile every run; the flags keep Chromium off the network.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launches Chromium with a throw-away profile; `close()` removes the profile too. */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: install Debian's chromium (apt-get install chromium) ` +
      'or set CHROMIUM_PATH');
  }
  const profile = mkdtempSync(path.join(os.tmpdir(), 'minitrue-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1280, height: 900 },
    locale: 'en-US',
    timezoneId: Intl.DateTimeFormat().resolvedOptions().timeZone,
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Screenshot helpers for a test file: `shot(name)` saves `dir/<prefix><name>.png` of the
 * page `getPage()` returns (if any); `withShot(name, body)` wraps a test body so the
 * screenshot is taken whether it passes or fails.
 */
export function screenshots(getPage, dir, prefix = '') {
  const shot = (name) => getPage()?.screenshot({ path: path.join(dir, `${prefix}${name}.png`), fullPage: true })
    .catch((err) => console.log(`# screenshot ${name} failed: ${err.message}`));
  const withShot = (name, body) => async () => {
    try {
      await body();
    } finally {
      await shot(name);
    }
  };
  return { shot, withShot };
}
