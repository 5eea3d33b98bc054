import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import type { Renderer } from '../../core/http.ts';
import { NotFoundError } from '../../core/errors.ts';
import { toPluginMerchant } from '../merchants/index.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'deliveries' | 'plugins' | 'registries'>;

export function pluginRoutes(rt: Deps, render: Renderer): express.Router {
  const router = express.Router();
  router.get('/plugins', async (req, res) => {
    await render(req, res, 'plugins/index', {
      title: 'Plugins',
      plugins: rt.plugins.list(),
      channels: rt.registries.channels.ids().map((id) => ({ id, label: rt.deliveries.channels.label(id), owner: rt.registries.channels.ownerOf(id) })),
    });
  });

  // Dashboard pages contributed by plugins, rendered inside the dashboard layout.
  router.get('/p/:pluginId{/*rest}', async (req, res) => {
    const pluginId = String(req.params.pluginId);
    const rest = (req.params as { rest?: string[] }).rest;
    const subPath = rest?.length ? `/${rest.join('/')}` : '/';
    const entry = rt.plugins.dashboardPages().find((p) => p.pluginId === pluginId && p.page.path === subPath);
    if (!entry || !rt.plugins.isActive(pluginId)) throw new NotFoundError();
    const query: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.query)) if (typeof v === 'string') query[k] = v;
    const body = await entry.page.render({ merchant: toPluginMerchant(req.user!.merchant), query });
    await render(req, res, 'plugins/page', { title: entry.page.title, pluginId, body });
  });

  return router;
}
