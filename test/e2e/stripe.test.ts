// provider-stripe in real Chromium against the fake Stripe: the merchant connects Stripe in Settings →
// Payments (the webhook URL to paste, with a copy button), a customer pays on the pay page, is sent to
// Stripe's hosted Checkout (the fake's page, on another origin), pays by card, and comes back to the
// receipt; the payment shows "Visa •••• 4242" on the dashboard. Screenshots at phone and desktop widths.
import { expect } from 'chai';
import { forEachTarget } from '../support/targets.ts';
import { uniqueHandle } from '../support/harness.ts';
import { DESKTOP, PHONE, serve, signUpInBrowser, useBrowser, type ServedEnv } from '../support/browser.ts';
import { startFakeStripe, type FakeStripe } from '../support/fake-stripe.ts';

forEachTarget('e2e: paying through Stripe Checkout', (target) => {
  const browser = useBrowser();
  let env: ServedEnv;
  let fake: FakeStripe;

  before(async function () {
    this.timeout(30_000);
    fake = await startFakeStripe();
    env = await serve(target, { env: { PAYLINK_PLUGIN_PROVIDER_STRIPE: JSON.stringify({ apiBase: fake.origin }) } });
  });
  after(async () => {
    await env?.close();
    await fake?.close();
  });

  it('connects Stripe, pays on Stripe’s page, lands on the receipt, and shows the card on the dashboard', async function () {
    this.timeout(90_000);
    const tab = await browser().newPage({ viewport: DESKTOP });
    try {
      const { page } = tab;
      const handle = uniqueHandle('kiln');
      await signUpInBrowser(page, env.origin, { name: 'Kiln & Co', handle });
      const merchant = (await env.rt.services.merchants.getByHandle(handle))!;
      const account = { secretKey: 'sk_test_e2e0123456789abcdefABCDEF', webhookSecret: 'whsec_e2e0123456789abcdefABCDEF', webhookUrl: null as string | null };
      fake.addAccount(account);

      // Settings → Payments: the Stripe panel tells the merchant what to paste into Stripe.
      await page.goto(`${env.origin}/app/settings/payments#provider-stripe`);
      const panel = page.locator('#provider-stripe');
      const webhookUrl = (await panel.locator('#stripe-webhook-url').textContent())!.trim();
      expect(webhookUrl).to.equal(`${env.origin}/p/provider-stripe/webhook/${merchant.id}`);
      await panel.getByRole('button', { name: 'Copy the webhook URL' }).isVisible();
      account.webhookUrl = webhookUrl; // pasted into Stripe's dashboard
      await panel.getByLabel('Offer to customers').check();
      await panel.getByLabel('Secret key').fill(account.secretKey);
      await panel.getByLabel('Webhook signing secret').fill(account.webhookSecret);
      await panel.getByRole('button', { name: 'Save Stripe' }).click();
      await page.locator('#provider-stripe .badge-green').waitFor();
      await page.locator('#provider-stripe').scrollIntoViewIfNeeded();
      await tab.screenshot(`stripe-settings-desktop-${target.name}`);
      await page.setViewportSize(PHONE);
      await page.locator('#provider-stripe').scrollIntoViewIfNeeded();
      await tab.screenshot(`stripe-settings-phone-${target.name}`);
      await page.setViewportSize(DESKTOP);
      await env.rt.services.providers.update(merchant.key, 'sandbox', { enabled: false });

      // The customer pays.
      const link = await env.rt.services.links.create(merchant, { type: 'amount', name: 'Raku firing', amount: 5500, payment_limit: 12 });
      await page.setViewportSize(PHONE);
      await page.goto(`${env.origin}/${handle}/${link.path}`);
      await page.getByLabel('Your name').fill('Ana López');
      await page.getByLabel('Email').fill('ana@example.test');
      await page.getByRole('button', { name: /^Pay / }).click();
      await page.waitForURL(`${fake.origin}/c/pay/**`);
      await page.getByText('Email: ana@example.test').waitFor();
      await page.getByLabel('Card number').fill('4242 4242 4242 4242');
      await page.getByRole('button', { name: /^Pay / }).click();
      await page.waitForURL(/\/receipt\/pay_\w+\?k=[\w-]{22}$/);
      await page.getByRole('heading', { level: 1, name: 'Payment successful' }).waitFor();
      await page.getByText('Visa •••• 4242').waitFor(); // the receipt names the card Stripe reported
      await tab.screenshot(`stripe-receipt-phone-${target.name}`);
      await page.setViewportSize(DESKTOP);
      await tab.screenshot(`stripe-receipt-desktop-${target.name}`);
      const paymentId = new URL(page.url()).pathname.split('/').pop()!;
      const row = await env.rt.db('payments').where({ public_id: paymentId }).first();
      expect([row.provider, row.status]).to.deep.equal(['stripe', 'paid']);
      expect(fake.intents.get(row.provider_ref)!.status, 'captured at Stripe').to.equal('succeeded');
      expect(fake.sent.every((w) => w.status === 200)).to.equal(true);

      // The merchant's dashboard.
      await page.goto(`${env.origin}/app/payments/${paymentId}`);
      await page.getByText('Visa •••• 4242').waitFor();
      await tab.screenshot(`stripe-payment-desktop-${target.name}`);
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });
});
