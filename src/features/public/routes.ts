// Customer-facing pages. No session, no CSRF, no Redis: these are the hot path.
import express from 'express';
import type { Runtime } from '../../runtime.ts';
import type { Renderer } from '../../core/http.ts';
import { NotFoundError } from '../../core/errors.ts';
import { handleSchema } from '../merchants/schemas.ts';

export function publicRoutes(rt: Runtime, render: Renderer): express.Router {
  const router = express.Router();

  router.get('/', (_req, res) => res.redirect(302, '/login'));
  router.get('/favicon.ico', (_req, res) => res.status(204).end());

  router.get('/:handle', async (req, res) => {
    const raw = String(req.params.handle);
    const parsed = handleSchema.safeParse(raw);
    if (!parsed.success) throw new NotFoundError();
    if (raw !== parsed.data) return res.redirect(301, `/${parsed.data}`);
    const merchant = await rt.services.merchants.getByHandle(parsed.data);
    if (!merchant) throw new NotFoundError();
    await render(req, res, 'public/merchant', { title: `Pay ${merchant.name}`, merchant, brand: merchant.brandColor });
  });

  return router;
}
