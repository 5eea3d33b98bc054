// A hosted provider in real Chromium: the customer picks "Card" on the pay page, is sent to the
// vendor's page on another origin (allowed by exactly that origin in the pay page's CSP form-action),
// pays there, the vendor confirms by a signed webhook to the plugin's own route, and the customer
// lands on the receipt. The negative control shows Chromium blocks the same step without the origin.
// Also screenshots Settings → Payments and a refunded payment's page at phone and desktop widths.
import { expect } from 'chai';
import { forEachTarget } from '../support/targets.ts';
import { uniqueHandle } from '../support/harness.ts';
import { DESKTOP, PHONE, serve, signUpInBrowser, useBrowser, type ServedEnv } from '../support/browser.ts';
import { startFakeVendor, withHosted, type FakeVendor } from '../support/fake-hosted-vendor.ts';
import type { Merchant } from '../../src/features/merchants/repository.ts';
import type { PaymentProvider } from '../../src/plugin-api.ts';

const SECRET = 'whsec_e2e_0123456789abcdef';

forEachTarget('e2e: a hosted provider on another origin', (target) => {
  const browser = useBrowser();
  let env: ServedEnv;
  let vendor: FakeVendor;
  let shop: Merchant;

  before(async function () {
    this.timeout(30_000);
    vendor = await startFakeVendor();
    env = await serve(target, withHosted(vendor.origin));
    const handle = uniqueHandle('studio');
    ({ merchant: shop } = await env.rt.services.merchants.signUp({ name: 'Clay Studio', handle, email: `${handle}@example.test`, password: 'correct horse battery' }));
    await env.rt.services.providers.update(shop.key, 'hosted', { enabled: true, settings: { accountId: 'acct_clay', webhookSecret: SECRET } });
    vendor.accounts.set('acct_clay', SECRET);
  });
  after(async () => {
    await env?.close();
    await vendor?.close();
  });

  let made = 0;
  const newLink = () => env.rt.services.links.create(shop, { type: 'amount', name: `Throwing class ${++made}`, amount: 6500 });

  it('pays by card on the vendor’s page and confirms by signed webhook, with no CSP violation', async function () {
    this.timeout(30_000);
    const tab = await browser().newPage({ viewport: PHONE });
    try {
      const { page } = tab;
      const link = await newLink();
      await page.goto(`${env.origin}/${shop.handle}/${link.path}`);
      await page.getByRole('radio', { name: 'Card', exact: true }).check();
      await tab.screenshot(`hosted-pay-choice-phone-${target.name}`);
      await page.setViewportSize(DESKTOP);
      await tab.screenshot(`hosted-pay-choice-desktop-${target.name}`);
      await page.setViewportSize(PHONE);
      await page.getByLabel('Your name').fill('Ana López');
      await page.getByLabel('Email').fill('ana@example.test');
      await page.getByRole('button', { name: /^Pay / }).click();
      await page.waitForURL(`${vendor.origin}/pay?**`);
      await page.getByRole('button', { name: 'Pay now' }).click();
      await page.waitForURL(/\/receipt\/pay_\w+\?k=[\w-]{22}$/);
      await page.getByRole('heading', { level: 1, name: 'Payment successful' }).waitFor();
      expect(vendor.webhooks.at(-1)).to.deep.equal({ status: 200, body: '{"status":"paid"}' });
      const paymentId = new URL(page.url()).pathname.split('/').pop()!;
      const row = await env.rt.db('payments').where({ public_id: paymentId }).first();
      expect([row.provider, row.status, row.provider_ref]).to.deep.equal(['hosted', 'paid', `ch_${vendor.webhooks.length}`]);
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });

  it('negative control: without the origin in form-action, Chromium blocks the redirect to the vendor', async function () {
    this.timeout(30_000);
    const hosted = env.rt.registries.providers.get('hosted') as PaymentProvider<any>;
    const declared = hosted.checkoutOrigins;
    hosted.checkoutOrigins = () => [];
    env.rt.changes.notify();
    const tab = await browser().newPage({ viewport: DESKTOP });
    try {
      const { page } = tab;
      const link = await newLink();
      await page.goto(`${env.origin}/${shop.handle}/${link.path}`);
      await page.getByRole('radio', { name: 'Card', exact: true }).check();
      await page.getByLabel('Your name').fill('Ana López');
      await page.getByLabel('Email').fill('ana@example.test');
      const blocked = page.waitForEvent('console', (m) => /form-action/.test(m.text()));
      await page.getByRole('button', { name: /^Pay / }).click();
      await blocked;
      expect(page.url()).not.to.include(vendor.origin);
      expect(tab.problems.cspViolations.join('\n') + tab.problems.consoleErrors.join('\n')).to.include('form-action');
    } finally {
      hosted.checkoutOrigins = declared;
      env.rt.changes.notify();
      await tab.close();
    }
  });

  it('screenshots: Settings → Payments and a partly refunded payment, phone and desktop', async function () {
    this.timeout(60_000);
    const tab = await browser().newPage({ viewport: DESKTOP });
    try {
      const { page } = tab;
      const handle = uniqueHandle('shots');
      await signUpInBrowser(page, env.origin, { name: 'Screenshot Pottery', handle });
      const merchant = (await env.rt.services.merchants.getByHandle(handle))!;
      await page.goto(`${env.origin}/app/settings/payments`);
      await page.getByRole('heading', { level: 1, name: 'Payments' }).waitFor();
      await tab.screenshot('settings-payments-desktop');
      await page.setViewportSize(PHONE);
      await tab.screenshot('settings-payments-phone');
      await page.setViewportSize(DESKTOP);

      const link = await env.rt.services.links.create(merchant, { type: 'amount', name: 'Glaze workshop', amount: 4800 });
      const { payment } = await env.rt.services.checkout.start(merchant, link, { amount: 4800, currency: link.currency, name: 'Ana López', email: 'ana@example.test' });
      await env.rt.services.checkout.authorize(payment.id, 'sbx_shots');
      await env.rt.services.refunds.refund(merchant, payment.id, { amount: 1200, reason: 'One session cancelled' });
      await page.goto(`${env.origin}/app/payments/${payment.id}`);
      await page.getByLabel('Amount (EUR)').fill('10.00');
      await page.getByRole('button', { name: 'Refund…' }).click();
      await page.getByRole('button', { name: 'Confirm refund of €10.00' }).waitFor();
      await tab.screenshot('payment-refund-review-desktop');
      await page.setViewportSize(PHONE);
      await tab.screenshot('payment-refund-review-phone');
      await page.getByRole('button', { name: 'Confirm refund of €10.00' }).click();
      await page.getByText('Refunded €10.00.').waitFor();
      await tab.screenshot('payment-refunded-phone');
      await page.setViewportSize(DESKTOP);
      await tab.screenshot('payment-refunded-desktop');
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });
});
