// JSON API: /links (shared/API.md "Link").
import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { AppError, NotFoundError } from '../../core/errors.ts';
import { ownScope } from '../../core/access.ts';
import type { CreatedBy, Link } from '../links/index.ts';
import type { Merchant } from '../merchants/index.ts';
import { viewJson, type ActivityItem } from '../analytics/index.ts';
import { parseBody } from '../../core/http.ts';
import { listQuerySchema } from '../../core/pagination.ts';
import { created, deletedJson, listJson, merchantOf } from './common.ts';
import { paymentsWithRefunds } from './payments.ts';
import type { SendResult } from '../sending/index.ts';
import { deliveryJson } from '../deliveries/index.ts';
import { planJson } from '../reminders/index.ts';
import { afterPaymentJson, type LinkAction } from '../actions/index.ts';
import { toPluginMerchant } from '../merchants/index.ts';
import { ValidationError } from '../../core/errors.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'actions' | 'analytics' | 'apiKeys' | 'config' | 'deliveries' | 'links' | 'payments' | 'refunds' | 'reminders' | 'sending'>;


/** An activity item: a view or a payment as their own lists show them, plus `type` to switch on. */
/** Activity items; payments as on /payments (with their refunds, one read for the page). */
async function activityJson(refunds: Deps['refunds'], items: ActivityItem[]) {
  const payments = await paymentsWithRefunds(refunds, items.flatMap((i) => (i.kind === 'payment' ? [i.payment] : [])));
  const byId = new Map(payments.map((p) => [p.id, p]));
  return items.map((i) => (i.kind === 'view' ? { type: 'view' as const, ...viewJson(i.view) } : { type: 'payment' as const, ...byId.get(i.payment.id)! }));
}

/** What a send did, in the creation (or send) response. */
function sentJson(sent: SendResult) {
  return { deliveries: sent.deliveries, reminder_plans: sent.plans, recipients: sent.recipients, skipped: sent.skipped.map((s) => ({ customer_id: s.customerId, reason: s.reason })) };
}

/** A link made through the API: by the key the request authenticated with. */
const byKey = (res: express.Response): CreatedBy => ({ source: 'api', apiKeyKey: res.locals.apiKeyKey ?? null });

