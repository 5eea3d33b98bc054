/**
 * Deliveries: the outbox of messages to customers. A delivery is written `queued` in the same
 * transaction as whatever caused it (a send, a due reminder), together with a `deliveries.pump`
 * job; the pump claims due deliveries in batches, composes each message, hands it to its channel
 * plugin and records the outcome:
 *
 *   queued → sending → sent (with `kept` when the channel only kept it — channel-outbox while no
 *                           real channel is configured: it reached the Outbox, not the customer)
 *                    → queued again (a transient failure: SMTP 4xx, connection refused, Vonage
 *                      5xx/429), retried with exponential backoff up to MAX_ATTEMPTS
 *                    → failed (a permanent refusal, or attempts exhausted), with the reason
 *                    → cancelled (a reminder whose plan stopped: the customer paid)
 *
 * A reminder sweep's batch starts at `sending` instead: written leased to the pump job queued with it
 * (see queue()), so the pump skips the claim.
 *
 * Receipts: when a payment succeeds (`payment.succeeded`, through the outbox), one `receipt` email
 * is queued to the address the payer entered (else their customer record's), unless the merchant
 * turned receipts off or there is no address; its `dedupe_key` (the event id) makes a second run of
 * the handler write nothing. A receipt names its payment and may have no link (the open-amount page).
 *
 * Each delivery's message id is its public id, so a message re-sent after a crash between the
 * channel's acceptance and our record carries the same Message-ID. No network call runs inside a
 * transaction.
 */
import type { Knex } from 'knex';
import type { Eta } from 'eta';
import type { Db, Queryable } from '../../core/db.ts';
import { isMysql, toDate, toDateOrNull } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import type { Logger } from '../../core/log.ts';
import type { JobQueue } from '../../core/jobs.ts';
import type { EventBus } from '../../core/events.ts';
import { sha256Hex, sortableId } from '../../core/ids.ts';
import { giveBack, takeAll, waitText, windowText, type Limit, type Limiter } from '../../core/rate-limit.ts';
import { RateLimitedError } from '../../core/errors.ts';
import { claimRows } from '../../core/claim.ts';
import { insertRows, updateByKeys } from '../../core/bulk.ts';
import { NotFoundError, ValidationError } from '../../core/errors.ts';
import type { Registries } from '../../core/plugins/registries.ts';
import { ProviderError, type Channel, type OutgoingMessage } from '../../plugin-api.ts';
import type { Page } from '../../core/pagination.ts';
import { createComposer } from './compose.ts';
import { defaultTemplate, type MessageTemplate, type TemplateKind, type TemplateService } from './templates.ts';
import type { ChannelDirectory } from './channels.ts';
import type { LinkTokens } from '../sending/index.ts';
import type { Link, LinkService } from '../links/index.ts';
import type { Merchant, MerchantService } from '../merchants/index.ts';
import type { CustomerService } from '../customers/index.ts';
import type { ReceiptDetails } from '../checkout/index.ts';
import { receiptNote, type Subscription } from '../subscriptions/index.ts';
import { pace } from '../../core/pace.ts';
import { z } from 'zod';

export type DeliveryKind = 'initial' | 'reminder' | 'expiry' | 'receipt';
export type DeliveryStatus = 'queued' | 'sending' | 'sent' | 'failed' | 'cancelled';

/** First messages of many links by status; `due` and `retrying` are the queued ones, due now or later. */
export interface DeliveryCounts {
  due: number;
  retrying: number;
  sending: number;
  sent: number;
  failed: number;
  cancelled: number;
}

export const MAX_ATTEMPTS = 8;
/** What queue() writes, in this order. */
const QUEUE_COLUMNS = ['public_id', 'merchant_id', 'link_id', 'customer_id', 'plan_id', 'payment_id', 'dedupe_key', 'channel', 'kind', 'seq', 'to_address', 'status', 'attempts', 'next_attempt_at', 'lease_until', 'created_at', 'updated_at'];
const BASE_BACKOFF_MS = 30_000;
const MAX_BACKOFF_MS = 60 * 60_000;
/** A claimed batch must be recorded within this; a crashed worker's batch is claimed again after it. */
const LEASE_MS = 5 * 60_000;
const SEND_TIMEOUT_MS = 60_000;
/**
 * Deliveries claimed per round: each step of a round (claim, load, compose, hand over, record) is one
 * multi-row statement or a stretch of work that yields between steps, so the event loop is held for
 * a few ms at a time. Larger rounds mean fewer statements and commits, but a round's messages (a few
 * KB of HTML and JSON each) live across its steps: at 500 they outlived V8's young generation and were
 * collected by full GCs (a third of the pump's CPU, and its longest pauses); at 200 they die young.
 * 250: a sweep's batch of 500 reminders is two rounds, not three.
 */
const BATCH = 250;

/**
 * A `deliveries.pump` job: send whatever is due (`{}`), or the batch a sweep queued already leased to
 * this job (`leased`: the deliveries' public ids and their lease's end, epoch ms) — see queue().
 */
const PUMP_PAYLOAD = z.object({ leased: z.object({ ids: z.array(z.string().max(40)).max(10_000), until: z.number().int() }).optional() });
type Leased = NonNullable<z.infer<typeof PUMP_PAYLOAD>['leased']>;

export interface Delivery {
  key: number;
  id: string;
  merchantKey: number;
  /** Null for a receipt of a payment on the open-amount page. */
  linkKey: number | null;
  linkId: string | null;
  linkName: string | null;
  /** The payment a receipt is for. */
  paymentKey: number | null;
  customerKey: number | null;
  customerId: string | null;
  customerName: string | null;
  planKey: number | null;
  channel: string;
  kind: DeliveryKind;
  /** Reminder number (1..max); 0 for other kinds. */
  seq: number;
  to: string;
  status: DeliveryStatus;
  /** Sent to a channel that only kept it (the Outbox): nothing reached the customer. */
  kept: boolean;
  attempts: number;
  error: string | null;
  providerMessageId: string | null;
  nextAttemptAt: Date;
  sentAt: Date | null;
  createdAt: Date;
}

