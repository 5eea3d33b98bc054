/**
 * Payment requests through the API (API.md "Payment requests"): create with a reference and a
 * customer (matched or created), the short signed `/r/<token>` URL and what it answers in each state,
 * list filters, cancel, reference conflicts (also when racing), bad input that writes nothing, and
 * tenant isolation.
 */
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { apiClient, apiMerchant, expectFieldErrors, expectProblem, twoApiMerchants, type ApiCall, type ApiMerchant } from './support/api.ts';
import { useEnv, type TestEnv } from './support/harness.ts';
import { outboxMessages } from './support/channels.ts';
import { startReceiver, type TestReceiver } from './support/webhook-receiver.ts';
import { BROWSERS } from './support/user-agents.ts';

const DAY = 86_400_000;

forEachTarget('payment requests', (target) => {
  let env: TestEnv;
  let a: ApiMerchant;
  let call: ApiCall;
  let callB: ApiCall;
  let hook: TestReceiver;
  let n = 0;
  before(async () => {
    hook = await startReceiver();
    ({ env, a, call, callB } = await twoApiMerchants(target, ['Acme Invoices', 'Stranger Shop'], { env: { PAYLINK_WEBHOOKS_ALLOW_PRIVATE: '1' } }));
  });
  after(async () => {
    await env?.close();
    await hook?.close();
  });
  beforeEach(() => (n += 1));

  const counts = async () => {
    const [[{ r }], [{ l }], [{ c }]] = await Promise.all([env.rt.db('payment_requests').count({ r: '*' }), env.rt.db('links').count({ l: '*' }), env.rt.db('customers').count({ c: '*' })]);
    return [Number(r), Number(l), Number(c)];
  };
  const pathOf = (url: string) => new URL(url).pathname;

  it('creates a request for a new customer, answers its short signed URL, and reads it back', async () => {
    const res = await call('post', '/payment_requests', {
      amount: 4500, currency: 'eur', description: 'Invoice 1042', reference: `INV-${n}`,
      customer: { name: 'Jane Doe', email: `Jane${n}@Example.test` }, expires_in: 3 * 86_400, metadata: { order: `o-${n}` },
    });
    expect(res.status, res.text).to.equal(201);
    const body = res.body;
    expect(res.headers.location).to.equal(`/api/v1/payment_requests/${body.id}`);
    expect(body).to.deep.include({ object: 'payment_request', status: 'pending', reference: `INV-${n}`, amount: 4500, currency: 'EUR', description: 'Invoice 1042', max_uses: 1, paid_count: 0, source: 'api', metadata: { order: `o-${n}` }, cancelled_at: null });
    expect(body.id).to.match(/^req_[0-9A-Za-z]{22}$/);
    expect(body.customer).to.deep.include({ name: 'Jane Doe', email: `jane${n}@example.test`, phone: null });
    expect(body.expires_at).to.equal(new Date(env.clock.now().getTime() + 3 * DAY).toISOString());
    // ≤ 24 URL-safe characters after /r/.
    expect(body.url).to.match(new RegExp(`^${env.rt.config.baseUrl}/r/[0-9A-Za-z_-]{23}$`));
    expect((await call('get', `/payment_requests/${body.id}`).expect(200)).body).to.deep.equal(body);
    // The same customer again is matched by email, not duplicated.
    const again = await call('post', '/payment_requests', { amount: 100, currency: 'EUR', customer: { name: 'J. Doe', email: `jane${n}@example.test` } }).expect(201);
    expect(again.body.customer.id).to.equal(body.customer.id);
    expect(again.body.reference).to.equal(null);
    // The customer's page of the pay link works: 200 with the amount.
    const page = await supertest(env.app).get(pathOf(body.url)).expect(200);
    expect(page.text).to.include('Invoice 1042').and.include('€45.00');
    // Named after its description, the request shows it once; the customer's name and email are filled in.
    expect(page.text).not.to.include('<p class="description">');
    expect(page.text).to.include('id="f-name" name="name" type="text" value="Jane Doe"').and.include(`value="jane${n}@example.test"`);
  });

  it('takes line items: the amount is their total (or must equal it), listed on the request, its pay page and a refreshed request', async () => {
    const who = { name: 'Lena Ito', email: `lena${n}@example.test` };
    const items = [{ description: 'Tiling, per m²', quantity: 12, unit_amount: 3500 }, { description: 'Grout & sealant', unit_amount: 1850 }];
    const res = await call('post', '/payment_requests', { currency: 'EUR', line_items: items, customer: who, reference: `LI-${n}`, allow_refresh: true, expires_in: 3600 });
    expect(res.status, res.text).to.equal(201);
    expect(res.body.amount).to.equal(12 * 3500 + 1850);
    expect(res.body.line_items).to.deep.equal([
      { description: 'Tiling, per m²', quantity: 12, unit_amount: 3500, amount: 42000 },
      { description: 'Grout & sealant', quantity: 1, unit_amount: 1850, amount: 1850 },
    ]);
    const page = await supertest(env.app).get(pathOf(res.body.url)).expect(200);
    expect(page.text).to.include('<table class="lines">').and.include('Tiling, per m²').and.include('× €35.00').and.include('€420.00').and.include('Grout &amp; sealant').and.include('€438.50');
    // Given both, they must agree; bad items are refused by their field; nothing is written.
    const before = await counts();
    const mismatch = expectFieldErrors(await call('post', '/payment_requests', { amount: 100, currency: 'EUR', line_items: items, customer: who }), ['amount']);
    expect(mismatch.errors[0]).to.include({ code: 'amount_mismatch' });
    expectFieldErrors(await call('post', '/payment_requests', { currency: 'EUR', customer: who }), ['amount']);
    expectFieldErrors(await call('post', '/payment_requests', { currency: 'EUR', line_items: [], customer: who }), ['line_items']);
    expectFieldErrors(await call('post', '/payment_requests', { currency: 'EUR', line_items: [{ description: '', unit_amount: 100 }], customer: who }), ['line_items.0.description']);
    expectFieldErrors(await call('post', '/payment_requests', { currency: 'EUR', line_items: [{ description: 'Free', unit_amount: 0 }], customer: who }), ['line_items']);
    expectFieldErrors(await call('post', '/payment_requests', { currency: 'EUR', line_items: [{ description: 'x', quantity: 1.5, unit_amount: 100 }], customer: who }), ['line_items.0.quantity']);
    expectFieldErrors(await call('post', '/payment_requests', { currency: 'EUR', line_items: [{ description: 'x', unit_amount: -5 }], customer: who }), ['line_items.0.unit_amount']);
    expect(await counts()).to.deep.equal(before);
    // A new link for it, once expired, asks for the same items.
    env.clock.advance(3_600_001);
    await supertest(env.app).post(`${pathOf(res.body.url)}/refresh`).expect(201);
    const next = (await call('get', `/payment_requests/${res.body.id}`).expect(200)).body.refreshed_to as string;
    const fresh = (await call('get', `/payment_requests/${next}`).expect(200)).body;
    expect([fresh.amount, fresh.line_items]).to.deep.equal([res.body.amount, res.body.line_items]);
  });

  it('answers 409 reference_taken with the existing id for a repeated reference, also for racing creates', async () => {
    const first = await call('post', '/payment_requests', { amount: 1000, currency: 'EUR', reference: `R-${n}`, customer: { name: 'Bo', email: `bo${n}@example.test` } }).expect(201);
    const before = await counts();
    const dup = await call('post', '/payment_requests', { amount: 2000, currency: 'EUR', reference: `R-${n}`, customer: { name: 'Bo', email: `bo${n}@example.test` } });
    const problem = expectProblem(dup, 409, 'reference_taken') as unknown as { existing_id: string };
    expect(problem.existing_id).to.equal(first.body.id);
    expect(await counts()).to.deep.equal(before);

    // Twelve creates with one new reference at once: exactly one request exists afterwards.
    const racing = await Promise.all(Array.from({ length: 12 }, () => call('post', '/payment_requests', { amount: 500, currency: 'EUR', reference: `RACE-${n}`, customer_id: first.body.customer.id })));
    const statuses = racing.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 201), statuses.join(',')).to.have.length(1);
    expect(statuses.filter((s) => s === 409)).to.have.length(11);
    const winner = racing.find((r) => r.status === 201)!.body.id;
    for (const r of racing.filter((x) => x.status === 409)) expect(r.body.existing_id).to.equal(winner);
    expect(await env.rt.db('payment_requests').where({ reference: `RACE-${n}` })).to.have.length(1);
  });

  it('refuses bad input by field and writes nothing', async () => {
    const before = await counts();
    expectFieldErrors(await call('post', '/payment_requests', { amount: 0, currency: 'EUR', customer: { name: 'X', email: 'x@example.test' } }), ['amount']);
    expectFieldErrors(await call('post', '/payment_requests', { amount: 12.5, currency: 'EURO', customer: { name: 'X', email: 'x@example.test' } }), ['amount', 'currency']);
    expectFieldErrors(await call('post', '/payment_requests', { amount: 100, currency: 'EUR' }), ['customer']);
    expectFieldErrors(await call('post', '/payment_requests', { amount: 100, currency: 'EUR', customer: { name: 'X' } }), ['customer.email']);
    expectFieldErrors(await call('post', '/payment_requests', { amount: 100, currency: 'EUR', customer: { name: 'X', phone: '12' } }), ['customer.phone']);
    expectFieldErrors(await call('post', '/payment_requests', { amount: 100, currency: 'EUR', customer_id: 'cus_nope' }), ['customer_id']);
    expectFieldErrors(await call('post', '/payment_requests', { amount: 100, currency: 'EUR', customer: { name: 'X', email: 'x@example.test' }, expires_in: 10 }), ['expires_in']);
    expectFieldErrors(await call('post', '/payment_requests', { amount: 100, currency: 'EUR', customer: { name: 'X', email: 'x@example.test' }, expires_at: '2020-01-01T00:00:00Z' }), ['expires_at']);
    expectFieldErrors(await call('post', '/payment_requests', { amount: 100, currency: 'EUR', customer: { name: 'X', email: 'x@example.test' }, expires_at: '2099-01-01T00:00:00Z', expires_in: 3600 }), ['expires_at']);
    expectFieldErrors(await call('post', '/payment_requests', { amount: 100, currency: 'EUR', customer: { name: 'X', email: 'x@example.test' }, reference: 'has space' }), ['reference']);
    const many = Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, 'v']));
    expectFieldErrors(await call('post', '/payment_requests', { amount: 100, currency: 'EUR', customer: { name: 'X', email: 'x@example.test' }, metadata: many }), ['metadata']);
    expectFieldErrors(await call('post', '/payment_requests', { amount: 100, currency: 'EUR', customer: { name: 'X', email: 'x@example.test' }, max_uses: 0 }), ['max_uses']);
    expect(await counts()).to.deep.equal(before);
  });

  it('opens /r/<token> by state: pending pays, expired is 410 naming the merchant, cancelled and forged are the 404 of an unknown token', async () => {
    const make = async (extra: Record<string, unknown> = {}) => (await call('post', '/payment_requests', { amount: 1250, currency: 'EUR', description: `Order ${n}`, customer: { name: 'Cy', email: `cy${n}@example.test` }, ...extra }).expect(201)).body as { id: string; url: string };
    const pending = await make();
    const token = pathOf(pending.url).slice(3);
    const notFound = (await supertest(env.app).get('/r/AAAAAAAAAAAAAAAAAAAAAAA').expect(404)).text;
    // Altered (each position), truncated, lengthened: the same 404 as an unknown token.
    for (const bad of [`${token.slice(0, 5)}${token[5] === 'A' ? 'B' : 'A'}${token.slice(6)}`, `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`, token.slice(0, -1), `${token}A`]) {
      const res = await supertest(env.app).get(`/r/${bad}`);
      expect(res.status, bad).to.equal(404);
      expect(res.text.replace(/Reference: \S+|nonce-[^'"]+|nonce="[^"]+"/g, '')).to.equal(notFound.replace(/Reference: \S+|nonce-[^'"]+|nonce="[^"]+"/g, ''));
    }

    // Cancelled: 404, and the API says so; cancelling again is harmless.
    const cancelled = await make();
    const c = await call('post', `/payment_requests/${cancelled.id}/cancel`).expect(200);
    expect(c.body).to.deep.include({ status: 'cancelled' });
    expect(c.body.cancelled_at).to.equal(env.clock.now().toISOString());
    await call('post', `/payment_requests/${cancelled.id}/cancel`).expect(200);
    await supertest(env.app).get(pathOf(cancelled.url)).expect(404);
    // A checkout posted to it is refused too.
    expect((await supertest(env.app).post(pathOf(cancelled.url)).type('form').send({ name: 'Cy', email: `cy${n}@example.test` })).status).to.equal(404);

    // Paid: the URL shows the receipt; it cannot be cancelled.
    const post = await supertest(env.app).post(pathOf(pending.url)).type('form').send({ name: 'Cy', email: `cy${n}@example.test` });
    expect(post.status, post.text.slice(0, 300)).to.equal(303);
    const card = await supertest(env.app).post(new URL(post.headers.location).pathname).type('form').send({ card_number: '4242424242424242' });
    expect(card.status).to.equal(303);
    const paid = await call('get', `/payment_requests/${pending.id}`).expect(200);
    expect(paid.body).to.deep.include({ status: 'paid', paid_count: 1 });
    const open = await supertest(env.app).get(pathOf(pending.url)).expect(302);
    expect(open.headers.location).to.match(/^\/receipt\/pay_/);
    expectProblem(await call('post', `/payment_requests/${pending.id}/cancel`), 409, 'request_paid');

    // Expired: 410 naming the merchant and the time.
    const lapsing = await make({ expires_in: 3600 });
    env.clock.advance(3_600_001);
    const gone = await supertest(env.app).get(pathOf(lapsing.url)).expect(410);
    expect(gone.text).to.include('This payment request expired').and.include('Acme Invoices').and.include(`Order ${n}`);
    expect((await call('get', `/payment_requests/${lapsing.id}`).expect(200)).body.status).to.equal('expired');
  });

  it('voids a card authorized after the expiry even when the checkout began before it and the expiry sweep has not run', async () => {
    const r = (await call('post', '/payment_requests', { amount: 2100, currency: 'EUR', customer: { name: 'Lou', email: `lou${n}@example.test` }, expires_in: 3600 }).expect(201)).body as { id: string; url: string; link_id: string };
    const started = await supertest(env.app).post(pathOf(r.url)).type('form').send({ name: 'Lou', email: `lou${n}@example.test` });
    expect(started.status).to.equal(303);
    env.clock.advance(3_600_000);
    const card = await supertest(env.app).post(new URL(started.headers.location).pathname).type('form').send({ card_number: '4242424242424242' });
    expect(card.status).to.equal(303);
    const told = await supertest(env.app).get(new URL(card.headers.location, 'http://x').pathname).expect(200);
    expect(told.text).to.include('You were not charged');
    await env.rt.jobs.drain();
    const payments = (await call('get', `/payments?link_id=${r.link_id}`).expect(200)).body.data as { status: string; captured?: boolean }[];
    expect(payments.map((p) => p.status)).to.deep.equal(['voided']);
    expect((await call('get', `/payment_requests/${r.id}`).expect(200)).body).to.deep.include({ status: 'expired', paid_count: 0 });
  });

  it('sends the request on every channel asked for in the same call, with the short URL, each outcome on the request', async () => {
    const res = await call('post', '/payment_requests', {
      amount: 2500, currency: 'EUR', description: `Repair ${n}`, channels: ['email', 'sms'],
      customer: { name: 'Gus Grant', email: `gus${n}@example.test`, phone: '+31 6 1234 56' + String(10 + n).slice(-2) },
    });
    expect(res.status, res.text).to.equal(201);
    expect(res.body.deliveries.map((d: { channel: string; status: string; kind: string }) => [d.channel, d.status, d.kind])).to.deep.equal([['email', 'queued', 'initial'], ['sms', 'queued', 'initial']]);
    await env.rt.jobs.drain();
    const sent = (await outboxMessages(env)).filter((m) => m.to === `gus${n}@example.test` || m.to === res.body.customer.phone);
    expect(sent.map((m) => m.channel).sort()).to.deep.equal(['email', 'sms']);
    for (const m of sent) expect(m.text).to.include(res.body.url);
    const after = await call('get', `/payment_requests/${res.body.id}`).expect(200);
    expect(after.body.deliveries.map((d: { channel: string; status: string }) => [d.channel, d.status])).to.deep.equal([['email', 'sent'], ['sms', 'sent']]);

    // A channel that cannot reach the customer, or one not installed: 422 on `channels`, nothing written or sent.
    const before = await counts();
    const unreachable = expectFieldErrors(await call('post', '/payment_requests', { amount: 100, currency: 'EUR', channels: ['sms'], customer: { name: 'Hal', email: `hal${n}@example.test` } }), ['channels']);
    expect(unreachable.errors[0]).to.include({ code: 'channel_unreachable' });
    expect(unreachable.errors[0].message).to.match(/Hal has no phone number/);
    expectFieldErrors(await call('post', '/payment_requests', { amount: 100, currency: 'EUR', channels: ['pigeon'], customer: { name: 'Hal', email: `hal${n}@example.test` } }), ['channels']);
    expect(await counts()).to.deep.equal(before);
  });

  it('emits payment_request.paid and .expired once (also when their handlers run again), and sends them to webhook endpoints as the request', async () => {
    const endpoint = await call('post', '/webhook_endpoints', { url: `${hook.url}/hooks`, events: ['payment_request.paid', 'payment_request.expired', 'payment_request.created'] }).expect(201);
    const make = async (ref: string, extra: Record<string, unknown> = {}) =>
      (await call('post', '/payment_requests', { amount: 1500, currency: 'EUR', reference: ref, metadata: { order: ref }, customer: { name: 'Ivy', email: `ivy${n}@example.test` }, ...extra }).expect(201)).body as { id: string; url: string; link_id: string };
    const paid = await make(`P-${n}`);
    const post = await supertest(env.app).post(pathOf(paid.url)).type('form').send({ name: 'Ivy', email: `ivy${n}@example.test` });
    await supertest(env.app).post(new URL(post.headers.location).pathname).type('form').send({ card_number: '4242424242424242' }).expect(303);
    const lapsing = await make(`E-${n}`, { expires_in: 600 });
    env.clock.advance(600_001);
    await env.rt.jobs.enqueue(env.rt.db, 'links.expire', {});
    await env.rt.jobs.drain();

    const stored = async (type: string, requestId: string) => (await env.rt.db('events').where({ type }).orderBy('id')).filter((e: { payload: string }) => JSON.parse(e.payload).requestId === requestId) as { public_id: string; payload: string }[];
    const [paidEvent, ...morePaid] = await stored('payment_request.paid', paid.id);
    expect(morePaid).to.deep.equal([]);
    const payment = (await call('get', `/payments?link_id=${paid.link_id}&status=paid`).expect(200)).body.data[0];
    expect(JSON.parse(paidEvent.payload)).to.deep.equal({ merchantId: a.merchant.id, requestId: paid.id, linkId: paid.link_id, reference: `P-${n}`, paymentId: payment.id });
    expect(await stored('payment_request.expired', lapsing.id)).to.have.length(1);
    expect(await stored('payment_request.paid', lapsing.id)).to.deep.equal([]);

    // The handlers run again (a redelivered job): nothing new.
    const sources = async (type: string, linkId: string) => (await env.rt.db('events').where({ type }).orderBy('id')).filter((e: { payload: string }) => JSON.parse(e.payload).linkId === linkId) as { public_id: string }[];
    const [succeeded] = await sources('payment.succeeded', paid.link_id);
    const [expired] = await sources('link.expired', lapsing.link_id);
    await env.rt.jobs.enqueue(env.rt.db, 'hooks.run', { eventId: succeeded.public_id, subscriptionId: 'core:payment-requests:paid' });
    await env.rt.jobs.enqueue(env.rt.db, 'hooks.run', { eventId: expired.public_id, subscriptionId: 'core:payment-requests:expired' });
    await env.rt.jobs.drain();
    expect(await stored('payment_request.paid', paid.id)).to.have.length(1);
    expect(await stored('payment_request.expired', lapsing.id)).to.have.length(1);

    // The endpoint got each event once, with the request as the API answers it.
    const got = hook.received.map((r) => JSON.parse(r.body) as { type: string; data: { id: string; object: string; status: string; metadata: Record<string, string> } });
    const about = (id: string) => got.filter((g) => g.data.id === id).map((g) => [g.type, g.data.object, g.data.status, g.data.metadata.order]);
    expect(about(paid.id)).to.have.deep.members([['payment_request.created', 'payment_request', 'paid', `P-${n}`], ['payment_request.paid', 'payment_request', 'paid', `P-${n}`]]);
    expect(about(lapsing.id)).to.have.deep.members([['payment_request.created', 'payment_request', 'expired', `E-${n}`], ['payment_request.expired', 'payment_request', 'expired', `E-${n}`]]);
    await call('delete', `/webhook_endpoints/${endpoint.body.id}`).expect(200);
  });

  it('reminds until paid or cancelled, by the channels it was sent on', async () => {
    expectFieldErrors(await call('post', '/payment_requests', { amount: 100, currency: 'EUR', customer: { name: 'Mo', email: `mo${n}@example.test` }, reminders: { frequency: 'daily', max: 2 } }), ['reminders']);
    expectFieldErrors(await call('post', '/payment_requests', { amount: 100, currency: 'EUR', channels: ['email'], customer: { name: 'Mo', email: `mo${n}@example.test` }, reminders: { frequency: 'hourly', max: 2 } }), ['reminders.frequency']);
    const r = (await call('post', '/payment_requests', { amount: 4100, currency: 'EUR', description: `Lessons ${n}`, channels: ['email'], reminders: { frequency: 'daily', max: 2 }, customer: { name: 'Mo', email: `mo${n}@example.test` } }).expect(201)).body as { id: string };
    await env.rt.jobs.drain();
    const kinds = async () => ((await call('get', `/payment_requests/${r.id}`).expect(200)).body.deliveries as { kind: string; status: string }[]).map((d) => `${d.kind}:${d.status}`);
    expect(await kinds()).to.deep.equal(['initial:sent']);
    env.clock.advance(DAY + 60_000);
    await env.rt.services.reminders.sweep();
    await env.rt.jobs.drain();
    expect(await kinds()).to.deep.equal(['initial:sent', 'reminder:sent']);
    await call('post', `/payment_requests/${r.id}/cancel`).expect(200);
    env.clock.advance(DAY);
    await env.rt.services.reminders.sweep();
    await env.rt.jobs.drain();
    expect(await kinds(), 'no reminder for a cancelled request').to.deep.equal(['initial:sent', 'reminder:sent']);
  });

  it('asks whether a link is a request once per batch of events: a bulk send of hundreds costs the same few queries as one', async () => {
    const r = (await call('post', '/payment_requests', { amount: 700, currency: 'EUR', customer: { name: 'Bulk Buyer', email: `bulk${n}@example.test` } }).expect(201)).body;
    const merchant = a.merchant;
    const smart = [];
    for (let i = 0; i < 40; i++) smart.push(await env.rt.services.links.create(merchant, { type: 'amount', name: `Bulk ${n}-${i}`, amount: 100 + i }));
    const sent = (linkId: string, i: number, kind: 'initial' | 'reminder' = 'initial') => ({
      payload: { merchantId: merchant.id, deliveryId: `dlv_${String(i).padStart(22, '0')}`, linkId, customerId: null, channel: 'email', kind, providerMessageId: `m${i}` },
      merchantKey: merchant.key,
    });
    /** Emits the events in one transaction; answers the queries it took and the request runs it queued. */
    const emit = async (items: ReturnType<typeof sent>[]) => {
      let queries = 0;
      const count = () => void queries++;
      env.rt.db.on('query', count);
      let ids: string[];
      try {
        ids = await env.rt.db.transaction((trx) => env.rt.events.emitMany(trx, 'delivery.sent', items.map((it) => ({ payload: it.payload as never, merchantId: it.merchantKey }))));
      } finally {
        env.rt.db.off('query', count);
      }
      const runs = (await env.rt.db('jobs').where({ kind: 'hooks.run' }).andWhere('unique_key', 'like', '%:core:payment-requests:sent')) as { unique_key: string }[];
      return { queries, runs: runs.filter((j) => ids.some((id) => j.unique_key === `hook:${id}:core:payment-requests:sent`)).length };
    };
    const few = await emit([sent(r.link_id, 0), sent(smart[0].id, 1)]);
    const lots = await emit([sent(r.link_id, 2), sent(r.link_id, 3, 'reminder'), ...smart.map((l, i) => sent(l.id, 10 + i))]);
    // Only the request's first message (not a reminder, not a smart link's) is a payment_request.sent.
    expect([few.runs, lots.runs]).to.deep.equal([1, 1]);
    expect(lots.queries, `${few.queries} queries for 2 events, ${lots.queries} for 42`).to.equal(few.queries);
  });

  it('sends a last reminder notify_before_expiry ahead of the expiry unless paid first, and payment_request.sent once per channel', async () => {
    const who = { name: 'Nia North', email: `nia${n}@example.test`, phone: '+31 6 2234 56' + String(10 + n).slice(-2) };
    const before = await counts();
    expectFieldErrors(await call('post', '/payment_requests', { amount: 100, currency: 'EUR', customer: who, notify_before_expiry: 86_400 }), ['notify_before_expiry']);
    expectFieldErrors(await call('post', '/payment_requests', { amount: 100, currency: 'EUR', customer: who, channels: ['email'], notify_before_expiry: 600 }), ['notify_before_expiry']);
    expectFieldErrors(await call('post', '/payment_requests', { amount: 100, currency: 'EUR', customer: who, channels: ['email'], notify_before_expiry: '1 day' }), ['notify_before_expiry']);
    const late = expectFieldErrors(await call('post', '/payment_requests', { amount: 100, currency: 'EUR', customer: who, channels: ['email'], expires_in: 3600, notify_before_expiry: 3000 }), ['notify_before_expiry']);
    expect(late.errors[0]).to.include({ code: 'notice_too_late' });
    expect(await counts()).to.deep.equal(before);

    const created = await call('post', '/payment_requests', { amount: 3300, currency: 'EUR', description: `Tiles ${n}`, channels: ['email', 'sms'], customer: who, expires_in: 3 * 86_400, notify_before_expiry: 86_400 });
    expect(created.status, created.text).to.equal(201);
    const r = created.body as { id: string; url: string; link_id: string; expires_at: string; notify_before_expiry: number };
    expect(r.notify_before_expiry).to.equal(86_400);
    const dueAt = new Date(new Date(r.expires_at).getTime() - DAY).toISOString();
    const listed = async (id: string) => ((await call('get', `/payment_requests/${id}`).expect(200)).body.deliveries as { id: string; kind: string; status: string; channel: string; scheduled_for: string | null }[]);
    const expiryOf = async (id: string) => (await listed(id)).filter((d) => d.kind === 'expiry').map((d) => [d.channel, d.status, d.scheduled_for]).sort();
    expect(await expiryOf(r.id)).to.deep.equal([['email', 'queued', dueAt], ['sms', 'queued', dueAt]]);
    await env.rt.jobs.drain();
    const phone = created.body.customer.phone as string;
    const toNia = async () => (await outboxMessages(env)).filter((m) => m.to === who.email || m.to === phone);
    expect((await toNia()).map((m) => m.channel).sort(), 'only the first messages now').to.deep.equal(['email', 'sms']);
    env.clock.advance(2 * DAY - 60_000);
    await env.rt.jobs.drain();
    expect(await expiryOf(r.id), 'not before it is due').to.deep.equal([['email', 'queued', dueAt], ['sms', 'queued', dueAt]]);
    env.clock.advance(2 * 60_000);
    await env.rt.jobs.drain();
    expect(await expiryOf(r.id)).to.deep.equal([['email', 'sent', null], ['sms', 'sent', null]]);
    const last = (await toNia()).slice(2);
    expect(last.map((m) => m.channel).sort()).to.deep.equal(['email', 'sms']);
    for (const m of last) expect(m.text).to.include(r.url).and.match(/reminder/i);

    // Paid before the notice is due: it is not sent, and says why.
    const paid = (await call('post', '/payment_requests', { amount: 1200, currency: 'EUR', channels: ['email'], customer: who, expires_in: 2 * 86_400, notify_before_expiry: 86_400 }).expect(201)).body as { id: string; url: string };
    await env.rt.jobs.drain();
    const post = await supertest(env.app).post(pathOf(paid.url)).type('form').send({ name: who.name, email: who.email });
    await supertest(env.app).post(new URL(post.headers.location).pathname).type('form').send({ card_number: '4242424242424242' }).expect(303);
    const sentBefore = (await toNia()).length;
    env.clock.advance(DAY + 60_000);
    await env.rt.jobs.drain();
    const moot = (await listed(paid.id)).filter((d) => d.kind === 'expiry');
    expect(moot.map((d) => d.status)).to.deep.equal(['cancelled']);
    expect((await toNia()).filter((m) => !/receipt|paid|thank/i.test(`${m.subject ?? ''} ${m.text}`)).length, 'no last reminder for a paid request').to.equal(sentBefore);

    // payment_request.sent: one per channel of the first message, naming it; none for reminders.
    const sentEvents = (await env.rt.db('events').where({ type: 'payment_request.sent' }).orderBy('id')).map((e: { payload: string }) => JSON.parse(e.payload)).filter((p: { requestId: string }) => p.requestId === r.id);
    const initial = (await listed(r.id)).filter((d) => d.kind === 'initial');
    expect(sentEvents.map((p: { channel: string; deliveryId: string }) => [p.channel, p.deliveryId]).sort()).to.deep.equal(initial.map((d) => [d.channel, d.id]).sort());
    expect(sentEvents[0]).to.deep.include({ merchantId: a.merchant.id, linkId: r.link_id, reference: null });
  });

  it('lets the customer of an expired request get a new link, sent only to the contact on file, once', async () => {
    const old = (await call('post', '/payment_requests', {
      amount: 2200, currency: 'EUR', description: `Tune-up ${n}`, reference: `TU-${n}`, channels: ['email'], allow_refresh: true, expires_in: 3_600,
      metadata: { bike: 'blue' }, customer: { name: 'Nia', email: `nia${n}@example.test` },
    }).expect(201)).body as { id: string; url: string };
    // Not yet expired: nothing to refresh.
    expect((await supertest(env.app).post(`${pathOf(old.url)}/refresh`)).status).to.equal(303);
    env.clock.advance(3_600_001);
    const page = await supertest(env.app).get(pathOf(old.url)).expect(410);
    expect(page.text).to.include('Send me a new link').and.include(`action="${pathOf(old.url)}/refresh"`);

    // Many clicks at once (and an address typed into the request, which is ignored): one new request.
    const posts = await Promise.all(Array.from({ length: 5 }, () => supertest(env.app).post(`${pathOf(old.url)}/refresh`).type('form').send({ email: 'attacker@example.test' })));
    expect(posts.map((p) => p.status).sort()).to.deep.equal([200, 200, 200, 200, 201]);
    const sent = posts.find((p) => p.status === 201)!;
    expect(sent.text).to.include('A new link is on its way').and.include(`n•••@example.test`).and.not.include(`nia${n}@example.test`);
    expect(posts.find((p) => p.status === 200)!.text).to.include('A new link was already sent');

    const oldNow = (await call('get', `/payment_requests/${old.id}`).expect(200)).body;
    expect(oldNow).to.deep.include({ status: 'expired' });
    const fresh = (await call('get', `/payment_requests/${oldNow.refreshed_to}`).expect(200)).body;
    expect(fresh).to.deep.include({ status: 'pending', reference: `TU-${n}-R1`, amount: 2200, description: `Tune-up ${n}`, refreshed_from: old.id, allow_refresh: true, metadata: { bike: 'blue' }, source: 'api' });
    expect(new Date(fresh.expires_at).getTime() - env.clock.now().getTime()).to.equal(3_600_000);
    await env.rt.jobs.drain();
    const mails = (await outboxMessages(env)).filter((m) => m.text.includes(fresh.url));
    expect(mails.map((m) => m.to)).to.deep.equal([`nia${n}@example.test`]);
    expect((await outboxMessages(env)).filter((m) => m.to === 'attacker@example.test')).to.deep.equal([]);
    const refreshed = (await env.rt.db('events').where({ type: 'payment_request.refreshed' })).map((e: { payload: string }) => JSON.parse(e.payload)).filter((p: { requestId: string }) => p.requestId === old.id);
    expect(refreshed).to.deep.equal([{ merchantId: a.merchant.id, requestId: old.id, newRequestId: fresh.id, reference: `TU-${n}-R1` }]);
    // The old page no longer offers it; the new one can be refreshed again later (-R2).
    expect((await supertest(env.app).get(pathOf(old.url)).expect(410)).text).not.to.include('Send me a new link');

    // A request that does not allow it: no button, and a POST changes nothing.
    const plain = (await call('post', '/payment_requests', { amount: 500, currency: 'EUR', expires_in: 60, customer: { name: 'Nia', email: `nia${n}@example.test` } }).expect(201)).body as { url: string };
    env.clock.advance(60_001);
    expect((await supertest(env.app).get(pathOf(plain.url)).expect(410)).text).not.to.include('Send me a new link');
    const before = await counts();
    expect((await supertest(env.app).post(`${pathOf(plain.url)}/refresh`)).status).to.equal(303);
    expect(await counts()).to.deep.equal(before);
    await supertest(env.app).post('/r/AAAAAAAAAAAAAAAAAAAAAAA/refresh').expect(404);
  });

  it('keeps an audit trail: created by which key, sent, opened, each attempt, paid', async () => {
    const r = (await call('post', '/payment_requests', { amount: 3300, currency: 'EUR', reference: `AT-${n}`, channels: ['email'], customer: { name: 'Kim', email: `kim${n}@example.test` } }).expect(201)).body as { id: string; url: string };
    await env.rt.jobs.drain();
    env.clock.advance(60_000);
    await supertest(env.app).get(pathOf(r.url)).set('User-Agent', BROWSERS[0].ua).expect(200);
    await env.rt.views!.flush();
    env.clock.advance(60_000);
    const post = await supertest(env.app).post(pathOf(r.url)).type('form').send({ name: 'Kim', email: `kim${n}@example.test` });
    const card = new URL(post.headers.location).pathname;
    await supertest(env.app).post(card).type('form').send({ card_number: '4000000000000002' }).expect(303);
    env.clock.advance(60_000);
    await supertest(env.app).post(card).type('form').send({ card_number: '4242424242424242' }).expect(303);
    await env.rt.jobs.drain();

    const trail = (await call('get', `/payment_requests/${r.id}/events`).expect(200)).body as { data: { type: string; at: string; [k: string]: any }[]; has_more: boolean };
    expect(trail.has_more).to.equal(false);
    expect(trail.data.map((t) => t.type)).to.deep.equal(['created', 'delivery', 'view', 'payment', 'payment', 'paid', 'delivery']);
    const [made, delivery, view, first, second, paid, receipt] = trail.data;
    expect(receipt.delivery).to.include({ kind: 'receipt', channel: 'email' });
    const key = (await env.rt.services.apiKeys.list(a.merchant.key))[0];
    expect(made).to.deep.include({ source: 'api', api_key: { id: key.id, name: 'test' } });
    expect(delivery.delivery).to.deep.include({ channel: 'email', status: 'sent', to: `kim${n}@example.test` });
    expect(view.view).to.include({ browser: BROWSERS[0].browser });
    expect([first.payment.status, second.payment.status]).to.deep.equal(['failed', 'paid']);
    expect(paid.at).to.equal(second.payment.paid_at);
    for (let i = 1; i < trail.data.length; i++) expect(trail.data[i].at >= trail.data[i - 1].at, trail.data[i].type).to.equal(true);
    expectProblem(await callB('get', `/payment_requests/${r.id}/events`), 404, 'not_found');
  });

  it('takes exactly one payment from 50 concurrent payers on a single-use request; the rest are voided, never charged', async function () {
    this.timeout(60_000);
    const r = (await call('post', '/payment_requests', { amount: 7700, currency: 'EUR', customer: { name: 'Oz', email: `oz${n}@example.test` } }).expect(201)).body as { id: string; url: string; link_id: string };
    // Fifty people reach the card page (the URL was forwarded around); then all of them pay at once.
    const started = await Promise.all(Array.from({ length: 50 }, (_, i) => supertest(env.app).post(pathOf(r.url)).type('form').send({ name: `Payer ${i}`, email: `p${i}.${n}@example.test` })));
    expect(started.every((s) => s.status === 303), started.map((s) => s.status).join(',')).to.equal(true);
    const linkKey = Number((await env.rt.db('links').where({ public_id: r.link_id }).first('id')).id);
    const pending = (await env.rt.db('payments').where({ link_id: linkKey, status: 'pending' }).select('public_id')) as { public_id: string }[];
    expect(pending).to.have.length(50);
    const outcomes = await Promise.all(pending.map((p, i) => env.rt.services.checkout.authorize(p.public_id, `sbx_req_${i}`)));
    expect(outcomes.filter((o) => o.status === 'paid')).to.have.length(1);
    expect(outcomes.filter((o) => o.status === 'voided')).to.have.length(49);
    const byStatus = (await env.rt.db('payments').where({ link_id: linkKey }).groupBy('status').select('status').count({ n: '*' })) as { status: string; n: number | string }[];
    expect(Object.fromEntries(byStatus.map((x) => [x.status, Number(x.n)]))).to.deep.equal({ paid: 1, voided: 49 });
    const after = (await call('get', `/payment_requests/${r.id}`).expect(200)).body;
    expect(after).to.deep.include({ status: 'paid', paid_count: 1 });
  });

  it('lists newest first with filters by status, reference and customer', async () => {
    const cust = (await call('post', '/customers', { name: 'Di', email: `di${n}@example.test` }).expect(201)).body.id as string;
    const mk = async (ref: string, extra: Record<string, unknown> = {}) => (await call('post', '/payment_requests', { amount: 700, currency: 'EUR', reference: ref, customer_id: cust, ...extra }).expect(201)).body.id as string;
    const one = await mk(`L1-${n}`);
    const two = await mk(`L2-${n}`, { expires_in: 120 });
    const three = await mk(`L3-${n}`);
    await call('post', `/payment_requests/${three}/cancel`).expect(200);
    env.clock.advance(121_000);
    const ids = async (q: string) => ((await call('get', `/payment_requests?${q}`).expect(200)).body.data as { id: string }[]).map((r) => r.id);
    expect(await ids(`customer_id=${cust}`)).to.deep.equal([three, two, one]);
    expect(await ids(`customer_id=${cust}&status=pending`)).to.deep.equal([one]);
    expect(await ids(`customer_id=${cust}&status=expired`)).to.deep.equal([two]);
    expect(await ids(`customer_id=${cust}&status=cancelled`)).to.deep.equal([three]);
    expect(await ids(`reference=L2-${n}`)).to.deep.equal([two]);
    expect(await ids(`customer_id=${cust}&limit=2`)).to.deep.equal([three, two]);
    expect(await ids(`customer_id=${cust}&limit=2&starting_after=${two}`)).to.deep.equal([one]);
    expectFieldErrors(await call('get', '/payment_requests?status=open'), ['status']);
    // Their links are in /links with kind "request" (both kinds unless filtered).
    const linkIds = async (q: string) => ((await call('get', `/links?limit=100${q}`).expect(200)).body.data as { id: string }[]).map((l) => l.id);
    const requestLinks = await Promise.all([one, two, three].map(async (id) => (await call('get', `/payment_requests/${id}`).expect(200)).body.link_id as string));
    expect(await linkIds('&kind=request')).to.include.members(requestLinks);
    expect(await linkIds('&kind=smart')).to.not.include.members(requestLinks.slice(0, 1));
    expect(await linkIds('')).to.include.members(requestLinks);
    expectFieldErrors(await call('get', '/links?kind=oneoff'), ['kind']);
  });

  it('keeps every merchant to their own requests', async () => {
    const mine = (await call('post', '/payment_requests', { amount: 900, currency: 'EUR', reference: `T-${n}`, customer: { name: 'Ed', email: `ed${n}@example.test` } }).expect(201)).body.id as string;
    expectProblem(await callB('get', `/payment_requests/${mine}`), 404, 'not_found');
    expectProblem(await callB('post', `/payment_requests/${mine}/cancel`), 404, 'not_found');
    expect(((await callB('get', '/payment_requests').expect(200)).body.data as unknown[])).to.deep.equal([]);
    // Another merchant may use the same reference for their own request.
    await callB('post', '/payment_requests', { amount: 900, currency: 'EUR', reference: `T-${n}`, customer: { name: 'Ed', email: `ed${n}@example.test` } }).expect(201);
    // A customer id of another merchant is not theirs to name.
    const theirs = (await callB('post', '/customers', { name: 'Fi', email: `fi${n}@example.test` }).expect(201)).body.id as string;
    expectFieldErrors(await call('post', '/payment_requests', { amount: 100, currency: 'EUR', customer_id: theirs }), ['customer_id']);
    expect(a.merchant.id).to.match(/^mer_/);
  });
});

