// Unit tests of src/queryExport.js: the query in the URL hash and the CSV export.
import { describe, it, expect } from 'vitest';
import { columnsToCsv, decodeQueryHash, encodeQueryHash, exportFileName, mergeColumns } from './queryExport.js';

describe('query in the URL', () => {
  it('round-trips a query', () => {
    const q = { device: 'sensor 1/a&b', metric: 'temperature', op: 'max', start: 1710000000, end: 1710003600, preset: '', labels: {}, groupBy: [] };
    const hash = encodeQueryHash(q);
    expect(hash.startsWith('#query?device=sensor+1%2Fa%26b&metric=temperature&op=max&start=1710000000&end=1710003600')).toBe(true);
    expect(decodeQueryHash(hash)).toEqual(q);
  });

  it('leaves open ends and empty fields out, and keeps a preset', () => {
    const hash = encodeQueryHash({ device: 'd', metric: 'm', op: 'avg', start: 0, end: 0, preset: 'hour' });
    expect(hash).toBe('#query?device=d&metric=m&op=avg&preset=hour');
    expect(decodeQueryHash(hash)).toEqual({ device: 'd', metric: 'm', op: 'avg', start: 0, end: 0, preset: 'hour', labels: {}, groupBy: [] });
  });

  it('names no query for other tabs, no series, or bare #query', () => {
    expect(decodeQueryHash('#cluster')).toBeNull();
    expect(decodeQueryHash('#query')).toBeNull();
    expect(decodeQueryHash('#query?device=d')).toBeNull();
    expect(decodeQueryHash('')).toBeNull();
  });

  it('repairs what a hand-edited link gets wrong', () => {
    expect(decodeQueryHash('#query?device=d&metric=m&op=median&start=-5&end=abc')).toEqual(
      { device: 'd', metric: 'm', op: 'avg', start: 0, end: 0, preset: '', labels: {}, groupBy: [] });
  });

  it('round-trips label filters and group-by, values with = , & and spaces included', () => {
    const q = {
      device: 'd', metric: 't', op: 'sum', start: 0, end: 0, preset: 'all',
      labels: { room: 'lab', note: 'a=b, c&d e' }, groupBy: ['room', 'device_id'],
    };
    const hash = encodeQueryHash(q);
    expect(hash).toBe('#query?device=d&metric=t&op=sum&preset=all&label=room%3Dlab'
      + '&label=note%3Da%3Db%2C+c%26d+e&group_by=room&group_by=device_id');
    expect(decodeQueryHash(hash)).toEqual(q);
  });

  it('drops a hand-edited label without a value or name, and repeated group-by names', () => {
    const q = decodeQueryHash('#query?device=d&metric=t&label=room&label=%3Dx&label=k%3D&label=a%3D1&group_by=r&group_by=r&group_by=');
    expect(q.labels).toEqual({ a: '1' });
    expect(q.groupBy).toEqual(['r']);
  });
});

describe('CSV of the chart', () => {
  it('writes ISO 8601 UTC times and values, leaving empty buckets out', () => {
    const csv = columnsToCsv([[1710000000, 1710000060, 1710000120], [21.5, null, -3]], 'sensor_1/temperature (avg)');
    expect(csv).toBe('time,sensor_1/temperature (avg)\n2024-03-09T16:00:00.000Z,21.5\n2024-03-09T16:02:00.000Z,-3\n');
  });

  it('quotes a header with a comma or quote', () => {
    expect(columnsToCsv([[], []], 'a,"b"')).toBe('time,"a,""b"""\n');
  });

  it('names export files safely', () => {
    expect(exportFileName({ device: 'sensor 1', metric: 'temp/x', op: 'avg' }, 'csv')).toBe('sensor_1-temp_x-avg.csv');
  });
});

describe('several series on one chart', () => {
  it('merges on the union of times, null where a series has no bucket', () => {
    expect(mergeColumns([[[60, 120], [1, 2]], [[0, 120], [5, 6]]])).toEqual([[0, 60, 120], [null, 1, 2], [5, null, 6]]);
  });

  it('writes one CSV column a series, empty where missing', () => {
    const csv = columnsToCsv([[0, 60, 120], [null, 1, null], [5, null, null]], ['a', 'b']);
    expect(csv).toBe('time,a,b\n1970-01-01T00:00:00.000Z,,5\n1970-01-01T00:01:00.000Z,1,\n');
  });
});
