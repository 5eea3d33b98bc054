// JSON API: /links (shared/API.md "Link").
import express from 'express';
import type { Runtime } from '../../runtime.ts';
import { AppError } from '../../core/errors.ts';
import { linkJson, type Link } from '../links/service.ts';
import type { Merchant } from '../merchants/repository.ts';
import { paymentJson } from '../checkout/payments.ts';
import type { ActivityItem, LinkView } from '../analytics/service.ts';
import { parseBody } from '../../core/http.ts';
import { listQuerySchema } from '../../core/pagination.ts';
import { created, deletedJson, emptyList, listJson, merchantOf } from './common.ts';

/** A view as API.md shows it (the IP is already masked when stored). */
function viewJson(v: LinkView) {
  return {
    id: v.id,
    object: 'view',
    viewed_at: v.viewedAt.toISOString(),
    ip: v.ip,
    browser: v.browser,
    os: v.os,
    device: v.device,
    referer: v.referer,
  };
}

/** An activity item: a view or a payment as their own lists show them, plus `type` to switch on. */
function activityJson(item: ActivityItem) {
  return item.kind === 'view' ? { type: 'view' as const, ...viewJson(item.view) } : { type: 'payment' as const, ...paymentJson(item.payment) };
}

/**
 * Fields API.md documents for POST /links whose features are not built yet. Refusing them (rather
 * than silently dropping them) keeps an integrator from believing a link was sent or will tag.
 */
const NOT_SUPPORTED_YET = ['send', 'after_payment'] as const;

function refuseUnsupported(body: unknown): void {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return;
  const present = NOT_SUPPORTED_YET.filter((f) => f in body);
  if (!present.length) return;
  throw new AppError('not_supported_yet', 422, `${present.map((f) => `"${f}"`).join(' and ')} ${present.length > 1 ? 'are' : 'is'} not supported yet; create the link without it.`, {
    errors: present.map((field) => ({ field, code: 'not_supported_yet', message: `"${field}" is not supported by this server yet.` })),
  });
}

export function apiLinkRoutes(rt: Runtime): express.Router {
  const router = express.Router();
  const { links, payments, analytics } = rt.services;
  const toJson = (merchant: Merchant, link: Link) => linkJson(merchant, link, rt.config.baseUrl, link.productPrice === null ? null : { price: link.productPrice });

  router.post('/links', async (req, res) => {
    const merchant = merchantOf(res);
    refuseUnsupported(req.body);
    const link = await links.create(merchant, req.body);
    created(res, `/api/v1/links/${link.id}`, toJson(merchant, link));
  });

  router.get('/links', async (req, res) => {
    const merchant = merchantOf(res);
    res.json(await listJson(await links.list(merchant, req.query), (items) => items.map((l) => toJson(merchant, l))));
  });

  router.get('/links/:id', async (req, res) => {
    const merchant = merchantOf(res);
    res.json(toJson(merchant, await links.get(merchant, req.params.id)));
  });

  router.patch('/links/:id', async (req, res) => {
    const merchant = merchantOf(res);
    refuseUnsupported(req.body);
    res.json(toJson(merchant, await links.update(merchant, req.params.id, req.body)));
  });

  router.delete('/links/:id', async (req, res) => {
    const merchant = merchantOf(res);
    await links.remove(merchant, req.params.id);
    res.json(deletedJson('link', req.params.id));
  });

  router.post('/links/:id/duplicate', async (req, res) => {
    const merchant = merchantOf(res);
    const copy = await links.duplicate(merchant, req.params.id);
    created(res, `/api/v1/links/${copy.id}`, toJson(merchant, copy));
  });

  router.get('/links/:id/payments', async (req, res) => {
    const merchant = merchantOf(res);
    const link = await links.get(merchant, req.params.id);
    res.json(await listJson(await payments.list(merchant.key, req.query, { linkKey: link.key }), (items) => items.map(paymentJson)));
  });

  router.get('/links/:id/views', async (req, res) => {
    const link = await links.get(merchantOf(res), req.params.id);
    res.json(await listJson(await analytics.viewsAfter(link, parseBody(listQuerySchema, req.query)), (items) => items.map(viewJson)));
  });

  router.get('/links/:id/activity', async (req, res) => {
    const link = await links.get(merchantOf(res), req.params.id);
    res.json(await listJson(await analytics.activityAfter(link, parseBody(listQuerySchema, req.query)), (items) => items.map(activityJson)));
  });

  // Deliveries and reminders arrive with later features; until then these lists exist and are empty.
  for (const sub of ['deliveries', 'reminders']) {
    router.get(`/links/:id/${sub}`, async (req, res) => {
      const merchant = merchantOf(res);
      await links.get(merchant, req.params.id);
      res.json(emptyList(req.query));
    });
  }

  return router;
}
