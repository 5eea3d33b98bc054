/**
 * Subscriptions (issue 16 part 2): a customer billed again every period by a provider that bills
 * subscriptions (`subscriptions: true` in the plugin API).
 *
 *   started   → active: the checkout's first payment was paid (it took one slot of the link's payment
 *               limit: a limit counts subscribers); written in checkout's paying transaction.
 *   renewed   → active, the period moves on; a new paid payment of the link (checkout's
 *               `recordRenewal`: payments and revenue, never the limit), once per provider invoice.
 *   past_due  ⇄ active: the provider could not charge a renewal (it retries on its side), or did.
 *   canceled  ← by the merchant or by the customer from their receipt page (the provider's
 *               `cancelSubscription` first: unreachable → 503 and nothing changes), or by the provider
 *               (`canceled`). Final: renewals are refused. `canceled_by` says who.
 *
 * Every change is one conditional UPDATE with its event in the same transaction, so a replayed
 * webhook or a second worker changes nothing twice. No provider call runs inside a transaction.
 */
import { z } from 'zod';
import type { Db, Queryable, Trx } from '../../core/db.ts';
import { inTransaction, isUniqueViolation, toDate, toDateOrNull } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import type { EventBus } from '../../core/events.ts';
import { publicId } from '../../core/ids.ts';
import { AppError, ConflictError, NotFoundError, ServiceUnavailableError, ValidationError } from '../../core/errors.ts';
import { parseBody } from '../../core/http.ts';
import { listQuerySchema, pageByIdDesc, type Page } from '../../core/pagination.ts';
import { providerErrorOf, type Registries } from '../../core/plugins/registries.ts';
import type { PaymentMethodInfo, PluginSubscription } from '../../plugin-api.ts';
import { recurringLabel } from '../products/index.ts';
import { formatMoney } from '../../core/money.ts';
import { dateIn } from '../../core/time.ts';

export const SUBSCRIPTION_STATUSES = ['trialing', 'active', 'past_due', 'canceled'] as const;
export type SubscriptionStatus = (typeof SUBSCRIPTION_STATUSES)[number];
export type Interval = 'day' | 'week' | 'month' | 'year';
/** Who ended a subscription. */
export type CanceledBy = 'merchant' | 'customer' | 'provider';

export interface Subscription {
  key: number;
  id: string;
  merchantKey: number;
  linkKey: number | null;
  customerKey: number | null;
  customerName: string | null;
  customerEmail: string | null;
  productId: string | null;
  productName: string;
  provider: string;
  providerRef: string | null;
  status: SubscriptionStatus;
  interval: Interval;
  intervalCount: number;
  trialDays: number | null;
  /** Each renewal's amount, minor units. */
  amount: number;
  currency: string;
  firstPaymentId: string | null;
  currentPeriodEnd: Date;
  canceledAt: Date | null;
  /** Null while it runs (and for one canceled before Paylink kept who did). */
  canceledBy: CanceledBy | null;
  createdAt: Date;
}

const subscriptionFrom = (r: any): Subscription => ({
  key: Number(r.id),
  id: r.public_id,
  merchantKey: Number(r.merchant_id),
  linkKey: r.link_id === null || r.link_id === undefined ? null : Number(r.link_id),
  customerKey: r.customer_id === null || r.customer_id === undefined ? null : Number(r.customer_id),
  customerName: r.customer_name ?? null,
  customerEmail: r.customer_email ?? null,
  productId: r.product_id ?? null,
  productName: r.product_name,
  provider: r.provider,
  providerRef: r.provider_ref ?? null,
  status: r.status,
  interval: r.billing_interval,
  intervalCount: Number(r.interval_count),
  trialDays: r.trial_days === null || r.trial_days === undefined ? null : Number(r.trial_days),
  amount: Number(r.amount),
  currency: r.currency,
  firstPaymentId: r.first_payment_id ?? null,
  currentPeriodEnd: toDate(r.current_period_end),
  canceledAt: toDateOrNull(r.canceled_at),
  canceledBy: r.canceled_by ?? null,
  createdAt: toDate(r.created_at),
});

