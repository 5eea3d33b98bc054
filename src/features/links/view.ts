/** What the dashboard shows of a link (badges, prices, limits) and how the list reads its query string. */
import { formatMoney } from '../../core/money.ts';
import { LINK_SOURCES, REQUEST_STATUSES, SMART_STATUSES, type DashboardSearch, type Link, type LinkSource } from './service.ts';
import { formatDay, startOfDay } from '../../core/time.ts';
import { one, pageParam, readDayRange, type Badge } from '../../web/view.ts';

export function statusBadge(link: Pick<Link, 'active' | 'inactiveReason'>): Badge {
  if (link.active) return { label: 'Active', tone: 'green' };
  // Sold out is good news for the merchant: green, not an alarm.
  if (link.inactiveReason === 'limit_reached') return { label: 'Limit reached', tone: 'green' };
  if (link.inactiveReason === 'expired') return { label: 'Expired', tone: 'grey' };
  return { label: 'Inactive', tone: 'grey' };
}

/** The price a customer pays: the link's amount, or its product's price; "€5.00–€50.00" when the customer chooses; an items link's products. */
export function priceText(link: Pick<Link, 'type' | 'amount' | 'currency' | 'productPrice' | 'customAmount' | 'items'>): string {
  if (link.customAmount) return `${formatMoney(link.customAmount.min, link.currency)}${link.customAmount.max === null ? ' or more' : `–${formatMoney(link.customAmount.max, link.currency)}`}`;
  if (link.type === 'items') return `${link.items.length} product${link.items.length === 1 ? '' : 's'}`;
  const minor = link.type === 'amount' ? link.amount : link.productPrice;
  return minor === null ? '—' : formatMoney(minor, link.currency);
}

/** "3 / 50", "0 / 1" or "7 / ∞". */
export function paymentsText(link: Pick<Link, 'paidCount' | 'paymentLimit'>): string {
  return `${link.paidCount} / ${link.paymentLimit === null ? '∞' : link.paymentLimit}`;
}

export const SORTS = ['created', 'name', 'price', 'payments'] as const;
export const STATUSES = SMART_STATUSES;
export const PER_PAGE = 25;

/** The list's tabs: smart links (the default; one-off requests do not crowd it), requests, both. */
export const KINDS = [
  { value: 'smart', label: 'Smart links' },
  { value: 'request', label: 'Payment requests' },
  { value: 'all', label: 'All' },
] as const;
export type KindTab = (typeof KINDS)[number]['value'];

const SMART_LABELS: Record<(typeof SMART_STATUSES)[number], string> = { active: 'Active', inactive: 'Inactive', limit_reached: 'Limit reached' };
const REQUEST_LABELS: Record<(typeof REQUEST_STATUSES)[number], string> = { pending: 'Pending', paid: 'Paid', expired: 'Expired', cancelled: 'Cancelled' };

/** The status filter's choices on a tab: a smart link's, a request's, or both in two groups. */
export function statusGroups(kind: KindTab): { label: string | null; options: { value: string; label: string }[] }[] {
  const smart = SMART_STATUSES.map((value) => ({ value, label: SMART_LABELS[value] }));
  const request = REQUEST_STATUSES.map((value) => ({ value, label: REQUEST_LABELS[value] }));
  if (kind === 'smart') return [{ label: null, options: smart }];
  if (kind === 'request') return [{ label: null, options: request }];
  return [
    { label: 'Smart links', options: smart },
    { label: 'Payment requests', options: request },
  ];
}

const SOURCE_LABELS: Record<LinkSource, string> = { dashboard: 'Dashboard', api: 'API', text_to_pay: 'Text-to-Pay', import: 'CSV import' };

/**
 * The source filter's choices on a tab: the dashboard, the API (any key, then one choice per key that
 * made a live link), and for requests Text-to-Pay and CSV imports.
 */
export function sourceOptions(kind: KindTab, keys: { id: string; name: string }[]): { value: string; label: string }[] {
  return [
    { value: 'dashboard', label: 'Dashboard' },
    { value: 'api', label: 'API (any key)' },
    ...keys.map((k) => ({ value: k.id, label: `API key “${k.name}”` })),
    ...(kind === 'smart' ? [] : [{ value: 'text_to_pay', label: 'Text-to-Pay' }, { value: 'import', label: 'CSV import' }]),
  ];
}

/** A row's source: "Dashboard", "API · Shop backend" (the key's name), "Text-to-Pay", "CSV import". */
export function sourceText(link: Pick<Link, 'source' | 'apiKeyKey'>, keys: Map<number, { name: string }>): string {
  const key = link.source === 'api' && link.apiKeyKey !== null ? keys.get(link.apiKeyKey) : undefined;
  return key ? `API · ${key.name}` : SOURCE_LABELS[link.source] ?? link.source;
}

