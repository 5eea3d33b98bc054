// Sending a link from its page (issue 5, items 3–5): the Send panel (one customer, several, or a
// customer tag; channels with the reasons they cannot reach someone; reminders), the delivery card
// with Resend, the reminders card with Stop, the Reminders tab, and tenant isolation.
import { expect } from 'chai';
import { forEachTarget } from './support/targets.ts';
import { build, csrfFrom, fieldError, signUp, type Account, type TestEnv } from './support/harness.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';
import type { Link } from '../src/features/links/service.ts';
import type { Customer } from '../src/features/customers/service.ts';
import { dateTimeIn } from '../src/core/time.ts';

const DAY = 86_400_000;
const PANEL = { 'HX-Request': 'true', 'HX-Target': 'link-send' };

/** A urlencoded body with repeated keys for lists (channels=email&channels=sms), as browsers send it. */
function form(fields: Record<string, string | string[]>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) for (const one of Array.isArray(v) ? v : [v]) p.append(k, one);
  return p.toString();
}

/** The rows of the delivery card (or the messages page) as "customer | channel | message | status". */
function deliveryRows(html: string): string[] {
  const start = html.indexOf('class="table stack activity-table deliveries-table"');
  if (start < 0) return [];
  const table = html.slice(start, html.indexOf('</table>', start));
  return [...table.matchAll(/<tr id="delivery-[^"]+">([\s\S]*?)<\/tr>/g)].map((m) => {
    const cell = (label: string) => new RegExp(`data-label="${label}"[^>]*>([\\s\\S]*?)</td>`).exec(m[1])![1];
    const textOf = (s: string) => s.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim();
    const customer = /<a [^>]*>([^<]*)<\/a>/.exec(cell('Customer'))?.[1] ?? textOf(cell('Customer'));
    const status = /<span class="badge badge-\w+">([^<]*)<\/span>/.exec(cell('Status'))![1];
    return `${customer} | ${textOf(cell('Channel'))} | ${textOf(cell('Message'))} | ${status}`;
  });
}

