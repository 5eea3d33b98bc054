/**
 * Times as merchants read them: stored in UTC, shown in the merchant's time zone, with "2 hours ago"
 * style relative times. Day arithmetic goes through the zone's real offsets (daylight saving included).
 */

/** The regional format pages use when the merchant chose none (what every page used before there was a choice). */
export const DEFAULT_LOCALE = 'en-GB';

export function dateIn(d: Date, timeZone: string, locale = DEFAULT_LOCALE): string {
  return d.toLocaleDateString(locale, { timeZone, dateStyle: 'medium' });
}

export function dateTimeIn(d: Date, timeZone: string, locale = DEFAULT_LOCALE): string {
  return d.toLocaleString(locale, { timeZone, dateStyle: 'medium', timeStyle: 'short' });
}

const numericDays = new Map<string, Intl.DateTimeFormat>();
/** The locale's all-digits date (31.12.2026, 12/31/2026, 2026/12/31), on UTC calendar days. */
function numericDay(locale: string): Intl.DateTimeFormat {
  let f = numericDays.get(locale);
  if (!f) numericDays.set(locale, (f = new Intl.DateTimeFormat(locale, { timeZone: 'UTC', year: 'numeric', month: '2-digit', day: '2-digit' })));
  return f;
}

const SAMPLE_DAY = Date.UTC(2026, 11, 31);
type DayPart = 'day' | 'month' | 'year';

/** The order a locale writes a date's parts in, from how it writes one. */
function dayOrder(locale: string): DayPart[] {
  return numericDay(locale)
    .formatToParts(SAMPLE_DAY)
    .map((p) => p.type)
    .filter((t): t is DayPart => t === 'day' || t === 'month' || t === 'year');
}

/** A calendar day (YYYY-MM-DD) as the locale writes it in digits: "31.12.2026" in de-DE, "12/31/2026" in en-US. */
export function formatDay(day: string, locale: string): string {
  const [y, m, d] = day.split('-').map(Number);
  return numericDay(locale).format(Date.UTC(y, m - 1, d));
}

/** What a typed date looks like in the locale, for hints and placeholders: "dd.mm.yyyy", "mm/dd/yyyy". */
export function dayPattern(locale: string): string {
  const words: Record<string, string> = { day: 'dd', month: 'mm', year: 'yyyy' };
  return numericDay(locale)
    .formatToParts(SAMPLE_DAY)
    .map((p) => words[p.type] ?? p.value)
    .join('');
}

/**
 * The calendar day (YYYY-MM-DD) typed: exactly 2026-12-31 without `locale`; with it, a person's way
 * too — the locale's digits-only order with any of . / - or spaces between (31.12.2026 in de-DE,
 * 12/31/2026 in en-US, 31/12/2026 in en-GB; a leading four-digit year is read year-month-day, and one
 * digit for a day or month will do). A two-digit
 * year is refused rather than guessed at. Null when it is no real day (2026-02-30) or no date at all.
 */
