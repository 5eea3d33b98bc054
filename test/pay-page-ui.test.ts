/**
 * The pay page as a customer and a merchant meet it (issue 14 item 9): the price said once on a
 * product link; a link sent to a known customer (signed `?c=`) fills in their name and email, while
 * a plain visit reads no customer at all; "Cancel and go back" from the card page returns to the
 * very page the customer left, with what they typed; a link that reached its payment limit is good
 * news on the merchant's dashboard, not a red error. Then the page in Chromium: two columns on a
 * desktop, one on a phone, no serious axe violation.
 */
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, signUp, uniqueHandle, type TestEnv } from './support/harness.ts';
import { DESKTOP, PHONE, serve, useBrowser, type ServedEnv } from './support/browser.ts';
import { axeProblems } from './support/axe.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';

/** An input's value attribute on a page ('' when it has none). */
const valueOf = (html: string, id: string): string => {
  const tag = new RegExp(`<input id="${id}"[^>]*>`).exec(html)?.[0];
  if (!tag) throw new Error(`no input #${id}`);
  return /\svalue="([^"]*)"/.exec(tag)?.[1] ?? '';
};

forEachTarget('pay pages for customers and merchants', (target) => {
  let env: TestEnv;
  let shop: Merchant;
  const http = () => supertest(env.app);

  before(async () => {
    env = await build(target);
    const handle = uniqueHandle('payui');
    ({ merchant: shop } = await env.rt.services.merchants.signUp({ name: 'Corner Bakery', handle, email: `${handle}@example.test`, password: 'correct horse battery' }, {}));
  });
  after(() => env?.close());

  /** SQL the app runs while `fn` runs. */
  async function queriesDuring(fn: () => Promise<unknown>): Promise<string[]> {
    const seen: string[] = [];
    const on = (q: { sql: string }) => seen.push(q.sql);
    env.rt.db.on('query', on);
    try {
      await fn();
    } finally {
      env.rt.db.off('query', on);
    }
    return seen;
  }

  it('says a product link’s price once: the product line and the Pay button, no “Amount due” repeating it', async () => {
    const product = await env.rt.services.products.create(shop.key, { name: 'Sourdough loaf', price: 650, currency: 'EUR' });
    const l = await env.rt.services.links.create(shop, { type: 'product', name: 'Bread club', product_id: product.id });
    const res = await http().get(`/${shop.handle}/${l.path}`).expect(200);
    expect(res.text).not.to.include('Amount due');
    expect(res.text.match(/€6\.50/g)).to.have.length(2);
    expect(res.text).to.include('Pay €6.50');
    // An amount link has no product line: its amount is still said above the form.
    const a = await env.rt.services.links.create(shop, { type: 'amount', name: 'Cake', amount: 3900 });
    expect((await http().get(`/${shop.handle}/${a.path}`).expect(200)).text).to.include('Amount due');
  });

  it('fills in the name and email of the customer a link was sent to (signed ?c=), and of no one for a forged one', async () => {
    const jane = await env.rt.services.customers.create(shop.key, { name: 'Jane Doe', email: 'jane@example.test' });
    const l = await env.rt.services.links.create(shop, { type: 'amount', name: 'Class pass', amount: 3900 });
    const token = env.rt.tokens.recipient(jane.id);
    const sent = await http().get(`/${shop.handle}/${l.path}?c=${encodeURIComponent(token)}`).expect(200);
    expect(valueOf(sent.text, 'f-name')).to.equal('Jane Doe');
    expect(valueOf(sent.text, 'f-email')).to.equal('jane@example.test');
    expect(sent.headers['cache-control']).to.equal('no-store');
    // The checkout still carries who it is for.
    expect(sent.text).to.include(`action="/${shop.handle}/${l.path}?c=${encodeURIComponent(token)}"`);
    for (const forged of [`${jane.id}.AAAAAAAAAAAAAAAAAAAAAA`, `${token}x`, 'cus_nobody']) {
      const res = await http().get(`/${shop.handle}/${l.path}?c=${encodeURIComponent(forged)}`).expect(200);
      expect(valueOf(res.text, 'f-name'), forged).to.equal('');
      expect(valueOf(res.text, 'f-email'), forged).to.equal('');
    }
    // Another merchant's customer, with a valid signature: not theirs to show here.
    const other = await env.rt.services.merchants.signUp({ name: 'Elsewhere', handle: uniqueHandle('else'), email: `${uniqueHandle('e')}@example.test`, password: 'correct horse battery' }, {});
    const stranger = await env.rt.services.customers.create(other.merchant.key, { name: 'Sam Stranger', email: 'sam@example.test' });
    const res = await http().get(`/${shop.handle}/${l.path}?c=${encodeURIComponent(env.rt.tokens.recipient(stranger.id))}`).expect(200);
    expect(valueOf(res.text, 'f-name')).to.equal('');
  });

  it('reads no customer and no checkout for an anonymous visit (the hot path)', async () => {
    const l = await env.rt.services.links.create(shop, { type: 'amount', name: 'Hot path', amount: 500 });
    await http().get(`/${shop.handle}/${l.path}`).expect(200); // warm the caches
    const sql = await queriesDuring(() => http().get(`/${shop.handle}/${l.path}`).expect(200));
    expect(sql.filter((q) => /customers|checkout_sessions/.test(q))).to.deep.equal([]);
  });

  describe('“Cancel and go back” from the card page', () => {
    /** Starts a checkout from `page` with `fields`, opens the card page and follows its back link. */
    async function cancelFrom(page: string, fields: Record<string, string>): Promise<{ back: string; html: string }> {
      const start = await http().post(page).type('form').send(fields);
      expect(start.status, start.text.slice(0, 300)).to.equal(303);
      const card = await http().get(new URL(start.headers.location, 'http://x').pathname).expect(200);
      const href = /<a href="([^"]+)">Cancel and go back<\/a>/.exec(card.text)![1].replace(/&amp;/g, '&');
      const back = new URL(href);
      expect(back.origin).to.equal(new URL(env.config.baseUrl).origin);
      return { back: back.pathname + back.search, html: (await http().get(back.pathname + back.search).expect(200)).text };
    }

    it('returns to the link’s page with the name and email typed', async () => {
      const l = await env.rt.services.links.create(shop, { type: 'amount', name: 'Tasting', amount: 2500 });
      const { back, html } = await cancelFrom(`/${shop.handle}/${l.path}`, { name: 'Cy Typed', email: 'cy.typed@example.test' });
      expect(back).to.match(new RegExp(`^/${shop.handle}/${l.path}\\?`));
      expect(valueOf(html, 'f-name')).to.equal('Cy Typed');
      expect(valueOf(html, 'f-email')).to.equal('cy.typed@example.test');
    });

    it('returns to the open-amount page with the amount typed, and to a sent link with its ?c= kept', async () => {
      const open = await cancelFrom(`/${shop.handle}`, { name: 'Ana', email: 'ana@example.test', amount: '12.34' });
      expect(open.back).to.match(new RegExp(`^/${shop.handle}\\?`));
      expect(valueOf(open.html, 'f-amount')).to.equal('12.34');
      expect(valueOf(open.html, 'f-name')).to.equal('Ana');
      const jane = await env.rt.services.customers.create(shop.key, { name: 'Jane Sent', email: 'jane.sent@example.test' });
      const l = await env.rt.services.links.create(shop, { type: 'amount', name: 'Sent link', amount: 800 });
      const c = encodeURIComponent(env.rt.tokens.recipient(jane.id));
      const sent = await cancelFrom(`/${shop.handle}/${l.path}?c=${c}`, { name: 'Jane S. (typed)', email: 'jane.typed@example.test' });
      expect(sent.back).to.include(`c=${c}`);
      // What she typed wins over what the merchant has on file.
      expect(valueOf(sent.html, 'f-name')).to.equal('Jane S. (typed)');
      expect(sent.html).to.include(`action="/${shop.handle}/${l.path}?c=${c}"`);
    });

    it('returns to a payment request’s own page (/r/…), not the merchant’s open-amount page', async () => {
      const r = await env.rt.services.requests.create(shop, { amount: 4500, currency: 'EUR', customer: { name: 'Ruth', email: 'ruth@example.test' } }, { source: 'api' });
      const path = new URL(env.rt.services.requests.urlOf(r)).pathname;
      const { back, html } = await cancelFrom(path, { name: 'Ruth R.', email: 'ruth.r@example.test' });
      expect(back.startsWith(`${path}?`)).to.equal(true);
      expect(valueOf(html, 'f-name')).to.equal('Ruth R.');
      expect(valueOf(html, 'f-email')).to.equal('ruth.r@example.test');
    });

    it('fills in nothing from a checkout of another link or an unknown one', async () => {
      const a = await env.rt.services.links.create(shop, { type: 'amount', name: 'First', amount: 100 });
      const b = await env.rt.services.links.create(shop, { type: 'amount', name: 'Second', amount: 200 });
      const { back } = await cancelFrom(`/${shop.handle}/${a.path}`, { name: 'Private Name', email: 'private@example.test' });
      const session = new URLSearchParams(back.split('?')[1]).get('back')!;
      for (const url of [`/${shop.handle}/${b.path}?back=${session}`, `/${shop.handle}/${a.path}?back=cs_nothing`]) {
        const html = (await http().get(url).expect(200)).text;
        expect(valueOf(html, 'f-name'), url).to.equal('');
      }
    });
  });

  it('shows a link that reached its payment limit as good news on the dashboard, not a red error', async () => {
    const acct = await signUp(env.app);
    const merchant = (await env.rt.services.merchants.getByHandle(acct.handle))!;
    const l = await env.rt.services.links.create(merchant, { type: 'amount', name: 'Sold out', amount: 500, payment_limit: 3 });
    await env.rt.db('links').where({ public_id: l.id }).update({ paid_count: 3, active: false, inactive_reason: 'limit_reached' });
    const html = (await acct.agent.get(`/app/links/${l.id}`).expect(200)).text;
    expect(html).not.to.include('flash-error');
    expect(html).not.to.match(/badge-red">Limit reached/);
    expect(html).to.match(/<p class="flash flash-success"[^>]*>[^<]*all 3 payments are in/i);
    expect(html).to.include('Raise the limit');
  });
});

