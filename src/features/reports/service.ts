/**
 * Reports → Reconciliation: the payment requests created in a date range of the merchant's time
 * zone, what was asked and what came of it, per currency (amounts in different currencies are never
 * added), conversion by channel and by source, the median time to pay, and every request as a row
 * with its payments' provider references and its audit trail.
 *
 * Every figure of the summary is the sum of the rows' figures (the tests check exactly that), and
 * both are read the same way: a chunk of requests at a time, each chunk's payments, refunds,
 * deliveries, views and creators in one query per kind — so a year of requests streams in flat memory
 * (the summary keeps one number per paid request, for the median).
 *
 * Figures of one request (minor units, its currency):
 *   requested    amount × uses
 *   collected    sum of its captured payments (paid, partially refunded, refunded)
 *   refunded     sum of succeeded refunds of those payments;  net = collected − refunded
 *   unpaid part  amount × (uses − paid uses), counted by the request's status now as
 *                outstanding (pending), expired or cancelled
 */
import { z } from 'zod';
import { ValidationError } from '../../core/errors.ts';
import type { Clock } from '../../core/clock.ts';
import { addDays, dayKeyIn, formatDay, formatDuration, parseDay, startOfDay } from '../../core/time.ts';
import type { Page } from '../../core/pagination.ts';
import type { Merchant, MerchantService } from '../merchants/index.ts';
import type { PaymentRequest, RequestService, RequestSource, RequestStatus } from '../requests/index.ts';
import type { PaymentQueries, RefundService } from '../checkout/index.ts';
import type { Analytics } from '../analytics/index.ts';
import type { DeliveryService } from '../deliveries/index.ts';
import type { ApiKeyService } from '../api-keys/index.ts';
import type { CustomerService } from '../customers/index.ts';
import { CAPTURED, createdBy, factsFor, trailOf, type RequestFacts, type TrailEntry } from './trail.ts';

export interface ReportDeps {
  clock: Clock;
  requests: Pick<RequestService, 'createdBetween' | 'eachCreatedBetween'>;
  payments: Pick<PaymentQueries, 'forLinks'>;
  refunds: Pick<RefundService, 'forPayments'>;
  analytics: Pick<Analytics, 'viewsForLinks'>;
  deliveries: Pick<DeliveryService, 'forLinks' | 'channels'>;
  apiKeys: Pick<ApiKeyService, 'refsByKeys'>;
  merchants: Pick<MerchantService, 'userRefsByKeys'>;
  customers: Pick<CustomerService, 'summariesByKeys'>;
}

/** The longest range a report covers (a year and a day: a leap year's whole year fits). */
export const MAX_RANGE_DAYS = 366;
/** Views listed in a trail per request (the newest; `views` on the row counts them all). */
export const TRAIL_VIEWS = 100;
/** Requests read per chunk. */
const CHUNK = 200;

/** A report's dates as typed (YYYY-MM-DD, both days included) and the UTC instants they stand for. */
export interface ReportRange {
  from: string;
  to: string;
  timeZone: string;
  /** Midnight starting `from`, and midnight after `to`, in the merchant's zone. */
  start: Date;
  end: Date;
}

const rangeSchema = z.object({ from: z.string().max(40).optional(), to: z.string().max(40).optional() });

/** This month in the zone: its first and last day. */
export function thisMonth(now: Date, timeZone: string): { from: string; to: string } {
  const today = dayKeyIn(now, timeZone);
  const from = `${today.slice(0, 7)}-01`;
  const [y, m] = today.split('-').map(Number);
  return { from, to: addDays(new Date(Date.UTC(y, m, 1)).toISOString().slice(0, 10), -1) };
}

/**
 * Reads `from` / `to` (the merchant's calendar days, both included); a missing one defaults to this
 * month's first or last day. Dates are YYYY-MM-DD, or with `locale` (the dashboard) also typed in the
 * merchant's format (31.03.2026 in de-DE); the API reads ISO only. Bad input → ValidationError by field (422).
 */