export function parseDay(text: string, locale?: string): string | null {
  const s = text.trim();
  // Without a locale (the API) only the one exact form: no guessing at what a program meant.
  if (!locale && !/^\d{4}-\d{2}-\d{2}$/.test(s)) return null;
  const m = /^(\d{1,4})[./\- ]{1,2}(\d{1,2})[./\- ]{1,2}(\d{1,4})\.?$/.exec(s);
  if (!m) return null;
  const parts = [m[1], m[2], m[3]];
  let order: DayPart[];
  if (parts[0].length === 4) order = ['year', 'month', 'day'];
  else if (locale) order = dayOrder(locale);
  else return null;
  const of = (t: DayPart) => parts[order.indexOf(t)];
  if (of('year').length !== 4 || of('month').length > 2 || of('day').length > 2) return null;
  const [y, mo, d] = [Number(of('year')), Number(of('month')), Number(of('day'))];
  const check = new Date(Date.UTC(y, mo - 1, d));
  if (y < 1000 || check.getUTCFullYear() !== y || check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d) return null;
  return `${of('year')}-${String(mo).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
}

/** Milliseconds to add to UTC to get the wall-clock time in `timeZone` at `instant`. */
const offsetFormats = new Map<string, Intl.DateTimeFormat>();
function formattedOffset(instant: number, timeZone: string): number {
  // A formatter costs ~70 µs to build and ~5 µs to use: one per zone (an invalid zone throws first).
  let f = offsetFormats.get(timeZone);
  if (!f) offsetFormats.set(timeZone, (f = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' })));
  const parts = f.formatToParts(new Date(instant));
  const n = (type: string) => Number(parts.find((p) => p.type === type)!.value);
  return Date.UTC(n('year'), n('month') - 1, n('day'), n('hour'), n('minute'), n('second')) - Math.floor(instant / 1000) * 1000;
}

const HOUR_MS = 3_600_000;
/** Offsets by zone and UTC hour, for hours without a change of offset in them (`null`: there is one). */
const hourOffsets = new Map<string, number | null>();

/**
 * The same as asking Intl each time (~5 µs, and a reminder sweep asks four times per plan), kept per
 * zone and UTC hour: an hour whose first and last second have the same offset has it throughout
 * (no zone changes its offset twice within an hour); an hour with a change is asked about each time.
 */
export function offsetAt(instant: number, timeZone: string): number {
  const hour = Math.floor(instant / HOUR_MS);
  const key = `${timeZone}|${hour}`;
  let known = hourOffsets.get(key);
  if (known === undefined) {
    const start = formattedOffset(hour * HOUR_MS, timeZone);
    known = start === formattedOffset((hour + 1) * HOUR_MS - 1, timeZone) ? start : null;
    if (hourOffsets.size >= 20_000) hourOffsets.clear();
    hourOffsets.set(key, known);
  }
  return known ?? formattedOffset(instant, timeZone);
}

/** Midnight at the start of `date` (YYYY-MM-DD) in `timeZone`, as a UTC instant; null if not a date. */
export function startOfDay(date: string, timeZone: string, plusDays = 0): Date | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!m) return null;
  const wall = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + plusDays);
  const check = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  if (check.getUTCMonth() !== Number(m[2]) - 1 || check.getUTCDate() !== Number(m[3])) return null;
  // Two passes settle the offset across a daylight-saving change.
  let t = wall - offsetAt(wall, timeZone);
  t = wall - offsetAt(t, timeZone);
  return new Date(t);
}


const dayKeyFormats = new Map<string, Intl.DateTimeFormat>();
/** The calendar date (YYYY-MM-DD) of `instant` in `timeZone`. */
export function dayKeyIn(instant: Date | number, timeZone: string): string {
  let f = dayKeyFormats.get(timeZone);
  if (!f) dayKeyFormats.set(timeZone, (f = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' })));
  return f.format(instant);
}

/** Adds whole days to a YYYY-MM-DD date. */
export function addDays(day: string, n: number): string {
  const [y, m, d] = day.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
}

const UNITS: [Intl.RelativeTimeFormatUnit, number][] = [
  ['year', 365 * 86_400_000],
  ['month', 30 * 86_400_000],
  ['week', 7 * 86_400_000],
  ['day', 86_400_000],
  ['hour', 3_600_000],
  ['minute', 60_000],
];
const relative = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });

/** "just now", "5 minutes ago", "2 hours ago", "yesterday", "3 weeks ago" (relative to `now`). */
export function timeAgo(then: Date, now: Date): string {
  const diff = then.getTime() - now.getTime();
  if (Math.abs(diff) < 45_000) return 'just now';
  for (const [unit, ms] of UNITS) {
    if (Math.abs(diff) >= ms || unit === 'minute') return relative.format(Math.round(diff / ms), unit);
  }
  return 'just now';
}

/** A length of time as people say it: "45 s", "12 min", "3 h 5 min", "2 d 4 h" (rounded down to the unit shown). */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 24) return min % 60 ? `${h} h ${min % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

const stampFormats = new Map<string, Intl.DateTimeFormat>();
/** "2026-03-02 10:05" — the wall-clock time of `d` in `timeZone`, sortable, for exports read by people. */
export function stampIn(d: Date, timeZone: string): string {
  let f = stampFormats.get(timeZone);
  if (!f) stampFormats.set(timeZone, (f = new Intl.DateTimeFormat('sv-SE', { timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' })));
  return f.format(d);
}