export interface QueueItem {
  merchantKey: number;
  linkKey: number | null;
  /** The payment a receipt is for. */
  paymentKey?: number | null;
  /** At most one delivery per key: a second queue() with it writes nothing (e.g. `receipt:<event id>`). */
  dedupeKey?: string | null;
  customerKey: number | null;
  planKey?: number | null;
  channel: string;
  kind: DeliveryKind;
  seq?: number;
  to: string;
  /** Not sent before this time (an expiry notice); now when absent. */
  at?: Date | null;
}

/** A deliveries row, with its link's and customer's id and name (read by key for the whole list). */
const fromRow = (r: any, link: Pick<Link, 'id' | 'name'> | null, customer: { id: string; name: string } | null): Delivery => ({
  key: Number(r.id),
  id: r.public_id,
  merchantKey: r.merchant_id,
  linkKey: r.link_id ?? null,
  linkId: link?.id ?? null,
  linkName: link?.name ?? null,
  paymentKey: r.payment_id === null || r.payment_id === undefined ? null : Number(r.payment_id),
  customerKey: r.customer_id ?? null,
  customerId: customer?.id ?? null,
  customerName: customer?.name ?? null,
  planKey: r.plan_id ?? null,
  channel: r.channel,
  kind: r.kind,
  seq: Number(r.seq),
  to: r.to_address,
  status: r.status,
  kept: Boolean(Number(r.kept ?? 0)),
  attempts: Number(r.attempts),
  error: r.error ?? null,
  providerMessageId: r.provider_message_id ?? null,
  nextAttemptAt: toDate(r.next_attempt_at),
  sentAt: toDateOrNull(r.sent_at),
  createdAt: toDate(r.created_at),
});

/** The API representation (shared/API.md "A delivery"); `sending` reads as `queued` outside. */
export function deliveryJson(d: Delivery) {
  return {
    id: d.id,
    object: 'delivery',
    channel: d.channel,
    kind: d.kind,
    reminder_number: d.kind === 'reminder' ? d.seq : null,
    to: d.to,
    status: d.status === 'sending' ? 'queued' : d.status,
    /** Sent only into the Outbox (no real channel configured): the customer did not get it. */
    kept: d.kept,
    attempts: d.attempts,
    error: d.error,
    customer_id: d.customerId,
    sent_at: d.sentAt?.toISOString() ?? null,
    /** When a scheduled message (an expiry notice) goes out, while it waits. */
    scheduled_for: d.kind === 'expiry' && d.status === 'queued' && d.attempts === 0 ? d.nextAttemptAt.toISOString() : null,
    created_at: d.createdAt.toISOString(),
  };
}

/** A message to the merchant about their account (see notifyMerchant). */
export interface MerchantNotice {
  merchantKey: number;
  /** Once per key: the same key again sends nothing. */
  key: string;
  subject: string;
  text: string;
  /** Another address of the merchant's (a user's sign-in email, for a password reset); default: the merchant's email. */
  to?: string;
}

export interface DeliveryDeps {
  db: Db;
  clock: Clock;
  log: Logger;
  jobs: JobQueue;
  events: EventBus;
  registries: Registries;
  /** The installed channels: labels and addressing. */
  channels: ChannelDirectory;
  templates: TemplateService;
  tokens: LinkTokens;
  links: Pick<LinkService, 'byKeys' | 'urlFor'>;
  merchants: Pick<MerchantService, 'byKeys'>;
  customers: Pick<CustomerService, 'summariesByKeys'>;
  /** What receipts need of payments (the checkout feature). */
  payments: { paymentKeyOf(paymentId: string): Promise<number | null>; receiptDetails(keys: number[]): Promise<Map<number, ReceiptDetails>> };
  /** The subscriptions receipts are for (a receipt email says what the payment started or renewed). */
  subscriptions?: { byIds(ids: string[]): Promise<Map<string, Subscription>> };
  /** The states of reminder plans by key (a reminder whose plan stopped is not sent). */
  planStates: (planKeys: number[]) => Promise<Map<number, string>>;
  eta: { html: Eta; text: Eta };
  /** After outcomes are recorded (live dashboards). */
  onRecorded?: (deliveries: { merchantKey: number; linkId: string | null }[]) => void;
  /**
   * Resends: per message (the same message to the same address, however often it was copied) and
   * per customer (or address, without one). Without them, resends are not limited.
   */
  resendLimits?: { perMessage: Limiter; perCustomer: Limiter; limits: { perMessage: Limit; perCustomer: Limit } };
  /** Deliveries claimed per round (default BATCH) and sent at once (default 16). */
  batchSize?: number;
  concurrency?: number;
}

/** What the pump needs of one claimed delivery, read in one query per batch. */
interface Outgoing {
  key: number;
  id: string;
  merchantKey: number;
  merchantId: string;
  business: string;
  brandColor: string;
  /** The link's address for this recipient (a receipt: the receipt page). */
  url: string;
  linkId: string | null;
  linkName: string;
  linkDeleted: boolean;
  /** The link takes no more payments (paid in full, expired, closed): an expiry notice is not sent. */
  linkClosed: boolean;
  amount: number | null;
  currency: string;
  customerId: string | null;
  customerName: string | null;
  planState: string | null;
  /** A paragraph the message adds after the template's text (a subscription's receipt), or null. */
  note: string | null;
  channel: string;
  kind: DeliveryKind;
  seq: number;
  to: string;
  attempts: number;
}

type Outcome =
  | { status: 'sent'; providerMessageId: string; kept: boolean }
  | { status: 'queued'; error: string; nextAttemptAt: Date }
  | { status: 'failed'; error: string }
  | { status: 'cancelled'; error: string };

