// Small helpers shared by the JSON API resource routers.
import express, { type Response } from 'express';
import type { Merchant } from '../merchants/index.ts';
import type { Page } from '../../core/pagination.ts';
import { ownScope, type OwnScope } from '../../core/access.ts';

/** The merchant of the API key (set by the authentication middleware in routes.ts). */
export function merchantOf(res: Response): Merchant {
  const merchant = res.locals.apiMerchant;
  if (!merchant) throw new Error('API route mounted outside the authenticated router');
  return merchant;
}

/** A list response as API.md defines it: `{ data, has_more }`. */
export async function listJson<T, J>(page: Page<T>, toJson: (items: T[]) => J[] | Promise<J[]>): Promise<{ data: J[]; has_more: boolean }> {
  return { data: await toJson(page.data), has_more: page.has_more };
}

/** The answer to a DELETE: what was deleted. */
export function deletedJson(object: string, id: string) {
  return { id, object, deleted: true };
}

/** Sends 201 with a Location header for a created resource. */
export function created(res: Response, location: string, body: unknown): void {
  res.status(201).location(location).json(body);
}

/**
 * What a merchant-scoped catalogue service offers (products, tags, customers). `only` narrows reads
 * and changes to what the calling key made, and `by` names it on a create, for services whose records
 * have a maker (customers); the others ignore both.
 */
export interface CrudService<T> {
  create(merchantKey: number, raw: unknown, by?: { userKey?: number | null; apiKeyKey?: number | null }): Promise<T>;
  get(merchantKey: number, id: string, only?: OwnScope | null): Promise<T>;
  update(merchantKey: number, id: string, raw: unknown, only?: OwnScope | null): Promise<T>;
  remove(merchantKey: number, id: string): Promise<void>;
}

/**
 * POST /<path>, GET /<path>, GET|PATCH|DELETE /<path>/:id over a merchant-scoped service: 201 with
 * Location on create, `{ data, has_more }` lists, `{ id, object, deleted: true }` on delete.
 */
export function crudRoutes<T extends { id: string }>(opts: {
  path: string;
  object: string;
  service: CrudService<T>;
  list: (merchantKey: number, query: unknown, only: OwnScope | null) => Promise<Page<T>>;
  toJson: (item: T) => unknown;
}): express.Router {
  const { path, object, service, list, toJson } = opts;
  const router = express.Router();
  router.post(`/${path}`, async (req, res) => {
    const merchant = merchantOf(res);
    const item = await service.create(merchant.key, req.body, { userKey: merchant.actor?.userKey ?? null, apiKeyKey: merchant.actor?.apiKeyKey ?? null });
    created(res, `/api/v1/${path}/${item.id}`, toJson(item));
  });
  router.get(`/${path}`, async (req, res) => {
    const merchant = merchantOf(res);
    res.json(await listJson(await list(merchant.key, req.query, ownScope(merchant.actor)), (items) => items.map(toJson)));
  });
  router.get(`/${path}/:id`, async (req, res) => {
    const merchant = merchantOf(res);
    res.json(toJson(await service.get(merchant.key, req.params.id, ownScope(merchant.actor))));
  });
  router.patch(`/${path}/:id`, async (req, res) => {
    const merchant = merchantOf(res);
    res.json(toJson(await service.update(merchant.key, req.params.id, req.body, ownScope(merchant.actor))));
  });
  router.delete(`/${path}/:id`, async (req, res) => {
    await service.remove(merchantOf(res).key, req.params.id);
    res.json(deletedJson(object, req.params.id));
  });
  return router;
}
