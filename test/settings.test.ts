import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, csrfFrom, signUp, uniqueHandle, type Account, type TestEnv, fieldError } from './support/harness.ts';

const SECRET = /id="new-key-secret">(pl_live_[0-9A-Za-z]+)</;

forEachTarget('settings', (target) => {
  let env: TestEnv;
  before(async () => {
    env = await build(target);
  });
  after(() => env?.close());

  const valid = (acct: Account) => ({ _csrf: acct.csrf, name: `Shop ${acct.handle}`, handle: acct.handle, currency: 'EUR', timezone: 'UTC', brand_color: '#4f46e5' });
  const merchantOf = async (acct: Account) => (await env.rt.services.merchants.getByHandle(acct.handle))!;

  describe('business details', () => {
    it('shows the current values', async () => {
      const acct = await signUp(env.app, { name: 'Shown Shop' });
      const page = await acct.agent.get('/app/settings').expect(200);
      expect(page.text).to.include('value="Shown Shop"');
      expect(page.text).to.include(`value="${acct.handle}"`);
      expect(page.text).to.match(/<option value="EUR" selected>/);
    });

    it('saves valid settings, records merchant.updated with what changed, and redirects', async () => {
      const acct = await signUp(env.app);
      const newHandle = uniqueHandle('renamed');
      const res = await acct.agent
        .post('/app/settings')
        .type('form')
        .send({ ...valid(acct), name: '  Café Ünïcode 🍰  ', handle: newHandle.toUpperCase(), currency: 'jpy', timezone: 'Asia/Tokyo', locale: 'de-DE', brand_color: '#AABBCC' })
        .expect(303);
      expect(res.headers.location).to.equal('/app/settings');
      const merchant = (await env.rt.services.merchants.getByHandle(newHandle))!;
      expect(merchant).to.include({ name: 'Café Ünïcode 🍰', handle: newHandle, currency: 'JPY', timezone: 'Asia/Tokyo', locale: 'de-DE', brandColor: '#aabbcc' });
      const events = await env.rt.events.listForMerchant(merchant.key);
      expect(events[0].type).to.equal('merchant.updated');
      expect((events[0].payload as { changed: string[] }).changed).to.have.members(['name', 'handle', 'currency', 'timezone', 'locale', 'brand_color']);
      const page = await acct.agent.get('/app/settings').expect(200);
      expect(page.text).to.include('Settings saved.');
      expect(page.text).to.include('value="Café Ünïcode 🍰"');
    });

    it('records nothing when nothing changed', async () => {
      const acct = await signUp(env.app);
      const merchant = await merchantOf(acct);
      const before = (await env.rt.events.listForMerchant(merchant.key)).length;
      await acct.agent.post('/app/settings').type('form').send(valid(acct)).expect(303);
      expect(await env.rt.events.listForMerchant(merchant.key)).to.have.length(before);
    });

    const invalid: [string, string, (a: Account) => Record<string, unknown>][] = [
      ['currency', 'an unknown currency', () => ({ currency: 'XYZ1' })],
      ['currency', 'a missing currency', () => ({ currency: undefined })],
      ['timezone', 'an unknown time zone', () => ({ timezone: 'Mars/Olympus_Mons' })],
      ['locale', 'a date format not offered', () => ({ locale: 'xx-YY' })],
      ['locale', 'an empty date format', () => ({ locale: '' })],
      ['brand_color', 'a colour name', () => ({ brand_color: 'red' })],
      ['brand_color', 'a short hex colour', () => ({ brand_color: '#fff' })],
      ['brand_color', 'CSS injection in the colour', () => ({ brand_color: '#000;}body{display:none' })],
      ['handle', 'a reserved handle', () => ({ handle: 'admin' })],
      ['handle', 'a handle with a slash', () => ({ handle: 'a/b-shop' })],
      ['name', 'an over-long business name', () => ({ name: 'x'.repeat(121) })],
      ['name', 'a CR-LF in the business name', () => ({ name: 'Acme\r\nBcc: victim@example.test' })],
      ['name', 'a control character in the business name', () => ({ name: 'Acme\u0000Ltd' })],
      ['name', 'an empty business name', () => ({ name: '   ' })],
      ['name', 'a repeated field', () => ({ name: ['One', 'Two'] })],
    ];
    for (const [field, label, change] of invalid) {
      it(`refuses ${label} with 422, the message by the field, and changes nothing`, async () => {
        const acct = await signUp(env.app);
        const before = await merchantOf(acct);
        const body = { ...valid(acct), name: 'Changed Name', ...change(acct) };
        for (const k of Object.keys(body)) if ((body as Record<string, unknown>)[k] === undefined) delete (body as Record<string, unknown>)[k];
        const res = await acct.agent.post('/app/settings').type('form').send(body).expect(422);
        expect(fieldError(res.text, field)).not.to.equal('');
        expect(res.text).to.match(new RegExp(`id="f-${field}"[^>]*aria-invalid="true"`));
        const after = await merchantOf(acct);
        expect(after).to.deep.equal(before);
        const events = await env.rt.events.listForMerchant(before.key);
        expect(events.map((e) => e.type)).not.to.include('merchant.updated');
      });
    }

    it('refuses a handle another merchant has, in any case, with 422', async () => {
      const taken = await signUp(env.app);
      const acct = await signUp(env.app);
      const res = await acct.agent.post('/app/settings').type('form').send({ ...valid(acct), handle: taken.handle.toUpperCase() }).expect(422);
      expect(fieldError(res.text, 'handle')).not.to.equal('');
      expect((await merchantOf(acct)).handle).to.equal(acct.handle);
    });

    it('keeps what was typed when the form comes back with errors, escaped', async () => {
      const acct = await signUp(env.app);
      const res = await acct.agent.post('/app/settings').type('form').send({ ...valid(acct), name: '<script>alert(1)</script>', currency: 'NOPE' }).expect(422);
      expect(res.text).not.to.include('<script>alert(1)</script>');
      expect(res.text).to.include('&lt;script&gt;alert(1)&lt;/script&gt;');
    });

    it('answers an htmx save with the fragment, not a redirect', async () => {
      const acct = await signUp(env.app);
      const res = await acct.agent.post('/app/settings').set('HX-Request', 'true').set('X-CSRF-Token', acct.csrf).type('form').send({ ...valid(acct), name: 'Via htmx' }).expect(200);
      expect(res.text).not.to.match(/<html/i);
      expect((await merchantOf(acct)).name).to.equal('Via htmx');
      const bad = await acct.agent.post('/app/settings').set('HX-Request', 'true').set('X-CSRF-Token', acct.csrf).type('form').send({ ...valid(acct), currency: 'NOPE' }).expect(422);
      expect(fieldError(bad.text, 'currency')).not.to.equal('');
    });

    it('refuses a save without the CSRF token, and sends visitors to the login page', async () => {
      const acct = await signUp(env.app);
      await acct.agent.post('/app/settings').type('form').send({ ...valid(acct), _csrf: undefined, name: 'Hacked' }).expect(403);
      expect((await merchantOf(acct)).name).not.to.equal('Hacked');
      await supertest(env.app).post('/app/settings').type('form').send({ name: 'Hacked' }).expect(403);
    });
  });

  describe('API keys', () => {
    it('shows a new key’s secret once; afterwards only its prefix; the database holds only a hash', async () => {
      const acct = await signUp(env.app);
      const res = await acct.agent.post('/app/settings/api-keys').type('form').send({ _csrf: acct.csrf, name: 'Website' }).expect(201);
      const secret = SECRET.exec(res.text)![1];
      expect(res.headers['cache-control'] ?? '').to.match(/no-store/);

      const page = await acct.agent.get('/app/settings').expect(200);
      expect(page.text).not.to.include(secret);
      expect(page.text).to.include(`${secret.slice(0, 14)}…`);
      expect(page.text).to.include('Website');

      const merchant = await merchantOf(acct);
      const rows = await env.rt.db('api_keys').where({ merchant_id: merchant.key });
      expect(rows).to.have.length(1);
      expect(JSON.stringify(rows)).not.to.include(secret.slice(14));
      expect(rows[0].secret_hash).to.match(/^[0-9a-f]{64}$/);
      const events = await env.rt.events.listForMerchant(merchant.key);
      expect(events[0].type).to.equal('api_key.created');
      expect(JSON.stringify(events[0].payload)).not.to.include(secret);

      await supertest(env.app).get('/api/v1/me').set('Authorization', `Bearer ${secret}`).expect(200);
    });

    it('revoking a key makes it stop working at once', async () => {
      const acct = await signUp(env.app);
      const res = await acct.agent.post('/app/settings/api-keys').type('form').send({ _csrf: acct.csrf, name: 'Temp' }).expect(201);
      const secret = SECRET.exec(res.text)![1];
      await supertest(env.app).get('/api/v1/me').set('Authorization', `Bearer ${secret}`).expect(200);
      const [key] = await env.rt.services.apiKeys.list((await merchantOf(acct)).key);

      const revoked = await acct.agent.post(`/app/settings/api-keys/${key.id}/revoke`).type('form').send({ _csrf: acct.csrf }).expect(303);
      expect(revoked.headers.location).to.equal('/app/settings#api-keys');
      const api = await supertest(env.app).get('/api/v1/me').set('Authorization', `Bearer ${secret}`).expect(401);
      expect(api.body.code).to.equal('invalid_api_key');
      const page = await acct.agent.get('/app/settings').expect(200);
      expect(page.text).to.include('Revoked');
      // Revoking twice is harmless.
      await acct.agent.post(`/app/settings/api-keys/${key.id}/revoke`).type('form').send({ _csrf: acct.csrf }).expect(303);
      const events = await env.rt.events.listForMerchant((await merchantOf(acct)).key);
      expect(events.filter((e) => e.type === 'api_key.revoked')).to.have.length(1);
    });

    it('refuses a bad key name with 422 by the field and creates nothing', async () => {
      const acct = await signUp(env.app);
      for (const name of ['k'.repeat(81), 'line\r\nbreak']) {
        const res = await acct.agent.post('/app/settings/api-keys').type('form').send({ _csrf: acct.csrf, name }).expect(422);
        expect(fieldError(res.text, 'key-name')).not.to.equal('');
        expect(res.text).not.to.match(SECRET);
      }
      expect(await env.rt.services.apiKeys.list((await merchantOf(acct)).key)).to.have.length(0);
    });

    it('names a key “API key” when no name is given', async () => {
      const acct = await signUp(env.app);
      await acct.agent.post('/app/settings/api-keys').type('form').send({ _csrf: acct.csrf }).expect(201);
      const [key] = await env.rt.services.apiKeys.list((await merchantOf(acct)).key);
      expect(key.name).to.equal('API key');
    });

    it('answers 404 for an unknown key id and 403 without the CSRF token', async () => {
      const acct = await signUp(env.app);
      await acct.agent.post('/app/settings/api-keys/key_doesnotexist/revoke').type('form').send({ _csrf: acct.csrf }).expect(404);
      await acct.agent.post('/app/settings/api-keys').type('form').send({ name: 'x' }).expect(403);
      const res = await acct.agent.post('/app/settings/api-keys').type('form').send({ _csrf: acct.csrf, name: 'real' }).expect(201);
      const [key] = await env.rt.services.apiKeys.list((await merchantOf(acct)).key);
      await acct.agent.post(`/app/settings/api-keys/${key.id}/revoke`).type('form').send({}).expect(403);
      await supertest(env.app).get('/api/v1/me').set('Authorization', `Bearer ${SECRET.exec(res.text)![1]}`).expect(200);
    });
  });
});
