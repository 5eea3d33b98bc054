// What payment-provider plugins may do with checkouts (PluginApi.services.checkout), over the
// checkout service, links and merchants: capabilities, never tables.
import type { PluginCheckoutServices } from '../../plugin-api.ts';
import { NotFoundError } from '../../core/errors.ts';
import type { MerchantService } from '../merchants/service.ts';
import { toPluginMerchant } from '../merchants/service.ts';
import type { LinkService } from '../links/service.ts';
import type { CheckoutService, Payment } from './service.ts';

export function createPluginCheckoutServices(deps: { checkout: CheckoutService; links: LinkService; merchants: MerchantService; baseUrl: string }): PluginCheckoutServices {
  const { checkout, links, merchants, baseUrl } = deps;

  /** After success: the merchant's redirect (same tab), an interim page (new tab), or the receipt. */
  async function successUrl(payment: Pick<Payment, 'id' | 'linkKey'>): Promise<string> {
    const receipt = checkout.receiptUrl(payment);
    if (payment.linkKey === null) return receipt;
    const link = await links.getByKey(payment.linkKey);
    if (!link?.redirectUrl) return receipt;
    return link.redirectTarget === 'same' ? link.redirectUrl : `${receipt}?continue=1`;
  }

  async function nextUrl(payment: Payment): Promise<string> {
    return payment.status === 'paid' ? successUrl(payment) : checkout.receiptUrl(payment);
  }

  return Object.freeze({
    async getSession(sessionId) {
      const session = await checkout.getSession(sessionId);
      if (!session) return null;
      const merchant = await merchants.getByKey(session.merchantKey);
      if (!merchant) return null;
      const payment = await checkout.currentPayment(session);
      return {
        id: session.id,
        open: checkout.isOpen(session) && (payment === null || payment.status === 'pending' || payment.status === 'failed'),
        status: session.status === 'open' && !checkout.isOpen(session) ? 'expired' : session.status,
        amount: session.amount,
        currency: session.currency,
        description: session.link?.name ?? `Payment to ${merchant.name}`,
        merchant: toPluginMerchant(merchant),
        backUrl: session.link?.path ? `${baseUrl}/${merchant.handle}/${session.link.path}` : `${baseUrl}/${merchant.handle}`,
        payment: payment ? { id: payment.id, status: payment.status, provider: payment.provider, failureMessage: payment.failureMessage } : null,
        returnUrl: payment ? checkout.receiptUrl(payment) : null,
        successUrl: payment ? await successUrl(payment) : `${baseUrl}/${merchant.handle}`,
      };
    },
    async authorize(paymentId, providerRef) {
      const outcome = await checkout.authorize(paymentId, providerRef);
      return { status: outcome.status, reason: outcome.reason, next: await nextUrl(outcome.payment) };
    },
    async decline(paymentId, failure) {
      await checkout.decline(paymentId, failure);
    },
    async retry(sessionId) {
      const payment = await checkout.retry(sessionId);
      if (!payment) throw new NotFoundError();
      return { paymentId: payment.id };
    },
  } satisfies PluginCheckoutServices);
}
