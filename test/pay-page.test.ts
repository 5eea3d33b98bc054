// Pay pages: routing (DESIGN.md "Public URLs"), what a customer sees, and what the hot path must
// never do (cookies, sessions, Redis, big pages).
import { expect } from 'chai';
import supertest from 'supertest';
import { createClient } from 'redis';
import { forEachTarget } from './support/targets.ts';
import { build, uniqueHandle, type TestEnv } from './support/harness.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';

/** The 404/410 pages differ only in their per-request nonce. */
const stripNonce = (html: string) => html.replace(/nonce="[^"]*"/g, 'nonce=""');

forEachTarget('pay pages', (target) => {
  let env: TestEnv;
  let shop: Merchant;
  const http = () => supertest(env.app);

  async function merchant(opts: { name?: string; currency?: string; timezone?: string } = {}): Promise<Merchant> {
    const handle = uniqueHandle('pay');
    const { merchant } = await env.rt.services.merchants.signUp(
      { name: opts.name ?? `Shop ${handle}`, handle, email: `${handle}@example.test`, password: 'correct horse battery' },
      { currency: opts.currency, timezone: opts.timezone },
    );
    return merchant;
  }
  const link = (m: Merchant, fields: Record<string, unknown> = {}) =>
    env.rt.services.links.create(m, { type: 'amount', name: 'Summer sale', amount: 1250, ...fields });

  before(async () => {
    env = await build(target);
    shop = await merchant({ name: 'Corner Bakery' });
  });
  after(() => env?.close());

  describe('smart links (/:handle/:path)', () => {
    it('shows the merchant, the link’s name as title, its description, the fixed amount and the name and email fields', async () => {
      const l = await link(shop, { name: 'Birthday cake', description: 'Chocolate, serves 12.\nPick up on Saturday.', amount: 3900 });
      const res = await http().get(`/${shop.handle}/${l.path}`).expect(200);
      expect(res.headers['content-type']).to.match(/^text\/html/);
      expect(res.text).to.include('<title>Birthday cake · Corner Bakery</title>');
      expect(res.text).to.match(/<h1>Birthday cake<\/h1>/);
      expect(res.text).to.include('Corner Bakery');
      expect(res.text).to.include('Chocolate, serves 12.\nPick up on Saturday.');
      expect(res.text).to.include('€39.00');
      expect(res.text).to.match(/<style nonce="[^"]+">:root\{--brand:#4f46e5;--on-brand:#ffffff;--brand-ink:#4f46e5\}<\/style>/);
      expect(res.text).to.match(/<form method="post" action="\/[^"]+\/birthday-cake"/);
      expect(res.text).to.match(/<label for="f-name">/);
      expect(res.text).to.match(/<input id="f-name" name="name"[^>]* autocomplete="name"[^>]* required/);
      expect(res.text).to.match(/<input id="f-email" name="email" type="email"/);
      expect(res.text, 'an amount link has no amount field').not.to.match(/name="amount"/);
      expect(res.text, 'pay pages run no JavaScript').not.to.match(/<script/i);
    });

    it('uses the merchant’s brand colour', async () => {
      const m = await merchant({ name: 'Teal Things' });
      await env.rt.services.merchants.updateSettings(m, { name: m.name, handle: m.handle, currency: 'EUR', timezone: 'UTC', brand_color: '#0f766e' });
      const l = await link(m);
      const res = await http().get(`/${m.handle}/${l.path}`).expect(200);
      expect(res.text).to.match(/<style nonce="([^"]+)">:root\{--brand:#0f766e;--on-brand:#ffffff;--brand-ink:#0f766e\}<\/style>/);
      const nonce = /<style nonce="([^"]+)"/.exec(res.text)![1];
      expect(res.headers['content-security-policy']).to.include(`style-src 'self' 'nonce-${nonce}'`);
    });

    it('shows the product’s name and price for a product link', async () => {
      const product = await env.rt.services.products.create(shop.key, { name: 'Sourdough loaf', description: 'Baked this morning.', price: 650, currency: 'EUR' });
      const l = await env.rt.services.links.create(shop, { type: 'product', name: 'Bread club', product_id: product.id });
      const res = await http().get(`/${shop.handle}/${l.path}`).expect(200);
      expect(res.text).to.include('Sourdough loaf');
      expect(res.text).to.include('Baked this morning.');
      expect(res.text).to.include('€6.50');
      expect(res.text).to.include('Pay €6.50');
    });

    it('says "Only 7 left" when the link shows what remains of its limit, and nothing when it does not', async () => {
      const shown = await link(shop, { name: 'Workshop seats', payment_limit: 10, show_remaining: true });
      const hidden = await link(shop, { name: 'Workshop seats', payment_limit: 10 });
      await env.rt.db('links').whereIn('public_id', [shown.id, hidden.id]).update({ paid_count: 3 });
      expect((await http().get(`/${shop.handle}/${shown.path}`).expect(200)).text).to.include('Only 7 left');
      expect((await http().get(`/${shop.handle}/${hidden.path}`).expect(200)).text).not.to.include('left');
    });

    it('redirects a differently-cased path or handle to the canonical lowercase URL (301), keeping the query', async () => {
      const l = await link(shop, { name: 'Summer Sale' });
      let res = await http().get(`/${shop.handle}/Summer-SALE?utm_source=mail`).expect(301);
      expect(res.headers.location).to.equal(`/${shop.handle}/${l.path}?utm_source=mail`);
      res = await http().get(`/${shop.handle.toUpperCase()}/${l.path}`).expect(301);
      expect(res.headers.location).to.equal(`/${shop.handle}/${l.path}`);
      // A form posted to a non-canonical URL keeps its method.
      res = await http().post(`/${shop.handle}/SUMMER-sale`).type('form').send({ name: 'A' }).expect(308);
      expect(res.headers.location).to.equal(`/${shop.handle}/${l.path}`);
    });

    it('answers unknown, inactive and deleted links with the same 404 page', async () => {
      const inactive = await link(shop, { name: 'Paused', active: false });
      const deleted = await link(shop, { name: 'Gone soon' });
      await env.rt.services.links.remove(shop, deleted.id);
      const deactivated = await link(shop, { name: 'Switched off' });
      await env.rt.services.links.update(shop, deactivated.id, { active: false });
      const other = await merchant();
      const theirs = await link(other, { name: 'Not yours' });
      const urls = [
        `/${shop.handle}/no-such-link`,
        `/${shop.handle}/${inactive.path}`,
        `/${shop.handle}/${deleted.path}`,
        `/${shop.handle}/${deactivated.path}`,
        `/no-such-shop/${inactive.path}`,
        `/${shop.handle}/${theirs.path}x`,
        `/${shop.handle}/bad_path!`,
        `/${shop.handle}/a/b`,
        `/${shop.handle}/12.505`,
      ];
      const bodies = [];
      for (const url of urls) {
        const res = await http().get(url);
        expect(res.status, url).to.equal(404);
        expect(res.headers['set-cookie'], url).to.equal(undefined);
        bodies.push(stripNonce(res.text));
      }
      expect(bodies[0]).to.include('Page not found');
      for (const [i, body] of bodies.entries()) expect(body, urls[i]).to.equal(bodies[0]);
    });

    it('treats a product link whose product was deactivated like an inactive link (404)', async () => {
      const product = await env.rt.services.products.create(shop.key, { name: 'Seasonal jam', price: 500, currency: 'EUR' });
      const l = await env.rt.services.links.create(shop, { type: 'product', name: 'Jam', product_id: product.id });
      await env.rt.services.products.update(shop.key, product.id, { active: false });
      const res = await http().get(`/${shop.handle}/${l.path}`).expect(404);
      expect(stripNonce(res.text)).to.equal(stripNonce((await http().get(`/${shop.handle}/nothing-here`)).text));
    });

    it('answers 410 "Payment limit reached" once the limit is reached, for GET and POST', async () => {
      const l = await link(shop, { name: 'Last seat', payment_limit: 1 });
      const { payment } = await env.rt.services.checkout.start(shop, l, { amount: 1250, currency: 'EUR', name: 'Ann', email: 'ann@example.test' });
      expect((await env.rt.services.checkout.authorize(payment.id, 'sbx_test')).status).to.equal('paid');
      const res = await http().get(`/${shop.handle}/${l.path}`).expect(410);
      expect(res.text).to.include('Payment limit reached');
      expect(res.text).to.include('Last seat');
      const before = await env.rt.db('checkout_sessions').count({ n: '*' }).first();
      await http().post(`/${shop.handle}/${l.path}`).type('form').send({ name: 'Bo', email: 'bo@example.test' }).expect(410);
      expect(await env.rt.db('checkout_sessions').count({ n: '*' }).first()).to.deep.equal(before);
    });
  });

  describe('the default page (/:handle) and amount URLs (/:handle/12.50)', () => {
    it('lets the customer enter an amount on /:handle', async () => {
      const res = await http().get(`/${shop.handle}`).expect(200);
      expect(res.text).to.include('<h1>Corner Bakery</h1>');
      expect(res.text).to.include('<title>Make a payment · Corner Bakery</title>');
      expect(res.text).to.match(/<input id="f-amount" name="amount" type="text"[^>]* inputmode="decimal"/);
      expect(res.text).to.include('€');
      expect(res.text).to.include('Continue to payment');
    });

    it('shows a fixed amount for /:handle/12.50 and /:handle/20', async () => {
      let res = await http().get(`/${shop.handle}/12.50`).expect(200);
      expect(res.text).to.include('Pay €12.50');
      expect(res.text).not.to.match(/name="amount"/);
      res = await http().get(`/${shop.handle}/20`).expect(200);
      expect(res.text).to.include('Pay €20.00');
    });

    it('redirects other spellings of an amount to its canonical one (301)', async () => {
      for (const [raw, canonical] of [['12.5', '12.50'], ['012.50', '12.50'], ['007', '7.00']]) {
        const res = await http().get(`/${shop.handle}/${raw}`).expect(301);
        expect(res.headers.location, raw).to.equal(`/${shop.handle}/${canonical}`);
      }
    });

    it('answers 404 for amounts the currency cannot hold, zero, or absurdly large ones', async () => {
      for (const raw of ['12.505', '0', '0.00', '1.2.3', '12.', '99999999999999', '1000000.01']) {
        expect((await http().get(`/${shop.handle}/${raw}`)).status, raw).to.equal(404);
      }
    });

    it('respects 0- and 3-decimal currencies in amount URLs', async () => {
      const yen = await merchant({ currency: 'JPY' });
      expect((await http().get(`/${yen.handle}/1500`).expect(200)).text).to.include('Pay ¥1,500');
      await http().get(`/${yen.handle}/1500.5`).expect(404);
      await http().get(`/${yen.handle}/1500.0`).expect(404);
      const dinar = await merchant({ currency: 'KWD' });
      expect((await http().get(`/${dinar.handle}/1.234`).expect(200)).text).to.match(/Pay KWD\s1\.234/);
      await http().get(`/${dinar.handle}/1.2345`).expect(404);
      expect((await http().get(`/${dinar.handle}/1.5`).expect(301)).headers.location).to.equal(`/${dinar.handle}/1.500`);
    });

    it('answers the same 404 for unknown and reserved handles', async () => {
      const a = await http().get('/no-such-shop-here').expect(404);
      for (const url of ['/receipt', '/checkout', '/x', '/no-such-shop-here/12.50', '/9lives']) {
        const res = await http().get(url).expect(404);
        expect(stripNonce(res.text), url).to.equal(stripNonce(a.text));
      }
    });
  });

  describe('the hot path', () => {
    it('keeps a pay page with its stylesheets under 30 KB', async () => {
      const product = await env.rt.services.products.create(shop.key, { name: 'A'.repeat(120), description: 'D'.repeat(2000), price: 650, currency: 'EUR' });
      const big = await env.rt.services.links.create(shop, { type: 'product', name: 'N'.repeat(120), description: 'x'.repeat(2000), product_id: product.id, payment_limit: 10, show_remaining: true });
      for (const url of [`/${shop.handle}/${big.path}`, `/${shop.handle}`]) {
        const res = await http().get(url).expect(200);
        const sheets = [...res.text.matchAll(/<link rel="stylesheet" href="([^"]+)"/g)].map((m) => m[1]);
        expect(sheets, 'a pay page has its own small stylesheet').to.have.length(1);
        expect(sheets[0]).to.match(/^\/static\/css\/pay\.[0-9a-f]{10}\.css$/);
        let bytes = Buffer.byteLength(res.text);
        for (const href of sheets) bytes += Buffer.byteLength((await http().get(href).expect(200)).text);
        expect(bytes, url).to.be.below(30 * 1024);
      }
    });

    it('sets no cookie and writes no session, for GET and POST, valid or not', async () => {
      const l = await link(shop, { name: 'No cookies' });
      const sessionsBefore = await env.rt.db('sessions').count({ n: '*' }).first();
      const keysBefore = await redisKeys();
      const gets = [
        await http().get(`/${shop.handle}/${l.path}`).expect(200),
        await http().get(`/${shop.handle}`).expect(200),
        await http().get(`/${shop.handle}/nope`).expect(404),
      ];
      // Showing a pay page touches no Redis at all.
      expect(await redisKeys()).to.deep.equal(keysBefore);
      const responses = [
        ...gets,
        await http().post(`/${shop.handle}/${l.path}`).type('form').send({ name: '', email: 'nope' }).expect(422),
        await http().post(`/${shop.handle}/${l.path}`).type('form').send({ name: 'Ann', email: 'ann@example.test' }).expect(303),
        await http().post(`/${shop.handle}`).type('form').send({ name: 'Ann', email: 'ann@example.test', amount: '5' }).expect(303),
      ];
      for (const [i, res] of responses.entries()) expect(res.headers['set-cookie'], `response ${i}`).to.equal(undefined);
      expect(await env.rt.db('sessions').count({ n: '*' }).first()).to.deep.equal(sessionsBefore);
      // A checkout counts toward the per-address velocity limit (its only Redis key); nothing else is written.
      const added = (await redisKeys()).filter((k) => !keysBefore.includes(k));
      expect(added.filter((k) => !k.startsWith(`${env.config.redisPrefix}:rl:checkout-ip:`))).to.deep.equal([]);
    });

    it('renders with cached templates outside development', () => {
      expect(env.config.env).not.to.equal('development');
      expect(env.rt.eta.config.cache).to.equal(true);
    });
  });

  /** Every Redis key under this suite's prefix (none on the embedded target). */
  async function redisKeys(): Promise<string[]> {
    if (!target.redisUrl) return [];
    const client = createClient({ url: target.redisUrl });
    await client.connect();
    try {
      const keys: string[] = [];
      for await (const batch of client.scanIterator({ MATCH: `${env.config.redisPrefix}:*`, COUNT: 500 })) keys.push(...batch);
      return keys.sort();
    } finally {
      await client.quit();
    }
  }
});
