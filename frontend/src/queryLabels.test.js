// Unit tests of src/queryLabels.js: label filter rows and group-by → the /query request,
// the answer's groups → table rows and chart lines, Prometheus label lists.
import { describe, it, expect } from 'vitest';
import {
  buildQueryRequest, groupLines, groupName, groupRows, labelNameProblem, labelsFromRows, labelsText, promList,
} from './queryLabels.js';

describe('label filters', () => {
  it('turns filled rows into the labels object, skipping blank rows and trimming names', () => {
    expect(labelsFromRows([{ name: ' room ', value: 'lab' }, { name: '', value: '' }, { name: 'floor', value: '2' }]))
      .toEqual({ ok: true, labels: { room: 'lab', floor: '2' } });
    expect(labelsFromRows([])).toEqual({ ok: true, labels: {} });
  });

  it('refuses a name without a value, a value without a name, a reserved or bad name, a name twice', () => {
    expect(labelsFromRows([{ name: 'room', value: '' }]).error).toMatch(/"room" needs a value/);
    expect(labelsFromRows([{ name: '', value: 'lab' }]).error).toMatch(/empty/);
    expect(labelsFromRows([{ name: '__name__', value: 't' }]).error).toMatch(/reserved/);
    expect(labelsFromRows([{ name: '1x', value: 'v' }]).error).toMatch(/not first a digit/);
    expect(labelsFromRows([{ name: 'a', value: '1' }, { name: 'a', value: '2' }]).error).toMatch(/twice/);
    expect(labelNameProblem('device_id')).toBe('');
  });

  it('are written as PromQL writes a selector, for titles', () => {
    expect(labelsText({ room: 'lab', note: 'say "hi"' })).toBe('{room="lab",note="say \\"hi\\""}');
    expect(labelsText({})).toBe('');
    expect(labelsText(undefined)).toBe('');
  });
});

describe('the /query request', () => {
  it('is the original request without filters or group-by', () => {
    expect(buildQueryRequest({ device: 'd', metric: 't', operation: 'avg' }))
      .toEqual({ device_id: 'd', metric_name: 't', operation: 'avg' });
  });

  it('carries labels and group_by (deduplicated, blanks dropped) when set', () => {
    expect(buildQueryRequest({
      device: 'd', metric: 't', operation: 'sum', labels: { room: 'lab' }, groupBy: ['room', ' ', 'room', 'floor'],
    })).toEqual({ device_id: 'd', metric_name: 't', operation: 'sum', labels: { room: 'lab' }, group_by: ['room', 'floor'] });
  });
});

describe('groups of the answer', () => {
  const answer = {
    result: 101,
    groups: [
      { labels: { room: 'kitchen' }, result: 100, count: 1, series: 1, buckets: [{ start: 60, result: 100, count: 1 }] },
      { labels: { room: 'lab' }, result: 1, count: 1, series: 1, buckets: [{ start: 0, result: 1, count: 1 }] },
      { labels: {}, result: null, count: 0, series: 1, buckets: [] },
    ],
  };

  it('become table rows named by their labels; a group without the label says so', () => {
    expect(groupRows(answer, ['room'])).toEqual([
      { name: 'room=kitchen', labels: { room: 'kitchen' }, result: 100, count: 1, series: 1 },
      { name: 'room=lab', labels: { room: 'lab' }, result: 1, count: 1, series: 1 },
      { name: '(no room)', labels: {}, result: null, count: 0, series: 1 },
    ]);
    expect(groupRows({ result: 1 })).toEqual([]);
    expect(groupName({ labels: { room: 'lab', device_id: 'd' } })).toBe('room=lab, device_id=d');
  });

  it('become one chart line a group with data', () => {
    expect(groupLines(answer, ['room'])).toEqual({
      names: ['room=kitchen', 'room=lab'],
      buckets: [[{ start: 60, result: 100, count: 1 }], [{ start: 0, result: 1, count: 1 }]],
    });
  });
});

describe('label names and values from the Prometheus API', () => {
  it('reads the success envelope, sorted, reserved names dropped from names only', () => {
    expect(promList({ status: 'success', data: ['room', '__name__', 'device_id', 'room'] }, { names: true }))
      .toEqual(['device_id', 'room']);
    expect(promList({ status: 'success', data: ['__x', 'b', 'a'] })).toEqual(['__x', 'a', 'b']);
  });

  it('is null for anything else (a node without the API answers 404 or another shape)', () => {
    expect(promList(null)).toBeNull();
    expect(promList({ error: 'not found' })).toBeNull();
    expect(promList({ status: 'error', data: [] })).toBeNull();
  });
});
