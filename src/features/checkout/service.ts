/**
 * Checkout and the payment-limit claim (DESIGN.md "Checkout and the payment limit").
 *
 *   start      → checkout_session + payment(pending), then the provider returns a redirect or a page
 *   authorize  → payment authorized + an atomic slot claim on the link (the links feature's
 *                `claimSlot`, in checkout's transaction);
 *                slot won → capture → paid (counters, payment.succeeded);
 *                slot lost → void → voided ("Payment limit reached").
 *
 *   capture/void fail with a retryable ProviderError → the payment stays authorized (failure_code
 *                `capture_retrying`/`void_retrying`) and `checkout.settle_retry` retries with backoff;
 *                a permanent error (or the last attempt) → failed and the slot released (capture) or
 *                voided anyway (void: the authorization lapses at the provider).
 *   refund     → see refunds.ts (paid → partially_refunded → refunded; never reopens a slot).
 *
 * Subscriptions: a checkout for a recurring plan (`StartInput.recurring`) goes only to a provider
 * with `subscriptions: true`; when its first payment is paid, the subscriptions feature records the
 * subscription in the same transaction (`deps.subscriptions.started`). Renewals are payments written
 * paid by `recordRenewal` (counters and revenue, never a slot: the subscriber holds one).
 *
 * Immediate capture (the provider's `captureModel`, resolved with the merchant's settings): there is
 * nothing to void, so the slot is taken before the customer pays —
 *   start      → the session holds a slot (links' `holdSlot`, in start's transaction) until its end
 *                (`holdMinutes`, default 30; the session expires with it and the provider is told
 *                `expiresAt`); no slot → nothing is written and the customer sees when one may free up
 *   authorize  → the hold becomes the payment (`convertHold`); a retry on the same session keeps it
 *   no payment → a failed start or `releaseHold` gives it back; the `links.release_holds` job
 *                releases lapsed ones on the clock
 *   too late   → a payment whose hold lapsed claims like a card (`claimSlot`); if the link filled up
 *                meanwhile it is refunded in full: status `refunded`, reason `limit_reached`, a
 *                succeeded refund row, and never counted in paid_count or revenue.
 *
 * Which provider: the one the customer chose among the merchant's usable providers (Settings →
 * Payments); with one, no choice is needed. Every provider call gets the merchant's settings.
 *
 * Links own their row's state (paid_count, active, counters) and analytics its rollups: checkout
 * calls both through the capabilities runtime.ts injects, inside its own transactions.
 *
 * Never read-check-write: the claim is one conditional UPDATE. No network call runs inside a
 * transaction: record intent, commit, call the provider, record the result.
 */
import type { Db, Queryable, Trx } from '../../core/db.ts';
import { inTransaction, toDate, toDateOrNull } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import type { EventBus } from '../../core/events.ts';
import type { JobQueue } from '../../core/jobs.ts';
import type { Logger } from '../../core/log.ts';
import { publicId } from '../../core/ids.ts';
import { AppError, NotFoundError, ServiceUnavailableError, ValidationError } from '../../core/errors.ts';
import { MAX_MINOR } from '../../core/money.ts';
import { captureModelOf, holdMinutesOf, providerErrorOf, type Registries } from '../../core/plugins/registries.ts';
import type { PaymentMethodInfo, PaymentProvider, ProviderStartResult } from '../../plugin-api.ts';
import type { Merchant } from '../merchants/index.ts';
import { linkItemsFrom, type ClaimLoss, type Collect, type CustomAmount, type HoldLoss, type Link, type LinkItem, type LinkState, type PayableLinkRow } from '../links/index.ts';
import type { Product } from '../products/index.ts';
import { lineItemsFromText, lineItemsToText, lineItemsTotal, type LineItem } from '../../core/line-items.ts';
import type { ReceiptKeys } from './receipt-keys.ts';

export const SESSION_TTL_MS = 2 * 60 * 60 * 1000;

/** How long an immediate-capture checkout holds its slot unless its provider says (`holdMinutes`). */
export const DEFAULT_HOLD_MINUTES = 30;

/** What the customer is told when an immediate-capture payment was refunded because the link filled up. */
export const LATE_REFUND_MESSAGE = 'Refunded in full: the payment limit was reached while this payment was on its way.';

/**
 * An immediate-capture checkout found no slot to hold: every slot left is being paid for by other
 * checkouts (409, `spots_held`, with `retryAt` and Retry-After), or the link is full or closed.
 * Nothing was written.
 */
export class NoSlotError extends AppError {
  constructor(readonly loss: HoldLoss, now: Date) {
    const minutes = loss.reason === 'all_held' ? minutesUntil(loss.retryAt, now) : 0;
    super(
      loss.reason === 'all_held' ? 'spots_held' : loss.reason,
      loss.reason === 'all_held' ? 409 : loss.reason === 'limit_reached' ? 410 : 404,
      loss.reason === 'all_held' ? `All remaining spots are being paid for. Try again in ${minutes} ${minutes === 1 ? 'minute' : 'minutes'}.` : loss.reason === 'limit_reached' ? 'Payment limit reached.' : 'This link no longer accepts payments.',
      loss.reason === 'all_held' ? { headers: { 'Retry-After': String(minutes * 60) } } : {},
    );
  }
}

/** Whole minutes from `now` until `at`, rounded up, at least 1 ("try again in N minutes"). */
export function minutesUntil(at: Date, now: Date): number {
  return Math.max(1, Math.ceil((at.getTime() - now.getTime()) / 60_000));
}

export type PaymentStatus = 'pending' | 'authorized' | 'paid' | 'failed' | 'voided' | 'refunded' | 'partially_refunded';

export interface LinkSnapshot {
  id: string;
  name: string;
  path: string | null;
  amount: number | null;
  currency: string;
}

export interface CheckoutSession {
  key: number;
  id: string;
  merchantKey: number;
  linkKey: number | null;
  amount: number;
  currency: string;
  quantity: number;
  /** What the checkout sold, line by line (empty: just the amount). */
  lineItems: LineItem[];
  customerName: string | null;
  customerEmail: string | null;
  link: LinkSnapshot | null;
  /** The pay page it started from (path and query), for "Cancel and go back". */
  backPath: string | null;
  /** The coupon the checkout was opened with (its amount is the total after it), or null. */
  discount: Discount | null;
  /** What the link's checkout collected beyond name and email. */
  collected: CollectedInput;
  /** The recurring plan the customer subscribes to, or null. */
  recurring: SessionPlan | null;
  status: 'open' | 'completed' | 'expired';
  expiresAt: Date;
  createdAt: Date;
}

/** A recurring plan a checkout sells: how often, a trial, and what each renewal charges. */
export interface SessionPlan {
  interval: 'day' | 'week' | 'month' | 'year';
  count: number;
  trialDays: number | null;
  /** Each renewal's amount (the plan's line), minor units in the checkout's currency. */
  renewalAmount: number;
  productId: string;
  productName: string;
}

/** A coupon applied to a checkout: what the payment carries (API `discount`, CSV, webhooks). */
export interface Discount {
  couponId: string;
  code: string;
  amountBefore: number;
  amountOff: number;
}

