import express from 'express';
import { overCapMessage, ownScope } from '../../core/access.ts';
import type { AppDeps } from '../../web/deps.ts';
import { flash, type Renderer } from '../../core/http.ts';
import { AppError, NotFoundError } from '../../core/errors.ts';
import { currencyDigits, formatMoney, parseDecimalAmount } from '../../core/money.ts';
import { timeAgo } from '../../core/time.ts';
import { dateTimeIn, formErrors, formatPhone } from '../../web/view.ts';
import { currencyOptions, currencySchema, type Merchant } from '../merchants/index.ts';
import type { CustomerSummary } from '../customers/index.ts';
import { sendQr } from '../qr/index.ts';
import { FREQUENCIES, FREQUENCY_LABELS, REMINDERS_MAX } from '../reminders/index.ts';
import type { PaymentRequest } from './service.ts';
import { CSV_BOM, CSV_CONTENT_TYPE } from '../../core/csv.ts';
import type { ImportProblem } from '../../core/csv-import.ts';
import { IMPORT_TEMPLATE, REQUEST_IMPORT_COLUMNS, REQUEST_IMPORT_MAX_BYTES, REQUEST_IMPORT_MAX_ROWS, type ImportProgress } from './import.ts';
import {
  DEFAULT_EXPIRY_DAYS,
  MAX_EXPIRY_DAYS,
  MAX_USES,
  NOTICE_OPTIONS,
  PER_PAGE,
  STATUSES,
  cancellable,
  formField,
  listHref,
  newValues,
  postedValues,
  readListQuery,
  statusBadge,
  titleOf,
  type ListQuery,
  type RequestFormValues,
} from './view.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'clock' | 'customers' | 'requests' | 'deliveries' | 'reports' | 'requestImports'>;

const DAY_SECONDS = 86_400;
/** Views listed in a request's history on its page (the newest; the API lists up to 100). */
const TRAIL_VIEWS = 20;
/** Problems listed on the import page; the rest are counted. */
const PROBLEMS_SHOWN = 200;

/**
 * The form's own checks (a decimal amount in the currency's precision, whole days, whole uses) and the
 * service's input. When the form found a problem the amount goes as null, which the service always
 * refuses before writing anything: its messages for the other fields come back too.
 */
function requestInput(v: RequestFormValues): { raw: Record<string, unknown>; own: Record<string, string> } {
  const own: Record<string, string> = {};
  const currency = currencySchema.safeParse(v.currency);
  if (!currency.success) own.currency = currency.error.issues[0].message;
  let amount: number | null = null;
  if (!v.amount.trim()) own.amount = 'Enter the amount to request, such as 12.50.';
  else if (currency.success) {
    const parsed = parseDecimalAmount(v.amount, currency.data);
    if (parsed.ok) amount = parsed.minor;
    else own.amount = parsed.message;
  }
  const days = /^\s*\d{1,4}\s*$/.test(v.expires_days) ? Number(v.expires_days) : NaN;
  if (!(days >= 1 && days <= MAX_EXPIRY_DAYS)) own.expires_days = `Enter a whole number of days from 1 to ${MAX_EXPIRY_DAYS}.`;
  const uses = /^\s*\d{1,6}\s*$/.test(v.max_uses) ? Number(v.max_uses) : NaN;
  if (!(uses >= 1 && uses <= MAX_USES)) own.max_uses = `Enter how many payments it takes: 1 to ${MAX_USES.toLocaleString('en')}.`;
  if (!NOTICE_OPTIONS.some((o) => o.value === v.notify_before)) own.notify_before = 'Choose when from the list.';
  const orNull = (s: string) => s.trim() || null;
  const customer = v.customer_id
    ? { customer_id: v.customer_id }
    : { customer: { name: v.customer_name, email: orNull(v.customer_email), phone: orNull(v.customer_phone) } };
  // The service checks "an email or a phone" only once the rest is valid: say it now too.
  if (Object.keys(own).length && !v.customer_id && !orNull(v.customer_email) && !orNull(v.customer_phone)) own.customer_email = 'Give the customer’s email or phone.';
  const raw = {
    amount: Object.keys(own).length ? null : amount,
    currency: currency.success ? currency.data : v.currency,
    description: v.description,
    reference: orNull(v.reference),
    ...customer,
    expires_in: Number.isFinite(days) ? Math.min(Math.max(days, 1), MAX_EXPIRY_DAYS) * DAY_SECONDS : DEFAULT_EXPIRY_DAYS * DAY_SECONDS,
    max_uses: Number.isFinite(uses) ? Math.min(Math.max(uses, 1), MAX_USES) : 1,
    allow_refresh: v.allow_refresh === 'on',
    channels: v.channels,
    // Reminders go as typed: the service's rules (and messages, by reminder_frequency / reminder_max) decide.
    reminders: v.reminder_frequency ? { frequency: v.reminder_frequency, max: /^\s*\d{1,4}\s*$/.test(v.reminder_max) ? Number(v.reminder_max) : v.reminder_max } : null,
    notify_before_expiry: v.notify_before && !own.notify_before ? Number(v.notify_before) : null,
  };
  return { raw, own };
}

