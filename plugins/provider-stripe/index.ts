// provider-stripe: card payments through Stripe Checkout (hosted: card data never touches Paylink),
// written exactly like a third-party plugin — it imports only the plugin API and Stripe's own SDK.
//
//   start     → a Checkout Session (client_reference_id and metadata = the Paylink payment id; cards
//               with manual capture), the customer is redirected to session.url
//   webhook   → signed with the merchant's signing secret (per-merchant URL), each event applied once:
//               an authorization → checkout.authorize (core claims the limit slot, then calls
//               capture → paymentIntents.capture, or void → paymentIntents.cancel); async success /
//               failure; an expired session → checkout.expire; refunds made in Stripe's dashboard →
//               checkout.recordRefund; disputes → checkout.flagDispute
//   return    → the success URL settles the same way (webhooks may come later) and sends the customer on
//   sweep     → every 5 minutes, pending payments whose webhook never came are settled from Stripe's state
//   refund    → refunds.create with Paylink's refund id as the idempotency key (and in metadata, so the
//               webhook that reports it is recognised as Paylink's own)
//   saved     → a checkout for a customer record runs with a Stripe customer of theirs (made once, kept
//   cards       in the plugin's store) and "save my card" enabled; a card saved that way becomes the
//               customer's payment profile (checkout.saveProfile), offered by Checkout next time;
//               forgetProfile detaches the customer's cards; a card detached in Stripe drops the profile
//   subscriptions → a recurring plan opens a subscription-mode Checkout Session (the plan's recurring
//               price, the one-time rest of the first charge as its own line); its completion
//               authorizes the first invoice's PaymentIntent with the Stripe subscription's id; later
//               invoices (`invoice.paid`, subscription_cycle) are renewals, `customer.subscription.updated`
//               moves past_due ⇄ active, `customer.subscription.deleted` ends it; the merchant's cancel
//               deletes the subscription at Stripe first
import { fileURLToPath } from 'node:url';
import Stripe from 'stripe';
import { definePlugin, ProviderError, rawBody, ServiceError, z, type CheckoutSessionInfo, type PaymentMethodInfo, type PluginApi, type PluginCheckoutPayment, type RecurringPlan } from 'paylink/plugin-api';

export const PLUGIN_ID = 'provider-stripe';
/** The Stripe events a merchant selects for the webhook endpoint (shown in Settings → Payments). */
export const WEBHOOK_EVENTS = [
  'checkout.session.completed',
  'checkout.session.async_payment_succeeded',
  'checkout.session.async_payment_failed',
  'checkout.session.expired',
  'payment_intent.amount_capturable_updated',
  'payment_intent.payment_failed',
  'charge.refunded',
  'refund.created',
  'refund.updated',
  'charge.dispute.created',
  'charge.dispute.updated',
  'charge.dispute.closed',
  'payment_method.detached',
  'invoice.paid',
  'customer.subscription.updated',
  'customer.subscription.deleted',
] as const;

/** How long a Checkout Session stays open when core holds nothing for it (Paylink's checkout lasts 2 h). */
const SESSION_LIFETIME_MS = 2 * 60 * 60_000;
/** Stripe refuses an `expires_at` less than 30 minutes ahead. */
const STRIPE_MIN_EXPIRY_MS = 30 * 60_000;
/** A pending payment older than this is asked about by the sweep (its Stripe session should have ended). */
const SWEEP_AFTER_MS = SESSION_LIFETIME_MS + 5 * 60_000;

const SECRET_KEY = /^(sk|rk)_(test|live)_[0-9A-Za-z]{8,}$/;
const WEBHOOK_SECRET = /^whsec_[0-9A-Za-z+/=]{8,}$/;
const MERCHANT_ID = /^[A-Za-z0-9_]{1,64}$/;
const STRIPE_SESSION_ID = /^cs_[A-Za-z0-9_]{1,200}$/;

const configSchema = z.object({
  /** Install-wide key for single-merchant installs: used for merchants who set none. */
  secretKey: z.string().regex(SECRET_KEY, 'secretKey must be a Stripe secret key (sk_…) or restricted key (rk_…).').optional(),
  webhookSecret: z.string().regex(WEBHOOK_SECRET, 'webhookSecret must be a Stripe signing secret (whsec_…).').optional(),
  /** Point the SDK at another Stripe (a fake in tests): `http://127.0.0.1:12111`. */
  apiBase: z.url().optional(),
});
type Config = z.infer<typeof configSchema>;

const methodsSchema = z.enum(['card', 'all'], { error: 'Choose which payment methods to offer.' }).default('card');

export interface StripeSettings {
  secretKey?: string;
  webhookSecret?: string;
  /** `card`: cards only, manual capture (exact payment limits); `all`: every method enabled in Stripe, captured at once. */
  methods: 'card' | 'all';
  /** The secret key, masked (`sk_live_…4242`): not a secret, shown in Settings → Payments and the API. */
  secretKeyHint?: string;
}

