// A link's page as a merchant reads it (issue 4, items 2–5): metrics from the counters, the
// remaining-payments badge and limit card, the Activity tabs and their pages (full page on a plain
// GET, the panel alone for htmx), the 30-day chart, and the live stream that tells an open page to
// re-read itself.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, csrfFrom, signUp, type Account, type TestEnv } from './support/harness.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';
import type { Link } from '../src/features/links/service.ts';
import { dateTimeIn } from '../src/core/time.ts';
import { waitFor } from './support/wait.ts';

const CHROME_MAC = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';
const SAFARI_IOS = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';
const GOOGLEBOT = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
const HTMX = { 'HX-Request': 'true', 'HX-Target': 'link-activity' };

/** The value shown under a metric's label. */
const metric = (html: string, label: string) => {
  const m = new RegExp(`<div class="metric"><dt>${label}</dt><dd>([^<]*)`).exec(html);
  if (!m) throw new Error(`no metric ${label}`);
  return m[1].trim();
};
/** The badges among the metrics, as "label (tone)". */
const metricBadges = (html: string) => {
  const start = html.indexOf('id="link-metrics"');
  return [...html.slice(start, html.indexOf('</dl>', start)).matchAll(/<span class="badge badge-(\w+)">([^<]+)<\/span>/g)].map((m) => `${m[2]} (${m[1]})`);
};
const rowCount = (html: string, tab: 'views' | 'payments' | 'all') =>
  (html.match(tab === 'views' ? /data-label="Browser \/ OS"/g : tab === 'payments' ? /data-label="Customer"/g : /data-label="Activity"/g) ?? []).length;
const selectedTab = (html: string) => /id="activity-tab-(\w+)"[^>]*aria-selected="true"/.exec(html)?.[1];
const currentPage = (html: string) => Number(/aria-current="page"[^>]*><span class="sr-only">Page <\/span>(\d+)/.exec(html)?.[1] ?? 1);

