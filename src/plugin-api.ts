/**
 * The Paylink plugin contract, apiVersion 1. Built-in plugins import only this module, exactly as a
 * third-party npm package would. Changes within an apiVersion are additive.
 *
 * @example
 * import { definePlugin, z } from 'paylink/plugin-api';
 * export default definePlugin({
 *   id: 'action-slack', version: '1.0.0', apiVersion: 1,
 *   config: z.object({ webhookUrl: z.url() }),
 *   register(api, config) {
 *     api.hooks.on('payment.succeeded', async (event) => { ... use event.id as idempotency key ... });
 *   },
 * });
 */
import express, { type RequestHandler, type Router } from 'express';
import type { z } from 'zod';
import type { EventHandler, EventType, PaylinkEvent, EventPayloads } from './core/events.ts';
import type { Logger } from './core/log.ts';

/** The host's zod: plugins build their config and settings schemas with it (no zod of their own). */
export { z } from 'zod';

export type { EventType, PaylinkEvent, EventPayloads, Logger };

export const PLUGIN_API_VERSION = 1;

/**
 * Body parsers for plugin routes (no parser runs before them), so a plugin needs no express of its
 * own. `rawBody` leaves `req.body` a Buffer of exactly the bytes sent, whatever the content type —
 * what a webhook signature is computed over; `formBody` parses `application/x-www-form-urlencoded`
 * into an object of strings. A body over `limit` answers 413 before your handler runs.
 *
 * @example
 * api.routes.post('/webhook', rawBody({ limit: '64kb' }), async (req, res) => { verify(req.body) … });
 */
export function rawBody(opts: { limit?: string } = {}): RequestHandler {
  return express.raw({ type: () => true, limit: opts.limit ?? '64kb' });
}

/** @see rawBody */
export function formBody(opts: { limit?: string } = {}): RequestHandler {
  return express.urlencoded({ extended: false, limit: opts.limit ?? '16kb' });
}

/** Plugin ids are `<kind>-<vendor>` (e.g. `channel-email`) and are persisted: never rename one. */
export const PLUGIN_ID_PATTERN = /^[a-z][a-z0-9]*(-[a-z0-9]+)+$/;

export interface PluginDefinition<C extends z.ZodType = z.ZodType> {
  id: string;
  version: string;
  /** The contract version this plugin was written against. */
  apiVersion: number;
  description?: string;
  /** Validates this plugin's settings (from PAYLINK_PLUGIN_<ID> as JSON, plus host-provided defaults). */
  config?: C;
  /** Absolute path of the plugin's Eta templates, rendered with `api.views.render(name)`. */
  viewsDir?: string;
  register(api: PluginApi, config: z.infer<C>): void | Promise<void>;
}

/** Identity function that gives a plugin definition its types. */
export function definePlugin<C extends z.ZodType>(def: PluginDefinition<C>): PluginDefinition<C> {
  return def;
}

/** The merchant as plugins see it. */
export interface PluginMerchant {
  id: string;
  handle: string;
  name: string;
  email: string;
  currency: string;
  timezone: string;
  brandColor: string;
}

// ---------------------------------------------------------------------------------------------
// Providers

/**
 * A payment provider: hosts (or redirects to) the page where the customer pays, and moves money when
 * core asks. Core owns the payment's state machine and the payment-limit claim; a provider only
 * reports what the customer's payment method did, through `api.services.checkout`.
 *
 * Flow: the customer submits the pay page → core creates a pending payment and calls `start()` →
 * the customer pays on the provider's page → the provider's own route (a return URL or a signed
 * webhook under `api.routes`, mounted at `/p/<plugin-id>/`) calls `checkout.authorize(paymentId,
 * providerRef)` → core claims a slot and calls `capture()` (slot won) or `void()` (slot lost).
 *
 * Webhooks: plugin routes are THE way a provider hears from its vendor. No body parser runs before
 * them, so a route that checks a signature over the raw body adds `rawBody()` from this module. A webhook
 * answers 2xx once it has recorded the outcome, 4xx for what a retry will never fix (a bad signature,
 * a `ServiceError` that is not `retryable`, e.g. a payment that is not this provider's), and 5xx for
 * a transient failure (a `retryable` ServiceError, the database) so the vendor retries.
 *
 * Per-merchant settings: a merchant enables providers in Settings → Payments (and
 * `PATCH /api/v1/providers/:id`). `merchantSettings.schema` validates what they enter; the keys listed
 * in `secrets` are encrypted at rest (AES-256-GCM under a key derived from the install's secret) and
 * never shown again. Core passes the merchant's parsed settings to every call.
 *
 * @example
 * import { createHmac, timingSafeEqual } from 'node:crypto';
 * import { definePlugin, rawBody, ServiceError, z } from 'paylink/plugin-api';
 *
 * const settings = z.object({ accountId: z.string().min(1), webhookSecret: z.string().min(16) });
 * export default definePlugin({
 *   id: 'provider-acmepay', version: '1.0.0', apiVersion: 1, viewsDir: new URL('./views', import.meta.url).pathname,
 *   register(api) {
 *     api.providers.register<z.infer<typeof settings>>({
 *       id: 'acmepay', name: 'AcmePay', methodLabel: 'Card',
 *       merchantSettings: { schema: settings, secrets: ['webhookSecret'], formFragment: 'settings' },
 *       checkoutOrigins: () => ['https://checkout.acmepay.example'],
 *       async start(session, s) {
 *         const url = new URL('https://checkout.acmepay.example/pay');
 *         url.searchParams.set('account', s.accountId);
 *         url.searchParams.set('ref', session.paymentId);
 *         url.searchParams.set('notify', `${api.baseUrl}/p/provider-acmepay/webhook`);
 *         return { redirect: url.toString() };
 *       },
 *       async capture() {}, async void() {},
 *       async refund(payment, amount, s) { ... call the vendor with payment.refundId as idempotency key ... },
 *     });
 *     api.routes.post('/webhook', rawBody({ limit: '64kb' }), async (req, res) => {
 *       const event = JSON.parse(req.body.toString('utf8'));
 *       const payment = await api.services.checkout.getPayment(event.ref); // null: not ours
 *       if (!payment) return res.status(404).end();
 *       const s = await api.services.checkout.settingsFor<z.infer<typeof settings>>(payment.merchantId);
 *       const mac = createHmac('sha256', s!.webhookSecret).update(req.body).digest();
 *       if (!timingSafeEqual(mac, Buffer.from(String(req.get('acme-signature')), 'hex'))) return res.status(400).end();
 *       try {
 *         await api.services.checkout.authorize(payment.id, event.chargeId);
 *         res.status(204).end();
 *       } catch (err) {
 *         if (err instanceof ServiceError && !err.retryable) return res.status(422).json({ code: err.code });
 *         throw err; // 5xx: the vendor retries
 *       }
 *     });
 *   },
 * });
 */
