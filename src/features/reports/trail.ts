/**
 * What happened to a payment request, in order — its audit trail: created (by which dashboard user or
 * API key, or by what), each message sent and its outcome, each time its URL was opened, each payment
 * attempt (with the provider's reference), paid, each refund, expired, cancelled, refreshed. Built for
 * a batch of requests at once (the reconciliation report walks thousands): every kind of fact is read
 * in one query per batch from the feature that owns it.
 *
 * The API (`GET /payment_requests/:id/events`), the request's dashboard page and the report's CSV all
 * read trails from here.
 */
import { formatMoney } from '../../core/money.ts';
import type { PaymentRequest } from '../requests/index.ts';
import { paymentJson, refundJson, type PaymentView, type Refund } from '../checkout/index.ts';
import { deliveryJson, type Delivery } from '../deliveries/index.ts';
import { viewJson, type LinkView } from '../analytics/index.ts';
import type { CustomerSummary } from '../customers/index.ts';
import type { ReportDeps } from './service.ts';
import { madeByText } from '../../web/view.ts';

export type TrailType = 'created' | 'delivery' | 'view' | 'payment' | 'paid' | 'refunded' | 'expired' | 'cancelled' | 'refreshed';

export interface TrailEntry {
  type: TrailType;
  at: Date;
  /** One line for people (the request page, the CSV): "Sent by Email to kim@example.test — sent". */
  text: string;
  /** The API's fields of this entry (beside `type` and `at`). */
  data: Record<string, unknown>;
}

/** Everything known about one request, read in batch. */
export interface RequestFacts {
  request: PaymentRequest;
  customer: CustomerSummary | null;
  /** Every payment attempt, oldest first. */
  payments: PaymentView[];
  /** Refunds by payment key, oldest first. */
  refunds: Map<number, Refund[]>;
  deliveries: Delivery[];
  /** The newest stored views (at most the batch's `viewsPerRequest`), oldest first. */
  views: LinkView[];
  apiKey: { id: string; name: string } | null;
  user: { id: string; name: string | null; email: string; role: string; removed: boolean } | null;
  /** Who asked for each refund ("Ada (admin)", "API key “shop”"), by refund key; absent: nobody recorded. */
  refundBy: Map<number, string>;
}

/** Payment statuses whose money was taken (refunded ones too: the refund is its own line). */
export const CAPTURED: readonly PaymentView['status'][] = ['paid', 'partially_refunded', 'refunded'];

/** At one instant: what caused what (created before its first message, a payment before its receipt). */
const ORDER: TrailType[] = ['created', 'view', 'payment', 'paid', 'refunded', 'delivery', 'expired', 'cancelled', 'refreshed'];

const SOURCES: Record<string, string> = { dashboard: 'on the dashboard', api: 'through the API', text_to_pay: 'by Text-to-Pay', import: 'by a CSV import' };

/** Reads the facts of these requests (all of one merchant), one query per kind of fact. */
export async function factsFor(deps: ReportDeps, merchantKey: number, rs: PaymentRequest[], opts: { viewsPerRequest: number }): Promise<RequestFacts[]> {
  if (!rs.length) return [];
  const linkKeys = rs.map((r) => r.link.key);
  const [customers, payments, deliveries, views, keys, users] = await Promise.all([
    deps.customers.summariesByKeys(rs.flatMap((r) => (r.link.customerKey === null ? [] : [r.link.customerKey]))),
    deps.payments.forLinks(merchantKey, linkKeys),
    deps.deliveries.forLinks(linkKeys),
    opts.viewsPerRequest > 0 ? deps.analytics.viewsForLinks(linkKeys, opts.viewsPerRequest) : Promise.resolve(new Map<number, LinkView[]>()),
    deps.apiKeys.refsByKeys(rs.flatMap((r) => (r.apiKeyKey === null ? [] : [r.apiKeyKey]))),
    deps.merchants.userRefsByKeys(rs.flatMap((r) => (r.createdByUserKey === null ? [] : [r.createdByUserKey]))),
  ]);
  const refunds = await deps.refunds.forPayments([...payments.values()].flat().map((p) => p.key));
  const allRefunds = [...refunds.values()].flat();
  const [refundUsers, refundKeys] = await Promise.all([
    deps.merchants.userRefsByKeys(allRefunds.flatMap((x) => (x.createdByUserKey === null ? [] : [x.createdByUserKey]))),
    deps.apiKeys.refsByKeys(allRefunds.flatMap((x) => (x.apiKeyKey === null ? [] : [x.apiKeyKey]))),
  ]);
  const refundBy = new Map(
    allRefunds
      .filter((x) => x.createdByUserKey !== null || x.apiKeyKey !== null)
      .map((x) => [x.key, madeByText(x.createdByUserKey === null ? null : refundUsers.get(x.createdByUserKey), x.apiKeyKey === null ? null : refundKeys.get(x.apiKeyKey))]),
  );
  return rs.map((r) => ({
    request: r,
    customer: r.link.customerKey === null ? null : customers.get(r.link.customerKey) ?? null,
    payments: payments.get(r.link.key) ?? [],
    refunds,
    deliveries: deliveries.get(r.link.key) ?? [],
    views: views.get(r.link.key) ?? [],
    apiKey: r.apiKeyKey === null ? null : keys.get(r.apiKeyKey) ?? null,
    user: r.createdByUserKey === null ? null : users.get(r.createdByUserKey) ?? null,
    refundBy,
  }));
}

