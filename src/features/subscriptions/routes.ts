// Dashboard pages for subscriptions (mounted under /app): the list, one subscription with its payments,
// and canceling one (a confirmation page, then POST).
import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { flash, type Renderer } from '../../core/http.ts';
import { ValidationError } from '../../core/errors.ts';
import { formatMoney } from '../../core/money.ts';
import { dateIn, dateTimeIn } from '../../core/time.ts';
import { paymentStatusBadge } from '../../web/view.ts';
import type { Merchant } from '../merchants/index.ts';
import { planLabel, SUBSCRIPTION_STATUSES, type SubscriptionView } from './service.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'subscriptions' | 'payments' | 'registries' | 'links'>;

const STATUS_LABELS = { trialing: 'Trial', active: 'Active', past_due: 'Past due', canceled: 'Canceled' } as const;
const STATUS_BADGES = { trialing: 'badge-amber', active: 'badge-green', past_due: 'badge-red', canceled: '' } as const;

export function subscriptionsRoutes(rt: Deps, render: Renderer): express.Router {
  const router = express.Router();
  const { subscriptions } = rt;

  const row = (s: SubscriptionView, m: Merchant) => ({
    id: s.id,
    status: s.status,
    statusLabel: STATUS_LABELS[s.status],
    badge: STATUS_BADGES[s.status],
    customer: s.customerName || s.customerEmail || 'Unknown customer',
    email: s.customerName && s.customerEmail ? s.customerEmail : null,
    plan: `${formatMoney(s.amount, s.currency)} ${planLabel(s)}`,
    product: s.productName,
    linkId: s.linkId,
    linkName: s.linkName,
    provider: s.provider,
    // The provider as the merchant knows it ("Stripe"), not its plugin id.
    providerName: rt.registries.providers.get(s.provider)?.name ?? s.provider,
    // What the next date means: a renewal while it is live; when it ended, the cancellation.
    next: s.status === 'canceled' ? null : dateIn(s.currentPeriodEnd, m.timezone),
    canceledOn: s.canceledAt ? dateIn(s.canceledAt, m.timezone) : null,
    // Who ended it (unknown for subscriptions canceled before Paylink kept it).
    canceledBy: s.canceledBy === 'merchant' ? 'by you' : s.canceledBy === 'customer' ? 'by the customer' : s.canceledBy === 'provider' ? 'at the payment provider' : null,
  });

  router.get('/subscriptions', async (req, res) => {
    const merchant: Merchant = res.locals.merchant;
    const after = typeof req.query.after === 'string' ? req.query.after : undefined;
    const status = typeof req.query.status === 'string' && (SUBSCRIPTION_STATUSES as readonly string[]).includes(req.query.status) ? req.query.status : undefined;
    // From a link's page: that link's subscriptions only (a malformed id is ignored).
    const linkId = typeof req.query.link_id === 'string' && /^lnk_[A-Za-z0-9]{1,60}$/.test(req.query.link_id) ? req.query.link_id : undefined;
    const page = await subscriptions.list(merchant.key, { limit: 50, starting_after: after, status, link_id: linkId }).catch((err) => {
      if (err instanceof ValidationError) return subscriptions.list(merchant.key, { limit: 50, status, link_id: linkId });
      throw err;
    });
    const link = linkId ? (await rt.links.namesByIds(merchant.key, [linkId])).get(linkId) : undefined;
    await render(req, res, 'subscriptions/index', {
      title: 'Subscriptions',
      subscriptions: page.data.map((s) => row(s, merchant)),
      hasMore: page.has_more,
      after: after ?? null,
      status: status ?? '',
      statuses: SUBSCRIPTION_STATUSES.map((s) => ({ value: s, label: STATUS_LABELS[s] })),
      link: linkId ? { id: linkId, name: link?.name ?? 'an unknown link' } : null,
    });
  });

  /** One subscription: its plan and dates, and its payments (the first and every renewal), newest first. */
  router.get('/subscriptions/:id', async (req, res) => {
    const merchant: Merchant = res.locals.merchant;
    const s = await subscriptions.getView(merchant.key, String(req.params.id));
    const payments = await rt.payments.list(merchant.key, { subscription_id: s.id, limit: 100 });
    await render(req, res, 'subscriptions/show', {
      title: `Subscription of ${row(s, merchant).customer}`,
      sub: { ...row(s, merchant), started: dateIn(s.createdAt, merchant.timezone), trialDays: s.trialDays, customerId: s.customerId },
      payments: payments.data.map((p) => ({ id: p.id, at: dateTimeIn(p.createdAt, merchant.timezone, merchant.locale), iso: p.createdAt.toISOString(), amount: formatMoney(p.amount, p.currency), badge: paymentStatusBadge(p.status), first: p.id === s.firstPaymentId })),
      morePayments: payments.has_more,
    });
  });

  router.get('/subscriptions/:id/cancel', async (req, res) => {
    const merchant: Merchant = res.locals.merchant;
    const s = await subscriptions.getView(merchant.key, String(req.params.id));
    await render(req, res, 'subscriptions/cancel', { title: 'Cancel subscription', sub: row(s, merchant) });
  });

  router.post('/subscriptions/:id/cancel', async (req, res) => {
    const merchant: Merchant = res.locals.merchant;
    const s = await subscriptions.cancel(merchant.key, String(req.params.id));
    flash(req, 'success', `Subscription of ${s.customerName || s.customerEmail || 'the customer'} canceled. They will not be charged again.`);
    res.redirect(303, '/app/subscriptions');
  });

  return router;
}
