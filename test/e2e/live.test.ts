// Live link page (issue 4, item 4): a merchant keeps a link's page open while a customer, in another
// browser, opens the pay page and pays. The new view and the payment appear on the merchant's page
// without a reload — and, in scaled mode, even when the merchant's page is served by another
// process than the customer's (the signals cross Redis pub/sub). No console errors, no CSP violations.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { forEachTarget } from '../support/targets.ts';
import { uniqueHandle } from '../support/harness.ts';
import { PHONE, serve, signUpInBrowser, useBrowser, type ServedEnv } from '../support/browser.ts';
import { buildApp } from '../../src/app.ts';
import type { Link } from '../../src/features/links/service.ts';
import type { Runtime } from '../../src/runtime.ts';
import { waitFor } from '../support/wait.ts';

/** A phone browser as customers have it (Chromium's own headless user agent is rightly not counted). */
const SAFARI_IOS = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';

forEachTarget('e2e: a link page updates itself', (target) => {
  const browser = useBrowser();
  let env: ServedEnv;
  /** Where the merchant works: the customers' process, or with Redis a second one on the same database. */
  let merchantOrigin: string;
  let merchantRt: Runtime;
  let second: http.Server | null = null;

  before(async function () {
    this.timeout(30_000);
    env = await serve(target);
    merchantOrigin = env.origin;
    merchantRt = env.rt;
    if (target.redisUrl) {
      merchantRt = await env.sibling();
      second = http.createServer(buildApp(merchantRt));
      await new Promise<void>((resolve) => second!.listen(0, '127.0.0.1', resolve));
      merchantOrigin = `http://127.0.0.1:${(second.address() as AddressInfo).port}`;
    }
  });
  after(async () => {
    if (second) {
      second.closeAllConnections();
      await new Promise<void>((resolve) => second!.close(() => resolve()));
    }
    await env?.close();
  });

  /** Resolves once the server holds `n` more live streams than `from` (the page's EventSource is open). */
  async function streamsOpen(from: number, n = 1): Promise<void> {
    await waitFor(() => merchantRt.live.streamCount >= from + n, { message: 'the link page to open its live stream' });
  }

  it('shows a new view and a payment without a reload, on the tab the merchant is reading', async function () {
    this.timeout(60_000);
    const merchantTab = await browser().newPage();
    const customerTab = await browser().newPage({ viewport: PHONE, userAgent: SAFARI_IOS });
    try {
      const m = merchantTab.page;
      const handle = uniqueHandle('live');
      await signUpInBrowser(m, merchantOrigin, { name: 'Ferngully Coffee', handle });
      const merchant = (await env.rt.services.merchants.getByHandle(handle))!;
      const link: Link = await env.rt.services.links.create(merchant, { type: 'amount', name: 'Cupping night', amount: 3900, payment_limit: 12 });

      const streams = merchantRt.live.streamCount;
      await m.goto(`${merchantOrigin}/app/links/${link.id}`);
      await streamsOpen(streams);
      const metric = (label: string) => m.locator('#link-metrics .metric').filter({ has: m.locator('dt', { hasText: label }) }).locator('dd');
      expect(await metric('Views').innerText()).to.equal('0');
      await m.getByText('No activity yet.').waitFor();
      // Anything that reloads the page would lose this.
      await m.evaluate('window.stayed = true');

      // A customer opens the pay page: the view shows up on the merchant's page.
      const c = customerTab.page;
      await c.goto(`${env.origin}/${handle}/${link.path}`);
      await c.getByRole('heading', { level: 1, name: 'Cupping night' }).waitFor();
      await m.locator('#link-metrics').getByText('1', { exact: true }).waitFor();
      const firstRow = m.locator('#link-activity tbody tr').first();
      await firstRow.getByText('Safari / iOS').waitFor();
      expect(await firstRow.locator('time').innerText()).to.equal('just now');
      await merchantTab.screenshot('live-link-after-view');
      // The merchant opens the chart's table; updates keep it open and fill it.
      await m.getByText('Show as table').click();
      const totals = m.locator('#link-chart-table tfoot');
      expect(await totals.innerText()).to.match(/^Total\s+1\s+0\s+€0\.00$/);

      // They pay: the payment, the revenue and the remaining payments follow.
      await c.getByLabel('Your name').fill('Ana López');
      await c.getByLabel('Email').fill('ana.lopez@example.test');
      await c.getByRole('button', { name: 'Pay €39.00' }).click();
      await c.waitForURL(/\/p\/provider-sandbox\/pay\/cs_\w+$/);
      await c.getByLabel('Card number').fill('4242 4242 4242 4242');
      await c.getByRole('button', { name: 'Pay €39.00' }).click();
      await c.waitForURL(/\/receipt\/pay_\w+\?k=[\w-]{22}$/);
      await m.locator('#link-activity tbody tr').first().getByText('Succeeded').waitFor();
      await metric('Revenue').getByText('€39.00').waitFor();
      expect(await metric('Payments').innerText()).to.match(/^1\s+11 left$/);
      expect(await m.locator('#link-limit').innerText()).to.include('1 of 12 used');
      expect(await m.locator('#link-activity tbody tr').first().innerText()).to.include('Ana López');
      await totals.getByText('€39.00').waitFor();
      expect(await m.locator('details.chart-table').getAttribute('open')).to.equal('');
      await merchantTab.screenshot('live-link-after-payment');

      // The merchant switches to the Views tab; the next view lands there, and the tab stays.
      await m.getByRole('tab', { name: 'Views' }).click();
      await m.waitForURL(`${merchantOrigin}/app/links/${link.id}?tab=views`);
      await m.locator('#link-activity tbody tr').nth(0).waitFor();
      expect(await m.locator('#link-activity tbody tr').count()).to.equal(1);
      await c.goto(`${env.origin}/${handle}/${link.path}`);
      await m.locator('#link-activity tbody tr').nth(1).waitFor();
      expect(await m.getByRole('tab', { selected: true }).innerText()).to.equal('Views');
      expect(m.url()).to.equal(`${merchantOrigin}/app/links/${link.id}?tab=views`);
      await metric('Views').getByText('2', { exact: true }).waitFor();

      expect(await m.evaluate('window.stayed'), 'the page was never reloaded').to.equal(true);
      merchantTab.assertClean();
      customerTab.assertClean();
    } finally {
      await merchantTab.close();
      await customerTab.close();
    }
  });
});
