// A customer pays in Chromium: pay page → sandbox card page → receipt (or the merchant's site), on a
// phone, with and without JavaScript, by keyboard. No console errors, no CSP violations. Screenshots
// of each step go to /tmp/paylink-shots/ for a person to look at.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import type { Page } from 'playwright-core';
import { TARGETS } from '../support/targets.ts';
import { uniqueHandle } from '../support/harness.ts';
import { PHONE, serve, useBrowser, type ServedEnv } from '../support/browser.ts';
import type { Merchant } from '../../src/features/merchants/repository.ts';
import type { Link } from '../../src/features/links/service.ts';

/** Layout and accessibility facts every customer page must hold, measured in the page. */
const AUDIT = `(() => {
  const problems = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth) problems.push('scrolls sideways: ' + doc.scrollWidth + 'px');
  if (document.querySelectorAll('h1').length !== 1) problems.push('not exactly one h1');
  if (document.querySelectorAll('main').length !== 1) problems.push('not exactly one main');
  if (!doc.lang || !document.title.trim()) problems.push('no lang or title');
  for (const el of document.querySelectorAll('input:not([type=hidden])')) if (!el.labels?.length) problems.push('unlabelled ' + el.outerHTML.slice(0, 80));
  for (const el of document.querySelectorAll('[aria-describedby]')) for (const id of el.getAttribute('aria-describedby').split(/\\s+/)) if (!document.getElementById(id)) problems.push('aria-describedby to missing #' + id);
  for (const el of document.querySelectorAll('a[href], button, input')) { const r = el.getBoundingClientRect(); if (r.width && r.height < 24) problems.push('tiny target ' + el.outerHTML.slice(0, 60)); }
  // The one script a customer page may load: the receipt's print button (a static file; CSP allows no inline script).
  if ([...document.querySelectorAll('script')].some((s) => !/^\\/static\\/js\\/print\\.[0-9a-f]{10}\\.js$/.test(s.getAttribute('src') || ''))) problems.push('a script on a pay page');
  return problems;
})()`;

/** WCAG contrast ratio of an element's text against its background colour (both rgb()). */
const CONTRAST = `((sel) => {
  const el = document.querySelector(sel);
  const s = getComputedStyle(el);
  const canvas = document.createElement('canvas').getContext('2d');
  const rgb = (c) => { canvas.fillStyle = '#000'; canvas.fillStyle = c; canvas.fillRect(0, 0, 1, 1); return [...canvas.getImageData(0, 0, 1, 1).data].slice(0, 3); };
  const lum = (c) => { const [r, g, b] = rgb(c).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const [a, b] = [lum(s.color), lum(s.backgroundColor)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
})`;

