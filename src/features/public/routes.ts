// Customer-facing pages. No session, no CSRF, no Redis: these are the hot path.
import express from 'express';
import type { Renderer } from '../../core/http.ts';
import { receiptRoutes } from './receipt.ts';
import { payPageRoutes, type PayPageHandlers } from './pay-page.ts';

/** What the receipt and pay-page routes use of the app. */
type Deps = Parameters<typeof receiptRoutes>[1] & Parameters<typeof payPageRoutes>[1];

/** The public router, and the fast path for pay-page GETs that the app mounts before everything else. */
export function publicRoutes(rt: Deps, render: Renderer): { router: express.Router; fastPayPage: express.RequestHandler; directPayPage: PayPageHandlers['direct'] } {
  const router = express.Router();

  router.get('/', (_req, res) => res.redirect(302, '/login'));
  router.get('/favicon.ico', (_req, res) => res.status(204).end());
  // Fixed first segments ('receipt' is a reserved handle) before the catch-all /:handle routes; one
  // flat router, because every router level costs each pay-page request a little.
  receiptRoutes(router, rt, render);
  const { fastGet: fastPayPage, direct: directPayPage } = payPageRoutes(router, rt, render);

  return { router, fastPayPage, directPayPage };
}
