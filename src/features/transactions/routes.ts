import express from 'express';
import type { Runtime } from '../../runtime.ts';
import type { Renderer } from '../../core/http.ts';

/** The Transactions page, a payment's detail page, and CSV exports (mounted under /app). */
export function transactionsRoutes(rt: Runtime, render: Renderer): express.Router {
  const router = express.Router();
  void rt;
  void render;
  return router;
}
