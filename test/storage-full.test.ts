// Disk full under the embedded SQLite database (SQLITE_FULL): every write answers a clear 503 and
// changes nothing, reads keep working, the file stays intact, and Paylink works again once there is
// room. The suite fills the database with `PRAGMA max_page_count` (SQLite's own "database or disk is
// full"); `npm run drill` does it with a real full tmpfs.
import { expect } from 'chai';
import supertest from 'supertest';
import { build, signUp, type Account, type TestEnv } from './support/harness.ts';

const SQLITE = { name: 'sqlite' as const, mysqlUrl: null, redisUrl: null };

describe('storage full [sqlite]', function () {
  this.timeout(30_000);
  let env: TestEnv;
  let acct: Account;
  let apiKey: string;
  const count = async (table: string) => Number(((await env.rt.db(table).count({ n: '*' }).first()) as { n: number | string }).n);
  const pragma = async (sql: string) => (await env.rt.db.raw(`PRAGMA ${sql}`)) as Record<string, unknown>[];
  const checkout = () => supertest(env.app).post(`/${acct.handle}/full`).type('form').send({ name: 'Ann Example', email: 'ann@example.test' });

  before(async () => {
    env = await build(SQLITE);
    acct = await signUp(env.app);
    const merchant = (await env.rt.services.merchants.getByHandle(acct.handle))!;
    await env.rt.services.links.create(merchant, { type: 'amount', name: 'Full', amount: 1500, path: 'full' });
    apiKey = (await env.rt.services.apiKeys.create(merchant, { name: 'disk' })).secret;
  });
  after(() => env?.close());

  it('answers 503 storage_full to writes that need room while the disk is full, changes nothing, and works again when space returns', async () => {
    const before = { payments: await count('payments'), links: await count('links'), events: await count('events') };
    // No free page left and none may be added: a write that needs a new page gets SQLITE_FULL.
    await env.rt.db.raw('VACUUM');
    const [{ page_count: pages }] = await pragma('page_count');
    await pragma(`max_page_count = ${Number(pages)}`);
    // A link with a long description and notes needs overflow pages.
    const big = { name: 'Big', description: 'd'.repeat(2_000), internal_notes: 'n'.repeat(5_000) };
    try {
      const api = await supertest(env.app).post('/api/v1/links').set('Authorization', `Bearer ${apiKey}`).send({ type: 'amount', amount: 900, ...big });
      expect(api.status).to.equal(503);
      expect(api.headers['content-type']).to.match(/^application\/problem\+json/);
      expect(api.body.code).to.equal('storage_full');
      expect(api.headers['retry-after']).to.equal('60');

      const dash = await acct.agent
        .post('/app/links')
        .type('form')
        .send({ _csrf: acct.csrf, type: 'amount', currency: 'EUR', amount: '9.00', limit: 'unlimited', redirect_target: 'same', active: 'on', ...big });
      expect(dash.status).to.equal(503);
      expect(dash.text).to.include('storage is full');

      // Reads need no room: the pay page still shows.
      await supertest(env.app).get(`/${acct.handle}/full`).expect(200);
      expect(await count('links')).to.equal(before.links);
      expect(await count('events')).to.equal(before.events);
    } finally {
      await pragma('max_page_count = 1073741823');
    }
    expect(await pragma('integrity_check')).to.deep.equal([{ integrity_check: 'ok' }]);
    await supertest(env.app).post('/api/v1/links').set('Authorization', `Bearer ${apiKey}`).send({ type: 'amount', amount: 900, ...big }).expect(201);
    expect(await count('links')).to.equal(before.links + 1);
    expect((await checkout()).status).to.equal(303);
    expect(await count('payments')).to.equal(before.payments + 1);
  });
});
