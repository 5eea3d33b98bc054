import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import express from 'express';
import { forEachTarget } from './support/targets.ts';
import { build, type TestEnv } from './support/harness.ts';
import { deferred } from './support/jobs-helpers.ts';
import { waitFor } from './support/wait.ts';
import { apiClient, apiMerchant, expectProblem, type ApiMerchant } from './support/api.ts';
import { apiRoutes } from '../src/features/api/routes.ts';
import { appDeps } from '../src/web/deps.ts';
import { createRenderer, errorHandler } from '../src/core/http.ts';
import { IDEMPOTENCY_LOCK_MS, canonicalJson, createIdempotencyStore, requestHash, type IdempotencyRequest, type IdempotencyStore } from '../src/core/idempotency.ts';
import { sha256Hex } from '../src/core/ids.ts';

/** Serves an app on a loopback port, so 100 requests really are 100 concurrent connections. */
async function listen(app: express.Express | http.RequestListener): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('canonicalJson', () => {
  it('sorts keys at every level and keeps array order', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } })).to.equal('{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}');
    expect(requestHash('POST', '/x', { a: 1, b: 2 })).to.equal(requestHash('post', '/x', { b: 2, a: 1 }));
    expect(requestHash('POST', '/x', { a: 1 })).not.to.equal(requestHash('POST', '/y', { a: 1 }));
  });
});

