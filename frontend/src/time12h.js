// 12-hour clock times for the query form, as pure functions.
//
// A time is written "YYYY-MM-DD hh:mm AM" (or PM) in the browser's local time zone; the
// server speaks Unix seconds. 12:00 AM is midnight (00:00) and 12:00 PM is noon. An empty
// field means an open bound, which the API spells as 0.

const PATTERN = /^(\d{4})-(\d{1,2})-(\d{1,2})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp])\.?[Mm]\.?$/;

/** The format hint shown in the inputs. */
export const TIME_FORMAT_HINT = 'YYYY-MM-DD hh:mm AM';

const pad = (n) => String(n).padStart(2, '0');

/** 12-hour hour (1..12) + meridiem → 24-hour hour (0..23). */
export function to24Hour(hour12, meridiem) {
  const pm = meridiem.toUpperCase() === 'PM';
  if (hour12 === 12) return pm ? 12 : 0;
  return pm ? hour12 + 12 : hour12;
}

/** 24-hour hour (0..23) → `{ hour: 1..12, meridiem }`. */
export function to12Hour(hour24) {
  const meridiem = hour24 < 12 ? 'AM' : 'PM';
  const hour = hour24 % 12 === 0 ? 12 : hour24 % 12;
  return { hour, meridiem };
}

/**
 * Parses "YYYY-MM-DD hh:mm AM|PM" (seconds optional, "am"/"p.m." accepted) as local time.
 * Returns `{ ok: true, seconds }` or `{ ok: false, error }` with a message for the user.
 */
export function parse12h(text) {
  const input = typeof text === 'string' ? text.trim() : '';
  if (input === '') return { ok: false, error: 'Enter a time as YYYY-MM-DD hh:mm AM/PM.' };
  if (!/[AaPp]\.?[Mm]\.?$/.test(input)) {
    return { ok: false, error: `"${input}": add AM or PM (12-hour clock).` };
  }
  const m = PATTERN.exec(input);
  if (!m) return { ok: false, error: `"${input}" is not in the form ${TIME_FORMAT_HINT}.` };
  const [, y, mo, d, h, mi, s, ap] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = s === undefined ? 0 : Number(s);
  const meridiem = `${ap.toUpperCase()}M`;
  if (month < 1 || month > 12) return { ok: false, error: `"${input}": month must be 01–12.` };
  const daysInMonth = new Date(year, month, 0).getDate();
  if (day < 1 || day > daysInMonth) {
    return { ok: false, error: `"${input}": ${year}-${pad(month)} has no day ${day} (it has ${daysInMonth}).` };
  }
  if (hour < 1 || hour > 12) {
    return { ok: false, error: `"${input}": hour must be 1–12 on a 12-hour clock (midnight is 12:00 AM).` };
  }
  if (minute > 59) return { ok: false, error: `"${input}": minutes must be 00–59.` };
  if (second > 59) return { ok: false, error: `"${input}": seconds must be 00–59.` };
  const hour24 = to24Hour(hour, meridiem);
  const date = new Date(year, month - 1, day, hour24, minute, second);
  if (date.getHours() !== hour24 || date.getMinutes() !== minute || date.getDate() !== day) {
    return { ok: false, error: `"${input}" does not exist in local time (daylight-saving change).` };
  }
  return { ok: true, seconds: Math.floor(date.getTime() / 1000) };
}

/** Unix seconds → "YYYY-MM-DD hh:mm AM" in local time (seconds are dropped). */
export function format12h(seconds) {
  const date = new Date(seconds * 1000);
  const { hour, meridiem } = to12Hour(date.getHours());
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(hour)}:${pad(date.getMinutes())} ${meridiem}`;
}

/** As format12h, with `:ss` when `seconds` is not a whole minute (a shared link's exact times). */
export function format12hExact(seconds) {
  if (seconds % 60 === 0) return format12h(seconds);
  const date = new Date(seconds * 1000);
  const { hour, meridiem } = to12Hour(date.getHours());
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(hour)}:${pad(date.getMinutes())}:${pad(date.getSeconds())} ${meridiem}`;
}

/**
 * Validates the Start/End fields of the form. Empty means open (0). Returns
 * `{ ok: true, start, end }` in seconds, or `{ ok: false, errors: { start?, end?, range? } }`.
 */
export function validateRange(startText, endText) {
  const errors = {};
  let start = 0;
  let end = 0;
  if (startText && startText.trim() !== '') {
    const r = parse12h(startText);
    if (r.ok) start = r.seconds;
    else errors.start = `Start: ${r.error}`;
  }
  if (endText && endText.trim() !== '') {
    const r = parse12h(endText);
    if (r.ok) end = r.seconds;
    else errors.end = `End: ${r.error}`;
  }
  if (!errors.start && !errors.end && start !== 0 && end !== 0 && start >= end) {
    errors.range = start === end
      ? 'Start and End are the same time: the range is empty.'
      : 'Start is after End: swap them or pick an earlier start.';
  }
  if (Object.keys(errors).length > 0) return { ok: false, errors };
  return { ok: true, start, end };
}

/** Named quick ranges; `all` leaves both ends open. */
export const PRESETS = [
  { id: 'hour', label: 'Last hour', seconds: 3600 },
  { id: 'day', label: 'Last 24 hours', seconds: 86400 },
  { id: 'week', label: 'Last week', seconds: 7 * 86400 },
  { id: 'all', label: 'All data', seconds: null },
];

/** A preset's range in seconds relative to `nowSeconds` (`{ start: 0, end: 0 }` for all). */
export function presetRange(presetId, nowSeconds) {
  const preset = PRESETS.find((p) => p.id === presetId);
  if (!preset) throw new Error(`unknown preset ${presetId}`);
  if (preset.seconds === null) return { start: 0, end: 0 };
  const end = Math.floor(nowSeconds);
  return { start: end - preset.seconds, end };
}

/**
 * Unix seconds → the value of an `<input type="datetime-local">` in local time:
 * "YYYY-MM-DDTHH:mm", with ":ss" when `seconds` is not a whole minute.
 */
export function toDateTimeLocal(seconds) {
  const date = new Date(seconds * 1000);
  const minutes = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  return date.getSeconds() === 0 ? minutes : `${minutes}:${pad(date.getSeconds())}`;
}

/** A datetime-local value ("YYYY-MM-DDTHH:mm[:ss[.sss]]", local) → unix seconds, or null. */
export function fromDateTimeLocal(value) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?$/.exec(String(value ?? ''));
  if (!m) return null;
  const [, y, mo, d, h, mi, s = '0'] = m;
  const date = new Date(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  if (Number.isNaN(date.getTime())) return null;
  return Math.floor(date.getTime() / 1000);
}

/** The picker's value for a typed 12-hour field: '' while the text is empty or not a time. */
export function pickerValueFor(text) {
  const r = parse12h(text);
  return r.ok ? toDateTimeLocal(r.seconds) : '';
}

/** The typed 12-hour field for a picker value ('' when the picker was cleared). */
export function textForPicker(value) {
  const seconds = fromDateTimeLocal(value);
  return seconds === null ? '' : format12hExact(seconds);
}
