/**
 * Reading link analytics: a link's views and merged activity (numbered pages for the dashboard,
 * cursors for the API), its last 30 days from the hourly rollups, every view for CSV export, and the
 * retention sweep. Nothing here counts or groups raw views: totals come from the link's counters,
 * charts from rollups, and a late page walks an index only (deferred join).
 */
import type { Knex } from 'knex';
import { toDate, type Db } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import type { Logger } from '../../core/log.ts';
import { ValidationError } from '../../core/errors.ts';
import type { IdSealer } from '../../core/sealed-ids.ts';
import { addDays, dayKeyIn, startOfDay } from '../../core/time.ts';
import type { Page } from '../../core/pagination.ts';
import type { PaymentQueries, PaymentView } from '../checkout/index.ts';
import type { Link, LinkState } from '../links/index.ts';
import type { MerchantService } from '../merchants/index.ts';
import { HOUR_MS } from './rollups.ts';

export interface LinkView {
  key: number;
  /** `vw_…` (the sealed key). */
  id: string;
  viewedAt: Date;
  ip: string | null;
  browser: string | null;
  os: string | null;
  device: string | null;
  referer: string | null;
}

/** The API representation of a view (API.md "Link": a view). */
export function viewJson(v: LinkView) {
  return {
    id: v.id,
    object: 'view',
    viewed_at: v.viewedAt.toISOString(),
    ip: v.ip,
    browser: v.browser,
    os: v.os,
    device: v.device,
    referer: v.referer,
  };
}

export type ActivityItem = { kind: 'view'; at: Date; view: LinkView } | { kind: 'payment'; at: Date; payment: PaymentView };

export interface NumberedPage<T> {
  items: T[];
  page: number;
  pages: number;
  total: number;
}

export interface DayStats {
  /** YYYY-MM-DD in the merchant's time zone. */
  date: string;
  views: number;
  payments: number;
  revenue: number;
}

type StatsLink = Pick<Link, 'key' | 'merchantKey' | 'views' | 'viewsPruned'>;

const VIEW_COLUMNS = ['v.id', 'v.viewed_at', 'v.ip', 'v.browser', 'v.os', 'v.device', 'v.referer'];

export interface AnalyticsDeps {
  db: Db;
  clock: Clock;
  log: Logger;
  /** Payments are checkout's: counts, activity keys and rows come from its queries. */
  payments: PaymentQueries;
  viewIds: IdSealer;
  /** The links feature: which links a merchant has, and the views_pruned counter. */
  links: Pick<LinkState, 'keysOf' | 'recordPrunedViews'>;
  /** Each merchant's view retention (the merchants feature). */
  merchants: Pick<MerchantService, 'viewRetention'>;
}

