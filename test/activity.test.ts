// The Activity page and the dashboard home say what happened in sentences ("Ada paid €25.00 for
// “Espresso workshop”.", "You signed up.", "Payment request INV-7 expired.") — one for every event
// type, never a raw code — and the home page shows the numbers a merchant opens it for: money
// received today / in 7 / in 30 days per currency in their time zone, links about to sell out, and
// messages that failed.
import fs from 'node:fs';
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { signUp, useEnv, type Account } from './support/harness.ts';
import { apiClient } from './support/api.ts';
import { EVENT_TYPES, type EventType } from '../src/core/events.ts';
import { SENTENCES, describeEvent, NO_NAMES, type ActivityNames } from '../src/features/dashboard/activity.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';

/** Each event type's `@example` payload, read from the catalogue's documentation in src/core/events.ts. */
function catalogueExamples(): Map<string, Record<string, unknown>> {
  const source = fs.readFileSync(new URL('../src/core/events.ts', import.meta.url), 'utf8');
  const out = new Map<string, Record<string, unknown>>();
  for (const m of source.matchAll(/@example (\{.*\})\s*\n\s*\*\/\s*\n\s*'([a-z_.]+)': PayloadOf/g)) out.set(m[2], JSON.parse(m[1].replace(/…/g, '')));
  return out;
}