export interface PaymentProvider<S = Record<string, unknown>> {
  /** Persisted with every payment: never rename. */
  id: string;
  /** Shown to merchants (Settings → Payments). */
  name: string;
  /** What the customer picks on the pay page when several providers are enabled, e.g. "Card", "Crypto" (default: `name`). */
  methodLabel?: string;
  /**
   * `manual` (default): the provider authorizes, core claims a slot, then calls `capture` or `void`.
   * `immediate`: the money is taken when the customer pays (wallets, bank transfers, crypto), so there
   * is nothing to void: core holds one of the link's slots from `start` until the session ends
   * (`CheckoutSessionInfo.expiresAt`, `holdMinutes` from now), turns the hold into the payment on
   * `authorize`, and never calls `capture`. A payment that still arrives after its hold lapsed on a
   * link that filled up meanwhile is refunded in full (`refund` with refundId `<paymentId>_limit`).
   * A function decides per merchant from their settings (e.g. cards only → `manual`, with bank
   * redirects → `immediate`); core asks it when a checkout starts and when it settles.
   */
  captureModel?: 'manual' | 'immediate' | ((settings: S) => 'manual' | 'immediate');
  /**
   * `immediate` capture only: how long a checkout holds its slot, in minutes (1 to 1440; default 30).
   * Set your own session's expiry to `CheckoutSessionInfo.expiresAt` so the customer cannot pay after
   * the hold lapsed. Added in apiVersion 1. A function decides per merchant from their settings (e.g.
   * a countdown the merchant chooses in Settings → Payments); an answer outside 1 to 1440 counts as
   * the default (added in apiVersion 1).
   */
  holdMinutes?: number | ((settings: S) => number);
  /**
   * Enabled for every merchant until the merchant turns it off (test providers such as the sandbox).
   * Others start disabled; a merchant enables them in Settings → Payments.
   */
  enabledByDefault?: boolean;
  /** What each merchant configures; without it the provider needs no per-merchant settings. */
  merchantSettings?: ProviderMerchantSettings<S>;
  /**
   * Origins (`https://checkout.example.com`) the provider sends customers to from the pay page, for
   * the merchant's settings: core adds exactly these to that pay page's CSP `form-action`.
   */
  checkoutOrigins?(settings: S): string[];
  /**
   * Opens the payment at the provider. A `{ redirect }` to another origin is only followed by browsers
   * when `checkoutOrigins` lists that origin (the pay page's form answers with the redirect).
   */
  start(session: CheckoutSessionInfo, settings: S): Promise<ProviderStartResult>;
  /** Throw a `ProviderError` with `retryable: true` for a transient failure: core retries with backoff while the payment stays authorized. */
  capture(payment: ProviderPaymentRef, settings: S): Promise<void>;
  /** As `capture`: retryable errors are retried with backoff. */
  void(payment: ProviderPaymentRef, settings: S): Promise<void>;
  /**
   * Refunds `amount` (minor units, ≤ what is left) of a paid payment. `payment.refundId` is stable
   * across retries: use it as the vendor's idempotency key. Throw a `ProviderError`; a retryable
   * one keeps the refund pending and core retries it.
   */
  refund(payment: ProviderRefundRef, amount: number, settings: S): Promise<void | { providerRef?: string }>;
  /**
   * The merchant or the customer removed a saved payment profile (`checkout.saveProfile`): delete
   * the saved payment methods at the vendor, so they are never offered or charged again. Core
   * removes its record only after this resolves; throw a retryable `ProviderError` when the vendor
   * cannot be reached (the person is asked to try again). A profile the vendor no longer knows is
   * gone: resolve. Optional: without it, removing a profile only forgets Paylink's record.
   * Added in apiVersion 1.
   */
  forgetProfile?(profile: SavedProfileRef & { merchant: PluginMerchant }, settings: S): Promise<void>;
  /**
   * The provider bills subscriptions: a checkout for a recurring plan (`CheckoutSessionInfo.recurring`)
   * is offered only with providers that set this. The provider then reports each renewal it charged
   * with `api.services.subscriptions.renewed` and a cancellation with `.canceled`. Added in apiVersion 1.
   */
  subscriptions?: boolean;
  /**
   * The merchant cancels a subscription (`POST /api/v1/subscriptions/:id/cancel`, the dashboard):
   * stop billing at the vendor now. Core records the cancellation only after this resolves; throw a
   * retryable `ProviderError` when the vendor cannot be reached (the merchant gets a 503 and nothing
   * changes). A subscription the vendor already ended: resolve. Without it, core just stops (right
   * for a provider whose renewals are driven by `subscriptions.due`). Added in apiVersion 1.
   */
  cancelSubscription?(subscription: PluginSubscription, settings: S): Promise<void>;
}

/** A recurring plan a checkout subscribes to (`CheckoutSessionInfo.recurring`). Added in apiVersion 1. */
export interface RecurringPlan {
  interval: 'day' | 'week' | 'month' | 'year';
  /** Every `intervalCount` intervals (1 = every month). */
  intervalCount: number;
  /** Free days before the first charge; null: none. */
  trialDays: number | null;
  /** What each renewal charges (minor units, the checkout's currency); the first charge is `amount`. */
  renewalAmount: number;
  /** The plan's product name, for the vendor's invoice. */
  productName: string;
}

/** A subscription as its provider sees it (`api.services.subscriptions`). Added in apiVersion 1. */
export interface PluginSubscription {
  /** `sub_…` */
  id: string;
  provider: string;
  /** The vendor's subscription id, once known (`checkout.authorize(…, { subscriptionRef })`). */
  providerRef: string | null;
  status: 'trialing' | 'active' | 'past_due' | 'canceled';
  interval: RecurringPlan['interval'];
  intervalCount: number;
  /** Each renewal's amount, minor units. */
  amount: number;
  currency: string;
  /** When the current period ends (ISO 8601): the next renewal is due then. */
  currentPeriodEnd: string;
  /** The merchant's public id (for `checkout.settingsFor`). */
  merchantId: string;
  /** The payment that started it (`pay_…`). */
  firstPaymentId: string | null;
}