forEachTarget('Idempotency-Key', (target) => {
  let env: TestEnv;
  let a: ApiMerchant;
  let b: ApiMerchant;
  let call: ReturnType<typeof apiClient>;
  let n = 0;
  const body = () => ({ type: 'amount', name: `Idem ${++n}`, amount: 1200, currency: 'EUR' });
  const linkCount = async (merchantKey = a.merchant.key) => Number((await env.rt.db('links').where({ merchant_id: merchantKey }).count({ c: '*' }))[0].c);
  const key = () => `key-${n}-${Math.random().toString(36).slice(2)}`;

  before(async () => {
    env = await build(target, { apiLimit: { points: 100_000, durationSec: 60 } });
    a = await apiMerchant(env, 'Idem Shop');
    b = await apiMerchant(env, 'Idem Other');
    call = apiClient(env.app, a.secret);
  });
  after(() => env?.close());

  it('replays the stored response for the same key and body', async () => {
    const k = key();
    const req = body();
    const first = await call('post', '/links', req, { 'Idempotency-Key': k }).expect(201);
    expect(first.headers['idempotent-replayed']).to.equal(undefined);
    const before = await linkCount();
    env.clock.advance(60 * 60 * 1000);
    const again = await call('post', '/links', { ...req }, { 'Idempotency-Key': k }).expect(201);
    expect(again.headers['idempotent-replayed']).to.equal('true');
    expect(again.headers['content-type']).to.match(/^application\/json/);
    expect(again.text).to.equal(first.text);
    expect(await linkCount()).to.equal(before);
  });

  it('matches the body regardless of key order', async () => {
    const k = key();
    await call('post', '/links', { type: 'amount', name: 'Order', amount: 100, currency: 'EUR' }, { 'Idempotency-Key': k }).expect(201);
    const again = await call('post', '/links', { currency: 'EUR', amount: 100, name: 'Order', type: 'amount' }, { 'Idempotency-Key': k }).expect(201);
    expect(again.headers['idempotent-replayed']).to.equal('true');
  });

  it('answers 422 idempotency_key_reused for the same key with another body or endpoint', async () => {
    const k = key();
    const req = body();
    await call('post', '/links', req, { 'Idempotency-Key': k }).expect(201);
    const before = await linkCount();
    expectProblem(await call('post', '/links', { ...req, amount: 1300 }, { 'Idempotency-Key': k }), 422, 'idempotency_key_reused');
    expectProblem(await call('post', '/products', { name: 'x', price: 1, currency: 'EUR' }, { 'Idempotency-Key': k }), 422, 'idempotency_key_reused');
    expect(await linkCount()).to.equal(before);
  });

  it('keeps keys per merchant', async () => {
    const k = key();
    const req = body();
    const mine = await call('post', '/links', req, { 'Idempotency-Key': k }).expect(201);
    const theirs = await apiClient(env.app, b.secret)('post', '/links', req, { 'Idempotency-Key': k }).expect(201);
    expect(theirs.headers['idempotent-replayed']).to.equal(undefined);
    expect(theirs.body.id).not.to.equal(mine.body.id);
  });

  it('keys are case-sensitive and stored only as a hash', async () => {
    const k = `Case-${key()}`;
    await call('post', '/links', body(), { 'Idempotency-Key': k }).expect(201);
    const other = await call('post', '/links', body(), { 'Idempotency-Key': k.toLowerCase() }).expect(201);
    expect(other.headers['idempotent-replayed']).to.equal(undefined);
    const rows = await env.rt.db('idempotency_keys').select('key');
    expect(rows.map((r) => r.key)).to.include(sha256Hex(k));
    expect(JSON.stringify(rows)).not.to.include(k);
  });

  it('stores and replays a 4xx answer too', async () => {
    const k = key();
    const first = expectProblem(await call('post', '/links', { type: 'amount', name: 'x', amount: -1 }, { 'Idempotency-Key': k }), 422, 'validation_failed');
    const again = await call('post', '/links', { type: 'amount', name: 'x', amount: -1 }, { 'Idempotency-Key': k });
    expect(expectProblem(again, 422, 'validation_failed')).to.deep.equal(first);
    expect(again.headers['idempotent-replayed']).to.equal('true');
  });

  it('does not store a 5xx: the client can retry with the same key', async () => {
    const k = key();
    const req = body();
    const links = env.rt.services.links;
    const original = links.create;
    links.create = async () => {
      throw new Error('simulated crash inside the handler');
    };
    try {
      expectProblem(await call('post', '/links', req, { 'Idempotency-Key': k }), 500, 'internal_error');
    } finally {
      links.create = original;
    }
    expect(await env.rt.db('idempotency_keys').where({ key: sha256Hex(k) }).first()).to.equal(undefined);
    const retry = await call('post', '/links', req, { 'Idempotency-Key': k }).expect(201);
    expect(retry.headers['idempotent-replayed']).to.equal(undefined);
  });

  it('answers 409 idempotency_key_in_use while the first request runs, then replays it', async () => {
    const k = key();
    const req = body();
    const links = env.rt.services.links;
    const original = links.create;
    const gate = deferred();
    links.create = async (...args: Parameters<typeof original>) => {
      await gate.promise;
      return original(...args);
    };
    let first: Promise<{ status: number; text: string }>;
    try {
      first = call('post', '/links', req, { 'Idempotency-Key': k }).then((r) => r);
      await waitFor(async () => Boolean(await env.rt.db('idempotency_keys').where({ key: sha256Hex(k) }).first()), { timeout: 5_000, message: 'the first claim' });
      const second = await call('post', '/links', req, { 'Idempotency-Key': k });
      expectProblem(second, 409, 'idempotency_key_in_use');
      expect(second.headers['retry-after']).to.equal('1');
    } finally {
      gate.resolve();
      links.create = original;
    }
    const done = await first!;
    expect(done.status).to.equal(201);
    const third = await call('post', '/links', req, { 'Idempotency-Key': k }).expect(201);
    expect(third.text).to.equal(done.text);
  });

  it('takes over a key whose request crashed, once its lock has expired', async () => {
    const k = key();
    const req = body();
    // What a process that died mid-request leaves behind: a running claim and no answer.
    const now = env.clock.now();
    await env.rt.db('idempotency_keys').insert({
      merchant_id: a.merchant.key,
      key: sha256Hex(k),
      method: 'POST',
      path: '/api/v1/links',
      request_hash: requestHash('POST', '/api/v1/links', req),
      state: 'running',
      created_at: now,
      locked_until: new Date(now.getTime() + IDEMPOTENCY_LOCK_MS),
    });
    expectProblem(await call('post', '/links', req, { 'Idempotency-Key': k }), 409, 'idempotency_key_in_use');
    env.clock.advance(IDEMPOTENCY_LOCK_MS + 1);
    const before = await linkCount();
    const taken = await call('post', '/links', req, { 'Idempotency-Key': k }).expect(201);
    expect(await linkCount()).to.equal(before + 1);
    const replay = await call('post', '/links', req, { 'Idempotency-Key': k }).expect(201);
    expect(replay.text).to.equal(taken.text);
    expect(replay.headers['idempotent-replayed']).to.equal('true');
  });

  it('answers 400 for a malformed key and ignores the header on other methods', async () => {
    for (const bad of ['x'.repeat(256), 'caf\u00e9', '']) {
      expectProblem(await call('post', '/links', body(), { 'Idempotency-Key': bad }), 400, 'invalid_idempotency_key');
    }
    await call('post', '/links', body(), { 'Idempotency-Key': 'k'.repeat(255) }).expect(201);
    const link = (await call('post', '/links', body()).expect(201)).body;
    await call('patch', `/links/${link.id}`, { name: 'one' }, { 'Idempotency-Key': 'patch-key' }).expect(200);
    const second = await call('patch', `/links/${link.id}`, { name: 'two' }, { 'Idempotency-Key': 'patch-key' }).expect(200);
    expect(second.body.name).to.equal('two');
  });

  it('prunes keys after 24 hours, and only then may a key be used afresh', async () => {
    const old = key();
    const req = body();
    const first = await call('post', '/links', req, { 'Idempotency-Key': old }).expect(201);
    env.clock.advance(23 * 60 * 60 * 1000);
    const fresh = key();
    await call('post', '/links', body(), { 'Idempotency-Key': fresh }).expect(201);
    await env.rt.scheduler.tick('idempotency.prune');
    await env.rt.jobs.drain();
    expect(await env.rt.db('idempotency_keys').where({ key: sha256Hex(old) }).first()).not.to.equal(undefined);
    env.clock.advance(2 * 60 * 60 * 1000);
    await env.rt.scheduler.tick('idempotency.prune');
    await env.rt.jobs.drain();
    expect(await env.rt.db('idempotency_keys').where({ key: sha256Hex(old) }).first()).to.equal(undefined);
    expect(await env.rt.db('idempotency_keys').where({ key: sha256Hex(fresh) }).first()).not.to.equal(undefined);
    const afresh = await call('post', '/links', req, { 'Idempotency-Key': old }).expect(201);
    expect(afresh.body.id).not.to.equal(first.body.id);
  });

  it('one of 100 concurrent claims of a key wins at the store', async () => {
    const store = createIdempotencyStore({ db: env.rt.db, clock: env.clock });
    const r = { merchantKey: a.merchant.key, key: 'store-race', method: 'POST', path: '/api/v1/links', requestHash: requestHash('POST', '/api/v1/links', {}) };
    const claims = await Promise.all(Array.from({ length: 100 }, () => store.claim(r)));
    expect(claims.filter((c) => c.outcome === 'proceed')).to.have.length(1);
    expect(claims.filter((c) => c.outcome === 'in_use')).to.have.length(99);
  });

  describe('100 parallel POSTs with one key', function () {
    this.timeout(120_000);
    const ticket = { type: 'amount', name: 'Concert ticket', amount: 4500, currency: 'EUR' };

    /**
     * Sends 100 POSTs at once and holds every one that reaches links.create until each request has
     * either reached it or been answered, so all 100 overlap however fast the database is (SQLite
     * answers in microseconds and would otherwise serialise them). Then lets them finish.
     */
    async function hundredOverlapping(url: string, secret: string, req: unknown) {
      const links = env.rt.services.links;
      const original = links.create;
      const gate = deferred();
      let entered = 0;
      let answered = 0;
      links.create = async (...args: Parameters<typeof original>) => {
        entered += 1;
        await gate.promise;
        return original(...args);
      };
      try {
        const c = apiClient(url, secret);
        const all = Promise.all(
          Array.from({ length: 100 }, () =>
            c('post', '/links', req, { 'Idempotency-Key': 'race-key' }).then((r) => {
              answered += 1;
              return r;
            }),
          ),
        );
        await waitFor(() => entered + answered >= 100, { timeout: 30_000, message: 'all 100 requests to reach the handler or be answered' });
        gate.resolve();
        return { results: await all, entered };
      } finally {
        gate.resolve();
        links.create = original;
      }
    }

    it('create exactly one link; every answer is that 201 or a 409', async () => {
      const m = await apiMerchant(env, 'Race');
      const served = await listen(env.app);
      try {
        const { results, entered } = await hundredOverlapping(served.url, m.secret, ticket);
        const created = results.filter((r) => r.status === 201);
        const busy = results.filter((r) => r.status === 409);
        expect(created.length + busy.length, results.map((r) => `${r.status} ${r.text.slice(0, 120)}`).join('\n')).to.equal(100);
        expect(entered, 'requests that ran the handler').to.equal(1);
        expect(created.length).to.be.at.least(1);
        for (const r of busy) expect(JSON.parse(r.text).code).to.equal('idempotency_key_in_use');
        expect(new Set(created.map((r) => r.text)).size, 'identical 201 bodies').to.equal(1);
        expect(await linkCount(m.merchant.key)).to.equal(1);
        const after = await apiClient(served.url, m.secret)('post', '/links', ticket, { 'Idempotency-Key': 'race-key' }).expect(201);
        expect(after.headers['idempotent-replayed']).to.equal('true');
        expect(after.text).to.equal(created[0].text);
      } finally {
        await served.close();
      }
    });

    it('negative control: an unsafe store (look up, run, save afterwards) lets duplicates through', async () => {
      // The classic mistake: look for a saved answer, run the request, save the answer afterwards.
      // Nothing claims the key up front, so overlapping requests all run.
      const pending = new Map<number, IdempotencyRequest>();
      let next = 0;
      const unsafe: IdempotencyStore = {
        async claim(r) {
          const hit = await env.rt.db('idempotency_keys').where({ merchant_id: r.merchantKey, key: sha256Hex(r.key), state: 'done' }).first();
          if (hit) return { outcome: 'replay', response: { status: Number(hit.response_status), body: String(hit.response_body) } };
          pending.set(++next, r);
          return { outcome: 'proceed', lease: { id: next, lockedUntil: new Date(0) } };
        },
        async complete(lease, response) {
          const r = pending.get(lease.id)!;
          const now = env.clock.now();
          await env.rt
            .db('idempotency_keys')
            .insert({ merchant_id: r.merchantKey, key: sha256Hex(r.key), method: r.method, path: r.path, request_hash: r.requestHash, state: 'done', response_status: response.status, response_body: response.body, created_at: now, locked_until: now })
            .onConflict(['merchant_id', 'key'])
            .ignore();
        },
        async release() {},
      };
      const app = express();
      app.use('/api/v1', apiRoutes(appDeps(env.rt), { idempotencyStore: unsafe }));
      app.use(errorHandler(env.rt.log, createRenderer(env.rt.eta)));
      const m = await apiMerchant(env, 'Unsafe');
      const served = await listen(app);
      try {
        const { results, entered } = await hundredOverlapping(served.url, m.secret, ticket);
        expect(results.every((r) => r.status < 500)).to.equal(true);
        expect(entered, 'requests that ran the handler').to.equal(100);
        expect(await linkCount(m.merchant.key), 'links created through the unsafe store').to.be.greaterThan(1);
      } finally {
        await served.close();
      }
    });

    it('negative control: without the header, 100 parallel POSTs make 100 links', async () => {
      const m = await apiMerchant(env, 'No key');
      const served = await listen(env.app);
      try {
        const results = await Promise.all(
          Array.from({ length: 100 }, (_, i) => apiClient(served.url, m.secret)('post', '/links', { ...ticket, name: `Ticket ${i}` }).then((r) => r)),
        );
        expect(results.map((r) => r.status).filter((s) => s !== 201)).to.deep.equal([]);
        expect(await linkCount(m.merchant.key)).to.equal(100);
      } finally {
        await served.close();
      }
    });
  });
});
