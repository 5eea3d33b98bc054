// JSON API: /providers — the merchant's payment providers (API.md "Payment providers per merchant").
import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import type { MerchantProvider } from '../providers/index.ts';
import { merchantOf } from './common.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'providers'>;

/** Secrets never leave: only which of them are set. */
export function providerJson(p: MerchantProvider) {
  return {
    id: p.id,
    object: 'provider',
    name: p.name,
    plugin: p.plugin,
    method_label: p.methodLabel,
    enabled: p.enabled,
    configured: p.configured,
    settings: p.settings,
    secrets_set: p.secretsSet,
  };
}

export function apiProviderRoutes(rt: Deps): express.Router {
  const router = express.Router();
  const { providers } = rt;

  router.get('/providers', async (_req, res) => {
    res.json({ data: (await providers.list(merchantOf(res).key)).map(providerJson), has_more: false });
  });

  router.get('/providers/:id', async (req, res) => {
    res.json(providerJson(await providers.get(merchantOf(res).key, String(req.params.id))));
  });

  router.patch('/providers/:id', async (req, res) => {
    res.json(providerJson(await providers.update(merchantOf(res).key, String(req.params.id), req.body)));
  });

  return router;
}
