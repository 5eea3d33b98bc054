// Holds in real Chromium: a customer pays by bank transfer (an immediate-capture provider) from the pay
// page; when every remaining spot is held by checkouts under way the page says when to come back
// instead of showing the form; a payment that arrives after its hold lapsed on a full link lands on a
// "refunded" receipt and the merchant's payment page says why. Screenshots at phone and desktop widths.
import { expect } from 'chai';
import { forEachTarget } from '../support/targets.ts';
import { uniqueHandle } from '../support/harness.ts';
import { DESKTOP, PHONE, serve, signUpInBrowser, useBrowser, type ServedEnv } from '../support/browser.ts';
import { fixturePlugin } from '../fixtures/plugins/helpers.ts';
import type { Merchant } from '../../src/features/merchants/repository.ts';

const MINUTE = 60_000;

forEachTarget('e2e: holds for immediate-capture payments', (target) => {
  const browser = useBrowser();
  let env: ServedEnv;

  before(async function () {
    this.timeout(30_000);
    env = await serve(target, { env: { PAYLINK_PLUGINS: fixturePlugin('provider-instant') } });
  });
  after(() => env?.close());

  const start = (merchant: Merchant, link: { key: number; id: string; name: string; path: string | null; amount: number | null; currency: string }, who: string) =>
    env.rt.services.checkout.start(merchant, link, { amount: link.amount!, currency: link.currency, name: who, email: `${who.toLowerCase().replace(/\W+/g, '.')}@example.test`, provider: 'instant' });

  it('pays by bank transfer, then shows "being paid for" with the minutes while all spots are held, and a late payment refunded', async function () {
    this.timeout(90_000);
    const tab = await browser().newPage({ viewport: PHONE });
    try {
      const { page } = tab;
      const handle = uniqueHandle('yoga');
      await signUpInBrowser(page, env.origin, { name: 'Harbour Yoga', handle });
      const shop = (await env.rt.services.merchants.getByHandle(handle))!;
      const link = await env.rt.services.links.create(shop, { type: 'amount', name: 'Sunrise retreat', amount: 18000, payment_limit: 3, show_remaining: true });
      const url = `${env.origin}/${handle}/${link.path}`;

      // One customer pays by bank transfer through the pay page.
      await page.goto(url);
      await page.getByText('Only 3 left').waitFor();
      await page.getByRole('radio', { name: 'Bank transfer' }).check();
      await page.getByLabel('Your name').fill('Ana López');
      await page.getByLabel('Email').fill('ana@example.test');
      await tab.screenshot(`holds-pay-page-phone-${target.name}`);
      await page.getByRole('button', { name: /^Pay / }).click();
      await page.getByRole('button', { name: 'Pay now' }).click();
      await page.getByRole('heading', { level: 1, name: 'Payment successful' }).waitFor();

      // Two others are paying right now (one started 10 minutes before the other): every spot left is held.
      const late = await start(shop, link, 'Bo Berg');
      env.clock.advance(10 * MINUTE);
      const cy = await start(shop, link, 'Cy Chen');
      await page.goto(url);
      await page.getByRole('heading', { level: 1, name: 'All remaining spots are being paid for' }).waitFor();
      expect(await page.locator('.pay-body').innerText()).to.include('Try again in 20 minutes');
      expect(await page.locator('form.pay-form').count()).to.equal(0);
      await tab.screenshot(`holds-all-held-phone-${target.name}`);
      await page.setViewportSize(DESKTOP);
      await tab.screenshot(`holds-all-held-desktop-${target.name}`);
      await page.setViewportSize(PHONE);

      // Bo's hold lapses and is released; Dee takes the spot and pays; Bo's bank payment arrives late.
      env.clock.advance(21 * MINUTE);
      await env.rt.jobs.enqueue(env.rt.db, 'links.release_holds', {});
      await env.rt.jobs.drain();
      const dee = await start(shop, link, 'Dee Diaz');
      expect((await env.rt.services.checkout.authorize(dee.payment.id, 'ib_dee')).status).to.equal('paid');
      // Cy gives up (the provider reports the abandoned checkout) and Eve takes the last spot.
      expect(await env.rt.services.checkout.releaseHold(cy.payment.id)).to.equal(true);
      const eve = await start(shop, link, 'Eve Ek');
      expect((await env.rt.services.checkout.authorize(eve.payment.id, 'ib_eve')).status).to.equal('paid');
      expect((await env.rt.services.checkout.authorize(late.payment.id, 'ib_bo')).status).to.equal('voided');

      await page.goto(`${env.origin}/receipt/${late.payment.id}`);
      await page.getByRole('heading', { level: 1, name: 'Payment refunded' }).waitFor();
      await tab.screenshot(`holds-late-refund-receipt-phone-${target.name}`);
      await page.setViewportSize(DESKTOP);
      await tab.screenshot(`holds-late-refund-receipt-desktop-${target.name}`);

      await page.goto(`${env.origin}/app/payments/${late.payment.id}`);
      await page.getByText('Why refunded').waitFor();
      await tab.screenshot(`holds-late-refund-payment-desktop-${target.name}`);
      await page.setViewportSize(PHONE);
      await tab.screenshot(`holds-late-refund-payment-phone-${target.name}`);
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });
});