export interface Payment {
  key: number;
  id: string;
  merchantKey: number;
  linkKey: number | null;
  sessionKey: number | null;
  /** The customer paying, when known (a link sent to them or made for them). */
  customerKey: number | null;
  provider: string;
  providerRef: string | null;
  amount: number;
  currency: string;
  status: PaymentStatus;
  /** Refunded so far (succeeded refunds), minor units. */
  amountRefunded: number;
  failureCode: string | null;
  failureMessage: string | null;
  createdAt: Date;
  authorizedAt: Date | null;
  paidAt: Date | null;
  voidedAt: Date | null;
  /** How the customer paid, when the provider reported it (receipt, API `payment_method`). */
  paymentMethod: PaymentMethodInfo | null;
  /** The provider's dispute (chargeback) status, when the customer disputed the payment. */
  disputeStatus: string | null;
  /** The subscription (`sub_…`) this payment started or renewed, or null. */
  subscriptionId: string | null;
  /** A short display-safe code the provider gave the customer to quote to support (`checkout.setSupportReference`). */
  supportReference: string | null;
  /** The newest amount outcome its provider reported (`checkout.flagOutcome`) and the merchant's decision; null when none. */
  outcome: PaymentOutcome | null;
}

/** What arrived did not match the price (a crypto transfer): what came, and what the merchant decided. */
export interface PaymentOutcome {
  kind: 'underpaid' | 'overpaid' | 'paid_late';
  /** Everything that arrived, minor units. */
  amountReceived: number;
  /** null while it waits for the merchant. */
  resolution: 'accepted' | 'dismissed' | null;
  resolvedAt: Date | null;
}

/** What a receipt message says of a payment (deliveries compose receipts from it). */
export interface ReceiptDetails {
  key: number;
  id: string;
  merchantKey: number;
  linkKey: number | null;
  customerKey: number | null;
  status: PaymentStatus;
  amount: number;
  currency: string;
  /** What the payer entered at checkout. */
  payerName: string | null;
  payerEmail: string | null;
  /** The link's name when they paid (the checkout's snapshot), null for the open-amount page. */
  linkName: string | null;
  /** The customer's receipt page. */
  url: string;
  /** The subscription this payment started or renewed, if any. */
  subscriptionId: string | null;
}

/** What happened to an authorization, and where the customer goes next. */
export interface AuthorizeOutcome {
  /** `processing` while another call for the same payment is still capturing. */
  status: 'paid' | 'voided' | 'failed' | 'processing';
  /** `limit_reached` when the slot was lost; `capture_failed` when the provider refused the capture. */
  reason: string | null;
  payment: Payment;
}

/** A session's `discount` column (JSON) as a Discount. */
export const discountFrom = (raw: unknown): Discount | null => (typeof raw === 'string' && raw ? (JSON.parse(raw) as Discount) : null);

const sessionFrom = (r: any): CheckoutSession => ({
  key: r.id,
  id: r.public_id,
  merchantKey: r.merchant_id,
  linkKey: r.link_id,
  amount: Number(r.amount),
  currency: r.currency,
  quantity: r.quantity,
  lineItems: lineItemsFromText(r.line_items),
  customerName: r.customer_name,
  customerEmail: r.customer_email,
  link: r.link_snapshot ? (JSON.parse(r.link_snapshot) as LinkSnapshot | null) : null,
  backPath: r.back_path ?? null,
  discount: discountFrom(r.discount),
  collected: { phone: r.customer_phone ?? null, address: r.address ?? null, instructions: r.instructions ?? null, termsAccepted: Boolean(r.terms_accepted_at), fields: r.fields ? JSON.parse(r.fields) : null },
  recurring: r.recurring ? (JSON.parse(r.recurring) as SessionPlan) : null,
  status: r.status,
  expiresAt: toDate(r.expires_at),
  createdAt: toDate(r.created_at),
});

export const paymentFrom = (r: any): Payment => ({
  key: r.id,
  id: r.public_id,
  merchantKey: r.merchant_id,
  linkKey: r.link_id,
  sessionKey: r.checkout_session_id,
  customerKey: r.customer_id ?? null,
  provider: r.provider,
  providerRef: r.provider_ref,
  amount: Number(r.amount),
  currency: r.currency,
  status: r.status,
  amountRefunded: Number(r.amount_refunded ?? 0),
  failureCode: r.failure_code,
  failureMessage: r.failure_message,
  createdAt: toDate(r.created_at),
  authorizedAt: toDateOrNull(r.authorized_at),
  paidAt: toDateOrNull(r.paid_at),
  voidedAt: toDateOrNull(r.voided_at),
  paymentMethod: r.payment_method ? (JSON.parse(r.payment_method) as PaymentMethodInfo) : null,
  disputeStatus: r.dispute_status ?? null,
  subscriptionId: r.subscription_id ?? null,
  supportReference: r.support_reference ?? null,
  outcome: r.outcome ? { kind: r.outcome, amountReceived: Number(r.amount_received ?? 0), resolution: r.outcome_resolution ?? null, resolvedAt: toDateOrNull(r.outcome_resolved_at) } : null,
});

export interface CheckoutDeps {
  db: Db;
  clock: Clock;
  events: EventBus;
  jobs: JobQueue;
  registries: Registries;
  log: Logger;
  baseUrl: string;
  /** Signs receipt URLs: their `?k=` lets the customer manage what they bought (receipt-keys.ts). */
  receiptKeys: ReceiptKeys;
  /** The merchant's providers (Settings → Payments): which customers can use, and their settings. */
  providers: CheckoutProviders;
  /**
   * Runs in the transaction that marks a payment paid (e.g. stopping the paying customer's
   * reminders), so what a payment settles is settled atomically with it.
   */
  onPaid?: (trx: Trx, paid: { linkKey: number | null; customerKey: number | null }) => Promise<void>;
  /** Records a payer without a known customer as one (customers feature), in the paying transaction. */
  customers?: {
    matchOrCreate(trx: Trx, merchantKey: number, payer: { name: string; email: string }): Promise<number>;
    /** Saves the phone and address a paying customer entered to their record (a link that collects them). */
    recordContact?(trx: Trx, customerKey: number, contact: { phone: string | null; address: string | null }): Promise<void>;
  };
  /** The links feature's state machine: the payment-limit slot, counters, pay-page reads. */
  links: CheckoutLinks;
  /** A product by key (a product link's pay page shows it), and products by key (an items link's). */
  products: {
    getByKey(key: number): Promise<{ key: number; id: string; name: string; description: string | null; price: number; currency: string; active: boolean; deletedAt: Date | null } | null>;
    byKeys(keys: number[]): Promise<Map<number, Product>>;
  };
  /** Public ids that payment events name, read in the caller's transaction. */
  refs: EventRefResolvers;
  /** Hourly rollups (analytics), written in the transaction that changes what they count. */
  stats: PaymentStats;
  /** A customer's saved payment profile with a provider (customers feature), offered again at checkout. */
  profiles?: { find(customerKey: number, provider: string): Promise<{ ref: string; label: string } | null> };
  /** The coupons feature's redemptions: held with a checkout, redeemed with its payment, released when it fails. */
  coupons?: CheckoutCoupons;
  /** The subscriptions feature: records the subscription a paid recurring checkout started, in its transaction (answers its `sub_…`). */
  subscriptions?: { started(trx: Trx, s: { payment: Payment; plan: SessionPlan; payerName: string | null; payerEmail: string | null; paidAt: Date }): Promise<string> };
}

/** A renewal a provider charged (`recordRenewal`). */
export interface RenewalInput {
  merchantKey: number;
  linkKey: number | null;
  customerKey: number | null;
  provider: string;
  subscriptionId: string;
  /** The provider's invoice or charge id: one payment per (subscription, invoice). */
  invoiceRef: string;
  amount: number;
  currency: string;
  paymentMethod?: PaymentMethodInfo | null;
}

