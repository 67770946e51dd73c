import { describe, it, expect } from 'vitest';
import { chooseStep, bucketCount, bucketsToColumns, formatStep, NICE_STEPS, TARGET_BUCKETS } from './bucketStep.js';

describe('chooseStep', () => {
  it('picks nice steps for the presets', () => {
    expect(chooseStep(3600)).toBe(15); // 240 buckets
    expect(chooseStep(86400)).toBe(300); // 288 buckets
    expect(chooseStep(7 * 86400)).toBe(3600); // 168 buckets
    expect(chooseStep(30 * 86400)).toBe(3 * 3600); // 240 buckets
    expect(chooseStep(365 * 86400)).toBe(2 * 86400); // 183 buckets
  });

  it('uses 1 s for short or empty ranges', () => {
    expect(chooseStep(60)).toBe(1);
    expect(chooseStep(300)).toBe(1);
    expect(chooseStep(0)).toBe(1);
    expect(chooseStep(-5)).toBe(1);
    expect(chooseStep(NaN)).toBe(1);
  });

  it('never exceeds the target and is always a nice step within the table', () => {
    for (let range = 1; range < 60 * 86400; range = Math.ceil(range * 1.37)) {
      const step = chooseStep(range);
      expect(NICE_STEPS).toContain(step);
      expect(bucketCount(range, step)).toBeLessThanOrEqual(TARGET_BUCKETS);
    }
  });

  it('picks the smallest step that fits', () => {
    const range = 86400;
    const step = chooseStep(range);
    const smaller = NICE_STEPS[NICE_STEPS.indexOf(step) - 1];
    expect(bucketCount(range, smaller)).toBeGreaterThan(TARGET_BUCKETS);
  });

  it('goes past the table in 30-day multiples for decades of data', () => {
    const step = chooseStep(50 * 365 * 86400);
    expect(step % (30 * 86400)).toBe(0);
    expect(bucketCount(50 * 365 * 86400, step)).toBeLessThanOrEqual(TARGET_BUCKETS);
  });

  it('honours a custom target', () => {
    expect(chooseStep(3600, 60)).toBe(60);
  });
});

describe('formatStep', () => {
  it('names steps in their largest whole unit', () => {
    expect(formatStep(15)).toBe('15 s');
    expect(formatStep(300)).toBe('5 min');
    expect(formatStep(21600)).toBe('6 h');
    expect(formatStep(86400)).toBe('1 d');
  });
});

describe('bucketsToColumns', () => {
  it('keeps contiguous buckets as they are', () => {
    const b = [{ start: 10, result: 1, count: 2 }, { start: 15, result: 2, count: 1 }];
    expect(bucketsToColumns(b, 5)).toEqual([[10, 15], [1, 2]]);
  });
  it('breaks the line where the server left buckets out', () => {
    const b = [{ start: 0, result: 1, count: 1 }, { start: 30, result: 3, count: 1 }, { start: 40, result: 4, count: 1 }];
    expect(bucketsToColumns(b, 10)).toEqual([[0, 10, 30, 40], [1, null, 3, 4]]);
  });
  it('turns empty buckets into gaps', () => {
    const b = [{ start: 0, result: null, count: 0 }, { start: 1, result: 2, count: 1 }];
    expect(bucketsToColumns(b, 1)).toEqual([[0, 1], [null, 2]]);
  });
  it('handles no buckets', () => {
    expect(bucketsToColumns([], 60)).toEqual([[], []]);
  });
});
