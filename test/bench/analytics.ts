/**
 * The analytics half of `npm run bench`: seeds a link with a million views (and one with none), then
 * measures what a merchant waits for — the link page and its Views tab at page 1 and page 5,000 —
 * with sequential requests, and explains where the time goes (service timings, per-query profile,
 * the Views page's query plan). run.ts drives it and reports.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Knex } from 'knex';
import { loadConfig } from '../../src/config.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { buildApp } from '../../src/app.ts';
import { isMysql } from '../../src/core/db.ts';
import { publicId } from '../../src/core/ids.ts';
import { hourOf, HOUR_MS } from '../../src/features/analytics/rollups.ts';
import { cleanReferer, describeUserAgent, maskIp } from '../../src/features/analytics/visitor.ts';
import type { Link } from '../../src/features/links/service.ts';
import { csrfFrom } from '../support/harness.ts';

/** Browsers visitors use (the pay-page load cycles through them, so every request is a view). */
export const BROWSER_AGENTS = [
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0',
  'Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
  'Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1',
];

const REFERERS = [null, null, null, 'https://www.instagram.com/', 'https://l.facebook.com/l.php?u=x', 'https://t.co/a1b2c3', 'https://www.google.com/', 'https://mail.google.com/mail/u/0/', 'https://news.example.org/best-bakeries?utm_source=x', 'https://wa.me/'];

export const MERCHANT = { name: 'Bench Bakery', handle: 'bench-analytics', email: 'analytics@bench.example', password: 'bench password 123' };
const PAYMENTS = 300;
const AMOUNT = 1250;

export interface Seeded {
  handle: string;
  busy: { id: string; key: number };
  empty: { id: string; key: number };
  /** The smart link the pay-page load hits (no seeded views: what the run records is all it has). */
  pay: { id: string; key: number; path: string };
  views: number;
  payments: number;
  seconds: number;
}

/** A small deterministic PRNG (mulberry32): the same data every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Views per hour over `hours` full hours: a daily rhythm, busier weekends, and growth over time. */
function hourlyCounts(total: number, firstHour: number, hours: number): number[] {
  const weights: number[] = [];
  for (let i = 0; i < hours; i++) {
    const at = new Date((firstHour + i) * HOUR_MS);
    const daily = 1 + 0.7 * Math.sin((2 * Math.PI * (at.getUTCHours() - 9)) / 24);
    const weekly = at.getUTCDay() === 0 || at.getUTCDay() === 6 ? 1.25 : 1;
    weights.push(daily * weekly * (0.6 + (0.8 * i) / hours));
  }
  const sum = weights.reduce((a, b) => a + b, 0);
  const counts = weights.map((w) => Math.floor((total * w) / sum));
  let left = total - counts.reduce((a, b) => a + b, 0);
  for (let i = hours - 1; left > 0; i = (i - 1 + hours) % hours, left--) counts[i]++;
  return counts;
}

/**
 * Seeds `config`'s (fresh) database: the merchant, a busy link with `views` views over the last 90
 * days and PAYMENTS paid payments, an empty link, and the pay-page link. Rows go in with multi-row
 * inserts inside transactions, with the counters and hourly rollups that match them, exactly as the
 * recorder and checkout would have left them.
 */