export function readRange(raw: unknown, timeZone: string, now: Date, locale?: string): ReportRange {
  const q = rangeSchema.safeParse(raw ?? {});
  const given = q.success ? q.data : {};
  const month = thisMonth(now, timeZone);
  const typed = (v: string | undefined) => (typeof v === 'string' && v.trim() ? v.trim() : null);
  const fromTyped = typed(given.from);
  const toTyped = typed(given.to);
  const from = fromTyped === null ? month.from : parseDay(fromTyped, locale) ?? '';
  const to = toTyped === null ? month.to : parseDay(toTyped, locale) ?? '';
  const errors = [];
  const start = from ? startOfDay(from, timeZone) : null;
  const end = to ? startOfDay(to, timeZone, 1) : null;
  const example = (day: string) => (locale && formatDay(day, locale) !== day ? `${formatDay(day, locale)} (or ${day})` : day);
  if (!q.success || !start) errors.push({ field: 'from', code: 'invalid_date', message: `Enter the first day as a date such as ${example('2026-03-01')}.` });
  if (!q.success || !end) errors.push({ field: 'to', code: 'invalid_date', message: `Enter the last day as a date such as ${example('2026-03-31')}.` });
  if (start && end) {
    if (to < from) errors.push({ field: 'to', code: 'invalid_range', message: 'The last day must be on or after the first day.' });
    else if (addDays(from, MAX_RANGE_DAYS) <= to) errors.push({ field: 'to', code: 'range_too_long', message: `A report covers at most ${MAX_RANGE_DAYS} days: pick a shorter range.` });
  }
  if (errors.length) throw new ValidationError(errors);
  return { from, to, timeZone, start: start!, end: end! };
}

/** The amounts of a request, and of a currency's requests added up (minor units; see the top of this file). */
export const AMOUNT_KEYS = ['requested', 'collected', 'refunded', 'net', 'outstanding', 'expired', 'cancelled'] as const;
export type Amounts = Record<(typeof AMOUNT_KEYS)[number], number>;

/** One request's figures, as the report's row shows them. */
export interface ReportRow extends Amounts {
  facts: RequestFacts;
  request: PaymentRequest;
  status: RequestStatus;
  currency: string;
  /** Channels it was sent on (not receipts), by id. */
  channels: string[];
  /** Source bucket: `dashboard`, `api:<key id>` (or `api`), `text_to_pay`, `import`. */
  sourceKey: string;
  sourceLabel: string;
  createdBy: string;
  views: number;
  attempts: number;
  paidAt: Date | null;
  timeToPayMs: number | null;
  /** The captured payments: their ids, providers and provider references (what the provider's statement shows). */
  captured: { id: string; provider: string; providerRef: string | null; amount: number }[];
}

export interface CurrencyTotals extends Amounts {
  currency: string;
}

export interface Bucket {
  key: string;
  label: string;
  initiated: number;
  completed: number;
  /** completed / initiated (0..1). */
  rate: number;
}

export interface Summary {
  range: ReportRange;
  initiated: number;
  completed: number;
  byStatus: Record<RequestStatus, number>;
  currencies: CurrencyTotals[];
  byChannel: Bucket[];
  bySource: Bucket[];
  /** The API key of each `api:<id>` source bucket. */
  apiKeys: Map<string, { id: string; name: string }>;
  timeToPay: { paid: number; medianMs: number | null };
}

/** Requests sent on no channel (the merchant shared the link themselves). */
export const NOT_SENT = 'none';

