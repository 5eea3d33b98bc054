/**
 * Settings → Webhooks (`/app/settings/webhooks`): the merchant's endpoints, and per endpoint its
 * settings, health, delivery log (filter by status), "Resend" per event and "Send a test event".
 * A signing secret is shown once, in the answer to the create or rotate POST (never stored plain).
 */
import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { flash, type Renderer } from '../../core/http.ts';
import { ValidationError } from '../../core/errors.ts';
import { dateTimeIn } from '../../core/time.ts';
import type { WebhookEndpoint } from './service.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'webhooks'>;

const lastOf = (v: unknown): string | undefined => (Array.isArray(v) ? lastOf(v[v.length - 1]) : typeof v === 'string' ? v : undefined);

/** The form's fields as the service's input: "all events" or the ticked types. */
function inputFromForm(body: Record<string, unknown>, withEnabled: boolean) {
  const ticked = ([] as unknown[]).concat(body.events ?? []).filter((v): v is string => typeof v === 'string');
  return {
    url: lastOf(body.url) ?? '',
    description: lastOf(body.description) ?? '',
    events: lastOf(body.all_events) === '1' ? ['*'] : ticked,
    ...(withEnabled ? { enabled: lastOf(body.enabled) === '1' } : {}),
  };
}

/** Dates in the merchant's time zone. */
const helpers = (merchant: { timezone: string; locale: string }) => ({ dateTime: (d: Date) => dateTimeIn(d, merchant.timezone, merchant.locale) });

const valuesOf = (e: WebhookEndpoint) => ({ url: e.url, description: e.description, events: e.events, enabled: e.enabled });

export function webhookRoutes(rt: Deps, render: Renderer): express.Router {
  const router = express.Router();
  const { webhooks } = rt;
  const eventTypes = webhooks.eventTypes();

  async function listPage(req: express.Request, res: express.Response, extra: Record<string, unknown> = {}, status = 200) {
    const merchant = res.locals.merchant;
    const page = await webhooks.list(merchant.key, { limit: 100 });
    await render(req, res, 'webhooks/index', { title: 'Webhooks', h: helpers(merchant), endpoints: page.data, eventTypes, values: { url: '', description: '', events: ['*'] }, errors: {}, ...extra }, status);
  }

  async function endpointPage(req: express.Request, res: express.Response, id: string, extra: Record<string, unknown> = {}, status = 200) {
    const merchant = res.locals.merchant;
    const endpoint = await webhooks.get(merchant.key, id);
    const filter = ['succeeded', 'failed'].includes(String(req.query.status)) ? String(req.query.status) : null;
    const [log, pending] = await Promise.all([webhooks.attempts(merchant.key, id, { limit: 50, ...(filter ? { status: filter } : {}) }), webhooks.pendingCount(merchant.key, id)]);
    await render(
      req,
      res,
      'webhooks/show',
      { title: `Webhook · ${new URL(endpoint.url).host}`, h: helpers(merchant), endpoint, eventTypes, values: valuesOf(endpoint), errors: {}, log: log.data, hasMore: log.has_more, filter, pending, newSecret: null, ...extra },
      status,
    );
  }

  router.get('/settings/webhooks', (req, res) => listPage(req, res));

  router.post('/settings/webhooks', async (req, res) => {
    const input = inputFromForm(req.body ?? {}, false);
    try {
      const { endpoint, secret } = await webhooks.create(res.locals.merchant.key, input);
      // The secret is in this answer only; the address bar moves to the endpoint's page.
      res.set('HX-Push-Url', `/app/settings/webhooks/${endpoint.id}`);
      await endpointPage(req, res, endpoint.id, { newSecret: secret, created: true }, 201);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      await listPage(req, res, { values: input, errors: err.byField() }, 422);
    }
  });

  router.get('/settings/webhooks/:id', (req, res) => endpointPage(req, res, String(req.params.id)));

  router.post('/settings/webhooks/:id', async (req, res) => {
    const id = String(req.params.id);
    const input = inputFromForm(req.body ?? {}, true);
    try {
      await webhooks.update(res.locals.merchant.key, id, input);
      flash(req, 'success', 'Webhook endpoint saved.');
      res.redirect(303, `/app/settings/webhooks/${id}`);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      await endpointPage(req, res, id, { values: input, errors: err.byField() }, 422);
    }
  });

  router.post('/settings/webhooks/:id/rotate', async (req, res) => {
    const id = String(req.params.id);
    const { secret } = await webhooks.rotate(res.locals.merchant.key, id);
    res.set('HX-Push-Url', `/app/settings/webhooks/${id}`);
    await endpointPage(req, res, id, { newSecret: secret, rotated: true });
  });

  router.post('/settings/webhooks/:id/test', async (req, res) => {
    const id = String(req.params.id);
    try {
      await webhooks.sendTest(res.locals.merchant, id);
      flash(req, 'success', 'Test event queued: it appears in the log below once it has been tried.');
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      flash(req, 'error', err.errors[0]?.message ?? err.userMessage);
    }
    res.redirect(303, `/app/settings/webhooks/${id}`);
  });

  router.post('/settings/webhooks/:id/resend/:message', async (req, res) => {
    const id = String(req.params.id);
    try {
      await webhooks.resend(res.locals.merchant.key, id, String(req.params.message));
      flash(req, 'success', 'Event queued to be sent again.');
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      flash(req, 'error', err.errors[0]?.message ?? err.userMessage);
    }
    res.redirect(303, `/app/settings/webhooks/${id}`);
  });

  router.post('/settings/webhooks/:id/delete', async (req, res) => {
    await webhooks.remove(res.locals.merchant.key, String(req.params.id));
    flash(req, 'success', 'Webhook endpoint deleted. Nothing more is sent to it.');
    res.redirect(303, '/app/settings/webhooks');
  });

  return router;
}
