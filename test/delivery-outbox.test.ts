/**
 * The deliveries outbox through the real parts: a real SMTP server (smtp-server on loopback) and a
 * fake Vonage HTTP server that the real SDK talks to. Time moves on the manual clock; nothing sleeps
 * except the "sent at once" check, which runs the real job loop (with the clock standing still).
 */
import { expect } from 'chai';
import { forEachTarget } from './support/targets.ts';
import { apiClient, apiMerchant, expectProblem, type ApiCall, type ApiMerchant } from './support/api.ts';
import { build, type TestEnv } from './support/harness.ts';
import { startSmtp, type TestSmtp } from './support/smtp.ts';
import { startFakeVonage, type FakeVonage } from './support/fake-vonage.ts';
import { MAX_ATTEMPTS } from '../src/features/deliveries/service.ts';
import { waitFor } from './support/wait.ts';

const SECOND = 1000;
const HOUR = 3_600_000;
/** Past the first retry's backoff: 30 s plus at most 10 % jitter, rounded up to the second. */
const FIRST_BACKOFF = 35 * SECOND;

interface DeliveryJson {
  id: string;
  channel: string;
  kind: string;
  to: string;
  status: string;
  attempts: number;
  error: string | null;
}

async function deliveriesOf(call: ApiCall, linkId: string): Promise<DeliveryJson[]> {
  const res = await call('get', `/links/${linkId}/deliveries?limit=100`).expect(200);
  return res.body.data as DeliveryJson[];
}

async function newCustomer(call: ApiCall, fields: Record<string, unknown>): Promise<{ id: string; tags: { id: string; name: string }[] }> {
  const res = await call('post', '/customers', fields);
  expect(res.status, res.text).to.equal(201);
  return res.body;
}