/**
 * For providers that bill subscriptions, scoped to the calling plugin's providers (another provider's
 * subscription is `null` or a permanent `ServiceError('subscription_not_found')`). Added in apiVersion 1.
 *
 * @example
 * // A vendor webhook: an invoice of a subscription was paid.
 * const sub = await api.services.subscriptions.byRef(invoice.subscription);
 * if (sub) await api.services.subscriptions.renewed(sub.id, { invoiceRef: invoice.id, amount: invoice.amount_paid });
 */
export interface PluginSubscriptionServices {
  get(subscriptionId: string): Promise<PluginSubscription | null>;
  /** By the vendor's subscription id (`providerRef`). */
  byRef(providerRef: string): Promise<PluginSubscription | null>;
  /**
   * This plugin's live subscriptions whose period ended before `before`, oldest due first (at most
   * `limit`, default 100): what a provider that drives renewals itself (the sandbox) charges next.
   */
  due(opts: { before: Date; limit?: number }): Promise<PluginSubscription[]>;
  /**
   * A renewal was charged: records a paid payment of the subscription's link (counted in payments and
   * revenue, never in the payment limit: the subscriber holds one slot) and moves the period on, to
   * `periodEnd` when given, else one interval after the current end. Idempotent on `invoiceRef` (the
   * vendor's invoice or charge id): the same invoice again answers the same payment with `created: false`.
   * A canceled subscription → `ServiceError('subscription_canceled')`.
   */
  renewed(subscriptionId: string, renewal: { invoiceRef: string; amount?: number; periodEnd?: Date; paymentMethod?: PaymentMethodInfo }): Promise<{ paymentId: string; created: boolean }>;
  /** The vendor could not charge a renewal (`past_due`) or charged it after all (`active`). */
  setStatus(subscriptionId: string, status: 'active' | 'past_due'): Promise<void>;
  /** The vendor ended the subscription (a customer's cancellation, failed payments): no more renewals. False when already canceled. */
  canceled(subscriptionId: string): Promise<boolean>;
}

/** A provider's per-merchant settings (Settings → Payments; `PATCH /api/v1/providers/:id`). */
export interface ProviderMerchantSettings<S = Record<string, unknown>> {
  /** Validates the merchant's settings; messages are shown next to the fields. */
  schema: z.ZodType<S>;
  /** Keys of the schema that are secrets: encrypted at rest, write-only (a blank value keeps the stored one). */
  secrets?: string[];
  /**
   * Template (in the plugin's views) with the settings' fields, rendered inside core's form with
   * `{ settings, secretsSet, errors, name(field), id(field) }`: `settings` are the non-secret values,
   * `secretsSet` the secret keys that have a value, `name('apiKey')` the input name to use, and
   * `merchant` (a PluginMerchant) and `baseUrl` (the public origin), e.g. for a per-merchant webhook
   * URL (added in apiVersion 1).
   * Without it, core renders one text input per key of a `z.object` schema.
   */
  formFragment?: string;
  /**
   * Checks settings before they are saved (e.g. calls the vendor with the key). Answer problems by
   * field; throw a `ProviderError` when the vendor cannot be reached.
   */
  verify?(settings: S): Promise<void | { field: string; message: string }[]>;
}

export interface CheckoutSessionInfo {
  id: string;
  paymentId: string;
  merchant: PluginMerchant;
  amount: number;
  currency: string;
  description: string;
  /**
   * Who pays, as typed on the pay page. `id` is the merchant's customer record when the checkout is
   * tied to one (a link sent to them, a payment request for them) — only then may a provider offer to
   * save the payment method (`checkout.saveProfile`). `savedProfile` is what this customer saved with
   * this provider before (its `ref`, e.g. a Stripe customer id, and label): offer it again. Both
   * added in apiVersion 1; null when unknown.
   */
  customer: { name: string | null; email: string | null; id?: string | null; savedProfile?: SavedProfileRef | null };
  /** Where the provider sends the customer back to (absolute). */
  returnUrl: string;
  /**
   * When this checkout ends (ISO 8601, UTC). For `immediate` capture it is the end of the slot core
   * holds for it: make the provider's own session expire then (e.g. Stripe's `expires_at`), so no
   * payment arrives after the hold lapsed. Added in apiVersion 1.
   */
  expiresAt: string;
  /**
   * Set when the customer subscribes to a recurring plan (only providers with `subscriptions: true`
   * get such a checkout): charge `amount` now (or, with `trialDays`, nothing until the trial ends) and
   * `renewalAmount` every period. Report the vendor's subscription id with `checkout.authorize(…,
   * { subscriptionRef })`. Added in apiVersion 1.
   */
  recurring?: RecurringPlan | null;
}

/**
 * A payment method a customer saved with a provider: the provider's own reference (e.g. Stripe's
 * customer id, which holds the card) and what people see, such as "Visa •••• 4242". Added in apiVersion 1.
 */
export interface SavedProfileRef {
  ref: string;
  label: string;
}

/**
 * How the customer paid, for the receipt and the API (`payment_method`), when the provider knows:
 * `{ type: 'card', brand: 'visa', last4: '4242' }`, `{ type: 'ideal' }`. Added in apiVersion 1.
 */
export interface PaymentMethodInfo {
  /** `card`, `ideal`, `sepa_debit`, `paypal`, `crypto` … (lowercase, 1 to 32 characters). */
  type: string;
  /** Card brand, lowercase (`visa`, `mastercard`, `amex` …). */
  brand?: string;
  /** Last four digits of a card or account. */
  last4?: string;
  /** A crypto network or card network, when it differs from the brand. */
  network?: string;
  /**
   * On-chain payments: the transaction hashes that paid it (`0x` + 64 hex digits, at most 20),
   * shown in the API as `tx_hashes`. Added in apiVersion 1.
   */
  txHashes?: string[];
}