/** A Stripe error as a ProviderError: connection, 5xx, rate limits and lock conflicts are retryable. */
export function providerErrorFrom(err: unknown, what: string): ProviderError {
  if (err instanceof ProviderError) return err;
  const e = err as { type?: string; statusCode?: number; code?: string; message?: string };
  const retryable = e.type === 'StripeConnectionError' || e.type === 'StripeAPIError' || e.type === 'StripeRateLimitError' || e.type === 'StripeIdempotencyError' || (e.statusCode ?? 0) >= 500 || e.statusCode === 429 || e.code === 'lock_timeout';
  const code = retryable ? 'stripe_unavailable' : (e.code ?? 'stripe_rejected');
  return new ProviderError(`Stripe ${what}: ${e.message ?? String(err)}`.slice(0, 300), { retryable, code: String(code).slice(0, 64), cause: err });
}

const paymentMethodOf = (pi: Stripe.PaymentIntent): PaymentMethodInfo | undefined => {
  const charge = typeof pi.latest_charge === 'object' ? pi.latest_charge : null;
  const details = charge?.payment_method_details;
  if (!details?.type) return undefined;
  if (details.type === 'card' && details.card) return { type: 'card', ...(details.card.brand ? { brand: details.card.brand } : {}), ...(details.card.last4 ? { last4: details.card.last4 } : {}) };
  return { type: details.type };
};

/** After Stripe refused a capture or cancel for the PaymentIntent's state: that state (else null). */
async function statusAfterConflict(stripe: Stripe, intentId: string, err: unknown): Promise<string | null> {
  if ((err as { code?: string }).code !== 'payment_intent_unexpected_state') return null;
  const pi = await stripe.paymentIntents.retrieve(intentId).catch((e: unknown) => Promise.reject(providerErrorFrom(e, 'could not read the payment')));
  return pi.status;
}

const idOf = (v: string | { id: string } | null | undefined): string | null => (typeof v === 'string' ? v : (v?.id ?? null));

/** "Visa •••• 4242" for a saved card (the brand as Stripe names it, capitalised). */
export function cardLabel(pm: Stripe.PaymentMethod): string {
  const brand = pm.card?.brand ?? pm.type;
  const names: Record<string, string> = { amex: 'American Express', diners: 'Diners Club', mastercard: 'Mastercard', unionpay: 'UnionPay', jcb: 'JCB', visa: 'Visa', discover: 'Discover' };
  const name = names[brand] ?? brand.charAt(0).toUpperCase() + brand.slice(1).replace(/_/g, ' ');
  return pm.card?.last4 ? `${name} •••• ${pm.card.last4}` : name;
}

/** The plugin store's key of a customer record's Stripe customer (one per merchant and customer). */
const customerKey = (merchantId: string, customerId: string) => `${merchantId}:${customerId}`;

