/**
 * After-payment customer tags (action-customer-tags): a link sent to one customer applies one tag
 * and removes another when that customer pays — from the payment.succeeded event, once per payment
 * even when the event is dispatched again.
 */
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { apiClient, apiMerchant, expectProblem, type ApiCall, type ApiMerchant } from './support/api.ts';
import { build, type TestEnv } from './support/harness.ts';

interface CustomerJson {
  id: string;
  tags: { id: string; name: string }[];
}

forEachTarget('after-payment customer tags', (target) => {
  let env: TestEnv;
  let shop: ApiMerchant;
  let call: ApiCall;
  let callB: ApiCall;
  let n = 0;

  before(async () => {
    env = await build(target, { apiLimit: { points: 100_000, durationSec: 60 } });
    shop = await apiMerchant(env, 'Acme Yoga');
    call = apiClient(env.app, shop.secret);
    callB = apiClient(env.app, (await apiMerchant(env, 'Other Shop')).secret);
  });
  after(() => env?.close());
  beforeEach(() => (n += 1));

  const tag = async (c: ApiCall, name: string, kind = 'customer') => {
    const res = await c('post', '/tags', { name, kind });
    expect(res.status, res.text).to.equal(201);
    return res.body.id as string;
  };
  const customer = async (name: string, tags: string[] = []): Promise<CustomerJson> => {
    const res = await call('post', '/customers', { name, email: `${name.split(' ')[0].toLowerCase()}${n}@example.test`, tags });
    expect(res.status, res.text).to.equal(201);
    return res.body;
  };
  const tagNames = async (id: string) => ((await call('get', `/customers/${id}`).expect(200)).body as CustomerJson).tags.map((t) => t.name).sort();
  const count = async (table: string) => Number((await env.rt.db(table).count({ n: '*' }))[0].n);

  /** Opens the URL the customer was sent and pays it through the pay page and the sandbox. */
  async function pay(url: string, name: string, email: string): Promise<string> {
    const u = new URL(url);
    const post = await supertest(env.app).post(u.pathname + u.search).type('form').send({ name, email });
    expect(post.status, post.text.slice(0, 300)).to.equal(303);
    const pending = await env.rt.db('payments').where({ status: 'pending' }).orderBy('id', 'desc').first();
    const outcome = await env.rt.services.checkout.authorize(pending.public_id, `sbx_${pending.public_id}`);
    expect(outcome.status).to.equal('paid');
    return pending.public_id as string;
  }

  async function sentUrl(email: string): Promise<string> {
    const rows = (await env.rt.db('plugin_records').where({ plugin_id: 'channel-outbox' }).orderBy('id', 'desc')) as { data: string }[];
    const m = rows.map((r) => JSON.parse(r.data) as { to: string; text: string }).find((x) => x.to === email);
    return m!.text.match(/https?:\/\/\S+\?c=\S+/)![0];
  }

  it('applies one tag and removes another when the customer pays — once, even if the event is dispatched again', async () => {
    const paid = await tag(call, `Paid ${n}`);
    const owes = `Owes ${n}`;
    const jane = await customer('Jane Doe', [owes, `Yoga ${n}`]);
    const owesId = jane.tags.find((t) => t.name === owes)!.id;
    const res = await call('post', '/links', {
      type: 'amount',
      name: 'Membership',
      amount: 3900,
      currency: 'EUR',
      send: { customer_id: jane.id, channels: ['email'] },
      after_payment: { apply_customer_tag: paid, remove_customer_tag: owesId },
    });
    expect(res.status, res.text).to.equal(201);
    const link = await env.rt.services.links.get(shop.merchant, res.body.id);
    expect(await env.rt.services.actions.forLink(link.key)).to.deep.equal([{ actionId: 'customer-tags', settings: { apply: paid, remove: owesId } }]);
    await env.rt.jobs.drain();
    expect(await tagNames(jane.id), 'nothing changes before the payment').to.deep.equal([owes, `Yoga ${n}`].sort());

    const paymentId = await pay(await sentUrl(`jane${n}@example.test`), 'Jane Doe', `jane${n}@example.test`);
    await env.rt.jobs.drain();
    expect(await tagNames(jane.id)).to.deep.equal([`Paid ${n}`, `Yoga ${n}`].sort());

    // The event once more — a second dispatch and a second run of the subscriber — must not run the action again.
    const event = (await env.rt.db('events').where({ type: 'payment.succeeded' }).orderBy('id', 'desc').first()) as { public_id: string; payload: string };
    expect(JSON.parse(event.payload).paymentId).to.equal(paymentId);
    const actionJobs = () => env.rt.db('jobs').where({ kind: 'actions.run' }).andWhere('unique_key', 'like', `action:${event.public_id}:%`);
    expect(await actionJobs()).to.have.length(1);
    // The merchant puts "Owes" back by hand; a second run of the action would take it off again.
    await call('patch', `/customers/${jane.id}`, { tags: [owes, `Paid ${n}`, `Yoga ${n}`] }).expect(200);
    const hook = (await env.rt.db('jobs').where({ kind: 'hooks.run' }).andWhere('unique_key', 'like', `hook:${event.public_id}:%`)) as { payload: string }[];
    expect(hook.length).to.be.greaterThan(0);
    await env.rt.jobs.enqueue(env.rt.db, 'events.dispatch', { eventId: event.public_id });
    for (const h of hook) await env.rt.jobs.enqueue(env.rt.db, 'hooks.run', JSON.parse(h.payload));
    await env.rt.jobs.drain();
    expect(await actionJobs()).to.have.length(1);
    expect(await tagNames(jane.id)).to.deep.equal([owes, `Paid ${n}`, `Yoga ${n}`].sort());
    const failed = await env.rt.db('jobs').whereIn('kind', ['actions.run', 'hooks.run', 'events.dispatch']).whereNotIn('state', ['done', 'succeeded', 'completed']);
    expect(failed.map((j: { kind: string; state: string }) => [j.kind, j.state]), 'every job finished').to.deep.equal([]);
  });

  it('changes the tags of the customer the link was sent to, not of whoever else pays without ?c=', async () => {
    const paid = await tag(call, `Paid ${n}`);
    const ana = await customer('Ana López');
    const res = await call('post', '/links', {
      type: 'amount',
      name: 'Workshop',
      amount: 1500,
      currency: 'EUR',
      send: { customer_id: ana.id, channels: ['email'] },
      after_payment: { apply_customer_tag: paid },
    });
    expect(res.status, res.text).to.equal(201);
    await env.rt.jobs.drain();
    // Someone pays the plain link (no ?c=): the link was made for Ana, so the payment is hers.
    await pay(res.body.url, 'Someone Else', 'else@example.test');
    await env.rt.jobs.drain();
    expect(await tagNames(ana.id)).to.deep.equal([`Paid ${n}`]);
  });

  it('refuses after_payment without one customer, with unknown, link or foreign tags — and writes nothing', async () => {
    const paid = await tag(call, `Paid ${n}`);
    const linkTag = await tag(call, `Promo ${n}`, 'link');
    const foreign = await tag(callB, `Theirs ${n}`);
    const bo = await customer('Bo Berg', [`Group ${n}`]);
    const links = await count('links');
    const deliveries = await count('deliveries');
    const base = { type: 'amount', name: 'Class', amount: 1000, currency: 'EUR' };

    let body = expectProblem(await call('post', '/links', { ...base, after_payment: { apply_customer_tag: paid } }), 422, 'validation_failed');
    expect(body.errors.map((e) => [e.field, e.code])).to.deep.equal([['after_payment', 'needs_customer']]);

    for (const bad of ['tag_doesnotexist', linkTag, foreign]) {
      body = expectProblem(await call('post', '/links', { ...base, send: { customer_id: bo.id, channels: ['email'] }, after_payment: { apply_customer_tag: bad } }), 422, 'validation_failed');
      expect(body.errors.map((e) => [e.field, e.code]), bad).to.deep.equal([['after_payment.apply_customer_tag', 'unknown_tag']]);
      body = expectProblem(await call('post', '/links', { ...base, send: { customer_id: bo.id, channels: ['email'] }, after_payment: { remove_customer_tag: bad } }), 422, 'validation_failed');
      expect(body.errors.map((e) => [e.field, e.code]), bad).to.deep.equal([['after_payment.remove_customer_tag', 'unknown_tag']]);
    }

    body = expectProblem(await call('post', '/links', { ...base, send: { customer_id: bo.id, channels: ['email'] }, after_payment: { apply_customer_tag: paid, remove_customer_tag: paid } }), 422, 'validation_failed');
    expect(body.errors.map((e) => e.field)).to.deep.equal(['after_payment.remove_customer_tag']);

    const groupId = bo.tags[0].id;
    body = expectProblem(await call('post', '/links', { ...base, send: { customer_tag: groupId, channels: ['email'] }, after_payment: { apply_customer_tag: paid } }), 422, 'validation_failed');
    expect(body.errors.map((e) => [e.field, e.code])).to.deep.equal([['after_payment', 'needs_one_customer']]);

    expect(await count('links')).to.equal(links);
    expect(await count('deliveries')).to.equal(deliveries);

    // PATCH: a link not made for a customer cannot get after-payment tags.
    const plain = await call('post', '/links', base).expect(201);
    body = expectProblem(await call('patch', `/links/${plain.body.id}`, { after_payment: { apply_customer_tag: paid } }), 422, 'validation_failed');
    expect(body.errors.map((e) => [e.field, e.code])).to.deep.equal([['after_payment', 'needs_customer']]);
    const plainLink = await env.rt.services.links.get(shop.merchant, plain.body.id);
    expect(await env.rt.services.actions.forLink(plainLink.key)).to.deep.equal([]);
  });

  it('changes and clears after_payment on a link sent to one customer (PATCH)', async () => {
    const paid = await tag(call, `Paid ${n}`);
    const cy = await customer('Cy Change');
    const res = await call('post', '/links', { type: 'amount', name: 'Later', amount: 800, currency: 'EUR', send: { customer_id: cy.id, channels: ['email'] } }).expect(201);
    const link = await env.rt.services.links.get(shop.merchant, res.body.id);
    await call('patch', `/links/${res.body.id}`, { after_payment: { apply_customer_tag: paid } }).expect(200);
    expect(await env.rt.services.actions.forLink(link.key)).to.deep.equal([{ actionId: 'customer-tags', settings: { apply: paid, remove: null } }]);
    await call('patch', `/links/${res.body.id}`, { after_payment: null }).expect(200);
    expect(await env.rt.services.actions.forLink(link.key)).to.deep.equal([]);
  });
});
