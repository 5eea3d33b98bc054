/**
 * The reminders half of `npm run bench` (issue 5, item 8): seeds 100,000 due reminder plans (and
 * 50,000 due in a week) with multi-row inserts, then — in a fresh child process, so its memory is the
 * scheduler's and not the seeder's — times the scheduler: the sweep (claim the due plans, queue one
 * email delivery each, move the plans on) and the handoff (the job queue drains the `deliveries.pump`
 * jobs the sweep queued until every delivery has been handed to channel-outbox and recorded `sent`).
 * Meanwhile it samples the event-loop delay (monitorEventLoopDelay at 1 ms resolution; its max is the
 * longest block) and memory (RSS, heapUsed), and counts the queries each phase ran. Afterwards it
 * checks the outcome: exactly one sent reminder delivery and one outbox message per due plan, each due
 * plan moved on (sent_count 1), every future plan untouched.
 *
 * The clock is a ManualClock at 12:00 UTC in a UTC merchant, so no plan is held back by quiet hours.
 *
 * Standalone: `npx tsx test/bench/reminders.ts` (SQLite; BENCH_DATABASE_URL=mysql://root@127.0.0.1:3306
 * for a fresh MariaDB database + BENCH_REDIS_URL). BENCH_REMINDERS (due plans, default 100,000) and
 * BENCH_REMINDERS_FUTURE (default half of it); BENCH_NODE_ARGS (space-separated flags for the measured
 * process, e.g. `--trace-gc`); BENCH_TOP (query shapes listed per phase, default 4).
 */
import { loopGaps, runBenchChild, runStandalone, type CheckFn } from './child.ts';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { Knex } from 'knex';
import { loadConfig } from '../../src/config.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { isMysql, toDate } from '../../src/core/db.ts';
import { publicId } from '../../src/core/ids.ts';

/** "Now" for the seed and the run: noon UTC, well outside quiet hours (21:00–08:00) of a UTC merchant. */
export const NOW = new Date('2026-11-23T12:00:00.000Z');
const DAY = 86_400_000;
const LINKS = 100;
export const AIMS = { totalS: 5, blockMs: 20 };

export interface RemindersSeeded {
  due: number;
  future: number;
  customers: number;
  links: number;
  merchantKey: number;
  seconds: number;
}

export interface PhaseStats {
  name: string;
  seconds: number;
  /** Longest event-loop block in the phase (ms: how late a 1 ms timer fired), and the p99 of them. */
  blockMs: number;
  p99Ms: number;
  /** monitorEventLoopDelay's max (ms), a cross-check; null when it took no sample. */
  eldMaxMs: number | null;
  /** How many times the 1 ms timer fired in the phase. */
  ticks: number;
  queries: number;
  dbMs: number;
  /** The statements that took the most time, by shape. */
  top: { sql: string; count: number; ms: number }[];
}

export interface RemindersResult {
  label: string;
  seeded: RemindersSeeded;
  phases: PhaseStats[];
  totalSeconds: number;
  blockMs: number;
  memory: { rssBaseMb: number; heapBaseMb: number; rssPeakMb: number; heapPeakMb: number };
  pumps: number;
  correct: Record<string, { value: number; expected: number }>;
}

// ---------------------------------------------------------------- seeding (in the caller's process)

/**
 * Seeds a fresh database: one UTC merchant, LINKS links, `due` customers with an email each, `due`
 * plans whose first reminder is due (next_at in the last 24 hours, daily, max 5) and `future` plans
 * on other (link, customer) pairs whose first reminder is a week away.
 */
