import { describe, it, expect } from 'vitest';
import {
  parse12h, format12h, format12hExact, validateRange, to24Hour, to12Hour, presetRange,
  fromDateTimeLocal, pickerValueFor, textForPicker, toDateTimeLocal,
} from './time12h.js';

const local = (y, mo, d, h, mi, s = 0) => Math.floor(new Date(y, mo - 1, d, h, mi, s).getTime() / 1000);

describe('12-hour clock conversion', () => {
  it('maps 12 AM to midnight and 12 PM to noon', () => {
    expect(to24Hour(12, 'AM')).toBe(0);
    expect(to24Hour(12, 'PM')).toBe(12);
    expect(to24Hour(1, 'AM')).toBe(1);
    expect(to24Hour(1, 'PM')).toBe(13);
    expect(to24Hour(11, 'PM')).toBe(23);
    expect(to12Hour(0)).toEqual({ hour: 12, meridiem: 'AM' });
    expect(to12Hour(12)).toEqual({ hour: 12, meridiem: 'PM' });
    expect(to12Hour(23)).toEqual({ hour: 11, meridiem: 'PM' });
  });
});

describe('parse12h', () => {
  it('parses midnight and noon', () => {
    expect(parse12h('2024-03-10 12:00 AM')).toEqual({ ok: true, seconds: local(2024, 3, 10, 0, 0) });
    expect(parse12h('2024-03-10 12:00 PM')).toEqual({ ok: true, seconds: local(2024, 3, 10, 12, 0) });
    expect(parse12h('2024-03-10 12:59 AM').seconds).toBe(local(2024, 3, 10, 0, 59));
    expect(parse12h('2024-03-10 11:59 PM').seconds).toBe(local(2024, 3, 10, 23, 59));
  });

  it('accepts lower case, dots, single-digit hours and seconds', () => {
    expect(parse12h('2024-03-10 2:30 pm').seconds).toBe(local(2024, 3, 10, 14, 30));
    expect(parse12h('2024-03-10 02:30 p.m.').seconds).toBe(local(2024, 3, 10, 14, 30));
    expect(parse12h(' 2024-03-10 02:30:15 AM ').seconds).toBe(local(2024, 3, 10, 2, 30, 15));
  });

  it('rejects impossible hours', () => {
    expect(parse12h('2024-03-10 13:00 PM').error).toMatch(/hour must be 1–12/);
    expect(parse12h('2024-03-10 00:30 AM').error).toMatch(/midnight is 12:00 AM/);
  });

  it('rejects impossible minutes and seconds', () => {
    expect(parse12h('2024-03-10 10:60 AM').error).toMatch(/minutes must be 00–59/);
    expect(parse12h('2024-03-10 10:5 AM').ok).toBe(false);
    expect(parse12h('2024-03-10 10:05:61 AM').error).toMatch(/seconds must be 00–59/);
  });

  it('rejects impossible dates', () => {
    expect(parse12h('2023-02-29 10:00 AM').error).toMatch(/has no day 29 \(it has 28\)/);
    expect(parse12h('2024-02-29 10:00 AM').ok).toBe(true);
    expect(parse12h('2024-04-31 10:00 AM').ok).toBe(false);
    expect(parse12h('2024-13-01 10:00 AM').error).toMatch(/month must be 01–12/);
  });

  it('asks for AM/PM and for the format', () => {
    expect(parse12h('2024-03-10 14:30').error).toMatch(/add AM or PM/);
    expect(parse12h('yesterday PM').error).toMatch(/not in the form/);
    expect(parse12h('').ok).toBe(false);
    expect(parse12h(undefined).ok).toBe(false);
  });
});

describe('format12h', () => {
  it('writes midnight and noon as 12', () => {
    expect(format12h(local(2024, 3, 10, 0, 5))).toBe('2024-03-10 12:05 AM');
    expect(format12h(local(2024, 3, 10, 12, 5))).toBe('2024-03-10 12:05 PM');
    expect(format12h(local(2024, 12, 31, 23, 59))).toBe('2024-12-31 11:59 PM');
  });

  it('round-trips through parse12h', () => {
    for (const h of [0, 1, 11, 12, 13, 23]) {
      const s = local(2025, 7, 4, h, 42);
      expect(parse12h(format12h(s)).seconds).toBe(s);
    }
  });
});

