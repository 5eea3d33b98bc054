/**
 * The Paylink plugin contract, apiVersion 1. Built-in plugins import only this module, exactly as a
 * third-party npm package would. Changes within an apiVersion are additive.
 *
 * @example
 * import { z } from 'zod';
 * import { definePlugin } from 'paylink/plugin-api';
 * export default definePlugin({
 *   id: 'action-slack', version: '1.0.0', apiVersion: 1,
 *   config: z.object({ webhookUrl: z.url() }),
 *   register(api, config) {
 *     api.hooks.on('payment.succeeded', async (event) => { ... use event.id as idempotency key ... });
 *   },
 * });
 */
import type { Router } from 'express';
import type { z } from 'zod';
import type { EventHandler, EventType, PaylinkEvent, EventPayloads } from './core/events.ts';
import type { Logger } from './core/log.ts';

export type { EventType, PaylinkEvent, EventPayloads, Logger };

export const PLUGIN_API_VERSION = 1;

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

export interface CheckoutSessionInfo {
  id: string;
  paymentId: string;
  merchant: PluginMerchant;
  amount: number;
  currency: string;
  description: string;
  customer: { name: string | null; email: string | null };
  /** Where the provider sends the customer back to (absolute). */
  returnUrl: string;
}

export type ProviderStartResult = { redirect: string } | { render: string };

export interface ProviderPaymentRef {
  paymentId: string;
  providerRef: string | null;
  amount: number;
  currency: string;
}

export interface ProviderWebhookResult {
  action: 'authorized' | 'failed' | 'captured' | 'refunded';
  providerRef: string;
  amount?: number;
}

export interface PaymentProvider {
  /** Persisted with every payment: never rename. */
  id: string;
  name: string;
  start(session: CheckoutSessionInfo): Promise<ProviderStartResult>;
  capture(payment: ProviderPaymentRef): Promise<void>;
  void(payment: ProviderPaymentRef): Promise<void>;
  refund(payment: ProviderPaymentRef, amount: number): Promise<void>;
  parseWebhook?(req: { headers: Record<string, string | string[] | undefined>; body: unknown; rawBody?: Buffer }): Promise<ProviderWebhookResult>;
}

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
  /** Why the message goes out: the first send of a link, a reminder, an expiry notice, a receipt, or a test. Added in apiVersion 1. */
  kind: 'initial' | 'reminder' | 'expiry' | 'receipt' | 'test';
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
  send(message: OutgoingMessage): Promise<{ providerMessageId: string }>;
  /**
   * Optional: sends many messages at once (e.g. one database write for all). Answers one result per
   * message, in order: its provider message id, or the ProviderError it failed with. Added in
   * apiVersion 1; core uses it for batches when present, `send` otherwise.
   */
  sendMany?(messages: OutgoingMessage[]): Promise<({ providerMessageId: string } | ProviderError)[]>;
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

export interface ActionContext<S = unknown> {
  event: PaylinkEvent<'payment.succeeded'>;
  settings: S;
  merchant: PluginMerchant;
  /** The paid link (null for the merchant's open-amount page). Added in apiVersion 1. */
  link?: { id: string; name: string } | null;
  /** The paying customer when known: a link sent to them or made for them. Added in apiVersion 1. */
  customer?: ActionCustomer | null;
}

export interface AfterPaymentAction<S = unknown> {
  id: string;
  label: string;
  settings: z.ZodType<S>;
  /** Template (in the plugin's views) for the settings on the link form. */
  formFragment?: string;
  /** Runs on payment.succeeded, at least once per (event, action): make it idempotent. */
  run(ctx: ActionContext<S>): Promise<void | { redirect?: string }>;
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
  hooks: {
    /**
     * Observe an event; runs from the outbox at least once, after the change committed. Only names
     * of EventType exist: any other name disables the plugin at boot.
     */
    on<T extends EventType>(event: T, handler: EventHandler<T>): void;
  };
  providers: { register(provider: PaymentProvider): void };
  channels: { register(channel: Channel): void };
  actions: { register<S>(action: AfterPaymentAction<S>): void };
  /**
   * Public routes mounted under /p/<plugin-id>/ (no session, no CSRF: verify callers yourself). No
   * body parser runs before them: add your own (e.g. `express.urlencoded({ extended: false, limit: '8kb' })`).
   * Pages answer under the app's Content-Security-Policy (no inline script; styles from 'self' plus
   * one nonce): `res.locals.cspNonce` is that nonce, for a single `<style nonce="…">` element.
   */
  routes: Router;
  dashboard: { page(page: DashboardPage): void };
  views: { render(name: string, data?: Record<string, unknown>): Promise<string> };
  store: PluginStore;
  services: {
    merchants: { get(merchantId: string): Promise<PluginMerchant | null> };
    /** For payment providers: read a checkout and report what the customer's card did. */
    checkout: PluginCheckoutServices;
    /** Customers and their tags (for actions such as action-customer-tags). */
    customers: PluginCustomerServices;
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
  /** Where the customer started (the pay page), to go back to. */
  backUrl: string;
  /** The newest payment attempt of this session. */
  payment: { id: string; status: string; provider: string; failureMessage: string | null } | null;
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

export interface PluginCheckoutServices {
  getSession(sessionId: string): Promise<PluginCheckoutSession | null>;
  /** Core claims a payment-limit slot atomically, then calls your provider's capture or void. Idempotent. */
  authorize(paymentId: string, providerRef: string): Promise<PluginAuthorizeResult>;
  /** The card was declined; the customer may retry (call `retry` for a fresh attempt). */
  decline(paymentId: string, failure: { code: string; message: string }): Promise<void>;
  /** A new pending payment on the same open session after a decline. */
  retry(sessionId: string): Promise<{ paymentId: string }>;
}
