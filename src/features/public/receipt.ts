/**
 * `/receipt/:paymentId`: what became of a payment, for the customer. The payment id (128 random
 * bits) is the only key, so the page shows nothing a customer would not want on a printed receipt.
 * `?continue=1` adds the merchant's "continue" button for links that open their redirect URL in a
 * new tab; that URL always comes from the link, never from the query string.
 *
 * A subscription's receipt lets the customer cancel it (`?cancel=1` asks first; the POST cancels
 * through the provider, as the merchant's cancel does): no account, no email to the merchant. That,
 * and forgetting a saved card, takes the receipt's key too (`?k=`, checkout/receipt-keys.ts): only
 * the URLs given to the customer carry it, while the payment id also reaches the merchant's redirect
 * URL, API clients and webhooks. Without it the page is the receipt alone.
 */
import { lineItemsView } from '../../core/line-items.ts';
import express, { type Request, type Response } from 'express';
import type { AppDeps } from '../../web/deps.ts';
import type { Renderer } from '../../core/http.ts';
import { AppError, NotFoundError, ServiceUnavailableError } from '../../core/errors.ts';
import { formatMoney } from '../../core/money.ts';
import { formatPaymentMethod, outcomeForCustomer, type Payment } from '../checkout/index.ts';
import { redirectUrlFor } from '../links/index.ts';
import { formatDateTime, merchantView } from './view.ts';
import { planLabel } from '../subscriptions/index.ts';
import { dateIn } from '../../core/time.ts';
import { limitKey } from '../../core/ip.ts';
import { consumeEach, waitText } from '../../core/rate-limit.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'checkout' | 'checkoutLimiter' | 'deliveries' | 'links' | 'merchants' | 'profiles' | 'savedProfiles' | 'subscriptions'>;

const PAYMENT_ID = /^pay_[0-9A-Za-z]{22}$/;

export type ReceiptState = 'paid' | 'processing' | 'limit_reached' | 'link_inactive' | 'failed' | 'refunded' | 'limit_refunded';

function stateOf(p: Payment): ReceiptState {
  switch (p.status) {
    case 'paid':
    case 'partially_refunded':
      return 'paid';
    case 'refunded':
      // Never paid: an immediate payment that arrived after the link filled up, refunded automatically.
      return p.paidAt === null ? 'limit_refunded' : 'refunded';
    case 'voided':
      return p.failureCode === 'link_inactive' ? 'link_inactive' : 'limit_reached';
    case 'failed':
      return 'failed';
    default:
      return 'processing';
  }
}

