// JSON API: /payment_requests — one-off payment requests at short signed URLs (API.md "Payment requests").
import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { trailJson } from '../reports/index.ts';
import { created, listJson, merchantOf } from './common.ts';
import { ownScope } from '../../core/access.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'requests' | 'reports'>;

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
    res.json(await listJson(await requests.list(merchant.key, req.query, ownScope(merchant.actor)), (rows) => requests.jsonMany(rows)));
  });
  router.get('/payment_requests/:id', async (req, res) => {
    res.json(await requests.json(await requests.get(merchantOf(res).key, req.params.id, ownScope(merchantOf(res).actor))));
  });
  router.post('/payment_requests/:id/cancel', async (req, res) => {
    res.json(await requests.json(await requests.cancel(merchantOf(res), req.params.id)));
  });

  /**
   * The audit trail, oldest first (the reports feature builds it): created (by which API key or
   * dashboard user, or where), each message sent and its outcome, each time the URL was opened (a
   * view; the newest 100), each payment attempt with its provider reference and refunds, each refund,
   * paid, expired, cancelled, refreshed. `has_more` is true when older views are left out.
   */
  router.get('/payment_requests/:id/events', async (req, res) => {
    const merchant = merchantOf(res);
    const r = await requests.get(merchant.key, req.params.id, ownScope(merchant.actor));
    const { trail, moreViews } = (await rt.reports.trails(merchant, [r])).get(r.id)!;
    res.json({ data: trail.map(trailJson), has_more: moreViews });
  });
  return router;
}
