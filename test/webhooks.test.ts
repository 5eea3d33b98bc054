// Outgoing webhooks (issue 12): Standard Webhooks signatures checked by the reference library on a
// real receiver, the API shapes as `data`, rotation, the retry schedule on a moved clock,
// Retry-After, 3xx never followed, 410 and 5 days of failure disable (and email the merchant), the
// SSRF guard at connect time, and bad input.
import { expect } from 'chai';
import dns from 'node:dns';
import net from 'node:net';
import type { LookupFunction } from 'node:net';
import { TARGETS, forEachTarget } from './support/targets.ts';
import { build, csrfFrom, signUp, type TestEnv } from './support/harness.ts';
import { apiClient, apiMerchant, expectFieldErrors, expectProblem, type ApiCall, type ApiMerchant } from './support/api.ts';
import { startReceiver, verifier, type TestReceiver } from './support/webhook-receiver.ts';
import { startSmtp, type TestSmtp } from './support/smtp.ts';
import { waitFor } from './support/wait.ts';
import { createSender, RETRY_SCHEDULE_MS, DISABLE_AFTER_MS } from '../src/features/webhooks/index.ts';

const PRIVATE_OK = { PAYLINK_WEBHOOKS_ALLOW_PRIVATE: '1' };

forEachTarget('outgoing webhooks', (target) => {
  let env: TestEnv;
  let smtp: TestSmtp;
  let hook: TestReceiver;
  let a: ApiMerchant;
  let b: ApiMerchant;
  let call: ApiCall;
  let callB: ApiCall;

  before(async () => {
    smtp = await startSmtp();
    hook = await startReceiver();
    env = await build(target, { apiLimit: { points: 100_000, durationSec: 60 }, env: { ...PRIVATE_OK, SMTP_URL: smtp.url, MAIL_FROM: 'pay@paylink.test' } });
    a = await apiMerchant(env, 'Kiln Club');
    b = await apiMerchant(env, 'Other Shop');
    call = apiClient(env.app, a.secret);
    callB = apiClient(env.app, b.secret);
  });
  after(async () => {
    await env?.close();
    await hook?.close();
    await smtp?.close();
  });
  beforeEach(async () => {
    // Each test starts with no endpoints and an answering receiver.
    for (const m of [a, b]) for (const e of (await env.rt.services.webhooks.list(m.merchant.key, { limit: 100 })).data) await env.rt.services.webhooks.remove(m.merchant.key, e.id);
    await env.rt.jobs.drain();
    hook.received.length = 0;
    hook.answer(() => ({ status: 200, body: 'ok' }));
    smtp.reset();
  });

  async function endpoint(events: string[] = ['*'], path = '/hooks'): Promise<{ id: string; secret: string }> {
    const res = await call('post', '/webhook_endpoints', { url: `${hook.url}${path}`, description: 'Shop', events });
    expect(res.status, res.text).to.equal(201);
    return { id: res.body.id, secret: res.body.secret };
  }

  let made = 0;
  async function paid() {
    const link = await env.rt.services.links.create(a.merchant, { type: 'amount', name: `Pottery class ${++made}`, amount: 4500 });
    const { payment } = await env.rt.services.checkout.start(a.merchant, link, { amount: 4500, currency: link.currency, name: 'Ada', email: 'ada@example.test' });
    expect((await env.rt.services.checkout.authorize(payment.id, `sbx_wh_${made}`)).status).to.equal('paid');
    return { link, paymentId: payment.id };
  }

  const bodies = () => hook.received.map((r) => JSON.parse(r.body) as { id: string; type: string; timestamp: string; data: any });
  const ofType = (type: string) => hook.received.filter((r) => JSON.parse(r.body).type === type);

  it('signs every event the Standard Webhooks way: the reference library verifies it and rejects a tampered body', async () => {
    const { secret } = await endpoint();
    expect(secret).to.match(/^whsec_[A-Za-z0-9+/]+=*$/);
    const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
    expect(key.length).to.be.within(24, 64);
    const { link, paymentId } = await paid();
    await env.rt.jobs.drain();

    const [succeeded] = ofType('payment.succeeded');
    expect(succeeded, JSON.stringify(bodies().map((x) => x.type))).to.exist;
    expect(succeeded.headers['webhook-id']).to.match(/^msg_/);
    expect(succeeded.headers['webhook-timestamp']).to.equal(String(Math.floor(env.clock.now().getTime() / 1000)));
    const wh = verifier(secret, env.clock);
    const verified = wh.verify(succeeded.body, succeeded.headers) as any;
    expect(verified.type).to.equal('payment.succeeded');
    expect(verified.id).to.match(/^evt_/);
    expect(Object.keys(verified).sort()).to.deep.equal(['data', 'id', 'timestamp', 'type']);

    const tampered = succeeded.body.replace('"amount":4500', '"amount":1');
    expect(tampered).to.not.equal(succeeded.body);
    expect(() => wh.verify(tampered, succeeded.headers)).to.throw(/signature/i);
    expect(() => verifier('whsec_' + Buffer.alloc(32, 7).toString('base64'), env.clock).verify(succeeded.body, succeeded.headers)).to.throw(/signature/i);

    // data is exactly what the API answers for the object.
    expect(verified.data).to.deep.equal((await call('get', `/payments/${paymentId}`)).body);
    const [created] = ofType('link.created').map((r) => JSON.parse(r.body));
    expect(created.data).to.deep.equal((await call('get', `/links/${link.id}`)).body);
  });

  it('sends payment.disputed (a provider flagged a chargeback) with the payment as the API shows it', async () => {
    await endpoint(['payment.disputed'], '/disputes');
    const { link, paymentId } = await paid();
    await env.rt.db.transaction((trx) =>
      env.rt.events.emit(trx, 'payment.disputed', { merchantId: a.merchant.id, paymentId, linkId: link.id, amount: 4500, currency: 'EUR', provider: 'sandbox', status: 'needs_response', reason: 'fraudulent' }, a.merchant.key),
    );
    await env.rt.jobs.drain();
    const sent = bodies().filter((b) => b.type === 'payment.disputed' && b.data.id === paymentId);
    expect(sent).to.have.length(1);
    expect(sent[0].data).to.deep.equal((await call('get', `/payments/${paymentId}`)).body);
  });

  it('sends payment.underpaid / overpaid / paid_late with the payment plus what arrived', async () => {
    await endpoint(['payment.underpaid', 'payment.overpaid', 'payment.paid_late'], '/outcomes');
    const { paymentId } = await paid();
    const tx = `0x${'cd'.repeat(32)}`;
    for (const outcome of ['underpaid', 'overpaid', 'paid_late'] as const) {
      await env.rt.plugins.checkoutFor('provider-sandbox').flagOutcome(paymentId, { outcome, amountReceived: 5000, txHashes: [tx] });
    }
    await env.rt.jobs.drain();
    const sent = bodies().filter((b) => b.data.id === paymentId && /^payment\.(underpaid|overpaid|paid_late)$/.test(b.type));
    expect(sent.map((b) => b.type).sort()).to.deep.equal(['payment.overpaid', 'payment.paid_late', 'payment.underpaid']);
    const api = (await call('get', `/payments/${paymentId}`)).body;
    for (const b of sent) expect(b.data).to.deep.equal({ ...api, amount_received: 5000, received_tx_hashes: [tx] });
    const bad = await env.rt.plugins.checkoutFor('provider-sandbox').flagOutcome(paymentId, { outcome: 'lost' as never, amountReceived: 1, txHashes: [] }).then(() => null, (e) => e);
    expect(bad).to.include({ code: 'invalid_outcome' });
  });

  it('queues no webhook work for a merchant without an enabled endpoint', async () => {
    const before = Number((await env.rt.db('jobs').where('kind', 'hooks.run').count({ n: '*' }))[0].n);
    await env.rt.services.links.create(a.merchant, { type: 'amount', name: 'Nobody listens', amount: 100 });
    await env.rt.jobs.drain();
    const runs = (await env.rt.db('jobs').where('kind', 'hooks.run').andWhere('id', '>', 0).select('payload')) as { payload: string }[];
    expect(runs.slice(before).map((r) => JSON.parse(r.payload).subscriptionId).filter((id: string) => id.startsWith('webhooks:'))).to.deep.equal([]);
    expect(hook.received).to.have.length(0);
    // "No endpoint" is remembered for a moment, but not past the creation (or re-enabling) of one:
    // the very next event goes to it.
    const { id } = await endpoint(['link.created', 'link.updated']);
    await env.rt.services.links.create(a.merchant, { type: 'amount', name: 'Someone listens', amount: 100 });
    await env.rt.jobs.drain();
    expect(bodies().map((b) => [b.type, b.data.name])).to.deep.equal([['link.created', 'Someone listens']]);
    expect((await call('patch', `/webhook_endpoints/${id}`, { enabled: false })).status).to.equal(200);
    await env.rt.services.links.create(a.merchant, { type: 'amount', name: 'Disabled', amount: 100 });
    expect((await call('patch', `/webhook_endpoints/${id}`, { enabled: true })).status).to.equal(200);
    await env.rt.services.links.create(a.merchant, { type: 'amount', name: 'Enabled again', amount: 100 });
    await env.rt.jobs.drain();
    expect(bodies().map((b) => b.data.name)).to.deep.equal(['Someone listens', 'Enabled again']);
  });

  it('sends only the event types an endpoint chose, and nothing of another merchant', async () => {
    await endpoint(['payment.succeeded']);
    const other = await callB('post', '/webhook_endpoints', { url: `${hook.url}/b`, events: ['*'] });
    expect(other.status).to.equal(201);
    await paid();
    await env.rt.jobs.drain();
    expect(bodies().map((x) => x.type)).to.deep.equal(['payment.succeeded']);
    expect(hook.received[0].path).to.equal('/hooks');
  });

  it('after a rotation signs with both secrets for 24 hours, then with the new one only', async () => {
    const { id, secret: old } = await endpoint(['link.created']);
    const rotated = await call('post', `/webhook_endpoints/${id}/rotate`);
    expect(rotated.status, rotated.text).to.equal(200);
    const fresh = rotated.body.secret as string;
    expect(fresh).to.match(/^whsec_/).and.not.equal(old);
    expect((await call('get', `/webhook_endpoints/${id}`)).body).to.not.have.property('secret');

    await env.rt.services.links.create(a.merchant, { type: 'amount', name: 'During overlap', amount: 100 });
    await env.rt.jobs.drain();
    const during = hook.received.at(-1)!;
    expect(during.headers['webhook-signature'].split(' ')).to.have.length(2);
    expect(() => verifier(old, env.clock).verify(during.body, during.headers)).to.not.throw();
    expect(() => verifier(fresh, env.clock).verify(during.body, during.headers)).to.not.throw();

    env.clock.advance(24 * 3600_000 + 1000);
    await env.rt.services.links.create(a.merchant, { type: 'amount', name: 'After overlap', amount: 100 });
    await env.rt.jobs.drain();
    const afterwards = hook.received.at(-1)!;
    expect(JSON.parse(afterwards.body).data.name).to.equal('After overlap');
    expect(afterwards.headers['webhook-signature'].split(' ')).to.have.length(1);
    expect(() => verifier(fresh, env.clock).verify(afterwards.body, afterwards.headers)).to.not.throw();
    expect(() => verifier(old, env.clock).verify(afterwards.body, afterwards.headers)).to.throw(/signature/i);
  });

  /** The message's row as the API shows its attempts, newest first. */
  const attemptsOf = async (id: string) => (await call('get', `/webhook_endpoints/${id}/attempts?limit=100`)).body.data as any[];

  it('retries a failing endpoint on the schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h, with jitter), keeping the webhook-id', async () => {
    const { id } = await endpoint(['link.created']);
    hook.answer(() => ({ status: 500, body: 'down for maintenance' }));
    await env.rt.services.links.create(a.merchant, { type: 'amount', name: 'Retried', amount: 100 });
    await env.rt.jobs.drain();
    expect(hook.received).to.have.length(1);
    for (let n = 1; n < RETRY_SCHEDULE_MS.length; n++) {
      const [last] = await attemptsOf(id);
      expect(last.attempt).to.equal(n);
      expect(last.status).to.equal('failed');
      expect(last.status_code).to.equal(500);
      expect(last.response).to.equal('down for maintenance');
      const wait = Date.parse(last.next_retry_at) - Date.parse(last.created_at);
      expect(wait, `delay before try ${n + 1}`).to.be.within(RETRY_SCHEDULE_MS[n], Math.ceil(RETRY_SCHEDULE_MS[n] * 1.1));
      // Not a moment early …
      env.clock.set(Date.parse(last.next_retry_at) - 1);
      await env.rt.jobs.drain();
      expect(hook.received).to.have.length(n);
      // … and at the time.
      env.clock.set(Date.parse(last.next_retry_at));
      await env.rt.jobs.drain();
      expect(hook.received).to.have.length(n + 1);
    }
    const [final] = await attemptsOf(id);
    expect(final.attempt).to.equal(10);
    expect(final.next_retry_at).to.equal(null);
    expect(new Set(hook.received.map((r) => r.headers['webhook-id'])).size).to.equal(1);
    env.clock.advance(7 * 86_400_000);
    await env.rt.jobs.drain();
    expect(hook.received).to.have.length(10);
  });

  it('honours Retry-After on 429 and 503 (seconds or a date)', async () => {
    const { id } = await endpoint(['link.created']);
    const answers = [
      { status: 429, headers: { 'Retry-After': '120' } },
      { status: 503, headers: { 'Retry-After': new Date(env.clock.now().getTime() + 3600_000).toUTCString() } },
      { status: 204 },
    ];
    hook.answer(() => answers.shift()!);
    await env.rt.services.links.create(a.merchant, { type: 'amount', name: 'Busy', amount: 100 });
    await env.rt.jobs.drain();
    const [first] = await attemptsOf(id);
    expect(Date.parse(first.next_retry_at) - Date.parse(first.created_at)).to.equal(120_000);
    env.clock.set(Date.parse(first.next_retry_at));
    await env.rt.jobs.drain();
    const [second] = await attemptsOf(id);
    expect(second.status_code).to.equal(503);
    // An HTTP date has whole seconds: the retry is at that second.
    expect(Math.abs(Date.parse(second.next_retry_at) - (Date.parse(first.created_at) + 3600_000))).to.be.below(1000);
    env.clock.set(Date.parse(second.next_retry_at));
    await env.rt.jobs.drain();
    const [third] = await attemptsOf(id);
    expect(third.status).to.equal('succeeded');
    expect(third.status_code).to.equal(204);
    expect(hook.received).to.have.length(3);
  });

  it('never follows a redirect: a 3xx is a failed try', async () => {
    const { id } = await endpoint(['link.created']);
    hook.answer((r) => (r.path === '/hooks' ? { status: 302, headers: { Location: `${hook.url}/elsewhere` } } : { status: 200 }));
    await env.rt.services.links.create(a.merchant, { type: 'amount', name: 'Moved', amount: 100 });
    await env.rt.jobs.drain();
    const [attempt] = await attemptsOf(id);
    expect(attempt.status).to.equal('failed');
    expect(attempt.status_code).to.equal(302);
    expect(attempt.next_retry_at).to.be.a('string');
    expect(hook.received.map((r) => r.path)).to.deep.equal(['/hooks']);
  });

  it('disables the endpoint on 410 Gone and sends it nothing more', async () => {
    const { id } = await endpoint(['link.created']);
    hook.answer(() => ({ status: 410 }));
    await env.rt.services.links.create(a.merchant, { type: 'amount', name: 'Gone 1', amount: 100 });
    await env.rt.jobs.drain();
    const ep = (await call('get', `/webhook_endpoints/${id}`)).body;
    expect(ep.enabled).to.equal(false);
    expect(ep.disabled_reason).to.equal('gone');
    const [attempt] = await attemptsOf(id);
    expect(attempt.next_retry_at).to.equal(null);
    await env.rt.services.links.create(a.merchant, { type: 'amount', name: 'Gone 2', amount: 100 });
    env.clock.advance(86_400_000);
    await env.rt.jobs.drain();
    expect(hook.received).to.have.length(1);
  });

  it('after 5 days of failure with no success disables the endpoint and emails the merchant', async () => {
    const { id } = await endpoint(['link.created'], '/five-days');
    // Mail about this endpoint only (an earlier test's notice may still be arriving).
    const mails = () => smtp.messages.filter((m) => m.text?.includes(`${hook.url}/five-days`));
    hook.answer(() => ({ status: 500 }));
    const start = env.clock.now().getTime();
    await env.rt.services.links.create(a.merchant, { type: 'amount', name: 'Day 0', amount: 100 });
    await env.rt.jobs.drain();
    expect((await call('get', `/webhook_endpoints/${id}`)).body.failing_since).to.equal(new Date(start).toISOString());
    // Four days on, still failing: still enabled.
    env.clock.set(start + 4 * 86_400_000);
    await env.rt.services.links.create(a.merchant, { type: 'amount', name: 'Day 4', amount: 100 });
    await env.rt.jobs.drain();
    expect((await call('get', `/webhook_endpoints/${id}`)).body.enabled).to.equal(true);
    expect(mails()).to.have.length(0);
    // Five days after the first failure, the next failure disables it.
    env.clock.set(start + DISABLE_AFTER_MS);
    await env.rt.services.links.create(a.merchant, { type: 'amount', name: 'Day 5', amount: 100 });
    await env.rt.jobs.drain();
    const ep = (await call('get', `/webhook_endpoints/${id}`)).body;
    expect(ep.enabled).to.equal(false);
    expect(ep.disabled_reason).to.equal('failing');
    const mail = await waitFor(() => mails()[0], { message: 'the email to the merchant' });
    expect(mail.envelope.to).to.deep.equal([`${a.handle}@example.test`]);
    expect(mail.headers.get('subject')).to.equal('A webhook endpoint was disabled');
    expect(mail.text).to.include('5 days with no success');
    // Pending retries stop: nothing more reaches the receiver.
    const before = hook.received.length;
    env.clock.advance(3 * 86_400_000);
    await env.rt.jobs.drain();
    expect(hook.received.length).to.equal(before);
    expect(mails()).to.have.length(1);
  });

  it('a success clears "failing since"', async () => {
    const { id } = await endpoint(['link.created']);
    hook.answer(() => ({ status: 500 }));
    await env.rt.services.links.create(a.merchant, { type: 'amount', name: 'Fails once', amount: 100 });
    await env.rt.jobs.drain();
    expect((await call('get', `/webhook_endpoints/${id}`)).body.failing_since).to.be.a('string');
    hook.answer(() => ({ status: 200 }));
    env.clock.advance(6_000);
    await env.rt.jobs.drain();
    expect((await call('get', `/webhook_endpoints/${id}`)).body.failing_since).to.equal(null);
  });

  it('records a healthy endpoint\'s last success at most once a minute, not on every delivery', async () => {
    const { id } = await endpoint(['link.created']);
    hook.answer(() => ({ status: 200 }));
    const lastSuccess = async () => (await env.rt.services.webhooks.get(a.merchant.key, id)).lastSuccessAt?.getTime();
    await env.rt.services.links.create(a.merchant, { type: 'amount', name: 'First', amount: 100 });
    await env.rt.jobs.drain();
    const first = env.clock.now().getTime();
    expect(await lastSuccess()).to.equal(first);
    env.clock.advance(30_000);
    await env.rt.services.links.create(a.merchant, { type: 'amount', name: 'Second', amount: 100 });
    await env.rt.jobs.drain();
    expect(await lastSuccess()).to.equal(first);
    env.clock.advance(31_000);
    await env.rt.services.links.create(a.merchant, { type: 'amount', name: 'Third', amount: 100 });
    await env.rt.jobs.drain();
    expect(await lastSuccess()).to.equal(env.clock.now().getTime());
    expect(hook.received.filter((r) => r.path === '/hooks')).to.have.length(3);
  });

  it('reads at most the first 1 KB of a huge answer and does not wait for a slow drip', async () => {
    const { id } = await endpoint(['link.created']);
    hook.answer(() => ({ status: 200, body: 'x'.repeat(5 * 1024 * 1024) }));
    await env.rt.services.links.create(a.merchant, { type: 'amount', name: 'Huge', amount: 100 });
    await env.rt.jobs.drain();
    const [attempt] = await attemptsOf(id);
    expect(attempt.status).to.equal('succeeded');
    expect(attempt.response).to.have.length(1024);
  });

  it('CRUD over the API: the secret only on create and rotate, 404 for another merchant, attempts listed', async () => {
    const created = await call('post', '/webhook_endpoints', { url: `${hook.url}/crud`, events: ['payment.succeeded', 'payment.refunded'], description: 'ERP' });
    expect(created.status).to.equal(201);
    expect(created.headers.location).to.equal(`/api/v1/webhook_endpoints/${created.body.id}`);
    expect(created.body).to.include({ object: 'webhook_endpoint', url: `${hook.url}/crud`, description: 'ERP', enabled: true });
    expect(created.body.id).to.match(/^we_/);
    const id = created.body.id;
    // At rest the secret is sealed (AES-256-GCM), never the whsec_ text or its key bytes.
    const row = await env.rt.db('webhook_endpoints').where('public_id', id).first();
    expect(row.secret).to.match(/^v1\./);
    expect(JSON.stringify(row)).to.not.include(created.body.secret.slice('whsec_'.length, 20));
    const got = (await call('get', `/webhook_endpoints/${id}`)).body;
    expect(got).to.not.have.property('secret');
    expect((await call('get', '/webhook_endpoints')).body.data.map((e: any) => e.id)).to.deep.equal([id]);
    const patched = await call('patch', `/webhook_endpoints/${id}`, { enabled: false, events: ['*'] });
    expect(patched.body).to.include({ enabled: false });
    expect(patched.body.events).to.deep.equal(['*']);
    expectProblem(await callB('get', `/webhook_endpoints/${id}`), 404, 'not_found');
    expectProblem(await callB('patch', `/webhook_endpoints/${id}`, { enabled: true }), 404, 'not_found');
    expectProblem(await callB('post', `/webhook_endpoints/${id}/rotate`), 404, 'not_found');
    expectProblem(await callB('get', `/webhook_endpoints/${id}/attempts`), 404, 'not_found');
    expect((await call('get', `/webhook_endpoints/${id}/attempts`)).body).to.deep.equal({ data: [], has_more: false });
    expect((await call('delete', `/webhook_endpoints/${id}`)).body).to.deep.equal({ id, object: 'webhook_endpoint', deleted: true });
    expectProblem(await call('get', `/webhook_endpoints/${id}`), 404, 'not_found');
  });

  it('refuses bad input by the field: invalid URL, not http(s), credentials, unknown event types, wrong types', async () => {
    expectFieldErrors(await call('post', '/webhook_endpoints', {}), ['url']);
    expectFieldErrors(await call('post', '/webhook_endpoints', { url: 'not a url' }), ['url']);
    expectFieldErrors(await call('post', '/webhook_endpoints', { url: 'ftp://example.com/hook' }), ['url']);
    expectFieldErrors(await call('post', '/webhook_endpoints', { url: 'https://user:pw@example.com/hook' }), ['url']);
    const unknown = expectFieldErrors(await call('post', '/webhook_endpoints', { url: 'https://example.com/hook', events: ['payment.exploded'] }), ['events']);
    expect(unknown.errors[0].message).to.include('payment.exploded');
    // Types an endpoint cannot get (not offered) are unknown too.
    expectFieldErrors(await call('post', '/webhook_endpoints', { url: 'https://example.com/hook', events: ['link.viewed'] }), ['events']);
    expectFieldErrors(await call('post', '/webhook_endpoints', { url: 'https://example.com/hook', events: [] }), ['events']);
    expectFieldErrors(await call('post', '/webhook_endpoints', { url: 'https://example.com/hook', events: 'payment.succeeded' }), ['events']);
    expectFieldErrors(await call('post', '/webhook_endpoints', { url: 'https://example.com/hook', enabled: 'yes', description: 5 }), ['description', 'enabled']);
    expectFieldErrors(await call('post', '/webhook_endpoints', { url: 'https://example.com/hook', secret: 'mine' }), ['_']);
    expect((await call('get', '/webhook_endpoints')).body.data).to.deep.equal([]);
  });

  it('Settings → Webhooks: add (secret shown once), the log, send a test event, resend, rotate, delete', async () => {
    const account = await signUp(env.app);
    const page = await account.agent.get('/app/settings/webhooks');
    expect(page.status).to.equal(200);
    let csrf = csrfFrom(page.text);
    const bad = await account.agent.post('/app/settings/webhooks').type('form').send({ _csrf: csrf, url: 'nope', events: 'payment.exploded' });
    expect(bad.status).to.equal(422);
    expect(bad.text).to.include('Enter a full URL');
    const added = await account.agent.post('/app/settings/webhooks').type('form').send({ _csrf: csrf, url: `${hook.url}/ui`, description: 'Books', all_events: '1' });
    expect(added.status, added.text.slice(0, 500)).to.equal(201);
    const secret = /id="new-webhook-secret">(whsec_[^<]+)</.exec(added.text)?.[1];
    expect(secret).to.match(/^whsec_/);
    const id = /\/app\/settings\/webhooks\/(we_[A-Za-z0-9]+)\/test/.exec(added.text)![1];
    const shown = await account.agent.get(`/app/settings/webhooks/${id}`);
    expect(shown.text).to.not.include(secret!);
    csrf = csrfFrom(shown.text);
    const test = await account.agent.post(`/app/settings/webhooks/${id}/test`).type('form').send({ _csrf: csrf });
    expect(test.status).to.equal(303);
    await env.rt.jobs.drain();
    const received = hook.received.find((r) => r.path === '/ui')!;
    expect(JSON.parse(received.body).type).to.equal('webhook.test');
    expect(() => verifier(secret!, env.clock).verify(received.body, received.headers)).to.not.throw();
    const log = await account.agent.get(`/app/settings/webhooks/${id}`);
    expect(log.text).to.include('webhook.test');
    expect(log.text).to.include('Healthy');
    const messageId = /resend\/(msg_[A-Za-z0-9]+)/.exec(log.text)![1];
    const resent = await account.agent.post(`/app/settings/webhooks/${id}/resend/${messageId}`).type('form').send({ _csrf: csrf });
    expect(resent.status).to.equal(303);
    await env.rt.jobs.drain();
    expect(hook.received.filter((r) => r.path === '/ui').map((r) => r.headers['webhook-id'])).to.deep.equal([messageId, messageId]);
    const failed = await account.agent.get(`/app/settings/webhooks/${id}?status=failed`);
    expect(failed.text).to.include('No failed attempts');
    const rotated = await account.agent.post(`/app/settings/webhooks/${id}/rotate`).type('form').send({ _csrf: csrf });
    expect(rotated.status).to.equal(200);
    expect(rotated.headers['cache-control']).to.include('no-store');
    expect(/id="new-webhook-secret">(whsec_[^<]+)</.exec(rotated.text)?.[1]).to.match(/^whsec_/).and.not.equal(secret);
    // Another merchant's endpoint is a 404.
    const stranger = await signUp(env.app);
    expect((await stranger.agent.get(`/app/settings/webhooks/${id}`)).status).to.equal(404);
    const deleted = await account.agent.post(`/app/settings/webhooks/${id}/delete`).type('form').send({ _csrf: csrf });
    expect(deleted.status).to.equal(303);
    expect((await account.agent.get(`/app/settings/webhooks/${id}`)).status).to.equal(404);
  });
});