export function createAnalytics(deps: AnalyticsDeps) {
  const { db, clock, payments, viewIds } = deps;

  const viewFrom = (r: any): LinkView => ({
    key: Number(r.id),
    id: viewIds.seal(Number(r.id)),
    viewedAt: toDate(r.viewed_at),
    ip: r.ip,
    browser: r.browser,
    os: r.os,
    device: r.device,
    referer: r.referer,
  });

  const newestViews = (q: Knex.QueryBuilder, alias = '') => q.orderBy(`${alias}viewed_at`, 'desc').orderBy(`${alias}id`, 'desc');

  /** Views kept as raw rows: the counter minus what retention removed (no COUNT over millions). */
  const storedViews = (link: StatsLink) => Math.max(0, link.views - link.viewsPruned);

  const paymentCount = (link: StatsLink) => payments.countForLink(link.key);

  const numbered = (total: number, page: number, perPage: number) => {
    const pages = Math.max(1, Math.ceil(total / perPage));
    return { pages, page: Math.min(Math.max(1, Math.floor(page) || 1), pages) };
  };

  /** Resolves a `starting_after` view id to its row's (time, key), or fails as the API expects. */
  async function viewAnchor(linkKey: number, id: string): Promise<{ at: Date; key: number }> {
    const key = viewIds.open(id);
    const row = key === null ? null : await db('link_views').where({ id: key, link_id: linkKey }).first('id', 'viewed_at');
    if (!row) throw new ValidationError([{ field: 'starting_after', code: 'invalid_cursor', message: 'starting_after must be the id of one of this link’s views.' }]);
    return { at: toDate(row.viewed_at), key: Number(row.id) };
  }

  /** Rows strictly older than (at, key) in newest-first order. */
  const olderThan = (q: Knex.QueryBuilder, timeCol: string, idCol: string, at: Date, key: number) =>
    q.andWhere((b) => b.where(timeCol, '<', at).orWhere((c) => c.where(timeCol, '=', at).andWhere(idCol, '<', key)));

  const service = {
    storedViews,

    /** Page `page` (from 1) of a link's views, newest first. */
    async viewsPage(link: StatsLink, page: number, perPage = 10): Promise<NumberedPage<LinkView>> {
      const total = storedViews(link);
      const at = numbered(total, page, perPage);
      const ids = newestViews(db('link_views').select('id').where('link_id', link.key)).limit(perPage).offset((at.page - 1) * perPage);
      const rows = await newestViews(db('link_views as v').select(VIEW_COLUMNS).join(ids.as('pg'), 'pg.id', 'v.id'), 'v.');
      return { items: rows.map(viewFrom), total, ...at };
    },

    /** API: a link's views newest first, after the view `starting_after`. */
    async viewsAfter(link: StatsLink, opts: { limit: number; starting_after?: string }): Promise<Page<LinkView>> {
      const q = db('link_views as v').select(VIEW_COLUMNS).where('v.link_id', link.key);
      if (opts.starting_after) {
        const a = await viewAnchor(link.key, opts.starting_after);
        olderThan(q, 'v.viewed_at', 'v.id', a.at, a.key);
      }
      const rows = await newestViews(q, 'v.').limit(opts.limit + 1);
      return { data: rows.slice(0, opts.limit).map(viewFrom), has_more: rows.length > opts.limit };
    },

    /** Page `page` of a link's payments (every status), newest first. */
    async paymentsPage(link: StatsLink, page: number, perPage = 10): Promise<NumberedPage<PaymentView>> {
      return payments.search(link.merchantKey, { linkKey: link.key }, { page, perPage });
    },

    /**
     * Page `page` of views and payments merged, newest first. Each side contributes at most
     * offset + perPage keys from its own index; the page is cut from their merge, then hydrated.
     */
    async activityPage(link: StatsLink, page: number, perPage = 10): Promise<NumberedPage<ActivityItem>> {
      const total = storedViews(link) + (await paymentCount(link));
      const at = numbered(total, page, perPage);
      const offset = (at.page - 1) * perPage;
      const take = offset + perPage;
      const views = newestViews(db('link_views').select(db.raw("'view' as kind"), 'id', 'viewed_at as t').where('link_id', link.key)).limit(take);
      const pays = payments.activityKeys(link.key, take);
      const both = db.select('*').from(views.as('v')).unionAll(db.select('*').from(pays.as('p')));
      const merged = await db
        .select('*')
        .from(both.as('m'))
        .orderBy('t', 'desc')
        .orderBy('kind', 'asc')
        .orderBy('id', 'desc')
        .limit(perPage)
        .offset(offset);
      return { items: await hydrate(link, merged), total, ...at };
    },

    /**
     * API: activity after the item `starting_after` (a view or payment id), newest first. Ties in
     * time order payments before views, then by key, exactly as the dashboard pages do.
     */
    async activityAfter(link: StatsLink, opts: { limit: number; starting_after?: string }): Promise<Page<ActivityItem>> {
      const views = newestViews(db('link_views').select(db.raw("'view' as kind"), 'id', 'viewed_at as t').where('link_id', link.key)).limit(opts.limit + 1);
      let pays = payments.activityKeys(link.key, opts.limit + 1);
      if (opts.starting_after) {
        let anchor: { kind: 'view' | 'payment'; at: Date; key: number };
        if (opts.starting_after.startsWith('pay_')) {
          const p = await payments.activityAnchor(link.key, opts.starting_after);
          if (!p) throw new ValidationError([{ field: 'starting_after', code: 'invalid_cursor', message: 'starting_after must be the id of an item of this link’s activity.' }]);
          anchor = { kind: 'payment', ...p };
        } else {
          anchor = { kind: 'view', ...(await viewAnchor(link.key, opts.starting_after)) };
        }
        // Same instant: payments sort first ('payment' < 'view'), so after a payment come all views of that instant.
        views.andWhere((b) =>
          b.where('viewed_at', '<', anchor.at).orWhere((c) => c.where('viewed_at', '=', anchor.at).andWhere((d) => (anchor.kind === 'payment' ? d.whereRaw('1 = 1') : d.where('id', '<', anchor.key)))),
        );
        pays = payments.activityKeys(link.key, opts.limit + 1, { at: anchor.at, key: anchor.kind === 'payment' ? anchor.key : null });
      }
      const rows = [...(await views), ...(await pays)].sort(
        (a, b) => toDate(b.t).getTime() - toDate(a.t).getTime() || String(a.kind).localeCompare(String(b.kind)) || Number(b.id) - Number(a.id),
      );
      const items = await hydrate(link, rows.slice(0, opts.limit));
      return { data: items, has_more: rows.length > opts.limit };
    },

    /** Views, payments and revenue per day for the last `days` days (today included) in `timeZone`. */
    async daily(link: Pick<Link, 'key'>, timeZone: string, days = 30): Promise<DayStats[]> {
      const today = dayKeyIn(clock.now(), timeZone);
      const first = addDays(today, -(days - 1));
      const from = Math.floor(startOfDay(first, timeZone)!.getTime() / HOUR_MS);
      const rows = await db('link_stats_hourly').where('link_id', link.key).andWhere('hour', '>=', from).select('hour', 'views', 'payments', 'revenue');
      const out: DayStats[] = [];
      const byDate = new Map<string, DayStats>();
      for (let i = 0; i < days; i++) {
        const d: DayStats = { date: addDays(first, i), views: 0, payments: 0, revenue: 0 };
        out.push(d);
        byDate.set(d.date, d);
      }
      for (const r of rows) {
        const d = byDate.get(dayKeyIn(Number(r.hour) * HOUR_MS, timeZone));
        if (!d) continue;
        d.views += Number(r.views);
        d.payments += Number(r.payments);
        d.revenue += Number(r.revenue);
      }
      return out;
    },

    /**
     * The newest `perLink` stored views of each of these links, oldest first, by link key (payment
     * requests' audit trails, a batch of requests at a time): one query per 500 links, each link's
     * share cut by a window function, so a link opened a million times still costs `perLink` rows.
     */
    async viewsForLinks(linkKeys: number[], perLink: number): Promise<Map<number, LinkView[]>> {
      const out = new Map<number, LinkView[]>();
      const unique = [...new Set(linkKeys)];
      for (let i = 0; i < unique.length; i += 500) {
        const ranked = db('link_views as v')
          .select([...VIEW_COLUMNS, 'v.link_id', db.raw('row_number() over (partition by v.link_id order by v.viewed_at desc, v.id desc) as rn')])
          .whereIn('v.link_id', unique.slice(i, i + 500));
        const rows = (await db.select('*').from(ranked.as('x')).where('x.rn', '<=', perLink).orderBy('x.viewed_at', 'asc').orderBy('x.id', 'asc')) as any[];
        for (const r of rows) {
          const list = out.get(Number(r.link_id)) ?? [];
          list.push(viewFrom(r));
          out.set(Number(r.link_id), list);
        }
      }
      return out;
    },

    /** Every stored view of a link, newest first, a chunk at a time (CSV export: memory stays flat). */
    async *eachView(link: Pick<Link, 'key'>, chunk = 5_000): AsyncGenerator<LinkView[]> {
      let last: { at: Date; key: number } | null = null;
      for (;;) {
        const q = db('link_views as v').select(VIEW_COLUMNS).where('v.link_id', link.key);
        if (last) olderThan(q, 'v.viewed_at', 'v.id', last.at, last.key);
        const rows = (await newestViews(q, 'v.').limit(chunk)).map(viewFrom);
        if (!rows.length) return;
        yield rows;
        if (rows.length < chunk) return;
        const end = rows[rows.length - 1];
        last = { at: end.viewedAt, key: end.key };
      }
    },

    /**
     * Retention: deletes raw views older than each merchant's setting (in months), a batch at a time
     * so no transaction holds locks for long; the link's counter keeps them (views_pruned records how
     * many rows went). Returns how many rows were deleted.
     */
    async pruneViews(batch = 5_000): Promise<number> {
      let deleted = 0;
      for (const m of await deps.merchants.viewRetention()) {
        const cutoff = monthsBefore(clock.now(), m.months);
        const linkKeys = await deps.links.keysOf(m.merchantKey);
        for (const linkKey of linkKeys) {
          for (;;) {
            const n = await db.transaction(async (trx) => {
              const ids = (await trx('link_views').where('link_id', linkKey).andWhere('viewed_at', '<', cutoff).orderBy('viewed_at').limit(batch).select('id')).map((r) => r.id);
              if (!ids.length) return 0;
              const gone = await trx('link_views').whereIn('id', ids).del();
              await deps.links.recordPrunedViews(trx, linkKey, gone);
              return gone;
            });
            deleted += n;
            if (n < batch) break;
          }
        }
      }
      if (deleted) deps.log.info('pruned old views', { deleted });
      return deleted;
    },
  };

  async function hydrate(link: StatsLink, rows: { kind: string; id: number | string }[]): Promise<ActivityItem[]> {
    const viewKeys = rows.filter((r) => r.kind === 'view').map((r) => Number(r.id));
    const payKeys = rows.filter((r) => r.kind === 'payment').map((r) => Number(r.id));
    const [views, pays] = await Promise.all([
      viewKeys.length ? db('link_views as v').select(VIEW_COLUMNS).whereIn('v.id', viewKeys) : Promise.resolve([]),
      payments.byKeys(link.merchantKey, payKeys),
    ]);
    const viewByKey = new Map(views.map((r: any) => [Number(r.id), viewFrom(r)]));
    const payByKey = new Map(pays.map((p) => [p.key, p]));
    const items: ActivityItem[] = [];
    for (const r of rows) {
      if (r.kind === 'view') {
        const view = viewByKey.get(Number(r.id));
        if (view) items.push({ kind: 'view', at: view.viewedAt, view });
      } else {
        const payment = payByKey.get(Number(r.id));
        if (payment) items.push({ kind: 'payment', at: payment.createdAt, payment });
      }
    }
    return items;
  }

  return service;
}

/** The same instant `months` calendar months earlier (clamped to the month's last day). */
export function monthsBefore(now: Date, months: number): Date {
  const d = new Date(now.getTime());
  const day = d.getUTCDate();
  d.setUTCDate(1);
  d.setUTCMonth(d.getUTCMonth() - months);
  const last = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate();
  d.setUTCDate(Math.min(day, last));
  return d;
}

export type Analytics = ReturnType<typeof createAnalytics>;
