/**
 * The outbox. Every state change others react to writes an `events` row in the same transaction,
 * and with it one `hooks.run` job per subscribed handler that wants the event, keyed by (event id,
 * handler id) and carrying the event, so each handler runs at least once and can use the event id as
 * its idempotency key. A crash between commit and side effect loses nothing.
 */
import type { Db, Queryable } from './db.ts';
import { toDate } from './db.ts';
import { insertRows } from './bulk.ts';
import type { Clock } from './clock.ts';
import type { Logger } from './log.ts';
import { sortableId } from './ids.ts';
import type { JobQueue } from './jobs.ts';
import { afterCommit, type ChangeFeed } from './changes.ts';
import { z } from 'zod';

/** The closed set of event names; the same names are the outgoing webhook event types. */
export const EVENT_TYPES = [
  'merchant.created',
  'merchant.updated',
  'api_key.created',
  'api_key.revoked',
  'link.created',
  'link.updated',
  'link.deleted',
  'link.viewed',
  'checkout.started',
  'payment.authorized',
  'payment.succeeded',
  'payment.failed',
  'payment.refunded',
  'payment.disputed',
  'payment.underpaid',
  'payment.overpaid',
  'payment.paid_late',
  'link.limit_reached',
  'link.expired',
  'delivery.sent',
  'delivery.failed',
  'reminder.sent',
  'payment_request.created',
  'payment_request.sent',
  'payment_request.paid',
  'payment_request.expired',
  'payment_request.cancelled',
  'payment_request.refreshed',
  'subscription.created',
  'subscription.renewed',
  'subscription.canceled',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

export function isEventType(name: string): name is EventType {
  return (EVENT_TYPES as readonly string[]).includes(name);
}

/** Subscribing to or emitting a name outside EVENT_TYPES: a programming error, caught at startup. */
export class UnknownEventTypeError extends TypeError {
  readonly code = 'unknown_event_type';
  constructor(readonly eventType: string) {
    super(`unknown event type "${eventType}"; known: ${EVENT_TYPES.join(', ')}`);
    this.name = 'UnknownEventTypeError';
  }
}

/** A payload that does not match its event's schema (checked outside production): a programming error. */
export class InvalidEventPayloadError extends TypeError {
  readonly code = 'invalid_event_payload';
  constructor(readonly eventType: string, issues: { path: PropertyKey[]; message: string }[]) {
    super(`${eventType} payload does not match its schema: ${issues.map((i) => `${i.path.map(String).join('.') || '(payload)'}: ${i.message}`).join('; ')}`);
    this.name = 'InvalidEventPayloadError';
  }
}

/**
 * A `hooks.run` job for a handler this process has not loaded (a plugin missing here but present
 * in another process, or one removed since). Retryable, so a process that has it can run it; if no
 * process ever does, the job ends `dead` with this error instead of being silently dropped.
 */
export class HandlerNotLoadedError extends Error {
  readonly code = 'handler_not_loaded';
  constructor(readonly subscriptionId: string) {
    super(`no handler ${subscriptionId} is loaded in this process`);
    this.name = 'HandlerNotLoadedError';
  }
}

/** A public id with its prefix, e.g. `pay_3kTq…`. */
const publicIdOf = (prefix: string) => z.string().startsWith(`${prefix}_`);
const merchantId = publicIdOf('mer');
/** Integer minor units (cents), as everywhere in Paylink. */
const minorUnits = z.number().int().nonnegative();
const currency = z.string().regex(/^[A-Z]{3}$/);
/** What every payment event carries: whose money, for what, from whom, through which provider. */
const paymentFields = {
  merchantId,
  paymentId: publicIdOf('pay'),
  /** The link paid through; null for the merchant's open-amount page (`/:handle`). */
  linkId: publicIdOf('lnk').nullable(),
  /** The customer record paying, when known (a link sent to them or made for them). */
  customerId: publicIdOf('cus').nullable(),
  amount: minorUnits,
  currency,
  /** The provider's id, e.g. `sandbox`. */
  provider: z.string(),
};
/** What a provider that cannot ask for an exact amount (crypto transfers) saw arrive. */
const amountOutcome = {
  ...paymentFields,
  /** What arrived, in the payment's currency's minor units (a stablecoin counts 1:1). */
  amountReceived: minorUnits,
  /** The on-chain transactions that paid it (`0x…`), oldest first. */
  txHashes: z.array(z.string().regex(/^0x[0-9a-f]{64}$/)).max(50),
};
const deliveryFields = {
  merchantId,
  deliveryId: publicIdOf('dlv'),
  /** Null for a receipt of a payment on the open-amount page. */
  linkId: publicIdOf('lnk').nullable(),
  customerId: publicIdOf('cus').nullable(),
  /** The channel's id, e.g. `email`, `sms`, or one a plugin registered. */
  channel: z.string(),
  kind: z.enum(['initial', 'reminder', 'expiry', 'receipt']),
};

/** What every subscription event carries; `paymentId` is the payment that started or renewed it (null when canceled). */
const subscriptionFields = {
  merchantId,
  subscriptionId: publicIdOf('sub'),
  linkId: publicIdOf('lnk').nullable(),
  customerId: publicIdOf('cus').nullable(),
  provider: z.string(),
  /** Each renewal's amount. */
  amount: minorUnits,
  currency,
  status: z.enum(['trialing', 'active', 'past_due', 'canceled']),
  currentPeriodEnd: z.iso.datetime(),
  paymentId: publicIdOf('pay').nullable(),
};

/**
 * The shape of each event's payload, checked by tests against what the code really stores (and
 * reusable by anything that must validate a payload, such as outgoing webhooks). Objects are strict:
 * a field is added here first, then emitted. Every payload names its merchant by public id.
 */
export const EVENT_PAYLOAD_SCHEMAS = {
  'merchant.created': z.strictObject({ merchantId, handle: z.string(), name: z.string() }),
  'merchant.updated': z.strictObject({ merchantId, handle: z.string(), changed: z.array(z.string()) }),
  'api_key.created': z.strictObject({ merchantId, apiKeyId: publicIdOf('key'), name: z.string() }),
  'api_key.revoked': z.strictObject({ merchantId, apiKeyId: publicIdOf('key') }),
  'link.created': z.strictObject({
    merchantId,
    linkId: publicIdOf('lnk'),
    kind: z.enum(['smart', 'request']),
    type: z.enum(['amount', 'product', 'items']),
    name: z.string(),
    path: z.string().nullable(),
    amount: minorUnits.nullable(),
    currency,
    productId: publicIdOf('prod').nullable(),
  }),
  'link.updated': z.strictObject({ merchantId, linkId: publicIdOf('lnk'), changed: z.array(z.string()) }),
  'link.deleted': z.strictObject({ merchantId, linkId: publicIdOf('lnk'), path: z.string().nullable() }),
  'link.viewed': z.strictObject({
    merchantId,
    linkId: publicIdOf('lnk'),
    viewId: publicIdOf('vw'),
    viewedAt: z.iso.datetime(),
    browser: z.string().nullable(),
    os: z.string().nullable(),
    device: z.string().nullable(),
    referer: z.string().nullable(),
  }),
  'checkout.started': z.strictObject({ ...paymentFields, sessionId: publicIdOf('cs') }),
  'payment.authorized': z.strictObject(paymentFields),
  'payment.succeeded': z.strictObject(paymentFields),
  'payment.failed': z.strictObject({ ...paymentFields, reason: z.string() }),
  'payment.refunded': z.strictObject({
    merchantId,
    paymentId: publicIdOf('pay'),
    refundId: publicIdOf('re'),
    linkId: publicIdOf('lnk').nullable(),
    amount: minorUnits.positive(),
    currency,
    amountRefunded: minorUnits,
    status: z.enum(['refunded', 'partially_refunded']),
    reason: z.string().nullable(),
  }),
  'payment.disputed': z.strictObject({
    merchantId,
    paymentId: publicIdOf('pay'),
    linkId: publicIdOf('lnk').nullable(),
    amount: minorUnits,
    currency,
    provider: z.string(),
    status: z.string(),
    reason: z.string().nullable(),
  }),
  'payment.underpaid': z.strictObject(amountOutcome),
  'payment.overpaid': z.strictObject(amountOutcome),
  'payment.paid_late': z.strictObject(amountOutcome),
  'link.limit_reached': z.strictObject({ merchantId, linkId: publicIdOf('lnk'), limit: z.number().int().positive(), paymentId: publicIdOf('pay') }),
  'link.expired': z.strictObject({ merchantId, linkId: publicIdOf('lnk'), customerId: publicIdOf('cus').nullable(), expiredAt: z.iso.datetime() }),
  'delivery.sent': z.strictObject({ ...deliveryFields, providerMessageId: z.string() }),
  'delivery.failed': z.strictObject({ ...deliveryFields, error: z.string() }),
  'reminder.sent': z.strictObject({
    merchantId,
    planId: publicIdOf('rem'),
    linkId: publicIdOf('lnk'),
    customerId: publicIdOf('cus'),
    number: z.number().int().positive(),
    max: z.number().int().positive(),
  }),
  'payment_request.created': z.strictObject({
    merchantId,
    requestId: publicIdOf('req'),
    linkId: publicIdOf('lnk'),
    reference: z.string().nullable(),
    amount: minorUnits,
    currency,
    source: z.enum(['api', 'dashboard', 'text_to_pay', 'import']),
  }),
  'payment_request.sent': z.strictObject({
    merchantId,
    requestId: publicIdOf('req'),
    linkId: publicIdOf('lnk'),
    reference: z.string().nullable(),
    deliveryId: publicIdOf('dlv'),
    channel: z.string(),
  }),
  'payment_request.paid': z.strictObject({ merchantId, requestId: publicIdOf('req'), linkId: publicIdOf('lnk'), reference: z.string().nullable(), paymentId: publicIdOf('pay') }),
  'payment_request.expired': z.strictObject({ merchantId, requestId: publicIdOf('req'), linkId: publicIdOf('lnk'), reference: z.string().nullable(), expiredAt: z.iso.datetime() }),
  'payment_request.cancelled': z.strictObject({ merchantId, requestId: publicIdOf('req'), linkId: publicIdOf('lnk'), reference: z.string().nullable() }),
  'payment_request.refreshed': z.strictObject({ merchantId, requestId: publicIdOf('req'), newRequestId: publicIdOf('req'), reference: z.string().nullable() }),
  'subscription.created': z.strictObject(subscriptionFields),
  'subscription.renewed': z.strictObject(subscriptionFields),
  'subscription.canceled': z.strictObject({ ...subscriptionFields, canceledBy: z.enum(['merchant', 'customer', 'provider']) }),
} satisfies Record<EventType, z.ZodType>;

type PayloadOf<T extends EventType> = z.infer<(typeof EVENT_PAYLOAD_SCHEMAS)[T]>;

/**
 * The event catalogue: the payload of each event, as hook handlers and outgoing webhooks receive it.
 * Every payload carries `merchantId`, the merchant's public id. Ids are public (`pay_…`, `lnk_…`);
 * amounts are integer minor units with an ISO 4217 currency. Changes within an apiVersion are
 * additive (new events, new fields).
 * @example hooks.on('payment.succeeded', (e) => log.info('paid', { payment: e.payload.paymentId, amount: e.payload.amount }))
 */
export interface EventPayloads {
  /**
   * A merchant signed up.
   * @example { "merchantId": "mer_3kTq…", "handle": "acme", "name": "Acme Coffee" }
   */
  'merchant.created': PayloadOf<'merchant.created'>;
  /**
   * A merchant changed their settings; `changed` names the settings.
   * @example { "merchantId": "mer_3kTq…", "handle": "acme", "changed": ["name", "brand_color"] }
   */
  'merchant.updated': PayloadOf<'merchant.updated'>;
  /**
   * An API key was created (its secret is never in an event).
   * @example { "merchantId": "mer_3kTq…", "apiKeyId": "key_9fLm…", "name": "Zapier" }
   */
  'api_key.created': PayloadOf<'api_key.created'>;
  /**
   * An API key was revoked.
   * @example { "merchantId": "mer_3kTq…", "apiKeyId": "key_9fLm…" }
   */
  'api_key.revoked': PayloadOf<'api_key.revoked'>;
  /**
   * A link was created: a smart link (`/acme/pottery-class`) or a one-off payment request (`/r/…`).
   * `amount` is null for a product link (the product's price applies) and `productId` null for an
   * amount link.
   * @example { "merchantId": "mer_3kTq…", "linkId": "lnk_7Hd2…", "kind": "smart", "type": "amount", "name": "Pottery class", "path": "pottery-class", "amount": 4500, "currency": "EUR", "productId": null }
   */
  'link.created': PayloadOf<'link.created'>;
  /**
   * A link was edited; `changed` names the fields (`name`, `path`, `amount`, `active`, `tags`, …).
   * @example { "merchantId": "mer_3kTq…", "linkId": "lnk_7Hd2…", "changed": ["amount", "active"] }
   */
  'link.updated': PayloadOf<'link.updated'>;
  /**
   * A link was deleted; `path` is the one it had (now free again).
   * @example { "merchantId": "mer_3kTq…", "linkId": "lnk_7Hd2…", "path": "pottery-class" }
   */
  'link.deleted': PayloadOf<'link.deleted'>;
  /**
   * A person (not a bot or prefetch) viewed a pay page. Emitted only while some handler subscribes:
   * views are numerous. The IP is never in the event.
   * @example { "merchantId": "mer_3kTq…", "linkId": "lnk_7Hd2…", "viewId": "vw_Qk1…", "viewedAt": "2026-03-02T09:00:00.000Z", "browser": "Safari", "os": "iOS", "device": "mobile", "referer": "https://www.instagram.com" }
   */
  'link.viewed': PayloadOf<'link.viewed'>;
  /**
   * A customer submitted the pay page: a checkout session and its pending payment exist and the
   * customer is on their way to the provider.
   * @example { "merchantId": "mer_3kTq…", "sessionId": "cs_Zt8…", "paymentId": "pay_4Rb…", "linkId": "lnk_7Hd2…", "customerId": null, "amount": 4500, "currency": "EUR", "provider": "sandbox" }
   */
  'checkout.started': PayloadOf<'checkout.started'>;
  /**
   * The provider authorized the payment; core now claims a slot on the link and captures (then
   * `payment.succeeded`) or voids (then `payment.failed` with reason `limit_reached`).
   * @example { "merchantId": "mer_3kTq…", "paymentId": "pay_4Rb…", "linkId": "lnk_7Hd2…", "customerId": "cus_x2P…", "amount": 4500, "currency": "EUR", "provider": "sandbox" }
   */
  'payment.authorized': PayloadOf<'payment.authorized'>;
  /**
   * The money is captured: the payment is `paid` and counts towards the link's limit and revenue.
   * After-payment actions run on this event.
   * @example { "merchantId": "mer_3kTq…", "paymentId": "pay_4Rb…", "linkId": "lnk_7Hd2…", "customerId": "cus_x2P…", "amount": 4500, "currency": "EUR", "provider": "sandbox" }
   */
  'payment.succeeded': PayloadOf<'payment.succeeded'>;
  /**
   * The payment did not go through. `reason` is a code: the provider's decline code (e.g.
   * `card_declined`), `provider_unavailable`, `capture_failed`, `expired` (the provider's checkout
   * ended unpaid), or — for an authorization voided
   * because the link could not take it — `limit_reached` / `link_inactive`.
   * @example { "merchantId": "mer_3kTq…", "paymentId": "pay_4Rb…", "linkId": "lnk_7Hd2…", "customerId": null, "amount": 4500, "currency": "EUR", "provider": "sandbox", "reason": "card_declined" }
   */
  'payment.failed': PayloadOf<'payment.failed'>;
  /**
   * Money went back to the customer (from the dashboard, the API, or the provider). `amount` is this
   * refund; `amountRefunded` all refunds of the payment so far. A refund never reopens a limit slot.
   * @example { "merchantId": "mer_3kTq…", "paymentId": "pay_4Rb…", "refundId": "re_9Kd…", "linkId": "lnk_7Hd2…", "amount": 1000, "currency": "EUR", "amountRefunded": 1000, "status": "partially_refunded", "reason": "Cancelled class" }
   */
  'payment.refunded': PayloadOf<'payment.refunded'>;
  /**
   * The customer disputed a payment at their bank (a chargeback), or the dispute's status changed
   * (`status` is the provider's: `needs_response`, `under_review`, `won`, `lost` …). The payment is
   * flagged on the dashboard; `amount` is what is disputed.
   * @example { "merchantId": "mer_3kTq…", "paymentId": "pay_4Rb…", "linkId": "lnk_7Hd2…", "amount": 4500, "currency": "EUR", "provider": "stripe", "status": "needs_response", "reason": "fraudulent" }
   */
  'payment.disputed': PayloadOf<'payment.disputed'>;
  /**
   * Less than the amount arrived before the checkout ended (a crypto transfer short of the price):
   * the payment failed (`expired`) and the merchant decides — accept what came, or settle the rest
   * with the customer. `amountReceived` is what arrived.
   * @example { "merchantId": "mer_3kTq…", "paymentId": "pay_4Rb…", "linkId": "lnk_7Hd2…", "customerId": null, "amount": 2500, "currency": "USD", "provider": "crypto-evm", "amountReceived": 1250, "txHashes": ["0x5c50…"] }
   */
  'payment.underpaid': PayloadOf<'payment.underpaid'>;
  /**
   * More than the amount arrived: the payment is paid (`payment.succeeded` too) and the excess
   * (`amountReceived - amount`) is the merchant's to return.
   * @example { "merchantId": "mer_3kTq…", "paymentId": "pay_4Rb…", "linkId": "lnk_7Hd2…", "customerId": null, "amount": 2500, "currency": "USD", "provider": "crypto-evm", "amountReceived": 3000, "txHashes": ["0x5c50…"] }
   */
  'payment.overpaid': PayloadOf<'payment.overpaid'>;
  /**
   * A transfer arrived after the checkout ended (within the provider's watch window): nothing is
   * counted towards the link's limit; the merchant decides (keep it as paid off-line, or return it).
   * @example { "merchantId": "mer_3kTq…", "paymentId": "pay_4Rb…", "linkId": "lnk_7Hd2…", "customerId": null, "amount": 2500, "currency": "USD", "provider": "crypto-evm", "amountReceived": 2500, "txHashes": ["0x5c50…"] }
   */
  'payment.paid_late': PayloadOf<'payment.paid_late'>;
  /**
   * The payment `paymentId` took the link's last slot: the link is now inactive (`limit_reached`).
   * @example { "merchantId": "mer_3kTq…", "linkId": "lnk_7Hd2…", "limit": 50, "paymentId": "pay_4Rb…" }
   */
  'link.limit_reached': PayloadOf<'link.limit_reached'>;
  /**
   * A link passed its expiry unpaid (payment requests expire) and is now inactive (`expired`).
   * @example { "merchantId": "mer_3kTq…", "linkId": "lnk_7Hd2…", "customerId": "cus_x2P…", "expiredAt": "2026-03-16T09:00:00.000Z" }
   */
  'link.expired': PayloadOf<'link.expired'>;
  /**
   * A message about a link left through a channel. `kind` is `initial` (the link sent), `reminder`,
   * `expiry` or `receipt`; `providerMessageId` is the channel's id for it.
   * @example { "merchantId": "mer_3kTq…", "deliveryId": "dlv_8uN…", "linkId": "lnk_7Hd2…", "customerId": "cus_x2P…", "channel": "sms", "kind": "initial", "providerMessageId": "0A0000001234" }
   */
  'delivery.sent': PayloadOf<'delivery.sent'>;
  /**
   * A message could not be sent and will not be retried (a permanent refusal, or retries used up).
   * @example { "merchantId": "mer_3kTq…", "deliveryId": "dlv_8uN…", "linkId": "lnk_7Hd2…", "customerId": "cus_x2P…", "channel": "sms", "kind": "reminder", "error": "Invalid phone number" }
   */
  'delivery.failed': PayloadOf<'delivery.failed'>;
  /**
   * A reminder plan sent its `number`th of `max` reminders (the messages follow as deliveries).
   * @example { "merchantId": "mer_3kTq…", "planId": "rem_5Ja…", "linkId": "lnk_7Hd2…", "customerId": "cus_x2P…", "number": 2, "max": 5 }
   */
  'reminder.sent': PayloadOf<'reminder.sent'>;
  /**
   * A payment request was created (API, dashboard, Text-to-Pay or an import); `linkId` is the
   * request link its payments are made on.
   * @example { "merchantId": "mer_3kTq…", "requestId": "req_8Gk2…", "linkId": "lnk_7Hd2…", "reference": "INV-1042", "amount": 4500, "currency": "EUR", "source": "api" }
   */
  'payment_request.created': PayloadOf<'payment_request.created'>;
  /**
   * A payment request's message left on one channel (one event per channel it was sent on, after
   * that message's `delivery.sent`); reminders and the last reminder before expiry are `delivery.sent` only.
   * @example { "merchantId": "mer_3kTq…", "requestId": "req_8Gk2…", "linkId": "lnk_7Hd2…", "reference": "INV-1042", "deliveryId": "dlv_8uN…", "channel": "email" }
   */
  'payment_request.sent': PayloadOf<'payment_request.sent'>;
  /**
   * A payment request was cancelled: its URL answers 404 from now on and no payment can be made on it.
   * @example { "merchantId": "mer_3kTq…", "requestId": "req_8Gk2…", "linkId": "lnk_7Hd2…", "reference": "INV-1042" }
   */
  'payment_request.cancelled': PayloadOf<'payment_request.cancelled'>;
  /**
   * Every use of a payment request is paid (a single-use request: its payment succeeded); `paymentId`
   * is the payment that completed it. Emitted once, after `payment.succeeded`.
   * @example { "merchantId": "mer_3kTq…", "requestId": "req_8Gk2…", "linkId": "lnk_7Hd2…", "reference": "INV-1042", "paymentId": "pay_4Rb…" }
   */
  'payment_request.paid': PayloadOf<'payment_request.paid'>;
  /**
   * A payment request passed its expiry unpaid (within a minute, after `link.expired`). Emitted once.
   * @example { "merchantId": "mer_3kTq…", "requestId": "req_8Gk2…", "linkId": "lnk_7Hd2…", "reference": "INV-1042", "expiredAt": "2026-03-09T09:00:00.000Z" }
   */
  'payment_request.expired': PayloadOf<'payment_request.expired'>;
  /**
   * The customer of an expired request asked for a new link (the refresh flow): `newRequestId` has the
   * same terms and was sent to the contact on file; `reference` is the new one's.
   * @example { "merchantId": "mer_3kTq…", "requestId": "req_8Gk2…", "newRequestId": "req_2Hn7…", "reference": "INV-1042-R1" }
   */
  'payment_request.refreshed': PayloadOf<'payment_request.refreshed'>;
  /**
   * A customer subscribed to a recurring plan: its first payment was captured (`paymentId`, also
   * `payment.succeeded`) and took one slot of the link's payment limit. `amount` is each renewal's.
   * @example { "merchantId": "mer_3kTq…", "subscriptionId": "sub_5Hq…", "linkId": "lnk_7Hd2…", "customerId": "cus_x2P…", "provider": "sandbox", "amount": 900, "currency": "EUR", "status": "active", "currentPeriodEnd": "2026-04-02T09:00:00.000Z", "paymentId": "pay_4Rb…" }
   */
  'subscription.created': PayloadOf<'subscription.created'>;
  /**
   * A renewal was charged: `paymentId` is its new paid payment of the link (also `payment.succeeded`;
   * it counts in payments and revenue, never in the payment limit), and the period moved on.
   * @example { "merchantId": "mer_3kTq…", "subscriptionId": "sub_5Hq…", "linkId": "lnk_7Hd2…", "customerId": "cus_x2P…", "provider": "sandbox", "amount": 900, "currency": "EUR", "status": "active", "currentPeriodEnd": "2026-05-02T09:00:00.000Z", "paymentId": "pay_8Zc…" }
   */
  'subscription.renewed': PayloadOf<'subscription.renewed'>;
  /**
   * The subscription ended: the merchant canceled it (`canceledBy: "merchant"`), the customer did from
   * their receipt page (`"customer"`), or the provider did (the customer canceled there, or renewals
   * kept failing). No renewal follows.
   * @example { "merchantId": "mer_3kTq…", "subscriptionId": "sub_5Hq…", "linkId": "lnk_7Hd2…", "customerId": "cus_x2P…", "provider": "stripe", "amount": 900, "currency": "EUR", "status": "canceled", "currentPeriodEnd": "2026-05-02T09:00:00.000Z", "paymentId": null, "canceledBy": "merchant" }
   */
  'subscription.canceled': PayloadOf<'subscription.canceled'>;
}

export interface PaylinkEvent<T extends EventType = EventType> {
  /** `evt_…`: stable across retries; use it as the idempotency key of any side effect. */
  id: string;
  type: T;
  payload: EventPayloads[T];
  createdAt: Date;
}

export type EventHandler<T extends EventType = EventType> = (event: PaylinkEvent<T>) => Promise<void> | void;

interface Subscription {
  id: string;
  type: EventType;
  handler: EventHandler<any>;
  /** Returns false when the owner (a plugin) is disabled; its queued runs are then skipped. */
  enabled: () => boolean;
  /**
   * Asked when the event is emitted, inside the emitter's transaction `q` (read through it, never the
   * pool; keep it cheap — it runs for every event of the type): false means no run is queued for it
   * (nobody it concerns).
   */
  wants?: (event: PaylinkEvent & { merchantId: number | null }, q: Queryable) => boolean | Promise<boolean>;
  /** The same, when only the merchant decides: asked once per merchant of the events emitted together. */
  wantsMerchant?: (merchantId: number | null, q: Queryable) => boolean | Promise<boolean>;
  /**
   * The same for all the events of the type emitted together, at once: one answer per event, in
   * order. For a filter that reads the database, so a batch of hundreds costs a query or two, not
   * one per event (on SQLite those all run before the event loop turns).
   */
  wantsMany?: (events: (PaylinkEvent & { merchantId: number | null })[], q: Queryable) => Promise<boolean[]>;
}

interface EventRow {
  id: number;
  public_id: string;
  type: EventType;
  merchant_id: number | null;
  payload: string;
  created_at: unknown;
}

function fromRow(r: EventRow): PaylinkEvent & { merchantId: number | null } {
  return { id: r.public_id, type: r.type, payload: JSON.parse(r.payload), createdAt: toDate(r.created_at), merchantId: r.merchant_id };
}

/** An event as committed listeners see it (in this process, right after its transaction commits). */
/** An event as its `events.dispatch` and `hooks.run` jobs carry it (the row's columns, payload parsed). */
interface CarriedEvent {
  type: EventType;
  merchantId: number | null;
  payload: Record<string, unknown>;
  /** ISO 8601, as `created_at` was written. */
  createdAt: string;
}

export interface CommittedEvent {
  type: EventType;
  payload: Record<string, unknown>;
  merchantKey: number | null;
}


export class EventBus {
  private readonly subs = new Map<string, Subscription>();
  private readonly committed = new Set<(e: CommittedEvent) => void>();

  /**
   * `checkPayloads` validates every emitted payload against EVENT_PAYLOAD_SCHEMAS and throws on a
   * mismatch (development and tests: the whole suite then proves the catalogue; production trusts the types).
   */
  constructor(private readonly deps: { db: Db; clock: Clock; jobs: JobQueue; log: Logger; changes?: ChangeFeed; checkPayloads?: boolean }) {
    // Only jobs queued before events fanned out on emit (an upgrade) dispatch.
    deps.jobs.define<{ eventId: string }>('events.dispatch', (p) => this.dispatch(p.eventId));
    deps.jobs.define<{ eventId: string; subscriptionId: string; event?: CarriedEvent }>('hooks.run', (p) => this.runHandler(p.eventId, p.subscriptionId, p.event));
  }

  /**
   * Subscribes a handler. `id` must be stable across restarts (it keys the per-handler job), e.g.
   * `plugin:<plugin-id>:<event>:<n>`.
   */
  subscribe<T extends EventType>(
    type: T,
    id: string,
    handler: EventHandler<T>,
    enabled: () => boolean = () => true,
    /**
     * Checked when the event is emitted, in its transaction (with the merchant's internal key): false
     * queues no run, e.g. a merchant without webhook endpoints. `{ merchant }` when the merchant alone
     * decides: asked once per merchant of events emitted together (a sweep's hundreds), not per event;
     * `{ many }` to answer for all the events emitted together at once.
     */
    wants?: Subscription['wants'] | { merchant: NonNullable<Subscription['wantsMerchant']> } | { many: NonNullable<Subscription['wantsMany']> },
  ): void {
    if (!isEventType(type)) throw new UnknownEventTypeError(String(type));
    if (this.subs.has(id)) throw new Error(`a handler with id ${id} is already subscribed`);
    this.subs.set(id, { id, type, handler, enabled, ...(typeof wants === 'function' ? { wants } : wants && 'merchant' in wants ? { wantsMerchant: wants.merchant } : wants ? { wantsMany: wants.many } : {}) });
  }

  /** True when some handler listens for `type` (so a high-volume event can skip the outbox when nobody does). */
  hasSubscribers(type: EventType): boolean {
    for (const s of this.subs.values()) if (s.type === type) return true;
    return false;
  }

  /**
   * Calls `fn` with each event emitted in this process once its transaction commits: a best-effort,
   * in-process signal (live dashboards). Handlers that must not miss an event subscribe instead.
   */
  onCommitted(fn: (e: CommittedEvent) => void): () => void {
    this.committed.add(fn);
    return () => this.committed.delete(fn);
  }

  /**
   * Records an event in the caller's transaction. `quiet` skips the change signal that drops cached
   * pay pages: for events that change nothing a pay page shows (a view).
   */
  async emit<T extends EventType>(trx: Queryable, type: T, payload: EventPayloads[T], merchantId: number | null = null, opts: { quiet?: boolean } = {}): Promise<string> {
    if (!isEventType(type)) throw new UnknownEventTypeError(String(type));
    if (this.deps.checkPayloads) {
      const checked = EVENT_PAYLOAD_SCHEMAS[type].safeParse(payload);
      if (!checked.success) throw new InvalidEventPayloadError(type, checked.error.issues);
    }
    const id = sortableId('evt');
    const createdAt = this.deps.clock.now();
    await trx('events').insert({ public_id: id, type, merchant_id: merchantId, payload: JSON.stringify(payload), created_at: createdAt });
    // Fanned out here, in the same transaction: one hooks.run job per handler it concerns, each
    // carrying the event, so a run never reads it back (and an event nobody wants costs one insert).
    const carried: CarriedEvent = { type, merchantId, payload: payload as Record<string, unknown>, createdAt: createdAt.toISOString() };
    await this.fanOut(trx, type, [{ eventId: id, carried }]);
    if (!opts.quiet) this.deps.changes?.afterCommit(trx);
    if (this.committed.size && !opts.quiet) {
      const e: CommittedEvent = { type, payload: payload as Record<string, unknown>, merchantKey: merchantId };
      afterCommit(trx, () => {
        for (const fn of this.committed) fn(e);
      });
    }
    return id;
  }

  /**
   * Records many events of one type in the caller's transaction (a sweep's hundreds of
   * `reminder.sent`): one multi-row insert, and their handlers' runs as emit queues them. Returns their ids.
   */
  async emitMany<T extends EventType>(trx: Queryable, type: T, items: { payload: EventPayloads[T]; merchantId: number | null }[], opts: { quiet?: boolean } = {}): Promise<string[]> {
    if (!isEventType(type)) throw new UnknownEventTypeError(String(type));
    if (!items.length) return [];
    if (this.deps.checkPayloads) {
      for (const { payload } of items) {
        const checked = EVENT_PAYLOAD_SCHEMAS[type].safeParse(payload);
        if (!checked.success) throw new InvalidEventPayloadError(type, checked.error.issues);
      }
    }
    const now = this.deps.clock.now();
    const ids = items.map(() => sortableId('evt'));
    await insertRows(trx, 'events', ['public_id', 'type', 'merchant_id', 'payload', 'created_at'], items.map((it, i) => [ids[i], type, it.merchantId, JSON.stringify(it.payload), now]));
    // Fanned out as emit does, in the same transaction; each merchant asked once per handler.
    const createdAt = now.toISOString();
    await this.fanOut(trx, type, items.map((it, i) => ({ eventId: ids[i], carried: { type, merchantId: it.merchantId, payload: it.payload as Record<string, unknown>, createdAt } })));
    if (!opts.quiet) this.deps.changes?.afterCommit(trx);
    if (this.committed.size && !opts.quiet) {
      const all: CommittedEvent[] = items.map((it) => ({ type, payload: it.payload as Record<string, unknown>, merchantKey: it.merchantId }));
      afterCommit(trx, () => {
        for (const e of all) for (const fn of this.committed) fn(e);
      });
    }
    return ids;
  }

  async get(eventId: string): Promise<(PaylinkEvent & { merchantId: number | null }) | null> {
    const row = (await this.deps.db('events').where({ public_id: eventId }).first()) as EventRow | undefined;
    return row ? fromRow(row) : null;
  }

  /** Newest first, for the dashboard's activity. */
  async listForMerchant(merchantId: number, limit = 50): Promise<PaylinkEvent[]> {
    const rows = (await this.deps.db('events').where({ merchant_id: merchantId }).orderBy('id', 'desc').limit(limit)) as EventRow[];
    return rows.map(fromRow);
  }

  /** The event a job carries, or (a job queued before jobs carried it) the stored one. */
  private async carried(eventId: string, carried: CarriedEvent | undefined): Promise<(PaylinkEvent & { merchantId: number | null }) | null> {
    return carried ? this.fromCarried(eventId, carried) : this.get(eventId);
  }

  private fromCarried(eventId: string, c: CarriedEvent): PaylinkEvent & { merchantId: number | null } {
    return { id: eventId, type: c.type, payload: c.payload as never, createdAt: new Date(c.createdAt), merchantId: c.merchantId };
  }

  /**
   * Queues, in `q`, one `hooks.run` job per (event, subscribed handler that wants it), carrying the
   * event and keyed so a rerun adds none. A handler that decides by the merchant alone is asked once
   * per merchant of the events.
   */
  private async fanOut(q: Queryable, type: EventType, events: { eventId: string; carried: CarriedEvent }[]): Promise<void> {
    const subs = [...this.subs.values()].filter((s) => s.type === type);
    if (!subs.length) return;
    const byMerchant = new Map<string, boolean>();
    const runs: { payload: { eventId: string; subscriptionId: string; event: CarriedEvent }; uniqueKey: string }[] = [];
    // Batch filters answer for every event at once, before the loop.
    const many = new Map<string, boolean[]>();
    for (const s of subs) {
      if (!s.wantsMany) continue;
      const answers = await s.wantsMany(events.map((e) => this.fromCarried(e.eventId, e.carried)), q);
      if (answers.length !== events.length) throw new Error(`the event filter of ${s.id} answered ${answers.length} times for ${events.length} events`);
      many.set(s.id, answers);
    }
    for (let i = 0; i < events.length; i++) {
      const { eventId, carried } = events[i];
      let event: (PaylinkEvent & { merchantId: number | null }) | null = null;
      for (const s of subs) {
        if (s.wantsMany && !many.get(s.id)![i]) continue;
        if (s.wantsMerchant) {
          const key = `${s.id}|${carried.merchantId}`;
          let yes = byMerchant.get(key);
          if (yes === undefined) byMerchant.set(key, (yes = Boolean(await s.wantsMerchant(carried.merchantId, q))));
          if (!yes) continue;
        }
        if (s.wants && !(await s.wants((event ??= this.fromCarried(eventId, carried)), q))) continue;
        runs.push({ payload: { eventId, subscriptionId: s.id, event: carried }, uniqueKey: `hook:${eventId}:${s.id}` });
      }
    }
    if (runs.length === 1) await this.deps.jobs.enqueue(q, 'hooks.run', runs[0].payload, { uniqueKey: runs[0].uniqueKey });
    else if (runs.length) await this.deps.jobs.enqueueMany(q, 'hooks.run', runs);
  }

  /**
   * An `events.dispatch` job: how events were fanned out before emit did it (one queued before an
   * upgrade still runs). The runs are queued in one transaction; their unique keys make a re-run add none.
   */
  private async dispatch(eventId: string): Promise<void> {
    const event = await this.get(eventId);
    if (!event) return;
    const carried: CarriedEvent = { type: event.type, merchantId: event.merchantId, payload: event.payload as Record<string, unknown>, createdAt: event.createdAt.toISOString() };
    await this.deps.db.transaction((trx) => this.fanOut(trx, event.type, [{ eventId, carried }]));
  }

  private async runHandler(eventId: string, subscriptionId: string, carried?: CarriedEvent): Promise<void> {
    const sub = this.subs.get(subscriptionId);
    if (!sub) throw new HandlerNotLoadedError(subscriptionId);
    if (!sub.enabled()) {
      // Its owner (a plugin) is disabled: the run is skipped for good, not postponed.
      this.deps.log.info('skipping hook of a disabled handler', { eventId, subscriptionId });
      return;
    }
    const event = await this.carried(eventId, carried);
    if (!event) return;
    const { merchantId: _internal, ...publicEvent } = event;
    await sub.handler(publicEvent);
  }
}
