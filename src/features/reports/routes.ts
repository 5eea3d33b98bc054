import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import type { Renderer } from '../../core/http.ts';
import { streamCsv, type CsvCell } from '../../core/csv.ts';
import { formatMoney, toDecimalString } from '../../core/money.ts';
import { dateTimeIn, dayPattern, formatDay, formatDuration, stampIn } from '../../core/time.ts';
import { formErrors, one } from '../../web/view.ts';
import type { Merchant } from '../merchants/index.ts';
import { statusBadge, titleOf, type PaymentRequest } from '../requests/index.ts';
import { AMOUNT_KEYS as AMOUNTS, readRange, thisMonth, type ReportRange, type ReportRow, type Summary } from './service.ts';
import type { TrailEntry } from './trail.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'clock' | 'reports'>;

/** Rows shown per page of the dashboard's table (the CSV has them all). */
export const ROWS_PER_PAGE = 50;

/** The columns of the requests CSV: one line per request, its trail in the last cell (entries separated by " | "). */
export const REQUEST_COLUMNS = [
  'request_id', 'created_at', 'created_local', 'reference', 'description', 'status',
  'customer_name', 'customer_email', 'customer_phone', 'currency',
  'requested', 'collected', 'refunded', 'net', 'outstanding', 'expired', 'cancelled',
  'uses', 'paid_uses', 'source', 'created_by', 'channels', 'views', 'attempts',
  'paid_at', 'time_to_pay_seconds', 'payment_ids', 'providers', 'provider_refs', 'trail',
];
export const SUMMARY_COLUMNS = ['section', 'item', 'currency', 'value'];


/** Reports → Reconciliation (mounted under /app): the page and its two CSV exports. */
export function reportsRoutes(rt: Deps, render: Renderer): express.Router {
  const router = express.Router();
  const { reports } = rt;
  const merchantOf = (res: express.Response): Merchant => res.locals.merchant;

  /** The range asked for, or the messages by field (bad dates answer 422 with the form). */
  const rangeOf = (req: express.Request, merchant: Merchant): { range: ReportRange } | { errors: Record<string, string> } => {
    try {
      return { range: readRange({ from: one(req.query.from), to: one(req.query.to) }, merchant.timezone, rt.clock.now(), merchant.locale) };
    } catch (err) {
      const errors = formErrors(err);
      if (!errors) throw err;
      return { errors };
    }
  };

  const query = (range: Pick<ReportRange, 'from' | 'to'>, extra: Record<string, string> = {}) => new URLSearchParams({ from: range.from, to: range.to, ...extra }).toString();

  const helpers = (merchant: Merchant) => ({
    money: (minor: number, currency: string) => formatMoney(minor, currency),
    dateTime: (d: Date) => dateTimeIn(d, merchant.timezone, merchant.locale),
    duration: formatDuration,
    percent: (rate: number) => `${(Math.round(rate * 1000) / 10).toLocaleString('en')}%`,
    badge: statusBadge,
    title: (r: PaymentRequest) => titleOf(r),
    channel: reports.channelLabel,
    timeZone: merchant.timezone,
    day: (iso: string) => formatDay(iso, merchant.locale),
    datePattern: dayPattern(merchant.locale),
  });

  const page = async (req: express.Request, res: express.Response, merchant: Merchant) => {
    const asked = rangeOf(req, merchant);
    const typed = { from: one(req.query.from), to: one(req.query.to) };
    if ('errors' in asked) {
      const month = thisMonth(rt.clock.now(), merchant.timezone);
      return render(req, res, 'reports/reconciliation', { title: 'Reconciliation', values: { from: typed.from || month.from, to: typed.to || month.to }, errors: asked.errors, summary: null, h: helpers(merchant) }, 422);
    }
    const { range } = asked;
    const after = /^req_[0-9A-Za-z]{1,40}$/.test(one(req.query.after)) ? one(req.query.after) : null;
    const [summary, rows] = await Promise.all([reports.summary(merchant, range), reports.rowsPage(merchant, range, { after, limit: ROWS_PER_PAGE })]);
    const last = rows.data[rows.data.length - 1];
    await render(req, res, 'reports/reconciliation', {
      title: 'Reconciliation',
      values: { from: range.from, to: range.to },
      errors: {},
      range,
      summary,
      rows: rows.data,
      after,
      firstHref: `/app/reports/reconciliation?${query(range)}`,
      nextHref: rows.has_more && last ? `/app/reports/reconciliation?${query(range, { after: last.request.id })}#requests` : null,
      summaryCsv: `/app/reports/reconciliation/summary.csv?${query(range)}`,
      requestsCsv: `/app/reports/reconciliation/requests.csv?${query(range)}`,
      h: helpers(merchant),
    });
  };

  router.get('/reports', (_req, res) => res.redirect(302, '/app/reports/reconciliation'));
  router.get('/reports/reconciliation', (req, res) => page(req, res, merchantOf(res)));

  router.get('/reports/reconciliation/summary.csv', async (req, res) => {
    const merchant = merchantOf(res);
    const asked = rangeOf(req, merchant);
    if ('errors' in asked) return page(req, res, merchant);
    const summary = await reports.summary(merchant, asked.range);
    await streamCsv(res, {
      filename: `reconciliation-summary-${asked.range.from}-to-${asked.range.to}.csv`,
      header: SUMMARY_COLUMNS,
      source: (async function* () {
        yield summaryLines(summary);
      })(),
      row: (line: CsvCell[]) => line,
    });
  });

  router.get('/reports/reconciliation/requests.csv', async (req, res) => {
    const merchant = merchantOf(res);
    const asked = rangeOf(req, merchant);
    if ('errors' in asked) return page(req, res, merchant);
    const tz = merchant.timezone;
    await streamCsv(res, {
      filename: `reconciliation-requests-${asked.range.from}-to-${asked.range.to}.csv`,
      header: REQUEST_COLUMNS,
      source: reports.eachRow(merchant, asked.range),
      row: ({ row, trail }: { row: ReportRow; trail: TrailEntry[] }) => requestLine(row, trail, tz),
    });
  });

  return router;
}

