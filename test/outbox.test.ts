import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, signUp, type Account, type TestEnv } from './support/harness.ts';
import type { OutgoingMessage, PluginMerchant } from '../src/plugin-api.ts';
import { fixturePlugin, pluginRow } from './fixtures/plugins/helpers.ts';

let sequence = 0;
function message(merchant: PluginMerchant | { id: string; name: string; brandColor: string }, fields: Partial<OutgoingMessage> = {}): OutgoingMessage {
  sequence += 1;
  return {
    id: `msg_test_${sequence}`,
    merchant: { id: merchant.id, name: merchant.name, brandColor: merchant.brandColor },
    to: 'customer@example.test',
    subject: `Your payment link #${sequence}`,
    text: 'Pay here: http://pay.test/l/abc',
    kind: 'initial',
    linkUrl: null,
    ...fields,
  };
}

forEachTarget('channel-outbox', (target) => {
  describe('as the fallback for every channel', () => {
    let env: TestEnv;
    let a: Account;
    let b: Account;
    let merchantA: PluginMerchant;
    before(async () => {
      env = await build(target);
      a = await signUp(env.app);
      b = await signUp(env.app);
      merchantA = (await env.rt.services.merchants.getByHandle(a.handle))!;
    });
    after(() => env?.close());

    const outbox = (acct: Account) => acct.agent.get('/app/p/channel-outbox').expect(200);

    it('keeps an email sent through the email channel in the Outbox of the merchant who sent it', async () => {
      const sent = message(merchantA, { subject: 'Invoice 1042 for Acme' });
      const result = await env.rt.registries.channels.get('email')!.send(sent);
      expect(result.providerMessageId).to.match(/^rec_/);
      const row = await env.rt.db('plugin_records').where({ public_id: result.providerMessageId }).first();
      expect(row.plugin_id).to.equal('channel-outbox');
      expect(JSON.parse(row.data)).to.include({ channel: 'email', to: sent.to, subject: 'Invoice 1042 for Acme', messageId: sent.id });

      const page = await outbox(a);
      expect(page.text).to.include('Invoice 1042 for Acme').and.include('customer@example.test');
    });

    it("keeps an email's subject and text, not its HTML version", async () => {
      const sent = message(merchantA, { subject: 'Invoice 1043 for Acme', text: 'Pay here: http://pay.test/l/1043', html: `<p>${'Pay here '.repeat(200)}</p>` });
      const [result] = await env.rt.registries.channels.get('email')!.sendMany!([sent]);
      const row = await env.rt.db('plugin_records').where({ public_id: (result as { providerMessageId: string }).providerMessageId }).first();
      const data = JSON.parse(row.data);
      expect(data).to.include({ subject: 'Invoice 1043 for Acme', text: 'Pay here: http://pay.test/l/1043', messageId: sent.id });
      expect(data).not.to.have.property('html');
      expect(row.data.length).to.be.below(300);
    });

    it("never shows one merchant's messages in another merchant's Outbox", async () => {
      await env.rt.registries.channels.get('email')!.send(message(merchantA, { subject: 'Only for A', to: 'only-a@example.test' }));
      const page = await outbox(b);
      expect(page.text).not.to.include('Only for A').and.not.to.include('only-a@example.test');
      expect(page.text).to.include('No messages yet');
    });

    it('keeps SMS and WhatsApp messages too, each marked with its channel', async () => {
      await env.rt.registries.channels.get('sms')!.send(message(merchantA, { to: '+447700900123', subject: undefined, text: 'SMS body 77' }));
      await env.rt.registries.channels.get('whatsapp')!.send(message(merchantA, { to: '+447700900124', subject: undefined, text: 'WhatsApp body 78' }));
      const page = await outbox(a);
      expect(page.text).to.include('badge-sms').and.include('SMS body 77');
      expect(page.text).to.include('badge-whatsapp').and.include('WhatsApp body 78');
    });

    it('escapes message content on the Outbox page', async () => {
      await env.rt.registries.channels.get('email')!.send(message(merchantA, { subject: '<script>alert(1)</script>' }));
      const page = await outbox(a);
      expect(page.text).not.to.include('<script>alert(1)</script>');
      expect(page.text).to.include('&lt;script&gt;alert(1)&lt;/script&gt;');
    });

    it('links the Outbox from the dashboard navigation', async () => {
      const dash = await a.agent.get('/app').expect(200);
      expect(dash.text).to.match(/<a[^>]*href="\/app\/p\/channel-outbox"[^>]*>[^<]*Outbox/);
    });

    it('answers an htmx request for the Outbox with just the page fragment', async () => {
      const res = await a.agent.get('/app/p/channel-outbox').set('HX-Request', 'true').expect(200);
      expect(res.headers.vary).to.match(/HX-Request/i);
      expect(res.text).to.include('data-plugin="channel-outbox"').and.not.include('<html');
    });

    it('pages through older messages 50 at a time', async () => {
      const c = await signUp(env.app);
      const merchantC = (await env.rt.services.merchants.getByHandle(c.handle))!;
      const email = env.rt.registries.channels.get('email')!;
      for (let i = 1; i <= 51; i++) await email.send(message(merchantC, { subject: `Paged message ${String(i).padStart(2, '0')}` }));
      const first = await outbox(c);
      expect(first.text).to.include('Paged message 51').and.include('Paged message 02').and.not.include('Paged message 01');
      const older = /href="\?before=(rec_[^"]+)"/.exec(first.text);
      expect(older, 'an Older messages link').to.not.equal(null);
      const second = await c.agent.get(`/app/p/channel-outbox?before=${older![1]}`).expect(200);
      expect(second.text).to.include('Paged message 01').and.not.include('Paged message 02');
    });

    it('sends visitors without a session from the Outbox to the login page', async () => {
      const res = await supertest(env.app).get('/app/p/channel-outbox').expect(303);
      expect(res.headers.location).to.equal('/login?next=%2Fapp%2Fp%2Fchannel-outbox');
    });
  });

  describe('next to a real email channel', () => {
    let env: TestEnv;
    before(async () => {
      env = await build(target, { env: { PAYLINK_PLUGINS: fixturePlugin('channel-memory') } });
    });
    after(() => env?.close());

    it('hands email to the real channel and keeps serving SMS and WhatsApp', async () => {
      const { channels } = env.rt.registries;
      expect(channels.ownerOf('email')).to.equal('channel-memory');
      expect(channels.get('email')!.fallback).to.not.equal(true);
      expect(channels.ownerOf('sms')).to.equal('channel-outbox');
      expect(channels.ownerOf('whatsapp')).to.equal('channel-outbox');

      const acct = await signUp(env.app);
      const merchant = (await env.rt.services.merchants.getByHandle(acct.handle))!;
      const result = await channels.get('email')!.send(message(merchant, { subject: 'Sent for real' }));
      expect(result.providerMessageId).to.match(/^mem_rec_/);
      expect(await env.rt.db('plugin_records').where({ plugin_id: 'channel-outbox' })).to.have.length(0);
      expect((await acct.agent.get('/app/p/channel-outbox').expect(200)).text).not.to.include('Sent for real');
    });

    it('shows which plugin serves each channel on the Plugins page', async () => {
      const acct = await signUp(env.app);
      const page = await acct.agent.get('/app/plugins').expect(200);
      expect(page.text).to.include('Email <code>email</code> → channel-memory').and.include('SMS <code>sms</code> → channel-outbox');
      expect(pluginRow(page.text, 'channel-memory')).to.include('Active').and.include('Channels: email');
    });
  });
});
