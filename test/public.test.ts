import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, signUp, type TestEnv } from './support/harness.ts';

forEachTarget('public merchant page', (target) => {
  let env: TestEnv;
  before(async () => {
    env = await build(target);
  });
  after(() => env?.close());

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
