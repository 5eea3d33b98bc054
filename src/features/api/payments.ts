// JSON API: /payments (read; filters link_id and status) and their refunds (API.md "Refunds").
import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { paymentJson, type PaymentView } from '../checkout/index.ts';
import { refundJson, type Refund } from '../checkout/index.ts';
import { IDEMPOTENCY_HEADER } from '../../core/idempotency.ts';
import { NotFoundError, ValidationError } from '../../core/errors.ts';
import { ownScope } from '../../core/access.ts';
import { created, listJson, merchantOf } from './common.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'checkout' | 'payments' | 'refunds'>;

/** A payment with its refunds, oldest first. */
const withRefunds = (p: PaymentView, refunds: Refund[]) => ({ ...paymentJson(p), refunds: refunds.map((r) => refundJson(r, p.id)) });

/** Payments with their refunds, in one read of the refunds. */
export async function paymentsWithRefunds(refunds: Deps['refunds'], items: PaymentView[]) {
  const byPayment = await refunds.forPayments(items.map((p) => p.key));
  return items.map((p) => withRefunds(p, byPayment.get(p.key) ?? []));
}

export function apiPaymentRoutes(rt: Deps): express.Router {
  const router = express.Router();
  const { payments, refunds } = rt;

  router.get('/payments', async (req, res) => {
    res.json(
      await listJson(await payments.list(merchantOf(res).key, req.query, { only: ownScope(merchantOf(res).actor) }), (items) => paymentsWithRefunds(refunds, items)),
    );
  });

  router.get('/payments/:id', async (req, res) => {
    const payment = await payments.get(merchantOf(res).key, req.params.id, ownScope(merchantOf(res).actor));
    res.json(withRefunds(payment, await refunds.list(payment.key)));
  });

  router.get('/payments/:id/refunds', async (req, res) => {
    const payment = await payments.get(merchantOf(res).key, req.params.id, ownScope(merchantOf(res).actor));
    res.json({ data: (await refunds.list(payment.key)).map((r) => refundJson(r, payment.id)), has_more: false });
  });

  router.get('/payments/:id/refunds/:refundId', async (req, res) => {
    const payment = await payments.get(merchantOf(res).key, req.params.id, ownScope(merchantOf(res).actor));
    const refund = (await refunds.list(payment.key)).find((r) => r.id === req.params.refundId);
    if (!refund) throw new NotFoundError('No such refund.');
    res.json(refundJson(refund, payment.id));
  });

  // The Idempotency-Key middleware replays a repeated request; the key also reaches the service, so
  // a repeat that races the first (or comes after the key expired) still answers the same refund.
  router.post('/payments/:id/refunds', async (req, res) => {
    const merchant = merchantOf(res);
    const { refund, payment } = await refunds.refund(merchant, req.params.id, req.body ?? {}, req.get(IDEMPOTENCY_HEADER) ?? null);
    created(res, `/api/v1/payments/${payment.id}/refunds/${refund.id}`, refundJson(refund, payment.id));
  });

  // The merchant's decision on an amount that did not match (crypto): `{ "decision": "accept" | "dismiss" }`.
  router.post('/payments/:id/outcome', async (req, res) => {
    const merchant = merchantOf(res);
    const payment = await payments.get(merchant.key, req.params.id, ownScope(merchant.actor));
    const decision = (req.body as Record<string, unknown> | undefined)?.decision;
    if (decision !== 'accept' && decision !== 'dismiss') throw new ValidationError([{ field: 'decision', code: 'invalid', message: 'decision must be accept or dismiss.' }]);
    await rt.checkout.resolveOutcome(merchant.key, payment.id, decision);
    const after = await payments.get(merchant.key, payment.id);
    res.json(withRefunds(after, await refunds.list(after.key)));
  });

  return router;
}
