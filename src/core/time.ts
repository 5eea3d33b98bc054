/**
 * Times as merchants read them: stored in UTC, shown in the merchant's time zone, with "2 hours ago"
 * style relative times. Day arithmetic goes through the zone's real offsets (daylight saving included).
 */

export function dateIn(d: Date, timeZone: string): string {
  return d.toLocaleDateString('en-GB', { timeZone, dateStyle: 'medium' });
}

export function dateTimeIn(d: Date, timeZone: string): string {
  return d.toLocaleString('en-GB', { timeZone, dateStyle: 'medium', timeStyle: 'short' });
}

/** Milliseconds to add to UTC to get the wall-clock time in `timeZone` at `instant`. */
const offsetFormats = new Map<string, Intl.DateTimeFormat>();
export function offsetAt(instant: number, timeZone: string): number {
  // A formatter costs ~70 µs to build and ~5 µs to use: one per zone (an invalid zone throws first).
  let f = offsetFormats.get(timeZone);
  if (!f) offsetFormats.set(timeZone, (f = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' })));
  const parts = f.formatToParts(new Date(instant));
  const n = (type: string) => Number(parts.find((p) => p.type === type)!.value);
  return Date.UTC(n('year'), n('month') - 1, n('day'), n('hour'), n('minute'), n('second')) - Math.floor(instant / 1000) * 1000;
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
