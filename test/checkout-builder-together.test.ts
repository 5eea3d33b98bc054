/**
 * The checkout builder's parts together: a coupon on an items link (applied to the order's total as
 * the server prices it, shown before paying, recorded with the line items) and on a customer-chosen
 * amount; what the checkout collects alongside an order.
 */
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { twoApiMerchants, type ApiCall } from './support/api.ts';
import type { TestEnv } from './support/harness.ts';

forEachTarget('checkout builder: items, coupons and collected fields together', (target) => {
  let env: TestEnv;
  let call: ApiCall;
  const http = () => supertest(env.app);
  before(async () => {
    ({ env, call } = await twoApiMerchants(target, ['Corner Shop', 'Other Shop']));
  });
  after(() => env?.close());

  const pathOf = (link: { url: string }) => new URL(link.url).pathname;

  it('applies a coupon to an items order’s total, shows it before paying, and records both', async () => {
    const tee = (await call('post', '/products', { name: 'Tee', price: 2000, currency: 'EUR' }).expect(201)).body;
    const mug = (await call('post', '/products', { name: 'Mug', price: 900, currency: 'EUR' }).expect(201)).body;
    const link = (await call('post', '/links', { type: 'items', name: 'Shop order', items: [{ product_id: tee.id, quantity: 2 }, { product_id: mug.id, quantity: { min: 0, max: 5, default: 1 } }], allow_coupons: true, collect: { phone: 'off', address: false, instructions: true, terms_url: null, custom_fields: [{ key: 'size', label: 'Size', type: 'dropdown', required: true, options: ['S', 'M', 'L'] }] } }).expect(201)).body;
    await call('post', '/coupons', { code: 'TENOFF', percent_off: 10, max_redemptions: 5 }).expect(201);

    // Apply with 3 mugs: 2 × 20.00 + 3 × 9.00 = 67.00, less 10 % = 60.30; nothing is written.
    const applied = await http().post(pathOf(link)).type('form').send({ name: 'Ann', email: 'ann@example.test', [`quantity`]: '3', coupon: 'tenoff', apply: '1' });
    expect(applied.status, applied.text.slice(0, 400)).to.equal(200);
    expect(applied.text).to.include('€67.00').and.to.include('€60.30');
    expect(Number((await env.rt.db('checkout_sessions').count({ n: '*' }).first())!.n)).to.equal(0);

    // Pay: a required field missing comes back by its field, the coupon still applied.
    const missing = await http().post(pathOf(link)).type('form').send({ name: 'Ann', email: 'ann@example.test', quantity: '3', coupon: 'TENOFF' });
    expect(missing.status).to.equal(422);
    expect(missing.text).to.match(/Size/).and.to.include('€60.30');
    const res = await http().post(pathOf(link)).type('form').send({ name: 'Ann', email: 'ann@example.test', quantity: '3', coupon: 'TENOFF', 'fields[size]': 'M', instructions: 'Gift wrap' });
    expect(res.status, res.text.slice(0, 400)).to.equal(303);
    await http().post(new URL(res.headers.location).pathname).type('form').send({ card_number: '4242 4242 4242 4242' }).expect(303);
    const [payment] = (await call('get', `/payments?link_id=${link.id}`).expect(200)).body.data;
    expect(payment).to.deep.include({ status: 'paid', amount: 6030, fields: { size: 'M' }, instructions: 'Gift wrap' });
    expect(payment.discount).to.deep.include({ code: 'TENOFF', amount_before: 6700, amount_off: 670 });
    expect(payment.line_items.map((l: { quantity: number; unit_amount: number }) => [l.quantity, l.unit_amount])).to.deep.equal([[2, 2000], [3, 900]]);
  });

  it('applies a coupon to a customer-chosen amount', async () => {
    const link = (await call('post', '/links', { type: 'amount', name: 'Donation', currency: 'EUR', custom_amount: { min: 500, max: 50000, suggested: [1000, 2500] }, allow_coupons: true }).expect(201)).body;
    await call('post', '/coupons', { code: 'FIVER', amount_off: 500, currency: 'EUR' }).expect(201);
    const applied = await http().post(pathOf(link)).type('form').send({ name: 'Ann', email: 'ann@example.test', amount: '25.00', coupon: 'FIVER', apply: '1' });
    expect(applied.status, applied.text.slice(0, 400)).to.equal(200);
    expect(applied.text).to.include('€20.00');
    const res = await http().post(pathOf(link)).type('form').send({ name: 'Ann', email: 'ann@example.test', amount: '25.00', coupon: 'FIVER' }).expect(303);
    await http().post(new URL(res.headers.location).pathname).type('form').send({ card_number: '4242 4242 4242 4242' }).expect(303);
    const [payment] = (await call('get', `/payments?link_id=${link.id}`).expect(200)).body.data;
    expect(payment).to.deep.include({ status: 'paid', amount: 2000 });
  });
});