export async function seedReminders(env: Record<string, string>, due: number, future: number, log: (line: string) => void): Promise<RemindersSeeded> {
  const started = performance.now();
  const clock = new ManualClock(NOW);
  const rt = await createRuntime(loadConfig(env), { migrate: true, recordViews: false, clock });
  try {
    const { merchant } = await rt.services.merchants.signUp(
      { name: 'Bench Reminders', handle: 'bench-reminders', email: 'reminders@bench.example', password: 'bench password 123' },
      { timezone: 'UTC' },
    );
    await rt.db('merchants').where({ id: merchant.key }).update({ timezone: 'UTC' });
    const links: number[] = [];
    for (let i = 0; i < LINKS; i++) {
      const link = await rt.services.links.create(merchant, { type: 'amount', name: `Invoice batch ${i + 1}`, amount: 1000 + i * 10 });
      links.push(link.key);
    }
    const db = rt.db;
    // knex writes a multi-row insert on SQLite as a compound SELECT, capped at 500 terms.
    const chunk = isMysql(db) ? 2_000 : 500;
    const insertAll = async (table: string, rows: Record<string, unknown>[]) => {
      await db.transaction(async (trx) => {
        for (let i = 0; i < rows.length; i += chunk) await trx(table).insert(rows.slice(i, i + chunk));
      });
    };
    const customers = due;
    const firstCustomer = ((await db('customers').max({ m: 'id' }))[0].m as number | null) ?? 0;
    for (let from = 0; from < customers; from += 50_000) {
      const rows: Record<string, unknown>[] = [];
      for (let i = from; i < Math.min(customers, from + 50_000); i++) {
        rows.push({ public_id: publicId('cus'), merchant_id: merchant.key, name: `Customer ${i + 1}`, email: `customer${i + 1}@bench.example`, phone: null, created_at: NOW, updated_at: NOW });
      }
      await insertAll('customers', rows);
    }
    const customerKeys = ((await db('customers').where('merchant_id', merchant.key).andWhere('id', '>', firstCustomer).orderBy('id').select('id')) as { id: number }[]).map((r) => Number(r.id));
    if (customerKeys.length !== customers) throw new Error(`seeded ${customerKeys.length} customers, expected ${customers}`);
    log(`  seeded ${customers.toLocaleString('en-US')} customers (${((performance.now() - started) / 1000).toFixed(1)} s)`);

    const plan = (i: number, linkKey: number, customerKey: number, isDue: boolean) => {
      // Due: the first send was 24 h–24 h 59 min ago, so reminder 1 (one day later) fell due in the
      // last hour; reminder 2 is tomorrow. Future: sent now, weekly, reminder 1 in seven days.
      const anchor = isDue ? new Date(NOW.getTime() - DAY - (i % 3_600) * 1_000) : NOW;
      return {
        public_id: publicId('rem'),
        merchant_id: merchant.key,
        link_id: linkKey,
        customer_id: customerKey,
        channels: 'email',
        frequency: isDue ? 'daily' : 'weekly',
        max_count: 5,
        sent_count: 0,
        anchor_at: anchor,
        next_at: new Date(anchor.getTime() + (isDue ? DAY : 7 * DAY)),
        state: 'active',
        created_at: anchor,
        updated_at: anchor,
      };
    };
    const total = due + future;
    for (let from = 0; from < total; from += 50_000) {
      const rows: Record<string, unknown>[] = [];
      for (let i = from; i < Math.min(total, from + 50_000); i++) {
        const isDue = i < due;
        const c = isDue ? i : i - due;
        // Future plans are for the same customers on another link: every (link, customer) pair is distinct.
        rows.push(plan(i, links[(c + (isDue ? 0 : LINKS / 2)) % LINKS], customerKeys[c % customers], isDue));
      }
      await insertAll('reminder_plans', rows);
      log(`  seeded ${Math.min(total, from + 50_000).toLocaleString('en-US')} reminder plans (${((performance.now() - started) / 1000).toFixed(1)} s)`);
    }
    if (isMysql(db)) await db.raw('analyze table customers, reminder_plans, links');
    return { due, future, customers, links: LINKS, merchantKey: merchant.key, seconds: (performance.now() - started) / 1000 };
  } finally {
    await rt.close();
  }
}

// ---------------------------------------------------------------- measuring (in a child process)