/**
 * What a provider saw arrive when the customer chooses the amount they send (a crypto transfer):
 * less than the price before the checkout ended (`underpaid`), more (`overpaid`), or anything after
 * it ended (`paid_late`). `amountReceived` is in the payment currency's minor units. Added in apiVersion 1.
 */
export interface AmountOutcome {
  outcome: 'underpaid' | 'overpaid' | 'paid_late';
  amountReceived: number;
  /** The transactions (`0x` + 64 hex digits), oldest first. */
  txHashes: string[];
}

export type ProviderStartResult = { redirect: string } | { render: string };

export interface ProviderPaymentRef {
  paymentId: string;
  providerRef: string | null;
  amount: number;
  currency: string;
}

export interface ProviderRefundRef extends ProviderPaymentRef {
  /**
   * `re_…`: stable across retries of this refund (use it as the vendor's idempotency key). When core
   * refunds an `immediate` payment that lost the payment-limit race it is `<paymentId>_limit`.
   */
  refundId: string;
  reason: string | null;
}

/**
 * What `api.services.checkout` throws for a request that cannot succeed as asked. `retryable: false`
 * is permanent (answer the vendor 4xx: retrying changes nothing); `retryable: true` is transient.
 * Codes: `payment_not_found` (unknown, or another provider's payment), `session_not_found`,
 * `checkout_expired`, `checkout_finished`, `provider_mismatch`.
 */
export class ServiceError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  constructor(code: string, message: string, opts: { retryable?: boolean; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'ServiceError';
    this.code = code;
    this.retryable = opts.retryable ?? false;
    Object.defineProperty(this, SERVICE_ERROR, { value: true });
  }

  /** `instanceof` holds across copies of this module (a plugin that bundles its own copy of the API). */
  static [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[SERVICE_ERROR] === true;
  }
}

const SERVICE_ERROR = Symbol.for('paylink.ServiceError');

// ---------------------------------------------------------------------------------------------
// Channels

/**
 * A message to one customer about one link. Core composes it from the merchant's template for the
 * channel (Settings → Message templates) and hands it to the channel's `send`.
 */
export interface OutgoingMessage {
  /** Stable per delivery; use as the provider idempotency key / Message-ID. */
  id: string;
  merchant: Pick<PluginMerchant, 'id' | 'name' | 'brandColor'>;
  /** The customer's address for this channel: an email, an E.164 phone number, or the channel's own kind. */
  to: string;
  /** Email-style channels (`address: 'email'`) only. */
  subject?: string;
  text: string;
  html?: string;
  /**
   * Why the message goes out: the first send of a link, a reminder, an expiry notice, a receipt, a
   * test, or a `notice` to the merchant themself (e.g. "your webhook endpoint was disabled"; `to` is
   * the merchant's email). Added in apiVersion 1; `notice` added later (additive).
   */
  kind: 'initial' | 'reminder' | 'expiry' | 'receipt' | 'test' | 'notice';
  /** The pay URL the message is about (already in `text`), or null. Added in apiVersion 1. */
  linkUrl: string | null;
}

/**
 * An address of the channel's own kind, kept on each customer record (one value per kind, shown on
 * the customer form as a field labelled `label`, and in the API as `addresses: { "<kind>": "…" }`).
 * Two channels may share a kind (the first registered one's label and parse are used).
 */
export interface ChannelAddress {
  /** `[a-z][a-z0-9_]{1,31}`, e.g. `ntfy_topic`; persisted: never rename one. `email` and `phone` are core's. */
  kind: string;
  /** Shown to merchants as the customer form's field label, e.g. "ntfy topic" (1 to 60 characters). */
  label: string;
  /**
   * Validates and normalises what a merchant enters (already trimmed, never empty); the message is
   * shown by the field (422). Core also refuses line breaks and values over 254 characters.
   */
  parse?(value: string): { ok: true; value: string } | { ok: false; message: string };
}

/**
 * A way to reach customers. Its id can be chosen wherever channels are: the link form, the link
 * page's Send panel, the customer page (and Text-to-Pay), reminders, the API's `send.channels`, and
 * message templates (a channel with `address: 'email'` gets the email template — subject and HTML —
 * every other channel the short text template, editable per merchant).
 *
 * Two non-fallback channels with one id stop the host at boot (a load-time problem naming both
 * plugins); a fallback channel (channel-outbox's) serves its id only while no real one registers it.
 * Throw a `ProviderError` from `send`: `retryable` decides whether core retries with backoff.
 *
 * @example
 * // plugins/channel-ntfy/index.ts — push notifications through ntfy.sh topics
 * import { definePlugin, ProviderError, z } from 'paylink/plugin-api';
 *
 * export default definePlugin({
 *   id: 'channel-ntfy',
 *   version: '1.0.0',
 *   apiVersion: 1,
 *   description: 'Sends payment links as ntfy push notifications.',
 *   config: z.object({ server: z.url().default('https://ntfy.sh'), token: z.string().optional() }),
 *   register(api, config) {
 *     api.channels.register({
 *       id: 'ntfy',
 *       label: 'ntfy',
 *       address: {
 *         kind: 'ntfy_topic',
 *         label: 'ntfy topic',
 *         parse: (value) =>
 *           /^[A-Za-z0-9_-]{1,64}$/.test(value.trim())
 *             ? { ok: true, value: value.trim() }
 *             : { ok: false, message: 'A topic is 1 to 64 letters, digits, - or _.' },
 *       },
 *       async send(message) {
 *         let res: Response;
 *         try {
 *           // JSON publishing: UTF-8 titles (header values cannot carry them) and the link as the click action.
 *           res = await fetch(config.server, {
 *             method: 'POST',
 *             headers: { 'Content-Type': 'application/json', ...(config.token ? { Authorization: `Bearer ${config.token}` } : {}) },
 *             body: JSON.stringify({
 *               topic: message.to,
 *               message: message.text,
 *               title: message.merchant.name,
 *               tags: [message.kind],
 *               ...(message.linkUrl ? { click: message.linkUrl } : {}),
 *             }),
 *             signal: AbortSignal.timeout(10_000),
 *           });
 *         } catch (err) {
 *           throw new ProviderError(`Could not reach ntfy: ${(err as Error).message}`, { retryable: true, cause: err });
 *         }
 *         if (!res.ok) {
 *           const retryable = res.status >= 500 || res.status === 429;
 *           throw new ProviderError(`ntfy answered HTTP ${res.status}`, { retryable, code: retryable ? 'ntfy_unavailable' : 'ntfy_rejected' });
 *         }
 *         const body = (await res.json()) as { id?: string };
 *         return { providerMessageId: body.id ?? message.id };
 *       },
 *     });
 *   },
 * });
 */
