import { expect } from 'chai';
import { outboxMessages } from './support/channels.ts';
import supertest from 'supertest';
import { forEachTarget, TARGETS } from './support/targets.ts';
import { build, csrfFrom, fieldError, signUp, uniqueHandle, type Account, type TestEnv } from './support/harness.ts';
import { serve, signUpInBrowser, useBrowser, type ServedEnv } from './support/browser.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';

const LINK_ID = /\/app\/links\/(lnk_[0-9A-Za-z]+)/;


forEachTarget('link form: send at creation, after-payment customer tags', (target) => {
  let env: TestEnv;
  before(async () => {
    env = await build(target);
  });
  after(() => env?.close());

  const merchantOf = async (acct: Account): Promise<Merchant> => (await env.rt.services.merchants.getByHandle(acct.handle))!;
  const linkCount = async (m: Merchant) => Number((await env.rt.db('links').where({ merchant_id: m.key }).count({ n: '*' }))[0].n);

  const postLink = (acct: Account, fields: Record<string, unknown>) =>
    acct.agent
      .post('/app/links')
      .type('form')
      .send({ _csrf: acct.csrf, type: 'amount', currency: 'EUR', limit: 'unlimited', redirect_target: 'same', active: 'on', ...fields });

  const htmx = (req: supertest.Test) => req.set('HX-Request', 'true');

  async function shop() {
    const acct = await signUp(env.app, { name: 'Acme Yoga' });
    const m = await merchantOf(acct);
    const customers = env.rt.services.customers;
    const jane = await customers.create(m.key, { name: 'Jane Doe', email: 'jane@example.test', phone: '+31 6 12345678' });
    const noPhone = await customers.create(m.key, { name: 'Max Mail', email: 'max@example.test' });
    return { acct, m, jane, noPhone };
  }

  it('creates the link and sends it by email and SMS with reminders, in one submit', async () => {
    const { acct, m, jane } = await shop();
    const res = await postLink(acct, { name: 'Spring membership', amount: '39.00', customer_id: jane.id, channels: ['email', 'sms'], reminders: 'on', reminder_frequency: 'every_2_days', reminder_max: '5' }).expect(303);
    const linkId = LINK_ID.exec(res.headers.location)![1];
    const link = await env.rt.services.links.get(m, linkId);
    expect(link.customerKey).to.equal(jane.key);
    const { data: items } = await env.rt.services.deliveries.listForLink(link.key, { limit: 10 });
    expect(items.map((d) => `${d.kind}:${d.channel}`).sort()).to.deep.equal(['initial:email', 'initial:sms']);
    const plans = await env.rt.services.reminders.forLink(link.key);
    expect(plans).to.have.length(1);
    expect(plans[0]).to.include({ frequency: 'every_2_days', max: 5, state: 'active' });

    await env.rt.jobs.drain();
    const mine = (await outboxMessages(env)).filter((msg) => msg.text.includes('Spring membership'));
    expect(mine.map((msg) => `${msg.channel}:${msg.to}`).sort()).to.deep.equal(['email:jane@example.test', 'sms:+31612345678']);
    expect(mine.find((msg) => msg.channel === 'sms')!.text).to.match(/^Hi Jane, your Acme Yoga payment link for Spring membership \(€39\.00\): http/);
    const page = await acct.agent.get(res.headers.location).expect(200);
    expect(page.text).to.include('created and sent by Email and SMS');
  });

  it('refuses SMS to a customer without a phone number by the channels field, and creates no link', async () => {
    const { acct, m, noPhone } = await shop();
    const res = await postLink(acct, { name: 'Workshop', amount: '15', customer_id: noPhone.id, channels: ['email', 'sms'], reminders: 'on', reminder_frequency: 'weekly', reminder_max: '3' }).expect(422);
    expect(fieldError(res.text, 'channels')).to.not.equal('');
    expect(await linkCount(m)).to.equal(0);
    // Everything typed comes back, the customer still chosen, and SMS shown as unavailable for them.
    expect(res.text).to.include('value="Workshop"');
    expect(res.text).to.match(new RegExp(`<option value="${noPhone.id}" selected>`));
    expect(res.text).to.match(/id="f-channel-sms" name="channels" value="sms" disabled>/);
    expect(res.text).to.include('No phone number');
  });

  it('reports the send’s mistakes together with the link’s, and keeps the reminder values', async () => {
    const { acct, m, jane } = await shop();
    const res = await postLink(acct, { name: '', amount: 'abc', customer_id: jane.id, channels: ['email'], reminders: 'on', reminder_frequency: 'daily', reminder_max: '99' }).expect(422);
    expect(fieldError(res.text, 'name')).to.not.equal('');
    expect(fieldError(res.text, 'amount')).to.not.equal('');
    expect(fieldError(res.text, 'reminder_max')).to.not.equal('');
    expect(res.text).to.include('name="reminder_max" type="number" min="1" max="50" step="1" inputmode="numeric" value="99"');
    expect(await linkCount(m)).to.equal(0);
  });

  it('needs a customer for reminders, and another merchant’s customer is unknown', async () => {
    const { acct, m } = await shop();
    const noCustomer = await postLink(acct, { name: 'A', amount: '5', reminders: 'on' }).expect(422);
    expect(fieldError(noCustomer.text, 'reminders')).to.not.equal('');
    const other = await shop();
    const foreign = await postLink(acct, { name: 'B', amount: '5', customer_id: other.jane.id, channels: ['email'] }).expect(422);
    expect(fieldError(foreign.text, 'customer_id')).to.not.equal('');
    const none = await postLink(acct, { name: 'C', amount: '5', customer_id: (await env.rt.services.customers.create(m.key, { name: 'Zed' })).id }).expect(422);
    expect(fieldError(none.text, 'channels')).to.not.equal('');
    expect(await linkCount(m)).to.equal(0);
  });

  it('re-renders the send options for the chosen customer: channels with reasons, reminders only with a channel', async () => {
    const { acct, noPhone, jane } = await shop();
    const none = await htmx(acct.agent.get('/app/links/send-options')).expect(200);
    expect(none.text).to.match(/^<fieldset id="send"/);
    expect(none.text).to.match(/id="f-reminders" name="reminders" disabled/);
    expect(none.text, 'the after-payment actions live in their own section').to.not.include('id="after-payment"');
    // Picking a customer checks the first channel that reaches them and allows reminders.
    const picked = await htmx(acct.agent.get(`/app/links/send-options?customer_id=${noPhone.id}&send_for=`)).expect(200);
    expect(picked.text).to.match(/id="f-channel-email" name="channels" value="email" checked>/);
    expect(picked.text).to.match(/id="f-channel-sms" name="channels" value="sms" disabled>/);
    expect(picked.text).to.match(/id="f-channel-whatsapp" name="channels" value="whatsapp" disabled>/);
    expect(picked.text).to.include('No phone number');
    expect(picked.text).to.match(/id="f-reminders" name="reminders" aria-describedby/);
    // Unticking every channel disables reminders again.
    const unticked = await htmx(acct.agent.get(`/app/links/send-options?customer_id=${jane.id}&send_for=${jane.id}`)).expect(200);
    expect(unticked.text).to.match(/id="f-reminders" name="reminders" disabled/);
    // A plain GET has no form to refresh.
    await acct.agent.get('/app/links/send-options').expect(303);
    // Without JavaScript, "Update choices" posts the form back: the customer's channels, nothing created.
    const refreshed = await postLink(acct, { name: 'Later', amount: '5', customer_id: noPhone.id, send_for: '', refresh: 'send' }).expect(200);
    expect(refreshed.text).to.match(/id="f-channel-email" name="channels" value="email" checked>/);
    expect(refreshed.text).to.include('value="Later"');
  });

  it('offers a search box when the merchant has more customers than the list shows', async () => {
    const { acct, m } = await shop();
    const form = await acct.agent.get('/app/links/new?type=amount').expect(200);
    expect(form.text).to.not.include('id="f-customer_q"');
    for (let i = 0; i < 101; i++) await env.rt.services.customers.create(m.key, { name: `Member ${String(i).padStart(3, '0')}` });
    const many = await acct.agent.get('/app/links/new?type=amount').expect(200);
    expect(many.text).to.include('id="f-customer_q"');
    const found = await htmx(acct.agent.get('/app/links/send-options?customer_q=Member%20042')).expect(200);
    expect(found.text).to.include('Member 042');
    expect(found.text).to.not.include('Member 041');
  });

  describe('after-payment customer tags', () => {
    it('lists the customer’s current tags plus the one being applied, or says there are none to remove', async () => {
      const { acct, m, jane, noPhone } = await shop();
      const { tags, customers } = env.rt.services;
      const owes = await tags.create(m.key, { kind: 'customer', name: 'Owes membership' });
      const paid = await tags.create(m.key, { kind: 'customer', name: 'Paid 2026' });
      await tags.create(m.key, { kind: 'customer', name: 'VIP' });
      await customers.applyTag(m.key, jane.id, owes.id);

      const withTags = await htmx(acct.agent.get(`/app/links/after-payment?customer_id=${jane.id}&actions=customer-tags&action.customer-tags.apply=${paid.id}`)).expect(200);
      expect(withTags.text).to.match(/^<div id="after-payment"/);
      expect(withTags.text).to.match(/id="f-action-customer-tags" name="actions" value="customer-tags" checked aria-describedby/);
      const removeList = withTags.text.slice(withTags.text.indexOf('name="action.customer-tags.remove"'));
      expect(removeList).to.include('Owes membership').and.include('Paid 2026').and.not.include('VIP');

      const bare = await htmx(acct.agent.get(`/app/links/after-payment?customer_id=${noPhone.id}`)).expect(200);
      expect(bare.text).to.include('This customer has no tags to remove');
      expect(bare.text).to.not.include('name="action.customer-tags.remove"');
      const applying = await htmx(acct.agent.get(`/app/links/after-payment?customer_id=${noPhone.id}&action.customer-tags.apply=${paid.id}`)).expect(200);
      expect(applying.text).to.include('name="action.customer-tags.remove"');

      // Without a customer the action cannot be enabled, and says why.
      const nobody = await htmx(acct.agent.get('/app/links/after-payment')).expect(200);
      expect(nobody.text).to.match(/id="f-action-customer-tags" name="actions" value="customer-tags" disabled/);
      expect(nobody.text).to.include('Choose a customer under “Send to a customer” first.');
      expect(nobody.text).to.not.include('name="action.customer-tags.apply"');
    });

    it('applies and removes the tags when the customer pays — once, even if the event is dispatched again', async () => {
      const { acct, m, jane } = await shop();
      const { tags, customers } = env.rt.services;
      const owes = await tags.create(m.key, { kind: 'customer', name: 'Owes membership' });
      const paid = await tags.create(m.key, { kind: 'customer', name: 'Paid 2026' });
      await customers.applyTag(m.key, jane.id, owes.id);

      const res = await postLink(acct, { name: 'Membership', amount: '39.00', customer_id: jane.id, channels: ['email'], actions: 'customer-tags', 'action.customer-tags.apply': paid.id, 'action.customer-tags.remove': owes.id, after_payment_form: '1' }).expect(303);
      const link = await env.rt.services.links.get(m, LINK_ID.exec(res.headers.location)![1]);
      expect(await env.rt.services.actions.forLink(link.key)).to.deep.equal([{ actionId: 'customer-tags', settings: { apply: paid.id, remove: owes.id } }]);

      // The edit form shows them, prefilled.
      const edit = await acct.agent.get(`/app/links/${link.id}/edit`).expect(200);
      expect(edit.text).to.match(new RegExp(`<option value="${paid.id}" selected>Paid 2026</option>`));
      expect(edit.text).to.match(new RegExp(`<option value="${owes.id}" selected>Owes membership</option>`));

      await env.rt.jobs.drain();
      const sent = (await outboxMessages(env)).find((msg) => msg.to === 'jane@example.test' && msg.text.includes('Membership'))!;
      const url = new URL(sent.text.match(/https?:\/\/\S+\?c=\S+/)![0]);
      await supertest(env.app).post(url.pathname + url.search).type('form').send({ name: 'Jane Doe', email: 'jane@example.test' }).expect(303);
      const pending = await env.rt.db('payments').where({ status: 'pending', link_id: link.key }).first();
      expect((await env.rt.services.checkout.authorize(pending.public_id, `sbx_${pending.public_id}`)).status).to.equal('paid');
      await env.rt.jobs.drain();
      const after = await customers.get(m.key, jane.id);
      expect(after.tags.map((t) => t.name)).to.deep.equal(['Paid 2026']);

      // The merchant takes the tag off again; a second dispatch of the same event must not re-apply it.
      await customers.removeTag(m.key, jane.id, paid.id);
      const event = await env.rt.db('events').where({ type: 'payment.succeeded' }).orderBy('id', 'desc').first();
      await env.rt.jobs.enqueue(env.rt.db, 'hooks.run', { eventId: event.public_id, subscriptionId: 'core:after-payment-actions' });
      await env.rt.jobs.drain();
      expect((await customers.get(m.key, jane.id)).tags).to.deep.equal([]);
      const runs = await env.rt.db('jobs').where({ kind: 'actions.run' }).andWhere('unique_key', 'like', '%:customer-tags');
      expect(runs.filter((j: { payload: string }) => String(j.payload).includes(String(event.public_id)))).to.have.length(1);
    });

    it('changes or clears the tags from the edit form, and refuses another merchant’s tag', async () => {
      const { acct, m, jane } = await shop();
      const { tags } = env.rt.services;
      const paid = await tags.create(m.key, { kind: 'customer', name: 'Paid' });
      const res = await postLink(acct, { name: 'Class', amount: '10', customer_id: jane.id, channels: ['email'] }).expect(303);
      const link = await env.rt.services.links.get(m, LINK_ID.exec(res.headers.location)![1]);
      const edit = await acct.agent.get(`/app/links/${link.id}/edit`).expect(200);
      expect(edit.text).to.include('id="after-payment"');
      const refresh = await htmx(acct.agent.get(`/app/links/after-payment?editing=1&customer_id=${jane.id}&actions=customer-tags&action.customer-tags.apply=${paid.id}`)).expect(200);
      expect(refresh.text).to.include(`<input type="hidden" name="customer_id" value="${jane.id}">`);
      expect(refresh.text.slice(refresh.text.indexOf('name="action.customer-tags.remove"'))).to.include('Paid');
      const fields = { _csrf: csrfFrom(edit.text), name: 'Class', path: link.path, amount: '10.00', currency: 'EUR', limit: 'unlimited', redirect_target: 'same', active: 'on', after_payment_form: '1', customer_id: jane.id };
      await acct.agent.post(`/app/links/${link.id}`).type('form').send({ ...fields, actions: 'customer-tags', 'action.customer-tags.apply': paid.id }).expect(303);
      expect(await env.rt.services.actions.forLink(link.key)).to.deep.equal([{ actionId: 'customer-tags', settings: { apply: paid.id, remove: null } }]);

      const other = await shop();
      const foreign = await tags.create(other.m.key, { kind: 'customer', name: 'Theirs' });
      const bad = await acct.agent.post(`/app/links/${link.id}`).type('form').send({ ...fields, name: 'Renamed', actions: 'customer-tags', 'action.customer-tags.apply': foreign.id }).expect(422);
      expect(fieldError(bad.text, 'action-customer-tags-apply')).to.equal('Choose one of your customer tags.');
      expect((await env.rt.services.links.get(m, link.id)).name).to.equal('Class');
      expect(await env.rt.services.actions.forLink(link.key)).to.deep.equal([{ actionId: 'customer-tags', settings: { apply: paid.id, remove: null } }]);

      // Unticking the action clears it.
      await acct.agent.post(`/app/links/${link.id}`).type('form').send({ ...fields, 'action.customer-tags.apply': paid.id }).expect(303);
      expect(await env.rt.services.actions.forLink(link.key)).to.deep.equal([]);

      // A link without a customer shows the action, but it cannot be enabled there.
      const plain = await postLink(acct, { name: 'Plain', amount: '10' }).expect(303);
      const plainEdit = await acct.agent.get(`${plain.headers.location}/edit`).expect(200);
      expect(plainEdit.text).to.match(/id="f-action-customer-tags" name="actions" value="customer-tags" disabled/);
      const plainLink = await env.rt.services.links.get(m, LINK_ID.exec(plain.headers.location)![1]);
      const forced = await acct.agent
        .post(`/app/links/${plainLink.id}`)
        .type('form')
        .send({ ...fields, _csrf: csrfFrom(plainEdit.text), name: 'Plain', path: plainLink.path, customer_id: '', actions: 'customer-tags', 'action.customer-tags.apply': paid.id })
        .expect(422);
      expect(fieldError(forced.text, 'action-customer-tags')).to.not.equal('');
      expect(await env.rt.services.actions.forLink(plainLink.key)).to.deep.equal([]);
    });
  });
});

