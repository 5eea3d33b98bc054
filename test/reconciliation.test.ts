/**
 * Reports → Reconciliation (issue 13 item 7): a realistic mix of payment requests — created through
 * the API with a named key and on the dashboard by a signed-in user, sent by email and SMS, opened,
 * declined and paid through the sandbox provider, partly refunded, expired by moving the clock,
 * cancelled, still pending, in two currencies — in a merchant whose time zone is not UTC. Then: the
 * summary equals the sum of the rows (added up here from the CSV), every figure matches what was set
 * up, the range's edges are the merchant's midnights, one request's audit trail is in order, the CSV
 * neutralises formulas, bad dates answer 422 by field, and another merchant sees none of it.
 */
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { csrfFrom, fieldError, signUp, useEnv, type Account } from './support/harness.ts';
import { apiClient, apiMerchant, expectFieldErrors, expectProblem, type ApiCall } from './support/api.ts';
import { BROWSERS } from './support/user-agents.ts';
import { readCsv } from '../src/core/csv-read.ts';
import { currencyDigits } from '../src/core/money.ts';
import { settingsValues, type Merchant } from '../src/features/merchants/index.ts';

const TZ = 'America/New_York'; // UTC−5 in early March 2026 (daylight saving starts on the 8th)
const MIN = 60_000;
const INJECTION = '=HYPERLINK("http://evil.test","Click")';

type Json = Record<string, any>;

/** "12.50" in its currency → minor units (1250), as an accountant's spreadsheet would read the cell. */
function minor(v: string, currency: string): number {
  const m = /^(\d+)(?:\.(\d+))?$/.exec(v);
  if (!m) throw new Error(`not an amount: ${v}`);
  const digits = currencyDigits(currency);
  expect((m[2] ?? '').length, v).to.equal(digits);
  return Number(m[1]) * 10 ** digits + Number(m[2] ?? 0);
}

/** CSV text → header-keyed records (the BOM and CRLFs as a spreadsheet would read them). */
function records(text: string): Record<string, string>[] {
  expect(text.charCodeAt(0), 'UTF-8 BOM first').to.equal(0xfeff);
  const [head, ...rows] = readCsv(text);
  return rows.map((r) => Object.fromEntries(head.fields.map((h, i) => [h, r.fields[i] ?? ''])));
}