export async function seedAnalytics(env: Record<string, string>, views: number, log: (line: string) => void): Promise<Seeded> {
  const started = performance.now();
  const rt = await createRuntime(loadConfig(env), { migrate: true, recordViews: false });
  try {
    const { merchant } = await rt.services.merchants.signUp({ name: MERCHANT.name, handle: MERCHANT.handle, email: MERCHANT.email, password: MERCHANT.password });
    const busy = await rt.services.links.create(merchant, { type: 'amount', name: 'Weekly bread box', amount: AMOUNT, description: 'A loaf a week, delivered Saturday.' });
    const empty = await rt.services.links.create(merchant, { type: 'amount', name: 'Wedding cake deposit', amount: 20000 });
    const pay = await rt.services.links.create(merchant, { type: 'amount', name: 'Summer sale', amount: 1250, description: 'Two loaves and a cake, delivered Saturday.' });
    const db = rt.db;
    const mysql = isMysql(db);
    const random = prng(20261121);

    const agents = BROWSER_AGENTS.map((ua) => describeUserAgent(ua));
    const ips: (string | null)[] = [];
    for (let i = 0; i < 400; i++) ips.push(maskIp(`${1 + Math.floor(random() * 223)}.${Math.floor(random() * 256)}.${Math.floor(random() * 256)}.${Math.floor(random() * 256)}`));
    for (let i = 0; i < 100; i++) ips.push(maskIp(`2a02:${Math.floor(random() * 65536).toString(16)}:${Math.floor(random() * 65536).toString(16)}::${Math.floor(random() * 65536).toString(16)}`));
    const referers = REFERERS.map((r) => cleanReferer(r ?? undefined));
    const pick = <T>(list: T[]) => list[Math.floor(random() * list.length)];

    // The 2,160 full hours before the current one: every view is in the past.
    const hours = 90 * 24;
    const firstHour = hourOf(rt.clock.now()) - hours;
    const perHour = hourlyCounts(views, firstHour, hours);
    const stats = new Map<number, { views: number; payments: number; revenue: number }>();
    perHour.forEach((n, i) => n && stats.set(firstHour + i, { views: n, payments: 0, revenue: 0 }));

    // SQLite allows 32,766 bound variables per statement (7 columns → 4,000 rows); MySQL 65,535.
    const perInsert = mysql ? 5_000 : 4_000;
    const perTransaction = 100_000;
    const columns = '(link_id, viewed_at, ip, browser, os, device, referer)';
    const statements = new Map<number, string>();
    const insertSql = (rows: number) => {
      let sql = statements.get(rows);
      if (!sql) statements.set(rows, (sql = `insert into link_views ${columns} values ${Array(rows).fill('(?, ?, ?, ?, ?, ?, ?)').join(', ')}`));
      return sql;
    };
    let bindings: Knex.RawBinding[] = [];
    let written = 0;
    let trx: Knex.Transaction | null = null;
    const flushRows = async () => {
      if (!bindings.length) return;
      trx ??= await db.transaction();
      await trx.raw(insertSql(bindings.length / 7), bindings);
      written += bindings.length / 7;
      bindings = [];
      if (written % perTransaction === 0 || written === views) {
        await trx.commit();
        trx = null;
        if (written % 250_000 === 0) log(`  seeded ${written.toLocaleString('en-US')} views (${((performance.now() - started) / 1000).toFixed(1)} s)`);
      }
    };
    try {
      // Oldest first, so ids grow with time as they do when the recorder writes them.
      for (let i = 0; i < hours; i++) {
        const n = perHour[i];
        const base = (firstHour + i) * HOUR_MS;
        const offsets = Array.from({ length: n }, () => Math.floor(random() * HOUR_MS)).sort((a, b) => a - b);
        for (const offset of offsets) {
          const agent = pick(agents);
          bindings.push(busy.key, new Date(base + offset), pick(ips), agent.browser, agent.os, agent.device, pick(referers));
          if (bindings.length === perInsert * 7) await flushRows();
        }
      }
      await flushRows();
      if (trx) await (trx as Knex.Transaction).commit();
    } catch (err) {
      if (trx) await (trx as Knex.Transaction).rollback().catch(() => {});
      throw err;
    }

    // Paid payments spread over the same 90 days, counted on the link and in the rollups as a capture does.
    const payments: ({ created_at: Date } & Record<string, unknown>)[] = [];
    for (let i = 0; i < PAYMENTS; i++) {
      const paidAt = new Date((firstHour + Math.floor(random() * hours)) * HOUR_MS + Math.floor(random() * HOUR_MS));
      const createdAt = new Date(paidAt.getTime() - 45_000);
      payments.push({ public_id: publicId('pay'), merchant_id: merchant.key, link_id: busy.key, provider: 'provider-sandbox', amount: AMOUNT, currency: busy.currency, status: 'paid', created_at: createdAt, updated_at: paidAt, authorized_at: paidAt, paid_at: paidAt });
      const s = stats.get(hourOf(paidAt)) ?? { views: 0, payments: 0, revenue: 0 };
      s.payments++;
      s.revenue += AMOUNT;
      stats.set(hourOf(paidAt), s);
    }
    payments.sort((a, b) => a.created_at.getTime() - b.created_at.getTime());
    await db.transaction(async (t) => {
      for (let i = 0; i < payments.length; i += 100) await t('payments').insert(payments.slice(i, i + 100));
      const rollups = [...stats].map(([hour, s]) => ({ link_id: busy.key, hour, ...s }));
      for (let i = 0; i < rollups.length; i += 500) await t('link_stats_hourly').insert(rollups.slice(i, i + 500));
      await t('links')
        .where({ id: busy.key })
        .update({ views_count: views, paid_count: PAYMENTS, payments_count: PAYMENTS, revenue: PAYMENTS * AMOUNT });
    });
    // InnoDB refreshes its statistics by itself after a bulk change like this one; do it now rather
    // than mid-run. SQLite keeps none unless the app runs ANALYZE (Paylink does not): leave it so.
    if (mysql) await db.raw('analyze table link_views, link_stats_hourly, payments, links');
    return {
      handle: merchant.handle,
      busy: { id: busy.id, key: busy.key },
      empty: { id: empty.id, key: empty.key },
      pay: { id: pay.id, key: pay.key, path: pay.path! },
      views,
      payments: PAYMENTS,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await rt.close();
  }
}

// ---------------------------------------------------------------- logged-in requests

const setCookies = (res: Response, jar: Map<string, string>) => {
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(';');
    const eq = pair.indexOf('=');
    jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
  }
};

