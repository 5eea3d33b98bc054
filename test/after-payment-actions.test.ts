/**
 * After-payment actions by id: a third-party action (test/fixtures/plugins/action-hookpost) with its
 * own settings schema, check and form fragment, enabled per link from the API and from the link form,
 * and run once per payment with the payer as entered on the pay page. Bad settings come back by
 * field (422), never as a 500, and nothing is written.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget, TARGETS } from './support/targets.ts';
import { apiClient, apiMerchant, expectProblem, type ApiCall, type ApiMerchant } from './support/api.ts';
import { build, csrfFrom, fieldError, signUp, uniqueHandle, type Account, type TestEnv } from './support/harness.ts';
import { DESKTOP, PHONE, serve, signUpInBrowser, useBrowser, type ServedEnv } from './support/browser.ts';
import { waitFor } from './support/wait.ts';
import { BUILTIN_PLUGINS_DIR, builtinSources, externalSource, type PluginSource } from '../src/core/plugins/host.ts';
import { fixturePlugin } from './fixtures/plugins/helpers.ts';
import { definePlugin } from '../src/plugin-api.ts';
import { z } from 'zod';
import type { Merchant } from '../src/features/merchants/repository.ts';

const ACTION = 'action-hookpost';
const LINK_ID = /\/app\/links\/(lnk_[0-9A-Za-z]+)/;

const sources = (): PluginSource[] => [...builtinSources(BUILTIN_PLUGINS_DIR), externalSource(fixturePlugin(ACTION))];

/** The merchant's chat webhook: a loopback server that records what it is sent. */
async function fakeWebhook() {
  const received: { body: Record<string, any>; idempotencyKey: string | undefined }[] = [];
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      received.push({ body: JSON.parse(data), idempotencyKey: req.headers['idempotency-key'] as string | undefined });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** Pays a link through its pay page (as `name`/`email`) and the sandbox; answers the payment id. */
async function pay(env: TestEnv, url: string, name: string, email: string): Promise<string> {
  const u = new URL(url);
  const post = await supertest(env.app).post(u.pathname + u.search).type('form').send({ name, email });
  expect(post.status, post.text.slice(0, 300)).to.equal(303);
  const pending = await env.rt.db('payments').where({ status: 'pending' }).orderBy('id', 'desc').first();
  expect((await env.rt.services.checkout.authorize(pending.public_id, `sbx_${pending.public_id}`)).status).to.equal('paid');
  return pending.public_id as string;
}

forEachTarget('after-payment actions by id', (target) => {
  let env: TestEnv;
  let hook: Awaited<ReturnType<typeof fakeWebhook>>;
  let shop: ApiMerchant;
  let call: ApiCall;
  let n = 0;

  before(async () => {
    hook = await fakeWebhook();
    env = await build(target, { pluginSources: sources(), apiLimit: { points: 100_000, durationSec: 60 } });
    shop = await apiMerchant(env, 'Acme Yoga');
    call = apiClient(env.app, shop.secret);
  });
  after(async () => {
    await env?.close();
    await hook?.close();
  });
  beforeEach(() => {
    n += 1;
    hook.received.length = 0;
  });

  const count = async (table: string) => Number((await env.rt.db(table).count({ n: '*' }))[0].n);
  const base = () => ({ type: 'amount', name: `Class ${n}`, amount: 1500, currency: 'EUR' });
  const hookpost = (settings: Record<string, unknown>) => ({ id: ACTION, settings });

  describe('API', () => {
    it('runs an action enabled through the API once per payment, with the payer as entered on the pay page', async () => {
      const res = await call('post', '/links', { ...base(), after_payment: { actions: [hookpost({ webhookUrl: hook.url, channel: ' #sales ' })] } });
      expect(res.status, res.text).to.equal(201);
      const settings = { webhookUrl: hook.url, channel: '#sales', mentionPayer: false };
      expect(res.body.after_payment).to.deep.equal({ actions: [{ id: ACTION, settings }] });
      expect((await call('get', `/links/${res.body.id}`).expect(200)).body.after_payment).to.deep.equal({ actions: [{ id: ACTION, settings }] });
      const listed = (await call('get', '/links?limit=100').expect(200)).body.data.find((l: { id: string }) => l.id === res.body.id);
      expect(listed.after_payment.actions).to.deep.equal([{ id: ACTION, settings }]);

      await env.rt.jobs.drain();
      expect(hook.received, 'nothing runs before a payment').to.deep.equal([]);
      await pay(env, res.body.url, 'Ann Payer', `ann${n}@example.test`);
      await pay(env, res.body.url, 'Bob Payer', `bob${n}@example.test`);
      await env.rt.jobs.drain();
      expect(hook.received.map((r) => r.body.payer)).to.have.deep.members([
        { name: 'Ann Payer', email: `ann${n}@example.test`, phone: null },
        { name: 'Bob Payer', email: `bob${n}@example.test`, phone: null },
      ]);
      for (const r of hook.received) {
        // Each payer is recorded as the customer with their email (matched, or created for them).
        const customer = await env.rt.db('customers').where({ merchant_id: shop.merchant.key, email: r.body.payer.email }).first();
        expect(r.body).to.include({ channel: '#sales', merchant: shop.merchant.id, link: `Class ${n}`, customer: customer.public_id, mention: null });
        expect(r.idempotencyKey).to.equal(r.body.event);
      }
      expect(new Set(hook.received.map((r) => r.body.event)).size).to.equal(2);

      // The same event dispatched again (and its subscriber run again) must not run the action twice.
      const event = (await env.rt.db('events').where({ type: 'payment.succeeded' }).orderBy('id', 'desc').first()) as { public_id: string };
      await env.rt.jobs.enqueue(env.rt.db, 'events.dispatch', { eventId: event.public_id });
      await env.rt.jobs.enqueue(env.rt.db, 'hooks.run', { eventId: event.public_id, subscriptionId: 'core:after-payment-actions' });
      await env.rt.jobs.drain();
      expect(hook.received).to.have.length(2);
      const runs = await env.rt.db('jobs').where({ kind: 'actions.run' }).andWhere('unique_key', `action:${event.public_id}:${ACTION}`);
      expect(runs).to.have.length(1);
    });

    it('queues no run of the actions handler for a payment on no link (the open-amount page)', async () => {
      const hooksFor = async (eventId: string) => env.rt.db('jobs').where({ unique_key: `hook:${eventId}:core:after-payment-actions` });
      await pay(env, `${env.rt.config.baseUrl}/${shop.merchant.handle}/15.00`, 'Di Payer', `di${n}@example.test`);
      await env.rt.jobs.drain();
      const open = (await env.rt.db('events').where({ type: 'payment.succeeded' }).orderBy('id', 'desc').first()) as { public_id: string; payload: string };
      expect(JSON.parse(open.payload).linkId).to.equal(null);
      expect(await hooksFor(open.public_id)).to.deep.equal([]);
      // A payment on a link is asked about (its link may have actions).
      const res = await call('post', '/links', base()).expect(201);
      await pay(env, res.body.url, 'Ed Payer', `ed${n}@example.test`);
      await env.rt.jobs.drain();
      const onLink = (await env.rt.db('events').where({ type: 'payment.succeeded' }).orderBy('id', 'desc').first()) as { public_id: string };
      expect(await hooksFor(onLink.public_id)).to.have.length(1);
    });

    it('refuses unknown actions and bad settings by field, and writes nothing', async () => {
      const links = await count('links');
      const actions = await count('link_actions');
      const post = (after_payment: unknown) => call('post', '/links', { ...base(), after_payment });
      const fields = (body: { errors: { field: string; code: string }[] }) => body.errors.map((e) => [e.field, e.code]);

      let body = expectProblem(await post({ actions: [{ id: 'action-slack', settings: {} }] }), 422, 'validation_failed');
      expect(fields(body)).to.deep.equal([['after_payment.actions[0].id', 'unknown_action']]);

      body = expectProblem(await post({ actions: [hookpost({ webhookUrl: hook.url, channel: '#ok' }), hookpost({ webhookUrl: 'not a url', channel: 'sales' })] }), 422, 'validation_failed');
      expect(fields(body)).to.have.deep.members([
        ['after_payment.actions[1].id', 'duplicate_action'],
      ]);

      body = expectProblem(await post({ actions: [hookpost({ webhookUrl: 'not a url', channel: 'sales', mentionPayer: 'yes' })] }), 422, 'validation_failed');
      expect(fields(body)).to.have.deep.members([
        ['after_payment.actions[0].settings.webhookUrl', 'invalid_setting'],
        ['after_payment.actions[0].settings.channel', 'invalid_setting'],
        ['after_payment.actions[0].settings.mentionPayer', 'invalid_setting'],
      ]);

      // The action's own check, which needs the merchant.
      body = expectProblem(await post({ actions: [hookpost({ webhookUrl: hook.url, channel: `#${shop.merchant.handle}` })] }), 422, 'validation_failed');
      expect(fields(body)).to.deep.equal([['after_payment.actions[0].settings.channel', 'reserved_channel']]);

      body = expectProblem(await post({ actions: [hookpost({})] }), 422, 'validation_failed');
      expect(body.errors.map((e) => e.field).sort()).to.deep.equal(['after_payment.actions[0].settings.channel', 'after_payment.actions[0].settings.webhookUrl']);

      const shapes: [unknown, string, string][] = [
        ['nope', 'after_payment', 'invalid_after_payment'],
        [[], 'after_payment', 'invalid_after_payment'],
        [{ actions: { id: ACTION } }, 'after_payment.actions', 'invalid_actions'],
        [{ actions: ['action-hookpost'] }, 'after_payment.actions[0]', 'invalid_action'],
        [{ actions: [{ id: 42 }] }, 'after_payment.actions[0].id', 'unknown_action'],
        [{ actions: [{ id: ACTION, settings: 'x' }] }, 'after_payment.actions[0].settings', 'invalid_settings'],
        [{ action: [hookpost({ webhookUrl: hook.url, channel: '#ok' })] }, 'after_payment.action', 'unknown_field'],
      ];
      for (const [value, field, code] of shapes) {
        body = expectProblem(await post(value), 422, 'validation_failed');
        expect(fields(body), JSON.stringify(value)).to.deep.equal([[field, code]]);
      }
      expect(await count('links')).to.equal(links);
      expect(await count('link_actions')).to.equal(actions);
    });

    it('replaces the list on PATCH ([] clears); the customer-tag shorthand changes only its own action', async () => {
      const tag = (await call('post', '/tags', { name: `Paid ${n}`, kind: 'customer' }).expect(201)).body.id as string;
      const cy = (await call('post', '/customers', { name: 'Cy Change', email: `cy${n}@example.test` }).expect(201)).body.id as string;
      const slack = hookpost({ webhookUrl: hook.url, channel: '#sales' });
      const res = await call('post', '/links', { ...base(), send: { customer_id: cy, channels: ['email'] }, after_payment: { actions: [slack] } }).expect(201);
      const ids = (body: { after_payment: { actions: { id: string }[] } }) => body.after_payment.actions.map((a) => a.id);

      let patched = await call('patch', `/links/${res.body.id}`, { after_payment: { apply_customer_tag: tag } }).expect(200);
      expect(ids(patched.body)).to.deep.equal([ACTION, 'customer-tags']);
      expect(patched.body.after_payment.actions[1].settings).to.deep.equal({ apply: tag, remove: null });

      patched = await call('patch', `/links/${res.body.id}`, { after_payment: { apply_customer_tag: null } }).expect(200);
      expect(ids(patched.body)).to.deep.equal([ACTION]);

      patched = await call('patch', `/links/${res.body.id}`, { after_payment: { actions: [{ id: 'customer-tags', settings: { apply: tag } }] } }).expect(200);
      expect(ids(patched.body)).to.deep.equal(['customer-tags']);

      // A bad list changes nothing, not even the other fields of the same PATCH.
      const bad = expectProblem(await call('patch', `/links/${res.body.id}`, { name: 'Renamed', after_payment: { actions: [hookpost({ webhookUrl: 'x', channel: '#ok' })] } }), 422, 'validation_failed');
      expect(bad.errors.map((e) => e.field)).to.deep.equal(['after_payment.actions[0].settings.webhookUrl']);
      const unchanged = (await call('get', `/links/${res.body.id}`).expect(200)).body;
      expect(unchanged.name).to.equal(`Class ${n}`);
      expect(ids(unchanged)).to.deep.equal(['customer-tags']);

      patched = await call('patch', `/links/${res.body.id}`, { after_payment: { actions: [] } }).expect(200);
      expect(patched.body.after_payment).to.deep.equal({ actions: [] });

      // An action that needs the paying customer, on a link made for nobody.
      const plain = await call('post', '/links', base()).expect(201);
      const refused = expectProblem(await call('patch', `/links/${plain.body.id}`, { after_payment: { actions: [{ id: 'customer-tags', settings: { apply: tag } }] } }), 422, 'validation_failed');
      expect(refused.errors.map((e) => [e.field, e.code])).to.deep.equal([['after_payment.actions[0]', 'needs_customer']]);
      patched = await call('patch', `/links/${plain.body.id}`, { after_payment: { actions: [slack] } }).expect(200);
      expect(ids(patched.body)).to.deep.equal([ACTION]);
      patched = await call('patch', `/links/${plain.body.id}`, { after_payment: null }).expect(200);
      expect(ids(patched.body)).to.deep.equal([]);
    });

    it('copies a link’s actions to its duplicate, leaving out those that need the customer it was made for', async () => {
      const tag = (await call('post', '/tags', { name: `Dup ${n}`, kind: 'customer' }).expect(201)).body.id as string;
      const di = (await call('post', '/customers', { name: 'Di Dup', email: `di${n}@example.test` }).expect(201)).body.id as string;
      const slack = hookpost({ webhookUrl: hook.url, channel: '#dups' });
      const made = await call('post', '/links', { ...base(), send: { customer_id: di, channels: ['email'] }, after_payment: { actions: [slack], apply_customer_tag: tag } }).expect(201);
      expect(made.body.after_payment.actions.map((a: { id: string }) => a.id)).to.deep.equal([ACTION, 'customer-tags']);

      const viaApi = await call('post', `/links/${made.body.id}/duplicate`).expect(201);
      expect(viaApi.body.after_payment).to.deep.equal({ actions: [{ id: ACTION, settings: { webhookUrl: hook.url, channel: '#dups', mentionPayer: false } }] });

      // The dashboard's Duplicate button does the same.
      const owner = await signUp(env.app);
      const m = (await env.rt.services.merchants.getByHandle(owner.handle))!;
      const link = await env.rt.services.sending.createLink(m, { ...base(), after_payment: { actions: [slack] } });
      const page = await owner.agent.get(`/app/links/${link.link.id}`).expect(200);
      const copied = await owner.agent.post(`/app/links/${link.link.id}/duplicate`).type('form').send({ _csrf: csrfFrom(page.text) }).expect(303);
      const copyId = /\/app\/links\/(lnk_\w+)\/edit/.exec(copied.headers.location)![1];
      const copy = await env.rt.services.links.get(m, copyId);
      expect(await env.rt.services.actions.forLink(copy.key)).to.deep.equal([{ actionId: ACTION, settings: { webhookUrl: hook.url, channel: '#dups', mentionPayer: false } }]);
    });
  });

  describe('link form', () => {
    let acct: Account;
    let m: Merchant;
    before(async () => {
      acct = await signUp(env.app, { name: 'Form Shop' });
      m = (await env.rt.services.merchants.getByHandle(acct.handle))!;
    });
    const field = (name: string) => `action.${ACTION}.${name}`;
    const postLink = (fields: Record<string, unknown>) =>
      acct.agent
        .post('/app/links')
        .type('form')
        .send({ _csrf: acct.csrf, type: 'amount', currency: 'EUR', limit: 'unlimited', redirect_target: 'same', active: 'on', after_payment_form: '1', ...fields });
    const linkCount = async () => Number((await env.rt.db('links').where({ merchant_id: m.key }).count({ n: '*' }))[0].n);

    it('renders every action in the slot, with the fragment’s fields named by the action', async () => {
      const page = await acct.agent.get('/app/links/new?type=amount').expect(200);
      expect(page.text).to.include('data-slot="link-form.after-payment"');
      expect(page.text).to.match(new RegExp(`id="f-action-${ACTION}" name="actions" value="${ACTION}" aria-describedby`));
      expect(page.text).to.include('Post to a chat webhook').and.include('Posts each payment of this link to a chat channel.');
      expect(page.text).to.include(`name="${field('webhookUrl')}"`).and.include(`name="${field('channel')}"`);
      expect(page.text, 'formData reaches the fragment').to.include(`placeholder="#${m.handle.slice(0, 10)}-sales"`);
      // The customer-tags action needs a customer, so it waits for one.
      expect(page.text).to.match(/id="f-action-customer-tags" name="actions" value="customer-tags" disabled/);
    });

    it('shows bad settings under their fields (422), keeps what was typed, and creates nothing', async () => {
      const before = await linkCount();
      let res = await postLink({ name: 'Workshop', amount: '15', actions: ACTION, [field('webhookUrl')]: 'not a url', [field('channel')]: 'sales', [field('mentionPayer')]: 'on' }).expect(422);
      expect(fieldError(res.text, `action-${ACTION}-webhookUrl`)).to.equal('Enter the http(s):// address of your webhook.');
      expect(fieldError(res.text, `action-${ACTION}-channel`)).to.equal('Enter a channel such as #sales.');
      expect(res.text).to.include('value="not a url"').and.include('value="Workshop"');
      expect(res.text).to.match(new RegExp(`name="${field('mentionPayer')}" checked`));
      expect(res.text).to.match(new RegExp(`id="f-action-${ACTION}" name="actions" value="${ACTION}" checked`));

      // What was typed comes back escaped inside the plugin's fragment (rendered raw into the form).
      const xss = '"><script>alert(1)</script>';
      res = await postLink({ name: 'Workshop', amount: '15', actions: ACTION, [field('webhookUrl')]: xss, [field('channel')]: 'sales' }).expect(422);
      expect(res.text).not.to.include('<script>alert(1)</script>');
      expect(res.text).to.include('value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"');

      // Reported together with the link's own mistakes.
      res = await postLink({ name: '', amount: 'abc', actions: ACTION, [field('webhookUrl')]: hook.url, [field('channel')]: `#${m.handle}` }).expect(422);
      expect(fieldError(res.text, 'name')).to.not.equal('');
      expect(fieldError(res.text, `action-${ACTION}-channel`)).to.equal('That channel is reserved: choose another.');

      // An unticked action's fields are ignored.
      expect(await linkCount()).to.equal(before);
      const ignored = await postLink({ name: 'Ignored', amount: '5', [field('webhookUrl')]: 'not a url' }).expect(303);
      const link = await env.rt.services.links.get(m, LINK_ID.exec(ignored.headers.location)![1]);
      expect(await env.rt.services.actions.forLink(link.key)).to.deep.equal([]);
    });

    it('enables the action from the form, runs it once per payment with the payer, and edits or clears it', async () => {
      const res = await postLink({ name: 'Evening class', amount: '12.50', actions: ACTION, [field('webhookUrl')]: hook.url, [field('channel')]: '#yoga', [field('mentionPayer')]: 'on' }).expect(303);
      const link = await env.rt.services.links.get(m, LINK_ID.exec(res.headers.location)![1]);
      expect(await env.rt.services.actions.forLink(link.key)).to.deep.equal([{ actionId: ACTION, settings: { webhookUrl: hook.url, channel: '#yoga', mentionPayer: true } }]);

      await pay(env, env.rt.services.links.urlFor(link, m), 'Dee Payer', `dee${n}@example.test`);
      await env.rt.jobs.drain();
      const dee = await env.rt.db('customers').where({ merchant_id: m.key, email: `dee${n}@example.test` }).first();
      expect(hook.received.map((r) => r.body)).to.deep.equal([
        { event: hook.received[0].body.event, channel: '#yoga', merchant: m.id, link: 'Evening class', payer: { name: 'Dee Payer', email: `dee${n}@example.test`, phone: null }, customer: dee.public_id, mention: 'Dee Payer' },
      ]);

      const edit = await acct.agent.get(`/app/links/${link.id}/edit`).expect(200);
      expect(edit.text).to.match(new RegExp(`id="f-action-${ACTION}" name="actions" value="${ACTION}" checked`));
      expect(edit.text).to.include(`value="${hook.url}"`).and.include('value="#yoga"');
      const fields = { _csrf: csrfFrom(edit.text), name: 'Evening class', path: link.path, amount: '12.50', currency: 'EUR', limit: 'unlimited', redirect_target: 'same', active: 'on', after_payment_form: '1' };
      const bad = await acct.agent.post(`/app/links/${link.id}`).type('form').send({ ...fields, name: 'Renamed', actions: ACTION, [field('webhookUrl')]: hook.url, [field('channel')]: 'nope' }).expect(422);
      expect(fieldError(bad.text, `action-${ACTION}-channel`)).to.not.equal('');
      expect((await env.rt.services.links.get(m, link.id)).name).to.equal('Evening class');

      await acct.agent.post(`/app/links/${link.id}`).type('form').send({ ...fields, actions: ACTION, [field('webhookUrl')]: hook.url, [field('channel')]: '#evening' }).expect(303);
      expect(await env.rt.services.actions.forLink(link.key)).to.deep.equal([{ actionId: ACTION, settings: { webhookUrl: hook.url, channel: '#evening', mentionPayer: false } }]);
      await acct.agent.post(`/app/links/${link.id}`).type('form').send({ ...fields, [field('webhookUrl')]: hook.url }).expect(303);
      expect(await env.rt.services.actions.forLink(link.key)).to.deep.equal([]);
    });
  });
});

forEachTarget('after-payment actions that get the contract wrong', (target) => {
  let env: TestEnv;
  const inline = (def: ReturnType<typeof definePlugin>): PluginSource => ({ source: `inline:${def.id}`, builtin: false, load: async () => ({ default: def }) });
  const action = (over: Record<string, unknown>) => ({ id: 'x', label: 'X', settings: z.object({}), run: async () => {}, ...over });
  const plugin = (id: string, over: Record<string, unknown>, viewsDir?: string) =>
    definePlugin({ id, version: '1.0.0', apiVersion: 1, viewsDir, register: (api) => api.actions.register(action({ id, ...over })) });
  const views = new URL('./fixtures/plugins/action-hookpost/views', import.meta.url).pathname;
  before(async () => {
    env = await build(target, {
      pluginSources: [
        ...builtinSources(BUILTIN_PLUGINS_DIR),
        inline(plugin('action-taken', { apiShorthand: { apply_customer_tag: 'apply' } })),
        inline(plugin('action-reserved', { apiShorthand: { actions: 'list' } })),
        inline(plugin('action-noviews', { formFragment: 'settings' })),
        inline(plugin('action-broken', { label: 'Broken fragment', formFragment: 'missing' }, views)),
        inline(plugin('action-throws', { label: 'Throws', check: async () => { throw new Error('boom'); } })),
      ],
    });
  });
  after(() => env?.close());

  it('disables an action whose API shorthand is taken or reserved, or whose fragment has no views', () => {
    const status = (id: string) => env.rt.plugins.list().find((p) => p.id === id)!;
    expect(status('action-taken')).to.include({ status: 'failed' });
    expect(status('action-taken').error).to.include('apply_customer_tag').and.include('customer-tags');
    expect(status('action-reserved').status).to.equal('failed');
    expect(status('action-noviews').status).to.equal('failed');
    expect(status('action-noviews').error).to.include('viewsDir');
    expect(status('action-broken').status).to.equal('active');
  });

  it('still shows the link form when a fragment cannot be rendered, and the API takes the action', async () => {
    const acct = await signUp(env.app);
    const page = await acct.agent.get('/app/links/new?type=amount').expect(200);
    const row = page.text.slice(page.text.indexOf('id="action-action-broken"'));
    expect(row).to.include('Broken fragment').and.include('These settings cannot be shown right now.');
    const shop = await apiMerchant(env, 'Broken Shop');
    const res = await apiClient(env.app, shop.secret)('post', '/links', { type: 'amount', name: 'A', amount: 100, currency: 'EUR', after_payment: { actions: [{ id: 'action-broken' }] } });
    expect(res.status, res.text).to.equal(201);
    expect(res.body.after_payment).to.deep.equal({ actions: [{ id: 'action-broken', settings: {} }] });
  });

  it('answers 422 by the action, not 500, when an action’s check throws', async () => {
    const shop = await apiMerchant(env, 'Throwing Shop');
    const res = await apiClient(env.app, shop.secret)('post', '/links', { type: 'amount', name: 'B', amount: 100, currency: 'EUR', after_payment: { actions: [{ id: 'action-throws', settings: {} }] } });
    const body = expectProblem(res, 422, 'validation_failed');
    expect(body.errors.map((e) => [e.field, e.code])).to.deep.equal([['after_payment.actions[0]', 'action_check_failed']]);
  });
});

forEachTarget('after-payment actions in the browser', (target) => {
  const browser = useBrowser();
  let env: ServedEnv;
  let hook: Awaited<ReturnType<typeof fakeWebhook>>;
  before(async function () {
    this.timeout(60_000);
    hook = await fakeWebhook();
    env = await serve(target, { pluginSources: sources() });
  });
  after(async () => {
    await env?.close();
    await hook?.close();
  });

  // Both sizes once; the second database at desktop size only.
  const sizes = target === TARGETS[0] ? ([['1280', DESKTOP], ['390', PHONE]] as const) : ([['1280', DESKTOP]] as const);
  for (const [size, viewport] of sizes) {
    it(`enables an action on the link form (settings shown while ticked, messages by field), then runs it when the link is paid (${size} px)`, async function () {
      this.timeout(120_000);
      hook.received.length = 0;
      const tracked = await browser().newPage({ viewport });
      const { page } = tracked;
      const handle = uniqueHandle('acts');
      await signUpInBrowser(page, env.origin, { name: 'Acme Yoga', handle });
      const m = (await env.rt.services.merchants.getByHandle(handle))!;

      await page.goto(`${env.origin}/app/links/new?type=amount`);
      await page.getByLabel('Name', { exact: true }).fill('Spring class');
      await page.getByLabel('Amount').fill('20.00');
      const url = page.locator(`#f-action-${ACTION}-webhookUrl`);
      expect(await url.isVisible(), 'settings hidden until the action is ticked').to.equal(false);
      await page.locator(`#f-action-${ACTION}`).check();
      await url.waitFor({ state: 'visible' });
      await url.fill('not a url');
      await page.locator(`#f-action-${ACTION}-channel`).fill('#spring');
      await page.getByLabel('Mention the payer’s name').check();
      tracked.expectError({ status: 422, path: '/app/links' });
      await page.getByRole('button', { name: 'Create link' }).click();
      await page.locator(`#f-action-${ACTION}-webhookUrl-error:not(:empty)`).waitFor();
      await tracked.screenshot(`after-payment-actions-error-${size}-${target.name}`);

      await url.fill(hook.url);
      await page.getByRole('button', { name: 'Create link' }).click();
      await page.waitForURL(/\/app\/links\/lnk_/);
      // The QR, before leaving the page. Asked by page.evaluate (a DevTools evaluation): waitForFunction's
      // string predicate is eval'd inside the page, which its CSP (no 'unsafe-eval') refuses.
      await waitFor(() => page.evaluate<boolean>('[...document.images].every((img) => img.complete)'), { timeout: 10_000, message: 'the QR image to load' });
      const link = await env.rt.services.links.get(m, LINK_ID.exec(page.url())![1]);
      expect(await env.rt.services.actions.forLink(link.key)).to.deep.equal([{ actionId: ACTION, settings: { webhookUrl: hook.url, channel: '#spring', mentionPayer: true } }]);

      await page.goto(`${env.origin}/app/links/${link.id}/edit`);
      await url.waitFor({ state: 'visible' });
      await tracked.screenshot(`after-payment-actions-edit-${size}-${target.name}`);
      tracked.assertClean();
      await tracked.close();

      // A customer pays it on the pay page and the sandbox card page.
      const payer = await browser().newPage({ viewport });
      await payer.page.goto(env.rt.services.links.urlFor(link, m));
      await payer.page.getByLabel('Your name').fill('Ana López');
      await payer.page.getByLabel('Email').fill('ana.lopez@example.test');
      await payer.page.getByRole('button', { name: /^Pay / }).click();
      await payer.page.getByLabel('Card number').fill('4242 4242 4242 4242');
      await payer.page.getByRole('button', { name: /^Pay / }).click();
      await payer.page.getByRole('heading', { level: 1, name: 'Payment successful' }).waitFor();
      payer.assertClean();
      await payer.close();

      await env.rt.jobs.drain();
      await waitFor(() => hook.received.length > 0, { timeout: 5_000, message: 'the webhook call' });
      const ana = await env.rt.db('customers').where({ merchant_id: m.key, email: 'ana.lopez@example.test' }).first();
      expect(hook.received.map((r) => r.body)).to.deep.equal([
        { event: hook.received[0].body.event, channel: '#spring', merchant: m.id, link: 'Spring class', payer: { name: 'Ana López', email: 'ana.lopez@example.test', phone: null }, customer: ana.public_id, mention: 'Ana López' },
      ]);
    });
  }
});
