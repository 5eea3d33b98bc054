// What payment-provider plugins may do with checkouts (PluginApi.services.checkout), over the
// checkout service, links and merchants: capabilities, never tables. Built per plugin: every method
// answers only for payments of providers that plugin registered, so one provider's webhook can never
// read, authorize or decline another provider's payment (that is `payment_not_found`, permanent).
import { ServiceError, type PluginCheckoutPayment, type PluginCheckoutServices } from '../../plugin-api.ts';
import { AppError } from '../../core/errors.ts';
import type { MerchantService } from '../merchants/index.ts';
import { toPluginMerchant } from '../merchants/index.ts';
import type { LinkService } from '../links/index.ts';
import { redirectUrlFor } from '../links/index.ts';
import type { CheckoutService, Payment } from './service.ts';
import type { ProviderReports } from './provider-reports.ts';
import type { RefundService } from './refunds.ts';
import type { PaymentProfiles } from '../customers/index.ts';
import { cleanLabel } from '../customers/index.ts';
import type { SubscriptionService } from '../subscriptions/index.ts';

export interface PluginCheckoutDeps {
  checkout: CheckoutService;
  /** Payment method, expiry, disputes, the sweep's pending payments. */
  reports: ProviderReports;
  /** Refunds the provider made on its own. */
  refunds: Pick<RefundService, 'recordProviderRefund'>;
  links: LinkService;
  merchants: MerchantService;
  baseUrl: string;
  /** The plugin these services are for. */
  pluginId: string;
  /** Which plugin registered a provider id (undefined: none). */
  ownerOf(providerId: string): string | undefined;
  /** Every registered provider id. */
  providerIds(): string[];
  /** A provider's parsed settings for a merchant (by internal key); null when not configured. */
  settingsFor(merchantKey: number, providerId: string): Promise<unknown | null>;
  /** Customers' saved payment profiles. */
  profiles: Pick<PaymentProfiles, 'save' | 'removeByRef'>;
  /** The subscription a first payment started, to attach the provider's subscription id (`authorize`'s `subscriptionRef`). */
  subscriptions?: Pick<SubscriptionService, 'byFirstPayment' | 'attachRef'>;
}

/** A support reference: short and display-safe (letters, digits, dashes). */
const SUPPORT_REFERENCE = /^[A-Za-z0-9][A-Za-z0-9-]{0,31}$/;

const notFound = () => new ServiceError('payment_not_found', 'No such payment for this provider.');

/** Core's errors as a plugin sees them: the same code; transient only for an outage (5xx). */
async function asServiceErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof AppError) {
      const code = err.code === 'not_found' ? 'payment_not_found' : err.code;
      throw new ServiceError(code, err.userMessage, { retryable: err.status >= 500, cause: err });
    }
    throw err;
  }
}