/** What checkout asks of the coupons feature (it owns the redemption counters), in checkout's transactions. */
export interface CheckoutCoupons {
  hold(trx: Trx, h: { couponKey: number; merchantKey: number; sessionKey: number; amountBefore: number; amountOff: number; currency: string; expiresAt: Date }): Promise<boolean>;
  redeem(trx: Trx, sessionKey: number, paymentId: string): Promise<'won' | 'lost' | 'none'>;
  release(trx: Trx, sessionKey: number): Promise<boolean>;
}

/** What checkout asks of the links feature (it owns paid_count, active and the link counters). */
export type CheckoutLinks = Pick<
  LinkState,
  'payableByPath' | 'payableRequest' | 'itemRows' | 'claimSlot' | 'releaseSlot' | 'holdSlot' | 'convertHold' | 'releaseHold' | 'holdsSlot' | 'earliestHoldEnd' | 'recordPayment' | 'recordRefund' | 'publicIdOf'
>;

/** Public ids by internal key, for event payloads (`q`: the emitting transaction). */
export interface EventRefResolvers {
  merchantIdOf(q: Queryable, merchantKey: number): Promise<string | null>;
  customerIdOf(q: Queryable, customerKey: number): Promise<string | null>;
}

/** The hourly rollups a payment moves (the analytics feature keeps them). */
export interface PaymentStats {
  /** A captured payment, counted in its link's hour. */
  paymentCaptured(trx: Trx, linkKey: number, paidAt: Date, amount: number): Promise<void>;
  /** A succeeded refund, taken off its link's revenue in the hour it happened. */
  paymentRefunded(trx: Trx, linkKey: number, at: Date, amount: number): Promise<void>;
}

/** What checkout needs of the per-merchant provider settings (the providers feature). */
export interface CheckoutProviders {
  /** Enabled and configured providers of a merchant, in registration order, with their parsed settings. */
  usable(merchantKey: number): Promise<{ provider: PaymentProvider<any>; settings: unknown }[]>;
  /** A provider's parsed settings for a merchant (enabled or not); null when not configured. */
  settingsFor(merchantKey: number, providerId: string): Promise<unknown | null>;
}

/** Attempts of `checkout.settle_retry` (exponential backoff from the job queue) before a capture or void counts as failed. */
export const SETTLE_RETRY_ATTEMPTS = 8;
/** The first retry of a capture or void that failed with a retryable error. */
export const SETTLE_RETRY_FIRST_MS = 30_000;

const isRetryable = (err: unknown) => providerErrorOf(err)?.retryable === true;

/**
 * How a provider call was reached (settle, a refund): right after the request, from the recovery job,
 * or from a retry job (its last attempt or not). A retryable error inside a retry job is rethrown so
 * the queue backs off; on the last attempt it counts as final.
 */
export type AttemptMode = 'inline' | 'recovery' | 'retry' | 'last_retry';

/**
 * How long an authorized payment may wait for its capture or void before the recovery job does it
 * (the request that claimed the slot died between its commit and the provider call).
 */
export const SETTLE_RECOVERY_MS = 5 * 60_000;

/** What a checkout needs of a link (a smart link, or a one-off request later). */
export type CheckoutLink = Pick<Link, 'key' | 'id' | 'name' | 'path' | 'amount' | 'currency'>;

/**
 * A smart link as its pay page needs it, with its product: the link in one fixed-SQL query (links
 * feature), a product link's product in a second by key; the pay page caches the result (hot path).
 */
export interface PayableLink extends CheckoutLink {
  merchantKey: number;
  kind: 'smart' | 'request';
  /** The customer a request (or a link sent to one customer) is for. */
  customerKey: number | null;
  /** A payment request past this time takes no payments. */
  expiresAt: Date | null;
  type: 'amount' | 'product' | 'items';
  /** The customer chooses the amount (an amount link without a fixed one). */
  customAmount: CustomAmount | null;
  /** An items link's lines with their products (empty for other types). */
  items: LinkItem[];
  description: string | null;
  paymentLimit: number | null;
  paidCount: number;
  /** Slots held by immediate-capture checkouts under way. */
  heldCount: number;
  active: boolean;
  inactiveReason: Link['inactiveReason'];
  showRemaining: boolean;
  /** Customers may enter a coupon code on the pay page. */
  allowCoupons: boolean;
  /** What the checkout collects beyond name and email (null: nothing more). */
  collect: Collect | null;
  redirectUrl: string | null;
  redirectTarget: 'same' | 'new';
  /** The link's pay-page look overrides, as stored (JSON; the branding feature reads it), or null. */
  branding: string | null;
  product: { key: number; id: string; name: string; description: string | null; price: number; currency: string; active: boolean } | null;
}

const payableFrom = (r: PayableLinkRow, product: Awaited<ReturnType<CheckoutDeps['products']['getByKey']>>): PayableLink => {
  const { productKey: _productKey, ...link } = r;
  return {
    ...link,
    items: [],
    product: product === null ? null : { key: product.key, id: product.id, name: product.name, description: product.description, price: product.price, currency: product.currency, active: product.active && !product.deletedAt },
  };
};

/** Why an authorization was voided instead of captured: the link's claim, or the coupon's (used up or closed meanwhile). */
export type VoidReason = ClaimLoss | 'coupon_unavailable';

/** What the customer is told of a void (or a full refund, for immediate capture). */
const LOSS_MESSAGES: Record<VoidReason, string> = {
  limit_reached: 'Payment limit reached',
  link_inactive: 'The link no longer accepts payments',
  coupon_unavailable: 'The coupon code was used up or withdrawn while this payment was on its way',
};

/** The reason on the refund row of an immediate-capture payment that lost its claim. */
const REFUND_REASONS: Record<VoidReason, string> = {
  limit_reached: 'Automatic: the payment limit was reached while the payment was on its way',
  link_inactive: 'Automatic: the link stopped accepting payments while the payment was on its way',
  coupon_unavailable: 'Automatic: the coupon code was used up while the payment was on its way',
};

export interface StartInput {
  amount: number;
  currency: string;
  quantity?: number;
  name?: string | null;
  email?: string | null;
  /** The customer paying, when known (a link sent to them or made for them). */
  customerKey?: number | null;
  /** The provider the customer chose (needed only when the merchant has several). */
  provider?: string | null;
  /** What the amount is made of (an items link's order, a payment request's list): recorded with the checkout. */
  lineItems?: readonly LineItem[];
  /** The pay page's path and query (`/acme/sale?c=…`, `/r/<token>`), where "Cancel and go back" returns. */
  backPath?: string | null;
  /**
   * A coupon the customer applied (quoted by the coupons feature): `amount` is already the total
   * after it. The checkout holds one of its redemptions in its start transaction; none left → a 422
   * on the `coupon` field and nothing written.
   */
  coupon?: { key: number; discount: Discount } | null;
  /** What the link's checkout collected (already validated): kept on the session for its payments. */
  collected?: CollectedInput | null;
  /** A recurring plan the customer subscribes to: only providers that bill subscriptions are used. */
  recurring?: SessionPlan | null;
}

/** What a customer entered beyond name and email (the link's `collect`). */
export interface CollectedInput {
  phone: string | null;
  address: string | null;
  instructions: string | null;
  termsAccepted: boolean;
  /** Custom fields by key. */
  fields: Record<string, string | number | boolean | null> | null;
}

/** The coupon was used up (or closed) between the quote and the checkout: 422 by the field. */
export const couponLostError = () => new ValidationError([{ field: 'coupon', code: 'coupon_used_up', message: 'This code has just been used up.' }]);

/** One renewal payment per (subscription, provider invoice): the unique `renewal_key`. */
const renewalKeyOf = (subscriptionId: string, invoiceRef: string) => `${subscriptionId}:${invoiceRef}`.slice(0, 191);

