import express from 'express';
import { can, ownScope } from '../../core/access.ts';
import type { AppDeps } from '../../web/deps.ts';
import { flash, wantsFragment, type Renderer } from '../../core/http.ts';
import { AppError, NotFoundError } from '../../core/errors.ts';
import { randomToken } from '../../core/ids.ts';
import { streamCsv } from '../../core/csv.ts';
import { lineItemsSummary } from '../../core/line-items.ts';
import { formatMoney, parseDecimalAmount, toDecimalString } from '../../core/money.ts';
import { dateTimeIn, dayKeyIn, dayPattern } from '../../core/time.ts';
import type { Merchant } from '../merchants/index.ts';
import type { Link } from '../links/index.ts';
import type { PaymentView } from '../checkout/index.ts';
import { madeByText, one, pageWindow, paymentStatusBadge } from '../../web/view.ts';
import { REFUNDABLE, formatPaymentMethod, outcomeForMerchant, type Refund } from '../checkout/index.ts';
import { attributionOf, collectedRows, csvHref, isFiltered, listHref, PER_PAGE, readPaymentQuery, STATUS_CHOICES, toFilters, type PaymentQuery } from './view.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'analytics' | 'apiKeys' | 'checkout' | 'clock' | 'config' | 'links' | 'merchants' | 'payments' | 'refunds' | 'registries'>;

const PAYMENT_COLUMNS = ['id', 'created_at', 'paid_at', 'status', 'amount', 'currency', 'customer_name', 'customer_email', 'link_id', 'link_name', 'provider', 'provider_ref', 'amount_refunded', 'amount_before_discount', 'discount', 'coupon_code', 'customer_phone', 'address', 'instructions', 'terms_accepted_at', 'fields', 'line_items'];
const VIEW_COLUMNS = ['id', 'viewed_at', 'ip', 'browser', 'os', 'device', 'referer'];

