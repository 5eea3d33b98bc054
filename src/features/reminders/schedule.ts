/**
 * When reminders fall due. Reminder n of a plan is due n intervals after its anchor (the first
 * send), so a late or postponed reminder does not shift the ones after it. Nothing is sent in the
 * merchant's quiet hours (21:00–08:00 in their time zone): a reminder due then waits for 08:00.
 */
import { offsetAt } from '../../core/time.ts';

export const FREQUENCIES = ['daily', 'every_2_days', 'every_3_days', 'weekly', 'monthly'] as const;
export type Frequency = (typeof FREQUENCIES)[number];

export const FREQUENCY_LABELS: Record<Frequency, string> = {
  daily: 'Daily',
  every_2_days: 'Every 2 days',
  every_3_days: 'Every 3 days',
  weekly: 'Weekly',
  monthly: 'Monthly',
};

export const REMINDERS_MAX = 50;
export const QUIET_FROM_HOUR = 21;
export const QUIET_UNTIL_HOUR = 8;

const DAY = 86_400_000;
const DAYS: Record<Exclude<Frequency, 'monthly'>, number> = { daily: 1, every_2_days: 2, every_3_days: 3, weekly: 7 };

/**
 * Reminder n's nominal time: anchor + n intervals, counted in the merchant's wall-clock time (so a
 * daily reminder stays at 10:00 across a daylight-saving change). Monthly keeps the day of month,
 * clamped to the month's last day (31 Jan → 28/29 Feb → 31 Mar).
 */
export function nominalDue(anchor: Date, frequency: Frequency, n: number, timeZone: string): Date {
  const wall = new Date(anchor.getTime() + offsetAt(anchor.getTime(), timeZone));
  let target: number;
  if (frequency === 'monthly') {
    const y = wall.getUTCFullYear();
    const m = wall.getUTCMonth() + n;
    const lastDay = new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
    target = Date.UTC(y, m, Math.min(wall.getUTCDate(), lastDay), wall.getUTCHours(), wall.getUTCMinutes(), wall.getUTCSeconds(), wall.getUTCMilliseconds());
  } else {
    target = wall.getTime() + n * DAYS[frequency] * DAY;
  }
  return fromWall(target, timeZone);
}

/** The UTC instant at which the wall clock in `timeZone` shows `wall` (ms of a UTC-encoded wall time). */
function fromWall(wall: number, timeZone: string): Date {
  let t = wall - offsetAt(wall, timeZone);
  t = wall - offsetAt(t, timeZone);
  return new Date(t);
}

/** The merchant's wall-clock hour at `at`. */
export function localHour(at: Date, timeZone: string): number {
  return new Date(at.getTime() + offsetAt(at.getTime(), timeZone)).getUTCHours();
}

export function inQuietHours(at: Date, timeZone: string): boolean {
  const h = localHour(at, timeZone);
  return h >= QUIET_FROM_HOUR || h < QUIET_UNTIL_HOUR;
}

/** `at`, or — when it falls in quiet hours — the next 08:00 in the merchant's time zone. */
export function outsideQuietHours(at: Date, timeZone: string): Date {
  if (!inQuietHours(at, timeZone)) return at;
  const wall = new Date(at.getTime() + offsetAt(at.getTime(), timeZone));
  const morning = Date.UTC(wall.getUTCFullYear(), wall.getUTCMonth(), wall.getUTCDate() + (wall.getUTCHours() >= QUIET_FROM_HOUR ? 1 : 0), QUIET_UNTIL_HOUR);
  return fromWall(morning, timeZone);
}

/** When reminder n goes out: its nominal time, moved out of quiet hours. */
export function dueAt(anchor: Date, frequency: Frequency, n: number, timeZone: string): Date {
  return outsideQuietHours(nominalDue(anchor, frequency, n, timeZone), timeZone);
}
