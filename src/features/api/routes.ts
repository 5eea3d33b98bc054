// JSON API v1: bearer API keys, JSON in and out, problem+json errors (see shared/API.md).
import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { consumeOrThrow } from '../../core/rate-limit.ts';
import { AppError, NotFoundError } from '../../core/errors.ts';
import { merchantJson } from '../merchants/index.ts';
import type { Merchant } from '../merchants/index.ts';
import { createIdempotencyStore, idempotency, type IdempotencyStore } from '../../core/idempotency.ts';
import { apiQrRoutes } from '../qr/index.ts';
import { apiLinkRoutes } from './links.ts';
import { apiProductRoutes } from './products.ts';
import { apiCouponRoutes } from './coupons.ts';
import { apiSubscriptionRoutes } from './subscriptions.ts';
import { apiTagRoutes } from './tags.ts';
import { apiCustomerRoutes } from './customers.ts';
import { apiPaymentRoutes } from './payments.ts';
import { apiProviderRoutes } from './providers.ts';
import { apiRequestRoutes } from './requests.ts';
import { apiReportRoutes } from './reports.ts';
import { apiWebhookRoutes } from '../webhooks/index.ts';
import { merchantOf } from './common.ts';
import { requireCapability } from '../accounts/index.ts';
import type { Actor } from '../../core/access.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'apiKeys' | 'apiLimiter' | 'clock' | 'db' | 'log' | 'merchants'> &
  Parameters<typeof apiLinkRoutes>[0] &
  Parameters<typeof apiQrRoutes>[0] &
  Parameters<typeof apiProductRoutes>[0] &
  Parameters<typeof apiCouponRoutes>[0] &
  Parameters<typeof apiSubscriptionRoutes>[0] &
  Parameters<typeof apiTagRoutes>[0] &
  Parameters<typeof apiCustomerRoutes>[0] &
  Parameters<typeof apiPaymentRoutes>[0] &
  Parameters<typeof apiProviderRoutes>[0] &
  Parameters<typeof apiWebhookRoutes>[0] &
  Parameters<typeof apiRequestRoutes>[0] &
  Parameters<typeof apiReportRoutes>[0];

declare global {
  namespace Express {
    interface Locals {
      apiMerchant?: Merchant;
      /** The calling API key's internal key (what a payment request records as its creator). */
      apiKeyKey?: number;
      /** Who is acting: the signed-in member (dashboard) or the API key. */
      actor?: Actor;
    }
  }
}

const AUTH_HEADERS = { 'WWW-Authenticate': 'Bearer realm="paylink"' };

function missingKey(): AppError {
  return new AppError('missing_api_key', 401, 'Send your API key as "Authorization: Bearer <key>".', { headers: AUTH_HEADERS });
}

function invalidKey(): AppError {
  return new AppError('invalid_api_key', 401, 'This API key is not valid or has been revoked.', {
    headers: { 'WWW-Authenticate': 'Bearer realm="paylink", error="invalid_token"' },
  });
}

const JSON_TYPES = ['application/json', 'application/*+json'];

export interface ApiRoutesOptions {
  /** Where Idempotency-Key claims live (default: the idempotency_keys table). Tests swap it. */
  idempotencyStore?: IdempotencyStore;
}

export function apiRoutes(rt: Deps, opts: ApiRoutesOptions = {}): express.Router {
  const router = express.Router();
  router.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });

  // Authenticate before reading the body: anonymous callers never make us parse 100 kB of JSON.
  router.use(async (req, res, next) => {
    const header = req.get('Authorization');
    if (!header) throw missingKey();
    const m = /^Bearer +([^\s]+) *$/i.exec(header);
    if (!m) throw missingKey();
    const auth = await rt.apiKeys.authenticate(m[1]);
    if (!auth) throw invalidKey();
    const merchant = await rt.merchants.getByKey(auth.merchantKey);
    if (!merchant) throw invalidKey();
    await consumeOrThrow(rt.apiLimiter, auth.apiKeyId, 'Too many requests with this API key. Slow down and retry after the time in Retry-After.');
    // The key acts with its role: what it may call (below) and what it sees (its own records, for an agent key).
    const actor: Actor = { role: auth.role, userKey: null, apiKeyKey: auth.apiKeyKey, amountCap: auth.role === 'agent' ? auth.amountCap : null };
    res.locals.apiMerchant = { ...merchant, actor };
    res.locals.apiKeyKey = auth.apiKeyKey;
    res.locals.actor = actor;
    next();
  });
  // The one permission gate of the API: 403 problem+json `forbidden` when the key's role lacks what the route needs.
  router.use(requireCapability('api'));

  // JSON in: a body of another type is refused rather than silently ignored.
  router.use((req, _res, next) => {
    if (!['POST', 'PUT', 'PATCH'].includes(req.method) || !req.headers['content-type'] || !hasBody(req)) return next();
    if (!req.is(JSON_TYPES)) return next(new AppError('unsupported_media_type', 415, 'Send the request body as JSON with "Content-Type: application/json".'));
    next();
  });
  router.use(express.json({ limit: '100kb', strict: true, type: JSON_TYPES }));

  // Every POST: Idempotency-Key (after auth and body parsing: keys are per merchant, hashed with the body).
  router.use(idempotency({ store: opts.idempotencyStore ?? createIdempotencyStore({ db: rt.db, clock: rt.clock }), log: rt.log.child('idempotency') }));

  router.get('/me', (_req, res) => {
    res.json(merchantJson(res.locals.apiMerchant!));
  });
  router.use(apiLinkRoutes(rt));
  router.use(apiQrRoutes(rt));
  router.use(apiProductRoutes(rt));
  router.use(apiCouponRoutes(rt));
  router.use(apiSubscriptionRoutes(rt));
  router.use(apiTagRoutes(rt));
  router.use(apiCustomerRoutes(rt));
  router.use(apiPaymentRoutes(rt));
  router.use(apiProviderRoutes(rt));
  router.use(apiRequestRoutes(rt));
  router.use(apiReportRoutes(rt));
  router.use(apiWebhookRoutes(rt, merchantOf));

  router.use((req, _res, next) => {
    if (!['GET', 'POST', 'PATCH', 'DELETE', 'PUT', 'HEAD', 'OPTIONS'].includes(req.method)) {
      return next(new AppError('method_not_allowed', 405, 'Method not allowed.'));
    }
    next(new NotFoundError(`No API endpoint ${req.method} ${req.originalUrl.split('?')[0]}.`));
  });
  // A path parameter that is not valid percent-encoding (`/links/%E0%A4%A`): the router throws a
  // URIError with status 400 that the shared error mapping does not know; it is bad input, not a 500.
  router.use((err: unknown, _req: express.Request, _res: express.Response, next: express.NextFunction) => {
    next(err instanceof URIError ? new AppError('malformed_url', 400, 'The URL is not valid: check its percent-encoding.') : err);
  });
  return router;
}

function hasBody(req: express.Request): boolean {
  return req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
}