forEachTarget('outgoing webhooks: the SSRF guard', (target) => {
  let env: TestEnv;
  let hook: TestReceiver;
  let call: ApiCall;
  /** Resolves names ending in .example.test to loopback, as a hostile DNS record would. */
  const hostile: LookupFunction = (hostname, options, cb) => {
    const all = (options as { all?: boolean }).all;
    if (hostname.endsWith('.example.test')) {
      if (all) (cb as any)(null, [{ address: '127.0.0.1', family: 4 }]);
      else (cb as any)(null, '127.0.0.1', 4);
      return;
    }
    dns.lookup(hostname, options, cb as never);
  };

  before(async () => {
    hook = await startReceiver();
    // The default: private addresses refused (no PAYLINK_WEBHOOKS_ALLOW_PRIVATE), with a DNS we control.
    env = await build(target, { apiLimit: { points: 100_000, durationSec: 60 }, webhookSender: createSender({ allowPrivate: false, lookup: hostile }) });
    const a = await apiMerchant(env, 'Guarded');
    call = apiClient(env.app, a.secret);
  });
  after(async () => {
    await env?.close();
    await hook?.close();
  });

  it('refuses private and reserved addresses at connect time, including a name that resolves to 127.0.0.1 and IPv4-mapped IPv6', async () => {
    const send = createSender({ allowPrivate: false, lookup: hostile });
    const port = hook.port;
    const targets = [
      `http://127.0.0.1:${port}/`,
      `http://localhost:${port}/`,
      `http://[::1]:${port}/`,
      `http://[::ffff:127.0.0.1]:${port}/`,
      `http://[::ffff:7f00:1]:${port}/`,
      `http://hooks.example.test:${port}/`,
      'http://10.0.0.1/',
      'http://172.16.0.1/',
      'http://192.168.1.1/',
      'http://169.254.169.254/latest/meta-data/',
      'http://100.64.0.1/',
      'http://224.0.0.1/',
      'http://0.0.0.0/',
      'http://[fd00:ec2::254]/',
      'http://[fe80::1]/',
      'http://[ff02::1]/',
    ];
    for (const url of targets) {
      const r = await send({ url, id: 'msg_x', timestamp: 1, body: '{}', secrets: ['whsec_' + Buffer.alloc(32).toString('base64')] });
      expect(r.statusCode, url).to.equal(null);
      expect(r.error, url).to.match(/Refused|not allowed/);
    }
    expect(hook.received).to.have.length(0);
    // The same receiver is reachable when private addresses are allowed: the refusals were the guard.
    const open = createSender({ allowPrivate: true, lookup: hostile });
    expect((await open({ url: `http://hooks.example.test:${port}/`, id: 'msg_x', timestamp: 1, body: '{}', secrets: ['whsec_AAAA'] })).statusCode).to.equal(200);
    expect(hook.received).to.have.length(1);
  });

  it('an endpoint whose name resolves to loopback is refused when delivering, and the try is logged', async () => {
    hook.received.length = 0;
    const created = await call('post', '/webhook_endpoints', { url: `http://hooks.example.test:${hook.port}/x`, events: ['link.created'] });
    // http is allowed outside production; the name is not private as written.
    expect(created.status, created.text).to.equal(201);
    const me = await call('get', '/me');
    const merchant = await env.rt.services.merchants.get(me.body.id);
    await env.rt.services.links.create(merchant!, { type: 'amount', name: 'Sneaky', amount: 100 });
    await env.rt.jobs.drain();
    const [attempt] = (await call('get', `/webhook_endpoints/${created.body.id}/attempts`)).body.data;
    expect(attempt.status).to.equal('failed');
    expect(attempt.status_code).to.equal(null);
    expect(attempt.error).to.match(/Refused/);
    expect(hook.received).to.have.length(0);
  });

  it('refuses a private or reserved address when saved (422 by the field)', async () => {
    for (const url of ['http://127.0.0.1/x', 'http://localhost:8080/x', 'https://10.1.2.3/x', 'https://[::ffff:127.0.0.1]/x', 'https://169.254.169.254/', 'https://100.64.0.1/']) {
      const body = expectFieldErrors(await call('post', '/webhook_endpoints', { url }), ['url']);
      expect(body.errors[0].code, url).to.equal('private_address');
    }
  });
});

