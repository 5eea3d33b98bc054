import type { NextFunction, Request, Response } from 'express';
import { isHtmx } from '../../core/http.ts';

/** Dashboard pages need a logged-in merchant; others are sent to the login page and back. */
export function requireMerchant(req: Request, res: Response, next: NextFunction): void {
  if (req.user) {
    res.locals.merchant = req.user.merchant;
    return next();
  }
  const target = `/login?next=${encodeURIComponent(req.originalUrl)}`;
  if (isHtmx(req)) {
    res.setHeader('HX-Redirect', target);
    res.status(401).end();
    return;
  }
  res.redirect(303, target);
}

/** Only same-site relative paths are followed after login; never a URL from elsewhere. */
export function safeNext(value: unknown): string {
  if (typeof value !== 'string') return '/app';
  return /^\/app(\/[\w\-./?=&%]*)?$/.test(value) && !value.includes('//') ? value : '/app';
}
