/**
 * A fake Stripe on loopback for provider-stripe, with exactly the endpoints the plugin uses and
 * Stripe's own shapes: objects with `object` and prefixed ids (`cs_test_…`, `pi_…`, `ch_…`, `re_…`,
 * `dp_…`, `evt_…`), list envelopes, form-encoded requests with bracketed keys, `expand[]`,
 * `Idempotency-Key` replay, and errors as `{ error: { type, code, message, param } }` with Stripe's
 * HTTP statuses. The real SDK is pointed at it (`apiBase` → host/port/protocol).
 *
 * It also plays Stripe's hosted Checkout page (`/c/pay/<session id>`: a card field; 4242… pays,
 * 4000000000000002 is declined; "Pay by bank" stays processing until the test settles it) and sends
 * webhooks to each account's endpoint, signed with the SDK's own `generateTestHeaderString`.
 *
 * Subscriptions: a `mode=subscription` session (a recurring `price_data` line, maybe one-time lines)
 * paid on the hosted page makes a customer, a subscription (`sub_…`, its period on its item) and its
 * first invoice (`in_…`, billing_reason `subscription_create`, paid by a PaymentIntent listed in
 * `payments`); `renew()` bills the next period (`subscription_cycle`, `invoice.paid`), `DELETE
 * /v1/subscriptions/:id` and `cancelInDashboard()` end one (`customer.subscription.deleted`).
 */
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import Stripe from 'stripe';

type Obj = Record<string, any>;

export interface FakeStripeAccount {
  secretKey: string;
  webhookSecret: string;
  /** Where this account's webhook endpoint points (the merchant pasted Paylink's URL into Stripe). */
  webhookUrl: string | null;
}

export interface SentWebhook {
  event: Obj;
  status: number;
  body: string;
}

const API_VERSION = '2026-10-28.endive';
const id = (prefix: string) => `${prefix}_${randomBytes(12).toString('base64url').replace(/[-_]/g, 'x')}`;
const now = () => Math.floor(Date.now() / 1000);
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const signer = new Stripe('sk_test_signer_only', { telemetry: false });

/** `a[b][0][c]=1` → `{ a: { b: [{ c: '1' }] } }` (Stripe's form encoding; the SDK sends nothing else). */
export function parseStripeForm(body: string): Obj {
  const out: Obj = {};
  for (const [key, value] of new URLSearchParams(body)) {
    const path = key.replace(/\]/g, '').split('[');
    let node: any = out;
    path.forEach((part, i) => {
      const last = i === path.length - 1;
      const nextIsIndex = !last && /^\d*$/.test(path[i + 1]);
      const k = part === '' && Array.isArray(node) ? node.length : part;
      if (last) node[k] = value;
      else node = node[k] ??= nextIsIndex ? [] : {};
    });
  }
  return out;
}

class StripeApiError extends Error {
  constructor(readonly status: number, readonly body: Obj) {
    super(body.message);
  }
}
const invalid = (message: string, extra: Obj = {}, status = 400) => new StripeApiError(status, { type: 'invalid_request_error', message, ...extra });
const missing = (kind: string, value: string, param = 'id') => invalid(`No such ${kind}: '${value}'`, { code: 'resource_missing', param, doc_url: 'https://stripe.com/docs/error-codes/resource-missing' }, 404);

export interface FakeStripe {
  /** `http://127.0.0.1:<port>`: the `apiBase` for the plugin. */
  origin: string;
  accounts: Map<string, FakeStripeAccount>;
  addAccount(account: FakeStripeAccount): void;
  sessions: Map<string, Obj>;
  intents: Map<string, Obj>;
  charges: Map<string, Obj>;
  refunds: Map<string, Obj>;
  customers: Map<string, Obj>;
  paymentMethods: Map<string, Obj>;
  subscriptions: Map<string, Obj>;
  invoices: Map<string, Obj>;
  /** Bills a subscription's next period (a new paid invoice, `invoice.paid`); answers the invoice. `fail`: the card is declined (`invoice.payment_failed`, past_due). */
  renew(subscriptionId: string, opts?: { fail?: boolean }): Promise<Obj>;
  /** The customer or the merchant cancels in Stripe (`customer.subscription.deleted`). */
  cancelInDashboard(subscriptionId: string): Promise<Obj>;
  /** Every webhook sent, with the app's answer. */
  sent: SentWebhook[];
  /** Requests the plugin made: `POST /v1/checkout/sessions` … */
  requests: { method: string; path: string; idempotencyKey: string | null; body: Obj }[];
  /** While true, API requests get their connection dropped (Stripe unreachable); the hosted page still works. */
  down: boolean;
  /** The next `n` requests matching `path` (a prefix, e.g. `POST /v1/payment_intents`) answer 500 api_error. */
  failNext(path: string, n?: number): void;
  /** While true, webhooks are queued in `held` instead of being sent (a missed or delayed delivery). */
  holdWebhooks: boolean;
  held: { account: FakeStripeAccount; event: Obj }[];
  /** Sends these events (held ones, or any) now, in this order; answers the app's statuses. */
  deliver(events: { account: FakeStripeAccount; event: Obj }[]): Promise<number[]>;
  /** Sends a raw body with any signature header (for badly signed deliveries). */
  post(url: string, body: string, signature: string): Promise<{ status: number; body: string }>;
  /** Signs and sends one event object of this account (a duplicate, an unknown payment…). */
  send(account: FakeStripeAccount, event: Obj): Promise<{ status: number; body: string }>;
  /** An event envelope as Stripe builds it. */
  event(type: string, object: Obj): Obj;
  /**
   * Completes a session as the hosted page does (card 4242…), without a browser. Answers where Stripe
   * sends the customer. `save` ticks "Save my card for future purchases" (a session with a customer
   * and payment_method_save enabled); `savedPaymentMethod` pays with a card the customer saved before.
   */
  pay(sessionId: string, card?: string, opts?: { save?: boolean; savedPaymentMethod?: string }): Promise<{ status: number; location: string | null }>;
  /** The merchant removes a saved card in Stripe's dashboard (payment_method.detached). */
  detach(paymentMethodId: string): Promise<Obj>;
  /** The cards a session's customer is offered on the hosted page (allow_redisplay `always`). */
  offered(sessionId: string): Obj[];
  /** A bank payment of a session that was left processing succeeds or fails (async events). */
  settleAsync(sessionId: string, ok: boolean): Promise<void>;
  /** The merchant refunds in Stripe's dashboard (no Paylink metadata). */
  dashboardRefund(paymentIntentId: string, amount?: number): Promise<Obj>;
  /** The customer's bank opens (or moves) a dispute. */
  dispute(paymentIntentId: string, status?: string): Promise<Obj>;
  /** Waits for the webhooks Stripe sends after answering a request (refunds, expiries). */
  idle(): Promise<void>;
  /** Stripe expires a session (its expires_at passed); `silent` sends no webhook. */
  expireSession(sessionId: string, opts?: { silent?: boolean }): Promise<void>;
  close(): Promise<void>;
}