export default definePlugin({
  id: PLUGIN_ID,
  version: '1.0.0',
  apiVersion: 1,
  description: 'Card payments through Stripe Checkout, with exact payment limits (manual capture).',
  config: configSchema,
  viewsDir: fileURLToPath(new URL('./views', import.meta.url)),
  register(api, config) {
    const base = config.apiBase ? new URL(config.apiBase) : null;
    const clients = new Map<string, Stripe>();
    const client = (secretKey: string): Stripe => {
      let c = clients.get(secretKey);
      if (!c) {
        c = new Stripe(secretKey, {
          maxNetworkRetries: 0, // core retries captures, voids and refunds as jobs (same idempotency keys)
          timeout: 15_000,
          telemetry: false,
          appInfo: { name: 'Paylink', url: 'https://github.com/paylink' },
          ...(base ? { host: base.hostname, port: base.port || (base.protocol === 'https:' ? 443 : 80), protocol: base.protocol === 'https:' ? 'https' : 'http' } : {}),
        });
        clients.set(secretKey, c);
      }
      return c;
    };
    /** The merchant's own keys, else the install's. */
    const keysOf = (s: Partial<StripeSettings> | null) => ({ secretKey: s?.secretKey || config.secretKey || null, webhookSecret: s?.webhookSecret || config.webhookSecret || null });
    const stripeFor = (s: Partial<StripeSettings> | null): Stripe => {
      const { secretKey } = keysOf(s);
      if (!secretKey) throw new ProviderError('Stripe is not configured for this merchant (no secret key).', { retryable: false, code: 'stripe_not_configured' });
      return client(secretKey);
    };
    const cardsOnly = (s: Partial<StripeSettings> | null) => (s?.methods ?? 'card') === 'card';
    const webhookUrl = (merchantId: string) => `${api.baseUrl}/p/${PLUGIN_ID}/webhook/${merchantId}`;

    const merchantSettings = z
      .object({
        secretKey: z.string().trim().regex(SECRET_KEY, 'Paste your Stripe secret key (sk_live_… or sk_test_…) or a restricted key (rk_…).').optional(),
        webhookSecret: z.string().trim().regex(WEBHOOK_SECRET, 'Paste the signing secret of your Stripe webhook endpoint (whsec_…).').optional(),
        methods: methodsSchema,
      })
      .superRefine((s, ctx) => {
        // Without an install-wide key, a merchant brings both.
        if (!s.secretKey && !config.secretKey) ctx.addIssue({ code: 'custom', path: ['secretKey'], message: 'Paste your Stripe secret key (sk_live_… or sk_test_…).' });
        if (!s.webhookSecret && !config.webhookSecret) ctx.addIssue({ code: 'custom', path: ['webhookSecret'], message: 'Paste the signing secret of your Stripe webhook endpoint (whsec_…).' });
      })
      // Which key is set, masked (`sk_live_…4242`): stored as a plain setting, so the page and the API can show it.
      .transform((s) => ({ ...s, secretKeyHint: s.secretKey ? `${s.secretKey.slice(0, 8)}…${s.secretKey.slice(-4)}` : undefined })) as unknown as z.ZodType<StripeSettings>;

    api.providers.register<StripeSettings>({
      id: 'stripe',
      name: 'Stripe',
      methodLabel: 'Card',
      captureModel: (s) => (cardsOnly(s) ? 'manual' : 'immediate'),
      merchantSettings: {
        schema: merchantSettings,
        secrets: ['secretKey', 'webhookSecret'],
        formFragment: 'settings',
        /** A live call with the key: a key Stripe refuses is answered by the field; Stripe down → nothing saved. */
        async verify(s) {
          const { secretKey } = keysOf(s);
          if (!secretKey) return [{ field: 'secretKey', message: 'Paste your Stripe secret key.' }];
          try {
            await client(secretKey).balance.retrieve();
          } catch (err) {
            const e = err as { type?: string; message?: string };
            if (e.type === 'StripeAuthenticationError') return [{ field: 'secretKey', message: 'Stripe did not accept this key. Copy it again from Developers → API keys.' }];
            if (e.type === 'StripePermissionError') return [{ field: 'secretKey', message: 'This restricted key cannot read your balance: give it read access to Balance, write access to Checkout Sessions, Customers, PaymentIntents, PaymentMethods and Refunds.' }];
            const pe = providerErrorFrom(err, 'could not check the key');
            if (pe.retryable) throw pe;
            return [{ field: 'secretKey', message: (e.message ?? 'Stripe refused this key.').slice(0, 200) }];
          }
          return [];
        },
      },
      checkoutOrigins: () => ['https://checkout.stripe.com', ...(base ? [base.origin] : [])],

      // Subscription-mode Checkout: Stripe bills the renewals and tells us by webhook.
      subscriptions: true,

      async cancelSubscription(sub, s) {
        if (!sub.providerRef) return; // Stripe never made one (the checkout did not complete there)
        try {
          await stripeFor(s).subscriptions.cancel(sub.providerRef);
        } catch (err) {
          // Ended at Stripe already: nothing left to stop.
          if ((err as { code?: string }).code === 'resource_missing') return;
          throw providerErrorFrom(err, 'could not cancel the subscription');
        }
      },

      async start(session, s) {
        const stripe = stripeFor(s);
        const metadata = { paylink_payment_id: session.paymentId, paylink_session_id: session.id, paylink_merchant_id: session.merchant.id };
        // A customer record pays: Checkout runs for their Stripe customer, offers the card they saved and lets them save one.
        const stripeCustomer = session.customer.id ? await stripeCustomerOf(stripe, session) : null;
        // How long core holds the checkout (core's clock), as a Stripe timestamp (Stripe's clock is the real one).
        const lifetime = session.expiresAt ? Date.parse(session.expiresAt) - api.now().getTime() : SESSION_LIFETIME_MS;
        const expiresAt = Math.floor((Date.now() + Math.max(lifetime, STRIPE_MIN_EXPIRY_MS + 60_000)) / 1000);
        let created: Stripe.Checkout.Session;
        const plan = session.recurring ?? null;
        try {
          created = await stripe.checkout.sessions.create(
            plan ? subscriptionSession(session, plan, s, metadata, stripeCustomer, expiresAt) : {
              mode: 'payment',
              line_items: [{ quantity: 1, price_data: { currency: session.currency.toLowerCase(), unit_amount: session.amount, product_data: { name: session.description.slice(0, 250) || session.merchant.name } } }],
              client_reference_id: session.paymentId,
              metadata,
              payment_intent_data: { metadata, capture_method: cardsOnly(s) ? 'manual' : 'automatic', description: session.description.slice(0, 250) },
              ...(cardsOnly(s) ? { payment_method_types: ['card'] } : {}),
              ...(stripeCustomer
                ? { customer: stripeCustomer, saved_payment_method_options: { payment_method_save: 'enabled' as const } }
                : session.customer.email
                  ? { customer_email: session.customer.email }
                  : {}),
              success_url: `${api.baseUrl}/p/${PLUGIN_ID}/return/${session.merchant.id}/${session.paymentId}?session_id={CHECKOUT_SESSION_ID}`,
              cancel_url: `${api.baseUrl}/p/${PLUGIN_ID}/cancel/${session.merchant.id}/${session.paymentId}?session_id={CHECKOUT_SESSION_ID}`,
              expires_at: expiresAt,
            },
            { idempotencyKey: `paylink_checkout_${session.paymentId}` },
          );
        } catch (err) {
          throw providerErrorFrom(err, 'could not open a checkout');
        }
        if (!created.url) throw new ProviderError('Stripe answered a checkout session without a URL.', { retryable: false, code: 'stripe_no_url' });
        // The sweep finds the session of a payment whose webhooks never came.
        await api.store.insertOnce('sessions', session.paymentId, { merchantId: session.merchant.id, data: { stripeSessionId: created.id } });
        return { redirect: created.url };
      },

      async capture(payment, s) {
        // A subscription's free trial was paid by nothing (its reference is the €0 invoice): nothing to capture.
        if (payment.providerRef?.startsWith('in_')) return;
        const stripe = stripeFor(s);
        if (!payment.providerRef) throw new ProviderError('No PaymentIntent to capture.', { retryable: false, code: 'no_payment_intent' });
        try {
          await stripe.paymentIntents.capture(payment.providerRef, {}, { idempotencyKey: `paylink_capture_${payment.paymentId}` });
        } catch (err) {
          // Captured already (a method Stripe captures at once, or an earlier attempt): nothing left to do.
          if ((await statusAfterConflict(stripe, payment.providerRef, err)) === 'succeeded') return;
          throw providerErrorFrom(err, 'could not capture');
        }
      },

      async void(payment, s) {
        const stripe = stripeFor(s);
        if (!payment.providerRef) return;
        // A subscription's first payment lost the limit's claim: Stripe must not bill it again either.
        const sub = await api.store.getByKey<{ stripeSubscriptionId: string }>('subscriptions', payment.paymentId);
        if (sub) {
          await stripe.subscriptions.cancel(sub.data.stripeSubscriptionId).catch((err: unknown) => {
            if ((err as { code?: string }).code !== 'resource_missing') throw providerErrorFrom(err, 'could not cancel the subscription');
          });
        }
        if (payment.providerRef.startsWith('in_')) return; // a free trial's €0 invoice: nothing was charged
        try {
          await stripe.paymentIntents.cancel(payment.providerRef, {}, { idempotencyKey: `paylink_cancel_${payment.paymentId}` });
        } catch (err) {
          const status = await statusAfterConflict(stripe, payment.providerRef, err);
          if (status === 'canceled') return;
          // Taken at once (not a card): give it back in full instead.
          if (status === 'succeeded') {
            await stripe.refunds
              .create({ payment_intent: payment.providerRef, metadata: { paylink_payment_id: payment.paymentId, paylink_refund_id: `${payment.paymentId}_void` } }, { idempotencyKey: `paylink_void_refund_${payment.paymentId}` })
              .catch((e: unknown) => Promise.reject(providerErrorFrom(e, 'could not refund')));
            return;
          }
          throw providerErrorFrom(err, 'could not cancel the authorization');
        }
      },

      /** Detaches every card saved on the customer's Stripe customer: Checkout never offers them again. */
      async forgetProfile(profile, s) {
        const stripe = stripeFor(s);
        try {
          const methods = await stripe.customers.listPaymentMethods(profile.ref, { limit: 100 });
          for (const pm of methods.data) await stripe.paymentMethods.detach(pm.id);
        } catch (err) {
          // The customer (or the card) is gone at Stripe already: nothing is left to offer.
          if ((err as { code?: string }).code === 'resource_missing' || (err as { code?: string }).code === 'payment_method_unexpected_state') return;
          throw providerErrorFrom(err, 'could not remove the saved card');
        }
      },

      async refund(payment, amount, s) {
        const stripe = stripeFor(s);
        if (!payment.providerRef) throw new ProviderError('No PaymentIntent to refund.', { retryable: false, code: 'no_payment_intent' });
        let refund: Stripe.Refund;
        try {
          refund = await stripe.refunds.create(
            { payment_intent: payment.providerRef, amount, metadata: { paylink_payment_id: payment.paymentId, paylink_refund_id: payment.refundId, ...(payment.reason ? { reason: payment.reason.slice(0, 400) } : {}) } },
            { idempotencyKey: payment.refundId },
          );
        } catch (err) {
          throw providerErrorFrom(err, 'could not refund');
        }
        if (refund.status === 'failed' || refund.status === 'canceled') throw new ProviderError(`Stripe could not refund: ${refund.failure_reason ?? refund.status}`, { retryable: false, code: 'refund_failed' });
        return { providerRef: refund.id };
      },
    });

    /** A subscription-mode Checkout Session: the plan's recurring price, and the rest of the first charge once. */
    function subscriptionSession(session: CheckoutSessionInfo, plan: RecurringPlan, s: StripeSettings, metadata: Record<string, string>, stripeCustomer: string | null, expiresAt: number): Stripe.Checkout.SessionCreateParams {
      const currency = session.currency.toLowerCase();
      const once = session.amount - (plan.trialDays ? 0 : plan.renewalAmount);
      // A coupon larger than the one-time lines would need a Stripe coupon on the subscription: not offered.
      if (once < 0) throw new ProviderError('A discount larger than the one-time items cannot be applied to a Stripe subscription.', { retryable: false, code: 'subscription_discount' });
      return {
        mode: 'subscription',
        line_items: [
          { quantity: 1, price_data: { currency, unit_amount: plan.renewalAmount, recurring: { interval: plan.interval, interval_count: plan.intervalCount }, product_data: { name: plan.productName.slice(0, 250) || session.description.slice(0, 250) } } },
          ...(once > 0 ? [{ quantity: 1, price_data: { currency, unit_amount: once, product_data: { name: session.description.slice(0, 250) || session.merchant.name } } }] : []),
        ],
        client_reference_id: session.paymentId,
        metadata,
        subscription_data: { metadata, ...(plan.trialDays ? { trial_period_days: plan.trialDays } : {}) },
        ...(cardsOnly(s) ? { payment_method_types: ['card'] } : {}),
        ...(stripeCustomer ? { customer: stripeCustomer } : session.customer.email ? { customer_email: session.customer.email } : {}),
        success_url: `${api.baseUrl}/p/${PLUGIN_ID}/return/${session.merchant.id}/${session.paymentId}?session_id={CHECKOUT_SESSION_ID}`,
        cancel_url: `${api.baseUrl}/p/${PLUGIN_ID}/cancel/${session.merchant.id}/${session.paymentId}?session_id={CHECKOUT_SESSION_ID}`,
        expires_at: expiresAt,
      };
    }

    /**
     * The Stripe customer of a customer record: the one holding their saved card, else the one made
     * for them before (kept in the plugin's store), else a new one (the idempotency key makes a retry
     * reuse it). Stripe unreachable → null: the checkout goes ahead without offering to save the card.
     */
    async function stripeCustomerOf(stripe: Stripe, session: CheckoutSessionInfo): Promise<string | null> {
      if (session.customer.savedProfile) return session.customer.savedProfile.ref;
      const key = customerKey(session.merchant.id, session.customer.id!);
      const known = await api.store.getByKey<{ stripeCustomerId: string }>('customers', key);
      if (known) return known.data.stripeCustomerId;
      try {
        const created = await stripe.customers.create(
          {
            ...(session.customer.email ? { email: session.customer.email } : {}),
            ...(session.customer.name ? { name: session.customer.name.slice(0, 250) } : {}),
            metadata: { paylink_customer_id: session.customer.id!, paylink_merchant_id: session.merchant.id },
          },
          { idempotencyKey: `paylink_customer_${key}` },
        );
        await api.store.insertOnce('customers', key, { merchantId: session.merchant.id, data: { stripeCustomerId: created.id } });
        return ((await api.store.getByKey<{ stripeCustomerId: string }>('customers', key))?.data.stripeCustomerId) ?? created.id;
      } catch (err) {
        api.log.warn('could not make a Stripe customer; this checkout cannot save the card', { paymentId: session.paymentId, error: err });
        return null;
      }
    }

    registerRoutes(api, { keysOf, stripeFor, webhookUrl, config });
  },
});

