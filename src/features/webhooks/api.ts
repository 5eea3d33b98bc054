// JSON API: /webhook_endpoints (API.md "Webhook endpoints"): CRUD, rotate, attempts.
import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import type { Merchant } from '../merchants/index.ts';
import { attemptJson, endpointJson } from './service.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'webhooks'>;

/** The routes, mounted under the authenticated API router; `merchantOf` gives the API key's merchant. */
export function apiWebhookRoutes(rt: Deps, merchantOf: (res: express.Response) => Merchant): express.Router {
  const router = express.Router();
  const { webhooks } = rt;
  const list = (page: { data: unknown[]; has_more: boolean }) => ({ data: page.data, has_more: page.has_more });

  router.post('/webhook_endpoints', async (req, res) => {
    const { endpoint, secret } = await webhooks.create(merchantOf(res).key, req.body);
    res.status(201).location(`/api/v1/webhook_endpoints/${endpoint.id}`).json(endpointJson(endpoint, secret));
  });
  router.get('/webhook_endpoints', async (req, res) => {
    const page = await webhooks.list(merchantOf(res).key, req.query);
    res.json(list({ data: page.data.map((e) => endpointJson(e)), has_more: page.has_more }));
  });
  router.get('/webhook_endpoints/:id', async (req, res) => {
    res.json(endpointJson(await webhooks.get(merchantOf(res).key, req.params.id)));
  });
  router.patch('/webhook_endpoints/:id', async (req, res) => {
    res.json(endpointJson(await webhooks.update(merchantOf(res).key, req.params.id, req.body)));
  });
  router.delete('/webhook_endpoints/:id', async (req, res) => {
    await webhooks.remove(merchantOf(res).key, req.params.id);
    res.json({ id: req.params.id, object: 'webhook_endpoint', deleted: true });
  });
  router.post('/webhook_endpoints/:id/rotate', async (req, res) => {
    const { endpoint, secret } = await webhooks.rotate(merchantOf(res).key, req.params.id);
    res.json(endpointJson(endpoint, secret));
  });
  router.get('/webhook_endpoints/:id/attempts', async (req, res) => {
    const page = await webhooks.attempts(merchantOf(res).key, req.params.id, req.query);
    res.json(list({ data: page.data.map(attemptJson), has_more: page.has_more }));
  });
  return router;
}
