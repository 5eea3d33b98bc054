// JSON API: /reports/reconciliation — the reconciliation summary of a date range (API.md "Reconciliation").
import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { readRange, summaryJson } from '../reports/index.ts';
import { merchantOf } from './common.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'reports' | 'clock'>;

export function apiReportRoutes(rt: Deps): express.Router {
  const router = express.Router();
  router.get('/reports/reconciliation', async (req, res) => {
    const merchant = merchantOf(res);
    const range = readRange(req.query, merchant.timezone, rt.clock.now());
    res.json(summaryJson(await rt.reports.summary(merchant, range)));
  });
  return router;
}