/** The Transactions page, a payment's detail page, and CSV exports (mounted under /app). */
export function transactionsRoutes(rt: Deps, render: Renderer): express.Router {
  const router = express.Router();
  const { links, payments, analytics, refunds } = rt;

  const merchantOf = (res: express.Response): Merchant => res.locals.merchant;

  /** The query as given, with a link filter that is not one of the merchant's live links dropped, and the dates it could not use. */
  const resolveQuery = async (req: express.Request, merchant: Merchant): Promise<{ query: PaymentQuery; link: Link | null; problems: Record<string, string> }> => {
    const { query, problems } = readPaymentQuery(req.query as Record<string, unknown>, merchant.locale);
    if (!query.link) return { query, link: null, problems };
    const link = await links.get(merchant, query.link).catch((err: unknown) => {
      if (err instanceof NotFoundError) return null;
      throw err;
    });
    return { query: link ? query : { ...query, link: '' }, link, problems };
  };

  /** "2026-11-21": the day an export was made, in the merchant's time zone (for its file name). */
  const today = (merchant: Merchant) => dayKeyIn(rt.clock.now(), merchant.timezone);

  // Registered before /payments/:id for clarity; "/payments.csv" has no slash for :id to match anyway.
  router.get('/payments.csv', async (req, res) => {
    const merchant = merchantOf(res);
    const { query, link } = await resolveQuery(req, merchant);
    await streamCsv(res, {
      filename: `payments-${today(merchant)}.csv`,
      header: PAYMENT_COLUMNS,
      source: payments.each(merchant.key, { ...toFilters(query, merchant.timezone, link?.key), only: ownScope(merchant.actor) }),
      row: (p: PaymentView) => [
        p.id,
        p.createdAt.toISOString(),
        p.paidAt?.toISOString() ?? '',
        p.status,
        toDecimalString(p.amount, p.currency),
        p.currency,
        p.customer?.name,
        p.customer?.email,
        p.linkId,
        p.linkName ?? p.source?.name,
        p.provider,
        p.providerRef,
        toDecimalString(p.amountRefunded, p.currency),
        p.discount ? toDecimalString(p.discount.amountBefore, p.currency) : '',
        p.discount ? toDecimalString(p.discount.amountOff, p.currency) : '',
        p.discount?.code ?? '',
        p.customer?.phone ?? '',
        p.address ?? '',
        p.instructions ?? '',
        p.termsAcceptedAt?.toISOString() ?? '',
        // Custom fields as one JSON object by key (links differ in what they collect).
        p.fields ? JSON.stringify(p.fields) : '',
        lineItemsSummary(p.lineItems),
      ],
    });
  });

  router.get('/payments', async (req, res) => {
    const merchant = merchantOf(res);
    const { query, link, problems } = await resolveQuery(req, merchant);
    const [result, linkList] = await Promise.all([
      payments.search(merchant.key, { ...toFilters(query, merchant.timezone, link?.key), only: ownScope(merchant.actor) }, { page: query.page, perPage: PER_PAGE }),
      links.search(merchant, { perPage: 100, sort: 'name', dir: 'asc' }),
    ]);
    // The filtered link stays selectable even when it is not among the first hundred by name.
    const linkOptions = linkList.items.map((l) => ({ id: l.id, name: l.name }));
    if (link && !linkOptions.some((l) => l.id === link.id)) linkOptions.unshift({ id: link.id, name: link.name });
    const shown = { ...query, page: result.page };
    const data = {
      title: 'Transactions',
      query: shown,
      result: { ...result, perPage: PER_PAGE },
      linkOptions,
      statuses: STATUS_CHOICES,
      filtered: isFiltered(query),
      listHref: (change: Partial<PaymentQuery>) => listHref(shown, change),
      csvHref: csvHref(shown),
      pages: pageWindow(result.page, result.pages),
      h: helpers(merchant),
      problems,
      problemCount: Object.keys(problems).length,
      datePattern: dayPattern(merchant.locale),
      // A date the list could not use goes back into its box as typed, by its message.
      typed: { from: one(req.query.from).slice(0, 40), to: one(req.query.to).slice(0, 40) },
    };
    // As on the links list: htmx gets the results and the tidy address of this list for the address bar.
    if (wantsFragment(req)) res.set('HX-Push-Url', listHref(shown));
    await render(req, res, wantsFragment(req) ? 'transactions/_results' : 'transactions/index', data, data.problemCount ? 422 : 200);
  });

  /** What is left to refund: the amount less refunds that succeeded or are still pending. */
  const leftOf = (payment: PaymentView, list: Refund[]) => payment.amount - list.filter((r) => r.status !== 'failed').reduce((sum, r) => sum + r.amount, 0);

  /** The payment page; `refund` carries a refund form's values and errors (422) or its review step. */
  async function showPayment(
    req: express.Request,
    res: express.Response,
    refund: { values?: Record<string, string>; errors?: Record<string, string>; review?: { amount: number; reason: string; key: string } } = {},
    status = 200,
    outcomeError: string | null = null,
  ) {
    const merchant = merchantOf(res);
    const payment = await payments.get(merchant.key, String(req.params.id), ownScope(merchant.actor));
    const list = await refunds.list(payment.key);
    const left = leftOf(payment, list);
    const [users, keys] = await Promise.all([
      rt.merchants.userRefsByKeys(list.flatMap((r) => (r.createdByUserKey === null ? [] : [r.createdByUserKey]))),
      rt.apiKeys.refsByKeys(list.flatMap((r) => (r.apiKeyKey === null ? [] : [r.apiKeyKey]))),
    ]);
    const h = helpers(merchant);
    await render(
      req,
      res,
      'transactions/show',
      {
        title: `Payment ${formatMoney(payment.amount, payment.currency)}`,
        payment,
        providerName: rt.registries.providers.get(payment.provider)?.name ?? payment.provider,
        paymentMethod: formatPaymentMethod(payment.paymentMethod),
        // An amount that did not match (crypto): what arrived, and the merchant's decision or its buttons.
        outcome: payment.outcome
          ? {
              ...outcomeForMerchant(payment)!,
              resolution: payment.outcome.resolution,
              resolvedAt: payment.outcome.resolvedAt,
              canDecide: payment.outcome.resolution === null && can(merchant.actor?.role ?? 'owner', 'refund.create'),
              error: outcomeError,
            }
          : null,
        attribution: attributionOf(payment, `${rt.config.baseUrl}/${merchant.handle}`),
        collected: collectedRows(payment, payment.linkKey === null ? null : await links.getByKey(payment.linkKey), h.dateTime),
        merchantUrl: `${rt.config.baseUrl}/${merchant.handle}`,
        h,
        refunds: list.map((r) => ({
          ...r,
          money: formatMoney(r.amount, r.currency),
          when: h.dateTime(r.createdAt),
          badge: refundBadge(r),
          by: madeByText(r.createdByUserKey === null ? null : users.get(r.createdByUserKey), r.apiKeyKey === null ? null : keys.get(r.apiKeyKey)),
        })),
        refund: {
          possible: REFUNDABLE.includes(payment.status) && left > 0 && can(merchant.actor?.role ?? 'owner', 'refund.create'),
          left: formatMoney(left, payment.currency),
          leftDecimal: toDecimalString(left, payment.currency),
          net: formatMoney(payment.amount - payment.amountRefunded, payment.currency),
          values: refund.values ?? {},
          errors: refund.errors ?? {},
          review: refund.review ? { ...refund.review, money: formatMoney(refund.review.amount, payment.currency), decimal: toDecimalString(refund.review.amount, payment.currency) } : null,
        },
      },
      status,
    );
  }

  router.get('/payments/:id', (req, res) => showPayment(req, res));

  /**
   * A refund in two steps, with or without JavaScript: the form posts here and gets a review (what
   * will be refunded, to whom) whose "Confirm refund" posts to /refunds with a one-time key, so a
   * double click or a resent form refunds once.
   */
  router.post('/payments/:id/refund', async (req, res) => {
    const merchant = merchantOf(res);
    const payment = await payments.get(merchant.key, String(req.params.id), ownScope(merchant.actor));
    const body = (req.body ?? {}) as Record<string, unknown>;
    const typed = typeof body.amount === 'string' ? body.amount.slice(0, 40) : '';
    const reason = typeof body.reason === 'string' ? body.reason.trim().slice(0, 600) : '';
    const errors: Record<string, string> = {};
    const left = leftOf(payment, await refunds.list(payment.key));
    let amount = left;
    if (typed.trim()) {
      const parsed = parseDecimalAmount(typed, payment.currency, { ceiling: false });
      if (!parsed.ok) errors.amount = parsed.message;
      else amount = parsed.minor;
    }
    if (!errors.amount && amount > left) errors.amount = left > 0 ? `At most ${formatMoney(left, payment.currency)} is left to refund.` : 'Nothing is left to refund.';
    if (reason.length > 500) errors.reason = 'Keep the reason under 500 characters.';
    if (Object.keys(errors).length) return showPayment(req, res, { values: { amount: typed, reason }, errors }, 422);
    await showPayment(req, res, { values: { amount: typed, reason }, review: { amount, reason, key: randomToken(16) } });
  });

  router.post('/payments/:id/refunds', async (req, res) => {
    const merchant = merchantOf(res);
    const body = (req.body ?? {}) as Record<string, unknown>;
    const str = (v: unknown) => (typeof v === 'string' ? v : '');
    const paymentId = String(req.params.id);
    const typed = str(body.amount);
    const payment = await payments.get(merchant.key, paymentId, ownScope(merchant.actor));
    const parsed = typed ? parseDecimalAmount(typed.slice(0, 40), payment.currency, { ceiling: false }) : null;
    if (parsed && !parsed.ok) return showPayment(req, res, { values: { amount: typed, reason: str(body.reason) }, errors: { amount: parsed.message } }, 422);
    const key = str(body.key).slice(0, 64) || null;
    try {
      const { refund } = await refunds.refund(merchant, paymentId, { ...(parsed?.ok ? { amount: parsed.minor } : {}), reason: str(body.reason).trim() || null }, key);
      const money = formatMoney(refund.amount, refund.currency);
      if (refund.status === 'succeeded') flash(req, 'success', `Refunded ${money}.`);
      else if (refund.status === 'pending') flash(req, 'info', `The refund of ${money} is on its way: the provider did not answer yet, so it is retried automatically.`);
      else flash(req, 'error', `The refund of ${money} failed: ${refund.failureMessage ?? 'the provider refused it'}.`);
      res.redirect(303, `/app/payments/${paymentId}#refunds`);
    } catch (err) {
      if (!(err instanceof AppError) || (err.status !== 422 && err.status !== 409)) throw err;
      const errors: Record<string, string> = {};
      for (const e of err.errors) errors[e.field] ??= e.message;
      if (!err.errors.length) errors._ = err.userMessage;
      await showPayment(req, res, { values: { amount: typed, reason: str(body.reason) }, errors }, err.status);
    }
  });

  /** The merchant's decision on an underpaid, overpaid or late payment: accept, or settled off-line. */
  router.post('/payments/:id/outcome', async (req, res) => {
    const merchant = merchantOf(res);
    const paymentId = String(req.params.id);
    const payment = await payments.get(merchant.key, paymentId, ownScope(merchant.actor));
    const decision = (req.body as Record<string, unknown> | undefined)?.decision;
    if (decision !== 'accept' && decision !== 'dismiss') return showPayment(req, res, {}, 422, 'Choose Accept or Settled off-line.');
    try {
      const done = await rt.checkout.resolveOutcome(merchant.key, payment.id, decision);
      flash(req, 'success', decision === 'dismiss' ? 'Marked as settled off-line.' : done.status === 'paid' && payment.status !== 'paid' ? `Accepted: the payment is paid (${formatMoney(done.amount, done.currency)}).` : 'Accepted.');
      res.redirect(303, `/app/payments/${payment.id}`);
    } catch (err) {
      if (!(err instanceof AppError) || err.status !== 409) throw err;
      await showPayment(req, res, {}, 409, err.userMessage);
    }
  });

  router.get('/links/:id/views.csv', async (req, res) => {
    const merchant = merchantOf(res);
    const link = await links.get(merchant, String(req.params.id));
    await streamCsv(res, {
      filename: `views-${link.path ?? link.id}-${today(merchant)}.csv`,
      header: VIEW_COLUMNS,
      source: analytics.eachView(link),
      row: (v) => [v.id, v.viewedAt.toISOString(), v.ip, v.browser, v.os, v.device, v.referer],
    });
  });

  return router;
}

function refundBadge(r: Refund): { label: string; tone: string } {
  return r.status === 'succeeded' ? { label: 'Refunded', tone: 'green' } : r.status === 'pending' ? { label: 'Pending', tone: 'orange' } : { label: 'Failed', tone: 'red' };
}

/** What the pages need to show payments, bound to the merchant (its time zone). */
function helpers(merchant: Merchant) {
  return {
    badge: paymentStatusBadge,
    money: (p: Pick<PaymentView, 'amount' | 'currency'>) => formatMoney(p.amount, p.currency),
    dateTime: (d: Date) => dateTimeIn(d, merchant.timezone, merchant.locale),
    timeZone: merchant.timezone,
  };
}