/**
 * `at` moved on by `count` intervals, in UTC. Months and years keep the day of the month, clamped
 * to the month's last day (a subscription from 31 January renews on 28 or 29 February).
 */
export function addInterval(at: Date, interval: Interval, count: number): Date {
  if (interval === 'day' || interval === 'week') return new Date(at.getTime() + count * (interval === 'week' ? 7 : 1) * 86_400_000);
  const months = interval === 'year' ? 12 * count : count;
  const d = new Date(at.getTime());
  const day = d.getUTCDate();
  d.setUTCDate(1);
  d.setUTCMonth(d.getUTCMonth() + months);
  const last = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate();
  d.setUTCDate(Math.min(day, last));
  return d;
}

/** "every month", "every 3 weeks". */
export const planLabel = (s: Pick<Subscription, 'interval' | 'intervalCount'>) => recurringLabel({ interval: s.interval, count: s.intervalCount });

/**
 * What a receipt email says of the subscription its payment started or renewed (the receipt page
 * says the same in its own markup): what it is, when it renews or the trial ends (or that it ended),
 * and where to cancel it.
 */
export function receiptNote(s: Subscription, paymentId: string, timeZone: string): string {
  const plan = `${formatMoney(s.amount, s.currency)} ${planLabel(s)}`;
  const first = s.firstPaymentId === paymentId;
  const what = first ? `You subscribed to ${s.productName}: ${plan}.` : `This payment renewed your subscription to ${s.productName}: ${plan}.`;
  if (s.status === 'canceled') return `${what} It was canceled: you will not be charged again.`;
  const next = dateIn(s.currentPeriodEnd, timeZone);
  const when = first && s.status === 'trialing' && s.trialDays ? `Your ${s.trialDays}-day free trial ends on ${next}: the first charge of the plan is then, to the same payment method.` : `It renews on ${next}, charged to the same payment method.`;
  return `${what} ${when} To cancel it, open your receipt.`;
}

/** What the subscriptions feature needs of the others (capabilities, never their tables). */
export interface SubscriptionDeps {
  db: Db;
  clock: Clock;
  events: EventBus;
  registries: Registries;
  /** A provider's parsed settings for a merchant (the providers feature). */
  settingsFor(merchantKey: number, providerId: string): Promise<unknown | null>;
  /** Checkout writes the renewal's payment, in our transaction. */
  renewals: {
    /** The payment recorded for this invoice of the subscription, or null. */
    renewalPaymentOf(q: Queryable, subscriptionId: string, invoiceRef: string): Promise<string | null>;
    recordRenewal(trx: Trx, r: { merchantKey: number; linkKey: number | null; customerKey: number | null; provider: string; subscriptionId: string; invoiceRef: string; amount: number; currency: string; paymentMethod?: PaymentMethodInfo | null }): Promise<{ paymentId: string; created: boolean }>;
  };
  refs: {
    merchantIdOf(q: Queryable, merchantKey: number): Promise<string | null>;
    customerIdOf(q: Queryable, customerKey: number): Promise<string | null>;
    linkIdOf(q: Queryable, linkKey: number): Promise<string | null>;
    /** A link's key by its public id (any merchant's: the caller scopes by merchant). */
    linkKeyOf(linkId: string): Promise<number | null>;
    /** Public ids and names, one query per batch (lists). */
    linksByKeys(keys: number[]): Promise<Map<number, { id: string; name: string }>>;
    customersByKeys(keys: number[]): Promise<Map<number, { id: string; name: string; email: string | null }>>;
  };
}

export const subscriptionSearchSchema = z.object({
  status: z.enum(SUBSCRIPTION_STATUSES, { error: `status must be one of ${SUBSCRIPTION_STATUSES.join(', ')}.` }).optional(),
  link_id: z.string({ error: 'link_id must be a link id.' }).max(64, 'link_id must be a link id.').optional(),
});