/** The summary as `section, item, currency, value` lines: amounts as decimals in their currency, rates from 0 to 1. */
function summaryLines(s: Summary): CsvCell[][] {
  const lines: CsvCell[][] = [
    ['range', 'from', '', s.range.from],
    ['range', 'to', '', s.range.to],
    ['range', 'time_zone', '', s.range.timeZone],
    ['requests', 'initiated', '', s.initiated],
    ['requests', 'completed', '', s.completed],
    ...(['pending', 'paid', 'expired', 'cancelled'] as const).map((k): CsvCell[] => ['requests', k, '', s.byStatus[k]]),
  ];
  for (const c of s.currencies) for (const k of AMOUNTS) lines.push(['amounts', k, c.currency, toDecimalString(c[k], c.currency)]);
  for (const [section, buckets] of [['conversion_by_channel', s.byChannel], ['conversion_by_source', s.bySource]] as const) {
    for (const b of buckets) {
      lines.push([section, `${b.label} initiated`, '', b.initiated], [section, `${b.label} completed`, '', b.completed], [section, `${b.label} conversion_rate`, '', (Math.round(b.rate * 10_000) / 10_000).toFixed(4)]);
    }
  }
  lines.push(['time_to_pay', 'paid_requests', '', s.timeToPay.paid]);
  lines.push(['time_to_pay', 'median_seconds', '', s.timeToPay.medianMs === null ? '' : Math.round(s.timeToPay.medianMs / 1000)]);
  lines.push(['time_to_pay', 'median', '', s.timeToPay.medianMs === null ? '' : formatDuration(s.timeToPay.medianMs)]);
  return lines;
}

function requestLine(row: ReportRow, trail: TrailEntry[], timeZone: string): CsvCell[] {
  const r = row.request;
  const c = row.facts.customer;
  const money = (minor: number) => toDecimalString(minor, row.currency);
  return [
    r.id,
    r.createdAt.toISOString(),
    stampIn(r.createdAt, timeZone),
    r.reference,
    r.link.description,
    row.status,
    c?.name,
    c?.email,
    c?.phone,
    row.currency,
    ...AMOUNTS.map((k) => money(row[k])),
    r.link.uses,
    r.link.paidCount,
    row.sourceLabel,
    row.createdBy,
    row.channels.join(' '),
    row.views,
    row.attempts,
    row.paidAt?.toISOString() ?? '',
    row.timeToPayMs === null ? '' : Math.round(row.timeToPayMs / 1000),
    row.captured.map((p) => p.id).join(' '),
    [...new Set(row.captured.map((p) => p.provider))].join(' '),
    row.captured.flatMap((p) => (p.providerRef ? [p.providerRef] : [])).join(' '),
    trail.map((t) => `${stampIn(t.at, timeZone)} ${t.text}`).join(' | '),
  ];
}
