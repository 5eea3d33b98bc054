/**
 * Checkout builder in the dashboard and in Chromium: a recurring product through the product form,
 * an items link through the link form without JavaScript (one-time and recurring products in their
 * own sections, messages by the product's row), a customer-chosen amount through the form; then the
 * items pay page at 390 and 1280 px: steppers that work with a click, no serious axe violation.
 */
import { expect } from 'chai';
import { forEachTarget } from './support/targets.ts';
import { build, csrfFrom, signUp, uniqueHandle, type Account, type TestEnv } from './support/harness.ts';
import { DESKTOP, PHONE, serve, servedMerchant, useBrowser, type ServedEnv } from './support/browser.ts';
import { axeProblems } from './support/axe.ts';

forEachTarget('dashboard: items links and recurring products', (target) => {
  let env: TestEnv;
  let acct: Account;
  let csrf: string;

  before(async () => {
    env = await build(target);
    acct = await signUp(env.app);
    csrf = acct.csrf;
  });
  after(() => env?.close());

  const merchant = async () => (await env.rt.services.merchants.getByHandle(acct.handle))!;

  it('adds a recurring product through the form, with a message by the field for a period over a year', async () => {
    const bad = await acct.agent.post('/app/products').type('form').send({ _csrf: csrf, name: 'Club', price: '15.00', currency: 'EUR', active: 'on', interval: 'week', interval_count: '60', trial_days: '' }).expect(422);
    expect(/id="f-recurring-error">([^<]*)</.exec(bad.text)![1]).to.include('at most 52 weeks');
    await acct.agent.post('/app/products').type('form').send({ _csrf: csrf, name: 'Club', price: '15.00', currency: 'EUR', active: 'on', interval: 'month', interval_count: '1', trial_days: '7' }).expect(303);
    const list = await acct.agent.get('/app/products').expect(200);
    expect(list.text).to.include('every month');
    const [club] = (await env.rt.services.products.list((await merchant()).key)).data.filter((p) => p.name === 'Club');
    expect(club.recurring).to.deep.equal({ interval: 'month', count: 1, trialDays: 7 });
  });

  it('creates an items link through the form, without JavaScript', async () => {
    const m = await merchant();
    const tee = await env.rt.services.products.create(m.key, { name: 'Tee', price: 2000, currency: 'EUR' });
    const cap = await env.rt.services.products.create(m.key, { name: 'Cap', price: 1500, currency: 'EUR' });
    const form = await acct.agent.get('/app/links/new?type=items').expect(200);
    expect(form.text).to.include('<legend>One-time products</legend>');
    expect(form.text).to.include('<legend>Recurring products</legend>');
    expect(form.text.indexOf('Tee')).to.be.lessThan(form.text.indexOf('<legend>Recurring products</legend>'));
    const base = { _csrf: csrfFrom(form.text), type: 'items', name: 'Merch bundle', limit: 'unlimited', active: 'on', [`qty_mode_${tee.id}`]: 'choose', [`qty_min_${tee.id}`]: '1', [`qty_max_${tee.id}`]: '5', [`qty_default_${tee.id}`]: '2', [`qty_mode_${cap.id}`]: 'fixed', [`qty_${cap.id}`]: '1' };
    // A max under its min: the message is by that product's row, and nothing is written.
    const before = (await env.rt.services.links.list(m, {})).data.length;
    const bad = await acct.agent.post('/app/links').type('form').send(`${new URLSearchParams({ ...base, [`qty_max_${tee.id}`]: '0' })}&item=${tee.id}&item=${cap.id}`).expect(422);
    expect(/id="f-item-[^"]+-error">([^<]*)</.exec(bad.text.slice(bad.text.indexOf(`value="${tee.id}"`)))![1]).not.to.equal('');
    expect((await env.rt.services.links.list(m, {})).data.length).to.equal(before);
    const none = await acct.agent.post('/app/links').type('form').send(new URLSearchParams(base).toString()).expect(422);
    expect(none.text).to.include('An items link needs at least one product.');
    const ok = await acct.agent.post('/app/links').type('form').send(`${new URLSearchParams(base)}&item=${tee.id}&item=${cap.id}`).expect(303);
    const link = await env.rt.services.links.get(m, ok.headers.location.split('/').pop()!);
    expect(link.items.map((i) => [i.product.name, i.quantity])).to.deep.equal([['Tee', { min: 1, max: 5, default: 2 }], ['Cap', 1]]);
    // The link's page and the Links list say what it sells.
    const show = await acct.agent.get(`/app/links/${link.id}`).expect(200);
    expect(show.text).to.include('Items link');
    expect(show.text).to.include('Tee — 1–5 (customer chooses) × €20.00');
    expect((await acct.agent.get('/app/links').expect(200)).text).to.include('2 products');
    // The edit form shows the picker as saved.
    const edit = await acct.agent.get(`/app/links/${link.id}/edit`).expect(200);
    expect(edit.text).to.match(new RegExp(`name="item" value="${tee.id}" checked`));
    expect(edit.text).to.match(new RegExp(`name="qty_max_${tee.id}"[^>]*value="5"`));
  });

  it('lets the merchant make an amount link where the customer chooses the amount', async () => {
    const m = await merchant();
    const form = await acct.agent.get('/app/links/new?type=amount').expect(200);
    const base = { _csrf: csrfFrom(form.text), type: 'amount', name: 'Tips', currency: 'EUR', amount: '', amount_mode: 'custom', amount_min: '2', amount_max: '200', limit: 'unlimited', active: 'on' };
    const bad = await acct.agent.post('/app/links').type('form').send({ ...base, amount_suggested: '5 500' }).expect(422);
    expect(/id="f-amount_suggested-error">([^<]*)</.exec(bad.text)![1]).to.include('between');
    const ok = await acct.agent.post('/app/links').type('form').send({ ...base, amount_suggested: '5, 10 20' }).expect(303);
    const link = await env.rt.services.links.get(m, ok.headers.location.split('/').pop()!);
    expect([link.amount, link.customAmount]).to.deep.equal([null, { min: 200, max: 20000, suggested: [500, 1000, 2000] }]);
  });
});

