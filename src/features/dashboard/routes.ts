import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import type { Renderer } from '../../core/http.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'apiKeys' | 'config' | 'events' | 'links'>;

/** Sections a later feature fills in; until then each explains what it will hold and what to do first. */
const SECTIONS: Record<string, { title: string; lead: string; next: string }> = {};

export function dashboardRoutes(rt: Deps, render: Renderer): express.Router {
  const router = express.Router();
  router.get('/', async (req, res) => {
    const merchant = req.user!.merchant;
    const [keys, links] = await Promise.all([rt.apiKeys.list(merchant.key), rt.links.search(merchant, { perPage: 1 })]);
    await render(req, res, 'dashboard/home', {
      title: 'Dashboard',
      publicUrl: `${rt.config.baseUrl}/${merchant.handle}`,
      steps: [
        { done: true, label: 'Create your account', href: null },
        { done: merchant.updatedAt.getTime() > merchant.createdAt.getTime(), label: 'Set your brand colour, currency and time zone', href: '/app/settings' },
        { done: links.total > 0, label: 'Create your first payment link', href: '/app/links/new' },
        { done: keys.some((k) => !k.revokedAt), label: 'Create an API key (optional, for integrations)', href: '/app/settings#api-keys' },
      ],
      events: await rt.events.listForMerchant(merchant.key, 5),
    });
  });

  for (const [slug, section] of Object.entries(SECTIONS)) {
    router.get(`/${slug}`, (req, res) => render(req, res, 'dashboard/section', { title: section.title, section }));
  }

  router.get('/activity', async (req, res) => {
    await render(req, res, 'dashboard/activity', { title: 'Activity', events: await rt.events.listForMerchant(req.user!.merchant.key, 100) });
  });

  return router;
}
