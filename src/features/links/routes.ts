import express from 'express';
import type { Runtime } from '../../runtime.ts';
import type { Renderer } from '../../core/http.ts';

/** Dashboard pages for links (mounted under /app). */
export function linksRoutes(_rt: Runtime, _render: Renderer): express.Router {
  const router = express.Router();
  return router;
}