export async function startFakeStripe(): Promise<FakeStripe> {
  const accounts = new Map<string, FakeStripeAccount>();
  const sessions = new Map<string, Obj>();
  const intents = new Map<string, Obj>();
  const charges = new Map<string, Obj>();
  const refunds = new Map<string, Obj>();
  const disputes = new Map<string, Obj>();
  const customers = new Map<string, Obj>();
  const paymentMethods = new Map<string, Obj>();
  const subscriptions = new Map<string, Obj>();
  const invoices = new Map<string, Obj>();
  /** Which account owns an object id. */
  const owner = new Map<string, string>();
  const idempotent = new Map<string, { status: number; body: string }>();
  const failing: { path: string; n: number }[] = [];
  const sockets = new Set<Socket>();
  /** Webhooks sent after an API answer (as Stripe does), awaited by `idle()`. */
  const inflight = new Set<Promise<unknown>>();
  const later = (p: Promise<unknown>) => {
    const q = p.catch(() => {}).finally(() => inflight.delete(q));
    inflight.add(q);
  };

  const event = (type: string, object: Obj): Obj => ({
    id: id('evt'),
    object: 'event',
    api_version: API_VERSION,
    created: now(),
    data: { object: structuredClone(object) },
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type,
  });

  async function post(url: string, body: string, signature: string) {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8', 'stripe-signature': signature, 'user-agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)' }, body });
    return { status: res.status, body: await res.text() };
  }

  async function send(account: FakeStripeAccount, evt: Obj) {
    if (!account.webhookUrl) return { status: 0, body: '' };
    const payload = JSON.stringify(evt, null, 2);
    const signature = signer.webhooks.generateTestHeaderString({ payload, secret: account.webhookSecret });
    const answer = await post(account.webhookUrl, payload, signature);
    fake.sent.push({ event: evt, ...answer });
    return answer;
  }

  async function emit(account: FakeStripeAccount, type: string, object: Obj) {
    const evt = event(type, object);
    if (fake.holdWebhooks) fake.held.push({ account, event: evt });
    else await send(account, evt);
  }

  const accountOf = (objectId: string) => accounts.get(owner.get(objectId) ?? '')!;

  function own(account: FakeStripeAccount, kind: string, map: Map<string, Obj>, objectId: string): Obj {
    const o = map.get(objectId);
    if (!o || owner.get(objectId) !== account.secretKey) throw missing(kind, objectId);
    return o;
  }

  /** A copy with `expand[]` applied (latest_charge, payment_intent, payment_intent.latest_charge). */
  function expanded(o: Obj, expand: string[]): Obj {
    const copy = structuredClone(o);
    for (const path of expand) {
      const [first, second] = path.split('.');
      if (first === 'latest_charge' && copy.latest_charge) copy.latest_charge = structuredClone(charges.get(copy.latest_charge));
      if (first === 'payment_method' && typeof copy.payment_method === 'string') copy.payment_method = structuredClone(paymentMethods.get(copy.payment_method) ?? null);
      if (first === 'payment_intent' && copy.payment_intent) {
        copy.payment_intent = structuredClone(intents.get(copy.payment_intent));
        if (second === 'latest_charge' && copy.payment_intent?.latest_charge) copy.payment_intent.latest_charge = structuredClone(charges.get(copy.payment_intent.latest_charge));
      }
    }
    return copy;
  }

  function createSession(account: FakeStripeAccount, p: Obj): Obj {
    const items: Obj[] = Array.isArray(p.line_items) ? p.line_items : [];
    const item = items[0];
    items.forEach((it, i) => {
      if (!it?.price_data?.currency || !it.price_data.unit_amount) throw invalid('You must specify either `price` or `price_data` for each line item.', { param: `line_items[${i}][price_data]` });
    });
    if (!item) throw invalid('You must specify either `price` or `price_data` for each line item.', { param: 'line_items[0][price_data]' });
    if (p.mode !== 'payment' && p.mode !== 'subscription') throw invalid('Invalid mode.', { param: 'mode' });
    const recurring = items.filter((it) => it.price_data.recurring);
    if (p.mode === 'subscription') {
      if (!recurring.length) throw invalid('You must provide at least one recurring price in `subscription` mode when using prices.', { param: 'line_items' });
      if (p.payment_intent_data) throw invalid('You can not pass `payment_intent_data` in `subscription` mode.', { param: 'payment_intent_data' });
      for (const r of recurring) {
        if (!['day', 'week', 'month', 'year'].includes(r.price_data.recurring.interval)) throw invalid('Invalid recurring interval.', { param: 'line_items[0][price_data][recurring][interval]' });
      }
    } else if (recurring.length) {
      throw invalid('You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode or use only one-time prices.', { param: 'mode' });
    }
    if (!p.success_url) throw invalid('Missing required param: success_url.', { code: 'parameter_missing', param: 'success_url' });
    const expiresAt = p.expires_at ? Number(p.expires_at) : now() + 86_400;
    if (expiresAt < now() + 1800 - 5) throw invalid('The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.', { param: 'expires_at' });
    if (p.customer && p.customer_email) throw invalid('You may only specify one of these parameters: customer, customer_email.', { param: 'customer_email' });
    if (p.customer) {
      const c = own(account, 'customer', customers, p.customer);
      if (c.deleted) throw missing('customer', p.customer, 'customer');
    }
    const spmo = p.saved_payment_method_options;
    if (spmo?.payment_method_save === 'enabled' && !p.customer && p.customer_creation !== 'always') {
      throw invalid('`saved_payment_method_options[payment_method_save]` requires a `customer` or `customer_creation=always`.', { param: 'saved_payment_method_options[payment_method_save]' });
    }
    const amount = items.reduce((sum, it) => sum + Number(it.price_data.unit_amount) * Number(it.quantity ?? 1), 0);
    const sid = `cs_test_${randomBytes(24).toString('base64url').replace(/[-_]/g, 'a')}`;
    const session: Obj = {
      id: sid,
      object: 'checkout.session',
      amount_subtotal: amount,
      amount_total: amount,
      cancel_url: p.cancel_url ?? null,
      client_reference_id: p.client_reference_id ?? null,
      created: now(),
      currency: item.price_data.currency,
      customer: p.customer ?? null,
      customer_details: null,
      customer_email: p.customer_email ?? (p.customer ? customers.get(p.customer)!.email : null),
      expires_at: expiresAt,
      livemode: false,
      metadata: p.metadata ?? {},
      mode: p.mode,
      invoice: null,
      subscription: null,
      payment_intent: null,
      payment_method_types: p.payment_method_types ?? ['card', 'ideal', 'sepa_debit'],
      payment_status: 'unpaid',
      saved_payment_method_options: spmo ? { allow_redisplay_filters: ['always'], payment_method_remove: spmo.payment_method_remove ?? 'disabled', payment_method_save: spmo.payment_method_save ?? 'disabled' } : null,
      status: 'open',
      success_url: p.success_url,
      url: `${fake.origin}/c/pay/${sid}`,
      // Not in Stripe's response: what the fake needs to create the PaymentIntent later.
    };
    Object.defineProperty(session, '_intent', { value: { ...(p.payment_intent_data ?? {}), product: item.price_data.product_data?.name ?? '' }, enumerable: false });
    if (p.mode === 'subscription') Object.defineProperty(session, '_subscription', { value: { plan: recurring[0], data: p.subscription_data ?? {} }, enumerable: false });
    sessions.set(sid, session);
    owner.set(sid, account.secretKey);
    return session;
  }

  function newIntent(account: FakeStripeAccount, session: Obj): Obj {
    const data = (session as any)._intent as Obj;
    const pi: Obj = {
      id: id('pi'),
      object: 'payment_intent',
      amount: session.amount_total,
      amount_capturable: 0,
      amount_received: 0,
      cancellation_reason: null,
      capture_method: data.capture_method ?? 'automatic_async',
      created: now(),
      currency: session.currency,
      description: data.description ?? null,
      last_payment_error: null,
      latest_charge: null,
      livemode: false,
      metadata: data.metadata ?? {},
      customer: session.customer ?? null,
      payment_method: null,
      payment_method_types: session.payment_method_types,
      setup_future_usage: null,
      status: 'requires_payment_method',
    };
    intents.set(pi.id, pi);
    owner.set(pi.id, account.secretKey);
    session.payment_intent = pi.id;
    return pi;
  }

  function newCharge(account: FakeStripeAccount, pi: Obj, details: Obj, captured: boolean): Obj {
    const ch: Obj = {
      id: id('ch'),
      object: 'charge',
      amount: pi.amount,
      amount_captured: captured ? pi.amount : 0,
      amount_refunded: 0,
      captured,
      created: now(),
      currency: pi.currency,
      disputed: false,
      livemode: false,
      metadata: {},
      paid: true,
      payment_intent: pi.id,
      payment_method: pi.payment_method,
      payment_method_details: details,
      refunded: false,
      status: 'succeeded',
    };
    charges.set(ch.id, ch);
    owner.set(ch.id, account.secretKey);
    pi.latest_charge = ch.id;
    return ch;
  }

  /** Saved cards Checkout shows this session's customer (Stripe's default filter: allow_redisplay `always`). */
  const offered = (session: Obj): Obj[] => (session.customer ? [...paymentMethods.values()].filter((pm) => pm.customer === session.customer && pm.allow_redisplay === 'always') : []);

  function newCard(account: FakeStripeAccount, number: string, customer: string | null, save: boolean): Obj {
    const pm: Obj = {
      id: id('pm'),
      object: 'payment_method',
      allow_redisplay: save ? 'always' : 'unspecified',
      billing_details: { address: null, email: null, name: null, phone: null },
      card: { brand: 'visa', checks: { cvc_check: 'pass' }, country: 'US', display_brand: 'visa', exp_month: 12, exp_year: 2034, funding: 'credit', last4: number.slice(-4), networks: { available: ['visa'], preferred: null } },
      created: now(),
      customer: save ? customer : null,
      livemode: false,
      metadata: {},
      type: 'card',
    };
    paymentMethods.set(pm.id, pm);
    owner.set(pm.id, account.secretKey);
    return pm;
  }

  async function pay(sessionId: string, card = '4242424242424242', method: 'card' | 'bank' = 'card', opts: { save?: boolean; savedPaymentMethod?: string } = {}): Promise<{ status: number; location: string | null; declined?: boolean }> {
    const session = sessions.get(sessionId);
    if (!session || session.status !== 'open') return { status: 410, location: null };
    const account = accountOf(sessionId);
    const pi = session.payment_intent ? intents.get(session.payment_intent)! : newIntent(account, session);
    pi.payment_method = id('pm');
    if (method === 'card' && opts.savedPaymentMethod) {
      // A saved card Checkout offered: only the session customer's own.
      const saved = offered(session).find((pm) => pm.id === opts.savedPaymentMethod);
      if (!saved) return { status: 400, location: null, declined: true };
      card = `424242424242${saved.card.last4}`;
      pi.payment_method = saved.id;
    } else if (method === 'card') {
      const canSave = Boolean(session.customer) && session.saved_payment_method_options?.payment_method_save === 'enabled';
      const pm = newCard(account, card.replace(/\s/g, ''), session.customer, Boolean(opts.save) && canSave);
      pi.payment_method = pm.id;
      pi.setup_future_usage = pm.customer ? 'off_session' : null;
    }
    if (method === 'card') {
      const number = card.replace(/\s/g, '');
      if (number === '4000000000000002') {
        pi.status = 'requires_payment_method';
        pi.last_payment_error = { type: 'card_error', code: 'card_declined', decline_code: 'generic_decline', message: 'Your card was declined.' };
        await emit(account, 'payment_intent.payment_failed', pi);
        return { status: 402, location: null, declined: true };
      }
      pi.last_payment_error = null;
      if (session.mode === 'subscription') {
        await startSubscription(account, session, pi, number);
        return { status: 303, location: String(session.success_url).replace('{CHECKOUT_SESSION_ID}', session.id) };
      }
      const manual = pi.capture_method === 'manual';
      newCharge(account, pi, { type: 'card', card: { brand: 'visa', last4: number.slice(-4), exp_month: 12, exp_year: 2034, funding: 'credit', country: 'US', network: 'visa' } }, !manual);
      pi.status = manual ? 'requires_capture' : 'succeeded';
      pi.amount_capturable = manual ? pi.amount : 0;
      pi.amount_received = manual ? 0 : pi.amount;
      session.status = 'complete';
      session.payment_status = manual ? 'unpaid' : 'paid';
      session.customer_details = { email: session.customer_email, name: null };
      if (manual) await emit(account, 'payment_intent.amount_capturable_updated', pi);
      else await emit(account, 'payment_intent.succeeded', pi);
      await emit(account, 'checkout.session.completed', session);
    } else {
      // A bank debit: the session completes, the money arrives (or not) later.
      pi.status = 'processing';
      newCharge(account, pi, { type: 'sepa_debit', sepa_debit: { last4: '3000', bank_code: '37040044', country: 'DE' } }, false).status = 'pending';
      session.status = 'complete';
      session.payment_status = 'unpaid';
      await emit(account, 'checkout.session.completed', session);
    }
    return { status: 303, location: String(session.success_url).replace('{CHECKOUT_SESSION_ID}', session.id) };
  }

  const cardDetails = (number: string) => ({ type: 'card', card: { brand: 'visa', last4: number.slice(-4), exp_month: 12, exp_year: 2034, funding: 'credit', country: 'US', network: 'visa' } });

  /** The period after `start` (seconds) for a price's `recurring` (months clamp like Stripe's billing anchor, roughly). */
  function periodEnd(start: number, recurring: Obj): number {
    const d = new Date(start * 1000);
    const n = Number(recurring.interval_count ?? 1);
    if (recurring.interval === 'day') d.setUTCDate(d.getUTCDate() + n);
    else if (recurring.interval === 'week') d.setUTCDate(d.getUTCDate() + 7 * n);
    else if (recurring.interval === 'month') d.setUTCMonth(d.getUTCMonth() + n);
    else d.setUTCFullYear(d.getUTCFullYear() + n);
    return Math.floor(d.getTime() / 1000);
  }

  /** A paid invoice of a subscription (its PaymentIntent and charge too), as Stripe's API version shapes it. */
  function newInvoice(account: FakeStripeAccount, sub: Obj, amount: number, reason: 'subscription_create' | 'subscription_cycle', period: { start: number; end: number }, paid: boolean): Obj {
    const pi: Obj = {
      id: id('pi'), object: 'payment_intent', amount, amount_capturable: 0, amount_received: paid ? amount : 0, cancellation_reason: null, capture_method: 'automatic', created: now(), currency: sub.currency,
      description: 'Subscription update', last_payment_error: paid ? null : { type: 'card_error', code: 'card_declined', message: 'Your card was declined.' }, latest_charge: null, livemode: false, metadata: {}, customer: sub.customer,
      payment_method: sub.default_payment_method, payment_method_types: ['card'], setup_future_usage: null, status: paid ? 'succeeded' : 'requires_payment_method',
    };
    // Nothing to charge (a free trial): Stripe makes no PaymentIntent for a €0 invoice.
    if (amount > 0) {
      intents.set(pi.id, pi);
      owner.set(pi.id, account.secretKey);
      if (paid) newCharge(account, pi, cardDetails(`424242424242${sub._last4}`), true);
    }
    const inv: Obj = {
      id: id('in'), object: 'invoice', amount_due: amount, amount_paid: paid ? amount : 0, amount_remaining: paid ? 0 : amount, attempt_count: 1, billing_reason: reason, collection_method: 'charge_automatically',
      created: now(), currency: sub.currency, customer: sub.customer, livemode: false, metadata: {},
      lines: { object: 'list', data: [{ id: id('il'), object: 'line_item', amount, currency: sub.currency, description: sub._description, period, pricing: null, quantity: 1 }], has_more: false, url: '/v1/invoices/lines' },
      parent: { quote_details: null, subscription_details: { metadata: sub.metadata, subscription: sub.id }, type: 'subscription_details' },
      period_end: period.end, period_start: period.start, status: paid ? 'paid' : 'open', status_transitions: { paid_at: paid ? now() : null },
      total: amount,
    };
    Object.defineProperty(inv, '_pi', { value: amount > 0 ? pi.id : null, enumerable: false });
    invoices.set(inv.id, inv);
    owner.set(inv.id, account.secretKey);
    sub.latest_invoice = inv.id;
    return inv;
  }

  /** The hosted page paid a subscription-mode session: customer, subscription, first invoice; `invoice.paid` then `checkout.session.completed`. */
  async function startSubscription(account: FakeStripeAccount, session: Obj, pi: Obj, number: string): Promise<void> {
    intents.delete(pi.id); // the first invoice brings its own PaymentIntent; the session has none
    session.payment_intent = null;
    let customer = session.customer;
    if (!customer) {
      customer = route(account, 'POST', '/v1/customers', { email: session.customer_email }, new URLSearchParams()).id;
      session.customer = customer;
    }
    const { plan, data } = (session as any)._subscription as { plan: Obj; data: Obj };
    const start = now();
    const trialDays = data.trial_period_days ? Number(data.trial_period_days) : 0;
    const end = trialDays ? start + trialDays * 86_400 : periodEnd(start, plan.price_data.recurring);
    const unit = Number(plan.price_data.unit_amount) * Number(plan.quantity ?? 1);
    const sub: Obj = {
      id: id('sub'), object: 'subscription', billing_cycle_anchor: end, cancel_at: null, cancel_at_period_end: false, canceled_at: null, collection_method: 'charge_automatically', created: start, currency: session.currency,
      customer, default_payment_method: pi.payment_method, ended_at: null,
      items: { object: 'list', data: [{ id: id('si'), object: 'subscription_item', created: start, current_period_end: end, current_period_start: start, quantity: Number(plan.quantity ?? 1), price: { id: id('price'), object: 'price', active: false, currency: session.currency, product: id('prod'), recurring: { interval: plan.price_data.recurring.interval, interval_count: Number(plan.price_data.recurring.interval_count ?? 1), usage_type: 'licensed' }, type: 'recurring', unit_amount: Number(plan.price_data.unit_amount) } }], has_more: false, url: '/v1/subscription_items' },
      latest_invoice: null, livemode: false, metadata: data.metadata ?? {}, start_date: start, status: trialDays ? 'trialing' : 'active', trial_end: trialDays ? end : null, trial_start: trialDays ? start : null,
    };
    Object.defineProperties(sub, { _last4: { value: number.slice(-4) }, _unit: { value: unit }, _description: { value: plan.price_data.product_data?.name ?? '' } });
    subscriptions.set(sub.id, sub);
    owner.set(sub.id, account.secretKey);
    const inv = newInvoice(account, sub, trialDays ? session.amount_total - unit : session.amount_total, 'subscription_create', { start, end }, true);
    session.subscription = sub.id;
    session.invoice = inv.id;
    session.status = 'complete';
    session.payment_status = 'paid';
    session.customer_details = { email: session.customer_email, name: null };
    await emit(account, 'customer.subscription.created', sub);
    await emit(account, 'invoice.paid', inv);
    await emit(account, 'checkout.session.completed', session);
  }

  function endSubscription(account: FakeStripeAccount, sub: Obj): Obj {
    if (sub.status === 'canceled') throw invalid(`A canceled subscription can only update its cancellation_details and metadata.`, { code: 'resource_missing', param: 'id' }, 400);
    sub.status = 'canceled';
    sub.canceled_at = now();
    sub.ended_at = now();
    return sub;
  }

  function route(account: FakeStripeAccount, method: string, path: string, p: Obj, query: URLSearchParams): Obj {
    const q = parseStripeForm(query.toString());
    const expand: string[] = [...(p.expand ?? []), ...(Array.isArray(q.expand) ? q.expand : [])];
    let m: RegExpMatchArray | null;
    if (method === 'GET' && path === '/v1/balance') {
      return { object: 'balance', available: [{ amount: 0, currency: 'eur', source_types: { card: 0 } }], livemode: false, pending: [{ amount: 0, currency: 'eur', source_types: { card: 0 } }] };
    }
    if (method === 'POST' && path === '/v1/checkout/sessions') return createSession(account, p);
    if ((m = path.match(/^\/v1\/checkout\/sessions\/([^/]+)$/)) && method === 'GET') return expanded(own(account, 'checkout.session', sessions, m[1]), expand);
    if ((m = path.match(/^\/v1\/checkout\/sessions\/([^/]+)\/expire$/)) && method === 'POST') {
      const s = own(account, 'checkout.session', sessions, m[1]);
      if (s.status !== 'open') throw invalid(`Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a status of "${s.status}".`, { code: 'checkout_session_not_open' });
      s.status = 'expired';
      later(emit(account, 'checkout.session.expired', s));
      return expanded(s, expand);
    }
    if ((m = path.match(/^\/v1\/payment_intents\/([^/]+)$/)) && method === 'GET') return expanded(own(account, 'payment_intent', intents, m[1]), expand);
    if ((m = path.match(/^\/v1\/payment_intents\/([^/]+)\/(capture|cancel)$/)) && method === 'POST') {
      const pi = own(account, 'payment_intent', intents, m[1]);
      if (m[2] === 'capture') {
        if (pi.status !== 'requires_capture') throw invalid(`This PaymentIntent could not be captured because it has a status of ${pi.status}. Only a PaymentIntent with one of the following statuses may be captured: requires_capture.`, { code: 'payment_intent_unexpected_state', payment_intent: structuredClone(pi) });
        pi.status = 'succeeded';
        pi.amount_received = pi.amount;
        pi.amount_capturable = 0;
        const ch = charges.get(pi.latest_charge)!;
        ch.captured = true;
        ch.amount_captured = ch.amount;
      } else {
        if (!['requires_payment_method', 'requires_capture', 'requires_confirmation', 'requires_action', 'processing'].includes(pi.status)) {
          throw invalid(`You cannot cancel this PaymentIntent because it has a status of ${pi.status}. Only a PaymentIntent with one of the following statuses may be canceled: requires_payment_method, requires_capture, requires_confirmation, requires_action, processing.`, { code: 'payment_intent_unexpected_state', payment_intent: structuredClone(pi) });
        }
        pi.status = 'canceled';
        pi.cancellation_reason = p.cancellation_reason ?? null;
        pi.amount_capturable = 0;
      }
      return expanded(pi, expand);
    }
    if (method === 'POST' && path === '/v1/customers') {
      const c: Obj = { id: id('cus'), object: 'customer', address: null, balance: 0, created: now(), currency: null, default_source: null, delinquent: false, description: p.description ?? null, email: p.email ?? null, invoice_prefix: randomBytes(4).toString('hex').toUpperCase(), invoice_settings: { custom_fields: null, default_payment_method: null, footer: null, rendering_options: null }, livemode: false, metadata: p.metadata ?? {}, name: p.name ?? null, phone: null, preferred_locales: [], shipping: null, tax_exempt: 'none', test_clock: null };
      customers.set(c.id, c);
      owner.set(c.id, account.secretKey);
      return c;
    }
    if ((m = path.match(/^\/v1\/customers\/([^/]+)$/)) && method === 'GET') return structuredClone(own(account, 'customer', customers, m[1]));
    if ((m = path.match(/^\/v1\/customers\/([^/]+)\/payment_methods$/)) && method === 'GET') {
      const c = own(account, 'customer', customers, m[1]);
      if (c.deleted) throw missing('customer', m[1]);
      const data = [...paymentMethods.values()].filter((pm) => pm.customer === c.id && (!q.type || pm.type === q.type)).reverse();
      return { object: 'list', data: structuredClone(data), has_more: false, url: `/v1/customers/${c.id}/payment_methods` };
    }
    if ((m = path.match(/^\/v1\/payment_methods\/([^/]+)$/)) && method === 'GET') return structuredClone(own(account, 'payment_method', paymentMethods, m[1]));
    if ((m = path.match(/^\/v1\/payment_methods\/([^/]+)\/detach$/)) && method === 'POST') return detachMethod(account, own(account, 'payment_method', paymentMethods, m[1]), true);
    if ((m = path.match(/^\/v1\/subscriptions\/([^/]+)$/)) && method === 'GET') return structuredClone(own(account, 'subscription', subscriptions, m[1]));
    if ((m = path.match(/^\/v1\/subscriptions\/([^/]+)$/)) && method === 'DELETE') {
      const sub = endSubscription(account, own(account, 'subscription', subscriptions, m[1]));
      later(emit(account, 'customer.subscription.deleted', sub));
      return structuredClone(sub);
    }
    if ((m = path.match(/^\/v1\/invoices\/([^/]+)$/)) && method === 'GET') {
      const inv = structuredClone(own(account, 'invoice', invoices, m[1]));
      // `payments` is includable: only with expand[]=payments.
      if (expand.includes('payments')) {
        const pi = (invoices.get(m[1]) as any)._pi as string | null;
        inv.payments = { object: 'list', data: !pi ? [] : [{ id: id('inpay'), object: 'invoice_payment', amount_paid: inv.amount_paid, amount_requested: inv.amount_due, created: inv.created, currency: inv.currency, invoice: inv.id, is_default: true, livemode: false, payment: { type: 'payment_intent', payment_intent: pi }, status: inv.status === 'paid' ? 'paid' : 'open', status_transitions: { canceled_at: null, paid_at: inv.status_transitions.paid_at } }], has_more: false, url: `/v1/invoices/${inv.id}/payments` };
      }
      return inv;
    }
    if (method === 'POST' && path === '/v1/refunds') return createRefund(account, p, true);
    if (method === 'GET' && path === '/v1/refunds') {
      const charge = q.charge as string | undefined;
      const data = [...refunds.values()].filter((r) => owner.get(r.id) === account.secretKey && (!charge || r.charge === charge)).reverse();
      return { object: 'list', data, has_more: false, url: '/v1/refunds' };
    }
    throw invalid(`Unrecognized request URL (${method}: ${path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.`, {}, 404);
  }

  /** Detaches a saved card from its customer; Stripe announces it (payment_method.detached, with the customer it had). */
  function detachMethod(account: FakeStripeAccount, pm: Obj, viaApi: boolean): Obj | Promise<Obj> {
    if (!pm.customer) throw invalid(`The payment method you provided is not attached to a customer so detachment is impossible.`, { code: 'payment_method_unexpected_state', param: 'payment_method' });
    const previous = pm.customer;
    pm.customer = null;
    const evt = event('payment_method.detached', pm);
    evt.data.previous_attributes = { customer: previous };
    const announce = async () => {
      if (fake.holdWebhooks) fake.held.push({ account, event: evt });
      else await send(account, evt);
    };
    if (viaApi) later(announce());
    else return announce().then(() => structuredClone(pm));
    return structuredClone(pm);
  }

  function createRefund(account: FakeStripeAccount, p: Obj, viaApi: true): Obj;
  function createRefund(account: FakeStripeAccount, p: Obj, viaApi: false): Promise<Obj>;
  function createRefund(account: FakeStripeAccount, p: Obj, viaApi: boolean): Obj | Promise<Obj> {
    const pi = p.payment_intent ? own(account, 'payment_intent', intents, p.payment_intent) : null;
    if (!pi) throw invalid('One of the following params should be provided for this request: payment_intent or charge.', { code: 'parameter_missing', param: 'payment_intent' });
    if (pi.status !== 'succeeded') throw invalid(`This PaymentIntent (${pi.id}) does not have a successful charge to refund.`, { code: 'charge_not_refundable', param: 'payment_intent' });
    const ch = charges.get(pi.latest_charge)!;
    const left = ch.amount_captured - ch.amount_refunded;
    const amount = p.amount === undefined ? left : Number(p.amount);
    if (amount > left) throw invalid(`Refund amount (${amount}) is greater than unrefunded amount on charge (${left})`, { code: 'amount_too_large', param: 'amount' });
    const re: Obj = { id: id('re'), object: 'refund', amount, balance_transaction: id('txn'), charge: ch.id, created: now(), currency: ch.currency, metadata: p.metadata ?? {}, payment_intent: pi.id, reason: p.reason ?? null, status: 'succeeded' };
    refunds.set(re.id, re);
    owner.set(re.id, account.secretKey);
    ch.amount_refunded += amount;
    ch.refunded = ch.amount_refunded >= ch.amount_captured;
    // Stripe announces every refund, Paylink's own included (the plugin recognises those by metadata),
    // after answering the request that made it.
    const announce = async () => {
      await emit(account, 'refund.created', re);
      await emit(account, 'charge.refunded', ch);
    };
    if (viaApi) later(announce());
    else return announce().then(() => re);
    return re;
  }

  const html = (title: string, body: string) =>
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><link rel="icon" href="data:,"><title>${esc(title)}</title>` +
    `<style>body{font:16px system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;color:#1a1f36}label,input,button{display:block;width:100%;box-sizing:border-box}input{padding:.6rem;margin:.3rem 0 1rem;font-size:1rem}button{padding:.7rem;background:#635bff;color:#fff;border:0;border-radius:6px;font-size:1rem;margin-bottom:.6rem}.alt{background:#e3e8ee;color:#1a1f36}.err{color:#c00}</style></head><body><main>${body}</main></body></html>`;

  function hostedPage(session: Obj, error: string | null): string {
    const money = new Intl.NumberFormat('en', { style: 'currency', currency: session.currency.toUpperCase() }).format(session.amount_total / 100);
    const product = ((session as any)._intent?.product as string) ?? '';
    const bank = session.payment_method_types.length > 1 ? `<form method="post"><input type="hidden" name="method" value="bank"><button class="alt" type="submit">Pay by bank (SEPA)</button></form>` : '';
    return html(
      'Stripe Checkout',
      `<p>Test mode</p><h1>${esc(product)}</h1><p class="amount">${esc(money)}</p>${session.customer_email ? `<p>Email: ${esc(session.customer_email)}</p>` : ''}` +
        `${error ? `<p class="err" role="alert">${esc(error)}</p>` : ''}` +
        offered(session).map((pm) => `<form method="post"><input type="hidden" name="saved_payment_method" value="${esc(pm.id)}"><button type="submit">Pay with Visa •••• ${esc(pm.card.last4)}</button></form>`).join('') +
        `<form method="post"><label for="card">Card number</label><input id="card" name="card_number" inputmode="numeric" autocomplete="cc-number" value="">` +
        (session.customer && session.saved_payment_method_options?.payment_method_save === 'enabled' ? `<label><input type="checkbox" name="save" value="1"> Save my card for future purchases</label>` : '') +
        `<button type="submit">Pay ${esc(money)}</button></form>${bank}` +
        (session.cancel_url ? `<p><a href="${esc(String(session.cancel_url).replace('{CHECKOUT_SESSION_ID}', session.id))}">← Back</a></p>` : ''),
    );
  }

  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', async () => {
      const url = new URL(req.url ?? '/', 'http://stripe');
      // The hosted Checkout page.
      const page = url.pathname.match(/^\/c\/pay\/(cs_test_[A-Za-z0-9]+)$/);
      if (page) {
        const session = sessions.get(page[1]);
        if (!session) return void res.writeHead(404, { 'content-type': 'text/html' }).end(html('Not found', '<h1>Something went wrong</h1>'));
        if (session.status !== 'open') return void res.writeHead(410, { 'content-type': 'text/html' }).end(html('Expired', `<h1>This Checkout Session is no longer active</h1>`));
        if (req.method === 'GET') return void res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(hostedPage(session, null));
        const form = new URLSearchParams(raw);
        const result = await pay(session.id, form.get('card_number') ?? '', form.get('method') === 'bank' ? 'bank' : 'card', { save: form.get('save') === '1', savedPaymentMethod: form.get('saved_payment_method') ?? undefined });
        if (result.location) return void res.writeHead(303, { location: result.location }).end();
        return void res.writeHead(result.status, { 'content-type': 'text/html; charset=utf-8' }).end(hostedPage(session, result.declined ? 'Your card was declined. Try another card.' : 'This session has ended.'));
      }

      // The API.
      const requestId = id('req');
      const reply = (status: number, body: Obj) => {
        const text = JSON.stringify(body, null, 2);
        res.writeHead(status, { 'content-type': 'application/json', 'request-id': requestId, 'stripe-version': API_VERSION }).end(text);
        return { status, body: text };
      };
      if (fake.down) return void req.socket.destroy();
      const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
      const account = accounts.get(auth);
      if (!account) {
        const shown = auth ? `${auth.slice(0, 8)}****${auth.slice(-4)}` : '';
        return void reply(401, { error: { message: auth ? `Invalid API Key provided: ${shown}` : 'You did not provide an API key.', type: 'invalid_request_error' } });
      }
      const key = `${req.method} ${url.pathname}`;
      const f = failing.find((x) => x.n > 0 && key.startsWith(x.path));
      if (f) {
        f.n--;
        return void reply(500, { error: { message: 'An unknown error occurred', type: 'api_error' } });
      }
      const body = req.method === 'POST' ? parseStripeForm(raw) : {};
      const idem = req.method === 'POST' ? String(req.headers['idempotency-key'] ?? '') || null : null;
      fake.requests.push({ method: req.method ?? '', path: url.pathname, idempotencyKey: idem, body });
      const idemKey = idem ? `${account.secretKey} ${idem}` : null;
      if (idemKey && idempotent.has(idemKey)) {
        const prior = idempotent.get(idemKey)!;
        res.writeHead(prior.status, { 'content-type': 'application/json', 'request-id': requestId, 'idempotent-replayed': 'true' }).end(prior.body);
        return;
      }
      let answer: { status: number; body: string };
      try {
        answer = reply(200, route(account, req.method ?? 'GET', url.pathname, body, url.searchParams));
      } catch (err) {
        if (!(err instanceof StripeApiError)) throw err;
        answer = reply(err.status, { error: err.body });
      }
      // Stripe replays results (errors included) for the same key, except 5xx.
      if (idemKey && answer.status < 500) idempotent.set(idemKey, answer);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));

  const fake: FakeStripe = {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    accounts,
    addAccount: (a) => void accounts.set(a.secretKey, a),
    sessions,
    intents,
    charges,
    refunds,
    customers,
    paymentMethods,
    subscriptions,
    invoices,
    async renew(subscriptionId, opts = {}) {
      const sub = subscriptions.get(subscriptionId)!;
      const account = accountOf(subscriptionId);
      const item = sub.items.data[0];
      const start = item.current_period_end;
      const end = periodEnd(start, item.price.recurring);
      const inv = newInvoice(account, sub, (sub as any)._unit, 'subscription_cycle', { start, end }, !opts.fail);
      if (opts.fail) {
        sub.status = 'past_due';
        await emit(account, 'invoice.payment_failed', inv);
        await emit(account, 'customer.subscription.updated', sub);
        return inv;
      }
      Object.assign(item, { current_period_start: start, current_period_end: end });
      const wasPastDue = sub.status !== 'active';
      sub.status = 'active';
      await emit(account, 'invoice.paid', inv);
      if (wasPastDue) await emit(account, 'customer.subscription.updated', sub);
      return inv;
    },
    async cancelInDashboard(subscriptionId) {
      const account = accountOf(subscriptionId);
      const sub = endSubscription(account, subscriptions.get(subscriptionId)!);
      await emit(account, 'customer.subscription.deleted', sub);
      return sub;
    },
    sent: [],
    requests: [],
    down: false,
    failNext: (path, n = 1) => void failing.push({ path, n }),
    holdWebhooks: false,
    held: [],
    async deliver(list) {
      const out: number[] = [];
      for (const x of list) out.push((await send(x.account, x.event)).status);
      return out;
    },
    post,
    send,
    event,
    pay: (sessionId, card, opts) => pay(sessionId, card, 'card', opts),
    detach: async (paymentMethodId) => detachMethod(accountOf(paymentMethodId), paymentMethods.get(paymentMethodId)!, false),
    offered: (sessionId) => offered(sessions.get(sessionId)!),
    async settleAsync(sessionId, ok) {
      const session = sessions.get(sessionId)!;
      const pi = intents.get(session.payment_intent)!;
      const ch = charges.get(pi.latest_charge)!;
      const account = accountOf(sessionId);
      if (ok) {
        Object.assign(pi, { status: 'succeeded', amount_received: pi.amount });
        Object.assign(ch, { status: 'succeeded', captured: true, amount_captured: ch.amount });
        session.payment_status = 'paid';
      } else {
        Object.assign(pi, { status: 'requires_payment_method', last_payment_error: { type: 'invalid_request_error', code: 'payment_method_provider_decline', message: 'The debit was refused.' } });
        ch.status = 'failed';
      }
      await emit(account, ok ? 'checkout.session.async_payment_succeeded' : 'checkout.session.async_payment_failed', session);
    },
    async dashboardRefund(paymentIntentId, amount) {
      const account = accountOf(paymentIntentId);
      return createRefund(account, { payment_intent: paymentIntentId, ...(amount ? { amount } : {}), reason: 'requested_by_customer' }, false);
    },
    async dispute(paymentIntentId, status = 'needs_response') {
      const account = accountOf(paymentIntentId);
      const pi = intents.get(paymentIntentId)!;
      let dp = [...disputes.values()].find((d) => d.payment_intent === paymentIntentId);
      const type = dp ? (['won', 'lost'].includes(status) ? 'charge.dispute.closed' : 'charge.dispute.updated') : 'charge.dispute.created';
      if (!dp) {
        dp = { id: id('dp'), object: 'dispute', amount: pi.amount, charge: pi.latest_charge, created: now(), currency: pi.currency, is_charge_refundable: false, livemode: false, metadata: {}, payment_intent: pi.id, reason: 'fraudulent', status };
        disputes.set(dp.id, dp);
        owner.set(dp.id, account.secretKey);
        charges.get(pi.latest_charge)!.disputed = true;
      }
      dp.status = status;
      await emit(account, type, dp);
      return dp;
    },
    async idle() {
      while (inflight.size) await Promise.all([...inflight]);
    },
    async expireSession(sessionId, opts = {}) {
      const s = sessions.get(sessionId)!;
      s.status = 'expired';
      if (!opts.silent) await emit(accountOf(sessionId), 'checkout.session.expired', s);
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
  return fake;
}