export interface Channel {
  /**
   * `email`, `sms`, `whatsapp` or your own id: `[a-z][a-z0-9_-]{0,31}`. Persisted with every delivery,
   * reminder plan and template: never rename one.
   */
  id: string;
  /** Shown to merchants ("SMS", "ntfy"), 1 to 40 characters; defaults to the id. Added in apiVersion 1. */
  label?: string;
  /** What the channel sends to: the customer's email, phone (E.164), or an address of its own kind. */
  address: 'email' | 'phone' | ChannelAddress;
  /** A fallback channel serves its id only while no other plugin registers the same id. */
  fallback?: boolean;
  /**
   * Optional: true for a channel that never delivers, only keeps messages where the merchant can read
   * them (channel-outbox, while no email server or SMS provider is configured). The dashboard then says
   * "Kept in the Outbox" instead of "Sent" from the moment a message is queued; its receipts should
   * carry `kept: true`. Added in apiVersion 1.
   */
  keepsOnly?: boolean;
  send(message: OutgoingMessage): Promise<ChannelReceipt>;
  /**
   * Optional: sends many messages at once (e.g. one database write for all). Answers one result per
   * message, in order: its receipt, or the ProviderError it failed with. Added in apiVersion 1; core
   * uses it for batches when present, `send` otherwise.
   */
  sendMany?(messages: OutgoingMessage[]): Promise<(ChannelReceipt | ProviderError)[]>;
}

/**
 * What a channel answers for a message it took.
 *
 * @example
 * return { providerMessageId: body.id };                 // handed to the network that delivers it
 * return { providerMessageId: record.id, kept: true };   // only stored (an outbox): not delivered
 */
export interface ChannelReceipt {
  /** The provider's id of the message (or your own), for support and webhooks. */
  providerMessageId: string;
  /**
   * true when the message was only kept (stored for the merchant to read), not delivered to the
   * customer: the delivery is recorded `sent` with `kept: true`, and the dashboard says "Kept in the
   * Outbox" rather than "Sent". Absent or false: delivered. Added in apiVersion 1.
   */
  kept?: boolean;
}

/** Thrown by channels and providers; `retryable` decides whether the job retries with backoff. */
export class ProviderError extends Error {
  readonly retryable: boolean;
  readonly code: string;
  constructor(message: string, opts: { retryable: boolean; code?: string; cause?: unknown }) {
    super(message, { cause: opts.cause });
    this.name = 'ProviderError';
    this.retryable = opts.retryable;
    this.code = opts.code ?? (opts.retryable ? 'provider_unavailable' : 'provider_rejected');
  }
}

// ---------------------------------------------------------------------------------------------
// After-payment actions

/** The customer who paid (or the one the link was made for), as actions see them. */
export interface ActionCustomer {
  id: string;
  name: string;
  email: string | null;
  phone: string | null;
  tags: { id: string; name: string }[];
}

/** Who paid, as they entered it on the pay page (null for what it did not ask or they left empty). */
export interface ActionPayer {
  name: string | null;
  email: string | null;
  phone: string | null;
}

export interface ActionContext<S = unknown> {
  event: PaylinkEvent<'payment.succeeded'>;
  /** The link's settings for this action, parsed by your schema. */
  settings: S;
  merchant: PluginMerchant;
  /** The paid link (null for the merchant's open-amount page). Added in apiVersion 1. */
  link?: { id: string; name: string } | null;
  /** The paying customer when known: a link sent to them or made for them. Added in apiVersion 1. */
  customer?: ActionCustomer | null;
  /**
   * The payer as entered on the pay page; always set, also when there is no customer record (the pay
   * page asks for no phone today: `phone` is then null). Added in apiVersion 1.
   */
  payer: ActionPayer;
}

/** A settings problem found by `AfterPaymentAction.check`. */
export interface ActionSettingsProblem {
  /** The settings field (dot path, e.g. `webhookUrl`), or '' for the settings as a whole. */
  field: string;
  message: string;
  /** Stable code for API clients; default `invalid_setting`. */
  code?: string;
}

/**
 * What your `formFragment` template gets (slot `link-form.after-payment`), as `it`. The template is
 * rendered with your plugin's own auto-escaping Eta (`viewsDir`); core puts it under the action's
 * "enable" checkbox, label and description, and shows it only while that box is ticked.
 */
export interface ActionFormModel<S = unknown> {
  /**
   * The settings to show: the link's saved settings, what the merchant posted (after `fromForm`)
   * when the form comes back with errors, or `{}` for a new link. Read every key with a fallback.
   */
  settings: Partial<S> & Record<string, unknown>;
  /** Messages by settings field (dot path), from your schema or `check`. */
  errors: Record<string, string>;
  /** The form field name for a settings field: `action.<action id>.<field>`. Use it for every input. */
  name(field: string): string;
  /** A unique element id for a settings field (for `<label for>`). */
  inputId(field: string): string;
  merchant: PluginMerchant;
  /** The link's customer (the one chosen in "Send to a customer" on a new link), if any. */
  customer: ActionCustomer | null;
  /** What your `formData` answered ({} without it). */
  data: Record<string, unknown>;
}