/** Query counts and time by statement shape while a phase runs. */
function queryProfile(db: Knex) {
  const started = new Map<string, number>();
  let stats = new Map<string, { count: number; ms: number }>();
  const shape = (sql: string) => sql.replace(/\(\s*\?(\s*,\s*\?)*\s*\)/g, '(…)').replace(/(\(…\)\s*,\s*)+\(…\)/g, '(…), …').replace(/(when \? then \? ?)+/gi, 'WHEN … ').slice(0, 150);
  const onQuery = (q: { __knexQueryUid: string }) => started.set(q.__knexQueryUid, performance.now());
  const onDone = (_r: unknown, q: { __knexQueryUid: string; sql: string }) => {
    const t = started.get(q.__knexQueryUid);
    if (t === undefined) return;
    started.delete(q.__knexQueryUid);
    const key = shape(q.sql);
    const s = stats.get(key) ?? { count: 0, ms: 0 };
    s.count++;
    s.ms += performance.now() - t;
    stats.set(key, s);
  };
  db.on('query', onQuery).on('query-response', onDone).on('query-error', onDone);
  return {
    take() {
      const out = stats;
      stats = new Map();
      const all = [...out].map(([sql, s]) => ({ sql, ...s }));
      return { queries: all.reduce((n, s) => n + s.count, 0), dbMs: all.reduce((n, s) => n + s.ms, 0), top: all.sort((a, b) => b.ms - a.ms).slice(0, Number(process.env.BENCH_TOP ?? 4)) };
    },
    stop() {
      db.off('query', onQuery).off('query-response', onDone).off('query-error', onDone);
    },
  };
}

async function count(db: Knex, q: (db: Knex) => Knex.QueryBuilder): Promise<number> {
  const [{ n }] = (await q(db).count({ n: '*' })) as { n: number | string }[];
  return Number(n);
}

