// Every page a merchant or customer sees, on a desktop and on a phone: no sideways scrolling, one
// heading and one main landmark, every control labelled, no label broken mid-word, no serious or
// critical axe violation, nothing broken in the console. Each page is
// also saved as a PNG under /tmp/paylink-shots/ for a person to look at.
import { expect } from 'chai';
import type { Page } from 'playwright-core';
import { TARGETS } from '../support/targets.ts';
import { uniqueHandle } from '../support/harness.ts';
import { DESKTOP, PHONE, serve, signUpInBrowser, useBrowser, type ServedEnv, type TrackedPage } from '../support/browser.ts';
import { axeProblems } from '../support/axe.ts';
import { AUDIT } from '../support/audit.ts';
import { toPluginMerchant } from '../../src/features/merchants/service.ts';

interface Shot {
  name: string;
  path: string;
  /** A logged-in page (else a fresh, logged-out context). */
  app: boolean;
  status?: number;
  /** Where the expected error status comes from, when not the page itself (a form posted on it). */
  errorPath?: string;
}

const SHOTS: Shot[] = [
  { name: 'signup', path: '/signup', app: false },
  { name: 'signup-errors', path: '/signup', app: false, status: 422 },
  { name: 'login', path: '/login', app: false },
  { name: 'login-error', path: '/login', app: false, status: 401 },
  { name: 'dashboard', path: '/app', app: true },
  { name: 'links', path: '/app/links', app: true },
  { name: 'links-filtered', path: '/app/links?status=limit_reached&sort=name&dir=asc', app: true },
  { name: 'links-requests', path: '/app/links?kind=request', app: true },
  { name: 'links-all', path: '/app/links?kind=all&source=api', app: true },
  { name: 'links-bad-filter', path: '/app/links?kind=all&from=2026-02-30', app: true, status: 422 },
  { name: 'link-new', path: '/app/links/new', app: true },
  { name: 'link-new-amount', path: '/app/links/new?type=amount', app: true },
  { name: 'link-new-errors', path: '/app/links/new?type=amount', app: true, status: 422, errorPath: '/app/links' },
  { name: 'link-new-product', path: '/app/links/new?type=product', app: true },
  { name: 'link', path: '/app/links/:link', app: true },
  { name: 'link-edit', path: '/app/links/:link/edit', app: true },
  { name: 'link-delete', path: '/app/links/:link/delete', app: true },
  { name: 'requests', path: '/app/requests', app: true },
  { name: 'request', path: '/app/requests/:request', app: true },
  { name: 'request-new', path: '/app/requests/new', app: true },
  { name: 'request-import', path: '/app/requests/import', app: true },
  { name: 'payments', path: '/app/payments', app: true },
  { name: 'reports', path: '/app/reports/reconciliation', app: true },
  { name: 'customers', path: '/app/customers', app: true },
  { name: 'customer', path: '/app/customers/:customer', app: true },
  { name: 'customer-import-problems', path: '/app/customers/import', app: true, status: 422 },
  { name: 'products', path: '/app/products', app: true },
  { name: 'product-new', path: '/app/products/new', app: true },
  { name: 'tags', path: '/app/tags', app: true },
  { name: 'activity', path: '/app/activity', app: true },
  { name: 'settings', path: '/app/settings', app: true },
  { name: 'settings-payments', path: '/app/settings/payments', app: true },
  { name: 'templates', path: '/app/settings/templates', app: true },
  { name: 'webhooks', path: '/app/settings/webhooks', app: true },
  { name: 'plugins', path: '/app/plugins', app: true },
  { name: 'outbox', path: '/app/p/channel-outbox', app: true },
  { name: 'app-404', path: '/app/nothing-here', app: true, status: 404 },
  { name: 'public', path: '/:handle', app: false },
  { name: '404', path: '/no-such-page-at-all', app: false, status: 404 },
];

