/**
 * The event catalogue is true: one merchant's realistic day (settings, API keys, a link sent by email
 * and SMS with reminders, a view, a declined card and a paid one, a payment request that expires, a
 * deleted link) emits every event type, and every stored payload — and what a handler receives —
 * has exactly its declared shape (EVENT_PAYLOAD_SCHEMAS, strict) and names the merchant.
 */
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { useEnv } from './support/harness.ts';
import { apiClient, apiMerchant, expectFieldErrors, type ApiCall, type ApiMerchant } from './support/api.ts';
import { startFakeVonage, type FakeVonage } from './support/fake-vonage.ts';
import { BROWSERS } from './support/user-agents.ts';
import { EVENT_PAYLOAD_SCHEMAS, EVENT_TYPES, type EventType, type PaylinkEvent } from '../src/core/events.ts';
import { REQUEST_TTL_DAYS } from '../src/features/sending/service.ts';

const DAY = 86_400_000;

forEachTarget('event catalogue', (target) => {
  let vonage: FakeVonage;
  before(async () => {
    vonage = await startFakeVonage({ apiKey: 'key123', apiSecret: 'secret456' });
  });
  after(() => vonage?.close());
  const env = useEnv(target, () => ({
    apiLimit: { points: 100_000, durationSec: 60 },
    env: { VONAGE_API_KEY: 'key123', VONAGE_API_SECRET: 'secret456', VONAGE_REST_HOST: vonage.url, VONAGE_API_HOST: vonage.url },
  }));

  let shop: ApiMerchant;
  let call: ApiCall;
  const received: PaylinkEvent[] = [];

  /** Every stored event since the suite began, oldest first. */
  async function stored(): Promise<{ id: string; type: EventType; payload: Record<string, unknown>; merchantKey: number | null }[]> {
    const rows = (await env.rt.db('events').orderBy('id').select('public_id', 'type', 'payload', 'merchant_id')) as { public_id: string; type: EventType; payload: string; merchant_id: number | null }[];
    return rows.map((r) => ({ id: r.public_id, type: r.type, payload: JSON.parse(r.payload), merchantKey: r.merchant_id === null ? null : Number(r.merchant_id) }));
  }
  const ofType = async <T extends EventType>(type: T) => (await stored()).filter((e) => e.type === type).map((e) => e.payload as PaylinkEvent<T>['payload']);

  before(async () => {
    // A handler for every type: some events (views, deliveries, reminders) are only emitted while one listens.
    for (const type of EVENT_TYPES) env.rt.events.subscribe(type, `test:catalogue:${type}`, (e) => void received.push(e));
    shop = await apiMerchant(env, 'Acme Pottery');
    call = apiClient(env.app, shop.secret);
  });

  it('emits every event type in a realistic day, each payload of its declared shape and naming the merchant', async function () {
    this.timeout(60_000);
    const { rt } = env;
    const merchantId = shop.merchant.id;

    // Settings and API keys.
    await rt.services.merchants.updateSettings(shop.merchant, { name: 'Acme Pottery Studio', handle: shop.handle, currency: shop.merchant.currency, timezone: 'Europe/Amsterdam', brand_color: shop.merchant.brandColor });
    const zapier = await rt.services.apiKeys.create(shop.merchant, { name: 'Zapier' });
    await rt.services.apiKeys.revoke(shop.merchant, zapier.apiKey.id);

    // A link sent to Jane by email and SMS (Vonage refuses the SMS for good), reminding daily.
    const jane = (await call('post', '/customers', { name: 'Jane Doe', email: 'jane@example.test', phone: '+31 6 12345678' }).expect(201)).body.id as string;
    vonage.failSms('15', 'Illegal Sender Address - rejected');
    const sent = await call('post', '/links', {
      type: 'amount', name: 'Pottery class', amount: 4500, currency: 'EUR', payment_limit: 1,
      send: { customer_id: jane, channels: ['email', 'sms'], reminders: { frequency: 'daily', max: 2 } },
    });
    expect(sent.status, sent.text).to.equal(201);
    const link = sent.body as { id: string; url: string };
    await rt.jobs.drain();
    await call('patch', `/links/${link.id}`, { name: 'Pottery class, Saturday' }).expect(200);

    // A day later the first reminder goes out.
    env.clock.advance(DAY);
    await rt.services.reminders.sweep();
    await rt.jobs.drain();

    // Jane opens her link, her card is declined, she pays with another: the one slot is taken.
    const page = `${new URL(link.url).pathname}?c=${encodeURIComponent(rt.tokens.recipient(jane))}`;
    await supertest(env.app).get(page).set('User-Agent', BROWSERS[0].ua).expect(200);
    await rt.views!.flush();
    const started = await supertest(env.app).post(page).type('form').send({ name: 'Jane Doe', email: 'jane@example.test' });
    expect(started.status, started.text.slice(0, 300)).to.equal(303);
    const cardPage = new URL(started.headers.location).pathname;
    await supertest(env.app).post(cardPage).type('form').send({ card_number: '4000000000000002' }).expect(303);
    const paid = await supertest(env.app).post(cardPage).type('form').send({ card_number: '4242424242424242' });
    expect(paid.status, paid.text.slice(0, 300)).to.equal(303);
    // The class is shortened: part of the payment goes back to Jane.
    const payment = (await call('get', '/payments?status=paid').expect(200)).body.data[0] as { id: string };
    await call('post', `/payments/${payment.id}/refunds`, { amount: 1000, reason: 'Shorter class' }).expect(201);
    // Her bank reports a dispute (as a provider's webhook would).
    await rt.plugins.checkoutFor('provider-sandbox').flagDispute(payment.id, { providerRef: 'dp_1', status: 'needs_response', amount: 3500, reason: 'duplicate' });
    // A provider whose customers choose what they send (crypto) reports amounts that did not match.
    for (const outcome of ['overpaid', 'underpaid', 'paid_late'] as const) {
      await rt.plugins.checkoutFor('provider-sandbox').flagOutcome(payment.id, { outcome, amountReceived: 4000, txHashes: [`0x${'ab'.repeat(32)}`] });
    }

    // An invoice is requested of Jane through the API, then cancelled (the order was changed).
    const invoice = (await call('post', '/payment_requests', { amount: 3000, currency: 'EUR', reference: 'INV-7', customer_id: jane }).expect(201)).body.id as string;
    await call('post', `/payment_requests/${invoice}/cancel`).expect(200);

    // A payment request texted to Jane lapses unpaid; another link is deleted.
    const request = await rt.services.sending.textToPay(shop.merchant, jane, { amount: 1250 });
    const doomed = (await call('post', '/links', { type: 'amount', name: 'Gift card', amount: 2000, currency: 'EUR' }).expect(201)).body.id as string;
    await call('delete', `/links/${doomed}`).expect(200);
    env.clock.advance((REQUEST_TTL_DAYS + 1) * DAY);
    await rt.jobs.enqueue(rt.db, 'links.expire', {});
    await rt.jobs.drain();

    // Jane's invoice INV-8, requested through the API, is paid over the phone (no email, so no receipt).
    const inv8 = (await call('post', '/payment_requests', { amount: 1800, currency: 'EUR', reference: 'INV-8', customer_id: jane }).expect(201)).body as { id: string; link_id: string };
    const inv8Link = await rt.services.links.get(shop.merchant, inv8.link_id);
    const { payment: phoned } = await rt.services.checkout.start(shop.merchant, inv8Link, { amount: 1800, currency: 'EUR', name: 'Jane Doe', email: null });
    expect((await rt.services.checkout.authorize(phoned.id, 'sbx_inv8')).status).to.equal('paid');
    await rt.jobs.drain();

    // INV-9 lapses before Jane pays; she asks for a new link from its page, which goes to her email.
    const inv9 = (await call('post', '/payment_requests', { amount: 900, currency: 'EUR', reference: 'INV-9', customer_id: jane, allow_refresh: true, expires_in: 60 }).expect(201)).body as { id: string; url: string; link_id: string };
    env.clock.advance(61_000);
    await supertest(env.app).post(`${new URL(inv9.url).pathname}/refresh`).expect(201);
    const inv9r = (await call('get', `/payment_requests/${inv9.id}`).expect(200)).body.refreshed_to as string;
    const inv9rLink = (await call('get', `/payment_requests/${inv9r}`).expect(200)).body.link_id as string;
    await rt.jobs.drain();

    // Jane subscribes to the monthly clay club (sandbox), is billed again a month later, then the studio cancels.
    const clay = (await call('post', '/products', { name: 'Clay club', price: 1900, currency: 'EUR', recurring: { interval: 'month' } }).expect(201)).body.id as string;
    const clubLink = (await call('post', '/links', { type: 'items', name: 'Clay club', items: [{ product_id: clay, quantity: 1 }] }).expect(201)).body as { id: string; url: string };
    const joined = await supertest(env.app).post(new URL(clubLink.url).pathname).type('form').send({ name: 'Jane Doe', email: 'jane@example.test', plan: clay });
    expect(joined.status, joined.text.slice(0, 300)).to.equal(303);
    await supertest(env.app).post(new URL(joined.headers.location).pathname).type('form').send({ card_number: '4242424242424242' }).expect(303);
    env.clock.advance(32 * DAY);
    await rt.jobs.enqueue(rt.db, 'plugin.provider-sandbox.renew', {});
    await rt.jobs.drain();
    const [subscription] = (await call('get', '/subscriptions').expect(200)).body.data as { id: string }[];
    await call('post', `/subscriptions/${subscription.id}/cancel`).expect(200);
    await rt.jobs.drain();

    const events = await stored();
    expect([...new Set(events.map((e) => e.type))].sort(), 'event types emitted').to.deep.equal([...EVENT_TYPES].sort());
    for (const e of events) {
      const parsed = EVENT_PAYLOAD_SCHEMAS[e.type].safeParse(e.payload);
      expect(parsed.success, `${e.type} ${JSON.stringify(e.payload)}: ${parsed.error?.message}`).to.equal(true);
      expect(e.payload.merchantId, e.type).to.equal(merchantId);
      expect(e.merchantKey, e.type).to.equal(shop.merchant.key);
    }
    // Handlers get exactly what was stored, once per event.
    expect(received.map((e) => [e.id, e.type, e.payload])).to.have.deep.members(events.map((e) => [e.id, e.type, e.payload]));

    // The values, not just the shapes.
    const base = { merchantId, linkId: link.id, customerId: jane, amount: 4500, currency: 'EUR', provider: 'sandbox' };
    const onLink = <T extends { linkId: string | null }>(list: T[]) => list.filter((p) => p.linkId === link.id);
    const [succeeded] = onLink(await ofType('payment.succeeded'));
    expect(succeeded).to.deep.equal({ ...base, paymentId: succeeded.paymentId });
    expect(onLink(await ofType('payment.authorized'))).to.deep.equal([succeeded]);
    const [declined] = onLink(await ofType('payment.failed'));
    expect(declined).to.deep.include({ ...base, reason: 'card_declined' });
    expect(declined.paymentId).not.to.equal(succeeded.paymentId);
    const [checkout] = onLink(await ofType('checkout.started'));
    expect(checkout).to.deep.include({ ...base, paymentId: declined.paymentId });
    expect(await ofType('link.limit_reached')).to.deep.equal([{ merchantId, linkId: link.id, limit: 1, paymentId: succeeded.paymentId }, { merchantId, linkId: inv8.link_id, limit: 1, paymentId: phoned.id }]);
    expect((await ofType('link.viewed')).map((v) => [v.linkId, v.browser, v.os])).to.deep.equal([[link.id, BROWSERS[0].browser, BROWSERS[0].os]]);
    const [invoiceLink] = await ofType('payment_request.created').then((c) => c.map((e) => e.linkId));
    expect((await ofType('link.created')).map((l) => [l.linkId, l.kind, l.amount])).to.deep.equal([[link.id, 'smart', 4500], [invoiceLink, 'request', 3000], [request.link.id, 'request', 1250], [doomed, 'smart', 2000], [inv8.link_id, 'request', 1800], [inv9.link_id, 'request', 900], [inv9rLink, 'request', 900], [clubLink.id, 'smart', null]]);
    expect(await ofType('payment_request.created')).to.deep.equal([
      { merchantId, requestId: invoice, linkId: invoiceLink, reference: 'INV-7', amount: 3000, currency: 'EUR', source: 'api' },
      { merchantId, requestId: request.requestId, linkId: request.link.id, reference: null, amount: 1250, currency: 'EUR', source: 'text_to_pay' },
      { merchantId, requestId: inv8.id, linkId: inv8.link_id, reference: 'INV-8', amount: 1800, currency: 'EUR', source: 'api' },
      { merchantId, requestId: inv9.id, linkId: inv9.link_id, reference: 'INV-9', amount: 900, currency: 'EUR', source: 'api' },
      { merchantId, requestId: inv9r, linkId: inv9rLink, reference: 'INV-9-R1', amount: 900, currency: 'EUR', source: 'api' },
    ]);
    expect(await ofType('payment_request.refreshed')).to.deep.equal([{ merchantId, requestId: inv9.id, newRequestId: inv9r, reference: 'INV-9-R1' }]);
    expect(await ofType('payment_request.paid')).to.deep.equal([{ merchantId, requestId: inv8.id, linkId: inv8.link_id, reference: 'INV-8', paymentId: phoned.id }]);
    expect(await ofType('payment_request.expired')).to.deep.equal([{ merchantId, requestId: request.requestId, linkId: request.link.id, reference: null, expiredAt: request.link.expiresAt!.toISOString() }]);
    expect(await ofType('payment_request.cancelled')).to.deep.equal([{ merchantId, requestId: invoice, linkId: invoiceLink, reference: 'INV-7' }]);
    expect(await ofType('link.expired')).to.deep.equal([{ merchantId, linkId: request.link.id, customerId: jane, expiredAt: request.link.expiresAt!.toISOString() }]);
    expect(await ofType('link.deleted')).to.deep.equal([{ merchantId, linkId: doomed, path: 'gift-card' }]);
    expect((await ofType('delivery.failed')).map((d) => [d.linkId, d.customerId, d.channel, d.kind])).to.deep.equal([[link.id, jane, 'sms', 'initial']]);
    // Jane's receipt for her payment goes by email too (and one for each charge of her subscription).
    expect((await ofType('delivery.sent')).map((d) => [d.channel, d.kind]).sort()).to.deep.equal([['email', 'initial'], ['email', 'initial'], ['email', 'receipt'], ['email', 'receipt'], ['email', 'receipt'], ['email', 'reminder'], ['sms', 'initial'], ['sms', 'reminder']]);
    expect((await ofType('delivery.sent')).filter((d) => d.kind === 'receipt').map((d) => [d.linkId, d.customerId])).to.deep.equal([[link.id, jane], [clubLink.id, jane], [clubLink.id, jane]]);
    const [created] = await ofType('subscription.created');
    const subBase = { merchantId, subscriptionId: subscription.id, linkId: clubLink.id, customerId: jane, provider: 'sandbox', amount: 1900, currency: 'EUR' };
    expect(created).to.deep.include({ ...subBase, status: 'active' });
    const [renewal] = await ofType('subscription.renewed');
    expect(renewal).to.deep.include({ ...subBase, status: 'active' });
    expect(renewal.paymentId).not.to.equal(created.paymentId);
    expect(await ofType('subscription.canceled')).to.deep.equal([{ ...subBase, status: 'canceled', currentPeriodEnd: renewal.currentPeriodEnd, paymentId: null, canceledBy: 'merchant' }]);
    expect(await ofType('reminder.sent')).to.deep.equal([{ merchantId, planId: (await ofType('reminder.sent'))[0].planId, linkId: link.id, customerId: jane, number: 1, max: 2 }]);
    expect(await ofType('api_key.revoked')).to.deep.equal([{ merchantId, apiKeyId: zapier.apiKey.id }]);
    expect(await ofType('merchant.updated')).to.deep.equal([{ merchantId, handle: shop.handle, changed: ['name', 'timezone'] }]);
    // The expired request shows as expired, not active.
    expect(await rt.db('links').where({ public_id: request.link.id }).first('active', 'inactive_reason')).to.deep.include({ inactive_reason: 'expired' });
  });

  it('expires each lapsed payment request once when two processes sweep at the same time, and nothing else', async () => {
    const { rt } = env;
    // Requests the day above left open lapse first, so the sweeps below count only this test's.
    env.clock.advance(DAY);
    await rt.services.links.expireDue();
    const other = await env.sibling();
    const bo = (await call('post', '/customers', { name: 'Bo Berg', email: 'bo@example.test', phone: '+31 6 87654321' }).expect(201)).body.id as string;
    const lapsing = [];
    for (let i = 0; i < 3; i++) lapsing.push((await rt.services.sending.textToPay(shop.merchant, bo, { amount: 500 + i })).link.id);
    env.clock.advance(DAY);
    const fresh = (await rt.services.sending.textToPay(shop.merchant, bo, { amount: 900 })).link.id;
    env.clock.advance((REQUEST_TTL_DAYS - 1) * DAY + 1);
    const before = (await ofType('link.expired')).length;
    const sweeps = [rt, other, rt].map((r) => () => r.services.links.expireDue());
    // Two runtimes in one process cannot hold SQLite write transactions at once (a synchronous driver
    // waiting on the lock blocks the holder too): there they take turns; MariaDB sweeps concurrently.
    const closed = target.mysqlUrl ? await Promise.all(sweeps.map((s) => s())) : [await sweeps[0](), await sweeps[1](), await sweeps[2]()];
    expect(closed.reduce((a, b) => a + b, 0)).to.equal(3);
    const expired = (await ofType('link.expired')).slice(before);
    expect(expired.map((e) => e.linkId).sort()).to.deep.equal([...lapsing].sort());
    const states = await rt.db('links').whereIn('public_id', [...lapsing, fresh]).select('public_id', 'active', 'inactive_reason');
    expect(states.filter((s) => s.inactive_reason === 'expired').map((s) => s.public_id).sort()).to.deep.equal([...lapsing].sort());
    expect(states.find((s) => s.public_id === fresh)).to.deep.include({ inactive_reason: null });
    expect(await rt.services.links.expireDue(), 'a second sweep finds nothing').to.equal(0);
    // An expired request stays closed: reopening it is refused by the field, and nothing is emitted.
    const reopen = await call('patch', `/links/${lapsing[0]}`, { active: true });
    expect(expectFieldErrors(reopen, ['active']).errors[0].code).to.equal('link_expired');
    expect(await rt.db('links').where({ public_id: lapsing[0] }).first('inactive_reason')).to.deep.equal({ inactive_reason: 'expired' });
  });
});