export function apiLinkRoutes(rt: Deps): express.Router {
  const router = express.Router();
  const { links, payments, analytics } = rt;
  const { sending, deliveries, reminders, actions } = rt;
  /** The public ids of the API keys that made these links (revoked keys too). */
  const keysOf = async (list: Link[]) => rt.apiKeys.refsByKeys(list.flatMap((l) => (l.apiKeyKey === null ? [] : [l.apiKeyKey])));
  const toJson = (merchant: Merchant, link: Link, linkActions: LinkAction[], keys: Map<number, { id: string }>) => ({
    ...links.json(merchant, link),
    api_key_id: link.apiKeyKey === null ? null : keys.get(link.apiKeyKey)?.id ?? null,
    after_payment: afterPaymentJson(linkActions),
  });
  const oneJson = async (merchant: Merchant, link: Link) => {
    const [linkActions, keys] = await Promise.all([actions.forLink(link.key), keysOf([link])]);
    return toJson(merchant, link, linkActions, keys);
  };

  router.post('/links', async (req, res) => {
    const merchant = merchantOf(res);
    const body = req.body && typeof req.body === 'object' && !Array.isArray(req.body) ? (req.body as Record<string, unknown>) : {};
    const { link, sent } = await sending.createLink(merchant, body, { by: byKey(res) });
    created(res, `/api/v1/links/${link.id}`, { ...(await oneJson(merchant, link)), ...(sent ? { sent: sentJson(sent) } : {}) });
  });

  /** Sends an existing link to one customer, several, or a customer tag (the `send` object of POST /links). */
  router.post('/links/:id/send', async (req, res) => {
    const merchant = merchantOf(res);
    const link = await links.get(merchant, req.params.id);
    const sent = await sending.send(merchant, link, req.body);
    res.status(201).json(sentJson(sent));
  });

  router.get('/links', async (req, res) => {
    const merchant = merchantOf(res);
    const page = await links.list(merchant, req.query);
    const [chosen, keys] = await Promise.all([actions.forLinks(page.data.map((l) => l.key)), keysOf(page.data)]);
    res.json(await listJson(page, (items) => items.map((l) => toJson(merchant, l, chosen.get(l.key) ?? [], keys))));
  });

  router.get('/links/:id', async (req, res) => {
    const merchant = merchantOf(res);
    res.json(await oneJson(merchant, await links.get(merchant, req.params.id)));
  });

  router.patch('/links/:id', async (req, res) => {
    const merchant = merchantOf(res);
    if (req.body && typeof req.body === 'object' && 'send' in req.body) {
      throw new AppError('use_send_endpoint', 422, 'To send an existing link, POST its `send` object to /links/{id}/send.', {
        errors: [{ field: 'send', code: 'use_send_endpoint', message: 'POST to /links/{id}/send to send an existing link.' }],
      });
    }
    const body = req.body && typeof req.body === 'object' ? (req.body as Record<string, unknown>) : {};
    if ('after_payment' in body) {
      // Replaces the link's actions (`actions: []` clears them; an action's shorthand changes only
      // that action), checked in full before the link or its actions change.
      const link = await links.get(merchant, req.params.id);
      const plan = await actions.prepare(toPluginMerchant(merchant), body.after_payment);
      const problems = actions.customerProblems(plan, link.customerKey === null ? 'none' : 'one', true);
      if (problems.length) throw new ValidationError(problems);
      const { after_payment: _after, ...rest } = body;
      await links.update(merchant, req.params.id, rest);
      if (plan) await actions.apply(link, plan);
      return void res.json(await oneJson(merchant, await links.get(merchant, req.params.id)));
    }
    res.json(await oneJson(merchant, await links.update(merchant, req.params.id, req.body)));
  });

  router.delete('/links/:id', async (req, res) => {
    const merchant = merchantOf(res);
    await links.remove(merchant, req.params.id);
    res.json(deletedJson('link', req.params.id));
  });

  router.post('/links/:id/duplicate', async (req, res) => {
    const merchant = merchantOf(res);
    const copy = await links.duplicate(merchant, req.params.id, { within: (trx, made, original) => actions.copy(trx, original.key, made.key), by: byKey(res) });
    created(res, `/api/v1/links/${copy.id}`, await oneJson(merchant, copy));
  });

  router.get('/links/:id/payments', async (req, res) => {
    const merchant = merchantOf(res);
    const link = await links.get(merchant, req.params.id);
    res.json(await listJson(await payments.list(merchant.key, req.query, { linkKey: link.key }), (items) => paymentsWithRefunds(rt.refunds, items)));
  });

  router.get('/links/:id/views', async (req, res) => {
    const link = await links.get(merchantOf(res), req.params.id);
    res.json(await listJson(await analytics.viewsAfter(link, parseBody(listQuerySchema, req.query)), (items) => items.map(viewJson)));
  });

  router.get('/links/:id/activity', async (req, res) => {
    const link = await links.get(merchantOf(res), req.params.id);
    res.json(await listJson(await analytics.activityAfter(link, parseBody(listQuerySchema, req.query)), (items) => activityJson(rt.refunds, items)));
  });

  router.get('/links/:id/deliveries', async (req, res) => {
    const link = await links.get(merchantOf(res), req.params.id);
    res.json(await listJson(await deliveries.listForLink(link.key, parseBody(listQuerySchema, req.query)), (items) => items.map(deliveryJson)));
  });

  router.post('/deliveries/:id/resend', async (req, res) => {
    const merchant = merchantOf(res);
    // An agent key resends only the messages of its own links (another's is a 404, as its link is).
    if (ownScope(merchant.actor)) {
      const d = await deliveries.get(merchant.key, req.params.id);
      if (d.linkId === null) throw new NotFoundError('No such delivery.');
      await links.get(merchant, d.linkId);
    }
    const id = await deliveries.resend(merchant.key, req.params.id);
    res.status(201).json(deliveryJson(await deliveries.get(merchant.key, id)));
  });

  router.get('/links/:id/reminders', async (req, res) => {
    const merchant = merchantOf(res);
    const link = await links.get(merchant, req.params.id);
    const page = parseBody(listQuerySchema, req.query);
    const plans = await reminders.forLink(link.key);
    const start = page.starting_after ? plans.findIndex((p) => p.id === page.starting_after) + 1 : 0;
    if (page.starting_after && start === 0) throw new AppError('invalid_cursor', 422, 'starting_after must be the id of a reminder plan of this link.', { errors: [{ field: 'starting_after', code: 'invalid_cursor', message: 'Unknown reminder plan id.' }] });
    const slice = plans.slice(start, start + page.limit);
    const sent = await deliveries.forPlans(slice.map((p) => p.key));
    res.json({ data: slice.map((p) => planJson(p, sent.filter((d) => d.planKey === p.key).reverse(), merchant.timezone)), has_more: start + page.limit < plans.length });
  });

  router.post('/reminder_plans/:id/stop', async (req, res) => {
    const merchant = merchantOf(res);
    await reminders.stop(merchant.key, req.params.id);
    res.json({ id: req.params.id, object: 'reminder_plan', status: 'stopped' });
  });

  return router;
}