/** The reminders card's row for a customer: "channels | frequency | progress | status". */
function planRow(html: string, name: string): string {
  const start = html.indexOf('id="link-reminders"');
  const card = html.slice(start, html.indexOf('</section>', start));
  const row = [...card.matchAll(/<tr id="plan-[^"]+">([\s\S]*?)<\/tr>/g)].map((m) => m[1]).find((r) => r.includes(`>${name}</a>`));
  if (!row) throw new Error(`no reminder plan for ${name}`);
  const cell = (label: string) => new RegExp(`data-label="${label}"[^>]*>([\\s\\S]*?)</td>`).exec(row)![1].replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim();
  return `${cell('Channels')} | ${cell('Frequency')} | ${cell('Sent')} | ${cell('Status')}`;
}

forEachTarget('sending a link from its page', (target) => {
  let env: TestEnv;
  let acct: Account;
  let shop: Merchant;
  let jane: Customer;
  let bo: Customer;
  let vips: Customer[];
  let vipTag: string;

  before(async () => {
    env = await build(target);
    acct = await signUp(env.app);
    const m = (await env.rt.services.merchants.getByHandle(acct.handle))!;
    shop = await env.rt.services.merchants.updateSettings(m, { name: 'Acme Yoga', handle: m.handle, currency: 'EUR', timezone: 'Europe/Amsterdam', brand_color: '#4f46e5' });
    const { customers, tags } = env.rt.services;
    jane = await customers.create(shop.key, { name: 'Jane Doe', email: 'jane@example.test', phone: '+31 6 12345678' });
    bo = await customers.create(shop.key, { name: 'Bo Berg', email: 'bo@example.test' });
    vips = [
      await customers.create(shop.key, { name: 'Vera Vip', email: 'vera@example.test', tags: ['VIP'] }),
      await customers.create(shop.key, { name: 'Victor Vip', phone: '+31 6 87654321', tags: ['VIP'] }),
    ];
    vipTag = (await tags.list(shop.key, 'customer')).find((t) => t.name === 'VIP')!.id;
  });
  after(() => env?.close());

  beforeEach(() => env.clock.set('2026-03-02T09:00:00Z')); // 10:00 in Amsterdam

  let n = 0;
  const newLink = (fields: Record<string, unknown> = {}): Promise<Link> => env.rt.services.links.create(shop, { type: 'amount', name: `Class pass ${++n}`, amount: 3900, ...fields });
  const page = async (link: Link, query = '') => (await acct.agent.get(`/app/links/${link.id}${query}`).expect(200)).text;
  const send = (link: Link, fields: Record<string, string | string[]>, headers: Record<string, string> = PANEL) =>
    acct.agent.post(`/app/links/${link.id}/send`).set(headers).type('form').send(form({ _csrf: acct.csrf, ...fields }));
  const deliveriesOf = (link: Link) => env.rt.db('deliveries').where({ link_id: link.key }).orderBy('id');

  it('sends to one customer by email and SMS with reminders: both messages are on the card, sent once the outbox runs', async () => {
    const link = await newLink();
    const before = await page(link);
    expect(before).to.include('id="link-send"').and.include('No messages yet');
    // Email is offered by default.
    expect(before).to.match(/<input type="checkbox" name="channels" value="email" checked>/);

    const res = await send(link, { customer_ids: jane.id, channels: ['email', 'sms'], reminder_frequency: 'every_2_days', reminder_max: '5' }).expect(200);
    // No email server or SMS provider in tests: the Outbox keeps them, and the notice says so.
    expect(res.text).to.include('Kept in the Outbox (no email server configured, no SMS provider configured): nothing went to Jane Doe, and their reminders will stay there too.');
    // The cards come along out of band, the messages still queued.
    expect(res.text).to.match(/<section id="link-deliveries"[^>]*hx-swap-oob="true"/);
    expect(deliveryRows(res.text)).to.have.members(['Jane Doe | Email | First send | Queued', 'Jane Doe | SMS | First send | Queued']);

    await env.rt.jobs.drain();
    const html = await page(link);
    expect(deliveryRows(html)).to.have.members(['Jane Doe | Email | First send | Kept in the Outbox', 'Jane Doe | SMS | First send | Kept in the Outbox']);
    expect(html).to.include('jane@example.test').and.include('+31 6 12345678');
    const plan = (await env.rt.services.reminders.forLink(link.key))[0];
    expect(planRow(html, 'Jane Doe')).to.equal('Email + SMS | Every 2 days | 0 of 5 sent | Active');
    // The next reminder's date in the merchant's time zone: two days later, 10:00 in Amsterdam.
    expect(html).to.include(`<time datetime="${plan.nextAt!.toISOString()}">${dateTimeIn(plan.nextAt!, 'Europe/Amsterdam')}</time>`);
    expect(plan.nextAt!.toISOString()).to.equal('2026-03-04T09:00:00.000Z');

    // The live refresh of the card (after a message goes out) answers the card and the plans.
    const live = await acct.agent.get(`/app/links/${link.id}/cards`).set({ 'HX-Request': 'true', 'HX-Target': 'link-deliveries' }).expect(200);
    expect(live.text).to.match(/^\s*<section id="link-deliveries"/).and.not.include('<html');
    expect(live.text).to.match(/<section id="link-reminders"[^>]*hx-swap-oob="true"/);
  });

  it('disables SMS and WhatsApp for a customer without a phone number, and refuses SMS posted anyway with a message by the channels', async () => {
    const link = await newLink();
    const channels = await acct.agent
      .get(`/app/links/${link.id}/send?customer_ids=${bo.id}&channels=email&channels=sms`)
      .set({ 'HX-Request': 'true', 'HX-Target': 'send-channels' })
      .expect(200);
    expect(channels.text).to.match(/^\s*<fieldset id="send-channels"/);
    expect(channels.text).to.match(/value="sms" disabled> SMS <span class="muted small">· No phone number<\/span>/);
    expect(channels.text).to.match(/value="whatsapp" disabled> WhatsApp <span class="muted small">· No phone number<\/span>/);
    expect(channels.text).to.match(/value="email" checked>/);
    // Several customers: every channel is offered (who cannot be reached on one is skipped on it).
    const several = await acct.agent.get(`/app/links/${link.id}/send?customer_ids=${bo.id}&customer_ids=${jane.id}`).set({ 'HX-Request': 'true', 'HX-Target': 'send-channels' }).expect(200);
    expect(several.text).to.not.include('disabled');

    const res = await send(link, { customer_ids: bo.id, channels: ['email', 'sms'] }).expect(422);
    expect(fieldError(res.text, 'channels')).to.include('Bo Berg has no phone number');
    expect(res.text).to.include('Nothing was sent.');
    // What was chosen stays chosen.
    expect(res.text).to.match(new RegExp(`name="customer_ids" value="${bo.id}" checked`));
    expect(await deliveriesOf(link)).to.have.length(0);
  });

  it('sends to everyone with a customer tag: one delivery per tagged customer, each on the channels that reach them', async () => {
    const link = await newLink();
    const res = await send(link, { customer_tag: vipTag, channels: ['email'] }).expect(200);
    // Victor has no email address: skipped, and said so.
    expect(res.text).to.include('Kept in the Outbox (no email server configured): nothing went to 1 customer.').and.include('1 skipped: Victor Vip (no email address)');
    const both = await send(link, { customer_tag: vipTag, channels: ['email', 'sms'] }).expect(200);
    expect(both.text).to.include('nothing went to 2 customers.');
    await env.rt.jobs.drain();
    const rows = deliveryRows(await page(link));
    expect(rows).to.have.members(['Vera Vip | Email | First send | Kept in the Outbox', 'Vera Vip | Email | First send | Kept in the Outbox', 'Victor Vip | SMS | First send | Kept in the Outbox']);
    const all = await deliveriesOf(link);
    expect(new Set(all.map((d: { customer_id: number }) => d.customer_id))).to.deep.equal(new Set(vips.map((c) => c.key)));
  });

  it('offers the customers the search finds, keeping the ones already chosen first', async () => {
    const link = await newLink();
    const found = await acct.agent.get(`/app/links/${link.id}/send?q=jane&customer_ids=${bo.id}`).set({ 'HX-Request': 'true', 'HX-Target': 'send-customers' }).expect(200);
    const offered = [...found.text.matchAll(/name="customer_ids" value="([^"]+)"( checked)?/g)].map((m) => `${m[1]}${m[2] ? ' (chosen)' : ''}`);
    expect(offered).to.deep.equal([`${bo.id} (chosen)`, jane.id]);
    // Without JavaScript the search opens the Send page with the matches.
    const plain = await acct.agent.get(`/app/links/${link.id}/send?q=vip`).expect(200);
    expect(plain.text).to.include('<html').and.include('Vera Vip').and.include('Victor Vip').and.not.include('Jane Doe');
  });

  it('answers bad input with 422 and messages by the fields, writing nothing', async () => {
    const link = await newLink();
    let res = await send(link, { channels: ['email'] }).expect(422);
    expect(fieldError(res.text, 'customers')).to.not.equal('');
    res = await send(link, { customer_ids: jane.id }).expect(422);
    expect(fieldError(res.text, 'channels')).to.not.equal('');
    res = await send(link, { customer_ids: jane.id, channels: ['email'], reminder_frequency: 'daily', reminder_max: '0' }).expect(422);
    expect(fieldError(res.text, 'reminder_max')).to.not.equal('');
    res = await send(link, { customer_ids: jane.id, channels: ['email'], reminder_frequency: 'daily', reminder_max: '51' }).expect(422);
    expect(fieldError(res.text, 'reminder_max')).to.not.equal('');
    res = await send(link, { customer_ids: jane.id, channels: ['email'], reminder_frequency: 'hourly' }).expect(422);
    expect(fieldError(res.text, 'reminder_frequency')).to.not.equal('');
    res = await send(link, { customer_ids: [jane.id, bo.id], customer_tag: vipTag, channels: ['email'] }).expect(422);
    expect(fieldError(res.text, 'customers')).to.not.equal('');
    res = await send(link, { customer_ids: 'cus_nobody', channels: ['email'] }).expect(422);
    expect(fieldError(res.text, 'customers')).to.not.equal('');
    expect(await deliveriesOf(link)).to.have.length(0);
    expect(await env.rt.db('reminder_plans').where({ link_id: link.key })).to.have.length(0);

    // A plain form post (no htmx) gets the Send page back with the messages; a good one, a redirect.
    res = await send(link, { customer_ids: jane.id }, {}).expect(422);
    expect(res.text).to.include('<html');
    expect(fieldError(res.text, 'channels')).to.not.equal('');
    await send(link, { customer_ids: jane.id, channels: ['email'] }, {}).expect(303).expect('Location', `/app/links/${link.id}`);

    // An inactive link offers no Send panel and sends nothing.
    const closed = await newLink();
    await env.rt.services.links.update(shop, closed.id, { active: false });
    expect(await page(closed)).to.not.include('id="link-send"');
    res = await send(closed, { customer_ids: jane.id, channels: ['email'] }).expect(422);
    expect(res.text).to.include('activate it before sending it');
    expect(await deliveriesOf(closed)).to.have.length(0);
  });

  it('resends a message as a new delivery', async () => {
    const link = await newLink();
    await send(link, { customer_ids: jane.id, channels: ['email'] }).expect(200);
    // Still queued: nothing to resend yet.
    const [queued] = await deliveriesOf(link);
    let res = await acct.agent.post(`/app/deliveries/${queued.public_id}/resend`).set({ 'HX-Request': 'true', 'HX-Target': 'link-deliveries' }).type('form').send({ _csrf: acct.csrf }).expect(422);
    expect(res.text).to.include('still waiting to go out');
    await env.rt.jobs.drain();
    expect(await page(link)).to.match(/>Resend<span class="sr-only"> to Jane Doe by Email<\/span>/);

    res = await acct.agent.post(`/app/deliveries/${queued.public_id}/resend`).set({ 'HX-Request': 'true', 'HX-Target': 'link-deliveries' }).type('form').send({ _csrf: acct.csrf }).expect(200);
    expect(res.text).to.match(/^\s*<section id="link-deliveries"/);
    expect(res.text).to.include('Sending again to Jane Doe (jane@example.test).');
    expect(deliveryRows(res.text)).to.deep.equal(['Jane Doe | Email | First send | Queued', 'Jane Doe | Email | First send | Kept in the Outbox']);
    await env.rt.jobs.drain();
    const rows = await deliveriesOf(link);
    expect(rows.map((d: { status: string }) => d.status)).to.deep.equal(['sent', 'sent']);
    expect(rows[1].public_id).to.not.equal(rows[0].public_id);

    // From the messages page, a plain form: back to that page.
    await acct.agent.post(`/app/deliveries/${queued.public_id}/resend`).type('form').send({ _csrf: acct.csrf, back: `/app/links/${link.id}/deliveries` }).expect(303).expect('Location', `/app/links/${link.id}/deliveries`);
    expect(await deliveriesOf(link)).to.have.length(3);
    // Without a CSRF token nothing happens.
    await acct.agent.post(`/app/deliveries/${queued.public_id}/resend`).type('form').send({}).expect(403);
    expect(await deliveriesOf(link)).to.have.length(3);
  });

  it('lists all of a link’s messages page by page once there are more than the card shows', async () => {
    const link = await newLink();
    for (let i = 0; i < 6; i++) await send(link, { customer_ids: [jane.id, bo.id, ...vips.map((c) => c.id)], channels: ['email', 'sms'] }).expect(200);
    await env.rt.jobs.drain();
    // 6 sends × (Jane 2 + Bo 1 + Vera 1 + Victor 1) = 30 messages; the card shows the newest 10.
    const html = await page(link);
    expect(deliveryRows(html)).to.have.length(10);
    expect(html).to.include(`href="/app/links/${link.id}/deliveries">All messages →</a>`);
    const first = await acct.agent.get(`/app/links/${link.id}/deliveries`).expect(200);
    expect(deliveryRows(first.text)).to.have.length(25);
    const older = /<a href="([^"]+)" rel="next">Older →<\/a>/.exec(first.text)![1].replace(/&amp;/g, '&');
    const second = await acct.agent.get(older).expect(200);
    expect(deliveryRows(second.text)).to.have.length(5);
    expect(second.text).to.not.include('rel="next"');
    const ids = [...(first.text + second.text).matchAll(/<tr id="delivery-([^"]+)">/g)].map((m) => m[1]);
    expect(new Set(ids).size).to.equal(30);
    // A cursor that is not one of this link's messages starts from the newest.
    await acct.agent.get(`/app/links/${link.id}/deliveries?before=dlv_nope`).expect(303).expect('Location', `/app/links/${link.id}/deliveries`);
  });

  it('stops a customer’s reminders: the card says so and no reminder goes out after the clock moves on', async () => {
    const link = await newLink();
    await send(link, { customer_ids: jane.id, channels: ['email'], reminder_frequency: 'daily', reminder_max: '3' }).expect(200);
    const [plan] = await env.rt.services.reminders.forLink(link.key);
    let html = await page(link);
    expect(planRow(html, 'Jane Doe')).to.equal('Email | Daily | 0 of 3 sent | Active');
    expect(html).to.include(`action="/app/reminder_plans/${plan.id}/stop"`);

    const res = await acct.agent
      .post(`/app/reminder_plans/${plan.id}/stop`)
      .set({ 'HX-Request': 'true', 'HX-Target': 'link-reminders' })
      .type('form')
      .send({ _csrf: acct.csrf, link: link.id })
      .expect(200);
    expect(res.text).to.match(/^\s*<section id="link-reminders"/);
    expect(res.text).to.include('Reminders to Jane Doe stopped.');
    expect(planRow(res.text, 'Jane Doe')).to.equal('Email | Daily | 0 of 3 sent | Stopped by you');
    expect(res.text).to.not.include('/stop"');

    env.clock.set(env.clock.now().getTime() + 4 * DAY);
    await env.rt.services.reminders.sweep();
    await env.rt.jobs.drain();
    expect((await deliveriesOf(link)).filter((d: { kind: string }) => d.kind === 'reminder')).to.have.length(0);
    html = await page(link);
    expect(planRow(html, 'Jane Doe')).to.equal('Email | Daily | 0 of 3 sent | Stopped by you');
    // A plain form goes back to the link page.
    await acct.agent.post(`/app/reminder_plans/${plan.id}/stop`).type('form').send({ _csrf: acct.csrf, link: link.id }).expect(303).expect('Location', `/app/links/${link.id}`);
  });

  it('shows sent and upcoming reminders on the Reminders tab', async () => {
    const link = await newLink();
    const empty = await page(link, '?tab=reminders');
    expect(empty).to.include('No reminders yet.');
    await send(link, { customer_ids: jane.id, channels: ['email', 'sms'], reminder_frequency: 'every_2_days', reminder_max: '3' }).expect(200);
    await env.rt.jobs.drain();
    env.clock.set(env.clock.now().getTime() + 2 * DAY);
    await env.rt.services.reminders.sweep();
    await env.rt.jobs.drain();

    const tz = 'Europe/Amsterdam';
    for (const html of [await page(link, '?tab=reminders'), (await acct.agent.get(`/app/links/${link.id}?tab=reminders`).set({ 'HX-Request': 'true', 'HX-Target': 'link-activity' }).expect(200)).text]) {
      const upcomingAt = html.indexOf('id="reminders-upcoming"');
      const sentAt = html.indexOf('id="reminders-sent"');
      expect(upcomingAt).to.be.greaterThan(-1);
      expect(sentAt).to.be.greaterThan(upcomingAt);
      const upcoming = html.slice(upcomingAt, sentAt);
      const sent = html.slice(sentAt);
      // Reminders 2 and 3, soonest first, on days 4 and 6 at 10:00 Amsterdam time.
      expect([...upcoming.matchAll(/<td data-label="Reminder">([^<]+)<\/td>/g)].map((m) => m[1])).to.deep.equal(['Reminder 2 of 3', 'Reminder 3 of 3']);
      expect(upcoming).to.include(dateTimeIn(new Date('2026-03-06T09:00:00Z'), tz)).and.include(dateTimeIn(new Date('2026-03-08T09:00:00Z'), tz));
      expect([...sent.matchAll(/<td data-label="Reminder">([^<]+)<\/td>/g)].map((m) => m[1])).to.deep.equal(['Reminder 1 of 3']);
      expect(sent).to.include('Email · Kept in the Outbox').and.include('SMS · Kept in the Outbox');
    }
    const html = await page(link);
    expect(planRow(html, 'Jane Doe')).to.equal('Email + SMS | Every 2 days | 1 of 3 sent | Active');
    expect(deliveryRows(html)).to.include('Jane Doe | Email | Reminder 1 | Kept in the Outbox');
  });

  it('answers 404 for another merchant’s link, delivery and reminder plan, and changes nothing', async () => {
    const link = await newLink();
    await send(link, { customer_ids: jane.id, channels: ['email'], reminder_frequency: 'weekly', reminder_max: '2' }).expect(200);
    await env.rt.jobs.drain();
    const [delivery] = await deliveriesOf(link);
    const [plan] = await env.rt.services.reminders.forLink(link.key);

    const other = await signUp(env.app);
    await other.agent.post(`/app/deliveries/${delivery.public_id}/resend`).type('form').send({ _csrf: other.csrf }).expect(404);
    await other.agent.post(`/app/reminder_plans/${plan.id}/stop`).type('form').send({ _csrf: other.csrf, link: link.id }).expect(404);
    await other.agent.get(`/app/links/${link.id}`).expect(404);
    await other.agent.get(`/app/links/${link.id}/send`).expect(404);
    await other.agent.get(`/app/links/${link.id}/deliveries`).expect(404);
    await other.agent.post(`/app/links/${link.id}/send`).type('form').send(form({ _csrf: other.csrf, customer_ids: jane.id, channels: 'email' })).expect(404);
    // Nor can the other merchant send their own link to this merchant's customer.
    const theirs = await env.rt.services.links.create((await env.rt.services.merchants.getByHandle(other.handle))!, { type: 'amount', name: 'Theirs', amount: 100 });
    const res = await other.agent.post(`/app/links/${theirs.id}/send`).set(PANEL).type('form').send(form({ _csrf: other.csrf, customer_ids: jane.id, channels: 'email' })).expect(422);
    expect(fieldError(res.text, 'customers')).to.not.equal('');

    expect(await deliveriesOf(link)).to.have.length(1);
    expect((await env.rt.services.reminders.forLink(link.key))[0].state).to.equal('active');
  });
});
