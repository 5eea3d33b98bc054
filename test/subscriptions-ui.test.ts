/**
 * Subscriptions in Chromium at 390 and 1280 px: a customer picks a plan on an items link's pay page
 * (what renews, and a trial's "Due today"), pays with the sandbox, and reads on the receipt that it
 * is a subscription and when it renews; the merchant finds it on the Subscriptions page and cancels
 * it after a confirmation; another customer cancels theirs from the receipt, after a confirmation.
 * No serious axe violation, nothing wider than the screen.
 */
import { expect } from 'chai';
import { DESKTOP, PHONE, servedMerchant, useBrowser, type ServedEnv } from './support/browser.ts';
import { axeProblems } from './support/axe.ts';
import { startSmtp, type TestSmtp } from './support/smtp.ts';
import type { Merchant } from '../src/features/merchants/index.ts';

describe('subscriptions in a browser', () => {
  const browser = useBrowser();
  let env: ServedEnv;
  let merchant: Merchant;
  let storageState: Awaited<ReturnType<Awaited<ReturnType<ReturnType<typeof browser>['newPage']>>['context']['storageState']>>;
  let payPage: string;
  let smtp: TestSmtp;

  before(async function () {
    this.timeout(30_000);
    // A real SMTP server: the read-only receipt offers to email its link only when email is really sent.
    smtp = await startSmtp();
    ({ env, storageState, merchant } = await servedMerchant(browser(), { name: 'Harbour Roasters', handlePrefix: 'subsui' }, { env: { SMTP_URL: smtp.url, MAIL_FROM: 'pay@harbour.test' } }));
    const beans = await env.rt.services.products.create(merchant.key, { name: 'Beans every month', price: 2900, currency: 'EUR', recurring: { interval: 'month' } });
    const pro = await env.rt.services.products.create(merchant.key, { name: 'Barista course, yearly', price: 24000, currency: 'EUR', recurring: { interval: 'year', trial_days: 14 } });
    const kit = await env.rt.services.products.create(merchant.key, { name: 'Welcome kit', price: 1500, currency: 'EUR' });
    const link = await env.rt.services.links.create(merchant, { type: 'items', name: 'Coffee club', items: [{ product_id: beans.id, quantity: 1 }, { product_id: pro.id, quantity: 1 }, { product_id: kit.id, quantity: 1 }] });
    payPage = `${env.origin}/${merchant.handle}/${link.path}`;
  });
  after(async () => {
    await env?.close();
    await smtp?.close();
  });

  type Page = Awaited<ReturnType<ReturnType<typeof browser>['newPage']>>['page'];
  /** Pays the filled pay page (its button named `button`) on the sandbox's card page; on the receipt after. */
  async function payWithCard(page: Page, button: RegExp): Promise<void> {
    await page.getByRole('button', { name: button }).click();
    await page.getByLabel('Card number').fill('4242 4242 4242 4242');
    await page.getByRole('button', { name: /^Pay/ }).click();
    await page.waitForURL(/\/receipt\/pay_/);
  }

  for (const [label, viewport, tag] of [['a phone', PHONE, '390'], ['a desktop', DESKTOP, '1280']] as const) {
    it(`subscribes on ${label}: the plan on the pay page, the receipt, then the merchant cancels it`, async function () {
      this.timeout(60_000);
      const tab = await browser().newPage({ viewport });
      const email = `ann-${tag}@example.test`;
      try {
        await tab.page.goto(payPage);
        await tab.page.getByRole('radio', { name: /Barista course/ }).check();
        await tab.page.getByRole('button', { name: 'Update total' }).last().click();
        await tab.page.waitForLoadState();
        // A trial: the plan is not charged today, and the page says what follows.
        expect(await tab.page.locator('#renewal-note').textContent()).to.equal('Then €240.00 every year after the 14-day free trial, until canceled.');
        await tab.screenshot(`subscription-pay-trial-${tag}`);
        await tab.page.getByRole('radio', { name: /Beans every month/ }).check();
        await tab.page.getByRole('button', { name: 'Update total' }).last().click();
        await tab.page.waitForLoadState();
        expect(await tab.page.locator('#renewal-note').textContent()).to.equal('Renews at €29.00 every month until canceled.');
        await tab.page.locator('input[name="name"]').fill('Ann Example');
        await tab.page.locator('input[name="email"]').fill(email);
        await tab.screenshot(`subscription-pay-${tag}`);
        expect(await axeProblems(tab.page)).to.deep.equal([]);
        expect(await tab.page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).to.equal(true);
        await payWithCard(tab.page, /^Pay €44\.00/);
        const receipt = (await tab.page.locator('main').textContent()) ?? '';
        expect(receipt).to.include('You subscribed to Beans every month: €29.00 every month.');
        expect(receipt).to.match(/It renews on .+, charged to the same payment method\./);
        await tab.screenshot(`subscription-receipt-${tag}`);
        expect(await axeProblems(tab.page)).to.deep.equal([]);
        expect(await tab.page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).to.equal(true);
        tab.assertClean();
      } finally {
        await tab.close();
      }

      const app = await browser().newPage({ storageState, viewport });
      try {
        await app.page.goto(`${env.origin}/app/subscriptions`);
        const row = app.page.locator('tr', { hasText: email });
        expect(await row.textContent()).to.include('Active');
        await app.screenshot(`subscriptions-page-${tag}`);
        expect(await axeProblems(app.page)).to.deep.equal([]);
        expect(await app.page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).to.equal(true);
        // The subscription's own page: its plan, dates and payments.
        await row.getByRole('link', { name: /Ann/ }).first().click();
        await app.page.waitForURL(/\/app\/subscriptions\/sub_[^/]+$/);
        expect(await app.page.locator('table').textContent()).to.include('First payment');
        // Billed by the provider as the merchant knows it, not its plugin id.
        expect(await app.page.locator('main').textContent()).to.match(/Billed by\s*Sandbox \(test cards\)/);
        await app.screenshot(`subscription-show-${tag}`);
        expect(await axeProblems(app.page)).to.deep.equal([]);
        expect(await app.page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).to.equal(true);
        await app.page.getByRole('link', { name: /Cancel…/ }).click();
        await app.page.waitForURL(/\/cancel$/);
        await app.screenshot(`subscription-cancel-${tag}`);
        expect(await axeProblems(app.page)).to.deep.equal([]);
        await app.page.getByRole('button', { name: 'Cancel the subscription' }).click();
        await app.page.waitForURL(/\/app\/subscriptions$/);
        expect(await app.page.locator('body').textContent()).to.include('They will not be charged again.');
        expect(await app.page.locator('tr', { hasText: email }).textContent()).to.include('Canceled');
        // The link's page counts its subscriptions and leads to the list of that link's alone.
        await app.page.locator('tr', { hasText: email }).getByRole('link', { name: 'Coffee club' }).click();
        await app.page.waitForURL(/\/app\/links\/lnk_[^/?]+$/);
        const panel = app.page.locator('section', { has: app.page.getByRole('heading', { name: 'Subscriptions' }) });
        expect((await panel.textContent())?.replace(/\s+/g, ' ')).to.match(/Canceled\s*[1-9]/);
        await panel.scrollIntoViewIfNeeded();
        await app.screenshot(`subscription-link-page-${tag}`);
        expect(await axeProblems(app.page)).to.deep.equal([]);
        await panel.getByRole('link', { name: 'See this link’s subscriptions' }).click();
        await app.page.waitForURL(/\/app\/subscriptions\?link_id=lnk_/);
        expect(await app.page.locator('.filter-note').textContent()).to.equal('Link: Coffee club');
        expect(await app.page.locator('tr', { hasText: email }).count()).to.equal(1);
        await app.screenshot(`subscriptions-of-link-${tag}`);
        expect(await axeProblems(app.page)).to.deep.equal([]);
        expect(await app.page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).to.equal(true);
        app.assertClean();
      } finally {
        await app.close();
      }
    });

    it(`lets the customer cancel from the receipt on ${label}, after a confirmation`, async function () {
      this.timeout(60_000);
      const tab = await browser().newPage({ viewport });
      try {
        await tab.page.goto(payPage);
        await tab.page.getByRole('radio', { name: /Beans every month/ }).check();
        await tab.page.getByRole('button', { name: 'Update total' }).last().click();
        await tab.page.waitForLoadState();
        await tab.page.locator('input[name="name"]').fill('Bo Example');
        await tab.page.locator('input[name="email"]').fill(`bo-${tag}@example.test`);
        await payWithCard(tab.page, /^Pay €44\.00/);
        // The receipt by its payment id alone (as the merchant's redirect URL or a webhook names it) is read-only.
        const keyed = tab.page.url();
        expect(keyed).to.match(/\/receipt\/pay_\w+\?k=[\w-]{22}$/);
        await tab.page.goto(keyed.split('?')[0]);
        expect(await tab.page.getByRole('link', { name: 'Cancel subscription' }).count()).to.equal(0);
        expect(await tab.page.locator('.subscription-note').textContent()).to.include('To cancel, open this receipt from the link you were given after paying or in your receipt email, or have that link emailed to the address you paid with.');
        expect(await tab.page.getByRole('button', { name: 'Email me the link' }).count()).to.equal(1);
        await tab.screenshot(`subscription-receipt-bare-${tag}`);
        expect(await axeProblems(tab.page)).to.deep.equal([]);
        await tab.page.getByRole('button', { name: 'Email me the link' }).click();
        await tab.page.waitForURL(/\?emailed=1/);
        expect(await tab.page.getByRole('status').last().textContent()).to.equal('A link to this receipt, where you can cancel, is on its way to the email address you paid with.');
        await tab.screenshot(`subscription-receipt-emailed-${tag}`);
        expect(await axeProblems(tab.page)).to.deep.equal([]);
        await tab.page.goto(keyed);
        await tab.page.getByRole('link', { name: 'Cancel subscription' }).click();
        await tab.page.waitForURL(/&cancel=1/);
        expect(await tab.page.locator('.cancel-confirm').textContent()).to.match(/Cancel your subscription to Beans every month\? You will not be charged again \(the next charge was due on .+\)\./);
        await tab.screenshot(`subscription-customer-cancel-${tag}`);
        expect(await axeProblems(tab.page)).to.deep.equal([]);
        expect(await tab.page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).to.equal(true);
        await tab.page.getByRole('button', { name: 'Yes, cancel my subscription' }).click();
        await tab.page.waitForURL(/&canceled=1/);
        expect(await tab.page.getByRole('status').last().textContent()).to.equal('Your subscription is canceled. Harbour Roasters will not charge you for it again.');
        expect(await tab.page.locator('#subscription-title + p').textContent()).to.match(/It was canceled on .+: you will not be charged again\./);
        expect(await tab.page.getByRole('link', { name: 'Cancel subscription' }).count()).to.equal(0);
        await tab.screenshot(`subscription-customer-canceled-${tag}`);
        expect(await axeProblems(tab.page)).to.deep.equal([]);
        tab.assertClean();
      } finally {
        await tab.close();
      }
    });
  }
});
