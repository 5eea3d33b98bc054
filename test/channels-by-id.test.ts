// Channels by id (issue 10, item 2): a third-party channel with its own id ("ntfy") and its own
// address kind ("ntfy_topic") is chosen wherever a channel can be — the link form, the Send panel,
// the customer page (Text-to-Pay), reminders, the API's send.channels — and has its own editable
// templates. Messages carry their kind and link URL. Two real channels with one id stop the boot.
import { expect } from 'chai';
import supertest from 'supertest';
import { z } from 'zod';
import { forEachTarget, TARGETS } from './support/targets.ts';
import { build, fieldError, signUp, uniqueHandle, type Account, type TestEnv } from './support/harness.ts';
import { DESKTOP, PHONE, SHOTS_DIR, serve, signUpInBrowser, useBrowser, type ServedEnv } from './support/browser.ts';
import { apiClient, expectFieldErrors, type ApiCall } from './support/api.ts';
import { startFakeNtfy, type FakeNtfy } from './support/fake-ntfy.ts';
import { outboxMessages } from './support/channels.ts';
import { fixturePlugin } from './fixtures/plugins/helpers.ts';
import { BUILTIN_PLUGINS_DIR, PluginLoadError, builtinSources, type PluginSource } from '../src/core/plugins/host.ts';
import { definePlugin, type Channel, type OutgoingMessage } from '../src/plugin-api.ts';
import { createChannelDirectory } from '../src/features/deliveries/channels.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';
import type { Customer } from '../src/features/customers/service.ts';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const LINK_ID = /\/app\/links\/(lnk_[0-9A-Za-z]+)/;
const PANEL = { 'HX-Request': 'true', 'HX-Target': 'link-send' };

const ntfySource = (): PluginSource => ({
  source: fixturePlugin('channel-ntfy'),
  builtin: false,
  load: () => import(new URL('./fixtures/plugins/channel-ntfy/index.ts', import.meta.url).href),
});

const inline = (def: ReturnType<typeof definePlugin>): PluginSource => ({ source: `inline:${def.id}`, builtin: false, load: async () => ({ default: def }) });

/** A urlencoded body with repeated keys for lists, as browsers send it. */
function form(fields: Record<string, string | string[]>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) for (const one of Array.isArray(v) ? v : [v]) p.append(k, one);
  return p.toString();
}