/** Runs the sweep and the handoff on the seeded database and checks the outcome. */
async function measure(env: Record<string, string>, seeded: RemindersSeeded, label: string): Promise<RemindersResult> {
  const clock = new ManualClock(NOW);
  const rt: Runtime = await createRuntime(loadConfig(env), { migrate: false, recordViews: false, clock });
  try {
    const db = rt.db;
    const futureBefore = (await db('reminder_plans').where('next_at', '>', NOW).select('id', 'next_at', 'updated_at', 'sent_count', 'state')) as Record<string, unknown>[];
    const futureSig = (rows: Record<string, unknown>[]) => new Map(rows.map((r) => [Number(r.id), `${toDate(r.next_at).getTime()}|${toDate(r.updated_at).getTime()}|${r.sent_count}|${r.state}`]));
    const before = futureSig(futureBefore);
    futureBefore.length = 0;
    // A warm connection pool and compiled statements, as in a running server.
    await db('reminder_plans').where('id', -1).first('id');
    await db('deliveries').where('id', -1).first('id');
    if (global.gc) global.gc();
    const base = process.memoryUsage();
    let rssPeak = base.rss;
    let heapPeak = base.heapUsed;
    // The lag probe: a 1 ms interval timer; how late each tick comes is how long the loop was held.
    // (monitorEventLoopDelay is kept as a cross-check: its timer only samples when it gets to run.)
    // Memory every 20th tick: process.memoryUsage() reads /proc and the heap's statistics, and at
    // every tick it took ~4 % of the measured thread.
    let tick = 0;
    const probe = loopGaps(() => {
      if (++tick % 20) return;
      const m = process.memoryUsage();
      if (m.rss > rssPeak) rssPeak = m.rss;
      if (m.heapUsed > heapPeak) heapPeak = m.heapUsed;
    });
    const loop = monitorEventLoopDelay({ resolution: 1 });
    const profile = queryProfile(db);
    const phases: PhaseStats[] = [];
    const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
      loop.reset();
      loop.enable();
      await new Promise((r) => setTimeout(r, 5));
      probe.take();
      const t = performance.now();
      const result = await fn();
      const seconds = (performance.now() - t) / 1000;
      // Let the timers fire once more: a block that lasted until the end is only seen when they do.
      await new Promise((r) => setTimeout(r, 5));
      loop.disable();
      const sorted = probe.take().sort((a, b) => a - b);
      phases.push({
        name,
        seconds,
        blockMs: sorted.length ? sorted[sorted.length - 1] : 0,
        p99Ms: sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] : 0,
        eldMaxMs: loop.count ? loop.max / 1e6 : null,
        ticks: sorted.length,
        ...profile.take(),
      });
      return result;
    };

    const t0 = performance.now();
    // The sweep as the `reminders.sweep` job runs it (budget large enough to take every due plan).
    const taken = await phase('sweep (claim + queue)', () => rt.services.reminders.sweep(120_000));
    // The handoff as a worker does it: run the queued jobs (the `deliveries.pump` jobs the sweep
    // queued) until every delivery is out.
    let pumps = 0;
    await phase('handoff (pump → outbox)', async () => {
      for (let round = 0; round < 50; round++) {
        pumps += await rt.jobs.drain();
        const left = await count(db, (d) => d('deliveries').whereIn('status', ['queued', 'sending']));
        if (!left) break;
      }
    });
    const totalSeconds = (performance.now() - t0) / 1000;
    probe.stop();
    loop.disable();
    profile.stop();

    const due = seeded.due;
    const correct: RemindersResult['correct'] = {};
    correct['plans taken by the sweep'] = { value: taken, expected: due };
    correct['reminder deliveries'] = { value: await count(db, (d) => d('deliveries').where('kind', 'reminder')), expected: due };
    correct['… of them sent'] = { value: await count(db, (d) => d('deliveries').where({ kind: 'reminder', status: 'sent' })), expected: due };
    correct['distinct plans with a delivery'] = { value: await count(db, (d) => d.from(d('deliveries').distinct('plan_id').whereNotNull('plan_id').as('x'))), expected: due };
    correct['outbox messages'] = { value: await count(db, (d) => d('plugin_records').where('plugin_id', 'channel-outbox')), expected: due };
    const messageIds = new Set<string>();
    let sinceId = 0;
    for (;;) {
      const rows = (await db('plugin_records').where('plugin_id', 'channel-outbox').andWhere('id', '>', sinceId).orderBy('id').limit(20_000).select('id', 'data')) as { id: number; data: string }[];
      if (!rows.length) break;
      for (const r of rows) messageIds.add((JSON.parse(r.data) as { messageId: string }).messageId);
      sinceId = Number(rows[rows.length - 1].id);
    }
    correct['distinct outbox message ids'] = { value: messageIds.size, expected: due };
    correct['plans with sent_count 1'] = { value: await count(db, (d) => d('reminder_plans').where('sent_count', 1)), expected: due };
    correct['… still active, next reminder tomorrow'] = {
      value: await count(db, (d) => d('reminder_plans').where({ sent_count: 1, state: 'active' }).andWhere('next_at', '>', new Date(NOW.getTime() + DAY - 3_600_000)).andWhere('next_at', '<=', new Date(NOW.getTime() + DAY))),
      expected: due,
    };
    correct['plans still due'] = { value: await count(db, (d) => d('reminder_plans').where('state', 'active').andWhere('next_at', '<=', NOW)), expected: 0 };
    // Every plan, read back by id: a future plan counts as untouched if nothing about it changed.
    const after = futureSig((await db('reminder_plans').select('id', 'next_at', 'updated_at', 'sent_count', 'state')) as Record<string, unknown>[]);
    let untouched = 0;
    for (const [id, sig] of before) if (after.get(id) === sig) untouched++;
    correct['future plans untouched'] = { value: untouched, expected: seeded.future };
    return {
      label,
      seeded,
      phases,
      totalSeconds,
      blockMs: Math.max(...phases.map((p) => p.blockMs)),
      memory: { rssBaseMb: base.rss / 2 ** 20, heapBaseMb: base.heapUsed / 2 ** 20, rssPeakMb: rssPeak / 2 ** 20, heapPeakMb: heapPeak / 2 ** 20 },
      pumps,
      correct,
    };
  } finally {
    await rt.close();
  }
}

/** Runs the measurement in a fresh Node process (its memory is the scheduler's alone). */
export async function measureReminders(env: Record<string, string>, seeded: RemindersSeeded, label: string, log: (line: string) => void): Promise<RemindersResult> {
  return runBenchChild<RemindersResult>({ name: 'reminders', label, env, childVar: 'BENCH_REMINDERS_CHILD', payload: { seeded, label }, nodeArgs: ['--expose-gc', ...(process.env.BENCH_NODE_ARGS ? process.env.BENCH_NODE_ARGS.split(' ') : [])], log });
}

// ---------------------------------------------------------------- report

const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });

