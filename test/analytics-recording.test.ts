// Recording pay-page views and reading them back: who counts as a view, what is stored, batching and
// shutdown, counters that equal the raw rows under concurrency (with its negative control), payment
// rollups, local days, numbered pages and cursors, retention, and the link.viewed event.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import supertest from 'supertest';
import knexFactory from 'knex';
import { forEachTarget, type Target } from './support/targets.ts';
import { build, uniqueHandle, type TestEnv } from './support/harness.ts';
import { TcpProxy } from './support/tcp-proxy.ts';
import { waitFor } from './support/wait.ts';
import { BOTS, BROWSERS } from './support/user-agents.ts';
import { buildApp } from '../src/app.ts';
import { toDate, type Db } from '../src/core/db.ts';
import type { Runtime } from '../src/runtime.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';
import type { Link } from '../src/features/links/service.ts';
import type { ActivityItem } from '../src/features/analytics/service.ts';
import { hourOf } from '../src/features/analytics/rollups.ts';
import { createLogger } from '../src/core/log.ts';

const START = '2026-03-02T09:00:00.000Z';
const CHROME_MAC = BROWSERS[0].ua;
/** Long enough that no timer flushes during a test: tests flush by hand. */
const NEVER = 3_600_000;

/** Runs `fn(i)` for i in 0..n-1 with at most `width` calls in flight. */
async function concurrently(n: number, width: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, n) }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

/** The error `promise` rejects with; fails if it resolves. */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

