/**
 * Payment requests from a CSV file (issue 13, item 6) in the dashboard: every row checked first with
 * the API create's rules — all or nothing, each bad row listed by row and column, nothing written —
 * then the requests created in batches by a background job and their messages sent, with a progress
 * block that htmx polls until everything settled. Also: an empty file, a wrong header, a file over
 * 10,000 rows, a taken reference between the check and the write, a job that dies mid-way and
 * resumes, and tenant isolation. Then in Chromium: the upload, the problems, and the progress bar
 * moving without a reload and then no longer polling; and without JavaScript, the Refresh link.
 */
import { expect } from 'chai';
import { forEachTarget } from './support/targets.ts';
import { signUp, useEnv, type Account } from './support/harness.ts';
import { outboxMessages } from './support/channels.ts';
import { apiClient, apiMerchant } from './support/api.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';
import { DESKTOP, PHONE, servedMerchant, useBrowser, type ServedEnv, type TrackedPage } from './support/browser.ts';

/** The import page's problems table as [row, column, message] ('' for a whole row or file). */
function problems(html: string): [string, string, string][] {
  const out: [string, string, string][] = [];
  const re = /<td data-label="Row" class="num">([^<]*)<\/td>\s*<td data-label="Column">(?:<code>([^<]*)<\/code>|<span[^>]*>[^<]*<\/span>)<\/td>\s*<td data-label="Problem" class="cell-problem">([^<]*)<\/td>/g;
  for (const m of html.matchAll(re)) out.push([m[1], m[2] ?? '', m[3]]);
  return out;
}

const IMPORT_PAGE = /^\/app\/requests\/imports\/(rqi_[0-9A-Za-z]+)$/;
const DAY = 86_400_000;

