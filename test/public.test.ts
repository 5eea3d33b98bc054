import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { signUp, useEnv } from './support/harness.ts';
import { waitFor } from './support/wait.ts';

forEachTarget('public merchant page', (target) => {
  const env = useEnv(target);

  it('renders /:handle with the merchant’s name and brand colour, without a session cookie', async () => {
    const acct = await signUp(env.app, { name: 'Corner Bakery' });
    const res = await supertest(env.app).get(`/${acct.handle}`).expect(200);
    expect(res.text).to.include('Corner Bakery');
    expect(res.text).to.match(/<style nonce="[^"]+">:root\{--brand:#4f46e5/);
    expect(res.headers['set-cookie']).to.equal(undefined);
    expect(res.headers['content-security-policy']).to.include("script-src 'self'");
    expect(res.headers['content-security-policy']).not.to.match(/unsafe-(inline|eval)/);
  });

  it('redirects a differently-cased handle to the canonical lowercase URL (301)', async () => {
    const acct = await signUp(env.app);
    const res = await supertest(env.app).get(`/${acct.handle.toUpperCase()}`).expect(301);
    expect(res.headers.location).to.equal(`/${acct.handle}`);
  });

  it('answers the same 404 page for unknown and invalid handles', async () => {
    const unknown = await supertest(env.app).get('/no-such-shop').expect(404);
    const invalid = await supertest(env.app).get('/9-not-a-handle').expect(404);
    const strip = (html: string) => html.replace(/nonce="[^"]*"/g, '');
    expect(unknown.text).to.include('Page not found');
    expect(strip(invalid.text)).to.equal(strip(unknown.text));
  });

  it('answers 400, not 500, for an address with broken percent-encoding', async () => {
    await supertest(env.app).get('/acme/%E0%A4%A').expect(400);
    await supertest(env.app).get('/%E0%A4%A').expect(400);
  });
});

forEachTarget('pay pages stay current while cached', (target) => {
  const env = useEnv(target);

  const shopAndLink = async () => {
    const acct = await signUp(env.app);
    const merchant = (await env.rt.services.merchants.getByHandle(acct.handle))!;
    const link = await env.rt.services.links.create(merchant, { type: 'amount', name: 'Workshop seat', amount: 2500 });
    return { acct, merchant, link, url: `/${acct.handle}/${link.path}` };
  };

  it('answers 404 at once after the link is switched off, and 200 again after it is switched on', async () => {
    const { merchant, link, url } = await shopAndLink();
    await supertest(env.app).get(url).expect(200);
    await env.rt.services.links.update(merchant, link.id, { active: false });
    await supertest(env.app).get(url).expect(404);
    await env.rt.services.links.update(merchant, link.id, { active: true });
    await supertest(env.app).get(url).expect(200);
  });

  it('shows a new amount, a new brand colour and a product’s new price on the next request', async () => {
    const { acct, merchant, link, url } = await shopAndLink();
    expect((await supertest(env.app).get(url).expect(200)).text).to.include('€25.00');
    await env.rt.services.links.update(merchant, link.id, { amount: 3100 });
    expect((await supertest(env.app).get(url).expect(200)).text).to.include('€31.00');
    await env.rt.services.merchants.updateSettings(merchant, { name: merchant.name, handle: acct.handle, currency: 'EUR', timezone: 'UTC', brand_color: '#123456' });
    expect((await supertest(env.app).get(url).expect(200)).text).to.include('--brand:#123456');

    const product = await env.rt.services.products.create(merchant.key, { name: 'Glaze kit', price: 1800, currency: 'EUR' });
    const productLink = await env.rt.services.links.create(merchant, { type: 'product', name: 'Glaze kit', product_id: product.id });
    const productUrl = `/${acct.handle}/${productLink.path}`;
    expect((await supertest(env.app).get(productUrl).expect(200)).text).to.include('€18.00');
    await env.rt.services.products.update(merchant.key, product.id, { price: 2200 });
    expect((await supertest(env.app).get(productUrl).expect(200)).text).to.include('€22.00');
  });

  if (target.redisUrl) {
    it('drops its cache when another process changes the link (Redis fan-out)', async () => {
      const { merchant, link, url } = await shopAndLink();
      await supertest(env.app).get(url).expect(200);
      const other = await env.sibling();
      await other.services.links.update(merchant, link.id, { active: false });
      const status = await waitFor(async () => {
        const s = (await supertest(env.app).get(url)).status;
        return s === 200 ? null : s;
      }, { timeout: 2_000, message: 'the cached pay page to drop (still 200)' });
      expect(status).to.equal(404);
    });
  }
});