describe('outgoing webhooks in production', () => {
  let env: TestEnv;
  before(async () => {
    env = await build(TARGETS[0], { env: { NODE_ENV: 'production', SESSION_SECRET: 'x'.repeat(40) } });
  });
  after(() => env?.close());

  it('accept https only (http:// is 422 https_required), and private addresses stay refused', async () => {
    const a = await apiMerchant(env, 'Live Shop');
    const call = apiClient(env.app, a.secret);
    const plain = expectFieldErrors(await call('post', '/webhook_endpoints', { url: 'http://shop.example.com/hooks' }), ['url']);
    expect(plain.errors[0].code).to.equal('https_required');
    expect((await call('post', '/webhook_endpoints', { url: 'https://shop.example.com/hooks' })).status).to.equal(201);
    const loop = expectFieldErrors(await call('post', '/webhook_endpoints', { url: 'https://127.0.0.1/hooks' }), ['url']);
    expect(loop.errors[0].code).to.equal('private_address');
  });

  it('reads PAYLINK_WEBHOOKS_ALLOW_PRIVATE as 1 or 0, off by default', async () => {
    const { loadConfig } = await import('../src/config.ts');
    expect(loadConfig({}).webhooksAllowPrivate).to.equal(false);
    expect(loadConfig({ PAYLINK_WEBHOOKS_ALLOW_PRIVATE: '1' }).webhooksAllowPrivate).to.equal(true);
    expect(() => loadConfig({ PAYLINK_WEBHOOKS_ALLOW_PRIVATE: 'yes' })).to.throw(/PAYLINK_WEBHOOKS_ALLOW_PRIVATE/);
  });
});

