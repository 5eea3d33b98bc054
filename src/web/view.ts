/**
 * View helpers every dashboard section uses: query-string values, page numbers, dates in the merchant's
 * zone, form errors by field, posted tag names, phone numbers and status badges. Web plumbing, not a
 * feature: it imports no feature's values, so any feature's views and routers may use it.
 */
import { parsePhoneNumber } from 'libphonenumber-js/max';
import { AppError, ValidationError } from '../core/errors.ts';
import type { PaymentStatus } from '../features/checkout/index.ts';

import { formatDay, parseDay } from '../core/time.ts';

export { dateIn, dateTimeIn } from '../core/time.ts';

/** A coloured label (a link's status, the payments left). */
export interface Badge {
  label: string;
  tone: 'green' | 'amber' | 'grey' | 'red';
}

/** A query parameter's (first) value as a string, '' when absent. */
export const one = (v: unknown): string => (typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? v[0] : '');

/** A `page` parameter: a whole number from 1 (capped), else page 1. */
export function pageParam(v: unknown): number {
  const page = Number(one(v));
  return Number.isInteger(page) && page > 0 ? Math.min(page, 1_000_000) : 1;
}

/** The message for a date filter that names no day, with an example in the merchant's own format. */
export function dateProblem(label: string, locale: string): string {
  const example = formatDay('2026-01-31', locale);
  return example === '2026-01-31' ? `${label} must be a date such as 2026-01-31.` : `${label} must be a date such as ${example} (or 2026-01-31).`;
}

/**
 * A list's "from" and "to" date filters (both days included) as calendar days (YYYY-MM-DD), typed in
 * ISO or the merchant's format — a browser without a date picker sends what was typed. A value that
 * names no day, or a "to" before "from", is left out and named in `problems` by its field.
 */
export function readDayRange(
  query: Record<string, unknown>,
  locale: string,
  labels: { from: string; to: string },
): { from: string; to: string; problems: Partial<Record<'from' | 'to', string>> } {
  const problems: Partial<Record<'from' | 'to', string>> = {};
  const day = (field: 'from' | 'to') => {
    const typed = one(query[field]).trim();
    if (!typed) return '';
    const parsed = parseDay(typed.slice(0, 40), locale);
    if (!parsed) problems[field] = dateProblem(labels[field], locale);
    return parsed ?? '';
  };
  const from = day('from');
  let to = day('to');
  if (from && to && from > to) {
    problems.to = `${labels.to} is before ${labels.from}: choose a later date.`;
    to = '';
  }
  return { from, to, problems };
}

/** Page numbers to show: first, last, and two either side of the current one; null is a gap. */
export function pageWindow(page: number, pages: number): (number | null)[] {
  const out: (number | null)[] = [];
  for (let n = 1; n <= pages; n++) {
    if (n === 1 || n === pages || Math.abs(n - page) <= 2) out.push(n);
    else if (out[out.length - 1] !== null) out.push(null);
  }
  return out;
}

/**
 * A form error the merchant can fix, as messages by field: validation (422), a taken path (409) and an
 * immutable field are all shown on the form with 422. Anything else is not the form's business.
 */
export function formErrors(err: unknown): Record<string, string> | null {
  if (err instanceof ValidationError) return err.byField();
  if (err instanceof AppError && (err.status === 409 || err.status === 422) && err.errors.length) return new ValidationError(err.errors).byField();
  return null;
}

/** The tags a form posts: the ticked `tags` and the comma-separated `new_tags`, trimmed, each name once (case-insensitively). */
export function tagNamesFrom(body: Record<string, unknown>): string[] {
  const ticked = (Array.isArray(body.tags) ? body.tags : body.tags === undefined ? [] : [body.tags]).filter((x): x is string => typeof x === 'string');
  const typed = typeof body.new_tags === 'string' ? body.new_tags : '';
  const names = [...ticked, ...typed.split(',')].map((s) => s.trim()).filter(Boolean);
  const seen = new Set<string>();
  return names.filter((n) => !seen.has(n.toLowerCase()) && seen.add(n.toLowerCase()));
}

/** A stored E.164 number as people read it: "+31 6 12345678" (the number itself if it cannot be parsed). */
export function formatPhone(e164: string): string {
  try {
    return parsePhoneNumber(e164).formatInternational();
  } catch {
    return e164;
  }
}

/** A payment's status as a coloured label. */
export interface PaymentBadge {
  label: string;
  tone: 'green' | 'orange' | 'red' | 'grey';
}

const PAYMENT_BADGES: Record<PaymentStatus, PaymentBadge> = {
  paid: { label: 'Succeeded', tone: 'green' },
  failed: { label: 'Failed', tone: 'red' },
  voided: { label: 'Voided', tone: 'grey' },
  pending: { label: 'Incomplete', tone: 'grey' },
  authorized: { label: 'Authorizing', tone: 'orange' },
  refunded: { label: 'Refunded', tone: 'grey' },
  partially_refunded: { label: 'Partially refunded', tone: 'orange' },
};

/** The one place a payment status becomes words and a colour (Transactions, a payment, a link's Payments tab). */
export function paymentStatusBadge(status: PaymentStatus): PaymentBadge {
  return PAYMENT_BADGES[status] ?? { label: status, tone: 'grey' };
}

/** A team member as lists of who-made-what name them. */
export interface MemberRef {
  name: string | null;
  email: string;
  role: string;
  removed?: boolean;
}

/**
 * Who made something, as people read it: "Ada Lovelace (agent)", "API key “shop”", or "—" when
 * nobody was recorded (an import, a payer, or before members were recorded).
 */
export function madeByText(user: MemberRef | null | undefined, key: { name: string } | null | undefined): string {
  if (user) return `${user.name || user.email} (${user.role}${user.removed ? ', no longer on the team' : ''})`;
  if (key) return `API key “${key.name}”`;
  return '—';
}