/** Mounts GET /receipt/:paymentId (and POST …/cancel-subscription, …/email-link, …/forget-card) on `router`. */
export function receiptRoutes(router: express.Router, rt: Deps, render: Renderer): void {
  /** The payment (by its id, the page's only key) with its checkout session; 404 for anything else. */
  async function found(req: Request) {
    const id = String(req.params.paymentId);
    if (!PAYMENT_ID.test(id)) throw new NotFoundError();
    const f = await rt.checkout.receipt(id);
    if (!f) throw new NotFoundError();
    return f;
  }
  /** The receipt's key and its keyed URL (path and query of checkout's receiptUrl) when the request carries the right key (the customer's), else null. */
  const managing = (req: Request, paymentId: string): { key: string; url: string } | null => {
    const key = req.query.k;
    if (typeof key !== 'string' || !rt.checkout.receiptKeyMatches(paymentId, key)) return null;
    const url = new URL(rt.checkout.receiptUrl({ id: paymentId }));
    return { key, url: url.pathname + url.search };
  };
  /** A change on the receipt: the payment and its keyed URL, or 404 without the key. */
  async function toManage(req: Request) {
    const f = await found(req);
    const manage = managing(req, f.payment.id);
    if (!manage) throw new NotFoundError();
    return { ...f, url: manage.url };
  }
  /** What the paying customer saved with this payment's provider (their card for next time), if anything. */
  const savedWith = (payment: Payment) => (payment.customerKey === null ? null : rt.profiles.find(payment.customerKey, payment.provider));

  router.get('/receipt/:paymentId', (req: Request, res: Response) => show(req, res));

  /** "Yes, cancel my subscription" (asked on `?cancel=1`): the provider stops billing, then Paylink records it. */
  router.post('/receipt/:paymentId/cancel-subscription', async (req: Request, res: Response) => {
    const { payment, url } = await toManage(req);
    if (!payment.subscriptionId) throw new NotFoundError();
    try {
      await rt.subscriptions.cancelForCustomer(payment.subscriptionId);
    } catch (err) {
      // Unreachable (503) or refused (422) by the provider: nothing changed; the page says so by the button.
      if (err instanceof ServiceUnavailableError) return show(req, res, { cancelError: err.userMessage }, 503);
      if (err instanceof AppError && err.code === 'provider_refused') return show(req, res, { cancelError: err.userMessage }, 422);
      throw err;
    }
    res.redirect(303, `${url}&canceled=1#subscription-title`);
  });

  /**
   * What a customer could manage on this receipt with its key — a subscription not yet canceled, else
   * a card saved with the payment — as the id of its section; null when there is nothing.
   */
  function manageable(payment: Payment, sub: { status: string } | null, saved: unknown): 'subscription-title' | 'saved-title' | null {
    if (sub && sub.status !== 'canceled') return 'subscription-title';
    return stateOf(payment) === 'paid' && saved ? 'saved-title' : null;
  }
  /** The payment's subscription (if any) and the card saved with it (if paid): what `manageable` decides on. */
  const manageableOf = async (payment: Payment) => ({
    sub: payment.subscriptionId ? await rt.subscriptions.get(payment.subscriptionId) : null,
    saved: stateOf(payment) === 'paid' ? await savedWith(payment) : null,
  });

  /**
   * "Email me the link" on a receipt opened without its key, where there is something to manage (a
   * subscription, a saved card): the receipt email again, to the address the payment was made with
   * (its link has the key). Limited per client and per payment.
   */
  router.post('/receipt/:paymentId/email-link', async (req: Request, res: Response) => {
    const { payment } = await found(req);
    const { sub, saved } = await manageableOf(payment);
    const section = manageable(payment, sub, saved);
    if (!section) throw new NotFoundError();
    const wait = await consumeEach([[rt.checkoutLimiter.perIp, limitKey(req.ip)], [rt.checkoutLimiter.receiptEmails, payment.id]]);
    if (wait !== null) {
      res.set('Retry-After', String(Math.ceil(wait / 1000)));
      return show(req, res, { emailError: `The link was asked for too many times. Try again in ${waitText(wait / 1000)}.` }, 429);
    }
    if (!(await rt.deliveries.emailReceipt(payment.id))) throw new NotFoundError();
    res.redirect(303, `/receipt/${payment.id}?emailed=1#${section}`);
  });

  /** "Forget this card": the provider deletes the saved card, then Paylink its record. */
  router.post('/receipt/:paymentId/forget-card', async (req: Request, res: Response) => {
    const { payment, url } = await toManage(req);
    const profile = await savedWith(payment);
    if (profile) {
      try {
        await rt.savedProfiles.forget(profile);
      } catch (err) {
        if (!(err instanceof ServiceUnavailableError)) throw err;
        return show(req, res, { forgetError: err.userMessage }, 503);
      }
    }
    res.redirect(303, `${url}&forgotten=1`);
  });

  async function show(req: Request, res: Response, extra: { forgetError?: string; cancelError?: string; emailError?: string } = {}, status = 200): Promise<void> {
    const { payment, session } = await found(req);
    const merchant = await rt.merchants.getByKey(payment.merchantKey);
    if (!merchant) throw new NotFoundError();
    const state = stateOf(payment);
    const manage = managing(req, payment.id);

    let next: { url: string; host: string } | null = null;
    if (state === 'paid' && req.query.continue === '1' && payment.linkKey !== null) {
      const link = await rt.links.getByKey(payment.linkKey);
      if (link?.redirectUrl && link.redirectTarget === 'new') next = { url: redirectUrlFor(link.redirectUrl, payment.id), host: new URL(link.redirectUrl).host };
    }
    const path = session?.link?.path;
    const at = payment.paidAt ?? payment.voidedAt ?? payment.authorizedAt ?? payment.createdAt;
    // A subscription's payment says so, and when it renews (or that it ended). A card saved with this
    // payment: its label with the key only; without it, that one exists and how to manage it.
    const { sub, saved } = await manageableOf(payment);
    // Opened without the key: where the customer may have the keyed link emailed (one section at most).
    const offer = manage ? null : manageable(payment, sub, saved);
    /** "Email me the link" (pay/_email_link.eta): offered only where email really goes out. */
    const byEmail = async () => ({ offered: await rt.deliveries.canEmailReceipt(payment.id), sent: req.query.emailed === '1', error: extra.emailError ?? null });
    const subscription = sub
      ? {
          product: sub.productName,
          plan: `${formatMoney(sub.amount, sub.currency)} ${planLabel(sub)}`,
          renewal: sub.firstPaymentId !== payment.id,
          // The first payment of a plan still in its free trial: the trial's end is the first charge.
          trialDays: sub.status === 'trialing' && sub.firstPaymentId === payment.id ? sub.trialDays : null,
          next: sub.status === 'canceled' ? null : dateIn(sub.currentPeriodEnd, merchant.timezone),
          canceled: sub.canceledAt ? dateIn(sub.canceledAt, merchant.timezone) : null,
          // The customer asked to cancel (the confirmation), has just canceled, or the provider could not.
          confirm: manage !== null && sub.status !== 'canceled' && (req.query.cancel === '1' || extra.cancelError !== undefined),
          justCanceled: sub.status === 'canceled' && sub.canceledBy === 'customer' && req.query.canceled === '1',
          cancelError: extra.cancelError ?? null,
          // Opened without the key: the customer may have the receipt (with it) emailed to the address they paid with.
          byEmail: offer === 'subscription-title' ? await byEmail() : null,
        }
      : null;

    res.set({ 'Cache-Control': 'no-store', 'X-Robots-Tag': 'noindex' });
    await render(req, res, 'pay/receipt', {
      title: state === 'paid' ? 'Receipt' : state === 'processing' ? 'Processing your payment' : state === 'limit_reached' ? 'Payment limit reached' : state === 'limit_refunded' ? 'Payment refunded' : 'Payment not completed',
      brand: merchant.brandColor,
      merchant: merchantView(merchant),
      state,
      // Still processing: look again shortly (a meta refresh; pay pages run no JavaScript).
      refresh: state === 'processing' ? 5 : null,
      amount: formatMoney(payment.amount, payment.currency),
      linkName: session?.link?.name ?? (sub ? `${sub.productName} (renewal)` : null),
      subscription,
      // What was bought, line by line (an items link's order, a payment request's list).
      lines: session?.lineItems.length ? lineItemsView(session.lineItems, payment.currency) : null,
      customerName: session?.customerName ?? null,
      // "Visa •••• 4242" when the provider reported how the customer paid.
      paymentMethod: formatPaymentMethod(payment.paymentMethod),
      date: formatDateTime(at, merchant.timezone),
      reference: payment.id,
      // The provider's short code for support (the crypto verification code), and what became of an amount that did not match.
      supportReference: payment.supportReference,
      outcome: outcomeForCustomer(payment, merchant.name),
      failure: payment.failureMessage,
      payPageUrl: `/${merchant.handle}${path ? `/${path}` : ''}`,
      next,
      // This receipt's URL with its key (the customer's): what lets them cancel or forget here; null without it.
      manage,
      // Which card is saved is the customer's business: shown with the key only.
      saved: manage ? saved : null,
      // Without the key, the way to the keyed link when the saved card is what there is to manage.
      savedByEmail: offer === 'saved-title' ? await byEmail() : null,
      forgotten: req.query.forgotten === '1',
      forgetError: extra.forgetError ?? null,
    }, status);
  }
}