/** Dashboard pages for payment requests (mounted under /app). */
export function requestsRoutes(rt: Deps, render: Renderer): express.Router {
  const router = express.Router();
  const { requests, customers } = rt;

  const merchantOf = (res: express.Response): Merchant => res.locals.merchant;

  /** Everything a page needs to show requests, bound to the merchant. */
  const helpers = (merchant: Merchant) => {
    const now = rt.clock.now();
    return {
      url: (r: PaymentRequest) => requests.urlOf(r),
      badge: (r: PaymentRequest) => statusBadge(r.status),
      title: titleOf,
      amount: (r: PaymentRequest) => formatMoney(r.link.amount, r.link.currency),
      money: formatMoney,
      dateTime: (d: Date) => dateTimeIn(d, merchant.timezone, merchant.locale),
      relative: (d: Date) => timeAgo(d, now),
      phone: formatPhone,
      cancellable,
      timeZone: merchant.timezone,
    };
  };

  /** The customers of these requests by key (deleted ones too: their name stays on the request). */
  const customersOf = async (rs: PaymentRequest[]): Promise<Map<number, CustomerSummary>> =>
    customers.summariesByKeys(rs.flatMap((r) => (r.link.customerKey === null ? [] : [r.link.customerKey])));

  // ---- List -------------------------------------------------------------------------------------

  router.get('/requests', async (req, res) => {
    const merchant = merchantOf(res);
    const query = readListQuery(req.query as Record<string, unknown>);
    const list = (q: ListQuery) => requests.list(merchant.key, { limit: PER_PAGE, ...(q.status ? { status: q.status } : {}), ...(q.import ? { import_id: q.import } : {}), ...(q.after ? { starting_after: q.after } : {}) }, ownScope(merchant.actor));
    const page = await list(query);
    const people = await customersOf(page.data);
    const filtered = Boolean(query.status || query.import);
    await render(req, res, 'requests/index', {
      title: 'Payment requests',
      query,
      requests: page.data,
      hasMore: page.has_more,
      customers: people,
      statuses: STATUSES,
      filtered,
      // Nothing at all on the first page without a filter: this merchant has asked for no payment yet.
      none: !filtered && !query.after && !page.data.length,
      listHref: (change: Partial<ListQuery>) => listHref(query, change),
      nextHref: page.has_more ? listHref(query, { after: page.data[page.data.length - 1].id }) : null,
      h: helpers(merchant),
    });
  });

  // ---- New --------------------------------------------------------------------------------------

  const formPage = async (
    req: express.Request,
    res: express.Response,
    opts: { values: RequestFormValues; errors?: Record<string, string>; existingId?: string | null },
    status = 200,
  ) => {
    const merchant = merchantOf(res);
    const errors = opts.errors ?? {};
    const values = opts.values;
    // The customer chosen on their page; an id that is not one of the merchant's is dropped.
    const chosen = values.customer_id ? await customers.get(merchant.key, values.customer_id, ownScope(merchant.actor)).catch((err) => (err instanceof NotFoundError ? null : Promise.reject(err))) : null;
    const digits = currencyDigits(currencySchema.safeParse(values.currency).data ?? merchant.currency);
    await render(
      req,
      res,
      'requests/form',
      {
        title: 'New payment request',
        values: chosen ? values : { ...values, customer_id: '' },
        chosen,
        // An id that named no customer of theirs (a stale address): said once, by the customer fields.
        missingCustomer: Boolean(values.customer_id && !chosen && !errors.customer_id),
        errors,
        errorCount: Object.keys(errors).length,
        existingId: opts.existingId ?? null,
        currencies: currencyOptions(),
        amountHint: `Such as ${digits === 0 ? '1250' : digits === 3 ? '12.500' : '12.50'} — as many decimals as the currency has.`,
        maxDays: MAX_EXPIRY_DAYS,
        maxUses: MAX_USES,
        channels: rt.deliveries.channels.list().map((c) => ({ id: c.id, label: c.label, addressLabel: c.addressLabel })),
        frequencies: FREQUENCIES.map((id) => ({ id, label: FREQUENCY_LABELS[id] })),
        remindersMax: REMINDERS_MAX,
        notices: NOTICE_OPTIONS,
        h: helpers(merchant),
      },
      status,
    );
  };

  router.get('/requests/new', async (req, res) => {
    const merchant = merchantOf(res);
    const customerId = typeof req.query.customer === 'string' ? req.query.customer.slice(0, 64) : '';
    await formPage(req, res, { values: { ...newValues(merchant.currency, customerId), allow_refresh: merchant.requestAllowRefresh ? 'on' : '' } });
  });

  router.post('/requests', async (req, res) => {
    const merchant = merchantOf(res);
    const values = postedValues(req.body as Record<string, unknown>);
    const { raw, own } = requestInput(values);
    try {
      const r = await requests.create(merchant, raw, { source: 'dashboard', userKey: req.user?.user.key ?? null });
      const [who] = (await customersOf([r])).values();
      const chosen = values.channels.map((id) => rt.deliveries.channels.get(id) ?? { label: id, keeps: null });
      const and = (xs: string[]) => (xs.length > 1 ? `${xs.slice(0, -1).join(', ')} and ${xs.at(-1)}` : xs[0]);
      const by = chosen.filter((c) => !c.keeps).map((c) => c.label);
      const kept = chosen.filter((c) => c.keeps);
      // A channel that only keeps messages (no email server or SMS provider configured) sends nothing.
      let sending = by.length ? ` It is on its way by ${and(by)}; each message’s outcome shows below.` : chosen.length ? '' : ' Send them the link below.';
      if (kept.length) sending += ` ${and(kept.map((c) => c.label))}: kept in the Outbox (${[...new Set(kept.map((c) => c.keeps!.reason))].join(', ')}), so nothing went to the customer.`;
      flash(req, kept.length && !by.length ? 'info' : 'success', `Payment request for ${formatMoney(r.link.amount, r.link.currency)} created${who ? ` for ${who.name}` : ''}.${sending}`, kept[0]?.keeps!.help);
      res.redirect(303, `/app/requests/${r.id}`);
    } catch (err) {
      const overCap = overCapMessage(err);
      if (overCap) return formPage(req, res, { values, errors: { amount: overCap } }, 403);
      const found = formErrors(err);
      if (!found) throw err;
      const errors: Record<string, string> = {};
      for (const [field, message] of Object.entries(found)) errors[formField(field)] ??= message;
      // The amount was sent as null only to keep the service from writing: its message is not the merchant's.
      if (!own.amount) delete errors.amount;
      Object.assign(errors, own);
      let existingId = err instanceof AppError && err.code === 'reference_taken' ? String(err.options.extra?.existing_id ?? '') || null : null;
      // The service looks for a taken reference only once the rest is valid: look now, so it is said at once.
      const reference = values.reference.trim();
      if (Object.keys(own).length && reference && !errors.reference) {
        const [taken] = (await requests.list(merchant.key, { reference, limit: 1 }, ownScope(merchant.actor))).data;
        if (taken) {
          errors.reference = 'A payment request with this reference already exists.';
          existingId = taken.id;
        }
      }
      await formPage(req, res, { values, errors, existingId }, 422);
    }
  });

  // ---- Import from CSV (before /requests/:id) ----------------------------------------------------

  const importPage = async (req: express.Request, res: express.Response, data: { csv: string; problems?: ImportProblem[] }, status = 200) => {
    const merchant = merchantOf(res);
    const problems = data.problems ?? [];
    await render(
      req,
      res,
      'requests/import',
      {
        title: 'Import payment requests',
        csv: data.csv,
        problems: problems.slice(0, PROBLEMS_SHOWN),
        problemCount: problems.length,
        problemRows: new Set(problems.map((p) => p.row)).size,
        columns: REQUEST_IMPORT_COLUMNS,
        channels: rt.requests.installedChannels(),
        maxRows: REQUEST_IMPORT_MAX_ROWS,
        maxMb: REQUEST_IMPORT_MAX_BYTES / (1024 * 1024),
        template: IMPORT_TEMPLATE.replace(/\r\n/g, '\n'),
        recent: await rt.requestImports.recent(merchant.key),
        h: helpers(merchant),
      },
      status,
    );
  };

  router.get('/requests/import', (req, res) => importPage(req, res, { csv: '' }));

  router.get('/requests/import/template.csv', (_req, res) => {
    res.set('Content-Type', CSV_CONTENT_TYPE).attachment('payment-requests-template.csv').send(CSV_BOM + IMPORT_TEMPLATE);
  });

  router.post('/requests/import', async (req, res) => {
    const merchant = merchantOf(res);
    const body = req.body as Record<string, unknown>;
    const csv = typeof body.csv === 'string' ? body.csv : '';
    const outcome = await rt.requestImports.start(merchant, csv);
    if (!outcome.ok) return importPage(req, res, { csv, problems: outcome.problems }, 422);
    const n = outcome.import.total;
    flash(req, 'success', `All ${n.toLocaleString('en')} row${n === 1 ? '' : 's'} checked. Creating the payment request${n === 1 ? '' : 's'} and sending their messages now.`);
    res.redirect(303, `/app/requests/imports/${outcome.import.id}`);
  });

  /** What the progress block shows: counts, percentages, and whether to keep polling. */
  const progressView = (p: ImportProgress) => {
    const m = p.messages;
    const handled = m.sent + m.failed + m.cancelled;
    const pct = (n: number, of: number) => (of ? Math.min(100, Math.floor((n * 100) / of)) : 100);
    return { p, handled, rowsPct: pct(p.created + p.skipped, p.total), messagesPct: pct(handled, p.messagesTotal), url: `/app/requests/imports/${p.id}` };
  };

  router.get('/requests/imports/:id', async (req, res) => {
    const merchant = merchantOf(res);
    const p = await rt.requestImports.progress(merchant.key, String(req.params.id));
    const skipped = p.skippedProblems;
    await render(req, res, 'requests/import_show', {
      title: `Import of ${p.total.toLocaleString('en')} payment requests`,
      progress: progressView(p),
      problems: skipped.slice(0, PROBLEMS_SHOWN),
      problemCount: skipped.length,
      problemRows: skipped.length,
      h: helpers(merchant),
    });
  });

  /** The progress block alone, polled every second by htmx while anything is still moving. */
  router.get('/requests/imports/:id/progress', async (req, res) => {
    const merchant = merchantOf(res);
    const p = await rt.requestImports.progress(merchant.key, String(req.params.id));
    await render(req, res, 'requests/_import_progress', { progress: progressView(p), h: helpers(merchant) });
  });

  // ---- One request ------------------------------------------------------------------------------

  const showPage = async (req: express.Request, res: express.Response, r: PaymentRequest, opts: { problem?: string } = {}, status = 200) => {
    const merchant = merchantOf(res);
    const [[customer], trail] = await Promise.all([customersOf([r]).then((m) => [...m.values()]), rt.reports.trails(merchant, [r], { viewsPerRequest: TRAIL_VIEWS })]);
    await render(
      req,
      res,
      'requests/show',
      {
        title: titleOf(r),
        request: r,
        customer: customer ?? null,
        problem: opts.problem ?? null,
        qr: { png: `/app/requests/${r.id}/qr.png`, svg: `/app/requests/${r.id}/qr.svg` },
        metadata: Object.entries(r.metadata),
        trail: trail.get(r.id)!,
        // "on the dashboard by Ada (agent)": the trail's own words for who made it.
        createdBy: (trail.get(r.id)!.trail.find((t) => t.type === 'created')?.text ?? '').replace(/^Created /, ''),
        h: helpers(merchant),
      },
      status,
    );
  };

  router.get('/requests/:id', async (req, res) => {
    const r = await requests.get(merchantOf(res).key, String(req.params.id), ownScope(merchantOf(res).actor));
    await showPage(req, res, r);
  });

  /** The QR code of the request's own URL (`/r/<token>`), as the link page shows one. */
  for (const format of ['png', 'svg'] as const) {
    router.get(`/requests/:id/qr.${format}`, async (req, res) => {
      const merchant = merchantOf(res);
      const r = await requests.get(merchant.key, String(req.params.id), ownScope(merchant.actor));
      await sendQr(req, res, format, requests.urlOf(r), `${merchant.handle}-${r.reference ?? r.id}-qr`);
    });
  }

  router.get('/requests/:id/cancel', async (req, res) => {
    const merchant = merchantOf(res);
    const r = await requests.get(merchant.key, String(req.params.id), ownScope(merchant.actor));
    await render(req, res, 'requests/cancel', { title: `Cancel ${titleOf(r)}`, request: r, h: helpers(merchant) });
  });

  router.post('/requests/:id/cancel', async (req, res) => {
    const merchant = merchantOf(res);
    const r = await requests.get(merchant.key, String(req.params.id), ownScope(merchant.actor));
    try {
      await requests.cancel(merchant, r.id);
    } catch (err) {
      // Paid in the meantime: the page as it is now, saying why nothing changed.
      if (!(err instanceof AppError && err.code === 'request_paid')) throw err;
      return showPage(req, res, await requests.get(merchant.key, r.id), { problem: 'This request has been paid, so it cannot be cancelled. To give the money back, refund the payment.' }, 409);
    }
    flash(req, 'success', `Payment request “${titleOf(r)}” cancelled. Its link no longer opens.`);
    res.redirect(303, `/app/requests/${r.id}`);
  });

  return router;
}