export function createPluginCheckoutServices(deps: PluginCheckoutDeps): PluginCheckoutServices {
  const { checkout, links, merchants, baseUrl, pluginId } = deps;
  const mine = (p: Pick<Payment, 'provider'>) => deps.ownerOf(p.provider) === pluginId;
  /** The plugin's one provider (settingsFor without a provider id); a plugin with several must name it. */
  const onlyProviderOf = (): string => {
    const own = deps.providerIds().filter((id) => deps.ownerOf(id) === pluginId);
    if (own.length !== 1) throw new ServiceError('provider_mismatch', own.length ? `${pluginId} registers several providers: pass the provider id.` : `${pluginId} registers no provider.`);
    return own[0];
  };

  /** One of this plugin's payments, or a permanent `payment_not_found` (unknown or another provider's: the same answer). */
  async function ownPayment(paymentId: string): Promise<Payment> {
    const payment = typeof paymentId === 'string' && paymentId.length <= 64 ? await checkout.getPayment(paymentId) : null;
    if (!payment || !mine(payment)) throw notFound();
    return payment;
  }

  /** After success: the merchant's redirect (same tab), an interim page (new tab), or the receipt. */
  async function successUrl(payment: Pick<Payment, 'id' | 'linkKey'>): Promise<string> {
    const receipt = checkout.receiptUrl(payment);
    if (payment.linkKey === null) return receipt;
    const link = await links.getByKey(payment.linkKey);
    if (!link?.redirectUrl) return receipt;
    return link.redirectTarget === 'same' ? redirectUrlFor(link.redirectUrl, payment.id) : `${receipt}&continue=1`;
  }

  async function pluginPayment(payment: Payment): Promise<PluginCheckoutPayment | null> {
    const merchant = await merchants.getByKey(payment.merchantKey);
    if (!merchant) return null;
    const session = payment.sessionKey === null ? null : await checkout.sessionByKey(payment.sessionKey);
    return {
      id: payment.id,
      provider: payment.provider,
      status: payment.status,
      amount: payment.amount,
      currency: payment.currency,
      amountRefunded: payment.amountRefunded,
      providerRef: payment.providerRef,
      sessionId: session?.id ?? null,
      merchantId: merchant.id,
      createdAt: payment.createdAt.toISOString(),
      receiptUrl: checkout.receiptUrl(payment),
    };
  }

  async function nextUrl(payment: Payment): Promise<string> {
    return payment.status === 'paid' ? successUrl(payment) : checkout.receiptUrl(payment);
  }

  return Object.freeze({
    async getSession(sessionId) {
      const session = typeof sessionId === 'string' && sessionId.length <= 64 ? await checkout.getSession(sessionId) : null;
      if (!session) return null;
      const payment = await checkout.currentPayment(session);
      // A session belongs to the provider its payments were started with.
      if (payment && !mine(payment)) return null;
      const merchant = await merchants.getByKey(session.merchantKey);
      if (!merchant) return null;
      return {
        id: session.id,
        open: checkout.isOpen(session) && (payment === null || payment.status === 'pending' || payment.status === 'failed'),
        status: session.status === 'open' && !checkout.isOpen(session) ? 'expired' : session.status,
        amount: session.amount,
        currency: session.currency,
        description: session.link?.name ?? `Payment to ${merchant.name}`,
        merchant: toPluginMerchant(merchant),
        // The page the customer left, told which checkout to read their name, email and amount back from.
        backUrl: session.backPath
          ? `${baseUrl}${session.backPath}${session.backPath.includes('?') ? '&' : '?'}back=${encodeURIComponent(session.id)}`
          : session.link?.path
            ? links.urlFor({ kind: 'smart', id: session.link.id, path: session.link.path }, merchant)
            : `${baseUrl}/${merchant.handle}`,
        payment: payment
          ? {
              id: payment.id,
              status: payment.status,
              provider: payment.provider,
              failureMessage: payment.failureMessage,
              outcome: payment.outcome ? { kind: payment.outcome.kind, amountReceived: payment.outcome.amountReceived, resolution: payment.outcome.resolution } : null,
            }
          : null,
        returnUrl: payment ? checkout.receiptUrl(payment) : null,
        successUrl: payment ? await successUrl(payment) : `${baseUrl}/${merchant.handle}`,
      };
    },
    async getPayment(paymentId) {
      const payment = typeof paymentId === 'string' && paymentId.length <= 64 ? await checkout.getPayment(paymentId) : null;
      if (!payment || !mine(payment)) return null;
      return pluginPayment(payment);
    },
    async settingsFor<S>(merchantId: string, providerId?: string) {
      const own = providerId ?? null;
      if (own !== null && deps.ownerOf(own) !== pluginId) throw new ServiceError('provider_mismatch', `Provider "${own}" is not registered by ${pluginId}.`);
      const merchant = typeof merchantId === 'string' && merchantId.length <= 64 ? await merchants.get(merchantId) : null;
      if (!merchant) return null;
      const id = own ?? onlyProviderOf();
      return (await deps.settingsFor(merchant.key, id)) as S | null;
    },
    async authorize(paymentId, providerRef, opts) {
      if (typeof providerRef !== 'string' || !providerRef || providerRef.length > 191) throw new ServiceError('invalid_provider_ref', 'providerRef must be 1 to 191 characters.');
      const payment = await ownPayment(paymentId);
      if (opts?.paymentMethod) await deps.reports.setPaymentMethod(payment, opts.paymentMethod);
      const subscriptionRef = opts?.subscriptionRef;
      if (subscriptionRef !== undefined && (typeof subscriptionRef !== 'string' || !subscriptionRef || subscriptionRef.length > 191)) throw new ServiceError('invalid_provider_ref', 'subscriptionRef must be 1 to 191 characters.');
      const outcome = await asServiceErrors(() => checkout.authorize(paymentId, providerRef));
      if (subscriptionRef && deps.subscriptions) {
        const sub = await deps.subscriptions.byFirstPayment(paymentId);
        if (sub) await deps.subscriptions.attachRef(sub.key, subscriptionRef);
      }
      return { status: outcome.status, reason: outcome.reason, next: await nextUrl(outcome.payment) };
    },
    async decline(paymentId, failure) {
      await ownPayment(paymentId);
      await asServiceErrors(() => checkout.decline(paymentId, { code: String(failure?.code ?? 'declined'), message: String(failure?.message ?? 'The payment was declined.') }));
    },
    async retry(sessionId) {
      const session = typeof sessionId === 'string' && sessionId.length <= 64 ? await checkout.getSession(sessionId) : null;
      const current = session ? await checkout.currentPayment(session) : null;
      if (!session || (current && !mine(current))) throw new ServiceError('session_not_found', 'No such checkout session for this provider.');
      const payment = await asServiceErrors(() => checkout.retry(sessionId));
      return { paymentId: payment.id };
    },
    async expire(paymentId) {
      return deps.reports.expire(await ownPayment(paymentId));
    },
    async recordRefund(paymentId, refund) {
      const payment = await ownPayment(paymentId);
      const providerRef = refund?.providerRef;
      if (typeof providerRef !== 'string' || !providerRef || providerRef.length > 191) throw new ServiceError('invalid_provider_ref', 'providerRef must be 1 to 191 characters.');
      const { refund: r, created } = await asServiceErrors(() => deps.refunds.recordProviderRefund(payment, { providerRef, amount: Number(refund.amount), reason: refund.reason ?? null }));
      return { refundId: r.id, created };
    },
    async flagDispute(paymentId, dispute) {
      const payment = await ownPayment(paymentId);
      await deps.reports.flagDispute(payment, { status: String(dispute?.status ?? 'needs_response'), amount: Number(dispute?.amount), reason: dispute?.reason ?? null });
    },
    async setSupportReference(paymentId, reference) {
      if (typeof reference !== 'string' || !SUPPORT_REFERENCE.test(reference)) throw new ServiceError('invalid_reference', 'reference must be 1 to 32 letters, digits and dashes.');
      await deps.reports.setSupportReference(await ownPayment(paymentId), reference);
    },
    async flagOutcome(paymentId, outcome) {
      const payment = await ownPayment(paymentId);
      const kind = outcome?.outcome;
      if (kind !== 'underpaid' && kind !== 'overpaid' && kind !== 'paid_late') throw new ServiceError('invalid_outcome', 'outcome must be underpaid, overpaid or paid_late.');
      const amountReceived = Number(outcome.amountReceived);
      if (!Number.isSafeInteger(amountReceived) || amountReceived < 0) throw new ServiceError('invalid_amount', 'amountReceived must be a non-negative integer (minor units).');
      await deps.reports.flagOutcome(payment, { outcome: kind, amountReceived, txHashes: Array.isArray(outcome.txHashes) ? outcome.txHashes : [] });
    },
    async pendingPayments(opts) {
      const before = opts?.startedBefore instanceof Date ? opts.startedBefore : new Date(String(opts?.startedBefore));
      if (Number.isNaN(before.getTime())) throw new ServiceError('invalid_argument', 'startedBefore must be a Date.');
      const limit = Number.isInteger(opts.limit) ? Math.min(Math.max(opts.limit!, 1), 500) : 100;
      const own = deps.providerIds().filter((id) => deps.ownerOf(id) === pluginId);
      const out: PluginCheckoutPayment[] = [];
      for (const p of await deps.reports.pending(own, before, limit)) {
        const view = await pluginPayment(p);
        if (view) out.push(view);
      }
      return out;
    },
    async saveProfile(paymentId, profile) {
      const payment = await ownPayment(paymentId);
      const ref = profile?.ref;
      if (typeof ref !== 'string' || !ref || ref.length > 191) throw new ServiceError('invalid_profile', 'profile.ref must be 1 to 191 characters.');
      const label = cleanLabel(profile.label);
      if (!label) throw new ServiceError('invalid_profile', 'profile.label must be 1 to 120 characters.');
      if (payment.customerKey === null) throw new ServiceError('no_customer', 'This payment has no customer record to save a profile for.');
      await deps.profiles.save({ merchantKey: payment.merchantKey, customerKey: payment.customerKey, provider: payment.provider, ref, label });
    },
    async dropProfile(merchantId, ref) {
      const merchant = typeof merchantId === 'string' && merchantId.length <= 64 ? await merchants.get(merchantId) : null;
      if (!merchant || typeof ref !== 'string' || !ref) return 0;
      let dropped = 0;
      for (const id of deps.providerIds().filter((p) => deps.ownerOf(p) === pluginId)) dropped += await deps.profiles.removeByRef(merchant.key, id, ref);
      return dropped;
    },
  } satisfies PluginCheckoutServices);
}
