// One customer per email address per merchant, whatever its case, on every path: the dashboard form
// (422 by the email field, with a link to the customer who has it), the API (409 problem+json
// `email_taken` with `existing_id`), the CSV import, edits, and the customers payments and payment
// requests record. The database enforces it too (a unique index on customers.email_normalized):
// concurrent creates with one address leave exactly one customer. The migration keeps duplicates
// that already exist.
import { expect } from 'chai';
import { forEachTarget } from './support/targets.ts';
import { build, fieldError, signUp, type Account, type TestEnv } from './support/harness.ts';
import { apiClient, apiMerchant, expectProblem } from './support/api.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';
import { migrateLatest } from '../src/core/db.ts';

const MIGRATION = '20261203000070_customer_email_normalized';

forEachTarget('customers: one per email address', (target) => {
  let env: TestEnv;
  before(async () => {
    env = await build(target, { apiLimit: { points: 100_000, durationSec: 60 } });
  });
  after(() => env?.close());

  const merchantOf = async (acct: Account): Promise<Merchant> => (await env.rt.services.merchants.getByHandle(acct.handle))!;
  const live = async (merchantKey: number) => env.rt.db('customers').where({ merchant_id: merchantKey }).whereNull('deleted_at').orderBy('id');
  const post = (acct: Account, url: string, fields: Record<string, unknown>) => acct.agent.post(url).type('form').send({ _csrf: acct.csrf, ...fields });

  describe('dashboard form', () => {
    it('refuses an email another customer has, in another case: 422 by the email field with a link to them, nothing added', async () => {
      const acct = await signUp(env.app);
      const m = await merchantOf(acct);
      const jane = await env.rt.services.customers.create(m.key, { name: 'Jane Doe', email: 'jane@example.com' });
      const res = await post(acct, '/app/customers', { name: 'Jane Again', email: '  JANE@Example.COM ' }).expect(422);
      expect(fieldError(res.text, 'email')).to.equal('A customer with this email address already exists.');
      expect(res.text).to.match(/id="f-email"[^>]*aria-invalid="true"/);
      expect(res.text).to.include(`<p class="error-link"><a href="/app/customers/${jane.id}">Open Jane Doe, who has this email</a></p>`);
      expect(res.text).to.include('value="Jane Again"');
      expect((await live(m.key)).map((r) => r.public_id)).to.deep.equal([jane.id]);
    });

    it('refuses changing a customer’s email to another’s (422, nothing changed); keeping one’s own email in another case is fine', async () => {
      const acct = await signUp(env.app);
      const m = await merchantOf(acct);
      const jane = await env.rt.services.customers.create(m.key, { name: 'Jane', email: 'jane@example.com' });
      const bob = await env.rt.services.customers.create(m.key, { name: 'Bob', email: 'bob@example.com' });
      const res = await post(acct, `/app/customers/${bob.id}`, { name: 'Bob B', email: 'Jane@example.com' }).expect(422);
      expect(fieldError(res.text, 'email')).to.equal('A customer with this email address already exists.');
      expect(res.text).to.include(`href="/app/customers/${jane.id}"`);
      expect(await env.rt.services.customers.get(m.key, bob.id)).to.include({ name: 'Bob', email: 'bob@example.com' });
      await post(acct, `/app/customers/${bob.id}`, { name: 'Bob B', email: 'BOB@example.com' }).expect(303);
      expect(await env.rt.services.customers.get(m.key, bob.id)).to.include({ name: 'Bob B', email: 'bob@example.com' });
    });
  });

  describe('API', () => {
    it('POST /customers with an existing email (any case) → 409 email_taken with existing_id; another merchant may have it', async () => {
      const a = await apiMerchant(env, 'Dup A');
      const b = await apiMerchant(env, 'Dup B');
      const call = apiClient(env.app, a.secret);
      const first = await call('post', '/customers', { name: 'Ada', email: 'ada@example.com' }).expect(201);
      const dup = await call('post', '/customers', { name: 'Ada L', email: 'ADA@Example.com' });
      const body = expectProblem(dup, 409, 'email_taken') as unknown as { existing_id: string; errors: { field: string; code: string }[] };
      expect(body.existing_id).to.equal(first.body.id);
      expect(body.errors).to.deep.equal([{ field: 'email', code: 'email_taken', message: 'A customer with this email address already exists.' }]);
      expect(await live(a.merchant.key)).to.have.length(1);
      await apiClient(env.app, b.secret)('post', '/customers', { name: 'Ada', email: 'ada@example.com' }).expect(201);
    });

    it('PATCH /customers/:id to another customer’s email → 409 with existing_id, unchanged; clearing and re-using a deleted customer’s email work', async () => {
      const a = await apiMerchant(env, 'Dup C');
      const call = apiClient(env.app, a.secret);
      const ada = (await call('post', '/customers', { name: 'Ada', email: 'ada@example.com' }).expect(201)).body;
      const bob = (await call('post', '/customers', { name: 'Bob', email: 'bob@example.com' }).expect(201)).body;
      const res = await call('patch', `/customers/${bob.id}`, { email: 'Ada@example.com' });
      expect((expectProblem(res, 409, 'email_taken') as unknown as { existing_id: string }).existing_id).to.equal(ada.id);
      expect((await call('get', `/customers/${bob.id}`).expect(200)).body.email).to.equal('bob@example.com');
      // Ada gives her address up: Bob may take it.
      await call('patch', `/customers/${ada.id}`, { email: null }).expect(200);
      expect((await call('patch', `/customers/${bob.id}`, { email: 'ada@example.com' }).expect(200)).body.email).to.equal('ada@example.com');
      // A deleted customer's address is free again.
      await call('delete', `/customers/${bob.id}`).expect(200);
      const carol = await call('post', '/customers', { name: 'Carol', email: 'ADA@example.com' }).expect(201);
      expect(carol.body.email).to.equal('ada@example.com');
      // The list's exact email filter finds her, whatever the case asked.
      expect((await call('get', '/customers?email=Ada@Example.com').expect(200)).body.data.map((c: { id: string }) => c.id)).to.deep.equal([carol.body.id]);
    });
  });

  it('the CSV import refuses an email an existing customer has in another case, by its row', async () => {
    const acct = await signUp(env.app);
    const m = await merchantOf(acct);
    await env.rt.services.customers.create(m.key, { name: 'Jane', email: 'jane@example.com' });
    const res = await post(acct, '/app/customers/import', { csv: 'name,email\nJane D,JANE@EXAMPLE.COM\nBo,bo@example.com\n' }).expect(422);
    expect(res.text).to.include('A customer with this email address already exists.');
    expect(await live(m.key)).to.have.length(1);
  });

  it('payment requests and payers are matched to the customer with the email, whatever its case', async () => {
    const a = await apiMerchant(env, 'Dup D');
    const call = apiClient(env.app, a.secret);
    const ada = (await call('post', '/customers', { name: 'Ada', email: 'ada@example.com' }).expect(201)).body;
    const req = await call('post', '/payment_requests', { amount: 500, currency: 'EUR', customer: { name: 'Ada L.', email: 'ADA@EXAMPLE.com' } }).expect(201);
    expect(req.body.customer.id).to.equal(ada.id);
    const key = await env.rt.db.transaction((trx) => env.rt.services.customers.matchOrCreate(trx, a.merchant.key, { name: 'Ada', email: ' Ada@Example.Com ' }));
    expect((await env.rt.services.customers.getByKey(key))!.id).to.equal(ada.id);
    expect(await live(a.merchant.key)).to.have.length(1);
  });

  describe('races', () => {
    it('concurrent creates with one email (in different cases): exactly one wins, the others answer 409 naming it', async () => {
      const a = await apiMerchant(env, 'Race A');
      const call = apiClient(env.app, a.secret);
      const results = await Promise.all(Array.from({ length: 8 }, (_, i) => call('post', '/customers', { name: `Racer ${i}`, email: i % 2 ? 'RACE@example.com' : 'race@example.com' })));
      const won = results.filter((r) => r.status === 201);
      expect(won, results.map((r) => `${r.status} ${r.text}`).join('\n')).to.have.length(1);
      for (const r of results.filter((x) => x.status !== 201)) expect((expectProblem(r, 409, 'email_taken') as unknown as { existing_id: string }).existing_id).to.equal(won[0].body.id);
      expect(await live(a.merchant.key)).to.have.length(1);
    });

    it('the service under concurrency: creates, edits to one email and payment requests leave one customer per address', async () => {
      const a = await apiMerchant(env, 'Race B');
      const { customers } = env.rt.services;
      const creates = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => customers.create(a.merchant.key, { name: `C${i}`, email: 'same@example.com' })));
      expect(creates.filter((r) => r.status === 'fulfilled')).to.have.length(1);
      for (const r of creates) if (r.status === 'rejected') expect((r.reason as { code: string }).code).to.equal('email_taken');

      const others = await Promise.all(Array.from({ length: 4 }, (_, i) => customers.create(a.merchant.key, { name: `O${i}`, email: `o${i}@example.com` })));
      const edits = await Promise.allSettled(others.map((o) => customers.update(a.merchant.key, o.id, { email: 'Edited@example.com' })));
      expect(edits.filter((r) => r.status === 'fulfilled')).to.have.length(1);

      const call = apiClient(env.app, a.secret);
      const requests = await Promise.all(Array.from({ length: 5 }, () => call('post', '/payment_requests', { amount: 100, currency: 'EUR', customer: { name: 'New', email: 'fresh@example.com' } })));
      for (const r of requests) expect(r.status, r.text).to.equal(201);
      expect(new Set(requests.map((r) => r.body.customer.id)).size).to.equal(1);

      const rows = await live(a.merchant.key);
      const emails = rows.map((r) => r.email).filter(Boolean);
      expect(emails.length).to.equal(new Set(emails).size);
      expect(emails.filter((e) => e === 'same@example.com')).to.have.length(1);
      expect(emails.filter((e) => e === 'edited@example.com')).to.have.length(1);
      expect(emails.filter((e) => e === 'fresh@example.com')).to.have.length(1);
    });

    it('the database refuses a second live customer with one normalised email, even written behind the service', async () => {
      const a = await apiMerchant(env, 'Race C');
      await env.rt.services.customers.create(a.merchant.key, { name: 'Ada', email: 'ada@example.com' });
      const now = env.clock.now();
      let error: unknown = null;
      try {
        await env.rt.db('customers').insert({ public_id: 'cus_rawduplicate0000000001', merchant_id: a.merchant.key, name: 'X', email: 'ADA@example.com', email_normalized: 'ada@example.com', created_at: now, updated_at: now });
      } catch (err) {
        error = err;
      }
      expect(error, 'the unique index refused it').not.to.equal(null);
    });
  });

  it('the migration keeps existing duplicates: the oldest holds the address, later ones keep their email, nothing is lost', async () => {
    const acct = await signUp(env.app);
    const m = await merchantOf(acct);
    const db = env.rt.db;
    await db.migrate.down({ name: MIGRATION });
    const now = env.clock.now();
    const row = (id: string, email: string | null, deleted = false) => ({ public_id: id, merchant_id: m.key, name: id, email, created_at: now, updated_at: now, deleted_at: deleted ? now : null });
    try {
      await db('customers').insert([
        row('cus_mig_gone', 'dup@example.com', true),
        row('cus_mig_first', 'Dup@example.com'),
        row('cus_mig_second', 'dup@example.com'),
        row('cus_mig_third', ' DUP@EXAMPLE.COM'),
        row('cus_mig_other', 'other@example.com'),
        row('cus_mig_none', null),
      ]);
    } finally {
      await migrateLatest(db);
    }
    const rows = await db('customers').where({ merchant_id: m.key }).orderBy('id').select('public_id', 'email', 'email_normalized');
    expect(rows).to.deep.equal([
      { public_id: 'cus_mig_gone', email: 'dup@example.com', email_normalized: null },
      { public_id: 'cus_mig_first', email: 'Dup@example.com', email_normalized: 'dup@example.com' },
      { public_id: 'cus_mig_second', email: 'dup@example.com', email_normalized: null },
      { public_id: 'cus_mig_third', email: ' DUP@EXAMPLE.COM', email_normalized: null },
      { public_id: 'cus_mig_other', email: 'other@example.com', email_normalized: 'other@example.com' },
      { public_id: 'cus_mig_none', email: null, email_normalized: null },
    ]);
    // The kept duplicates stay editable; a new customer with the address is refused, naming the oldest.
    await env.rt.services.customers.update(m.key, 'cus_mig_second', { name: 'Second, renamed' });
    const res = await post(acct, '/app/customers', { name: 'Fourth', email: 'dup@example.com' }).expect(422);
    expect(res.text).to.include('href="/app/customers/cus_mig_first"');
    // A payer with the address is the oldest customer.
    const key = await db.transaction((trx) => env.rt.services.customers.matchOrCreate(trx, m.key, { name: 'P', email: 'DUP@example.com' }));
    expect((await env.rt.services.customers.getByKey(key))!.id).to.equal('cus_mig_first');
  });
});