describe('the pay page in a browser', () => {
  const browser = useBrowser();
  let env: ServedEnv;
  let url: string;
  let couponUrl: string;

  before(async function () {
    this.timeout(30_000);
    env = await serve((await import('./support/targets.ts')).TARGETS[0]);
    const handle = uniqueHandle('payb');
    const { merchant } = await env.rt.services.merchants.signUp({ name: 'Ferngully Coffee Roasters', handle, email: `${handle}@example.test`, password: 'correct horse battery' }, {});
    const product = await env.rt.services.products.create(merchant.key, { name: 'Ethiopia Yirgacheffe, 1 kg whole beans', description: 'Washed, light roast. Notes of jasmine and bergamot.', price: 3450, currency: 'EUR' });
    const l = await env.rt.services.links.create(merchant, { type: 'product', name: 'Beans for the office', description: 'Our monthly order, roasted on Monday.', product_id: product.id, payment_limit: 20, show_remaining: true });
    url = `${env.origin}/${handle}/${l.path}`;
    const c = await env.rt.services.links.create(merchant, { type: 'amount', name: 'Gift card', amount: 5000, allow_coupons: true });
    couponUrl = `${env.origin}/${handle}/${c.path}`;
  });
  after(() => env?.close());

  it('with a coupon field, Enter pays when no code is typed and applies a typed code (the new total before paying)', async () => {
    const tab = await browser().newPage({ viewport: PHONE, javaScriptEnabled: false });
    try {
      await tab.page.goto(couponUrl);
      await tab.page.getByLabel('Your name').fill('Ada Lovelace');
      await tab.page.getByLabel('Email').fill('ada@example.test');
      await tab.page.getByLabel('Email').press('Enter');
      await tab.page.waitForURL((u) => !u.href.startsWith(couponUrl));
      expect(await tab.page.locator('#f-coupon').count(), 'left the pay page for the payment step').to.equal(0);
      // Apply is the form's first button: Enter with a code typed applies it, the page comes back with the code judged.
      await tab.page.goto(couponUrl);
      await tab.page.getByLabel('Your name').fill('Ada Lovelace');
      await tab.page.getByLabel('Coupon code').fill('NOPE');
      await tab.page.getByLabel('Your name').press('Enter');
      await tab.page.locator('#f-coupon-error', { hasText: /\w/ }).waitFor();
      expect(await tab.page.getByLabel('Coupon code').inputValue()).to.equal('NOPE');
    } finally {
      await tab.close();
    }
  });

  it('uses the width of a desktop: the order beside the form, not a narrow card in empty space', async () => {
    const tab = await browser().newPage({ viewport: DESKTOP });
    try {
      await tab.page.goto(url);
      const box = (sel: string) => tab.page.locator(sel).first().boundingBox();
      const card = (await box('.pay-card'))!;
      const form = (await box('.pay-form'))!;
      const heading = (await box('h1'))!;
      expect(card.width).to.be.at.least(760);
      expect(form.x, 'the form to the right of the order').to.be.greaterThan(heading.x + heading.width - 1);
      expect(form.y, 'the form beside the order, not below it').to.be.lessThan(heading.y + 200);
      await tab.screenshot('pay-page-desktop');
      expect(await axeProblems(tab.page)).to.deep.equal([]);
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });

  it('is one column on a phone, nothing wider than the screen', async () => {
    const tab = await browser().newPage({ viewport: PHONE });
    try {
      await tab.page.goto(url);
      const heading = (await tab.page.locator('h1').boundingBox())!;
      const form = (await tab.page.locator('.pay-form').boundingBox())!;
      expect(form.y).to.be.greaterThan(heading.y);
      expect(await tab.page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).to.equal(true);
      await tab.screenshot('pay-page-phone');
      expect(await axeProblems(tab.page)).to.deep.equal([]);
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });
});
