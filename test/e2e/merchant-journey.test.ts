// The whole story in Chromium, as a merchant and then a customer would live it: sign up, create a
// link in the dashboard, open its URL, pay with the sandbox's test cards (a decline first, then
// 4242…), and see the receipt — and the payment on the merchant's link page. No console errors, no
// failed requests, no CSP violations along the way.
import { expect } from 'chai';
import { forEachTarget } from '../support/targets.ts';
import { uniqueHandle } from '../support/harness.ts';
import { PHONE, serve, signUpInBrowser, useBrowser, type ServedEnv } from '../support/browser.ts';

forEachTarget('e2e: from a new merchant to a paid link', (target) => {
  const browser = useBrowser();
  let env: ServedEnv;

  before(async function () {
    this.timeout(120_000);
    env = await serve(target);
  });
  after(() => env?.close());

  it('creates a link in the dashboard, a customer pays it after a decline, and the merchant sees the payment', async function () {
    // Two browser tabs and a dozen page loads: a backstop, not a speed budget.
    this.timeout(180_000);
    const merchantTab = await browser().newPage();
    const customerTab = await browser().newPage({ viewport: PHONE });
    try {
      const m = merchantTab.page;
      const handle = uniqueHandle('studio');
      await signUpInBrowser(m, env.origin, { name: 'Studio Nord', handle });

      // The merchant creates an amount link with a limit of 3.
      await m.getByRole('link', { name: 'Links', exact: true }).click();
      await m.waitForURL(`${env.origin}/app/links`);
      await m.getByRole('link', { name: 'New link' }).click();
      await m.waitForURL(`${env.origin}/app/links/new`);
      await m.getByRole('link', { name: 'Create an amount link' }).click();
      await m.waitForURL(`${env.origin}/app/links/new?type=amount`);
      await m.getByLabel('Name').fill('Pottery class, Saturday');
      await m.getByLabel('Amount').fill('45.00');
      await m.getByRole('radio', { name: /Multiple/ }).check();
      await m.getByRole('spinbutton', { name: /Number of payments/ }).fill('3');
      await m.getByRole('button', { name: /Create link/i }).click();
      await m.waitForURL(/\/app\/links\/lnk_\w+$/);
      const url = (await m.locator('#link-url').innerText()).trim();
      expect(url).to.equal(`${env.origin}/${handle}/pottery-class-saturday`);

      // A customer opens it on a phone, is declined once, retries with 4242 and gets a receipt.
      const c = customerTab.page;
      await c.goto(url);
      await c.getByRole('heading', { level: 1, name: 'Pottery class, Saturday' }).waitFor();
      await c.getByLabel('Your name').fill('Noor Haddad');
      await c.getByLabel('Email').fill('noor@example.test');
      await c.getByRole('button', { name: 'Pay €45.00' }).click();
      await c.waitForURL(/\/p\/provider-sandbox\/pay\/cs_\w+$/);
      // The decline answers 402 with the card form again: part of the story, not a failure.
      customerTab.expectError({ status: 402, path: /^\/p\/provider-sandbox\/pay\/cs_\w+$/ });
      await c.getByLabel('Card number').fill('4000 0000 0000 0002');
      await c.getByRole('button', { name: 'Pay €45.00' }).click();
      await c.getByText(/declined/i).first().waitFor();
      await c.getByLabel('Card number').fill('4242 4242 4242 4242');
      await c.getByRole('button', { name: 'Pay €45.00' }).click();
      await c.waitForURL(/\/receipt\/pay_\w+\?k=[\w-]{22}$/);
      await c.getByRole('heading', { level: 1, name: 'Payment successful' }).waitFor();
      const receipt = await c.locator('main').innerText();
      expect(receipt).to.include('€45.00');
      expect(receipt).to.include('Studio Nord');
      expect(receipt).to.include('Pottery class, Saturday');

      // Back in the dashboard, without a reload: the payment arrives live (one of three, and the
      // revenue). Then a fresh load shows the same; it may cut short a live refresh still under way.
      await m.locator('main').getByText('1 of 3 used').waitFor();
      await m.locator('#link-metrics').getByText('€45.00').first().waitFor();
      await m.reload();
      const facts = await m.locator('main').innerText();
      expect(facts).to.include('1 of 3 used');
      expect(facts).to.include('€45.00');
      merchantTab.assertClean();
      customerTab.assertClean();
    } finally {
      await merchantTab.close();
      await customerTab.close();
    }
  });
});
