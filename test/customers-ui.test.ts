// The dashboard's customers: list, live search, tag filter, pages; add, edit, delete through the
// forms (CSRF), phone numbers stored in E.164 with a message by the field when invalid, and the
// customer page with the channels each customer can be reached on.
import { expect } from 'chai';
import { forEachTarget } from './support/targets.ts';
import { build, csrfFrom, fieldError, signUp, type Account, type TestEnv } from './support/harness.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';

forEachTarget('dashboard: customers', (target) => {
  let env: TestEnv;
  before(async () => {
    env = await build(target);
  });
  after(() => env?.close());

  const merchantOf = async (acct: Account): Promise<Merchant> => (await env.rt.services.merchants.getByHandle(acct.handle))!;
  const rows = async (acct: Account) => env.rt.db('customers').where({ merchant_id: (await merchantOf(acct)).key }).whereNull('deleted_at').orderBy('id');
  const post = (acct: Account, url: string, fields: Record<string, unknown>) => acct.agent.post(url).type('form').send({ _csrf: acct.csrf, ...fields });
  const add = async (acct: Account, fields: Record<string, unknown>) => env.rt.services.customers.create((await merchantOf(acct)).key, fields);

  it('shows an empty list that offers to add or import customers', async () => {
    const acct = await signUp(env.app);
    const res = await acct.agent.get('/app/customers').expect(200);
    expect(res.text).to.include('No customers yet');
    expect(res.text).to.include('href="/app/customers/new"');
    expect(res.text).to.include('href="/app/customers/import"');
    expect(res.text).not.to.include('id="customer-filters"');
  });

  it('adds a customer through the form: phone stored in E.164, tags created, shown formatted', async () => {
    const acct = await signUp(env.app);
    const form = await acct.agent.get('/app/customers/new').expect(200);
    expect(form.text).to.include('name="country"');
    const res = await post(acct, '/app/customers', {
      name: 'Jane Doe',
      email: 'Jane@Example.com',
      phone: '06 12345678',
      country: 'NL',
      address: 'Damrak 1\nAmsterdam',
      new_tags: 'VIP, Newsletter',
    }).expect(303);
    const [row] = await rows(acct);
    expect(row).to.include({ name: 'Jane Doe', email: 'jane@example.com', phone: '+31612345678', address: 'Damrak 1\nAmsterdam' });
    expect(res.headers.location).to.equal(`/app/customers/${row.public_id}`);
    const page = await acct.agent.get(res.headers.location).expect(200);
    expect(page.text).to.include('Customer “Jane Doe” added.');
    expect(page.text).to.include('+31 6 12345678');
    const customerTags = await env.rt.services.tags.list((await merchantOf(acct)).key, 'customer');
    expect(customerTags.map((t) => t.name)).to.deep.equal(['Newsletter', 'VIP']);
    const list = await acct.agent.get('/app/customers').expect(200);
    expect(list.text).to.include('jane@example.com');
    expect(list.text).to.include('+31 6 12345678');
    expect(list.text).to.match(/class="tag-chip">.*VIP/);
  });

  it('refuses an invalid phone with 422 and the message by the phone field, and adds nothing', async () => {
    const acct = await signUp(env.app);
    const res = await post(acct, '/app/customers', { name: 'Bad Phone', email: 'bad@example.com', phone: '+31 6 123' }).expect(422);
    expect(fieldError(res.text, 'phone')).not.to.equal('');
    expect(fieldError(res.text, 'name')).to.equal('');
    expect(res.text).to.match(/id="f-phone"[^>]*aria-invalid="true"/);
    // What was typed comes back.
    expect(res.text).to.include('value="Bad Phone"');
    expect(res.text).to.include('value="+31 6 123"');
    expect(await rows(acct)).to.have.length(0);
  });

  it('refuses a number without + and without a country, by the phone field', async () => {
    const acct = await signUp(env.app);
    const res = await post(acct, '/app/customers', { name: 'No Country', phone: '0612345678', country: '' }).expect(422);
    expect(fieldError(res.text, 'phone')).not.to.equal('');
    expect(await rows(acct)).to.have.length(0);
  });

  for (const [field, label, fields] of [
    ['name', 'no name', { name: '   ' }],
    ['name', 'a line break in the name', { name: 'Jane\r\nBcc: x@example.com' }],
    ['name', 'an over-long name', { name: 'x'.repeat(121) }],
    ['email', 'a malformed email', { email: 'jane@' }],
    ['country', 'an unknown country', { phone: '612345678', country: 'XX' }],
    ['tags', 'a tag name that is too long', { new_tags: 't'.repeat(61) }],
  ] as [string, string, Record<string, unknown>][]) {
    it(`refuses ${label} with 422 by the ${field} field`, async () => {
      const acct = await signUp(env.app);
      const res = await post(acct, '/app/customers', { name: 'Jane', ...fields }).expect(422);
      expect(fieldError(res.text, field)).not.to.equal('');
      expect(await rows(acct)).to.have.length(0);
      expect(await env.rt.services.tags.list((await merchantOf(acct)).key, 'customer')).to.have.length(0);
    });
  }

  it('edits a customer; clearing the phone works; a bad edit changes nothing', async () => {
    const acct = await signUp(env.app);
    const c = await add(acct, { name: 'Sam', email: 'sam@example.com', phone: '+14155552671', tags: ['Gold'] });
    const form = await acct.agent.get(`/app/customers/${c.id}/edit`).expect(200);
    expect(form.text).to.include('value="Sam"');
    expect(form.text).to.include('value="+1 415 555 2671"');
    expect(form.text).to.match(/name="tags" value="Gold" checked/);
    // The formatted number goes back unchanged.
    await post(acct, `/app/customers/${c.id}`, { name: 'Samuel', email: 'sam@example.com', phone: '+1 415 555 2671', address: '', tags: 'Gold', new_tags: 'Silver' }).expect(303);
    let saved = await env.rt.services.customers.get((await merchantOf(acct)).key, c.id);
    expect(saved).to.include({ name: 'Samuel', phone: '+14155552671' });
    expect(saved.tags.map((t) => t.name)).to.deep.equal(['Gold', 'Silver']);
    const bad = await post(acct, `/app/customers/${c.id}`, { name: 'Samuel', email: 'sam@example.com', phone: '12', tags: 'Gold' }).expect(422);
    expect(fieldError(bad.text, 'phone')).not.to.equal('');
    expect(await env.rt.services.customers.get((await merchantOf(acct)).key, c.id)).to.deep.equal(saved);
    await post(acct, `/app/customers/${c.id}`, { name: 'Samuel', email: '', phone: '', address: '' }).expect(303);
    saved = await env.rt.services.customers.get((await merchantOf(acct)).key, c.id);
    expect(saved).to.include({ email: null, phone: null, address: null });
    expect(saved.tags).to.have.length(0);
  });

  it('deletes a customer after a confirmation page', async () => {
    const acct = await signUp(env.app);
    const c = await add(acct, { name: 'Gone Soon' });
    const confirm = await acct.agent.get(`/app/customers/${c.id}/delete`).expect(200);
    expect(confirm.text).to.include('Delete “Gone Soon”?');
    const res = await post(acct, `/app/customers/${c.id}/delete`, { _csrf: csrfFrom(confirm.text) }).expect(303);
    expect(res.headers.location).to.equal('/app/customers');
    expect(await rows(acct)).to.have.length(0);
    await acct.agent.get(`/app/customers/${c.id}`).expect(404);
  });

  it('refuses a form without the CSRF token', async () => {
    const acct = await signUp(env.app);
    await acct.agent.post('/app/customers').type('form').send({ name: 'No token' }).expect(403);
    expect(await rows(acct)).to.have.length(0);
  });

  it("answers 404 for another merchant's customer, on every page and form", async () => {
    const owner = await signUp(env.app);
    const other = await signUp(env.app);
    const c = await add(owner, { name: 'Private', email: 'private@example.com' });
    for (const url of [`/app/customers/${c.id}`, `/app/customers/${c.id}/edit`, `/app/customers/${c.id}/delete`]) await other.agent.get(url).expect(404);
    await post(other, `/app/customers/${c.id}`, { name: 'Hijacked' }).expect(404);
    await post(other, `/app/customers/${c.id}/delete`, {}).expect(404);
    const list = await other.agent.get('/app/customers?q=private').expect(200);
    expect(list.text).not.to.include('private@example.com');
    expect((await env.rt.services.customers.get((await merchantOf(owner)).key, c.id)).name).to.equal('Private');
  });

  it('searches by name, email or phone and filters by tag; htmx gets the results and the address', async () => {
    const acct = await signUp(env.app);
    await add(acct, { name: 'Alice Anders', email: 'alice@example.com', tags: ['VIP'] });
    await add(acct, { name: 'Bob Brown', email: 'bob@shop.test', phone: '+31612345678' });
    await add(acct, { name: 'Carol 100%', email: 'carol@example.com', tags: ['VIP', 'Late'] });
    const names = (html: string) => [...html.matchAll(/<a href="\/app\/customers\/cus_[^"]+">([^<]+)<\/a>/g)].map((m) => m[1]);

    expect(names((await acct.agent.get('/app/customers').expect(200)).text)).to.deep.equal(['Carol 100%', 'Bob Brown', 'Alice Anders']);
    expect(names((await acct.agent.get('/app/customers?q=ALICE').expect(200)).text)).to.deep.equal(['Alice Anders']);
    expect(names((await acct.agent.get('/app/customers?q=shop.test').expect(200)).text)).to.deep.equal(['Bob Brown']);
    expect(names((await acct.agent.get('/app/customers?q=06%2012345').expect(200)).text)).to.deep.equal(['Bob Brown']);
    expect(names((await acct.agent.get('/app/customers?q=100%25').expect(200)).text)).to.deep.equal(['Carol 100%']);
    expect(names((await acct.agent.get('/app/customers?tag=vip').expect(200)).text)).to.deep.equal(['Carol 100%', 'Alice Anders']);
    expect(names((await acct.agent.get('/app/customers?tag=VIP&q=alice').expect(200)).text)).to.deep.equal(['Alice Anders']);
    const none = await acct.agent.get('/app/customers?q=nobody').expect(200);
    expect(none.text).to.include('No customers match');

    const live = await acct.agent.get('/app/customers?q=bob&tag=').set('HX-Request', 'true').expect(200);
    expect(live.text).to.match(/^<div id="customer-results"/);
    expect(live.text).not.to.include('<html');
    expect(live.headers['hx-push-url']).to.equal('/app/customers?q=bob');
    expect(names(live.text)).to.deep.equal(['Bob Brown']);
  });

  it('pages the list 25 at a time, newest first', async () => {
    const acct = await signUp(env.app);
    const key = (await merchantOf(acct)).key;
    for (let i = 1; i <= 27; i++) await env.rt.services.customers.create(key, { name: `Customer ${String(i).padStart(2, '0')}` });
    const first = await acct.agent.get('/app/customers').expect(200);
    expect(first.text).to.include('Customer 27');
    expect(first.text).to.include('Customer 03');
    expect(first.text).not.to.include('Customer 02');
    expect(first.text).to.include('href="/app/customers?page=2"');
    const second = await acct.agent.get('/app/customers?page=2').expect(200);
    expect(second.text).to.include('Customer 02');
    expect(second.text).to.include('Customer 01');
    expect(second.text).not.to.include('Customer 03');
    expect(second.text).not.to.include('rel="next"');
    expect(second.text).to.include('href="/app/customers"');
  });

  it('shows each channel on the customer page, with the reason when it cannot be used', async () => {
    const acct = await signUp(env.app);
    const emailOnly = await add(acct, { name: 'Mail Only', email: 'mail@example.com' });
    const phoneOnly = await add(acct, { name: 'Phone Only', phone: '+447911123456' });
    const channel = (html: string, id: string) => new RegExp(`<div id="channel-${id}">[\\s\\S]*?</div>`).exec(html)![0];

    const a = (await acct.agent.get(`/app/customers/${emailOnly.id}`).expect(200)).text;
    expect(channel(a, 'email')).to.include('Available').and.not.include('Unavailable');
    expect(channel(a, 'sms')).to.include('Unavailable').and.include('No phone number');
    expect(channel(a, 'whatsapp')).to.include('No phone number');

    const b = (await acct.agent.get(`/app/customers/${phoneOnly.id}`).expect(200)).text;
    expect(channel(b, 'email')).to.include('No email address');
    expect(channel(b, 'sms')).to.include('Available').and.not.include('Unavailable');
    expect(b).to.include('+44 7911 123456');
  });

  describe('Text-to-Pay from a customer page', () => {
    const sendPost = (acct: Account, id: string, fields: Record<string, unknown>) => acct.agent.post(`/app/customers/${id}/text-to-pay`).type('form').send({ _csrf: acct.csrf, ...fields });
    const linksOf = async (acct: Account) => env.rt.db('links').where({ merchant_id: (await merchantOf(acct)).key });
    const deliveriesOf = async (acct: Account) => env.rt.db('deliveries').where({ merchant_id: (await merchantOf(acct)).key });

    it('sends an amount by SMS in one step: a one-off link for the customer, a delivery on their page', async () => {
      const acct = await signUp(env.app);
      const c = await add(acct, { name: 'Jane Doe', phone: '+31612345678' });
      const page = await acct.agent.get(`/app/customers/${c.id}`).expect(200);
      expect(page.text).to.include(`action="/app/customers/${c.id}/text-to-pay"`);
      expect(page.text).to.include('No messages yet');
      const res = await sendPost(acct, c.id, { amount: '12.50', description: 'Invoice 1042' }).expect(303);
      expect(res.headers.location).to.equal(`/app/customers/${c.id}`);
      const [link] = await linksOf(acct);
      expect(link).to.include({ kind: 'request', currency: 'EUR', customer_id: c.key });
      expect(Number(link.amount)).to.equal(1250);
      expect(Number(link.payment_limit)).to.equal(1);
      const [delivery] = await deliveriesOf(acct);
      expect(delivery).to.include({ channel: 'sms', kind: 'initial', to_address: '+31612345678', customer_id: c.key, link_id: link.id });
      const after = await acct.agent.get(`/app/customers/${c.id}`).expect(200);
      expect(after.text).to.include('Payment request for €12.50 kept in the Outbox (no SMS provider configured): nothing went to +31 6 12345678');
      expect(after.text).to.include(`id="delivery-${delivery.public_id}"`);
      expect(after.text).to.include(`href="/app/links/${link.public_id}"`);
      expect(after.text).to.match(/<span class="badge">SMS<\/span>/);
      expect(after.text).not.to.include('No messages yet');
    });

    for (const [label, fields, field] of [
      ['no amount', { amount: '' }, 'amount'],
      ['a zero amount', { amount: '0' }, 'amount'],
      ['words for an amount', { amount: 'ten' }, 'amount'],
      ['too many decimals', { amount: '12.505' }, 'amount'],
      ['a line break in the description', { amount: '5', description: 'line\r\nbreak' }, 'description'],
      ['an over-long description', { amount: '5', description: 'x'.repeat(121) }, 'description'],
    ] as [string, Record<string, unknown>, string][]) {
      it(`refuses ${label} with 422 by the ${field} field and sends nothing`, async () => {
        const acct = await signUp(env.app);
        const c = await add(acct, { name: 'Jane', phone: '+31612345678' });
        const res = await sendPost(acct, c.id, fields).expect(422);
        expect(fieldError(res.text, field)).not.to.equal('');
        expect(res.text).to.include('Nothing was sent');
        expect(await linksOf(acct)).to.have.length(0);
        expect(await deliveriesOf(acct)).to.have.length(0);
      });
    }

    it('refuses a customer without a phone number (422), and the page says why it is unavailable', async () => {
      const acct = await signUp(env.app);
      const c = await add(acct, { name: 'Mail Only', email: 'mail@example.com' });
      const page = await acct.agent.get(`/app/customers/${c.id}`).expect(200);
      expect(page.text).not.to.include(`action="/app/customers/${c.id}/text-to-pay"`);
      expect(page.text).to.match(/id="text-to-pay"[\s\S]*No phone number/);
      const res = await sendPost(acct, c.id, { amount: '12.50' }).expect(422);
      expect(res.text).to.match(/id="text-to-pay"[\s\S]*No phone number/);
      expect(await linksOf(acct)).to.have.length(0);
      expect(await deliveriesOf(acct)).to.have.length(0);
    });

    it("answers 404 for another merchant's customer and sends nothing", async () => {
      const owner = await signUp(env.app);
      const other = await signUp(env.app);
      const c = await add(owner, { name: 'Private', phone: '+31612345678' });
      await sendPost(other, c.id, { amount: '5' }).expect(404);
      expect(await linksOf(owner)).to.have.length(0);
      expect(await deliveriesOf(owner)).to.have.length(0);
    });
  });
});
