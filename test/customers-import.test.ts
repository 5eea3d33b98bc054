// Importing customers from CSV in the dashboard: all rows or none. Every row is checked with the
// customer form's rules; problems come back as a table of spreadsheet row, column and message.
import { expect } from 'chai';
import { forEachTarget } from './support/targets.ts';
import { build, signUp, type Account, type TestEnv } from './support/harness.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';

/** The import page's problems table as [row, column, message] ('' for a whole row or file). */
function problems(html: string): [string, string, string][] {
  const out: [string, string, string][] = [];
  const re = /<td data-label="Row" class="num">([^<]*)<\/td>\s*<td data-label="Column">(?:<code>([^<]*)<\/code>|<span[^>]*>[^<]*<\/span>)<\/td>\s*<td data-label="Problem" class="cell-problem">([^<]*)<\/td>/g;
  for (const m of html.matchAll(re)) out.push([m[1], m[2] ?? '', m[3]]);
  return out;
}

forEachTarget('dashboard: customer import', (target) => {
  let env: TestEnv;
  before(async () => {
    env = await build(target);
  });
  after(() => env?.close());

  const merchantOf = async (acct: Account): Promise<Merchant> => (await env.rt.services.merchants.getByHandle(acct.handle))!;
  const rows = async (acct: Account) => env.rt.db('customers').where({ merchant_id: (await merchantOf(acct)).key }).orderBy('id');
  const upload = (acct: Account, csv: string, extra: Record<string, string> = {}) => acct.agent.post('/app/customers/import').type('form').send({ _csrf: acct.csrf, csv, ...extra });

  it('shows the import page with the columns and a paste box that works without JavaScript', async () => {
    const acct = await signUp(env.app);
    const page = await acct.agent.get('/app/customers/import').expect(200);
    expect(page.text).to.include('<textarea id="f-csv" name="csv"');
    expect(page.text).to.include('name,email,phone,country,address,tags');
    const script = /src="(\/static\/js\/csv-file\.[0-9a-f]{10}\.js)"/.exec(page.text);
    expect(script, 'the script under its content-hashed URL').not.to.equal(null);
    await acct.agent.get(script![1]).expect(200).expect('Content-Type', /javascript/);
  });

  it('imports every row in one go, with headers in any order and case, and says how many', async () => {
    const acct = await signUp(env.app);
    const csv = [
      'Email,NAME,Phone,country,Tags,address',
      'jane@example.com,Jane Doe,+31 6 12345678,,VIP;Newsletter,',
      'JOHN@example.com,John Smith,(415) 555-2671,us,VIP | Late,',
      ',Walk-in Wanda,,,,',
    ].join('\n');
    const res = await upload(acct, csv).expect(303);
    expect(res.headers.location).to.equal('/app/customers');
    const list = await acct.agent.get('/app/customers').expect(200);
    expect(list.text).to.include('Imported 3 customers.');
    const saved = await rows(acct);
    expect(saved.map((r) => [r.name, r.email, r.phone])).to.deep.equal([
      ['Jane Doe', 'jane@example.com', '+31612345678'],
      ['John Smith', 'john@example.com', '+14155552671'],
      ['Walk-in Wanda', null, null],
    ]);
    const key = (await merchantOf(acct)).key;
    const john = await env.rt.services.customers.get(key, saved[1].public_id);
    expect(john.tags.map((t) => t.name)).to.deep.equal(['Late', 'VIP']);
    const jane = await env.rt.services.customers.get(key, saved[0].public_id);
    expect(jane.tags.map((t) => t.name)).to.deep.equal(['Newsletter', 'VIP']);
    expect((await env.rt.services.tags.list(key, 'customer')).map((t) => t.name)).to.deep.equal(['Late', 'Newsletter', 'VIP']);
  });

  it('reads quoted commas, doubled quotes, line breaks in quotes, CRLF and a byte-order mark', async () => {
    const acct = await signUp(env.app);
    const csv = '\uFEFFname,email,address,tags\r\n"Smith, ""Jo""",jo@example.com,"Damrak 1\r\nAmsterdam","Gold;Silver"\r\nÅsa Öberg,asa@example.se,"",\r\n';
    await upload(acct, csv).expect(303);
    const saved = await rows(acct);
    expect(saved.map((r) => [r.name, r.email, r.address])).to.deep.equal([
      ['Smith, "Jo"', 'jo@example.com', 'Damrak 1\r\nAmsterdam'],
      ['Åsa Öberg', 'asa@example.se', null],
    ]);
  });

  it('imports nothing when one row in the middle is bad, and names that row and column', async () => {
    const acct = await signUp(env.app);
    const lines = ['name,email,phone'];
    for (let i = 1; i <= 9; i++) lines.push(`Person ${i},p${i}@example.com,${i === 5 ? '+31 6 123' : ''}`);
    const res = await upload(acct, lines.join('\r\n')).expect(422);
    // Header is row 1: the fifth person is on row 6.
    const found = problems(res.text);
    expect(found).to.have.length(1);
    expect(found[0].slice(0, 2)).to.deep.equal(['6', 'phone']);
    expect(res.text).to.include('Nothing was imported');
    expect(await rows(acct)).to.have.length(0);
    // The text comes back to be fixed.
    expect(res.text).to.include('Person 9,p9@example.com,');
  });

  it('lists every bad row at once: names, emails, line breaks in names, tags, too many values', async () => {
    const acct = await signUp(env.app);
    const csv = [
      'name,email,tags',
      ',nobody@example.com,', // row 2: no name
      'Ok One,one@example.com,',
      'Bad Mail,not-an-email,', // row 4
      '"Two\nLines",two@example.com,', // row 5: a line break in the name
      `Long Tag,lt@example.com,${'x'.repeat(61)}`, // row 6
      'Extra,extra@example.com,,surprise', // row 7
    ].join('\n');
    const res = await upload(acct, csv).expect(422);
    expect(problems(res.text).map(([row, column]) => [row, column])).to.deep.equal([
      ['2', 'name'],
      ['4', 'email'],
      ['5', 'name'],
      ['6', 'tags'],
      ['7', ''],
    ]);
    expect(await rows(acct)).to.have.length(0);
  });

  it('refuses an email twice in the file or one an existing customer has', async () => {
    const acct = await signUp(env.app);
    await env.rt.services.customers.create((await merchantOf(acct)).key, { name: 'Already Here', email: 'here@example.com' });
    const twice = await upload(acct, 'name,email\nA,a@example.com\nB,b@example.com\nA again,A@Example.com\n').expect(422);
    expect(problems(twice.text).map(([row, column, message]) => [row, column, /row 2/.test(message)])).to.deep.equal([['4', 'email', true]]);
    const existing = await upload(acct, 'name,email\nNew,new@example.com\nDup,HERE@example.com\n').expect(422);
    expect(problems(existing.text).map(([row, column]) => [row, column])).to.deep.equal([['3', 'email']]);
    // Reported together with the other problems, in row order.
    const both = await upload(acct, 'name,email\nDup,here@example.com\n,x@example.com\n').expect(422);
    expect(problems(both.text).map(([row, column]) => [row, column])).to.deep.equal([['2', 'email'], ['3', 'name']]);
    expect((await rows(acct)).map((r) => r.name)).to.deep.equal(['Already Here']);
  });

  it('refuses unknown, duplicate and missing columns in the header', async () => {
    const acct = await signUp(env.app);
    const unknown = await upload(acct, 'name,email,birthday\nA,a@example.com,1990-01-01\n').expect(422);
    expect(problems(unknown.text).map(([row, column]) => [row, column])).to.deep.equal([['1', 'birthday']]);
    const dup = await upload(acct, 'name,Name\nA,B\n').expect(422);
    expect(problems(dup.text).map(([row, column]) => [row, column])).to.deep.equal([['1', 'name']]);
    const missing = await upload(acct, 'email\na@example.com\n').expect(422);
    expect(problems(missing.text).map(([row, column]) => [row, column])).to.deep.equal([['1', 'name']]);
    expect(await rows(acct)).to.have.length(0);
  });

  it('reports a broken quote with its row, and an empty paste or header-only file', async () => {
    const acct = await signUp(env.app);
    const broken = await upload(acct, 'name,email\nA,a@example.com\n"B,b@example.com\n').expect(422);
    expect(problems(broken.text).map(([row]) => row)).to.deep.equal(['3']);
    expect(problems((await upload(acct, '  ').expect(422)).text)).to.have.length(1);
    expect(problems((await upload(acct, 'name,email\n\n').expect(422)).text)).to.have.length(1);
    expect(await rows(acct)).to.have.length(0);
  });

  it('reads numbers without + with the country column, else the country chosen for the file', async () => {
    const acct = await signUp(env.app);
    const csv = 'name,phone,country\nDutch,06 12345678,\nAmerican,(415) 555-2671,US\n';
    const without = await upload(acct, csv).expect(422);
    expect(problems(without.text).map(([row, column]) => [row, column])).to.deep.equal([['2', 'phone']]);
    expect(without.text).to.include('<option value="">None');
    await upload(acct, csv, { country: 'NL' }).expect(303);
    expect((await rows(acct)).map((r) => r.phone)).to.deep.equal(['+31612345678', '+14155552671']);
  });

  it('refuses more than 5,000 customers in one file, importing none', async () => {
    const acct = await signUp(env.app);
    const csv = 'name\n' + 'a\n'.repeat(5001);
    const res = await upload(acct, csv).expect(422);
    const found = problems(res.text);
    expect(found).to.have.length(1);
    expect(found[0][2]).to.include('5,000');
    expect(await rows(acct)).to.have.length(0);
  });

  it('imports exactly 5,000 customers', async function () {
    this.timeout(60_000);
    const acct = await signUp(env.app);
    const csv = 'name,email,phone,tags\n' + Array.from({ length: 5000 }, (_, i) => `C${i},c${i}@example.com,+31 6 1${String(i).padStart(7, '0')},${i % 2 ? 'Odd' : 'Even'}`).join('\n');
    await upload(acct, csv).expect(303);
    const saved = await rows(acct);
    expect(saved).to.have.length(5000);
    expect(saved[4999]).to.include({ name: 'C4999', email: 'c4999@example.com', phone: '+31610004999' });
    const [{ n }] = await env.rt.db('customer_tags').whereIn('customer_id', saved.map((r) => r.id).slice(0, 900)).count({ n: '*' });
    expect(Number(n)).to.equal(900);
  });

  it('refuses a file over 2 MB with a message, not an error page', async function () {
    this.timeout(30_000);
    const acct = await signUp(env.app);
    const csv = 'name,address\n' + `A,${'x'.repeat(990)}\n`.repeat(2200);
    const res = await upload(acct, csv).expect(422);
    const found = problems(res.text);
    expect(found).to.have.length(1);
    expect(found[0][2]).to.include('2 MB');
    expect(await rows(acct)).to.have.length(0);
  });
});
