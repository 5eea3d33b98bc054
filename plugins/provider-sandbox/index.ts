// provider-sandbox: a test payment provider with a hosted card page and the test cards of API.md.
// Written exactly like a third-party provider: it imports only the plugin API (plus express/zod/node),
// hosts its own card page under /p/provider-sandbox/, and reports what the card did to core, which
// claims the payment-limit slot and then calls capture or void here.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import express, { type Request, type Response } from 'express';
import { definePlugin, ProviderError, ServiceError, type PaymentProvider, type PluginApi, type PluginCheckoutSession, z } from 'paylink/plugin-api';

export const TEST_CARDS = {
  '4242424242424242': { outcome: 'authorized', code: null, message: null },
  '4000000000000002': { outcome: 'declined', code: 'card_declined', message: 'Your card was declined. Try another card.' },
  '4000000000009995': { outcome: 'declined', code: 'insufficient_funds', message: 'Your card has insufficient funds. Try another card.' },
} as const;

export type TestCard = keyof typeof TEST_CARDS;

export function normaliseCardNumber(input: string): string {
  return input.replace(/[\s-]/g, '');
}

const isTestCard = (n: string): n is TestCard => Object.hasOwn(TEST_CARDS, n);
const group = (n: string) => n.replace(/(\d{4})(?=\d)/g, '$1 ');

/** Session ids are `cs_` + 22 base62 characters; anything else is not worth a database read. */
const SESSION_ID = /^cs_[0-9A-Za-z]{22}$/;

const formatters = new Map<string, Intl.NumberFormat>();
function money(minor: number, currency: string): string {
  let f = formatters.get(currency);
  if (!f) {
    f = new Intl.NumberFormat('en', { style: 'currency', currency });
    formatters.set(currency, f);
  }
  return f.format(minor / 10 ** (f.resolvedOptions().maximumFractionDigits ?? 2));
}

const cardForm = z.object({ card_number: z.string().max(64).optional() });

export default definePlugin({
  id: 'provider-sandbox',
  version: '0.2.0',
  apiVersion: 1,
  description: 'Test payments with test card numbers; no money moves.',
  config: z.object({}).loose(),
  viewsDir: fileURLToPath(new URL('./views', import.meta.url)),
  register(api) {
    const provider: PaymentProvider = {
      id: 'sandbox',
      name: 'Sandbox (test cards)',
      methodLabel: 'Test card',
      // Every merchant can take test payments from the start; Settings → Payments turns it off.
      enabledByDefault: true,
      async start(session) {
        return { redirect: `${api.baseUrl}/p/provider-sandbox/pay/${encodeURIComponent(session.id)}` };
      },
      // Nothing to do at a sandbox "bank"; a real provider captures or releases the authorization here.
      async capture() {},
      async void() {},
      async refund(_payment, amount) {
        if (!Number.isInteger(amount) || amount <= 0) throw new ProviderError('refund amount must be a positive integer', { retryable: false, code: 'invalid_amount' });
      },
      // Subscriptions: the sandbox "bank" charges each renewal itself, from the job below; canceling
      // needs nothing here (core stops asking once the subscription is canceled).
      subscriptions: true,
    };
    api.providers.register(provider);
    const checkout = api.services.checkout;

    // Renewals on the host's clock: every subscription whose period ended is charged (a test card
    // always pays), once per period — the invoice id names the period, so a rerun records nothing
    // twice. One behind by several periods (the clock jumped) is charged for each.
    api.schedule.every('renew', '1h', async () => {
      for (;;) {
        const due = await api.services.subscriptions.due({ before: api.now(), limit: 100 });
        if (!due.length) return;
        for (const sub of due) await api.services.subscriptions.renewed(sub.id, { invoiceRef: `sbx_in_${sub.id}_${Date.parse(sub.currentPeriodEnd)}`, paymentMethod: { type: 'card', brand: 'visa', last4: '4242' } });
      }
    });

    api.routes.use('/assets', express.static(fileURLToPath(new URL('./public', import.meta.url)), { index: false, maxAge: '1h' }));

    api.routes.get('/cards', async (_req, res) => {
      res.type('html').send(await api.views.render('cards', { cards: Object.entries(TEST_CARDS).map(([n, c]) => ({ number: group(n), ...c })) }));
    });

    const body = express.urlencoded({ extended: false, limit: '4kb', parameterLimit: 10 });
    // Post/Redirect/Get: every answer to the card form is a 303 to a GET (the card page with the
    // decline or the problem, or the receipt), so Back and reload never resubmit a card.
    api.routes.get('/pay/:sessionId', (req, res) => cardPage(api, req, res));
    api.routes.post('/pay/:sessionId', body, async (req, res) => {
      const session = await load(api, req, res);
      if (!session) return;
      if (!session.open) return finished(api, req, res, session);
      const page = `/p/provider-sandbox/pay/${session.id}`;
      const parsed = cardForm.safeParse(req.body ?? {});
      const number = normaliseCardNumber(parsed.success ? (parsed.data.card_number ?? '') : '');
      if (!number) return res.redirect(303, `${page}?error=card_required`);
      if (!isTestCard(number)) return res.redirect(303, `${page}?error=unknown_card`);

      // After a decline the newest attempt is failed: open a fresh one (core makes this safe to race).
      let paymentId = session.payment?.id ?? null;
      if (!paymentId || session.payment?.status === 'failed') {
        try {
          paymentId = (await checkout.retry(session.id)).paymentId;
        } catch (err) {
          // A concurrent submission finished the checkout meanwhile: its card page leads to where it went.
          if (err instanceof ServiceError && !err.retryable) return res.redirect(303, page);
          throw err;
        }
      }

      const card = TEST_CARDS[number];
      if (card.outcome === 'authorized') {
        const result = await checkout.authorize(paymentId, `sbx_${randomBytes(12).toString('hex')}`);
        return res.redirect(303, result.next);
      }
      await checkout.decline(paymentId, { code: card.code, message: card.message });
      // The card page shows the decline (its newest attempt failed), or where a concurrent submission went.
      return res.redirect(303, page);
    });
  },
});