interface Helpers {
  keysOf(s: Partial<StripeSettings> | null): { secretKey: string | null; webhookSecret: string | null };
  stripeFor(s: Partial<StripeSettings> | null): Stripe;
  webhookUrl(merchantId: string): string;
  config: Config;
}

function registerRoutes(api: PluginApi, h: Helpers): void {
  const checkout = api.services.checkout;
  const settingsOf = (merchantId: string) => checkout.settingsFor<StripeSettings>(merchantId, 'stripe');

  /**
   * Settles a payment from Stripe's current state of its PaymentIntent: authorized (or captured at
   * once) → authorize; failed for good → decline; still processing → nothing yet. Idempotent.
   */
  async function settleFromIntent(payment: PluginCheckoutPayment, stripe: Stripe, intent: string | Stripe.PaymentIntent | null, subscriptionRef?: string) {
    if (!intent) return null;
    let pi = typeof intent === 'string' ? null : intent;
    if (!pi || typeof pi.latest_charge !== 'object') pi = await stripe.paymentIntents.retrieve(idOf(intent)!, { expand: ['latest_charge'] });
    if (pi.status === 'requires_capture' || pi.status === 'succeeded') {
      const paymentMethod = paymentMethodOf(pi);
      const result = await checkout.authorize(payment.id, pi.id, { ...(paymentMethod ? { paymentMethod } : {}), ...(subscriptionRef ? { subscriptionRef } : {}) });
      if (result.status === 'paid' || result.status === 'processing') await rememberSavedCard(payment, stripe, pi);
      // Authorized after Paylink gave up on the payment (it expired): let go of the card's hold rather
      // than leave the customer's money reserved until Stripe lets it lapse.
      if (result.status === 'failed' && pi.status === 'requires_capture') {
        await stripe.paymentIntents.cancel(pi.id, {}, { idempotencyKey: `paylink_cancel_${payment.id}` }).catch((err: unknown) => api.log.warn('could not cancel a late authorization', { paymentId: payment.id, error: err }));
      }
      return result;
    }
    if (pi.status === 'canceled') await checkout.decline(payment.id, { code: 'payment_canceled', message: 'The payment was cancelled at Stripe.' });
    return null;
  }

  /** The PaymentIntent that paid an invoice (Stripe lists it under the invoice's `payments`), or null. */
  async function intentOfInvoice(stripe: Stripe, invoiceId: string): Promise<string | null> {
    const inv = await stripe.invoices.retrieve(invoiceId, { expand: ['payments'] });
    const paid = inv.payments?.data.find((p) => p.status === 'paid') ?? inv.payments?.data[0];
    return idOf(paid?.payment.payment_intent ?? null);
  }

  /**
   * A completed Checkout Session settles its payment: a one-time payment by its PaymentIntent; a
   * subscription by its first invoice's, naming the Stripe subscription (kept in the store first, so
   * a void can end it at Stripe).
   */
  async function settleSession(payment: PluginCheckoutPayment, stripe: Stripe, s: Stripe.Checkout.Session) {
    if (s.mode !== 'subscription') return settleFromIntent(payment, stripe, s.payment_intent as Stripe.PaymentIntent | string | null);
    const subscription = idOf(s.subscription);
    const invoice = idOf(s.invoice);
    if (!subscription || !invoice) return null;
    await api.store.insertOnce('subscriptions', payment.id, { merchantId: payment.merchantId, data: { stripeSubscriptionId: subscription } });
    const intent = await intentOfInvoice(stripe, invoice);
    if (intent) return settleFromIntent(payment, stripe, intent, subscription);
    // A free trial with nothing else to pay: Stripe charged nothing (a €0 invoice, paid) and keeps the card for the trial's end.
    const inv = await stripe.invoices.retrieve(invoice);
    if (inv.status !== 'paid' || inv.amount_paid !== 0) return null;
    return checkout.authorize(payment.id, inv.id!, { subscriptionRef: subscription });
  }

  /** A renewal Stripe charged (an invoice of a subscription cycle) becomes a payment of the link, once. */
  async function invoicePaid(merchantId: string | null, stripe: Stripe, inv: Stripe.Invoice): Promise<string> {
    if (inv.billing_reason === 'subscription_create') return 'first_invoice'; // the checkout's own payment
    const ref = idOf(inv.parent?.subscription_details?.subscription ?? null);
    const sub = ref ? await api.services.subscriptions.byRef(ref) : null;
    if (!sub || (merchantId !== null && sub.merchantId !== merchantId)) return 'unknown_subscription';
    if (!inv.id || !(inv.amount_paid > 0)) return 'nothing_paid';
    // Ended in Paylink (the merchant canceled): Stripe stopped billing it; an invoice it still reports is not taken.
    if (sub.status === 'canceled') return 'subscription_canceled';
    const intent = await intentOfInvoice(stripe, inv.id);
    const pi = intent ? await stripe.paymentIntents.retrieve(intent, { expand: ['latest_charge'] }) : null;
    const end = inv.lines?.data[0]?.period?.end;
    const paymentMethod = pi ? paymentMethodOf(pi) : undefined;
    // The PaymentIntent is the payment's reference (refunds go through it); the invoice when there is none.
    await api.services.subscriptions.renewed(sub.id, { invoiceRef: pi?.id ?? inv.id, amount: inv.amount_paid, ...(end ? { periodEnd: new Date(end * 1000) } : {}), ...(paymentMethod ? { paymentMethod } : {}) });
    return 'renewed';
  }

  /** Stripe's state of a subscription, applied: past_due ⇄ active, or ended. */
  async function subscriptionChanged(merchantId: string | null, sub: Stripe.Subscription, deleted: boolean): Promise<string> {
    const own = await api.services.subscriptions.byRef(sub.id);
    if (!own || (merchantId !== null && own.merchantId !== merchantId)) return 'unknown_subscription';
    if (deleted || sub.status === 'canceled' || sub.status === 'incomplete_expired') return (await api.services.subscriptions.canceled(own.id)) ? 'canceled' : 'already_canceled';
    if (sub.status === 'past_due' || sub.status === 'unpaid') await api.services.subscriptions.setStatus(own.id, 'past_due');
    else if (sub.status === 'active') await api.services.subscriptions.setStatus(own.id, 'active');
    return sub.status;
  }

  /**
   * The customer ticked "save my card": the card is attached to their Stripe customer and may be
   * shown again (allow_redisplay `always`). Then it is the customer record's payment profile.
   */
  async function rememberSavedCard(payment: PluginCheckoutPayment, stripe: Stripe, pi: Stripe.PaymentIntent) {
    const customer = idOf(pi.customer);
    const pmId = idOf(pi.payment_method);
    if (!customer || !pmId) return;
    try {
      const pm = typeof pi.payment_method === 'object' && pi.payment_method ? pi.payment_method : await stripe.paymentMethods.retrieve(pmId);
      if (idOf(pm.customer) !== customer || pm.allow_redisplay !== 'always') return;
      await checkout.saveProfile(payment.id, { ref: customer, label: cardLabel(pm) });
    } catch (err) {
      // The payment stands either way; the card is simply not offered next time.
      api.log.warn('could not record the saved card', { paymentId: payment.id, error: err });
    }
  }

  /** A card was detached in Stripe: when the customer has no card left to offer, their profile goes. */
  async function cardDetached(merchantId: string | null, stripe: Stripe, event: Stripe.Event): Promise<string> {
    const previous = (event.data as { previous_attributes?: { customer?: unknown } }).previous_attributes?.customer;
    const customer = typeof previous === 'string' ? previous : null;
    if (!customer) return 'no_customer';
    const c = await stripe.customers.retrieve(customer);
    const owner = 'deleted' in c && c.deleted ? null : ((c as Stripe.Customer).metadata?.paylink_merchant_id ?? null);
    // A merchant's signing secret speaks for that merchant; the install's for merchants without one.
    const merchant = merchantId ?? (owner && !(await settingsOf(owner))?.webhookSecret ? owner : null);
    if (!merchant || (owner !== null && owner !== merchant)) return 'unknown_customer';
    const left = await stripe.customers.listPaymentMethods(customer, { limit: 100 });
    if (left.data.some((pm) => pm.allow_redisplay === 'always')) return 'cards_left';
    return `dropped:${await checkout.dropProfile(merchant, customer)}`;
  }

  /** The Paylink payment a Stripe object is about (from our metadata), if it is this merchant's. */
  async function paymentFor(merchantId: string | null, paymentId: unknown): Promise<PluginCheckoutPayment | null> {
    if (typeof paymentId !== 'string' || !paymentId) return null;
    const payment = await checkout.getPayment(paymentId);
    if (!payment) return null;
    // A merchant's signing secret speaks only for that merchant's payments; the install's only for
    // merchants who brought no secret of their own.
    if (merchantId !== null && payment.merchantId !== merchantId) return null;
    if (merchantId === null && (await settingsOf(payment.merchantId))?.webhookSecret) return null;
    return payment;
  }

  async function paymentOfIntent(merchantId: string | null, stripe: Stripe, intent: string | Stripe.PaymentIntent | null) {
    const id = idOf(intent);
    if (!id) return { payment: null, pi: null };
    const pi = typeof intent === 'object' && intent ? intent : await stripe.paymentIntents.retrieve(id);
    return { payment: await paymentFor(merchantId, pi.metadata?.paylink_payment_id), pi };
  }

  /** A refund made in Stripe (not one Paylink asked for) is recorded once, when it succeeded. */
  async function recordStripeRefund(merchantId: string | null, stripe: Stripe, refund: Stripe.Refund) {
    if (refund.metadata?.paylink_refund_id) return 'paylink_refund';
    if (refund.status !== 'succeeded') return 'not_succeeded';
    const { payment } = await paymentOfIntent(merchantId, stripe, refund.payment_intent);
    if (!payment) return 'unknown_payment';
    await checkout.recordRefund(payment.id, { providerRef: refund.id, amount: refund.amount, reason: refund.reason ?? 'Refunded in Stripe' });
    return 'recorded';
  }

  async function handle(event: Stripe.Event, merchantId: string | null, stripe: Stripe): Promise<string> {
    switch (event.type) {
      case 'checkout.session.completed':
      case 'checkout.session.async_payment_succeeded': {
        const s = event.data.object;
        const payment = await paymentFor(merchantId, s.metadata?.paylink_payment_id ?? s.client_reference_id);
        if (!payment) return 'unknown_payment';
        await settleSession(payment, stripe, s);
        return 'settled';
      }
      case 'checkout.session.async_payment_failed': {
        const s = event.data.object;
        const payment = await paymentFor(merchantId, s.metadata?.paylink_payment_id ?? s.client_reference_id);
        if (!payment) return 'unknown_payment';
        await checkout.decline(payment.id, { code: 'payment_failed', message: 'The payment did not go through at the bank.' });
        return 'declined';
      }
      case 'checkout.session.expired': {
        const s = event.data.object;
        const payment = await paymentFor(merchantId, s.metadata?.paylink_payment_id ?? s.client_reference_id);
        if (!payment) return 'unknown_payment';
        await checkout.expire(payment.id); // a no-op once it was paid: `expired` after `completed` changes nothing
        return 'expired';
      }
      case 'payment_intent.amount_capturable_updated': {
        const pi = event.data.object;
        const payment = await paymentFor(merchantId, pi.metadata?.paylink_payment_id);
        if (!payment) return 'unknown_payment';
        await settleFromIntent(payment, stripe, pi.id);
        return 'settled';
      }
      case 'payment_intent.payment_failed':
        // A declined card on Stripe's page: the customer may try another card in the same session, so
        // nothing changes here; the session's completion or expiry decides.
        return 'noted';
      case 'refund.created':
      case 'refund.updated':
        return recordStripeRefund(merchantId, stripe, event.data.object);
      case 'charge.refunded': {
        const charge = event.data.object;
        const refunds = await stripe.refunds.list({ charge: charge.id, limit: 100 });
        const outcomes = [];
        for (const r of refunds.data) outcomes.push(await recordStripeRefund(merchantId, stripe, r));
        return outcomes.join(',') || 'none';
      }
      case 'charge.dispute.created':
      case 'charge.dispute.updated':
      case 'charge.dispute.closed': {
        const d = event.data.object;
        const { payment } = await paymentOfIntent(merchantId, stripe, d.payment_intent);
        if (!payment) return 'unknown_payment';
        await checkout.flagDispute(payment.id, { providerRef: d.id, status: d.status, amount: d.amount, reason: d.reason ?? null });
        return 'flagged';
      }
      case 'payment_method.detached':
        return cardDetached(merchantId, stripe, event);
      case 'invoice.paid':
        return invoicePaid(merchantId, stripe, event.data.object);
      case 'customer.subscription.updated':
      case 'customer.subscription.deleted':
        return subscriptionChanged(merchantId, event.data.object, event.type === 'customer.subscription.deleted');
      default:
        return 'ignored';
    }
  }

  /** Stripe's webhooks: one URL per merchant (their signing secret), or the install's for merchants without one. */
  const webhook = async (req: import('express').Request, res: import('express').Response) => {
    const merchantId = req.params.merchantId ? String(req.params.merchantId) : null;
    if (merchantId !== null && !MERCHANT_ID.test(merchantId)) return void res.status(404).json({ error: 'unknown_merchant' });
    const settings = merchantId ? await settingsOf(merchantId) : null;
    const { webhookSecret } = h.keysOf(settings);
    if (!webhookSecret) return void res.status(404).json({ error: 'not_configured' });
    let event: Stripe.Event;
    const stripe = h.stripeFor(settings);
    try {
      if (!Buffer.isBuffer(req.body)) throw new Error('no body');
      event = stripe.webhooks.constructEvent(req.body, String(req.get('stripe-signature') ?? ''), webhookSecret);
    } catch {
      return void res.status(400).json({ error: 'bad_signature' }); // nothing is read or changed
    }
    // Each event once: seen before → done. Recorded after it was applied, so a failure is retried by Stripe.
    if (await api.store.getByKey('events', event.id)) return void res.status(200).json({ received: true, duplicate: true });
    let outcome: string;
    try {
      outcome = await handle(event, merchantId, stripe);
    } catch (err) {
      if (err instanceof ServiceError && !err.retryable) {
        // What a retry never fixes (e.g. more refunded than is left): acknowledge, log, keep it.
        api.log.warn('stripe event could not be applied', { event: event.id, type: event.type, code: err.code });
        outcome = `rejected:${err.code}`;
      } else {
        api.log.error('stripe event failed; Stripe will retry', { event: event.id, type: event.type, error: err });
        return void res.status(503).json({ error: 'retry_later' });
      }
    }
    await api.store.insertOnce('events', event.id, { merchantId, data: { type: event.type, outcome } });
    res.status(200).json({ received: true, outcome });
  };
  api.routes.post('/webhook/:merchantId', rawBody({ limit: '256kb' }), webhook);
  api.routes.post('/webhook', rawBody({ limit: '256kb' }), webhook);

  /**
   * The return and cancel URLs name the merchant and the payment, so the customer lands somewhere
   * sensible even when Stripe cannot be asked; the Stripe session must belong to that payment.
   */
  async function returning(req: import('express').Request) {
    const merchantId = String(req.params.merchantId);
    const sessionId = String(req.query.session_id ?? '');
    if (!MERCHANT_ID.test(merchantId) || !STRIPE_SESSION_ID.test(sessionId)) return null;
    const payment = await paymentFor(merchantId, String(req.params.paymentId));
    const settings = payment ? await settingsOf(merchantId) : null;
    if (!payment || !h.keysOf(settings).secretKey) return null;
    return { payment, sessionId, stripe: h.stripeFor(settings) };
  }
  const ownSession = (s: Stripe.Checkout.Session, paymentId: string) => (s.metadata?.paylink_payment_id ?? s.client_reference_id) === paymentId;

  /** The customer is back from Stripe: settle now (the webhook may come later) and send them on. */
  api.routes.get('/return/:merchantId/:paymentId', async (req, res) => {
    const r = await returning(req);
    if (!r) return void res.status(404).send('Not found');
    let next = r.payment.receiptUrl; // "processing" until the webhook or the sweep settles it
    try {
      const s = await r.stripe.checkout.sessions.retrieve(r.sessionId, { expand: ['payment_intent.latest_charge'] });
      if (!ownSession(s, r.payment.id)) return void res.status(404).send('Not found');
      const result = await settleSession(r.payment, r.stripe, s);
      if (result) next = result.next;
    } catch (err) {
      api.log.warn('could not settle on return; the webhook or the sweep will', { paymentId: r.payment.id, error: err });
    }
    res.redirect(303, next);
  });

  /** "Back" on Stripe's page: close that session (and any slot held for it) and return to the pay page. */
  api.routes.get('/cancel/:merchantId/:paymentId', async (req, res) => {
    const r = await returning(req);
    if (!r) return void res.status(404).send('Not found');
    const back = r.payment.sessionId ? ((await checkout.getSession(r.payment.sessionId))?.backUrl ?? null) : null;
    try {
      const s = await r.stripe.checkout.sessions.retrieve(r.sessionId);
      if (ownSession(s, r.payment.id) && s.status === 'open') {
        const expired = await r.stripe.checkout.sessions.expire(r.sessionId);
        if (expired.status === 'expired') await checkout.expire(r.payment.id);
      }
    } catch (err) {
      // The session stays open at Stripe until it expires; the sweep settles it then.
      api.log.warn('could not close the checkout session on cancel', { paymentId: r.payment.id, error: err });
    }
    res.redirect(303, back ?? r.payment.receiptUrl);
  });

  /** Nothing stays pending because a webhook was missed: ask Stripe about old pending payments. */
  api.schedule.every('sweep', '5m', async () => {
    // Stripe retries a webhook for up to 3 days: the ids of events applied more than 30 days ago can go.
    await api.store.deleteOlderThan('events', new Date(api.now().getTime() - 30 * 86_400_000));
    const stale = await checkout.pendingPayments({ startedBefore: new Date(api.now().getTime() - SWEEP_AFTER_MS), limit: 200 });
    for (const payment of stale) {
      try {
        await sweepOne(payment);
      } catch (err) {
        api.log.warn('sweep could not settle a payment; next round tries again', { paymentId: payment.id, error: err });
      }
    }
  });

  async function sweepOne(payment: PluginCheckoutPayment): Promise<void> {
    const record = await api.store.getByKey<{ stripeSessionId: string }>('sessions', payment.id);
    if (!record) {
      // Stripe never opened a session for it (start failed): it can never be paid.
      await checkout.expire(payment.id);
      return;
    }
    const settings = await settingsOf(payment.merchantId);
    const stripe = h.stripeFor(settings);
    let s = await stripe.checkout.sessions.retrieve(record.data.stripeSessionId, { expand: ['payment_intent.latest_charge'] });
    if (s.status === 'open') s = await stripe.checkout.sessions.expire(s.id, { expand: ['payment_intent.latest_charge'] });
    if (s.status === 'complete') {
      const result = await settleSession(payment, stripe, s);
      if (!result && s.payment_status === 'unpaid') api.log.info('payment still processing at Stripe', { paymentId: payment.id });
      return;
    }
    if (s.status === 'expired') await checkout.expire(payment.id);
  }
}
