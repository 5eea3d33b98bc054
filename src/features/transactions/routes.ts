import express from 'express';
import type { Runtime } from '../../runtime.ts';
import { wantsFragment, type Renderer } from '../../core/http.ts';
import { NotFoundError } from '../../core/errors.ts';
import { streamCsv } from '../../core/csv.ts';
import { formatMoney, toDecimalString } from '../../core/money.ts';
import { dateTimeIn, dayKeyIn } from '../../core/time.ts';
import { requireMerchant } from '../accounts/middleware.ts';
import { navItems } from '../dashboard/nav.ts';
import type { Merchant } from '../merchants/repository.ts';
import type { Link } from '../links/service.ts';
import type { PaymentView } from '../checkout/payments.ts';
import { pageWindow } from '../links/view.ts';
import { attributionOf, csvHref, isFiltered, listHref, paymentStatusBadge, PER_PAGE, readPaymentQuery, STATUS_CHOICES, toFilters, type PaymentQuery } from './view.ts';

const PAYMENT_COLUMNS = ['id', 'created_at', 'paid_at', 'status', 'amount', 'currency', 'customer_name', 'customer_email', 'link_id', 'link_name', 'provider', 'provider_ref'];
const VIEW_COLUMNS = ['id', 'viewed_at', 'ip', 'browser', 'os', 'device', 'referer'];

/** The Transactions page, a payment's detail page, and CSV exports (mounted under /app). */
export function transactionsRoutes(rt: Runtime, render: Renderer): express.Router {
  const router = express.Router();
  const { links, payments, analytics } = rt.services;

  router.use(['/payments', '/payments.csv', '/links/:id/views.csv'], requireMerchant, (_req, res, next) => {
    res.locals.nav = navItems(rt);
    next();
  });

  const merchantOf = (res: express.Response): Merchant => res.locals.merchant;

  /** The query as given, with a link filter that is not one of the merchant's live links dropped. */
  const resolveQuery = async (req: express.Request, merchant: Merchant): Promise<{ query: PaymentQuery; link: Link | null }> => {
    const query = readPaymentQuery(req.query as Record<string, unknown>, merchant.timezone);
    if (!query.link) return { query, link: null };
    const link = await links.get(merchant, query.link).catch((err: unknown) => {
      if (err instanceof NotFoundError) return null;
      throw err;
    });
    return { query: link ? query : { ...query, link: '' }, link };
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
      source: payments.each(merchant.key, toFilters(query, merchant.timezone, link?.key)),
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
      ],
    });
  });

  router.get('/payments', async (req, res) => {
    const merchant = merchantOf(res);
    const { query, link } = await resolveQuery(req, merchant);
    const [result, linkList] = await Promise.all([
      payments.search(merchant.key, toFilters(query, merchant.timezone, link?.key), { page: query.page, perPage: PER_PAGE }),
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
    };
    // As on the links list: htmx gets the results and the tidy address of this list for the address bar.
    if (wantsFragment(req)) res.set('HX-Push-Url', listHref(shown));
    await render(req, res, wantsFragment(req) ? 'transactions/_results' : 'transactions/index', data);
  });

  router.get('/payments/:id', async (req, res) => {
    const merchant = merchantOf(res);
    const payment = await payments.get(merchant.key, String(req.params.id));
    await render(req, res, 'transactions/show', {
      title: `Payment ${formatMoney(payment.amount, payment.currency)}`,
      payment,
      attribution: attributionOf(payment, `${rt.config.baseUrl}/${merchant.handle}`),
      merchantUrl: `${rt.config.baseUrl}/${merchant.handle}`,
      h: helpers(merchant),
    });
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

/** What the pages need to show payments, bound to the merchant (its time zone). */
function helpers(merchant: Merchant) {
  return {
    badge: paymentStatusBadge,
    money: (p: Pick<PaymentView, 'amount' | 'currency'>) => formatMoney(p.amount, p.currency),
    dateTime: (d: Date) => dateTimeIn(d, merchant.timezone),
    timeZone: merchant.timezone,
  };
}