async function load(api: PluginApi, req: Request, res: Response): Promise<PluginCheckoutSession | null> {
  const id = String(req.params.sessionId);
  const session = SESSION_ID.test(id) ? await api.services.checkout.getSession(id) : null;
  if (!session) {
    res.status(404).set('Cache-Control', 'no-store').type('html').send(await api.views.render('missing', { nonce: res.locals.cspNonce }));
    return null;
  }
  return session;
}

function base(res: Response, session: PluginCheckoutSession) {
  return {
    nonce: res.locals.cspNonce as string,
    brand: session.merchant.brandColor,
    merchant: { name: session.merchant.name, initial: (Array.from(session.merchant.name.trim())[0] ?? '?').toUpperCase() },
    description: session.description,
    amount: money(session.amount, session.currency),
    backUrl: session.backUrl,
  };
}

/**
 * Browsers check the redirect that answers a form against the form page's CSP `form-action`: a
 * payment that ends on the merchant's own site needs that origin allowed, and only that one.
 */
function allowFormTarget(api: PluginApi, res: Response, url: string): void {
  const origin = new URL(url).origin;
  if (origin === new URL(api.baseUrl).origin) return;
  const csp = res.getHeader('Content-Security-Policy');
  if (typeof csp !== 'string' || !/(^|;)\s*form-action\b/.test(csp)) return;
  res.setHeader('Content-Security-Policy', csp.replace(/(^|;)(\s*)form-action([^;]*)/, (_m, sep: string, ws: string, list: string) => `${sep}${ws}form-action${list.trimEnd()} ${origin}`));
}

/** Problems with what was typed, by the code the form's redirect carries (`?error=`). */
const FORM_ERRORS: Record<string, string> = {
  card_required: 'Enter a card number.',
  unknown_card: 'Use one of the sandbox test cards, such as 4242 4242 4242 4242.',
};

/**
 * The card form. After a decline (the session's newest attempt failed) it says why, answering 402;
 * after a mistyped card (`?error=`), the problem by the field, answering 422.
 */
async function cardPage(api: PluginApi, req: Request, res: Response): Promise<void> {
  const session = await load(api, req, res);
  if (!session) return;
  if (!session.open) return finished(api, req, res, session);
  allowFormTarget(api, res, session.successUrl);
  const code = typeof req.query.error === 'string' && Object.hasOwn(FORM_ERRORS, req.query.error) ? req.query.error : null;
  const declined = code === null && session.payment?.status === 'failed' ? (session.payment.failureMessage ?? 'The payment was declined. Try another card.') : null;
  const error = code ? FORM_ERRORS[code] : declined;
  const html = await api.views.render('pay', {
    ...base(res, session),
    action: `/p/provider-sandbox/pay/${session.id}`,
    value: '',
    error,
    declined: declined !== null,
    cards: Object.entries(TEST_CARDS).map(([n, c]) => ({ number: group(n), outcome: c.outcome === 'authorized' ? 'succeeds' : c.code === 'card_declined' ? 'is declined' : 'has insufficient funds' })),
  });
  res.status(code ? 422 : declined ? 402 : 200).set('Cache-Control', 'no-store').type('html').send(html);
}

/** A paid, voided or processing checkout goes to its receipt; an expired or closed one gets a clear page. */
async function finished(api: PluginApi, req: Request, res: Response, session: PluginCheckoutSession): Promise<void> {
  const status = session.payment?.status;
  if (session.returnUrl && (status === 'paid' || status === 'voided' || status === 'authorized' || status === 'refunded' || status === 'partially_refunded')) {
    return res.redirect(303, session.returnUrl);
  }
  const html = await api.views.render('finished', { ...base(res, session), expired: session.status === 'expired' });
  res.status(410).set('Cache-Control', 'no-store').type('html').send(html);
}
