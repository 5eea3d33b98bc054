// Settings → Webhooks in a real browser, on a desktop and a phone: adding an endpoint shows its
// secret once, the endpoint page shows its delivery log (successes, failures with the receiver's
// answer, the next retry), a test event can be sent from it, and the list shows each endpoint's
// health. Pages are saved as PNGs under /tmp/paylink-shots/ for a person to look at.
import { expect } from 'chai';
import { TARGETS } from '../support/targets.ts';
import { uniqueHandle } from '../support/harness.ts';
import { DESKTOP, PHONE, serve, signUpInBrowser, useBrowser, type ServedEnv } from '../support/browser.ts';
import { startReceiver, type TestReceiver } from '../support/webhook-receiver.ts';
import { waitFor } from '../support/wait.ts';

const FITS = `(() => document.documentElement.scrollWidth <= window.innerWidth && document.querySelectorAll('h1').length === 1)()`;

describe('e2e: Settings → Webhooks', () => {
  const browser = useBrowser();
  let env: ServedEnv;
  let hook: TestReceiver;
  before(async function () {
    this.timeout(30_000);
    hook = await startReceiver();
    env = await serve(TARGETS[0], { env: { PAYLINK_WEBHOOKS_ALLOW_PRIVATE: '1' } });
  });
  after(async () => {
    await env?.close();
    await hook?.close();
  });

  for (const [device, viewport] of [['desktop', DESKTOP], ['phone', PHONE]] as const) {
    it(`adds an endpoint, shows its secret once, its log and its health (${device})`, async function () {
      this.timeout(60_000);
      const tab = await browser().newPage({ viewport });
      try {
        const { page } = tab;
        const handle = uniqueHandle('hooks');
        await signUpInBrowser(page, env.origin, { name: 'Ferngully Coffee Roasters', handle });
        await page.goto(`${env.origin}/app/settings`);
        await page.getByRole('link', { name: 'Webhooks' }).click();
        await page.getByRole('heading', { level: 1, name: 'Webhooks' }).waitFor();
        await tab.screenshot(`webhooks-empty-${device}`);

        // A bad URL first: the message sits by the field.
        tab.expectError({ status: 422, path: '/app/settings/webhooks' });
        await page.getByLabel('Endpoint URL').fill('shop.example/hooks');
        await page.getByRole('button', { name: 'Add endpoint' }).click();
        await page.locator('#f-url-error', { hasText: /full URL/ }).waitFor();

        await page.getByLabel('Endpoint URL').fill(`${hook.url}/orders`);
        await page.getByLabel('Description (optional)').fill('Order system (Shopify bridge)');
        await page.getByRole('button', { name: 'Add endpoint' }).click();
        const secret = await page.locator('#new-webhook-secret').textContent();
        expect(secret).to.match(/^whsec_/);
        await tab.screenshot(`webhook-secret-${device}`);
        expect(await page.evaluate(FITS)).to.equal(true);
        const id = /we_[A-Za-z0-9]+/.exec(page.url())![0];

        // Some history: successes, a failure with the receiver's answer, a refused redirect.
        const m = (await env.rt.services.merchants.getByHandle(handle))!;
        const answers = [{ status: 200, body: '{"received":true}' }, { status: 500, body: '<html><body><h1>502 Bad Gateway</h1><p>upstream timed out while reading the request</p></body></html>' }, { status: 301, headers: { Location: 'https://elsewhere.example/' } }];
        hook.answer(() => answers.shift() ?? { status: 204 });
        for (const name of ['Cupping night', 'Espresso course', 'Beans subscription']) await env.rt.services.links.create(m, { type: 'amount', name, amount: 3900 });
        await env.rt.jobs.drain();

        await page.goto(`${env.origin}/app/settings/webhooks/${id}`);
        expect(await page.locator('#new-webhook-secret').count()).to.equal(0);
        await page.getByRole('button', { name: 'Send a test event' }).click();
        await page.locator('#flash', { hasText: 'Test event queued' }).waitFor();
        await env.rt.jobs.drain();
        await page.reload();
        await waitFor(async () => (await page.locator('.webhook-log tbody tr').count()) === 4, { message: 'four tries in the log' });
        await page.locator('.webhook-log details').first().evaluate((d) => d.setAttribute('open', ''));
        await tab.screenshot(`webhook-log-${device}`);
        expect(await page.evaluate(FITS)).to.equal(true);
        await page.getByRole('link', { name: 'Failed', exact: true }).click();
        await waitFor(async () => (await page.locator('.webhook-log tbody tr').count()) === 2, { message: 'the failed tries only' });

        // Two more endpoints: one failing, one that answered 410 Gone.
        await env.rt.services.webhooks.create(m.key, { url: `${hook.url}/crm`, description: 'CRM', events: ['payment.succeeded', 'payment.refunded', 'link.created'] });
        await env.rt.services.webhooks.create(m.key, { url: `${hook.url}/old`, events: ['link.created'] });
        hook.answer((r) => (r.path === '/crm' ? { status: 503 } : r.path === '/old' ? { status: 410 } : { status: 204 }));
        await env.rt.services.links.create(m, { type: 'amount', name: 'Gift card', amount: 2500 });
        await env.rt.jobs.drain();
        await page.goto(`${env.origin}/app/settings/webhooks`);
        await page.getByText('Failing since').first().waitFor();
        await page.getByText('answered 410 Gone').first().waitFor();
        await tab.screenshot(`webhooks-list-${device}`);
        expect(await page.evaluate(FITS)).to.equal(true);
        tab.assertClean();
      } finally {
        await tab.close();
      }
    });
  }
});
