// JSON API: /customers (name, email, phone in E.164, address, addresses by channel kind, tags) and Text-to-Pay requests.
import type express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { customerJson, paymentProfileJson } from '../customers/index.ts';
import { NotFoundError } from '../../core/errors.ts';
import { ownScope } from '../../core/access.ts';
import { crudRoutes, merchantOf } from './common.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'config' | 'customers' | 'links' | 'sending' | 'profiles' | 'savedProfiles'>;

export function apiCustomerRoutes(rt: Deps): express.Router {
  const { customers, sending, links } = rt;
  const router = crudRoutes({ path: 'customers', object: 'customer', service: customers, list: (key, q, only) => customers.list(key, q, only), toJson: customerJson });

  /**
   * Text-to-Pay: a one-off, single-use payment request for `amount` (minor units), texted to the
   * customer by `channel` (a text channel's id; default "sms"). The answer is the request's link (as
   * before payment requests) with the request's id, `payment_request_id`.
   */
  router.post('/customers/:id/payment_requests', async (req, res) => {
    const merchant = merchantOf(res);
    const body = (req.body ?? {}) as { amount?: unknown; description?: unknown; channel?: unknown };
    const { link, deliveryId, channel, requestId } = await sending.textToPay(merchant, req.params.id, { amount: body.amount, description: body.description, channel: body.channel });
    res
      .status(201)
      .location(`/api/v1/links/${link.id}`)
      .json({ ...links.json(merchant, link), delivery_id: deliveryId, channel, payment_request_id: requestId });
  });

  /** Saved payment profiles (a card the customer saved with Stripe at checkout): listed, and removed at the provider too. */
  router.get('/customers/:id/payment_profiles', async (req, res) => {
    const merchant = merchantOf(res);
    const customer = await customers.get(merchant.key, String(req.params.id), ownScope(merchant.actor));
    res.json({ data: (await rt.profiles.forCustomer(customer.key)).map(paymentProfileJson), has_more: false });
  });
  router.delete('/customers/:id/payment_profiles/:profileId', async (req, res) => {
    const merchant = merchantOf(res);
    const customer = await customers.get(merchant.key, String(req.params.id), ownScope(merchant.actor));
    const profile = await rt.profiles.get(merchant.key, customer.key, String(req.params.profileId));
    if (!profile) throw new NotFoundError('No such payment profile.');
    await rt.savedProfiles.forget(profile);
    res.status(204).end();
  });
  return router;
}