/** Logs in through the real form (CSRF token, session cookie) and returns the Cookie header to send. */
export async function logIn(origin: string): Promise<string> {
  const jar = new Map<string, string>();
  const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const form = await fetch(`${origin}/login`);
  setCookies(form, jar);
  const csrf = csrfFrom(await form.text());
  const res = await fetch(`${origin}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: cookie(), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: csrf, email: MERCHANT.email, password: MERCHANT.password }),
  });
  await res.arrayBuffer();
  if (res.status !== 303) throw new Error(`logging in answered ${res.status}`);
  setCookies(res, jar);
  return cookie();
}

export interface Answer {
  status: number;
  bytes: number;
  ms: number;
}

/** One GET on a kept-alive connection; the time is to the last byte of the body. */
export function get(agent: http.Agent, url: string, cookie: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const req = http.get(url, { agent, headers: { cookie, accept: 'text/html' } }, (res) => {
      let bytes = 0;
      res.on('data', (d: Buffer) => (bytes += d.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, ms: Number(process.hrtime.bigint() - started) / 1e6 }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

export interface PageCase {
  name: string;
  /** Which link it is on, and which kind of page (compared across links). */
  link: 'busy' | 'empty';
  page: string;
  path: string;
}

export function pageCases(seeded: Seeded): PageCase[] {
  const cases: PageCase[] = [];
  for (const link of ['busy', 'empty'] as const) {
    const base = `/app/links/${seeded[link].id}`;
    cases.push({ name: `${link} link page`, link, page: 'link page', path: base });
    cases.push({ name: `${link} Views tab p1`, link, page: 'Views tab page 1', path: `${base}?tab=views&page=1` });
    cases.push({ name: `${link} Views tab p5000`, link, page: 'Views tab page 5,000', path: `${base}?tab=views&page=5000` });
  }
  return cases;
}

export interface Latency {
  case: PageCase;
  p50: number;
  p95: number;
  max: number;
  bytes: number;
  bad: number;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];

/**
 * Sequential latency: `warmup` requests per page, then `measured` rounds that request every page once
 * each (round-robin, so drift on the machine hits every page alike).
 */
export async function measureLatency(origin: string, cases: PageCase[], warmup: number, measured: number): Promise<Latency[]> {
  const cookie = await logIn(origin);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const times = cases.map(() => [] as number[]);
    const bytes = cases.map(() => 0);
    const bad = cases.map(() => 0);
    for (const c of cases) {
      for (let n = 0; n < warmup; n++) {
        const a = await get(agent, origin + c.path, cookie);
        if (a.status !== 200) throw new Error(`${c.path} answered ${a.status} (not logged in?)`);
      }
    }
    for (let round = 0; round < measured; round++) {
      for (const [i, c] of cases.entries()) {
        const a = await get(agent, origin + c.path, cookie);
        times[i].push(a.ms);
        bytes[i] = a.bytes;
        if (a.status !== 200) bad[i]++;
      }
    }
    return cases.map((c, i) => {
      const sorted = times[i].sort((a, b) => a - b);
      return { case: c, p50: percentile(sorted, 50), p95: percentile(sorted, 95), max: sorted[sorted.length - 1], bytes: bytes[i], bad: bad[i] };
    });
  } finally {
    agent.destroy();
  }
}

// ---------------------------------------------------------------- diagnostics (in this process)

export interface Diagnostics {
  /** Service calls timed directly: median and p95 over `runs` calls. */
  services: { name: string; p50: number; p95: number }[];
  /** Per page: how many queries it ran, their total time, and the slowest. */
  queries: { name: string; count: number; totalMs: number; slowest: { ms: number; sql: string }[] }[];
  /** The Views tab page-5,000 queries and their plans; the id query is the one that walks 50,000 index entries. */
  plans: { role: string; sql: string; plan: string[]; indexed: boolean; sorts: boolean }[];
  /** The id query uses the (link_id, viewed_at) index and sorts nothing. */
  planOk: boolean;
}

/** Records every query `db` runs while `fn` runs, with its duration. */
async function profile<T>(db: Knex, fn: () => Promise<T>): Promise<{ result: T; queries: { sql: string; bindings: unknown[]; ms: number }[] }> {
  const started = new Map<string, number>();
  const queries: { sql: string; bindings: unknown[]; ms: number }[] = [];
  const onQuery = (q: { __knexQueryUid: string }) => started.set(q.__knexQueryUid, performance.now());
  const onResponse = (_r: unknown, q: { __knexQueryUid: string; sql: string; bindings?: unknown[] }) => {
    const t = started.get(q.__knexQueryUid);
    if (t !== undefined) queries.push({ sql: q.sql, bindings: q.bindings ?? [], ms: performance.now() - t });
  };
  db.on('query', onQuery).on('query-response', onResponse);
  try {
    return { result: await fn(), queries };
  } finally {
    db.off('query', onQuery).off('query-response', onResponse);
  }
}

/** The first `(select …)` inside `sql` (a deferred join's id query) with its share of the bindings. */
function innerSelect(sql: string, bindings: unknown[]): { sql: string; bindings: unknown[] } | null {
  const start = sql.indexOf('(select');
  if (start < 0) return null;
  let depth = 0;
  for (let i = start; i < sql.length; i++) {
    if (sql[i] === '(') depth++;
    else if (sql[i] === ')' && --depth === 0) {
      const inner = sql.slice(start + 1, i);
      const before = (sql.slice(0, start).match(/\?/g) ?? []).length;
      return { sql: inner, bindings: bindings.slice(before, before + (inner.match(/\?/g) ?? []).length) };
    }
  }
  return null;
}

async function explain(db: Knex, sql: string, bindings: unknown[]): Promise<{ plan: string[]; indexed: boolean; sorts: boolean }> {
  if (isMysql(db)) {
    const [rows] = (await db.raw(`explain ${sql}`, bindings as Knex.RawBinding[])) as unknown as [Record<string, unknown>[]];
    const plan = rows.map((r) => `${r.select_type} ${r.table}: type=${r.type} key=${r.key ?? '—'} rows≈${r.rows} ${r.Extra ?? ''}`.trim());
    const onViews = rows.filter((r) => String(r.table) === 'link_views');
    return { plan, indexed: onViews.some((r) => String(r.key ?? '').includes('link_id_viewed_at')), sorts: rows.some((r) => /filesort|temporary/i.test(String(r.Extra ?? ''))) };
  }
  const rows = (await db.raw(`explain query plan ${sql}`, bindings as Knex.RawBinding[])) as { detail: string }[];
  const plan = rows.map((r) => r.detail);
  return { plan, indexed: plan.some((d) => d.includes('link_views_link_id_viewed_at_index')), sorts: plan.some((d) => /TEMP B-TREE/i.test(d)) };
}

/**
 * Times the analytics services on the busy link, profiles the queries behind each page (an app
 * served from this process on the same database), and explains the Views tab page-5,000 queries.
 */
export async function diagnose(env: Record<string, string>, seeded: Seeded, runs: number): Promise<Diagnostics> {
  const rt: Runtime = await createRuntime(loadConfig(env), { migrate: false, recordViews: false });
  const server = http.createServer(buildApp(rt));
  try {
    const merchant = (await rt.services.merchants.getByHandle(seeded.handle))!;
    const busy: Link = await rt.services.links.get(merchant, seeded.busy.id);
    const { analytics } = rt.services;
    const calls: [string, () => Promise<unknown>][] = [
      ['viewsPage(busy, 1)', () => analytics.viewsPage(busy, 1)],
      ['viewsPage(busy, 5000)', () => analytics.viewsPage(busy, 5000)],
      ['activityPage(busy, 1)', () => analytics.activityPage(busy, 1)],
      ['activityPage(busy, 5000)', () => analytics.activityPage(busy, 5000)],
      ['paymentsPage(busy, 1)', () => analytics.paymentsPage(busy, 1)],
      [`daily(busy, ${merchant.timezone})`, () => analytics.daily(busy, merchant.timezone)],
    ];
    const services: Diagnostics['services'] = [];
    for (const [name, call] of calls) {
      for (let i = 0; i < 3; i++) await call();
      const times: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t = performance.now();
        await call();
        times.push(performance.now() - t);
      }
      times.sort((a, b) => a - b);
      services.push({ name, p50: percentile(times, 50), p95: percentile(times, 95) });
    }

    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const cookie = await logIn(origin);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const queries: Diagnostics['queries'] = [];
    try {
      for (const c of pageCases(seeded)) {
        for (let i = 0; i < 3; i++) await get(agent, origin + c.path, cookie);
        const { queries: ran } = await profile(rt.db, () => get(agent, origin + c.path, cookie));
        const slowest = [...ran].sort((a, b) => b.ms - a.ms).slice(0, 2).map((q) => ({ ms: q.ms, sql: q.sql }));
        queries.push({ name: c.name, count: ran.length, totalMs: ran.reduce((n, q) => n + q.ms, 0), slowest });
      }
    } finally {
      agent.destroy();
    }

    // The page is a deferred join: an id query walks the index to the offset, then 10 rows are read
    // by key (and those 10 sorted). The id query is the one that must neither sort nor touch rows.
    const { queries: viewQueries } = await profile(rt.db, () => analytics.viewsPage(busy, 5000));
    const plans: Diagnostics['plans'] = [];
    for (const q of viewQueries.filter((q) => /^\s*select/i.test(q.sql) && q.sql.includes('link_views'))) {
      const inner = innerSelect(q.sql, q.bindings);
      if (inner) plans.push({ role: 'id query', sql: inner.sql, ...(await explain(rt.db, inner.sql, inner.bindings)) });
      plans.push({ role: inner ? 'whole query (10 rows by key)' : 'query', sql: q.sql, ...(await explain(rt.db, q.sql, q.bindings)) });
    }
    const ids = plans.filter((p) => p.role === 'id query' || p.role === 'query');
    return { services, queries, plans, planOk: ids.length > 0 && ids.every((p) => p.indexed && !p.sorts) };
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rt.close();
  }
}

/** Views the run recorded on the pay link, and whether the counter and the rollups equal the rows. */
export async function countViews(env: Record<string, string>, seeded: Seeded): Promise<{ rows: number; counter: number; rollups: number }> {
  const rt = await createRuntime(loadConfig(env), { migrate: false, recordViews: false });
  try {
    const [{ n }] = await rt.db('link_views').where('link_id', seeded.pay.key).count({ n: '*' });
    const { views_count } = await rt.db('links').where('id', seeded.pay.key).first('views_count');
    const [{ v }] = await rt.db('link_stats_hourly').where('link_id', seeded.pay.key).sum({ v: 'views' });
    return { rows: Number(n), counter: Number(views_count), rollups: Number(v ?? 0) };
  } finally {
    await rt.close();
  }
}