describe('e2e: paying a link', () => {
  const browser = useBrowser();
  let env: ServedEnv;
  let shop: Merchant;
  let merchantSite: http.Server;
  let merchantOrigin: string;

  before(async function () {
    this.timeout(30_000);
    env = await serve(TARGETS[0]);
    const handle = uniqueHandle('bakery');
    ({ merchant: shop } = await env.rt.services.merchants.signUp({ name: 'Ferngully Coffee Roasters', handle, email: `${handle}@example.test`, password: 'correct horse battery' }, { timezone: 'Europe/Amsterdam' }));
    shop = await env.rt.services.merchants.updateSettings(shop, { name: shop.name, handle, currency: 'EUR', timezone: 'Europe/Amsterdam', brand_color: '#b45309' });
    // The merchant's own website, where redirect URLs point.
    merchantSite = http.createServer((req, res) => res.writeHead(200, { 'Content-Type': 'text/html' }).end(`<!doctype html><html lang="en"><head><link rel="icon" href="data:,"><title>Thanks</title></head><body><h1>Thanks from the merchant</h1><p>${req.url}</p></body></html>`));
    await new Promise<void>((r) => merchantSite.listen(0, '127.0.0.1', r));
    merchantOrigin = `http://localhost:${(merchantSite.address() as AddressInfo).port}`;
  });
  after(async () => {
    merchantSite?.close();
    await env?.close();
  });

  const newLink = (fields: Record<string, unknown> = {}): Promise<Link> =>
    env.rt.services.links.create(shop, {
      type: 'amount',
      name: 'Ethiopia Yirgacheffe, 1 kg',
      description: 'Washed, light roast. Notes of jasmine, bergamot and peach.\nRoasted on Mondays, shipped on Tuesdays.',
      amount: 3900,
      payment_limit: 40,
      show_remaining: true,
      ...fields,
    });

  async function fillCustomer(page: Page): Promise<void> {
    await page.getByLabel('Your name').fill('Ana López');
    await page.getByLabel('Email').fill('ana.lopez@example.test');
  }
  const cardPageUrl = /\/p\/provider-sandbox\/pay\/cs_\w+$/;
  /** Fills the pay page, submits it with `button` and waits for the sandbox card page. */
  async function toCardPage(page: Page, button: string | RegExp = /^Pay /): Promise<void> {
    await fillCustomer(page);
    await page.getByRole('button', { name: button }).click();
    await page.waitForURL(cardPageUrl);
  }
  async function payWithCard(page: Page, card: string, button: string | RegExp = /^Pay /): Promise<void> {
    await page.getByLabel('Card number').fill(card);
    await page.getByRole('button', { name: button }).click();
  }

  it('pays with 4242 4242 4242 4242 on a phone and shows the receipt', async () => {
    const tab = await browser().newPage({ viewport: PHONE });
    try {
      const { page } = tab;
      const link = await newLink();
      await page.goto(`${env.origin}/${shop.handle}/${link.path}`);
      expect(await page.evaluate(AUDIT)).to.deep.equal([]);
      await page.getByRole('heading', { level: 1, name: 'Ethiopia Yirgacheffe, 1 kg' }).waitFor();
      await page.getByText('Only 40 left').waitFor();
      expect(await page.evaluate(`${CONTRAST}('.pay-button')`)).to.be.at.least(4.5);
      await tab.screenshot('pay-page-phone');
      await toCardPage(page, 'Pay €39.00');
      expect(await page.evaluate(AUDIT)).to.deep.equal([]);
      await tab.screenshot('card-page-phone');
      await payWithCard(page, '4242 4242 4242 4242', 'Pay €39.00');
      await page.waitForURL(/\/receipt\/pay_\w+\?k=[\w-]{22}$/);
      await page.getByRole('heading', { level: 1, name: 'Payment successful' }).waitFor();
      const text = await page.locator('main').innerText();
      expect(text).to.include('€39.00');
      expect(text).to.include('Ferngully Coffee Roasters');
      expect(text).to.include('Ethiopia Yirgacheffe, 1 kg');
      expect(text).to.include('2 March 2026 at 10:00 CET');
      expect(text).to.include(new URL(page.url()).pathname.split('/').pop()!);
      expect(await page.evaluate(AUDIT)).to.deep.equal([]);
      await tab.screenshot('receipt-phone');
      // A Print button that prints (window.print, from a static script file).
      const print = page.getByRole('button', { name: 'Print receipt' });
      expect(await print.isVisible()).to.equal(true);
      await page.evaluate('window.__printed = 0; window.print = () => { window.__printed += 1; }');
      await print.click();
      expect(await page.evaluate('window.__printed')).to.equal(1);
      // Printable: the page chrome and the buttons go, the receipt stays.
      await page.emulateMedia({ media: 'print' });
      expect(await page.locator('.pay-footer').isVisible()).to.equal(false);
      expect(await print.isVisible()).to.equal(false);
      expect(await page.locator('.receipt').isVisible()).to.equal(true);
      await tab.screenshot('receipt-print-phone');
      await page.emulateMedia({ media: 'screen' });
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });

  it('shows a declined card clearly and lets the customer try again', async () => {
    const tab = await browser().newPage({ viewport: PHONE });
    try {
      const { page } = tab;
      const link = await newLink({ name: 'Espresso blend, 250 g', amount: 1250, description: null });
      await page.goto(`${env.origin}/${shop.handle}/${link.path}`);
      await toCardPage(page, 'Pay €12.50');
      const cardPage = new URL(page.url()).pathname;
      // The decline, the reload, Back and Forward each show the card page's GET with the decline (402).
      tab.expectError(...Array.from({ length: 4 }, () => ({ status: 402, path: cardPage })));
      let dialogs = 0;
      page.on('dialog', (d) => {
        dialogs += 1;
        void d.dismiss();
      });
      await payWithCard(page, '4000 0000 0000 0002', 'Pay €12.50');
      await page.getByRole('alert').filter({ hasText: 'Your card was declined' }).waitFor();
      await tab.screenshot('card-declined-phone');
      // Post/Redirect/Get: reloading asks nothing ("Confirm form resubmission") and re-sends no card.
      const attempts = async () => Number((await env.rt.db('payments').count({ n: '*' }).first() as { n: number | string }).n);
      const before = await attempts();
      const reloaded = await page.reload();
      expect(reloaded?.request().method()).to.equal('GET');
      await page.getByRole('alert').filter({ hasText: 'Your card was declined' }).waitFor();
      expect(await attempts()).to.equal(before);
      // Back goes to the page before (the card form as first shown, read again with GET), then to the pay page.
      const back = await page.goBack();
      expect(back?.request().method() ?? 'GET').to.equal('GET');
      expect(new URL(page.url()).pathname).to.equal(cardPage);
      await page.goBack();
      await page.getByRole('heading', { level: 1, name: 'Espresso blend, 250 g' }).waitFor();
      await page.goForward();
      await page.waitForURL(cardPageUrl);
      expect(dialogs, 'no resubmission dialog').to.equal(0);
      expect(await attempts()).to.equal(before);
      await payWithCard(page, '4242424242424242', 'Pay €12.50');
      await page.getByRole('heading', { level: 1, name: 'Payment successful' }).waitFor();
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });

  it('works with JavaScript switched off, on the open-amount page', async () => {
    const tab = await browser().newPage({ viewport: PHONE, javaScriptEnabled: false });
    try {
      const { page } = tab;
      await page.goto(`${env.origin}/${shop.handle}`);
      await tab.screenshot('pay-open-amount-phone');
      expect(await page.evaluate(AUDIT)).to.deep.equal([]);
      await page.getByLabel('Amount').fill('7.5');
      await toCardPage(page, 'Continue to payment');
      await page.getByText('€7.50').first().waitFor();
      await payWithCard(page, '4242 4242 4242 4242', 'Pay €7.50');
      await page.getByRole('heading', { level: 1, name: 'Payment successful' }).waitFor();
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });

  it('shows what is wrong next to the field when the server refuses the form', async () => {
    const tab = await browser().newPage({ viewport: PHONE });
    try {
      const { page } = tab;
      await page.goto(`${env.origin}/${shop.handle}`);
      tab.expectError({ status: 422, path: `/${shop.handle}` });
      // Typed as browsers allow it, refused by the server: more decimals than EUR has.
      await page.getByLabel('Amount').fill('12.505');
      await fillCustomer(page);
      await page.getByRole('button', { name: 'Continue to payment' }).click();
      await page.locator('#f-amount-error', { hasText: 'at most 2 decimals' }).waitFor();
      expect(await page.getByLabel('Amount').getAttribute('aria-invalid')).to.equal('true');
      expect(await page.getByLabel('Your name').inputValue()).to.equal('Ana López');
      await tab.screenshot('pay-errors-phone');
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });

  it('can be paid with the keyboard alone, with the focus always visible', async () => {
    const tab = await browser().newPage();
    try {
      const { page } = tab;
      const link = await newLink({ name: 'Gift card', amount: 2500 });
      await page.goto(`${env.origin}/${shop.handle}/${link.path}`);
      const focused = () => page.evaluate(`(() => { const el = document.activeElement; const s = getComputedStyle(el); return { id: el.id || el.textContent.trim(), outline: s.outlineStyle !== 'none' && s.outlineWidth !== '0px' }; })()`);
      await page.keyboard.press('Tab');
      expect(await focused()).to.deep.equal({ id: 'f-name', outline: true });
      await page.keyboard.type('Ana López');
      await page.keyboard.press('Tab');
      expect((await focused() as { id: string }).id).to.equal('f-email');
      await page.keyboard.type('ana.lopez@example.test');
      await page.keyboard.press('Tab');
      expect(await focused()).to.deep.equal({ id: 'Pay €25.00', outline: true });
      await page.keyboard.press('Enter');
      await page.waitForURL(cardPageUrl);
      await tab.screenshot('card-page-desktop');
      await page.keyboard.press('Tab');
      await page.keyboard.type('4242 4242 4242 4242');
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { level: 1, name: 'Payment successful' }).waitFor();
      await tab.screenshot('receipt-desktop');
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });

  it('sends the customer to the merchant’s site after paying (same tab)', async () => {
    const tab = await browser().newPage({ viewport: PHONE });
    try {
      const { page } = tab;
      const link = await newLink({ name: 'Subscription', redirect_url: `${merchantOrigin}/thanks?order=42` });
      await page.goto(`${env.origin}/${shop.handle}/${link.path}`);
      await toCardPage(page);
      await payWithCard(page, '4242 4242 4242 4242');
      await page.waitForURL(`${merchantOrigin}/thanks?order=42`);
      await page.getByRole('heading', { name: 'Thanks from the merchant' }).waitFor();
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });

  it('for "new tab" shows the receipt with a button that opens the merchant’s site in a new tab', async () => {
    const tab = await browser().newPage({ viewport: PHONE });
    try {
      const { page } = tab;
      const link = await newLink({ name: 'Workshop ticket', redirect_url: `${merchantOrigin}/welcome`, redirect_target: 'new' });
      await page.goto(`${env.origin}/${shop.handle}/${link.path}`);
      await toCardPage(page);
      await payWithCard(page, '4242 4242 4242 4242');
      await page.waitForURL(/\/receipt\/pay_\w+\?k=[\w-]{22}&continue=1$/);
      await tab.screenshot('receipt-continue-phone');
      const [opened] = await Promise.all([tab.context.waitForEvent('page'), page.getByRole('link', { name: /^Continue to localhost:\d+ \(opens in a new tab\)/ }).click()]);
      await opened.waitForURL(`${merchantOrigin}/welcome`);
      expect(await opened.evaluate('window.opener')).to.equal(null);
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });

  it('tells a customer who lost the last slot that they were not charged, then closes the link (410)', async () => {
    const tab = await browser().newPage({ viewport: PHONE });
    try {
      const { page } = tab;
      const link = await newLink({ name: 'Last seat', payment_limit: 1 });
      await page.goto(`${env.origin}/${shop.handle}/${link.path}`);
      await toCardPage(page);
      // Someone else pays for the last seat while this customer types their card number.
      const { payment } = await env.rt.services.checkout.start(shop, link, { amount: 3900, currency: 'EUR', name: 'Someone', email: 's@example.test' });
      expect((await env.rt.services.checkout.authorize(payment.id, 'sbx_e2e')).status).to.equal('paid');
      await payWithCard(page, '4242 4242 4242 4242');
      await page.getByRole('heading', { level: 1, name: 'Payment limit reached' }).waitFor();
      expect(await page.locator('main').innerText()).to.include('You were not charged');
      await tab.screenshot('receipt-limit-reached-phone');
      tab.expectError({ status: 410, path: `/${shop.handle}/${link.path}` });
      await page.goto(`${env.origin}/${shop.handle}/${link.path}`);
      await page.getByRole('heading', { level: 1, name: 'Payment limit reached' }).waitFor();
      expect(await page.evaluate(AUDIT)).to.deep.equal([]);
      await tab.screenshot('pay-limit-reached-phone');
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });
});