/** The list's query string as typed (strings, for the filter form and page links). */
export interface ListQuery {
  kind: KindTab;
  q: string;
  /** `dashboard`, `api`, `text_to_pay`, `import`, or an API key's id (`key_…`). */
  source: string;
  status: string;
  tag: string[];
  from: string;
  to: string;
  sort: (typeof SORTS)[number];
  dir: 'asc' | 'desc';
  page: number;
}

const API_KEY_ID = /^key_[0-9A-Za-z]{1,40}$/;

/**
 * Reads the list's query string. A filter it cannot understand (a kind, source, status or date that a
 * hand-edited address made up) is left out of the list and named in `problems`, by its field, so the
 * page can say so; sorting and paging fall back to their defaults silently.
 */
export function readListQuery(query: Record<string, unknown>, locale: string): { query: ListQuery; problems: Record<string, string> } {
  const problems: Record<string, string> = {};
  const sort = one(query.sort) as ListQuery['sort'];
  const kindRaw = one(query.kind);
  let kind: KindTab = 'smart';
  if (KINDS.some((k) => k.value === kindRaw)) kind = kindRaw as KindTab;
  else if (kindRaw) problems.kind = 'Show smart links, payment requests or all: kind must be smart, request or all.';
  const status = one(query.status);
  const allowed = statusGroups(kind).flatMap((g) => g.options.map((o) => o.value));
  let statusValue = '';
  if (allowed.includes(status)) statusValue = status;
  else if (status) problems.status = `There is no status “${status.slice(0, 40)}” for ${kind === 'smart' ? 'smart links' : kind === 'request' ? 'payment requests' : 'links'}: choose one from the list.`;
  const source = one(query.source);
  let sourceValue = '';
  if ((LINK_SOURCES as readonly string[]).includes(source) || API_KEY_ID.test(source)) sourceValue = source;
  else if (source) problems.source = 'Choose a source from the list: dashboard, API (or one of your API keys), Text-to-Pay or CSV import.';
  const dates = readDayRange(query, locale, { from: 'Created from', to: 'Created to' });
  Object.assign(problems, dates.problems);
  return {
    query: {
      kind,
      q: one(query.q).trim().slice(0, 120),
      source: sourceValue,
      status: statusValue,
      tag: (Array.isArray(query.tag) ? query.tag : query.tag === undefined ? [] : [query.tag]).filter((t): t is string => typeof t === 'string' && t !== '').slice(0, 20),
      from: dates.from,
      to: dates.to,
      sort: SORTS.includes(sort) ? sort : 'created',
      dir: one(query.dir) === 'asc' ? 'asc' : one(query.dir) === 'desc' ? 'desc' : sort === 'name' ? 'asc' : 'desc',
      page: pageParam(query.page),
    },
    problems,
  };
}

/** An applied filter in words, and the list's address without it. */
export interface AppliedFilter {
  label: string;
  href: string;
}

/**
 * The filters on besides the search (its box always shows it), in words with their dates in the
 * merchant's format: the phone's folded filter panel counts them, and each can be taken off alone.
 */
export function appliedFilters(q: ListQuery, opts: { sources: { value: string; label: string }[]; locale: string }): AppliedFilter[] {
  const out: AppliedFilter[] = [];
  const without = (change: Partial<ListQuery>) => listHref(q, { ...change, page: 1 });
  if (q.source) out.push({ label: `Source: ${opts.sources.find((o) => o.value === q.source)?.label ?? q.source}`, href: without({ source: '' }) });
  if (q.status) {
    const label = statusGroups(q.kind).flatMap((g) => g.options).find((o) => o.value === q.status)?.label ?? q.status;
    out.push({ label: `Status: ${label}`, href: without({ status: '' }) });
  }
  for (const t of q.tag) out.push({ label: `Tag: ${t}`, href: without({ tag: q.tag.filter((x) => x !== t) }) });
  if (q.from || q.to) {
    const from = q.from && formatDay(q.from, opts.locale);
    const to = q.to && formatDay(q.to, opts.locale);
    out.push({ label: from && to ? `Created ${from} – ${to}` : from ? `Created from ${from}` : `Created up to ${to}`, href: without({ from: '', to: '' }) });
  }
  return out;
}

export function isFiltered(q: ListQuery): boolean {
  return Boolean(q.q || q.source || q.status || q.tag.length || q.from || q.to);
}

/** The search for a query; `apiKeyKey` is the internal id of the key its source names (the route resolves it). */
export function toSearch(q: ListQuery, timeZone: string, apiKeyKey?: number): DashboardSearch {
  return {
    q: q.q || undefined,
    kind: q.kind === 'all' ? undefined : q.kind,
    status: (q.status || undefined) as DashboardSearch['status'],
    ...(apiKeyKey !== undefined ? { apiKeyKey } : (LINK_SOURCES as readonly string[]).includes(q.source) ? { source: q.source as LinkSource } : {}),
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
  if (v.kind !== 'smart') p.set('kind', v.kind);
  if (v.q) p.set('q', v.q);
  if (v.source) p.set('source', v.source);
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
