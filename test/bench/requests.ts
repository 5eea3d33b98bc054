/**
 * Payment requests in `npm run bench` (issue "One-off payment requests", Numbers): in a fresh Node
 * process on a fresh database, with the app listening on loopback —
 *   - the API create with email + SMS dispatch in the same call, sequential (c = 1): p50/p99 of the
 *     response (aim p99 ≤ 25 ms);
 *   - the token check: 100,000 forged short tokens (right length and alphabet, wrong MAC) refused with
 *     zero database queries (counted with knex's `query` event), and their time per token;
 *   - the mail: with a real SMTP server on loopback (smtp-server) as the install's mail server, how
 *     long after the API's 201 each request's email is accepted by it, one request at a time (aim
 *     p99 ≤ 200 ms). The SMTP server runs in the bench's own process, like the webhook receivers: it
 *     tells the measured process over IPC when it accepted each email (epoch ms, same machine).
 * And separately (measureRequestImport, its own process): a 10,000-row CSV import file checked whole
 * against 1,000 existing requests and customers (aim ≤ 3 s), nothing written.
 *
 * Environment: BENCH_REQUESTS (creates, default 300; 0 skips), BENCH_FORGED (default 100,000);
 * BENCH_IMPORT_ROWS for the import (run.ts; default 10,000).
 */
import { runBenchChild, runStandalone } from './child.ts';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';

export const REQUEST_AIMS = { createP99Ms: 25, forgedQueries: 0, mailP99Ms: 200 };

/** Emails timed from the API's answer to the SMTP server's acceptance. */
const MAILS = 100;

export interface RequestsResult {
  label: string;
  creates: number;
  p50Ms: number;
  p99Ms: number;
  failed: number;
  forged: number;
  forgedQueries: number;
  forgedUsPerToken: number;
  mails: number;
  mailP50Ms: number;
  mailP99Ms: number;
}

/** What the bench's SMTP server tells the measuring process: how many emails it has accepted, and when (epoch ms). */
interface Arrival {
  mails: number;
  at: number;
}

export async function measureRequests(env: Record<string, string>, creates: number, forged: number, label: string, log: (line: string) => void): Promise<RequestsResult> {
  // The install's mail server: a real SMTP server on loopback, here in the bench's own process (as the
  // webhook receivers are), so its parsing and the emails it keeps are not the measured process's work
  // or memory. It tells the measured process of each email it accepts.
  const { startSmtp } = await import('../support/smtp.ts');
  let measured: import('node:child_process').ChildProcess | null = null;
  let mails = 0;
  const smtp = await startSmtp({
    onMessage: () => {
      mails++;
      const arrival: Arrival = { mails, at: performance.timeOrigin + performance.now() };
      if (measured?.connected) measured.send(arrival);
    },
  });
  try {
    return await runBenchChild<RequestsResult>({
      name: 'requests',
      label,
      env: { ...env, SMTP_URL: smtp.url },
      childVar: 'BENCH_REQUESTS_CHILD',
      payload: { creates, forged, label },
      withChild: (c) => (measured = c),
      log,
    });
  } finally {
    await smtp.close();
  }
}

export function reportRequests(r: RequestsResult, check: (name: string, value: string, target: string, ok: boolean) => string): string[] {
  return [
    '',
    `Payment requests (${r.label}): ${r.creates} API creates with email + SMS in the same call, one at a time; ${r.forged.toLocaleString('en')} forged /r/ tokens`,
    `  create: p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, non-201 ${r.failed}`,
    `  forged tokens: ${r.forgedQueries} database queries, ${r.forgedUsPerToken.toFixed(2)} µs per token`,
    `  mail at a loopback SMTP server after the 201 (${r.mails} requests, one at a time): p50 ${r.mailP50Ms.toFixed(1)} ms, p99 ${r.mailP99Ms.toFixed(1)} ms`,
    `  ${check(`requests ${r.label}: API create p99 ms (c=1)`, r.p99Ms.toFixed(2), `≤ ${REQUEST_AIMS.createP99Ms} ms`, r.p99Ms <= REQUEST_AIMS.createP99Ms && r.failed === 0)}`,
    `  ${check(`requests ${r.label}: queries for forged tokens`, String(r.forgedQueries), '0', r.forgedQueries === REQUEST_AIMS.forgedQueries)}`,
    `  ${check(`requests ${r.label}: mail accepted by SMTP after the 201, p99 ms`, r.mailP99Ms.toFixed(1), `≤ ${REQUEST_AIMS.mailP99Ms} ms`, r.mails > 0 && r.mailP99Ms <= REQUEST_AIMS.mailP99Ms)}`,
  ];
}

