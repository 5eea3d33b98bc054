// JSON API v1: bearer API keys, JSON in and out, problem+json errors (see shared/API.md).
import express from 'express';
import type { Runtime } from '../../runtime.ts';
import { AppError, NotFoundError, UnauthorizedError } from '../../core/errors.ts';
import { merchantJson } from '../merchants/service.ts';
import type { Merchant } from '../merchants/repository.ts';

declare global {
  namespace Express {
    interface Locals {
      apiMerchant?: Merchant;
    }
  }
}

export function apiRoutes(rt: Runtime): express.Router {
  const router = express.Router();
  router.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });
  router.use(express.json({ limit: '100kb', strict: true, type: ['application/json', 'application/*+json'] }));

  router.use(async (req, res, next) => {
    const header = req.get('Authorization') ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw new UnauthorizedError('missing_api_key', 'Send your API key as "Authorization: Bearer <key>".');
    const auth = await rt.services.apiKeys.authenticate(m[1]);
    if (!auth) throw new UnauthorizedError('invalid_api_key', 'This API key is not valid or has been revoked.');
    const merchant = await rt.services.merchants.getByKey(auth.merchantKey);
    if (!merchant) throw new UnauthorizedError('invalid_api_key', 'This API key is not valid or has been revoked.');
    res.locals.apiMerchant = merchant;
    next();
  });

  router.get('/me', (_req, res) => {
    res.json(merchantJson(res.locals.apiMerchant!));
  });

  router.use((req, _res, next) => {
    if (!['GET', 'POST', 'PATCH', 'DELETE', 'PUT', 'HEAD', 'OPTIONS'].includes(req.method)) {
      return next(new AppError('method_not_allowed', 405, 'Method not allowed.'));
    }
    next(new NotFoundError(`No API endpoint ${req.method} ${req.originalUrl.split('?')[0]}.`));
  });
  return router;
}