export function reportReminders(r: RemindersResult, check: CheckFn): string[] {
  const s = r.seeded;
  const out: string[] = [''];
  out.push(`Reminders on ${r.label}: ${fmt(s.due)} due plans (email) and ${fmt(s.future)} due in a week, ${fmt(s.customers)} customers on ${s.links} links; seeded in ${s.seconds.toFixed(1)} s`);
  out.push(`Sweep then handoff to channel-outbox, in one fresh process (ManualClock at 12:00 UTC, a UTC merchant):`);
  out.push(`  ${'phase'.padEnd(26)}${'s'.padStart(8)}${'plans/s'.padStart(10)}${'max block ms'.padStart(14)}${'p99 block ms'.padStart(14)}${'ELD max ms'.padStart(12)}${'ticks'.padStart(8)}${'queries'.padStart(10)}${'in db s'.padStart(9)}`);
  for (const p of r.phases) out.push(`  ${p.name.padEnd(26)}${p.seconds.toFixed(2).padStart(8)}${fmt(s.due / p.seconds).padStart(10)}${p.blockMs.toFixed(1).padStart(14)}${p.p99Ms.toFixed(1).padStart(14)}${(p.eldMaxMs === null ? '–' : p.eldMaxMs.toFixed(1)).padStart(12)}${fmt(p.ticks).padStart(8)}${fmt(p.queries).padStart(10)}${(p.dbMs / 1000).toFixed(2).padStart(9)}`);
  out.push(`  ${'total'.padEnd(26)}${r.totalSeconds.toFixed(2).padStart(8)}${fmt(s.due / r.totalSeconds).padStart(10)}   (${fmt(r.pumps)} jobs run in the handoff; block = how late a 1 ms interval timer fired)`);
  out.push(`  memory: RSS ${fmt(r.memory.rssBaseMb)} → peak ${fmt(r.memory.rssPeakMb)} MB, heapUsed ${fmt(r.memory.heapBaseMb)} → peak ${fmt(r.memory.heapPeakMb)} MB`);
  out.push(`  where the database time went (query shapes, most time first; concurrent queries' times add up, so "in db" can exceed the wall time):`);
  for (const p of r.phases) {
    for (const q of p.top) out.push(`    ${p.name.split(' ')[0].padEnd(8)}${fmt(q.count).padStart(8)} × ${(q.ms / 1000).toFixed(2).padStart(6)} s  ${q.sql.length > 120 ? `${q.sql.slice(0, 117)}…` : q.sql}`);
  }
  out.push(`  ${check(`reminders ${r.label}: sweep + handoff s`, r.totalSeconds.toFixed(2), `≤ ${AIMS.totalS} s`, r.totalSeconds <= AIMS.totalS)}`);
  out.push(`  ${check(`reminders ${r.label}: longest loop block ms`, r.blockMs.toFixed(1), `≤ ${AIMS.blockMs} ms`, r.blockMs <= AIMS.blockMs)}`);
  const wrong = Object.entries(r.correct).filter(([, c]) => c.value !== c.expected);
  out.push(`  outcome: ${Object.entries(r.correct).map(([k, c]) => `${k} ${fmt(c.value)}${c.value === c.expected ? '' : ` (expected ${fmt(c.expected)})`}`).join('; ')}`);
  out.push(`  ${check(`reminders ${r.label}: each due plan sent once`, wrong.length ? 'no' : 'yes', 'counts above as expected', wrong.length === 0)}`);
  return out;
}

/** True when every correctness count matched (run.ts exits 1 otherwise). */
export const remindersCorrect = (r: RemindersResult) => Object.values(r.correct).every((c) => c.value === c.expected);

// ---------------------------------------------------------------- entry points

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const child = process.env.BENCH_REMINDERS_CHILD;
  if (child) {
    const { seeded, label } = JSON.parse(child) as { seeded: RemindersSeeded; label: string };
    const result = await measure(process.env as Record<string, string>, seeded, label);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } else {
    // Standalone: a fresh SQLite file, or a fresh database on BENCH_DATABASE_URL's MariaDB server.
    const due = Number(process.env.BENCH_REMINDERS ?? 100_000);
    const future = Number(process.env.BENCH_REMINDERS_FUTURE ?? Math.floor(due / 2));
    await runStandalone('reminders', async ({ env, label }, log, check) => {
      log(`seeding ${fmt(due)} due and ${fmt(future)} future reminder plans on ${label}`);
      const seeded = await seedReminders(env, due, future, log);
      log(`  seeded in ${seeded.seconds.toFixed(1)} s; measuring`);
      const result = await measureReminders(env, seeded, label, log);
      return { lines: reportReminders(result, check), correct: remindersCorrect(result) };
    });
  }
}