/** A subscription with the public ids and names its JSON and pages show. */
export interface SubscriptionView extends Subscription {
  linkId: string | null;
  linkName: string | null;
  customerId: string | null;
}

/** The API representation (docs/api.md "Subscriptions"). */
export function subscriptionJson(s: SubscriptionView) {
  return {
    id: s.id,
    object: 'subscription',
    status: s.status,
    link_id: s.linkId,
    customer: { id: s.customerId, name: s.customerName, email: s.customerEmail },
    product: { id: s.productId, name: s.productName },
    plan: { interval: s.interval, interval_count: s.intervalCount, trial_days: s.trialDays },
    amount: s.amount,
    currency: s.currency,
    provider: s.provider,
    first_payment_id: s.firstPaymentId,
    current_period_end: s.currentPeriodEnd.toISOString(),
    canceled_at: s.canceledAt?.toISOString() ?? null,
    canceled_by: s.canceledBy,
    created_at: s.createdAt.toISOString(),
  };
}

export function createSubscriptionService(deps: SubscriptionDeps) {
  const { db, clock, events } = deps;

  async function load(q: Queryable, where: Record<string, unknown>): Promise<Subscription | null> {
    const r = await q('subscriptions').where(where).first();
    return r ? subscriptionFrom(r) : null;
  }

  async function emit(trx: Trx, type: 'subscription.created' | 'subscription.renewed', s: Subscription, paymentId: string): Promise<void>;
  async function emit(trx: Trx, type: 'subscription.canceled', s: Subscription, paymentId: null, canceledBy: CanceledBy): Promise<void>;
  async function emit(trx: Trx, type: 'subscription.created' | 'subscription.renewed' | 'subscription.canceled', s: Subscription, paymentId: string | null, canceledBy?: CanceledBy): Promise<void> {
    const payload = {
      merchantId: (await deps.refs.merchantIdOf(trx, s.merchantKey))!,
      subscriptionId: s.id,
      linkId: s.linkKey === null ? null : await deps.refs.linkIdOf(trx, s.linkKey),
      customerId: s.customerKey === null ? null : await deps.refs.customerIdOf(trx, s.customerKey),
      provider: s.provider,
      amount: s.amount,
      currency: s.currency,
      status: s.status,
      currentPeriodEnd: s.currentPeriodEnd.toISOString(),
      paymentId,
    };
    if (type === 'subscription.canceled') await events.emit(trx, type, { ...payload, canceledBy: canceledBy! }, s.merchantKey);
    else await events.emit(trx, type, payload, s.merchantKey);
  }

  async function views(subs: Subscription[]): Promise<SubscriptionView[]> {
    const keys = (f: (s: Subscription) => number | null) => subs.map(f).filter((k): k is number => k !== null);
    const [links, customers] = await Promise.all([deps.refs.linksByKeys(keys((s) => s.linkKey)), deps.refs.customersByKeys(keys((s) => s.customerKey))]);
    return subs.map((s) => {
      const link = s.linkKey === null ? undefined : links.get(s.linkKey);
      const customer = s.customerKey === null ? undefined : customers.get(s.customerKey);
      return { ...s, linkId: link?.id ?? null, linkName: link?.name ?? null, customerId: customer?.id ?? null, customerName: s.customerName ?? customer?.name ?? null, customerEmail: s.customerEmail ?? customer?.email ?? null };
    });
  }

  /** One of the merchant's subscriptions (another merchant's: the same 404). */
  async function own(merchantKey: number, id: string): Promise<Subscription> {
    const s = typeof id === 'string' && id.length <= 64 ? await load(db, { merchant_id: merchantKey, public_id: id }) : null;
    if (!s) throw new NotFoundError('No such subscription.');
    return s;
  }

  /** The provider stops billing (its `cancelSubscription`), then the subscription is canceled; unreachable → 503, refused → 422, and nothing changes. */
  async function stopBilling(sub: Subscription, by: CanceledBy): Promise<boolean> {
    const provider = deps.registries.providers.get(sub.provider);
    if (provider?.cancelSubscription) {
      const settings = (await deps.settingsFor(sub.merchantKey, sub.provider)) ?? {};
      try {
        await provider.cancelSubscription(await service.pluginView(sub), settings);
      } catch (err) {
        const pe = providerErrorOf(err);
        if (pe && !pe.retryable) throw new AppError('provider_refused', 422, `The payment provider refused to cancel this subscription${pe.message ? `: ${pe.message}` : '.'}`);
        throw new ServiceUnavailableError('The payment provider is not reachable right now, so the subscription was not canceled. Try again in a moment.', err);
      }
    }
    return service.markCanceled(sub, by);
  }

  const service = {
    /** In checkout's paying transaction: the first payment of a recurring plan was paid. Answers the `sub_…`. */
    async started(trx: Trx, s: { payment: { id: string; merchantKey: number; linkKey: number | null; customerKey: number | null; provider: string; currency: string }; plan: { interval: Interval; count: number; trialDays: number | null; renewalAmount: number; productId: string; productName: string }; payerName: string | null; payerEmail: string | null; paidAt: Date }): Promise<string> {
      const id = publicId('sub');
      const { payment, plan } = s;
      await trx('subscriptions').insert({
        public_id: id,
        merchant_id: payment.merchantKey,
        link_id: payment.linkKey,
        customer_id: payment.customerKey,
        customer_name: s.payerName?.slice(0, 200) ?? null,
        customer_email: s.payerEmail?.slice(0, 254) ?? null,
        product_id: plan.productId,
        product_name: plan.productName.slice(0, 200),
        provider: payment.provider,
        provider_ref: null,
        // A free trial: the first renewal charges at its end.
        status: plan.trialDays ? 'trialing' : 'active',
        billing_interval: plan.interval,
        interval_count: plan.count,
        trial_days: plan.trialDays,
        amount: plan.renewalAmount,
        currency: payment.currency,
        first_payment_id: payment.id,
        current_period_end: plan.trialDays ? addInterval(s.paidAt, 'day', plan.trialDays) : addInterval(s.paidAt, plan.interval, plan.count),
        created_at: s.paidAt,
        updated_at: s.paidAt,
      });
      await emit(trx, 'subscription.created', (await load(trx, { public_id: id }))!, payment.id);
      return id;
    },

    /** The subscription a first payment started (null: none), e.g. to attach the provider's id to it. */
    async byFirstPayment(paymentId: string): Promise<Subscription | null> {
      return load(db, { first_payment_id: paymentId });
    },

    /** Subscriptions by public id, one query (ids of none are left out). */
    async byIds(ids: string[]): Promise<Map<string, Subscription>> {
      const wanted = [...new Set(ids.filter((id) => typeof id === 'string' && id.length <= 64))];
      if (!wanted.length) return new Map();
      const rows = (await db('subscriptions').whereIn('public_id', wanted)) as any[];
      return new Map(rows.map((r) => [r.public_id as string, subscriptionFrom(r)]));
    },

    async get(subscriptionId: string): Promise<Subscription | null> {
      return typeof subscriptionId === 'string' && subscriptionId.length <= 64 ? load(db, { public_id: subscriptionId }) : null;
    },

    async byRef(providers: string[], providerRef: string): Promise<Subscription | null> {
      if (!providers.length || typeof providerRef !== 'string' || !providerRef || providerRef.length > 191) return null;
      const r = await db('subscriptions').whereIn('provider', providers).andWhere({ provider_ref: providerRef }).orderBy('id', 'desc').first();
      return r ? subscriptionFrom(r) : null;
    },

    /** The provider's own id for a subscription (set once). */
    async attachRef(subscriptionKey: number, providerRef: string): Promise<void> {
      await db('subscriptions').where({ id: subscriptionKey }).whereNull('provider_ref').update({ provider_ref: providerRef.slice(0, 191), updated_at: clock.now() });
    },

    /** Live subscriptions of these providers whose period ended before `before`, oldest due first. */
    async due(providers: string[], before: Date, limit: number): Promise<Subscription[]> {
      if (!providers.length) return [];
      const rows = await db('subscriptions').whereIn('provider', providers).whereIn('status', ['trialing', 'active', 'past_due']).andWhere('current_period_end', '<=', before).orderBy('current_period_end', 'asc').orderBy('id', 'asc').limit(limit);
      return rows.map(subscriptionFrom);
    },

    /**
     * A renewal the provider charged: its payment and the next period, atomically. Idempotent on the
     * invoice: the same one again answers its payment (`created: false`), even from two workers at once.
     */
    async renewed(sub: Subscription, r: { invoiceRef: string; amount?: number; periodEnd?: Date; paymentMethod?: PaymentMethodInfo | null }): Promise<{ paymentId: string; created: boolean }> {
      const amount = r.amount ?? sub.amount;
      const attempt = () =>
        inTransaction(db, async (trx) => {
          // Renewals of one subscription take turns: the row is locked (a write) before anything is read,
          // so a concurrent report of the same invoice waits, then finds its payment.
          await trx('subscriptions').where({ id: sub.key }).update({ updated_at: clock.now() });
          const current = (await load(trx, { id: sub.key }))!;
          const input = { merchantKey: current.merchantKey, linkKey: current.linkKey, customerKey: current.customerKey, provider: current.provider, subscriptionId: current.id, invoiceRef: r.invoiceRef, amount, currency: current.currency, paymentMethod: r.paymentMethod ?? null };
          if (current.status === 'canceled') {
            // A replay of an invoice recorded before the cancellation still answers its payment.
            const replay = await deps.renewals.renewalPaymentOf(trx, current.id, r.invoiceRef);
            if (replay) return { paymentId: replay, created: false };
            throw new AppError('subscription_canceled', 409, 'This subscription is canceled: it takes no renewals.');
          }
          const paid = await deps.renewals.recordRenewal(trx, input);
          if (!paid.created) return paid;
          const next = r.periodEnd && r.periodEnd.getTime() > current.currentPeriodEnd.getTime() ? r.periodEnd : addInterval(current.currentPeriodEnd, current.interval, current.intervalCount);
          // Conditional on the period we read: a concurrent renewal of another invoice moved it first → retry.
          const n = await trx('subscriptions')
            .where({ id: current.key, current_period_end: current.currentPeriodEnd })
            .update({ status: 'active', current_period_end: next, updated_at: clock.now() });
          if (!n) throw new RenewalRaceError();
          await emit(trx, 'subscription.renewed', { ...current, status: 'active', currentPeriodEnd: next }, paid.paymentId);
          return paid;
        });
      for (let i = 0; ; i++) {
        try {
          return await attempt();
        } catch (err) {
          // Another worker recorded the same invoice (the unique renewal key) or moved the period: read again.
          if (i < 3 && (err instanceof RenewalRaceError || isUniqueViolation(err))) continue;
          throw err;
        }
      }
    },

    /** The provider could not charge a renewal (`past_due`) or did after all (`active`). */
    async setStatus(sub: Subscription, status: 'active' | 'past_due'): Promise<void> {
      await db('subscriptions').where({ id: sub.key }).whereIn('status', ['trialing', 'active', 'past_due']).update({ status, updated_at: clock.now() });
    },

    /** Canceled (by the provider, or after the provider stopped billing for the merchant or the customer). False when it already was. */
    async markCanceled(sub: Subscription, by: CanceledBy): Promise<boolean> {
      return inTransaction(db, async (trx) => {
        const now = clock.now();
        const n = await trx('subscriptions').where({ id: sub.key }).whereNot({ status: 'canceled' }).update({ status: 'canceled', canceled_at: now, canceled_by: by, updated_at: now });
        if (!n) return false;
        await emit(trx, 'subscription.canceled', { ...sub, status: 'canceled', canceledAt: now, canceledBy: by }, null, by);
        return true;
      });
    },

    /**
     * The merchant cancels: the provider stops billing first (its `cancelSubscription`); unreachable →
     * 503 and nothing changes. Already canceled → 409 `already_canceled`.
     */
    async cancel(merchantKey: number, id: string): Promise<SubscriptionView> {
      const sub = await own(merchantKey, id);
      if (sub.status === 'canceled') throw new ConflictError('already_canceled', 'This subscription is already canceled.');
      await stopBilling(sub, 'merchant');
      return (await views([(await load(db, { id: sub.key }))!]))[0];
    },

    /**
     * The customer cancels from the receipt page of one of its payments (the payment id, 128 random
     * bits, is their key, as for the receipt itself): the same as the merchant's cancel, recorded as
     * the customer's. Already canceled: nothing happens (false).
     */
    async cancelForCustomer(subscriptionId: string): Promise<boolean> {
      const sub = await service.get(subscriptionId);
      if (!sub) throw new NotFoundError('No such subscription.');
      if (sub.status === 'canceled') return false;
      return stopBilling(sub, 'customer');
    },

    async getView(merchantKey: number, id: string): Promise<SubscriptionView> {
      return (await views([await own(merchantKey, id)]))[0];
    },

    /** How many of a link's subscriptions are in each status (one grouped query; statuses with none are 0). */
    async countsForLink(merchantKey: number, linkKey: number): Promise<Record<SubscriptionStatus, number>> {
      const rows = (await db('subscriptions').where({ merchant_id: merchantKey, link_id: linkKey }).groupBy('status').select('status').count({ n: '*' })) as { status: SubscriptionStatus; n: number | string }[];
      const counts = Object.fromEntries(SUBSCRIPTION_STATUSES.map((st) => [st, 0])) as Record<SubscriptionStatus, number>;
      for (const r of rows) counts[r.status] = Number(r.n);
      return counts;
    },

    /** Newest first; filters `status` and `link_id` (public id; another merchant's or an unknown link: none). */
    async list(merchantKey: number, rawQuery: unknown = {}): Promise<Page<SubscriptionView>> {
      const page = parseBody(listQuerySchema, rawQuery);
      const f = parseBody(subscriptionSearchSchema, rawQuery);
      const q = db('subscriptions').where({ merchant_id: merchantKey });
      if (f.status) q.andWhere({ status: f.status });
      if (f.link_id) q.andWhere('link_id', (await deps.refs.linkKeyOf(f.link_id)) ?? 0);
      let afterKey: number | null = null;
      if (page.starting_after) {
        const anchor = await db('subscriptions').where({ merchant_id: merchantKey, public_id: page.starting_after }).first('id');
        if (!anchor) throw new ValidationError([{ field: 'starting_after', code: 'invalid_cursor', message: 'starting_after must be the id of one of your subscriptions.' }]);
        afterKey = Number(anchor.id);
      }
      return pageByIdDesc(q, { limit: page.limit, afterKey }, (rows) => views(rows.map(subscriptionFrom)));
    },

    /** A subscription as its provider plugin sees it. */
    async pluginView(s: Subscription): Promise<PluginSubscription> {
      return {
        id: s.id,
        provider: s.provider,
        providerRef: s.providerRef,
        status: s.status,
        interval: s.interval,
        intervalCount: s.intervalCount,
        amount: s.amount,
        currency: s.currency,
        currentPeriodEnd: s.currentPeriodEnd.toISOString(),
        merchantId: (await deps.refs.merchantIdOf(db, s.merchantKey))!,
        firstPaymentId: s.firstPaymentId,
      };
    },
  };
  return service;
}

class RenewalRaceError extends Error {}

export type SubscriptionService = ReturnType<typeof createSubscriptionService>;
