// JSON API: /payment_requests — one-off payment requests at short signed URLs (API.md "Payment requests").
import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { created, listJson, merchantOf } from './common.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'requests'>;

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
  return router;
}
