// A merchant's first session, in a real browser: sign up, find their way around, set up the
// business, log out and back in — with htmx and without JavaScript — and never a console error,
// failed request or CSP violation on the way.
import { expect } from 'chai';
import type { Page, Request } from 'playwright-core';
import { forEachTarget } from '../support/targets.ts';
import { uniqueHandle } from '../support/harness.ts';
import { serve, signUpInBrowser, TEST_PASSWORD, useBrowser, type ServedEnv, type TrackedPage } from '../support/browser.ts';

async function logIn(page: Page, email: string, password: string): Promise<void> {
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
}

/** Waits until the page's heading reads `text` (after a navigation or an htmx swap). */
const heading = (page: Page, text: string) => page.getByRole('main').getByRole('heading', { level: 1, name: text, exact: true }).waitFor();

forEachTarget('e2e: accounts in Chromium', (target) => {
  const browser = useBrowser();
  let env: ServedEnv;
  let tab: TrackedPage;

  before(async () => {
    env = await serve(target);
  });
  after(() => env?.close());
  afterEach(() => tab?.close());

  it('signs up, moves around the dashboard with htmx, saves settings, makes an API key, logs out and back in', async function () {
    this.timeout(60_000);
    tab = await browser().newPage();
    const { page } = tab;
    const handle = uniqueHandle('e2e');
    const email = `${handle}@example.test`;

    await signUpInBrowser(page, env.origin, { name: 'Bloom & Co', handle });
    await heading(page, 'Welcome, Bloom & Co');
    expect(await page.locator('#flash').textContent()).to.include('Welcome to Paylink');
    await tab.screenshot(`flow-welcome-${target.name}`);
    tab.assertClean();

    // From here on every sidebar click must be an htmx-boosted swap: the window (and this marker)
    // survives, and the request carries HX-Boosted.
    await page.evaluate('window.__notReloaded = true');
    const boosted: string[] = [];
    const onRequest = (r: Request) => {
      const h = r.headers();
      if (h['hx-request'] === 'true' && h['hx-boosted'] === 'true') boosted.push(`${r.method()} ${new URL(r.url()).pathname}`);
    };
    page.on('request', onRequest);
    const nav = page.getByRole('navigation', { name: 'Main' });
    const sections: Array<[string, string, string]> = [
      ['Links', '/app/links', 'Links'],
      ['Customers', '/app/customers', 'Customers'],
      ['Products', '/app/products', 'Products'],
      ['Tags', '/app/tags', 'Tags'],
      ['Activity', '/app/activity', 'Activity'],
      ['Outbox', '/app/p/channel-outbox', 'Outbox'],
      ['Plugins', '/app/plugins', 'Plugins'],
      ['Settings', '/app/settings', 'Settings'],
    ];
    for (const [label, path, title] of sections) {
      await nav.getByRole('link', { name: label, exact: true }).click();
      await page.waitForURL(`${env.origin}${path}`);
      await heading(page, title);
      expect(await page.title()).to.equal(`${title} · Paylink`);
      expect(await nav.locator('[aria-current="page"]').textContent()).to.equal(label);
    }
    expect(boosted).to.deep.equal(sections.map(([, path]) => `GET ${path}`));
    expect(await page.evaluate('window.__notReloaded')).to.equal(true);

    // The browser's back button restores the previous page whole (layout included).
    await page.goBack();
    await page.waitForURL(`${env.origin}/app/plugins`);
    await heading(page, 'Plugins');
    expect(await nav.isVisible()).to.equal(true);
    await page.goForward();
    await page.waitForURL(`${env.origin}/app/settings`);
    await heading(page, 'Settings');
    tab.assertClean();

    // Settings through the boosted form: the CSRF token travels as the X-CSRF-Token header — alone,
    // once the form's hidden _csrf field is taken out.
    await page.evaluate('window.__notReloaded = true');
    boosted.length = 0;
    const csrfHeaders: Array<{ header: string; body: string }> = [];
    page.on('request', (r) => {
      if (r.method() === 'POST') csrfHeaders.push({ header: r.headers()['x-csrf-token'] ?? '', body: r.postData() ?? '' });
    });
    const formToken = await page.locator('#business input[name="_csrf"]').inputValue();
    await page.evaluate(`document.querySelector('#business input[name="_csrf"]').remove()`);
    await page.getByLabel('Business name').fill('Bloom & Co Flowers');
    await page.getByLabel('Brand colour').fill('#0f766e');
    await page.getByLabel('Default currency').selectOption('EUR');
    await page.getByLabel('Time zone').selectOption('Europe/Amsterdam');
    await page.getByRole('button', { name: 'Save settings' }).click();
    await page.locator('#flash', { hasText: 'Settings saved.' }).waitFor();
    expect(boosted).to.include('POST /app/settings');
    expect(csrfHeaders[0].header).to.equal(formToken).and.to.match(/^\S{20,}$/);
    expect(csrfHeaders[0].body).not.to.include('_csrf');
    expect(await page.getByLabel('Business name').inputValue()).to.equal('Bloom & Co Flowers');
    expect(await page.getByLabel('Default currency').inputValue()).to.equal('EUR');
    expect(await page.evaluate('window.__notReloaded')).to.equal(true);
    const merchant = await env.rt.services.merchants.getByHandle(handle);
    expect(merchant).to.include({ name: 'Bloom & Co Flowers', currency: 'EUR', timezone: 'Europe/Amsterdam', brandColor: '#0f766e' });

    // A mistake comes back next to its field, on the same page, without a reload.
    tab.expectError({ status: 422, path: '/app/settings' });
    await page.getByLabel('Handle').fill('no spaces please');
    await page.getByRole('button', { name: 'Save settings' }).click();
    await page.locator('#f-handle-error', { hasText: /\w/ }).waitFor();
    expect(await page.getByLabel('Handle').getAttribute('aria-invalid')).to.equal('true');
    expect(await page.getByLabel('Business name').inputValue()).to.equal('Bloom & Co Flowers');
    await tab.screenshot(`flow-settings-invalid-${target.name}`);
    expect(await page.evaluate('window.__notReloaded')).to.equal(true);
    tab.assertClean();
    await page.getByLabel('Handle').fill(handle);

    // An API key: its secret is shown once, then only its prefix.
    await page.getByLabel('Key name').fill('Website');
    await page.getByRole('button', { name: 'Create API key' }).click();
    const secret = (await page.locator('#new-key-secret').textContent())!.trim();
    expect(secret).to.have.length.greaterThan(30);
    await tab.screenshot(`flow-api-key-${target.name}`);
    // The address bar stays reloadable, and the new key is scrolled into view.
    expect(page.url()).to.equal(`${env.origin}/app/settings#api-keys`);
    expect(await page.evaluate(`(() => { const r = document.getElementById('new-key-secret').getBoundingClientRect(); return window.scrollY > 0 && r.top >= 0 && r.bottom <= innerHeight; })()`)).to.equal(true);
    expect(await page.locator('#api-keys table').textContent()).to.include('Website');
    await nav.getByRole('link', { name: 'Settings', exact: true }).click();
    await page.locator('#new-key-secret').waitFor({ state: 'detached' });
    expect(await page.content()).to.not.include(secret);
    expect(await page.evaluate('window.__notReloaded')).to.equal(true);
    page.off('request', onRequest);

    // Revoking asks first; cancelling keeps the key, confirming revokes it.
    const revoke = page.getByRole('button', { name: 'Revoke key “Website”' });
    const posts = csrfHeaders.length;
    let asked = '';
    page.once('dialog', (d) => {
      asked = d.message();
      void d.dismiss();
    });
    await revoke.click();
    expect(asked).to.include('Revoke the key “Website”');
    expect(csrfHeaders.length).to.equal(posts);
    expect(await revoke.count()).to.equal(1);
    page.once('dialog', (d) => void d.accept());
    await revoke.click();
    await page.locator('#flash', { hasText: 'revoked' }).waitFor();
    expect(await page.locator('#api-keys .badge', { hasText: 'Revoked' }).count()).to.equal(1);
    expect(await page.evaluate('window.__notReloaded')).to.equal(true);
    tab.assertClean();

    // Log out: a full page load to the login page, which then works normally.
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL(`${env.origin}/login?signed_out=1`);
    expect(await page.evaluate('window.__notReloaded')).to.equal(undefined);
    expect(await page.getByRole('status').filter({ hasText: 'logged out' }).count()).to.equal(1);
    await page.goto(`${env.origin}/app/settings`);
    await page.waitForURL(/\/login\?next=%2Fapp%2Fsettings$/);

    // A wrong password: 401 and the message right by the form, email kept, password cleared.
    tab.expectError({ status: 401, path: '/login' });
    await logIn(page, email, 'not the password');
    await page.locator('#f-password-error', { hasText: 'do not match an account' }).waitFor();
    expect(await page.getByLabel('Email').inputValue()).to.equal(email);
    expect(await page.getByLabel('Password').inputValue()).to.equal('');
    expect(await page.getByLabel('Password').getAttribute('aria-invalid')).to.equal('true');

    // …and the right one, back to where the merchant was going.
    await logIn(page, email, TEST_PASSWORD);
    await page.waitForURL(`${env.origin}/app/settings`);
    expect(await page.locator('#flash').textContent()).to.include('Welcome back');
    tab.assertClean();

    // A session that ends while the dashboard is open: the next click lands on the login page
    // (HX-Redirect), not a login form swapped into the dashboard.
    await page.context().clearCookies();
    tab.expectError({ status: 401, path: '/app/links' });
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Links', exact: true }).click();
    await page.waitForURL(`${env.origin}/login?next=%2Fapp%2Flinks`);
    await page.getByRole('heading', { level: 1, name: 'Log in' }).waitFor();
    tab.assertClean();

    // The public page wears the brand colour.
    await page.goto(`${env.origin}/${handle}`);
    await heading(page, 'Bloom & Co Flowers');
    const mark = await page.evaluate(`getComputedStyle(document.querySelector('.merchant-mark')).backgroundColor`);
    expect(mark).to.equal('rgb(15, 118, 110)');

    // Unknown pages answer the 404 page.
    tab.expectError({ status: 404, path: '/no-such-merchant-here' });
    const res = await page.goto(`${env.origin}/no-such-merchant-here`);
    expect(res!.status()).to.equal(404);
    await heading(page, 'Page not found');
    tab.assertClean();
  });

  it('works the same with JavaScript turned off', async function () {
    this.timeout(60_000);
    tab = await browser().newPage({ javaScriptEnabled: false });
    const { page } = tab;
    const handle = uniqueHandle('nojs');
    const email = `${handle}@example.test`;

    // A validation error is shown next to its field, and the rest of the form is kept.
    tab.expectError({ status: 422, path: '/signup' });
    await page.goto(`${env.origin}/signup`);
    await page.getByLabel('Business name').fill('No Script Ltd');
    await page.getByLabel('Handle').fill('Bad Handle!');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(TEST_PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.locator('#f-handle-error', { hasText: /\w/ }).waitFor();
    expect(await page.getByLabel('Handle').getAttribute('aria-invalid')).to.equal('true');
    expect(await page.getByLabel('Business name').inputValue()).to.equal('No Script Ltd');

    await page.getByLabel('Handle').fill(handle);
    await page.getByLabel('Password').fill(TEST_PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.waitForURL(`${env.origin}/app`);
    await heading(page, 'Welcome, No Script Ltd');

    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Settings', exact: true }).click();
    await page.waitForURL(`${env.origin}/app/settings`);
    await page.getByLabel('Business name').fill('No Script Limited');
    await page.getByLabel('Default currency').selectOption('GBP');
    await page.getByRole('button', { name: 'Save settings' }).click();
    await page.waitForURL(`${env.origin}/app/settings`);
    expect(await page.locator('#flash').textContent()).to.include('Settings saved.');
    expect(await env.rt.services.merchants.getByHandle(handle)).to.include({ name: 'No Script Limited', currency: 'GBP' });

    await page.getByLabel('Key name').fill('Server');
    await page.getByRole('button', { name: 'Create API key' }).click();
    expect(await page.locator('#new-key-secret').textContent()).to.match(/\S{30,}/);

    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL(`${env.origin}/login?signed_out=1`);
    tab.expectError({ status: 401, path: '/login' });
    await logIn(page, email, 'wrong wrong wrong');
    await page.locator('#f-password-error', { hasText: 'do not match an account' }).waitFor();
    await logIn(page, email, TEST_PASSWORD);
    await page.waitForURL(`${env.origin}/app`);
    await heading(page, 'Welcome, No Script Limited');
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL(`${env.origin}/login?signed_out=1`);
    tab.assertClean();
  });
});
