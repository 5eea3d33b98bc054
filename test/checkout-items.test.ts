/**
 * Checkout builder, items and amounts (issue 16 items 1, 4's custom amount, 7): items links with
 * fixed and customer-chosen quantities, recurring products in their own section, totals priced on
 * the server in minor units for 0-, 2- and 3-decimal currencies, quantity bounds and tampered forms,
 * the line items a payment records (API, CSV, payment page), the payment limit still exact, a
 * customer-chosen amount with suggestions, and the pay page's size.
 */
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, type TestEnv } from './support/harness.ts';
import { apiClient, apiMerchant, expectFieldErrors, twoApiMerchants, type ApiCall, type ApiMerchant } from './support/api.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';
import { createDataBuilder } from '../src/features/webhooks/index.ts';

const CUSTOMER = { name: 'Ann Example', email: 'ann@example.test' };

forEachTarget('checkout builder: items links and custom amounts', (target) => {
  let env: TestEnv;
  let a: ApiMerchant;
  let call: ApiCall;
  let callB: ApiCall;
  const http = () => supertest(env.app);
  const count = async (table: string) => Number(((await env.rt.db(table).count({ n: '*' }).first()) as { n: number | string }).n);

  before(async () => {
    ({ env, a, call, callB } = await twoApiMerchants(target, ['Corner Shop', 'Other Shop']));
  });
  after(() => env?.close());

  const product = async (c: ApiCall, body: Record<string, unknown>) => (await c('post', '/products', { currency: 'EUR', ...body }).expect(201)).body;
  const itemsLink = async (c: ApiCall, items: unknown[], extra: Record<string, unknown> = {}) => (await c('post', '/links', { type: 'items', name: 'Order', items, ...extra }).expect(201)).body;

  /** Posts the pay form, expecting the sandbox card page; answers its path. */
  async function checkout(url: string, fields: Record<string, string>): Promise<string> {
    const res = await http().post(url).type('form').send({ ...CUSTOMER, ...fields });
    expect(res.status, res.text.slice(0, 600)).to.equal(303);
    return new URL(res.headers.location).pathname;
  }
  const pay = (cardPage: string) => http().post(cardPage).type('form').send({ card_number: '4242 4242 4242 4242' }).expect(303);
  /** The message under an items line's quantity ('' when none). */
  const quantityError = (html: string, productId: string) => new RegExp(`id="q-${productId}-error">([^<]*)<`).exec(html)?.[1] ?? '';
  const quantityValue = (html: string, productId: string) => new RegExp(`id="q-${productId}"[^>]* value="([^"]*)"`).exec(html)?.[1];
  const total = (html: string) => /<span class="amount-label">Total<\/span> <span class="amount-value">([^<]*)</.exec(html)?.[1];

  describe('products', () => {
    it('keeps a recurring interval and trial days, and refuses a period over a year by its field', async () => {
      const p = await product(call, { name: 'Coffee club', price: 1500, recurring: { interval: 'month', interval_count: 3, trial_days: 14 } });
      expect(p.recurring).to.deep.equal({ interval: 'month', interval_count: 3, trial_days: 14 });
      const once = await product(call, { name: 'Mug', price: 900 });
      expect(once.recurring).to.equal(null);
      expectFieldErrors(await call('post', '/products', { name: 'Too long', price: 100, currency: 'EUR', recurring: { interval: 'month', interval_count: 13 } }), ['recurring.interval_count']);
      expectFieldErrors(await call('post', '/products', { name: 'Hourly', price: 100, currency: 'EUR', recurring: { interval: 'hour' } }), ['recurring.interval']);
      const patched = (await call('patch', `/products/${p.id}`, { recurring: null }).expect(200)).body;
      expect(patched.recurring).to.equal(null);
    });
  });

  describe('the API', () => {
    it('creates, reads and updates an items link with fixed and customer-chosen quantities', async () => {
      const shirt = await product(call, { name: 'T-shirt', price: 2000 });
      const mug = await product(call, { name: 'Mug', price: 950 });
      const link = await itemsLink(call, [{ product_id: shirt.id, quantity: { min: 1, max: 5, default: 2 } }, { product_id: mug.id, quantity: 1 }]);
      expect(link).to.include({ type: 'items', amount: null, currency: 'EUR', product_id: null, custom_amount: null });
      expect(link.items).to.deep.equal([
        { product_id: shirt.id, quantity: { min: 1, max: 5, default: 2 }, name: 'T-shirt', unit_amount: 2000, recurring: null },
        { product_id: mug.id, quantity: 1, name: 'Mug', unit_amount: 950, recurring: null },
      ]);
      expect((await call('get', `/links/${link.id}`).expect(200)).body.items).to.deep.equal(link.items);
      // A chosen quantity without a default starts at its min (at least 1).
      const patched = (await call('patch', `/links/${link.id}`, { items: [{ product_id: mug.id, quantity: { min: 0, max: 3 } }] }).expect(200)).body;
      expect(patched.items.map((i: { product_id: string; quantity: unknown }) => [i.product_id, i.quantity])).to.deep.equal([[mug.id, { min: 0, max: 3, default: 1 }]]);
      expectFieldErrors(await call('patch', `/links/${link.id}`, { type: 'amount' }), ['type'], 'immutable_field');
      expectFieldErrors(await call('patch', `/links/${link.id}`, { amount: 500 }), ['amount']);
    });

    it('answers 422 by the field for bad items, and writes nothing', async () => {
      const shirt = await product(call, { name: 'Shirt', price: 2000 });
      const yen = await product(call, { name: 'Yen thing', price: 500, currency: 'JPY' });
      const off = await product(call, { name: 'Retired', price: 100, active: false });
      const stranger = await product(callB, { name: 'Not yours', price: 100 });
      const before = await count('links');
      const cases: [unknown, string[]][] = [
        [[{ product_id: shirt.id, quantity: { min: 3, max: 2 } }], ['items[0].quantity.max']],
        [[{ product_id: shirt.id, quantity: { min: 1, max: 5, default: 9 } }], ['items[0].quantity.default']],
        [[{ product_id: shirt.id, quantity: 0 }], ['items[0].quantity']],
        [[{ product_id: shirt.id, quantity: 1000 }], ['items[0].quantity']],
        [[{ product_id: shirt.id, quantity: '2' }], ['items[0].quantity']],
        [[{ product_id: shirt.id, quantity: 1 }, { product_id: shirt.id, quantity: 2 }], ['items[1].product_id']],
        [[{ product_id: shirt.id, quantity: 1 }, { product_id: yen.id, quantity: 1 }], ['items[1].product_id']],
        [[{ product_id: off.id, quantity: 1 }], ['items[0].product_id']],
        [[{ product_id: stranger.id, quantity: 1 }], ['items[0].product_id']],
        [[{ product_id: shirt.id, price: 1 }], ['items[0].price']],
        [[], ['items']],
        ['nope', ['items']],
      ];
      for (const [items, fields] of cases) expectFieldErrors(await call('post', '/links', { type: 'items', name: 'Bad', items }), fields);
      const badCustom: [unknown, string[]][] = [
        [{ min: 500, max: 100 }, ['custom_amount.max']],
        [{ label: 'x'.repeat(61) }, ['custom_amount.label']],
        [{ label: 'Two\nlines' }, ['custom_amount.label']],
        [{ min: -1 }, ['custom_amount.min']],
        [{ suggested: [0] }, ['custom_amount.suggested[0]']],
      ];
      for (const [custom, fields] of badCustom) expectFieldErrors(await call('post', '/links', { type: 'items', name: 'Bad', items: [{ product_id: shirt.id }], custom_amount: custom }), fields);
      // label names an items order's added amount; an amount link's amount is the whole payment.
      expectFieldErrors(await call('post', '/links', { type: 'amount', name: 'Bad', currency: 'EUR', custom_amount: { min: 100, label: 'Tip' } }), ['custom_amount.label']);
      expect(await count('links')).to.equal(before);
    });

    it('takes a custom amount with min, max and suggestions, checked by field', async () => {
      const link = (await call('post', '/links', { type: 'amount', name: 'Donate', currency: 'EUR', custom_amount: { min: 500, max: 50000, suggested: [2500, 1000] } }).expect(201)).body;
      expect(link.amount).to.equal(null);
      expect(link.custom_amount).to.deep.equal({ min: 500, max: 50000, suggested: [1000, 2500] });
      for (const [custom, fields] of [
        [{ min: 500, max: 100 }, ['custom_amount.max']],
        [{ min: 500, suggested: [1000, 100] }, ['custom_amount.suggested[1]']],
        [{ suggested: [1000, 1000] }, ['custom_amount.suggested[1]']],
        [{ min: 0 }, ['custom_amount.min']],
        [{ max: 10 ** 12 }, ['custom_amount.max']],
        [{ min: 1, colour: 'red' }, ['custom_amount.colour']],
      ] as [unknown, string[]][]) {
        expectFieldErrors(await call('post', '/links', { type: 'amount', name: 'Bad', custom_amount: custom }), fields);
      }
      expectFieldErrors(await call('post', '/links', { type: 'amount', name: 'Both', amount: 100, custom_amount: { min: 1 } }), ['amount']);
      expectFieldErrors(await call('post', '/links', { type: 'amount', name: 'Neither' }), ['amount']);
      // A fixed amount replaces the customer's choice, and back.
      const fixed = (await call('patch', `/links/${link.id}`, { amount: 700 }).expect(200)).body;
      expect([fixed.amount, fixed.custom_amount]).to.deep.equal([700, null]);
      const open = (await call('patch', `/links/${link.id}`, { custom_amount: { min: 100 } }).expect(200)).body;
      expect([open.amount, open.custom_amount]).to.deep.equal([null, { min: 100, max: null, suggested: [] }]);
    });
  });

  describe('the pay page', () => {
    /** An items link in `currency`: a fixed line and a chosen one; answers its URL and products. */
    async function shop(currency: string, prices: [number, number]) {
      const m = await apiMerchant(env, `Shop ${currency}`, { currency });
      const c = apiClient(env.app, m.secret);
      const fixed = await product(c, { name: 'Box', price: prices[0], currency });
      const chosen = await product(c, { name: 'Extra', price: prices[1], currency });
      const link = await itemsLink(c, [{ product_id: fixed.id, quantity: 3 }, { product_id: chosen.id, quantity: { min: 0, max: 10, default: 2 } }]);
      return { m, c, url: `/${m.handle}/${link.path}`, fixed, chosen, link };
    }

    it('prices the order on the server in minor units for 0-, 2- and 3-decimal currencies', async () => {
      for (const [currency, prices, quantity, minor, shown] of [
        ['JPY', [500, 1250], '7', 3 * 500 + 7 * 1250, '¥10,250'],
        ['EUR', [1999, 5], '9', 3 * 1999 + 9 * 5, '€60.42'],
        ['KWD', [1250, 5], '7', 3 * 1250 + 7 * 5, 'KWD 3.785'],
      ] as const) {
        const s = await shop(currency, [...prices]);
        const page = await http().get(s.url).expect(200);
        expect(total(page.text), currency).to.equal(new Intl.NumberFormat('en', { style: 'currency', currency }).format((3 * prices[0] + 2 * prices[1]) / 10 ** (currency === 'JPY' ? 0 : currency === 'KWD' ? 3 : 2)));
        // "Update total" re-prices what was typed, without JavaScript.
        const updated = await http().post(s.url).type('form').send({ [`quantity_${s.chosen.id}`]: quantity, step: 'update' }).expect(200);
        expect(total(updated.text)!.replace(/\u00a0/g, ' ')).to.equal(shown);
        const card = await checkout(s.url, { [`quantity_${s.chosen.id}`]: quantity });
        await pay(card);
        const payment = await env.rt.db('payments').orderBy('id', 'desc').first();
        expect([Number(payment.amount), payment.currency, payment.status], currency).to.deep.equal([minor, currency, 'paid']);
      }
    });

    it('steps quantities with buttons that work without JavaScript, within the line’s bounds', async () => {
      const s = await shop('EUR', [1000, 250]);
      const id = s.chosen.id;
      const sessions = await count('checkout_sessions');
      const page = await http().get(s.url).expect(200);
      expect(page.text).to.include(`name="step" value="${id}:+1"`);
      expect(quantityValue(page.text, id)).to.equal('2');
      const up = await http().post(s.url).type('form').send({ ...CUSTOMER, [`quantity_${id}`]: '2', step: `${id}:+1` }).expect(200);
      expect(quantityValue(up.text, id)).to.equal('3');
      expect(total(up.text)).to.equal('€37.50'); // 3 × €10.00 + 3 × €2.50
      // What the customer typed stays; nothing is written by a step.
      expect(up.text).to.include('value="Ann Example"');
      const atMax = await http().post(s.url).type('form').send({ [`quantity_${id}`]: '10', step: `${id}:+1` }).expect(200);
      expect(quantityValue(atMax.text, id)).to.equal('10');
      expect(atMax.text).to.match(new RegExp(`value="${id}:\\+1"[^>]* disabled`));
      const down = await http().post(s.url).type('form').send({ [`quantity_${id}`]: '0', step: `${id}:-1` }).expect(200);
      expect(quantityValue(down.text, id)).to.equal('0');
      expect(await count('checkout_sessions')).to.equal(sessions);
    });

    it('takes plain `quantity` for a link with one customer-chosen line (API.md public checkout)', async () => {
      const s = await shop('EUR', [1000, 250]);
      await pay(await checkout(s.url, { quantity: '5' }));
      const payment = await env.rt.db('payments').orderBy('id', 'desc').first();
      expect(Number(payment.amount)).to.equal(3 * 1000 + 5 * 250);
      expect((await http().post(s.url).type('form').send({ ...CUSTOMER, quantity: '11' }).expect(422)).text).to.match(new RegExp(`id="q-${s.chosen.id}-error">[^<]+<`));
    });

    it('comes back with the quantities after “Cancel and go back” from the card page', async () => {
      const s = await shop('EUR', [1000, 250]);
      const card = await checkout(s.url, { [`quantity_${s.chosen.id}`]: '7' });
      const session = card.split('/').pop();
      const back = await http().get(`${s.url}?back=${session}`).expect(200);
      expect(quantityValue(back.text, s.chosen.id)).to.equal('7');
      expect(total(back.text)).to.equal('€47.50');
      expect(back.text).to.include('value="Ann Example"');
    });

    it('refuses a quantity out of bounds by its field, and writes nothing', async () => {
      const s = await shop('EUR', [1000, 250]);
      const id = s.chosen.id;
      const before = [await count('checkout_sessions'), await count('payments')];
      for (const q of ['11', '-1', 'two', '1.5', '99999999']) {
        const res = await http().post(s.url).type('form').send({ ...CUSTOMER, [`quantity_${id}`]: q });
        expect(res.status, q).to.equal(422);
        expect(quantityError(res.text, id), q).not.to.equal('');
        expect(res.text).to.match(new RegExp(`id="q-${id}"[^>]* aria-invalid="true"`));
      }
      expect([await count('checkout_sessions'), await count('payments')]).to.deep.equal(before);
    });

    it('lets the server’s numbers win over a tampered form', async () => {
      const s = await shop('EUR', [1000, 250]);
      const card = await checkout(s.url, {
        [`quantity_${s.chosen.id}`]: '1',
        // A fixed line's quantity, prices and an amount are not the form's to set.
        [`quantity_${s.fixed.id}`]: '50',
        amount: '0.01',
        price: '1',
        [`price_${s.fixed.id}`]: '1',
        unit_amount: '1',
        shown_total: '3250',
      });
      await pay(card);
      const payment = await env.rt.db('payments').orderBy('id', 'desc').first();
      expect([Number(payment.amount), payment.status]).to.deep.equal([3 * 1000 + 250, 'paid']);
      const session = await env.rt.db('checkout_sessions').where({ id: payment.checkout_session_id }).first();
      expect(JSON.parse(session.line_items)).to.deep.equal([
        { description: 'Box', quantity: 3, unitAmount: 1000, productId: s.fixed.id },
        { description: 'Extra', quantity: 1, unitAmount: 250, productId: s.chosen.id },
      ]);
    });

    it('shows the new total before paying when the quantities typed change it', async () => {
      const s = await shop('EUR', [1000, 250]);
      const before = await count('payments');
      const res = await http().post(s.url).type('form').send({ ...CUSTOMER, [`quantity_${s.chosen.id}`]: '4', shown_total: '3500' }).expect(200);
      expect(res.text).to.include('Your total is now €40.00');
      expect(total(res.text)).to.equal('€40.00');
      expect(res.text).to.include('name="shown_total" value="4000"');
      expect(await count('payments')).to.equal(before);
    });

    it('records the line items with the payment: the API (and so webhook payloads), the CSV export and the payment page', async () => {
      const { merchant } = a;
      const shirt = await product(call, { name: 'Tee, "large"', price: 2000 });
      const mug = await product(call, { name: 'Mug', price: 950 });
      const link = await itemsLink(call, [{ product_id: shirt.id, quantity: { min: 1, max: 5 } }, { product_id: mug.id, quantity: 1 }]);
      const card = await checkout(`/${a.handle}/${link.path}`, { [`quantity_${shirt.id}`]: '2' });
      await pay(card);
      const list = (await call('get', `/payments?link_id=${link.id}`).expect(200)).body.data;
      expect(list).to.have.length(1);
      const expected = [
        { product_id: shirt.id, description: 'Tee, "large"', quantity: 2, unit_amount: 2000, amount: 4000 },
        { product_id: mug.id, description: 'Mug', quantity: 1, unit_amount: 950, amount: 950 },
      ];
      expect(list[0]).to.include({ amount: 4950, status: 'paid' });
      expect(list[0].line_items).to.deep.equal(expected);
      expect((await call('get', `/payments/${list[0].id}`).expect(200)).body.line_items).to.deep.equal(expected);
      // Webhook payloads: the data of payment.succeeded, built as the webhooks feature builds it.
      const s = env.rt.services;
      const dataFor = createDataBuilder({ payments: s.payments, refunds: s.refunds, links: s.links, actions: s.actions, deliveries: s.deliveries, reminders: s.reminders, requests: s.requests, apiKeys: s.apiKeys });
      const data = (await dataFor(merchant, 'payment.succeeded', { paymentId: list[0].id })) as { id: string; line_items: unknown };
      expect([data.id, data.line_items]).to.deep.equal([list[0].id, expected]);
      // The customer's receipt lists them too.
      const receipt = await http().get(`/receipt/${list[0].id}`).expect(200);
      expect(receipt.text).to.include('<table class="lines">');
      expect(receipt.text).to.include('Tee, &quot;large&quot;');
      // The dashboard: the payment page and the CSV export.
      const owner = await signUpOwner(merchant);
      const show = await owner.agent.get(`/app/payments/${list[0].id}`).expect(200);
      expect(show.text).to.include('<h2>Items</h2>');
      expect(show.text).to.include('Tee, &quot;large&quot;');
      const csv = await owner.agent.get(`/app/payments.csv?link=${link.id}`).buffer(true).expect(200);
      expect(csv.text.split('\n')[0]).to.match(/,line_items\r?$/);
      expect(csv.text).to.include('"2 × Tee, ""large""; 1 × Mug"');
    });

    it('records a payment request’s line items with its payment too (one shape for both)', async () => {
      const req = (await call('post', '/payment_requests', { currency: 'EUR', line_items: [{ description: 'Consultation', quantity: 2, unit_amount: 4500 }, { description: 'Travel', unit_amount: 1200 }], customer: { name: 'Ann Example', email: 'ann@example.test' } }).expect(201)).body;
      await pay(await checkout(new URL(req.url).pathname, {}));
      const [p] = (await call('get', `/payments?link_id=${req.link_id}`).expect(200)).body.data;
      expect([p.amount, p.status]).to.deep.equal([10200, 'paid']);
      expect(p.line_items).to.deep.equal(req.line_items);
    });

    it('shows recurring products in their own section, lets the customer pick one, and says how a plan renews', async () => {
      const m = await apiMerchant(env, 'Plans');
      const c = apiClient(env.app, m.secret);
      const starter = await product(c, { name: 'Starter', price: 900, recurring: { interval: 'month' } });
      const pro = await product(c, { name: 'Pro', price: 9000, recurring: { interval: 'year', trial_days: 30 } });
      const kit = await product(c, { name: 'Welcome kit', price: 1500 });
      const link = await itemsLink(c, [{ product_id: starter.id, quantity: 1 }, { product_id: pro.id, quantity: 1 }, { product_id: kit.id, quantity: 1 }]);
      const url = `/${m.handle}/${link.path}`;
      const page = (await http().get(url).expect(200)).text;
      expect(page).to.include('<legend class="order-head">Items</legend>');
      expect(page).to.include('<legend class="order-head">Choose a plan</legend>');
      expect(page.match(/name="plan"/g)).to.have.length(3); // two plans and "No plan"
      expect(page).to.include('30-day free trial');
      expect(page).to.include('A plan renews automatically, charged to the same payment method, until it is canceled. You can cancel it from your receipt at any time.');
      const before = await count('payments');
      // A made-up plan is refused by the same field.
      expect(/id="plan-error">([^<]*)</.exec((await http().post(url).type('form').send({ ...CUSTOMER, plan: 'prod_forged' }).expect(422)).text)![1]).not.to.equal('');
      expect(await count('payments')).to.equal(before);
      // No plan: the one-time items are paid alone.
      await pay(await checkout(url, { plan: '' }));
      const payment = await env.rt.db('payments').orderBy('id', 'desc').first();
      expect([Number(payment.amount), payment.status]).to.deep.equal([1500, 'paid']);
    });

    it('takes a customer-chosen amount: a suggestion, or a typed one between min and max', async () => {
      const link = (await call('post', '/links', { type: 'amount', name: 'Tip jar', currency: 'EUR', custom_amount: { min: 500, max: 10000, suggested: [1000, 2500] } }).expect(201)).body;
      const url = `/${a.handle}/${link.path}`;
      const page = (await http().get(url).expect(200)).text;
      expect(page).to.include('name="amount" value="10.00"');
      expect(page).to.include('name="amount_other"');
      expect(page).to.include('From €5.00 to €100.00.');
      const amountError = (html: string) => /id="f-amount-error">([^<]*)</.exec(html)![1];
      for (const fields of [{ amount: '4.99' }, { amount_other: '100.01' }, {}, { amount: 'other' }, { amount_other: '1.001' }]) {
        const res = await http().post(url).type('form').send({ ...CUSTOMER, ...fields });
        expect(res.status, JSON.stringify(fields)).to.equal(422);
        expect(amountError(res.text), JSON.stringify(fields)).not.to.equal('');
      }
      for (const [fields, minor] of [[{ amount: '25.00' }, 2500], [{ amount: '10.00', amount_other: '42' }, 4200], [{ amount: '12.50' }, 1250]] as const) {
        await pay(await checkout(url, fields));
        const payment = await env.rt.db('payments').orderBy('id', 'desc').first();
        expect(Number(payment.amount), JSON.stringify(fields)).to.equal(minor);
      }
    });

    it('adds a customer-chosen amount to an items order (a donation): optional or required, bounded, on the lines and the payment', async () => {
      const ticket = await product(call, { name: 'Gala ticket', price: 4500 });
      const link = await itemsLink(call, [{ product_id: ticket.id, quantity: { min: 0, max: 4, default: 1 } }], { custom_amount: { min: 0, max: 50000, suggested: [1000, 2500], label: 'Donation' } });
      expect(link.custom_amount).to.deep.equal({ min: 0, max: 50000, suggested: [1000, 2500], label: 'Donation' });
      expect((await call('get', `/links/${link.id}`).expect(200)).body.custom_amount).to.deep.equal(link.custom_amount);
      const url = `/${a.handle}/${link.path}`;
      const page = (await http().get(url).expect(200)).text;
      expect(page).to.match(/<legend>Donation <span class="optional">\(optional\)<\/span><\/legend>/);
      expect(page).to.include('name="amount" value="25.00"');
      expect(page).to.include('You can add an amount of your choice.');
      expect(total(page)).to.equal('€45.00');
      // "Update total" with a donation picked: the order shows it and the total includes it; nothing is written.
      const before = await count('checkout_sessions');
      const updated = (await http().post(url).type('form').send({ [`quantity_${ticket.id}`]: '2', amount: '25.00', step: 'update' }).expect(200)).text;
      expect(total(updated)).to.equal('€115.00');
      expect(updated).to.match(/<p class="order-extra"><span class="order-name">Donation<\/span> <span class="order-total">€25.00<\/span><\/p>/);
      expect(await count('checkout_sessions')).to.equal(before);
      // Out of bounds: by the amount field, nothing written.
      for (const fields of [{ amount_other: '500.01' }, { amount_other: '1.001' }, { amount_other: 'lots' }]) {
        const res = await http().post(url).type('form').send({ ...CUSTOMER, [`quantity_${ticket.id}`]: '1', shown_total: '4500', ...fields });
        expect(res.status, JSON.stringify(fields)).to.equal(422);
        expect(/id="f-amount-error">([^<]*)</.exec(res.text)![1], JSON.stringify(fields)).not.to.equal('');
      }
      expect(await count('checkout_sessions')).to.equal(before);
      // Two tickets and a typed donation; then a donation alone (no ticket); then tickets alone (the donation is optional).
      for (const [fields, minor, lines] of [
        [{ [`quantity_${ticket.id}`]: '2', shown_total: '9000', amount: '10.00', amount_other: '12.34' }, 10234, [['Gala ticket', 2, 4500, ticket.id], ['Donation', 1, 1234, null]]],
        [{ [`quantity_${ticket.id}`]: '0', shown_total: '0', amount: '25.00' }, 2500, [['Donation', 1, 2500, null]]],
        [{ [`quantity_${ticket.id}`]: '1', shown_total: '4500' }, 4500, [['Gala ticket', 1, 4500, ticket.id]]],
      ] as const) {
        await pay(await checkout(url, fields as Record<string, string>));
        const payment = await env.rt.db('payments').orderBy('id', 'desc').first();
        expect(Number(payment.amount), JSON.stringify(fields)).to.equal(minor);
        const api = (await call('get', `/payments/${payment.public_id}`).expect(200)).body;
        expect(api.line_items.map((l: { description: string; quantity: number; unit_amount: number; product_id: string | null }) => [l.description, l.quantity, l.unit_amount, l.product_id ?? null])).to.deep.equal(lines);
      }
      // Nothing at all: no ticket and no donation.
      const empty = await http().post(url).type('form').send({ ...CUSTOMER, [`quantity_${ticket.id}`]: '0', shown_total: '0' });
      expect(empty.status).to.equal(422);
      expect(empty.text).to.include('Choose at least one item or an amount.');

      // A required amount (min > 0): the button names no total until it is chosen; missing → by the field.
      const required = (await call('patch', `/links/${link.id}`, { custom_amount: { min: 500, suggested: [] } }).expect(200)).body;
      expect(required.custom_amount).to.deep.equal({ min: 500, max: null, suggested: [], label: null });
      const page2 = (await http().get(url).expect(200)).text;
      expect(page2).to.include('<label for="f-amount">Amount of your choice</label>');
      expect(page2).to.include('Plus an amount of your choice.');
      expect(page2).to.include('class="pay-button">Continue to payment</button>');
      const missing = await http().post(url).type('form').send({ ...CUSTOMER, [`quantity_${ticket.id}`]: '1', shown_total: '4500' });
      expect(missing.status).to.equal(422);
      expect(/id="f-amount-error">([^<]*)</.exec(missing.text)![1]).to.equal('Choose or enter the amount you want to pay.');
      // And removed again: the order is the products alone.
      expect((await call('patch', `/links/${link.id}`, { custom_amount: null }).expect(200)).body.custom_amount).to.equal(null);
      expect((await http().get(url).expect(200)).text).not.to.include('f-amount');
    });

    it('keeps an items link with 5 lines under 30 KB of HTML and CSS', async () => {
      const m = await apiMerchant(env, 'Five lines');
      const c = apiClient(env.app, m.secret);
      const items = [];
      for (let i = 0; i < 5; i++) {
        const p = await product(c, { name: `Product number ${i + 1} with a longer name`, description: 'A description of the product that takes a line or two on a phone.', price: 1234 + i });
        items.push({ product_id: p.id, quantity: i % 2 ? 2 : { min: 0, max: 20, default: 1 } });
      }
      const link = await itemsLink(c, items, { description: 'Everything for the weekend.' });
      const html = (await http().get(`/${m.handle}/${link.path}`).expect(200)).text;
      const cssPath = /href="([^"]*pay[^"]*\.css)"/.exec(html)![1];
      const css = (await http().get(cssPath).expect(200)).text;
      expect(Buffer.byteLength(html) + Buffer.byteLength(css)).to.be.at.most(30 * 1024);
      expect(html).not.to.include('<script');
    });

    it('keeps the payment limit exact for an items link under concurrent payers', async function () {
      this.timeout(60_000);
      const p = await product(call, { name: 'Seat', price: 1000 });
      const link = await itemsLink(call, [{ product_id: p.id, quantity: { min: 1, max: 4 } }], { payment_limit: 3 });
      const cards: string[] = [];
      for (let i = 0; i < 8; i++) cards.push(await checkout(`/${a.handle}/${link.path}`, { [`quantity_${p.id}`]: String(1 + (i % 4)) }));
      await Promise.all(cards.map((card) => http().post(card).type('form').send({ card_number: '4242424242424242' })));
      const rows = await env.rt.db('payments').where({ link_id: (await env.rt.db('links').where({ public_id: link.id }).first()).id });
      expect(rows.filter((r) => r.status === 'paid')).to.have.length(3);
      expect(rows.filter((r) => r.status === 'voided')).to.have.length(5);
      const after = (await call('get', `/links/${link.id}`).expect(200)).body;
      expect([after.paid_count, after.active, after.inactive_reason]).to.deep.equal([3, false, 'limit_reached']);
    });
  });

  /** A dashboard login for an API merchant (an owner user on the same merchant). */
  async function signUpOwner(merchant: Merchant) {
    const password = 'correct horse battery';
    const user = await env.rt.db('users').where({ merchant_id: merchant.key }).first();
    const agent = supertest.agent(env.app);
    const login = await agent.get('/login').expect(200);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(login.text)![1];
    await agent.post('/login').type('form').send({ _csrf: csrf, email: user.email, password }).expect(303);
    return { agent };
  }
});