forEachTarget('deliveries by real SMTP', (target) => {
  let smtp: TestSmtp;
  let env: TestEnv;
  let shop: ApiMerchant;
  let call: ApiCall;
  let n = 0;

  before(async () => {
    smtp = await startSmtp();
    env = await build(target, { apiLimit: { points: 100_000, durationSec: 60 }, env: { SMTP_URL: smtp.url, MAIL_FROM: 'Acme Billing <billing@acme.test>' } });
    shop = await apiMerchant(env, 'Acme Yoga');
    call = apiClient(env.app, shop.secret);
  });
  after(async () => {
    await env?.close();
    await smtp?.close();
  });
  beforeEach(async () => {
    smtp.reset();
    await smtp.up();
    smtp.messages.length = 0;
    n += 1;
  });

  const emailLink = async (customerId: string, name = `Membership ${n}`) => {
    const res = await call('post', '/links', { type: 'amount', name, amount: 3900, currency: 'EUR', send: { customer_id: customerId, channels: ['email'] } });
    expect(res.status, res.text).to.equal(201);
    return res.body as { id: string; url: string; sent: { deliveries: string[] } };
  };

  it('delivers one personalised email: recipient, subject, link URL with ?c=, first name, stable Message-ID', async () => {
    const jane = await newCustomer(call, { name: 'Jane Doe', email: `jane${n}@example.test` });
    const link = await emailLink(jane.id, 'Spring membership');
    expect(link.sent.deliveries).to.have.length(1);
    const deliveryId = link.sent.deliveries[0];
    expect(smtp.messages, 'nothing leaves before the outbox runs').to.have.length(0);
    await env.rt.jobs.drain();

    expect(smtp.messages).to.have.length(1);
    const mail = smtp.messages[0];
    expect(mail.envelope.to).to.deep.equal([`jane${n}@example.test`]);
    expect(mail.envelope.from).to.equal('billing@acme.test');
    expect(mail.headers.get('subject')).to.include('Spring membership').and.include('Acme Yoga');
    expect(mail.headers.get('from')).to.include('Acme Yoga').and.include('billing@acme.test');
    expect(mail.headers.get('message-id')).to.include(deliveryId);
    const personal = new RegExp(`${link.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\?c=cus_[A-Za-z0-9]+\\.[A-Za-z0-9_-]+`);
    expect(mail.text).to.match(personal).and.include('Hi Jane,').and.include('€39.00');
    expect(mail.html).to.match(personal).and.include('Jane');

    const [d] = await deliveriesOf(call, link.id);
    expect(d).to.include({ id: deliveryId, channel: 'email', status: 'sent', attempts: 1, error: null, to: `jane${n}@example.test` });
  });

  it('SMTP down then up: 5 queued messages (a customer tag) go out after recovery, each exactly once', async () => {
    const tagName = `Members ${n}`;
    let tagId = '';
    for (let i = 1; i <= 5; i++) {
      const c = await newCustomer(call, { name: `Member${i} Down`, email: `member${i}.${n}@example.test`, tags: [tagName] });
      tagId = c.tags[0].id;
    }
    await smtp.down();
    const res = await call('post', '/links', { type: 'amount', name: `Outage ${n}`, amount: 1000, currency: 'EUR', send: { customer_tag: tagId, channels: ['email'] } });
    expect(res.status, res.text).to.equal(201);
    expect(res.body.sent.recipients).to.equal(5);
    const ids: string[] = res.body.sent.deliveries;
    expect(ids).to.have.length(5);

    await env.rt.jobs.drain();
    let list = await deliveriesOf(call, res.body.id);
    expect(list).to.have.length(5);
    for (const d of list) {
      expect(d.status, JSON.stringify(d)).to.equal('queued');
      expect(d.attempts).to.equal(1);
      expect(d.error).to.be.a('string').and.not.equal('');
    }
    // Not due yet: draining again before the backoff sends nothing and counts no attempt.
    await smtp.up();
    await env.rt.jobs.drain();
    expect(smtp.messages).to.have.length(0);

    env.clock.advance(FIRST_BACKOFF);
    await env.rt.jobs.drain();
    // And more rounds later nothing is sent twice.
    env.clock.advance(2 * HOUR);
    await env.rt.services.reminders.sweep();
    await env.rt.jobs.drain();

    const byMessageId = new Map<string, number>();
    for (const m of smtp.messages) byMessageId.set(m.headers.get('message-id')!, (byMessageId.get(m.headers.get('message-id')!) ?? 0) + 1);
    expect(smtp.messages).to.have.length(5);
    expect([...byMessageId.values()]).to.deep.equal([1, 1, 1, 1, 1]);
    for (const id of ids) expect([...byMessageId.keys()].some((k) => k.includes(id)), `a message for ${id}`).to.equal(true);
    expect(smtp.messages.flatMap((m) => m.envelope.to).sort()).to.deep.equal([1, 2, 3, 4, 5].map((i) => `member${i}.${n}@example.test`));
    list = await deliveriesOf(call, res.body.id);
    expect(list.map((d) => [d.status, d.attempts, d.error])).to.deep.equal(Array(5).fill(['sent', 2, null]));
  });

  it('sends 600 queued messages (more than one batch) each exactly once, over the pooled SMTP connections', async () => {
    const customer = await newCustomer(call, { name: `Bulk ${n}`, email: `bulk.${n}@example.test` });
    const link = await emailLink(customer.id, `Bulk ${n}`);
    await env.rt.jobs.drain();
    smtp.messages.length = 0;
    const merchantKey = (await env.rt.services.merchants.getByHandle(shop.handle))!.key;
    const customerKey = Number((await env.rt.db('customers').where({ public_id: customer.id }).first('id'))!.id);
    const linkKey = Number((await env.rt.db('links').where({ public_id: link.id }).first('id'))!.id);
    const before = smtp.connections;
    const to = Array.from({ length: 600 }, (_, i) => `bulk${i}.${n}@example.test`);
    const ids = await env.rt.db.transaction((trx) => env.rt.services.deliveries.queue(trx, to.map((address) => ({ merchantKey, linkKey, customerKey, channel: 'email', kind: 'initial' as const, to: address }))));
    await env.rt.jobs.drain();

    expect(smtp.messages.map((m) => m.envelope.to[0]).sort()).to.deep.equal([...to].sort());
    const messageIds = new Set(smtp.messages.map((m) => m.headers.get('message-id')));
    expect(messageIds.size).to.equal(600);
    for (const id of ids) expect(messageIds.has(`<${id}@acme.test>`), id).to.equal(true);
    expect(await env.rt.db('deliveries').whereIn('public_id', ids).andWhereNot('status', 'sent').count({ n: '*' }).first()).to.deep.include({ n: 0 });
    // One pool of a few connections (maybe still open from earlier messages), reused: not a connection per message.
    expect(smtp.connections - before).to.be.at.most(4);
    // Every message is the one composed for its recipient (the batch renders each template once).
    for (const m of smtp.messages.slice(0, 3)) expect(m.text).to.include(`Hi Bulk,`).and.include(link.url);
  });

  it('retries a 451 (temporary) and sends once', async () => {
    const c = await newCustomer(call, { name: 'Tom Temp', email: `tom${n}@example.test` });
    smtp.fail('rcpt', 451, 'Try again later', 1);
    const link = await emailLink(c.id);
    await env.rt.jobs.drain();
    let [d] = await deliveriesOf(call, link.id);
    expect(d).to.include({ status: 'queued', attempts: 1 });
    expect(d.error).to.include('451');
    expect(smtp.messages).to.have.length(0);
    env.clock.advance(FIRST_BACKOFF);
    await env.rt.jobs.drain();
    [d] = await deliveriesOf(call, link.id);
    expect(d).to.include({ status: 'sent', attempts: 2, error: null });
    expect(smtp.messages).to.have.length(1);
  });

  it('marks a 550 (permanent) failed with the reason and never retries it', async () => {
    const c = await newCustomer(call, { name: 'Pat Perm', email: `pat${n}@example.test` });
    smtp.rejectRecipient(`pat${n}@example.test`, 550, 'No such user here');
    const link = await emailLink(c.id);
    await env.rt.jobs.drain();
    let [d] = await deliveriesOf(call, link.id);
    expect(d).to.include({ status: 'failed', attempts: 1 });
    expect(d.error).to.include('550').and.include('No such user here');
    smtp.reset();
    for (let i = 0; i < 3; i++) {
      env.clock.advance(2 * HOUR);
      await env.rt.services.reminders.sweep();
      await env.rt.jobs.drain();
    }
    [d] = await deliveriesOf(call, link.id);
    expect(d).to.include({ status: 'failed', attempts: 1 });
    expect(smtp.messages).to.have.length(0);
  });

  it(`gives up after ${MAX_ATTEMPTS} attempts when SMTP stays down`, async () => {
    const c = await newCustomer(call, { name: 'Gus Gone', email: `gus${n}@example.test` });
    await smtp.down();
    const link = await emailLink(c.id);
    for (let round = 1; round <= MAX_ATTEMPTS; round++) {
      await env.rt.jobs.drain();
      const [d] = await deliveriesOf(call, link.id);
      expect(d.attempts, `round ${round}`).to.equal(round);
      expect(d.status, `round ${round}`).to.equal(round < MAX_ATTEMPTS ? 'queued' : 'failed');
      env.clock.advance(HOUR + 10 * SECOND);
    }
    const [d] = await deliveriesOf(call, link.id);
    expect(d.error).to.match(new RegExp(`${MAX_ATTEMPTS} attempts`));
    await smtp.up();
    env.clock.advance(2 * HOUR);
    await env.rt.services.reminders.sweep();
    await env.rt.jobs.drain();
    expect((await deliveriesOf(call, link.id))[0]).to.include({ status: 'failed', attempts: MAX_ATTEMPTS });
    expect(smtp.messages).to.have.length(0);
  });

  it('keeps a link name with CR/LF on one Subject line: no injected header, no extra recipient', async () => {
    const c = await newCustomer(call, { name: 'Carl Crlf', email: `carl${n}@example.test` });
    const link = await emailLink(c.id, 'Spring\r\nBcc: evil@attacker.test\r\nX-Evil: 1');
    await env.rt.jobs.drain();
    expect(smtp.messages).to.have.length(1);
    const mail = smtp.messages[0];
    expect(mail.envelope.to).to.deep.equal([`carl${n}@example.test`]);
    expect(mail.headers.all('bcc')).to.deep.equal([]);
    expect(mail.headers.all('x-evil')).to.deep.equal([]);
    expect(mail.headers.all('subject')).to.have.length(1);
    expect(mail.headers.get('subject')).to.include('Spring').and.not.match(/[\r\n]/);
    expect((await deliveriesOf(call, link.id))[0].status).to.equal('sent');
  });

  it('refuses CR/LF in a customer name and in a template subject (422 by field)', async () => {
    const res = await call('post', '/customers', { name: 'Eve\r\nBcc: x@attacker.test', email: `eve${n}@example.test` });
    const body = expectProblem(res, 422, 'validation_failed');
    expect(body.errors.map((e) => e.field)).to.deep.equal(['name']);
    const update = await newCustomer(call, { name: 'Eve Fine', email: `eve${n}b@example.test` });
    const patch = await call('patch', `/customers/${update.id}`, { name: 'Eve\nEvil' });
    expect(expectProblem(patch, 422, 'validation_failed').errors.map((e) => e.field)).to.deep.equal(['name']);

    let err: unknown;
    try {
      await env.rt.services.templates.save(shop.merchant.key, { kind: 'initial', channel: 'email', subject: 'Pay now\r\nBcc: x@attacker.test', body: 'Hi {{first_name}}: {{url}}' });
    } catch (e) {
      err = e;
    }
    expect(err, 'the subject was accepted').to.include({ status: 422 });
    expect((err as { errors: { field: string }[] }).errors.map((e) => e.field)).to.deep.equal(['subject']);
    const saved = await env.rt.services.templates.all(shop.merchant.key);
    expect(saved.find((t) => t.kind === 'initial' && t.channel === 'email')!.custom).to.equal(false);
  });

  it('refuses invalid phone numbers (invalid_phone) and an SMS to a customer without one (no link, no delivery)', async () => {
    for (const phone of ['abc', '+1 555', '12345']) {
      const res = await call('post', '/customers', { name: 'Phil Phone', phone });
      const body = expectProblem(res, 422, 'invalid_phone');
      expect(body.errors.map((e) => e.field), phone).to.deep.equal(['phone']);
    }
    const noPhone = await newCustomer(call, { name: 'Nora Nophone', email: `nora${n}@example.test` });
    const links = Number((await env.rt.db('links').count({ n: '*' }))[0].n);
    const deliveries = Number((await env.rt.db('deliveries').count({ n: '*' }))[0].n);
    const res = await call('post', '/links', { type: 'amount', name: 'By text', amount: 500, currency: 'EUR', send: { customer_id: noPhone.id, channels: ['email', 'sms'] } });
    const body = expectProblem(res, 422, 'validation_failed');
    expect(body.errors.map((e) => [e.field, e.code])).to.deep.equal([['send.channels', 'channel_unreachable']]);
    expect(Number((await env.rt.db('links').count({ n: '*' }))[0].n)).to.equal(links);
    expect(Number((await env.rt.db('deliveries').count({ n: '*' }))[0].n)).to.equal(deliveries);
  });
});