describe('outgoing webhooks: nothing a receiver answers stalls the sender', () => {
  const servers: net.Server[] = [];
  after(() => servers.forEach((s) => s.close()));
  /** A raw TCP receiver that does `behave` with each connection. */
  async function raw(behave: (socket: net.Socket) => void): Promise<string> {
    const server = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => behave(socket));
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/`;
  }
  const request = (url: string) => ({ url, id: 'msg_x', timestamp: 1, body: '{}', secrets: ['whsec_' + Buffer.alloc(32, 1).toString('base64')] });

  it('a slow drip: the status counts, the body is cut off after its time', async () => {
    let closed = false;
    const url = await raw((socket) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\nab');
      const drip = setInterval(() => socket.write('c'), 20);
      socket.on('close', () => {
        closed = true;
        clearInterval(drip);
      });
    });
    const r = await createSender({ allowPrivate: true, bodyTimeMs: 200 })(request(url));
    expect(r.statusCode).to.equal(200);
    expect(r.response).to.match(/^abc*$/);
    await waitFor(() => closed, { message: 'the connection to be closed' });
  });

  it('no answer at all: a timeout, recorded as an error', async () => {
    const url = await raw(() => {});
    const r = await createSender({ allowPrivate: true, timeoutMs: 300 })(request(url));
    expect(r.statusCode).to.equal(null);
    expect(r.error).to.match(/No answer within/);
  });

  it('keeps the connection to a host between tries, and sends again at once when the host closed a kept one', async () => {
    // Answers each request with a 204 on a kept connection, except that the 3rd request to arrive on
    // connection 1 is answered with a reset (as a server closing an idle connection just then).
    let connections = 0;
    const seen: number[] = [];
    const server = net.createServer((socket) => {
      const n = ++connections;
      let onThis = 0;
      socket.on('error', () => {});
      socket.on('data', (chunk) => {
        for (const _ of String(chunk).match(/^POST /gm) ?? []) {
          onThis++;
          seen.push(n);
          if (n === 1 && onThis === 3) return socket.resetAndDestroy();
          socket.write('HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n');
        }
      });
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/`;
    const send = createSender({ allowPrivate: true });
    for (let i = 0; i < 2; i++) expect((await send(request(url))).statusCode).to.equal(204);
    expect(connections, 'two tries on one connection').to.equal(1);
    const third = await send(request(url));
    expect(third).to.include({ statusCode: 204, error: null });
    expect(seen).to.deep.equal([1, 1, 1, 2]);
  });

  it('garbage instead of HTTP: an error, not a crash', async () => {
    const url = await raw((socket) => socket.end('\x00\x01 not http at all\r\n\r\n'));
    const r = await createSender({ allowPrivate: true })(request(url));
    expect(r.statusCode).to.equal(null);
    expect(r.error).to.match(/HPE_|Parse Error/);
  });
});