export function createCheckoutService(deps: CheckoutDeps) {
  const { db, clock, events, registries, log } = deps;

  /** The provider a new checkout uses: the customer's choice among the merchant's usable ones. */
  async function chooseProvider(merchantKey: number, wanted: string | null | undefined, subscription = false): Promise<{ provider: PaymentProvider<any>; settings: unknown }> {
    const usable = (await deps.providers.usable(merchantKey)).filter((u) => !subscription || u.provider.subscriptions === true);
    if (!usable.length && subscription) throw new ValidationError([{ field: 'plan', code: 'subscriptions_unavailable', message: 'Subscriptions cannot be paid online here yet. Please contact the business to subscribe.' }]);
    if (!usable.length) throw new AppError('no_payment_provider', 503, 'Payments are not available right now: this business has no payment method enabled.');
    if (wanted) {
      const chosen = usable.find((u) => u.provider.id === wanted);
      if (!chosen) throw new ValidationError([{ field: 'provider', code: 'invalid_provider', message: 'Choose one of the payment methods shown.' }]);
      return chosen;
    }
    if (usable.length > 1) throw new ValidationError([{ field: 'provider', code: 'provider_required', message: 'Choose how you want to pay.' }]);
    return usable[0];
  }

  function providerFor(payment: Payment): PaymentProvider<any> {
    const p = registries.providers.get(payment.provider);
    if (!p) throw new AppError('provider_unavailable', 503, `The payment provider "${payment.provider}" is not enabled.`);
    return p;
  }

  async function loadPayment(q: Db | Trx, where: Record<string, unknown>): Promise<Payment | null> {
    const r = await q('payments').where(where).first();
    return r ? paymentFrom(r) : null;
  }

  /** The public ids a payment event names (merchant, link, customer), read in the emitting transaction. */
  async function eventRefs(trx: Trx, keys: { merchantKey: number; linkKey: number | null; customerKey: number | null }): Promise<{ merchantId: string; linkId: string | null; customerId: string | null }> {
    const merchantId = (await deps.refs.merchantIdOf(trx, keys.merchantKey)) as string;
    const linkId = keys.linkKey === null ? null : await deps.links.publicIdOf(trx, keys.linkKey);
    const customerId = keys.customerKey === null ? null : await deps.refs.customerIdOf(trx, keys.customerKey);
    return { merchantId, linkId, customerId };
  }

  /** What every payment event carries. */
  async function paymentEvent(trx: Trx, payment: Payment) {
    return { ...(await eventRefs(trx, payment)), paymentId: payment.id, amount: payment.amount, currency: payment.currency, provider: payment.provider };
  }

  /** pending → failed (a no-op for a payment that already moved on), with payment.failed. */
  async function decline(payment: Payment, failure: { code: string; message: string }): Promise<void> {
    await inTransaction(db, async (trx) => {
      const n = await trx('payments')
        .where({ id: payment.key, status: 'pending' })
        .update({ status: 'failed', failure_code: failure.code.slice(0, 64), failure_message: failure.message.slice(0, 255), updated_at: clock.now() });
      if (n) await events.emit(trx, 'payment.failed', { ...(await paymentEvent(trx, payment)), reason: failure.code }, payment.merchantKey);
    });
  }

  /**
   * The second half of an authorization: capture (slot won) or void (slot lost) at the provider, then
   * record the result. Runs right after the claim, or later from the `checkout.settle` recovery job or
   * a `checkout.settle_retry` job; every write is conditional on the payment still being
   * `authorized`, so it finishes once. An immediate-capture provider already holds the money: it is
   * not captured again, and a lost slot is refunded in full instead of voided.
   */
  async function settle(payment: Payment, won: boolean, lostBecause: VoidReason, mode: AttemptMode): Promise<AuthorizeOutcome> {
    const paymentId = payment.id;
    const ref = { paymentId, providerRef: payment.providerRef, amount: payment.amount, currency: payment.currency };
    const p = providerFor(payment);
    const settings = (await deps.providers.settingsFor(payment.merchantKey, payment.provider)) ?? {};
    const immediate = captureModelOf(p, settings) === 'immediate';
    if (!won) {
      let refundRef: string | null = null;
      try {
        if (immediate) {
          const out = await p.refund({ ...ref, refundId: `${paymentId}_limit`, reason: lostBecause }, payment.amount, settings);
          refundRef = out && typeof out.providerRef === 'string' ? out.providerRef.slice(0, 191) : null;
        } else await p.void(ref, settings);
      } catch (err) {
        if (isRetryable(err) && mode !== 'last_retry') return retryLater(payment, won, lostBecause, mode, err);
        // The authorization lapses at the provider anyway; record and move on.
        log.error(immediate ? 'the refund of a payment that lost the payment-limit claim failed: refund it by hand' : 'void failed after losing the payment-limit claim', { paymentId, reason: lostBecause, error: err });
        if (immediate) {
          // The money was taken and could not be given back: flag the payment for the merchant.
          await inTransaction(db, async (trx) => {
            const n = await trx('payments').where({ id: payment.key, status: 'authorized' }).update({
              status: 'failed',
              failure_code: 'limit_refund_failed',
              failure_message: 'The payment limit was reached while this payment was on its way, and the automatic refund failed: refund it at the provider.',
              updated_at: clock.now(),
            });
            if (n) await events.emit(trx, 'payment.failed', { ...(await paymentEvent(trx, payment)), reason: lostBecause }, payment.merchantKey);
          });
          return service.outcomeOf(paymentId);
        }
      }
      await inTransaction(db, async (trx) => {
        const now = clock.now();
        const reason = LOSS_MESSAGES[lostBecause];
        // Immediate capture: the money came and went back in full; a refund row says so (never counted in revenue).
        const n = await trx('payments')
          .where({ id: payment.key, status: 'authorized' })
          .update(
            immediate
              ? { status: 'refunded', failure_code: lostBecause, failure_message: lostBecause === 'limit_reached' ? LATE_REFUND_MESSAGE : lostBecause === 'coupon_unavailable' ? 'Refunded in full: the coupon code was used up while this payment was on its way.' : `Refunded in full: the link stopped accepting payments while this payment was on its way.`, amount_refunded: payment.amount, refund_claimed: payment.amount, updated_at: now }
              : { status: 'voided', failure_code: lostBecause, failure_message: reason, voided_at: now, updated_at: now },
          );
        if (!n) return;
        if (immediate) {
          await trx('refunds').insert({
            public_id: publicId('re'),
            merchant_id: payment.merchantKey,
            payment_id: payment.key,
            amount: payment.amount,
            currency: payment.currency,
            status: 'succeeded',
            reason: REFUND_REASONS[lostBecause],
            provider_ref: refundRef,
            idempotency_key: `${paymentId}_limit`.slice(0, 64),
            created_at: now,
            updated_at: now,
          });
        }
        await events.emit(trx, 'payment.failed', { ...(await paymentEvent(trx, payment)), reason: lostBecause }, payment.merchantKey);
      });
      return service.outcomeOf(paymentId);
    }

    try {
      if (!immediate) await p.capture(ref, settings);
    } catch (err) {
      if (isRetryable(err) && mode !== 'last_retry') return retryLater(payment, won, lostBecause, mode, err);
      log.error('capture failed; releasing the payment-limit slot', { paymentId, error: err });
      const released = await inTransaction(db, async (trx) => {
        const n = await trx('payments').where({ id: payment.key, status: 'authorized' }).update({ status: 'failed', failure_code: 'capture_failed', failure_message: 'The payment could not be completed.', updated_at: clock.now() });
        if (!n) return false; // already settled elsewhere: its slot must not be released twice
        if (payment.linkKey !== null) await deps.links.releaseSlot(trx, payment.linkKey);
        if (payment.sessionKey !== null) await deps.coupons?.release(trx, payment.sessionKey);
        await events.emit(trx, 'payment.failed', { ...(await paymentEvent(trx, payment)), reason: 'capture_failed' }, payment.merchantKey);
        return true;
      });
      // Retries ran out: let go of the authorization too, so nothing is left holding the customer's money.
      if (released && mode === 'last_retry' && !immediate) {
        await p.void(ref, settings).catch((voidErr: unknown) => log.error('void after the last failed capture failed too', { paymentId, error: voidErr }));
      }
      return service.outcomeOf(paymentId);
    }

    await inTransaction(db, async (trx) => {
      const paidAt = clock.now();
      const n = await trx('payments').where({ id: payment.key, status: 'authorized' }).update({ status: 'paid', paid_at: paidAt, failure_code: null, failure_message: null, updated_at: paidAt });
      if (n) await recordPaid(trx, payment, paidAt);
    });
    return service.outcomeOf(paymentId);
  }

  /**
   * What a payment that just became paid settles, in the transaction that marked it (its slot is
   * already counted): the payer, the link's counters and rollups, the session, payment.succeeded.
   */
  async function recordPaid(trx: Trx, payment: Payment, paidAt: Date): Promise<void> {
    payment = await attributePayer(trx, payment);
    await deps.onPaid?.(trx, { linkKey: payment.linkKey, customerKey: payment.customerKey });
    if (payment.linkKey !== null) {
      await deps.links.recordPayment(trx, payment.linkKey, payment.amount);
      await deps.stats.paymentCaptured(trx, payment.linkKey, paidAt, payment.amount);
    }
    if (payment.sessionKey !== null) await trx('checkout_sessions').where({ id: payment.sessionKey }).update({ status: 'completed', updated_at: paidAt });
    await events.emit(trx, 'payment.succeeded', await paymentEvent(trx, payment), payment.merchantKey);
    // A recurring plan: the subscription starts with this payment (which took the subscriber's slot).
    const s = payment.sessionKey === null || !deps.subscriptions ? null : await trx('checkout_sessions').where({ id: payment.sessionKey }).first('recurring', 'customer_name', 'customer_email');
    if (s?.recurring) {
      const subscriptionId = await deps.subscriptions!.started(trx, { payment, plan: JSON.parse(s.recurring) as SessionPlan, payerName: s.customer_name ?? null, payerEmail: s.customer_email ?? null, paidAt });
      await trx('payments').where({ id: payment.key }).update({ subscription_id: subscriptionId });
    }
  }

  /**
   * A payer who came without a signed customer URL (`?c=`) or a payment request is recorded as they
   * entered themselves: matched to the merchant's customer with that email, or a new customer. Done
   * when the payment is paid (in its transaction), so abandoned checkouts create no customers.
   */
  async function attributePayer(trx: Trx, payment: Payment): Promise<Payment> {
    if (payment.sessionKey === null || !deps.customers) return payment;
    const s = await trx('checkout_sessions').where({ id: payment.sessionKey }).first('customer_name', 'customer_email', 'customer_phone', 'address');
    let customerKey = payment.customerKey;
    if (customerKey === null && s?.customer_email) {
      customerKey = await deps.customers.matchOrCreate(trx, payment.merchantKey, { name: s.customer_name ?? '', email: s.customer_email });
      await trx('payments').where({ id: payment.key }).update({ customer_id: customerKey });
    }
    // The phone and address the link collected go on the customer's record.
    if (customerKey !== null && (s?.customer_phone || s?.address)) await deps.customers.recordContact?.(trx, customerKey, { phone: s.customer_phone ?? null, address: s.address ?? null });
    return { ...payment, customerKey };
  }

  /**
   * A capture or void failed with a retryable error. Inside a retry job: throw, so the queue retries
   * with backoff. Otherwise: mark the payment (the recovery job leaves it to the retries) and queue
   * the first retry. Either way the payment stays `authorized` and the customer sees "processing".
   */
  async function retryLater(payment: Payment, won: boolean, reason: VoidReason, mode: AttemptMode, err: unknown): Promise<AuthorizeOutcome> {
    const what = won ? 'capture' : 'void';
    if (mode === 'retry') throw err;
    log.warn(`${what} failed with a retryable error; retrying with backoff`, { paymentId: payment.id, error: err });
    await inTransaction(db, async (trx) => {
      const n = await trx('payments')
        .where({ id: payment.key, status: 'authorized' })
        .update({ failure_code: `${what}_retrying`, failure_message: err instanceof Error ? err.message.slice(0, 255) : null, updated_at: clock.now() });
      if (!n) return;
      await deps.jobs.enqueue(trx, 'checkout.settle_retry', { paymentId: payment.id, won, reason }, {
        uniqueKey: `settle-retry:${payment.id}`,
        runAt: new Date(clock.now().getTime() + SETTLE_RETRY_FIRST_MS),
        maxAttempts: SETTLE_RETRY_ATTEMPTS,
      });
    });
    return service.outcomeOf(payment.id);
  }

  /** Whether a session's payments use immediate capture (its provider, with the merchant's settings today). */
  async function sessionIsImmediate(payment: Payment): Promise<boolean> {
    const p = registries.providers.get(payment.provider);
    if (!p) return false;
    return captureModelOf(p, (await deps.providers.settingsFor(payment.merchantKey, payment.provider)) ?? {}) === 'immediate';
  }

  /** A payable link with its product (a second query only for a product link). */
  async function withProduct(row: PayableLinkRow | null): Promise<PayableLink | null> {
    if (!row) return null;
    if (row.type === 'items') {
      const rows = (await deps.links.itemRows([row.key])).get(row.key) ?? [];
      return { ...payableFrom(row, null), items: linkItemsFrom(rows, await deps.products.byKeys(rows.map((r) => r.productKey))) };
    }
    return payableFrom(row, row.productKey === null ? null : await deps.products.getByKey(row.productKey));
  }

  const service = {
    /** The customer's receipt URL, with the key that lets them cancel a subscription or forget a card there. */
    receiptUrl(payment: Pick<Payment, 'id'>): string {
      return `${deps.baseUrl}/receipt/${payment.id}?k=${deps.receiptKeys.of(payment.id)}`;
    },

    /** Whether `key` (a receipt URL's `k`) is the key of this payment's receipt. */
    receiptKeyMatches(paymentId: string, key: unknown): boolean {
      return deps.receiptKeys.matches(paymentId, key);
    },

    /** Opens a checkout for a link (or a merchant's open-amount page) and hands it to the provider. */
    async start(merchant: Merchant, link: CheckoutLink | null, input: StartInput): Promise<{ session: CheckoutSession; payment: Payment; next: ProviderStartResult }> {
      // Callers validate what customers type; this guards the money columns against programming errors.
      // Only a plan's free trial may charge nothing today (the provider keeps the card for its end).
      const least = input.recurring?.trialDays ? 0 : 1;
      if (!Number.isSafeInteger(input.amount) || input.amount < least || input.amount > MAX_MINOR) throw new RangeError(`checkout amount out of range: ${input.amount}`);
      // The lines add up to what is charged, less a coupon's discount (its amount before is the lines' total).
      const off = input.coupon ? input.coupon.discount.amountOff : 0;
      const lines = input.lineItems ?? [];
      if (lines.length && (lineItemsTotal(lines) ?? Number.NaN) - off !== input.amount) throw new RangeError(`checkout amount ${input.amount} is not its line items' total less its discount`);
      if (input.coupon && input.coupon.discount.amountBefore - off !== input.amount) throw new RangeError(`checkout amount ${input.amount} is not the coupon's amount before less its discount`);
      if (input.recurring && (!Number.isSafeInteger(input.recurring.renewalAmount) || input.recurring.renewalAmount <= 0)) throw new RangeError(`renewal amount out of range: ${input.recurring.renewalAmount}`);
      const { provider: chosen, settings } = await chooseProvider(merchant.key, input.provider, Boolean(input.recurring));
      let immediate: boolean;
      try {
        immediate = captureModelOf(chosen, settings) === 'immediate';
      } catch (err) {
        throw new ServiceUnavailableError('The payment provider is not reachable right now. Please try again in a moment.', err);
      }
      const now = clock.now();
      const sessionId = publicId('cs');
      const paymentId = publicId('pay');
      const snapshot: LinkSnapshot | null = link ? { id: link.id, name: link.name, path: link.path, amount: link.amount, currency: link.currency } : null;
      // An immediate-capture checkout lives exactly as long as the slot it holds.
      const expiresAt = new Date(now.getTime() + (immediate ? holdMinutesOf(chosen, settings, DEFAULT_HOLD_MINUTES) * 60_000 : SESSION_TTL_MS));
      const holds = immediate && link !== null;
      /** The session and its pending payment, with `checkout.started`. */
      const open = async (trx: Trx): Promise<{ sessionKey: number; value: null }> => {
        const [sessionKey] = await trx('checkout_sessions').insert({
          public_id: sessionId,
          merchant_id: merchant.key,
          link_id: link?.key ?? null,
          amount: input.amount,
          currency: input.currency,
          quantity: input.quantity ?? 1,
          customer_name: input.name ?? null,
          customer_email: input.email ?? null,
          back_path: input.backPath && input.backPath.startsWith('/') && !input.backPath.startsWith('//') && input.backPath.length <= 512 ? input.backPath : null,
          link_snapshot: JSON.stringify(snapshot),
          line_items: lineItemsToText(input.lineItems ?? []),
          discount: input.coupon ? JSON.stringify(input.coupon.discount) : null,
          customer_phone: input.collected?.phone ?? null,
          address: input.collected?.address ?? null,
          instructions: input.collected?.instructions ?? null,
          terms_accepted_at: input.collected?.termsAccepted ? now : null,
          fields: input.collected?.fields ? JSON.stringify(input.collected.fields) : null,
          recurring: input.recurring ? JSON.stringify(input.recurring) : null,
          status: 'open',
          expires_at: expiresAt,
          created_at: now,
          updated_at: now,
        });
        await trx('payments').insert({
          public_id: paymentId,
          merchant_id: merchant.key,
          link_id: link?.key ?? null,
          checkout_session_id: Number(sessionKey),
          customer_id: input.customerKey ?? null,
          provider: chosen.id,
          amount: input.amount,
          currency: input.currency,
          status: 'pending',
          created_at: now,
          updated_at: now,
        });
        if (input.coupon && deps.coupons) {
          const { key: couponKey, discount } = input.coupon;
          const held = await deps.coupons.hold(trx, { couponKey, merchantKey: merchant.key, sessionKey: Number(sessionKey), amountBefore: discount.amountBefore, amountOff: discount.amountOff, currency: input.currency, expiresAt });
          if (!held) throw couponLostError();
        }
        await events.emit(trx, 'checkout.started', { ...(await eventRefs(trx, { merchantKey: merchant.key, linkKey: link?.key ?? null, customerKey: input.customerKey ?? null })), sessionId, paymentId, amount: input.amount, currency: input.currency, provider: chosen.id }, merchant.key);
        return { sessionKey: Number(sessionKey), value: null };
      };
      await inTransaction(db, async (trx) => {
        if (!holds) return void (await open(trx));
        // The links feature decides first (one conditional UPDATE); only a checkout that holds a slot is written.
        const hold = await deps.links.holdSlot(trx, link.key, expiresAt, () => open(trx));
        if (!hold.won) throw new NoSlotError(hold, now);
      });
      const session = (await service.getSession(sessionId))!;
      const payment = (await loadPayment(db, { public_id: paymentId }))!;
      // A checkout tied to a customer record names it (a provider may offer to save the card) with what they saved before.
      const customerId = input.customerKey != null ? await deps.refs.customerIdOf(db, input.customerKey) : null;
      const saved = customerId !== null && deps.profiles ? await deps.profiles.find(input.customerKey!, chosen.id) : null;
      let next: ProviderStartResult;
      try {
        next = await chosen.start({
          id: session.id,
          paymentId,
          merchant: { id: merchant.id, handle: merchant.handle, name: merchant.name, email: merchant.email, currency: merchant.currency, timezone: merchant.timezone, brandColor: merchant.brandColor },
          amount: input.amount,
          currency: input.currency,
          description: link?.name ?? `Payment to ${merchant.name}`,
          customer: { name: input.name ?? null, email: input.email ?? null, id: customerId, savedProfile: saved ? { ref: saved.ref, label: saved.label } : null },
          returnUrl: service.receiptUrl({ id: paymentId }),
          expiresAt: expiresAt.toISOString(),
          recurring: input.recurring ? { interval: input.recurring.interval, intervalCount: input.recurring.count, trialDays: input.recurring.trialDays, renewalAmount: input.recurring.renewalAmount, productName: input.recurring.productName } : null,
        }, settings);
      } catch (err) {
        // The provider is down or refused: this attempt can never be paid; say so and keep the record.
        await decline(payment, { code: 'provider_unavailable', message: 'The payment provider could not be reached.' });
        // The slot and the coupon redemption it held go back.
        if (holds || input.coupon) await service.releaseHold(paymentId);
        throw new ServiceUnavailableError('The payment provider is not reachable right now. Please try again in a moment.', err);
      }
      return { session, payment, next };
    },

    /**
     * A renewal a provider charged, written `paid` in the caller's transaction (the subscriptions
     * feature's, which moves the period on with it): counted in the link's payments, revenue and
     * rollups, never in its paid_count (the subscriber holds one slot), with `payment.succeeded`.
     * Null when this invoice is recorded already (answer that payment's id instead).
     */
    async recordRenewal(trx: Trx, r: RenewalInput): Promise<{ paymentId: string; created: boolean }> {
      if (!Number.isSafeInteger(r.amount) || r.amount <= 0 || r.amount > MAX_MINOR) throw new RangeError(`renewal amount out of range: ${r.amount}`);
      const renewalKey = renewalKeyOf(r.subscriptionId, r.invoiceRef);
      const existing = await service.renewalPaymentOf(trx, r.subscriptionId, r.invoiceRef);
      if (existing) return { paymentId: existing, created: false };
      const now = clock.now();
      const paymentId = publicId('pay');
      const [key] = await trx('payments').insert({
        public_id: paymentId,
        merchant_id: r.merchantKey,
        link_id: r.linkKey,
        checkout_session_id: null,
        customer_id: r.customerKey,
        provider: r.provider,
        provider_ref: r.invoiceRef.slice(0, 191),
        amount: r.amount,
        currency: r.currency,
        status: 'paid',
        payment_method: r.paymentMethod ? JSON.stringify(r.paymentMethod) : null,
        subscription_id: r.subscriptionId,
        renewal_key: renewalKey,
        authorized_at: now,
        paid_at: now,
        created_at: now,
        updated_at: now,
      });
      if (r.linkKey !== null) {
        await deps.links.recordPayment(trx, r.linkKey, r.amount);
        await deps.stats.paymentCaptured(trx, r.linkKey, now, r.amount);
      }
      const payment = (await loadPayment(trx, { id: Number(key) }))!;
      await events.emit(trx, 'payment.succeeded', await paymentEvent(trx, payment), r.merchantKey);
      return { paymentId, created: true };
    },

    /** The payment recorded for this invoice of a subscription (`recordRenewal`), or null. */
    async renewalPaymentOf(q: Queryable, subscriptionId: string, invoiceRef: string): Promise<string | null> {
      return (await q('payments').where({ renewal_key: renewalKeyOf(subscriptionId, invoiceRef) }).first('public_id'))?.public_id ?? null;
    },

    /** A payment request (`/r/<token>`) by its link's public id, with its merchant key. */
    async findPayableRequest(linkId: string): Promise<PayableLink | null> {
      return withProduct(await deps.links.payableRequest(linkId));
    },

    /** A live (not deleted) smart link by its canonical path, with its product. */
    async findPayableLink(merchantKey: number, path: string): Promise<PayableLink | null> {
      return withProduct(await deps.links.payableByPath(merchantKey, path));
    },

    async getSession(sessionId: string): Promise<CheckoutSession | null> {
      const r = await db('checkout_sessions').where({ public_id: sessionId }).first();
      return r ? sessionFrom(r) : null;
    },

    async sessionByKey(key: number): Promise<CheckoutSession | null> {
      const r = await db('checkout_sessions').where({ id: key }).first();
      return r ? sessionFrom(r) : null;
    },

    async getPayment(paymentId: string): Promise<Payment | null> {
      return loadPayment(db, { public_id: paymentId });
    },

    /** A payment's key by its public id (null when there is none). */
    async paymentKeyOf(paymentId: string): Promise<number | null> {
      const r = await db('payments').where({ public_id: paymentId }).first('id');
      return r ? Number(r.id) : null;
    },

    /** What receipts say of payments, by key: two queries (payments, their checkouts) for the whole batch. */
    async receiptDetails(keys: number[]): Promise<Map<number, ReceiptDetails>> {
      const out = new Map<number, ReceiptDetails>();
      const unique = [...new Set(keys)];
      if (!unique.length) return out;
      const rows = (await db('payments').whereIn('id', unique)) as any[];
      const sessionKeys = [...new Set(rows.map((r) => r.checkout_session_id).filter((k) => k !== null && k !== undefined).map(Number))];
      const sessions = new Map<number, CheckoutSession>();
      if (sessionKeys.length) for (const s of (await db('checkout_sessions').whereIn('id', sessionKeys)) as any[]) sessions.set(Number(s.id), sessionFrom(s));
      for (const r of rows) {
        const p = paymentFrom(r);
        const s = p.sessionKey === null ? null : sessions.get(Number(p.sessionKey)) ?? null;
        out.set(Number(p.key), { key: Number(p.key), id: p.id, merchantKey: Number(p.merchantKey), linkKey: p.linkKey === null ? null : Number(p.linkKey), customerKey: p.customerKey === null ? null : Number(p.customerKey), status: p.status, amount: p.amount, currency: p.currency, payerName: s?.customerName ?? null, payerEmail: s?.customerEmail ?? null, linkName: s?.link?.name ?? null, url: service.receiptUrl(p), subscriptionId: p.subscriptionId });
      }
      return out;
    },

    /** A payment and the checkout it belongs to, for its receipt page. */
    async receipt(paymentId: string): Promise<{ payment: Payment; session: CheckoutSession | null } | null> {
      const payment = await loadPayment(db, { public_id: paymentId });
      if (!payment) return null;
      const r = payment.sessionKey === null ? null : await db('checkout_sessions').where({ id: payment.sessionKey }).first();
      return { payment, session: r ? sessionFrom(r) : null };
    },

    /** The session's newest payment (a declined card leaves a failed one; a retry opens a new one). */
    async currentPayment(session: CheckoutSession): Promise<Payment | null> {
      const r = await db('payments').where({ checkout_session_id: session.key }).orderBy('id', 'desc').first();
      return r ? paymentFrom(r) : null;
    },

    /** True while a customer may still pay in this session. */
    isOpen(session: CheckoutSession): boolean {
      return session.status === 'open' && session.expiresAt.getTime() > clock.now().getTime();
    },

    /**
     * After a decline: a fresh pending payment on the same (still open) session. Two retries at once
     * (a double-clicked card form) must not open two payable attempts, so the session row is locked
     * first and the newest attempt read under that lock.
     */
    async retry(sessionId: string): Promise<Payment> {
      const session = await service.getSession(sessionId);
      if (!session) throw new NotFoundError();
      if (!service.isOpen(session)) throw new AppError('checkout_expired', 410, 'This checkout has expired. Go back to the payment page to start again.');
      const newest = await service.currentPayment(session);
      const immediate = newest !== null && (await sessionIsImmediate(newest));
      const paymentId = await inTransaction(db, async (trx) => {
        const now = clock.now();
        const locked = await trx('checkout_sessions').where({ id: session.key, status: 'open' }).update({ updated_at: now });
        if (!locked) throw new AppError('checkout_finished', 409, 'This checkout is already finished.');
        const r = await trx('payments').where({ checkout_session_id: session.key }).orderBy('id', 'desc').first();
        const current = r ? paymentFrom(r) : null;
        if (current && current.status === 'pending') return current.id;
        if (current && current.status !== 'failed') throw new AppError('checkout_finished', 409, 'This checkout is already finished.');
        // An immediate-capture checkout pays only while it holds its slot (a retry keeps the hold).
        if (immediate && session.linkKey !== null && !(await deps.links.holdsSlot(trx, session.linkKey, session.key))) {
          throw new AppError('checkout_expired', 410, 'This checkout has expired. Go back to the payment page to start again.');
        }
        const id = publicId('pay');
        await trx('payments').insert({
          public_id: id,
          merchant_id: session.merchantKey,
          link_id: session.linkKey,
          checkout_session_id: session.key,
          customer_id: current?.customerKey ?? null,
          provider: current?.provider ?? (await chooseProvider(session.merchantKey, null)).provider.id,
          amount: session.amount,
          currency: session.currency,
          status: 'pending',
          created_at: now,
          updated_at: now,
        });
        return id;
      });
      return (await loadPayment(db, { public_id: paymentId }))!;
    },

    /** The provider declined the card: the payment fails; the customer may retry. */
    async decline(paymentId: string, failure: { code: string; message: string }): Promise<Payment> {
      const payment = await loadPayment(db, { public_id: paymentId });
      if (!payment) throw new NotFoundError();
      await decline(payment, failure);
      return (await loadPayment(db, { id: payment.key }))!;
    },

    /**
     * The provider authorized the payment. Claims a slot on the link atomically, then captures or
     * voids through the provider. Safe to call again for the same payment (answers its outcome).
     */
    async authorize(paymentId: string, providerRef: string): Promise<AuthorizeOutcome> {
      const payment = await loadPayment(db, { public_id: paymentId });
      if (!payment) throw new NotFoundError();
      const now = clock.now();
      let won = false;
      let lostBecause: VoidReason = 'limit_reached';
      const claimed = await inTransaction(db, async (trx) => {
        const n = await trx('payments')
          .where({ id: payment.key, status: 'pending' })
          .update({ status: 'authorized', provider_ref: providerRef, authorized_at: now, updated_at: now });
        if (n === 0) return false; // already authorized/finished: report what happened
        const authorized = await paymentEvent(trx, payment);
        await events.emit(trx, 'payment.authorized', authorized, payment.merchantKey);
        // The coupon first (its redemption was held with the checkout): a lost one voids like a lost slot.
        const coupon = payment.sessionKey === null || !deps.coupons ? 'none' : await deps.coupons.redeem(trx, payment.sessionKey, paymentId);
        if (coupon === 'lost') {
          won = false;
          lostBecause = 'coupon_unavailable';
        } else if (payment.linkKey === null) {
          won = true;
        } else {
          const by = { merchantId: authorized.merchantId, paymentId };
          // A held slot (immediate capture) becomes this payment; without one (a card, or a hold that
          // lapsed) the links feature decides with one conditional UPDATE — all in this transaction.
          const held = payment.sessionKey === null ? null : await deps.links.convertHold(trx, payment.linkKey, payment.sessionKey, by);
          const claim = held && held.won ? held : held && held.reason !== 'none' ? held : await deps.links.claimSlot(trx, payment.linkKey, by);
          won = claim.won;
          if (!claim.won) {
            lostBecause = claim.reason as ClaimLoss;
            // No payment after all: the coupon's redemption goes back.
            if (coupon === 'won') await deps.coupons!.release(trx, payment.sessionKey!);
          }
        }
        // Intent, recorded with the claim: if this process dies before the provider call below, the
        // job captures or voids the authorization later, so no slot and no authorization is stranded.
        await deps.jobs.enqueue(trx, 'checkout.settle', { paymentId, won, reason: lostBecause }, { uniqueKey: `settle:${paymentId}`, runAt: new Date(now.getTime() + SETTLE_RECOVERY_MS) });
        return true;
      });
      if (!claimed) return service.outcomeOf(paymentId);
      return settle({ ...payment, providerRef }, won, lostBecause, 'inline');
    },

    /**
     * Gives back the slot the payment's checkout holds (immediate capture): a provider that learns the
     * customer abandoned or their session expired unpaid calls this; so does a failed start. Safe to
     * repeat; false when nothing was held. A payment that still arrives later claims like a card.
     */
    async releaseHold(paymentId: string): Promise<boolean> {
      const payment = await loadPayment(db, { public_id: paymentId });
      if (!payment || payment.sessionKey === null) return false;
      const { linkKey, sessionKey } = payment;
      return inTransaction(db, async (trx) => {
        // The coupon redemption the checkout held goes back with it.
        const coupon = (await deps.coupons?.release(trx, sessionKey)) ?? false;
        return (linkKey !== null && (await deps.links.releaseHold(trx, linkKey, sessionKey))) || coupon;
      });
    },

    /**
     * The merchant's decision on an amount outcome its provider reported (`flagOutcome`):
     *   accept   a payment that did not go through (underpaid, or paid after its checkout ended) becomes
     *            `paid` for what arrived, claiming a slot like a card would (one conditional UPDATE): on
     *            a full or closed link it stays flagged (409 `limit_reached` / `link_inactive`) — a
     *            late payment never pushes a link over its limit. On a paid payment (overpaid, or more
     *            sent late) accepting keeps the excess: nothing else changes.
     *   dismiss  the merchant settled it off-line (returned the money from their wallet): recorded, no
     *            status changes.
     * Once: a decided outcome answers 409 `outcome_resolved`; a payment without one 409 `no_outcome`.
     */
    async resolveOutcome(merchantKey: number, paymentId: string, decision: 'accept' | 'dismiss'): Promise<Payment> {
      const payment = await loadPayment(db, { public_id: paymentId, merchant_id: merchantKey });
      if (!payment) throw new NotFoundError('No such payment.');
      const o = payment.outcome;
      if (!o) throw new AppError('no_outcome', 409, 'Nothing arrived that needs a decision on this payment.');
      if (o.resolution) throw new AppError('outcome_resolved', 409, `This was already ${o.resolution === 'accepted' ? 'accepted' : 'settled off-line'}.`);
      const now = clock.now();
      const counts = decision === 'accept' && payment.status === 'failed';
      if (counts && o.amountReceived <= 0) throw new AppError('no_outcome', 409, 'Nothing arrived to accept.');
      await inTransaction(db, async (trx) => {
        const resolved = { outcome_resolution: decision === 'accept' ? 'accepted' : 'dismissed', outcome_resolved_at: now, updated_at: now };
        const guard = { id: payment.key, status: payment.status, outcome: o.kind };
        if (!counts) {
          const n = await trx('payments').where(guard).whereNull('outcome_resolution').update(resolved);
          if (!n) throw new AppError('outcome_resolved', 409, 'This payment changed meanwhile: look at it again.');
          return;
        }
        // The payment first (the row lock decides between two merchants' clicks), then the slot.
        const n = await trx('payments')
          .where(guard)
          .whereNull('outcome_resolution')
          .update({ ...resolved, status: 'paid', amount: o.amountReceived, paid_at: now, failure_code: null, failure_message: null });
        if (!n) throw new AppError('outcome_resolved', 409, 'This payment changed meanwhile: look at it again.');
        const paid = { ...payment, amount: o.amountReceived };
        if (payment.linkKey !== null) {
          const claim = await deps.links.claimSlot(trx, payment.linkKey, { merchantId: (await eventRefs(trx, payment)).merchantId, paymentId });
          if (!claim.won) {
            throw new AppError(
              claim.reason,
              409,
              claim.reason === 'limit_reached'
                ? 'The link’s payment limit is reached (or its last spots are held by checkouts under way): accepting this payment would count it over the limit, so it stays flagged. Return the money to the customer, or raise the link’s limit and accept it then.'
                : 'The link no longer accepts payments (closed, expired or deleted), so this payment cannot be counted on it: return the money to the customer, or reopen the link and accept it then.',
            );
          }
        }
        await recordPaid(trx, paid, now);
      });
      return (await loadPayment(db, { id: payment.key }))!;
    },

    /** When a slot of this link held by a checkout under way may free up (the earliest hold's end); null without holds. */
    holdsFreeAt(linkKey: number): Promise<Date | null> {
      return deps.links.earliestHoldEnd(linkKey);
    },

    async outcomeOf(paymentId: string): Promise<AuthorizeOutcome> {
      const payment = (await loadPayment(db, { public_id: paymentId }))!;
      // A payment refunded because it lost the claim (immediate capture) never went through: `voided` to its provider.
      const lost = payment.status === 'refunded' && payment.paidAt === null;
      const status = lost || payment.status === 'voided' ? 'voided' : payment.status === 'paid' || payment.status === 'refunded' || payment.status === 'partially_refunded' ? 'paid' : payment.status === 'failed' ? 'failed' : 'processing';
      return { status, reason: payment.failureCode, payment };
    },
  };
  deps.jobs.define<{ paymentId: string; won: boolean; reason: VoidReason }>('checkout.settle', async ({ paymentId, won, reason }) => {
    const payment = await loadPayment(db, { public_id: paymentId });
    if (!payment || payment.status !== 'authorized') return; // settled right after the claim, as usual
    // A retryable failure already has its own retry job with backoff: leave the payment to it.
    if (payment.failureCode === 'capture_retrying' || payment.failureCode === 'void_retrying') return;
    log.warn('settling an authorization its request left behind', { paymentId, won });
    await settle(payment, won, reason, 'recovery');
  });
  deps.jobs.define<{ paymentId: string; won: boolean; reason: VoidReason }>('checkout.settle_retry', async ({ paymentId, won, reason }, job) => {
    const payment = await loadPayment(db, { public_id: paymentId });
    if (!payment || payment.status !== 'authorized') return;
    await settle(payment, won, reason, job.attempts >= job.maxAttempts ? 'last_retry' : 'retry');
  });

  return service;
}

export type CheckoutService = ReturnType<typeof createCheckoutService>;