/** The measuring process. */
async function child(spec: { creates: number; forged: number; label: string }): Promise<void> {
  const { loadConfig } = await import('../../src/config.ts');
  const { createRuntime } = await import('../../src/runtime.ts');
  const { buildApp } = await import('../../src/app.ts');
  // Emails go to the bench's SMTP server (SMTP_URL, in the parent process), which reports each one it accepts.
  let accepted: Arrival = { mails: 0, at: 0 };
  const waiting = new Set<() => void>();
  process.on('message', (m: Arrival) => {
    accepted = m;
    for (const w of waiting) w();
  });
  // The API limit (300 a minute per key) is not what is measured here.
  const rt = await createRuntime(loadConfig(process.env), { recordViews: false, apiLimit: { points: 1_000_000, durationSec: 60 } });
  // Jobs run in this process, as in `npm start`: the emails leave from here.
  rt.startBackground();
  const server = http.createServer(buildApp(rt));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const { merchant } = await rt.services.merchants.signUp({ name: 'Bench Invoices', handle: `inv${Date.now().toString(36)}`, email: 'inv@bench.test', password: 'correct horse battery' });
    const { secret } = await rt.services.apiKeys.create(merchant, { name: 'bench' });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const post = (body: unknown) =>
      new Promise<number>((resolve, reject) => {
        const data = JSON.stringify(body);
        const req = http.request(`${base}/api/v1/payment_requests`, { method: 'POST', agent, headers: { Authorization: `Bearer ${secret}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end(data);
      });
    const times: number[] = [];
    let failed = 0;
    const warm = Math.min(30, spec.creates);
    for (let i = 0; i < warm + spec.creates; i++) {
      const t = performance.now();
      const status = await post({ amount: 1000 + i, currency: 'EUR', reference: `B-${i}`, channels: ['email', 'sms'], customer: { name: `Customer ${i}`, email: `c${i}@bench.test`, phone: `+3161${String(1_000_000 + i).slice(-7)}` } });
      if (i >= warm) {
        times.push(performance.now() - t);
        if (status !== 201) failed++;
      }
    }
    times.sort((a, b) => a - b);
    const pct = (p: number) => times[Math.min(times.length - 1, Math.floor(times.length * p))] ?? 0;

    // Forged tokens: the right shape, a MAC that does not match.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
    const tokens = Array.from({ length: spec.forged }, (_, i) => Array.from({ length: 23 }, (_, j) => alphabet[(i * 31 + j * 17 + ((i >> 3) ^ j)) % 62]).join(''));
    let queries = 0;
    const count = () => void queries++;
    rt.db.on('query', count);
    const t0 = performance.now();
    let found = 0;
    for (const token of tokens) if (await rt.services.requests.byToken(token)) found++;
    const us = ((performance.now() - t0) * 1000) / Math.max(1, tokens.length);
    rt.db.off('query', count);
    if (found) throw new Error(`${found} forged tokens were accepted`);

    // The mail: once the creates' emails have gone, one request at a time, from its 201 to the
    // SMTP server's acceptance of its email.
    /** When the SMTP server had accepted `n` emails (epoch ms). */
    const arrived = (n: number, limitMs: number) =>
      new Promise<number>((resolve, reject) => {
        const check = () => {
          if (accepted.mails < n) return;
          clearTimeout(timer);
          waiting.delete(check);
          resolve(accepted.at);
        };
        const timer = setTimeout(() => {
          waiting.delete(check);
          reject(new Error(`only ${accepted.mails} of ${n} emails reached the SMTP server`));
        }, limitMs);
        waiting.add(check);
        check();
      });
    await arrived(warm + spec.creates, 120_000);
    const mails: number[] = [];
    for (let i = 0; i < MAILS; i++) {
      const expected = accepted.mails + 1;
      const status = await post({ amount: 500 + i, currency: 'EUR', reference: `M-${i}`, channels: ['email'], customer: { name: `Mail ${i}`, email: `m${i}@bench.test` } });
      const answered = performance.timeOrigin + performance.now();
      if (status !== 201) throw new Error(`create answered ${status}`);
      mails.push((await arrived(expected, 10_000)) - answered);
    }
    mails.sort((a, b) => a - b);
    const mailPct = (p: number) => mails[Math.min(mails.length - 1, Math.floor(mails.length * p))] ?? 0;
    const result: RequestsResult = { label: spec.label, creates: spec.creates, p50Ms: pct(0.5), p99Ms: pct(0.99), failed, forged: spec.forged, forgedQueries: queries, forgedUsPerToken: us, mails: mails.length, mailP50Ms: mailPct(0.5), mailP99Ms: mailPct(0.99) };
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    server.close();
    await rt.close();
    // The IPC channel would keep this process alive.
    process.disconnect?.();
  }
}

if (process.env.BENCH_REQUESTS_CHILD) await child(JSON.parse(process.env.BENCH_REQUESTS_CHILD));
else if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url) && !process.env.BENCH_REQUESTS_IMPORT_CHILD) {
  // Standalone (`npx tsx test/bench/requests.ts`): the creates on a fresh SQLite file, or a fresh
  // database on BENCH_DATABASE_URL's MariaDB server.
  await runStandalone('requests', async ({ env, label }, log, check) => {
    const r = await measureRequests(env, Number(process.env.BENCH_REQUESTS ?? 300), Number(process.env.BENCH_FORGED ?? 100_000), label, log);
    return { lines: reportRequests(r, check), correct: r.failed === 0 && r.forgedQueries === 0 };
  });
}

// ---- CSV import: a 10,000-row file checked (issue "One-off payment requests", Numbers) -----------
// Independent of the measurements above: its own child process, fresh merchant and result.

export const IMPORT_AIMS = { validateSeconds: 3 };

export interface RequestImportResult {
  label: string;
  rows: number;
  /** Requests and customers already there, whose references and ids the file is checked against. */
  existing: number;
  /** Wall time of the first check, in a process that has checked no file before (what is checked against the aim). */
  seconds: number;
  /** The best of the later checks of the same file (warm). */
  warmSeconds: number;
  runs: number;
  /** Database queries the check made (batched lookups, not one per row). */
  queries: number;
  problems: number;
}

export async function measureRequestImport(env: Record<string, string>, rows: number, label: string, log: (line: string) => void): Promise<RequestImportResult> {
  return runBenchChild<RequestImportResult>({ name: 'requests', label, env, childVar: 'BENCH_REQUESTS_IMPORT_CHILD', payload: { rows, label }, log });
}

export function reportRequestImport(r: RequestImportResult, check: (name: string, value: string, target: string, ok: boolean) => string): string[] {
  return [
    '',
    `Payment request CSV import (${r.label}): a ${r.rows.toLocaleString('en')}-row file checked whole (amount, currency, reference, customer, channels, expiry), ${r.existing.toLocaleString('en')} requests and customers already there`,
    `  check: ${r.seconds.toFixed(2)} s the first time, ${r.warmSeconds.toFixed(2)} s warm (best of ${r.runs - 1} more), ${r.queries} database queries, ${r.problems} problems`,
    `  ${check(`requests ${r.label}: ${r.rows.toLocaleString('en')}-row CSV validated s`, r.seconds.toFixed(2), `≤ ${IMPORT_AIMS.validateSeconds} s`, r.seconds <= IMPORT_AIMS.validateSeconds && r.problems === 0)}`,
  ];
}

/** The measuring process: a merchant with existing requests and customers, then the file checked (nothing written). */
async function importChild(spec: { rows: number; label: string }): Promise<void> {
  const { loadConfig } = await import('../../src/config.ts');
  const { createRuntime } = await import('../../src/runtime.ts');
  const rt = await createRuntime(loadConfig(process.env), { recordViews: false });
  try {
    const { merchant } = await rt.services.merchants.signUp({ name: 'Bench Imports', handle: `imp${Date.now().toString(36)}`, email: 'imp@bench.test', password: 'correct horse battery' });
    // A tenth of the rows name an existing customer by id; references are checked against 1,000 existing requests.
    const existing = 1_000;
    const customers = [];
    for (let i = 0; i < existing; i++) {
      customers.push(await rt.services.customers.create(merchant.key, { name: `Known ${i}`, email: `known${i}@bench.test`, phone: `+3162${String(1_000_000 + i).slice(-7)}` }));
      await rt.services.requests.create(merchant, { amount: 100 + i, currency: 'EUR', reference: `OLD-${i}`, customer_id: customers[i].id }, { source: 'api' });
    }
    const lines = ['reference,amount,currency,description,customer_name,customer_email,customer_phone,customer_id,channels,expires_in_days,allow_refresh'];
    for (let i = 0; i < spec.rows; i++) {
      const byId = i % 10 === 0;
      const cents = 100 + (i % 9_900);
      lines.push(
        byId
          ? `INV-${i},${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')},EUR,"Invoice ${i}, March",,,,${customers[i % existing].id},email sms,14,yes`
          : `INV-${i},${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')},EUR,Invoice ${i},Customer ${i},c${i}@bench.test,+31 6 1${String(1_000_000 + i).slice(-7)},,email;sms,,no`,
      );
    }
    const csv = lines.join('\r\n');
    let queries = 0;
    const count = () => void queries++;
    const times: number[] = [];
    let problems = 0;
    const runs = 3;
    for (let run = 0; run < runs; run++) {
      queries = 0;
      rt.db.on('query', count);
      const t = performance.now();
      const outcome = await rt.services.requestImports.check(merchant.key, csv);
      times.push((performance.now() - t) / 1000);
      rt.db.off('query', count);
      problems = outcome.ok ? 0 : outcome.problems.length;
      if (!outcome.ok) throw new Error(`the bench file has problems: ${JSON.stringify(outcome.problems.slice(0, 3))}`);
      if (outcome.rows.length !== spec.rows) throw new Error(`checked ${outcome.rows.length} rows of ${spec.rows}`);
    }
    const result: RequestImportResult = { label: spec.label, rows: spec.rows, existing, seconds: times[0], warmSeconds: Math.min(...times.slice(1)), runs, queries, problems };
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    await rt.close();
  }
}

if (process.env.BENCH_REQUESTS_IMPORT_CHILD) await importChild(JSON.parse(process.env.BENCH_REQUESTS_IMPORT_CHILD));