/**
 * An action is something that happens after a link is paid (post to Slack, tag the customer, …).
 * Merchants enable it per link, with its own settings: on the link form (your `formFragment`,
 * rendered in the slot `link-form.after-payment`) and in the API
 * (`after_payment.actions: [{ "id": "<action id>", "settings": { … } }]` on POST/PATCH /links). Core
 * validates the settings with your zod schema (then `check`, when given) and shows each message by
 * its field: on the form under the input named `name(field)`, in the API as `errors[].field` like
 * `after_payment.actions[0].settings.webhookUrl`. When a payment of the link succeeds, core runs the
 * action from a job, at least once per (event, action).
 *
 * @example A Slack-style webhook action: index.ts, then its views/settings.eta
 * import { fileURLToPath } from 'node:url';
 * import { definePlugin, ProviderError, z } from 'paylink/plugin-api';
 * const slackSettings = z.object({
 *   webhookUrl: z.url({ protocol: /^https$/, error: 'Enter the https:// address of your Slack webhook.' }),
 *   mention: z.string().trim().max(40, 'Keep it under 40 characters.').default(''),
 * });
 * export default definePlugin({
 *   id: 'action-slack', version: '1.0.0', apiVersion: 1,
 *   viewsDir: fileURLToPath(new URL('./views', import.meta.url)),
 *   register(api) {
 *     api.actions.register<z.infer<typeof slackSettings>>({
 *       id: 'action-slack',
 *       label: 'Post to Slack',
 *       description: 'Posts the payment to a Slack channel.',
 *       settings: slackSettings,
 *       formFragment: 'settings',
 *       async run({ event, settings, link, payer }) {
 *         const res = await fetch(settings.webhookUrl, {
 *           method: 'POST',
 *           headers: { 'content-type': 'application/json', 'idempotency-key': event.id },
 *           body: JSON.stringify({ text: `${settings.mention} ${payer.name ?? 'Someone'} paid ${link?.name ?? ''}`.trim() }),
 *         });
 *         if (!res.ok) throw new ProviderError(`Slack answered ${res.status}`, { retryable: res.status >= 500 });
 *       },
 *     });
 *   },
 * });
 * views/settings.eta, rendered with an ActionFormModel as `it`:
 * <div class="field<%= it.errors.webhookUrl ? ' has-error' : '' %>">
 *   <label for="<%= it.inputId('webhookUrl') %>">Slack webhook URL</label>
 *   <input id="<%= it.inputId('webhookUrl') %>" name="<%= it.name('webhookUrl') %>" type="url" value="<%= it.settings.webhookUrl ?? '' %>">
 *   <p class="error"><%= it.errors.webhookUrl ?? '' %></p>
 * </div>
 */