export function createReportService(deps: ReportDeps) {
  const label = (id: string) => (id === NOT_SENT ? 'Not sent (link shared by hand)' : deps.deliveries.channels.label(id));

  function rowOf(f: RequestFacts): ReportRow {
    const r = f.request;
    const captured = f.payments.filter((p) => CAPTURED.includes(p.status));
    const collected = captured.reduce((s, p) => s + p.amount, 0);
    const refunded = captured.reduce((s, p) => s + p.amountRefunded, 0);
    const unpaid = r.link.amount * Math.max(0, r.link.uses - r.link.paidCount);
    const lastPaid = captured.reduce<Date | null>((at, p) => (p.paidAt && (!at || p.paidAt > at) ? p.paidAt : at), null);
    const paidAt = r.paidAt ?? (r.status === 'paid' ? lastPaid : null);
    const source = sourceOf(r.source, f.apiKey);
    return {
      facts: f,
      request: r,
      status: r.status,
      currency: r.link.currency,
      requested: r.link.amount * r.link.uses,
      collected,
      refunded,
      net: collected - refunded,
      outstanding: r.status === 'pending' ? unpaid : 0,
      expired: r.status === 'expired' ? unpaid : 0,
      cancelled: r.status === 'cancelled' ? unpaid : 0,
      channels: [...new Set(f.deliveries.filter((d) => d.kind !== 'receipt').map((d) => d.channel))].sort(),
      sourceKey: source.key,
      sourceLabel: source.label,
      createdBy: createdBy(f),
      views: r.link.views,
      attempts: f.payments.length,
      paidAt,
      timeToPayMs: paidAt ? Math.max(0, paidAt.getTime() - r.createdAt.getTime()) : null,
      captured: captured.map((p) => ({ id: p.id, provider: p.provider, providerRef: p.providerRef, amount: p.amount })),
    };
  }

  async function rowsOf(merchantKey: number, rs: PaymentRequest[], viewsPerRequest: number): Promise<ReportRow[]> {
    return (await factsFor(deps, merchantKey, rs, { viewsPerRequest })).map(rowOf);
  }

  const service = {
    channelLabel: label,

    /** The trails of these requests (one merchant's), oldest entry first, by request id. */
    async trails(merchant: Pick<Merchant, 'key'>, rs: PaymentRequest[], opts: { viewsPerRequest?: number } = {}): Promise<Map<string, { trail: TrailEntry[]; moreViews: boolean }>> {
      const perRequest = opts.viewsPerRequest ?? TRAIL_VIEWS;
      const facts = await factsFor(deps, merchant.key, rs, { viewsPerRequest: perRequest });
      return new Map(facts.map((f) => [f.request.id, { trail: trailOf(f, label), moreViews: f.request.link.views > f.views.length && f.views.length >= perRequest }]));
    },

    /** A page of rows, oldest first, after the request `after` (the dashboard's table). */
    async rowsPage(merchant: Pick<Merchant, 'key'>, range: ReportRange, opts: { after?: string | null; limit: number }): Promise<Page<ReportRow>> {
      const page = await deps.requests.createdBetween(merchant.key, { from: range.start, before: range.end }, opts);
      return { data: await rowsOf(merchant.key, page.data, 0), has_more: page.has_more };
    },

    /** Every row with its trail, a chunk at a time (the CSV export streams these). */
    async *eachRow(merchant: Pick<Merchant, 'key'>, range: ReportRange, opts: { viewsPerRequest?: number } = {}): AsyncGenerator<{ row: ReportRow; trail: TrailEntry[] }[]> {
      for await (const chunk of deps.requests.eachCreatedBetween(merchant.key, { from: range.start, before: range.end }, CHUNK)) {
        const rows = await rowsOf(merchant.key, chunk, opts.viewsPerRequest ?? TRAIL_VIEWS);
        yield rows.map((row) => ({ row, trail: trailOf(row.facts, label) }));
      }
    },

    /** The summary of the range: every row read once, a chunk at a time, and added up. */
    async summary(merchant: Pick<Merchant, 'key'>, range: ReportRange): Promise<Summary> {
      const byStatus: Record<RequestStatus, number> = { pending: 0, paid: 0, expired: 0, cancelled: 0 };
      const currencies = new Map<string, CurrencyTotals>();
      const channels = new Map<string, Bucket>();
      const sources = new Map<string, Bucket>();
      const apiKeys = new Map<string, { id: string; name: string }>();
      const durations: number[] = [];
      const count = (buckets: Map<string, Bucket>, key: string, name: string, paid: boolean) => {
        const b = buckets.get(key) ?? { key, label: name, initiated: 0, completed: 0, rate: 0 };
        b.initiated += 1;
        if (paid) b.completed += 1;
        buckets.set(key, b);
      };
      let initiated = 0;
      for await (const chunk of deps.requests.eachCreatedBetween(merchant.key, { from: range.start, before: range.end }, CHUNK)) {
        for (const row of await rowsOf(merchant.key, chunk, 0)) {
          initiated += 1;
          byStatus[row.status] += 1;
          const t = currencies.get(row.currency) ?? { currency: row.currency, ...(Object.fromEntries(AMOUNT_KEYS.map((k) => [k, 0])) as Amounts) };
          for (const k of AMOUNT_KEYS) t[k] += row[k];
          currencies.set(row.currency, t);
          const paid = row.status === 'paid';
          for (const c of row.channels.length ? row.channels : [NOT_SENT]) count(channels, c, label(c), paid);
          count(sources, row.sourceKey, row.sourceLabel, paid);
          if (row.facts.apiKey && row.request.source === 'api') apiKeys.set(row.sourceKey, row.facts.apiKey);
          if (paid && row.timeToPayMs !== null) durations.push(row.timeToPayMs);
        }
      }
      const sorted = (m: Map<string, Bucket>) =>
        [...m.values()].map((b) => ({ ...b, rate: b.initiated ? b.completed / b.initiated : 0 })).sort((a, b) => b.initiated - a.initiated || a.label.localeCompare(b.label, 'en'));
      return {
        range,
        initiated,
        completed: byStatus.paid,
        byStatus,
        currencies: [...currencies.values()].sort((a, b) => a.currency.localeCompare(b.currency)),
        byChannel: sorted(channels),
        bySource: sorted(sources),
        apiKeys,
        timeToPay: { paid: durations.length, medianMs: median(durations) },
      };
    },
  };
  return service;
}