describe('link form in the browser: send to a customer', function () {
  this.timeout(60_000);
  const browser = useBrowser();
  let env: ServedEnv;
  before(async () => {
    env = await serve(TARGETS[0]);
  });
  after(() => env?.close());

  it('updates channels, reminders and after-payment tags as a customer is picked, then sends', async () => {
    const tracked = await browser().newPage();
    const { page } = tracked;
    const handle = uniqueHandle('yoga');
    await signUpInBrowser(page, env.origin, { name: 'Acme Yoga', handle });
    const m = (await env.rt.services.merchants.getByHandle(handle))!;
    const jane = await env.rt.services.customers.create(m.key, { name: 'Jane Doe', email: 'jane@example.test', phone: '+31 6 12345678' });
    await env.rt.services.customers.create(m.key, { name: 'Max Mail', email: 'max@example.test' });
    const owes = await env.rt.services.tags.create(m.key, { kind: 'customer', name: 'Owes membership' });
    await env.rt.services.tags.create(m.key, { kind: 'customer', name: 'Paid 2026' });
    await env.rt.services.customers.applyTag(m.key, jane.id, owes.id);

    await page.goto(`${env.origin}/app/links/new?type=amount`);
    await page.getByLabel('Name', { exact: true }).fill('Spring membership');
    await page.getByLabel('Amount').fill('39.00');
    await expect(await page.locator('#f-reminders').isDisabled()).to.equal(true);
    await page.locator('#f-customer_id').selectOption({ label: 'Max Mail · max@example.test' });
    await page.locator('#f-channel-email:checked').waitFor();
    expect(await page.locator('#f-channel-sms').isDisabled()).to.equal(true);
    await page.locator('#f-action-customer-tags:not([disabled])').waitFor();
    await page.locator('#f-action-customer-tags').check();
    await page.locator('#f-action-customer-tags-apply').waitFor({ state: 'visible' });
    expect(await page.locator('#after-payment').textContent()).to.include('This customer has no tags to remove');

    await page.locator('#f-customer_id').selectOption({ label: 'Jane Doe · jane@example.test' });
    await page.locator('#f-channel-sms:not([disabled])').waitFor();
    await page.locator('#f-channel-sms').check();
    await page.locator('#f-reminders').check();
    await page.locator('#f-reminder_frequency').selectOption('every_2_days');
    await page.locator('#f-action-customer-tags-remove option', { hasText: 'Owes membership' }).waitFor({ state: 'attached' });
    await page.locator('#f-action-customer-tags-apply').selectOption({ label: 'Paid 2026' });
    await page.locator('#f-action-customer-tags-remove option', { hasText: 'Paid 2026' }).waitFor({ state: 'attached' });
    await page.locator('#f-action-customer-tags-remove').selectOption({ label: 'Owes membership' });
    await tracked.screenshot('link-form-send');
    await page.getByRole('button', { name: 'Create link' }).click();
    await page.waitForURL(/\/app\/links\/lnk_/);
    expect(await page.locator('main').textContent()).to.include('created and sent by Email and SMS');
    const linkId = LINK_ID.exec(page.url())![1];
    const link = await env.rt.services.links.get(m, linkId);
    expect(await env.rt.services.reminders.forLink(link.key)).to.have.length(1);
    expect((await env.rt.services.actions.forLink(link.key))[0].settings).to.deep.include({ remove: owes.id });
    tracked.assertClean();
    await tracked.close();
  });
});