forEachTarget('reports: reconciliation', (target) => {
  const env = useEnv(target, { apiLimit: { points: 100_000, durationSec: 60 } });
  let acct: Account;
  let merchant: Merchant;
  let call: ApiCall;
  let stranger: ApiCall;
  let strangerRequest: string;
  const ids: Record<string, string> = {};
  const urls: Record<string, string> = {};

  const pathOf = (url: string) => new URL(url).pathname;
  const at = (iso: string) => env.clock.set(iso);
  const createApi = async (name: string, body: Json) => {
    const res = await call('post', '/payment_requests', body);
    expect(res.status, res.text).to.equal(201);
    ids[name] = res.body.id;
    urls[name] = res.body.url;
    await env.rt.jobs.drain();
  };
  const createDashboard = async (name: string, fields: Json) => {
    const res = await acct.agent.post('/app/requests').type('form').send({ _csrf: acct.csrf, currency: 'EUR', description: '', reference: '', customer_phone: '', max_uses: '1', ...fields });
    expect(res.status, res.text.slice(0, 400)).to.equal(303);
    ids[name] = /\/app\/requests\/(req_\w+)$/.exec(res.headers.location)![1];
  };
  /** Starts a checkout on the request's page and answers the sandbox card page with `card`. */
  const attempt = async (name: string, card: string, who = { name: 'Payer', email: 'payer@example.test' }) => {
    const start = await supertest(env.app).post(pathOf(urls[name])).type('form').send(who);
    expect(start.status, start.text.slice(0, 300)).to.equal(303);
    await supertest(env.app).post(new URL(start.headers.location, 'http://x').pathname).type('form').send({ card_number: card }).expect(303);
    await env.rt.jobs.drain();
  };
  const view = async (name: string) => {
    await supertest(env.app).get(pathOf(urls[name])).set('User-Agent', BROWSERS[0].ua).expect(200);
    await env.rt.views!.flush();
  };
  const report = async (q: string, as: ApiCall = call) => (await as('get', `/reports/reconciliation?${q}`).expect(200)).body as Json;

  before(async function () {
    this.timeout(60_000);
    // A merchant signed up on the dashboard (a user of theirs creates requests there), in New York, with an API key "billing".
    acct = await signUp(env.app, { name: 'Harbor Repairs' });
    const signedUp = (await env.rt.services.merchants.getByHandle(acct.handle))!;
    merchant = await env.rt.services.merchants.updateSettings(signedUp, { ...settingsValues(signedUp), timezone: TZ, currency: 'EUR' });
    call = apiClient(env.app, (await env.rt.services.apiKeys.create(merchant, { name: 'billing' })).secret);
    const other = await apiMerchant(env, 'Stranger Shop');
    stranger = apiClient(env.app, other.secret);

    // 23:59:59 on 1 March in New York: the day before the range.
    at('2026-03-02T04:59:59Z');
    await createApi('edge', { amount: 700, currency: 'EUR', reference: 'EDGE', customer: { name: 'Eve', email: 'eve@example.test' } });
    // Midnight on 2 March in New York: the first instant of the range. Sent by email and SMS, opened,
    // declined once, paid 30 minutes after it was created, then €10 refunded.
    at('2026-03-02T05:00:00Z');
    await createApi('paid', { amount: 5000, currency: 'EUR', reference: 'INV-100', description: 'Boiler service', channels: ['email', 'sms'], customer: { name: 'Ann Archer', email: 'ann@example.test', phone: '+31 6 1234 5601' } });
    at('2026-03-02T05:10:00Z');
    await view('paid');
    at('2026-03-02T05:20:00Z');
    await attempt('paid', '4000000000000002');
    at('2026-03-02T05:30:00Z');
    await attempt('paid', '4242424242424242');
    at('2026-03-02T05:40:00Z');
    const payment = (await call('get', `/payment_requests/${ids.paid}/events`).expect(200)).body.data.find((t: Json) => t.type === 'payment' && t.payment.status === 'paid').payment;
    await call('post', `/payments/${payment.id}/refunds`, { amount: 1000, reason: 'Part not needed' }).expect(201);
    // Pending: sent by email, opened, one declined card.
    at('2026-03-02T06:00:00Z');
    await createApi('pending', { amount: 2000, currency: 'EUR', reference: 'INV-101', channels: ['email'], customer: { name: 'Bob Baker', email: 'bob@example.test' } });
    await view('pending');
    await attempt('pending', '4000000000000002');
    // On the dashboard: one that will expire (a day to pay), one cancelled.
    at('2026-03-02T07:00:00Z');
    await createDashboard('expired', { amount: '30.00', reference: 'INV-102', customer_name: 'Cat Cole', customer_email: 'cat@example.test', expires_days: '1' });
    at('2026-03-02T07:30:00Z');
    await createDashboard('cancelled', { amount: '15.00', reference: 'INV-103', customer_name: 'Dan Dale', customer_email: 'dan@example.test', expires_days: '7' });
    at('2026-03-02T08:00:00Z');
    await acct.agent.post(`/app/requests/${ids.cancelled}/cancel`).type('form').send({ _csrf: acct.csrf }).expect(303);
    // In dollars, by email, paid two hours later; its customer's name is a spreadsheet formula.
    await createApi('dollars', { amount: 1200, currency: 'USD', reference: 'US-1', channels: ['email'], customer: { name: INJECTION, email: 'formula@example.test' } });
    at('2026-03-02T10:00:00Z');
    await attempt('dollars', '4242424242424242');
    // The stranger's request, the same morning.
    strangerRequest = (await stranger('post', '/payment_requests', { amount: 999, currency: 'EUR', reference: 'INV-100', expires_in: 300 * 86_400, customer: { name: 'Zed', email: 'zed@example.test' } }).expect(201)).body.id;
    // 23:59 on 3 March in New York (the range's last minute), by SMS; then midnight on the 4th (outside).
    at('2026-03-04T04:59:00Z');
    await createApi('late', { amount: 500, currency: 'EUR', reference: 'INV-104', channels: ['sms'], customer: { name: 'Fay Fox', phone: '+31 6 1234 5602' } });
    at('2026-03-04T05:00:00Z');
    await createApi('after', { amount: 800, currency: 'EUR', reference: 'INV-105', customer: { name: 'Gil', email: 'gil@example.test' } });
    // The day to pay the dashboard one has passed.
    at('2026-03-04T06:00:00Z');
    await env.rt.jobs.enqueue(env.rt.db, 'links.expire', {});
    await env.rt.jobs.drain();
  });

  const RANGE = 'from=2026-03-02&to=2026-03-03';

  it('adds up to the sum of its rows: every amount per currency, every count, conversion and the median, from the CSV', async () => {
    const s = await report(RANGE);
    const csv = await acct.agent.get(`/app/reports/reconciliation/requests.csv?${RANGE}`).expect(200);
    expect(csv.headers['content-type']).to.equal('text/csv; charset=utf-8');
    expect(csv.headers['content-disposition']).to.include('reconciliation-requests-2026-03-02-to-2026-03-03.csv');
    const rows = records(csv.text);

    // Independently of the report: the rows' figures added up here, in minor units, per currency.
    const byCurrency = new Map<string, Json>();
    for (const r of rows) {
      const t = byCurrency.get(r.currency) ?? { currency: r.currency, requested: 0, collected: 0, refunded: 0, net: 0, outstanding: 0, expired: 0, cancelled: 0 };
      for (const k of ['requested', 'collected', 'refunded', 'net', 'outstanding', 'expired', 'cancelled']) t[k] += minor(r[k], r.currency);
      byCurrency.set(r.currency, t);
    }
    expect(s.currencies).to.deep.equal([...byCurrency.values()].sort((a, b) => a.currency.localeCompare(b.currency)));
    const count = (status: string) => rows.filter((r) => r.status === status).length;
    expect(s.requests).to.deep.equal({ initiated: rows.length, completed: count('paid'), pending: count('pending'), paid: count('paid'), expired: count('expired'), cancelled: count('cancelled') });
    // Conversion from the rows' channels and sources (a request sent on two channels counts in both).
    const buckets = (keyOf: (r: Record<string, string>) => string[]) => {
      const m = new Map<string, { initiated: number; completed: number }>();
      for (const r of rows) for (const k of keyOf(r)) {
        const b = m.get(k) ?? { initiated: 0, completed: 0 };
        b.initiated += 1;
        if (r.status === 'paid') b.completed += 1;
        m.set(k, b);
      }
      return Object.fromEntries(m);
    };
    const fromReport = (list: Json[], key: string) => Object.fromEntries(list.map((b) => [b[key], { initiated: b.initiated, completed: b.completed }]));
    expect(fromReport(s.conversion.by_channel, 'channel')).to.deep.equal(buckets((r) => (r.channels ? r.channels.split(' ') : ['none'])));
    expect(fromReport(s.conversion.by_source, 'label')).to.deep.equal(buckets((r) => [r.source]));
    const waits = rows.filter((r) => r.status === 'paid').map((r) => Number(r.time_to_pay_seconds)).sort((a, b) => a - b);
    expect(s.time_to_pay.median_seconds).to.equal(waits.length % 2 ? waits[(waits.length - 1) / 2] : (waits[waits.length / 2 - 1] + waits[waits.length / 2]) / 2);

    // The summary CSV says the same as the API.
    const sum = records((await acct.agent.get(`/app/reports/reconciliation/summary.csv?${RANGE}`).expect(200)).text);
    const line = (section: string, item: string, currency = '') => sum.find((l) => l.section === section && l.item === item && l.currency === currency)?.value;
    expect(line('requests', 'initiated')).to.equal(String(s.requests.initiated));
    for (const c of s.currencies) for (const k of ['requested', 'collected', 'refunded', 'net', 'outstanding', 'expired', 'cancelled']) expect(minor(line('amounts', k, c.currency)!, c.currency), `${c.currency} ${k}`).to.equal(c[k]);
    expect(line('time_to_pay', 'median')).to.equal(s.time_to_pay.median);
  });

  it('shows exactly what was set up, in the merchant’s days: midnight to midnight in New York', async () => {
    const s = await report(RANGE);
    expect(s).to.deep.include({ object: 'reconciliation', from: '2026-03-02', to: '2026-03-03', time_zone: TZ, starts_at: '2026-03-02T05:00:00.000Z', ends_before: '2026-03-04T05:00:00.000Z' });
    expect(s.requests).to.deep.equal({ initiated: 6, completed: 2, pending: 2, paid: 2, expired: 1, cancelled: 1 });
    expect(s.currencies).to.deep.equal([
      { currency: 'EUR', requested: 12_000, collected: 5000, refunded: 1000, net: 4000, outstanding: 2500, expired: 3000, cancelled: 1500 },
      { currency: 'USD', requested: 1200, collected: 1200, refunded: 0, net: 1200, outstanding: 0, expired: 0, cancelled: 0 },
    ]);
    const rates = (list: Json[], key: string) => Object.fromEntries(list.map((b) => [b[key], [b.initiated, b.completed, b.conversion_rate]]));
    expect(rates(s.conversion.by_channel, 'channel')).to.deep.equal({ email: [3, 2, 0.6667], sms: [2, 1, 0.5], none: [2, 0, 0] });
    expect(s.conversion.by_source.map((b: Json) => [b.source, b.api_key?.name ?? null, b.initiated, b.completed])).to.deep.equal([['api', 'billing', 4, 2], ['dashboard', null, 2, 0]]);
    // Paid after 30 minutes and after 2 hours: the median is 1 h 15 min.
    expect(s.time_to_pay).to.deep.equal({ paid: 2, median_seconds: 4500, median: '1 h 15 min' });

    // 23:59:59 on 1 March belongs to the 1st; the default range is this month (March in New York) and has it too.
    const first = await report('from=2026-03-01&to=2026-03-01');
    expect(first.requests.initiated).to.equal(1);
    expect(first.currencies).to.deep.equal([{ currency: 'EUR', requested: 700, collected: 0, refunded: 0, net: 0, outstanding: 700, expired: 0, cancelled: 0 }]);
    const month = await report('');
    expect([month.from, month.to, month.requests.initiated]).to.deep.equal(['2026-03-01', '2026-03-31', 8]);
    // Midnight on the 4th is the next day's.
    expect((await report('from=2026-03-04&to=2026-03-04')).requests.initiated).to.equal(1);

    // Each payment reconciles with the provider's reference; the refund shows on its row.
    const rows = records((await acct.agent.get(`/app/reports/reconciliation/requests.csv?${RANGE}`).expect(200)).text);
    expect(rows.map((r) => r.request_id)).to.deep.equal([ids.paid, ids.pending, ids.expired, ids.cancelled, ids.dollars, ids.late]);
    const paid = rows.find((r) => r.request_id === ids.paid)!;
    const stored = (await env.rt.db('payments').where({ status: 'partially_refunded' }).select('public_id', 'provider_ref')) as { public_id: string; provider_ref: string }[];
    expect(stored).to.have.length(1);
    expect(paid).to.deep.include({ status: 'paid', collected: '50.00', refunded: '10.00', net: '40.00', payment_ids: stored[0].public_id, provider_refs: stored[0].provider_ref, providers: 'sandbox', channels: 'email sms', views: '1', attempts: '2', source: 'API key “billing”', created_local: '2026-03-02 00:00', time_to_pay_seconds: '1800' });
    expect(paid.provider_refs).to.match(/^sbx_/);
    // Read a chunk at a time (keyset by creation time), two at a time here: the same rows in the same order.
    const chunks: string[][] = [];
    for await (const chunk of env.rt.services.requests.eachCreatedBetween(merchant.key, { from: new Date(s.starts_at), before: new Date(s.ends_before) }, 2)) chunks.push(chunk.map((r) => r.id));
    expect(chunks.map((c) => c.length)).to.deep.equal([2, 2, 2]);
    expect(chunks.flat()).to.deep.equal(rows.map((r) => r.request_id));
    const dash = rows.find((r) => r.request_id === ids.expired)!;
    expect(dash).to.deep.include({ status: 'expired', source: 'Dashboard', created_by: `on the dashboard by ${acct.email} (owner)`, expired: '30.00', collected: '0.00' });
  });

  it('keeps each request’s audit trail in order: created by which key, sent, opened, each attempt, paid, refunded', async () => {
    const trail = (await call('get', `/payment_requests/${ids.paid}/events`).expect(200)).body as { data: Json[]; has_more: boolean };
    expect(trail.data.map((t) => t.type)).to.deep.equal(['created', 'delivery', 'delivery', 'view', 'payment', 'payment', 'paid', 'delivery', 'refunded']);
    const [created, email, sms, opened, declined, taken, paid, receipt, refunded] = trail.data;
    expect(created).to.deep.include({ source: 'api', user: null, refreshed_from: null });
    expect(created.api_key.name).to.equal('billing');
    expect([email.delivery.channel, sms.delivery.channel, receipt.delivery.kind]).to.deep.equal(['email', 'sms', 'receipt']);
    expect(opened.at).to.equal('2026-03-02T05:10:00.000Z');
    expect([declined.payment.status, taken.payment.status]).to.deep.equal(['failed', 'partially_refunded']);
    expect(taken.payment.provider_ref).to.match(/^sbx_/);
    expect(paid.at).to.equal('2026-03-02T05:30:00.000Z');
    expect(refunded).to.deep.include({ at: '2026-03-02T05:40:00.000Z' });
    expect(refunded.refund).to.deep.include({ amount: 1000, status: 'succeeded', payment_id: taken.payment.id, reason: 'Part not needed' });
    for (let i = 1; i < trail.data.length; i++) expect(trail.data[i].at >= trail.data[i - 1].at).to.equal(true);

    // Created on the dashboard: by the signed-in user; then expired, and the cancelled one cancelled.
    const dash = (await call('get', `/payment_requests/${ids.expired}/events`).expect(200)).body.data as Json[];
    expect(dash.map((t) => t.type)).to.deep.equal(['created', 'expired']);
    expect(dash[0]).to.deep.include({ source: 'dashboard', api_key: null });
    expect(dash[0].user.email).to.equal(acct.email);
    expect(((await call('get', `/payment_requests/${ids.cancelled}/events`).expect(200)).body.data as Json[]).map((t) => t.type)).to.deep.equal(['created', 'cancelled']);

    // The request's page tells the same story, in the same order, in the merchant's time.
    const page = await acct.agent.get(`/app/requests/${ids.paid}`).expect(200);
    const items = [...page.text.matchAll(/<li class="trail-(\w+)">/g)].map((m) => m[1]);
    expect(items).to.deep.equal(trail.data.map((t) => t.type));
    expect(page.text).to.include('Created through the API with the key “billing”').and.include('Refunded €10.00');

    // The CSV's trail cell has them too, in order.
    const row = records((await acct.agent.get(`/app/reports/reconciliation/requests.csv?${RANGE}`).expect(200)).text).find((r) => r.request_id === ids.paid)!;
    const entries = row.trail.split(' | ');
    expect(entries).to.have.length(trail.data.length);
    expect(entries[0]).to.equal('2026-03-02 00:00 Created through the API with the key “billing”');
    // The refund names who asked for it (here the API key).
    expect(entries[entries.length - 1]).to.match(/^2026-03-02 00:40 Refunded €10\.00 by API key “\S+”(, ref \S+)? — Part not needed$/);
  });

  it('shows a refreshed request’s successor in its trail, and the successor where it came from', async () => {
    at('2026-03-10T12:00:00Z');
    await createApi('lapsing', { amount: 900, currency: 'EUR', reference: 'R-1', channels: ['email'], allow_refresh: true, expires_in: 3600, customer: { name: 'Hal', email: 'hal@example.test' } });
    env.clock.advance(3_600_001);
    await supertest(env.app).post(`${pathOf(urls.lapsing)}/refresh`).expect(201);
    const old = (await call('get', `/payment_requests/${ids.lapsing}`).expect(200)).body as Json;
    const oldTrail = (await call('get', `/payment_requests/${ids.lapsing}/events`).expect(200)).body.data as Json[];
    expect(oldTrail.map((t) => t.type)).to.deep.equal(['created', 'delivery', 'expired', 'refreshed']);
    expect(oldTrail[3]).to.deep.include({ refreshed_to: old.refreshed_to, at: env.clock.now().toISOString() });
    const fresh = (await call('get', `/payment_requests/${old.refreshed_to}/events`).expect(200)).body.data as Json[];
    expect(fresh[0]).to.deep.include({ type: 'created', refreshed_from: ids.lapsing });
  });

  it('writes text cells so that no spreadsheet runs them as formulas', async () => {
    const csv = await acct.agent.get(`/app/reports/reconciliation/requests.csv?${RANGE}`).expect(200);
    const row = records(csv.text).find((r) => r.request_id === ids.dollars)!;
    expect(row.customer_name).to.equal(`'${INJECTION}`);
    // Quoted as RFC 4180 asks: the quotes inside doubled.
    expect(csv.text).to.include(`"'=HYPERLINK(""http://evil.test"",""Click"")"`);
    expect(row).to.deep.include({ currency: 'USD', collected: '12.00', time_to_pay_seconds: '7200' });
  });

  it('answers bad dates with 422 by the field: on the API, the page and the exports', async () => {
    expectFieldErrors(await call('get', '/reports/reconciliation?from=2026-02-30&to=2026-03-03'), ['from']);
    expectFieldErrors(await call('get', '/reports/reconciliation?from=yesterday'), ['from']);
    expect(expectFieldErrors(await call('get', '/reports/reconciliation?from=2026-03-05&to=2026-03-01'), ['to']).errors[0].code).to.equal('invalid_range');
    expect(expectFieldErrors(await call('get', '/reports/reconciliation?from=2024-01-01&to=2026-03-01'), ['to']).errors[0].code).to.equal('range_too_long');
    const page = await acct.agent.get('/app/reports/reconciliation?from=2026-13-01&to=2026-03-03').expect(422);
    expect(fieldError(page.text, 'from')).to.match(/date such as/);
    expect(fieldError(page.text, 'to')).to.equal('');
    expect(page.text).to.include('value="2026-13-01"');
    const csv = await acct.agent.get('/app/reports/reconciliation/requests.csv?from=2026-03-03&to=2026-03-02').expect(422);
    expect(csv.headers['content-type']).to.match(/^text\/html/);
    expect(fieldError(csv.text, 'to')).to.match(/on or after/);
    await acct.agent.get('/app/reports/reconciliation/summary.csv?to=31-13-2026').expect(422);
    // The dashboard also reads the merchant's format (en-GB here): the API reads ISO dates only.
    const typed = await acct.agent.get('/app/reports/reconciliation?from=02/03/2026&to=3/3/2026').expect(200);
    expect(typed.text).to.include('value="2026-03-02"').and.include('value="2026-03-03"').and.include('Requests created from 02/03/2026 to 03/03/2026');
    expectFieldErrors(await call('get', '/reports/reconciliation?from=02/03/2026&to=2026-03-03'), ['from']);
  });

  it('shows the report on the dashboard: Reports in the navigation, the range form, the figures and every request linking to its page', async () => {
    const res = await acct.agent.get(`/app/reports/reconciliation?${RANGE}`).expect(200);
    expect(res.text).to.match(/<a id="nav-app-reports-reconciliation" href="\/app\/reports\/reconciliation" aria-current="page">Reports<\/a>/);
    expect(res.text).to.include('value="2026-03-02"').and.include('value="2026-03-03"');
    expect(res.text).to.match(/<dd id="m-initiated">6<\/dd>/);
    expect(res.text).to.include('€120.00').and.include('€40.00').and.include('$12.00');
    expect(res.text).to.include('1 h 15 min');
    for (const name of ['paid', 'pending', 'expired', 'cancelled', 'dollars', 'late']) expect(res.text).to.include(`href="/app/requests/${ids[name]}"`);
    expect(res.text).not.to.include(ids.edge).and.not.include(ids.after);
    expect(res.text).to.include(`href="/app/reports/reconciliation/requests.csv?${RANGE.replace('&', '&amp;')}"`);
    // Without a range: this month in New York.
    const month = await acct.agent.get('/app/reports/reconciliation').expect(200);
    expect(month.text).to.include('value="2026-03-01"').and.include('value="2026-03-31"');
    await acct.agent.get('/app/reports').expect(302).expect('Location', '/app/reports/reconciliation');
  });

  it('keeps every merchant to their own requests', async () => {
    const theirs = await report(RANGE, stranger);
    expect(theirs.requests.initiated).to.equal(1);
    expect(theirs.currencies).to.deep.equal([{ currency: 'EUR', requested: 999, collected: 0, refunded: 0, net: 0, outstanding: 999, expired: 0, cancelled: 0 }]);
    const mine = await acct.agent.get(`/app/reports/reconciliation/requests.csv?${RANGE}`).expect(200);
    expect(mine.text).not.to.include(strangerRequest).and.not.to.include('zed@example.test');
    expect((await acct.agent.get(`/app/reports/reconciliation?${RANGE}`).expect(200)).text).not.to.include(strangerRequest);
    // Each other's request ids are 404s, in the API and on the dashboard.
    expectProblem(await stranger('get', `/payment_requests/${ids.paid}/events`), 404, 'not_found');
    expectProblem(await call('get', `/payment_requests/${strangerRequest}/events`), 404, 'not_found');
    await acct.agent.get(`/app/requests/${strangerRequest}`).expect(404);
    // A page of rows continues only after one of the merchant's own requests.
    const page = await acct.agent.get(`/app/reports/reconciliation?${RANGE}&after=${strangerRequest}`).expect(200);
    expect(page.text).to.include(`href="/app/requests/${ids.paid}"`);
    // Signed out: the login page, never the report.
    const anon = await supertest(env.app).get(`/app/reports/reconciliation/requests.csv?${RANGE}`);
    expect(anon.status).to.be.oneOf([302, 303]);
    expect(anon.headers.location).to.match(/^\/login/);
    expect(csrfFrom((await acct.agent.get('/app/reports/reconciliation').expect(200)).text)).to.be.a('string');
  });
});
