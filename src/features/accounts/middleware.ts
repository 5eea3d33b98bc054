import type { NextFunction, Request, Response } from 'express';
import { isHtmx } from '../../core/http.ts';
import { can, capabilityFor, forbidden, isRole, type Actor, type Capability } from '../../core/access.ts';
import type { User } from '../merchants/index.ts';

/** A signed-in member as the actor of their requests (an unknown role acts as a viewer). */
export function memberActor(user: User): Actor {
  const role = isRole(user.role) ? user.role : 'viewer';
  return { role, userKey: user.key, apiKeyKey: null, amountCap: role === 'agent' ? user.amountCap : null };
}

/**
 * Dashboard pages need a logged-in merchant; others are sent to the login page and back. The
 * merchant carries its actor (the member), and `it.can(capability)` tells views what to offer.
 */
export function requireMerchant(req: Request, res: Response, next: NextFunction): void {
  if (req.user) {
    const actor = memberActor(req.user.user);
    res.locals.merchant = { ...req.user.merchant, actor };
    res.locals.actor = actor;
    res.locals.can = (capability: Capability) => can(actor.role, capability);
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

/**
 * The one permission gate of the dashboard (mounted on /app after requireMerchant): the capability
 * core/access.ts names for this method and path, or a 403 page (a fragment for htmx) saying why.
 */
export function requireCapability(surface: 'dashboard' | 'api') {
  return (req: Request, res: Response, next: NextFunction): void => {
    const needed = capabilityFor(surface, req.method, req.path);
    const actor = res.locals.actor as Actor | undefined;
    if (needed && (!actor || !can(actor.role, needed))) return next(forbidden(needed));
    next();
  };
}
