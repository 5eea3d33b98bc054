/** What the dashboard shows of a payment (its status badge) and how the Transactions page reads its query string. */
import type { PaymentStatus } from '../checkout/index.ts';
import type { PaymentFilters, PaymentView } from '../checkout/index.ts';
import type { Collect } from '../links/index.ts';
import { formatMoney } from '../../core/money.ts';
import { startOfDay } from '../../core/time.ts';
import { one, pageParam, paymentStatusBadge, readDayRange } from '../../web/view.ts';

/** The status filter's choices, in the order a merchant looks for them. */
export const STATUS_CHOICES = (['paid', 'partially_refunded', 'refunded', 'failed', 'voided', 'pending', 'authorized'] as const).map((value) => ({ value, label: paymentStatusBadge(value).label }));

export const PER_PAGE = 25;

/** The page's query string as typed (strings, for the filter form and page links). */
export interface PaymentQuery {
  status: PaymentStatus | '';
  /** A link's public id. */
  link: string;
  from: string;
  to: string;
  page: number;
}

const isStatus = (v: string): v is PaymentStatus => STATUS_CHOICES.some((c) => c.value === v);

/**
 * Reads the query string. A status or link it does not know is dropped (the link select offers the
 * merchant's own); a date that names no day — ISO or the merchant's format — or a "to" before "from"
 * is left out too and named in `problems` by its field, as on the links list.
 */
export function readPaymentQuery(query: Record<string, unknown>, locale: string): { query: PaymentQuery; problems: Partial<Record<'from' | 'to', string>> } {
  const status = one(query.status);
  const dates = readDayRange(query, locale, { from: 'From', to: 'To' });
  return {
    query: {
      status: isStatus(status) ? status : '',
      link: /^[\w-]{1,64}$/.test(one(query.link)) ? one(query.link) : '',
      from: dates.from,
      to: dates.to,
      page: pageParam(query.page),
    },
    problems: dates.problems,
  };
}

export function isFiltered(q: PaymentQuery): boolean {
  return Boolean(q.status || q.link || q.from || q.to);
}

/** The filters in UTC: "from" is midnight at the start of that day in the merchant's zone, "to" includes its whole day. */
export function toFilters(q: PaymentQuery, timeZone: string, linkKey: number | undefined): PaymentFilters {
  return {
    linkKey,
    status: q.status || undefined,
    createdFrom: q.from ? startOfDay(q.from, timeZone) : null,
    createdBefore: q.to ? startOfDay(q.to, timeZone, 1) : null,
  };
}

/** `base?…` for this query with some parts changed; defaults are left out of the URL. */
function href(base: string, q: PaymentQuery, change: Partial<PaymentQuery>): string {
  const v = { ...q, ...change };
  const p = new URLSearchParams();
  if (v.status) p.set('status', v.status);
  if (v.link) p.set('link', v.link);
  if (v.from) p.set('from', v.from);
  if (v.to) p.set('to', v.to);
  if (v.page > 1) p.set('page', String(v.page));
  const s = p.toString();
  return s ? `${base}?${s}` : base;
}

export const listHref = (q: PaymentQuery, change: Partial<PaymentQuery> = {}) => href('/app/payments', q, change);

/** The CSV export of what the page shows: the same filters, every page. */
export const csvHref = (q: PaymentQuery) => href('/app/payments.csv', q, { page: 1 });

/**
 * Where a payment came from, as its page tells it: the link as the checkout session remembered it
 * (name, address and amount when the customer paid), and what became of that link since.
 */
export interface Attribution {
  /** The name the customer saw. */
  name: string;
  /** The link's address as it was (null for a link without a path). */
  url: string | null;
  /** The link's amount then, formatted (null for a product link, whose price is the product's). */
  amount: string | null;
  /** The link today, when it still exists: its page is /app/links/<id>. */
  current: { id: string; name: string } | null;
  /** The current name when the link has been renamed since, else null. */
  renamedTo: string | null;
  deleted: boolean;
}

/** `merchantUrl` is the merchant's public address (`${baseUrl}/${handle}`). */
export function attributionOf(p: PaymentView, merchantUrl: string): Attribution | null {
  const source = p.source;
  const name = source?.name ?? p.linkName;
  if (name === null) return null; // paid on the merchant's own payment page, not through a link
  const exists = p.linkId !== null && !p.linkDeleted;
  return {
    name,
    url: source?.path ? `${merchantUrl}/${source.path}` : null,
    amount: source?.amount != null ? formatMoney(source.amount, source.currency) : null,
    current: exists ? { id: p.linkId!, name: p.linkName ?? name } : null,
    renamedTo: exists && p.linkName !== null && p.linkName !== name ? p.linkName : null,
    deleted: p.linkId !== null && p.linkDeleted,
  };
}

/**
 * What a payment's checkout collected, as [label, value] rows for its page: address, instructions,
 * terms consent, then custom fields by the labels the link gives them now (the key when it no longer
 * has the field).
 */
export function collectedRows(p: Pick<PaymentView, 'fields' | 'address' | 'instructions' | 'termsAcceptedAt'>, link: { collect: Collect | null } | null, dateTime: (d: Date) => string): [string, string][] {
  const rows: [string, string][] = [];
  if (p.address) rows.push(['Address', p.address]);
  if (p.instructions) rows.push(['Special instructions', p.instructions]);
  if (p.termsAcceptedAt) rows.push(['Terms', `Accepted ${dateTime(p.termsAcceptedAt)}`]);
  const labels = new Map((link?.collect?.custom_fields ?? []).map((f) => [f.key, f.label]));
  for (const [key, value] of Object.entries(p.fields ?? {})) rows.push([labels.get(key) ?? key, value === null ? '—' : value === true ? 'Yes' : value === false ? 'No' : String(value)]);
  return rows;
}