forEachTarget('deliveries by the Vonage SDK (fake Vonage on loopback)', (target) => {
  let vonage: FakeVonage;
  let env: TestEnv;
  let call: ApiCall;
  const vonageEnv = (url: string) => ({
    VONAGE_API_KEY: 'key123',
    VONAGE_API_SECRET: 'secret456',
    VONAGE_REST_HOST: url,
    VONAGE_API_HOST: url,
    VONAGE_WHATSAPP_FROM: '+31201234567',
  });

  before(async () => {
    vonage = await startFakeVonage({ apiKey: 'key123', apiSecret: 'secret456' });
    env = await build(target, { apiLimit: { points: 100_000, durationSec: 60 }, env: vonageEnv(vonage.url) });
    const shop = await apiMerchant(env, 'Acme Yoga Studio');
    call = apiClient(env.app, shop.secret);
  });
  after(async () => {
    await env?.close();
    await vonage?.close();
  });
  beforeEach(() => vonage.reset());

  const phoneLink = async (channels: string[], name = 'Class pass') => {
    const c = await newCustomer(call, { name: 'Jane Doe', phone: '+31 6 12345678' });
    const res = await call('post', '/links', { type: 'amount', name, amount: 3900, currency: 'EUR', send: { customer_id: c.id, channels } });
    expect(res.status, res.text).to.equal(201);
    return res.body as { id: string; url: string; sent: { deliveries: string[] } };
  };

  it('sends the SMS from the business name (≤ 11 chars) and the WhatsApp message, personalised', async () => {
    const link = await phoneLink(['sms', 'whatsapp']);
    await env.rt.jobs.drain();
    const sms = vonage.requests.filter((r) => r.api === 'sms');
    const wa = vonage.requests.filter((r) => r.api === 'messages');
    expect(sms).to.have.length(1);
    expect(wa).to.have.length(1);
    expect(sms[0].body.to).to.equal('31612345678');
    expect(String(sms[0].body.from)).to.equal('Acme Yoga S').and.have.length.at.most(11);
    expect(String(sms[0].body.text)).to.match(/^Hi Jane, your Acme Yoga Studio payment link for Class pass \(€39\.00\): http:\/\/pay\.test\/\S+\?c=cus_/);
    expect(String(sms[0].body.text)).to.include(link.url);
    expect(wa[0].body).to.include({ channel: 'whatsapp', to: '31612345678', from: '31201234567' });
    expect(String(wa[0].body.text)).to.match(/^Hi Jane, /).and.include(link.url);
    const list = await deliveriesOf(call, link.id);
    expect(list.map((d) => [d.channel, d.status]).sort()).to.deep.equal([['sms', 'sent'], ['whatsapp', 'sent']]);
  });

  for (const status of [500, 429]) {
    it(`retries an HTTP ${status} from Vonage and then sends once`, async () => {
      vonage.failHttp('sms', status);
      const link = await phoneLink(['sms']);
      await env.rt.jobs.drain();
      let [d] = await deliveriesOf(call, link.id);
      expect(d).to.include({ status: 'queued', attempts: 1 });
      expect(d.error).to.include(String(status));
      env.clock.advance(FIRST_BACKOFF);
      await env.rt.jobs.drain();
      [d] = await deliveriesOf(call, link.id);
      expect(d).to.include({ status: 'sent', attempts: 2 });
      expect(vonage.requests.filter((r) => r.api === 'sms')).to.have.length(2);
    });
  }

  it('marks a 4xx from Vonage failed and never retries it', async () => {
    vonage.failHttp('messages', 422);
    const link = await phoneLink(['whatsapp']);
    await env.rt.jobs.drain();
    let [d] = await deliveriesOf(call, link.id);
    expect(d).to.include({ status: 'failed', attempts: 1 });
    expect(d.error).to.include('422');
    env.clock.advance(2 * HOUR);
    await env.rt.services.reminders.sweep();
    await env.rt.jobs.drain();
    [d] = await deliveriesOf(call, link.id);
    expect(d).to.include({ status: 'failed', attempts: 1 });
    expect(vonage.requests).to.have.length(1);
  });

  // The promise is "leaves within 2 s"; a test on a loaded machine cannot time that honestly (no
  // timing assertions), so it checks the mechanism: the message is queued due now and the real job
  // loop (woken by the enqueue, or its 1 s poll) sends it while the test clock stands still — no
  // reminder schedule or retry backoff is involved.
  it('a link created with "send by SMS" is sent by the real job loop at once, with no clock tick', async () => {
    const live = await build(target, { apiLimit: { points: 100_000, durationSec: 60 }, env: vonageEnv(vonage.url) });
    try {
      const shop = await apiMerchant(live, 'Quick Shop');
      const liveCall = apiClient(live.app, shop.secret);
      live.rt.startBackground();
      const c = await newCustomer(liveCall, { name: 'Sam Speed', phone: '+31 6 87654321' });
      const res = await liveCall('post', '/links', { type: 'amount', name: 'Fast', amount: 100, currency: 'EUR', send: { customer_id: c.id, channels: ['sms'] } });
      expect(res.status, res.text).to.equal(201);
      const before = live.clock.now().getTime();
      await waitFor(() => vonage.requests.some((r) => r.body.to === '31687654321'), { timeout: 15_000, message: 'the SMS to leave on the real job loop' });
      expect(live.clock.now().getTime(), 'the test clock did not move').to.equal(before);
      expect(vonage.requests.filter((r) => r.body.to === '31687654321')).to.have.length(1);
    } finally {
      await live.close();
    }
  });
});