export function createDeliveryService(deps: DeliveryDeps) {
  const { db, clock, log, jobs, events, registries, templates, tokens, links, merchants, customers } = deps;
  const batchSize = deps.batchSize ?? BATCH;
  /** One pump per process at a time; a pump asked for meanwhile makes the running one look again. */
  let pumping = false;
  let pumpAgain = false;
  const concurrency = deps.concurrency ?? 16;

  const listQuery = (q: Queryable) => q('deliveries as d').select('d.*');
  const linkKeysOf = (rows: any[]) => rows.filter((r) => r.link_id !== null && r.link_id !== undefined).map((r) => Number(r.link_id));

  /** Deliveries from their rows: links and customers read by key for the whole list (two queries). */
  /** `withLinks: false` leaves linkId and linkName null (a caller that shows the messages of links it has). */
  async function fromRows(rows: any[], withLinks = true): Promise<Delivery[]> {
    if (!rows.length) return [];
    const customerKeys = rows.filter((r) => r.customer_id !== null && r.customer_id !== undefined).map((r) => Number(r.customer_id));
    const [byLink, byCustomer] = await Promise.all([withLinks ? links.byKeys(linkKeysOf(rows), { tags: false }) : new Map<number, Link>(), customers.summariesByKeys(customerKeys)]);
    return rows.map((r) => fromRow(r, r.link_id === null || r.link_id === undefined ? null : byLink.get(Number(r.link_id)) ?? null, r.customer_id === null || r.customer_id === undefined ? null : byCustomer.get(Number(r.customer_id)) ?? null));
  }

  function backoff(attempts: number): number {
    const exact = BASE_BACKOFF_MS * 2 ** Math.max(0, attempts - 1);
    return Math.round(Math.min(MAX_BACKOFF_MS, exact * (1 + Math.random() * 0.1)));
  }

  /** The URL a recipient gets: the smart link marked with their signed id, or the request's own URL. */
  function recipientUrl(link: Pick<Link, 'kind' | 'id' | 'path'>, merchant: Pick<Merchant, 'handle'>, customerId: string | null): string {
    const url = links.urlFor(link, merchant);
    return link.kind === 'smart' && customerId ? `${url}?c=${encodeURIComponent(tokens.recipient(customerId))}` : url;
  }

  /** A claimed batch with what composing needs: merchants, links, customers and plans read by key, one query each. */
  /** `keep` picks among the rows `which` found (a condition the database need not use to find them). */
  async function load(which: (q: Knex.QueryBuilder) => void, keep?: (r: { status: string; lease_until: unknown }) => boolean): Promise<Outgoing[]> {
    let rows = (await db('deliveries').where(which).select('id', 'public_id', 'merchant_id', 'link_id', 'customer_id', 'plan_id', 'payment_id', 'channel', 'kind', 'seq', 'to_address', 'attempts', 'status', 'lease_until')) as any[];
    if (keep) rows = rows.filter(keep);
    const customerKeys = rows.filter((r) => r.customer_id !== null && r.customer_id !== undefined).map((r) => Number(r.customer_id));
    const planKeys = rows.filter((r) => r.plan_id !== null && r.plan_id !== undefined).map((r) => Number(r.plan_id));
    const paymentKeys = rows.filter((r) => r.payment_id !== null && r.payment_id !== undefined).map((r) => Number(r.payment_id));
    const [byMerchant, byLink, byCustomer, plans, byPayment] = await Promise.all([
      merchants.byKeys(rows.map((r) => Number(r.merchant_id))),
      links.byKeys(linkKeysOf(rows), { tags: false }),
      customers.summariesByKeys(customerKeys),
      planKeys.length ? deps.planStates(planKeys) : new Map<number, string>(),
      paymentKeys.length ? deps.payments.receiptDetails(paymentKeys) : new Map<number, ReceiptDetails>(),
    ]);
    const subscriptionIds = [...byPayment.values()].map((p) => p.subscriptionId).filter((id): id is string => id !== null);
    const bySubscription = subscriptionIds.length && deps.subscriptions ? await deps.subscriptions.byIds(subscriptionIds) : new Map<string, Subscription>();
    const now = clock.now().getTime();
    return rows.map((r) => {
      const m = byMerchant.get(Number(r.merchant_id))!;
      const l = r.link_id === null || r.link_id === undefined ? null : byLink.get(Number(r.link_id)) ?? null;
      const c = r.customer_id === null || r.customer_id === undefined ? null : byCustomer.get(Number(r.customer_id)) ?? null;
      const paid = r.payment_id === null || r.payment_id === undefined ? null : byPayment.get(Number(r.payment_id)) ?? null;
      // One object literal of one shape for every kind (not a spread of common fields: that copied them per delivery).
      const o: Outgoing = {
        key: Number(r.id),
        id: r.public_id,
        merchantKey: r.merchant_id,
        merchantId: m.id,
        business: m.name,
        brandColor: m.brandColor,
        url: '',
        linkId: null,
        linkName: '',
        linkDeleted: true,
        linkClosed: true,
        amount: null,
        currency: m.currency,
        customerId: c?.id ?? null,
        customerName: c?.name ?? null,
        planState: r.plan_id === null || r.plan_id === undefined ? null : plans.get(Number(r.plan_id)) ?? null,
        note: null,
        channel: r.channel,
        kind: r.kind,
        seq: Number(r.seq),
        to: r.to_address,
        attempts: Number(r.attempts),
      };
      if (r.kind === 'receipt' && paid) {
        // A receipt: what was paid, by whom (as they entered it), and the receipt page; the link (if any) only names it.
        o.url = paid.url;
        o.linkId = l?.id ?? null;
        o.linkName = paid.linkName ?? l?.name ?? `Payment to ${m.name}`;
        o.linkDeleted = false;
        o.linkClosed = false;
        o.amount = paid.amount;
        o.currency = paid.currency;
        o.customerName = paid.payerName ?? c?.name ?? null;
        const sub = paid.subscriptionId === null ? undefined : bySubscription.get(paid.subscriptionId);
        if (sub) o.note = receiptNote(sub, paid.id, m.timezone);
      } else if (l) {
        o.url = recipientUrl(l, m, c?.id ?? null);
        o.linkId = l.id;
        o.linkName = l.name;
        o.linkDeleted = l.deletedAt !== null;
        o.linkClosed = !l.active || (l.expiresAt !== null && l.expiresAt.getTime() <= now) || (l.paymentLimit !== null && l.paidCount >= l.paymentLimit);
        o.amount = l.type === 'product' && l.productPrice !== null ? l.productPrice : l.amount;
        o.currency = l.currency;
      }
      return o;
    });
  }

  function describe(err: unknown): string {
    const text = err instanceof Error ? err.message : String(err);
    return text.replace(/\s+/g, ' ').slice(0, 480);
  }

  type Ready = { outcome: Outcome } | { channel: Channel; message: OutgoingMessage };

  /** The message for one delivery and the channel to send it on — or why it will not be sent. */
  function prepareOne(o: Outgoing, saved: Map<string, MessageTemplate>, composeOne: ReturnType<typeof createComposer>): Ready {
    if (o.linkDeleted) return { outcome: { status: 'cancelled', error: 'The link was deleted before this message went out.' } };
    if (o.kind === 'reminder' && o.planState === 'stopped') return { outcome: { status: 'cancelled', error: 'Reminders stopped before this one went out.' } };
    if (o.kind === 'expiry' && o.linkClosed) return { outcome: { status: 'cancelled', error: 'Paid, expired or closed before the last reminder was due.' } };
    const channel = registries.channels.get(o.channel);
    const info = deps.channels.get(o.channel);
    if (!channel || !info) return { outcome: { status: 'failed', error: `No "${o.channel}" channel is installed.` } };
    // An expiry notice is the last reminder: it reads as one.
    const kind: TemplateKind = o.kind === 'reminder' || o.kind === 'expiry' ? 'reminder' : o.kind === 'receipt' ? 'receipt' : 'initial';
    const template = saved.get(`${o.merchantKey}:${kind}:${o.channel}`) ?? defaultTemplate(kind, info);
    const url = o.url;
    try {
      const m = composeOne({
        template,
        business: o.business,
        brandColor: o.brandColor,
        customerName: o.customerName ?? '',
        linkName: o.linkName,
        amount: o.amount,
        currency: o.currency,
        url,
        reminderNumber: o.seq,
        note: o.note,
      });
      const message: OutgoingMessage = {
        id: o.id,
        merchant: { id: o.merchantId, name: o.business, brandColor: o.brandColor },
        to: o.to,
        subject: m.subject ?? undefined,
        text: m.text,
        html: m.html ?? undefined,
        kind: o.kind,
        linkUrl: url,
      };
      return { channel, message };
    } catch (err) {
      // A broken template must not take the rest of the batch down with it.
      log.error('could not compose a message', { delivery: o.id, error: err });
      return { outcome: failure(o, new Error('The message could not be composed.')) };
    }
  }

  /**
   * What a failed send means: a permanent refusal fails the delivery; anything else (including a
   * bug in a channel) is retried with backoff, so a customer's message is not dropped on its first try.
   */
  function failure(o: Outgoing, err: unknown): Outcome {
    // Duck-typed: a plugin may bundle its own copy of the plugin API, so instanceof is not reliable.
    const flag = (err as { retryable?: unknown } | null)?.retryable;
    const retryable = typeof flag === 'boolean' ? flag : true;
    const error = describe(err);
    if (!retryable) return { status: 'failed', error };
    if (o.attempts >= MAX_ATTEMPTS) return { status: 'failed', error: `Gave up after ${o.attempts} attempts: ${error}` };
    return { status: 'queued', error, nextAttemptAt: new Date(clock.now().getTime() + backoff(o.attempts)) };
  }

  const sentOutcome = (o: Outgoing, result: { providerMessageId?: unknown; kept?: unknown } | undefined): Outcome => ({ status: 'sent', providerMessageId: String(result?.providerMessageId ?? '').slice(0, 255) || o.id, kept: result?.kept === true });

  /** A channel that never answers is a transient failure, not a stuck batch. */
  async function withTimeout<T>(channelId: string, work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ProviderError(`The ${channelId} channel did not answer within ${SEND_TIMEOUT_MS / 1000} s.`, { retryable: true, code: 'timeout' })), SEND_TIMEOUT_MS);
    });
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
  }

  /** Sends a claimed batch: through a channel's sendMany when it has one, else message by message. */
  async function sendBatch(batch: Outgoing[], saved: Map<string, MessageTemplate>): Promise<Outcome[]> {
    const outcomes: Outcome[] = new Array(batch.length);
    const single: number[] = [];
    const grouped = new Map<Channel, number[]>();
    // Each template is rendered once for the batch (compose.ts), then filled per message.
    const composeOne = createComposer(deps.eta);
    const ready = batch.map((o) => prepareOne(o, saved, composeOne));
    ready.forEach((r, i) => {
      if ('outcome' in r) outcomes[i] = r.outcome;
      else if (r.channel.sendMany) {
        const group = grouped.get(r.channel);
        if (group) group.push(i);
        else grouped.set(r.channel, [i]);
      } else single.push(i);
    });
    for (const [channel, indexes] of grouped) {
      const messages = indexes.map((i) => (ready[i] as { message: OutgoingMessage }).message);
      try {
        const results = await withTimeout(channel.id, channel.sendMany!(messages));
        indexes.forEach((i, n) => {
          const r = results?.[n];
          outcomes[i] = r && !(r instanceof Error) && 'providerMessageId' in r ? sentOutcome(batch[i], r) : failure(batch[i], r ?? new Error('The channel gave no result for this message.'));
        });
      } catch (err) {
        for (const i of indexes) outcomes[i] = failure(batch[i], err);
      }
    }
    await mapLimit(single, concurrency, async (i) => {
      const { channel, message } = ready[i] as { channel: Channel; message: OutgoingMessage };
      try {
        outcomes[i] = sentOutcome(batch[i], await withTimeout(channel.id, channel.send(message)));
      } catch (err) {
        outcomes[i] = failure(batch[i], err);
      }
    });
    return outcomes;
  }

  /** Runs `fn` over items, at most `limit` at a time. */
  async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
    const out: R[] = new Array(items.length);
    let next = 0;
    const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]);
      }
    });
    await Promise.all(lanes);
    return out;
  }

  async function record(batch: Outgoing[], outcomes: Outcome[]): Promise<Date | null> {
    const now = clock.now();
    let retryAt: Date | null = null;
    const announceSent = events.hasSubscribers('delivery.sent');
    const announceFailed = events.hasSubscribers('delivery.failed');
    await db.transaction(async (trx) => {
      // The common outcome, every message sent (or every one kept), is one UPDATE for the batch
      // (still only rows this worker holds: status 'sending'); the rest row by row.
      const sent = batch.flatMap((o, i) => {
        const r = outcomes[i];
        return r.status === 'sent' ? [{ o, id: r.providerMessageId, kept: r.kept }] : [];
      });
      for (const kept of [false, true]) {
        const group = sent.filter((s) => s.kept === kept);
        if (!group.length) continue;
        await updateByKeys(trx, {
          table: 'deliveries',
          keys: group.map((s) => s.o.key),
          perRow: { provider_message_id: group.map((s) => s.id) },
          same: { status: 'sent', kept, error: null, sent_at: now, lease_until: null, updated_at: now },
          where: { status: 'sending' },
        });
        await pace();
      }
      if (sent.length && announceSent) {
        await events.emitMany(trx, 'delivery.sent', sent.map(({ o, id }) => ({ payload: { merchantId: o.merchantId, deliveryId: o.id, linkId: o.linkId, customerId: o.customerId, channel: o.channel, kind: o.kind, providerMessageId: id }, merchantId: o.merchantKey })));
      }
      for (let i = 0; i < batch.length; i++) {
        const o = batch[i];
        const r = outcomes[i];
        if (r.status === 'sent') continue;
        const mine = trx('deliveries').where({ id: o.key, status: 'sending' });
        if (r.status === 'queued') {
          await mine.update({ status: 'queued', error: r.error, next_attempt_at: r.nextAttemptAt, lease_until: null, updated_at: now });
          if (!retryAt || r.nextAttemptAt < retryAt) retryAt = r.nextAttemptAt;
        } else {
          await mine.update({ status: r.status, error: r.error, lease_until: null, updated_at: now });
          if (r.status === 'failed' && announceFailed) await events.emit(trx, 'delivery.failed', { merchantId: o.merchantId, deliveryId: o.id, linkId: o.linkId, customerId: o.customerId, channel: o.channel, kind: o.kind, error: r.error }, o.merchantKey);
        }
      }
    });
    for (let i = 0; i < batch.length; i++) {
      const r = outcomes[i];
      if (r.status === 'sent' && r.kept) log.info('message kept in the Outbox, not delivered: no real channel is configured for it', { delivery: batch[i].id, channel: batch[i].channel, kind: batch[i].kind });
      else if (r.status === 'sent') log.info('message sent', { delivery: batch[i].id, channel: batch[i].channel, kind: batch[i].kind });
      else log.warn(r.status === 'queued' ? 'message failed; will retry' : `message ${r.status}`, { delivery: batch[i].id, channel: batch[i].channel, error: r.error });
    }
    deps.onRecorded?.(batch.map((o) => ({ merchantKey: o.merchantKey, linkId: o.linkId })));
    return retryAt;
  }

  /** Claims due deliveries and sends them, batch after batch, until none are due or `budgetMs` passed. */
  async function pumpRounds(budgetMs: number): Promise<number> {
    const started = Date.now();
    let handled = 0;
    let retryAt: Date | null = null;
    for (;;) {
      const now = clock.now();
      const keys = await claimRows(db, {
        table: 'deliveries',
        scans: [
          (b) => b.where('status', 'sending').andWhere('lease_until', '<', now),
          (b) => b.where('status', 'queued').andWhere('next_attempt_at', '<=', now),
        ],
        orderBy: 'next_attempt_at',
        limit: batchSize,
        set: { status: 'sending', lease_until: new Date(now.getTime() + LEASE_MS), attempts: db.raw('attempts + 1'), updated_at: now },
      });
      if (!keys.length) break;
      const batch = await load((q) => q.whereIn('id', keys));
      const retry = await sendAndRecord(batch);
      if (retry && (!retryAt || retry < retryAt)) retryAt = retry;
      handled += batch.length;
      if (Date.now() - started > budgetMs) {
        await jobs.enqueue(db, 'deliveries.pump', {});
        break;
      }
      // Let other work run between batches: on SQLite every query settles without a trip through
      // the event loop, so a pump that never yields would hold the process until it finished.
      await pace();
    }
    await pumpAt(retryAt, 'retry');
    return handled;
  }

  /** A pump at `at` (rounded up to the second: one wake-up per second however many ask), if any. */
  async function pumpAt(at: Date | null, why: 'retry' | 'lease'): Promise<void> {
    if (!at) return;
    const second = new Date(Math.ceil(at.getTime() / 1000) * 1000);
    await jobs.enqueue(db, 'deliveries.pump', {}, { runAt: second, uniqueKey: `deliveries.${why}:${second.getTime()}` });
  }

  /** Composes, hands over and records one claimed batch; answers the earliest retry it scheduled. */
  async function sendAndRecord(batch: Outgoing[]): Promise<Date | null> {
    if (!batch.length) return null;
    const saved = await templates.savedFor(batch.map((o) => o.merchantKey));
    await pace();
    const outcomes = await sendBatch(batch, saved);
    await pace();
    return record(batch, outcomes);
  }

  /**
   * Sends a batch queue() wrote already leased to this job (`attempt`: the job's run, 1 = first). Only
   * a first run well inside the lease sends: the job is the lease's only holder then. A rerun (its
   * first worker stopped, or stalled past the job's lease while perhaps still sending) or a late start
   * leaves the batch to the ordinary claim, which takes deliveries only once their lease has run out,
   * and queues a pump for then — so two workers never hold one delivery, as with claimed batches.
   */
  async function sendLeased(leased: Leased, attempt: number): Promise<number> {
    while (leasedRunning >= LEASED_AT_ONCE) await new Promise<void>((resolve) => leasedWaiting.push(resolve));
    leasedRunning++;
    try {
      return await sendLeasedNow(leased, attempt);
    } finally {
      leasedRunning--;
      leasedWaiting.shift()?.();
    }
  }
  /**
   * Leased batches this process sends at once (other processes send theirs meanwhile). With the job
   * queue's four lanes each sending one on MariaDB, their composing steps shared loop turns and held
   * the loop for up to ~50 ms (100,000 reminders: 48–61 ms; two at once 33 ms; one 8 ms, for a
   * handoff of 9.2 s instead of 7.9 s).
   */
  const LEASED_AT_ONCE = 1;
  let leasedRunning = 0;
  const leasedWaiting: (() => void)[] = [];

  async function sendLeasedNow(leased: Leased, attempt: number): Promise<number> {
    if (attempt > 1 || clock.now().getTime() > leased.until - LEASE_MS / 2) {
      await pumpAt(new Date(leased.until + 1_000), 'lease');
      return 0;
    }
    let handled = 0;
    let retryAt: Date | null = null;
    // In even rounds of at most batchSize (500 ids: 2 of 250, not 200, 200 and 100).
    const per = Math.ceil(leased.ids.length / Math.ceil(leased.ids.length / batchSize));
    for (let i = 0; i < leased.ids.length; i += per) {
      const ids = leased.ids.slice(i, i + per);
      // Found by id; kept only while still as queue() left them: `sending` under this lease (nothing
      // else takes them before it ends). Checked here, not in the query: on SQLite a `status = ?`
      // there would be looked up through the status index, which holds every leased delivery.
      const batch = await load((q) => q.whereIn('public_id', ids), (r) => r.status === 'sending' && toDate(r.lease_until).getTime() === leased.until);
      const retry = await sendAndRecord(batch);
      if (retry && (!retryAt || retry < retryAt)) retryAt = retry;
      handled += batch.length;
      await pace();
    }
    await pumpAt(retryAt, 'retry');
    return handled;
  }

  const service = {
    /**
     * Writes deliveries `queued` in the caller's transaction and a pump job that sends them once it
     * commits (the job queue's nudge makes that immediate, in this process or another). `pump: false`
     * leaves the pump to the caller.
     *
     * `leased: true` (a reminder sweep's batch, due now) writes them already claimed — `sending`, first
     * attempt, under a lease — by the pump job queued with them, which carries their ids: the pump then
     * sends them without claiming them first (a claim is a second write of every row and its status
     * index). Should that job not run in time (its worker died), the lease runs out and the ordinary
     * claim takes them, as it takes a crashed pump's batch.
     */
    async queue(trx: Knex.Transaction, items: QueueItem[], opts: { pump?: boolean; leased?: boolean } = {}): Promise<string[]> {
      if (!items.length) return [];
      const now = clock.now();
      const ids = items.map(() => sortableId('dlv'));
      const at = items.map((it) => (it.at && it.at > now ? it.at : now));
      const until = opts.leased ? new Date(now.getTime() + LEASE_MS) : null;
      if (until && at.some((t) => t > now)) throw new Error('deliveries.queue: only messages due now can be queued leased');
      const status = until ? 'sending' : 'queued';
      const attempts = until ? 1 : 0;
      const rows = items.map((it, i) => [ids[i], it.merchantKey, it.linkKey, it.customerKey, it.planKey ?? null, it.paymentKey ?? null, it.dedupeKey ?? null, it.channel, it.kind, it.seq ?? 0, it.to, status, attempts, at[i], until, now, now]);
      // A keyed delivery that exists already (its handler ran before) is not written again.
      await insertRows(trx, 'deliveries', QUEUE_COLUMNS, rows, items.some((it) => it.dedupeKey) ? { ignoreDuplicatesOf: 'dedupe_key' } : {});
      if (until) await jobs.enqueue(trx, 'deliveries.pump', { leased: { ids, until: until.getTime() } } satisfies z.infer<typeof PUMP_PAYLOAD>);
      else if (opts.pump !== false) await jobs.enqueue(trx, 'deliveries.pump', {});
      // Scheduled ones (expiry notices): a pump wakes at each second one is due.
      for (const second of new Set(at.filter((t) => t > now).map((t) => Math.ceil(t.getTime() / 1000) * 1000))) {
        await jobs.enqueue(trx, 'deliveries.pump', {}, { runAt: new Date(second), uniqueKey: `deliveries.at:${second}` });
      }
      return ids;
    },

    /**
     * Claims due deliveries and sends them, batch after batch, until none are due or `budgetMs`
     * has passed (then it queues another pump, so one job never holds a worker for long).
     */
    async pump(budgetMs = 20_000): Promise<number> {
      if (pumping) {
        pumpAgain = true;
        return 0;
      }
      pumping = true;
      try {
        let handled = 0;
        do {
          pumpAgain = false;
          handled += await pumpRounds(budgetMs);
        } while (pumpAgain);
        return handled;
      } finally {
        pumping = false;
      }
    },

    /** A fresh copy of a delivery (new message id), queued now. */
    async resend(merchantKey: number, deliveryId: string): Promise<string> {
      const d = await service.get(merchantKey, deliveryId);
      if (d.status === 'queued' || d.status === 'sending') {
        throw new ValidationError([{ field: 'delivery', code: 'delivery_pending', message: 'This message is still waiting to go out.' }]);
      }
      const kind = d.kind === 'reminder' ? 'initial' : d.kind;
      const limits = deps.resendLimits;
      // The point is taken before anything is queued (atomic in the limiter's store: parallel resends
      // cannot all pass), and given back when nothing was queued after all.
      const takes = limits
        ? [
            { limiter: limits.perMessage, key: sha256Hex(`${merchantKey}|${d.linkKey ?? ''}|${d.paymentKey ?? ''}|${d.channel}|${kind}|${d.to}`).slice(0, 32), perMessage: true },
            { limiter: limits.perCustomer, key: d.customerKey !== null ? `${merchantKey}|c${d.customerKey}` : sha256Hex(`${merchantKey}|${d.channel}|${d.to}`).slice(0, 32), perMessage: false },
          ]
        : [];
      const over = await takeAll(takes);
      if (over && limits) {
        const wait = waitText(over.retryAfterSec);
        const { perMessage, perCustomer } = limits.limits;
        throw new RateLimitedError(
          over.refused.some((t) => t.perMessage)
            ? `Resent too often: a message can be sent again at most ${perMessage.points} times ${windowText(perMessage.durationSec)}. You can resend this one in ${wait}.`
            : `Resent too often: ${d.customerName ?? 'one recipient'} can be sent at most ${perCustomer.points} messages again ${windowText(perCustomer.durationSec)}. You can resend to them in ${wait}.`,
          over.retryAfterSec,
        );
      }
      try {
        return await db.transaction(async (trx) => {
          const [id] = await service.queue(trx, [{ merchantKey, linkKey: d.linkKey, customerKey: d.customerKey, paymentKey: d.paymentKey, channel: d.channel, kind, to: d.to }]);
          return id;
        });
      } catch (err) {
        await Promise.all(takes.map((t) => giveBack(t.limiter, t.key))).catch(() => {});
        throw err;
      }
    },

    async get(merchantKey: number, deliveryId: string): Promise<Delivery> {
      const row = await listQuery(db).where({ 'd.merchant_id': merchantKey, 'd.public_id': deliveryId }).first();
      if (!row) throw new NotFoundError('No such delivery.');
      return (await fromRows([row]))[0];
    },

    /** Newest first, cursor-paginated by public id. */
    async listForLink(linkKey: number, page: { limit: number; starting_after?: string }): Promise<Page<Delivery>> {
      const q = listQuery(db).where('d.link_id', linkKey);
      if (page.starting_after) {
        const anchor = await db('deliveries').where({ link_id: linkKey, public_id: page.starting_after }).first('id');
        if (!anchor) throw new ValidationError([{ field: 'starting_after', code: 'invalid_cursor', message: 'starting_after must be the id of a delivery of this link.' }]);
        q.where('d.id', '<', anchor.id);
      }
      const rows = (await q.orderBy('d.id', 'desc').limit(page.limit + 1)) as any[];
      return { data: await fromRows(rows.slice(0, page.limit)), has_more: rows.length > page.limit };
    },

    async recentForLink(linkKey: number, limit = 20): Promise<Delivery[]> {
      return fromRows(await listQuery(db).where('d.link_id', linkKey).orderBy('d.id', 'desc').limit(limit));
    },

    /** Every delivery of these links, oldest first, by link key (payment requests list theirs; a request has a few). */
    /** The messages of each link, oldest first; `linkNames: false` skips reading the links (linkId/linkName are null). */
    async forLinks(linkKeys: number[], opts: { linkNames?: boolean } = {}): Promise<Map<number, Delivery[]>> {
      const out = new Map<number, Delivery[]>();
      if (!linkKeys.length) return out;
      const rows = (await listQuery(db).whereIn('d.link_id', [...new Set(linkKeys)]).orderBy('d.id', 'asc')) as any[];
      for (const d of await fromRows(rows, opts.linkNames !== false)) {
        const list = out.get(d.linkKey!);
        if (list) list.push(d);
        else out.set(d.linkKey!, [d]);
      }
      return out;
    },

    /**
     * How the first messages of many links stand (a CSV import's progress): counts by status, `queued`
     * split into those due now and those waiting for a retry. `linkKeys` may be a subquery that selects
     * link keys (the caller's own table), so a 10,000-link batch is counted in one query.
     */
    async initialCounts(merchantKey: number, linkKeys: Knex.QueryBuilder | number[]): Promise<DeliveryCounts> {
      const now = clock.now();
      const rows = (await db('deliveries')
        .where({ merchant_id: merchantKey, kind: 'initial' })
        .whereIn('link_id', linkKeys)
        .select('status', db.raw('CASE WHEN next_attempt_at > ? THEN 1 ELSE 0 END as later', [now]))
        .count({ n: '*' })
        .groupBy('status', 'later')) as { status: DeliveryStatus; later: number | string; n: number | string }[];
      const out: DeliveryCounts = { due: 0, retrying: 0, sending: 0, sent: 0, failed: 0, cancelled: 0 };
      for (const r of rows) {
        const n = Number(r.n);
        if (r.status === 'queued') out[Number(r.later) ? 'retrying' : 'due'] += n;
        else out[r.status] += n;
      }
      return out;
    },

    /** Messages of the merchant that failed for good since `since`: how many, and the newest `limit` of them. */
    async failedSince(merchantKey: number, since: Date, limit = 5): Promise<{ count: number; recent: Delivery[] }> {
      const [counted, rows] = await Promise.all([
        db('deliveries').where({ merchant_id: merchantKey, status: 'failed' }).andWhere('created_at', '>=', since).count({ n: '*' }).first(),
        listQuery(db).where({ 'd.merchant_id': merchantKey, 'd.status': 'failed' }).andWhere('d.created_at', '>=', since).orderBy('d.id', 'desc').limit(limit),
      ]);
      return { count: Number((counted as { n: number | string } | undefined)?.n ?? 0), recent: await fromRows(rows as any[]) };
    },

    async listForCustomer(merchantKey: number, customerKey: number, limit = 20): Promise<Delivery[]> {
      return fromRows(await listQuery(db).where({ 'd.merchant_id': merchantKey, 'd.customer_id': customerKey }).orderBy('d.id', 'desc').limit(limit));
    },

    /** Reminder deliveries of plans, for the Reminders tab. */
    async forPlans(planKeys: number[]): Promise<Delivery[]> {
      if (!planKeys.length) return [];
      return fromRows(await listQuery(db).whereIn('d.plan_id', planKeys).andWhere('d.kind', 'reminder').orderBy('d.id', 'desc'));
    },

    /**
     * Cancels the queued reminder deliveries of these plans in the caller's transaction (a payment
     * stopped them). Returns how many it cancelled.
     */
    async cancelQueuedReminders(trx: Knex.Transaction, planKeys: number[], reason: string): Promise<number> {
      if (!planKeys.length) return 0;
      return trx('deliveries').whereIn('plan_id', planKeys).andWhere({ status: 'queued', kind: 'reminder' }).update({ status: 'cancelled', error: reason, updated_at: clock.now() });
    },

    /** A safety net for messages whose pump job was lost (e.g. a database restored from backup): pumps again when one is overdue. */
    async pumpIfStalled(): Promise<void> {
      const stalled = await db('deliveries').where('status', 'queued').andWhere('next_attempt_at', '<=', clock.now()).first('id');
      if (stalled) await jobs.enqueue(db, 'deliveries.pump', {});
    },

    /** Counts by status (health, tests). */
    async counts(): Promise<Record<DeliveryStatus, number>> {
      const rows = (await db('deliveries').select('status').count({ n: '*' }).groupBy('status')) as { status: DeliveryStatus; n: number | string }[];
      const out: Record<DeliveryStatus, number> = { queued: 0, sending: 0, sent: 0, failed: 0, cancelled: 0 };
      for (const r of rows) out[r.status] = Number(r.n);
      return out;
    },

    /**
     * For the receipt page: whether the payer can be emailed their receipt again, and doing it. The
     * email's link carries the receipt's key (what lets them cancel a subscription there), so a
     * customer who opened their receipt by the payment id alone can get the link they lost — sent
     * only to the address the payment was made with, whatever the merchant's receipt setting (they
     * asked), and only through a channel that really sends it (never "kept in the Outbox").
     */
    async canEmailReceipt(paymentId: string): Promise<boolean> {
      return (await receiptTarget(paymentId, { delivered: true })) !== null;
    },
    async emailReceipt(paymentId: string): Promise<boolean> {
      const target = await receiptTarget(paymentId, { delivered: true });
      if (target) await queueReceipt(target);
      return target !== null;
    },

    /**
     * Emails the merchant themself (not a customer) a notice, once per `key`, from a job queued in
     * the caller's transaction: e.g. "your webhook endpoint was disabled". Retried by the job queue.
     */
    async notifyMerchant(trx: Knex.Transaction, notice: MerchantNotice): Promise<void> {
      await jobs.enqueue(trx, 'deliveries.notice', notice, { uniqueKey: `notice:${notice.key}` });
    },

    recipientUrl,
    /** The installed channels: labels, addressing, template styles. */
    channels: deps.channels,
  };
  jobs.define('deliveries.pump', async (payload, job) => {
    const { leased } = PUMP_PAYLOAD.parse(payload ?? {});
    if (leased) await sendLeased(leased, job.attempts);
    else await service.pump();
  });

  /** The email channel a receipt goes through: `email`, else the first email-style channel installed. */
  const receiptChannel = (): string | null => {
    const all = deps.channels.list().filter((c) => c.style === 'email' && registries.channels.get(c.id));
    return (all.find((c) => c.id === 'email') ?? all[0])?.id ?? null;
  };

  /**
   * A payment's receipt and where it goes: the address paid with (else the customer's) on the receipt
   * channel; null when it cannot go. `delivered`: only through a channel that sends (not one that only
   * keeps messages in the Outbox, as channel-outbox does for email without SMTP_URL).
   */
  async function receiptTarget(paymentId: string, opts: { delivered?: boolean } = {}): Promise<{ paid: ReceiptDetails; to: string; channel: string } | null> {
    const channel = receiptChannel();
    if (!channel || (opts.delivered && registries.channels.get(channel)?.keepsOnly)) return null;
    const paymentKey = await deps.payments.paymentKeyOf(paymentId);
    if (paymentKey === null) return null;
    const paid = (await deps.payments.receiptDetails([paymentKey])).get(paymentKey);
    if (!paid) return null;
    const customer = paid.customerKey === null ? null : (await customers.summariesByKeys([paid.customerKey])).get(paid.customerKey) ?? null;
    const to = paid.payerEmail ?? (customer && !customer.deleted ? customer.email : null);
    return to ? { paid, to, channel } : null;
  }

  /** Queues a payment's receipt email (`dedupeKey`: once per key). */
  async function queueReceipt(target: { paid: ReceiptDetails; to: string; channel: string }, dedupeKey?: string): Promise<void> {
    const { paid, to, channel } = target;
    await db.transaction(async (trx) => {
      await service.queue(trx, [{ merchantKey: paid.merchantKey, linkKey: paid.linkKey, customerKey: paid.customerKey, paymentKey: paid.key, channel, kind: 'receipt', to, dedupeKey }]);
    });
  }

  events.subscribe('payment.succeeded', 'core:receipts', async (event) => {
    const target = await receiptTarget(String(event.payload.paymentId ?? ''));
    if (!target) return;
    const merchant = (await merchants.byKeys([target.paid.merchantKey])).get(target.paid.merchantKey);
    if (!merchant?.sendReceipts) return;
    await queueReceipt(target, `receipt:${event.id}`);
  }, () => true, {
    // No run is queued for merchants who turned receipts off, or when no email channel is installed
    // (asked once per merchant of the payments succeeding together).
    merchant: async (merchantId, q) => merchantId !== null && receiptChannel() !== null && Boolean((await merchants.byKeys([merchantId], q)).get(merchantId)?.sendReceipts),
  });

  jobs.define<MerchantNotice>('deliveries.notice', async (n) => {
    const merchant = (await merchants.byKeys([n.merchantKey])).get(n.merchantKey);
    if (!merchant) return;
    const channel = registries.channels.get('email');
    if (!channel) {
      log.warn('no email channel: a notice to a merchant was not sent', { merchant: merchant.id, key: n.key });
      return;
    }
    // A stable id per notice: a retry after a crash carries the same Message-ID.
    const id = `ntc_${sha256Hex(n.key).slice(0, 24)}`;
    await withTimeout(channel.id, channel.send({ id, merchant: { id: merchant.id, name: merchant.name, brandColor: merchant.brandColor }, to: n.to ?? merchant.email, subject: n.subject, text: n.text, kind: 'notice', linkUrl: null }));
  });
  return service;
}

export type DeliveryService = ReturnType<typeof createDeliveryService>;