describe('activity sentences (dashboard/activity.ts)', () => {
  const examples = catalogueExamples();

  it('has a sentence for every event type, reading as words (no codes, no undefined), with or without names', () => {
    expect(examples.size, 'examples found in events.ts').to.be.greaterThan(10);
    for (const type of EVENT_TYPES) {
      expect(SENTENCES, `a sentence for ${type}`).to.have.property(type).that.is.a('function');
      const payload = examples.get(type);
      expect(payload, `an @example for ${type} in events.ts`).to.be.an('object');
      const names: ActivityNames = {
        customers: new Map([[String(payload!.customerId), 'Ada Lovelace']]),
        links: new Map([[String(payload!.linkId), { name: 'Espresso workshop', kind: 'smart', deleted: false }]]),
        payments: new Map([[String(payload!.paymentId), { payer: 'Ada Lovelace', linkName: 'Espresso workshop' }]]),
        channelLabel: (id) => id.toUpperCase(),
      };
      for (const n of [NO_NAMES, names]) {
        const { text } = describeEvent({ id: 'evt_1', type, payload: payload as never, createdAt: new Date() }, n);
        expect(text, type).to.match(/^[A-Z“€$£¥0-9].*[.!]$/);
        expect(text, type).not.to.include(type);
        expect(text, type).not.to.match(/undefined|null|\[object|NaN/);
      }
    }
  });

  it('says the payment the way a person would: who, how much, for what', () => {
    const names: ActivityNames = {
      customers: new Map([['cus_ada', 'Ada']]),
      links: new Map([['lnk_esp', { name: 'Espresso workshop', kind: 'smart', deleted: false }]]),
      payments: new Map(),
      channelLabel: (id) => (id === 'email' ? 'Email' : id),
    };
    const said = (type: EventType, payload: Record<string, unknown>) => describeEvent({ id: 'evt_1', type, payload: payload as never, createdAt: new Date() }, names);
    const paid = said('payment.succeeded', { merchantId: 'mer_1', paymentId: 'pay_1', linkId: 'lnk_esp', customerId: 'cus_ada', amount: 2500, currency: 'EUR', provider: 'sandbox' });
    expect(paid).to.deep.include({ text: 'Ada paid €25.00 for “Espresso workshop”.', href: '/app/payments/pay_1' });
    expect(said('merchant.created', { merchantId: 'mer_1', handle: 'acme', name: 'Acme' }).text).to.equal('You signed up.');
    expect(said('payment_request.expired', { merchantId: 'mer_1', requestId: 'req_1', linkId: 'lnk_x', reference: 'INV-7', expiredAt: '2026-03-02T09:00:00.000Z' })).to.deep.include({ text: 'Payment request INV-7 expired.', href: '/app/requests/req_1' });
    expect(said('payment.failed', { merchantId: 'mer_1', paymentId: 'pay_2', linkId: null, customerId: null, amount: 700, currency: 'EUR', provider: 'sandbox', reason: 'card_declined' }).text).to.equal(
      'A customer’s payment of €7.00 on your payment page did not go through: the card was declined.',
    );
    expect(said('merchant.updated', { merchantId: 'mer_1', handle: 'acme', changed: ['name', 'brand_color'] }).text).to.equal('You changed your business name and brand colour.');
  });
});

forEachTarget('dashboard: activity and home in words and numbers', (target) => {
  const env = useEnv(target, { apiLimit: { points: 100_000, durationSec: 60 } });
  const CARD_OK = '4242424242424242';
  const http = () => supertest(env.app);
  const merchantOf = async (acct: Account): Promise<Merchant> => (await env.rt.services.merchants.getByHandle(acct.handle))!;

  /** A customer pays a link through the pay page and the sandbox card page. */
  async function payLink(m: Merchant, path: string, payer: { name: string; email: string }): Promise<void> {
    const res = await http().post(`/${m.handle}/${path}`).type('form').send(payer);
    expect(res.status, res.text.slice(0, 300)).to.equal(303);
    const card = new URL(res.headers.location).pathname;
    const done = await http().post(card).type('form').send({ card_number: CARD_OK });
    expect(done.status, done.text.slice(0, 300)).to.equal(303);
  }

  /** The sentences of a page's event list. */
  const sentences = (html: string) => [...html.matchAll(/<span class="event-label">(?:<a href="[^"]*">)?([^<]*)/g)].map((m) => m[1].replace(/&#39;|&#x27;/g, '’').trim());

  it('the Activity page and the home page show sentences with links, never raw event codes', async () => {
    const acct = await signUp(env.app);
    const m = await merchantOf(acct);
    await env.rt.services.customers.create(m.key, { name: 'Ada Lovelace', email: 'ada@example.test' });
    const link = await env.rt.services.links.create(m, { type: 'amount', name: 'Espresso workshop', amount: 2500, path: 'espresso' });
    await payLink(m, 'espresso', { name: 'Ada L.', email: 'ADA@example.test' });
    await env.rt.jobs.drain();

    const page = await acct.agent.get('/app/activity').expect(200);
    const said = sentences(page.text);
    expect(said).to.include('Ada Lovelace paid €25.00 for “Espresso workshop”.');
    expect(said).to.include('You created the link “Espresso workshop” for €25.00.');
    expect(said).to.include('You signed up.');
    expect(page.text).to.include(`href="/app/links/${link.id}"`);
    // No raw code is shown: not as text, not as a <code>.
    const visible = page.text.replace(/<[^>]+>/g, ' ');
    for (const type of EVENT_TYPES) expect(visible, type).not.to.include(type);

    const home = await acct.agent.get('/app').expect(200);
    expect(sentences(home.text)).to.include('Ada Lovelace paid €25.00 for “Espresso workshop”.');
    const homeText = home.text.replace(/<[^>]+>/g, ' ');
    for (const type of EVENT_TYPES) expect(homeText, type).not.to.include(type);
  });

  it('the Activity page reads names in a fixed number of queries, however many events it shows (no N+1)', async () => {
    const queriesFor = async (acct: Account) => {
      let n = 0;
      const count = () => void n++;
      env.rt.db.on('query', count);
      try {
        await acct.agent.get('/app/activity').expect(200);
      } finally {
        env.rt.db.off('query', count);
      }
      return n;
    };
    // Both name customers, links and payments: one with one payment, one with six.
    const few = await signUp(env.app);
    const fm = await merchantOf(few);
    await env.rt.services.links.create(fm, { type: 'amount', name: 'Solo', amount: 1000, path: 'solo' });
    await payLink(fm, 'solo', { name: 'Solo payer', email: 'solo@example.test' });
    const many = await signUp(env.app);
    const mm = await merchantOf(many);
    for (let i = 0; i < 6; i++) {
      const c = await env.rt.services.customers.create(mm.key, { name: `Payer ${i}`, email: `p${i}@example.test` });
      await env.rt.services.links.create(mm, { type: 'amount', name: `Class ${i}`, amount: 1000 + i, path: `class-${i}` });
      await payLink(mm, `class-${i}`, { name: c.name, email: c.email! });
    }
    await env.rt.jobs.drain();
    expect((await env.rt.events.listForMerchant(mm.key, 100)).length).to.be.greaterThan(20);
    await queriesFor(few); // warm up (session store, caches)
    await queriesFor(many);
    expect(await queriesFor(many)).to.equal(await queriesFor(few));
  });

  it('home: money received today, in 7 and in 30 days in the merchant’s time zone, per currency', async () => {
    const acct = await signUp(env.app);
    let m = await merchantOf(acct);
    // Auckland is UTC+13 in March: 09:00 UTC on 2 March is 22:00 there.
    env.clock.set('2026-03-02T09:00:00Z');
    await env.rt.services.merchants.updateSettings(m, { name: m.name, handle: m.handle, currency: 'EUR', timezone: 'Pacific/Auckland', brand_color: m.brandColor });
    m = await merchantOf(acct);
    await env.rt.services.links.create(m, { type: 'amount', name: 'Cake', amount: 2500, path: 'cake' });
    await env.rt.services.links.create(m, { type: 'amount', name: 'Dollar cake', amount: 1000, currency: 'USD', path: 'usd-cake' });
    env.clock.set('2026-02-20T09:00:00Z'); // 10 days earlier
    await payLink(m, 'cake', { name: 'Old', email: 'old@example.test' });
    env.clock.set('2026-03-02T09:00:00Z');
    await payLink(m, 'cake', { name: 'Ann', email: 'ann@example.test' });
    await payLink(m, 'usd-cake', { name: 'Bob', email: 'bob@example.test' });

    const windows = async () => {
      const html = (await acct.agent.get('/app').expect(200)).text;
      const out: Record<string, string[]> = {};
      for (const w of html.matchAll(/<div class="metric" data-window="([^"]+)"><dt>[^<]*<\/dt>([\s\S]*?)<\/div>/g)) {
        out[w[1]] = [...w[2].matchAll(/<dd>([^<]*)<span class="metric-note">([^<]*)<\/span><\/dd>/g)].map((d) => `${d[1].trim()} ${d[2].trim()}`);
      }
      return out;
    };
    expect(await windows()).to.deep.equal({
      Today: ['€25.00 1 payment', '$10.00 1 payment'],
      'Last 7 days': ['€25.00 1 payment', '$10.00 1 payment'],
      'Last 30 days': ['€50.00 2 payments', '$10.00 1 payment'],
    });
    // Three hours later it is 01:00 on 3 March in Auckland: a new day there (not yet in UTC).
    env.clock.set('2026-03-02T12:00:00Z');
    expect((await windows()).Today).to.deep.equal(['€0.00 0 payments']);
  });

  it('home: links about to sell out, and messages that failed with a link to the customer', async () => {
    const acct = await signUp(env.app);
    const m = await merchantOf(acct);
    const almost = await env.rt.services.links.create(m, { type: 'amount', name: 'Pottery class', amount: 4500, path: 'pottery', payment_limit: 5 });
    await env.rt.services.links.create(m, { type: 'amount', name: 'Far from it', amount: 4500, path: 'far', payment_limit: 50 });
    let home = (await acct.agent.get('/app').expect(200)).text;
    expect(home).to.include('None: no link with a payment limit is close to it.');
    expect(home).to.include('None in the last 30 days.');
    for (let i = 0; i < 4; i++) await payLink(m, 'pottery', { name: `P${i}`, email: `pot${i}@example.test` });
    await payLink(m, 'far', { name: 'F', email: 'far@example.test' });

    const call = apiClient(env.app, (await env.rt.services.apiKeys.create(m, { name: 't' })).secret);
    const req = await call('post', '/payment_requests', { amount: 900, currency: 'EUR', customer: { name: 'Cleo', email: 'cleo@example.test' }, channels: ['email'] }).expect(201);
    await env.rt.jobs.drain();
    // The message could not be delivered (set here: the Outbox never refuses one).
    expect(await env.rt.db('deliveries').where({ merchant_id: m.key, kind: 'initial' }).update({ status: 'failed', error: 'Mailbox unavailable' })).to.equal(1);

    home = (await acct.agent.get('/app').expect(200)).text;
    expect(home).to.match(new RegExp(`<a href="/app/links/${almost.id}">Pottery class</a></span> <span class="muted small">1 of 5 left</span>`));
    expect(home).not.to.include('Far from it');
    expect(home).to.match(/<strong>1<\/strong> message could not be sent in the last 30 days/);
    expect(home).to.include(`<a href="/app/customers/${req.body.customer.id}">Link to Cleo by Email</a>`);
    expect(home).to.include('Mailbox unavailable');
  });
});
