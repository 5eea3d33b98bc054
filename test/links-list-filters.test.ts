/**
 * The links list on a phone and in the merchant's own date format (issue 14, item 8): the filters
 * beside the search fold into a "Filters (n active)" panel that works without JavaScript, dates are
 * typed and shown the merchant's way (de-DE 31.12.2026, en-US 12/31/2026, en-GB 31/12/2026, ISO
 * always), a date that names no day is said so by its field (422), and URLs wrap after their slashes
 * instead of mid-word.
 */
import { expect } from 'chai';
import type { Page } from 'playwright-core';
import { DESKTOP, PHONE, servedMerchant, useBrowser, type ServedEnv, type TrackedPage } from './support/browser.ts';
import { forEachTarget } from './support/targets.ts';
import { fieldError, signUp, useEnv, type Account } from './support/harness.ts';
import type { Merchant } from '../src/features/merchants/index.ts';

forEachTarget('dashboard: links list filters in the merchant’s format', (target) => {
  const env = useEnv(target);

  const names = (html: string) => [...html.matchAll(/<td data-label="Name" class="link-name cell-title">\s*<a href="[^"]+">([^<]+)<\/a>/g)].map((m) => m[1]);
  const chips = (html: string) => [...html.matchAll(/<a class="filter-chip" href="([^"]+)">([^<]+)</g)].map((m) => ({ href: m[1].replace(/&amp;/g, '&'), label: m[2] }));
  /** The folded panel's opening tag and its summary's count. */
  const panel = (html: string) => /<details id="filters-more" class="filters-more"( open)?>/.exec(html);
  const count = (html: string) => /<span id="filters-count" class="filters-count"[^>]*>([^<]*)<\/span>/.exec(html)![1];

  let acct: Account;
  let merchant: Merchant;

  /** A merchant in `locale` with links made on 28 Feb, 1 March and 31 March 2026 (UTC). */
  before(async () => {
    acct = await signUp(env.app);
    merchant = (await env.rt.services.merchants.getByHandle(acct.handle))!;
    for (const [at, name] of [['2026-02-28T12:00:00Z', 'February tote'], ['2026-03-01T12:00:00Z', 'March mug'], ['2026-03-31T12:00:00Z', 'Month-end cap']] as const) {
      env.clock.set(at);
      await env.rt.services.links.create(merchant, { type: 'amount', name, amount: 1500, tags: name === 'March mug' ? ['Spring'] : [] });
    }
  });

  const useLocale = async (locale: string) => {
    await acct.agent.post('/app/settings').type('form').send({ _csrf: acct.csrf, name: merchant.name, handle: merchant.handle, currency: 'EUR', timezone: 'UTC', locale, brand_color: '#4f46e5' }).expect(303);
  };

  it('reads dates typed the merchant’s way, and ISO, and shows the range back in that format', async () => {
    for (const [locale, from, to, shown] of [
      ['de-DE', '01.03.2026', '31.03.2026', 'Created 01.03.2026 – 31.03.2026'],
      ['en-US', '03/01/2026', '3/31/2026', 'Created 03/01/2026 – 03/31/2026'],
      ['en-GB', '01/03/2026', '2026-03-31', 'Created 01/03/2026 – 31/03/2026'],
      ['de-DE', '2026-03-01', '2026-03-31', 'Created 01.03.2026 – 31.03.2026'],
    ] as const) {
      await useLocale(locale);
      const res = await acct.agent.get(`/app/links?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`).expect(200);
      expect(names(res.text), locale).to.have.members(['March mug', 'Month-end cap']);
      expect(chips(res.text), locale).to.deep.equal([{ href: '/app/links', label: shown }]);
      // The date boxes and every address on the page carry the day in ISO, whatever was typed.
      expect(res.text).to.include('id="f-from" name="from" type="date" value="2026-03-01"').and.include('value="2026-03-31"');
      const fragment = await acct.agent.get(`/app/links?from=${encodeURIComponent(from)}`).set('HX-Request', 'true').expect(200);
      expect(fragment.headers['hx-push-url']).to.equal('/app/links?from=2026-03-01');
    }
    // The list's own dates follow the format too.
    await useLocale('de-DE');
    const list = await acct.agent.get('/app/links?q=March').expect(200);
    expect(list.text).to.include('>01.03.2026</time>');
    await useLocale('en-US');
    expect((await acct.agent.get('/app/links?q=March').expect(200)).text).to.include('>Mar 1, 2026</time>');
  });

  it('names a date that is no day by its field (422), with an example in the merchant’s format, and lists without it', async () => {
    await useLocale('de-DE');
    // A US date is no day in Germany (month 31); 31 February is no day anywhere.
    const res = await acct.agent.get('/app/links?from=12%2F31%2F2026&to=31.02.2026').expect(422);
    expect(fieldError(res.text, 'from')).to.equal('Created from must be a date such as 31.01.2026 (or 2026-01-31).');
    expect(fieldError(res.text, 'to')).to.equal('Created to must be a date such as 31.01.2026 (or 2026-01-31).');
    expect(res.text).to.match(/id="f-from"[^>]*aria-invalid="true"/);
    // What was typed stays in its box, by its message; the panel is open to show them.
    expect(res.text).to.include('value="12/31/2026"').and.include('value="31.02.2026"');
    expect(panel(res.text)![1]).to.equal(' open');
    expect(names(res.text)).to.have.length(3);
    // The live filters get the same answer, as the results with the message.
    const fragment = await acct.agent.get('/app/links?from=gestern').set('HX-Request', 'true').expect(422);
    expect(fragment.text).to.match(/^<div id="link-results"/m).and.to.include('role="alert"').and.include('Created from must be a date such as 31.01.2026');
  });

  it('folds the other filters into one panel under the search, counting the ones on', async () => {
    await useLocale('en-GB');
    const none = await acct.agent.get('/app/links').expect(200);
    expect(panel(none.text)![1]).to.equal(undefined);
    expect(count(none.text)).to.equal('');
    expect(chips(none.text)).to.deep.equal([]);
    // The search shows in its own box: it is not one of the folded filters.
    expect(count((await acct.agent.get('/app/links?q=mug').expect(200)).text)).to.equal('');
    const three = await acct.agent.get('/app/links?status=active&tag=Spring&from=01/03/2026').expect(200);
    expect(panel(three.text)![1], 'folded while every filter on is understood').to.equal(undefined);
    expect(count(three.text)).to.equal(' (3 active)');
    expect(chips(three.text)).to.deep.equal([
      { href: '/app/links?tag=Spring&from=2026-03-01', label: 'Status: Active' },
      { href: '/app/links?status=active&from=2026-03-01', label: 'Tag: Spring' },
      { href: '/app/links?status=active&tag=Spring', label: 'Created from 01/03/2026' },
    ]);
    expect(names(three.text)).to.deep.equal(['March mug']);
    // htmx swaps the results only: they bring the new count along, out of band.
    const fragment = await acct.agent.get('/app/links?status=active&tag=Spring').set('HX-Request', 'true').expect(200);
    expect(fragment.text).to.include('<span id="filters-count" class="filters-count" hx-swap-oob="true"> (2 active)</span>');
    // A full page never carries the out-of-band copy (one id, once).
    expect(three.text.match(/id="filters-count"/g)).to.have.length(1);
  });
});

// In Chromium, at 390 and 1280 px: the panel folded on a phone and laid out on a desktop, with and
// without JavaScript, no sideways scrolling, and URLs that wrap only after a "/" or a hyphen.
describe('dashboard: the links list filters and URLs in a browser', () => {
  const browser = useBrowser();
  let env: ServedEnv;
  let storageState: Awaited<ReturnType<TrackedPage['context']['storageState']>>;

  before(async function () {
    this.timeout(30_000);
    let m: Merchant;
    // A long handle (near the most a handle may have) makes long URLs.
    ({ env, storageState, merchant: m } = await servedMerchant(browser(), { name: 'Ferngully Coffee Roasters', handlePrefix: 'ferngully-coffee-roasters-ams' }));
    m = await env.rt.services.merchants.updateSettings(m, { name: m.name, handle: m.handle, currency: 'EUR', timezone: 'Europe/Amsterdam', brand_color: m.brandColor, locale: 'de-DE' });
    await env.rt.services.tags.create(m.key, { name: 'Events', color: '#10b981', kind: 'link' });
    for (const name of ['Deposit for the espresso machine service with a rather long name', 'Early bird cupping night', 'Tip jar']) {
      await env.rt.services.links.create(m, { type: 'amount', name, amount: 2500, tags: name.startsWith('Early') ? ['Events'] : [] });
    }
  });
  after(() => env?.close());

  /** Lines of every URL in the list, and each line break that is not after a "/" or a hyphen. */
  const URL_BREAKS = `(() => {
    const out = { wrapped: 0, midWord: [] };
    for (const code of document.querySelectorAll('#link-results code.url')) {
      const walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
      let prev = null;
      let node;
      while ((node = walker.nextNode())) {
        for (let i = 0; i < node.data.length; i++) {
          const range = document.createRange();
          range.setStart(node, i);
          range.setEnd(node, i + 1);
          const rect = range.getClientRects()[0];
          if (!rect) continue;
          if (prev && rect.top > prev.top + 2) {
            out.wrapped++;
            if (!/[\\/-]/.test(prev.ch)) out.midWord.push(code.textContent + ' breaks after "' + prev.ch + '"');
          }
          prev = { top: rect.top, ch: node.data[i] };
        }
      }
    }
    return out;
  })()`;
  /** Buttons whose label wraps onto two lines ("Cop / y"). */
  const BROKEN_BUTTONS = `[...document.querySelectorAll('#link-results button')].filter((b) => b.offsetParent && b.firstChild && b.firstChild.nodeType === 3 && (() => { const r = document.createRange(); r.selectNodeContents(b.firstChild); return r.getClientRects().length > 1; })()).map((b) => b.textContent)`;
  const sideways = (page: Page) => page.evaluate('document.documentElement.scrollWidth - window.innerWidth') as Promise<number>;
  const summary = (page: Page) => page.locator('#filters-more > summary');

  it('folds the filters on a phone, counts the ones on, and wraps URLs only after a slash or hyphen', async () => {
    const tab = await browser().newPage({ storageState, viewport: PHONE, locale: 'de-DE' });
    try {
      const { page } = tab;
      await page.goto(`${env.origin}/app/links?tag=Events&from=01.01.2026`);
      expect(await summary(page).textContent()).to.equal('Filters (2 active)');
      expect(await page.locator('#filters-more').evaluate((d) => (d as unknown as { open: boolean }).open)).to.equal(false);
      expect(await page.getByLabel('Status').isVisible()).to.equal(false);
      expect(await page.getByLabel('Search by name').isVisible()).to.equal(true);
      expect(await page.locator('.filter-chip').allTextContents()).to.deep.equal(['Tag: Events× (remove this filter)', `Created from 01.01.2026× (remove this filter)`]);
      // The list starts on the first screen, right under the folded panel.
      const top = await page.locator('#link-results').evaluate((el) => el.getBoundingClientRect().top);
      expect(top).to.be.lessThan(PHONE.height);
      expect(await sideways(page)).to.be.at.most(0);
      await tab.screenshot('links8-phone-collapsed');
      // Open it: the fields show; a change refreshes the list and the count (htmx, out of band).
      await summary(page).click();
      await page.getByLabel('Status').selectOption('active');
      await page.waitForURL(/status=active/);
      await summary(page).filter({ hasText: '(3 active)' }).waitFor();
      expect(await page.getByLabel('Status').isVisible()).to.equal(true);
      expect(await sideways(page)).to.be.at.most(0);
      await tab.screenshot('links8-phone-open');
      // Every URL, long ones too: wrapped, but only after a "/" or a hyphen, its Copy button whole.
      await page.goto(`${env.origin}/app/links`);
      const breaks = (await page.evaluate(URL_BREAKS)) as { wrapped: number; midWord: string[] };
      expect(breaks.wrapped, 'the long URL wraps at 390 px').to.be.greaterThan(0);
      expect(breaks.midWord).to.deep.equal([]);
      expect(await page.evaluate(BROKEN_BUTTONS)).to.deep.equal([]);
      expect(await sideways(page)).to.be.at.most(0);
      await tab.screenshot('links8-phone-list');
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });

  it('works on a phone without JavaScript: the panel opens, Apply filters, and it folds again, counted', async () => {
    const tab = await browser().newPage({ storageState, viewport: PHONE, javaScriptEnabled: false });
    try {
      const { page } = tab;
      await page.goto(`${env.origin}/app/links`);
      expect(await summary(page).textContent()).to.equal('Filters');
      await summary(page).click();
      await page.getByLabel('Status').selectOption('active');
      await page.getByRole('button', { name: 'Apply' }).click();
      await page.waitForURL(/status=active/);
      expect(await summary(page).textContent()).to.equal('Filters (1 active)');
      expect(await page.getByLabel('Status').isVisible()).to.equal(false);
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });

  it('lays every filter out beside the search on a desktop, URLs unbroken mid-word', async () => {
    const tab = await browser().newPage({ storageState, viewport: DESKTOP, locale: 'de-DE' });
    try {
      const { page } = tab;
      await page.goto(`${env.origin}/app/links`);
      expect(await summary(page).isVisible()).to.equal(false);
      expect(await page.getByLabel('Status').isVisible()).to.equal(true);
      expect(await page.getByLabel('Created from').isVisible()).to.equal(true);
      // The longest (a 36-character handle, a 60-character path) still wraps here: after a "/".
      expect(((await page.evaluate(URL_BREAKS)) as { midWord: string[] }).midWord).to.deep.equal([]);
      expect(await page.evaluate(BROKEN_BUTTONS)).to.deep.equal([]);
      expect(await sideways(page)).to.be.at.most(0);
      await tab.screenshot('links8-desktop');
      await page.goto(`${env.origin}/app/links?tag=Events&from=01.01.2026&to=31.12.2026`);
      expect(await page.getByLabel('Created from').inputValue()).to.equal('2026-01-01');
      expect(await page.locator('.filter-chip').nth(1).textContent()).to.include('Created 01.01.2026 – 31.12.2026');
      await tab.screenshot('links8-desktop-filtered');
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });
});
