// JSON API: /payments (read only; filters link_id and status).
import express from 'express';
import type { Runtime } from '../../runtime.ts';
import { paymentJson } from '../checkout/payments.ts';
import { listJson, merchantOf } from './common.ts';

export function apiPaymentRoutes(rt: Runtime): express.Router {
  const router = express.Router();
  const { payments } = rt.services;

  router.get('/payments', async (req, res) => {
    res.json(await listJson(await payments.list(merchantOf(res).key, req.query), (items) => items.map(paymentJson)));
  });

  router.get('/payments/:id', async (req, res) => {
    res.json(paymentJson(await payments.get(merchantOf(res).key, req.params.id)));
  });

  return router;
}
