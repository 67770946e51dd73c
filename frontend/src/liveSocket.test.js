import { describe, it, expect } from 'vitest';
import { connectLive, parseReadings } from './liveSocket.js';

const URLS = ['ws://localhost:8080/ws', 'ws://localhost:8081/ws', 'ws://localhost:8082/ws'];

/** A scripted world: fake sockets the test opens/closes, and a manual timer queue. */
function harness({ token } = {}) {
  const sockets = [];
  const timers = [];
  class FakeSocket {
    constructor(url) {
      this.url = url;
      this.closed = false;
      sockets.push(this);
    }
    close() { this.closed = true; }
    open() { this.onopen?.(); }
    drop() { this.onclose?.({ code: 1006 }); }
    send(text) { this.onmessage?.({ data: text }); }
  }
  const statuses = [];
  const readings = [];
  const conn = connectLive({
    urls: URLS,
    WebSocketImpl: FakeSocket,
    ...(token ? { token } : {}),
    setTimer: (fn, ms) => { timers.push({ fn, ms }); return timers.length; },
    clearTimer: () => { timers.length = 0; },
    onStatus: (s) => statuses.push(s),
    onReadings: (r) => readings.push(...r),
  });
  const fire = () => { const t = timers.shift(); t.fn(); return t.ms; };
  return { sockets, timers, statuses, readings, conn, fire };
}

describe('connectLive', () => {
  it('connects to the first URL and reports the node when open', () => {
    const h = harness();
    expect(h.sockets.map((s) => s.url)).toEqual([URLS[0]]);
    h.sockets[0].open();
    expect(h.statuses.at(-1)).toMatchObject({ state: 'open', url: URLS[0] });
  });

  it('tries the next URL at once when a connection never opens', () => {
    const h = harness();
    h.sockets[0].drop();
    expect(h.sockets.map((s) => s.url)).toEqual([URLS[0], URLS[1]]);
    expect(h.timers).toHaveLength(0);
  });

  it('waits 3 s after all nodes refused, then starts over', () => {
    const h = harness();
    h.sockets[0].drop();
    h.sockets[1].drop();
    h.sockets[2].drop();
    expect(h.sockets).toHaveLength(3);
    expect(h.statuses.at(-1)).toMatchObject({ state: 'waiting', retryInMs: 3000 });
    expect(h.fire()).toBe(3000);
    expect(h.sockets.at(-1).url).toBe(URLS[0]);
  });

  it('retries another node 3 s after an open connection drops', () => {
    const h = harness();
    h.sockets[0].open();
    h.sockets[0].drop();
    expect(h.sockets).toHaveLength(1);
    expect(h.statuses.at(-1)).toMatchObject({ state: 'waiting', url: URLS[1], retryInMs: 3000 });
    h.fire();
    expect(h.sockets[1].url).toBe(URLS[1]);
    h.sockets[1].open();
    expect(h.statuses.at(-1)).toMatchObject({ state: 'open', url: URLS[1] });
  });

  it('wraps from the last node back to the first', () => {
    const h = harness();
    h.sockets[0].drop();
    h.sockets[1].drop();
    h.sockets[2].open();
    h.sockets[2].drop();
    h.fire();
    expect(h.sockets.at(-1).url).toBe(URLS[0]);
  });

  it('delivers readings and ignores malformed frames', () => {
    const h = harness();
    h.sockets[0].open();
    h.sockets[0].send('{"device_id":"sensor_1","metric_name":"temperature","timestamp":1710000000,"value":24.2}');
    h.sockets[0].send('not json');
    h.sockets[0].send('{"device_id":"sensor_1"}');
    expect(h.readings).toEqual([
      { device_id: 'sensor_1', metric_name: 'temperature', timestamp: 1710000000, value: 24.2 },
    ]);
  });

  it('stops cleanly: closes the socket and cancels the retry', () => {
    const h = harness();
    h.sockets[0].open();
    h.conn.stop();
    expect(h.sockets[0].closed).toBe(true);
    expect(h.statuses.at(-1).state).toBe('stopped');
    h.sockets[0].drop();
    expect(h.sockets).toHaveLength(1);
    expect(h.timers).toHaveLength(0);
  });
});

describe('connectLive with an access token', () => {
  it('puts the token on the URL but never in the reported status', () => {
    const h = harness({ token: () => 'a b&c' });
    expect(h.sockets[0].url).toBe('ws://localhost:8080/ws?token=a%20b%26c');
    h.sockets[0].open();
    expect(h.statuses.at(-1)).toMatchObject({ state: 'open', url: URLS[0] });
    expect(JSON.stringify(h.statuses)).not.toContain('token');
  });

  it('uses the token current at each attempt', () => {
    let token = null;
    const h = harness({ token: () => token });
    expect(h.sockets[0].url).toBe(URLS[0]);
    token = 'fresh';
    h.sockets[0].drop();
    expect(h.sockets[1].url).toBe(`${URLS[1]}?token=fresh`);
  });
});

describe('parseReadings', () => {
  it('accepts a batch array and keeps only complete readings', () => {
    const text = JSON.stringify([
      { device_id: 'a', metric_name: 'm', timestamp: 1, value: 2 },
      { device_id: 'b', metric_name: 'm', timestamp: 1, value: 'x' },
    ]);
    expect(parseReadings(text)).toHaveLength(1);
  });
});