forEachTarget('channels by id: a plugin channel with its own address kind', (target) => {
  let env: TestEnv;
  let ntfy: FakeNtfy;
  let acct: Account;
  let shop: Merchant;
  let call: ApiCall;
  /** Has a topic and an email; Bo has only an email. */
  let jane: Customer;
  let bo: Customer;

  before(async () => {
    ntfy = await startFakeNtfy();
    env = await build(target, {
      pluginSources: [...builtinSources(BUILTIN_PLUGINS_DIR), ntfySource()],
      env: { PAYLINK_PLUGIN_CHANNEL_NTFY: JSON.stringify({ server: ntfy.url }) },
      apiLimit: { points: 100_000, durationSec: 60 },
    });
    acct = await signUp(env.app, { name: 'Acme Yoga' });
    shop = (await env.rt.services.merchants.getByHandle(acct.handle))!;
    call = apiClient(env.app, (await env.rt.services.apiKeys.create(shop, { name: 'test' })).secret);
    jane = await env.rt.services.customers.create(shop.key, { name: 'Jane Doe', email: 'jane@example.test', addresses: { ntfy_topic: ' acme-jane ' } });
    bo = await env.rt.services.customers.create(shop.key, { name: 'Bo Berg', email: 'bo@example.test' });
  });
  after(async () => {
    await env?.close();
    await ntfy?.close();
  });

  const newMessages = (since: number) => ntfy.messages.slice(since);

  it('registers the channel with its label and address kind, next to the Outbox fallbacks', () => {
    const { channels } = env.rt.services.deliveries;
    expect(channels.list().map((c) => c.id)).to.deep.equal(['email', 'sms', 'whatsapp', 'ntfy']);
    expect(channels.get('ntfy')).to.deep.equal({ id: 'ntfy', label: 'ntfy', addressKind: 'ntfy_topic', addressLabel: 'ntfy topic', style: 'text', keeps: null });
    expect(env.rt.registries.channels.ownerOf('ntfy')).to.equal('channel-ntfy');
    expect(env.rt.services.customers.addressKinds().map((k) => [k.kind, k.label])).to.deep.equal([['ntfy_topic', 'ntfy topic']]);
    // The topic was trimmed by the channel's parse.
    expect(jane.addresses).to.deep.equal({ ntfy_topic: 'acme-jane' });
  });

  describe('customer records', () => {
    it('shows the topic field on the customer form and saves it; a bad topic is refused by the field (422)', async () => {
      const page = await acct.agent.get('/app/customers/new').expect(200);
      expect(page.text).to.include('name="addresses.ntfy_topic"').and.include('ntfy topic').and.include('Needed for ntfy.');
      const bad = await acct.agent.post('/app/customers').type('form').send({ _csrf: acct.csrf, name: 'Tia Topic', 'addresses.ntfy_topic': 'no spaces/allowed' }).expect(422);
      expect(fieldError(bad.text, 'addresses.ntfy_topic')).to.equal('A topic is 1 to 64 letters, digits, - or _.');
      expect(bad.text).to.include('value="no spaces/allowed"');
      expect(await env.rt.db('customers').where({ merchant_id: shop.key, name: 'Tia Topic' })).to.have.length(0);

      const ok = await acct.agent.post('/app/customers').type('form').send({ _csrf: acct.csrf, name: 'Tia Topic', 'addresses.ntfy_topic': 'tia-42' }).expect(303);
      const id = ok.headers.location.split('/').pop()!;
      const show = await acct.agent.get(`/app/customers/${id}`).expect(200);
      expect(show.text).to.match(/id="address-ntfy_topic"><dt>ntfy topic<\/dt><dd><span class="num">tia-42</);
      expect(/<div id="channel-ntfy">[\s\S]*?<\/div>/.exec(show.text)![0]).to.include('Available');
      expect(/<div id="channel-email">[\s\S]*?<\/div>/.exec(show.text)![0]).to.include('No email address');

      // Editing shows the value; emptying the field removes it.
      const edit = await acct.agent.get(`/app/customers/${id}/edit`).expect(200);
      expect(edit.text).to.include('value="tia-42"');
      await acct.agent.post(`/app/customers/${id}`).type('form').send({ _csrf: acct.csrf, name: 'Tia Topic', 'addresses.ntfy_topic': '' }).expect(303);
      const after = await acct.agent.get(`/app/customers/${id}`).expect(200);
      expect(/<div id="channel-ntfy">[\s\S]*?<\/div>/.exec(after.text)![0]).to.include('No ntfy topic');
    });

    it('reads and writes addresses in the API; unknown kinds and bad values are 422 by the field', async () => {
      const created = await call('post', '/customers', { name: 'Ada API', addresses: { ntfy_topic: 'ada' } }).expect(201);
      expect(created.body.addresses).to.deep.equal({ ntfy_topic: 'ada' });
      const got = await call('get', `/customers/${created.body.id}`).expect(200);
      expect(got.body.addresses).to.deep.equal({ ntfy_topic: 'ada' });

      expectFieldErrors(await call('post', '/customers', { name: 'Bad', addresses: { ntfy_topic: 'a b' } }), ['addresses.ntfy_topic']);
      const unknown = expectFieldErrors(await call('post', '/customers', { name: 'Bad', addresses: { pigeon_loft: 'x' } }), ['addresses.pigeon_loft']);
      expect(unknown.errors[0].code).to.equal('unknown_address_kind');
      expectFieldErrors(await call('post', '/customers', { name: 'Bad', addresses: ['ada'] }), ['addresses']);
      expectFieldErrors(await call('post', '/customers', { name: 'Bad', addresses: { ntfy_topic: 42 } }), ['addresses.ntfy_topic']);
      expectFieldErrors(await call('post', '/customers', { name: 'Bad', addresses: null }), ['addresses']);
      expectFieldErrors(await call('post', '/customers', { name: 'Bad', addresses: { ntfy_topic: 'x'.repeat(65) } }), ['addresses.ntfy_topic']);
      const many = Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`kind_${i}`, 'x']));
      expectFieldErrors(await call('post', '/customers', { name: 'Bad', addresses: many }), ['addresses']);
      // Every bad field at once, nothing written.
      const both = expectFieldErrors(await call('post', '/customers', { name: '', addresses: { ntfy_topic: '!' } }), ['name', 'addresses.ntfy_topic']);
      expect(both.errors.find((e) => e.field === 'addresses.ntfy_topic')!.code).to.equal('invalid_address');
      expect(await env.rt.db('customers').where({ merchant_id: shop.key, name: 'Bad' })).to.have.length(0);

      const patched = await call('patch', `/customers/${created.body.id}`, { addresses: { ntfy_topic: 'ada-2' } }).expect(200);
      expect(patched.body.addresses).to.deep.equal({ ntfy_topic: 'ada-2' });
      const bad = await call('patch', `/customers/${created.body.id}`, { name: 'Renamed', addresses: { ntfy_topic: 'no/slash' } });
      expectFieldErrors(bad, ['addresses.ntfy_topic']);
      expect((await call('get', `/customers/${created.body.id}`).expect(200)).body).to.include({ name: 'Ada API' });
      const cleared = await call('patch', `/customers/${created.body.id}`, { addresses: { ntfy_topic: null } }).expect(200);
      expect(cleared.body.addresses).to.deep.equal({});
    });

    it('imports topics from a CSV column named by the address kind (checked by the channel, all or nothing) and finds customers by topic', async () => {
      const page = await acct.agent.get('/app/customers/import').expect(200);
      expect(page.text).to.include('<code>ntfy_topic</code>').and.include('ntfy topic');
      const upload = (csv: string) => acct.agent.post('/app/customers/import').type('form').send({ _csrf: acct.csrf, csv });

      const bad = await upload('name,NTFY_TOPIC\nImo Import,imo-1\nIvo Import,no spaces\n').expect(422);
      expect(bad.text).to.include('A topic is 1 to 64 letters, digits, - or _.');
      expect(await env.rt.db('customers').where({ merchant_id: shop.key }).whereIn('name', ['Imo Import', 'Ivo Import'])).to.have.length(0);
      const unknown = await upload('name,pigeon_loft\nImo Import,x\n').expect(422);
      expect(unknown.text).to.include('The columns are: name, email, phone, country, address, tags, ntfy_topic.');

      await upload('name,NTFY_TOPIC,email\nImo Import, imo-1 ,imo@example.test\nIvo Import,,ivo@example.test\n').expect(303);
      const imported = await call('get', '/customers?q=Import').expect(200);
      expect(imported.body.data.map((c: { name: string; addresses: Record<string, string> }) => [c.name, c.addresses]).sort()).to.deep.equal([
        ['Imo Import', { ntfy_topic: 'imo-1' }],
        ['Ivo Import', {}],
      ]);

      // The dashboard's search finds a customer by a custom address too.
      const found = await acct.agent.get('/app/customers?q=imo-1').expect(200);
      expect([...found.text.matchAll(/<a href="\/app\/customers\/cus_[^"]+">([^<]+)<\/a>/g)].map((m) => m[1])).to.deep.equal(['Imo Import']);
    });
  });

  describe('sending', () => {
    it('sends from the link form by ntfy: the message carries its kind and the link URL', async () => {
      const since = ntfy.messages.length;
      const options = await acct.agent.get(`/app/links/send-options?customer_id=${jane.id}&send_for=`).set('HX-Request', 'true').expect(200);
      expect(options.text).to.match(/id="f-channel-ntfy" name="channels" value="ntfy"/).and.include('acme-jane');
      const boForm = await acct.agent.get(`/app/links/send-options?customer_id=${bo.id}&send_for=`).set('HX-Request', 'true').expect(200);
      expect(boForm.text).to.match(/id="f-channel-ntfy" name="channels" value="ntfy" disabled>/).and.include('No ntfy topic');

      const res = await acct.agent
        .post('/app/links')
        .type('form')
        .send(form({ _csrf: acct.csrf, type: 'amount', currency: 'EUR', limit: 'unlimited', redirect_target: 'same', active: 'on', name: 'Spring membership', amount: '39.00', customer_id: jane.id, channels: ['ntfy', 'email'] }))
        .expect(303);
      const linkId = LINK_ID.exec(res.headers.location)![1];
      const page = await acct.agent.get(res.headers.location).expect(200);
      expect(page.text).to.include('created and sent by ntfy and Email');
      // The link page's messages card names the channel by its label.
      expect(page.text).to.include('<span class="badge channel-ntfy">ntfy</span>');
      await env.rt.jobs.drain();
      const [push] = newMessages(since);
      const link = await env.rt.services.links.get(shop, linkId);
      const url = env.rt.services.deliveries.recipientUrl(link, shop, jane.id);
      expect(push).to.include({ topic: 'acme-jane', title: 'Acme Yoga', tags: 'initial', click: url });
      expect(push.text).to.equal(`Hi Jane, your Acme Yoga payment link for Spring membership (€39.00): ${url}`);
      const [d] = (await env.rt.services.deliveries.listForLink(link.key, { limit: 10 })).data.filter((x) => x.channel === 'ntfy');
      expect(d).to.include({ status: 'sent', to: 'acme-jane', providerMessageId: push.id });
    });

    it('sends from the Send panel with reminders by ntfy, which go out as reminders until paid', async () => {
      const since = ntfy.messages.length;
      const link = await env.rt.services.links.create(shop, { type: 'amount', name: 'Workshop', amount: 1500, currency: 'EUR' });
      const panel = await acct.agent.get(`/app/links/${link.id}/send?customer_ids=${jane.id}`).set({ 'HX-Request': 'true', 'HX-Target': 'send-channels' }).expect(200);
      expect(panel.text).to.match(/id="channel-option-ntfy"><input type="checkbox" name="channels" value="ntfy"> ntfy/);
      const several = await acct.agent.get(`/app/links/${link.id}/send?customer_ids=${jane.id}&customer_ids=${bo.id}`).set({ 'HX-Request': 'true', 'HX-Target': 'send-channels' }).expect(200);
      expect(several.text).to.match(/id="channel-option-ntfy"><input type="checkbox" name="channels" value="ntfy"> ntfy</);

      const sent = await acct.agent
        .post(`/app/links/${link.id}/send`)
        .set(PANEL)
        .type('form')
        .send(form({ _csrf: acct.csrf, customer_ids: [jane.id, bo.id], channels: ['ntfy'], reminder_frequency: 'daily', reminder_max: '2' }))
        .expect(200);
      expect(sent.text).to.include('Sent to 1 customer, with reminders until they pay. 1 skipped: Bo Berg (no ntfy topic).');
      await env.rt.jobs.drain();
      expect(newMessages(since).map((m) => [m.topic, m.tags])).to.deep.equal([['acme-jane', 'initial']]);
      const [plan] = await env.rt.services.reminders.forLink(link.key);
      expect(plan).to.include({ state: 'active' });
      expect(plan.channels).to.deep.equal(['ntfy']);
      const card = await acct.agent.get(`/app/links/${link.id}`).expect(200);
      expect(card.text).to.match(/data-label="Channels"[^>]*>\s*ntfy\s*</);

      env.clock.advance(DAY + HOUR);
      await env.rt.services.reminders.sweep();
      await env.rt.jobs.drain();
      const reminders = newMessages(since).slice(1);
      expect(reminders.map((m) => [m.topic, m.tags])).to.deep.equal([['acme-jane', 'reminder']]);
      expect(reminders[0].text).to.match(/^Hi Jane, a reminder from Acme Yoga: Workshop \(€15\.00\) is still open\. Pay here: http:\/\/pay\.test\//);
      expect(reminders[0].click).to.equal(reminders[0].text.split('Pay here: ')[1]);
    });

    it('sends Text-to-Pay by ntfy from the customer page', async () => {
      const since = ntfy.messages.length;
      const both = await env.rt.services.customers.create(shop.key, { name: 'Pat Phone', phone: '+31 6 12345678', addresses: { ntfy_topic: 'pat' } });
      const page = await acct.agent.get(`/app/customers/${both.id}`).expect(200);
      expect(page.text).to.include('id="ttp-channel-sms"').and.include('id="ttp-channel-ntfy"').and.include('+31 6 12345678');
      const janePage = await acct.agent.get(`/app/customers/${jane.id}`).expect(200);
      expect(janePage.text).to.include('Send by ntfy to acme-jane').and.include('<input type="hidden" name="channel" value="ntfy">');

      await acct.agent.post(`/app/customers/${both.id}/text-to-pay`).type('form').send({ _csrf: acct.csrf, amount: '12.50', channel: 'ntfy' }).expect(303);
      const after = await acct.agent.get(`/app/customers/${both.id}`).expect(200);
      expect(after.text).to.include('Payment request for €12.50 sent to pat by ntfy.');
      await env.rt.jobs.drain();
      const [push] = newMessages(since);
      expect(push).to.include({ topic: 'pat', tags: 'initial' });
      expect(push.click).to.match(/^http:\/\/pay\.test\/r\/[A-Za-z0-9_-]{23}$/);
      expect(push.text).to.include('€12.50').and.include(push.click!);

      // Bo has no topic: 422 by the channel field, nothing written.
      const links = Number((await env.rt.db('links').count({ n: '*' }))[0].n);
      const refused = await acct.agent.post(`/app/customers/${bo.id}/text-to-pay`).type('form').send({ _csrf: acct.csrf, amount: '5', channel: 'ntfy' }).expect(422);
      expect(fieldError(refused.text, 'channel')).to.equal('Bo Berg has no ntfy topic, so ntfy cannot reach them.');
      expect(Number((await env.rt.db('links').count({ n: '*' }))[0].n)).to.equal(links);
    });

    it('takes ntfy in send.channels and the API’s Text-to-Pay; an unknown channel is 422 unknown_channel', async () => {
      const since = ntfy.messages.length;
      const res = await call('post', '/links', { type: 'amount', name: 'API push', amount: 2500, currency: 'EUR', send: { customer_id: jane.id, channels: ['ntfy'], reminders: { frequency: 'weekly', max: 2 } } });
      expect(res.status, res.text).to.equal(201);
      expect(res.body.sent.deliveries).to.have.length(1);
      await env.rt.jobs.drain();
      expect(newMessages(since).map((m) => m.topic)).to.deep.equal(['acme-jane']);
      const deliveries = await call('get', `/links/${res.body.id}/deliveries`).expect(200);
      expect(deliveries.body.data[0]).to.include({ channel: 'ntfy', kind: 'initial', to: 'acme-jane', status: 'sent' });
      const plans = await call('get', `/links/${res.body.id}/reminders`).expect(200);
      expect(plans.body.data[0].channels).to.deep.equal(['ntfy']);

      const before = Number((await env.rt.db('links').count({ n: '*' }))[0].n);
      const unknown = expectFieldErrors(await call('post', '/links', { type: 'amount', name: 'Pigeon', amount: 100, currency: 'EUR', send: { customer_id: jane.id, channels: ['ntfy', 'pigeon'] } }), ['send.channels']);
      expect(unknown.errors.map((e) => e.code)).to.deep.equal(['unknown_channel']);
      expect(unknown.errors[0].message).to.include('pigeon').and.include('ntfy');
      const unreachable = expectFieldErrors(await call('post', '/links', { type: 'amount', name: 'Bo push', amount: 100, currency: 'EUR', send: { customer_id: bo.id, channels: ['ntfy'] } }), ['send.channels']);
      expect(unreachable.errors[0].code).to.equal('channel_unreachable');
      expectFieldErrors(await call('post', `/links/${res.body.id}/send`, { customer_id: jane.id, channels: [42] }), ['send.channels.0']);
      expect(Number((await env.rt.db('links').count({ n: '*' }))[0].n)).to.equal(before);

      const ttp = await call('post', `/customers/${jane.id}/payment_requests`, { amount: 990, channel: 'ntfy' });
      expect(ttp.status, ttp.text).to.equal(201);
      expect(ttp.body.channel).to.equal('ntfy');
      await env.rt.jobs.drain();
      expect(newMessages(since).map((m) => m.topic)).to.deep.equal(['acme-jane', 'acme-jane']);
      expectFieldErrors(await call('post', `/customers/${jane.id}/payment_requests`, { amount: 990, channel: 'pigeon' }), ['channel']);
      expectFieldErrors(await call('post', `/customers/${jane.id}/payment_requests`, { amount: 990, channel: 'email' }), ['channel']);
      expectFieldErrors(await call('post', `/customers/${jane.id}/payment_requests`, { amount: 990, channel: 7 }), ['channel']);
      expectFieldErrors(await call('post', `/links/${res.body.id}/send`, { customer_id: jane.id, channels: ['x'.repeat(65)] }), ['send.channels.0']);
      expectFieldErrors(await call('post', `/links/${res.body.id}/send`, { customer_id: jane.id, channels: 'ntfy' }), ['send.channels']);
    });

    it('retries an ntfy 503 and fails a 400 for good', async () => {
      const link = await env.rt.services.links.create(shop, { type: 'amount', name: 'Flaky push', amount: 700, currency: 'EUR' });
      ntfy.fail(503, 1);
      const first = await env.rt.services.sending.send(shop, link, { customer_id: jane.id, channels: ['ntfy'] });
      await env.rt.jobs.drain();
      expect(await env.rt.services.deliveries.get(shop.key, first.deliveries[0])).to.include({ status: 'queued', attempts: 1 });
      env.clock.advance(HOUR);
      await env.rt.jobs.drain();
      expect(await env.rt.services.deliveries.get(shop.key, first.deliveries[0])).to.include({ status: 'sent', attempts: 2 });
      ntfy.fail(400, 1);
      const second = await env.rt.services.sending.send(shop, link, { customer_id: jane.id, channels: ['ntfy'] });
      await env.rt.jobs.drain();
      const failed = await env.rt.services.deliveries.get(shop.key, second.deliveries[0]);
      expect(failed).to.include({ status: 'failed', attempts: 1 });
      expect(failed.error).to.include('HTTP 400');
    });
  });

  describe('message templates', () => {
    it('lists a default (SMS-style) template per kind for ntfy, editable, used by the next message', async () => {
      const page = await acct.agent.get('/app/settings/templates').expect(200);
      for (const kind of ['initial', 'reminder']) expect(page.text).to.include(`id="tpl-${kind}-ntfy"`);
      expect(page.text).to.include('First message · ntfy').and.include('Reminder · ntfy');
      const ntfyCard = page.text.slice(page.text.indexOf('id="tpl-initial-ntfy"'));
      const card = ntfyCard.slice(0, ntfyCard.indexOf('</section>'));
      expect(card).to.not.include('name="subject"');
      expect(card).to.include('maxlength="640"');
      const preview = await acct.agent
        .post('/app/settings/templates/preview')
        .set('HX-Request', 'true')
        .type('form')
        .send({ _csrf: acct.csrf, kind: 'initial', channel: 'ntfy', body: 'Push for {{first_name}}: {{amount}}' })
        .expect(200);
      expect(preview.text).to.match(/^<div class="preview" id="tpl-initial-ntfy-preview"/);
      expect(preview.text).to.include(`Push for Jane: €39.00 http://pay.test/${shop.handle}/spring-membership`);

      const long = await acct.agent.post('/app/settings/templates').type('form').send({ _csrf: acct.csrf, kind: 'initial', channel: 'ntfy', body: 'x'.repeat(641) }).expect(422);
      expect(/<p class="error" id="tpl-initial-ntfy-body-error"[^>]*>([^<]*)<\/p>/.exec(long.text)![1]).to.not.equal('');
      await acct.agent.post('/app/settings/templates').type('form').send({ _csrf: acct.csrf, kind: 'initial', channel: 'pigeon', body: 'x' }).expect(422);

      await acct.agent.post('/app/settings/templates').type('form').send({ _csrf: acct.csrf, kind: 'initial', channel: 'ntfy', body: 'Push {{first_name}}: {{link_name}} {{url}}' }).expect(303);
      expect((await acct.agent.get('/app/settings/templates').expect(200)).text).to.include('Reset to default');
      const since = ntfy.messages.length;
      const link = await env.rt.services.links.create(shop, { type: 'amount', name: 'Templated', amount: 100, currency: 'EUR' });
      await env.rt.services.sending.send(shop, link, { customer_id: jane.id, channels: ['ntfy'] });
      await env.rt.jobs.drain();
      expect(newMessages(since)[0].text).to.match(/^Push Jane: Templated http:\/\/pay\.test\//);
      // SMS keeps its own default.
      const m = await env.rt.services.templates.get(shop.key, 'initial', 'sms');
      expect(m.custom).to.equal(false);
      await acct.agent.post('/app/settings/templates/reset').type('form').send({ _csrf: acct.csrf, kind: 'initial', channel: 'ntfy' }).expect(303);
      expect((await env.rt.services.templates.get(shop.key, 'initial', 'ntfy')).custom).to.equal(false);
    });
  });
});

forEachTarget('channels by id: what stops the boot, what disables a plugin', (target) => {
  const ntfyCopy = definePlugin({
    id: 'channel-ntfy-copy',
    version: '1.0.0',
    apiVersion: 1,
    config: z.object({}),
    register(api) {
      api.channels.register({ id: 'ntfy', label: 'ntfy (copy)', address: { kind: 'ntfy_topic', label: 'ntfy topic' }, send: async (m: OutgoingMessage) => ({ providerMessageId: m.id }) });
    },
  });

  it('refuses to start when two plugins register a real channel with one id, naming both', async () => {
    const err = await build(target, { pluginSources: [...builtinSources(BUILTIN_PLUGINS_DIR), ntfySource(), inline(ntfyCopy)] }).then(
      async (env) => {
        await env.close();
        throw new Error('the app started');
      },
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(PluginLoadError);
    const { problems } = err as PluginLoadError;
    expect(problems.map((p) => [p.source, p.code])).to.deep.equal([['inline:channel-ntfy-copy', 'duplicate_channel']]);
    expect(problems[0].message).to.include('"ntfy"').and.include('channel-ntfy').and.include('channel-ntfy-copy');
    expect((err as Error).message).to.include('channel-ntfy-copy');
  });

  it('disables a plugin whose channel declares a bad id or address kind, and starts', async () => {
    const bad = (id: string, channel: Record<string, unknown>) =>
      inline(definePlugin({ id, version: '1.0.0', apiVersion: 1, register: (api) => api.channels.register(channel as never) }));
    const send = async () => ({ providerMessageId: 'x' });
    const env = await build(target, {
      pluginSources: [
        ...builtinSources(BUILTIN_PLUGINS_DIR),
        bad('channel-badkind', { id: 'pager', address: { kind: 'Pager Number', label: 'Pager' }, send }),
        bad('channel-corekind', { id: 'pager', address: { kind: 'phone', label: 'Pager' }, send }),
        bad('channel-badid', { id: 'Pager!', address: 'phone', send }),
        bad('channel-nolabel', { id: 'pager', address: { kind: 'pager_number' }, send }),
      ],
    });
    try {
      for (const id of ['channel-badkind', 'channel-corekind', 'channel-badid', 'channel-nolabel']) {
        const p = env.rt.plugins.list().find((x) => x.id === id)!;
        expect(p.status, id).to.equal('failed');
        expect(p.error, id).to.include('channels.register');
      }
      expect(env.rt.plugins.list().find((x) => x.id === 'channel-badkind')!.error).to.include('Pager Number');
      expect(env.rt.registries.channels.get('pager')).to.equal(undefined);
      await supertest(env.app).get('/health').expect(200);
    } finally {
      await env.close();
    }
  });

  it('still lets a real channel take over an Outbox fallback id', async () => {
    const env = await build(target, { env: { PAYLINK_PLUGINS: fixturePlugin('channel-memory') } });
    try {
      expect(env.rt.registries.channels.ownerOf('email')).to.equal('channel-memory');
      // A core channel id served without a label keeps core's name for it.
      expect(env.rt.services.deliveries.channels.label('email')).to.equal('Email');
      expect(await outboxMessages(env)).to.deep.equal([]);
    } finally {
      await env.close();
    }
  });
});

describe('channels by id in the browser', function () {
  this.timeout(90_000);
  const browser = useBrowser();
  let env: ServedEnv;
  let ntfy: FakeNtfy;
  before(async function () {
    this.timeout(30_000);
    ntfy = await startFakeNtfy();
    env = await serve(TARGETS[0], { pluginSources: [...builtinSources(BUILTIN_PLUGINS_DIR), ntfySource()], env: { PAYLINK_PLUGIN_CHANNEL_NTFY: JSON.stringify({ server: ntfy.url }) } });
  });
  after(async () => {
    await env?.close();
    await ntfy?.close();
  });

  it('adds a customer with a topic, sends them a link by ntfy from the Send panel, and edits the ntfy template', async () => {
    const tab = await browser().newPage();
    try {
      const m = tab.page;
      const handle = uniqueHandle('ntfy');
      await signUpInBrowser(m, env.origin, { name: 'Acme Yoga', handle });
      const merchant = (await env.rt.services.merchants.getByHandle(handle))!;

      // The customer form: a bad topic comes back by its field, a good one is saved.
      await m.goto(`${env.origin}/app/customers/new`);
      await m.getByLabel('Name').fill('Jane Doe');
      await m.getByLabel('ntfy topic').fill('no spaces here');
      tab.expectError({ status: 422, path: '/app/customers' });
      await m.getByRole('button', { name: 'Add customer' }).click();
      await m.getByText('A topic is 1 to 64 letters, digits, - or _.').waitFor();
      for (const size of [DESKTOP, PHONE]) {
        await m.setViewportSize(size);
        await tab.screenshot(`channels-customer-form-${size.width}`);
      }
      await m.setViewportSize(DESKTOP);
      await m.getByLabel('ntfy topic').fill('acme-jane');
      await m.getByRole('button', { name: 'Add customer' }).click();
      await m.locator('#channel-ntfy').getByText('Available').waitFor();
      await m.locator('#address-ntfy_topic').getByText('acme-jane').waitFor();
      for (const size of [DESKTOP, PHONE]) {
        await m.setViewportSize(size);
        await tab.screenshot(`channels-customer-page-${size.width}`);
      }
      await m.setViewportSize(DESKTOP);

      // The Send panel offers ntfy for Jane (email cannot reach her).
      const link = await env.rt.services.links.create(merchant, { type: 'amount', name: 'Spring membership', amount: 3900 });
      await m.goto(`${env.origin}/app/links/${link.id}`);
      const panel = m.locator('#link-send');
      await panel.getByRole('checkbox', { name: /Jane Doe/ }).check();
      await panel.locator('#channel-option-email').getByText('No email address').waitFor();
      await panel.locator('#send-channels').getByRole('checkbox', { name: 'ntfy' }).check();
      for (const size of [DESKTOP, PHONE]) {
        await m.setViewportSize(size);
        await tab.screenshot(`channels-send-panel-${size.width}`);
      }
      await m.setViewportSize(DESKTOP);
      await panel.getByRole('button', { name: 'Send link' }).click();
      await panel.getByText('Sent to Jane Doe.').waitFor();
      await env.rt.jobs.drain();
      // The card turns "Sent" by itself (its live refresh has landed before we leave the page).
      await m.locator('#link-deliveries tr', { has: m.locator('.channel-ntfy') }).locator('.badge-green').waitFor();
      expect(ntfy.messages.map((x) => [x.topic, x.tags])).to.deep.equal([['acme-jane', 'initial']]);

      // Its template, with the live preview.
      await m.goto(`${env.origin}/app/settings/templates#tpl-initial-ntfy`);
      await m.locator('#tpl-initial-ntfy-body').fill('Push for {{first_name}}: {{link_name}}');
      await m.locator('#tpl-initial-ntfy-preview', { hasText: 'Push for Jane: Spring membership' }).waitFor();
      for (const size of [DESKTOP, PHONE]) {
        await m.setViewportSize(size);
        await m.locator('#tpl-initial-ntfy').screenshot({ path: `${SHOTS_DIR}/channels-template-card-${size.width}.png`, caret: 'initial', animations: 'disabled' });
      }
      await m.setViewportSize(DESKTOP);
      await m.locator('#tpl-initial-ntfy').getByRole('button', { name: 'Save' }).click();
      await m.locator('#tpl-initial-ntfy .badge', { hasText: 'Your text' }).waitFor();
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });
});

describe('the channel directory', () => {
  const send = async (m: OutgoingMessage) => ({ providerMessageId: m.id });
  const registry = (list: Channel[]) => ({ list: () => list, get: (id: string) => list.find((c) => c.id === id) });

  it('lists core channels first, then the rest by label, and labels a channel by its id when it has none', () => {
    const dir = createChannelDirectory(
      registry([
        { id: 'zulip', address: { kind: 'zulip_user', label: 'Zulip user' }, send },
        { id: 'sms', label: 'SMS', address: 'phone', send },
        { id: 'apns', label: 'Push', address: { kind: 'device_token', label: 'device token' }, send },
        { id: 'email', label: 'Email', address: 'email', send },
      ]),
    );
    expect(dir.list().map((c) => `${c.id}:${c.label}:${c.style}`)).to.deep.equal(['email:Email:email', 'sms:SMS:text', 'apns:Push:text', 'zulip:zulip:text']);
    expect(dir.label('gone')).to.equal('gone');
    const jane = { name: 'Jane', email: null, phone: '+31612345678', addresses: { device_token: 'tok' } };
    expect(dir.options(jane).map((o) => [o.id, o.enabled, o.reason, o.address])).to.deep.equal([
      ['email', false, 'No email address', null],
      ['sms', true, null, '+31612345678'],
      ['apns', true, null, 'tok'],
      ['zulip', false, 'No Zulip user', null],
    ]);
  });

  it('keeps a plugin’s parse from breaking the customer form: throws, bad answers and long values are messages', () => {
    const kinds = createChannelDirectory(
      registry([
        { id: 'one', address: { kind: 'thrower', label: 'thing', parse: () => { throw new Error('boom'); } }, send },
        { id: 'two', address: { kind: 'liar', label: 'liar id', parse: () => ({ ok: true }) as never }, send },
        { id: 'three', address: { kind: 'longer', label: 'long id', parse: (v) => ({ ok: true, value: v.repeat(300) }) }, send },
        { id: 'four', address: { kind: 'thrower', label: 'ignored', parse: (v) => ({ ok: true, value: v }) }, send },
      ]),
    ).addressKinds();
    expect(kinds.map((k) => [k.kind, k.label, k.channels])).to.deep.equal([['thrower', 'thing', ['one', 'four']], ['liar', 'liar id', ['two']], ['longer', 'long id', ['three']]]);
    const [thrower, liar, longer] = kinds;
    expect(thrower.parse('x')).to.deep.equal({ ok: false, message: 'Enter a valid thing.' });
    expect(liar.parse('x')).to.deep.equal({ ok: false, message: 'Enter a valid liar id.' });
    expect(longer.parse('x')).to.deep.equal({ ok: false, message: 'The long id can have at most 254 characters.' });
    expect(longer.parse('  ')).to.deep.equal({ ok: false, message: 'Enter the long id.' });
    expect(longer.parse('a\nb')).to.deep.equal({ ok: false, message: 'The long id cannot contain line breaks or control characters.' });
  });
});

forEachTarget('channels by id: a plugin channel that sends to email addresses', (target) => {
  it('gets the email-style templates (subject and HTML) and sends the HTML email; Text-to-Pay refuses it', async () => {
    const sent: OutgoingMessage[] = [];
    const postmark = definePlugin({
      id: 'channel-postmark',
      version: '1.0.0',
      apiVersion: 1,
      register(api) {
        api.channels.register({ id: 'postmark', label: 'Postmark', address: 'email', send: async (m: OutgoingMessage) => (sent.push(m), { providerMessageId: `pm_${m.id}` }) });
      },
    });
    const env = await build(target, { pluginSources: [...builtinSources(BUILTIN_PLUGINS_DIR), inline(postmark)] });
    try {
      const acct = await signUp(env.app, { name: 'Acme Yoga' });
      const m = (await env.rt.services.merchants.getByHandle(acct.handle))!;
      const tpl = await env.rt.services.templates.get(m.key, 'initial', 'postmark');
      expect(tpl).to.include({ style: 'email', subject: '{{business}}: your payment link for {{link_name}}', custom: false });
      const page = await acct.agent.get('/app/settings/templates').expect(200);
      expect(page.text).to.include('id="tpl-initial-postmark-subject"').and.include('First message · Postmark');
      const noSubject = await acct.agent.post('/app/settings/templates').type('form').send({ _csrf: acct.csrf, kind: 'initial', channel: 'postmark', body: 'Hi' }).expect(422);
      expect(/<p class="error" id="tpl-initial-postmark-subject-error"[^>]*>([^<]*)<\/p>/.exec(noSubject.text)![1]).to.equal('Enter a subject for the email.');

      const jane = await env.rt.services.customers.create(m.key, { name: 'Jane Doe', email: 'jane@example.test' });
      const link = await env.rt.services.links.create(m, { type: 'amount', name: 'Spring membership', amount: 3900 });
      await env.rt.services.sending.send(m, link, { customer_id: jane.id, channels: ['postmark'] });
      await env.rt.jobs.drain();
      expect(sent).to.have.length(1);
      expect(sent[0]).to.include({ to: 'jane@example.test', subject: 'Acme Yoga: your payment link for Spring membership', kind: 'initial' });
      expect(sent[0].html).to.include('Pay €39.00').and.include(sent[0].linkUrl!);
      // Text-to-Pay is for text channels only.
      const refused = await acct.agent.post(`/app/customers/${jane.id}/text-to-pay`).type('form').send({ _csrf: acct.csrf, amount: '5', channel: 'postmark' }).expect(422);
      expect(refused.text).to.include('Postmark is not a text channel');
    } finally {
      await env.close();
    }
  });
});
