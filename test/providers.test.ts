// Payment providers per merchant: Settings → Payments and /api/v1/providers, secrets sealed at rest and
// never shown again, the pay page's choice and CSP, and checkout services scoped to the calling plugin.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { z } from 'zod';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { csrfFrom, signUp, type Account } from './support/harness.ts';
import { expectFieldErrors, expectProblem, twoApiMerchants, type ApiCall, type ApiMerchant } from './support/api.ts';
import type { TestEnv } from './support/harness.ts';
import { withHosted } from './support/fake-hosted-vendor.ts';
import { definePlugin } from '../src/plugin-api.ts';
import { sign } from './fixtures/plugins/provider-hosted/index.ts';

const VENDOR = 'https://vendor.hosted.example';
const SECRET = 'whsec_0123456789abcdef';

const cspOf = (res: supertest.Response) => String(res.headers['content-security-policy']);
const formAction = (res: supertest.Response) => /form-action ([^;]*)/.exec(cspOf(res))?.[1] ?? '';

forEachTarget('payment providers per merchant', (target) => {
  let env: TestEnv;
  let a: ApiMerchant;
  let b: ApiMerchant;
  let call: ApiCall;
  let callB: ApiCall;
  let views = '';

  before(async () => {
    const opts = withHosted(VENDOR);
    // A provider whose registration is malformed (an unknown capture model): its plugin is disabled, the app starts.
    const malformed = definePlugin({
      id: 'provider-malformed',
      version: '1.0.0',
      apiVersion: 1,
      register(api) {
        api.providers.register({ id: 'malformed', name: 'Malformed', captureModel: 'later' as 'manual', async start() { return { redirect: VENDOR }; }, async capture() {}, async void() {}, async refund() {} });
      },
    });
    // A provider with its own settings form (formFragment in its viewsDir), rendered inside core's form.
    views = fs.mkdtempSync(path.join(os.tmpdir(), 'paylink-fragment-'));
    fs.writeFileSync(path.join(views, 'settings.eta'), '<label for="<%= it.id(\'wallet\') %>">Wallet address</label><input id="<%= it.id(\'wallet\') %>" name="<%= it.name(\'wallet\') %>" value="<%= it.settings.wallet ?? \'\' %>"><p class="error"><%= it.errors.wallet || \'\' %></p>');
    const fragment = definePlugin({
      id: 'provider-fragment',
      version: '1.0.0',
      apiVersion: 1,
      viewsDir: views,
      register(api) {
        api.providers.register({
          id: 'fragment',
          name: 'Fragment Crypto',
          methodLabel: 'Crypto',
          merchantSettings: { schema: z.object({ wallet: z.string().regex(/^0x[0-9a-f]{40}$/, 'Enter a wallet address (0x and 40 hex digits).') }), formFragment: 'settings' },
          async start() {
            return { render: '<p>pay</p>' };
          },
          async capture() {},
          async void() {},
          async refund() {},
        });
      },
    });
    opts.pluginSources.push({ source: 'inline:provider-malformed', builtin: false, load: async () => malformed }, { source: 'inline:provider-fragment', builtin: false, load: async () => fragment });
    ({ env, a, b, call, callB } = await twoApiMerchants(target, ['Kiln Club', 'Other Shop'], opts));
  });

  it('disables a plugin whose provider registration is malformed, and lists only real providers', async () => {
    const plugin = env.rt.plugins.list().find((p) => p.id === 'provider-malformed')!;
    expect([plugin.status, plugin.error]).to.deep.equal(['failed', 'provider-malformed: providers.register got an invalid registration']);
    expect((await call('get', '/providers').expect(200)).body.data.map((p: { id: string }) => p.id)).to.deep.equal(['crypto-evm', 'sandbox', 'stripe', 'hosted', 'fragment']);
  });
  after(async () => {
    await env?.close();
    if (views) fs.rmSync(views, { recursive: true, force: true });
  });

  const configure = (c: ApiCall = call) => c('patch', '/providers/hosted', { settings: { accountId: 'acct_kiln', webhookSecret: SECRET }, enabled: true }).expect(200);
  const reset = async () => {
    await env.rt.db('merchant_providers').del();
    env.rt.changes.notify();
  };

  describe('the API', () => {
    beforeEach(reset);

    it('lists every installed provider: the sandbox on by default, others off and not configured', async () => {
      const res = await call('get', '/providers').expect(200);
      expect(res.body.has_more).to.equal(false);
      const byId = Object.fromEntries(res.body.data.map((p: { id: string }) => [p.id, p]));
      expect(byId.sandbox).to.include({ id: 'sandbox', plugin: 'provider-sandbox', enabled: true, configured: true });
      expect(byId.hosted).to.deep.include({ id: 'hosted', name: 'Hosted Pay', plugin: 'provider-hosted', method_label: 'Card', enabled: false, configured: false, settings: {}, secrets_set: [] });
    });

    it('refuses to enable a provider that is not configured (422 provider_not_configured)', async () => {
      const res = await call('patch', '/providers/hosted', { enabled: true });
      const body = expectProblem(res, 422, 'provider_not_configured');
      expect(body.errors.map((e) => e.field)).to.deep.equal(['enabled']);
      expect((await call('get', '/providers/hosted').expect(200)).body.enabled).to.equal(false);
    });

    it('validates settings by the provider’s schema, with errors by field, and writes nothing', async () => {
      const res = await call('patch', '/providers/hosted', { settings: { accountId: 'x', webhookSecret: 'short' } });
      expectFieldErrors(res, ['settings.accountId', 'settings.webhookSecret']);
      expectFieldErrors(await call('patch', '/providers/hosted', { enabled: 'yes' }), ['enabled']);
      expectFieldErrors(await call('patch', '/providers/sandbox', { settings: { a: 1 } }), ['settings']);
      expectProblem(await call('patch', '/providers/nope', { enabled: true }), 404, 'not_found');
      expect(await env.rt.db('merchant_providers').count({ n: '*' }).first()).to.deep.equal({ n: 0 });
    });

    it('asks the provider to verify settings before saving: refused by field (422), unreachable (503), nothing saved', async () => {
      const refused = expectFieldErrors(await call('patch', '/providers/hosted', { settings: { accountId: 'acct_unknown', webhookSecret: SECRET } }), ['settings.accountId']);
      expect(refused.errors[0]).to.include({ code: 'rejected_by_provider', message: 'Hosted Pay has no account with this id.' });
      expectProblem(await call('patch', '/providers/hosted', { settings: { accountId: 'acct_down', webhookSecret: SECRET } }), 503, 'service_unavailable');
      expectFieldErrors(await call('patch', '/providers/hosted', []), ['_']);
      const raw = `{"settings":{"accountId":"acct_ok","webhookSecret":"${SECRET}","__proto__":{"polluted":true},"extra":"dropped"}}`;
      await call('patch', '/providers/hosted').set('Content-Type', 'application/json').send(raw).expect(200);
      expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
      expect((await call('get', '/providers/hosted').expect(200)).body.settings).to.deep.equal({ accountId: 'acct_ok' });
    });

    it('keeps secrets write-only and sealed at rest; a blank secret keeps the stored one', async () => {
      const saved = await configure();
      expect(saved.body).to.deep.include({ enabled: true, configured: true, settings: { accountId: 'acct_kiln' }, secrets_set: ['webhookSecret'] });
      expect(saved.text).not.to.include(SECRET);
      const row = await env.rt.db('merchant_providers').where({ merchant_id: a.merchant.key, provider: 'hosted' }).first();
      expect(JSON.stringify(row)).not.to.include(SECRET);
      expect(row.secrets).to.match(/^v1\.[\w-]+\.[\w-]+$/);

      const renamed = await call('patch', '/providers/hosted', { settings: { accountId: 'acct_kiln2', webhookSecret: '' } }).expect(200);
      expect(renamed.body).to.deep.include({ settings: { accountId: 'acct_kiln2' }, secrets_set: ['webhookSecret'] });
      expect(await env.rt.services.providers.settingsFor(a.merchant.key, 'hosted')).to.deep.equal({ accountId: 'acct_kiln2', webhookSecret: SECRET });

      // A sealed value copied to another merchant's row does not open there.
      await configure(callB);
      await env.rt.db('merchant_providers').where({ merchant_id: b.merchant.key, provider: 'hosted' }).update({ secrets: row.secrets });
      const stolen = await env.rt.services.providers.settingsFor(b.merchant.key, 'hosted').then(
        () => null,
        (err: { code?: string }) => err.code,
      );
      expect(stolen).to.equal('decryption_failed');
    });

    it('turns the sandbox off for one merchant only; the row remembers it', async () => {
      await call('patch', '/providers/sandbox', { enabled: false }).expect(200);
      expect((await call('get', '/providers/sandbox').expect(200)).body.enabled).to.equal(false);
      expect((await callB('get', '/providers/sandbox').expect(200)).body.enabled).to.equal(true);
    });
  });

  describe('the pay page', () => {
    beforeEach(reset);
    const page = (m: ApiMerchant) => supertest(env.app).get(`/${m.handle}/12.00`);
    const pay = (m: ApiMerchant, fields: Record<string, string>) => supertest(env.app).post(`/${m.handle}/12.00`).type('form').send({ name: 'Ada', email: 'ada@example.test', ...fields });

    it('with one provider: no choice, form-action only self, checkout goes to it', async () => {
      const res = await page(a).expect(200);
      expect(res.text).not.to.include('name="provider"');
      expect(formAction(res)).to.equal("'self'");
      const paid = await pay(a, {}).expect(303);
      expect(paid.headers.location).to.match(/\/p\/provider-sandbox\/pay\/cs_/);
    });

    it('with several: a radio group by method label, exactly the provider’s origin in form-action, and only for that merchant', async () => {
      await configure();
      const res = await page(a).expect(200);
      expect(res.text).to.match(/<input type="radio" name="provider" value="sandbox"[^>]*> <span>Test card<\/span>/);
      expect(res.text).to.match(/<input type="radio" name="provider" value="hosted"[^>]*> <span>Card<\/span>/);
      expect(formAction(res)).to.equal(`'self' ${VENDOR}`);
      expect(formAction(await page(b).expect(200))).to.equal("'self'");

      const hosted = await pay(a, { provider: 'hosted' }).expect(303);
      const to = new URL(hosted.headers.location);
      expect(to.origin).to.equal(VENDOR);
      expect(to.searchParams.get('account')).to.equal('acct_kiln');
      const payment = await env.rt.db('payments').where({ public_id: to.searchParams.get('ref') }).first();
      expect(payment.provider).to.equal('hosted');

      expect((await pay(a, { provider: 'sandbox' }).expect(303)).headers.location).to.match(/\/p\/provider-sandbox\/pay\//);
    });

    it('asks the customer to choose when several are on and none (or an unknown one) was sent', async () => {
      await configure();
      const before = await env.rt.db('payments').count({ n: '*' }).first();
      for (const provider of [undefined, 'stripe', 'hosted2']) {
        const res = await pay(a, provider === undefined ? {} : { provider }).expect(422);
        expect(res.text).to.include('Choose how you want to pay.');
        expect(formAction(res)).to.equal(`'self' ${VENDOR}`);
      }
      expect(await env.rt.db('payments').count({ n: '*' }).first()).to.deep.equal(before);
    });

    it('says so when the merchant has no payment method on, and takes no payment', async () => {
      await call('patch', '/providers/sandbox', { enabled: false }).expect(200);
      const res = await page(a).expect(200);
      expect(res.text).to.include('not taking payments online right now');
      expect(res.text).not.to.include('<form method="post"');
      await pay(a, {}).expect(503);
    });
  });

  describe('checkout services are scoped to the calling provider', () => {
    beforeEach(reset);

    it('a provider cannot read or authorize another provider’s payment; its own webhook works', async () => {
      await configure();
      const sandboxPay = await supertest(env.app).post(`/${a.handle}/12.00`).type('form').send({ name: 'Ada', email: 'ada@example.test', provider: 'sandbox' }).expect(303);
      const session = /cs_\w+/.exec(sandboxPay.headers.location)![0];
      const sandboxPayment = await env.rt.db('checkout_sessions as s').join('payments as p', 'p.checkout_session_id', 's.id').where('s.public_id', session).first('p.public_id as id');

      const intruder = await supertest(env.app).post(`/p/provider-hosted/authorize-any/${sandboxPayment.id}`).expect(422);
      expect(intruder.body).to.deep.equal({ code: 'payment_not_found', retryable: false });
      const untouched = await env.rt.db('payments').where({ public_id: sandboxPayment.id }).first();
      expect([untouched.status, untouched.provider_ref]).to.deep.equal(['pending', null]);

      // Its webhook for the sandbox's payment: unknown to it (404), nothing changes.
      const body = JSON.stringify({ ref: sandboxPayment.id, chargeId: 'ch_x' });
      await supertest(env.app).post('/p/provider-hosted/webhook').set('content-type', 'application/json').set('x-hosted-signature', sign(SECRET, body)).send(body).expect(404);
      expect((await env.rt.db('payments').where({ public_id: sandboxPayment.id }).first()).status).to.equal('pending');

      // Its own payment: a bad signature is refused, the right one authorizes and captures.
      const own = new URL((await supertest(env.app).post(`/${a.handle}/12.00`).type('form').send({ name: 'Ada', email: 'ada@example.test', provider: 'hosted' }).expect(303)).headers.location).searchParams.get('ref')!;
      const ownBody = JSON.stringify({ ref: own, chargeId: 'ch_1' });
      await supertest(env.app).post('/p/provider-hosted/webhook').set('content-type', 'application/json').set('x-hosted-signature', sign('whsec_wrong_secret_000', ownBody)).send(ownBody).expect(400);
      const ok = await supertest(env.app).post('/p/provider-hosted/webhook').set('content-type', 'application/json').set('x-hosted-signature', sign(SECRET, ownBody)).send(ownBody).expect(200);
      expect(ok.body).to.deep.equal({ status: 'paid' });
      expect((await env.rt.db('payments').where({ public_id: own }).first()).status).to.equal('paid');
    });
  });

  describe('Settings → Payments', () => {
    let owner: Account;
    before(async () => {
      owner = await signUp(env.app);
    });
    beforeEach(reset);

    it('shows each provider with its state; secrets never come back, blank keeps them', async () => {
      const page = await owner.agent.get('/app/settings/payments').expect(200);
      expect(page.text).to.include('Sandbox (test cards)');
      expect(page.text).to.include('Hosted Pay');
      expect(page.text).to.include('id="f-hosted-accountId"');
      expect(page.text).to.match(/id="f-hosted-webhookSecret" name="settings.webhookSecret" type="password" value=""/);

      const csrf = csrfFrom(page.text);
      const bad = await owner.agent.post('/app/settings/payments/hosted').type('form').send({ _csrf: csrf, enabled: ['0', '1'], 'settings.accountId': 'x', 'settings.webhookSecret': SECRET }).expect(422);
      expect(bad.text).to.include('Enter your account id (3 characters or more).');
      expect(bad.text).not.to.include(SECRET);
      expect(bad.text, 'the ticked "Offer to customers" survives the failed save').to.match(/id="f-hosted-enabled" checked/);
      // The settings fields are rendered raw into the panel: what was typed must come back escaped.
      const xss = await owner.agent.post('/app/settings/payments/hosted').type('form').send({ _csrf: csrf, enabled: '1', 'settings.accountId': '"><script>alert(1)</script>' + 'x'.repeat(20), 'settings.webhookSecret': SECRET }).expect(422);
      expect(xss.text).not.to.include('<script>alert(1)</script>');
      expect(xss.text).to.include('value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;');

      const notConfigured = await owner.agent.post('/app/settings/payments/hosted').type('form').send({ _csrf: csrf, enabled: ['0', '1'] }).expect(422);
      expect(notConfigured.text).to.include('Save Hosted Pay’s settings first.');

      await owner.agent.post('/app/settings/payments/hosted').type('form').send({ _csrf: csrf, enabled: ['0', '1'], 'settings.accountId': 'acct_owner', 'settings.webhookSecret': SECRET }).expect(303);
      const after = await owner.agent.get('/app/settings/payments').expect(200);
      expect(after.text).not.to.include(SECRET);
      expect(after.text).to.include('Set — leave blank to keep');
      expect(after.text).to.include('value="acct_owner"');

      await owner.agent.post('/app/settings/payments/hosted').type('form').send({ _csrf: csrf, enabled: ['0', '1'], 'settings.accountId': 'acct_owner', 'settings.webhookSecret': '' }).expect(303);
      const merchant = await env.rt.services.merchants.getByHandle(owner.handle);
      expect(await env.rt.services.providers.settingsFor(merchant!.key, 'hosted')).to.deep.equal({ accountId: 'acct_owner', webhookSecret: SECRET });

      // Turning the sandbox off: the unchecked box sends only the hidden "0".
      await owner.agent.post('/app/settings/payments/sandbox').type('form').send({ _csrf: csrf, enabled: '0' }).expect(303);
      const list = await env.rt.services.providers.list(merchant!.key);
      expect(list.map((p) => [p.id, p.usable])).to.deep.equal([
        ['crypto-evm', false],
        ['sandbox', false],
        ['stripe', false],
        ['hosted', true],
        ['fragment', false],
      ]);
    });

    it('renders a provider’s own settings form in its panel, with messages by field', async () => {
      const page = await owner.agent.get('/app/settings/payments').expect(200);
      expect(page.text).to.include('<label for="f-fragment-wallet">Wallet address</label><input id="f-fragment-wallet" name="settings.wallet" value="">');
      const csrf = csrfFrom(page.text);
      const bad = await owner.agent.post('/app/settings/payments/fragment').type('form').send({ _csrf: csrf, enabled: ['0', '1'], 'settings.wallet': 'nope' }).expect(422);
      expect(bad.text).to.include('value="nope"><p class="error">Enter a wallet address (0x and 40 hex digits).</p>');
      const wallet = '0x' + 'ab'.repeat(20);
      await owner.agent.post('/app/settings/payments/fragment').type('form').send({ _csrf: csrf, enabled: ['0', '1'], 'settings.wallet': wallet }).expect(303);
      expect((await owner.agent.get('/app/settings/payments').expect(200)).text).to.include(`value="${wallet}"`);
    });
  });
});

