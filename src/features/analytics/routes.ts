import express from 'express';
import type { Runtime } from '../../runtime.ts';
import type { Renderer } from '../../core/http.ts';
import { requireMerchant } from '../accounts/middleware.ts';

/** Dashboard analytics endpoints (mounted under /app): the live stream of a link page. */
export function analyticsRoutes(rt: Runtime, render: Renderer): express.Router {
  const router = express.Router();
  void rt;
  void render;
  void requireMerchant;
  return router;
}
