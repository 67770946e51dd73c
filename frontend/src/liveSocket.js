// The live monitor's websocket with node failover.
//
// One socket at a time. The URLs are tried in order (same origin first, then the local
// cluster's nodes). A connection that never opened moves straight on to the next URL; once
// every URL has failed in a row, or after an open connection drops, the next URL is tried
// after `retryMs` (3 s), so a restarting cluster is not hammered. Each text frame carries one
// reading `{device_id, metric_name, timestamp, value}`; an array of readings is accepted too.
//
// A node with auth on takes the token as `?token=` on the URL (browsers cannot set headers on
// a websocket). It is added at every connection attempt, so a token entered while the socket
// waits is used by the next attempt; the URLs reported to `onStatus` never show it.
import { withToken } from './auth.js';

/** Delay before the next node is tried after a drop. */
export const RETRY_MS = 3000;

function isReading(r) {
  return r !== null && typeof r === 'object' &&
    typeof r.device_id === 'string' && typeof r.metric_name === 'string' &&
    typeof r.value === 'number' && Number.isFinite(r.value) &&
    typeof r.timestamp === 'number' && Number.isFinite(r.timestamp);
}

/** Parses one frame's text into the readings it holds; anything malformed is skipped. */
export function parseReadings(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return [];
  }
  const items = Array.isArray(value) ? value : [value];
  return items.filter(isReading);
}

/**
 * Opens the live stream. Callbacks: `onStatus({ state, url, attempt, retryInMs })` where
 * state is 'connecting' | 'open' | 'waiting' | 'stopped'; `onReadings(readings)` per frame.
 * `token()` gives the access token to put on the URL (null: none). `urls` is a list, or a
 * function giving the current list (nodes learned from `/status` join it). Returns `{ stop() }`.
 * Timer and WebSocket implementations are injectable for tests.
 */
export function connectLive({
  urls,
  token = () => null,
  WebSocketImpl = globalThis.WebSocket,
  retryMs = RETRY_MS,
  setTimer = (fn, ms) => setTimeout(fn, ms),
  clearTimer = (id) => clearTimeout(id),
  onStatus = () => {},
  onReadings = () => {},
}) {
  const urlList = typeof urls === 'function' ? urls : () => urls;
  if (!urlList() || urlList().length === 0) throw new Error('live stream needs at least one URL');
  let index = 0;
  let failedInRow = 0;
  let attempt = 0;
  let socket = null;
  let timer = null;
  let stopped = false;

  function schedule(delay) {
    onStatus({ state: 'waiting', url: urlList()[index % urlList().length], attempt, retryInMs: delay });
    timer = setTimer(() => {
      timer = null;
      open();
    }, delay);
  }

  function open() {
    if (stopped) return;
    attempt += 1;
    index %= urlList().length;
    const url = urlList()[index];
    onStatus({ state: 'connecting', url, attempt });
    let opened = false;
    let ws;
    try {
      ws = new WebSocketImpl(withToken(url, token()));
    } catch {
      // A malformed URL fails like a refused connection.
      ws = null;
    }
    const handleClose = () => {
      if (socket !== ws && ws !== null) return;
      socket = null;
      if (stopped) return;
      index = (index + 1) % urlList().length;
      if (opened) {
        failedInRow = 0;
        schedule(retryMs);
        return;
      }
      failedInRow += 1;
      if (failedInRow >= urlList().length) {
        failedInRow = 0;
        schedule(retryMs);
      } else {
        open();
      }
    };
    if (ws === null) {
      handleClose();
      return;
    }
    socket = ws;
    ws.onopen = () => {
      if (socket !== ws) return;
      opened = true;
      failedInRow = 0;
      onStatus({ state: 'open', url, attempt });
    };
    ws.onmessage = (event) => {
      if (socket !== ws || typeof event.data !== 'string') return;
      const readings = parseReadings(event.data);
      if (readings.length > 0) onReadings(readings);
    };
    ws.onerror = () => {};
    ws.onclose = handleClose;
  }

  open();

  return {
    stop() {
      stopped = true;
      if (timer !== null) clearTimer(timer);
      timer = null;
      const ws = socket;
      socket = null;
      if (ws) {
        ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
        try {
          ws.close();
        } catch {
          // Closing a socket that never connected can throw in some browsers.
        }
      }
      onStatus({ state: 'stopped', url: null, attempt });
    },
  };
}