/** Who created it, as people read it: "on the dashboard by Jane Doe", "through the API with the key “ci”". */
export function createdBy(f: Pick<RequestFacts, 'request' | 'apiKey' | 'user'>): string {
  const r = f.request;
  if (r.source === 'api' && f.apiKey) return `through the API with the key “${f.apiKey.name}”`;
  if (r.source === 'dashboard' && f.user) return `on the dashboard by ${madeByText(f.user, null)}`;
  if (r.source === 'text_to_pay' && f.user) return `by Text-to-Pay, by ${madeByText(f.user, null)}`;
  return SOURCES[r.source] ?? r.source;
}

/** A delivery's channel label (the channel's own name; the id when it is no longer installed). */
type Label = (channelId: string) => string;

function deliveryText(d: Delivery, label: Label): string {
  const what = d.kind === 'receipt' ? 'Receipt' : d.kind === 'reminder' ? `Reminder ${d.seq}` : d.kind === 'expiry' ? 'Last reminder before expiry' : 'Request';
  const status =
    d.kind === 'expiry' && d.status === 'queued' && d.attempts === 0 ? 'scheduled' : d.status === 'sending' ? 'queued' : d.status === 'sent' && d.kept ? 'kept in the Outbox, not delivered (no real channel configured)' : d.status;
  return `${what} by ${label(d.channel)} to ${d.to} — ${status}${d.status === 'failed' && d.error ? ` (${d.error})` : ''}`;
}

function paymentText(p: PaymentView): string {
  const money = formatMoney(p.amount, p.currency);
  const ref = p.providerRef ? `, ref ${p.providerRef}` : '';
  if (CAPTURED.includes(p.status)) return `Payment of ${money} taken by ${p.provider}${ref}`;
  if (p.status === 'failed') return `Payment attempt of ${money} by ${p.provider} failed${p.failureCode ? ` (${p.failureCode})` : ''}`;
  if (p.status === 'voided') return `Payment attempt of ${money} by ${p.provider} voided (not charged)${ref}`;
  return `Payment attempt of ${money} by ${p.provider} — ${p.status}${ref}`;
}

/** The trail of one request, oldest first. */
export function trailOf(f: RequestFacts, label: Label): TrailEntry[] {
  const r = f.request;
  const who = createdBy(f);
  const trail: TrailEntry[] = [
    {
      type: 'created',
      at: r.createdAt,
      text: `Created ${who}${r.refreshedFrom ? ` (a new link for ${r.refreshedFrom})` : ''}`,
      data: { source: r.source, api_key: f.apiKey, user: f.user, refreshed_from: r.refreshedFrom },
    },
    // The last reminder before expiry is written with the request but belongs where it is (or was) due.
    ...f.deliveries.map((d): TrailEntry => ({ type: 'delivery', at: d.kind === 'expiry' ? d.sentAt ?? d.nextAttemptAt : d.createdAt, text: deliveryText(d, label), data: { delivery: deliveryJson(d) } })),
    ...f.views.map((v): TrailEntry => ({ type: 'view', at: v.viewedAt, text: `Opened${v.browser ? ` in ${v.browser}${v.os ? ` on ${v.os}` : ''}` : ''}`, data: { view: viewJson(v) } })),
  ];
  for (const p of f.payments) {
    const refunds = f.refunds.get(p.key) ?? [];
    trail.push({ type: 'payment', at: p.createdAt, text: paymentText(p), data: { payment: { ...paymentJson(p), provider_ref: p.providerRef, refunds: refunds.map((x) => refundJson(x, p.id)) } } });
    for (const x of refunds) {
      const money = formatMoney(x.amount, x.currency);
      const text = x.status === 'succeeded' ? `Refunded ${money}` : x.status === 'pending' ? `Refund of ${money} pending` : `Refund of ${money} failed`;
      const by = f.refundBy.get(x.key);
      trail.push({ type: 'refunded', at: x.createdAt, text: `${text}${by ? ` by ${by}` : ''}${x.providerRef ? `, ref ${x.providerRef}` : ''}${x.reason ? ` — ${x.reason}` : ''}`, data: { refund: { ...refundJson(x, p.id), provider_ref: x.providerRef } } });
    }
  }
  if (r.paidAt) trail.push({ type: 'paid', at: r.paidAt, text: 'Paid in full', data: {} });
  if (r.status === 'expired' && r.link.expiresAt) trail.push({ type: 'expired', at: r.link.expiresAt, text: 'Expired unpaid', data: {} });
  if (r.cancelledAt) trail.push({ type: 'cancelled', at: r.cancelledAt, text: 'Cancelled', data: {} });
  if (r.refreshedTo && r.refreshedToAt) trail.push({ type: 'refreshed', at: r.refreshedToAt, text: `The customer asked for a new link: ${r.refreshedTo}`, data: { refreshed_to: r.refreshedTo } });
  trail.sort((a, b) => a.at.getTime() - b.at.getTime() || ORDER.indexOf(a.type) - ORDER.indexOf(b.type));
  return trail;
}

/** The API shape of an entry: `{ type, at, …fields }`. */
export const trailJson = (t: TrailEntry) => ({ type: t.type, at: t.at.toISOString(), ...t.data });