describe('validateRange', () => {
  it('treats empty fields as open bounds', () => {
    expect(validateRange('', '')).toEqual({ ok: true, start: 0, end: 0 });
    expect(validateRange('2024-03-10 01:00 AM', '').start).toBe(local(2024, 3, 10, 1, 0));
  });

  it('accepts start before end', () => {
    const r = validateRange('2024-03-10 11:00 AM', '2024-03-10 12:00 PM');
    expect(r).toEqual({ ok: true, start: local(2024, 3, 10, 11, 0), end: local(2024, 3, 10, 12, 0) });
  });

  it('rejects start after end', () => {
    // 12:30 PM is half past noon; 12:30 AM is half past midnight, earlier the same day.
    const r = validateRange('2024-03-10 12:30 PM', '2024-03-10 12:30 AM');
    expect(r.ok).toBe(false);
    expect(r.errors.range).toMatch(/Start is after End/);
    expect(validateRange('2024-03-10 12:30 AM', '2024-03-10 11:00 PM').ok).toBe(true);
  });

  it('rejects an empty range', () => {
    expect(validateRange('2024-03-10 01:00 PM', '2024-03-10 01:00 PM').errors.range).toMatch(/same time/);
  });

  it('reports each bad field by name', () => {
    const r = validateRange('2024-03-10 13:00 PM', '2024-02-30 01:00 AM');
    expect(r.errors.start).toMatch(/^Start:/);
    expect(r.errors.end).toMatch(/^End:/);
    expect(r.errors.range).toBeUndefined();
  });
});

describe('presetRange', () => {
  it('ends now and spans the preset', () => {
    expect(presetRange('hour', 10_000.7)).toEqual({ start: 6400, end: 10_000 });
    expect(presetRange('week', 1e9)).toEqual({ start: 1e9 - 604800, end: 1e9 });
    expect(presetRange('all', 1e9)).toEqual({ start: 0, end: 0 });
    expect(() => presetRange('decade', 1)).toThrow();
  });
});

describe('exact times of a shared link', () => {
  it('keep their seconds and read back the same', () => {
    const t = Math.floor(new Date(2024, 2, 10, 14, 30, 5).getTime() / 1000);
    expect(format12hExact(t)).toBe('2024-03-10 02:30:05 PM');
    expect(format12hExact(t - 5)).toBe('2024-03-10 02:30 PM');
    expect(parse12h(format12hExact(t))).toEqual({ ok: true, seconds: t });
  });
});

describe('the date-time picker beside the typed fields', () => {
  const at = (y, mo, d, h, mi, s = 0) => Math.floor(new Date(y, mo - 1, d, h, mi, s).getTime() / 1000);

  it('writes and reads the datetime-local value in local time', () => {
    expect(toDateTimeLocal(at(2024, 3, 10, 14, 30))).toBe('2024-03-10T14:30');
    expect(toDateTimeLocal(at(2024, 3, 10, 0, 5, 9))).toBe('2024-03-10T00:05:09');
    expect(fromDateTimeLocal('2024-03-10T14:30')).toBe(at(2024, 3, 10, 14, 30));
    expect(fromDateTimeLocal('2024-03-10T14:30:15.250')).toBe(at(2024, 3, 10, 14, 30, 15));
    expect(fromDateTimeLocal('')).toBeNull();
    expect(fromDateTimeLocal('2024-03-10')).toBeNull();
  });

  it('follows the typed 12-hour field, empty while the text is no time', () => {
    expect(pickerValueFor('2024-03-10 02:30 PM')).toBe('2024-03-10T14:30');
    expect(pickerValueFor('2024-03-10 12:00 AM')).toBe('2024-03-10T00:00');
    expect(pickerValueFor('2024-03-10 13:75 PM')).toBe('');
    expect(pickerValueFor('')).toBe('');
  });

  it('fills the typed field when a time is picked, keeping seconds, and clears it with the picker', () => {
    expect(textForPicker('2024-03-10T14:30')).toBe('2024-03-10 02:30 PM');
    expect(textForPicker('2024-03-10T00:00:07')).toBe('2024-03-10 12:00:07 AM');
    expect(textForPicker('')).toBe('');
  });

  it('round-trips: picker → text → picker', () => {
    for (const v of ['2024-01-01T00:00', '2024-07-04T12:00', '2024-12-31T23:59:59']) {
      expect(pickerValueFor(textForPicker(v))).toBe(v);
    }
  });
});
