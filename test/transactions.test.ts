// The Transactions page (every payment across links, filters, pages), a payment's page with its
// attribution, and the payments CSV. Payments are made through the real pay page and sandbox card page.
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, fieldError, signUp, type Account, type TestEnv } from './support/harness.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';
import type { Link } from '../src/features/links/service.ts';

const PAID = '4242424242424242';
const DECLINED = '4000000000000002';

/** The rows of the Transactions table: [date, customer, link, amount, status] as text. */
function rows(html: string): string[][] {
  const body = /<tbody>([\s\S]*?)<\/tbody>/.exec(html)?.[1] ?? '';
  return [...body.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((tr) =>
    [...tr[1].matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((td) =>
      td[1].replace(/<span class="sr-only">[^<]*<\/span>/g, '').replace(/<[^>]+>/g, ' ').replace(/&amp;/g, '&').replace(/\s+/g, ' ').trim(),
    ),
  );
}
const paymentIds = (html: string) => [...html.matchAll(/<a href="\/app\/payments\/(pay_\w+)">/g)].map((m) => m[1]);

/** A CSV body as records of cells (RFC 4180, as the export writes it). */
function parseCsv(text: string): string[][] {
  expect(text.charCodeAt(0), 'starts with a UTF-8 BOM').to.equal(0xfeff);
  const out: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 1; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (cell += '"'), i++;
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') row.push(cell), (cell = '');
    else if (c === '\r' && text[i + 1] === '\n') row.push(cell), out.push(row), (row = []), (cell = ''), i++;
    else cell += c;
  }
  expect(row.length === 0 && cell === '', 'ends with CRLF').to.equal(true);
  return out;
}

forEachTarget('transactions', (target) => {
  let env: TestEnv;
  const http = () => supertest(env.app);
  before(async () => {
    env = await build(target);
  });
  after(() => env?.close());

  const merchantOf = async (acct: Account): Promise<Merchant> => (await env.rt.services.merchants.getByHandle(acct.handle))!;
  const newLink = (m: Merchant, name: string, fields: Record<string, unknown> = {}) => env.rt.services.links.create(m, { type: 'amount', name, amount: 1250, ...fields });

  /**
   * A customer fills in the pay page at `url` and, given a card, pays on the sandbox card page.
   * Answers the payment's public id.
   */
  async function checkout(url: string, opts: { name?: string; email?: string; card?: string; amount?: string } = {}): Promise<string> {
    const form = { name: opts.name ?? 'Ann Example', email: opts.email ?? 'ann@example.test', ...(opts.amount ? { amount: opts.amount } : {}) };
    const started = await http().post(url).type('form').send(form);
    expect(started.status, started.text.slice(0, 300)).to.equal(303);
    const cardPage = new URL(started.headers.location).pathname;
    if (opts.card) {
      const paid = await http().post(cardPage).type('form').send({ card_number: opts.card });
      expect(paid.status).to.equal(303);
    }
    const session = await env.rt.db('checkout_sessions').where({ public_id: cardPage.split('/').pop() }).first();
    const payment = await env.rt.db('payments').where({ checkout_session_id: session.id }).orderBy('id', 'desc').first();
    return payment.public_id as string;
  }
  const payLink = (m: Merchant, link: Link, opts: Parameters<typeof checkout>[1] = {}) => checkout(`/${m.handle}/${link.path}`, opts);

  /** A signed-up merchant in `timezone` (and the clock moved to `at`, when given). */
  async function shop(timezone = 'UTC', at?: string): Promise<{ acct: Account; m: Merchant }> {
    if (at) env.clock.set(at);
    const acct = await signUp(env.app);
    let m = await merchantOf(acct);
    if (timezone !== 'UTC') m = await env.rt.services.merchants.updateSettings(m, { name: m.name, handle: m.handle, currency: m.currency, timezone, brand_color: m.brandColor });
    return { acct, m };
  }

  describe('the list', () => {
    it('shows every payment across links, newest first, with customer, link, amount and status', async () => {
      const { acct, m } = await shop('UTC', '2026-03-02T09:00:00Z');
      const cake = await newLink(m, 'Birthday cake');
      const tart = await newLink(m, 'Lemon tart', { amount: 800 });
      await payLink(m, cake, { name: 'Ann Example', email: 'ann@example.test', card: PAID });
      env.clock.advance(60_000);
      await payLink(m, tart, { name: 'Bob Baker', email: 'bob@example.test', card: DECLINED });
      env.clock.advance(60_000);
      await payLink(m, tart, { name: 'Cy Cook', email: 'cy@example.test' });
      env.clock.advance(60_000);
      await checkout(`/${m.handle}`, { name: 'Di Diner', email: 'di@example.test', amount: '5', card: PAID });

      const page = await acct.agent.get('/app/payments').expect(200);
      expect(page.text).to.include('<h1>Transactions</h1>');
      expect(page.text).to.include('4 payments');
      expect(rows(page.text)).to.deep.equal([
        ['2 Mar 2026, 09:03', 'Di Diner di@example.test', 'Payment page', '€5.00', 'Succeeded'],
        ['2 Mar 2026, 09:02', 'Cy Cook cy@example.test', 'Lemon tart', '€8.00', 'Incomplete'],
        ['2 Mar 2026, 09:01', 'Bob Baker bob@example.test', 'Lemon tart', '€8.00', 'Failed'],
        ['2 Mar 2026, 09:00', 'Ann Example ann@example.test', 'Birthday cake', '€12.50', 'Succeeded'],
      ]);
      expect(page.text).to.include(`<a href="/app/links/${tart.id}">Lemon tart</a>`);
      expect(page.text).to.include('<span class="badge badge-green">Succeeded</span>');
      expect(page.text).to.include('<span class="badge badge-red">Failed</span>');
      expect(page.text).to.include('<span class="badge badge-grey">Incomplete</span>');
      expect(page.text).to.match(/<time datetime="2026-03-02T09:00:00.000Z">/);
      expect(page.text, 'the navigation lists Transactions after Links').to.match(/href="\/app\/links"[\s\S]*?<a id="nav-app-payments" href="\/app\/payments" aria-current="page">Transactions<\/a>/);
    });

    it('explains the page when there are no payments yet, and sends strangers to log in', async () => {
      const { acct } = await shop();
      const page = await acct.agent.get('/app/payments').expect(200);
      expect(page.text).to.include('No payments yet');
      expect(page.text).not.to.include('id="payment-filters"');
      const anon = await http().get('/app/payments?status=paid').expect(303);
      expect(anon.headers.location).to.equal('/login?next=%2Fapp%2Fpayments%3Fstatus%3Dpaid');
      await http().get('/app/payments.csv').expect(303);
    });

    it('filters by status and by link, and ignores values it does not know', async () => {
      const { acct, m } = await shop();
      const cake = await newLink(m, 'Birthday cake');
      const tart = await newLink(m, 'Lemon tart');
      const paidCake = await payLink(m, cake, { card: PAID });
      const failedCake = await payLink(m, cake, { card: DECLINED });
      const paidTart = await payLink(m, tart, { card: PAID });
      const other = await shop();
      const elsewhere = await newLink(other.m, 'Not yours');

      const ids = async (query: string) => paymentIds((await acct.agent.get(`/app/payments${query}`).expect(200)).text).sort();
      expect(await ids('?status=paid')).to.deep.equal([paidCake, paidTart].sort());
      expect(await ids('?status=failed')).to.deep.equal([failedCake]);
      expect(await ids('?status=refunded')).to.deep.equal([]);
      expect(await ids(`?link=${cake.id}`)).to.deep.equal([paidCake, failedCake].sort());
      expect(await ids(`?link=${cake.id}&status=paid`)).to.deep.equal([paidCake]);
      const all = [paidCake, failedCake, paidTart].sort();
      for (const ignored of ['?status=bogus', '?status=', `?link=${elsewhere.id}`, '?link=lnk_nope', '?link=%3Cscript%3E', '?page=-3', '?page=abc', '?status[]=paid']) {
        expect(await ids(ignored), ignored).to.deep.equal(all);
      }
      // A date that names no day is left out too, but said so by its field (422), not silently.
      for (const [bad, field] of [['?from=2026-02-30', 'from'], ['?to=yesterday', 'to']]) {
        const res = await acct.agent.get(`/app/payments${bad}`).expect(422);
        expect(fieldError(res.text, field), bad).to.match(/must be a date such as 31\/01\/2026/);
        expect(paymentIds(res.text).sort(), bad).to.deep.equal(all);
      }
      // The form shows the chosen filters back; the link select offers the merchant's links only.
      const page = await acct.agent.get(`/app/payments?status=failed&link=${cake.id}`).expect(200);
      expect(page.text).to.include('<option value="failed" selected>Failed</option>');
      expect(page.text).to.include(`<option value="${cake.id}" selected>Birthday cake</option>`);
      expect(page.text).to.include(`<option value="${tart.id}">Lemon tart</option>`);
      expect(page.text).not.to.include(elsewhere.id);
      expect(page.text).to.include(`href="/app/payments.csv?status=failed&amp;link=${cake.id}"`);
      expect(page.text).not.to.include('No payments match');
    });

    it('filters by dates in the merchant’s time zone, "to" day included, at the exact midnight boundaries', async () => {
      // New York is UTC-5 in early March 2026 (daylight saving starts on 8 March).
      const { acct, m } = await shop('America/New_York', '2026-03-02T04:59:59.999Z');
      const l = await newLink(m, 'Bagels');
      const at: Record<string, string> = {};
      for (const instant of ['2026-03-02T04:59:59.999Z', '2026-03-02T05:00:00.000Z', '2026-03-03T04:59:59.999Z', '2026-03-03T05:00:00.000Z']) {
        env.clock.set(instant);
        at[instant] = await payLink(m, l, { card: PAID });
      }
      const ids = async (query: string) => paymentIds((await acct.agent.get(`/app/payments${query}`).expect(200)).text).sort();
      const only = (...instants: string[]) => instants.map((i) => at[i]).sort();
      expect(await ids('?from=2026-03-02&to=2026-03-02')).to.deep.equal(only('2026-03-02T05:00:00.000Z', '2026-03-03T04:59:59.999Z'));
      expect(await ids('?from=2026-03-02')).to.deep.equal(only('2026-03-02T05:00:00.000Z', '2026-03-03T04:59:59.999Z', '2026-03-03T05:00:00.000Z'));
      expect(await ids('?to=2026-03-01')).to.deep.equal(only('2026-03-02T04:59:59.999Z'));
      expect(await ids('?from=2026-03-03&to=2026-03-03')).to.deep.equal(only('2026-03-03T05:00:00.000Z'));
      // "To" before "from": "to" is left out and named.
      const backwards = await acct.agent.get('/app/payments?from=2026-03-04&to=2026-03-02').expect(422);
      expect(fieldError(backwards.text, 'to')).to.include('before From');
      expect(paymentIds(backwards.text)).to.deep.equal([]);
      // Typed in the merchant's format (en-GB by default), the same days.
      expect(await ids('?from=02/03/2026&to=2/3/2026')).to.deep.equal(only('2026-03-02T05:00:00.000Z', '2026-03-03T04:59:59.999Z'));
      // Dates show in the merchant's zone too.
      const page = await acct.agent.get('/app/payments?to=2026-03-01').expect(200);
      expect(rows(page.text)[0][0]).to.equal('1 Mar 2026, 23:59');
      expect(page.text).to.include('value="2026-03-01"');
    });

    it('pages 25 at a time: 25 payments make one page, the 26th starts a second', async () => {
      const { acct, m } = await shop();
      const l = await newLink(m, 'Coffee');
      const made: string[] = [];
      for (let i = 0; i < 26; i++) {
        if (i === 25) {
          const one = await acct.agent.get('/app/payments').expect(200);
          expect(rows(one.text)).to.have.length(25);
          expect(one.text).to.include('25 payments');
          expect(one.text, 'no pagination for one page').not.to.include('class="pagination"');
        }
        made.push(await payLink(m, l, { name: `Customer ${i}`, card: PAID }));
        env.clock.advance(60_000);
      }
      const first = await acct.agent.get('/app/payments').expect(200);
      expect(first.text).to.include('26 payments · showing 1–25');
      expect(paymentIds(first.text)).to.deep.equal(made.slice(1).reverse());
      expect(first.text).to.include('<a href="/app/payments?page=2" rel="next">Next →</a>');
      expect(first.text).to.include('<a href="/app/payments" aria-current="page">');
      const second = await acct.agent.get('/app/payments?page=2').expect(200);
      expect(paymentIds(second.text)).to.deep.equal([made[0]]);
      expect(second.text).to.include('26 payments · showing 26–26');
      expect(second.text).to.include('<a href="/app/payments" rel="prev">← Previous</a>');
      // Past the end is the last page, not an empty one.
      expect(paymentIds((await acct.agent.get('/app/payments?page=99').expect(200)).text)).to.deep.equal([made[0]]);
    });

    it('answers htmx with the results fragment and the tidy address for the address bar', async () => {
      const { acct, m } = await shop();
      const l = await newLink(m, 'Tea');
      await payLink(m, l, { card: PAID });
      const res = await acct.agent.get(`/app/payments?status=paid&link=&from=&to=&page=1`).set('HX-Request', 'true').expect(200);
      expect(res.text.trimStart()).to.match(/^<div id="payment-results"/);
      expect(res.text).not.to.include('<html');
      expect(res.headers['hx-push-url']).to.equal('/app/payments?status=paid');
      expect(res.headers.vary).to.match(/HX-Request/i);
      // A boosted navigation (or a reload of the pushed address) gets the whole page.
      const full = await acct.agent.get('/app/payments?status=paid').set('HX-Request', 'true').set('HX-Boosted', 'true').expect(200);
      expect(full.text).to.include('<html');
      expect(full.text).to.include('id="payment-filters"');
    });
  });

  describe('a payment’s page', () => {
    it('shows amount, status, customer, provider, times and the smart link it was paid through', async () => {
      const { acct, m } = await shop('Europe/Amsterdam', '2026-03-02T09:00:00Z');
      const l = await newLink(m, 'Summer sale', { path: 'summer-sale', amount: 4900 });
      const id = await payLink(m, l, { name: 'Ann Example', email: 'ann@example.test', card: PAID });
      const row = await env.rt.db('payments').where({ public_id: id }).first();
      const page = await acct.agent.get(`/app/payments/${id}`).expect(200);
      expect(page.text).to.include('<h1>€49.00 <span class="badge badge-green">Succeeded</span></h1>');
      expect(page.text).to.include('Ann Example');
      expect(page.text).to.include('href="mailto:ann@example.test"');
      expect(page.text).to.include('<dd>Sandbox (test cards) <span class="muted small">(sandbox)</span></dd>');
      expect(page.text).to.include(`<code>${row.provider_ref}</code>`);
      expect(page.text).to.include('<time datetime="2026-03-02T09:00:00.000Z">2 Mar 2026, 10:00</time>');
      expect(page.text).to.match(/Authorized<\/span> <time datetime="2026-03-02T09:00:00.000Z">/);
      expect(page.text).to.match(/Paid<\/span> <time/);
      expect(page.text).not.to.match(/Voided<\/span>/);
      expect(page.text).to.include('Paid through smart link <strong>Summer sale</strong></p>');
      expect(page.text).to.include(`<code class="url">http://pay.test/${m.handle}/summer-sale</code>`);
      expect(page.text).to.include('<dd>€49.00</dd>');
      expect(page.text).to.include(`<a href="/app/links/${l.id}">Summer sale</a>`);
    });

    it('keeps the link as the customer saw it after the link is renamed, and says when it is deleted', async () => {
      const { acct, m } = await shop();
      const l = await newLink(m, 'Summer sale', { path: 'summer-sale', amount: 4900 });
      const id = await payLink(m, l, { card: PAID });
      await env.rt.services.links.update(m, l.id, { name: 'Autumn sale', path: 'autumn-sale', amount: 5900 });

      let page = await acct.agent.get(`/app/payments/${id}`).expect(200);
      expect(page.text).to.include('Paid through smart link <strong>Summer sale</strong> <span class="muted">(since renamed to “Autumn sale”)</span>');
      expect(page.text).to.include(`http://pay.test/${m.handle}/summer-sale`);
      expect(page.text).to.include('<dd>€49.00</dd>');
      expect(page.text).to.include(`<a href="/app/links/${l.id}">Autumn sale</a>`);

      await env.rt.services.links.remove(m, l.id);
      page = await acct.agent.get(`/app/payments/${id}`).expect(200);
      expect(page.text).to.include('Paid through smart link <strong>Summer sale</strong> <span class="muted">(deleted)</span>');
      expect(page.text).not.to.include(`href="/app/links/${l.id}"`);
      // The list still shows its payments, by name, without a link to a page that is gone.
      const list = await acct.agent.get('/app/payments').expect(200);
      expect(rows(list.text)[0][2]).to.equal('Autumn sale (deleted)');
      expect(list.text).not.to.include(`href="/app/links/${l.id}"`);
    });

    it('says when a payment came from the merchant’s own payment page, and why a payment failed', async () => {
      const { acct, m } = await shop();
      const own = await checkout(`/${m.handle}`, { amount: '20', card: PAID });
      const page = await acct.agent.get(`/app/payments/${own}`).expect(200);
      expect(page.text).to.include(`Paid on your own payment page, <code class="url">http://pay.test/${m.handle}</code>, not through a link.`);

      const failed = await checkout(`/${m.handle}/12.50`, { card: DECLINED });
      const failedPage = await acct.agent.get(`/app/payments/${failed}`).expect(200);
      expect(failedPage.text).to.include('<span class="badge badge-red">Failed</span>');
      expect(failedPage.text).to.include('<dt>Failure reason</dt><dd>Your card was declined. Try another card. <span class="muted small">(card_declined)</span></dd>');
      expect(failedPage.text).to.include('Started on your own payment page');
    });

    it('is a 404 for another merchant’s payment and for an unknown id', async () => {
      const { acct } = await shop();
      const other = await shop();
      const theirs = await payLink(other.m, await newLink(other.m, 'Private'), { card: PAID });
      await acct.agent.get(`/app/payments/${theirs}`).expect(404);
      await acct.agent.get('/app/payments/pay_doesnotexist').expect(404);
      await acct.agent.get(`/app/payments/${'x'.repeat(300)}`).expect(404);
      await other.acct.agent.get(`/app/payments/${theirs}`).expect(200);
    });
  });

  describe('the CSV export', () => {
    it('streams every matching payment with a header row, and neutralises a formula typed as a name', async () => {
      const { acct, m } = await shop('America/New_York', '2026-11-21T15:00:00Z');
      const l = await newLink(m, 'Gift card', { amount: 2500 });
      const evil = await payLink(m, l, { name: '=HYPERLINK("http://evil")', email: 'evil@example.test', card: PAID });
      env.clock.advance(60_000);
      const failed = await payLink(m, l, { name: 'Zoë, "the" tester', card: DECLINED });
      const other = await shop();
      await payLink(other.m, await newLink(other.m, 'Not yours'), { card: PAID });

      const res = await acct.agent.get('/app/payments.csv').buffer(true).expect(200);
      expect(res.headers['content-type']).to.equal('text/csv; charset=utf-8');
      expect(res.headers['content-disposition']).to.equal('attachment; filename="payments-2026-11-21.csv"');
      expect(res.headers['cache-control']).to.equal('no-store');
      expect(res.text).to.include(`'=HYPERLINK(""http://evil"")`);
      expect(res.text).to.include('"\'=HYPERLINK(""http://evil"")"');
      const row = await env.rt.db('payments').where({ public_id: evil }).first();
      expect(parseCsv(res.text)).to.deep.equal([
        ['id', 'created_at', 'paid_at', 'status', 'amount', 'currency', 'customer_name', 'customer_email', 'link_id', 'link_name', 'provider', 'provider_ref', 'amount_refunded', 'amount_before_discount', 'discount', 'coupon_code', 'customer_phone', 'address', 'instructions', 'terms_accepted_at', 'fields', 'line_items'],
        [failed, '2026-11-21T15:01:00.000Z', '', 'failed', '25.00', 'EUR', 'Zoë, "the" tester', 'ann@example.test', l.id, 'Gift card', 'sandbox', '', '0.00', '', '', '', '', '', '', '', '', ''],
        [evil, '2026-11-21T15:00:00.000Z', '2026-11-21T15:00:00.000Z', 'paid', '25.00', 'EUR', `'=HYPERLINK("http://evil")`, 'evil@example.test', l.id, 'Gift card', 'sandbox', row.provider_ref, '0.00', '', '', '', '', '', '', '', '', ''],
      ]);

      // The same filters as the page.
      const paid = parseCsv((await acct.agent.get(`/app/payments.csv?status=paid&link=${l.id}&from=2026-11-21&to=2026-11-21`).buffer(true).expect(200)).text);
      expect(paid.slice(1).map((r) => r[0])).to.deep.equal([evil]);
      const none = parseCsv((await acct.agent.get('/app/payments.csv?from=2026-11-22').buffer(true).expect(200)).text);
      expect(none).to.have.length(1);
    });
  });
});