forEachTarget('link page analytics', (target) => {
  let env: TestEnv;
  let acct: Account;
  let shop: Merchant;

  before(async () => {
    env = await build(target);
    acct = await signUp(env.app);
    const m = (await env.rt.services.merchants.getByHandle(acct.handle))!;
    shop = await env.rt.services.merchants.updateSettings(m, { name: m.name, handle: m.handle, currency: 'EUR', timezone: 'Europe/Amsterdam', brand_color: '#4f46e5' });
  });
  after(() => env?.close());

  const newLink = (fields: Record<string, unknown> = {}): Promise<Link> => env.rt.services.links.create(shop, { type: 'amount', name: 'Yirgacheffe, 1 kg', amount: 3900, ...fields });
  /** Customers open the pay page (real GETs), and the recorder writes what it queued. */
  async function view(link: Link, n = 1, headers: Record<string, string> = {}): Promise<void> {
    for (let i = 0; i < n; i++) {
      await supertest(env.app)
        .get(`/${shop.handle}/${link.path}`)
        .set({ 'User-Agent': i % 2 ? SAFARI_IOS : CHROME_MAC, ...headers })
        .expect(200);
    }
    await env.rt.views!.flush();
  }
  /** Customers pay through the sandbox: `n` captured payments. */
  async function pay(link: Link, n = 1, customer = { name: 'Ana López', email: 'ana@example.test' }): Promise<void> {
    for (let i = 0; i < n; i++) {
      const { payment } = await env.rt.services.checkout.start(shop, link, { amount: link.amount!, currency: 'EUR', ...customer });
      const outcome = await env.rt.services.checkout.authorize(payment.id, `sbx_${payment.id}`);
      expect(outcome.status).to.equal('paid');
    }
  }
  const page = (link: Link, query = '') => acct.agent.get(`/app/links/${link.id}${query}`).expect(200);
  const panel = (link: Link, query = '') => acct.agent.get(`/app/links/${link.id}${query}`).set(HTMX).expect(200);

  describe('metrics', () => {
    it('shows views, payments, revenue, conversion and the average payment from recorded views and captured payments', async () => {
      const link = await newLink();
      let html = (await page(link)).text;
      expect([metric(html, 'Views'), metric(html, 'Payments'), metric(html, 'Revenue'), metric(html, 'Conversion'), metric(html, 'Average payment')]).to.deep.equal(['0', '0', '€0.00', '0.0%', '—']);

      await view(link, 8);
      // Neither a crawler nor a browser's prefetch is a view.
      await view(link, 1, { 'User-Agent': GOOGLEBOT });
      await view(link, 1, { 'Sec-Purpose': 'prefetch' });
      await pay(link, 2);
      // A declined card is no payment.
      const { payment } = await env.rt.services.checkout.start(shop, link, { amount: 3900, currency: 'EUR', name: 'Bo', email: 'bo@example.test' });
      await env.rt.services.checkout.decline(payment.id, { code: 'card_declined', message: 'Declined' });

      html = (await page(link)).text;
      expect([metric(html, 'Views'), metric(html, 'Payments'), metric(html, 'Revenue'), metric(html, 'Conversion'), metric(html, 'Average payment')]).to.deep.equal(['8', '2', '€78.00', '25.0%', '€39.00']);
    });

    it('rounds conversion to one decimal and the average payment to the currency’s minor unit', async () => {
      const link = await newLink({ name: 'Open amount', amount: 1000 });
      await view(link, 3);
      await pay(link, 1);
      // Different amounts through the same link (the average is revenue ÷ payments, rounded).
      const { payment } = await env.rt.services.checkout.start(shop, link, { amount: 1001, currency: 'EUR', name: 'C', email: 'c@example.test' });
      await env.rt.services.checkout.authorize(payment.id, 'sbx_odd');
      const html = (await page(link)).text;
      expect(metric(html, 'Conversion')).to.equal('66.7%');
      expect(metric(html, 'Average payment')).to.equal('€10.01');
    });

    it('shows the numbers in the links list too', async () => {
      const link = await newLink({ name: 'Listed with numbers', payment_limit: 10 });
      await view(link, 4);
      await pay(link, 1);
      const html = (await acct.agent.get('/app/links?q=Listed%20with%20numbers').expect(200)).text;
      const row = html.slice(html.indexOf(`id="link-row-${link.id}"`));
      // Views with the conversion under them (one column: the list has ten to fit).
      expect(row).to.match(/<td data-label="Views" class="num"><span class="cell-stack"><span>4<\/span> <span class="cell-sub">25.0% converted<\/span><\/span><\/td>/);
      expect(row).to.match(/<td data-label="Revenue" class="num">€39.00<\/td>/);
      expect(row).to.match(/<td data-label="Payments" class="num cell-payments">1 \/ 10 <span class="badge badge-green">9 left<\/span><\/td>/);
    });
  });

  describe('remaining payments', () => {
    it('is green with 4 or more left, orange with 1–3, red when the limit is reached', async () => {
      const link = await newLink({ name: 'Five seats', payment_limit: 5 });
      const seen: string[][] = [];
      const listRow = async () => {
        const html = (await acct.agent.get('/app/links?q=Five%20seats').expect(200)).text;
        return /<td data-label="Payments"[^>]*>(.*?)<\/td>/.exec(html.slice(html.indexOf(`id="link-row-${link.id}"`)))![1];
      };
      for (const paid of [0, 2, 2, 1]) {
        await pay(link, paid);
        const html = (await page(link)).text;
        seen.push([...metricBadges(html), (await listRow()).replace(/<[^>]+>/g, '')]);
      }
      expect(seen).to.deep.equal([
        ['5 left (green)', '0 / 5 5 left'],
        ['3 left (amber)', '2 / 5 3 left'],
        ['1 left (amber)', '4 / 5 1 left'],
        ['Limit reached (green)', '5 / 5 Limit reached'],
      ]);
    });

    it('describes the limit in a card: type, total, remaining and how much is used, with a progress bar', async () => {
      const link = await newLink({ name: 'Forty bags', payment_limit: 40 });
      await pay(link, 10);
      const html = (await page(link)).text;
      const card = html.slice(html.indexOf('id="link-limit"'), html.indexOf('</section>', html.indexOf('id="link-limit"')));
      const facts = Object.fromEntries([...card.matchAll(/<dt>([^<]+)<\/dt><dd>([^<]+)/g)].map((m) => [m[1], m[2].trim()]));
      expect(facts).to.deep.equal({ Type: 'Multiple', Total: '40 payments', Remaining: '30', Used: '25%' });
      expect(card).to.match(/<label for="limit-progress"[^>]*>10 of 40 used<\/label>/);
      expect(card).to.match(/<progress id="limit-progress" class="meter meter-green" max="40" value="10">25%<\/progress>/);

      const once = await newLink({ name: 'Just once', payment_limit: 1 });
      expect((await page(once)).text).to.match(/<dt>Type<\/dt><dd>One-time/);
    });

    it('shows no badge and no progress for an unlimited link', async () => {
      const link = await newLink({ name: 'Unlimited beans' });
      await pay(link, 1);
      const html = (await page(link)).text;
      expect(metricBadges(html)).to.deep.equal([]);
      expect(html).to.match(/<dt>Type<\/dt><dd>Unlimited/);
      expect(html).not.to.include('<progress');
    });
  });

  describe('activity tabs', () => {
    let link: Link;
    before(async () => {
      link = await newLink({ name: 'Busy link' });
      await view(link, 3, { Referer: 'https://news.example.org/best-coffee?utm=secret' });
      await pay(link, 1);
    });

    it('renders the whole page for a tab’s address, and only the panel for htmx', async () => {
      const full = await page(link, '?tab=views');
      expect(full.text).to.match(/^<!doctype html>/);
      expect(selectedTab(full.text)).to.equal('views');
      expect(full.text).to.include('id="link-metrics"');
      expect(full.headers.vary).to.match(/HX-Request/);

      const frag = await panel(link, '?tab=views');
      expect(frag.text.trimStart()).to.match(/^<section id="link-activity"/);
      expect(frag.text).not.to.include('<html');
      expect(frag.text).not.to.include('id="link-metrics"');
      expect(selectedTab(frag.text)).to.equal('views');
      expect(rowCount(frag.text, 'views')).to.equal(3);
    });

    it('marks the tabs up as a tablist whose tabs are links to the same addresses', async () => {
      const html = (await page(link, '?tab=payments')).text;
      expect(html).to.include('role="tablist"');
      const tabs = [...html.matchAll(/<a role="tab" id="activity-tab-(\w+)" href="([^"]+)" hx-get="([^"]+)" hx-push-url="true" aria-controls="activity-panel" aria-selected="(\w+)">/g)];
      expect(tabs.map((t) => [t[1], t[2], t[4]])).to.deep.equal([
        ['all', `/app/links/${link.id}`, 'false'],
        ['views', `/app/links/${link.id}?tab=views`, 'false'],
        ['payments', `/app/links/${link.id}?tab=payments`, 'true'],
        ['reminders', `/app/links/${link.id}?tab=reminders`, 'false'],
      ]);
      expect(tabs.every((t) => t[2] === t[3])).to.equal(true);
      expect(html).to.match(/<div id="activity-panel" role="tabpanel" aria-labelledby="activity-tab-payments"/);
    });

    it('shows All for a tab it does not know', async () => {
      const html = (await page(link, '?tab=%3Cscript%3E')).text;
      expect(selectedTab(html)).to.equal('all');
      expect(rowCount(html, 'all')).to.equal(4);
    });

    it('shows views with browser and OS, the masked IP and where they came from (no query string)', async () => {
      const html = (await panel(link, '?tab=views')).text;
      expect(html).to.include('<td data-label="Browser / OS">Chrome / Mac</td>');
      expect(html).to.include('<td data-label="Browser / OS">Safari / iOS</td>');
      expect(html).to.match(/<td data-label="IP address" class="num">127\.0\.0\.xxx<\/td>/);
      expect(html).to.include('<td data-label="Referrer" class="cell-referer">news.example.org/best-coffee</td>');
      expect(html).not.to.include('utm=secret');
    });

    it('shows payments with customer, amount, a status badge and a link to the payment', async () => {
      const other = await newLink({ name: 'Mixed statuses' });
      await pay(other, 1, { name: 'Ana López', email: 'ana@example.test' });
      const { payment: failed } = await env.rt.services.checkout.start(shop, other, { amount: 3900, currency: 'EUR', name: 'Bo', email: 'bo@example.test' });
      await env.rt.services.checkout.decline(failed.id, { code: 'card_declined', message: 'Declined' });
      const { payment: open } = await env.rt.services.checkout.start(shop, other, { amount: 3900, currency: 'EUR', name: 'Cy', email: 'cy@example.test' });
      const html = (await panel(other, '?tab=payments')).text;
      const statuses = [...html.matchAll(/<td data-label="Status"><span class="badge badge-(\w+)">([^<]+)/g)].map((m) => `${m[2]} (${m[1]})`);
      expect(statuses).to.deep.equal(['Incomplete (grey)', 'Failed (red)', 'Succeeded (green)']);
      expect(html).to.include(`<a href="/app/payments/${open.id}">€39.00`);
      expect(html).to.include(`<a href="/app/payments/${failed.id}">€39.00`);
      expect(html).to.match(/Ana López<span class="muted small">ana@example\.test<\/span>/);
    });

    it('says there are no reminders yet', async () => {
      const html = (await panel(link, '?tab=reminders')).text;
      expect(selectedTab(html)).to.equal('reminders');
      expect(html).to.include('No reminders yet');
      expect(html).not.to.include('<table');
    });

    it('has an empty state on every tab of a new link', async () => {
      const fresh = await newLink({ name: 'Nothing yet' });
      for (const [tab, text] of [['', 'No activity yet.'], ['?tab=views', 'No views yet.'], ['?tab=payments', 'No payments yet.']]) {
        const html = (await panel(fresh, tab)).text;
        expect(html, tab).to.include(text);
        expect(html, tab).not.to.include('<table');
        expect(html, tab).not.to.include('class="pagination"');
      }
    });

    it('shows relative times with the exact time in the merchant’s time zone on hover', async () => {
      const at = env.clock.now();
      const later = await newLink({ name: 'Seen two hours ago' });
      await view(later, 1);
      env.clock.advance(2 * 3_600_000);
      try {
        const html = (await panel(later, '?tab=views')).text;
        const time = /<td data-label="Time"><time datetime="([^"]+)" title="([^"]+)">([^<]+)<\/time>/.exec(html)!;
        expect(time.slice(1)).to.deep.equal([at.toISOString(), dateTimeIn(at, 'Europe/Amsterdam'), '2 hours ago']);
        expect(time[2]).to.equal('2 Mar 2026, 10:00');
      } finally {
        env.clock.set(at);
      }
    });

    it('answers 404 for another merchant’s link, page and panel alike', async () => {
      const stranger = await signUp(env.app);
      await stranger.agent.get(`/app/links/${link.id}`).expect(404);
      await stranger.agent.get(`/app/links/${link.id}?tab=views`).set(HTMX).expect(404);
    });
  });

  describe('pages of activity', () => {
    let link: Link;
    let viewed = 0;
    before(async () => {
      link = await newLink({ name: 'Paged link' });
    });
    const viewsUpTo = async (n: number) => {
      await view(link, n - viewed);
      viewed = n;
    };

    it('fits exactly 10 views on one page, with no page links', async () => {
      await viewsUpTo(10);
      const html = (await panel(link, '?tab=views')).text;
      expect(rowCount(html, 'views')).to.equal(10);
      expect(html).not.to.include('class="pagination"');
      expect(html).to.include('Showing 1–10 of 10');
    });

    it('puts the 11th view on page 2', async () => {
      await viewsUpTo(11);
      const first = (await panel(link, '?tab=views')).text;
      expect(rowCount(first, 'views')).to.equal(10);
      expect(first).to.include(`href="/app/links/${link.id}?tab=views&amp;page=2" rel="next"`);
      const second = (await panel(link, '?tab=views&page=2')).text;
      expect(rowCount(second, 'views')).to.equal(1);
      expect(second).to.include('Showing 11–11 of 11');
      expect(second).to.include(`href="/app/links/${link.id}?tab=views" rel="prev"`);
      expect(second).not.to.include('rel="next"');
    });

    it('fills two pages with 20 views and starts a third with 21', async () => {
      await viewsUpTo(20);
      let html = (await panel(link, '?tab=views&page=2')).text;
      expect([rowCount(html, 'views'), currentPage(html)]).to.deep.equal([10, 2]);
      expect(html).not.to.include('rel="next"');
      await viewsUpTo(21);
      html = (await panel(link, '?tab=views&page=3')).text;
      expect([rowCount(html, 'views'), currentPage(html)]).to.deep.equal([1, 3]);
      expect([...html.matchAll(/<span class="sr-only">Page <\/span>(\d+)/g)].map((m) => Number(m[1]))).to.deep.equal([1, 2, 3]);
    });

    it('reads page 0 and a page that is not a number as page 1', async () => {
      for (const q of ['?tab=views&page=0', '?tab=views&page=abc', '?tab=views&page=-2', '?tab=views&page=1.5']) {
        const html = (await panel(link, q)).text;
        expect([currentPage(html), rowCount(html, 'views')], q).to.deep.equal([1, 10]);
      }
    });

    it('shows the last page for a page past the end (and says so in the address bar)', async () => {
      const full = (await page(link, '?tab=views&page=999')).text;
      expect([currentPage(full), rowCount(full, 'views')]).to.deep.equal([3, 1]);
      const frag = await panel(link, '?tab=views&page=999');
      expect(currentPage(frag.text)).to.equal(3);
      expect(frag.headers['hx-push-url']).to.equal(`/app/links/${link.id}?tab=views&page=3`);
    });

    it('merges views and payments on All, newest first, 10 to a page', async () => {
      env.clock.advance(60_000);
      await pay(link, 2);
      const first = (await panel(link)).text;
      expect(rowCount(first, 'all')).to.equal(10);
      expect([...first.matchAll(/<td data-label="Activity"[^>]*>(?:<span>)?(\w+)/g)].map((m) => m[1]).slice(0, 3)).to.deep.equal(['Payment', 'Payment', 'View']);
      const last = (await panel(link, '?page=3')).text;
      expect(rowCount(last, 'all')).to.equal(3);
      expect(last).to.include('Showing 21–23 of 23');
    });
  });

  describe('chart', () => {
    it('draws the last 30 days as an image with a text summary, and the same numbers as a table', async () => {
      const link = await newLink({ name: 'Charted' });
      const now = env.clock.now();
      try {
        env.clock.advance(-3 * 86_400_000);
        await view(link, 4);
        await pay(link, 1);
        env.clock.set(now);
        await view(link, 2);
        await pay(link, 2);
        const html = (await page(link)).text;
        const svg = /<svg class="chart-svg"[^>]*>[\s\S]*?<\/svg>/.exec(html)![0];
        expect(svg).to.match(/role="img"/);
        expect(svg).to.match(/aria-labelledby="chart-title"/);
        expect(svg).to.include('<title id="chart-title">Views and payments per day, 1 Feb – 2 Mar: 6 views, 3 payments</title>');
        expect(svg).to.include('<desc id="chart-desc">Most views on Fri 27 Feb: 4.</desc>');
        expect(svg, 'no style attributes (CSP)').not.to.match(/style=/);
        expect(svg.match(/<path /g)).to.have.length(4);

        const table = /<table class="table">[\s\S]*?<\/table>/.exec(html.slice(html.indexOf('Show as table')))![0];
        const rows = [...table.matchAll(/<tr><th scope="row"><time datetime="([\d-]+)">[^<]+<\/time><\/th><td class="num">(\d+)<\/td><td class="num">(\d+)<\/td><td class="num">([^<]+)<\/td><\/tr>/g)];
        expect(rows).to.have.length(30);
        expect(rows[0][1]).to.equal('2026-02-01');
        expect(rows[29].slice(1)).to.deep.equal(['2026-03-02', '2', '2', '€78.00']);
        expect(rows[26].slice(1)).to.deep.equal(['2026-02-27', '4', '1', '€39.00']);
        const sum = (i: number) => rows.reduce((n, r) => n + Number(r[i]), 0);
        expect([sum(2), sum(3)]).to.deep.equal([6, 3]);
        expect(table).to.match(/<tfoot><tr><th scope="row">Total<\/th><td class="num">6<\/td><td class="num">3<\/td><td class="num">€117.00<\/td><\/tr><\/tfoot>/);
      } finally {
        env.clock.set(now);
      }
    });
  });

  describe('live updates', () => {
    let server: http.Server;
    let origin: string;
    before(async () => {
      server = http.createServer(env.app);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    /** A session cookie for the merchant, from the real login form. */
    async function loginCookie(email: string, password: string): Promise<string> {
      const cookies = (res: Response) => res.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
      const form = await fetch(`${origin}/login`);
      const res = await fetch(`${origin}/login`, {
        method: 'POST',
        redirect: 'manual',
        headers: { Cookie: cookies(form), 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ _csrf: csrfFrom(await form.text()), email, password }),
      });
      expect(res.status).to.equal(303);
      return cookies(res);
    }

    /** Opens the stream; `until` resolves with everything read once `text` has arrived. */
    function openStream(path: string, cookie: string, headers: Record<string, string> = {}) {
      return new Promise<{ res: http.IncomingMessage; until(text: string): Promise<string>; ended(): Promise<string>; close(): void }>((resolve, reject) => {
        const req = http.get(`${origin}${path}`, { headers: { Cookie: cookie, Accept: 'text/event-stream', ...headers } }, (res) => {
          let body = '';
          const waiting: { text: string; done: (s: string) => void }[] = [];
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            body += chunk;
            for (const w of waiting.splice(0)) (body.includes(w.text) ? w.done(body) : waiting.push(w));
          });
          const end = new Promise<string>((done) => res.on('end', () => done(body)));
          resolve({
            res,
            until: (text) => new Promise((done) => (body.includes(text) ? done(body) : waiting.push({ text, done }))),
            ended: () => end,
            close: () => req.destroy(),
          });
        });
        req.on('error', reject);
      });
    }

    it('streams `event: update` when a view of this link is recorded', async () => {
      const link = await newLink({ name: 'Live link' });
      const cookie = await loginCookie(acct.email, acct.password);
      const streams = env.rt.live.streamCount;
      const stream = await openStream(`/app/links/${link.id}/live`, cookie);
      try {
        expect(stream.res.statusCode).to.equal(200);
        expect(stream.res.headers['content-type']).to.match(/^text\/event-stream/);
        expect(stream.res.headers['cache-control']).to.equal('no-store');
        expect(stream.res.headers['x-accel-buffering']).to.equal('no');
        expect(await stream.until('retry: 3000\n')).to.match(/^retry: 3000\nid: 0\n\n/);
        expect(env.rt.live.streamCount).to.equal(streams + 1);

        await view(link, 1);
        expect(await stream.until('event: update\n')).to.match(/event: update\nid: 1\ndata: \w+\n\n/);
      } finally {
        stream.close();
      }
    });

    it('sends nothing for the merchant’s other links', async () => {
      const link = await newLink({ name: 'Watched link' });
      const other = await newLink({ name: 'Quiet link' });
      const cookie = await loginCookie(acct.email, acct.password);
      const stream = await openStream(`/app/links/${link.id}/live`, cookie);
      await stream.until('retry:');
      await view(other, 1);
      env.rt.live.publish({ merchantKey: shop.key, linkId: other.id, kind: 'payment.succeeded' });
      // Shutting down ends every stream: whatever the server wrote is then in the body.
      env.rt.live.endStreams();
      expect(await stream.ended()).to.equal('retry: 3000\nid: 0\n\n');
    });

    it('sends at most one update a second however many changes arrive', async () => {
      const link = await newLink({ name: 'Burst link' });
      const cookie = await loginCookie(acct.email, acct.password);
      const stream = await openStream(`/app/links/${link.id}/live`, cookie);
      try {
        await stream.until('retry:');
        for (let i = 0; i < 5; i++) env.rt.live.publish({ merchantKey: shop.key, linkId: link.id, kind: 'view' });
        // A signal without a link (a payment that failed before it knew one) may concern this page too.
        env.rt.live.publish({ merchantKey: shop.key, linkId: null, kind: 'payment.failed' });
        const first = await stream.until('event: update');
        expect(first.match(/event: update/g)).to.have.length(1);
        // The rest arrive as one update after the pause.
        const second = await stream.until('id: 2\n');
        expect(second.match(/event: update/g)).to.have.length(2);
      } finally {
        stream.close();
      }
    });

    it('updates at once when the browser reconnects (it may have missed changes)', async () => {
      const link = await newLink({ name: 'Reconnecting link' });
      const cookie = await loginCookie(acct.email, acct.password);
      const stream = await openStream(`/app/links/${link.id}/live`, cookie, { 'Last-Event-ID': '0' });
      try {
        expect(await stream.until('event: update')).to.match(/retry: 3000\n[\s\S]*event: update/);
      } finally {
        stream.close();
      }
    });

    it('stops listening when the page goes away', async () => {
      const link = await newLink({ name: 'Closed link' });
      const cookie = await loginCookie(acct.email, acct.password);
      const streams = env.rt.live.streamCount;
      const stream = await openStream(`/app/links/${link.id}/live`, cookie);
      await stream.until('retry:');
      stream.close();
      await waitFor(() => env.rt.live.streamCount === streams, { message: 'the server to drop the closed stream' });
    });

    it('answers 404 for another merchant’s link, and sends a visitor without a session to log in', async () => {
      const link = await newLink({ name: 'Private link' });
      const stranger = await signUp(env.app);
      const cookie = await loginCookie(stranger.email, stranger.password);
      const res = await fetch(`${origin}/app/links/${link.id}/live`, { headers: { Cookie: cookie } });
      expect(res.status).to.equal(404);
      expect(res.headers.get('content-type')).to.match(/^text\/html/);
      const anonymous = await fetch(`${origin}/app/links/${link.id}/live`, { redirect: 'manual' });
      expect(anonymous.status).to.equal(303);
      expect(anonymous.headers.get('location')).to.match(/^\/login\?next=/);
    });

    it('re-reads metrics and chart on a live refresh, and the activity only on its first page', async () => {
      const link = await newLink({ name: 'Refreshed link' });
      await view(link, 12);
      const live = { 'HX-Request': 'true', 'HX-Trigger': 'link-live', 'HX-Target': 'link-activity' };
      const onFirst = (await acct.agent.get(`/app/links/${link.id}?tab=views`).set(live).expect(200)).text;
      expect(onFirst.trimStart()).to.match(/^<section id="link-activity"/);
      expect(onFirst).to.match(/<dl id="link-metrics" class="metrics" hx-swap-oob="true">/);
      expect(onFirst).to.match(/<section id="link-limit"[^>]* hx-swap-oob="true">/);
      expect(onFirst).to.match(/<div id="link-chart-figure" class="chart" hx-swap-oob="true">/);
      expect(onFirst).to.match(/<div id="link-chart-table" class="table-wrap" hx-swap-oob="true">/);
      expect(onFirst, 'a table the merchant opened stays open').not.to.include('<details');
      expect(onFirst).to.match(/<div id="link-live" hidden hx-get="\/app\/links\/lnk_\w+\?tab=views" hx-trigger="sse:update"><\/div>/);

      const onSecond = (await acct.agent.get(`/app/links/${link.id}?tab=views&page=2`).set({ ...live, 'HX-Target': 'link-live' }).expect(200)).text;
      expect(onSecond).not.to.include('id="link-activity"');
      expect(onSecond).to.include('id="link-metrics"');
      // On page 2 the trigger swaps nothing itself: only the out-of-band parts change.
      const pageTwo = (await panel(link, '?tab=views&page=2')).text;
      expect(pageTwo).to.match(/<div id="link-live" hidden hx-get="\/app\/links\/lnk_\w+\?tab=views&amp;page=2" hx-trigger="sse:update" hx-swap="none"><\/div>/);
    });
  });
});