function sourceOf(source: RequestSource, apiKey: { id: string; name: string } | null): { key: string; label: string } {
  if (source === 'api') return apiKey ? { key: `api:${apiKey.id}`, label: `API key “${apiKey.name}”` } : { key: 'api', label: 'API' };
  return { key: source, label: { dashboard: 'Dashboard', text_to_pay: 'Text-to-Pay', import: 'CSV import' }[source] ?? source };
}

/** The middle value (the mean of the two middle ones for an even count), or null for none. */
export function median(values: number[]): number | null {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : Math.round((s[mid - 1] + s[mid]) / 2);
}

/** The API shape of a summary (API.md "Reconciliation"). */
export function summaryJson(s: Summary) {
  const bucket = (b: Bucket) => ({ initiated: b.initiated, completed: b.completed, conversion_rate: Math.round(b.rate * 10_000) / 10_000 });
  return {
    object: 'reconciliation',
    from: s.range.from,
    to: s.range.to,
    time_zone: s.range.timeZone,
    starts_at: s.range.start.toISOString(),
    ends_before: s.range.end.toISOString(),
    requests: { initiated: s.initiated, completed: s.completed, ...s.byStatus },
    currencies: s.currencies.map((c) => ({ ...c })),
    conversion: {
      by_channel: s.byChannel.map((b) => ({ channel: b.key, label: b.label, ...bucket(b) })),
      by_source: s.bySource.map((b) => ({ source: b.key.startsWith('api') ? 'api' : b.key, api_key: s.apiKeys.get(b.key) ?? null, label: b.label, ...bucket(b) })),
    },
    time_to_pay: { paid: s.timeToPay.paid, median_seconds: s.timeToPay.medianMs === null ? null : Math.round(s.timeToPay.medianMs / 1000), median: s.timeToPay.medianMs === null ? null : formatDuration(s.timeToPay.medianMs) },
  };
}

export type ReportService = ReturnType<typeof createReportService>;
