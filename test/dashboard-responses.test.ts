// Signed-in dashboard responses (issue 14 item 12): every page, htmx fragment and CSV export under
// /app says `Cache-Control: no-store` (personal data must not stay in a shared or browser cache after
// logout), and an htmx request naming a target the page does not expect gets the page (200), never a 500.
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { signUp, useEnv, type Account } from './support/harness.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';

const PAID = '4242424242424242';

forEachTarget('dashboard responses', (target) => {
  const env = useEnv(target);
  let acct: Account;
  /** Every GET of the dashboard with a page behind it, for a merchant that has one of everything. */
  let pages: string[];
  let csvs: string[];

  before(async () => {
    acct = await signUp(env.app);
    const { services } = env.rt;
    const m = (await services.merchants.getByHandle(acct.handle)) as Merchant;
    const customer = await services.customers.create(m.key, { name: 'Jane Doe', email: 'jane@example.test' });
    const product = await services.products.create(m.key, { name: 'Coffee beans', price: 1800, currency: 'EUR' });
    const link = await services.links.create(m, { type: 'amount', name: 'Class pass', amount: 3900 });
    await services.sending.send(m, link, { customer_id: customer.id, channels: ['email'] });
    await env.rt.jobs.drain();
    const request = await services.requests.create(m, { amount: 1200, currency: 'EUR', customer: { name: 'Cy', email: 'cy@example.test' } }, { source: 'api' });
    const { endpoint } = await services.webhooks.create(m.key, { url: 'https://hooks.example.test/paylink', events: ['payment.succeeded'] });
    // A payment, through the real pay page and the sandbox card page.
    const http = supertest(env.app);
    const started = await http.post(`/${m.handle}/${link.path}`).type('form').send({ name: 'Ann Example', email: 'ann@example.test' });
    expect(started.status, started.text.slice(0, 300)).to.equal(303);
    await http.post(new URL(started.headers.location).pathname).type('form').send({ card_number: PAID }).expect(303);
    const payment = await env.rt.db('payments').where({ merchant_id: m.key }).orderBy('id', 'desc').first();

    const l = `/app/links/${link.id}`;
    pages = [
      '/app', '/app/activity',
      '/app/links', '/app/links/new', '/app/links/new?type=amount', l, `${l}?tab=views`, `${l}?tab=reminders`, `${l}/edit`, `${l}/delete`, `${l}/send`, `${l}/deliveries`, `${l}/cards`,
      '/app/payments', `/app/payments/${payment.public_id}`,
      '/app/customers', '/app/customers/new', '/app/customers/import', `/app/customers/${customer.id}`, `/app/customers/${customer.id}/edit`, `/app/customers/${customer.id}/delete`,
      '/app/products', '/app/products/new', `/app/products/${product.id}/edit`, `/app/products/${product.id}/delete`,
      '/app/requests', '/app/requests/new', '/app/requests/import', `/app/requests/${request.id}`, `/app/requests/${request.id}/cancel`,
      '/app/reports/reconciliation', '/app/tags',
      '/app/settings', '/app/settings/payments', '/app/settings/webhooks', `/app/settings/webhooks/${endpoint.id}`, '/app/settings/templates',
      '/app/plugins', '/app/p/channel-outbox',
    ];
    csvs = ['/app/payments.csv', `${l}/views.csv`, '/app/reports/reconciliation/summary.csv', '/app/reports/reconciliation/requests.csv', '/app/requests/import/template.csv'];
  });

  it('sends Cache-Control: no-store on every dashboard page', async () => {
    for (const path of pages) {
      const res = await acct.agent.get(path);
      expect(res.status, `${path}: ${res.text.slice(0, 200)}`).to.equal(200);
      expect(res.headers['cache-control'], path).to.equal('no-store');
    }
  });

  it('sends it on htmx fragments and on CSV exports too', async () => {
    const l = pages.find((p) => /^\/app\/links\/lnk_\w+$/.test(p))!;
    const fragments: [string, Record<string, string>][] = [
      [`${l}?tab=views`, { 'HX-Request': 'true', 'HX-Target': 'link-activity' }],
      [l, { 'HX-Request': 'true', 'HX-Trigger': 'link-live' }],
      [`${l}/send?q=Jane`, { 'HX-Request': 'true', 'HX-Target': 'send-customers' }],
      ['/app/links?q=Class', { 'HX-Request': 'true', 'HX-Target': 'results' }],
      ['/app/customers?q=Jane', { 'HX-Request': 'true' }],
      ['/app/payments', { 'HX-Request': 'true' }],
    ];
    for (const [path, headers] of fragments) {
      const res = await acct.agent.get(path).set(headers);
      expect(res.status, path).to.equal(200);
      expect(res.text, path).not.to.match(/<html/i);
      expect(res.headers['cache-control'], path).to.equal('no-store');
    }
    for (const path of csvs) {
      const res = await acct.agent.get(path);
      expect(res.status, path).to.equal(200);
      expect(res.headers['content-type'], path).to.match(/^text\/csv/);
      expect(res.headers['cache-control'], path).to.equal('no-store');
    }
  });

  it('sends it on the login and sign-up pages, and on a dashboard 404', async () => {
    for (const path of ['/login', '/signup']) expect((await supertest(env.app).get(path).expect(200)).headers['cache-control'], path).to.equal('no-store');
    expect((await acct.agent.get('/app/links/lnk_nope').expect(404)).headers['cache-control']).to.equal('no-store');
  });

  it('answers an htmx request with an unexpected HX-Target (or none) with the page, never a 500', async () => {
    for (const path of pages) {
      for (const headers of [{ 'HX-Request': 'true', 'HX-Target': 'not-a-target' }, { 'HX-Request': 'true', 'HX-Target': 'main' }, { 'HX-Request': 'true' }]) {
        const res = await acct.agent.get(path).set(headers);
        expect(res.status, `${path} ${JSON.stringify(headers)}: ${res.text.slice(0, 300)}`).to.equal(200);
        expect(res.headers['cache-control'], path).to.equal('no-store');
      }
    }
  });

  it('the link page answers an unexpected target with the whole page content: sending cards, chart and activity', async () => {
    const l = pages.find((p) => /^\/app\/links\/lnk_\w+$/.test(p))!;
    const res = await acct.agent.get(l).set({ 'HX-Request': 'true', 'HX-Target': 'not-a-target' }).expect(200);
    for (const id of ['link-send', 'link-deliveries', 'link-reminders', 'link-activity']) expect(res.text, id).to.include(`id="${id}"`);
    expect(res.text).to.include('jane@example.test');
  });
});
