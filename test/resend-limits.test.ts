// Resend caps (issue 14 item 12): a probe resent one message 293 times in a minute. Now a message
// can be sent again at most 3 times an hour (however the copies are chained) and a customer at most
// 10 times an hour; past that the API answers 429 problem+json with Retry-After and the dashboard's
// Resend button shows the same message.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { forEachTarget } from './support/targets.ts';
import { signUp, useEnv, type Account } from './support/harness.ts';
import { apiClient, expectProblem, type ApiCall } from './support/api.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';
import type { Customer } from '../src/features/customers/service.ts';
import type { Link } from '../src/features/links/service.ts';

const CARD = { 'HX-Request': 'true', 'HX-Target': 'link-deliveries' };

forEachTarget('resend limits', (target) => {
  // The defaults: 3 per message, 10 per customer, an hour each.
  const env = useEnv(target, { apiLimit: { points: 100_000, durationSec: 60 } });
  let acct: Account;
  let shop: Merchant;
  let call: ApiCall;
  let server: http.Server;
  let n = 0;

  before(async () => {
    acct = await signUp(env.app);
    shop = (await env.rt.services.merchants.getByHandle(acct.handle))!;
    const { secret } = await env.rt.services.apiKeys.create(shop, { name: 'resend test' });
    server = http.createServer(env.app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    call = apiClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, secret);
  });
  after(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  const customer = (name: string) => env.rt.services.customers.create(shop.key, { name, email: `${name.toLowerCase().replace(/\W+/g, '.')}.${++n}@example.test` });
  /** A link sent to `who` by email, the message gone out: its delivery's public id. */
  const sentTo = async (who: Customer): Promise<{ link: Link; delivery: string }> => {
    const link = await env.rt.services.links.create(shop, { type: 'amount', name: `Class pass ${++n}`, amount: 3900 });
    await env.rt.services.sending.send(shop, link, { customer_id: who.id, channels: ['email'] });
    await env.rt.jobs.drain();
    const row = await env.rt.db('deliveries').where({ link_id: link.key }).first();
    return { link, delivery: row.public_id };
  };
  const countFor = async (link: Link) => Number((await env.rt.db('deliveries').where({ link_id: link.key }).count({ n: '*' }))[0].n);

  it('API: 40 parallel resends of one message: 3 are queued, 37 get 429 problem+json with Retry-After', async () => {
    const { link, delivery } = await sentTo(await customer('Ada Lovelace'));
    const results = await Promise.all(Array.from({ length: 40 }, () => call('post', `/deliveries/${delivery}/resend`)));
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 201), statuses.join(',')).to.have.length(3);
    expect(statuses.filter((s) => s === 429), statuses.join(',')).to.have.length(37);
    const refused = results.find((r) => r.status === 429)!;
    const body = expectProblem(refused, 429, 'rate_limited') as unknown as { title: string };
    expect(body.title).to.match(/^Resent too often: a message can be sent again at most 3 times an hour\. You can resend this one in \d+ minutes?\.$/);
    expect(Number(refused.headers['retry-after'])).to.be.within(1, 3600);
    expect(await countFor(link)).to.equal(4);
  });

  it('API: resending one of the copies counts against the same message', async () => {
    const { link, delivery } = await sentTo(await customer('Grace Hopper'));
    await call('post', `/deliveries/${delivery}/resend`).expect(201);
    await env.rt.jobs.drain();
    const copies = (await env.rt.db('deliveries').where({ link_id: link.key }).orderBy('id')).map((d: { public_id: string }) => d.public_id);
    await call('post', `/deliveries/${copies[1]}/resend`).expect(201);
    await env.rt.jobs.drain();
    await call('post', `/deliveries/${copies[1]}/resend`).expect(201);
    await env.rt.jobs.drain();
    expectProblem(await call('post', `/deliveries/${copies[1]}/resend`), 429, 'rate_limited');
    expectProblem(await call('post', `/deliveries/${delivery}/resend`), 429, 'rate_limited');
    expect(await countFor(link)).to.equal(4);
  });

  it('API: a message still waiting (422) does not use up a resend', async () => {
    const { link, delivery } = await sentTo(await customer('Alan Turing'));
    const copy = (await call('post', `/deliveries/${delivery}/resend`).expect(201)).body.id as string;
    for (let i = 0; i < 5; i++) expectProblem(await call('post', `/deliveries/${copy}/resend`), 422, 'validation_failed');
    await env.rt.jobs.drain();
    await call('post', `/deliveries/${copy}/resend`).expect(201);
    await env.rt.jobs.drain();
    await call('post', `/deliveries/${copy}/resend`).expect(201);
    expect(await countFor(link)).to.equal(4);
  });

  it('API: a customer gets at most 10 resends an hour across messages; another customer is not affected', async () => {
    const kay = await customer('Kay Parallel');
    const sent = [await sentTo(kay), await sentTo(kay), await sentTo(kay), await sentTo(kay)];
    // 4 messages × 3 would be 12: in parallel, still no more than 10 reach the queue.
    const results = await Promise.all(sent.flatMap((s) => Array.from({ length: 3 }, () => call('post', `/deliveries/${s.delivery}/resend`))));
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 201), statuses.join(',')).to.have.length(10);
    const refused = results.filter((r) => r.status === 429);
    expect(refused).to.have.length(2);
    for (const r of refused) {
      const body = expectProblem(r, 429, 'rate_limited') as unknown as { title: string };
      expect(body.title).to.match(/^Resent too often: Kay Parallel can be sent at most 10 messages again an hour\. You can resend to them in \d+ minutes?\.$/);
      expect(r.headers['retry-after']).to.match(/^\d+$/);
    }
    let total = 0;
    for (const s of sent) total += await countFor(s.link);
    expect(total).to.equal(4 + 10);
    const other = await sentTo(await customer('Lin Other'));
    await call('post', `/deliveries/${other.delivery}/resend`).expect(201);
  });

  it('dashboard: the Resend button shows the same message on the card (429), and as a flash without htmx', async () => {
    const { link, delivery } = await sentTo(await customer('Mary Jackson'));
    for (let i = 0; i < 3; i++) {
      const ok = await acct.agent.post(`/app/deliveries/${delivery}/resend`).set(CARD).type('form').send({ _csrf: acct.csrf }).expect(200);
      expect(ok.text).to.include('Sending again to Mary Jackson');
    }
    const res = await acct.agent.post(`/app/deliveries/${delivery}/resend`).set(CARD).type('form').send({ _csrf: acct.csrf }).expect(429);
    expect(res.text).to.match(/^\s*<section id="link-deliveries"/);
    expect(res.text).to.match(/<p class="flash flash-error" role="alert">Resent too often: a message can be sent again at most 3 times an hour\. You can resend this one in \d+ minutes?\.<\/p>/);
    expect(res.headers['retry-after']).to.match(/^\d+$/);

    const plain = await acct.agent.post(`/app/deliveries/${delivery}/resend`).type('form').send({ _csrf: acct.csrf }).expect(303);
    expect(plain.headers.location).to.equal(`/app/links/${link.id}`);
    const page = await acct.agent.get(plain.headers.location).expect(200);
    expect(page.text).to.include('Resent too often: a message can be sent again at most 3 times an hour.');
    expect(await countFor(link)).to.equal(4);
  });
});
