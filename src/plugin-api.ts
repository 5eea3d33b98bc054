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

export interface OutgoingMessage {
  /** Stable per delivery; use as the provider idempotency key / Message-ID. */
  id: string;
  merchant: Pick<PluginMerchant, 'id' | 'name' | 'brandColor'>;
  to: string;
  subject?: string;
  text: string;
  html?: string;
}

export interface Channel {
  /** `email`, `sms`, `whatsapp` or a custom channel id. */
  id: string;
  address: 'email' | 'phone';
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
