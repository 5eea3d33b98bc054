import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, csrfFrom, signUp, uniqueHandle, type TestEnv } from './support/harness.ts';

forEachTarget('accounts', (target) => {
  let env: TestEnv;
  before(async () => {
    env = await build(target, { loginLimits: { perIpAccount: { points: 3, durationSec: 900 }, perAccount: { points: 6, durationSec: 900 }, perIp: { points: 50, durationSec: 3600 } } });
  });
  after(() => env?.close());

  it('signs a merchant up, shows the dashboard and records merchant.created', async () => {
    const acct = await signUp(env.app, { name: 'Acme Ltd' });
    const dash = await acct.agent.get('/app').expect(200);
    expect(dash.text).to.include('Welcome, Acme Ltd');
    expect(dash.text).to.include(`http://pay.test/${acct.handle}`);
    const merchant = await env.rt.services.merchants.getByHandle(acct.handle);
    const events = await env.rt.events.listForMerchant(merchant!.key);
    expect(events.map((e) => e.type)).to.deep.equal(['merchant.created']);
  });

  it('stores the password as argon2id, never in plain text', async () => {
    const acct = await signUp(env.app);
    const row = await env.rt.db('users').where({ email: acct.email }).first();
    expect(row.password_hash).to.match(/^\$argon2id\$/);
    expect(row.password_hash).not.to.include(acct.password);
  });

  it('sends visitors without a session to the login page', async () => {
    const res = await supertest(env.app).get('/app/settings').expect(303);
    expect(res.headers.location).to.equal('/login?next=%2Fapp%2Fsettings');
  });

  it('logs in with the right password, regenerating the session, and logs out', async () => {
    const acct = await signUp(env.app);
    const agent = supertest.agent(env.app);
    const page = await agent.get('/login').expect(200);
    const before = String(page.headers['set-cookie']).split(';')[0];
    const res = await agent.post('/login').type('form').send({ _csrf: csrfFrom(page.text), email: acct.email.toUpperCase(), password: acct.password }).expect(303);
    expect(res.headers.location).to.equal('/app');
    const after = String(res.headers['set-cookie']).split(';')[0];
    expect(after).to.match(/^paylink\.sid=/);
    expect(after).not.to.equal(before);
    const dash = await agent.get('/app').expect(200);
    await agent.post('/logout').type('form').send({ _csrf: csrfFrom(dash.text) }).expect(303);
    await agent.get('/app').expect(303);
  });

  it('refuses a wrong password with 401 and a clear message', async () => {
    const acct = await signUp(env.app);
    const agent = supertest.agent(env.app);
    const page = await agent.get('/login');
    const res = await agent.post('/login').type('form').send({ _csrf: csrfFrom(page.text), email: acct.email, password: 'wrong password!' }).expect(401);
    expect(res.text).to.include('do not match an account');
    await agent.get('/app').expect(303);
  });

  it('rate-limits repeated failures with 429, even for the right password', async () => {
    const acct = await signUp(env.app);
    const agent = supertest.agent(env.app);
    const page = await agent.get('/login');
    const csrf = csrfFrom(page.text);
    for (let i = 0; i < 3; i++) {
      await agent.post('/login').type('form').send({ _csrf: csrf, email: acct.email, password: 'nope nope nope' }).expect(401);
    }
    const res = await agent.post('/login').type('form').send({ _csrf: csrf, email: acct.email, password: acct.password }).expect(429);
    expect(res.headers['retry-after']).to.match(/^\d+$/);
    expect(res.text).to.include('Too many failed attempts');
  });

  it('rejects a state-changing request without a CSRF token with 403', async () => {
    const acct = await signUp(env.app);
    await acct.agent.post('/app/settings').type('form').send({ name: 'Hacked' }).expect(403);
    await acct.agent.post('/app/settings').type('form').send({ name: 'Hacked', _csrf: 'not-the-token' }).expect(403);
    await supertest(env.app).post('/signup').type('form').send({ name: 'x', handle: uniqueHandle(), email: 'a@b.test', password: 'long enough pw' }).expect(403);
    const merchant = await env.rt.services.merchants.getByHandle(acct.handle);
    expect(merchant!.name).not.to.equal('Hacked');
  });

  it('accepts the CSRF token in the X-CSRF-Token header (htmx)', async () => {
    const acct = await signUp(env.app);
    const res = await acct.agent
      .post('/app/settings')
      .set('HX-Request', 'true')
      .set('X-CSRF-Token', acct.csrf)
      .type('form')
      .send({ name: 'Acme Header', handle: acct.handle, currency: 'USD', timezone: 'Europe/Amsterdam', brand_color: '#112233' })
      .expect(200);
    expect(res.headers.vary).to.match(/HX-Request/);
    const merchant = await env.rt.services.merchants.getByHandle(acct.handle);
    expect(merchant).to.include({ name: 'Acme Header', currency: 'USD', timezone: 'Europe/Amsterdam', brandColor: '#112233' });
  });

  for (const [handle, code] of [
    ['api', 'reserved'],
    ['login', 'reserved'],
    ['ab', 'too short'],
    ['9lives', 'starts with digit'],
    ['Bad_Handle', 'bad characters'],
  ] as const) {
    it(`refuses the handle "${handle}" (${code}) with 422 and a message by the field`, async () => {
      const agent = supertest.agent(env.app);
      const page = await agent.get('/signup');
      const res = await agent
        .post('/signup')
        .type('form')
        .send({ _csrf: csrfFrom(page.text), name: 'X', handle, email: `${uniqueHandle()}@example.test`, password: 'long enough pw' })
        .expect(422);
      expect(res.text).to.match(/<p class="error" id="f-handle-error">[^<]+<\/p>/);
      expect(await env.rt.db('merchants').where({ handle: handle.toLowerCase() }).first()).to.equal(undefined);
    });
  }

  it('refuses a duplicate handle and a duplicate email with 422, writing nothing', async () => {
    const first = await signUp(env.app);
    const agent = supertest.agent(env.app);
    const page = await agent.get('/signup');
    const count = async () => Number((await env.rt.db('merchants').count({ n: '*' }))[0].n);
    const before = await count();
    const res = await agent
      .post('/signup')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), name: 'Copy', handle: first.handle, email: first.email, password: 'long enough pw' })
      .expect(422);
    expect(res.text).to.include('That handle is already taken');
    expect(res.text).to.include('An account with this email already exists');
    expect(await count()).to.equal(before);
  });

  it('answers 404 for another merchant’s API key', async () => {
    const a = await signUp(env.app);
    const b = await signUp(env.app);
    const bMerchant = await env.rt.services.merchants.getByHandle(b.handle);
    const { apiKey } = await env.rt.services.apiKeys.create(bMerchant!, { name: 'b key' });
    await a.agent.post(`/app/settings/api-keys/${apiKey.id}/revoke`).type('form').send({ _csrf: a.csrf }).expect(404);
    const keys = await env.rt.services.apiKeys.list(bMerchant!.key);
    expect(keys[0].revokedAt).to.equal(null);
  });
});
