import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, signUp, type TestEnv } from './support/harness.ts';

/** Asserts an RFC 9457 problem+json body with our fields and returns it. */
function expectProblem(res: supertest.Response, status: number, code: string) {
  expect(res.status, res.text).to.equal(status);
  expect(res.headers['content-type']).to.match(/^application\/problem\+json/);
  const body = JSON.parse(res.text);
  expect(body).to.have.all.keys('type', 'title', 'status', 'detail', 'code', 'errors', 'instance');
  expect(body.status).to.equal(status);
  expect(body.code).to.equal(code);
  expect(body.type).to.be.a('string').and.not.equal('');
  expect(body.title).to.be.a('string').and.not.equal('');
  expect(body.errors).to.be.an('array');
  expect(res.headers['set-cookie'], 'the API never sets a cookie').to.equal(undefined);
  return body;
}

forEachTarget('JSON API v1', (target) => {
  let env: TestEnv;
  let secret: string;
  let handle: string;

  before(async () => {
    env = await build(target);
    const acct = await signUp(env.app, { name: 'API Shop' });
    handle = acct.handle;
    const merchant = await env.rt.services.merchants.getByHandle(handle);
    ({ secret } = await env.rt.services.apiKeys.create(merchant!, { name: 'test' }));
  });
  after(() => env?.close());

  const api = () => supertest(env.app);

  it('GET /api/v1/me answers the key’s merchant as JSON, uncached, without a cookie', async () => {
    const res = await api().get('/api/v1/me').set('Authorization', `Bearer ${secret}`).expect(200);
    expect(res.headers['content-type']).to.match(/^application\/json/);
    expect(res.headers['cache-control']).to.equal('no-store');
    expect(res.headers['set-cookie']).to.equal(undefined);
    expect(res.body).to.include({ object: 'merchant', handle, name: 'API Shop', currency: 'EUR', timezone: 'UTC', button_style: 'rounded', button_label: 'pay' });
    expect(res.body.id).to.match(/^mer_/);
    expect(res.body.created_at).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(res.body).not.to.have.property('key');
  });

  it('accepts the scheme in any case', async () => {
    await api().get('/api/v1/me').set('Authorization', `bearer ${secret}`).expect(200);
  });

  it('answers 401 missing_api_key without an Authorization header', async () => {
    const res = await api().get('/api/v1/me');
    expectProblem(res, 401, 'missing_api_key');
    expect(res.headers['www-authenticate']).to.match(/^Bearer/);
  });

  for (const header of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer ', `Token ${'x'.repeat(20)}`, `Bearer a b`]) {
    it(`answers 401 missing_api_key for the malformed header "${header}"`, async () => {
      expectProblem(await api().get('/api/v1/me').set('Authorization', header), 401, 'missing_api_key');
    });
  }

  for (const [label, key] of [
    ['a wrong key', 'pl_live_' + 'x'.repeat(40)],
    ['a key without our prefix', 'sk_test_123'],
    ['a very long key', 'pl_live_' + 'y'.repeat(5000)],
    ['a key with odd characters', 'pl_live_%00\u00e9\u{1F600}'],
  ] as const) {
    it(`answers 401 invalid_api_key for ${label}`, async () => {
      const res = await api().get('/api/v1/me').set('Authorization', `Bearer ${encodeURI(key)}`);
      expectProblem(res, 401, 'invalid_api_key');
    });
  }

  it('answers 401 invalid_api_key once a key is revoked', async () => {
    const merchant = await env.rt.services.merchants.getByHandle(handle);
    const { apiKey, secret: doomed } = await env.rt.services.apiKeys.create(merchant!, { name: 'doomed' });
    await api().get('/api/v1/me').set('Authorization', `Bearer ${doomed}`).expect(200);
    await env.rt.services.apiKeys.revoke(merchant!, apiKey.id);
    expectProblem(await api().get('/api/v1/me').set('Authorization', `Bearer ${doomed}`), 401, 'invalid_api_key');
  });

  it('does not accept a dashboard session instead of a key', async () => {
    const acct = await signUp(env.app);
    expectProblem(await acct.agent.get('/api/v1/me'), 401, 'missing_api_key');
  });

  it('answers 400 malformed_json for a broken JSON body, never 500', async () => {
    for (const body of ['{"name": ', '{name: 1}', '', 'null', '"just a string"', '\u0000']) {
      const res = await api().post('/api/v1/links').set('Authorization', `Bearer ${secret}`).set('Content-Type', 'application/json').send(body);
      if (body === '') expectProblem(res, 422, 'validation_failed'); // no body at all is not malformed: just missing fields
      else expectProblem(res, 400, 'malformed_json');
    }
  });

  it('answers 401 before looking at the body of an anonymous request', async () => {
    const res = await api().post('/api/v1/links').set('Content-Type', 'application/json').send('{"broken": ');
    expectProblem(res, 401, 'missing_api_key');
  });

  it('answers 415 for a body that is not JSON and 413 for an oversized one', async () => {
    const form = await api().post('/api/v1/links').set('Authorization', `Bearer ${secret}`).type('form').send({ name: 'x' });
    expectProblem(form, 415, 'unsupported_media_type');
    const huge = await api().post('/api/v1/links').set('Authorization', `Bearer ${secret}`).set('Content-Type', 'application/json').send(JSON.stringify({ name: 'x'.repeat(200_000) }));
    expectProblem(huge, 413, 'payload_too_large');
  });

  it('answers 404 problem+json for an unknown endpoint, in and outside v1', async () => {
    const body = expectProblem(await api().get('/api/v1/nope?x=1').set('Authorization', `Bearer ${secret}`), 404, 'not_found');
    expect(body.detail).not.to.include('x=1');
    expectProblem(await api().delete('/api/v1/me').set('Authorization', `Bearer ${secret}`), 404, 'not_found');
    expectProblem(await api().get('/api/v2/me').set('Authorization', `Bearer ${secret}`), 404, 'not_found');
  });

  it('updates last_used_at when a key is used, at most once a minute', async () => {
    const merchant = await env.rt.services.merchants.getByHandle(handle);
    const { apiKey, secret: fresh } = await env.rt.services.apiKeys.create(merchant!, { name: 'usage' });
    expect(apiKey.lastUsedAt).to.equal(null);
    const lastUsed = async () => (await env.rt.services.apiKeys.list(merchant!.key)).find((k) => k.id === apiKey.id)!.lastUsedAt?.toISOString();

    await api().get('/api/v1/me').set('Authorization', `Bearer ${fresh}`).expect(200);
    const first = env.clock.now().toISOString();
    expect(await lastUsed()).to.equal(first);

    env.clock.advance(30_000);
    await api().get('/api/v1/me').set('Authorization', `Bearer ${fresh}`).expect(200);
    expect(await lastUsed()).to.equal(first);

    env.clock.advance(60_000);
    await api().get('/api/v1/me').set('Authorization', `Bearer ${fresh}`).expect(200);
    expect(await lastUsed()).to.equal(env.clock.now().toISOString());
  });

  it('stores keys only as a SHA-256 hash', async () => {
    const rows = await env.rt.db('api_keys').select('*');
    for (const row of rows) {
      expect(JSON.stringify(row)).not.to.include(secret);
      expect(row.secret_hash).to.match(/^[0-9a-f]{64}$/);
    }
  });
});

forEachTarget('JSON API v1 rate limits', (target) => {
  let env: TestEnv;
  before(async () => {
    env = await build(target, { apiLimit: { points: 3, durationSec: 60 } });
  });
  after(() => env?.close());

  it('answers 429 problem+json with Retry-After once a key exceeds its limit, per key', async () => {
    const acct = await signUp(env.app);
    const merchant = await env.rt.services.merchants.getByHandle(acct.handle);
    const { secret: busy } = await env.rt.services.apiKeys.create(merchant!, { name: 'busy' });
    const { secret: quiet } = await env.rt.services.apiKeys.create(merchant!, { name: 'quiet' });
    for (let i = 0; i < 3; i++) await supertest(env.app).get('/api/v1/me').set('Authorization', `Bearer ${busy}`).expect(200);
    const res = await supertest(env.app).get('/api/v1/me').set('Authorization', `Bearer ${busy}`);
    expectProblem(res, 429, 'rate_limited');
    expect(Number(res.headers['retry-after'])).to.be.within(1, 60);
    await supertest(env.app).get('/api/v1/me').set('Authorization', `Bearer ${quiet}`).expect(200);
  });
});