export interface AfterPaymentAction<S = unknown> {
  /** Persisted with every link that enables it: never rename. Use your plugin id when it has one action. */
  id: string;
  /** Shown to merchants next to the "enable" checkbox, e.g. "Post to Slack". */
  label: string;
  /** One sentence under the label on the link form. Added in apiVersion 1. */
  description?: string;
  settings: z.ZodType<S>;
  /** Template (in the plugin's views) for the settings on the link form; model: ActionFormModel. */
  formFragment?: string;
  /**
   * Turns the posted form fields of your fragment (`name(field)` → `field`, text as typed, the last
   * value of a repeated field) into settings input for your schema. Default: the fields as they are.
   * Use it for checkboxes ("on" → true) or numbers. Added in apiVersion 1.
   */
  fromForm?(fields: Record<string, string>): unknown;
  /**
   * Checks that need the merchant, after the schema passed (e.g. that ids belong to them). Answer
   * problems by settings field; [] when all is well. Added in apiVersion 1.
   */
  check?(settings: S, ctx: { merchant: PluginMerchant }): Promise<ActionSettingsProblem[]>;
  /** Data your `formFragment` needs (e.g. the merchant's tags), given to it as `data`. Added in apiVersion 1. */
  formData?(ctx: { merchant: PluginMerchant; customer: ActionCustomer | null }): Promise<Record<string, unknown>>;
  /**
   * The action needs the paying customer: it can be enabled only on a link made for one customer
   * (sent with `send.customer_id`), and does not run for a payment without one. Added in apiVersion 1.
   */
  requiresCustomer?: boolean;
  /**
   * Top-level keys of the API's `after_payment` object that stand for this action's settings, as
   * `{ bodyKey: settingsField }` — a shorthand for `actions: [{ id, settings }]` that sets (or, when
   * all its values are null or empty, removes) only this action. Keys are lowercase snake_case and
   * unique across actions; `actions` is reserved. Added in apiVersion 1.
   * @example { apply_customer_tag: 'apply', remove_customer_tag: 'remove' }
   */
  apiShorthand?: Record<string, string>;
  /**
   * Runs on payment.succeeded, at least once per (event, action): make it idempotent (use
   * `event.id` as the idempotency key). Throw `ProviderError` with `retryable` to be retried.
   */
  run(ctx: ActionContext<S>): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Storage and dashboard

export interface PluginRecord<T = Record<string, unknown>> {
  id: string;
  merchantId: string | null;
  data: T;
  createdAt: Date;
  updatedAt: Date;
}

/**
 * Plugin-scoped records; a plugin sees only its own. `collection` is a name of 1 to 64 characters;
 * `merchantId` ties a record to a merchant (deleted with it), or null for plugin-wide records.
 *
 * @example
 * const rec = await api.store.insert('messages', { merchantId: merchant.id, data: { to, text } });
 * const mine = await api.store.list('messages', { merchantId: merchant.id, limit: 50 });
 */
export interface PluginStore {
  insert<T extends Record<string, unknown>>(collection: string, record: { merchantId: string | null; data: T }): Promise<PluginRecord<T>>;
  /** Inserts many records in one transaction (all or none), in order. Added in apiVersion 1. */
  insertMany<T extends Record<string, unknown>>(collection: string, records: { merchantId: string | null; data: T }[]): Promise<PluginRecord<T>[]>;
  /** Newest first. */
  list<T = Record<string, unknown>>(collection: string, opts?: { merchantId?: string | null; limit?: number; beforeId?: string }): Promise<PluginRecord<T>[]>;
  get<T = Record<string, unknown>>(collection: string, id: string): Promise<PluginRecord<T> | null>;
  update<T extends Record<string, unknown>>(collection: string, id: string, data: T): Promise<void>;
  /**
   * Inserts a record under a `key` unique within the collection, atomically: the record, or null when
   * one with that key exists already (e.g. a webhook event id: apply each event once). Added in apiVersion 1.
   */
  insertOnce<T extends Record<string, unknown>>(collection: string, key: string, record: { merchantId: string | null; data: T }): Promise<PluginRecord<T> | null>;
  /**
   * Deletes this plugin's records of `collection` created before `before` (e.g. webhook event ids
   * past the vendor's retry window); answers how many. Added in apiVersion 1.
   */
  deleteOlderThan(collection: string, before: Date): Promise<number>;
  /** The record stored under `key` (see `insertOnce`), or null. Added in apiVersion 1. */
  getByKey<T = Record<string, unknown>>(collection: string, key: string): Promise<PluginRecord<T> | null>;
  /**
   * Compare-and-set: replaces the record's data with `data` only if it is still exactly `expected`
   * (the `data` you read), atomically; false when another writer changed it first (read it again and
   * decide). Builds leases and counters that several processes share. Added in apiVersion 1.
   * @example
   * const lease = await api.store.getByKey('leases', 'scan');
   * const mine = lease && lease.data.until < Date.now() && (await api.store.replaceIf('leases', lease.id, lease.data, { holder: me, until: Date.now() + 300_000 }));
   */
  replaceIf<T extends Record<string, unknown>>(collection: string, id: string, expected: T, data: T): Promise<boolean>;
}

export interface DashboardPage {
  /** Below /app/p/<plugin-id>; `/` for the plugin's main page. */
  path: string;
  title: string;
  /** Shown in the dashboard navigation when set. */
  nav?: { label: string };
  render(ctx: { merchant: PluginMerchant; query: Record<string, string> }): Promise<string>;
}

export interface PluginApi {
  readonly id: string;
  readonly apiVersion: number;
  readonly log: Logger;
  /** Public origin, e.g. https://pay.example.com */
  readonly baseUrl: string;
  /** The host's clock (tests move it): use it instead of `Date.now()` for anything compared with Paylink's times. Added in apiVersion 1. */
  now(): Date;
  hooks: {
    /**
     * Observe an event; runs from the outbox at least once, after the change committed. Only names
     * of EventType exist: any other name disables the plugin at boot.
     */
    on<T extends EventType>(event: T, handler: EventHandler<T>): void;
  };
  providers: { register<S = Record<string, unknown>>(provider: PaymentProvider<S>): void };
  channels: { register(channel: Channel): void };
  actions: { register<S>(action: AfterPaymentAction<S>): void };
  /**
   * Public routes mounted under /p/<plugin-id>/ (no session, no CSRF: verify callers yourself). No
   * body parser runs before them: add `rawBody()` or `formBody()` from this module (or your own).
   * Pages answer under the app's Content-Security-Policy (no inline script; styles from 'self' plus
   * one nonce): `res.locals.cspNonce` is that nonce, for a single `<style nonce="…">` element.
   */
  routes: Router;
  dashboard: { page(page: DashboardPage): void };
  views: { render(name: string, data?: Record<string, unknown>): Promise<string> };
  store: PluginStore;
  /**
   * Periodic work, run through core's job queue: once per interval across the whole cluster (not
   * once per process), retried like any job when it throws. `every` must be called during
   * `register`; `name` is `[a-z0-9_-]{1,40}`; `interval` is minutes or hours: `'1m'`…`'30m'` dividing
   * 60, or `'1h'`…`'24h'` dividing 24. Added in apiVersion 1.
   * @example api.schedule.every('sweep', '5m', async () => { … ask the vendor about stale sessions … });
   */
  schedule: { every(name: string, interval: string, run: () => Promise<void>): void };
  services: {
    merchants: { get(merchantId: string): Promise<PluginMerchant | null> };
    /**
     * For payment providers: read a checkout and report what the customer's payment did. Scoped to
     * the calling plugin's providers: another provider's payment is a `ServiceError`
     * (`payment_not_found`, permanent) and is never touched.
     */
    checkout: PluginCheckoutServices;
    /** Customers and their tags (for actions such as action-customer-tags). */
    customers: PluginCustomerServices;
    /** For providers that bill subscriptions (`subscriptions: true`). Added in apiVersion 1. */
    subscriptions: PluginSubscriptionServices;
  };
}

/**
 * @example
 * await api.services.customers.applyTag(merchant.id, customer.id, settings.apply);
 */
export interface PluginCustomerServices {
  get(merchantId: string, customerId: string): Promise<ActionCustomer | null>;
  /** Customer tags of the merchant (kind `customer`). */
  tags(merchantId: string): Promise<{ id: string; name: string; color: string }[]>;
  /** Adds a customer tag by id; true when the customer did not have it yet. */
  applyTag(merchantId: string, customerId: string, tagId: string): Promise<boolean>;
  /** Removes a customer tag by id; true when the customer had it. */
  removeTag(merchantId: string, customerId: string, tagId: string): Promise<boolean>;
}

export interface PluginCheckoutSession {
  id: string;
  /** False once paid, expired or abandoned: show a message instead of a card form. */
  open: boolean;
  status: 'open' | 'completed' | 'expired';
  amount: number;
  currency: string;
  description: string;
  merchant: PluginMerchant;
  /** Where the customer started (the very pay page, its `?c=` kept), to go back to: it shows what they typed again. */
  backUrl: string;
  /**
   * The newest payment attempt of this session. `outcome`: the amount outcome you reported
   * (`flagOutcome`) and what the merchant decided (`accepted`, `dismissed`: settled off-line; null
   * while undecided), to tell the customer (added in apiVersion 1).
   */
  payment: {
    id: string;
    status: string;
    provider: string;
    failureMessage: string | null;
    outcome?: { kind: AmountOutcome['outcome']; amountReceived: number; resolution: 'accepted' | 'dismissed' | null } | null;
  } | null;
  /** Where a finished checkout sends the customer (the newest attempt's receipt); null before any attempt. */
  returnUrl: string | null;
  /**
   * Where a successful payment will send the customer (`authorize().next` when paid): the merchant's
   * redirect URL or a receipt. Browsers apply the card page's CSP `form-action` to the redirect that
   * answers its form, so a card page must allow this URL's origin as a form target.
   */
  successUrl: string;
}

export interface PluginAuthorizeResult {
  status: 'paid' | 'voided' | 'failed' | 'processing';
  /** `limit_reached` when the link's payment limit was reached first (the authorization is voided). */
  reason: string | null;
  /** Where to send the customer now (receipt, the merchant's redirect, or a "limit reached" page). */
  next: string;
}

/** A payment as its provider sees it (`checkout.getPayment`). */
export interface PluginCheckoutPayment {
  id: string;
  /** The provider id it was started with (always one of the calling plugin's). */
  provider: string;
  status: 'pending' | 'authorized' | 'paid' | 'failed' | 'voided' | 'refunded' | 'partially_refunded';
  amount: number;
  currency: string;
  amountRefunded: number;
  providerRef: string | null;
  /** The checkout session (`cs_…`), when it came from one. */
  sessionId: string | null;
  /** When the payment was started (ISO 8601). Added in apiVersion 1. */
  createdAt: string;
  /** The merchant's public id (for `settingsFor`). */
  merchantId: string;
  /**
   * The customer's receipt page for this payment: send the customer there (never build it from the
   * id). It carries the key that lets them cancel a subscription or forget a saved card on it, so
   * give it to the paying customer only. Added in apiVersion 1.
   */
  receiptUrl: string;
}

/**
 * Every method is scoped to the calling plugin's providers. Errors: a `ServiceError` (`code`,
 * `retryable`) for what the request itself gets wrong; anything else is transient.
 */
export interface PluginCheckoutServices {
  getSession(sessionId: string): Promise<PluginCheckoutSession | null>;
  /** One of this plugin's payments; null when unknown or another provider's. Added in apiVersion 1. */
  getPayment(paymentId: string): Promise<PluginCheckoutPayment | null>;
  /** This provider's settings for a merchant (secrets decrypted), e.g. to check a webhook signature; null when not set. */
  settingsFor<S = Record<string, unknown>>(merchantId: string, providerId?: string): Promise<S | null>;
  /**
   * Core claims a payment-limit slot atomically, then calls your provider's capture or void. Idempotent.
   * `paymentMethod` (when known) is shown on the receipt and in the API; a later call may add it.
   */
  authorize(paymentId: string, providerRef: string, opts?: { paymentMethod?: PaymentMethodInfo; subscriptionRef?: string }): Promise<PluginAuthorizeResult>;
  /** The card was declined; the customer may retry (call `retry` for a fresh attempt). */
  decline(paymentId: string, failure: { code: string; message: string }): Promise<void>;
  /**
   * A new pending payment on the same open session after a decline (the pending one when another
   * submission already opened it). A permanent `ServiceError` (`checkout_finished`, `checkout_expired`)
   * means the session ended meanwhile — e.g. a second tab paid: send the customer to
   * `getSession(id).returnUrl` rather than failing the request.
   */
  retry(sessionId: string): Promise<{ paymentId: string }>;
  /**
   * The checkout ended unpaid at the provider (its session expired, the customer never paid): a
   * pending payment fails with reason `expired` and its checkout session closes; any slot held for it
   * is released. A no-op (`false`) for a payment that already moved on — so an `expired` event that
   * arrives after `completed` changes nothing. Added in apiVersion 1.
   */
  expire(paymentId: string): Promise<boolean>;
  /**
   * Records a refund made outside Paylink (in the vendor's dashboard), once per `providerRef`: the
   * payment's `amount_refunded` and status move, revenue is net of it, `payment.refunded` is emitted.
   * Calling again with the same `providerRef` answers the same refund (`created: false`). Do not
   * report refunds Paylink itself asked for (your `refund()` made them; recognise them by the
   * `refundId` you sent the vendor). An amount over what is left → `ServiceError('amount_too_large')`.
   * Added in apiVersion 1.
   */
  recordRefund(paymentId: string, refund: { providerRef: string; amount: number; reason?: string | null }): Promise<{ refundId: string; created: boolean }>;
  /**
   * The customer disputed the payment at their bank (a chargeback): the payment is flagged with
   * `status` (the vendor's dispute status, e.g. `needs_response`, `won`, `lost`) and
   * `payment.disputed` is emitted whenever that status changes. Added in apiVersion 1.
   */
  flagDispute(paymentId: string, dispute: { providerRef: string; status: string; amount: number; reason?: string | null }): Promise<void>;
  /**
   * A short, display-safe code the customer can quote to the merchant's support (1 to 32 letters,
   * digits and dashes, e.g. a verification code `RTR-X2V` your page shows): core shows it on the
   * receipt and the merchant's payment page and returns it in the API (`support_reference`). Set it
   * once the checkout starts; a later call replaces it. Anything else → `ServiceError('invalid_reference')`.
   * Added in apiVersion 1.
   */
  setSupportReference(paymentId: string, reference: string): Promise<void>;
  /**
   * Reports an amount that did not match: emits `payment.underpaid`, `payment.overpaid` or
   * `payment.paid_late` (webhooks carry them) with what arrived. It changes no status and counts
   * nothing towards the link's limit: report an underpaid checkout after `expire`, an overpaid one
   * after `authorize`. Emits every time it is called: call it once per outcome (e.g. guard it with
   * `store.insertOnce`). Added in apiVersion 1.
   *
   * The payment is flagged for the merchant, who decides on its page: accept (a payment that did not
   * go through becomes `paid` for what arrived in all, if the link has room; on a paid one the excess
   * is kept) or dismiss (settled off-line). `amountReceived` of an underpaid or overpaid report is
   * everything that came in time; a `paid_late` one is what came late, added to what came before.
   * A new report reopens a decided one. Added in apiVersion 1.
   */
  flagOutcome(paymentId: string, outcome: AmountOutcome): Promise<void>;
  /**
   * This plugin's payments still `pending` that were started before `startedBefore`, oldest first (at
   * most `limit`, default 100): what a periodic sweep asks the vendor about when a webhook never came.
   * Added in apiVersion 1.
   */
  pendingPayments(opts: { startedBefore: Date; limit?: number }): Promise<PluginCheckoutPayment[]>;
  /**
   * The customer of this payment saved their payment method with you (e.g. ticked "save my card"):
   * remember `ref` (your customer id holding it) and `label` ("Visa •••• 4242", 1 to 120 characters)
   * for the customer record, replacing an older one of this provider. The next checkout of that
   * customer gets it as `CheckoutSessionInfo.customer.savedProfile`; the merchant sees it on the
   * customer; merchant and customer can remove it (core then calls your `forgetProfile`). A payment
   * with no customer record → `ServiceError('no_customer')`. Added in apiVersion 1.
   */
  saveProfile(paymentId: string, profile: SavedProfileRef): Promise<void>;
  /**
   * The vendor says a saved profile is gone (its cards were removed there): drop the merchant's
   * profiles of this plugin's providers with this `ref`. Answers how many were dropped. Added in apiVersion 1.
   */
  dropProfile(merchantId: string, ref: string): Promise<number>;
}