// How pages look does not depend on the database: one target (embedded SQLite) is enough.
describe('e2e: every page on a desktop and a phone', () => {
  const browser = useBrowser();
  let env: ServedEnv;
  let handle: string;
  let linkId: string;
  let requestId: string;
  let customerId: string;
  let storageState: Awaited<ReturnType<TrackedPage['context']['storageState']>>;

  before(async function () {
    this.timeout(30_000);
    env = await serve(TARGETS[0]);
    handle = uniqueHandle('looks');
    const tab = await browser().newPage();
    const { page } = tab;
    await signUpInBrowser(page, env.origin, { name: 'Ferngully Coffee Roasters', handle });
    await page.goto(`${env.origin}/app/settings`);
    await page.getByLabel('Brand colour').fill('#b45309');
    await page.getByRole('button', { name: 'Save settings' }).click();
    await page.locator('#flash', { hasText: 'Settings saved.' }).waitFor();
    await page.getByLabel('Key name').fill('Website checkout');
    await page.getByRole('button', { name: 'Create API key' }).click();
    await page.locator('#new-key-secret').waitFor();
    tab.assertClean();
    storageState = await tab.context.storageState();
    await tab.close();
    // Something in the Outbox, so its table is seen too.
    const merchant = toPluginMerchant((await env.rt.services.merchants.getByHandle(handle))!);
    const channels = env.rt.registries.channels;
    await channels.get('email')!.send({ id: 'msg-1', merchant, to: 'ana.lopez@example.test', subject: 'Your payment link from Ferngully Coffee Roasters', text: `Hi Ana, you can pay for your order here: ${env.origin}/${handle}/order-1042. Thank you!`, kind: 'initial', linkUrl: `${env.origin}/${handle}/order-1042` });
    await channels.get('sms')!.send({ id: 'msg-2', merchant, to: '+31612345678', text: `Ferngully Coffee Roasters: pay €24.50 at ${env.origin}/${handle}/order-1043`, kind: 'initial', linkUrl: `${env.origin}/${handle}/order-1043` });
    // A catalogue, tags and links in every state, so the links, products and tags pages show real rows.
    const m = (await env.rt.services.merchants.getByHandle(handle))!;
    const { products, tags, links } = env.rt.services;
    const beans = await products.create(m.key, { name: 'Ethiopia Yirgacheffe, 1 kg whole beans', description: 'Washed, light roast. Notes of jasmine and bergamot.', price: 3450, currency: 'EUR' });
    await products.create(m.key, { name: 'Cupping class', price: 4500, currency: 'EUR' });
    await products.create(m.key, { name: 'Gift card', price: 2500, currency: 'EUR', active: false });
    for (const [name, color] of [['Summer 2025', '#f59e0b'], ['Wholesale', '#3b82f6'], ['Events', '#10b981']]) await tags.create(m.key, { name, color, kind: 'link' });
    const early = await links.create(m, { type: 'amount', name: 'Early Bird Cupping Night', amount: 3900, currency: 'EUR', description: 'One seat at our cupping night on 14 June, coffee and pastries included.', internal_notes: 'Max 12 seats; ask Lena before raising.', payment_limit: 12, show_remaining: true, tags: ['Events', 'Summer 2025'], redirect_url: 'https://ferngully.example/thanks', redirect_target: 'new' });
    linkId = early.id;
    await links.create(m, { type: 'product', name: 'Yirgacheffe beans', product_id: beans.id, tags: ['Wholesale'] });
    const full = await links.create(m, { type: 'amount', name: 'Deposit for the espresso machine service with a rather long name', amount: 15000, currency: 'EUR', payment_limit: 1 });
    await env.rt.db('links').where({ public_id: full.id }).update({ paid_count: 1, active: false, inactive_reason: 'limit_reached', payments_count: 1, revenue: 15000 });
    await links.create(m, { type: 'amount', name: 'Tip jar', amount: 300, currency: 'EUR', active: false });
    await env.rt.db('links').where({ public_id: early.id }).update({ paid_count: 5, views_count: 140, payments_count: 5, revenue: 19500 });
    customerId = (await env.rt.services.customers.create(m.key, { name: 'Ana López', email: 'ana.lopez@example.test', phone: '+31612345678' })).id;
    // Payment requests from the API key made above, Text-to-Pay and the dashboard, one cancelled.
    const { requests } = env.rt.services;
    const websiteKey = Number((await env.rt.db('api_keys').where({ merchant_id: m.key }).first('id')).id);
    const ask = (description: string, source: 'api' | 'text_to_pay' | 'dashboard', extra: Record<string, unknown> = {}) =>
      requests.create(m, { amount: 2450, currency: 'EUR', description, customer: { name: 'Ana López', email: 'ana.lopez@example.test' }, ...extra }, { source, apiKeyKey: source === 'api' ? websiteKey : null });
    requestId = (await ask('Order 1042: two bags and a grinder', 'api', { reference: 'ORD-1042', amount: 4550 })).id;
    await ask('Wholesale invoice March', 'dashboard', { reference: 'INV-2026-031' });
    await requests.cancel(m, (await ask('Order 1043', 'text_to_pay')).id);
  });
  after(() => env?.close());

  for (const [device, viewport] of [['desktop', DESKTOP], ['phone', PHONE]] as const) {
    describe(device, () => {
      // One logged-out and one logged-in page per device, reused from test to test (a context per
      // test costs more than the test).
      const tabs: { anon?: TrackedPage; app?: TrackedPage } = {};
      before(async () => {
        tabs.anon = await browser().newPage({ viewport });
        tabs.app = await browser().newPage({ viewport, storageState });
      });
      after(async () => {
        await tabs.anon?.close();
        await tabs.app?.close();
      });

      for (const shot of SHOTS) {
        it(shot.name, async () => {
          const tab = (shot.app ? tabs.app : tabs.anon)!;
          tab.reset();
          const url = `${env.origin}${shot.path.replace(':handle', handle).replace(':link', linkId).replace(':request', requestId).replace(':customer', customerId)}`;
          if (shot.status) tab.expectError({ status: shot.status, path: shot.errorPath ?? new URL(url).pathname });
          await tab.page.goto(url);
          if (shot.name === 'signup-errors') {
            await submit(tab.page, { 'Business name': '', Handle: 'Sign Up', Email: 'not-an-email', Password: 'short' }, 'Create account');
            await tab.page.locator('#f-password-error', { hasText: /\w/ }).waitFor();
          }
          if (shot.name === 'link-new-errors') {
            await submit(tab.page, { Name: '', Amount: '12.505', Address: '2025-sale', 'Redirect to (optional)': 'ftp://example.com' }, 'Create link');
            await tab.page.locator('#f-amount-error', { hasText: /\w/ }).waitFor();
          }
          if (shot.name === 'login-error') {
            await submit(tab.page, { Email: 'who@example.test', Password: 'not it at all' }, 'Log in');
            await tab.page.locator('#f-password-error', { hasText: /\w/ }).waitFor();
          }
          if (shot.name === 'customer-import-problems') {
            await tab.page.getByLabel('CSV text').fill('name,email,phone\nJane Doe,not-an-email,+31 6 12345678\n,nobody@example.test,12\nLong Name,averyveryverylongaddresswithoutanybreaks@a-very-long-domain-name.example.test,+999');
            await tab.page.getByRole('button', { name: 'Import customers' }).click();
            await tab.page.locator('#problems-title').waitFor();
          }
          await tab.screenshot(`${shot.name}-${device}`);
          expect(await tab.page.evaluate(AUDIT)).to.deep.equal([]);
          expect(await axeProblems(tab.page)).to.deep.equal([]);
          tab.assertClean();
        });
      }
    });
  }

  it('lets a keyboard user skip the navigation and see where the focus is', async () => {
    const tab = await browser().newPage({ storageState });
    try {
      const { page } = tab;
      await page.goto(`${env.origin}/app/settings`);
      await page.keyboard.press('Tab');
      expect(await page.evaluate('document.activeElement.textContent')).to.equal('Skip to content');
      expect(await page.evaluate(`document.activeElement.getBoundingClientRect().left >= 0`)).to.equal(true);
      await page.keyboard.press('Enter');
      await page.keyboard.press('Tab');
      // The first control inside main gets the focus, with a visible outline.
      const focused: { inMain: boolean; outline: string } = await page.evaluate(`(() => { const el = document.activeElement; const s = getComputedStyle(el); return { inMain: !!el.closest('main'), outline: s.outlineStyle + ' ' + s.outlineWidth }; })()`);
      expect(focused).to.deep.include({ inMain: true });
      expect(focused.outline).not.to.match(/^none/);
      // Following a navigation link with the keyboard (an htmx swap) leaves the focus on that link.
      await page.getByRole('link', { name: 'Activity', exact: true }).focus();
      await page.keyboard.press('Enter');
      await page.getByRole('main').getByRole('heading', { level: 1, name: 'Activity' }).waitFor();
      expect(await page.evaluate('document.activeElement.textContent')).to.equal('Activity');
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });

  it('keeps text on the brand colour readable, whatever colour the merchant picks', async () => {
    const tab = await browser().newPage();
    try {
      const colours: Record<string, string> = {};
      for (const brand of ['#fde047', '#1e3a8a', '#b45309']) {
        const merchant = (await env.rt.services.merchants.getByHandle(handle))!;
        await env.rt.services.merchants.updateSettings(merchant, { name: merchant.name, handle, currency: merchant.currency, timezone: merchant.timezone, brand_color: brand });
        await tab.page.goto(`${env.origin}/${handle}`);
        colours[brand] = await tab.page.evaluate(`getComputedStyle(document.querySelector('.merchant-mark')).color`);
      }
      // Dark text on a light brand: our ink (#111827) or black, whichever reaches 4.5:1 (core/color.ts, set on the server).
      expect(colours['#fde047']).to.match(/\b0, 0, 0\b|\b17, 24, 39\b|lch\(0 /);
      expect(colours['#1e3a8a']).to.match(/255, 255, 255|lch\(100 /);
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });
});

async function submit(page: Page, fields: Record<string, string>, button: string): Promise<void> {
  for (const [label, value] of Object.entries(fields)) await page.getByLabel(label, { exact: true }).fill(value);
  await page.getByRole('button', { name: button }).click();
}
