// JSON API: /subscriptions (read; filter status) and POST /subscriptions/:id/cancel (docs/api.md "Subscriptions").
import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { subscriptionJson } from '../subscriptions/index.ts';
import { listJson, merchantOf } from './common.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'subscriptions'>;

export function apiSubscriptionRoutes(rt: Deps): express.Router {
  const router = express.Router();
  const { subscriptions } = rt;
  router.get('/subscriptions', async (req, res) => {
    res.json(await listJson(await subscriptions.list(merchantOf(res).key, req.query), (items) => items.map(subscriptionJson)));
  });
  router.get('/subscriptions/:id', async (req, res) => {
    res.json(subscriptionJson(await subscriptions.getView(merchantOf(res).key, String(req.params.id))));
  });
  router.post('/subscriptions/:id/cancel', async (req, res) => {
    res.json(subscriptionJson(await subscriptions.cancel(merchantOf(res).key, String(req.params.id))));
  });
  return router;
}
