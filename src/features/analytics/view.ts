/**
 * What the link page shows of its analytics: the metrics, the payment-limit card, the
 * remaining-payments badge, the rows of the Activity tabs, and how the tabs read their query string
 * (`?tab=views&page=3`).
 */
import { formatMoney } from '../../core/money.ts';
import { dateTimeIn, timeAgo } from '../../core/time.ts';
import type { PaymentView } from '../checkout/index.ts';
import type { Link } from '../links/index.ts';
import { one, pageParam, pageWindow, paymentStatusBadge, type Badge, type PaymentBadge } from '../../web/view.ts';
import type { ActivityItem, LinkView } from './service.ts';
import { agentLabel } from './visitor.ts';

export const TABS = [
  { key: 'all', label: 'All' },
  { key: 'views', label: 'Views' },
  { key: 'payments', label: 'Payments' },
  { key: 'reminders', label: 'Reminders' },
] as const;
export type Tab = (typeof TABS)[number]['key'];
export const ACTIVITY_PER_PAGE = 10;

/** The id of the activity panel: tabs and pages swap it, and its htmx requests name it in HX-Target. */
export const ACTIVITY_ID = 'link-activity';
/** The id of the hidden element that re-reads the page when the live stream says something changed. */
export const LIVE_TRIGGER_ID = 'link-live';

export interface ActivityQuery {
  tab: Tab;
  page: number;
}

/** Reads `?tab=…&page=…`: an unknown tab is All, a page that is not a whole number from 1 is page 1. */
export function readActivityQuery(query: Record<string, unknown>): ActivityQuery {
  const tab = one(query.tab);
  return { tab: TABS.some((t) => t.key === tab) ? (tab as Tab) : 'all', page: pageParam(query.page) };
}

/** `/app/links/:id?tab=…&page=…`, defaults left out so the plain link page is `/app/links/:id`. */
export function activityHref(linkId: string, q: ActivityQuery): string {
  const p = new URLSearchParams();
  if (q.tab !== 'all') p.set('tab', q.tab);
  if (q.page > 1) p.set('page', String(q.page));
  const s = p.toString();
  return s ? `/app/links/${linkId}?${s}` : `/app/links/${linkId}`;
}

/** What the activity panel shows: the tab's page of rows, the tabs, and the numbered page links. */
export function activityPanel(linkId: string, tab: Tab, result: { page: number; pages: number; total: number; rows: ActivityRow[] }) {
  return {
    ...result,
    tab,
    perPage: ACTIVITY_PER_PAGE,
    caption: tab === 'all' ? 'Views and payments' : TABS.find((t) => t.key === tab)!.label,
    tabs: TABS.map((t) => ({ ...t, href: activityHref(linkId, { tab: t.key, page: 1 }), selected: t.key === tab })),
    href: (page: number) => activityHref(linkId, { tab, page }),
    window: pageWindow(result.page, result.pages),
  };
}

/**
 * Green while 4 or more payments are left, amber for the last 1–3, green again once none is (sold
 * out is good news, not an alarm); null when unlimited.
 */
export function remainingBadge(left: number | null): Badge | null {
  if (left === null) return null;
  if (left === 0) return { label: 'Limit reached', tone: 'green' };
  return { label: `${left} left`, tone: left <= 3 ? 'amber' : 'green' };
}

export interface LinkMetrics {
  views: string;
  payments: string;
  revenue: string;
  /** Payments ÷ views × 100, one decimal ("2.5%"). */
  conversion: string;
  /** Revenue ÷ payments in the link's currency, or "—" before the first payment. */
  average: string;
  remaining: Badge | null;
}

const count = (n: number) => n.toLocaleString('en');

/**
 * The link page's numbers. The links feature owns what is left of a link's limit and how conversion
 * is rounded: it passes both in (`remaining`, `conversionRate` in percent).
 */
export function linkMetrics(link: Pick<Link, 'views' | 'payments' | 'revenue' | 'currency'>, counts: { remaining: number | null; conversionRate: number }): LinkMetrics {
  return {
    views: count(link.views),
    payments: count(link.payments),
    revenue: formatMoney(link.revenue, link.currency),
    conversion: `${counts.conversionRate.toFixed(1)}%`,
    average: link.payments > 0 ? formatMoney(Math.round(link.revenue / link.payments), link.currency) : '—',
    remaining: remainingBadge(counts.remaining),
  };
}

export interface LimitCard {
  type: 'Unlimited' | 'One-time' | 'Multiple';
  /** The limit, null when there is none. */
  total: number | null;
  used: number;
  remaining: number | null;
  /** Whole percent of the limit used (0–100), null when unlimited. */
  percentUsed: number | null;
}

/** The payment-limit card; `remaining` is the links feature's count of payments left (null when unlimited). */
export function limitCard(link: Pick<Link, 'paidCount' | 'paymentLimit'>, remaining: number | null): LimitCard {
  const total = link.paymentLimit;
  const used = Math.min(link.paidCount, total ?? link.paidCount);
  return {
    type: total === null ? 'Unlimited' : total === 1 ? 'One-time' : 'Multiple',
    total,
    used,
    remaining,
    percentUsed: total === null ? null : Math.min(100, Math.floor((used / total) * 100)),
  };
}

/** A moment as the activity shows it: "2 hours ago", with the exact time in the merchant's zone. */
export interface Moment {
  iso: string;
  relative: string;
  absolute: string;
}

export interface ViewRow {
  kind: 'view';
  id: string;
  at: Moment;
  agent: string;
  device: string | null;
  ip: string;
  /** Where the visitor came from without the scheme ("google.com/search"), or "Direct". */
  referer: string;
}

export interface PaymentRow {
  kind: 'payment';
  id: string;
  at: Moment;
  href: string;
  customer: { name: string | null; email: string | null } | null;
  amount: string;
  status: PaymentBadge;
}

export type ActivityRow = ViewRow | PaymentRow;

/** Turns views, payments and merged activity into rows, with times relative to `now` in `timeZone`. */
export function activityRows(now: Date, timeZone: string) {
  const moment = (d: Date): Moment => ({ iso: d.toISOString(), relative: timeAgo(d, now), absolute: dateTimeIn(d, timeZone) });
  const view = (v: LinkView): ViewRow => ({
    kind: 'view',
    id: v.id,
    at: moment(v.viewedAt),
    agent: agentLabel(v),
    device: v.device,
    ip: v.ip ?? 'Unknown',
    referer: v.referer ? v.referer.replace(/^https?:\/\//, '') : 'Direct',
  });
  const payment = (p: PaymentView): PaymentRow => {
    const name = p.customer?.name ?? null;
    const email = p.customer?.email ?? null;
    return {
      kind: 'payment',
      id: p.id,
      at: moment(p.createdAt),
      href: `/app/payments/${p.id}`,
      customer: name || email ? { name, email } : null,
      amount: formatMoney(p.amount, p.currency),
      status: paymentStatusBadge(p.status),
    };
  };
  return {
    view,
    payment,
    item: (a: ActivityItem): ActivityRow => (a.kind === 'view' ? view(a.view) : payment(a.payment)),
  };
}
