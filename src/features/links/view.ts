/** What the dashboard shows of a link (badges, prices, limits) and how the list reads its query string. */
import { formatMoney } from '../../core/money.ts';
import type { DashboardSearch, Link } from './service.ts';
import { startOfDay } from '../../core/time.ts';
import { one, pageParam, type Badge } from '../../web/view.ts';

export function statusBadge(link: Pick<Link, 'active' | 'inactiveReason'>): Badge {
  if (link.active) return { label: 'Active', tone: 'green' };
  // Sold out is good news for the merchant: green, not an alarm.
  if (link.inactiveReason === 'limit_reached') return { label: 'Limit reached', tone: 'green' };
  if (link.inactiveReason === 'expired') return { label: 'Expired', tone: 'grey' };
  return { label: 'Inactive', tone: 'grey' };
}

/** The price a customer pays: the link's amount, or its product's price. */
export function priceText(link: Pick<Link, 'type' | 'amount' | 'currency' | 'productPrice'>): string {
  const minor = link.type === 'amount' ? link.amount : link.productPrice;
  return minor === null ? '—' : formatMoney(minor, link.currency);
}

/** "3 / 50", "0 / 1" or "7 / ∞". */
export function paymentsText(link: Pick<Link, 'paidCount' | 'paymentLimit'>): string {
  return `${link.paidCount} / ${link.paymentLimit === null ? '∞' : link.paymentLimit}`;
}

export const SORTS = ['created', 'name', 'price', 'payments'] as const;
export const STATUSES = ['active', 'inactive', 'limit_reached'] as const;
export const PER_PAGE = 25;

/** The list's query string as typed (strings, for the filter form and page links). */
export interface ListQuery {
  q: string;
  status: string;
  tag: string[];
  from: string;
  to: string;
  sort: (typeof SORTS)[number];
  dir: 'asc' | 'desc';
  page: number;
}

/** Reads the list's query string; anything unknown falls back to the default rather than failing. */
export function readListQuery(query: Record<string, unknown>): ListQuery {
  const sort = one(query.sort) as ListQuery['sort'];
  const status = one(query.status);
  const date = (v: string) => (/^\d{4}-\d{2}-\d{2}$/.test(v) ? v : '');
  return {
    q: one(query.q).trim().slice(0, 120),
    status: (STATUSES as readonly string[]).includes(status) ? status : '',
    tag: (Array.isArray(query.tag) ? query.tag : query.tag === undefined ? [] : [query.tag]).filter((t): t is string => typeof t === 'string' && t !== '').slice(0, 20),
    from: date(one(query.from)),
    to: date(one(query.to)),
    sort: SORTS.includes(sort) ? sort : 'created',
    dir: one(query.dir) === 'asc' ? 'asc' : one(query.dir) === 'desc' ? 'desc' : sort === 'name' ? 'asc' : 'desc',
    page: pageParam(query.page),
  };
}

export function isFiltered(q: ListQuery): boolean {
  return Boolean(q.q || q.status || q.tag.length || q.from || q.to);
}

export function toSearch(q: ListQuery, timeZone: string): DashboardSearch {
  return {
    q: q.q || undefined,
    status: (q.status || undefined) as DashboardSearch['status'],
    tags: q.tag,
    createdFrom: q.from ? startOfDay(q.from, timeZone) : null,
    // The whole "to" day counts: up to the last millisecond before the next midnight.
    createdTo: q.to ? new Date(startOfDay(q.to, timeZone, 1)!.getTime() - 1) : null,
    sort: q.sort,
    dir: q.dir,
    page: q.page,
    perPage: PER_PAGE,
  };
}

/** `/app/links?…` for this query with some parts changed; defaults are left out of the URL. */
export function listHref(q: ListQuery, change: Partial<ListQuery> = {}): string {
  const v = { ...q, ...change };
  const p = new URLSearchParams();
  if (v.q) p.set('q', v.q);
  if (v.status) p.set('status', v.status);
  for (const t of v.tag) p.append('tag', t);
  if (v.from) p.set('from', v.from);
  if (v.to) p.set('to', v.to);
  if (v.sort !== 'created' || v.dir !== 'desc') {
    p.set('sort', v.sort);
    p.set('dir', v.dir);
  }
  if (v.page > 1) p.set('page', String(v.page));
  // %20 rather than "+" for spaces: the address is also a "back" target, which allows no "+".
  const s = p.toString().replace(/\+/g, '%20');
  return s ? `/app/links?${s}` : '/app/links';
}
