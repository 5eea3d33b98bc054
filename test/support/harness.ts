/**
 * build(target) → a fresh runtime and app on a fresh database (a temp SQLite file, or a new MariaDB
 * database) with its own Redis key prefix, a manual clock, and a close() that removes it all.
 */
import knexFactory from 'knex';
import supertest from 'supertest';
import { createClient } from 'redis';
import type { Config } from '../../src/config.ts';
import { scratchConfig, scratchSqliteDatabase } from '../../src/core/scratch.ts';
import { createRuntime, type Runtime, type RuntimeOptions } from '../../src/runtime.ts';
import { buildApp } from '../../src/app.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { createLogger } from '../../src/core/log.ts';
import { randomToken } from '../../src/core/ids.ts';
import type { Target } from './targets.ts';

export interface TestEnv {
  rt: Runtime;
  app: ReturnType<typeof buildApp>;
  clock: ManualClock;
  config: Readonly<Config>;
  /** A second runtime on the same database and Redis (another "process"). */
  sibling(opts?: RuntimeOptions): Promise<Runtime>;
  close(): Promise<void>;
}

export interface BuildOptions extends RuntimeOptions {
  env?: Record<string, string>;
}

export async function createTestDatabase(target: Target): Promise<{ url: string; drop(): Promise<void> }> {
  if (!target.mysqlUrl) return scratchSqliteDatabase();
  const server = new URL(target.mysqlUrl);
  const name = `paylink_t_${randomToken(10).toLowerCase()}`;
  const admin = knexFactory({ client: 'mysql2', connection: { uri: target.mysqlUrl } as never, pool: { min: 0, max: 1 } });
  await admin.raw(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  await admin.destroy();
  server.pathname = `/${name}`;
  return {
    url: server.toString(),
    drop: async () => {
      const a = knexFactory({ client: 'mysql2', connection: { uri: target.mysqlUrl } as never, pool: { min: 0, max: 1 } });
      await a.raw(`DROP DATABASE IF EXISTS \`${name}\``);
      await a.destroy();
    },
  };
}

/** Removes every key under a Redis prefix (what a test runtime left behind). */
export async function deleteRedisPrefix(url: string, prefix: string): Promise<void> {
  const client = createClient({ url });
  client.on('error', () => {});
  await client.connect();
  for await (const keys of client.scanIterator({ MATCH: `${prefix}:*`, COUNT: 500 })) {
    if (keys.length) await client.del(keys);
  }
  await client.quit();
}

/** Suites run many checkouts from one address: velocity limits are off unless a suite sets them (payment-requests does). */
const UNLIMITED_CHECKOUTS = { perIp: { points: 1_000_000, durationSec: 1 }, perRequest: { points: 1_000_000, durationSec: 1 }, declines: { points: 1_000_000, durationSec: 1 } };

export async function build(target: Target, opts: BuildOptions = {}): Promise<TestEnv> {
  const database = await createTestDatabase(target);
  const prefix = `ptest_${randomToken(8)}`;
  const scratch = scratchConfig({
    DATABASE_URL: database.url,
    ...(target.redisUrl ? { REDIS_URL: target.redisUrl } : {}),
    REDIS_PREFIX: prefix,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...opts.env,
  });
  const { config } = scratch;
  const clock = new ManualClock('2026-03-02T09:00:00Z');
  const log = opts.log ?? createLogger(config.logLevel);
  const runtimes: Runtime[] = [];
  const make = async (o: RuntimeOptions = {}) => {
    const rt = await createRuntime(config, { clock, log, checkoutLimits: UNLIMITED_CHECKOUTS, ...opts, ...o, migrate: runtimes.length === 0 });
    runtimes.push(rt);
    return rt;
  };
  let rt: Runtime;
  try {
    rt = await make();
  } catch (err) {
    await database.drop();
    throw err;
  }
  return {
    rt,
    app: buildApp(rt),
    clock,
    config,
    sibling: (o) => make(o),
    async close() {
      for (const r of runtimes.reverse()) await r.close().catch(() => {});
      if (target.redisUrl) await deleteRedisPrefix(target.redisUrl, prefix);
      await database.drop();
      scratch.remove();
    },
  };
}

/**
 * A fresh env for a suite, with its teardown registered alongside: call it in a `describe` body; it
 * builds in `before` (or `beforeEach` with `{ each: true }`) and closes in the matching `after`. The
 * returned object stands for the current env, so `env.rt`, `env.app`, `env.clock` work inside hooks
 * and tests. `opts` may be a function, read when the env is built (e.g. a fake server's URL).
 *
 * @example
 * forEachTarget('checkout', (target) => {
 *   const env = useEnv(target);
 *   it('…', async () => { await env.rt.jobs.drain(); });
 * });
 */
export function useEnv(target: Target, opts: BuildOptions | (() => BuildOptions) = {}, how: { each?: boolean } = {}): TestEnv {
  let current: TestEnv | null = null;
  (how.each ? beforeEach : before)(async function () {
    current = await build(target, typeof opts === 'function' ? opts() : opts);
  });
  (how.each ? afterEach : after)(async function () {
    const env = current;
    current = null;
    await env?.close();
  });
  return new Proxy({} as TestEnv, {
    get(_, key) {
      if (!current) throw new Error(`useEnv: env.${String(key)} read outside the suite's hooks and tests (the env is built in before())`);
      // Not bound: env.app is itself a function (an Express app), and TestEnv's methods need no `this`.
      return Reflect.get(current, key);
    },
  });
}

/** The message shown under a field of a dashboard form ('' when none). */
/**
 * The customer's receipt URL for a payment (path and `?k=` key), as the redirect after paying and the
 * receipt email give it; with `action` (`cancel-subscription`, `forget-card`), the keyed URL it posts to.
 */
export function receiptPath(env: Pick<TestEnv, 'rt'>, paymentId: string, action?: string): string {
  const url = new URL(env.rt.services.checkout.receiptUrl({ id: paymentId }));
  return `${url.pathname}${action ? `/${action}` : ''}${url.search}`;
}

export function fieldError(html: string, field: string): string {
  const m = new RegExp(`<p class="error" id="f-${field}-error"[^>]*>([^<]*)</p>`).exec(html);
  if (!m) throw new Error(`no error slot for ${field}`);
  return m[1].trim();
}

/** Reads the CSRF token out of a rendered page. */
export function csrfFrom(html: string): string {
  const m = /name="_csrf" value="([^"]+)"/.exec(html);
  if (!m) throw new Error('no CSRF token in page');
  return m[1];
}

let counter = 0;
export function uniqueHandle(base = 'shop'): string {
  counter += 1;
  return `${base}-${counter}-${randomToken(4).toLowerCase()}`;
}

export interface Account {
  agent: ReturnType<typeof supertest.agent>;
  handle: string;
  email: string;
  password: string;
  csrf: string;
}

/** Signs a merchant up through the real form and returns a logged-in agent. */
export async function signUp(app: TestEnv['app'], fields: Partial<{ name: string; handle: string; email: string; password: string }> = {}): Promise<Account> {
  const agent = supertest.agent(app);
  const handle = fields.handle ?? uniqueHandle();
  const email = fields.email ?? `${handle}@example.test`;
  const password = fields.password ?? 'correct horse battery';
  const page = await agent.get('/signup').expect(200);
  const res = await agent
    .post('/signup')
    .type('form')
    .send({ _csrf: csrfFrom(page.text), name: fields.name ?? `Shop ${handle}`, handle, email, password });
  if (res.status !== 303) throw new Error(`sign-up failed with ${res.status}: ${res.text.slice(0, 500)}`);
  const dash = await agent.get('/app').expect(200);
  return { agent, handle, email, password, csrf: csrfFrom(dash.text) };
}
