// JSON API: /payment_requests — one-off payment requests at short signed URLs (API.md "Payment requests").
import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { deliveryJson } from '../deliveries/index.ts';
import { created, listJson, merchantOf } from './common.ts';
import { viewJson } from './links.ts';
import { paymentsWithRefunds } from './payments.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'requests' | 'links' | 'analytics' | 'deliveries' | 'refunds' | 'apiKeys'>;

/** The most views and payments a trail lists (newest kept); a request is opened and tried a few times. */
const TRAIL_ACTIVITY = 100;
const TRAIL_ORDER = ['created', 'view', 'payment', 'paid', 'delivery', 'expired', 'cancelled'];

export function apiRequestRoutes(rt: Deps): express.Router {
  const { requests } = rt;
  const router = express.Router();

  router.post('/payment_requests', async (req, res) => {
    const merchant = merchantOf(res);
    const r = await requests.create(merchant, req.body, { source: 'api', apiKeyKey: res.locals.apiKeyKey ?? null });
    created(res, `/api/v1/payment_requests/${r.id}`, await requests.json(r));
  });
  router.get('/payment_requests', async (req, res) => {
    const merchant = merchantOf(res);
    res.json(await listJson(await requests.list(merchant.key, req.query), (rows) => requests.jsonMany(rows)));
  });
  router.get('/payment_requests/:id', async (req, res) => {
    res.json(await requests.json(await requests.get(merchantOf(res).key, req.params.id)));
  });
  router.post('/payment_requests/:id/cancel', async (req, res) => {
    res.json(await requests.json(await requests.cancel(merchantOf(res), req.params.id)));
  });

  /**
   * The audit trail, oldest first: created (by which API key, or where), each message sent and its
   * outcome, each time the URL was opened (a view), each payment attempt (with its refunds), paid,
   * expired, cancelled.
   */
  router.get('/payment_requests/:id/events', async (req, res) => {
    const merchant = merchantOf(res);
    const r = await requests.get(merchant.key, req.params.id);
    const link = await rt.links.get(merchant, r.link.id);
    const [activity, sent, keys] = await Promise.all([
      rt.analytics.activityAfter(link, { limit: TRAIL_ACTIVITY }),
      rt.deliveries.forLinks([r.link.key]),
      r.apiKeyKey === null ? new Map<number, { id: string; name: string }>() : rt.apiKeys.refsByKeys([r.apiKeyKey]),
    ]);
    const payments = await paymentsWithRefunds(rt.refunds, activity.data.flatMap((i) => (i.kind === 'payment' ? [i.payment] : [])));
    const trail: { type: string; at: Date; [k: string]: unknown }[] = [
      { type: 'created', at: r.createdAt, source: r.source, api_key: r.apiKeyKey === null ? null : keys.get(r.apiKeyKey) ?? null },
      ...(sent.get(r.link.key) ?? []).map((d) => ({ type: 'delivery', at: d.createdAt, delivery: deliveryJson(d) })),
      ...activity.data.flatMap((i) => (i.kind === 'view' ? [{ type: 'view', at: i.at, view: viewJson(i.view) }] : [])),
      ...payments.map((p) => ({ type: 'payment', at: new Date(p.created_at), payment: p })),
      ...(r.paidAt ? [{ type: 'paid', at: r.paidAt }] : []),
      ...(r.status === 'expired' && r.link.expiresAt ? [{ type: 'expired', at: r.link.expiresAt }] : []),
      ...(r.cancelledAt ? [{ type: 'cancelled', at: r.cancelledAt }] : []),
    ];
    // At one instant: what caused what (a payment before its receipt, created before its first message).
    trail.sort((a, b) => a.at.getTime() - b.at.getTime() || TRAIL_ORDER.indexOf(a.type) - TRAIL_ORDER.indexOf(b.type));
    res.json({ data: trail.map((t) => ({ ...t, at: t.at.toISOString() })), has_more: activity.has_more });
  });
  return router;
}