forEachTarget('dashboard: payment request import', (target) => {
  const env = useEnv(target);

  const merchantOf = async (acct: Account): Promise<Merchant> => (await env.rt.services.merchants.getByHandle(acct.handle))!;
  /** The merchant's rows in every table an import writes. */
  const counts = async (acct: Account) => {
    const key = (await merchantOf(acct)).key;
    const n = async (table: string) => Number((await env.rt.db(table).where({ merchant_id: key }).count({ n: '*' }))[0].n);
    return { requests: await n('payment_requests'), links: await n('links'), customers: await n('customers'), deliveries: await n('deliveries'), imports: await n('request_imports') };
  };
  const upload = (acct: Account, csv: string) => acct.agent.post('/app/requests/import').type('form').send({ _csrf: acct.csrf, csv });
  /** Posts a file that must pass; answers the import's id. */
  const started = async (acct: Account, csv: string): Promise<string> => {
    const res = await upload(acct, csv);
    expect(res.status, problems(res.text).join('\n') || res.text.slice(0, 500)).to.equal(303);
    const m = IMPORT_PAGE.exec(res.headers.location);
    expect(m, res.headers.location).to.not.equal(null);
    return m![1];
  };
  const progress = (acct: Account, id: string) => acct.agent.get(`/app/requests/imports/${id}/progress`).set('HX-Request', 'true').expect(200);
  /** "Requests created: <n> of <total>" and "Messages sent: <n> of <total>" as numbers. */
  const figures = (html: string) => {
    const rows = /Requests created: <strong class="num">([\d,]+)<\/strong> of ([\d,]+)/.exec(html);
    const sent = /Messages sent: <strong class="num">([\d,]+)<\/strong> of ([\d,]+)/.exec(html);
    const num = (s: string | undefined) => (s === undefined ? null : Number(s.replace(/,/g, '')));
    return { created: num(rows?.[1]), total: num(rows?.[2]), sent: num(sent?.[1]), messages: num(sent?.[2]), polling: html.includes('hx-trigger="every 1s"') };
  };

  it('shows the upload page from the requests list: columns, installed channels, a template to download, a paste box', async () => {
    const acct = await signUp(env.app);
    const list = await acct.agent.get('/app/requests').expect(200);
    expect(list.text).to.include('href="/app/requests/import"');
    const page = await acct.agent.get('/app/requests/import').expect(200);
    expect(page.text).to.include('<textarea id="f-csv" name="csv"');
    for (const c of ['amount', 'currency', 'reference', 'customer_name', 'customer_email', 'customer_phone', 'customer_id', 'channels', 'expires_at', 'expires_in_days', 'allow_refresh']) expect(page.text).to.include(`<dt><code>${c}</code></dt>`);
    expect(page.text).to.include('<code>email</code> (Email)').and.include('<code>sms</code>');
    const template = await acct.agent.get('/app/requests/import/template.csv').expect(200).expect('Content-Type', /text\/csv/);
    expect(template.headers['content-disposition']).to.include('payment-requests-template.csv');
    // The template itself imports cleanly.
    const id = await started(acct, template.text);
    await env.rt.jobs.drain();
    expect(figures((await progress(acct, id)).text)).to.include({ created: 2, total: 2 });
  });

  it('creates every request of a valid file in the background, queues and sends their messages, and shows the progress until all settled', async () => {
    const acct = await signUp(env.app);
    const merchant = await merchantOf(acct);
    const known = await env.rt.services.customers.create(merchant.key, { name: 'Known Kim', email: 'kim@example.test', phone: '+31612345670' });
    const csv = [
      'Reference,AMOUNT,currency,description,customer_name,customer_email,customer_phone,channels,expires_in_days,customer_id,allow_refresh,expires_at',
      'B-1,12.50,eur,Invoice 1,Ann Able,ann@example.test,,email,14,,yes,',
      'B-2,1000,JPY,"Lesson, March",Bo Baker,,+31 6 12345678,sms,,,,',
      `B-3,7.5,EUR,,,,,email;sms,,${known.id},no,`,
      `B-4,99,EUR,Deposit,Cy Cole,cy@example.test,,,,,,${new Date(env.clock.now().getTime() + 30 * DAY).toISOString()}`,
    ].join('\r\n');
    const before = await counts(acct);
    const id = await started(acct, csv);
    // Checked and accepted, nothing written yet: the job does that.
    const first = await acct.agent.get(`/app/requests/imports/${id}`).expect(200);
    expect(first.text).to.include('All 4 rows checked.');
    expect(figures(first.text)).to.deep.equal({ created: 0, total: 4, sent: 0, messages: 4, polling: true });
    expect(first.text).to.include(`href="/app/requests/imports/${id}">Refresh</a>`);

    // The job writes the requests and queues their messages in the same batch; the pump sends them.
    await env.rt.jobs.drain();
    const after = await counts(acct);
    expect(after.requests - before.requests).to.equal(4);
    expect(after.imports - before.imports).to.equal(1);
    const rows = (await env.rt.db('payment_requests').where({ merchant_id: merchant.key }).orderBy('id')) as { public_id: string; reference: string; source: string; import_id: number | null; allow_refresh: unknown }[];
    const imported = rows.filter((r) => r.import_id !== null);
    expect(imported.map((r) => [r.reference, r.source, Boolean(r.allow_refresh)])).to.deep.equal([
      ['B-1', 'import', true],
      ['B-2', 'import', false],
      ['B-3', 'import', false],
      ['B-4', 'import', false],
    ]);
    const get = (ref: string) => env.rt.services.requests.get(merchant.key, imported.find((r) => r.reference === ref)!.public_id);
    const [b1, b2, b3, b4] = await Promise.all(['B-1', 'B-2', 'B-3', 'B-4'].map(get));
    // Decimal amounts in the currency's minor units.
    expect([b1.link.amount, b1.link.currency, b2.link.amount, b2.link.currency, b3.link.amount]).to.deep.equal([1250, 'EUR', 1000, 'JPY', 750]);
    expect(b1.link.expiresAt!.getTime() - env.clock.now().getTime()).to.equal(14 * DAY);
    expect(b2.link.expiresAt!.getTime() - env.clock.now().getTime()).to.equal(7 * DAY);
    expect(b4.link.expiresAt!.getTime() - env.clock.now().getTime()).to.equal(30 * DAY);
    expect(b2.link.description).to.equal('Lesson, March');
    expect(b3.link.customerKey).to.equal(known.key);
    // Each message went out with the request's own short URL, to the address in the file or on file.
    const sent = await outboxMessages(env);
    const to = (url: string) => sent.filter((m) => m.text.includes(url)).map((m) => `${m.channel}:${m.to}`).sort();
    expect(to(env.rt.services.requests.urlOf(b1))).to.deep.equal(['email:ann@example.test']);
    expect(to(env.rt.services.requests.urlOf(b2))).to.deep.equal(['sms:+31612345678']);
    expect(to(env.rt.services.requests.urlOf(b3))).to.deep.equal(['email:kim@example.test', 'sms:+31612345670']);
    expect(to(env.rt.services.requests.urlOf(b4))).to.deep.equal([]);

    // Done: every row created, every message sent, and the block stops polling.
    const done = await progress(acct, id);
    expect(figures(done.text)).to.deep.equal({ created: 4, total: 4, sent: 4, messages: 4, polling: false });
    expect(done.text).to.not.include('>Refresh</a>');
    // The list filtered to the import shows exactly its requests.
    const list = await acct.agent.get(`/app/requests?import=${id}`).expect(200);
    for (const r of imported) expect(list.text).to.include(`id="request-${r.public_id}"`);
    expect((list.text.match(/id="request-req_/g) ?? []).length).to.equal(4);
  });

  it('refuses a file with bad rows whole, listing each bad row by column, and writes nothing', async () => {
    const acct = await signUp(env.app);
    const merchant = await merchantOf(acct);
    await env.rt.services.requests.create(merchant, { amount: 100, currency: 'EUR', reference: 'TAKEN-1', customer: { name: 'Old', email: 'old@example.test' } }, { source: 'api' });
    const tooFar = new Date(env.clock.now().getTime() + 400 * DAY).toISOString();
    const csv = [
      'reference,amount,currency,customer_name,customer_email,customer_phone,channels,expires_at,expires_in_days',
      'OK-1,10.00,EUR,Good Row,good@example.test,,email,,', // row 2: fine
      'BAD-AMOUNT,ten,EUR,A,a@example.test,,,,', // 3
      'BAD-CURRENCY,10.00,XYZ,B,b@example.test,,,,', // 4
      'NO-CONTACT,10.00,EUR,C,,,,,', // 5
      'BAD-CHANNEL,10.00,EUR,D,d@example.test,,pigeon,,', // 6
      'OK-1,11.00,EUR,E,e@example.test,,,,', // 7: the reference of row 2
      'TAKEN-1,12.00,EUR,F,f@example.test,,,,', // 8
      `FAR,13.00,EUR,G,g@example.test,,,${tooFar},`, // 9
      'DECIMALS,1.234,EUR,H,h@example.test,,,,', // 10
      'NO-PHONE,5.00,EUR,I,i@example.test,,sms,,', // 11: sms but no phone
      'DAYS,5.00,EUR,J,j@example.test,,,,soon', // 12
      'has space,5.00,EUR,K,k@example.test,,,,', // 13
      'ROW-TOO-LONG,5.00,EUR,L,l@example.test,,,,,extra', // 14
    ].join('\n');
    const before = await counts(acct);
    const res = await upload(acct, csv).expect(422);
    expect(res.text).to.include('Nothing was created');
    const found = problems(res.text);
    const at = (row: number) => found.filter((p) => p[0] === String(row)).map((p) => p[1]);
    expect(at(2)).to.deep.equal([]);
    expect(at(3)).to.deep.equal(['amount']);
    expect(at(4)).to.deep.equal(['currency']);
    expect(at(5)).to.deep.equal(['customer_email']);
    expect(at(6)).to.deep.equal(['channels']);
    expect(found.find((p) => p[0] === '6')![2]).to.include('“pigeon” is not an installed channel');
    expect(at(7)).to.deep.equal(['reference']);
    expect(found.find((p) => p[0] === '7')![2]).to.equal('The same reference as row 2. Each reference can be in the file once.');
    expect(at(8)).to.deep.equal(['reference']);
    expect(found.find((p) => p[0] === '8')![2]).to.equal('A payment request with this reference already exists.');
    expect(at(9)).to.deep.equal(['expires_at']);
    expect(found.find((p) => p[0] === '9')![2]).to.equal('expires_at must be at most a year from now.');
    expect(at(10)).to.deep.equal(['amount']);
    expect(found.find((p) => p[0] === '10')![2]).to.equal('EUR amounts have at most 2 decimals.');
    expect(at(11)).to.deep.equal(['channels']);
    expect(at(12)).to.deep.equal(['expires_in_days']);
    expect(at(13)).to.deep.equal(['reference']);
    expect(found.find((p) => p[0] === '14')).to.deep.equal(['14', '', 'This row has 10 values but the header has 9 columns. Put values that contain commas in quotes.']);
    expect(found).to.have.length(12);
    // The text comes back to be fixed, and nothing at all was written.
    expect(res.text).to.include('BAD-AMOUNT,ten,EUR');
    expect(await counts(acct)).to.deep.equal(before);
    await env.rt.jobs.drain();
    expect(await counts(acct)).to.deep.equal(before);
  });

  it('refuses an empty file, a wrong header and a file of more than 10,000 rows', async () => {
    const acct = await signUp(env.app);
    const before = await counts(acct);
    expect(problems((await upload(acct, '  \n').expect(422)).text)).to.deep.equal([['—', '', 'Paste the CSV text or choose a file first.']]);
    expect(problems((await upload(acct, 'reference,amount,currency,customer_name\n').expect(422)).text)).to.deep.equal([['1', '', 'The file has a header but no payment requests below it.']]);
    const unknown = problems((await upload(acct, 'amount,currency,customer_name,colour\n1.00,EUR,Ann\n').expect(422)).text);
    expect(unknown).to.have.length(1);
    expect(unknown[0].slice(0, 2)).to.deep.equal(['1', 'colour']);
    expect(unknown[0][2]).to.match(/^Unknown column “colour”. The columns are: reference, amount, currency/);
    const missing = problems((await upload(acct, 'amount,customer_name,customer_email\n1.00,Ann,ann@example.test\n').expect(422)).text);
    expect(missing.map((p) => p.slice(0, 2))).to.deep.equal([['1', 'currency']]);
    // A customer is named by customer_name or customer_id: a header with neither is refused.
    expect(problems((await upload(acct, 'amount,currency,customer_email\n1.00,EUR,ann@example.test\n').expect(422)).text).map((p) => p.slice(0, 2))).to.deep.equal([['1', 'customer_name']]);
    const big = ['amount,currency,customer_name,customer_email', ...Array.from({ length: 10_001 }, (_, i) => `1.00,EUR,C ${i},c${i}@example.test`)].join('\n');
    expect(problems((await upload(acct, big).expect(422)).text)).to.deep.equal([['—', '', 'The file has more than 10,000 payment requests. Split it into files of at most 10,000 rows.']]);
    expect(await counts(acct)).to.deep.equal(before);
  });

  it('skips and lists a row whose reference was taken between the check and the write, creating the rest', async () => {
    const acct = await signUp(env.app);
    const merchant = await merchantOf(acct);
    const csv = ['reference,amount,currency,customer_name,customer_email,channels', ...Array.from({ length: 150 }, (_, i) => `S-${i + 1},1.00,EUR,C ${i},s${i}@example.test,email`)].join('\n');
    const id = await started(acct, csv);
    // An API create takes S-120 (spreadsheet row 121) before the job runs.
    await env.rt.services.requests.create(merchant, { amount: 500, currency: 'EUR', reference: 'S-120', customer: { name: 'Early', email: 'early@example.test' } }, { source: 'api' });
    await env.rt.jobs.drain();
    const imp = await env.rt.db('request_imports').where({ public_id: id }).first();
    expect([imp.state, Number(imp.created_count), Number(imp.skipped_count), imp.pending]).to.deep.equal(['done', 149, 1, null]);
    expect(Number((await env.rt.db('payment_requests').where({ import_id: imp.id }).count({ n: '*' }))[0].n)).to.equal(149);
    const page = await acct.agent.get(`/app/requests/imports/${id}`).expect(200);
    expect(page.text).to.include('Rows not created');
    expect(problems(page.text)).to.deep.equal([['121', 'reference', 'Not created: a payment request with this reference was made after the file was checked.']]);
    expect(figures(page.text)).to.deep.equal({ created: 149, total: 150, sent: 149, messages: 150, polling: false });
  });

  it('writes whole batches only: a job that fails mid-way leaves the batches before it, and its retry goes on from there', async () => {
    const acct = await signUp(env.app);
    const merchant = await merchantOf(acct);
    const doomed = await env.rt.services.customers.create(merchant.key, { name: 'Gone Soon', email: 'gone@example.test' });
    // 250 rows: batches of 100; row 152 (the second batch) names a customer that will vanish.
    const lines = Array.from({ length: 250 }, (_, i) => (i === 150 ? `M-${i + 1},2.00,EUR,,,email,${doomed.id}` : `M-${i + 1},2.00,EUR,C ${i},m${i}@example.test,email,`));
    const id = await started(acct, ['reference,amount,currency,customer_name,customer_email,channels,customer_id', ...lines].join('\n'));
    // The customer's row disappears after the check (as in a crash that lost it): the second batch cannot be written.
    const saved = await env.rt.db('customers').where({ id: doomed.key }).first();
    await env.rt.db('customers').where({ id: doomed.key }).del();
    await env.rt.jobs.drain();
    const mid = await env.rt.db('request_imports').where({ public_id: id }).first();
    expect([mid.state, Number(mid.created_count)]).to.deep.equal(['creating', 100]);
    const written = async () => Number((await env.rt.db('payment_requests').where({ import_id: mid.id }).count({ n: '*' }))[0].n);
    expect(await written()).to.equal(100);
    // Nothing of the failed batch: no stray links, customers or messages either.
    const c = await counts(acct);
    expect([c.links, c.deliveries]).to.deep.equal([100, 100]);
    const page = await acct.agent.get(`/app/requests/imports/${id}`).expect(200);
    expect(figures(page.text)).to.include({ created: 100, total: 250, polling: true });
    // The customer is back; the retry (after its backoff) writes the remaining 150, none twice.
    await env.rt.db('customers').insert(saved);
    env.clock.advance(60_000);
    await env.rt.jobs.drain();
    const end = await env.rt.db('request_imports').where({ public_id: id }).first();
    expect([end.state, Number(end.created_count)]).to.deep.equal(['done', 250]);
    expect(await written()).to.equal(250);
    const refs = (await env.rt.db('payment_requests').where({ import_id: mid.id }).pluck('reference')) as string[];
    expect(new Set(refs).size).to.equal(250);
    expect(figures((await progress(acct, id)).text)).to.deep.equal({ created: 250, total: 250, sent: 250, messages: 250, polling: false });
  });

  it('marks the import stopped once its job has no attempts left, keeping the whole batches written', async () => {
    const acct = await signUp(env.app);
    const merchant = await merchantOf(acct);
    const doomed = await env.rt.services.customers.create(merchant.key, { name: 'Gone For Good', email: 'gone4good@example.test' });
    const lines = Array.from({ length: 130 }, (_, i) => (i === 110 ? `F-${i + 1},2.00,EUR,,,,${doomed.id}` : `F-${i + 1},2.00,EUR,C ${i},f${i}@example.test,email,`));
    const id = await started(acct, ['reference,amount,currency,customer_name,customer_email,channels,customer_id', ...lines].join('\n'));
    await env.rt.db('customers').where({ id: doomed.key }).del();
    // Every retry (with its backoff) fails the same way, until the last.
    for (let i = 0; i < 12; i++) {
      await env.rt.jobs.drain();
      env.clock.advance(2 * 3_600_000);
    }
    const imp = await env.rt.db('request_imports').where({ public_id: id }).first();
    expect([imp.state, Number(imp.created_count)]).to.deep.equal(['failed', 100]);
    expect(imp.error).to.match(/^Stopped after 100 of 130 requests: /);
    expect(Number((await env.rt.db('payment_requests').where({ import_id: imp.id }).count({ n: '*' }))[0].n)).to.equal(100);
    const page = await acct.agent.get(`/app/requests/imports/${id}`).expect(200);
    expect(page.text).to.include('The import stopped').and.include('Stopped after 100 of 130 requests');
    expect(figures(page.text)).to.include({ created: 100, total: 130, polling: false });
  });

  it('marks the import stopped when its worker dies during the last attempt (no handler ran to say so)', async () => {
    const acct = await signUp(env.app);
    const lines = Array.from({ length: 5 }, (_, i) => `K-${i + 1},2.00,EUR,C ${i},k${i}@example.test,email`);
    const id = await started(acct, ['reference,amount,currency,customer_name,customer_email,channels', ...lines].join('\n'));
    // As a worker killed mid-run leaves it: claimed, on its last attempt, its lease run out.
    const job = await env.rt.db('jobs').where({ kind: 'requests.import' }).andWhere('payload', 'like', `%${id}%`).first();
    await env.rt.db('jobs').where({ id: job.id }).update({ state: 'running', attempts: job.max_attempts, locked_by: 'gone:1', lease_until: new Date(env.clock.now().getTime() - 1000) });
    await env.rt.jobs.drain();
    const imp = await env.rt.db('request_imports').where({ public_id: id }).first();
    expect([imp.state, Number(imp.created_count)]).to.deep.equal(['failed', 0]);
    expect(imp.error).to.match(/^Stopped after 0 of 5 requests: the process writing it stopped/);
    expect((await env.rt.db('jobs').where({ id: job.id }).first()).state).to.equal('dead');
    const page = await acct.agent.get(`/app/requests/imports/${id}`).expect(200);
    expect(page.text).to.include('The import stopped');
    expect(figures(page.text)).to.include({ created: 0, total: 5, polling: false });
  });

  it('keeps every merchant to their own customers and imports', async () => {
    const a = await signUp(env.app);
    const b = await signUp(env.app);
    const theirs = await env.rt.services.customers.create((await merchantOf(b)).key, { name: 'Not Yours', email: 'notyours@example.test' });
    const before = await counts(a);
    const res = await upload(a, `amount,currency,customer_id,channels\n5.00,EUR,${theirs.id},email\n`).expect(422);
    expect(problems(res.text)).to.deep.equal([['2', 'customer_id', 'No customer of yours has this id.']]);
    expect(await counts(a)).to.deep.equal(before);
    // B's import is a 404 to A, its progress too, and A's list filtered by it is empty.
    const id = await started(b, 'amount,currency,customer_name,customer_email\n5.00,EUR,Zed,zed@example.test\n');
    await env.rt.jobs.drain();
    await a.agent.get(`/app/requests/imports/${id}`).expect(404);
    await a.agent.get(`/app/requests/imports/${id}/progress`).expect(404);
    const list = await a.agent.get(`/app/requests?import=${id}`).expect(200);
    expect(list.text).to.not.include('id="request-req_');
    expect((await b.agent.get(`/app/requests?import=${id}`).expect(200)).text).to.include('id="request-req_');
  });

  it('lists an import\'s requests through the API (import_id), with source "import", to its merchant only', async () => {
    const a = await apiMerchant(env, 'Import API A');
    const b = await apiMerchant(env, 'Import API B');
    const started = await env.rt.services.requestImports.start(a.merchant, 'reference,amount,currency,customer_name,customer_email\nAPI-1,3.00,EUR,Pat,pat@example.test\nAPI-2,4.00,EUR,Sam,sam@example.test\n');
    if (!started.ok) throw new Error(JSON.stringify(started.problems));
    await env.rt.services.requests.create(a.merchant, { amount: 100, currency: 'EUR', reference: 'NOT-IMPORTED', customer: { name: 'X', email: 'x@example.test' } }, { source: 'api' });
    await env.rt.jobs.drain();
    const mine = await apiClient(env.app, a.secret)('get', `/payment_requests?import_id=${started.import.id}`).expect(200);
    expect(mine.body.data.map((r: { reference: string; source: string; amount: number }) => [r.reference, r.source, r.amount])).to.deep.equal([
      ['API-2', 'import', 400],
      ['API-1', 'import', 300],
    ]);
    const theirs = await apiClient(env.app, b.secret)('get', `/payment_requests?import_id=${started.import.id}`).expect(200);
    expect(theirs.body.data).to.deep.equal([]);
  });

  it('refuses a post without the CSRF token', async () => {
    const acct = await signUp(env.app);
    const before = await counts(acct);
    await acct.agent.post('/app/requests/import').type('form').send({ csv: 'amount,currency,customer_name,customer_email\n5.00,EUR,Zed,zed@example.test\n' }).expect(403);
    expect(await counts(acct)).to.deep.equal(before);
  });
});

describe('dashboard: payment request import in a browser', () => {
  const browser = useBrowser();
  let env: ServedEnv;
  let storageState: Awaited<ReturnType<TrackedPage['context']['storageState']>>;

  before(async function () {
    this.timeout(30_000);
    ({ env, storageState } = await servedMerchant(browser(), { name: 'Harbour Bikes', handlePrefix: 'bulk' }));
  });
  after(() => env?.close());

  const file = (prefix: string, n: number) =>
    ['reference,amount,currency,description,customer_name,customer_email,channels,expires_in_days', ...Array.from({ length: n }, (_, i) => `${prefix}-${i + 1},${20 + (i % 7)}.50,EUR,"Service ${i + 1}, spring",Rider ${i + 1},rider${i + 1}.${prefix.toLowerCase()}@example.test,email,14`)].join('\n');

  for (const [device, viewport] of [['phone', PHONE], ['desktop', DESKTOP]] as const) {
    it(`imports a file with a progress bar that moves by itself and then stops polling, on a ${device}`, async function () {
      this.timeout(40_000);
      const tab = await browser().newPage({ storageState, viewport });
      try {
        const { page } = tab;
        await page.goto(`${env.origin}/app/requests`);
        await page.getByRole('link', { name: 'Import CSV' }).click();
        await page.getByRole('heading', { level: 1, name: 'Import payment requests' }).waitFor();
        await tab.screenshot(`requests-import-${device}`);
        // A bad file: the rows to fix, nothing created.
        tab.expectError({ status: 422, path: '/app/requests/import' });
        await page.getByLabel('CSV text').fill(`${file(`BAD${device}`, 2)}\nX-3,ten,EUR,Oops,Rider 3,not-an-email,email,14`);
        await page.getByRole('button', { name: 'Check and import' }).click();
        await page.getByRole('heading', { level: 2, name: 'Nothing was created' }).waitFor();
        expect(await page.locator('.import-problems-table tbody tr').count()).to.equal(2);
        expect(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).to.equal(true);
        await tab.screenshot(`requests-import-problems-${device}`);
        // A good file: the progress page, polling every second.
        const prefix = device === 'phone' ? 'PH' : 'DT';
        await page.getByLabel('CSV text').fill(file(prefix, 120));
        await page.getByRole('button', { name: 'Check and import' }).click();
        await page.getByRole('heading', { level: 1, name: 'Import of 120 payment requests' }).waitFor();
        expect(await page.locator('#import-rows').getAttribute('value')).to.equal('0');
        await tab.screenshot(`requests-import-progress-${device}`);
        // The worker writes the requests and sends the messages; the page catches up without a reload.
        await env.rt.jobs.drain();
        await page.getByRole('heading', { level: 2, name: 'Done' }).waitFor({ timeout: 5_000 });
        expect(await page.locator('#import-rows').getAttribute('value')).to.equal('120');
        expect(await page.locator('#import-messages').getAttribute('value')).to.equal('120');
        expect(await page.locator('#import-progress').getAttribute('hx-trigger')).to.equal(null);
        await tab.screenshot(`requests-import-done-${device}`);
        // Settled: no more polling.
        let polls = 0;
        page.on('request', (r) => void (r.url().endsWith('/progress') && polls++));
        await page.waitForTimeout(2_200);
        expect(polls).to.equal(0);
        expect(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).to.equal(true);
        await page.getByRole('link', { name: /See the 120 requests created/ }).click();
        await page.waitForURL(/\/app\/requests\?import=rqi_/);
        await page.locator('tbody tr').first().waitFor();
        expect(await page.locator('tbody tr').count()).to.equal(25);
        expect(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).to.equal(true);
        await tab.screenshot(`requests-import-list-${device}`);
        tab.assertClean();
      } finally {
        await tab.close();
      }
    });
  }

  it('works without JavaScript: the Refresh link shows where the import stands', async function () {
    this.timeout(30_000);
    const tab = await browser().newPage({ storageState, javaScriptEnabled: false });
    try {
      const { page } = tab;
      await page.goto(`${env.origin}/app/requests/import`);
      await page.getByLabel('CSV text').fill(file('NOJS', 3));
      await page.getByRole('button', { name: 'Check and import' }).click();
      await page.getByRole('heading', { level: 1, name: 'Import of 3 payment requests' }).waitFor();
      expect(await page.locator('#import-rows').getAttribute('value')).to.equal('0');
      await env.rt.jobs.drain();
      await page.getByRole('link', { name: 'Refresh' }).click();
      await page.getByRole('heading', { level: 2, name: 'Done' }).waitFor();
      expect(await page.locator('#import-rows').getAttribute('value')).to.equal('3');
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });
});
