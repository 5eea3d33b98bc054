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

  /** A link sent to one new customer (with daily reminders) that tags its payer: the customer, the link and its URL. */
  async function linkFor(name: string) {
    const paid = await tag(call, `Paid ${n}`);
    const owner = await customer(name);
    const res = await call('post', '/links', {
      type: 'amount',
      name: 'Workshop',
      amount: 1500,
      currency: 'EUR',
      send: { customer_id: owner.id, channels: ['email'], reminders: { frequency: 'daily', max: 3 } },
      after_payment: { apply_customer_tag: paid },
    });
    expect(res.status, res.text).to.equal(201);
    await env.rt.jobs.drain();
    const link = await env.rt.services.links.get(shop.merchant, res.body.id);
    const ownerKey = (await env.rt.db('customers').where({ public_id: owner.id }).first()).id as number;
    return { owner, ownerKey, link, url: res.body.url as string, paid };
  }

  it('keeps the customer when they pay after a declined card: their reminders stop and their tags apply', async () => {
    const { owner: kim, ownerKey: kimKey, link } = await linkFor('Kim Retry');
    const u = new URL(await sentUrl(`kim${n}@example.test`));
    // Kim pays with another address than her record's: only her signed URL says the payment is hers.
    const post = await supertest(env.app).post(u.pathname + u.search).type('form').send({ name: 'Kim Retry', email: `kim.work${n}@example.test` });
    expect(post.status, post.text.slice(0, 300)).to.equal(303);
    const cardPage = new URL(post.headers.location).pathname;
    await supertest(env.app).post(cardPage).type('form').send({ card_number: '4000000000000002' }).expect(303);
    const ok = await supertest(env.app).post(cardPage).type('form').send({ card_number: '4242424242424242' });
    expect(ok.status).to.equal(303);
    await env.rt.jobs.drain();

    const attempts = await env.rt.db('payments').where({ link_id: link.key }).orderBy('id').select('status', 'customer_id');
    expect(attempts.map((a) => [a.status, a.customer_id])).to.deep.equal([['failed', kimKey], ['paid', kimKey]]);
    const plans = await env.rt.db('reminder_plans').where({ link_id: link.key, customer_id: kimKey }).select('state', 'stop_reason');
    expect(plans).to.deep.equal([{ state: 'stopped', stop_reason: 'paid' }]);
    expect(await tagNames(kim.id)).to.deep.equal([`Paid ${n}`]);
  });

  describe('who paid a link made for one customer', () => {
    const planState = async (linkKey: number, customerKey: number) => (await env.rt.db('reminder_plans').where({ link_id: linkKey, customer_id: customerKey }).first()).state;
    const paymentJson = async (paymentId: string) => (await call('get', `/payments/${paymentId}`).expect(200)).body as { customer: { id: string | null; name: string | null; email: string | null } | null };

    it('attributes the payment to the customer it was sent to through their signed URL', async () => {
      const { owner, ownerKey, link } = await linkFor('Tom Owner');
      const paymentId = await pay(await sentUrl(`tom${n}@example.test`), 'Tom Owner', `tom${n}@example.test`);
      await env.rt.jobs.drain();
      expect((await paymentJson(paymentId)).customer?.id).to.equal(owner.id);
      expect(await planState(link.key, ownerKey)).to.equal('stopped');
      expect(await tagNames(owner.id)).to.deep.equal([`Paid ${n}`]);
    });

    it('records someone else paying its public URL as themselves: an existing customer matched by email, case-insensitively', async () => {
      const { owner, ownerKey, link, url } = await linkFor('Tom Public');
      const larry = await customer('Larry Other');
      const paymentId = await pay(url, 'Larry O.', `LARRY${n}@Example.TEST`);
      await env.rt.jobs.drain();
      expect((await paymentJson(paymentId)).customer?.id).to.equal(larry.id);
      expect(await planState(link.key, ownerKey), "Tom's reminders go on").to.equal('active');
      expect(await tagNames(owner.id), 'Tom is not tagged').to.deep.equal([]);
    });

    it('creates a customer for a payer it does not know, and ignores a forged or altered ?c=', async () => {
      const { owner, ownerKey, link, url } = await linkFor('Tom Forged');
      const other = await customer('Olga Victim');
      const genuine = new URL(await sentUrl(`tom${n}@example.test`));
      const token = genuine.searchParams.get('c')!;
      const [id, sig] = token.split('.');
      const forged = [`${other.id}.${sig}`, `${id}.${sig.slice(0, -2)}xx`, `${other.id}`, 'garbage'];
      const before = Number((await env.rt.db('customers').where({ merchant_id: shop.merchant.key }).count({ n: '*' }))[0].n);
      const payer = `newbie${n}@example.test`;
      let paymentIds: string[] = [];
      for (const c of forged) {
        const page = await supertest(env.app).get(`${new URL(url).pathname}?c=${encodeURIComponent(c)}`);
        expect(page.status, c).to.equal(200);
        paymentIds.push(await pay(`${url}?c=${encodeURIComponent(c)}`, 'New Payer', payer));
      }
      await env.rt.jobs.drain();
      const created = (await env.rt.db('customers').where({ merchant_id: shop.merchant.key, email: payer })) as { public_id: string; name: string }[];
      expect(created.map((c) => c.name), 'one customer, created once and matched after').to.deep.equal(['New Payer']);
      for (const pid of paymentIds) expect((await paymentJson(pid)).customer?.id).to.equal(created[0].public_id);
      expect(Number((await env.rt.db('customers').where({ merchant_id: shop.merchant.key }).count({ n: '*' }))[0].n)).to.equal(before + 1);
      expect(await planState(link.key, ownerKey)).to.equal('active');
      expect(await tagNames(owner.id)).to.deep.equal([]);
      expect(await tagNames(other.id)).to.deep.equal([]);
      paymentIds = [];
    });
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