/** A listening server for an app, and GETs over keep-alive connections. */
async function serve(app: http.RequestListener) {
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  return {
    get: (path: string, headers: Record<string, string> = {}) =>
      new Promise<number>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path, agent, headers }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode!));
        });
        req.on('error', reject);
      }),
    async close() {
      agent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** What the database says about one link's views: its counters, its raw rows and its rollups. */
async function tally(db: Db, linkKey: number) {
  const link = await db('links').where({ id: linkKey }).first('views_count', 'views_pruned', 'payments_count', 'revenue');
  const [{ n }] = await db('link_views').where({ link_id: linkKey }).count({ n: '*' });
  const [{ views, payments, revenue }] = await db('link_stats_hourly').where({ link_id: linkKey }).sum({ views: 'views', payments: 'payments', revenue: 'revenue' });
  return {
    counter: Number(link.views_count),
    pruned: Number(link.views_pruned),
    rows: Number(n),
    rollup: Number(views ?? 0),
    payments: Number(link.payments_count),
    revenue: Number(link.revenue),
    rollupPayments: Number(payments ?? 0),
    rollupRevenue: Number(revenue ?? 0),
  };
}

forEachTarget('analytics: recording views', (target) => {
  let env: TestEnv;
  let shop: Merchant;
  let n = 0;
  const web = () => supertest(env.app);

  async function merchant(opts: { timezone?: string } = {}): Promise<Merchant> {
    const handle = uniqueHandle('an');
    return (await env.rt.services.merchants.signUp({ name: `Shop ${handle}`, handle, email: `${handle}@example.test`, password: 'correct horse battery' }, opts)).merchant;
  }
  const link = (m: Merchant = shop, fields: Record<string, unknown> = {}) =>
    env.rt.services.links.create(m, { type: 'amount', name: `Cake ${++n}`, amount: 1250, ...fields });
  /** The link as the dashboard reads it now (counters included). */
  const fresh = (l: Link, m: Merchant = shop) => env.rt.services.links.get(m, l.id);
  const visit = (l: Link, headers: Record<string, string> = {}, m: Merchant = shop) => web().get(`/${m.handle}/${l.path}`).set('User-Agent', CHROME_MAC).set(headers);
  const flush = () => env.rt.views!.flush();
  const rowsOf = (l: Link) => env.rt.db('link_views').where({ link_id: l.key }).orderBy('id');
  const totalRows = async () => Number((await env.rt.db('link_views').count({ n: '*' }))[0].n);

  before(async () => {
    env = await build(target, { viewFlushMs: NEVER });
    shop = await merchant();
  });
  beforeEach(() => env.clock.set(START));
  after(() => env?.close());

  describe('what a view records', () => {
    it('stores the time, the masked IP, browser, OS, device and the referer without its query', async () => {
      const l = await link();
      await visit(l, { 'User-Agent': BROWSERS[5].ua, Referer: 'https://news.example.com/story/42?utm_source=x&token=secret#comments' }).expect(200);
      await flush();
      const rows = await rowsOf(l);
      expect(rows).to.have.length(1);
      const [row] = rows;
      expect(toDate(row.viewed_at).toISOString()).to.equal(START);
      expect(row).to.include({ ip: '127.0.0.xxx', browser: 'Safari', os: 'iOS', device: 'mobile', referer: 'https://news.example.com/story/42' });
      expect(row).not.to.have.property('user_agent');
      expect(await tally(env.rt.db, l.key)).to.include({ counter: 1, rows: 1, rollup: 1 });
    });

    it('names every browser of the table as the dashboard shows it', async () => {
      const l = await link();
      for (const b of BROWSERS) await visit(l, { 'User-Agent': b.ua }).expect(200);
      await flush();
      const rows = await rowsOf(l);
      expect(rows.map((r) => [r.browser, r.os, r.device])).to.deep.equal(BROWSERS.map((b) => [b.browser, b.os, b.device]));
    });

    it('does not count bots, link unfurlers, scripts or an empty user agent', async () => {
      const l = await link();
      for (const [name, ua] of BOTS) {
        await visit(l, { 'User-Agent': ua }).expect(200);
        expect(env.rt.views!.queued, name).to.equal(0);
      }
      // A request with no User-Agent header at all.
      await web().get(`/${shop.handle}/${l.path}`).unset('User-Agent').expect(200);
      expect(env.rt.views!.queued).to.equal(0);
      await flush();
      expect(await tally(env.rt.db, l.key)).to.include({ counter: 0, rows: 0, rollup: 0 });
    });

    const speculative: Record<string, string>[] = [{ 'Sec-Purpose': 'prefetch' }, { 'Sec-Purpose': 'prefetch;prerender' }, { Purpose: 'prefetch' }, { 'X-Moz': 'prefetch' }, { 'X-Purpose': 'preview' }];
    for (const headers of speculative) {
      it(`does not count a speculative load (${JSON.stringify(headers)}), and counts the real visit that follows`, async () => {
        const l = await link();
        await visit(l, headers).expect(200);
        expect(env.rt.views!.queued).to.equal(0);
        await visit(l).expect(200);
        await flush();
        expect((await tally(env.rt.db, l.key)).rows).to.equal(1);
      });
    }

    it('does not count HEAD requests', async () => {
      const l = await link();
      await web().head(`/${shop.handle}/${l.path}`).set('User-Agent', CHROME_MAC).expect(200);
      await flush();
      expect((await tally(env.rt.db, l.key)).rows).to.equal(0);
    });

    it('counts only pages that can take a payment: not 404s, not a link at its limit (410), not the open-amount pages, not redirects', async () => {
      const full = await link(shop, { payment_limit: 1 });
      await env.rt.db('links').where({ id: full.key }).update({ paid_count: 1 });
      const inactive = await link(shop, { active: false });
      const deleted = await link();
      await env.rt.services.links.remove(shop, deleted.id);
      const live = await link(shop, { name: 'Live One' });
      const before = await totalRows();
      await visit(full).expect(410);
      await visit(inactive).expect(404);
      await web().get(`/${shop.handle}/${deleted.path}`).set('User-Agent', CHROME_MAC).expect(404);
      await web().get(`/${shop.handle}/no-such-link`).set('User-Agent', CHROME_MAC).expect(404);
      await web().get(`/no-such-shop/${live.path}`).set('User-Agent', CHROME_MAC).expect(404);
      await web().get(`/${shop.handle}`).set('User-Agent', CHROME_MAC).expect(200);
      await web().get(`/${shop.handle}/12.50`).set('User-Agent', CHROME_MAC).expect(200);
      await web().get(`/${shop.handle}/${live.path!.toUpperCase()}`).set('User-Agent', CHROME_MAC).expect(301);
      expect(env.rt.views!.queued).to.equal(0);
      await flush();
      expect(await totalRows()).to.equal(before);
      // The canonical URL the redirect points to does count.
      await visit(live).expect(200);
      await flush();
      expect(await totalRows()).to.equal(before + 1);
    });

    it('ignores X-Forwarded-For unless TRUST_PROXY is set', async () => {
      const l = await link();
      await visit(l, { 'X-Forwarded-For': '203.0.113.9' }).expect(200);
      await flush();
      expect((await rowsOf(l)).map((r) => r.ip)).to.deep.equal(['127.0.0.xxx']);
    });

    it('believes X-Forwarded-For behind a trusted proxy (TRUST_PROXY=1), IPv4 and IPv6 alike', async () => {
      const proxied = await build(target, { env: { TRUST_PROXY: '1' }, viewFlushMs: NEVER });
      try {
        const handle = uniqueHandle('tp');
        const { merchant: m } = await proxied.rt.services.merchants.signUp({ name: 'Proxied', handle, email: `${handle}@example.test`, password: 'correct horse battery' });
        const l = await proxied.rt.services.links.create(m, { type: 'amount', name: 'Behind a proxy', amount: 500 });
        for (const xff of ['203.0.113.9', '198.51.100.1, 203.0.113.77', '2001:db8:85a3:8d3:1319:8a2e:370:7348']) {
          await supertest(proxied.app).get(`/${handle}/${l.path}`).set('User-Agent', CHROME_MAC).set('X-Forwarded-For', xff).expect(200);
        }
        await proxied.rt.views!.flush();
        const ips = (await proxied.rt.db('link_views').where({ link_id: l.key }).orderBy('id').select('ip')).map((r) => r.ip);
        // With one trusted hop, the address the proxy saw is the last one in the list.
        expect(ips).to.deep.equal(['203.0.113.xxx', '203.0.113.xxx', '2001:db8:85a3::/48']);
      } finally {
        await proxied.close();
      }
    });
  });

  describe('batching and shutdown', () => {
    it('queues views and writes none of them until the flush, then all of them in one go', async () => {
      const l = await link();
      for (let i = 0; i < 5; i++) await visit(l).expect(200);
      expect(env.rt.views!.queued).to.equal(5);
      expect(await tally(env.rt.db, l.key)).to.include({ counter: 0, rows: 0, rollup: 0 });
      await flush();
      expect(env.rt.views!.queued).to.equal(0);
      expect(await tally(env.rt.db, l.key)).to.include({ counter: 5, rows: 5, rollup: 5 });
    });

    it('writes queued views when the runtime closes: none is lost on a graceful shutdown', async () => {
      const l = await link();
      const other: Runtime = await env.sibling();
      const app = buildApp(other);
      for (let i = 0; i < 7; i++) await supertest(app).get(`/${shop.handle}/${l.path}`).set('User-Agent', CHROME_MAC).expect(200);
      expect(other.views!.queued).to.equal(7);
      expect((await tally(env.rt.db, l.key)).rows).to.equal(0);
      await other.close();
      expect(await tally(env.rt.db, l.key)).to.include({ counter: 7, rows: 7, rollup: 7 });
    });

    if (target.name === 'sqlite') {
      it('keeps the views queued while the database refuses the write (locked by another connection), and writes them later', async () => {
        const l = await link();
        for (let i = 0; i < 3; i++) await visit(l).expect(200);
        // Another connection to the same file takes the write lock and keeps it.
        const filename = (env.config.database as { filename: string }).filename;
        const other = knexFactory({ client: 'better-sqlite3', connection: { filename }, useNullAsDefault: true, pool: { min: 1, max: 1 } });
        // Wait briefly for the lock instead of the usual 5 s, so the flush fails fast.
        await env.rt.db.raw('PRAGMA busy_timeout = 50');
        try {
          await other.raw('BEGIN IMMEDIATE');
          const err = await rejection(flush());
          expect((err as { code?: string }).code).to.equal('SQLITE_BUSY');
          expect(env.rt.views!.queued).to.equal(3);
          await other.raw('ROLLBACK');
        } finally {
          await other.destroy();
          await env.rt.db.raw('PRAGMA busy_timeout = 5000');
        }
        expect((await tally(env.rt.db, l.key)).rows).to.equal(0);
        await flush();
        expect(env.rt.views!.queued).to.equal(0);
        expect(await tally(env.rt.db, l.key)).to.include({ counter: 3, rows: 3, rollup: 3 });
      });
    } else {
      it('keeps the views queued while the database is down, and its timer writes them once it is back', async () => {
        const { proxy, url } = await TcpProxy.forUrl(target.mysqlUrl!, 3306);
        const through: Target = { ...target, mysqlUrl: url };
        // The recorder's own timer (every 5 ms, backing off while writes fail) does the writing here;
        // its log says when a write failed.
        const failures: string[] = [];
        const log = createLogger('error', (line) => void (/writing views failed/.test(line) && failures.push(line)));
        const cut = await build(through, { viewFlushMs: 5, log });
        try {
          const handle = uniqueHandle('down');
          const { merchant: m } = await cut.rt.services.merchants.signUp({ name: 'Down', handle, email: `${handle}@example.test`, password: 'correct horse battery' });
          const l = await cut.rt.services.links.create(m, { type: 'amount', name: 'Outage', amount: 500 });
          const page = () => supertest(cut.app).get(`/${handle}/${l.path}`).set('User-Agent', CHROME_MAC).expect(200);
          await page(); // also warms the pay page's cache, so it renders without the database
          await waitFor(async () => (await tally(cut.rt.db, l.key)).rows === 1, { timeout: 5_000, message: 'the first view' });
          proxy.down();
          for (let i = 0; i < 3; i++) await page();
          await waitFor(() => failures.length >= 2, { timeout: 5_000, message: 'failed writes' });
          expect(cut.rt.views!.queued, 'nothing is dropped while the database is away').to.be.at.least(1);
          proxy.up();
          await waitFor(async () => cut.rt.views!.queued === 0 && (await tally(cut.rt.db, l.key)).rows >= 4, { timeout: 15_000, message: 'the queued views to be written' });
          expect(await tally(cut.rt.db, l.key)).to.include({ counter: 4, rows: 4, rollup: 4 });
        } finally {
          await cut.close();
          await proxy.close();
        }
      });
    }
  });

  describe('counters under concurrency', () => {
    it('keeps views_count, the raw rows and the hourly rollups equal after 1,000 concurrent views through two processes', async () => {
      const l = await link();
      // Two more "processes" that flush every few milliseconds, so their writes overlap.
      const failed: string[] = [];
      const log = createLogger('error', (line) => void (/writing views failed/.test(line) && failed.push(line)));
      const processes = await Promise.all([env.sibling({ viewFlushMs: 2, log }), env.sibling({ viewFlushMs: 2, log })]);
      const servers = await Promise.all(processes.map((p) => serve(buildApp(p))));
      try {
        const statuses: number[] = [];
        await concurrently(1_000, 100, async (i) => {
          // Half-way through the hour turns, so two rollup rows fill up.
          if (i === 500) env.clock.advance(3_600_000);
          statuses.push(await servers[i % 2].get(`/${shop.handle}/${l.path}`, { 'User-Agent': BROWSERS[i % BROWSERS.length].ua }));
        });
        expect(statuses.filter((s) => s === 200)).to.have.length(1_000);
        // One after the other: two SQLite "processes" inside one Node process would deadlock if both
        // waited (synchronously) for the file lock at the same time; real processes just wait.
        for (const p of processes) await p.views!.flush();
        expect(await tally(env.rt.db, l.key)).to.include({ counter: 1_000, rows: 1_000, rollup: 1_000 });
        // Concurrent writers wait for each other; none fails (a deadlock would show up here).
        expect(failed, failed.join('\n')).to.deep.equal([]);
        const hours = await env.rt.db('link_stats_hourly').where({ link_id: l.key }).orderBy('hour').select('hour', 'views');
        expect(hours.map((h) => Number(h.hour))).to.deep.equal([hourOf(new Date(START)), hourOf(new Date(START)) + 1]);
        expect((await fresh(l)).views).to.equal(1_000);
      } finally {
        await Promise.all(servers.map((s) => s.close()));
        await Promise.all(processes.map((p) => p.close()));
      }
    });

    it('negative control: a read-modify-write counter under the same kind of load loses updates', async () => {
      // What the recorder must not do: read views_count, add the batch, write it back. Two
      // processes (two connection pools) doing it at once overwrite each other's additions.
      const l = await link();
      const pools = await Promise.all([env.sibling(), env.sibling()]);
      try {
        const naiveAdd = async (db: Db, add: number) => {
          const row = await db('links').where({ id: l.key }).first('views_count');
          await db('links').where({ id: l.key }).update({ views_count: Number(row.views_count) + add });
        };
        const atomicAdd = (db: Db, add: number) => db('links').where({ id: l.key }).update({ views_count: db.raw('views_count + ?', [add]) });
        const shortfalls: number[] = [];
        for (let attempt = 0; attempt < 5 && !shortfalls.some((s) => s > 0); attempt++) {
          await env.rt.db('links').where({ id: l.key }).update({ views_count: 0 });
          await concurrently(20, 20, (i) => naiveAdd(pools[i % 2].db, 3));
          shortfalls.push(60 - (await tally(env.rt.db, l.key)).counter);
        }
        expect(shortfalls.some((s) => s > 0), `lost updates per attempt: ${shortfalls.join(', ')}`).to.equal(true);
        // The recorder's way (an atomic increment) under the same load loses nothing.
        await env.rt.db('links').where({ id: l.key }).update({ views_count: 0 });
        await concurrently(20, 20, (i) => atomicAdd(pools[i % 2].db, 3));
        expect((await tally(env.rt.db, l.key)).counter).to.equal(60);
      } finally {
        await Promise.all(pools.map((p) => p.close()));
      }
    });
  });

  describe('payments in the rollups', () => {
    /** Opens a checkout on the pay page; answers the card page's path. */
    async function checkout(l: Link, m: Merchant = shop): Promise<string> {
      const res = await web().post(`/${m.handle}/${l.path}`).type('form').send({ name: 'Ann Example', email: 'ann@example.test' });
      expect(res.status, res.text.slice(0, 300)).to.equal(303);
      return new URL(res.headers.location).pathname;
    }
    const payCard = (cardPage: string, card: string) => web().post(cardPage).type('form').send({ card_number: card });

    it('counts a captured payment in the link’s counters and in its hour, and a failed or voided one nowhere', async () => {
      const l = await link(shop, { payment_limit: 1, amount: 3900 });
      const declined = await checkout(l);
      const first = await checkout(l);
      const second = await checkout(l);
      env.clock.advance(90 * 60_000); // paid later than the checkout opened: the paid hour counts
      await payCard(declined, '4000000000000002').expect(303);
      expect(await tally(env.rt.db, l.key)).to.include({ payments: 0, revenue: 0, rollupPayments: 0, rollupRevenue: 0 });
      await payCard(first, '4242424242424242').expect(303);
      await payCard(second, '4242424242424242'); // loses the last slot: voided
      const statuses = (await env.rt.db('payments').where({ link_id: l.key }).orderBy('id').select('status')).map((r) => r.status);
      expect(statuses).to.deep.equal(['failed', 'paid', 'voided']);
      expect(await tally(env.rt.db, l.key)).to.include({ payments: 1, revenue: 3900, rollupPayments: 1, rollupRevenue: 3900 });
      const hours = await env.rt.db('link_stats_hourly').where({ link_id: l.key }).select('hour', 'payments', 'revenue');
      expect(hours.map((h) => [Number(h.hour), Number(h.payments), Number(h.revenue)])).to.deep.equal([[hourOf(env.clock.now()), 1, 3900]]);
    });

    it('puts views and payments on the merchant’s local day around midnight and across a daylight-saving change', async () => {
      const ny = await merchant({ timezone: 'America/New_York' });
      const l = await link(ny, { amount: 2000 });
      const at = async (iso: string, what: 'view' | 'payment') => {
        env.clock.set(iso);
        if (what === 'view') await visit(l, {}, ny).expect(200);
        else await payCard(await checkout(l, ny), '4242424242424242').expect(303);
      };
      await at('2026-03-05T04:30:00Z', 'view'); // 23:30 on 4 March in New York (UTC−5)
      await at('2026-03-05T04:59:59Z', 'payment'); // 23:59:59 on 4 March
      await at('2026-03-05T05:00:00Z', 'view'); // midnight, 5 March
      await at('2026-03-05T05:30:00Z', 'view');
      await at('2026-03-09T03:30:00Z', 'view'); // 23:30 on 8 March, daylight time (UTC−4) since 8 March
      await at('2026-03-09T04:00:00Z', 'payment'); // midnight, 9 March
      env.clock.set('2026-03-10T16:00:00Z');
      await env.rt.views!.flush();
      const days = await env.rt.services.analytics.daily(l, ny.timezone);
      expect(days).to.have.length(30);
      expect(days[0].date).to.equal('2026-02-09');
      expect(days.at(-1)!.date).to.equal('2026-03-10');
      const nonZero = days.filter((d) => d.views || d.payments).map((d) => [d.date, d.views, d.payments, d.revenue]);
      expect(nonZero).to.deep.equal([
        ['2026-03-04', 1, 1, 2000],
        ['2026-03-05', 2, 0, 0],
        ['2026-03-08', 1, 0, 0],
        ['2026-03-09', 0, 1, 2000],
      ]);
      // The same hours in UTC fall on other days: the zone decides.
      const utc = (await env.rt.services.analytics.daily(l, 'UTC')).filter((d) => d.views || d.payments).map((d) => [d.date, d.views, d.payments]);
      expect(utc).to.deep.equal([
        ['2026-03-05', 3, 1],
        ['2026-03-09', 1, 1],
      ]);
      // On 3 April the last 30 days start on 5 March: 4 March has dropped out.
      env.clock.set('2026-04-03T16:00:00Z');
      expect((await env.rt.services.analytics.daily(l, ny.timezone)).filter((d) => d.views || d.payments).map((d) => d.date)).to.deep.equal(['2026-03-05', '2026-03-08', '2026-03-09']);
    });
  });

  describe('numbered pages and cursors', () => {
    /** `count` views: three per instant (ties broken by id), one second between instants. */
    async function withViews(count: number): Promise<Link> {
      const l = await link();
      for (let i = 0; i < count; i++) {
        if (i % 3 === 0) env.clock.advance(1_000);
        await visit(l).expect(200);
      }
      await flush();
      return fresh(l);
    }
    /** The link's view keys newest first, straight from the table. */
    const expectedOrder = async (l: Link) =>
      (await env.rt.db('link_views').where({ link_id: l.key }).orderBy('viewed_at', 'desc').orderBy('id', 'desc').select('id')).map((r) => Number(r.id));

    for (const [count, pages, last] of [
      [0, 1, 0],
      [10, 1, 10],
      [11, 2, 1],
      [20, 2, 10],
      [21, 3, 1],
    ] as const) {
      it(`splits ${count} views into ${pages} page(s) of 10, newest first, the last one holding ${last}`, async () => {
        const l = await withViews(count);
        const { analytics } = env.rt.services;
        const seen: number[] = [];
        for (let p = 1; p <= pages; p++) {
          const page = await analytics.viewsPage(l, p);
          expect(page).to.include({ page: p, pages, total: count });
          expect(page.items).to.have.length(p === pages ? last : 10);
          seen.push(...page.items.map((v) => v.key));
        }
        expect(seen).to.deep.equal(await expectedOrder(l));
        // Out-of-range pages land on the nearest real one.
        expect((await analytics.viewsPage(l, 0)).page).to.equal(1);
        expect((await analytics.viewsPage(l, -3)).page).to.equal(1);
        expect((await analytics.viewsPage(l, Number.NaN)).page).to.equal(1);
        const beyond = await analytics.viewsPage(l, pages + 5);
        expect(beyond.page).to.equal(pages);
        expect(beyond.items.map((v) => v.key)).to.deep.equal(seen.slice((pages - 1) * 10));
      });
    }

    it('walks views with cursors, each exactly once, ties in time included, for any page size', async () => {
      const l = await withViews(13);
      const expected = await expectedOrder(l);
      for (const limit of [1, 2, 3, 5, 13, 100]) {
        const seen: number[] = [];
        let after: string | undefined;
        for (;;) {
          const page = await env.rt.services.analytics.viewsAfter(l, { limit, starting_after: after });
          seen.push(...page.data.map((v) => v.key));
          if (!page.has_more) break;
          expect(page.data).to.have.length(limit);
          after = page.data.at(-1)!.id;
        }
        expect(seen, `limit ${limit}`).to.deep.equal(expected);
      }
    });

    describe('activity: views and payments merged', () => {
      let l: Link;
      let expected: string[];
      const key = (item: ActivityItem) => (item.kind === 'view' ? `view:${item.view.key}` : `payment:${item.payment.key}`);
      const publicId = (item: ActivityItem) => (item.kind === 'view' ? item.view.id : item.payment.id);

      before(async () => {
        env.clock.set(START);
        l = await link();
        const checkout = async () => {
          const res = await web().post(`/${shop.handle}/${l.path}`).type('form').send({ name: 'Ann Example', email: 'ann@example.test' }).expect(303);
          return new URL(res.headers.location).pathname;
        };
        // 9 views and 4 payments, with a payment and views in the same instant twice.
        await visit(l).expect(200);
        await visit(l).expect(200);
        env.clock.advance(1_000);
        const card = await checkout();
        await visit(l).expect(200); // same instant as the payment
        env.clock.advance(1_000);
        await web().post(card).type('form').send({ card_number: '4000000000000002' }).expect(303);
        await visit(l).expect(200);
        env.clock.advance(1_000);
        await web().post(card).type('form').send({ card_number: '4242424242424242' }).expect(303); // a second payment row, paid
        await checkout(); // a third, left pending, in the same instant
        await visit(l).expect(200);
        await visit(l).expect(200);
        env.clock.advance(1_000);
        await visit(l).expect(200);
        env.clock.advance(1_000);
        await checkout();
        env.clock.advance(1_000);
        await visit(l).expect(200);
        await visit(l).expect(200);
        await flush();
        l = await fresh(l);
        // Newest first; in one instant payments before views; then by key, newest first.
        const views = (await env.rt.db('link_views').where({ link_id: l.key }).select('id', 'viewed_at')).map((r) => ({ kind: 'view', key: Number(r.id), t: toDate(r.viewed_at).getTime() }));
        const pays = (await env.rt.db('payments').where({ link_id: l.key }).select('id', 'created_at')).map((r) => ({ kind: 'payment', key: Number(r.id), t: toDate(r.created_at).getTime() }));
        expect([views.length, pays.length]).to.deep.equal([9, 4]);
        expected = [...views, ...pays].sort((a, b) => b.t - a.t || a.kind.localeCompare(b.kind) || b.key - a.key).map((x) => `${x.kind}:${x.key}`);
      });

      for (const perPage of [1, 3, 5, 10, 13, 20]) {
        it(`pages through all 13 items ${perPage} at a time in time order`, async () => {
          const pages = Math.ceil(13 / perPage);
          const seen: string[] = [];
          for (let p = 1; p <= pages; p++) {
            const page = await env.rt.services.analytics.activityPage(l, p, perPage);
            expect(page).to.include({ page: p, pages, total: 13 });
            expect(page.items).to.have.length(p < pages ? perPage : 13 - perPage * (pages - 1));
            seen.push(...page.items.map(key));
          }
          expect(seen).to.deep.equal(expected);
          const beyond = await env.rt.services.analytics.activityPage(l, pages + 1, perPage);
          expect(beyond.page).to.equal(pages);
          expect((await env.rt.services.analytics.activityPage(l, 0, perPage)).items.map(key)).to.deep.equal(expected.slice(0, perPage));
        });
      }

      it('walks the activity with cursors (view and payment ids), each item exactly once', async () => {
        for (const limit of [1, 2, 4, 13, 50]) {
          const seen: string[] = [];
          let after: string | undefined;
          for (;;) {
            const page = await env.rt.services.analytics.activityAfter(l, { limit, starting_after: after });
            seen.push(...page.data.map(key));
            if (!page.has_more) break;
            expect(page.data).to.have.length(limit);
            after = publicId(page.data.at(-1)!);
          }
          expect(seen, `limit ${limit}`).to.deep.equal(expected);
        }
      });

      it('has a first page of 10 and an empty link has one empty page', async () => {
        const page = await env.rt.services.analytics.activityPage(l, 1);
        expect(page).to.include({ page: 1, pages: 2, total: 13 });
        expect(page.items).to.have.length(10);
        const empty = await link();
        expect(await env.rt.services.analytics.activityPage(empty, 1)).to.deep.equal({ items: [], page: 1, pages: 1, total: 0 });
        expect(await env.rt.services.analytics.activityAfter(empty, { limit: 10 })).to.deep.equal({ data: [], has_more: false });
      });
    });
  });

  describe('retention', () => {
    it('deletes raw views older than the merchant’s setting and keeps every counter and rollup', async () => {
      const m = await merchant();
      await env.rt.db('merchants').where({ id: m.key }).update({ view_retention_months: 1 });
      const l = await link(m);
      const keptElsewhere = await link();
      const at = async (iso: string, times = 1, target: Link = l, owner: Merchant = m) => {
        env.clock.set(iso);
        for (let i = 0; i < times; i++) await visit(target, {}, owner).expect(200);
      };
      await at('2026-01-10T12:00:00Z', 3);
      await at('2026-02-02T08:59:59.999Z'); // a millisecond before the cut-off: goes
      await at('2026-02-02T09:00:00.000Z'); // at the cut-off: stays
      await at('2026-02-20T12:00:00Z', 2);
      await at('2026-01-10T12:00:00Z', 2, keptElsewhere, shop); // 13 months for the other merchant
      await flush();
      const before = await tally(env.rt.db, l.key);
      expect(before).to.include({ counter: 7, rows: 7, rollup: 7, pruned: 0 });
      env.clock.set(START); // cut-off: 2026-02-02T09:00:00Z
      expect(await env.rt.services.analytics.pruneViews(3)).to.equal(4);
      expect(await tally(env.rt.db, l.key)).to.deep.equal({ ...before, rows: 3, pruned: 4 });
      expect(await tally(env.rt.db, keptElsewhere.key)).to.include({ rows: 2, pruned: 0 });
      const after = await fresh(l, m);
      expect(after.views).to.equal(7);
      expect(env.rt.services.analytics.storedViews(after)).to.equal(3);
      const page = await env.rt.services.analytics.viewsPage(after, 1);
      expect(page).to.include({ total: 3, pages: 1 });
      expect(page.items.map((v) => v.viewedAt.toISOString())).to.deep.equal(['2026-02-20T12:00:00.000Z', '2026-02-20T12:00:00.000Z', '2026-02-02T09:00:00.000Z']);
      // Nothing more to do the second time.
      expect(await env.rt.services.analytics.pruneViews()).to.equal(0);
    });

    it('runs as the daily analytics.prune_views job', async () => {
      const m = await merchant();
      await env.rt.db('merchants').where({ id: m.key }).update({ view_retention_months: 1 });
      const l = await link(m);
      env.clock.set('2025-12-01T00:00:00Z');
      await visit(l, {}, m).expect(200);
      await flush();
      env.clock.set(START);
      await env.rt.jobs.enqueue(env.rt.db, 'analytics.prune_views', {});
      await env.rt.jobs.drain();
      expect(await tally(env.rt.db, l.key)).to.include({ counter: 1, rows: 0, pruned: 1, rollup: 1 });
    });
  });

  describe('signals', () => {
    it('emits no link.viewed event while nobody listens for it', async () => {
      const l = await link();
      const before = Number((await env.rt.db('events').where({ type: 'link.viewed' }).count({ n: '*' }))[0].n);
      await visit(l).expect(200);
      await flush();
      expect(Number((await env.rt.db('events').where({ type: 'link.viewed' }).count({ n: '*' }))[0].n)).to.equal(before);
    });

    it('emits one link.viewed event per view, with the sealed view id, once a handler subscribes; the handler runs', async () => {
      const l = await link();
      const listening = await env.sibling();
      const heard: { viewId: string; linkId: string }[] = [];
      listening.events.subscribe('link.viewed', 'test:viewed', (e) => void heard.push(e.payload));
      const app = buildApp(listening);
      for (const b of BROWSERS.slice(0, 3)) await supertest(app).get(`/${shop.handle}/${l.path}`).set('User-Agent', b.ua).expect(200);
      await listening.views!.flush();
      const views = await env.rt.services.analytics.viewsAfter(await fresh(l), { limit: 10 });
      const events = await env.rt.db('events').where({ type: 'link.viewed' }).orderBy('id').select('payload', 'merchant_id');
      const payloads = events.map((e) => JSON.parse(e.payload)).filter((p) => p.linkId === l.id);
      expect(payloads).to.have.length(3);
      expect(payloads.map((p) => p.viewId).sort()).to.deep.equal(views.data.map((v) => v.id).sort());
      expect(payloads.map((p) => p.browser)).to.deep.equal(BROWSERS.slice(0, 3).map((b) => b.browser));
      expect(payloads[0]).to.have.all.keys('merchantId', 'linkId', 'viewId', 'viewedAt', 'browser', 'os', 'device', 'referer');
      expect(payloads[0].merchantId).to.equal(shop.id);
      expect(payloads[0], 'no IP in an event').not.to.have.property('ip');
      await listening.jobs.drain();
      expect(heard.map((p) => p.viewId).sort()).to.deep.equal(views.data.map((v) => v.id).sort());
      await listening.close();
    });

    it('never drops the pay-page cache for a view (no change signal), but tells open dashboards (live feed)', async () => {
      const listening = await env.sibling();
      listening.events.subscribe('link.viewed', 'test:viewed-quiet', () => {});
      try {
        // Without and with a link.viewed subscriber (then views go through the outbox).
        for (const [rt, app] of [[env.rt, env.app], [listening, buildApp(listening)]] as const) {
          const l = await link();
          let changes = 0;
          const live: string[] = [];
          // Only this process's own changes: other processes' arrive through Redis whenever they like.
          const stopChanges = rt.changes.subscribe((origin) => void (origin === 'local' && changes++));
          // Views only: the link's own link.created may still be on its way through Redis.
          const stopLive = rt.live.listen(shop.key, (s) => void (s.linkId === l.id && s.kind !== 'link.created' && live.push(`${s.kind}:${s.linkId}`)));
          await supertest(app).get(`/${shop.handle}/${l.path}`).set('User-Agent', CHROME_MAC).expect(200);
          await rt.views!.flush();
          stopChanges();
          stopLive();
          expect(changes).to.equal(0);
          expect(live).to.deep.equal([`view:${l.id}`]);
        }
      } finally {
        await listening.close();
      }
    });
  });
});
