import { describe, it, expect } from 'vitest';
import { createLiveStore, alignSeries } from './liveStore.js';

const r = (device_id, metric_name, timestamp, value) => ({ device_id, metric_name, timestamp, value });

describe('alignSeries', () => {
  it('aligns devices on the union of timestamps with gaps as null', () => {
    const devices = new Map([
      ['sensor_2', { t: [2, 3], v: [20, 30] }],
      ['sensor_1', { t: [1, 3, 3], v: [1, 3, 4] }],
    ]);
    expect(alignSeries(devices)).toEqual({
      names: ['sensor_1', 'sensor_2'],
      data: [[1, 2, 3], [1, null, 4], [null, 20, 30]],
    });
  });
});

describe('createLiveStore', () => {
  it('counts totals and keeps the newest feed entries first, bounded', () => {
    const store = createLiveStore({ feedSize: 3 });
    for (let i = 0; i < 5; i += 1) store.add([r('s', 'temp', i, i)], 1000);
    const snap = store.snapshot(1000);
    expect(snap.total).toBe(5);
    expect(snap.feed.map((f) => f.value)).toEqual([4, 3, 2]);
  });

  it('keeps the last N points per device per metric', () => {
    const store = createLiveStore({ pointsPerDevice: 2 });
    store.add([r('a', 'temp', 1, 1), r('a', 'temp', 2, 2), r('a', 'temp', 3, 3), r('b', 'hum', 1, 50)], 0);
    const { charts } = store.snapshot(0);
    expect(charts.map((c) => c.metric)).toEqual(['hum', 'temp']);
    expect(charts[1].data).toEqual([[2, 3], [2, 3]]);
  });

  it('computes messages per second over the window', () => {
    const store = createLiveStore({ rateWindowMs: 5000 });
    store.add(new Array(10).fill(r('a', 't', 1, 1)), 10_000);
    store.add(new Array(15).fill(r('a', 't', 1, 1)), 12_500);
    expect(store.rate(13_000)).toBe(5);
    expect(store.rate(16_000)).toBe(3);
    expect(store.rate(30_000)).toBe(0);
  });

  it('resets', () => {
    const store = createLiveStore();
    store.add([r('a', 't', 1, 1)], 0);
    store.reset();
    expect(store.snapshot(0)).toMatchObject({ total: 0, feed: [], charts: [] });
  });
});