forEachTarget('payment requests: abuse controls', (target) => {
  const env = useEnv(target, { apiLimit: { points: 100_000, durationSec: 60 }, checkoutLimits: { perIp: { points: 6, durationSec: 600 }, perRequest: { points: 4, durationSec: 3_600 }, declines: { points: 3, durationSec: 3_600 } } }, { each: true });
  let call: ApiCall;
  let shop: ApiMerchant;
  beforeEach(async () => {
    shop = await apiMerchant(env, 'Guarded Shop');
    call = apiClient(env.app, shop.secret);
  });
  const pathOf = (url: string) => new URL(url).pathname;
  const request = async () => (await call('post', '/payment_requests', { amount: 990, currency: 'EUR', description: 'Blue vase', customer: { name: 'Lu', email: 'lu@example.test' } }).expect(201)).body as { id: string; url: string };
  const checkout = (path: string) => supertest(env.app).post(path).type('form').send({ name: 'Lu', email: 'lu@example.test' });
  const payments = async () => Number((await env.rt.db('payments').count({ n: '*' }))[0].n);

  it('answers 429 with a clear page once a request had too many checkout attempts, writing nothing', async () => {
    const r = await request();
    for (let i = 0; i < 4; i++) expect((await checkout(pathOf(r.url))).status).to.equal(303);
    const before = await payments();
    const over = await checkout(pathOf(r.url));
    expect(over.status).to.equal(429);
    expect(Number(over.headers['retry-after'])).to.be.greaterThan(0);
    expect(over.text).to.include('Too many attempts').and.include('Blue vase').and.include('Nothing was charged');
    expect(await payments()).to.equal(before);
    // Another request of the same shop is not affected.
    expect((await checkout(pathOf((await request()).url))).status).to.equal(303);
  });

  it('limits checkouts per client address on every pay page', async () => {
    const link = await env.rt.services.links.create(shop.merchant, { type: 'amount', name: 'Mug', amount: 1200 });
    const path = `/${shop.handle}/${link.path}`;
    for (let i = 0; i < 6; i++) expect((await checkout(path)).status).to.equal(303);
    const over = await checkout(path);
    expect(over.status).to.equal(429);
    expect(over.text).to.include('Too many attempts');
    // Showing the page is never limited.
    await supertest(env.app).get(path).expect(200);
  });

  it('locks a request after a storm of declined cards and tells the merchant once', async () => {
    const r = await request();
    for (let i = 0; i < 3; i++) {
      const started = await checkout(pathOf(r.url));
      expect(started.status).to.equal(303);
      await supertest(env.app).post(new URL(started.headers.location).pathname).type('form').send({ card_number: '4000000000000002' }).expect(303);
    }
    await env.rt.jobs.drain();
    const locked = await supertest(env.app).get(pathOf(r.url));
    expect(locked.status).to.equal(429);
    expect(locked.text).to.include('Too many attempts');
    expect((await checkout(pathOf(r.url))).status).to.equal(429);
    const notices = (await outboxMessages(env)).filter((m) => m.to === shop.merchant.email && /locked/i.test(m.subject ?? ''));
    expect(notices).to.have.length(1);
    expect(notices[0].text).to.include('declined 3 times').and.include(`/app/requests/${r.id}`);
    // The handler running again for a decline counts it once.
    const failed = (await env.rt.db('events').where({ type: 'payment.failed' }).orderBy('id')) as { public_id: string }[];
    await env.rt.jobs.enqueue(env.rt.db, 'hooks.run', { eventId: failed[0].public_id, subscriptionId: 'core:payment-requests:declines' });
    await env.rt.jobs.drain();
    expect((await outboxMessages(env)).filter((m) => m.to === shop.merchant.email && /locked/i.test(m.subject ?? ''))).to.have.length(1);
  });
});
