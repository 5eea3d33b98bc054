// One ceiling per currency for every amount a person or an integration gives (core/money.ts
// maxAmount): by default one million of the currency's major units (€1,000,000.00, ¥1,000,000,
// KWD 1,000,000.000), overridable with PAYLINK_MAX_AMOUNT, and said formatted ("at most €5,000.00")
// on every path: links, products, payment requests, Text-to-Pay, the open-amount pay page, the CSV
// import of requests. Refunds are bounded by what is left of their payment, not by the ceiling.
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { fieldError, signUp, useEnv, uniqueHandle } from './support/harness.ts';
import { apiClient, apiMerchant, expectFieldErrors } from './support/api.ts';
import { loadConfig, ConfigError } from '../src/config.ts';
import { configureMaxAmounts, maxAmount, parseDecimalAmount, parseMaxAmounts } from '../src/core/money.ts';

describe('amount ceilings (core/money.ts)', () => {
  afterEach(() => configureMaxAmounts(null));

  it('defaults to one million major units, scaled by the currency’s digits', () => {
    configureMaxAmounts(null);
    expect(maxAmount('EUR')).to.equal(100_000_000);
    expect(maxAmount('JPY')).to.equal(1_000_000);
    expect(maxAmount('KWD')).to.equal(1_000_000_000);
  });

  it('refuses a typed amount over the ceiling with the ceiling formatted, and takes the ceiling itself', () => {
    configureMaxAmounts(null);
    expect(parseDecimalAmount('1000000.00', 'EUR')).to.deep.equal({ ok: true, minor: 100_000_000 });
    expect(parseDecimalAmount('1000000.01', 'EUR')).to.deep.equal({ ok: false, code: 'amount_too_large', message: 'The amount can be at most €1,000,000.00.' });
    expect(parseDecimalAmount('99999999999', 'JPY')).to.deep.equal({ ok: false, code: 'amount_too_large', message: 'The amount can be at most ¥1,000,000.' });
    expect(parseDecimalAmount('9'.repeat(30), 'EUR')).to.deep.include({ ok: false, code: 'amount_too_large' });
    // A refund is bounded by its payment instead.
    expect(parseDecimalAmount('2000000', 'EUR', { ceiling: false })).to.deep.equal({ ok: true, minor: 200_000_000 });
  });

  it('reads PAYLINK_MAX_AMOUNT: every currency, one currency, both; refuses what is not a ceiling', () => {
    expect(parseMaxAmounts('250000')).to.deep.equal({ ok: true, value: { all: 250_000, byCurrency: {} } });
    expect(parseMaxAmounts('eur=5000.50, JPY = 2000000')).to.deep.equal({ ok: true, value: { all: null, byCurrency: { EUR: 500_050, JPY: 2_000_000 } } });
    const both = parseMaxAmounts('100, KWD=3');
    if (!both.ok) throw new Error(both.message);
    configureMaxAmounts(both.value);
    expect(maxAmount('USD')).to.equal(10_000);
    expect(maxAmount('JPY')).to.equal(100);
    expect(maxAmount('KWD')).to.equal(3_000);
    for (const bad of ['EUR=', 'XXX=5', 'EUR=12.345', 'JPY=10.5', '-5', '0', 'EUR=99999999999999', 'lots']) {
      expect(parseMaxAmounts(bad).ok, bad).to.equal(false);
    }
    let err: unknown;
    try {
      loadConfig({ PAYLINK_MAX_AMOUNT: 'EUR=abc' });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(ConfigError);
    expect((err as ConfigError).problems.map((p) => p.variable)).to.deep.equal(['PAYLINK_MAX_AMOUNT']);
    expect(loadConfig({ PAYLINK_MAX_AMOUNT: 'EUR=5000' }).maxAmounts).to.deep.equal({ all: null, byCurrency: { EUR: 500_000 } });
  });
});

forEachTarget('amount ceilings: the default, on the API and the open-amount page', (target) => {
  const env = useEnv(target, { apiLimit: { points: 100_000, durationSec: 60 } });

  it('refuses ¥99,999,999,999 for a link (it was accepted), saying the ceiling formatted; the ceiling itself is fine', async () => {
    const a = await apiMerchant(env, 'Yen Shop', { currency: 'JPY' });
    const call = apiClient(env.app, a.secret);
    const body = expectFieldErrors(await call('post', '/links', { type: 'amount', name: 'Big', amount: 99_999_999_999, currency: 'JPY' }), ['amount']);
    expect(body.errors[0]).to.deep.equal({ field: 'amount', code: 'amount_too_large', message: 'The amount can be at most ¥1,000,000.' });
    await call('post', '/links', { type: 'amount', name: 'Max', amount: 1_000_000, currency: 'JPY' }).expect(201);
  });

  it('the open-amount page says the ceiling formatted, not "1000000.00 EUR"', async () => {
    const handle = uniqueHandle('open');
    await env.rt.services.merchants.signUp({ name: 'Open Shop', handle, email: `${handle}@example.test`, password: 'correct horse battery' });
    const res = await supertest(env.app).post(`/${handle}`).type('form').send({ name: 'Ann', email: 'ann@example.test', amount: '1000000.01' }).expect(422);
    expect(/id="f-amount-error"[^>]*>([^<]*)</.exec(res.text)![1]).to.equal('The amount can be at most €1,000,000.00.');
    expect(res.text).not.to.include('1000000.00 EUR');
  });
});

forEachTarget('amount ceilings: PAYLINK_MAX_AMOUNT on every path', (target) => {
  const env = useEnv(target, { apiLimit: { points: 100_000, durationSec: 60 }, env: { PAYLINK_MAX_AMOUNT: 'EUR=5000,JPY=200000' } });
  // The ceilings are the process's: leave the defaults to the suites that follow.
  after(() => configureMaxAmounts(null));
  const OVER = { field: 'amount', code: 'amount_too_large', message: 'The amount can be at most €5,000.00.' };

  it('links (create and edit), products and payment requests over the ceiling → 422 with the ceiling; at it → created', async () => {
    const a = await apiMerchant(env, 'Ceiling Shop');
    const call = apiClient(env.app, a.secret);
    expect(expectFieldErrors(await call('post', '/links', { type: 'amount', name: 'Over', amount: 500_001 }), ['amount']).errors).to.deep.equal([OVER]);
    const link = (await call('post', '/links', { type: 'amount', name: 'At', amount: 500_000 }).expect(201)).body;
    expect(expectFieldErrors(await call('patch', `/links/${link.id}`, { amount: 500_001 }), ['amount']).errors).to.deep.equal([OVER]);
    // Another currency has its own ceiling: ¥200,000.
    expect(expectFieldErrors(await call('patch', `/links/${link.id}`, { currency: 'JPY', amount: 200_001 }), ['amount']).errors[0].message).to.equal('The amount can be at most ¥200,000.');
    await call('patch', `/links/${link.id}`, { name: 'Renamed' }).expect(200);

    const product = expectFieldErrors(await call('post', '/products', { name: 'Gold', price: 500_001, currency: 'EUR' }), ['price']);
    expect(product.errors).to.deep.equal([{ ...OVER, field: 'price' }]);
    const p = (await call('post', '/products', { name: 'Silver', price: 500_000, currency: 'EUR' }).expect(201)).body;
    expectFieldErrors(await call('patch', `/products/${p.id}`, { price: 600_000 }), ['price']);

    const req = expectFieldErrors(await call('post', '/payment_requests', { amount: 500_001, currency: 'EUR', customer: { name: 'Ann', email: 'ann@example.test' } }), ['amount']);
    expect(req.errors).to.deep.equal([OVER]);
    await call('post', '/payment_requests', { amount: 500_000, currency: 'EUR', customer: { name: 'Ann', email: 'ann@example.test' } }).expect(201);
    // Text-to-Pay to a customer.
    const customer = (await call('post', '/customers', { name: 'Bo', phone: '+31612345678' }).expect(201)).body;
    expectFieldErrors(await call('post', `/customers/${customer.id}/payment_requests`, { amount: 500_001 }), ['amount']);
  });

  it('dashboard forms and the open-amount page say the configured ceiling by the field', async () => {
    const acct = await signUp(env.app);
    const post = (url: string, fields: Record<string, unknown>) => acct.agent.post(url).type('form').send({ _csrf: acct.csrf, ...fields });
    const link = await post('/app/links', { type: 'amount', name: 'Big', amount: '5000.01', currency: 'EUR', limit: 'unlimited', redirect_target: 'same', active: 'on' }).expect(422);
    expect(fieldError(link.text, 'amount')).to.equal(OVER.message);
    const product = await post('/app/products', { name: 'Gold', price: '5,000.01', currency: 'EUR' }).expect(422);
    expect(fieldError(product.text, 'price')).to.not.equal('');
    const product2 = await post('/app/products', { name: 'Gold', price: '5000.01', currency: 'EUR' }).expect(422);
    expect(fieldError(product2.text, 'price')).to.equal(OVER.message);
    const page = await supertest(env.app).post(`/${acct.handle}`).type('form').send({ name: 'Ann', email: 'ann@example.test', amount: '5000.01' }).expect(422);
    expect(/id="f-amount-error"[^>]*>([^<]*)</.exec(page.text)![1]).to.equal(OVER.message);
    await supertest(env.app).get(`/${acct.handle}/5000.01`).expect(404);
    await supertest(env.app).get(`/${acct.handle}/5000.00`).expect(200);
    // A link made before the ceiling was lowered keeps working: renamed through the form and the API,
    // its amount left alone; changing the amount is held to the ceiling.
    const m = (await env.rt.services.merchants.getByHandle(acct.handle))!;
    configureMaxAmounts(null);
    let old: Awaited<ReturnType<typeof env.rt.services.links.create>>;
    try {
      old = await env.rt.services.links.create(m, { type: 'amount', name: 'Old big', amount: 600_000, path: 'old-big' });
    } finally {
      configureMaxAmounts(env.config.maxAmounts);
    }
    const edit = (fields: Record<string, string>) =>
      post(`/app/links/${old.id}`, { name: 'Old big, renamed', path: 'old-big', amount: '6000.00', currency: 'EUR', description: '', internal_notes: '', limit: 'unlimited', limit_count: '', redirect_url: '', redirect_target: 'same', active: 'on', ...fields });
    await edit({}).expect(303);
    expect((await env.rt.services.links.get(m, old.id)).name).to.equal('Old big, renamed');
    expect(fieldError((await edit({ amount: '6000.01' }).expect(422)).text, 'amount')).to.equal(OVER.message);
    // The request import holds each row to the ceiling too.
    const csv = 'amount,currency,customer_name,customer_email\n5000.01,EUR,Ann,ann@example.test\n';
    const imp = await post('/app/requests/import', { csv });
    expect(imp.status).to.equal(422);
    expect(imp.text).to.include('The amount can be at most €5,000.00.');
  });
});