forEachTarget('checkout builder: steppers and the checkout rate limit', (target) => {
  let env: TestEnv;
  before(async () => {
    env = await build(target, { checkoutLimits: { perIp: { points: 2, durationSec: 600 } } });
  });
  after(() => env?.close());

  it('does not count quantity steps as checkout attempts (they write nothing)', async () => {
    const m = await apiMerchant(env, 'Stepper');
    const { merchant } = m;
    const p = await env.rt.services.products.create(merchant.key, { name: 'Cookie', price: 150, currency: 'EUR' });
    const link = await env.rt.services.links.create(merchant, { type: 'items', name: 'Cookies', items: [{ product_id: p.id, quantity: { min: 1, max: 50 } }] });
    const url = `/${m.handle}/${link.path}`;
    let q = 1;
    for (let i = 0; i < 10; i++) {
      const res = await supertest(env.app).post(url).type('form').send({ [`quantity_${p.id}`]: String(q), step: `${p.id}:+1` }).expect(200);
      q = Number(new RegExp(`id="q-${p.id}"[^>]* value="([^"]*)"`).exec(res.text)![1]);
    }
    expect(q).to.equal(11);
    // Checkouts still count: the third from this address is refused.
    for (const status of [303, 303, 429]) await supertest(env.app).post(url).type('form').send({ ...CUSTOMER, [`quantity_${p.id}`]: '2' }).expect(status);
  });
});
