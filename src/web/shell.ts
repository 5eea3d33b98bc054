/**
 * The dashboard shell, mounted once on /app before every section's router: a signed-in merchant or a
 * redirect to the login page (`requireMerchant`), and the navigation the layout draws. The layout marks
 * the current section from the path (the longest nav href the path starts with), so a section's router
 * says nothing about either.
 */
import express from 'express';
import { requireCapability, requireMerchant } from '../features/accounts/index.ts';
import type { PluginHost } from '../core/plugins/host.ts';
import { navItems } from './nav.ts';

export function dashboardShell({ plugins }: { plugins: PluginHost }): express.Router {
  const router = express.Router();
  router.use(requireMerchant, (_req, res, next) => {
    res.locals.nav = navItems(plugins, res.locals.can);
    next();
  }, requireCapability('dashboard'));
  return router;
}