describe('an items pay page in a browser', () => {
  const browser = useBrowser();
  let env: ServedEnv;
  let url: string;
  let tipUrl: string;

  before(async function () {
    this.timeout(30_000);
    env = await serve((await import('./support/targets.ts')).TARGETS[0]);
    const handle = uniqueHandle('itemsb');
    const { merchant } = await env.rt.services.merchants.signUp({ name: 'Ferngully Coffee Roasters', handle, email: `${handle}@example.test`, password: 'correct horse battery' }, {});
    const p = (name: string, price: number, extra: Record<string, unknown> = {}) => env.rt.services.products.create(merchant.key, { name, price, currency: 'EUR', ...extra });
    const beans = await p('Ethiopia Yirgacheffe, 1 kg', 3450, { description: 'Washed, light roast.' });
    const filters = await p('Paper filters (100)', 499);
    const mug = await p('Enamel mug', 1200);
    const monthly = await p('Beans every month', 2900, { recurring: { interval: 'month' } });
    const yearly = await p('Beans every month, paid yearly', 29000, { recurring: { interval: 'year', trial_days: 14 } });
    const l = await env.rt.services.links.create(merchant, {
      type: 'items',
      name: 'Office coffee order',
      description: 'Roasted on Monday, delivered on Wednesday.',
      items: [
        { product_id: beans.id, quantity: { min: 1, max: 10, default: 2 } },
        { product_id: filters.id, quantity: 1 },
        { product_id: mug.id, quantity: { min: 0, max: 6, default: 0 } },
        { product_id: monthly.id, quantity: 1 },
        { product_id: yearly.id, quantity: 1 },
      ],
    });
    url = `${env.origin}/${handle}/${l.path}`;
    const tip = await env.rt.services.links.create(merchant, { type: 'amount', name: 'Tip the roasters', custom_amount: { min: 200, max: 10000, suggested: [300, 500, 1000] } });
    tipUrl = `${env.origin}/${handle}/${tip.path}`;
  });
  after(() => env?.close());

  for (const [label, viewport, shot] of [['a desktop', DESKTOP, 'items-pay-desktop'], ['a phone', PHONE, 'items-pay-phone']] as const) {
    it(`steps a quantity with a click on ${label}, re-priced on the server, and passes axe`, async () => {
      const tab = await browser().newPage({ viewport });
      try {
        await tab.page.goto(url);
        expect(await tab.page.locator('.order-sum .amount-value').textContent()).to.equal('€73.99');
        await tab.page.getByRole('button', { name: 'One more Ethiopia Yirgacheffe, 1 kg' }).click();
        await tab.page.waitForLoadState('load');
        expect(await tab.page.locator('.order-sum .amount-value').textContent()).to.equal('€108.49');
        expect(await tab.page.getByRole('spinbutton', { name: 'Quantity of Ethiopia Yirgacheffe, 1 kg' }).inputValue()).to.equal('3');
        expect(await tab.page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).to.equal(true);
        await tab.screenshot(shot);
        expect(await axeProblems(tab.page)).to.deep.equal([]);
        tab.assertClean();
      } finally {
        await tab.close();
      }
    });
  }

  it('offers suggested amounts as one tap each, and passes axe', async () => {
    const tab = await browser().newPage({ viewport: PHONE });
    try {
      await tab.page.goto(tipUrl);
      await tab.page.getByRole('radio', { name: '€5.00' }).check();
      await tab.screenshot('custom-amount-phone');
      expect(await axeProblems(tab.page)).to.deep.equal([]);
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });
});

describe('the items link form in a browser', () => {
  const browser = useBrowser();
  let env: ServedEnv;
  let storageState: Awaited<ReturnType<Awaited<ReturnType<ReturnType<typeof browser>['newPage']>>['context']['storageState']>>;

  before(async function () {
    this.timeout(30_000);
    let merchant;
    ({ env, storageState, merchant } = await servedMerchant(browser(), { name: 'Harbour Bikes', handlePrefix: 'itemsf' }));
    await env.rt.services.products.create(merchant.key, { name: 'Inner tube', price: 899, currency: 'EUR' });
    await env.rt.services.products.create(merchant.key, { name: 'Bike service', price: 4500, currency: 'EUR' });
    await env.rt.services.products.create(merchant.key, { name: 'Repair club', price: 1500, currency: 'EUR', recurring: { interval: 'month' } });
  });
  after(() => env?.close());

  for (const [label, viewport, shot] of [['a desktop', DESKTOP, 'items-form-desktop'], ['a phone', PHONE, 'items-form-phone']] as const) {
    it(`creates an items link from the picker on ${label}, and passes axe`, async () => {
      const tab = await browser().newPage({ storageState, viewport });
      try {
        await tab.page.goto(`${env.origin}/app/links/new?type=items`);
        await tab.page.getByLabel('Name', { exact: true }).fill(`Tune-up ${label}`);
        await tab.page.getByRole('checkbox', { name: /Inner tube/ }).check();
        await tab.page.getByRole('checkbox', { name: /Bike service/ }).check();
        await tab.screenshot(shot);
        expect(await axeProblems(tab.page)).to.deep.equal([]);
        expect(await tab.page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).to.equal(true);
        await tab.page.getByRole('button', { name: 'Create link' }).click();
        await tab.page.waitForURL(/\/app\/links\/lnk_/);
        expect(await tab.page.locator('body').textContent()).to.include('Inner tube — 1 ×');
        tab.assertClean();
      } finally {
        await tab.close();
      }
    });
  }

  for (const [label, viewport, tag] of [['a desktop', DESKTOP, '1280'], ['a phone', PHONE, '390']] as const) {
    it(`adds custom-field rows with "Add more fields" on ${label}, and Enter in a field saves the link`, async () => {
      const tab = await browser().newPage({ storageState, viewport });
      try {
        await tab.page.goto(`${env.origin}/app/links/new?type=items`);
        await tab.page.getByLabel('Name', { exact: true }).fill(`Workshop ${label}`);
        await tab.page.getByRole('checkbox', { name: /Bike service/ }).check();
        await tab.page.locator('#f-cf_label_0').fill('Bike model');
        await tab.page.locator('#f-cf_label_1').fill('Frame size');
        await tab.page.getByRole('button', { name: 'Add more fields' }).click();
        await tab.page.waitForURL(/#f-custom-fields$/);
        expect(await tab.page.locator('.custom-field-row').count()).to.equal(4);
        expect(await tab.page.locator('#f-cf_label_1').inputValue()).to.equal('Frame size');
        // The preview follows the posted form at once (not the blank new link's).
        await tab.page.frameLocator('#link-preview iframe').locator('h1', { hasText: `Workshop ${label}` }).waitFor({ state: 'attached' });
        // The first new row has the focus, in view: where the merchant types next.
        expect(await tab.page.evaluate('document.activeElement.id')).to.equal('f-cf_label_2');
        expect(await tab.page.evaluate('(() => { const r = document.activeElement.getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight; })()')).to.equal(true);
        await tab.screenshot(`link-form-more-fields-${tag}`);
        expect(await axeProblems(tab.page)).to.deep.equal([]);
        await tab.page.keyboard.type('Preferred day');
        await tab.page.locator('#f-cf_label_2').press('Enter');
        await tab.page.waitForURL(/\/app\/links\/lnk_[^/]+$/);
        const id = new URL(tab.page.url()).pathname.split('/').pop()!;
        const link = await env.rt.db('links').where({ public_id: id }).first();
        expect(JSON.parse(link.collect).custom_fields.map((f: { label: string }) => f.label)).to.deep.equal(['Bike model', 'Frame size', 'Preferred day']);
        tab.assertClean();
      } finally {
        await tab.close();
      }
    });
  }
});
