import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, createTestDatabase, signUp, useEnv, type Account, type TestEnv, deleteRedisPrefix } from './support/harness.ts';
import { TcpProxy } from './support/tcp-proxy.ts';
import { waitFor } from './support/wait.ts';
import { loadConfig } from '../src/config.ts';
import { createRuntime, type Runtime } from '../src/runtime.ts';
import { buildApp } from '../src/app.ts';
import { createLogger } from '../src/core/log.ts';
import { randomToken } from '../src/core/ids.ts';
import type { DeadlineStore } from '../src/core/session-store.ts';

/** Waits until readiness answers `status` (dependencies reconnect with back-off, so recovery takes a moment). */
const readiness = (app: Parameters<typeof supertest>[0], status: 200 | 503) =>
  waitFor(async () => (await supertest(app).get('/health/ready').timeout(6_000)).status === status, { timeout: 15_000, interval: 100, message: `/health/ready to answer ${status}` });

forEachTarget('health', (target) => {
  describe('liveness and readiness', () => {
    const env = useEnv(target);

    it('GET /health answers 200 {status: ok}, uncached, without a cookie', async () => {
      const res = await supertest(env.app).get('/health').expect(200);
      expect(res.body).to.deep.equal({ status: 'ok' });
      expect(res.headers['cache-control']).to.equal('no-store');
      expect(res.headers['set-cookie']).to.equal(undefined);
    });

    it('GET /health/ready answers 200 with a check per dependency', async () => {
      const res = await supertest(env.app).get('/health/ready').expect(200);
      const checks: Record<string, unknown> = { database: { status: 'ok' } };
      if (target.redisUrl) checks.redis = { status: 'ok' };
      expect(res.body).to.deep.equal({ status: 'ready', checks });
      expect(res.headers['set-cookie']).to.equal(undefined);
    });

    it('HEAD and query strings work on health routes', async () => {
      await supertest(env.app).head('/health').expect(200);
      await supertest(env.app).get('/health/ready?verbose=1').expect(200);
    });
  });

  if (target.redisUrl) {
    describe('when Redis goes away', function () {
      this.timeout(60_000);
      let env: TestEnv;
      let proxy: TcpProxy;
      let acct: Account;
      let apiKey: string;

      before(async () => {
        const proxied = await TcpProxy.forUrl(target.redisUrl!, 6379);
        proxy = proxied.proxy;
        env = await build(target, { env: { REDIS_URL: proxied.url } });
        acct = await signUp(env.app, { name: 'Before The Outage' });
        const merchant = await env.rt.services.merchants.getByHandle(acct.handle);
        apiKey = (await env.rt.services.apiKeys.create(merchant!, { name: 'outage' })).secret;
        await env.rt.services.links.create(merchant!, { type: 'amount', name: 'During the outage', amount: 1500, path: 'during-outage' });
      });
      afterEach(async () => {
        proxy.up();
        await readiness(env.app, 200);
      });
      after(async () => {
        await env?.close();
        await proxy?.close();
      });

      const unchanged = async () => expect((await env.rt.services.merchants.getByHandle(acct.handle))!.name).to.equal('Before The Outage');

      for (const mode of ['down', 'blackhole'] as const) {
        const label = mode === 'down' ? 'refuses connections' : 'stops answering';
        it(`when Redis ${label}: ready answers 503 JSON naming redis, liveness stays 200`, async () => {
          proxy[mode]();
          const res = await supertest(env.app).get('/health/ready').timeout(6_000).expect(503);
          expect(res.headers['content-type']).to.match(/^application\/json/);
          expect(res.body.status).to.equal('unavailable');
          expect(res.body.checks.database).to.deep.equal({ status: 'ok' });
          expect(res.body.checks.redis.status).to.equal('down');
          expect(JSON.stringify(res.body)).not.to.include('127.0.0.1');
          await supertest(env.app).get('/health').expect(200);
        });

        it(`when Redis ${label}: dashboard pages answer 503, not 500, and never run a change without CSRF`, async () => {
          proxy[mode]();
          // A reset connection is noticed at once; a silent one only when a command times out.
          if (mode === 'down') await waitFor(() => !env.rt.redis!.isReady, { message: 'the Redis client to notice the outage' });
          const dash = await acct.agent.get('/app').timeout(6_000);
          expect(dash.status).to.equal(503);
          await acct.agent.get('/login').timeout(6_000).expect(503);

          const noToken = await acct.agent.post('/app/settings').type('form').timeout(6_000).send({ name: 'Changed Without Token', handle: acct.handle, currency: 'EUR', timezone: 'UTC', brand_color: '#000000' });
          expect(noToken.status).to.be.oneOf([403, 503]);
          const withToken = await acct.agent
            .post('/app/settings')
            .type('form')
            .timeout(6_000)
            .send({ _csrf: acct.csrf, name: 'Changed During Outage', handle: acct.handle, currency: 'EUR', timezone: 'UTC', brand_color: '#000000' });
          expect(withToken.status).to.equal(503);
          await unchanged();
          expect(dash.headers['set-cookie']).to.equal(undefined);
        });

        if (mode === 'blackhole') {
          it('when Redis stops answering: after one unanswered session call, one request at a time waits on Redis and the others answer 503 at once', async () => {
            proxy.blackhole();
            // The first waits out the session store's deadline: Redis is silent from then on.
            expect((await acct.agent.get('/app').timeout(6_000)).status).to.equal(503);
            const finished: string[] = [];
            const trying = acct.agent.get('/app').timeout(6_000).then((r) => (finished.push('trying'), r.status));
            await waitFor(() => (env.rt.sessionStore as DeadlineStore).trying, { message: 'the second request to be trying the session store' });
            const others = await Promise.all(Array.from({ length: 3 }, () => acct.agent.get('/app').timeout(6_000).then((r) => (finished.push('other'), r.status))));
            expect(others).to.deep.equal([503, 503, 503]);
            expect(await trying).to.equal(503);
            // Without the shortcut each would wait its own deadline, ending after the one that started first.
            expect(finished).to.deep.equal(['other', 'other', 'other', 'trying']);
          });
        }

        it(`when Redis ${label}: pay pages and checkout keep answering (rate limits fall back to memory)`, async () => {
          proxy[mode]();
          if (mode === 'down') await waitFor(() => !env.rt.redis!.isReady, { message: 'the Redis client to notice the outage' });
          await supertest(env.app).get(`/${acct.handle}/during-outage`).timeout(6_000).expect(200);
          const res = await supertest(env.app).post(`/${acct.handle}/during-outage`).type('form').timeout(6_000).send({ name: 'Ann Example', email: 'ann@example.test' });
          expect(res.status).to.equal(303);
        });

        it(`when Redis ${label}: the JSON API and health keep working, and sessions come back afterwards`, async () => {
          proxy[mode]();
          await supertest(env.app).get('/api/v1/me').set('Authorization', `Bearer ${apiKey}`).timeout(6_000).expect(200);
          proxy.up();
          await readiness(env.app, 200);
          await waitFor(async () => (await acct.agent.get('/app')).status === 200, { timeout: 15_000, interval: 100, message: 'the dashboard to answer 200 again' });
          // The same session and CSRF token still work: nothing was lost in the outage.
          await acct.agent.post('/app/settings').type('form').send({ _csrf: acct.csrf, name: 'Before The Outage', handle: acct.handle, currency: 'EUR', timezone: 'UTC', brand_color: '#4f46e5' }).expect(303);
        });
      }
    });
  }

  if (target.mysqlUrl) {
    describe('when the database goes away', function () {
      this.timeout(60_000);
      let database: Awaited<ReturnType<typeof createTestDatabase>>;
      let proxy: TcpProxy;
      let rt: Runtime;
      let app: ReturnType<typeof buildApp>;
      let dataDir: string;
      let acct: Account;
      const prefix = `ptest_${randomToken(8)}`;

      before(async () => {
        database = await createTestDatabase(target);
        const proxied = await TcpProxy.forUrl(database.url, 3306);
        proxy = proxied.proxy;
        dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paylink-health-'));
        const config = loadConfig({
          NODE_ENV: 'test',
          DATABASE_URL: proxied.url,
          REDIS_URL: target.redisUrl ?? '',
          REDIS_PREFIX: prefix,
          SESSION_SECRET: 'health-test-session-secret-long-enough-0123',
          BASE_URL: 'http://pay.test',
          PAYLINK_DATA_DIR: dataDir,
        });
        rt = await createRuntime(config, { log: createLogger((process.env.TEST_LOG_LEVEL as 'silent') ?? 'silent') });
        app = buildApp(rt);
        acct = await signUp(app);
      });
      afterEach(async () => {
        proxy.up();
        await readiness(app, 200);
      });
      after(async () => {
        await rt?.close();
        await proxy?.close();
        await database?.drop();
        fs.rmSync(dataDir, { recursive: true, force: true });
        if (target.redisUrl) await deleteRedisPrefix(target.redisUrl, prefix);
      });

      for (const mode of ['down', 'blackhole'] as const) {
        const label = mode === 'down' ? 'refuses connections' : 'stops answering';
        it(`when the database ${label}: ready answers 503 naming the database, liveness stays 200, and it recovers`, async () => {
          proxy[mode]();
          const res = await supertest(app).get('/health/ready').timeout(6_000).expect(503);
          expect(res.body.status).to.equal('unavailable');
          expect(res.body.checks.database.status).to.equal('down');
          await supertest(app).get('/health').expect(200);
          proxy.up();
          await readiness(app, 200);
        });
      }

      it('when the database stops answering: pages, pay pages, the API and checkout answer 503 without waiting for it, and it recovers', async () => {
        const merchant = (await rt.services.merchants.getByHandle(acct.handle))!;
        const link = await rt.services.links.create(merchant, { type: 'amount', name: 'Stall', amount: 1500, path: 'stall' });
        await supertest(app).get(`/${acct.handle}/stall`).expect(200);
        // Warm connections in the pool: each would otherwise wait on a server that never answers.
        await Promise.all([0, 1, 2, 3].map(() => rt.db.raw('select 1')));
        const payments = async () => Number(((await rt.db('payments').count({ n: '*' }).first()) as { n: number | string }).n);
        const before = await payments();
        proxy.blackhole();
        // Before the statement deadlines these waited 20–50 s (no acquire deadline, no statement limit):
        // the 8 s request timeout fails the test long before that.
        const answers = await Promise.all([
          acct.agent.get('/app').timeout(8_000),
          supertest(app).get('/api/v1/me').set('Authorization', `Bearer pl_live_${'x'.repeat(40)}`).timeout(8_000),
          supertest(app).post(`/${acct.handle}/stall`).type('form').send({ name: 'Ann Example', email: 'ann@example.test' }).timeout(8_000),
          supertest(app).get(`/${acct.handle}/no-such-link`).timeout(8_000),
        ]);
        expect(answers.map((r) => r.status)).to.deep.equal([503, 503, 503, 503]);
        expect(answers[1].body.code).to.equal('service_unavailable');
        proxy.up();
        await readiness(app, 200);
        await waitFor(async () => (await acct.agent.get('/app')).status === 200, { timeout: 15_000, interval: 100, message: 'the dashboard to answer 200 again' });
        expect(await payments()).to.equal(before);
        const res = await supertest(app).post(`/${acct.handle}/stall`).type('form').send({ name: 'Ann Example', email: 'ann@example.test' });
        expect(res.status).to.equal(303);
        expect(await payments()).to.equal(before + 1);
        expect(link.id).to.be.a('string');
      });

      it('when the database refuses connections: pages and the API answer 503, not 500', async () => {
        proxy.down();
        await readiness(app, 503);
        const dash = await acct.agent.get('/app').timeout(10_000);
        expect(dash.status).to.equal(503);
        const api = await supertest(app).get('/api/v1/me').set('Authorization', `Bearer pl_live_${'x'.repeat(40)}`).timeout(10_000);
        expect(api.status).to.equal(503);
        expect(api.body.code).to.equal('service_unavailable');
      });
    });
  }
});
