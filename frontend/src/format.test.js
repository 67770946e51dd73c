// Unit tests of src/format.js: which unit is shown (only known ones) and axis labels.
import { describe, it, expect } from 'vitest';
import { axisLabel, unitFor } from './format.js';

describe('units only where known', () => {
  it('guesses nothing from the metric name', () => {
    expect(unitFor('temperature')).toBe('');
    expect(unitFor({ metric_name: 'temperature' }, 'avg')).toBe('');
    expect(unitFor({ metric_name: 'humidity', labels: {} }, 'max')).toBe('');
  });

  it('a count counts readings', () => {
    expect(unitFor('temperature', 'count')).toBe('readings');
  });

  it('a unit label names the unit', () => {
    expect(unitFor({ metric_name: 'temperature', labels: { unit: '°F' } }, 'avg')).toBe('°F');
    expect(unitFor({ metric_name: 'temperature', labels: { unit: 7 } }, 'avg')).toBe('');
  });

  it('axis labels carry a unit only when one is known', () => {
    expect(axisLabel('temperature', 'avg')).toBe('temperature');
    expect(axisLabel({ metric_name: 'temperature', labels: { unit: '°F' } }, 'avg')).toBe('temperature (°F)');
    expect(axisLabel('temperature', 'count')).toBe('temperature (readings)');
  });
});
